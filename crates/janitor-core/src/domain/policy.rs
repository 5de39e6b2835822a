//! The policy file: thresholds, required tags, caps, protect tag, who may snooze.
//! Loading it validates it; an unknown rule or field is an error, never a silent default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{JanitorError, Result};
use crate::rules::Rules;

/// The policy shipped in the repository, compiled in so every Lambda has a valid default.
pub const BUILTIN_POLICY: &str = include_str!("../../../../policies/janitor.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "default_protect_tag")]
    pub protect_tag: String,
    #[serde(default = "default_owner_tag")]
    pub owner_tag: String,
    /// Notification to recheck, e.g. `"72h"`; see [`PolicyDuration`].
    #[serde(default = "default_grace_period")]
    pub grace_period: PolicyDuration,
    #[serde(default = "default_lock_margin_hours")]
    pub lock_margin_hours: u32,
    #[serde(default = "default_max_findings_per_scope")]
    pub max_findings_per_scope: usize,
    #[serde(default = "default_max_actions_per_run")]
    pub max_actions_per_run: usize,
    #[serde(default = "default_scan_concurrency")]
    pub scan_concurrency: usize,
    /// How long a finding's flag history (first flagged, times flagged) outlives the last
    /// run that flagged it.
    #[serde(default = "default_history_retention_days")]
    pub history_retention_days: u32,
    /// Never scanned, even when a run names them or the organization lists them.
    #[serde(default)]
    pub excluded_accounts: Vec<String>,
    /// Never scanned in any account, even when a run names them.
    #[serde(default)]
    pub excluded_regions: Vec<String>,
    /// Service Catalog products (by product name) whose provisioned products are never
    /// judged: Control Tower vends every account as one, and they are meant to last.
    #[serde(default)]
    pub excluded_catalog_products: Vec<String>,
    #[serde(default)]
    pub snooze: SnoozePolicy,
    /// Resources judged as they are created (the `onboard` function).
    #[serde(default)]
    pub onboard: OnboardPolicy,
    /// Security events alerted from CloudTrail (the `onboard` function).
    #[serde(default)]
    pub security: SecurityPolicy,
    /// How owners are told: Slack, Microsoft Teams or email, by owner domain or channel.
    #[serde(default)]
    pub delivery: crate::delivery::DeliveryPolicy,
    /// Unit prices (USD) that replace AWS's on-demand ones, by price key
    /// (`"ec2/*/m5.large" = 0.08`; a region of `*` holds everywhere): a discount, a region
    /// the bundled table lacks.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub prices: std::collections::BTreeMap<crate::cost::PriceKey, f64>,
    #[serde(default)]
    pub rules: Rules,
}

/// How the `onboard` function tells owners about resources it judges at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnboardPolicy {
    /// A resource already told about for a rule is not told again for that long (a bucket
    /// policy edited five times in an hour is one message).
    #[serde(default = "default_renotify_after")]
    pub renotify_after: PolicyDuration,
    /// Whom to tell about a resource without an owner tag, by the ARN of the principal
    /// that created it (`*` matches any run of characters; the longest matching pattern
    /// wins): an email or a `#channel`. Unmatched, an IAM Identity Center user's session
    /// names them; else the default channel.
    #[serde(default)]
    pub owners: std::collections::BTreeMap<String, String>,
    /// Principals whose calls are not judged: the janitor's own roles, whose remediation
    /// would otherwise come back as events.
    #[serde(default = "default_ignore_principals")]
    pub ignore_principals: Vec<String>,
}

impl Default for OnboardPolicy {
    fn default() -> Self {
        OnboardPolicy {
            renotify_after: default_renotify_after(),
            owners: Default::default(),
            ignore_principals: default_ignore_principals(),
        }
    }
}

