//! AWS adapters of the core's ports, all through the AWS SDK for Rust.

pub mod clients;
pub mod cloudwatch;
pub mod dynamo;
pub mod inventory;
pub mod remediator;
pub mod sns;

use std::sync::Arc;

pub use clients::{ApiStats, AwsClients};
pub use cloudwatch::CloudWatchMetrics;
pub use dynamo::{DynamoAuditLog, DynamoLockStore, DynamoSnoozeStore, TableNames};
pub use inventory::AwsInventory;
pub use remediator::AwsRemediator;
pub use sns::SnsAlerts;

use crate::Deps;
use crate::error::Result;
use crate::policy::Policy;
use crate::ports::SystemClock;

/// The Lambda wiring: policy and table names from the environment, clients from the
/// default credential chain. Built once per cold start.
pub async fn deps_from_env() -> Result<Deps> {
    let policy = Policy::from_env()?;
    let tables = TableNames::from_env()?;
    let clients = AwsClients::load(None, None).await;
    Ok(deps_with(policy, clients, &tables))
}

pub fn deps_with(policy: Policy, clients: AwsClients, tables: &TableNames) -> Deps {
    let dynamodb = clients.dynamodb();
    Deps {
        policy,
        inventory: Arc::new(AwsInventory::new(clients.clone())),
        metrics: Arc::new(CloudWatchMetrics::new(clients.clone())),
        snoozes: Arc::new(DynamoSnoozeStore::new(dynamodb.clone(), &tables.snooze)),
        locks: Arc::new(DynamoLockStore::new(dynamodb.clone(), &tables.lock)),
        audit: Arc::new(DynamoAuditLog::new(dynamodb, &tables.audit)),
        remediator: Arc::new(AwsRemediator::new(clients.clone())),
        alerts: Arc::new(SnsAlerts::new(
            &clients,
            std::env::var("JANITOR_ALERT_TOPIC_ARN").ok().filter(|t| !t.is_empty()),
        )),
        clock: Arc::new(SystemClock),
    }
}

/// Converts an SDK timestamp; out-of-range values become `None` rather than a panic.
pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub(crate) fn to_smithy(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}
