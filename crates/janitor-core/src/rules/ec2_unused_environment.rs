//! Seeds 003/004: a running instance tagged as a test or unused leftover.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, yes};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_tag")]
    pub tag: String,
    pub values: Vec<String>,
}

fn default_tag() -> String {
    "Environment".into()
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        if self.tag.trim().is_empty() {
            return Err(format!("{table}.tag: must not be empty"));
        }
        if self.values.is_empty() || self.values.iter().any(|v| v.trim().is_empty()) {
            return Err(format!("{table}.values: needs at least one non-empty value"));
        }
        Ok(())
    }
}

pub struct UnusedEnvironment;
pub const RULE: UnusedEnvironment = UnusedEnvironment;

impl Rule for UnusedEnvironment {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc { resource: "running EC2", violating_when: "tagged `Environment` = `testing` / `unused`", action: "stop" }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances", "ec2:StopInstances"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::Ec2Instance(instance), Some(config)) = (resource, &policy.rules.ec2_unused_environment) else {
            return Judgement::Complies;
        };
        if instance.state != "running" {
            return Judgement::Complies;
        }
        match instance.tags.get(&config.tag) {
            Some(value) if config.values.iter().any(|v| v.eq_ignore_ascii_case(value.trim())) => Judgement::Violates {
                reason: format!("running while tagged {}={value}", config.tag),
                evidence: json!({ "tag": config.tag, "value": value }),
                action: Action::StopInstance,
            },
            _ => Judgement::Complies,
        }
    }
}
