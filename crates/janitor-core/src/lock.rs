//! Locking: one conditional write per finding so two overlapping runs never handle the same
//! resource. Locks are re-entrant for their run and live as long as the run can.

use futures::{StreamExt, stream};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::error::{JanitorError, Result};
use crate::model::StepPayload;
use crate::ports::LockOutcome;

const ACTOR: &str = "lock";
const LOCK_CONCURRENCY: usize = 16;

pub async fn lock_findings(deps: &Deps, mut payload: StepPayload) -> Result<StepPayload> {
    if !payload.candidates.is_empty() {
        return Err(JanitorError::InvalidInput(format!(
            "lock received {} unchecked candidates; run metric-check first",
            payload.candidates.len()
        )));
    }
    let now = deps.clock.now();
    let until = now + deps.policy.lock_ttl();
    let run_id = payload.run.id.clone();
    let findings = std::mem::take(&mut payload.findings);
    let outcomes: Vec<_> = stream::iter(findings)
        .map(|f| {
            let run_id = run_id.clone();
            async move {
                let outcome = deps.locks.acquire(&f.key, &run_id, now, until).await;
                (f, outcome)
            }
        })
        .buffered(LOCK_CONCURRENCY)
        .collect()
        .await;

    let mut events = Vec::new();
    let mut first_error = None;
    for (finding, outcome) in outcomes {
        match outcome {
            Ok(LockOutcome::Acquired) => {
                events.push(AuditEvent::for_finding(
                    &finding,
                    &run_id,
                    AuditEventType::Locked,
                    now,
                    ACTOR,
                    json!({ "until": until }),
                ));
                payload.findings.push(finding);
            }
            Ok(LockOutcome::HeldBy { run_id: holder, until: held_until }) => {
                events.push(AuditEvent::for_finding(
                    &finding,
                    &run_id,
                    AuditEventType::LockHeld,
                    now,
                    ACTOR,
                    json!({ "holder": holder, "until": held_until }),
                ));
                payload.held_elsewhere.push(finding.key);
            }
            Err(e) => {
                events.push(AuditEvent::for_finding(
                    &finding,
                    &run_id,
                    AuditEventType::Failed,
                    now,
                    ACTOR,
                    json!({ "error": e.error_name(), "message": e.to_string() }),
                ));
                first_error.get_or_insert(e);
            }
        }
    }
    payload.recount();
    deps.audit.record(&events).await?;
    // Locks are re-entrant, so failing the step for a retry keeps every lock already taken.
    if let Some(e) = first_error {
        return Err(e);
    }
    tracing::info!(run = %run_id, locked = payload.count, held_elsewhere = payload.held_elsewhere.len(), "locks taken");
    Ok(payload)
}
