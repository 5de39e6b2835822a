//! What the two old-snapshot rules share: an age threshold in days and how an old one reads.

use serde_json::json;

use super::{Judgement, whole_days_since};
use crate::model::Action;

/// Flagged once 90 days old.
pub type Config = super::OlderThan<90>;

/// A snapshot taken at `taken` judged at `now`; `what` names it in the reason. One whose
/// time is unknown is never old.
pub(super) fn judge_age(
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
    taken: Option<chrono::DateTime<chrono::Utc>>,
    what: String,
    mut evidence: serde_json::Value,
) -> Judgement {
    let Some(taken) = taken else { return Judgement::Complies };
    let days = whole_days_since(now, taken);
    if days < i64::from(config.older_than_days) {
        return Judgement::Complies;
    }
    if let Some(map) = evidence.as_object_mut() {
        map.insert("taken_at".into(), json!(taken));
        map.insert("age_days".into(), json!(days));
        map.insert("older_than_days".into(), json!(config.older_than_days));
    }
    Judgement::Violates {
        reason: format!("{what} taken {days} days ago ({})", taken.format("%Y-%m-%d")),
        evidence,
        action: Action::NotifyOnly,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use crate::policy::Policy;
    use crate::ports::{EbsSnapshot, RdsSnapshot};
    use crate::rules::{Judgement, Resource, Rule, ebs_snapshot_old, rds_snapshot_old};

    #[test]
    fn a_snapshot_is_old_from_the_threshold_on_and_one_of_unknown_age_never() {
        let policy = Policy::builtin().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let ebs = |days: Option<i64>| EbsSnapshot {
            id: "snap-1".into(),
            volume_id: Some("vol-1".into()),
            size_gib: 100,
            state: "completed".into(),
            started_at: days.map(|d| now - Duration::days(d)),
            description: String::new(),
            tags: Default::default(),
        };
        let judge = |s: &EbsSnapshot| ebs_snapshot_old::RULE.judge(&policy, now, Resource::EbsSnapshot(s));
        match judge(&ebs(Some(90))) {
            Judgement::Violates { evidence, .. } => assert_eq!(evidence["age_days"], 90),
            other => panic!("90 days old: {other:?}"),
        }
        assert_eq!(judge(&ebs(Some(89))), Judgement::Complies);
        assert_eq!(judge(&ebs(None)), Judgement::Complies);

        let rds = RdsSnapshot {
            id: "db-manual".into(),
            arn: None,
            db_instance: "db".into(),
            engine: "postgres".into(),
            allocated_gib: 20,
            created_at: Some(now - Duration::days(365)),
            tags: Default::default(),
        };
        let judged = rds_snapshot_old::RULE.judge(&policy, now, Resource::RdsSnapshot(&rds));
        assert!(matches!(judged, Judgement::Violates { .. }), "{judged:?}");
    }
}
