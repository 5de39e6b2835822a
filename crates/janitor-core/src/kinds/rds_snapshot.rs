//! Manual RDS DB snapshots of a region (seed 004): kept until someone deletes them, unlike
//! automated ones, which expire with their retention period.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct RdsSnapshot {
    pub id: String,
    pub arn: Option<String>,
    pub db_instance: String,
    pub engine: String,
    pub allocated_gib: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub tags: Tags,
}

pub struct RdsSnapshots;

#[async_trait]
impl Kind for RdsSnapshots {
    type Item = RdsSnapshot;
    const KIND: ResourceKind = ResourceKind::RdsSnapshot;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<RdsSnapshot>> {
        Ok(Listing::of(deps.inventory.rds_snapshots(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a RdsSnapshot) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.id),
            arn: item.arn.clone(),
            created_at: item.created_at,
            tags: Some(&item.tags),
            resource: Resource::RdsSnapshot(item),
        }
    }

    fn billable(item: &RdsSnapshot) -> crate::cost::Billable {
        crate::cost::Billable::RdsSnapshot { allocated_gib: item.allocated_gib }
    }
}
