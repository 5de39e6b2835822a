//! Seed 004 (waste): a Lambda function invoked fewer than N times in the look-back window
//! (30 days). Lambda publishes no `Invocations` datapoint for a day without one, so a
//! missing day counts as zero. Reported, never deleted: its code and configuration may be
//! the only copy.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, MetricSpec, Resource, Rule, RuleConfig, RuleDoc, validate_window, yes};
use crate::metrics::IdleVerdict;
use crate::model::{Action, ResourceKind};
use crate::policy::{IdleWindow, Policy};
use crate::ports::{MetricSeries, MetricWindow, Statistic};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fewer invocations than this in the window is unused (`1`: none at all).
    #[serde(default = "default_min_invocations")]
    pub min_invocations: u64,
    #[serde(default = "default_lookback")]
    pub lookback_days: u32,
    /// Functions changed more recently are never judged; defaults to the look-back window.
    pub min_age_days: Option<u32>,
}

fn default_min_invocations() -> u64 {
    1
}

fn default_lookback() -> u32 {
    30
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
        if self.min_invocations == 0 {
            return Err(format!("{table}.min_invocations: at least 1 (fewer than 0 invocations never happens)"));
        }
        validate_window(table, self.window())
    }
}

pub struct LambdaUnused;
pub const RULE: LambdaUnused = LambdaUnused;

impl Rule for LambdaUnused {
    fn kind(&self) -> ResourceKind {
        ResourceKind::LambdaFunction
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "Lambda function",
            violating_when: "fewer than `min_invocations` (1) `Invocations` in the last 30 days",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["lambda:ListFunctions", "lambda:ListTags", "cloudwatch:GetMetricData"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::LambdaFunction(_) => Judgement::NeedsMetrics { notify_only: None },
            _ => Judgement::Complies,
        }
    }
    fn metric(&self, policy: &Policy) -> Option<MetricSpec> {
        let config = policy.rules.lambda_unused.as_ref()?;
        Some(MetricSpec {
            namespace: "AWS/Lambda",
            metric: "Invocations",
            dimension: "FunctionName",
            stat: Statistic::Sum,
            window: config.window(),
        })
    }
    fn idle_action(&self) -> Action {
        Action::NotifyOnly
    }
    fn judge_series(&self, policy: &Policy, series: &MetricSeries, window: &MetricWindow) -> IdleVerdict {
        let min = policy.rules.lambda_unused.as_ref().map_or(default_min_invocations(), |c| c.min_invocations);
        judge_invocations(series, window, min)
    }
}

pub fn judge_invocations(series: &MetricSeries, window: &MetricWindow, min_invocations: u64) -> IdleVerdict {
    let in_window: Vec<f64> =
        series.iter().filter(|(at, _)| *at >= window.start && *at < window.end).map(|(_, v)| *v).collect();
    // Folded from +0.0: an empty f64 sum is -0.0, which would print as "-0".
    let total = in_window.iter().fold(0.0, |sum, v| sum + v);
    let evidence = json!({ "invocations": total, "days": window.days, "days_with_invocations": in_window.len() });
    let reason = match total {
        t if t <= 0.0 => format!("no invocations in the last {} days", window.days),
        t => format!("{t:.0} invocations in the last {} days", window.days),
    };
    if total < min_invocations as f64 {
        IdleVerdict::Idle { reason, evidence }
    } else {
        IdleVerdict::NotIdle { reason, evidence }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::metrics::window_ending;

    #[test]
    fn days_without_a_datapoint_are_days_without_an_invocation() {
        let window = window_ending(Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap(), 30);
        match judge_invocations(&Vec::new(), &window, 1) {
            IdleVerdict::Idle { reason, .. } => assert_eq!(reason, "no invocations in the last 30 days"),
            other => panic!("no datapoint at all is no call at all: {other:?}"),
        }
        let one = vec![(window.start + Duration::days(3), 1.0)];
        assert!(matches!(judge_invocations(&one, &window, 1), IdleVerdict::NotIdle { .. }));
        assert!(matches!(judge_invocations(&one, &window, 2), IdleVerdict::Idle { .. }), "fewer than 2");
        let outside = vec![(window.start - Duration::days(1), 500.0)];
        assert!(matches!(judge_invocations(&outside, &window, 1), IdleVerdict::Idle { .. }), "only the window counts");
    }
}
