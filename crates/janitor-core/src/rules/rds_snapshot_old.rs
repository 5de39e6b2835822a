//! Seed 004 (waste): manual RDS snapshots older than N days; reported, never deleted (the
//! janitor's own final snapshots are among them, on purpose: someone should decide).

use serde_json::json;

use super::snapshot_old::judge_age;
use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::ResourceKind;
use crate::policy::Policy;

pub use super::snapshot_old::Config;

pub struct RdsSnapshotOld;
pub const RULE: RdsSnapshotOld = RdsSnapshotOld;

impl Rule for RdsSnapshotOld {
    fn kind(&self) -> ResourceKind {
        ResourceKind::RdsSnapshot
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "RDS snapshot (manual)",
            violating_when: "taken `older_than_days` (90) days ago or more",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["rds:DescribeDBSnapshots"]
    }
    fn judge(&self, policy: &Policy, now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::RdsSnapshot(snapshot), Some(config)) = (resource, &policy.rules.rds_snapshot_old) else {
            return Judgement::Complies;
        };
        let what = format!("{} GiB {} snapshot of {}", snapshot.allocated_gib, snapshot.engine, snapshot.db_instance);
        let evidence = json!({
            "db_instance": snapshot.db_instance,
            "engine": snapshot.engine,
            "allocated_gib": snapshot.allocated_gib,
            "final_snapshot_by_the_janitor": snapshot.id.starts_with(crate::model::FINAL_SNAPSHOT_PREFIX),
        });
        judge_age(config, now, snapshot.created_at, what, evidence)
    }
}
