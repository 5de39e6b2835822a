//! Remediation: only for findings whose owner was notified in this run, whose grace period
//! has passed, and which a recheck after the grace period still found violating — checked
//! against the audit trail, not just the payload. Dry-run records WOULD_REMEDIATE; enforce
//! acts within the run-wide blast-radius cap or not at all.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::error::Result;
use crate::model::{Action, Exemption, Finding, Mode, Outcome, Snooze, StepPayload};
use crate::ports::{ActionOutcome, LockOutcome, alert_message};

const ACTOR: &str = "remediate";

/// Why a finding may not be acted on, if it may not. The grace period's end is the one
/// notify decided and recorded with the notification, never recomputed here.
fn guard(finding: &Finding, trail: &[AuditEvent], now: DateTime<Utc>) -> Option<String> {
    let rows = |event: AuditEventType| trail.iter().filter(move |e| e.is_about(finding) && e.event == event);
    let notified = rows(AuditEventType::Notified).max_by_key(|e| e.at);
    let (Some(_), Some(notified)) = (&finding.notified, notified) else {
        return Some("the owner was not notified in this run".into());
    };
    let Some(grace_ends) = notified.detail.get("grace_ends").and_then(|v| v.as_str()).and_then(parse_time) else {
        return Some("the notification does not say when the grace period ends".into());
    };
    if grace_ends > now {
        return Some(format!("the grace period runs until {grace_ends}"));
    }
    match rows(AuditEventType::Rechecked).map(|e| e.at).max() {
        Some(at) if at >= grace_ends => None,
        _ => Some("no recheck after the grace period".into()),
    }
}

/// The policy's exclusions hold up to the moment of action: an account or region excluded
/// while the finding waited out its grace period is left alone.
fn excluded(policy: &crate::policy::Policy, finding: &Finding) -> Option<String> {
    policy.excludes(&finding.key)
}

/// What an earlier attempt of this step decided for `finding` in this run, if anything: a
/// retried remediate (after a failed summary publish, a timeout, a lost response) reports
/// that outcome again and never acts twice.
pub(crate) fn decided_earlier<'a>(trail: &'a [AuditEvent], finding: &Finding) -> Option<&'a AuditEvent> {
    use AuditEventType::*;
    trail.iter().filter(|e| e.is_about(finding) && e.actor == ACTOR).find(|e| {
        matches!(e.event, Remediated | AlreadyCompliant | Skipped | Exempt | Snoozed | Failed | Halted | WouldRemediate)
    })
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// Outcomes and their audit rows, written in order.
struct Recorder<'a> {
    run_id: &'a str,
    now: DateTime<Utc>,
    events: Vec<AuditEvent>,
    outcomes: Vec<Outcome>,
}

impl Recorder<'_> {
    fn push(&mut self, f: &Finding, event: AuditEventType, detail: serde_json::Value) {
        self.outcomes.push(Outcome { key: f.key.clone(), policy: f.policy, result: event, detail: detail.clone() });
        self.events.push(AuditEvent::for_finding(f, self.run_id, event, self.now, ACTOR, detail));
    }

    /// An outcome already on file from an earlier attempt: reported, not written again.
    fn carry(&mut self, f: &Finding, earlier: &AuditEvent) {
        let mut detail = earlier.detail.clone();
        if let Some(map) = detail.as_object_mut() {
            map.insert("decided".into(), json!({ "at": earlier.at, "by": "an earlier attempt of this step" }));
        }
        self.outcomes.push(Outcome { key: f.key.clone(), policy: f.policy, result: earlier.event, detail });
    }

    async fn flush(&mut self, deps: &Deps) -> Result<()> {
        deps.audit.record(&self.events).await?;
        self.events.clear();
        Ok(())
    }
}

