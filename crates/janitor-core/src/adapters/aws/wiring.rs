//! Which adapter stands behind each port. A Lambda's `main` names the adapters its steps use;
//! each is behind the feature of the same name, so a function links only the SDK clients it
//! calls. A port left out answers every call with an error naming it (never a silent no-op),
//! and the IAM-enforced state-machine test runs the real binaries, so a step that needs a
//! port its function does not wire fails there, not in AWS.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AwsClients, DynamoAuditLog, DynamoLockStore, DynamoSnoozeStore, TableNames};
use crate::Deps;
use crate::error::{JanitorError, Result};
use crate::model::{Finding, ResourceKey, Scope, Tags};
use crate::policy::Policy;
use crate::ports::*;
use crate::slack::{NoChat, SlackSettings};

pub struct Wiring {
    clients: AwsClients,
    deps: Deps,
}

impl Wiring {
    /// The Lambda's start: policy and table names from the environment, clients from the
    /// default credential chain. The janitor's own tables (DynamoDB) every function has.
    pub async fn from_env() -> Result<Wiring> {
        let policy = Policy::from_env()?;
        let tables = TableNames::from_env()?;
        Ok(Wiring::new(policy, AwsClients::load(None, None).await, &tables))
    }

    pub fn new(policy: Policy, clients: AwsClients, tables: &TableNames) -> Wiring {
        let dynamodb = clients.dynamodb();
        let deps = Deps {
            prices: Arc::new(crate::prices::PriceBook::bundled(&policy)),
            policy,
            inventory: Arc::new(Unwired::port("inventory")),
            directory: Arc::new(Unwired::port("account directory")),
            metrics: Arc::new(Unwired::port("metric source")),
            snoozes: Arc::new(DynamoSnoozeStore::new(dynamodb.clone(), &tables.snooze)),
            locks: Arc::new(DynamoLockStore::new(dynamodb.clone(), &tables.lock)),
            audit: Arc::new(DynamoAuditLog::new(dynamodb, &tables.audit)),
            remediator: Arc::new(Unwired::port("remediator")),
            alerts: Arc::new(Unwired::port("alert sink")),
            chat: Arc::new(NoChat),
            slack: SlackSettings::from_env(),
            slack_secret: None,
            clock: Arc::new(SystemClock),
            runs: Arc::new(Unwired::port("run store")),
            reports: Arc::new(Unwired::port("report store")),
            anchor_copies: None,
            delivery: Default::default(),
        };
        Wiring { clients, deps }
    }

    /// Listings and re-reads of every kind (EC2, RDS, IAM, S3).
    #[cfg(feature = "inventory")]
    pub fn inventory(mut self) -> Wiring {
        self.deps.inventory = Arc::new(super::AwsInventory::new(self.clients.clone()));
        self
    }

    /// AWS Organizations, from the janitor's own account.
    #[cfg(feature = "directory")]
    pub fn directory(mut self) -> Wiring {
        self.deps.directory = Arc::new(super::OrganizationsDirectory::new(self.clients.clone()));
        self
    }

    #[cfg(feature = "remediator")]
    pub fn remediator(mut self) -> Wiring {
        let remediator = super::AwsRemediator::new(self.clients.clone(), &self.deps.policy.protect_tag);
        self.deps.remediator = Arc::new(remediator);
        self
    }

    /// The Price List Query API first, the bundled table when it cannot answer.
    #[cfg(feature = "pricing")]
    pub fn pricing(mut self) -> Wiring {
        let api = Arc::new(super::AwsPriceList::new(self.clients.clone()));
        self.deps.prices = Arc::new(crate::prices::PriceBook::with_api(&self.deps.policy, api));
        self
    }

