//! Seed 001: a running instance missing any of the required tags.

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
    #[serde(default = "default_action")]
    pub action: MissingTagsAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingTagsAction {
    StopInstance,
    NotifyOnly,
}

impl From<MissingTagsAction> for Action {
    fn from(value: MissingTagsAction) -> Action {
        match value {
            MissingTagsAction::StopInstance => Action::StopInstance,
            MissingTagsAction::NotifyOnly => Action::NotifyOnly,
        }
    }
}

fn default_action() -> MissingTagsAction {
    MissingTagsAction::StopInstance
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        validate_tag_list(table, &self.tags)
    }
}

pub struct MissingTags;
pub const RULE: MissingTags = MissingTags;

impl Rule for MissingTags {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "running EC2",
            violating_when: "missing any of `Owner`, `CostCenter`, `Project`",
            action: "stop (or `notify-only`)",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances", "ec2:StopInstances"]
    }
    fn judge(&self, policy: &Policy, resource: Resource<'_>) -> Judgement {
        let (Resource::Ec2Instance(instance), Some(config)) = (resource, &policy.rules.ec2_missing_tags) else {
            return Judgement::Complies;
        };
        if instance.state != "running" {
            return Judgement::Complies;
        }
        let missing = missing_tags(&instance.tags, &config.tags);
        if missing.is_empty() {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("missing required tags: {}", missing.join(", ")),
            evidence: json!({ "missing_tags": missing }),
            action: config.action.into(),
        }
    }
}
