//! S3 buckets of an account (listed once, keyed in their own region), each with the account's
//! Block Public Access settings, which may neutralise what the bucket allows.

use async_trait::async_trait;

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::{JanitorError, Result};
use crate::model::{ResourceKey, Scope, Tags};
use crate::ports::Inventory;
use crate::rules::Resource;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn all_on(&self) -> bool {
        self.block_public_acls && self.ignore_public_acls && self.block_public_policy && self.restrict_public_buckets
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AclGrant {
    pub grantee_uri: Option<String>,
    pub permission: String,
}

/// What decides whether a bucket is public, read with one call per aspect.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Bucket {
    pub name: String,
    pub region: String,
    pub policy: Option<String>,
    pub acl_grants: Vec<AclGrant>,
    pub block: Option<PublicAccessBlock>,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// No object, no version and no delete marker (`None`: not read).
    pub empty: Option<bool>,
}

/// One bucket as read, or its name and why it could not be read.
pub type BucketRead = std::result::Result<S3Bucket, (String, JanitorError)>;

/// A bucket and its account's Block Public Access settings.
pub struct BucketInAccount {
    pub bucket: S3Bucket,
    pub account_block: Option<PublicAccessBlock>,
}

pub struct S3Buckets;

#[async_trait]
impl Kind for S3Buckets {
    type Item = BucketInAccount;
    const KIND: ResourceKind = ResourceKind::S3Bucket;
    const ACCOUNT_WIDE: bool = true;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<BucketInAccount>> {
        let (account_block, buckets) = tokio::join!(
            deps.inventory.account_public_access_block(&scope.account),
            deps.inventory.s3_buckets(&scope.account)
        );
        let account_block = account_block?;
        let mut listing = Listing::of(Vec::new());
        // One bucket that cannot be read (its policy denies us, deleted mid-scan) never
        // blinds the rest.
        for read in buckets? {
            match read {
                Ok(bucket) => listing.items.push(BucketInAccount { bucket, account_block }),
                Err(unread) => listing.unreadable.push(unread),
            }
        }
        Ok(listing)
    }

    async fn read_ids(deps: &crate::Deps, scope: &Scope, ids: &[String]) -> Result<Listing<BucketInAccount>> {
        let account_block = deps.inventory.account_public_access_block(&scope.account).await?;
        let mut listing = Listing::of(Vec::new());
        for name in ids {
            match deps.inventory.s3_bucket(&scope.account, name).await? {
                Some(Ok(bucket)) => listing.items.push(BucketInAccount { bucket, account_block }),
                Some(Err(unread)) => listing.unreadable.push(unread),
                // Not there (yet, or any more): discovery::scan_ids records it as not found.
                None => {}
            }
        }
        Ok(listing)
    }

    fn seen<'a>(scope: &Scope, item: &'a BucketInAccount) -> Seen<'a> {
        let bucket = &item.bucket;
        Seen {
            key: ResourceKey::new(&scope.account, &bucket.region, Self::KIND, &bucket.name),
            arn: Some(format!("arn:aws:s3:::{}", bucket.name)),
            created_at: bucket.created_at,
            tags: None,
            resource: Resource::S3Bucket(bucket, item.account_block.as_ref()),
        }
    }

    fn billable(item: &BucketInAccount) -> crate::cost::Billable {
        match item.bucket.empty {
            Some(true) => crate::cost::Billable::Free { why: "an empty bucket stores nothing".into() },
            _ => crate::cost::Billable::Unpriced { why: "its storage is not read, so it is not priced".into() },
        }
    }

    async fn tags(inventory: &dyn Inventory, scope: &Scope, item: &BucketInAccount) -> Result<Tags> {
        inventory.s3_bucket_tags(&scope.account, &item.bucket).await
    }

    fn unreadable(message: String) -> JanitorError {
        JanitorError::Aws { service: "s3", operation: "GetBucketPolicy", message }
    }
}
