//! The account's own EBS snapshots in a region (seed 004: old manual snapshots cost by the
//! GB-month long after anyone remembers them).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct EbsSnapshot {
    pub id: String,
    pub volume_id: Option<String>,
    pub size_gib: i32,
    /// `pending`, `completed`, `error`, …
    pub state: String,
    pub started_at: Option<DateTime<Utc>>,
    pub description: String,
    pub tags: Tags,
}

pub struct EbsSnapshots;

#[async_trait]
impl Kind for EbsSnapshots {
    type Item = EbsSnapshot;
    const KIND: ResourceKind = ResourceKind::EbsSnapshot;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<EbsSnapshot>> {
        Ok(Listing::of(deps.inventory.ebs_snapshots(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a EbsSnapshot) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.id),
            arn: Some(format!("arn:aws:ec2:{}::snapshot/{}", scope.region, item.id)),
            created_at: item.started_at,
            tags: Some(&item.tags),
            resource: Resource::EbsSnapshot(item),
        }
    }

    fn billable(item: &EbsSnapshot) -> crate::cost::Billable {
        crate::cost::Billable::EbsSnapshot { size_gib: item.size_gib }
    }
}
