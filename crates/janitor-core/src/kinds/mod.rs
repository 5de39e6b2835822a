//! The kind registry. A kind is one module: the resource as the rules see it, how a scope
//! lists it (through the [`Inventory`] port), its key, its tags and where they come from,
//! its ARN and age. Adding a kind is one module and one line in `kinds!` below, then its
//! listing in the inventory adapters and its rules under `rules/`. Discovery and recheck
//! scan every kind through [`scan`]; the owner and the protect tag are read the same way
//! for every kind.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{JanitorError, Result};
use crate::model::{ResourceKey, Scope, Tags};
use crate::ports::Inventory;
use crate::rules::Resource;

/// What a scope's listing of one kind holds: what was read, and what could not be (by id).
pub struct Listing<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<(String, JanitorError)>,
}

impl<T> Listing<T> {
    pub fn of(items: Vec<T>) -> Self {
        Listing { items, unreadable: Vec::new() }
    }
}

/// One listed resource as discovery needs it.
pub struct Seen<'a> {
    pub key: ResourceKey,
    pub arn: Option<String>,
    /// Launch or creation time: metric rules leave younger resources alone.
    pub created_at: Option<DateTime<Utc>>,
    /// `None` when the listing does not carry them: they are read for violators only
    /// ([`Kind::tags`]), since a protect tag or owner matters only to those.
    pub tags: Option<&'a Tags>,
    pub resource: Resource<'a>,
}

#[async_trait]
pub trait Kind: Send + Sync + 'static {
    type Item: Send + Sync;
    const KIND: ResourceKind;
    /// Account-wide kinds are listed once per account, in its `global` scope.
    const ACCOUNT_WIDE: bool;
    /// Lists the kind in `scope` through `deps.inventory`, with whatever else of the run its
    /// rules need to judge an item (the policy, a list kept in the run bucket).
    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<Self::Item>>;
    /// The items of `scope` with these ids: resources just created, named by their
    /// CloudTrail event. By default the scope's listing kept to those ids (right for every
    /// kind, if costly); a kind that can read one resource overrides it.
    async fn read_ids(deps: &crate::Deps, scope: &Scope, ids: &[String]) -> Result<Listing<Self::Item>> {
        let mut listing = Self::list(deps, scope).await?;
        listing.items.retain(|item| ids.iter().any(|id| Self::seen(scope, item).key.id() == id.as_str()));
        listing.unreadable.retain(|(id, _)| ids.contains(id));
        Ok(listing)
    }
    fn seen<'a>(scope: &Scope, item: &'a Self::Item) -> Seen<'a>;
    /// What the item is billed for, so each finding says what it costs and what its action
    /// saves (see [`crate::cost`]); a kind that cannot be priced says why.
    fn billable(item: &Self::Item) -> crate::cost::Billable;
    /// The owner when the resource has no owner tag, if the resource itself says who made it.
    fn owner_hint(_item: &Self::Item) -> Option<String> {
        None
    }
    /// The tags of an item whose listing does not carry them. A kind that says `tags: None`
    /// must read them here: by default the item is a scan failure, never an untagged (so
    /// unprotected and ownerless) resource.
    async fn tags(_inventory: &dyn Inventory, _scope: &Scope, _item: &Self::Item) -> Result<Tags> {
        Err(JanitorError::Config(format!("kind {} lists no tags and does not read them", Self::KIND)))
    }
    /// The failure recorded when a rule cannot judge an item (its policy does not parse, say).
    fn unreadable(message: String) -> JanitorError {
        JanitorError::InvalidInput(message)
    }
}

macro_rules! kinds {
    ($($variant:ident => $module:ident :: $kind:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every kind of resource the janitor judges, as keys and findings name it.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            strum::IntoStaticStr, strum::EnumString, strum::EnumIter,
        )]
        #[serde(rename_all = "kebab-case")]
        #[strum(serialize_all = "kebab-case")]
        pub enum ResourceKind {
            $($variant),+
        }

        impl ResourceKind {
            pub fn account_wide(self) -> bool {
                match self {
                    $(ResourceKind::$variant => <$module::$kind as Kind>::ACCOUNT_WIDE,)+
                }
            }
        }

        /// Lists and judges one kind in `scope` (see `discovery::scan_kind`).
        pub(crate) async fn scan(
            kind: ResourceKind,
            deps: &crate::Deps,
            scope: &Scope,
        ) -> Result<crate::discovery::PartialScan> {
            match kind {
                $(ResourceKind::$variant => crate::discovery::scan_kind::<$module::$kind>(deps, scope).await,)+
            }
        }

        /// Reads the resources `ids` of one kind in `scope` and judges them with the rules
        /// that judge at creation (see `discovery::scan_ids`).
        pub(crate) async fn scan_ids(
            kind: ResourceKind,
            deps: &crate::Deps,
            scope: &Scope,
            ids: &[String],
        ) -> Result<crate::discovery::PartialScan> {
            match kind {
                $(ResourceKind::$variant => crate::discovery::scan_ids::<$module::$kind>(deps, scope, ids).await,)+
            }
        }
    };
}

kinds! {
    Ec2Instance => ec2_instance::Ec2Instances,
    RdsInstance => rds_instance::RdsInstances,
    ElasticIp => elastic_ip::ElasticIps,
    IamUser => iam_user::IamUsers,
    S3Bucket => s3_bucket::S3Buckets,
    EbsVolume => ebs_volume::EbsVolumes,
    SecurityGroup => security_group::SecurityGroups,
    EbsSnapshot => ebs_snapshot::EbsSnapshots,
    RdsSnapshot => rds_snapshot::RdsSnapshots,
    LambdaFunction => lambda_function::LambdaFunctions,
    ProvisionedProduct => provisioned_product::ProvisionedProducts,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The kinds listed in a scope: the account-wide ones in its `global` scope, the others
    /// in each region.
    pub fn in_scope(scope: &Scope) -> impl Iterator<Item = ResourceKind> {
        let account_wide = scope.is_account_wide();
        <ResourceKind as strum::IntoEnumIterator>::iter().filter(move |k| k.account_wide() == account_wide)
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn every_kind_is_one_spelling_in_json_keys_and_back() {
        for kind in ResourceKind::iter() {
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
            assert_eq!(kind.as_str().parse::<ResourceKind>().unwrap(), kind);
        }
        assert!("spaceship".parse::<ResourceKind>().is_err());
    }
}
