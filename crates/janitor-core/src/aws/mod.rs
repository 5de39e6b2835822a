//! AWS adapters of the core's ports, all through the AWS SDK for Rust.

pub mod clients;
pub mod cloudwatch;
pub mod dynamo;
pub mod inventory;
pub mod remediator;
pub mod s3_run_store;
pub mod sns;

use std::sync::Arc;

pub use clients::{ApiStats, AwsClients, SetupError};
pub use cloudwatch::CloudWatchMetrics;
pub use dynamo::{DynamoAuditLog, DynamoLockStore, DynamoSnoozeStore, TableNames};
pub use inventory::AwsInventory;
pub use remediator::AwsRemediator;
pub use s3_run_store::S3RunStore;
pub use sns::SnsAlerts;

use crate::Deps;
use crate::error::Result;
use crate::policy::Policy;
use crate::ports::SystemClock;
use crate::slack::{NoChat, SlackChat, SlackSecret, SlackSettings};

/// The Lambda wiring: policy and table names from the environment, clients from the
/// default credential chain. Built once per cold start.
pub async fn deps_from_env() -> Result<Deps> {
    let policy = Policy::from_env()?;
    let tables = TableNames::from_env()?;
    let clients = AwsClients::load(None, None).await;
    let mut deps = deps_with(policy, clients.clone(), &tables);
    // The state machine's functions keep each scope's documents there between steps.
    if let Some(bucket) = std::env::var("JANITOR_RUN_BUCKET").ok().filter(|b| !b.is_empty()) {
        let s3 = clients.s3(&clients.home_account().await?, crate::model::GLOBAL_REGION).await?;
        deps.runs = Arc::new(S3RunStore::new(s3, &bucket));
    }
    if let Some(secret_id) = std::env::var("JANITOR_SLACK_SECRET_ID").ok().filter(|s| !s.is_empty()) {
        let secret = slack_secret(&clients, &secret_id).await?;
        deps.chat = Arc::new(SlackChat::new(deps.slack.clone(), secret.bot_token.clone())?);
        deps.slack_secret = Some(secret);
    }
    Ok(deps)
}

/// Reads the Slack secret (JSON with `bot_token` and `signing_secret`) once per cold start.
pub async fn slack_secret(clients: &AwsClients, secret_id: &str) -> Result<SlackSecret> {
    let out = clients
        .secrets_manager()
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| crate::JanitorError::from_sdk("secretsmanager", "GetSecretValue", e))?;
    SlackSecret::parse(out.secret_string().unwrap_or_default())
}

pub fn deps_with(policy: Policy, clients: AwsClients, tables: &TableNames) -> Deps {
    let dynamodb = clients.dynamodb();
    let remediator = Arc::new(AwsRemediator::new(clients.clone(), &policy.protect_tag));
    Deps {
        policy,
        inventory: Arc::new(AwsInventory::new(clients.clone())),
        metrics: Arc::new(CloudWatchMetrics::new(clients.clone())),
        snoozes: Arc::new(DynamoSnoozeStore::new(dynamodb.clone(), &tables.snooze)),
        locks: Arc::new(DynamoLockStore::new(dynamodb.clone(), &tables.lock)),
        audit: Arc::new(DynamoAuditLog::new(dynamodb, &tables.audit)),
        remediator,
        alerts: Arc::new(SnsAlerts::new(
            &clients,
            std::env::var("JANITOR_ALERT_TOPIC_ARN").ok().filter(|t| !t.is_empty()),
        )),
        chat: Arc::new(NoChat),
        slack: SlackSettings::from_env(),
        slack_secret: None,
        clock: Arc::new(SystemClock),
        // Only the state machine's functions keep documents between steps; they must say
        // where (deps_from_env), and nothing else may quietly keep them in memory.
        runs: Arc::new(NoRunStore),
    }
}

/// The run store of a process that was given no run bucket: every use says so.
pub struct NoRunStore;

#[async_trait::async_trait]
impl crate::ports::RunStore for NoRunStore {
    async fn put(&self, path: &str, _body: Vec<u8>) -> Result<()> {
        Err(no_run_bucket(path))
    }
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Err(no_run_bucket(path))
    }
}

fn no_run_bucket(path: &str) -> crate::JanitorError {
    crate::JanitorError::Config(format!(
        "JANITOR_RUN_BUCKET is not set, so the run document {path} has nowhere to live"
    ))
}

/// Converts an SDK timestamp; out-of-range values become `None` rather than a panic.
pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub(crate) fn to_smithy(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}
