//! EBS volumes of a region (seed 004: waste and encryption), attached or not.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct EbsVolume {
    pub id: String,
    /// `available` (attached to nothing), `in-use`, `creating`, …
    pub state: String,
    pub size_gib: i32,
    pub volume_type: String,
    pub encrypted: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// Instances it is attached to.
    pub attached_to: Vec<String>,
    pub tags: Tags,
}

impl EbsVolume {
    pub fn unattached(&self) -> bool {
        self.state == "available" && self.attached_to.is_empty()
    }
}

pub struct EbsVolumes;

#[async_trait]
impl Kind for EbsVolumes {
    type Item = EbsVolume;
    const KIND: ResourceKind = ResourceKind::EbsVolume;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<EbsVolume>> {
        Ok(Listing::of(deps.inventory.ebs_volumes(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a EbsVolume) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.id),
            arn: None,
            created_at: item.created_at,
            tags: Some(&item.tags),
            resource: Resource::EbsVolume(item),
        }
    }

    fn billable(item: &EbsVolume) -> crate::cost::Billable {
        crate::cost::Billable::EbsVolume { volume_type: item.volume_type.clone(), size_gib: item.size_gib }
    }
}
