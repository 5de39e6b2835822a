//! Recheck, after the grace period: every rule is evaluated again with fresh reads (the
//! scope is scanned anew and the metrics re-read), and the snooze table again. A finding
//! leaves the run unless it still violates the very rule its owner was told about; its
//! lock is released as it leaves.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::discovery;
use crate::error::{JanitorError, Result};
use crate::metrics;
use crate::model::{Exemption, Finding, StepPayload};

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
    let violating: HashMap<_, Finding> = fresh.findings.into_iter().chain(idle).map(|f| (f.key.clone(), f)).collect();
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
    for finding in std::mem::take(&mut payload.findings) {
        let key = finding.key.as_str();
        let (event, detail) = match violating.get(&finding.key) {
            Some(now_violating) if now_violating.policy == finding.policy => {
                let detail = json!({ "reason": now_violating.reason, "evidence": now_violating.evidence });
                events.push(AuditEvent::for_finding(&finding, &run_id, AuditEventType::Rechecked, now, ACTOR, detail));
                // Fresh evidence, but the notice and history of the finding the owner saw.
                kept.push(Finding {
                    reason: now_violating.reason.clone(),
                    evidence: now_violating.evidence.clone(),
                    ..finding
                });
                continue;
            }
            Some(other) => (
                AuditEventType::Cleared,
                json!({ "reason": format!("now violates {} instead; a later run will notify about that", other.policy) }),
            ),
            None if unreadable.contains(finding.kind.as_str()) => {
                (AuditEventType::Failed, json!({ "reason": "could not be read again, so it is not remediated" }))
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
        deps.locks.release(&finding.key, &run_id).await?;
    }
    payload.findings = kept;
    payload.failures.extend(fresh.failures);
    payload.tally_events(&events[first_finding_event..]);
    payload.recount();
    deps.audit.record(&events).await?;
    tracing::info!(scope = %scope, still_violating = payload.count, "recheck done");
    Ok(payload)
}