    /// CloudWatch.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self) -> Wiring {
        self.deps.metrics = Arc::new(super::CloudWatchMetrics::new(self.clients.clone()));
        self
    }

    /// SNS, to the topic in `JANITOR_ALERT_TOPIC_ARN`.
    #[cfg(feature = "alerts")]
    pub fn alerts(mut self) -> Wiring {
        self.deps.alerts = Arc::new(super::SnsAlerts::new(&self.clients, env_value("JANITOR_ALERT_TOPIC_ARN")));
        self
    }

    /// SNS, to the security topic in `JANITOR_SECURITY_TOPIC_ARN` (onboard's alerts).
    #[cfg(feature = "alerts")]
    pub fn security_alerts(mut self) -> Wiring {
        self.deps.alerts = Arc::new(super::SnsAlerts::new(&self.clients, env_value("JANITOR_SECURITY_TOPIC_ARN")));
        self
    }

    /// The run's documents in the S3 bucket `JANITOR_RUN_BUCKET`; without it every use says so.
    #[cfg(feature = "run-store")]
    pub async fn run_store(mut self) -> Result<Wiring> {
        self.deps.runs = match env_value("JANITOR_RUN_BUCKET") {
            Some(bucket) => Arc::new(super::S3RunStore::new(self.home_s3().await?, &bucket)),
            None => Arc::new(Unwired { port: "run store", why: "JANITOR_RUN_BUCKET is not set" }),
        };
        Ok(self)
    }

    /// S3 in the janitor's own account, for its buckets.
    #[cfg(feature = "run-store")]
    async fn home_s3(&self) -> Result<aws_sdk_s3::Client> {
        let home = self.clients.home_account().await?;
        self.clients.s3(&home, crate::model::GLOBAL_REGION).await
    }

    /// Report pages in the S3 bucket `JANITOR_REPORTS_BUCKET`; without it every use says so.
    #[cfg(feature = "run-store")]
    pub async fn reports(mut self) -> Result<Wiring> {
        self.deps.reports = match env_value("JANITOR_REPORTS_BUCKET") {
            Some(bucket) => Arc::new(super::S3ReportStore::new(self.home_s3().await?, &bucket)),
            None => Arc::new(Unwired { port: "report store", why: "JANITOR_REPORTS_BUCKET is not set" }),
        };
        Ok(self)
    }

    /// Copies of the audit anchors in the Object Lock bucket `JANITOR_ANCHOR_BUCKET`, when
    /// the stack has one (an empty value: none).
    #[cfg(feature = "run-store")]
    pub async fn anchor_copies(mut self) -> Result<Wiring> {
        if let Some(bucket) = env_value("JANITOR_ANCHOR_BUCKET") {
            self.deps.anchor_copies = Some(Arc::new(super::S3AnchorCopies::new(self.home_s3().await?, &bucket)));
        }
        Ok(self)
    }

    /// Slack, with the bot token and signing secret of the Secrets Manager secret
    /// `JANITOR_SLACK_SECRET_ID`, read once per cold start; without it, no chat.
    #[cfg(feature = "slack-secret")]
    pub async fn slack(mut self) -> Result<Wiring> {
        if let Some(secret_id) = env_value("JANITOR_SLACK_SECRET_ID") {
            let secret = slack_secret(&self.clients, &secret_id).await?;
            let chat = crate::slack::SlackChat::new(self.deps.slack.clone(), secret.bot_token.clone())?;
            self.deps.chat = Arc::new(chat);
            self.deps.slack_secret = Some(secret);
        }
        Ok(self)
    }

    /// Microsoft Teams, with the webhooks of the Secrets Manager secret
    /// `JANITOR_TEAMS_SECRET_ID` (read once per cold start); without it, routes to Teams fail
    /// as NOTIFY_FAILED, naming the missing setting.
    #[cfg(feature = "teams")]
    pub async fn teams(mut self) -> Result<Wiring> {
        if let Some(secret_id) = env_value("JANITOR_TEAMS_SECRET_ID") {
            let text = secret_string(&self.clients, &secret_id).await?;
            let webhooks = crate::teams::TeamsWebhooks::new(crate::teams::TeamsSecret::parse(&text)?)?;
            self.deps.delivery.teams = Arc::new(webhooks);
        }
        Ok(self)
    }

    /// Email through the SNS topic `JANITOR_EMAIL_TOPIC_ARN`, each owner's subscription
    /// filtered on the `owner` attribute.
    #[cfg(feature = "email")]
    pub fn email(mut self) -> Wiring {
        if let Some(topic) = env_value("JANITOR_EMAIL_TOPIC_ARN") {
            self.deps.delivery.email = Arc::new(super::SnsEmail::new(&self.clients, topic));
        }
        self
    }

    /// Signed snooze links to `JANITOR_SNOOZE_LINK_URL`, made with the KMS HMAC key
    /// `JANITOR_LINK_KEY_ID`; without both, Teams and email messages carry no link.
    #[cfg(feature = "links")]
    pub fn links(mut self) -> Wiring {
        if let (Some(url), Some(key)) = (env_value("JANITOR_SNOOZE_LINK_URL"), env_value("JANITOR_LINK_KEY_ID")) {
            let key = Arc::new(super::KmsLinkKey::new(&self.clients, key));
            self.deps.delivery.links = Some(crate::delivery::SnoozeLinks { url, key });
        }
        self
    }

    /// Checks of snooze links with the KMS HMAC key `JANITOR_LINK_KEY_ID` (the snooze
    /// function, which serves the links' URL and so cannot be told it by the stack).
    #[cfg(feature = "links")]
    pub fn link_checks(mut self) -> Wiring {
        if let Some(key) = env_value("JANITOR_LINK_KEY_ID") {
            let key = Arc::new(super::KmsLinkKey::new(&self.clients, key));
            self.deps.delivery.links = Some(crate::delivery::SnoozeLinks { url: String::new(), key });
        }
        self
    }

    pub fn build(self) -> Deps {
        self.deps
    }
}

/// Every adapter but chat and the run store: the command line and the tests.
#[cfg(feature = "all-adapters")]
pub fn deps_with(policy: Policy, clients: AwsClients, tables: &TableNames) -> Deps {
    Wiring::new(policy, clients, tables)
        .inventory()
        .directory()
        .remediator()
        .metrics()
        .alerts()
        .pricing()
        .email()
        .links()
        .build()
}