pub async fn remediate(deps: &Deps, mut payload: StepPayload) -> Result<StepPayload> {
    let scope = payload.run.scope()?.clone();
    let now = deps.clock.now();
    let run_id = payload.run.id.clone();
    let trail = deps.audit.events_for_run(&run_id).await?;
    let mut log = Recorder { run_id: &run_id, now, events: Vec::new(), outcomes: Vec::new() };

    let mut eligible = Vec::new();
    for f in &payload.findings {
        if let Some(earlier) = decided_earlier(&trail, f) {
            log.carry(f, earlier);
            continue;
        }
        match excluded(&deps.policy, f).or_else(|| guard(f, &trail, now)) {
            Some(reason) => log.push(f, AuditEventType::Skipped, json!({ "reason": reason })),
            // Notify-only findings take no action, so they take no share of the action cap.
            None if f.action == Action::NotifyOnly => log.push(
                f,
                AuditEventType::Skipped,
                json!({ "reason": "notify only: the policy takes no action", "action": f.action }),
            ),
            None => eligible.push(f),
        }
    }

    let cap = deps.policy.max_actions_per_run;
    // A retry after a failed halt alert carries HALTED outcomes: its alert says halted too.
    let mut halted = log.outcomes.iter().any(|o| o.result == AuditEventType::Halted);
    match payload.run.mode {
        Mode::DryRun => {
            let snoozed =
                deps.snoozes.live_snoozes(&eligible.iter().map(|f| f.key.clone()).collect::<Vec<_>>(), now).await?;
            for f in &eligible {
                if let Some(snooze) = snoozed.get(&f.key) {
                    log.push(f, AuditEventType::Snoozed, snoozed_after_recheck(snooze));
                    continue;
                }
                log.push(
                    f,
                    AuditEventType::WouldRemediate,
                    json!({ "action": f.action, "would": f.action.describe() }),
                );
            }
        }
        Mode::Enforce if eligible.is_empty() => {}
        Mode::Enforce => {
            let until = now + deps.policy.lock_ttl();
            // The cap counts resources: two findings that stop one instance are one action.
            let resources = eligible.iter().map(|f| &f.key).collect::<std::collections::HashSet<_>>().len();
            if deps.locks.reserve_actions(&run_id, &scope.to_string(), resources, cap, until).await? {
                for f in &eligible {
                    // A Snooze clicked after the recheck wins, up to the moment of action.
                    if let Some(snooze) = live_snooze(deps, f).await? {
                        log.push(f, AuditEventType::Snoozed, snoozed_after_recheck(&snooze));
                        log.flush(deps).await?;
                        continue;
                    }
                    // Still ours at the moment of action (re-entrant): a lock that outlived its
                    // TTL and was taken by another run means that run handles the resource.
                    if let LockOutcome::HeldBy { run_id: holder, until } =
                        deps.locks.acquire(&f.key, &run_id, deps.clock.now(), until).await?
                    {
                        let reason = format!("another run ({holder}) holds its lock until {until}");
                        log.push(f, AuditEventType::Skipped, json!({ "reason": reason }));
                        log.flush(deps).await?;
                        continue;
                    }
                    let (event, detail) = match deps.remediator.apply(f, now).await {
                        Ok(ActionOutcome::Done(result)) => (
                            AuditEventType::Remediated,
                            json!({ "action": f.action, "result": result, "cost": f.cost }),
                        ),
                        Ok(ActionOutcome::AlreadyCompliant(reason)) => {
                            (AuditEventType::AlreadyCompliant, json!({ "reason": reason }))
                        }
                        Ok(ActionOutcome::Skipped(reason)) => (AuditEventType::Skipped, json!({ "reason": reason })),
                        Ok(ActionOutcome::Protected(tag)) => (
                            AuditEventType::Exempt,
                            json!({ "reason": Exemption::ProtectTag, "tag": tag, "when": "at the moment of action" }),
                        ),
                        Err(e) => {
                            tracing::warn!(resource = %f.key, rule = %f.policy, error = e.error_name(), message = %e, "action failed");
                            (AuditEventType::Failed, json!({ "error": e.error_name(), "message": e.to_string() }))
                        }
                    };
                    log.push(f, event, detail);
                    // Written as each action happens: a run cut short keeps the record of what it did.
                    log.flush(deps).await?;
                }
            } else {
                halted = true;
                for f in &eligible {
                    let reason = format!("the run would act on more than {cap} resources");
                    log.push(f, AuditEventType::Halted, json!({ "reason": reason }));
                }
            }
        }
    }
    log.flush(deps).await?;
    let outcomes = log.outcomes;
    for outcome in &outcomes {
        payload.tally.count(outcome.result);
    }
    payload.outcomes = outcomes;
    payload.tally.savings_would = savings_of(&payload, AuditEventType::WouldRemediate);
    payload.tally.savings_made = savings_of(&payload, AuditEventType::Remediated);
    payload.count = payload.outcomes.iter().filter(|o| o.result == AuditEventType::Remediated).count();
    payload.refresh_tally();
    report_in_threads(deps, &payload).await;

    if payload.outcomes.is_empty() {
        tracing::info!(scope = %scope, "nothing to remediate");
        release_locks(deps, &payload).await?;
        return Ok(payload);
    }
    let summary = summary_message(&payload, halted, cap);
    if halted {
        // Acting on nothing is safe; not telling anyone would be a silent failure.
        deps.alerts.publish(&format!("Cloud Janitor halted run {run_id} in {scope}"), &summary).await?;
    } else if let Err(e) = deps.alerts.publish(&format!("Cloud Janitor run {run_id}: {scope}"), &summary).await {
        let detail = json!({ "what": "summary", "error": e.error_name(), "message": e.to_string() });
        deps.audit
            .record(&[AuditEvent::new(scope.audit_key(), &run_id, AuditEventType::Failed, now, ACTOR, detail)])
            .await?;
        // Locks stay held for the retry (which acts on nothing twice) or the Catch path's release.
        return Err(e);
    }
    release_locks(deps, &payload).await?;
    tracing::info!(scope = %scope, remediated = payload.count, halted, "remediation done");
    Ok(payload)
}

