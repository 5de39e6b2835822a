//! Discovery: list every candidate of a scope, apply the rules that need no metrics, drop
//! protected and snoozed resources, and hand idle candidates on to the metric check.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::cost::{self, Billable};
use crate::error::{JanitorError, Result};
use crate::kinds::{Kind, Seen};
use crate::model::*;
use crate::rules::{self, Timing};

const ACTOR: &str = "discovery";
/// Tag reads for violators (IAM users, public buckets) in flight at once.
const TAG_READ_CONCURRENCY: usize = 8;

/// What one rule says about one resource it does not find compliant.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Finding(Finding),
    /// Needs the metric check to decide.
    Candidate(Candidate),
    /// Would be judged, but carries the protect tag.
    Protected {
        key: ResourceKey,
        policy: Option<RuleId>,
    },
}

fn owner_of(tags: &Tags, policy: &crate::policy::Policy) -> Option<String> {
    tags.get(&policy.owner_tag).map(|o| o.trim().to_owned()).filter(|o| !o.is_empty())
}

/// What the registry's rules make of one resource, before its tags are considered: a
/// finding for every rule it violates and a candidate for every metric rule that needs its
/// series, in registry order. `Err` when a rule could not read it.
pub fn judge(
    p: &crate::policy::Policy,
    now: DateTime<Utc>,
    key: &ResourceKey,
    resource: rules::Resource<'_>,
) -> std::result::Result<Vec<Verdict>, String> {
    judge_at(p, now, key, resource, Timing::Run)
}

/// [`judge`] with the rules that judge at `timing` only.
pub fn judge_at(
    p: &crate::policy::Policy,
    now: DateTime<Utc>,
    key: &ResourceKey,
    resource: rules::Resource<'_>,
    timing: Timing,
) -> std::result::Result<Vec<Verdict>, String> {
    let mut verdicts = Vec::new();
    for (id, rule) in rules::on_for_at(p, resource.kind(), timing) {
        match rule.judge(p, now, resource) {
            rules::Judgement::Violates { reason, evidence, action } => {
                verdicts.push(Verdict::Finding(Finding { evidence, ..Finding::new(key.clone(), id, reason, action) }))
            }
            rules::Judgement::NeedsMetrics { notify_only } => verdicts.push(Verdict::Candidate(Candidate {
                key: key.clone(),
                rule: id,
                arn: None,
                owner: None,
                launched_at: None,
                notify_only,
                billable: None,
            })),
            rules::Judgement::Unreadable(message) => return Err(message),
            rules::Judgement::Complies => {}
        }
    }
    Ok(verdicts)
}

/// Whether any rule on `kind` is on at `timing`: a kind with none is not listed at all.
fn kind_on(p: &crate::policy::Policy, kind: ResourceKind, timing: Timing) -> bool {
    rules::on_for_at(p, kind, timing).next().is_some()
}

/// A kind's verdicts in a scope, and what of it could not be read (by id).
pub(crate) type PartialScan = (Vec<Verdict>, Vec<(String, JanitorError)>);

/// Lists one kind in `scope` and judges every item with every rule on for it; then honours
/// the protect tag and takes the owner from the tags. Tags the listing does not carry are
/// read for the items a rule flagged only; one whose tags cannot be read is not judged (it
/// might be protected). A kind none of whose rules is on is not listed: no call, no grant.
pub(crate) async fn scan_kind<K: Kind>(deps: &Deps, scope: &Scope) -> Result<PartialScan> {
    if !kind_on(&deps.policy, K::KIND, Timing::Run) {
        return Ok((Vec::new(), Vec::new()));
    }
    let listing = K::list(deps, scope).await?;
    judge_listing::<K>(deps, scope, listing, Timing::Run).await
}

