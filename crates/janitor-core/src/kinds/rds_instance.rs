//! RDS DB instances of a region.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct RdsInstance {
    pub id: String,
    pub arn: Option<String>,
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub deletion_protection: bool,
    /// Storage encryption at rest (`StorageEncrypted`).
    pub encrypted: bool,
    /// The Aurora (or Multi-AZ DB) cluster it belongs to: deleting it is the cluster's call.
    pub cluster: Option<String>,
    /// The instance or cluster it replicates: AWS takes no final snapshot of a replica.
    pub replica_of: Option<String>,
    /// What it is priced by: `db.t3.micro`, `mysql`, Multi-AZ, `gp2`, 20 GiB.
    pub class: String,
    pub engine: String,
    pub multi_az: bool,
    pub storage_type: String,
    pub allocated_gib: i32,
    pub tags: Tags,
}

impl RdsInstance {
    /// Why "final snapshot, then delete" is not an action for this instance, if it is not.
    pub fn not_deletable_because(&self) -> Option<String> {
        if let Some(source) = &self.replica_of {
            return Some(format!("a read replica of {source}: AWS takes no final snapshot of a replica"));
        }
        self.cluster
            .as_ref()
            .map(|cluster| format!("a member of cluster {cluster}: its deletion and protection belong to the cluster"))
    }
}

pub struct RdsInstances;

#[async_trait]
impl Kind for RdsInstances {
    type Item = RdsInstance;
    const KIND: ResourceKind = ResourceKind::RdsInstance;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<RdsInstance>> {
        Ok(Listing::of(deps.inventory.rds_instances(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a RdsInstance) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.id),
            arn: item.arn.clone(),
            created_at: item.created_at,
            tags: Some(&item.tags),
            resource: Resource::RdsInstance(item),
        }
    }

    fn billable(item: &RdsInstance) -> crate::cost::Billable {
        if item.class.is_empty() || item.storage_type.is_empty() {
            return crate::cost::Billable::Unpriced { why: "RDS did not say its class or storage type".into() };
        }
        crate::cost::Billable::RdsInstance {
            class: item.class.clone(),
            engine: item.engine.clone(),
            multi_az: item.multi_az,
            storage_type: item.storage_type.clone(),
            allocated_gib: item.allocated_gib,
        }
    }
}
