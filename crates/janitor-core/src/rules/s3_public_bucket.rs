//! A bucket public through its policy or ACL, not neutralised by Block Public Access.

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;
use crate::s3_public;

pub type Config = super::Switch;

pub struct PublicBucket;
pub const RULE: PublicBucket = PublicBucket;

impl Rule for PublicBucket {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::S3Bucket
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "S3 bucket",
            violating_when: "public via policy or ACL, not neutralised by bucket- or account-level Block Public Access",
            action: "turn on all four BPA settings",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &[
            "s3:ListAllMyBuckets",
            "s3:GetBucketLocation",
            "s3:GetBucketPolicy",
            "s3:GetBucketAcl",
            "s3:GetBucketPublicAccessBlock",
            "s3:GetAccountPublicAccessBlock",
            "s3:GetBucketTagging",
            "s3:PutBucketPublicAccessBlock",
        ]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let Resource::S3Bucket(bucket, account_block) = resource else { return Judgement::Complies };
        match s3_public::assess(bucket, account_block) {
            Ok(Some(exposure)) => Judgement::Violates {
                reason: format!("publicly accessible via {}", exposure.via.join(", ")),
                evidence: json!({ "via": exposure.via, "bucket_block": bucket.block.map(|b| b.all_on()) }),
                action: Action::BlockPublicAccess,
            },
            Ok(None) => Judgement::Complies,
            Err(message) => Judgement::Unreadable(message),
        }
    }
}
