//! Seed 004 (waste): a bucket with nothing in it (no object, no version, no delete marker),
//! created long enough ago that it is not waiting for its first upload. Reported, never
//! deleted: a bucket name, once given up, can be taken by anyone.

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc, whole_days_since};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

/// Flagged once created 30 days ago and still empty.
pub type Config = super::OlderThan<30>;

pub struct S3EmptyBucket;
pub const RULE: S3EmptyBucket = S3EmptyBucket;

impl Rule for S3EmptyBucket {
    fn kind(&self) -> ResourceKind {
        ResourceKind::S3Bucket
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "S3 bucket",
            violating_when: "no object, version or delete marker, created `older_than_days` (30) days ago or more",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["s3:ListAllMyBuckets", "s3:ListBucketVersions"]
    }
    fn judge(&self, policy: &Policy, now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::S3Bucket(bucket, _), Some(config)) = (resource, &policy.rules.s3_empty_bucket) else {
            return Judgement::Complies;
        };
        // Not read, or no creation date: never judged empty-and-old.
        let (Some(true), Some(created)) = (bucket.empty, bucket.created_at) else { return Judgement::Complies };
        let days = whole_days_since(now, created);
        if days < i64::from(config.older_than_days) {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("empty since it was created {days} days ago ({})", created.format("%Y-%m-%d")),
            evidence: json!({ "created_at": created, "age_days": days, "older_than_days": config.older_than_days }),
            action: Action::NotifyOnly,
        }
    }
}
