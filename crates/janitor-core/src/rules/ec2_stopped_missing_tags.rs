//! Seed 001: tag compliance holds for stopped instances too. A stopped instance missing a
//! required tag costs its volumes and hides its owner; it is reported, never acted on.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tags::{TagRequirement, tag_problems};
use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, yes};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Keys, or `{ key, values, pattern }` tables (see `rules::tags`).
    pub tags: Vec<TagRequirement>,
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        super::tags::validate(table, &self.tags)
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
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::Ec2Instance(instance), Some(config)) = (resource, &policy.rules.ec2_stopped_missing_tags) else {
            return Judgement::Complies;
        };
        if instance.state != "stopped" {
            return Judgement::Complies;
        }
        let problems = tag_problems(&instance.tags, &config.tags);
        if problems.is_empty() {
            return Judgement::Complies;
        }
        let mut evidence = problems.evidence();
        evidence["state"] = json!(instance.state);
        Judgement::Violates { reason: format!("stopped, {}", problems.describe()), evidence, action: Action::NotifyOnly }
    }
}
