//! The rule registry. A rule is one module: its policy table (`Config`: fields, defaults,
//! validation), the kind it judges, what it reads, how it judges, its action and the IAM
//! actions it needs. Adding a rule on an existing kind is one new module and one line in
//! `registry!` below: discovery, the metric check, recheck, the policy loader, the IAM check
//! and the README's rules table all go through [`REGISTRY`].

use serde::{Deserialize, Serialize};

use crate::metrics::IdleVerdict;
use crate::model::{Action, ResourceKind};
use crate::policy::{IdleWindow, Policy};
use crate::ports::{
    EbsVolume, Ec2Instance, ElasticIp, IamCredential, MetricSeries, MetricWindow, PublicAccessBlock, RdsInstance,
    S3Bucket, Statistic,
};

/// One listed resource, of one of the registry's kinds, as a rule sees it.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Ec2Instance(&'a Ec2Instance),
    RdsInstance(&'a RdsInstance),
    ElasticIp(&'a ElasticIp),
    IamUser(&'a IamCredential),
    /// A bucket with its account's Block Public Access settings, which may neutralise it.
    S3Bucket(&'a S3Bucket, Option<&'a PublicAccessBlock>),
    EbsVolume(&'a EbsVolume),
}

impl Resource<'_> {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Ec2Instance(_) => ResourceKind::Ec2Instance,
            Resource::RdsInstance(_) => ResourceKind::RdsInstance,
            Resource::ElasticIp(_) => ResourceKind::ElasticIp,
            Resource::IamUser(_) => ResourceKind::IamUser,
            Resource::S3Bucket(..) => ResourceKind::S3Bucket,
            Resource::EbsVolume(_) => ResourceKind::EbsVolume,
        }
    }
}

/// What a rule makes of one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    Complies,
    Violates {
        reason: String,
        evidence: serde_json::Value,
        action: Action,
    },
    /// Only its metric series can tell: the metric check reads it. `notify_only` says why the
    /// rule's action cannot be taken on this resource, if it cannot.
    NeedsMetrics {
        notify_only: Option<String>,
    },
    /// The resource could not be judged (its policy document does not parse, say).
    Unreadable(String),
}

/// The CloudWatch series a metric rule judges, one datapoint a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSpec {
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimension: &'static str,
    pub stat: Statistic,
    pub window: IdleWindow,
}

/// A rule's row in the README's rules table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleDoc {
    pub resource: &'static str,
    pub violating_when: &'static str,
    pub action: &'static str,
}

pub trait Rule: Sync {
    fn kind(&self) -> ResourceKind;
    fn doc(&self) -> RuleDoc;
    /// Every IAM action its reads and its action need, for the member role and the grants.
    fn iam_actions(&self) -> &'static [&'static str];
    /// Judges one resource of its kind (anything else complies). Called only when the
    /// rule is on.
    fn judge(&self, policy: &Policy, resource: Resource<'_>) -> Judgement;
    /// For a rule that answers [`Judgement::NeedsMetrics`]: the series to read.
    fn metric(&self, _policy: &Policy) -> Option<MetricSpec> {
        None
    }
    /// For a metric rule: what is done to a resource its series shows idle.
    fn idle_action(&self) -> Action {
        Action::NotifyOnly
    }
    /// For a metric rule: whether the series shows the resource idle.
    fn judge_series(&self, _policy: &Policy, _series: &MetricSeries, _window: &MetricWindow) -> IdleVerdict {
        IdleVerdict::NotIdle { reason: "this rule reads no metric".into(), evidence: serde_json::Value::Null }
    }
}