/// Reads the resources `ids` of `K` in `scope` (just created) and judges them with the rules
/// that judge at creation; as [`scan_kind`] otherwise.
pub(crate) async fn scan_ids<K: Kind>(deps: &Deps, scope: &Scope, ids: &[String]) -> Result<PartialScan> {
    if ids.is_empty() || !kind_on(&deps.policy, K::KIND, Timing::Creation) {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut listing = K::read_ids(deps, scope, ids).await?;
    // Asked for and not read: not visible yet, or gone already. Never a silent pass: a
    // failure on record, which the caller may retry.
    let read: HashSet<String> = listing
        .items
        .iter()
        .map(|item| K::seen(scope, item).key.id().to_owned())
        .chain(listing.unreadable.iter().map(|(id, _)| id.clone()))
        .collect();
    for id in ids.iter().filter(|id| !read.contains(id.as_str())) {
        let message = format!("{id} not found: not visible yet, or already gone");
        listing
            .unreadable
            .push((id.clone(), JanitorError::Aws { service: K::KIND.as_str(), operation: "read", message }));
    }
    judge_listing::<K>(deps, scope, listing, Timing::Creation).await
}

async fn judge_listing<K: Kind>(
    deps: &Deps,
    scope: &Scope,
    listing: crate::kinds::Listing<K::Item>,
    timing: Timing,
) -> Result<PartialScan> {
    let p = &deps.policy;
    let now = deps.clock.now();
    let mut failures = listing.unreadable;
    let mut verdicts = Vec::new();
    let mut untagged = Vec::new();
    for item in &listing.items {
        let seen = K::seen(scope, item);
        // Account-wide kinds (buckets) are keyed in their own region, which may be excluded.
        if p.excludes_region(seen.key.region()) {
            continue;
        }
        let judged = match judge_at(p, now, &seen.key, seen.resource, timing) {
            Ok(judged) if judged.is_empty() => continue,
            Ok(judged) => priced(deps, &seen.key, K::billable(item), judged).await,
            Err(message) => {
                failures.push((seen.key.id().to_owned(), K::unreadable(message)));
                continue;
            }
        };
        match seen.tags {
            Some(tags) => verdicts.extend(with_tags(p, judged, tags, &seen, K::owner_hint(item))),
            None => untagged.push((item, seen, judged)),
        }
    }
    let inventory = deps.inventory.as_ref();
    let tagged: Vec<_> = stream::iter(untagged)
        .map(|(item, seen, judged)| async move { (K::tags(inventory, scope, item).await, item, seen, judged) })
        .buffered(TAG_READ_CONCURRENCY)
        .collect()
        .await;
    for (tags, item, seen, judged) in tagged {
        match tags {
            Ok(tags) => verdicts.extend(with_tags(p, judged, &tags, &seen, K::owner_hint(item))),
            Err(e) => failures.push((seen.key.id().to_owned(), e)),
        }
    }
    Ok((verdicts, failures))
}

/// Each finding with what its resource costs and its action saves; each candidate with what
/// the metric check needs to price it if it is idle.
async fn priced(deps: &Deps, key: &ResourceKey, billable: Billable, verdicts: Vec<Verdict>) -> Vec<Verdict> {
    let mut out = Vec::with_capacity(verdicts.len());
    for verdict in verdicts {
        out.push(match verdict {
            Verdict::Finding(f) => {
                let cost = cost::estimate(deps.prices.as_ref(), key.region(), &billable, f.action).await;
                Verdict::Finding(Finding { cost: Some(cost), ..f })
            }
            Verdict::Candidate(c) => Verdict::Candidate(Candidate { billable: Some(billable.clone()), ..c }),
            other => other,
        });
    }
    out
}

/// A resource's verdicts once its tags are known: all protected, or each with its owner
/// (the owner tag, else who the resource says made it), ARN and age.
fn with_tags(
    p: &crate::policy::Policy,
    verdicts: Vec<Verdict>,
    tags: &Tags,
    seen: &Seen<'_>,
    owner_hint: Option<String>,
) -> Vec<Verdict> {
    let protected = is_protected(tags, &p.protect_tag);
    let owner = owner_of(tags, p).or(owner_hint);
    let key = &seen.key;
    verdicts
        .into_iter()
        .map(|verdict| match verdict {
            Verdict::Finding(f) if protected => Verdict::Protected { key: key.clone(), policy: Some(f.policy) },
            Verdict::Candidate(c) if protected => Verdict::Protected { key: key.clone(), policy: Some(c.rule) },
            Verdict::Finding(f) => Verdict::Finding(Finding { owner: owner.clone(), arn: seen.arn.clone(), ..f }),
            Verdict::Candidate(c) => Verdict::Candidate(Candidate {
                arn: seen.arn.clone(),
                owner: owner.clone(),
                launched_at: seen.created_at,
                ..c
            }),
            other => other,
        })
        .collect()
}

/// Scans one scope. Failures of one kind are recorded in the payload (and audited) while
/// the other kinds are still scanned; only an audit write failure aborts.
pub async fn discover_scope(deps: &Deps, run: &RunContext) -> Result<StepPayload> {
    let scope = run.scope()?.clone();
    let now = deps.clock.now();
    let (mut payload, mut events) = scan(deps, run, now, ACTOR).await?;
    payload.findings.sort_by(|a, b| a.key.cmp(&b.key));
    payload.candidates.sort_by(|a, b| a.key.cmp(&b.key));
    annotate_history(deps, &run.id, &mut payload.findings, now).await?;
    for f in &payload.findings {
        events.push(AuditEvent::for_finding(
            f,
            &run.id,
            AuditEventType::Discovered,
            now,
            ACTOR,
            json!({ "reason": f.reason, "action": f.action, "evidence": f.evidence, "owner": f.owner, "cost": f.cost }),
        ));
    }
    payload.recount();
    deps.audit.record(&events).await?;
    tracing::info!(scope = %scope, findings = payload.findings.len(), candidates = payload.candidates.len(), failures = payload.failures.len(), "scope discovered");
    Ok(payload)
}

/// The scope as it is now: violations, candidates for the metric check and failures, with
/// the FAILED and EXEMPT events that explain them. Writes nothing.
pub(crate) async fn scan(
    deps: &Deps,
    run: &RunContext,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<(StepPayload, Vec<AuditEvent>)> {
    let scope = run.scope()?.clone();
    let in_scope = &scope;
    let scans = futures::future::join_all(
        ResourceKind::in_scope(in_scope)
            .map(|kind| async move { (kind, crate::kinds::scan(kind, deps, in_scope).await) }),
    )
    .await;
    settle(deps, run, scans, now, actor).await
}

/// What each kind's scan of the run's scope came to: findings, candidates and failures, with
/// the FAILED rows, and the EXEMPT rows of protected and snoozed resources. Writes nothing.
pub(crate) async fn settle(
    deps: &Deps,
    run: &RunContext,
    scans: Vec<(ResourceKind, Result<PartialScan>)>,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<(StepPayload, Vec<AuditEvent>)> {
    let scope = run.scope()?.clone();
    let p = &deps.policy;
    let mut verdicts = Vec::new();
    let mut all_failures: Vec<(String, JanitorError)> = Vec::new();
    for (kind, result) in scans {
        match result {
            Ok((found, failures)) => {
                verdicts.extend(found);
                all_failures.extend(failures.into_iter().map(|(id, e)| (format!("{kind}/{id}"), e)));
            }
            Err(e) => all_failures.push((kind.as_str().to_owned(), e)),
        }
    }

    let mut payload = StepPayload::new(run.clone());
    let mut events = Vec::new();
    for (what, error) in all_failures {
        tracing::warn!(scope = %scope, what = %what, error = error.error_name(), message = %error, "scan failed");
        events.push(AuditEvent::new(
            scope.audit_key(),
            &run.id,
            AuditEventType::Failed,
            now,
            actor,
            json!({ "what": what, "error": error.error_name(), "message": error.to_string() }),
        ));
        payload.failures.push(ScopeFailure {
            scope: scope.clone(),
            what,
            error: error.error_name().to_owned(),
            message: error.to_string(),
        });
    }
    for verdict in verdicts {
        match verdict {
            Verdict::Finding(f) => payload.findings.push(f),
            Verdict::Candidate(c) => payload.candidates.push(c),
            Verdict::Protected { key, policy } => {
                let detail = json!({ "reason": Exemption::ProtectTag, "tag": p.protect_tag });
                events.push(
                    AuditEvent::new(key.as_str(), &run.id, AuditEventType::Exempt, now, actor, detail)
                        .with_policy(policy),
                );
            }
        }
    }

    drop_snoozed(deps, &mut payload, now, actor, &mut events).await?;
    Ok((payload, events))
}

async fn drop_snoozed(
    deps: &Deps,
    payload: &mut StepPayload,
    now: DateTime<Utc>,
    actor: &str,
    events: &mut Vec<AuditEvent>,
) -> Result<()> {
    let keys: Vec<ResourceKey> = payload
        .findings
        .iter()
        .map(|f| f.key.clone())
        .chain(payload.candidates.iter().map(|c| c.key.clone()))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let live = deps.snoozes.live_snoozes(&keys, now).await?;
    if live.is_empty() {
        return Ok(());
    }
    let run_id = payload.run.id.clone();
    let mut exempt = |key: &ResourceKey, policy: Option<RuleId>| {
        let snooze = &live[key];
        let detail = json!({ "reason": Exemption::Snoozed, "until": snooze.until, "by": snooze.by });
        events.push(
            AuditEvent::new(key.as_str(), &run_id, AuditEventType::Exempt, now, actor, detail).with_policy(policy),
        );
    };
    payload.findings.retain(|f| {
        let snoozed = live.contains_key(&f.key);
        if snoozed {
            exempt(&f.key, Some(f.policy));
        }
        !snoozed
    });
    payload.candidates.retain(|c| {
        let snoozed = live.contains_key(&c.key);
        if snoozed {
            exempt(&c.key, Some(c.rule));
        }
        !snoozed
    });
    Ok(())
}

/// Sets first-flagged / times-flagged from the audit history and counts this run once.
pub(crate) async fn annotate_history(
    deps: &Deps,
    run_id: &str,
    findings: &mut [Finding],
    now: DateTime<Utc>,
) -> Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let keys: Vec<FindingKey> = findings.iter().map(Finding::finding_key).collect();
    let mut history = deps.audit.flag_history(&keys).await?;
    // Expired but not yet deleted (DynamoDB's TTL deletes late): it no longer counts.
    history.retain(|_, h| !h.expired(now));
    let retention = deps.policy.history_retention();
    let mut updates = Vec::with_capacity(findings.len());
    for f in findings.iter_mut() {
        let updated = match history.get(&f.finding_key()) {
            // A retried step must not count the same run twice.
            Some(h) if h.last_run == run_id => {
                f.times_flagged = h.times_flagged.saturating_sub(1);
                f.first_flagged = Some(h.first_flagged);
                f.deferred_since = h.deferred_since;
                continue;
            }
            Some(h) => {
                f.times_flagged = h.times_flagged;
                f.first_flagged = Some(h.first_flagged);
                f.deferred_since = h.deferred_since;
                FlagHistory::after_run(f, run_id, now, retention)
            }
            None => {
                f.first_flagged = Some(now);
                FlagHistory::after_run(f, run_id, now, retention)
            }
        };
        updates.push((f.finding_key(), updated));
    }
    deps.audit.save_flag_history(&updates).await
}

/// The blast-radius cap on how many resources one scope notifies (and so may act on) in one
/// run; a resource's findings stay together. Every finding is found and reported; those
/// over the cap wait for a later run with a DEFERRED row each. What was deferred before goes first (longest waiting first), then the rest by
/// first flagged, so a standing backlog cannot starve anything: each deferral is saved in
/// the finding's history, and notify clears it once the owner is told.
pub(crate) fn apply_scope_cap(
    p: &crate::policy::Policy,
    payload: &mut StepPayload,
    now: DateTime<Utc>,
    actor: &str,
) -> (Vec<AuditEvent>, Vec<(FindingKey, FlagHistory)>) {
    let run_id = payload.run.id.clone();
    // Never flagged or deferred before (None) counts as now. Among the rest, what the run
    // may act on goes before what it only reports, so a backlog of notify-only findings
    // cannot keep actionable ones from their owners.
    payload.findings.sort_by(|a, b| {
        let line = |f: &Finding| {
            (
                f.deferred_since.is_none(),
                f.deferred_since,
                f.action == Action::NotifyOnly,
                f.first_flagged.unwrap_or(now),
            )
        };
        (line(a), &a.key).cmp(&(line(b), &b.key))
    });
    let limit = p.max_findings_per_scope;
    // A resource takes its place in line with its first finding in that order.
    let mut admitted: HashSet<ResourceKey> = HashSet::new();
    let (kept, mut deferred): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut payload.findings)
        .into_iter()
        .partition(|f| admitted.contains(&f.key) || (admitted.len() < limit && admitted.insert(f.key.clone())));
    payload.findings = kept;
    payload.deferred += deferred.len();
    // Those that make the cut keep their place until notify has told their owner: a lock
    // held elsewhere or a failed message must not send them to the back.
    let mut history = Vec::new();
    for f in deferred.iter_mut().filter(|f| f.deferred_since.is_none()) {
        f.deferred_since = Some(now);
        history.push((f.finding_key(), FlagHistory::after_run(f, &run_id, now, p.history_retention())));
    }
    let events = deferred
        .iter()
        .map(|f| {
            AuditEvent::for_finding(
                f,
                &run_id,
                AuditEventType::Deferred,
                now,
                actor,
                json!({
                    "cap": "max_findings_per_scope",
                    "limit": limit,
                    "deferred_since": f.deferred_since,
                    "reason": "reported, not notified this run; first in line next run",
                }),
            )
        })
        .collect();
    (events, history)
}

fn account_failure(account: &str, what: &str, e: &JanitorError) -> ScopeFailure {
    ScopeFailure {
        scope: Scope::new(account, GLOBAL_REGION),
        what: what.into(),
        error: e.error_name().into(),
        message: e.to_string(),
    }
}

/// The accounts a run covers: those it names; else the organization's active accounts
/// (a suspended or closing one is a recorded failure, never silently skipped); else, in no
/// organization or unable to list it (recorded), the janitor's own.
async fn run_accounts(deps: &Deps, named: Option<&[String]>) -> Result<(Vec<String>, Vec<ScopeFailure>)> {
    if let Some(list) = named.filter(|l| !l.is_empty()) {
        return Ok((list.to_vec(), Vec::new()));
    }
    let home = deps.inventory.home_account().await?;
    match deps.directory.organization_accounts().await {
        // An organization always lists its management account: an empty listing (the
        // emulator answers one outside any organization) would scan nothing, silently.
        Ok(Some(listed)) if !listed.is_empty() => {
            let mut accounts = Vec::new();
            let mut failures = Vec::new();
            // An excluded account is left out before its state is looked at: a closed one
            // stays listed (suspended) for months and must not fail every run meanwhile.
            for account in listed.into_iter().filter(|a| !deps.policy.excludes_account(&a.id)) {
                if account.active() {
                    accounts.push(account.id);
                } else {
                    let e = JanitorError::AccountNotActive { account: account.id.clone(), state: account.state };
                    failures.push(account_failure(&account.id, "account", &e));
                }
            }
            Ok((accounts, failures))
        }
        Ok(_) => Ok((vec![home], Vec::new())),
        Err(e @ JanitorError::Transient { .. }) => Err(e),
        Err(e) => {
            let failure = account_failure(&home, "organization", &e);
            Ok((vec![home], vec![failure]))
        }
    }
}

/// Lists the scopes of a run: every enabled region of every account (or those asked for),
/// plus one account-wide scope per account, less the policy's excluded accounts and
/// regions. An account that cannot be read is a failure.
pub async fn plan_scopes(
    deps: &Deps,
    accounts: Option<&[String]>,
    regions: Option<&[String]>,
) -> Result<(Vec<Scope>, Vec<ScopeFailure>)> {
    let p = &deps.policy;
    let (accounts, mut failures) = run_accounts(deps, accounts).await?;
    let mut scopes = Vec::new();
    let mut seen = HashSet::new();
    for account in accounts {
        if !seen.insert(account.clone()) || p.excludes_account(&account) {
            continue;
        }
        let account_regions = match regions {
            Some(list) if !list.is_empty() => list.to_vec(),
            _ => match deps.inventory.enabled_regions(&account).await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(account_failure(&account, "enabled-regions", &e));
                    continue;
                }
            },
        };
        let mut account_regions = account_regions;
        account_regions.retain(|r| !p.excludes_region(r));
        account_regions.sort();
        account_regions.dedup();
        scopes.extend(account_regions.into_iter().map(|r| Scope::new(&account, r)));
        scopes.push(Scope::new(&account, GLOBAL_REGION));
    }
    if scopes.is_empty() && failures.is_empty() {
        // Everything excluded: a run that scans nothing must not look like a clean one.
        let e = JanitorError::Config("the run covers no scope: every account or region asked for is excluded".into());
        failures.push(account_failure(&deps.inventory.home_account().await?, "plan", &e));
    }
    Ok((scopes, failures))
}
