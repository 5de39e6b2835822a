//! Seed 002 (misconfiguration): a running instance with no CloudWatch data in the last day.
//! EC2 publishes `CPUUtilization` every five minutes for every running instance, free, so a
//! whole day without a datapoint means its monitoring has stopped (the instance is impaired,
//! or its metrics are not reaching CloudWatch) and nothing watching it would notice. Reported
//! only. The day is judged from the instance's last start (EC2's launch time moves with each
//! start), so an instance started today after a stopped week is not "missing" anything.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, MetricSpec, Resource, Rule, RuleConfig, RuleDoc, validate_window, yes};
use crate::metrics::IdleVerdict;
use crate::model::ResourceKind;
use crate::policy::{IdleWindow, Policy};
use crate::ports::{MetricSeries, MetricWindow, Statistic};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whole UTC days that must each hold no datapoint at all.
    #[serde(default = "default_lookback")]
    pub lookback_days: u32,
    /// Instances started more recently are not judged; defaults to the look-back window.
    pub min_age_days: Option<u32>,
}

fn default_lookback() -> u32 {
    1
}

impl Config {
    pub fn window(&self) -> IdleWindow {
        IdleWindow::new(self.lookback_days, self.min_age_days)
    }
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        validate_window(table, self.window())
    }
}

pub struct Ec2MissingMonitoring;
pub const RULE: Ec2MissingMonitoring = Ec2MissingMonitoring;

impl Rule for Ec2MissingMonitoring {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "running EC2",
            violating_when: "no `CPUUtilization` datapoint in the last `lookback_days` (1) whole day",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances", "cloudwatch:GetMetricData"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::Ec2Instance(instance) if instance.state == "running" => Judgement::NeedsMetrics { notify_only: None },
            _ => Judgement::Complies,
        }
    }
    fn metric(&self, policy: &Policy) -> Option<MetricSpec> {
        let config = policy.rules.ec2_missing_monitoring.as_ref()?;
        Some(MetricSpec {
            namespace: "AWS/EC2",
            metric: "CPUUtilization",
            dimension: "InstanceId",
            stat: Statistic::Average,
            window: config.window(),
        })
    }
    fn judge_series(&self, _policy: &Policy, series: &MetricSeries, window: &MetricWindow) -> IdleVerdict {
        judge_monitoring(series, window)
    }
}

/// Missing when not one datapoint falls inside the window.
pub fn judge_monitoring(series: &MetricSeries, window: &MetricWindow) -> IdleVerdict {
    let inside = series.iter().filter(|(at, _)| *at >= window.start && *at < window.end).count();
    let evidence = json!({
        "metric": "AWS/EC2 CPUUtilization",
        "from": window.start,
        "to": window.end,
        "datapoints": inside,
    });
    if inside == 0 {
        IdleVerdict::Idle {
            reason: format!(
                "no CloudWatch data (CPUUtilization) in the last {} day{}: its monitoring has stopped",
                window.days,
                if window.days == 1 { "" } else { "s" }
            ),
            evidence,
        }
    } else {
        IdleVerdict::NotIdle { reason: format!("{inside} daily CPUUtilization datapoint(s) in the window"), evidence }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn one_datapoint_in_the_window_is_monitoring_and_none_is_not() {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let window = MetricWindow { start, end: start + chrono::Duration::days(1), days: 1 };
        assert!(matches!(judge_monitoring(&vec![], &window), IdleVerdict::Idle { .. }));
        let before = vec![(start - chrono::Duration::days(1), 3.0)];
        assert!(matches!(judge_monitoring(&before, &window), IdleVerdict::Idle { .. }), "outside the window");
        let inside = vec![(start, 0.0)];
        assert!(matches!(judge_monitoring(&inside, &window), IdleVerdict::NotIdle { .. }), "a zero is still data");
    }
}
