//! Seed 004 (waste): an EBS volume attached to nothing, billed by the GB-month all the same.

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
    /// `notify-only` unless the policy asks for `snapshot-and-delete-volume`.
    #[serde(default = "default_action")]
    pub action: UnattachedAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnattachedAction {
    SnapshotAndDeleteVolume,
    NotifyOnly,
}

fn default_action() -> UnattachedAction {
    UnattachedAction::NotifyOnly
}

impl From<UnattachedAction> for Action {
    fn from(value: UnattachedAction) -> Action {
        match value {
            UnattachedAction::SnapshotAndDeleteVolume => Action::SnapshotAndDeleteVolume,
            UnattachedAction::NotifyOnly => Action::NotifyOnly,
        }
    }
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
}

pub struct EbsUnattached;
pub const RULE: EbsUnattached = EbsUnattached;

impl Rule for EbsUnattached {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EbsVolume
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "EBS volume",
            violating_when: "attached to nothing (`available`)",
            action: "`notify-only` (or snapshot, then delete once the snapshot completed)",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeVolumes", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:DescribeSnapshots", "ec2:DeleteVolume"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::EbsVolume(volume), Some(config)) = (resource, &policy.rules.ebs_unattached) else {
            return Judgement::Complies;
        };
        if !volume.unattached() {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("{} GiB {} volume attached to nothing", volume.size_gib, volume.volume_type),
            evidence: json!({ "state": volume.state, "size_gib": volume.size_gib, "volume_type": volume.volume_type }),
            action: config.action.into(),
        }
    }
}
