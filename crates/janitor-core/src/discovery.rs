//! Discovery: list every candidate of a scope, apply the rules that need no metrics, drop
//! protected and snoozed resources, and hand idle candidates on to the metric check.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::error::{JanitorError, Result};
use crate::model::*;
use crate::ports::{Ec2Instance, ElasticIp, RdsInstance};
use crate::rules;

const ACTOR: &str = "discovery";
/// Tag reads for violators (IAM users, public buckets) in flight at once.
const TAG_READ_CONCURRENCY: usize = 8;

/// What one rule says about one resource.
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
    Compliant,
}

fn owner_of(tags: &Tags, policy: &crate::policy::Policy) -> Option<String> {
    tags.get(&policy.owner_tag).map(|o| o.trim().to_owned()).filter(|o| !o.is_empty())
}

fn finding(key: ResourceKey, id: &str, policy: RuleId, reason: String, action: Action) -> Finding {
    Finding {
        kind: key.kind(),
        key,
        id: id.to_owned(),
        arn: None,
        policy,
        reason,
        evidence: serde_json::Value::Null,
        owner: None,
        action,
        first_flagged: None,
        times_flagged: 0,
        deferred_since: None,
        notified: None,
    }
}

/// What the registry's rules make of one resource, before its tags are considered: the
/// first rule (in registry order) that finds a violation, else the first metric rule that
/// needs the series, else nothing. `Err` when a rule could not read it.
pub fn judge(
    p: &crate::policy::Policy,
    key: &ResourceKey,
    resource: rules::Resource<'_>,
) -> std::result::Result<Option<Verdict>, String> {
    let mut candidate = None;
    for (id, rule) in rules::on_for(p, resource.kind()) {
        match rule.judge(p, resource) {
            rules::Judgement::Violates { reason, evidence, action } => {
                let mut f = finding(key.clone(), key.id(), id, reason, action);
                f.evidence = evidence;
                return Ok(Some(Verdict::Finding(f)));
            }
            rules::Judgement::NeedsMetrics { notify_only } if candidate.is_none() => {
                candidate = Some(Verdict::Candidate(Candidate {
                    key: key.clone(),
                    rule: id,
                    arn: None,
                    owner: None,
                    launched_at: None,
                    notify_only,
                }))
            }
            rules::Judgement::Unreadable(message) => return Err(message),
            rules::Judgement::NeedsMetrics { .. } | rules::Judgement::Complies => {}
        }
    }
    Ok(candidate)
}

/// A resource whose tags come with its listing: judged, then its protect tag honoured and its
/// owner taken from the tags.
fn evaluate(
    p: &crate::policy::Policy,
    key: ResourceKey,
    resource: rules::Resource<'_>,
    tags: &Tags,
    arn: Option<&str>,
    launched_at: Option<DateTime<Utc>>,
) -> Verdict {
    let verdict = match judge(p, &key, resource) {
        Ok(Some(verdict)) => verdict,
        // Kinds with tags at hand have nothing a rule could fail to read.
        Ok(None) | Err(_) => return Verdict::Compliant,
    };
    if is_protected(tags, &p.protect_tag) {
        let policy = match &verdict {
            Verdict::Finding(f) => Some(f.policy),
            Verdict::Candidate(c) => Some(c.rule),
            _ => None,
        };
        return Verdict::Protected { key, policy };
    }
    let owner = owner_of(tags, p);
    match verdict {
        Verdict::Finding(mut f) => {
            f.owner = owner;
            f.arn = arn.map(str::to_owned);
            Verdict::Finding(f)
        }
        Verdict::Candidate(c) => Verdict::Candidate(Candidate { arn: arn.map(str::to_owned), owner, launched_at, ..c }),
        other => other,
    }
}

pub fn evaluate_ec2(p: &crate::policy::Policy, scope: &Scope, instance: &Ec2Instance) -> Verdict {
    let key = ResourceKey::new(&scope.account, &scope.region, ResourceKind::Ec2Instance, &instance.id);
    evaluate(p, key, rules::Resource::Ec2Instance(instance), &instance.tags, None, instance.launched_at)
}

pub fn evaluate_rds(p: &crate::policy::Policy, scope: &Scope, db: &RdsInstance) -> Verdict {
    let key = ResourceKey::new(&scope.account, &scope.region, ResourceKind::RdsInstance, &db.id);
    evaluate(p, key, rules::Resource::RdsInstance(db), &db.tags, db.arn.as_deref(), db.created_at)
}

pub fn evaluate_eip(p: &crate::policy::Policy, scope: &Scope, eip: &ElasticIp) -> Verdict {
    let key = ResourceKey::new(&scope.account, &scope.region, ResourceKind::ElasticIp, &eip.allocation_id);
    evaluate(p, key, rules::Resource::ElasticIp(eip), &eip.tags, None, None)
}

