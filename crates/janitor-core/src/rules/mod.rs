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
    EbsSnapshot, EbsVolume, Ec2Instance, ElasticIp, IamCredential, LambdaFunction, MetricSeries, MetricWindow,
    ProductInScope, PublicAccessBlock, RdsInstance, RdsSnapshot, S3Bucket, SecurityGroup, Statistic,
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
    SecurityGroup(&'a SecurityGroup),
    EbsSnapshot(&'a EbsSnapshot),
    RdsSnapshot(&'a RdsSnapshot),
    LambdaFunction(&'a LambdaFunction),
    /// A provisioned product with its launcher's count in the scope and the allow-list.
    ProvisionedProduct(&'a ProductInScope),
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
            Resource::SecurityGroup(_) => ResourceKind::SecurityGroup,
            Resource::EbsSnapshot(_) => ResourceKind::EbsSnapshot,
            Resource::RdsSnapshot(_) => ResourceKind::RdsSnapshot,
            Resource::LambdaFunction(_) => ResourceKind::LambdaFunction,
            Resource::ProvisionedProduct(_) => ResourceKind::ProvisionedProduct,
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
    /// `now` is the run's clock, for rules that judge an age (stopped since, created on).
    fn judge(&self, policy: &Policy, now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement;
    /// Whether the rule can judge a resource the moment it is created (the `onboard`
    /// function, on its CloudTrail event): it needs no metric, no age and nothing else of
    /// the scope. Opt-in, so a new rule is never judged early by accident.
    fn at_creation(&self) -> bool {
        false
    }
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
    Ec2StoppedLong => ec2_stopped_long,
    Ec2IdleCpu => ec2_idle_cpu,
    Ec2MissingMonitoring => ec2_missing_monitoring,
    RdsIdle => rds_idle,
    EipUnattached => eip_unattached,
    IamConsoleWithoutMfa => iam_console_without_mfa,
    S3PublicBucket => s3_public_bucket,
    RdsUnencrypted => rds_unencrypted,
    EbsUnattached => ebs_unattached,
    EbsUnencrypted => ebs_unencrypted,
    SgOpenAdminPorts => sg_open_admin_ports,
    EbsSnapshotOld => ebs_snapshot_old,
    RdsSnapshotOld => rds_snapshot_old,
    S3EmptyBucket => s3_empty_bucket,
    LambdaUnused => lambda_unused,
    ScProductStale => sc_product_stale,
    ScProductsPerUser => sc_products_per_user,
    ScProductName => sc_product_name,
    ScUnauthorizedLauncher => sc_unauthorized_launcher,
}

mod snapshot_old;
pub mod tags;

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

/// When rules judge: in a scheduled run (every rule) or as a resource is created (only
/// those that say [`Rule::at_creation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    Run,
    Creation,
}

/// The rules that are on for `kind`, in registry order.
pub fn on_for(policy: &Policy, kind: ResourceKind) -> impl Iterator<Item = (RuleId, &'static dyn Rule)> + '_ {
    on_for_at(policy, kind, Timing::Run)
}

/// The rules that are on for `kind` and judge at `timing`, in registry order.
pub fn on_for_at(
    policy: &Policy,
    kind: ResourceKind,
    timing: Timing,
) -> impl Iterator<Item = (RuleId, &'static dyn Rule)> + '_ {
    REGISTRY.iter().copied().filter(move |(id, rule)| {
        rule.kind() == kind && policy.rules.on(*id) && (timing == Timing::Run || rule.at_creation())
    })
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

/// A table that is a switch and an age threshold: `older_than_days`, `DAYS` by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OlderThan<const DAYS: u32> {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "OlderThan::<DAYS>::default_days")]
    pub older_than_days: u32,
}

impl<const DAYS: u32> OlderThan<DAYS> {
    fn default_days() -> u32 {
        DAYS
    }
}

impl<const DAYS: u32> RuleConfig for OlderThan<DAYS> {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        validate_days(table, "older_than_days", self.older_than_days)
    }
}

/// An age threshold in days: `0` judges any age (the emulator's setting), at most ten years.
pub(crate) fn validate_days(table: &str, field: &str, days: u32) -> Result<(), String> {
    if days > 3650 {
        return Err(format!("{table}.{field}: at most 3650, got {days}"));
    }
    Ok(())
}

/// Whole days from `then` to `now`; negative when a clock puts `then` in the future.
pub(crate) fn whole_days_since(now: chrono::DateTime<chrono::Utc>, then: chrono::DateTime<chrono::Utc>) -> i64 {
    (now - then).num_days()
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

    #[test]
    fn a_rule_judged_at_creation_reads_no_metric_and_no_age() {
        let policy = crate::policy::Policy::from_toml_str(crate::policy::BUILTIN_POLICY, "built-in").unwrap();
        let early: Vec<RuleId> = REGISTRY.iter().filter(|(_, r)| r.at_creation()).map(|(id, _)| *id).collect();
        for id in &early {
            assert!(id.rule().metric(&policy).is_none(), "{id} reads a metric");
        }
        assert_eq!(
            early,
            [
                RuleId::Ec2UnusedEnvironment,
                RuleId::Ec2MissingTags,
                RuleId::IamConsoleWithoutMfa,
                RuleId::S3PublicBucket,
                RuleId::RdsUnencrypted,
                RuleId::EbsUnencrypted,
                RuleId::SgOpenAdminPorts,
            ]
        );
    }
}