/// What the findings whose outcome is `result` save a month, each resource once.
fn savings_of(payload: &StepPayload, result: AuditEventType) -> crate::cost::Usd {
    let acted = payload
        .findings
        .iter()
        .filter(|f| payload.outcomes.iter().any(|o| o.key == f.key && o.policy == f.policy && o.result == result));
    crate::cost::totals(acted).monthly_savings
}

/// Released only once the step is done: until then a retry still holds them.
async fn release_locks(deps: &Deps, payload: &StepPayload) -> Result<()> {
    crate::lock::release_resources(deps, &payload.run.id, payload.findings.iter().map(|f| &f.key)).await
}

/// The finding's live snooze, read again right before acting (clock-checked by the store).
async fn live_snooze(deps: &Deps, f: &Finding) -> Result<Option<Snooze>> {
    let now = deps.clock.now();
    Ok(deps.snoozes.live_snoozes(std::slice::from_ref(&f.key), now).await?.remove(&f.key))
}

fn snoozed_after_recheck(snooze: &Snooze) -> serde_json::Value {
    json!({ "reason": Exemption::Snoozed, "until": snooze.until, "by": snooze.by, "when": "after the recheck, before the action" })
}

/// Tells each notification what became of its resources: a reply in the Slack message's
/// thread, a card to the Teams webhook, an email to the owner. Best effort: the outcome is
/// already in the audit log and the summary.
async fn report_in_threads(deps: &Deps, payload: &StepPayload) {
    use crate::delivery::Via;
    let mut threads: std::collections::BTreeMap<(Via, String, String), Vec<String>> = Default::default();
    for f in &payload.findings {
        let outcome = payload.outcomes.iter().find(|o| o.key == f.key && o.policy == f.policy);
        let (Some(notice), Some(outcome)) = (&f.notified, outcome) else {
            continue;
        };
        let what = match outcome.result {
            AuditEventType::Remediated => format!("done: {}", f.action.describe()),
            AuditEventType::WouldRemediate => format!("dry-run, would {}", f.action.describe()),
            other => format!(
                "{} ({})",
                other.as_str().to_lowercase().replace('_', " "),
                outcome.detail["reason"].as_str().unwrap_or("-")
            ),
        };
        // Only Slack has threads: elsewhere one follow-up per recipient.
        let thread = if notice.via == Via::Slack { notice.ts.clone() } else { String::new() };
        let line = match notice.via {
            Via::Slack => format!("• `{}` {} ({}): {what}", f.id, f.kind, f.policy),
            _ => format!("- {} {} in {} ({}): {what}", f.kind, f.id, f.key.region(), f.policy),
        };
        threads.entry((notice.via, notice.channel.clone(), thread)).or_default().push(line);
    }
    for ((via, channel, ts), lines) in threads {
        let text = format!("Grace period over, rechecked. Outcome:\n{}", lines.join("\n"));
        let sent = match deps.delivery.of(via) {
            None => deps.chat.reply_in_thread(&channel, &ts, &text).await,
            Some(delivery) => delivery.follow_up(&channel, &format!("Run {}. {text}", payload.run.id)).await,
        };
        if let Err(e) = sent {
            tracing::warn!(%via, %channel, error = %e, "could not tell the outcome");
        }
    }
}