/// Whether any rule on `kind` is on: a kind with none is not listed at all.
fn kind_on(p: &crate::policy::Policy, kind: ResourceKind) -> bool {
    rules::on_for(p, kind).next().is_some()
}

#[derive(Default)]
struct ScanParts {
    verdicts: Vec<Verdict>,
    failures: Vec<(String, JanitorError)>,
}

impl ScanParts {
    fn absorb(&mut self, what: ResourceKind, result: Result<Vec<Verdict>>) {
        match result {
            Ok(v) => self.verdicts.extend(v),
            Err(e) => self.failures.push((what.as_str().to_owned(), e)),
        }
    }
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
            json!({ "reason": f.reason, "action": f.action, "evidence": f.evidence, "owner": f.owner }),
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
    let p = &deps.policy;
    let mut parts = ScanParts::default();

    if scope.is_account_wide() {
        let (iam, s3) = tokio::join!(scan_iam(deps, &scope), scan_s3(deps, &scope));
        for (what, result) in [(ResourceKind::IamUser, iam), (ResourceKind::S3Bucket, s3)] {
            match result {
                Ok((verdicts, failures)) => {
                    parts.verdicts.extend(verdicts);
                    parts.failures.extend(failures.into_iter().map(|(id, e)| (format!("{what}/{id}"), e)));
                }
                Err(e) => parts.failures.push((what.as_str().to_owned(), e)),
            }
        }
    } else {
        // A kind none of whose rules is on is not listed: no call, no grant needed for it.
        let (ec2, rds, eips) = tokio::join!(
            list_if(kind_on(p, ResourceKind::Ec2Instance), deps.inventory.ec2_instances(&scope)),
            list_if(kind_on(p, ResourceKind::RdsInstance), deps.inventory.rds_instances(&scope)),
            list_if(kind_on(p, ResourceKind::ElasticIp), deps.inventory.elastic_ips(&scope)),
        );
        parts.absorb(ResourceKind::Ec2Instance, ec2.map(|l| l.iter().map(|i| evaluate_ec2(p, &scope, i)).collect()));
        parts.absorb(ResourceKind::RdsInstance, rds.map(|l| l.iter().map(|d| evaluate_rds(p, &scope, d)).collect()));
        parts.absorb(ResourceKind::ElasticIp, eips.map(|l| l.iter().map(|e| evaluate_eip(p, &scope, e)).collect()));
    }

