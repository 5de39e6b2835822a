//! The shipped state machine run locally, each function given exactly the environment
//! variables the template gives it (with local values), so it can only reach what it could
//! reach deployed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use janitor_core::local::LocalRunner;
pub use janitor_core::local::{Execution, TraceEntry};
use serde_json::{Value, json};

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
        Ok(LocalStateMachine { runner })
    }

    pub fn calls_dir(&self) -> PathBuf {
        self.runner.calls_dir()
    }

    /// The handlers' logs so far (JSON lines), for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.runner.log_file()).unwrap_or_default()
    }

    pub async fn execute(&self, input: &Value, execution: &str) -> Result<Execution> {
        Ok(self.runner.execute(input, execution).await?)
    }

    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Execution> {
        Ok(self.runner.invoke(function, event).await?)
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

/// Everything the deployed stack would hold, made on the emulator: the Slack secret and the
/// alert topic; then the local state machine with the template's variables pointed at them,
/// at `tables`, and at the Slack stub. The policy is the emulator one with no grace period
/// (the Wait lasts until the next whole second). `slack_secret_id` overrides the secret (to break notify).
pub async fn local_pipeline(
    clients: &janitor_core::aws::AwsClients,
    endpoint: &str,
    tables: &janitor_core::aws::TableNames,
    slack: &crate::slack::SlackStub,
    work: &Path,
    slack_secret_id: Option<&str>,
) -> Result<LocalStateMachine> {
    let secret = json!({ "bot_token": "xoxb-local", "signing_secret": SIGNING_SECRET }).to_string();
    let created =
        clients.secrets_manager().create_secret().name("cloud-janitor/slack").secret_string(secret).send().await?;
    let secret_arn = created.arn().context("secret arn")?.to_owned();
    let topic = clients.sns().create_topic().name("cloud-janitor-alerts").send().await?;
    let topic_arn = topic.topic_arn().context("topic arn")?.to_owned();

    std::fs::create_dir_all(work)?;
    let policy = work.join("policy.toml");
    std::fs::write(&policy, crate::emulator_policy_with_grace("0s"))?;
    let values: BTreeMap<&str, String> = [
        ("RUST_LOG", "info".to_owned()),
        ("JANITOR_AUDIT_TABLE", tables.audit.clone()),
        ("JANITOR_LOCK_TABLE", tables.lock.clone()),
        ("JANITOR_SNOOZE_TABLE", tables.snooze.clone()),
        ("JANITOR_ROLE_NAME", janitor_core::aws::clients::DEFAULT_MEMBER_ROLE.to_owned()),
        ("JANITOR_EXTERNAL_ID", String::new()),
        ("JANITOR_ALERT_TOPIC_ARN", topic_arn),
        ("JANITOR_SLACK_SECRET_ID", slack_secret_id.map(str::to_owned).unwrap_or(secret_arn)),
        ("JANITOR_SLACK_CHANNEL", "#cloud-janitor".to_owned()),
    ]
    .into_iter()
    .collect();
    let local = [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", crate::HOME_REGION.to_owned()),
        ("JANITOR_POLICY_FILE", policy.display().to_string()),
        ("JANITOR_SLACK_API_URL", slack.api_url()),
        ("JANITOR_SLACK_RESPONSE_URL_PREFIX", slack.base_url.clone()),
    ];
    LocalStateMachine::new(work, &values, &local)
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
