//! Lambda functions of a region (seed 004: functions nobody calls any more). The listing
//! carries no tags: they are read for the functions a rule flags or checks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::ports::Inventory;
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct LambdaFunction {
    pub name: String,
    pub arn: String,
    pub runtime: Option<String>,
    pub memory_mb: Option<i32>,
    /// What its duration is priced by (Lambda's default is x86_64).
    pub architecture: crate::cost::Architecture,
    /// Lambda tells no creation time; the last change to code or configuration is the
    /// closest, and errs on the young side (a function changed lately is not judged idle).
    pub last_modified: Option<DateTime<Utc>>,
}

/// Lambda's `LastModified`, e.g. `2026-11-02T09:15:00.000+0000`.
pub fn parse_last_modified(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub struct LambdaFunctions;

#[async_trait]
impl Kind for LambdaFunctions {
    type Item = LambdaFunction;
    const KIND: ResourceKind = ResourceKind::LambdaFunction;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<LambdaFunction>> {
        Ok(Listing::of(deps.inventory.lambda_functions(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a LambdaFunction) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.name),
            arn: Some(item.arn.clone()),
            created_at: item.last_modified,
            tags: None,
            resource: Resource::LambdaFunction(item),
        }
    }

    fn billable(item: &LambdaFunction) -> crate::cost::Billable {
        crate::cost::Billable::LambdaFunction { architecture: item.architecture }
    }

    async fn tags(inventory: &dyn Inventory, scope: &Scope, item: &LambdaFunction) -> Result<Tags> {
        inventory.lambda_tags(scope, &item.arn).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_last_modified;

    #[test]
    fn lambda_s_last_modified_is_read_in_its_own_format() {
        let at = parse_last_modified("2026-11-02T09:15:00.000+0000").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-02T09:15:00+00:00");
        assert!(parse_last_modified("2026-11-02T09:15:00Z").is_some());
        assert!(parse_last_modified("last tuesday").is_none());
    }
}
