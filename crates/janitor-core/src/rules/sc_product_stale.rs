//! Seed 000: a Service Catalog product provisioned long ago and still there, often a
//! sandbox or trial nobody came back to. Reported to whoever launched it, never terminated:
//! terminating deletes the whole stack behind it.

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc, whole_days_since};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

/// Flagged once provisioned 90 days ago.
pub type Config = super::OlderThan<90>;

pub struct ScProductStale;
pub const RULE: ScProductStale = ScProductStale;

impl Rule for ScProductStale {
    fn kind(&self) -> ResourceKind {
        ResourceKind::ProvisionedProduct
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "Service Catalog provisioned product",
            violating_when: "provisioned `older_than_days` (90) days ago or more",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["servicecatalog:SearchProvisionedProducts"]
    }
    fn judge(&self, policy: &Policy, now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::ProvisionedProduct(item), Some(config)) = (resource, &policy.rules.sc_product_stale) else {
            return Judgement::Complies;
        };
        let product = &item.product;
        let Some(created) = product.created_at else { return Judgement::Complies };
        let days = whole_days_since(now, created);
        if days < i64::from(config.older_than_days) {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("provisioned {days} days ago ({})", created.format("%Y-%m-%d")),
            evidence: json!({
                "name": product.name,
                "product": product.product_name,
                "status": product.status,
                "created_at": created,
                "age_days": days,
                "older_than_days": config.older_than_days,
                "launched_by": product.launcher(),
            }),
            action: Action::NotifyOnly,
        }
    }
}
