//! Notify: one message per owner (Slack, Teams or email, by the policy's routes) (split to stay inside Block Kit limits), not one per
//! resource, and one line per resource however many rules it breaks. A resource whose notification failed leaves the run and can never be
//! remediated.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::delivery::{Digest, LinkClaim, Route, Via};
use crate::error::{JanitorError, Result};
use crate::model::{Finding, FlagHistory, Notice, ResourceKey, StepPayload};
use crate::slack::{Deadline, PostedMessage, RESOURCES_PER_MESSAGE, notification_blocks};

const ACTOR: &str = "notify";

/// Set on a NOTIFIED row whose owner is only the caller of a change (onboard): it is not
/// the owner the snooze button answers to.
pub const OWNER_IS_CALLER: &str = "owner_is_caller";

/// Set on a NOTIFIED row whose message carried a signed snooze link: to whom (the owner's
/// email or #channel). The link snoozes only while this is the resource's latest notice.
pub const LINK_HOLDER: &str = "link_holder";

/// Whom a digest goes to, and by what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Recipient {
    /// A Slack user or channel; `owner_user` is the owner's Slack user, who may snooze.
    Slack {
        to: String,
        owner_user: Option<String>,
    },
    /// A Teams webhook; `owner` is the #channel the owner tag names when the policy routes
    /// that channel to this webhook (its members may snooze through the card's links). An
    /// owner routed by email domain, or by default, gets no link: a channel is not them.
    Teams {
        webhook: String,
        owner: Option<String>,
    },
    Email {
        address: String,
    },
}

impl Recipient {
    fn via(&self) -> Via {
        match self {
            Recipient::Slack { .. } => Via::Slack,
            Recipient::Teams { .. } => Via::Teams,
            Recipient::Email { .. } => Via::Email,
        }
    }

    fn address(&self) -> &str {
        match self {
            Recipient::Slack { to, .. } => to,
            Recipient::Teams { webhook, .. } => webhook,
            Recipient::Email { address } => address,
        }
    }

    fn owner_user(&self) -> Option<&str> {
        match self {
            Recipient::Slack { owner_user, .. } => owner_user.as_deref(),
            _ => None,
        }
    }

    /// Who may snooze through this message's links: the owner it was sent to.
    fn link_holder(&self) -> Option<&str> {
        match self {
            Recipient::Slack { .. } => None,
            Recipient::Teams { owner, .. } => owner.as_deref(),
            Recipient::Email { address } => Some(address),
        }
    }

    /// Resources per message: inside Block Kit's 50 blocks, a Teams card's 28 KB, a
    /// readable email.
    fn per_message(&self) -> usize {
        match self {
            Recipient::Slack { .. } => RESOURCES_PER_MESSAGE,
            Recipient::Teams { .. } => crate::teams::RESOURCES_PER_CARD,
            Recipient::Email { .. } => RESOURCES_PER_MESSAGE,
        }
    }
}

/// Where an owner's messages go, by the policy's `[delivery]` routes: in Slack their user
/// for an email Slack knows, a channel named in the tag, else the configured channel; a
/// Teams webhook; their address.
async fn recipient(deps: &Deps, owner: Option<&str>, cache: &mut HashMap<String, Option<String>>) -> Recipient {
    let named = owner.filter(|o| o.starts_with('#') || o.contains('@'));
    match deps.policy.delivery.route(owner) {
        // A webhook posts to a channel that everyone in it reads: a link there is the
        // channel's, so only a channel the owner tag names, routed by name, holds one.
        Route::Teams { webhook } => {
            let channel = owner.filter(|o| o.starts_with('#') && deps.policy.delivery.channels.contains_key(*o));
            Recipient::Teams { webhook: webhook.clone(), owner: channel.map(str::to_owned) }
        }
        Route::Email => match named.filter(|o| o.contains('@')) {
            Some(address) => Recipient::Email { address: address.to_ascii_lowercase() },
            None => slack_recipient(deps, owner, cache).await,
        },
        Route::Slack => slack_recipient(deps, owner, cache).await,
    }
}

async fn slack_recipient(deps: &Deps, owner: Option<&str>, cache: &mut HashMap<String, Option<String>>) -> Recipient {
    let fallback = Recipient::Slack { to: deps.slack.default_channel.clone(), owner_user: None };
    match owner {
        Some(channel) if channel.starts_with('#') => Recipient::Slack { to: channel.to_owned(), owner_user: None },
        Some(email) if email.contains('@') => {
            if !cache.contains_key(email) {
                let user = deps.chat.lookup_user_by_email(email).await.unwrap_or_else(|e| {
                    tracing::warn!(owner = email, error = %e, "owner lookup failed; using the default channel");
                    None
                });
                cache.insert(email.to_owned(), user);
            }
            match cache.get(email).cloned().flatten() {
                Some(user) => Recipient::Slack { to: user.clone(), owner_user: Some(user) },
                None => fallback,
            }
        }
        _ => fallback,
    }
}

