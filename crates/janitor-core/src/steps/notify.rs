//! Notify: one Slack message per owner (split to stay inside Block Kit limits), not one per
//! resource, and one line per resource however many rules it breaks. A resource whose notification failed leaves the run and can never be
//! remediated.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::error::{JanitorError, Result};
use crate::model::{Finding, FlagHistory, Notice, StepPayload};
use crate::slack::{Deadline, RESOURCES_PER_MESSAGE, notification_blocks};

const ACTOR: &str = "notify";

/// Set on a NOTIFIED row whose owner is only the caller of a change (onboard): it is not
/// the owner the snooze button answers to.
pub const OWNER_IS_CALLER: &str = "owner_is_caller";

/// Where an owner's messages go: their Slack user for an email Slack knows, a channel
/// named in the tag, else the configured channel.
async fn recipient(
    deps: &Deps,
    owner: Option<&str>,
    cache: &mut HashMap<String, Option<String>>,
) -> (String, Option<String>) {
    let fallback = (deps.slack.default_channel.clone(), None);
    match owner {
        Some(channel) if channel.starts_with('#') => (channel.to_owned(), None),
        Some(email) if email.contains('@') => {
            if !cache.contains_key(email) {
                let user = deps.chat.lookup_user_by_email(email).await.unwrap_or_else(|e| {
                    tracing::warn!(owner = email, error = %e, "owner lookup failed; using the default channel");
                    None
                });
                cache.insert(email.to_owned(), user);
            }
            match cache.get(email).cloned().flatten() {
                Some(user) => (user.clone(), Some(user)),
                None => fallback,
            }
        }
        _ => fallback,
    }
}

/// The end of the grace period, decided once: `now + grace` rounded up to the whole second,
/// because a Wait's timestamp has whole seconds and the guard must not see the Wait end
/// a fraction of a second "early".
pub fn grace_end(now: DateTime<Utc>, grace: Duration) -> DateTime<Utc> {
    let end = now + grace;
    match end.duration_trunc(Duration::seconds(1)) {
        Ok(whole) if whole < end => whole + Duration::seconds(1),
        Ok(whole) => whole,
        Err(_) => end,
    }
}

/// Whole seconds with `Z`: the form a Step Functions Wait's TimestampPath accepts.
pub fn wait_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One scope's notifications (the in-process pipeline and tests).
pub async fn notify(deps: &Deps, payload: StepPayload) -> Result<StepPayload> {
    let mut out = notify_run(deps, vec![payload]).await?;
    out.pop().ok_or_else(|| JanitorError::InvalidInput("notify: no scope".into()))
}

/// The run's notifications: one digest per owner across every scope (all regions and
/// accounts), split only to stay inside Block Kit's limits. One grace end for all of them.
/// Scopes that failed before notify pass through untouched.
pub async fn notify_run(deps: &Deps, payloads: Vec<StepPayload>) -> Result<Vec<StepPayload>> {
    let grace_ends = grace_end(deps.clock.now(), deps.policy.grace_period.as_chrono());
    deliver(deps, payloads, Deadline::At(grace_ends), &|_: &Finding| false).await
}

