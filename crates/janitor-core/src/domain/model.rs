//! The contracts every step, table and message share (see DESIGN.md).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEventType;
use crate::error::{JanitorError, Result};

pub type Tags = BTreeMap<String, String>;

/// Region name used for account-wide kinds (IAM, S3 listing).
pub const GLOBAL_REGION: &str = "global";

pub use crate::kinds::ResourceKind;

/// `{account}/{region}/{kind}/{id}`: the one key snoozes, locks and audit rows share. Its
/// parts are kept parsed; the text is what tables and messages carry, and what it compares,
/// hashes and sorts by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceKey {
    text: String,
    kind: ResourceKind,
    /// Where the region and the id start in `text`.
    region_at: usize,
    id_at: usize,
}

impl ResourceKey {
    pub fn new(account: &str, region: &str, kind: ResourceKind, id: &str) -> Self {
        let region_at = account.len() + 1;
        let id_at = region_at + region.len() + 1 + kind.as_str().len() + 1;
        ResourceKey { text: format!("{account}/{region}/{kind}/{id}"), kind, region_at, id_at }
    }

    pub fn parse(raw: &str) -> Result<Self> {
        let mut parts = raw.splitn(4, '/');
        let (Some(account), Some(region), Some(kind), Some(id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JanitorError::InvalidInput(format!(
                "resource key `{raw}` is not of the form account/region/kind/id"
            )));
        };
        if account.is_empty() || region.is_empty() || id.is_empty() {
            return Err(JanitorError::InvalidInput(format!("resource key `{raw}` has an empty part")));
        }
        let kind: ResourceKind = kind
            .parse()
            .map_err(|_| JanitorError::InvalidInput(format!("resource key `{raw}` names unknown kind `{kind}`")))?;
        Ok(ResourceKey::new(account, region, kind, id))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn account(&self) -> &str {
        &self.text[..self.region_at - 1]
    }

    pub fn region(&self) -> &str {
        let rest = &self.text[self.region_at..];
        rest.split('/').next().unwrap_or_default()
    }

    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.text[self.id_at..]
    }
}

impl PartialEq for ResourceKey {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ResourceKey {}

impl std::hash::Hash for ResourceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for ResourceKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ResourceKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl TryFrom<String> for ResourceKey {
    type Error = JanitorError;
    fn try_from(value: String) -> Result<Self> {
        ResourceKey::parse(&value)
    }
}

impl From<ResourceKey> for String {
    fn from(key: ResourceKey) -> String {
        key.text
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Records what would be done and changes nothing. The default everywhere.
    #[default]
    DryRun,
    Enforce,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::DryRun => "dry-run",
            Mode::Enforce => "enforce",
        })
    }
}

/// One account × region; `region == "global"` carries the account-wide kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

impl Scope {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Scope { account: account.into(), region: region.into() }
    }

    pub fn is_account_wide(&self) -> bool {
        self.region == GLOBAL_REGION
    }

    /// Pseudo resource key used for audit rows about the scope itself.
    pub fn audit_key(&self) -> String {
        format!("{}/{}/scope/-", self.account, self.region)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunContext {
    pub id: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// When the run was planned: the summary reports its duration from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

impl RunContext {
    pub fn scope(&self) -> Result<&Scope> {
        self.scope.as_ref().ok_or_else(|| JanitorError::InvalidInput("run.scope is required for this step".into()))
    }
}

pub use crate::rules::RuleId;

/// What remediation would do once the grace period passed and a recheck still agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    StopInstance,
    SnapshotAndDeleteDb,
    ReleaseAddress,
    TagMfaRequired,
    BlockPublicAccess,
    /// A snapshot first (kept, tagged with the volume), the volume deleted once it completed.
    SnapshotAndDeleteVolume,
    /// Revoke the world-open ranges the finding recorded, if still there; nothing else.
    RevokeOpenIngress,
    NotifyOnly,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Action::StopInstance => "stop the instance",
            Action::SnapshotAndDeleteDb => "take a final snapshot, then delete the DB instance",
            Action::ReleaseAddress => "release the Elastic IP",
            Action::TagMfaRequired => "tag the user janitor:mfa-required",
            Action::BlockPublicAccess => "turn on all four S3 Block Public Access settings",
            Action::SnapshotAndDeleteVolume => "snapshot the volume, then delete it once the snapshot completed",
            Action::RevokeOpenIngress => "revoke the ingress open to the internet on those ports",
            Action::NotifyOnly => "nothing (notify only)",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned));
        f.write_str(name.as_deref().unwrap_or("unknown"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub key: ResourceKey,
    pub kind: ResourceKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub policy: RuleId,
    pub reason: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub evidence: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_flagged: Option<DateTime<Utc>>,
    /// How many earlier runs flagged this resource.
    #[serde(default)]
    pub times_flagged: u32,
    /// Since when the scope cap has kept this finding from its owner (runs in a row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_since: Option<DateTime<Utc>>,
    /// Where and when the owner was told; set by notify, required by remediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<Notice>,
    /// What the resource costs a month and what the action saves, priced where it is found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::Cost>,
}

impl Finding {
    /// A fresh finding of `policy` on `key` (kind and id come from the key): no evidence,
    /// owner, ARN or history yet.
    pub fn new(key: ResourceKey, policy: RuleId, reason: impl Into<String>, action: Action) -> Finding {
        Finding {
            kind: key.kind(),
            id: key.id().to_owned(),
            key,
            arn: None,
            policy,
            reason: reason.into(),
            evidence: serde_json::Value::Null,
            owner: None,
            action,
            first_flagged: None,
            times_flagged: 0,
            deferred_since: None,
            notified: None,
            cost: None,
        }
    }

    /// What identifies this finding among the run's: its resource and its rule.
    pub fn finding_key(&self) -> FindingKey {
        FindingKey { resource: self.key.clone(), rule: self.policy }
    }
}

/// A finding is one rule broken by one resource: several rules may flag one resource, each
/// with its own history, notice, recheck and outcome (snoozes and locks stay per resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindingKey {
    pub resource: ResourceKey,
    pub rule: RuleId,
}