/// Amazon Q Developer in chat applications custom notification (schema version 1.0).
pub fn summary_message(payload: &StepPayload, halted: bool, cap: usize) -> serde_json::Value {
    use AuditEventType::*;
    let count = |result: AuditEventType| payload.outcomes.iter().filter(|o| o.result == result).count();
    let scope = payload.run.scope.as_ref().map(|s| s.to_string()).unwrap_or_default();
    let title = if halted {
        format!(":octagonal_sign: Cloud Janitor halted in {scope}: more than {cap} actions")
    } else {
        format!(":broom: Cloud Janitor {} run in {scope}", payload.run.mode)
    };
    let acted = |result: AuditEventType| {
        payload.findings.iter().filter(move |f| {
            payload.outcomes.iter().any(|o| o.key == f.key && o.policy == f.policy && o.result == result)
        })
    };
    let (verb, total, result) = match payload.run.mode {
        Mode::DryRun => ("Would save", payload.tally.savings_would, WouldRemediate),
        Mode::Enforce => ("Saved", payload.tally.savings_made, Remediated),
    };
    let unpriced = crate::cost::totals(acted(result)).unpriced;
    let savings = match unpriced {
        0 => format!("{verb} {total}/month."),
        n => format!("{verb} {total}/month ({n} resource(s) not priced)."),
    };
    let mut lines = vec![format!(
        "*Run* `{}` ({}): {} remediated, {} would be remediated, {} already compliant, {} skipped, {} halted, {} failed. {savings}",
        payload.run.id,
        payload.run.mode,
        count(Remediated),
        count(WouldRemediate),
        count(AlreadyCompliant),
        count(Skipped),
        count(Halted),
        count(Failed),
    )];
    for o in payload.outcomes.iter().take(20) {
        // Only what was (or would be) done saves anything.
        let verb = match o.result {
            Remediated => "saves",
            WouldRemediate => "would save",
            _ => "",
        };
        let saves = payload
            .findings
            .iter()
            .find(|f| f.key == o.key && f.policy == o.policy)
            .and_then(|f| f.cost.as_ref())
            .filter(|c| !verb.is_empty() && c.monthly_cost.is_some() && c.monthly_savings > crate::cost::Usd::ZERO)
            .map(|c| format!(" ({verb} {}/month)", c.monthly_savings))
            .unwrap_or_default();
        lines.push(format!("• `{}` {}: {}{saves}", o.key, o.policy, o.result.as_str()));
    }
    if payload.outcomes.len() > 20 {
        lines.push(format!("… and {} more (see the audit table, run {})", payload.outcomes.len() - 20, payload.run.id));
    }
    let related: Vec<String> = payload.outcomes.iter().map(|o| o.key.to_string()).collect();
    let event_type = if halted { "JanitorHalted" } else { "JanitorRunSummary" };
    alert_message(&payload.run, format!("{}-{}", payload.run.id, scope), title, lines.join("\n"), event_type, &related)
}
