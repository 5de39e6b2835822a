//! IAM users of an account, from one credential report; their tags are read for violators.

use async_trait::async_trait;

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{GLOBAL_REGION, ResourceKey, Scope, Tags};
use crate::ports::Inventory;
use crate::rules::Resource;

/// One row of the IAM credential report.
#[derive(Debug, Clone, PartialEq)]
pub struct IamCredential {
    pub user: String,
    pub arn: String,
    pub password_enabled: bool,
    pub mfa_active: bool,
}

pub struct IamUsers;

#[async_trait]
impl Kind for IamUsers {
    type Item = IamCredential;
    const KIND: ResourceKind = ResourceKind::IamUser;
    const ACCOUNT_WIDE: bool = true;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<IamCredential>> {
        Ok(Listing::of(deps.inventory.iam_credentials(&scope.account).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a IamCredential) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, GLOBAL_REGION, Self::KIND, &item.user),
            arn: Some(item.arn.clone()),
            created_at: None,
            tags: None,
            resource: Resource::IamUser(item),
        }
    }

    fn billable(_item: &IamCredential) -> crate::cost::Billable {
        crate::cost::Billable::Free { why: "an IAM user is not billed".into() }
    }

    async fn tags(inventory: &dyn Inventory, scope: &Scope, item: &IamCredential) -> Result<Tags> {
        inventory.iam_user_tags(&scope.account, &item.user).await
    }
}