    let mut payload = StepPayload::new(run.clone());
    let mut events = Vec::new();
    for (what, error) in parts.failures {
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
    for verdict in parts.verdicts {
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
            Verdict::Compliant => {}
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
            exempt(&c.key, None);
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
    let keys: Vec<ResourceKey> = findings.iter().map(|f| f.key.clone()).collect();
    let history = deps.audit.flag_history(&keys).await?;
    let mut updates = Vec::with_capacity(findings.len());
    for f in findings.iter_mut() {
        let updated = match history.get(&f.key) {
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
                FlagHistory::after_run(f, run_id, now)
            }
            None => {
                f.first_flagged = Some(now);
                FlagHistory::after_run(f, run_id, now)
            }
        };
        updates.push((f.key.clone(), updated));
    }
    deps.audit.save_flag_history(&updates).await
}

/// The blast-radius cap on what one scope notifies (and so may act on) in one run. Every
/// finding is found and reported; those over the cap wait for a later run with a DEFERRED
/// row each. What was deferred before goes first (longest waiting first), then the rest by
/// first flagged, so a standing backlog cannot starve anything: each deferral is saved in
/// the finding's history, and notify clears it once the owner is told.
pub(crate) fn apply_scope_cap(
    p: &crate::policy::Policy,
    payload: &mut StepPayload,
    now: DateTime<Utc>,
    actor: &str,
) -> (Vec<AuditEvent>, Vec<(ResourceKey, FlagHistory)>) {
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
    let mut deferred: Vec<Finding> = payload.findings.drain(limit.min(payload.findings.len())..).collect();
    payload.deferred += deferred.len();
    // Those that make the cut keep their place until notify has told their owner: a lock
    // held elsewhere or a failed message must not send them to the back.
    let mut history = Vec::new();
    for f in deferred.iter_mut().filter(|f| f.deferred_since.is_none()) {
        f.deferred_since = Some(now);
        history.push((f.key.clone(), FlagHistory::after_run(f, &run_id, now)));
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

type PartialScan = (Vec<Verdict>, Vec<(String, JanitorError)>);

/// Account-wide violators keep their tags elsewhere (IAM user tags, bucket tagging), so
/// they are read for the violators only; then the protect tag is honoured and the owner
/// taken from them. A violator whose tags cannot be read is not judged: it might be
/// protected.
async fn judge_with_tags<Fut>(p: &crate::policy::Policy, violators: Vec<(Finding, Fut)>) -> PartialScan
where
    Fut: std::future::Future<Output = Result<Tags>>,
{
    let tagged: Vec<(Finding, Result<Tags>)> = stream::iter(violators)
        .map(|(finding, read_tags)| async move { (finding, read_tags.await) })
        .buffered(TAG_READ_CONCURRENCY)
        .collect()
        .await;
    let mut verdicts = Vec::new();
    let mut failures = Vec::new();
    for (mut f, tags) in tagged {
        match tags {
            Err(e) => failures.push((f.id.clone(), e)),
            Ok(tags) if is_protected(&tags, &p.protect_tag) => {
                verdicts.push(Verdict::Protected { key: f.key, policy: Some(f.policy) })
            }
            Ok(tags) => {
                f.owner = owner_of(&tags, p);
                verdicts.push(Verdict::Finding(f));
            }
        }
    }
    (verdicts, failures)
}

async fn scan_iam(deps: &Deps, scope: &Scope) -> Result<PartialScan> {
    if !kind_on(&deps.policy, ResourceKind::IamUser) {
        return Ok((Vec::new(), Vec::new()));
    }
    let report = deps.inventory.iam_credentials(&scope.account).await?;
    let mut violators = Vec::new();
    for user in report {
        let key = ResourceKey::new(&scope.account, GLOBAL_REGION, ResourceKind::IamUser, &user.user);
        if let Ok(Some(Verdict::Finding(mut f))) = judge(&deps.policy, &key, rules::Resource::IamUser(&user)) {
            f.arn = Some(user.arn.clone());
            let read_tags = async move { deps.inventory.iam_user_tags(&scope.account, &user.user).await };
            violators.push((f, read_tags));
        }
    }
    Ok(judge_with_tags(&deps.policy, violators).await)
}

async fn list_if<T>(on: bool, listing: impl std::future::Future<Output = Result<Vec<T>>>) -> Result<Vec<T>> {
    if on { listing.await } else { Ok(Vec::new()) }
}

async fn scan_s3(deps: &Deps, scope: &Scope) -> Result<PartialScan> {
    if !kind_on(&deps.policy, ResourceKind::S3Bucket) {
        return Ok((Vec::new(), Vec::new()));
    }
    let (account_block, buckets) = tokio::join!(
        deps.inventory.account_public_access_block(&scope.account),
        deps.inventory.s3_buckets(&scope.account)
    );
    let account_block = account_block?;
    let mut unreadable = Vec::new();
    let mut violators = Vec::new();
    for bucket in buckets? {
        let bucket = match bucket {
            Ok(bucket) => bucket,
            Err(unread) => {
                unreadable.push(unread);
                continue;
            }
        };
        let key = ResourceKey::new(&scope.account, &bucket.region, ResourceKind::S3Bucket, &bucket.name);
        match judge(&deps.policy, &key, rules::Resource::S3Bucket(&bucket, account_block.as_ref())) {
            Ok(Some(Verdict::Finding(mut f))) => {
                f.arn = Some(format!("arn:aws:s3:::{}", bucket.name));
                let read_tags = async move { deps.inventory.s3_bucket_tags(&scope.account, &bucket).await };
                violators.push((f, read_tags));
            }
            Ok(_) => {}
            Err(message) => unreadable.push((
                bucket.name.clone(),
                JanitorError::Aws { service: "s3", operation: "GetBucketPolicy", message },
            )),
        }
    }
    let (verdicts, mut failures) = judge_with_tags(&deps.policy, violators).await;
    failures.extend(unreadable);
    Ok((verdicts, failures))
}

/// Lists the scopes of a run: every enabled region of every account (or those asked for),
/// plus one account-wide scope per account. An account that cannot be read is a failure.
pub async fn plan_scopes(
    deps: &Deps,
    accounts: Option<&[String]>,
    regions: Option<&[String]>,
) -> Result<(Vec<Scope>, Vec<ScopeFailure>)> {
    let accounts: Vec<String> = match accounts {
        Some(list) if !list.is_empty() => list.to_vec(),
        _ => vec![deps.inventory.home_account().await?],
    };
    let mut scopes = Vec::new();
    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for account in accounts {
        if !seen.insert(account.clone()) {
            continue;
        }
        let account_regions = match regions {
            Some(list) if !list.is_empty() => list.to_vec(),
            _ => match deps.inventory.enabled_regions(&account).await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(ScopeFailure {
                        scope: Scope::new(&account, GLOBAL_REGION),
                        what: "enabled-regions".into(),
                        error: e.error_name().into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            },
        };
        let mut account_regions = account_regions;
        account_regions.sort();
        account_regions.dedup();
        scopes.extend(account_regions.into_iter().map(|r| Scope::new(&account, r)));
        scopes.push(Scope::new(&account, GLOBAL_REGION));
    }
    Ok((scopes, failures))
}