impl OnboardPolicy {
    /// The owner the policy names for a creator's ARN, if any pattern matches it.
    pub fn owner_for(&self, arn: &str) -> Option<&str> {
        self.owners
            .iter()
            .filter(|(pattern, _)| crate::rules::sc_unauthorized_launcher::glob(pattern, arn))
            .max_by_key(|(pattern, _)| pattern.len())
            .map(|(_, owner)| owner.as_str())
    }

    pub fn ignores(&self, arn: &str) -> bool {
        self.ignore_principals.iter().any(|p| crate::rules::sc_unauthorized_launcher::glob(p, arn))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        for (pattern, owner) in &self.owners {
            if !pattern.starts_with("arn:") {
                return Err(format!("onboard.owners: `{pattern}` is not an ARN pattern"));
            }
            if owner.trim().is_empty() || owner.contains(char::is_whitespace) {
                return Err(format!("onboard.owners.\"{pattern}\": `{owner}` is not an email or a #channel"));
            }
        }
        if let Some(bad) = self.ignore_principals.iter().find(|p| !p.starts_with("arn:")) {
            return Err(format!("onboard.ignore_principals: `{bad}` is not an ARN pattern"));
        }
        Ok(())
    }
}

/// Which security signals the `onboard` function alerts on (see `steps::security`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Failed console sign-ins of one user in one clock hour that raise an alert; 0: off.
    #[serde(default = "default_console_login_failures")]
    pub console_login_failures_per_hour: u32,
    /// Denied calls of one principal within `minutes` that raise an alert; a count of 0: off.
    #[serde(default = "default_access_denied_burst")]
    pub access_denied_burst: Burst,
    /// Any call by an account's root user.
    #[serde(default = "crate::rules::yes")]
    pub root_activity: bool,
    /// A trail stopped, deleted or weakened.
    #[serde(default = "crate::rules::yes")]
    pub cloudtrail_tampering: bool,
    #[serde(default)]
    pub iam_policy_changes: IamPolicyChanges,
    /// Managed policies that grant full access (alerted on under `admin-only`).
    #[serde(default = "default_admin_policies")]
    pub admin_policies: Vec<String>,
    /// A security group rule open to 0.0.0.0/0 or ::/0.
    #[serde(default = "crate::rules::yes")]
    pub open_ingress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    pub count: u32,
    pub minutes: u32,
}

/// Which IAM policy attachments and inline policies are alerted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IamPolicyChanges {
    All,
    /// `admin_policies`, and inline or new versions allowing every action on every resource.
    #[default]
    AdminOnly,
    Off,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            console_login_failures_per_hour: default_console_login_failures(),
            access_denied_burst: default_access_denied_burst(),
            root_activity: true,
            cloudtrail_tampering: true,
            iam_policy_changes: IamPolicyChanges::default(),
            admin_policies: default_admin_policies(),
            open_ingress: true,
        }
    }
}

impl SecurityPolicy {
    fn validate(&self) -> std::result::Result<(), String> {
        let burst = self.access_denied_burst;
        if burst.count > 0 && !(1..=1440).contains(&burst.minutes) {
            return Err(format!("security.access_denied_burst.minutes: between 1 and 1440, got {}", burst.minutes));
        }
        if let Some(bad) = self.admin_policies.iter().find(|p| !p.starts_with("arn:")) {
            return Err(format!("security.admin_policies: `{bad}` is not a policy ARN"));
        }
        Ok(())
    }
}

fn default_console_login_failures() -> u32 {
    5
}

fn default_access_denied_burst() -> Burst {
    Burst { count: 20, minutes: 10 }
}

fn default_admin_policies() -> Vec<String> {
    ["AdministratorAccess", "IAMFullAccess", "PowerUserAccess"]
        .iter()
        .map(|name| format!("arn:aws:iam::aws:policy/{name}"))
        .collect()
}

fn default_renotify_after() -> PolicyDuration {
    PolicyDuration::hours(24)
}

