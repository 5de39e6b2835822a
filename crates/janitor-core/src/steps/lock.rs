//! Locking: one conditional write per resource (whatever its findings) so two overlapping
//! runs never handle the same resource. Locks are re-entrant for their run and live as long as the run can.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, stream};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::error::{JanitorError, Result};
use crate::model::{Finding, ResourceKey, StepPayload};
use crate::ports::{LockOutcome, alert_message};

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
    let (deferred, places) = crate::discovery::apply_scope_cap(&deps.policy, &mut payload, now, ACTOR);
    deps.audit.record(&deferred).await?;
    deps.audit.save_flag_history(&places).await?;
    let findings = std::mem::take(&mut payload.findings);
    // One lock per resource, whichever of its findings asks: they share its fate.
    let resources: BTreeSet<ResourceKey> = findings.iter().map(|f| f.key.clone()).collect();
    let acquired: Vec<(ResourceKey, Result<LockOutcome>)> = stream::iter(resources)
        .map(|key| {
            let run_id = run_id.clone();
            async move {
                let outcome = deps.locks.acquire(&key, &run_id, now, until).await;
                (key, outcome)
            }
        })
        .buffered(LOCK_CONCURRENCY)
        .collect()
        .await;
    let mut first_error = None;
    let outcomes: HashMap<ResourceKey, std::result::Result<LockOutcome, (&'static str, String)>> = acquired
        .into_iter()
        .map(|(key, outcome)| {
            let outcome = outcome.map_err(|e| {
                let said = (e.error_name(), e.to_string());
                first_error.get_or_insert(e);
                said
            });
            (key, outcome)
        })
        .collect();

    let mut events = Vec::new();
    let mut held = BTreeSet::new();
    for finding in findings {
        let row = |event, detail| AuditEvent::for_finding(&finding, &run_id, event, now, ACTOR, detail);
        match &outcomes[&finding.key] {
            Ok(LockOutcome::Acquired) => {
                events.push(row(AuditEventType::Locked, json!({ "until": until })));
                payload.findings.push(finding);
            }
            Ok(LockOutcome::HeldBy { run_id: holder, until: held_until }) => {
                events.push(row(AuditEventType::LockHeld, json!({ "holder": holder, "until": held_until })));
                held.insert(finding.key);
            }
            Err((error, message)) => {
                events.push(row(AuditEventType::Failed, json!({ "error": error, "message": message })));
            }
        }
    }
    payload.held_elsewhere.extend(held);
    payload.tally_events(&events);
    payload.recount();
    deps.audit.record(&events).await?;
    // Locks are re-entrant, so failing the step for a retry keeps every lock already taken.
    if let Some(e) = first_error {
        return Err(e);
    }
    tracing::info!(run = %run_id, locked = payload.count, held_elsewhere = payload.held_elsewhere.len(), "locks taken");
    Ok(payload)
}

/// Gives back this run's lock on each resource once, however many of its findings name it
/// (a lock another run holds is left alone).
pub(crate) async fn release_resources<'a>(
    deps: &Deps,
    run_id: &str,
    keys: impl IntoIterator<Item = &'a ResourceKey>,
) -> Result<()> {
    for key in keys.into_iter().collect::<BTreeSet<_>>() {
        deps.locks.release(key, run_id).await?;
    }
    Ok(())
}

/// The state machine's Catch path: a scope whose step failed after its retries records the
/// failure (per finding and for the scope), gives its locks back so the next run can take
/// them, and raises an alert. Its findings are never remediated by this run.
pub async fn release_failed_scope(deps: &Deps, mut payload: StepPayload) -> Result<StepPayload> {
    let scope = payload.run.scope()?.clone();
    let Some(caught) = payload.error.clone() else {
        return Err(JanitorError::InvalidInput("release needs the caught error at `error`".into()));
    };
    let now = deps.clock.now();
    let run_id = payload.run.id.clone();
    let message = caught_message(&caught.cause);
    let detail = json!({ "error": caught.error, "message": message, "reason": "the scope failed; what it had not acted on is not remediated by this run" });

    let findings = std::mem::take(&mut payload.findings);
    // A step can fail after acting (the summary publish, a timeout): what remediate already
    // decided keeps its row and counts as what it was, never as "not remediated".
    let trail = deps.audit.events_for_run(&run_id).await?;
    let mut decided = Vec::new();
    let mut undecided: Vec<&Finding> = Vec::new();
    let mut decided_findings: Vec<(&Finding, AuditEventType)> = Vec::new();
    for f in &findings {
        match crate::remediate::decided_earlier(&trail, f) {
            Some(earlier) => {
                decided.push(earlier.event);
                decided_findings.push((f, earlier.event));
            }
            None => undecided.push(f),
        }
    }
    // What was acted on before the failure saved what it saved.
    let saved = |result: AuditEventType| {
        crate::cost::totals(decided_findings.iter().filter(|(_, e)| *e == result).map(|(f, _)| *f)).monthly_savings
    };
    payload.tally.savings_made = saved(AuditEventType::Remediated);
    payload.tally.savings_would = saved(AuditEventType::WouldRemediate);
    let mut events =
        vec![AuditEvent::new(scope.audit_key(), &run_id, AuditEventType::Failed, now, ACTOR, detail.clone())];
    for f in &undecided {
        events.push(AuditEvent::for_finding(f, &run_id, AuditEventType::Failed, now, ACTOR, detail.clone()));
    }
    // The record first: if releasing fails half-way, the failure is already on file.
    deps.audit.record(&events).await?;
    release_resources(deps, &run_id, findings.iter().map(|f| &f.key)).await?;
    for event in &decided {
        payload.tally.count(*event);
    }
    payload.tally.failed += undecided.len();
    payload.recount();
    let description = format!(
        "`{}`: {}\n{} finding(s) released unremediated, {} already acted on or decided; see the audit table for run `{run_id}`.",
        caught.error,
        message,
        undecided.len(),
        decided.len()
    );
    let related: Vec<String> = findings.iter().map(|f| f.key.to_string()).collect();
    let alert = alert_message(
        &payload.run,
        format!("{run_id}-{scope}-failed"),
        format!(":rotating_light: Cloud Janitor run {run_id} failed in {scope}"),
        description,
        "JanitorScopeFailed",
        &related,
    );
    // The failure is on file and the execution will end failed; a broken alert channel must
    // not turn this scope into an unrecorded one, so it is recorded too, not thrown.
    if let Err(e) = deps.alerts.publish(&format!("Cloud Janitor run {run_id} failed in {scope}"), &alert).await {
        tracing::error!(error = %e, "cannot publish the failure alert");
        let detail = json!({ "what": "alert", "error": e.error_name(), "message": e.to_string() });
        deps.audit
            .record(&[AuditEvent::new(scope.audit_key(), &run_id, AuditEventType::Failed, now, ACTOR, detail)])
            .await?;
    }
    tracing::error!(run = %run_id, scope = %scope, error = %caught.error, message = %message, released = findings.len(), "scope failed");
    Ok(payload)
}

/// Step Functions passes a Lambda error's Cause as the JSON the runtime reported.
fn caught_message(cause: &str) -> String {
    serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}
