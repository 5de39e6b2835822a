//! The shipped state machine run locally, each function given exactly the environment
//! variables the template gives it (with local values), so it can only reach what it could
//! reach deployed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use janitor_core::local::LocalRunner;
pub use janitor_core::local::{Execution, TraceEntry};
use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::iam::{LocalNames, RoleCredentials, set_authorization};
use crate::repo_root;
use crate::template::Template;

/// The handler binaries next to the running test or tool (`target/<profile>/`).
pub fn handler_bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("no parent dir")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

pub struct LocalStateMachine {
    runner: LocalRunner,
    /// The emulator whose authorisation is on while executions run (each function then
    /// acts with its own role's grants only), and how many executions are running.
    authorize: Option<(String, Arc<AtomicUsize>)>,
    names: Option<LocalNames>,
    /// SNS's own emulator, without authorisation (see `local_pipeline`).
    _sns: Option<crate::Moto>,
    /// Clients allowed everything, for a test that changes the estate while a run is under IAM.
    pub harness: Option<janitor_core::aws::AwsClients>,
}

impl LocalStateMachine {
    /// `values` gives each template environment variable its local value; every variable a
    /// function has in the template must have one, so nothing deployed is left unset here.
    /// `local_env` is what only the local run needs (emulator endpoints, a test policy).
    pub fn new(
        work: &Path,
        values: &BTreeMap<&str, String>,
        local_env: &[(&str, String)],
    ) -> Result<LocalStateMachine> {
        let mut runner = LocalRunner::new(&repo_root(), &handler_bin_dir()?, work)?;
        let template = Template::load()?;
        let mut function_env = serde_json::Map::new();
        let mut template_vars = Vec::new();
        for function in template.functions()? {
            let mut env = serde_json::Map::new();
            for var in &function.env_vars {
                let value = values.get(var.as_str()).with_context(|| format!("no local value for {var}"))?;
                env.insert(var.clone(), json!(value));
            }
            template_vars.extend(function.env_vars);
            function_env.insert(function.name, Value::Object(env));
        }
        template_vars.sort();
        template_vars.dedup();
        if let Some((name, _)) = local_env.iter().find(|(name, _)| template_vars.iter().any(|v| v == name)) {
            bail!("{name} is set by the template; give it in `values`, per function");
        }
        runner.function_env = Value::Object(function_env);
        runner.cleared_env = template_vars;
        runner.cleared_env.push("AWS_PROFILE".into());
        runner.shared_env = local_env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Ok(LocalStateMachine { runner, authorize: None, names: None, _sns: None, harness: None })
    }