impl fmt::Display for FindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.resource, self.rule)
    }
}

/// The message that told the owner about a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    #[serde(default, skip_serializing_if = "is_slack")]
    pub via: crate::delivery::Via,
    /// Slack: the channel; Teams: the webhook's name; email: the address.
    pub channel: String,
    /// Slack: the message's ts; email: the SNS message id; Teams: empty.
    pub ts: String,
    pub at: DateTime<Utc>,
    /// The Slack user the owner tag resolved to, if any; that user may snooze.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_user: Option<String>,
}

fn is_slack(via: &crate::delivery::Via) -> bool {
    *via == crate::delivery::Via::Slack
}

/// A running resource that only the metric check can judge; kept compact because a scope
/// may carry hundreds of them through the Step Functions payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    pub key: ResourceKey,
    /// The metric rule that will judge it.
    pub rule: RuleId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<DateTime<Utc>>,
    /// Set when the rule's action cannot be taken on this resource: it is notified only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_only: Option<String>,
    /// What it is billed for, so the metric check prices it if it is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<crate::cost::Billable>,
}

/// A part of a scope that could not be scanned; carried to the run summary, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeFailure {
    pub scope: Scope,
    /// What was being listed, e.g. `ec2-instance`, or the step name.
    pub what: String,
    pub error: String,
    pub message: String,
}

/// What steps pass each other: `{run, findings, count, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPayload {
    pub run: RunContext,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ScopeFailure>,
    /// Findings left for a later run because the scope cap was reached.
    #[serde(default)]
    pub deferred: usize,
    /// Findings dropped because another live run holds their lock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_elsewhere: Vec<ResourceKey>,
    /// What remediation did (or would do) per finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<Outcome>,
    /// What the Choice states read: findings still in play.
    #[serde(default)]
    pub count: usize,
    /// When the grace period ends; set by notify, read by the state machine's Wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ends: Option<String>,
    /// The scope's running totals, which the execution output reports per scope.
    #[serde(default)]
    pub tally: Tally,
    /// What the state machine's Catch caught (`{Error, Cause}`), for the release step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
    /// The step whose stored document holds this scope's full payload (see `runstore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<crate::runstore::Stage>,
}

/// What a Step Functions Catch puts at its `ResultPath`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScopeStatus {
    /// Every part of the scope was read and every step finished.
    #[default]
    Ok,
    /// The scope ran to its end, but something in it could not be read or acted on.
    Incomplete,
    /// A step failed after its retries; the scope stopped there.
    Failed,
}

