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
    /// Why the on-demand Linux price of its type in its region is not its price (Spot,
    /// dedicated tenancy, another platform, a Local Zone), if it is not.
    pub price_exception: Option<String>,
    pub launched_at: Option<DateTime<Utc>>,
    /// When a user or AWS stopped it, from EC2's state transition reason (`None` while
    /// running, or when the reason carries no time).
    pub stopped_at: Option<DateTime<Utc>>,
    pub tags: Tags,
}

/// Why an instance's hours are not the on-demand Linux price of its type in `region`, from
/// what DescribeInstances says of it (`None`: they are, or EC2 did not say otherwise).
pub fn price_exception(
    region: &str,
    spot: bool,
    tenancy: Option<&str>,
    platform: Option<&str>,
    zone: Option<&str>,
) -> Option<String> {
    if spot {
        return Some("a Spot instance: billed at the Spot price, not on-demand".into());
    }
    if let Some(tenancy) = tenancy.filter(|t| *t != "default") {
        return Some(format!("{tenancy} tenancy: billed above the shared on-demand price"));
    }
    if let Some(platform) = platform.filter(|p| !p.starts_with("Linux/UNIX")) {
        return Some(format!("{platform}: billed above the Linux price"));
    }
    // A region's own zones are the region and one letter (`us-east-1a`); a Local or
    // Wavelength Zone has a name of its own (`us-east-1-bos-1a`).
    let own_zone = |z: &str| z.strip_prefix(region).is_some_and(|rest| rest.len() == 1);
    if let Some(zone) = zone.filter(|z| !own_zone(z)) {
        return Some(format!("in the zone {zone}, billed at that zone's own price"));
    }
    None
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

    /// Just launched: RunInstances answers while the instance is still `pending`, with the
    /// tags it was launched with, so it is judged as the running instance it is becoming.
    async fn read_ids(deps: &crate::Deps, scope: &Scope, ids: &[String]) -> Result<Listing<Ec2Instance>> {
        let mut read = deps.inventory.ec2_instances_by_id(scope, ids).await?;
        for instance in read.iter_mut().filter(|i| i.state == "pending") {
            instance.state = "running".into();
        }
        Ok(Listing::of(read))
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
        let running = item.state == "running";
        match &item.price_exception {
            Some(why) if running => crate::cost::Billable::Unpriced { why: why.clone() },
            _ if item.instance_type.is_empty() => {
                crate::cost::Billable::Unpriced { why: "EC2 did not say its instance type".into() }
            }
            _ => crate::cost::Billable::Ec2Instance { instance_type: item.instance_type.clone(), running },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stopped_at_from_reason;

    #[test]
    fn only_shared_on_demand_linux_in_the_region_is_priced_as_such() {
        use super::price_exception;
        let region = "us-east-1";
        assert_eq!(price_exception(region, false, Some("default"), Some("Linux/UNIX"), Some("us-east-1a")), None);
        assert_eq!(price_exception(region, false, None, None, None), None);
        assert!(price_exception(region, true, None, None, None).unwrap().contains("Spot"));
        assert!(price_exception(region, false, Some("dedicated"), None, None).unwrap().contains("dedicated"));
        assert!(price_exception(region, false, None, Some("Windows"), None).unwrap().contains("Windows"));
        assert!(price_exception(region, false, None, None, Some("us-east-1-bos-1a")).unwrap().contains("bos"));
    }

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
