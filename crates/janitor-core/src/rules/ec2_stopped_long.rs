//! Seed 004 (waste): an instance stopped for weeks still pays for its volumes and addresses,
//! and is usually forgotten. The stop time comes from EC2's state transition reason; an
//! instance whose reason carries no time is never judged old.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, validate_days, whole_days_since, yes};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Flagged once stopped for at least this many days.
    #[serde(default = "default_days")]
    pub stopped_days: u32,
}

fn default_days() -> u32 {
    30
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        validate_days(table, "stopped_days", self.stopped_days)
    }
}

pub struct Ec2StoppedLong;
pub const RULE: Ec2StoppedLong = Ec2StoppedLong;

impl Rule for Ec2StoppedLong {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "stopped EC2",
            violating_when: "stopped for `stopped_days` (30) days or more, by EC2's state transition time",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances"]
    }
    fn judge(&self, policy: &Policy, now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::Ec2Instance(instance), Some(config)) = (resource, &policy.rules.ec2_stopped_long) else {
            return Judgement::Complies;
        };
        let Some(stopped_at) = instance.stopped_at.filter(|_| instance.state == "stopped") else {
            return Judgement::Complies;
        };
        let days = whole_days_since(now, stopped_at);
        if days < i64::from(config.stopped_days) {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("stopped for {days} days (since {})", stopped_at.format("%Y-%m-%d")),
            evidence: json!({ "stopped_at": stopped_at, "days_stopped": days, "stopped_days": config.stopped_days }),
            action: Action::NotifyOnly,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::ports::Ec2Instance;

    #[test]
    fn stopped_long_is_judged_from_the_stop_time_not_the_launch_time() {
        let policy = Policy::builtin().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let instance = |state: &str, stopped_days_ago: Option<i64>| Ec2Instance {
            id: "i-1".into(),
            state: state.into(),
            instance_type: "t3.micro".into(),
            price_exception: None,
            launched_at: Some(now - Duration::days(400)),
            stopped_at: stopped_days_ago.map(|d| now - Duration::days(d)),
            tags: Default::default(),
        };
        let judge = |i: &Ec2Instance| RULE.judge(&policy, now, Resource::Ec2Instance(i));
        match judge(&instance("stopped", Some(30))) {
            Judgement::Violates { action, reason, .. } => {
                assert_eq!(action, Action::NotifyOnly);
                assert!(reason.contains("30 days"), "{reason}");
            }
            other => panic!("stopped 30 days: {other:?}"),
        }
        assert_eq!(judge(&instance("stopped", Some(29))), Judgement::Complies, "younger than the threshold");
        assert_eq!(judge(&instance("stopped", None)), Judgement::Complies, "an unknown stop time is never old");
        assert_eq!(judge(&instance("running", Some(90))), Judgement::Complies, "running again");
        assert_eq!(judge(&instance("stopped", Some(-3))), Judgement::Complies, "a stop time in the future");
    }
}
