//! Seed 001: tag compliance holds for stopped instances too. A stopped instance missing a
//! required tag costs its volumes and hides its owner; it is reported, never acted on.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, missing_tags, validate_tag_list, yes};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub tags: Vec<String>,
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        validate_tag_list(table, &self.tags)
    }
}

pub struct StoppedMissingTags;
pub const RULE: StoppedMissingTags = StoppedMissingTags;

impl Rule for StoppedMissingTags {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "stopped EC2",
            violating_when: "missing any of `Owner`, `CostCenter`, `Project`",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances"]
    }
    fn judge(&self, policy: &Policy, resource: Resource<'_>) -> Judgement {
        let (Resource::Ec2Instance(instance), Some(config)) = (resource, &policy.rules.ec2_stopped_missing_tags) else {
            return Judgement::Complies;
        };
        if instance.state != "stopped" {
            return Judgement::Complies;
        }
        let missing = missing_tags(&instance.tags, &config.tags);
        if missing.is_empty() {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("stopped and missing required tags: {}", missing.join(", ")),
            evidence: json!({ "state": instance.state, "missing_tags": missing }),
            action: Action::NotifyOnly,
        }
    }
}
