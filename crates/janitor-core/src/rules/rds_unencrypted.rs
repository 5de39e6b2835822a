//! Seeds 002/004 (security): an RDS instance whose storage is not encrypted at rest.
//! Encryption cannot be turned on in place (it takes a snapshot copy and a restore), so the
//! janitor only tells.

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

pub type Config = super::Switch;

pub struct RdsUnencrypted;
pub const RULE: RdsUnencrypted = RdsUnencrypted;

impl Rule for RdsUnencrypted {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::RdsInstance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc { resource: "RDS", violating_when: "storage not encrypted at rest", action: "`notify-only`" }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["rds:DescribeDBInstances"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::RdsInstance(db) if !db.encrypted => Judgement::Violates {
                reason: "storage is not encrypted at rest".into(),
                evidence: json!({ "storage_encrypted": false, "status": db.status }),
                action: Action::NotifyOnly,
            },
            _ => Judgement::Complies,
        }
    }
}