/// A rule's policy table.
pub trait RuleConfig {
    fn enabled(&self) -> bool;
    /// Values out of range, each error naming its field under `table` (`rules.x`).
    fn validate(&self, _table: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The `enabled = false` switch every table has; `true` when absent.
pub(crate) fn yes() -> bool {
    true
}

/// A rule with nothing to configure but its switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl RuleConfig for Switch {
    fn enabled(&self) -> bool {
        self.enabled
    }
}

macro_rules! registry {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every rule, as findings and audit rows name it (`ec2-idle-cpu`); its policy table
        /// is `[rules.<module>]` (`[rules.ec2_idle_cpu]`).
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            strum::IntoStaticStr, strum::EnumIter,
        )]
        #[serde(rename_all = "kebab-case")]
        #[strum(serialize_all = "kebab-case")]
        pub enum RuleId {
            $($variant),+
        }

        /// The policy file's `[rules.*]` tables; an absent table means the rule is off.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Rules {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $module: Option<$module::Config>,
            )+
        }

        impl Rules {
            /// Whether the rule's table is present and not switched off.
            pub fn on(&self, id: RuleId) -> bool {
                match id {
                    $(RuleId::$variant => self.$module.as_ref().is_some_and(RuleConfig::enabled),)+
                }
            }

            pub(crate) fn validate(&self) -> Result<(), String> {
                $(
                    if let Some(config) = &self.$module {
                        config.validate(concat!("rules.", stringify!($module)))?;
                    }
                )+
                Ok(())
            }
        }

        /// Registry order is judging order: of the rules on a resource's kind, the first
        /// that finds a violation makes the finding.
        pub static REGISTRY: &[(RuleId, &dyn Rule)] = &[$((RuleId::$variant, &$module::RULE)),+];

        impl RuleId {
            pub fn rule(self) -> &'static dyn Rule {
                match self {
                    $(RuleId::$variant => &$module::RULE,)+
                }
            }

            /// The rule's policy table under `[rules]`.
            pub fn table(self) -> &'static str {
                match self {
                    $(RuleId::$variant => stringify!($module),)+
                }
            }
        }
    };
}

registry! {
    Ec2UnusedEnvironment => ec2_unused_environment,
    Ec2MissingTags => ec2_missing_tags,
    Ec2StoppedMissingTags => ec2_stopped_missing_tags,
    Ec2IdleCpu => ec2_idle_cpu,
    RdsIdle => rds_idle,
    EipUnattached => eip_unattached,
    IamConsoleWithoutMfa => iam_console_without_mfa,
    S3PublicBucket => s3_public_bucket,
    RdsUnencrypted => rds_unencrypted,
    EbsUnattached => ebs_unattached,
    EbsUnencrypted => ebs_unencrypted,
}

impl RuleId {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn kind(self) -> ResourceKind {
        self.rule().kind()
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules that are on for `kind`, in registry order.
pub fn on_for(policy: &Policy, kind: ResourceKind) -> impl Iterator<Item = (RuleId, &'static dyn Rule)> + '_ {
    REGISTRY.iter().copied().filter(move |(id, rule)| rule.kind() == kind && policy.rules.on(*id))
}

/// The README's rules table, generated from the registry (a test keeps the README equal to it).
pub fn readme_table() -> String {
    let mut out = String::from(
        "| policy (`finding.policy`) | resource | violating when | action after grace + recheck |\n|---|---|---|---|\n",
    );
    for (id, rule) in REGISTRY {
        let doc = rule.doc();
        out.push_str(&format!("| `{id}` | {} | {} | {} |\n", doc.resource, doc.violating_when, doc.action));
    }
    out
}

/// The lookback and minimum-age checks shared by the metric rules' tables.
pub(crate) fn validate_window(table: &str, window: IdleWindow) -> Result<(), String> {
    /// CloudWatch keeps one-day datapoints for 455 days; a quarter is plenty for "idle".
    const MAX_LOOKBACK_DAYS: u32 = 90;
    if window.lookback_days == 0 || window.lookback_days > MAX_LOOKBACK_DAYS {
        return Err(format!(
            "{table}.lookback_days: must be between 1 and {MAX_LOOKBACK_DAYS}, got {}",
            window.lookback_days
        ));
    }
    if window.min_age_days > 3650 {
        return Err(format!("{table}.min_age_days: at most 3650, got {}", window.min_age_days));
    }
    Ok(())
}

/// The required tags a resource lacks (absent or blank), in the order the policy lists them.
pub(crate) fn missing_tags<'a>(tags: &crate::model::Tags, required: &'a [String]) -> Vec<&'a str> {
    required.iter().filter(|t| tags.get(*t).is_none_or(|v| v.trim().is_empty())).map(String::as_str).collect()
}

/// A required-tags list: at least one key, none blank.
pub(crate) fn validate_tag_list(table: &str, tags: &[String]) -> Result<(), String> {
    if tags.is_empty() || tags.iter().any(|t| t.trim().is_empty()) {
        return Err(format!("{table}.tags: needs at least one non-empty tag key"));
    }
    Ok(())
}

pub(crate) fn default_lookback_days() -> u32 {
    7
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn every_rule_is_registered_once_with_its_table_and_name() {
        let ids: Vec<RuleId> = REGISTRY.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, RuleId::iter().collect::<Vec<_>>(), "the registry lists every rule, in enum order");
        for id in RuleId::iter() {
            assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(id.as_str()));
            assert_eq!(id.table().replace('_', "-"), id.as_str(), "table and name are one spelling");
            assert!(!id.rule().iam_actions().is_empty(), "{id} declares its IAM actions");
        }
    }
}