fn default_ignore_principals() -> Vec<String> {
    vec![
        "arn:aws:sts::*:assumed-role/CloudJanitorMemberRole/*".into(),
        "arn:aws:sts::*:assumed-role/cloud-janitor-*".into(),
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnoozePolicy {
    #[serde(default = "default_snooze_days")]
    pub default_days: u32,
    #[serde(default = "default_snooze_max_days")]
    pub max_days: u32,
    #[serde(default)]
    pub allowed_users: Vec<String>,
}

impl Default for SnoozePolicy {
    fn default() -> Self {
        SnoozePolicy {
            default_days: default_snooze_days(),
            max_days: default_snooze_max_days(),
            allowed_users: Vec::new(),
        }
    }
}

/// The look-back window and age gate of one idle rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleWindow {
    pub lookback_days: u32,
    pub min_age_days: u32,
}

impl IdleWindow {
    /// The minimum age defaults to the look-back window: a younger resource cannot show a
    /// whole idle window.
    pub fn new(lookback_days: u32, min_age_days: Option<u32>) -> IdleWindow {
        IdleWindow { lookback_days, min_age_days: min_age_days.unwrap_or(lookback_days) }
    }
}

/// A span of time written as a number and a unit: `"90s"`, `"15m"`, `"72h"`, `"3d"`.
/// Seconds exist so tests can run a real grace period; the policy file says hours or days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyDuration {
    seconds: u32,
}

impl PolicyDuration {
    /// At most a year: a longer grace period or lock is a typo, not a policy.
    const MAX_SECONDS: u64 = 366 * 86_400;

    pub fn seconds(seconds: u32) -> Self {
        PolicyDuration { seconds }
    }

    pub fn hours(hours: u32) -> Self {
        PolicyDuration { seconds: hours.saturating_mul(3600) }
    }

    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.seconds))
    }
}

impl TryFrom<String> for PolicyDuration {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit_seconds: u64 = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("`{text}` is not a duration like \"90s\", \"15m\", \"72h\" or \"3d\"")),
        };
        let seconds = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_seconds))
            .filter(|s| *s <= Self::MAX_SECONDS)
            .ok_or_else(|| format!("`{text}`: needs a whole number of at most 366 days"))?;
        Ok(PolicyDuration { seconds: u32::try_from(seconds).map_err(|e| e.to_string())? })
    }
}

