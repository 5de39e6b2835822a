//! AWS adapters of the core's ports, all through the AWS SDK for Rust.

pub mod clients;
#[cfg(feature = "metrics")]
pub mod cloudwatch;
pub mod dynamo;
#[cfg(feature = "inventory")]
pub mod inventory;
#[cfg(feature = "remediator")]
pub mod remediator;
#[cfg(feature = "run-store")]
pub mod s3_run_store;
#[cfg(feature = "alerts")]
pub mod sns;
mod wiring;

pub use clients::{ApiStats, AwsClients, SetupError};
#[cfg(feature = "metrics")]
pub use cloudwatch::CloudWatchMetrics;
pub use dynamo::{DynamoAuditLog, DynamoLockStore, DynamoSnoozeStore, TableNames};
#[cfg(feature = "inventory")]
pub use inventory::AwsInventory;
#[cfg(feature = "remediator")]
pub use remediator::AwsRemediator;
#[cfg(feature = "run-store")]
pub use s3_run_store::S3RunStore;
#[cfg(feature = "alerts")]
pub use sns::SnsAlerts;
#[cfg(feature = "all-adapters")]
pub use wiring::deps_with;
#[cfg(feature = "slack-secret")]
pub use wiring::slack_secret;
pub use wiring::{Unwired, Wiring};

/// Converts an SDK timestamp; out-of-range values become `None` rather than a panic.
#[cfg(any(feature = "inventory", feature = "metrics"))]
pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[cfg(feature = "metrics")]
pub(crate) fn to_smithy(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}
