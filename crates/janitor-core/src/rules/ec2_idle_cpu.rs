//! Idle EC2: every daily CPU average of the look-back window at or below the threshold.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, MetricSpec, Resource, Rule, RuleConfig, RuleDoc, default_lookback_days, validate_window, yes};
use crate::metrics::{IdleVerdict, coverage, round2};
use crate::model::{Action, ResourceKind};
use crate::policy::{IdleWindow, Policy};
use crate::ports::{MetricSeries, MetricWindow, Statistic};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_cpu_threshold")]
    pub cpu_threshold_percent: f64,
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    /// Younger instances are never idle; defaults to the look-back window.
    pub min_age_days: Option<u32>,
}

fn default_cpu_threshold() -> f64 {
    5.0
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
        let t = self.cpu_threshold_percent;
        if !(0.0..=100.0).contains(&t) || t.is_nan() {
            return Err(format!("{table}.cpu_threshold_percent: must be between 0 and 100, got {t}"));
        }
        validate_window(table, self.window())
    }
}

pub struct IdleCpu;
pub const RULE: IdleCpu = IdleCpu;

impl Rule for IdleCpu {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Ec2Instance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "running EC2",
            violating_when: "every daily CPU average of the last 7 days ≤ 5 %",
            action: "stop",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeInstances", "cloudwatch:GetMetricData", "ec2:StopInstances"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::Ec2Instance(instance) if instance.state == "running" => Judgement::NeedsMetrics { notify_only: None },
            _ => Judgement::Complies,
        }
    }
    fn metric(&self, policy: &Policy) -> Option<MetricSpec> {
        let config = policy.rules.ec2_idle_cpu.as_ref()?;
        Some(MetricSpec {
            namespace: "AWS/EC2",
            metric: "CPUUtilization",
            dimension: "InstanceId",
            stat: Statistic::Average,
            window: config.window(),
        })
    }
    fn idle_action(&self) -> Action {
        Action::StopInstance
    }
    fn judge_series(&self, policy: &Policy, series: &MetricSeries, window: &MetricWindow) -> IdleVerdict {
        let threshold = policy.rules.ec2_idle_cpu.as_ref().map(|c| c.cpu_threshold_percent).unwrap_or_default();
        judge_cpu(series, window, threshold)
    }
}

pub fn judge_cpu(series: &MetricSeries, window: &MetricWindow, threshold: f64) -> IdleVerdict {
    let daily = match coverage(series, window) {
        Ok(d) => d,
        Err(verdict) => return verdict,
    };
    let max = daily.iter().copied().fold(f64::MIN, f64::max);
    let evidence = json!({
        "daily_average_cpu": daily.iter().map(|v| round2(*v)).collect::<Vec<_>>(),
        "max_daily_average_cpu": round2(max),
        "threshold_percent": threshold,
        "days": window.days,
    });
    if max <= threshold {
        IdleVerdict::Idle {
            reason: format!(
                "daily average CPU at most {max:.2}% on each of the last {} days (threshold {threshold}%)",
                window.days
            ),
            evidence,
        }
    } else {
        IdleVerdict::NotIdle {
            reason: format!("daily average CPU reached {max:.2}% (threshold {threshold}%)"),
            evidence,
        }
    }
}
