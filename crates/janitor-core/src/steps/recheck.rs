//! Recheck, after the grace period: every rule is evaluated again with fresh reads (the
//! scope is scanned anew and the metrics re-read), and the snooze table again. A finding
//! leaves the run unless its resource still violates the very rule its owner was told
//! about; a resource's lock is released once none of its findings is left in the run.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::discovery;
use crate::error::{JanitorError, Result};
use crate::metrics;
use crate::model::{Exemption, Finding, FindingKey, ResourceKey, RuleId, StepPayload};

const ACTOR: &str = "recheck";

pub async fn recheck(deps: &Deps, mut payload: StepPayload) -> Result<StepPayload> {
    let scope = payload.run.scope()?.clone();
    if !payload.candidates.is_empty() {
        return Err(JanitorError::InvalidInput("recheck received unchecked candidates".into()));
    }
    let now = deps.clock.now();
    let run_id = payload.run.id.clone();
    let (fresh, scan_events) = discovery::scan(deps, &payload.run, now, ACTOR).await?;
    JanitorError::retry_if_transient("recheck", &fresh.failures)?;
    let (idle, _) = metrics::judge_candidates(deps, &scope, &run_id, &fresh.candidates, now, ACTOR).await?;
    let violating: HashMap<FindingKey, Finding> =
        fresh.findings.into_iter().chain(idle).map(|f| (f.finding_key(), f)).collect();
    let mut now_breaks: HashMap<&ResourceKey, BTreeSet<RuleId>> = HashMap::new();
    for key in violating.keys() {
        now_breaks.entry(&key.resource).or_default().insert(key.rule);
    }
    let exempt: HashMap<String, serde_json::Value> = scan_events
        .iter()
        .filter(|e| e.event == AuditEventType::Exempt)
        .map(|e| (e.resource.clone(), e.detail.clone()))
        .collect();
    let unreadable: HashSet<String> =
        fresh.failures.iter().map(|f| f.what.split('/').next().unwrap_or_default().to_owned()).collect();

    let mut events: Vec<AuditEvent> = scan_events.into_iter().filter(|e| e.event == AuditEventType::Failed).collect();
    // Scan failures are counted once, as the scope's failures; the tally counts findings.
    let first_finding_event = events.len();
    let mut kept = Vec::new();
    let mut left = Vec::new();
    for finding in std::mem::take(&mut payload.findings) {
        let key = finding.key.as_str();
        let other_rules = now_breaks.get(&finding.key).filter(|rules| !rules.contains(&finding.policy));
        let (event, detail) = match violating.get(&finding.finding_key()) {
            Some(now_violating) => {
                let detail = json!({ "reason": now_violating.reason, "evidence": now_violating.evidence });
                events.push(AuditEvent::for_finding(&finding, &run_id, AuditEventType::Rechecked, now, ACTOR, detail));
                // Fresh evidence, but the notice and history of the finding the owner saw.
                kept.push(Finding {
                    reason: now_violating.reason.clone(),
                    evidence: now_violating.evidence.clone(),
                    // Resized during the grace period: the action saves what it is now.
                    cost: now_violating.cost.clone().or(finding.cost.clone()),
                    ..finding
                });
                continue;
            }
            // Its kind was not wholly read again (a listing, a tag read or a list a rule needs
            // failed): a finding not seen again is neither cleared nor gone.
            None if unreadable.contains(finding.kind.as_str()) => {
                (AuditEventType::Failed, json!({ "reason": "could not be read again, so it is not remediated" }))
            }
            None if other_rules.is_some() => {
                let others: Vec<&str> = other_rules.into_iter().flatten().map(|r| r.as_str()).collect();
                let reason = format!(
                    "no longer violates {}; it now violates {}, which its own finding (or a later run) handles",
                    finding.policy,
                    others.join(", ")
                );
                (AuditEventType::Cleared, json!({ "reason": reason }))
            }
            None => match exempt.get(key) {
                Some(detail) if detail["reason"] == json!(Exemption::Snoozed) => {
                    (AuditEventType::Snoozed, detail.clone())
                }
                Some(detail) => (AuditEventType::Cleared, detail.clone()),
                None if !deps.inventory.exists(&finding.key).await? => {
                    (AuditEventType::Gone, json!({ "reason": "the resource no longer exists" }))
                }
                None => {
                    (AuditEventType::Cleared, json!({ "reason": format!("no longer violates {}", finding.policy) }))
                }
            },
        };
        events.push(AuditEvent::for_finding(&finding, &run_id, event, now, ACTOR, detail));
        left.push(finding.key);
    }
    // The record first: a retry after a failed write must still find the locks held.
    deps.audit.record(&events).await?;
    // Another finding of the same resource may still be in the run: it keeps the lock.
    let still_held: HashSet<&ResourceKey> = kept.iter().map(|f: &Finding| &f.key).collect();
    crate::lock::release_resources(deps, &run_id, left.iter().filter(|k| !still_held.contains(k))).await?;
    payload.findings = kept;
    payload.failures.extend(fresh.failures);
    payload.tally_events(&events[first_finding_event..]);
    payload.recount();
    tracing::info!(scope = %scope, still_violating = payload.count, "recheck done");
    Ok(payload)
}