/// A scope's running totals: what the execution output summarises.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    #[serde(default)]
    pub status: ScopeStatus,
    #[serde(default)]
    pub found: usize,
    #[serde(default)]
    pub deferred: usize,
    #[serde(default)]
    pub held_elsewhere: usize,
    #[serde(default)]
    pub notified: usize,
    #[serde(default)]
    pub snoozed: usize,
    #[serde(default)]
    pub cleared: usize,
    #[serde(default)]
    pub would_remediate: usize,
    #[serde(default)]
    pub remediated: usize,
    #[serde(default)]
    pub skipped: usize,
    #[serde(default)]
    pub halted: usize,
    /// Resources whose step failed (lock, notify, recheck read, action).
    #[serde(default)]
    pub failed: usize,
    /// Parts of the scope that could not be listed (e.g. AccessDenied for one service).
    #[serde(default)]
    pub scan_failures: usize,
    /// Everything that makes the scope not OK; the state machine's summary filters on it.
    #[serde(default)]
    pub problems: usize,
    /// What the actions of the findings found would save a month (each resource once).
    #[serde(default)]
    pub savings_found: crate::cost::Usd,
    /// What the dry-run's WOULD_REMEDIATE actions would have saved a month.
    #[serde(default)]
    pub savings_would: crate::cost::Usd,
    /// What the REMEDIATED actions save a month.
    #[serde(default)]
    pub savings_made: crate::cost::Usd,
}

impl Tally {
    /// Adds another scope's counts (not its status).
    pub fn add(&mut self, other: &Tally) {
        self.found += other.found;
        self.deferred += other.deferred;
        self.held_elsewhere += other.held_elsewhere;
        self.notified += other.notified;
        self.snoozed += other.snoozed;
        self.cleared += other.cleared;
        self.would_remediate += other.would_remediate;
        self.remediated += other.remediated;
        self.skipped += other.skipped;
        self.halted += other.halted;
        self.failed += other.failed;
        self.scan_failures += other.scan_failures;
        self.problems += other.problems;
        self.savings_found += other.savings_found;
        self.savings_would += other.savings_would;
        self.savings_made += other.savings_made;
    }

    /// Counts one audit event; events that are not outcomes are ignored.
    pub fn count(&mut self, event: AuditEventType) {
        use AuditEventType::*;
        let field = match event {
            LockHeld => &mut self.held_elsewhere,
            Notified => &mut self.notified,
            Snoozed => &mut self.snoozed,
            Cleared | Gone | AlreadyCompliant | Exempt => &mut self.cleared,
            WouldRemediate => &mut self.would_remediate,
            Remediated => &mut self.remediated,
            Skipped => &mut self.skipped,
            Halted => &mut self.halted,
            Failed | NotifyFailed => &mut self.failed,
            Discovered | Idle | NotIdle | Deferred | Locked | SnoozeDenied | Rechecked | RunEnded | SecurityAlert => {
                return;
            }
        };
        *field += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub key: ResourceKey,
    /// The rule whose finding this is the outcome of.
    pub policy: RuleId,
    /// The audit event remediate recorded: REMEDIATED, WOULD_REMEDIATE, ALREADY_COMPLIANT, …
    pub result: AuditEventType,
    pub detail: serde_json::Value,
}

impl StepPayload {
    pub fn new(run: RunContext) -> Self {
        StepPayload {
            run,
            findings: Vec::new(),
            candidates: Vec::new(),
            failures: Vec::new(),
            deferred: 0,
            held_elsewhere: Vec::new(),
            outcomes: Vec::new(),
            count: 0,
            grace_ends: None,
            tally: Tally::default(),
            error: None,
            stage: None,
        }
    }

    /// Refreshes what the Choice states and the run summary read.
    pub fn recount(&mut self) {
        self.count = self.findings.len();
        self.refresh_tally();
    }

    pub fn refresh_tally(&mut self) {
        self.tally.deferred = self.deferred;
        self.tally.scan_failures = self.failures.len();
        self.tally.problems =
            self.tally.failed + self.tally.scan_failures + self.tally.halted + usize::from(self.error.is_some());
        self.tally.status = if self.error.is_some() {
            ScopeStatus::Failed
        } else if self.tally.problems > 0 {
            ScopeStatus::Incomplete
        } else {
            ScopeStatus::Ok
        };
    }

    /// Counts recorded audit events into the tally.
    pub fn tally_events(&mut self, events: &[crate::audit::AuditEvent]) {
        for e in events {
            self.tally.count(e.event);
        }
    }
}

/// Why a violating resource is left alone: the `reason` of its EXEMPT (or SNOOZED) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exemption {
    #[serde(rename = "protect tag")]
    ProtectTag,
    #[serde(rename = "snoozed")]
    Snoozed,
    /// Told about it within `[onboard].renotify_after` (onboard only).
    #[serde(rename = "recently notified")]
    RecentlyNotified,
}

