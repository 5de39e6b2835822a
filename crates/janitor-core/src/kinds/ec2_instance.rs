//! EC2 instances of a region, in every live state (each rule picks the states it judges).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::ports::Inventory;
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Instance {
    pub id: String,
    pub state: String,
    pub launched_at: Option<DateTime<Utc>>,
    pub tags: Tags,
}

pub struct Ec2Instances;

#[async_trait]
impl Kind for Ec2Instances {
    type Item = Ec2Instance;
    const KIND: ResourceKind = ResourceKind::Ec2Instance;
    const ACCOUNT_WIDE: bool = false;

    async fn list(inventory: &dyn Inventory, scope: &Scope) -> Result<Listing<Ec2Instance>> {
        Ok(Listing::of(inventory.ec2_instances(scope).await?))
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
}