/// Reads the Slack secret (JSON with `bot_token` and `signing_secret`).
#[cfg(feature = "slack-secret")]
pub async fn slack_secret(clients: &AwsClients, secret_id: &str) -> Result<crate::slack::SlackSecret> {
    crate::slack::SlackSecret::parse(&secret_string(clients, secret_id).await?)
}

#[cfg(feature = "secretsmanager")]
async fn secret_string(clients: &AwsClients, secret_id: &str) -> Result<String> {
    let out = clients
        .secrets_manager()
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| JanitorError::from_sdk("secretsmanager", "GetSecretValue", e))?;
    Ok(out.secret_string().unwrap_or_default().to_owned())
}

/// An environment variable that is set and not empty.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A port this function does not have: every call is a configuration error naming it and why.
pub struct Unwired {
    pub port: &'static str,
    pub why: &'static str,
}

impl Unwired {
    /// A port the function's `main` does not wire.
    pub fn port(port: &'static str) -> Unwired {
        Unwired { port, why: "its main does not wire one" }
    }

    fn refuse(&self) -> JanitorError {
        JanitorError::Config(format!("this function has no {}: {}", self.port, self.why))
    }

    fn refuse_document(&self, path: &str) -> JanitorError {
        JanitorError::Config(format!("the run document {path} has nowhere to live: no {}: {}", self.port, self.why))
    }
}

#[async_trait]
impl Inventory for Unwired {
    async fn home_account(&self) -> Result<String> {
        Err(self.refuse())
    }
    async fn enabled_regions(&self, _: &str) -> Result<Vec<String>> {
        Err(self.refuse())
    }
    async fn ec2_instances(&self, _: &Scope) -> Result<Vec<Ec2Instance>> {
        Err(self.refuse())
    }
    async fn rds_instances(&self, _: &Scope) -> Result<Vec<RdsInstance>> {
        Err(self.refuse())
    }
    async fn elastic_ips(&self, _: &Scope) -> Result<Vec<ElasticIp>> {
        Err(self.refuse())
    }
    async fn ebs_volumes(&self, _: &Scope) -> Result<Vec<EbsVolume>> {
        Err(self.refuse())
    }
    async fn security_groups(&self, _: &Scope) -> Result<Vec<SecurityGroup>> {
        Err(self.refuse())
    }
    async fn ebs_snapshots(&self, _: &Scope) -> Result<Vec<EbsSnapshot>> {
        Err(self.refuse())
    }
    async fn rds_snapshots(&self, _: &Scope) -> Result<Vec<RdsSnapshot>> {
        Err(self.refuse())
    }
    async fn lambda_functions(&self, _: &Scope) -> Result<Vec<LambdaFunction>> {
        Err(self.refuse())
    }
    async fn lambda_tags(&self, _: &Scope, _: &str) -> Result<Tags> {
        Err(self.refuse())
    }
    async fn provisioned_products(&self, _: &Scope) -> Result<Vec<ProvisionedProduct>> {
        Err(self.refuse())
    }
    async fn iam_credentials(&self, _: &str) -> Result<Vec<IamCredential>> {
        Err(self.refuse())
    }
    async fn iam_user_tags(&self, _: &str, _: &str) -> Result<Tags> {
        Err(self.refuse())
    }
    async fn account_public_access_block(&self, _: &str) -> Result<Option<PublicAccessBlock>> {
        Err(self.refuse())
    }
    async fn s3_buckets(&self, _: &str) -> Result<Vec<BucketRead>> {
        Err(self.refuse())
    }
    async fn s3_bucket_tags(&self, _: &str, _: &S3Bucket) -> Result<Tags> {
        Err(self.refuse())
    }
    async fn exists(&self, _: &ResourceKey) -> Result<bool> {
        Err(self.refuse())
    }
}

#[async_trait]
impl AccountDirectory for Unwired {
    async fn organization_accounts(&self) -> Result<Option<Vec<OrgAccount>>> {
        Err(self.refuse())
    }
}

#[async_trait]
impl MetricSource for Unwired {
    async fn daily_series(
        &self,
        _: &Scope,
        _: &[MetricQuery],
        _: &MetricWindow,
    ) -> Result<HashMap<String, MetricSeries>> {
        Err(self.refuse())
    }
}

#[async_trait]
impl Remediator for Unwired {
    async fn apply(&self, _: &Finding, _: DateTime<Utc>) -> Result<ActionOutcome> {
        Err(self.refuse())
    }
}

#[async_trait]
impl AlertSink for Unwired {
    async fn publish(&self, _: &str, _: &serde_json::Value) -> Result<()> {
        Err(self.refuse())
    }
}

#[async_trait]
impl ReportStore for Unwired {
    async fn publish(&self, run_id: &str, _: Vec<u8>) -> Result<PublishedReport> {
        Err(JanitorError::Config(format!("run {run_id}'s report has nowhere to go: no {}: {}", self.port, self.why)))
    }
}

#[async_trait]
impl RunStore for Unwired {
    async fn put(&self, path: &str, _: Vec<u8>) -> Result<()> {
        Err(self.refuse_document(path))
    }
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Err(self.refuse_document(path))
    }
}
