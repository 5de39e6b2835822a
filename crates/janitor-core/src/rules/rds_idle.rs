//! Idle RDS: no database connection at all in the look-back window. Read replicas and
//! cluster members are notify-only (AWS takes no final snapshot of a replica; a member's
//! deletion belongs to its cluster).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, MetricSpec, Resource, Rule, RuleConfig, RuleDoc, default_lookback_days, validate_window, yes};
use crate::metrics::{IdleVerdict, coverage};
use crate::model::{Action, ResourceKind};
use crate::policy::{IdleWindow, Policy};
use crate::ports::{MetricSeries, MetricWindow, Statistic};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    pub min_age_days: Option<u32>,
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

pub struct RdsIdle;
pub const RULE: RdsIdle = RdsIdle;

impl Rule for RdsIdle {
    fn kind(&self) -> ResourceKind {
        ResourceKind::RdsInstance
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "available RDS",
            violating_when: "zero `DatabaseConnections` on every day of the last 7",
            action: "final snapshot, then delete; **notify-only** for read replicas and Aurora/Multi-AZ cluster members",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["rds:DescribeDBInstances", "cloudwatch:GetMetricData", "rds:DeleteDBInstance", "rds:CreateDBSnapshot"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            Resource::RdsInstance(db) if db.status == "available" => {
                Judgement::NeedsMetrics { notify_only: db.not_deletable_because() }
            }
            _ => Judgement::Complies,
        }
    }
    fn metric(&self, policy: &Policy) -> Option<MetricSpec> {
        let config = policy.rules.rds_idle.as_ref()?;
        Some(MetricSpec {
            namespace: "AWS/RDS",
            metric: "DatabaseConnections",
            dimension: "DBInstanceIdentifier",
            stat: Statistic::Maximum,
            window: config.window(),
        })
    }
    fn idle_action(&self) -> Action {
        Action::SnapshotAndDeleteDb
    }
    fn judge_series(&self, _policy: &Policy, series: &MetricSeries, window: &MetricWindow) -> IdleVerdict {
        judge_connections(series, window)
    }
}

pub fn judge_connections(series: &MetricSeries, window: &MetricWindow) -> IdleVerdict {
    let daily = match coverage(series, window) {
        Ok(d) => d,
        Err(verdict) => return verdict,
    };
    let max = daily.iter().copied().fold(0.0, f64::max);
    let evidence = json!({ "daily_max_connections": daily, "days": window.days });
    if max == 0.0 {
        IdleVerdict::Idle {
            reason: format!("no database connections on any of the last {} days", window.days),
            evidence,
        }
    } else {
        IdleVerdict::NotIdle { reason: format!("up to {max} database connections in a day"), evidence }
    }
}