impl From<PolicyDuration> for String {
    fn from(d: PolicyDuration) -> String {
        match d.seconds {
            s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
            s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

impl Policy {
    /// Whether the policy leaves this account out of every run.
    pub fn excludes_account(&self, account: &str) -> bool {
        self.excluded_accounts.iter().any(|a| a == account)
    }

    /// Whether the policy leaves this region out in every account.
    pub fn excludes_region(&self, region: &str) -> bool {
        self.excluded_regions.iter().any(|r| r == region)
    }

    /// Why a resource is out of the janitor's reach, if the policy puts it there.
    pub fn excludes(&self, key: &crate::model::ResourceKey) -> Option<String> {
        let (account, region) = (key.account(), key.region());
        if self.excludes_account(account) {
            return Some(format!("account {account} is excluded by the policy"));
        }
        self.excludes_region(region).then(|| format!("region {region} is excluded by the policy"))
    }

    pub fn builtin() -> Result<Policy> {
        Policy::from_toml_str(BUILTIN_POLICY, "builtin policy")
    }

    /// `JANITOR_POLICY_FILE` when set, otherwise the policy compiled into the binary.
    pub fn from_env() -> Result<Policy> {
        match std::env::var_os("JANITOR_POLICY_FILE") {
            Some(path) => Policy::load(Path::new(&path)),
            None => Policy::builtin(),
        }
    }

    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| JanitorError::InvalidPolicy(format!("cannot read {}: {e}", path.display())))?;
        Policy::from_toml_str(&text, &path.display().to_string())
    }

    pub fn from_toml_str(text: &str, source: &str) -> Result<Policy> {
        let policy: Policy = toml::from_str(text).map_err(|e| JanitorError::InvalidPolicy(format!("{source}: {e}")))?;
        policy.validate().map_err(|e| JanitorError::InvalidPolicy(format!("{source}: {e}")))?;
        Ok(policy)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        non_empty("protect_tag", &self.protect_tag)?;
        non_empty("owner_tag", &self.owner_tag)?;
        at_least("max_findings_per_scope", self.max_findings_per_scope, 1)?;
        at_least("max_actions_per_run", self.max_actions_per_run, 1)?;
        at_least("scan_concurrency", self.scan_concurrency, 1)?;
        if self.scan_concurrency > 64 {
            return Err(format!("scan_concurrency: at most 64, got {}", self.scan_concurrency));
        }
        at_least("snooze.default_days", self.snooze.default_days as usize, 1)?;
        if self.snooze.default_days > self.snooze.max_days {
            return Err(format!(
                "snooze.default_days: {} is longer than snooze.max_days ({})",
                self.snooze.default_days, self.snooze.max_days
            ));
        }
        at_least("history_retention_days", self.history_retention_days as usize, 1)?;
        if let Some(bad) =
            self.excluded_accounts.iter().find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("excluded_accounts: `{bad}` is not a 12-digit account id"));
        }
        if let Some(bad) = self.excluded_regions.iter().find(|r| r.trim().is_empty() || r.contains(char::is_whitespace))
        {
            return Err(format!("excluded_regions: `{bad}` is not a region name"));
        }
        if self.history_retention_days > 3650 {
            return Err(format!("history_retention_days: at most 3650, got {}", self.history_retention_days));
        }
        for (key, usd) in &self.prices {
            if !usd.is_finite() || *usd < 0.0 {
                return Err(format!("prices.\"{key}\": must be a price of 0 or more, got {usd}"));
            }
        }
        self.onboard.validate()?;
        self.security.validate()?;
        self.delivery.validate()?;
        self.rules.validate()?;
        Ok(())
    }

    pub fn history_retention(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.history_retention_days))
    }

    /// How long a lock must live: the whole run, i.e. the grace period plus a margin.
    pub fn lock_ttl(&self) -> chrono::Duration {
        self.grace_period.as_chrono() + chrono::Duration::hours(i64::from(self.lock_margin_hours))
    }
}

fn non_empty(field: &str, value: &str) -> std::result::Result<(), String> {
    if value.trim().is_empty() { Err(format!("{field}: must not be empty")) } else { Ok(()) }
}

fn at_least(field: &str, value: usize, min: usize) -> std::result::Result<(), String> {
    if value < min { Err(format!("{field}: must be at least {min}, got {value}")) } else { Ok(()) }
}

fn default_protect_tag() -> String {
    "janitor:protect".into()
}
fn default_owner_tag() -> String {
    "Owner".into()
}
fn default_grace_period() -> PolicyDuration {
    PolicyDuration::hours(72)
}
fn default_history_retention_days() -> u32 {
    400
}

