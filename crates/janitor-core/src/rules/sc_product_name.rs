//! Seed 000: provisioned product names follow the organization's convention, a pattern the
//! whole name must match. Reported: a product cannot be renamed in place.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tags::TagPattern;
use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, yes};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A regular expression the whole name must match (compiled when the policy loads).
    #[serde(default = "default_pattern")]
    pub pattern: TagPattern,
}

fn default_pattern() -> TagPattern {
    // Lower-case words and digits joined by single hyphens: `team-app-env`.
    TagPattern::new("[a-z][a-z0-9]*(-[a-z0-9]+)*").unwrap_or_else(|e| unreachable!("the default pattern compiles: {e}"))
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
}

pub struct ScProductName;
pub const RULE: ScProductName = ScProductName;

impl Rule for ScProductName {
    fn kind(&self) -> ResourceKind {
        ResourceKind::ProvisionedProduct
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "Service Catalog provisioned product",
            violating_when: "its name does not wholly match `pattern` (lower-case words joined by hyphens)",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["servicecatalog:SearchProvisionedProducts"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::ProvisionedProduct(item), Some(config)) = (resource, &policy.rules.sc_product_name) else {
            return Judgement::Complies;
        };
        if config.pattern.matches(&item.product.name) {
            return Judgement::Complies;
        }
        Judgement::Violates {
            reason: format!("name {:?} does not match the naming convention {}", item.product.name, config.pattern.as_str()),
            evidence: json!({ "name": item.product.name, "pattern": config.pattern.as_str() }),
            action: Action::NotifyOnly,
        }
    }
}
