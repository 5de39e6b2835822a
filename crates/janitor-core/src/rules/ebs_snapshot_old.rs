//! Seed 004 (waste): the account's own EBS snapshots older than N days; reported, never
//! deleted (one may back an AMI, or be the only copy of a deleted volume).

use serde_json::json;

use super::snapshot_old::judge_age;
use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::ResourceKind;
use crate::policy::Policy;

pub use super::snapshot_old::Config;

/// Who else keeps this snapshot, so its owner knows where to delete it (or not to).
fn managed_by(snapshot: &crate::ports::EbsSnapshot) -> Option<&'static str> {
    let tagged = |prefix: &str| snapshot.tags.keys().any(|k| k.starts_with(prefix));
    if tagged("aws:backup:") || snapshot.description.contains("AWS Backup") {
        Some("AWS Backup (delete it through its backup vault)")
    } else if tagged("aws:dlm:") {
        Some("Data Lifecycle Manager (its policy's retention deletes it)")
    } else if snapshot.description.starts_with("Created by CreateImage") {
        Some("an AMI (deregister the image first)")
    } else if tagged(crate::model::SNAPSHOT_OF_TAG) {
        Some("Cloud Janitor (kept when it deleted the volume)")
    } else {
        None
    }
}

pub struct EbsSnapshotOld;
pub const RULE: EbsSnapshotOld = EbsSnapshotOld;

impl Rule for EbsSnapshotOld {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EbsSnapshot
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "EBS snapshot (own)",
            violating_when: "taken `older_than_days` (90) days ago or more",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeSnapshots"]
    }
    fn judge(&self, policy: &Policy, now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::EbsSnapshot(snapshot), Some(config)) = (resource, &policy.rules.ebs_snapshot_old) else {
            return Judgement::Complies;
        };
        // A snapshot still being taken is new; only completed ones are judged.
        if snapshot.state != "completed" {
            return Judgement::Complies;
        }
        let what = format!("{} GiB snapshot of {}", snapshot.size_gib, snapshot.volume_id.as_deref().unwrap_or("?"));
        let evidence = json!({
            "volume_id": snapshot.volume_id,
            "size_gib": snapshot.size_gib,
            "description": snapshot.description,
            "managed_by": managed_by(snapshot),
        });
        judge_age(config, now, snapshot.started_at, what, evidence)
    }
}
