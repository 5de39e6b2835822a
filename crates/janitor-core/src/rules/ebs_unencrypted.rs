//! Seeds 002/004 (security): an EBS volume whose data is not encrypted at rest. Encryption
//! cannot be turned on in place (it takes a copy), so the janitor only tells.

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

pub type Config = super::Switch;

pub struct EbsUnencrypted;
pub const RULE: EbsUnencrypted = EbsUnencrypted;

impl Rule for EbsUnencrypted {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::EbsVolume
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc { resource: "EBS volume", violating_when: "not encrypted at rest", action: "`notify-only`" }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeVolumes"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::EbsVolume(volume) if !volume.encrypted => Judgement::Violates {
                reason: "volume is not encrypted at rest".into(),
                evidence: json!({ "encrypted": false, "attached_to": volume.attached_to }),
                action: Action::NotifyOnly,
            },
            _ => Judgement::Complies,
        }
    }
}
