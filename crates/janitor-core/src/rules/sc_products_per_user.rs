//! Seed 000: one person holding more provisioned products than the policy allows in one
//! account and region. The oldest `max_per_user` are within the limit; each product beyond
//! them is a finding of its own, so terminating (or snoozing) one clears one.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, yes};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Products one launcher may hold in an account and region.
    #[serde(default = "default_max")]
    pub max_per_user: u32,
}

fn default_max() -> u32 {
    5
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        if self.max_per_user == 0 {
            return Err(format!("{table}.max_per_user: at least 1 (0 would flag every product)"));
        }
        Ok(())
    }
}

pub struct ScProductsPerUser;
pub const RULE: ScProductsPerUser = ScProductsPerUser;

impl Rule for ScProductsPerUser {
    fn kind(&self) -> ResourceKind {
        ResourceKind::ProvisionedProduct
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "Service Catalog provisioned product",
            violating_when: "its launcher holds more than `max_per_user` (5) products in the account and region: each one past their oldest 5",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["servicecatalog:SearchProvisionedProducts"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::ProvisionedProduct(item), Some(config)) = (resource, &policy.rules.sc_products_per_user) else {
            return Judgement::Complies;
        };
        let limit = config.max_per_user as usize;
        let Some(launcher) = item.product.launcher() else { return Judgement::Complies };
        if item.launcher_rank <= limit {
            return Judgement::Complies;
        }
        let who = super::sc_unauthorized_launcher::person(launcher).unwrap_or(launcher);
        Judgement::Violates {
            reason: format!(
                "{who} holds {} provisioned products here (limit {limit}); this is number {} by launch time",
                item.launcher_products, item.launcher_rank
            ),
            evidence: json!({
                "launched_by": launcher,
                "products": item.launcher_products,
                "rank": item.launcher_rank,
                "max_per_user": limit,
            }),
            action: Action::NotifyOnly,
        }
    }
}