/// Signed snooze links for the resources of one message the holder may snooze. A link
/// lives as long as a Slack button may be clicked (`snooze.max_days`).
async fn snooze_links(
    deps: &Deps,
    holder: Option<&str>,
    run_id: &str,
    findings: impl Iterator<Item = &Finding>,
    caller_only: &(dyn Fn(&Finding) -> bool + Sync),
) -> Result<HashMap<ResourceKey, String>> {
    let mut links = HashMap::new();
    let (Some(holder), Some(signer)) = (holder, &deps.delivery.links) else { return Ok(links) };
    let expires = (deps.clock.now() + Duration::days(i64::from(deps.policy.snooze.max_days))).timestamp();
    for f in findings {
        // Whoever only changed a resource gains no right to snooze it.
        if caller_only(f) || links.contains_key(&f.key) {
            continue;
        }
        let claim = LinkClaim { key: f.key.to_string(), holder: holder.to_owned(), run_id: run_id.to_owned(), expires };
        links.insert(f.key.clone(), signer.link(&claim).await?);
    }
    Ok(links)
}

/// Sends one digest by whatever carries it.
async fn send(deps: &Deps, to: &Recipient, digest: &Digest<'_>) -> Result<PostedMessage> {
    match to {
        Recipient::Slack { to, .. } => {
            let (text, blocks) = notification_blocks(digest);
            deps.chat.post_message(to, &text, &blocks).await
        }
        Recipient::Teams { webhook, .. } => deps.delivery.teams.send(webhook, digest).await,
        Recipient::Email { address } => deps.delivery.email.send(address, digest).await,
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
    let mut by_recipient = BTreeMap::<Recipient, Vec<(usize, Finding)>>::new();
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
    for (to, mut findings) in by_recipient {
        findings.sort_by(|(_, a), (_, b)| (&a.key, a.policy).cmp(&(&b.key, b.policy)));
        // A resource's findings share its line, and so its message.
        let resources: Vec<&[(usize, Finding)]> = findings.chunk_by(|(_, a), (_, b)| a.key == b.key).collect();
        let parts = resources.len().div_ceil(to.per_message());
        for (part, message) in resources.chunks(to.per_message()).enumerate() {
            let lines: Vec<Vec<&Finding>> =
                message.iter().map(|resource| resource.iter().map(|(_, f)| f).collect()).collect();
            let chunk = message.iter().flat_map(|resource| resource.iter());
            let mut events: Vec<(usize, AuditEvent)> = Vec::new();
            // Told at last: a finding the cap kept back loses its place at the front.
            let mut no_longer_deferred = Vec::new();
            let posted =
                match snooze_links(deps, to.link_holder(), &run_id, chunk.clone().map(|(_, f)| f), caller_only).await {
                    Ok(links) => {
                        let digest = Digest {
                            resources: &lines,
                            run_id: &run_id,
                            mode: run.mode,
                            deadline,
                            part: (part + 1, parts),
                            links: &links,
                        };
                        send(deps, &to, &digest).await.map(|posted| (posted, links))
                    }
                    Err(e) => Err(e),
                };
            let posted_ok = posted.is_ok();
            match posted {
                Ok((posted, links)) => {
                    for (index, f) in chunk {
                        if f.deferred_since.is_some() {
                            let told = Finding { deferred_since: None, ..f.clone() };
                            no_longer_deferred.push((
                                f.finding_key(),
                                FlagHistory::after_run(&told, &run_id, now, deps.policy.history_retention()),
                            ));
                        }
                        let mut detail = json!({
                            "via": to.via(),
                            "channel": posted.channel,
                            "ts": posted.ts,
                            "recipient": to.address(),
                            "owner_user": to.owner_user(),
                            "grace_ends": grace_ends,
                        });
                        if links.contains_key(&f.key) {
                            detail[LINK_HOLDER] = json!(to.link_holder());
                        }
                        if caller_only(f) {
                            detail[OWNER_IS_CALLER] = json!(true);
                        }
                        events.push((
                            *index,
                            AuditEvent::for_finding(f, &run_id, AuditEventType::Notified, now, ACTOR, detail),
                        ));
                        let notice = Notice {
                            via: to.via(),
                            channel: posted.channel.clone(),
                            ts: posted.ts.clone(),
                            at: now,
                            owner_user: to.owner_user().map(str::to_owned),
                        };
                        notified[*index].push(Finding { notified: Some(notice), deferred_since: None, ..f.clone() });
                    }
                }
                Err(e) => {
                    tracing::warn!(via = %to.via(), recipient = to.address(), error = %e, "notification failed");
                    for (index, f) in chunk {
                        let mut detail = json!({ "via": to.via(), "recipient": to.address(), "error": e.error_name(), "message": e.to_string() });
                        if caller_only(f) {
                            detail[OWNER_IS_CALLER] = json!(true);
                        }
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
