//! Service Catalog provisioned products of a region (seed 000): every product of the account,
//! whoever launched it, with what a rule needs from the rest of the scope: how many products
//! the same person launched here, and the launcher allow-list when a rule checks it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;
use crate::rules::sc_unauthorized_launcher::LauncherAllowList;

#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionedProduct {
    pub id: String,
    pub name: String,
    pub arn: Option<String>,
    /// `CFN_STACK`, `CFN_STACKSET`, `TERRAFORM_OPEN_SOURCE`, `TERRAFORM_CLOUD`, `EXTERNAL`.
    pub product_type: String,
    /// `AVAILABLE`, `UNDER_CHANGE`, `TAINTED`, `ERROR`, `PLAN_IN_PROGRESS`.
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub product_name: Option<String>,
    /// Service Catalog's `UserArn`: the IAM user or role that launched it.
    pub launched_by: Option<String>,
    /// `UserArnSession`: the launcher's session (an SSO session names the person).
    pub launched_by_session: Option<String>,
    pub tags: Tags,
}

impl ProvisionedProduct {
    /// Who launched it, as the per-user count groups products: the session when there is
    /// one (people share SSO roles; their sessions tell them apart), else the ARN.
    pub fn launcher(&self) -> Option<&str> {
        self.launched_by_session.as_deref().or(self.launched_by.as_deref()).filter(|s| !s.is_empty())
    }
}

/// A product and what judging it needs from its scope.
#[derive(Debug, Clone)]
pub struct ProductInScope {
    pub product: ProvisionedProduct,
    /// Products its launcher has in this account and region.
    pub launcher_products: usize,
    /// Its place among them by launch time, `1` for the oldest.
    pub launcher_rank: usize,
    /// `None` when no rule needs it, or it could not be read (a recorded failure).
    pub allow_list: Option<Arc<LauncherAllowList>>,
}

/// Counts each launcher's products and ranks them oldest first (ties by id, so every run
/// ranks alike).
pub fn in_scope(products: Vec<ProvisionedProduct>, allow_list: Option<Arc<LauncherAllowList>>) -> Vec<ProductInScope> {
    let mut by_launcher: HashMap<&str, Vec<&ProvisionedProduct>> = HashMap::new();
    for p in &products {
        if let Some(launcher) = p.launcher() {
            by_launcher.entry(launcher).or_default().push(p);
        }
    }
    // Product id -> (its launcher's count, its rank among them).
    let mut ranks: HashMap<String, (usize, usize)> = HashMap::new();
    for list in by_launcher.values_mut() {
        // Unknown launch times last: a product is never ranked older than it is known to be.
        list.sort_by(|a, b| {
            (a.created_at.is_none(), a.created_at, &a.id).cmp(&(b.created_at.is_none(), b.created_at, &b.id))
        });
        for (i, p) in list.iter().enumerate() {
            ranks.insert(p.id.clone(), (list.len(), i + 1));
        }
    }
    products
        .into_iter()
        .map(|product| {
            let (count, rank) = ranks.get(&product.id).copied().unwrap_or((0, 0));
            ProductInScope { product, launcher_products: count, launcher_rank: rank, allow_list: allow_list.clone() }
        })
        .collect()
}

pub struct ProvisionedProducts;

#[async_trait]
impl Kind for ProvisionedProducts {
    type Item = ProductInScope;
    const KIND: ResourceKind = ResourceKind::ProvisionedProduct;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<ProductInScope>> {
        let excluded = &deps.policy.excluded_catalog_products;
        let mut products = deps.inventory.provisioned_products(scope).await?;
        products.retain(|p| p.product_name.as_ref().is_none_or(|name| !excluded.contains(name)));
        let mut unreadable = Vec::new();
        let allow_list = match &deps.policy.rules.sc_unauthorized_launcher {
            // Read only where there is something to check against it.
            Some(config) if config.enabled && !products.is_empty() => {
                match LauncherAllowList::load(config, deps.runs.as_ref()).await {
                    Ok(list) => Some(Arc::new(list)),
                    Err(e) => {
                        unreadable.push(("launcher-allow-list".to_owned(), e));
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(Listing { items: in_scope(products, allow_list), unreadable })
    }

    fn seen<'a>(scope: &Scope, item: &'a ProductInScope) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.product.id),
            arn: item.product.arn.clone(),
            created_at: item.product.created_at,
            tags: Some(&item.product.tags),
            resource: Resource::ProvisionedProduct(item),
        }
    }

    fn billable(_item: &ProductInScope) -> crate::cost::Billable {
        crate::cost::Billable::Unpriced {
            why: "billed for the resources of its stack, which their own findings price".into(),
        }
    }

    /// Without an owner tag, the person who launched it when AWS names them by email (an IAM
    /// Identity Center session; any other session name is the caller's own choice, and a
    /// message must not go to whoever it names): the seed tells the launcher.
    fn owner_hint(item: &ProductInScope) -> Option<String> {
        let session = item.product.launched_by_session.as_deref()?;
        crate::rules::sc_unauthorized_launcher::person(session)
            .filter(|_| session.contains(":assumed-role/"))
            .filter(|name| name.contains('@'))
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, session: Option<&str>, day: Option<u32>) -> ProvisionedProduct {
        ProvisionedProduct {
            id: id.into(),
            name: id.into(),
            arn: None,
            product_type: "CFN_STACK".into(),
            status: "AVAILABLE".into(),
            created_at: day.map(|d| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, d, 0, 0, 0).unwrap()),
            product_name: None,
            launched_by: Some("arn:aws:iam::123456789012:role/Dev".into()),
            launched_by_session: session.map(str::to_owned),
            tags: Tags::new(),
        }
    }

    #[test]
    fn each_launcher_s_products_are_counted_and_ranked_oldest_first() {
        let items = in_scope(
            vec![
                product("pp-c", Some("s/alice"), Some(3)),
                product("pp-a", Some("s/alice"), Some(1)),
                product("pp-x", Some("s/bob"), Some(2)),
                product("pp-u", Some("s/alice"), None),
            ],
            None,
        );
        let rank = |id: &str| items.iter().find(|i| i.product.id == id).map(|i| (i.launcher_products, i.launcher_rank));
        assert_eq!(rank("pp-a"), Some((3, 1)));
        assert_eq!(rank("pp-c"), Some((3, 2)));
        assert_eq!(rank("pp-u"), Some((3, 3)), "an unknown launch time ranks last, never oldest");
        assert_eq!(rank("pp-x"), Some((1, 1)), "sessions of one shared role are different people");
    }

    #[test]
    fn only_an_identity_center_session_names_the_owner() {
        let item = |session: &str| ProductInScope {
            product: ProvisionedProduct {
                launched_by_session: Some(session.into()),
                ..product("pp-1", None, Some(1))
            },
            launcher_products: 1,
            launcher_rank: 1,
            allow_list: None,
        };
        let sso = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0a1b/alice@example.com";
        assert_eq!(ProvisionedProducts::owner_hint(&item(sso)).as_deref(), Some("alice@example.com"));
        let chosen = "arn:aws:sts::123456789012:assumed-role/Dev/ceo@example.com";
        assert_eq!(ProvisionedProducts::owner_hint(&item(chosen)), None, "a session name the caller chose");
    }
}
