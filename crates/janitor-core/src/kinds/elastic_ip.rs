//! Elastic IP addresses of a region, keyed by allocation id.

use async_trait::async_trait;

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct ElasticIp {
    pub allocation_id: String,
    pub public_ip: Option<String>,
    pub associated: bool,
    pub tags: Tags,
}

pub struct ElasticIps;

#[async_trait]
impl Kind for ElasticIps {
    type Item = ElasticIp;
    const KIND: ResourceKind = ResourceKind::ElasticIp;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<ElasticIp>> {
        Ok(Listing::of(deps.inventory.elastic_ips(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a ElasticIp) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.allocation_id),
            arn: None,
            created_at: None,
            tags: Some(&item.tags),
            resource: Resource::ElasticIp(item),
        }
    }

    fn billable(_item: &ElasticIp) -> crate::cost::Billable {
        crate::cost::Billable::PublicIpv4
    }
}