/// Tells each owner of their findings: one digest per recipient, NOTIFIED or NOTIFY_FAILED
/// rows message by message. A run's notice (`Deadline::At`) holds the resources' locks and
/// gives a failed message's back; a notice at creation holds none. `caller_only` says which
/// findings' owner is only the caller of a change, recorded so that their notice gives no
/// right to snooze.
pub(crate) async fn deliver(
    deps: &Deps,
    mut payloads: Vec<StepPayload>,
    deadline: Deadline,
    caller_only: &(dyn Fn(&Finding) -> bool + Sync),
) -> Result<Vec<StepPayload>> {
    let Some(run) = payloads.first().map(|p| p.run.clone()) else { return Ok(payloads) };
    let now = deps.clock.now();
    let run_id = run.id.clone();
    let grace_ends = match deadline {
        Deadline::At(at) => Some(at),
        Deadline::NextRun => None,
    };

    // Each finding remembers its scope's place, so rows and tallies go back to that scope.
    let mut lookups = HashMap::new();
    // Recipient (channel or user, and the owner's Slack user) -> (scope index, finding).
    type Digests = BTreeMap<(String, Option<String>), Vec<(usize, Finding)>>;
    let mut by_recipient = Digests::new();
    for (index, payload) in payloads.iter_mut().enumerate() {
        if payload.error.is_some() {
            continue;
        }
        for f in std::mem::take(&mut payload.findings) {
            let to = recipient(deps, f.owner.as_deref(), &mut lookups).await;
            by_recipient.entry(to).or_default().push((index, f));
        }
    }

    let mut notified: Vec<Vec<Finding>> = vec![Vec::new(); payloads.len()];
    for ((to, owner_user), mut findings) in by_recipient {
        findings.sort_by(|(_, a), (_, b)| (&a.key, a.policy).cmp(&(&b.key, b.policy)));
        // A resource's findings share its line, and so its message.
        let resources: Vec<&[(usize, Finding)]> = findings.chunk_by(|(_, a), (_, b)| a.key == b.key).collect();
        let parts = resources.len().div_ceil(RESOURCES_PER_MESSAGE);
        for (part, message) in resources.chunks(RESOURCES_PER_MESSAGE).enumerate() {
            let lines: Vec<Vec<&Finding>> =
                message.iter().map(|resource| resource.iter().map(|(_, f)| f).collect()).collect();
            let (text, blocks) = notification_blocks(&lines, &run_id, run.mode, deadline, (part + 1, parts));
            let chunk = message.iter().flat_map(|resource| resource.iter());
            let mut events: Vec<(usize, AuditEvent)> = Vec::new();
            // Told at last: a finding the cap kept back loses its place at the front.
            let mut no_longer_deferred = Vec::new();
            let posted = deps.chat.post_message(&to, &text, &blocks).await;
            let posted_ok = posted.is_ok();
            match posted {
                Ok(posted) => {
                    for (index, f) in chunk {
                        if f.deferred_since.is_some() {
                            let told = Finding { deferred_since: None, ..f.clone() };
                            no_longer_deferred.push((
                                f.finding_key(),
                                FlagHistory::after_run(&told, &run_id, now, deps.policy.history_retention()),
                            ));
                        }
                        let mut detail = json!({
                            "channel": posted.channel,
                            "ts": posted.ts,
                            "recipient": to,
                            "owner_user": owner_user,
                            "grace_ends": grace_ends,
                        });
                        if caller_only(f) {
                            detail[OWNER_IS_CALLER] = json!(true);
                        }
                        events.push((
                            *index,
                            AuditEvent::for_finding(f, &run_id, AuditEventType::Notified, now, ACTOR, detail),
                        ));
                        let notice = Notice {
                            channel: posted.channel.clone(),
                            ts: posted.ts.clone(),
                            at: now,
                            owner_user: owner_user.clone(),
                        };
                        notified[*index].push(Finding { notified: Some(notice), deferred_since: None, ..f.clone() });
                    }
                }
                Err(e) => {
                    tracing::warn!(recipient = %to, error = %e, "notification failed");
                    for (index, f) in chunk {
                        let detail = json!({ "recipient": to, "error": e.error_name(), "message": e.to_string() });
                        events.push((
                            *index,
                            AuditEvent::for_finding(f, &run_id, AuditEventType::NotifyFailed, now, ACTOR, detail),
                        ));
                    }
                }
            }
            // Recorded message by message: a step cut short keeps the record of what it sent.
            let rows: Vec<AuditEvent> = events.iter().map(|(_, e)| e.clone()).collect();
            deps.audit.record(&rows).await?;
            if !posted_ok && grace_ends.is_some() {
                // Never notified, never remediated: its resources leave the run, once that is
                // on record (a retry after a failed write still holds their locks).
                let keys = message.iter().flat_map(|resource| resource.iter().map(|(_, f)| &f.key));
                crate::lock::release_resources(deps, &run_id, keys).await?;
            }
            deps.audit.save_flag_history(&no_longer_deferred).await?;
            for (index, event) in &events {
                payloads[*index].tally_events(std::slice::from_ref(event));
            }
        }
    }
    let mut total = 0;
    for (payload, mut findings) in payloads.iter_mut().zip(notified) {
        if payload.error.is_some() {
            continue;
        }
        findings.sort_by(|a, b| a.key.cmp(&b.key));
        payload.findings = findings;
        payload.grace_ends = grace_ends.map(wait_timestamp);
        payload.recount();
        total += payload.count;
    }
    tracing::info!(run = %run_id, notified = total, scopes = payloads.len(), "notifications sent");
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_end_rounds_up_to_the_whole_second_it_is_waited_for() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let end = grace_end(at("2026-12-01T10:00:00.250Z"), Duration::seconds(3));
        assert_eq!(end, at("2026-12-01T10:00:04Z"));
        assert_eq!(wait_timestamp(end), "2026-12-01T10:00:04Z");
        // The instant the Wait ends is never before the end the guard compares against.
        assert!(at(&wait_timestamp(end)) >= end);
        assert_eq!(grace_end(at("2026-12-01T10:00:00Z"), Duration::hours(72)), at("2026-12-04T10:00:00Z"));
    }
}
