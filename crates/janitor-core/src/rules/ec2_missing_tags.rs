//! Seed 001: a running instance missing any of the required tags.

use serde::{Deserialize, Serialize};

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
        super::tags::validate(table, &self.tags)
    }
}

pub struct MissingTags;
pub const RULE: MissingTags = MissingTags;

impl Rule for MissingTags {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "running EC2",
            violating_when: "missing any of `Owner`, `CostCenter`, `Project`",
            action: "stop (or `notify-only`); a value off its allowed list or pattern: notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances", "ec2:StopInstances"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::Ec2Instance(instance), Some(config)) = (resource, &policy.rules.ec2_missing_tags) else {
            return Judgement::Complies;
        };
        if instance.state != "running" {
            return Judgement::Complies;
        }
        let problems = tag_problems(&instance.tags, &config.tags);
        if problems.is_empty() {
            return Judgement::Complies;
        }
        // A value off the list may be a typo in the policy as easily as on the instance: only
        // a missing tag takes the rule's action, a wrong value is reported.
        let action = if problems.missing.is_empty() { Action::NotifyOnly } else { config.action.into() };
        Judgement::Violates { reason: problems.describe(), evidence: problems.evidence(), action }
    }
}