/// Detection history kept per resource (seed 001's repeat-violation tracking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagHistory {
    pub first_flagged: DateTime<Utc>,
    pub times_flagged: u32,
    pub last_run: String,
    /// Set while the scope cap defers the finding, cleared once it is notified: the cap
    /// puts it first in line next run, so a standing backlog cannot starve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_since: Option<DateTime<Utc>>,
    /// Kept until then (the policy's `history_retention_days` after the last run that flagged
    /// it); a resource compliant for longer starts a fresh history if it is flagged again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl FlagHistory {
    /// The history as it stands for `finding` after `run` counted it (discovery or metric
    /// check has already added this run to `times_flagged`'s stored value), kept for
    /// `retention` from `now`.
    pub fn after_run(finding: &Finding, run: &str, now: DateTime<Utc>, retention: chrono::Duration) -> FlagHistory {
        FlagHistory {
            first_flagged: finding.first_flagged.unwrap_or(now),
            times_flagged: finding.times_flagged + 1,
            last_run: run.to_owned(),
            deferred_since: finding.deferred_since,
            expires_at: Some(now + retention),
        }
    }

    /// Whether a store that deletes expired rows late (DynamoDB's TTL takes up to days)
    /// still holds one that no longer counts.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snooze {
    pub key: ResourceKey,
    pub until: DateTime<Utc>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// On the snapshot the janitor keeps of a volume it deletes: the volume's id.
pub const SNAPSHOT_OF_TAG: &str = "janitor:snapshot-of";
/// How the janitor names the final snapshot of a DB instance it deletes.
pub const FINAL_SNAPSHOT_PREFIX: &str = "janitor-final-";

/// The protect tag counts with its key in any case (`Janitor:Protect`) and any value except
/// `false` (in any case). Tag keys are case-sensitive in AWS, so two spellings can coexist:
/// one that protects is enough.
pub fn is_protected(tags: &Tags, protect_tag: &str) -> bool {
    let wanted = protect_tag.trim();
    tags.iter()
        .any(|(key, value)| key.trim().eq_ignore_ascii_case(wanted) && !value.trim().eq_ignore_ascii_case("false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_key_round_trips_and_rejects_garbage() {
        let key = ResourceKey::new("123456789012", "eu-west-1", ResourceKind::Ec2Instance, "i-0abc");
        assert_eq!(key.as_str(), "123456789012/eu-west-1/ec2-instance/i-0abc");
        assert_eq!(key.account(), "123456789012");
        assert_eq!(key.region(), "eu-west-1");
        assert_eq!(key.kind(), ResourceKind::Ec2Instance);
        assert_eq!(key.id(), "i-0abc");
        assert_eq!(ResourceKey::parse(key.as_str()).unwrap(), key);
        assert!(ResourceKey::parse("123/eu-west-1/spaceship/x").is_err());
        assert!(ResourceKey::parse("123/eu-west-1").is_err());
        assert!(serde_json::from_str::<ResourceKey>("\"a/b/c\"").is_err());
    }

    #[test]
    fn protect_tag_honours_any_value_but_false() {
        let mut tags = Tags::new();
        assert!(!is_protected(&tags, "janitor:protect"));
        tags.insert("janitor:protect".into(), "".into());
        assert!(is_protected(&tags, "janitor:protect"));
        tags.insert("janitor:protect".into(), "FALSE".into());
        assert!(!is_protected(&tags, "janitor:protect"));
        tags.insert("janitor:protect".into(), "yes".into());
        assert!(is_protected(&tags, "janitor:protect"));
    }

    #[test]
    fn protect_tag_key_matches_in_any_case() {
        let tags = |pairs: &[(&str, &str)]| -> Tags { pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect() };
        assert!(is_protected(&tags(&[("Janitor:Protect", "true")]), "janitor:protect"));
        assert!(is_protected(&tags(&[("JANITOR:PROTECT", "")]), "janitor:protect"));
        assert!(!is_protected(&tags(&[("Janitor:Protect", "False")]), "janitor:protect"));
        assert!(is_protected(&tags(&[("Janitor:Protect", "false"), ("janitor:protect", "yes")]), "janitor:protect"));
        assert!(!is_protected(&tags(&[("janitor:protected", "yes")]), "janitor:protect"));
    }

    #[test]
    fn mode_defaults_to_dry_run() {
        let run: RunContext = serde_json::from_str(r#"{"id":"r1"}"#).unwrap();
        assert_eq!(run.mode, Mode::DryRun);
        let err = serde_json::from_str::<RunContext>(r#"{"id":"r1","mode":"enforced"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `enforced`"), "{err}");
    }
}