    /// From now on each function acts with `roles[function]`'s credentials, and the emulator
    /// at `endpoint` authorises every request while an execution or invocation runs.
    pub fn run_under_iam(&mut self, endpoint: &str, roles: &BTreeMap<String, RoleCredentials>, names: LocalNames) {
        let env = self.runner.function_env.as_object_mut().expect("function_env is an object");
        for (function, credentials) in roles {
            let vars = env.entry(function.clone()).or_insert_with(|| json!({}));
            for (name, value) in credentials.env() {
                vars[name] = json!(value);
            }
        }
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
            self.runner.shared_env.retain(|(k, _)| k != var);
            self.runner.cleared_env.push(var.to_owned());
        }
        self.authorize = Some((endpoint.to_owned(), Arc::new(AtomicUsize::new(0))));
        self.names = Some(names);
    }

    /// Every message published to the alert topic so far, as `(subject, message)`, read from
    /// the SNS emulator's record of what each topic sent.
    pub async fn alerts_published(&self) -> Result<Vec<(String, Value)>> {
        let topic = self.names.as_ref().map(|n| n.topic_arn.clone());
        self.published_to(topic.as_deref()).await
    }

    /// Every message published to the security topic so far.
    pub async fn security_alerts_published(&self) -> Result<Vec<(String, Value)>> {
        let topic = self.names.as_ref().map(|n| n.security_topic_arn.clone()).context("not run under IAM")?;
        self.published_to(Some(&topic)).await
    }

    /// Every email published to the owner email topic so far: `(subject, body, owner attribute)`.
    pub async fn emails_published(&self) -> Result<Vec<(String, String, String)>> {
        let topic = self.names.as_ref().map(|n| n.email_topic_arn.clone()).context("not run under IAM")?;
        let sns = self._sns.as_ref().context("no SNS emulator: not a local pipeline")?;
        let data: Value = reqwest::get(format!("{}/moto-api/data.json", sns.endpoint)).await?.json().await?;
        let mut out = Vec::new();
        for t in data["sns"]["Topic"].as_array().into_iter().flatten().filter(|t| t["arn"] == topic) {
            for sent in t["sent_notifications"].as_array().into_iter().flatten() {
                let owner = sent[3]["owner"]["Value"].as_str().or(sent[3]["owner"]["StringValue"].as_str());
                out.push((
                    sent[2].as_str().unwrap_or_default().to_owned(),
                    sent[1].as_str().unwrap_or_default().to_owned(),
                    owner.unwrap_or_default().to_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// What `topic` (or, with none, every topic) sent.
    async fn published_to(&self, topic_arn: Option<&str>) -> Result<Vec<(String, Value)>> {
        let sns = self._sns.as_ref().context("no SNS emulator: not a local pipeline")?;
        let data: Value = reqwest::get(format!("{}/moto-api/data.json", sns.endpoint)).await?.json().await?;
        let mut out = Vec::new();
        let topics = data["sns"]["Topic"].as_array().into_iter().flatten();
        for topic in topics.filter(|t| topic_arn.is_none_or(|arn| t["arn"] == arn)) {
            for sent in topic["sent_notifications"].as_array().into_iter().flatten() {
                // (message id, message, subject, attributes, group id)
                let message = sent[1].as_str().context("a sent notification without a message")?;
                let subject = sent[2].as_str().unwrap_or_default().to_owned();
                out.push((subject, serde_json::from_str(message).unwrap_or_else(|_| json!(message))));
            }
        }
        Ok(out)
    }

    /// Denied calls and calls outside their statement's `Resource`, so far.
    pub fn grant_problems(&self) -> Result<Vec<String>> {
        let names = self.names.as_ref().context("not run under IAM")?;
        let template = Template::load()?;
        crate::iam::grant_problems(&template, names, &crate::iam::observed_calls(&self.calls_dir())?)
    }

    /// Runs `work` with the emulator's authorisation on (for overlapping executions too).
    async fn authorized<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let Some((endpoint, running)) = &self.authorize else { return work.await };
        if running.fetch_add(1, Ordering::SeqCst) == 0 {
            set_authorization(endpoint, true)?;
        }
        let out = work.await;
        if running.fetch_sub(1, Ordering::SeqCst) == 1 {
            set_authorization(endpoint, false)?;
        }
        out
    }

    /// What the local stack's resources are called (tables, buckets, topic), when run under IAM.
    pub fn names(&self) -> Option<&LocalNames> {
        self.names.as_ref()
    }

    pub fn calls_dir(&self) -> PathBuf {
        self.runner.calls_dir()
    }

    /// The handlers' logs so far (JSON lines), for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.runner.log_file()).unwrap_or_default()
    }

    pub async fn execute(&self, input: &Value, execution: &str) -> Result<Execution> {
        self.authorized(async { Ok(self.runner.execute(input, execution).await?) }).await
    }

    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Execution> {
        self.authorized(async { Ok(self.runner.invoke(function, event).await?) }).await
    }
}

/// An API Gateway HTTP API (payload v2) request for `POST /slack/interactivity`, as the
/// snooze function receives a Slack button click.
pub fn slack_interactivity_event(body: &str, timestamp: i64, signature: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "POST /slack/interactivity",
        "rawPath": "/slack/interactivity",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": timestamp.to_string(),
            "x-slack-signature": signature,
        },
        "requestContext": {
            "accountId": crate::HOME_ACCOUNT,
            "apiId": "local",
            "domainName": "local.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "local",
            "http": {
                "method": "POST",
                "path": "/slack/interactivity",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "Slackbot 1.0",
            },
            "requestId": format!("local-{timestamp}"),
            "routeKey": "POST /slack/interactivity",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": timestamp * 1000,
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

pub const SIGNING_SECRET: &str = "local-signing-secret";

/// The email owner subscribed to the local stack's owner email topic.
pub const LOCAL_EMAIL_OWNER: &str = "dave@mail.example";

/// Where the local stack's snooze links point (the HTTP API's `/snooze` route).
pub const SNOOZE_LINK_URL: &str = "https://local.execute-api.us-east-1.amazonaws.com/snooze";

/// An API Gateway HTTP API (payload v2) request for a snooze link: `GET /snooze?<query>` as
/// a browser opens it, or `POST /snooze` with the page's form.
pub fn snooze_link_event(method: &str, query: &str, form: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} /snooze"),
        "rawPath": "/snooze",
        "rawQueryString": query,
        "headers": { "content-type": "application/x-www-form-urlencoded" },
        "requestContext": {
            "accountId": crate::HOME_ACCOUNT,
            "apiId": "local",
            "domainName": "local.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "local",
            "http": { "method": method, "path": "/snooze", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "Mozilla/5.0" },
            "requestId": "local-link",
            "routeKey": format!("{method} /snooze"),
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": form,
        "isBase64Encoded": false,
    })
}

/// How a local pipeline differs from the shipped defaults.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions<'a> {
    /// Overrides the Slack secret (to break notify).
    pub slack_secret_id: Option<&'a str>,
    /// `(function, action)`: a grant left out of that function's role, to prove it is missed.
    pub without_grant: Option<(&'a str, &'a str)>,
    /// The policy's grace period (a real Wait).
    pub grace: &'a str,
    /// The emulator's Service Catalog stub; `None` takes `AWS_ENDPOINT_URL_SERVICE_CATALOG`.
    pub service_catalog: Option<&'a crate::service_catalog::ServiceCatalogStub>,
    /// Rules switched off in the run's policy (by table: `ec2_missing_monitoring`).
    pub rules_off: &'a [&'a str],
    /// The Teams webhooks (`platform`, `finops`), for owners the policy routes to Teams
    /// (`@teams.example`); without it the stack has no Teams, as when TeamsSecretArn is empty.
    pub teams: Option<&'a crate::teams::TeamsStub>,
}

