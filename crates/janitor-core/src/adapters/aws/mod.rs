//! AWS adapters of the core's ports, all through the AWS SDK for Rust.

pub mod clients;
#[cfg(feature = "metrics")]
pub mod cloudwatch;
#[cfg(any(feature = "email", feature = "links"))]
pub mod delivery;
pub mod dynamo;
#[cfg(feature = "inventory")]
pub mod inventory;
#[cfg(feature = "directory")]
pub mod organizations;
#[cfg(feature = "pricing")]
pub mod pricing;
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
#[cfg(feature = "links")]
pub use delivery::KmsLinkKey;
#[cfg(feature = "email")]
pub use delivery::SnsEmail;
pub use dynamo::{DynamoAuditLog, DynamoLockStore, DynamoSnoozeStore, TableNames};
#[cfg(feature = "inventory")]
pub use inventory::AwsInventory;
#[cfg(feature = "directory")]
pub use organizations::OrganizationsDirectory;
#[cfg(feature = "pricing")]
pub use pricing::AwsPriceList;
#[cfg(feature = "remediator")]
pub use remediator::AwsRemediator;
#[cfg(feature = "run-store")]
pub use s3_run_store::{REPORT_LINK_LIFETIME, S3AnchorCopies, S3ReportStore, S3RunStore};
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

#[cfg(feature = "ec2")]
/// An EC2 inbound permission with its IPv4 and IPv6 ranges (group and prefix-list sources
/// are not the internet, so they are left out); one without a protocol is not guessed at.
pub(crate) fn ingress_permission(p: &aws_sdk_ec2::types::IpPermission) -> Option<crate::ports::IngressPermission> {
    Some(crate::ports::IngressPermission {
        protocol: p.ip_protocol()?.to_owned(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ipv4: p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(str::to_owned)).collect(),
        ipv6: p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6().map(str::to_owned)).collect(),
    })
}

#[cfg(feature = "s3")]
/// A bucket's Block Public Access settings; an unset flag is off.
pub fn bucket_block(c: &aws_sdk_s3::types::PublicAccessBlockConfiguration) -> crate::ports::PublicAccessBlock {
    crate::ports::PublicAccessBlock {
        block_public_acls: c.block_public_acls().unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
        block_public_policy: c.block_public_policy().unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
    }
}

#[cfg(feature = "metrics")]
pub(crate) fn to_smithy(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}
