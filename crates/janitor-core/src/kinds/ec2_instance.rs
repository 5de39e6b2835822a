//! EC2 instances of a region, in every live state (each rule picks the states it judges).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Instance {
    pub id: String,
    pub state: String,
    /// `t3.large`: what its running hours are priced by.
    pub instance_type: String,
    pub launched_at: Option<DateTime<Utc>>,
    /// When a user or AWS stopped it, from EC2's state transition reason (`None` while
    /// running, or when the reason carries no time).
    pub stopped_at: Option<DateTime<Utc>>,
    pub tags: Tags,
}

/// The time in EC2's `StateTransitionReason`, e.g. `User initiated (2026-11-02 09:15:00 GMT)`.
/// EC2 documents no format for it, so anything else is `None` (an unknown stop time, which
/// no age rule may read as old).
pub fn stopped_at_from_reason(reason: &str) -> Option<DateTime<Utc>> {
    let inner = &reason[reason.rfind('(')? + 1..];
    let inner = &inner[..inner.find(')')?];
    let stamp = inner.trim().trim_end_matches("GMT").trim_end_matches("UTC").trim();
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc())
}

pub struct Ec2Instances;

#[async_trait]
impl Kind for Ec2Instances {
    type Item = Ec2Instance;
    const KIND: ResourceKind = ResourceKind::Ec2Instance;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<Ec2Instance>> {
        Ok(Listing::of(deps.inventory.ec2_instances(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a Ec2Instance) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.id),
            arn: None,
            created_at: item.launched_at,
            tags: Some(&item.tags),
            resource: Resource::Ec2Instance(item),
        }
    }

    fn billable(item: &Ec2Instance) -> crate::cost::Billable {
        crate::cost::Billable::Ec2Instance { instance_type: item.instance_type.clone(), running: item.state == "running" }
    }
}

#[cfg(test)]
mod tests {
    use super::stopped_at_from_reason;

    #[test]
    fn the_stop_time_is_read_from_the_transition_reason() {
        let at = stopped_at_from_reason("User initiated (2026-11-02 09:15:00 GMT)").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-02T09:15:00+00:00");
        assert!(stopped_at_from_reason("User initiated (2026-11-02 09:15:00 UTC)").is_some());
        assert!(stopped_at_from_reason("Server.ScheduledStop: Stopped due to scheduled retirement").is_none());
        assert!(stopped_at_from_reason("").is_none());
        assert!(stopped_at_from_reason("User initiated (yesterday)").is_none());
        assert!(stopped_at_from_reason("x (2026-11-02 09:15:00 GMT").is_none());
    }
}
