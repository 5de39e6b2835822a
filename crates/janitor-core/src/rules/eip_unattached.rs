//! An Elastic IP associated with nothing (charged by the hour all the same).

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

pub type Config = super::Switch;

pub struct EipUnattached;
pub const RULE: EipUnattached = EipUnattached;

impl Rule for EipUnattached {
    fn kind(&self) -> ResourceKind {
        ResourceKind::ElasticIp
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc { resource: "Elastic IP", violating_when: "not associated", action: "release" }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeAddresses", "ec2:ReleaseAddress"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::ElasticIp(eip) if !eip.associated => Judgement::Violates {
                reason: format!("Elastic IP {} is not associated with anything", eip.public_ip.as_deref().unwrap_or("?")),
                evidence: json!({ "public_ip": eip.public_ip }),
                action: Action::ReleaseAddress,
            },
            _ => Judgement::Complies,
        }
    }
}