fn default_lock_margin_hours() -> u32 {
    24
}
fn default_max_findings_per_scope() -> usize {
    100
}
fn default_max_actions_per_run() -> usize {
    25
}
fn default_scan_concurrency() -> usize {
    8
}
fn default_snooze_days() -> u32 {
    30
}
fn default_snooze_max_days() -> u32 {
    90
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleId;

    #[test]
    fn builtin_policy_loads_with_every_rule_on() {
        let p = Policy::from_toml_str(BUILTIN_POLICY, "builtin").unwrap();
        assert_eq!(p.protect_tag, "janitor:protect");
        let rules = &p.rules;
        let keys: Vec<&str> = rules.ec2_missing_tags.as_ref().unwrap().tags.iter().map(|t| t.key()).collect();
        assert_eq!(keys, ["Owner", "CostCenter", "Project"]);
        assert_eq!(rules.ec2_idle_cpu.as_ref().unwrap().cpu_threshold_percent, 5.0);
        assert_eq!(rules.ec2_idle_cpu.as_ref().unwrap().window(), IdleWindow { lookback_days: 7, min_age_days: 7 });
        assert_eq!(rules.ec2_unused_environment.as_ref().unwrap().values, ["testing", "unused"]);
        use strum::IntoEnumIterator;
        assert!(RuleId::iter().all(|id| rules.on(id)), "the built-in policy turns every rule on");
        assert_eq!(p.grace_period, PolicyDuration::hours(72));
        assert_eq!(p.lock_ttl(), chrono::Duration::hours(96));
    }

    fn load_err(text: &str) -> String {
        Policy::from_toml_str(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_fields_and_rules_are_errors_naming_them() {
        let e = load_err("protect_tagg = \"x\"\n");
        assert!(e.contains("unknown field `protect_tagg`"), "{e}");
        let e = load_err("[rules.ec2_idle_gpu]\n");
        assert!(e.contains("unknown field `ec2_idle_gpu`"), "{e}");
        let e = load_err("[rules.ec2_idle_cpu]\ncpu_treshold_percent = 3.0\n");
        assert!(e.contains("unknown field `cpu_treshold_percent`"), "{e}");
        let e = load_err("[rules.ec2_missing_tags]\ntags = [\"Owner\"]\naction = \"terminate\"\n");
        assert!(e.contains("unknown variant `terminate`"), "{e}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_field() {
        let e = load_err("[rules.ec2_idle_cpu]\ncpu_threshold_percent = 150.0\n");
        assert!(e.contains("rules.ec2_idle_cpu.cpu_threshold_percent") && e.contains("150"), "{e}");
        let e = load_err("[rules.rds_idle]\nlookback_days = 0\n");
        assert!(e.contains("rules.rds_idle.lookback_days"), "{e}");
        let e = load_err("max_actions_per_run = 0\n");
        assert!(e.contains("max_actions_per_run"), "{e}");
        let e = load_err("protect_tag = \" \"\n");
        assert!(e.contains("protect_tag"), "{e}");
        let e = load_err("[rules.ec2_missing_tags]\ntags = []\n");
        assert!(e.contains("rules.ec2_missing_tags.tags"), "{e}");
        let e = load_err("grace_period = \"-3h\"\n");
        assert!(e.contains("grace_period") && e.contains("-3h"), "{e}");
        let e = load_err("grace_period = \"72 hours\"\n");
        assert!(e.contains("grace_period") && e.contains("not a duration"), "{e}");
        let e = load_err("grace_period = \"9999999999d\"\n");
        assert!(e.contains("at most 366 days"), "{e}");
    }

    #[test]
    fn durations_read_and_write_in_their_largest_whole_unit() {
        for (text, seconds, canonical) in
            [("90s", 90, "90s"), ("15m", 900, "15m"), ("72h", 259_200, "3d"), ("36h", 129_600, "36h"), ("0s", 0, "0s")]
        {
            let d = PolicyDuration::try_from(text.to_owned()).unwrap();
            assert_eq!(d, PolicyDuration::seconds(seconds), "{text}");
            assert_eq!(String::from(d), canonical);
        }
    }

    #[test]
    fn empty_policy_means_defaults_and_no_rules() {
        let p = Policy::from_toml_str("", "empty").unwrap();
        assert!(!p.rules.on(RuleId::Ec2IdleCpu) && !p.rules.on(RuleId::EipUnattached));
        assert_eq!(p.max_actions_per_run, 25);
    }

    #[test]
    fn disabled_rule_is_off() {
        let p = Policy::from_toml_str("[rules.eip_unattached]\nenabled = false\n", "p").unwrap();
        assert!(!p.rules.on(RuleId::EipUnattached));
    }
}