impl Default for PipelineOptions<'_> {
    fn default() -> Self {
        PipelineOptions {
            slack_secret_id: None,
            without_grant: None,
            grace: "0s",
            service_catalog: None,
            rules_off: &[],
            teams: None,
        }
    }
}

/// Everything the deployed stack would hold, made on the emulator: the Slack secret, the
/// alert topic, a role per function from the template's statements and the member-account
/// role; then the local state machine with the template's variables pointed at them, at
/// `tables` and at the Slack stub, each function acting with its own role's credentials and
/// the emulator authorising every request while it runs.
pub async fn local_pipeline(
    clients: &janitor_core::aws::AwsClients,
    endpoint: &str,
    tables: &janitor_core::aws::TableNames,
    slack: &crate::slack::SlackStub,
    work: &Path,
    options: PipelineOptions<'_>,
) -> Result<LocalStateMachine> {
    let secret = json!({ "bot_token": "xoxb-local", "signing_secret": SIGNING_SECRET }).to_string();
    let created =
        clients.secrets_manager().create_secret().name("cloud-janitor/slack").secret_string(secret).send().await?;
    let secret_arn = created.arn().context("secret arn")?.to_owned();
    // moto checks a signature by re-encoding a form body it has parsed, so SNS Publish
    // (awsQuery, a message with spaces) never verifies under its authorisation. SNS gets an
    // emulator of its own without it; sns:Publish is held to its topic by the static check.
    let sns = crate::Moto::start()?;
    let topic = sns.clients().await.sns().create_topic().name("cloud-janitor-alerts").send().await?;
    let topic_arn = topic.topic_arn().context("topic arn")?.to_owned();
    let security = sns.clients().await.sns().create_topic().name("cloud-janitor-security").send().await?;
    let security_topic_arn = security.topic_arn().context("topic arn")?.to_owned();
    // Owners told by email: the topic each owner's subscription would filter.
    let email = sns.clients().await.sns().create_topic().name("cloud-janitor-owner-email").send().await?;
    let email_topic_arn = email.topic_arn().context("topic arn")?.to_owned();
    // What `janitor email subscribe` does for an owner (the emulator confirms at once).
    janitor_core::aws::delivery::subscribe_owner(&sns.clients().await, &email_topic_arn, LOCAL_EMAIL_OWNER).await?;
    let teams_secret_arn = match options.teams {
        Some(stub) => clients
            .secrets_manager()
            .create_secret()
            .name("cloud-janitor/teams")
            .secret_string(stub.secret(&["platform", "finops"]))
            .send()
            .await?
            .arn()
            .context("secret arn")?
            .to_owned(),
        None => String::new(),
    };
    // As the template makes SnoozeLinkKey: an HMAC key only KMS holds.
    let link_key = clients
        .kms()
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .description("snooze links")
        .send()
        .await?;
    let link_key_arn = link_key.key_metadata().and_then(|m| m.arn()).context("key arn")?.to_owned();
    let member_role = janitor_core::aws::clients::DEFAULT_MEMBER_ROLE;
    let run_bucket = format!("cloud-janitor-runs-{}", tables.audit.trim_end_matches("-audit"));
    let s3 = clients.s3(crate::HOME_ACCOUNT, crate::HOME_REGION).await?;
    s3.create_bucket().bucket(&run_bucket).send().await?;
    let reports_bucket = format!("cloud-janitor-reports-{}", tables.audit.trim_end_matches("-audit"));
    s3.create_bucket().bucket(&reports_bucket).send().await?;
    // As the template makes it with AnchorLockDays = 1: compliance mode, a default retention.
    let anchor_bucket = format!("cloud-janitor-anchors-{}", tables.audit.trim_end_matches("-audit"));
    crate::object_lock_bucket(&s3, &anchor_bucket, 1).await?;
    // What an operator uploads beside the stack: who may launch Service Catalog products.
    s3.put_object()
        .bucket(&run_bucket)
        .key("config/allowed-launchers.txt")
        .body(crate::estate::ALLOW_LIST_BODY.as_bytes().to_vec().into())
        .send()
        .await?;
    let template = Template::load()?;
    let roles = crate::iam::function_roles(clients, &template, options.without_grant).await?;
    crate::iam::member_role(clients, crate::estate::MEMBER_ACCOUNT, member_role).await?;

    std::fs::create_dir_all(work)?;
    let policy = work.join("policy.toml");
    let mut text = crate::pipeline_policy_with_grace(options.grace);
    for table in options.rules_off {
        let header = format!("[rules.{table}]\n");
        anyhow::ensure!(text.contains(&header), "the policy has no table {header}");
        text = text.replace(&header, &format!("{header}enabled = false\n"));
    }
    // Owners at these domains, and #platform, are told in Teams (the `platform` webhook) and by email.
    for (shipped, local) in [
        (
            "\ndomains = {}\n",
            "\ndomains = { \"teams.example\" = { via = \"teams\", webhook = \"platform\" }, \"mail.example\" = { via = \"email\" } }\n",
        ),
        ("\nchannels = {}\n", "\nchannels = { \"#platform\" = { via = \"teams\", webhook = \"platform\" } }\n"),
    ] {
        anyhow::ensure!(text.matches(shipped).count() == 1, "the policy no longer says {shipped:?} once");
        text = text.replace(shipped, local);
    }
    std::fs::write(&policy, text)?;
    let values: BTreeMap<&str, String> = [
        ("RUST_LOG", "info".to_owned()),
        ("JANITOR_AUDIT_TABLE", tables.audit.clone()),
        ("JANITOR_LOCK_TABLE", tables.lock.clone()),
        ("JANITOR_SNOOZE_TABLE", tables.snooze.clone()),
        ("JANITOR_ROLE_NAME", member_role.to_owned()),
        ("JANITOR_EXTERNAL_ID", String::new()),
        ("JANITOR_ALERT_TOPIC_ARN", topic_arn.clone()),
        ("JANITOR_SLACK_SECRET_ID", options.slack_secret_id.map(str::to_owned).unwrap_or(secret_arn.clone())),
        ("JANITOR_SLACK_CHANNEL", "#cloud-janitor".to_owned()),
        ("JANITOR_RUN_BUCKET", run_bucket.clone()),
        ("JANITOR_REPORTS_BUCKET", reports_bucket.clone()),
        ("JANITOR_ANCHOR_BUCKET", anchor_bucket.clone()),
        // The stack's Mode, for onboard (the state machine's runs say theirs in their input).
        ("JANITOR_MODE", "enforce".to_owned()),
        ("JANITOR_SECURITY_TOPIC_ARN", security_topic_arn.clone()),
        ("JANITOR_SECURITY_CHANNEL", "#security".to_owned()),
        ("JANITOR_TEAMS_SECRET_ID", teams_secret_arn.clone()),
        ("JANITOR_EMAIL_TOPIC_ARN", email_topic_arn.clone()),
        ("JANITOR_LINK_KEY_ID", link_key_arn.clone()),
        ("JANITOR_SNOOZE_LINK_URL", SNOOZE_LINK_URL.to_owned()),
    ]
    .into_iter()
    .collect();
    // Service Catalog is the stub's; callers acting through the function roles and the
    // member role are held to those roles' actions there as moto holds them.
    let catalog = match options.service_catalog {
        Some(stub) => {
            let mut enforced = BTreeMap::new();
            for function in template.functions()? {
                let granted = function
                    .actions
                    .iter()
                    .filter(|a| options.without_grant != Some((function.name.as_str(), a.as_str())))
                    .cloned()
                    .collect();
                enforced.insert(
                    format!("arn:aws:iam::{}:role/cloud-janitor-{}", crate::HOME_ACCOUNT, function.name),
                    granted,
                );
            }
            let member = format!("arn:aws:iam::{}:role/{member_role}", crate::estate::MEMBER_ACCOUNT);
            enforced.insert(member.clone(), crate::template::member_role_actions()?.into_iter().collect());
            stub.enforce_roles(enforced);
            for (function, credentials) in &roles {
                let role = format!("arn:aws:iam::{}:role/cloud-janitor-{function}", crate::HOME_ACCOUNT);
                stub.name_caller(&credentials.access_key_id, crate::HOME_ACCOUNT, Some(&role));
            }
            stub.unnamed_callers_are(crate::estate::MEMBER_ACCOUNT, &member);
            stub.endpoint.clone()
        }
        // The demo's stub runs in a process of its own and says where.
        None => std::env::var("AWS_ENDPOINT_URL_SERVICE_CATALOG").unwrap_or_default(),
    };
    let local = [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ENDPOINT_URL_SNS", sns.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SERVICE_CATALOG", catalog.clone()),
        // The same stub serves the Price List.
        ("AWS_ENDPOINT_URL_PRICING", catalog),
        ("AWS_REGION", crate::HOME_REGION.to_owned()),
        ("JANITOR_POLICY_FILE", policy.display().to_string()),
        ("JANITOR_SLACK_API_URL", slack.api_url()),
        ("JANITOR_SLACK_RESPONSE_URL_PREFIX", slack.base_url.clone()),
    ];
    let mut machine = LocalStateMachine::new(work, &values, &local)?;
    let names = LocalNames {
        tables: tables.clone(),
        run_bucket,
        reports_bucket,
        anchor_bucket,
        topic_arn,
        security_topic_arn,
        secret_arn,
        member_role: member_role.to_owned(),
        email_topic_arn,
        // Granted only with a Teams secret; a name that matches nothing otherwise.
        teams_secret_arn: if teams_secret_arn.is_empty() {
            format!("arn:aws:secretsmanager:{}:{}:secret:no-teams", crate::HOME_REGION, crate::HOME_ACCOUNT)
        } else {
            teams_secret_arn
        },
        link_key_arn,
    };
    machine.run_under_iam(endpoint, &roles, names);
    machine._sns = Some(sns);
    machine.harness = Some(crate::iam::harness_clients(clients, endpoint).await?);
    Ok(machine)
}

/// A Snooze click as Slack sends it (signed form post through API Gateway), handled by the
/// real snooze binary, on `message` (the one the button was in). Returns the HTTP response.
pub async fn click_snooze(
    machine: &LocalStateMachine,
    slack: &crate::slack::SlackStub,
    user: &str,
    resource: &str,
    action: &str,
    message: &Value,
) -> Result<Execution> {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user },
        "actions": [{ "action_id": action, "value": resource, "type": "button" }],
        "response_url": slack.response_url(user),
        "message": message,
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
    let ts = chrono::Utc::now().timestamp();
    let signature = janitor_core::slack::sign(SIGNING_SECRET, ts, body.as_bytes());
    machine.invoke("snooze", &slack_interactivity_event(&body, ts, &signature)).await
}
