//! The Slack Snooze button and the signed snooze link of Teams and email: verify the request, authorise the clicker, store the snooze
//! with its TTL, audit it, and show it in the message — well within Slack's 3 seconds.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::delivery::{LinkClaim, LinkError};
use crate::model::{ResourceKey, Snooze};
use crate::slack::{SIGNATURE_WINDOW_SECONDS, SNOOZE_ACTIONS, SignatureError, mark_snoozed, verify_signature};

const ACTOR: &str = "snooze";

#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
    /// `application/json` for Slack, `text/html` for a snooze link's pages.
    pub content_type: &'static str,
}

impl HttpReply {
    fn new(status: u16, message: &str) -> HttpReply {
        HttpReply {
            status,
            body: if message.is_empty() { String::new() } else { json!({ "error": message }).to_string() },
            content_type: "application/json",
        }
    }

    /// A small page for whoever opened a snooze link.
    fn page(status: u16, title: &str, body: &str) -> HttpReply {
        let title = crate::report_page::esc(title);
        HttpReply {
            status,
            body: format!(
                "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
                 <meta name=robots content=noindex><title>{title}</title>\
                 <body style=\"font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em\">\
                 <h1 style=\"font-size:1.4em\">{title}</h1>{body}</body></html>"
            ),
            content_type: "text/html; charset=utf-8",
        }
    }
}

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<ButtonAction>,
    response_url: Option<String>,
    message: Option<Value>,
    container: Option<Value>,
}

impl Interaction {
    /// When the clicked message was posted (Slack's `ts` is seconds since the epoch).
    fn message_sent(&self) -> Option<DateTime<Utc>> {
        let ts = self.message.as_ref().and_then(|m| m["ts"].as_str());
        let ts = ts.or_else(|| self.container.as_ref().and_then(|c| c["message_ts"].as_str()))?;
        let seconds: i64 = ts.split('.').next()?.parse().ok()?;
        DateTime::from_timestamp(seconds, 0)
    }
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Deserialize)]
struct ButtonAction {
    action_id: String,
    value: Option<String>,
}

fn parse(body: &[u8]) -> Result<Interaction, String> {
    let form: HashMap<String, String> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("body is not a form: {e}"))?;
    let raw = form.get("payload").ok_or("no payload field")?;
    serde_json::from_str(raw).map_err(|e| format!("payload is not an interaction: {e}"))
}

/// Slack shows an error unless it has the answer within 3 s; follow-ups to `response_url`
/// (which Slack may rate-limit) get what is left of this budget and are then dropped.
pub const ANSWER_BUDGET: std::time::Duration = std::time::Duration::from_millis(2500);

/// Posts to `response_url` within the answer budget; a slow or rate-limited Slack costs
/// the message update, never the answer (the snooze itself is already stored and audited).
async fn follow_up(deps: &Deps, url: &str, body: &Value, deadline: tokio::time::Instant, what: &str) {
    match tokio::time::timeout_at(deadline, deps.chat.respond(url, body)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "{what}: the Slack message could not be updated"),
        Err(_) => tracing::warn!("{what}: Slack did not take the message update in time; dropped"),
    }
}

/// A refused click: audited, told to the clicker only, answered 200 (the request was fine).
async fn refuse(
    deps: &Deps,
    interaction: &Interaction,
    event: AuditEvent,
    text: String,
    deadline: tokio::time::Instant,
) -> HttpReply {
    if let Err(e) = deps.audit.record(&[event]).await {
        return HttpReply::new(500, &e.to_string());
    }
    if let Some(url) = &interaction.response_url {
        let reply = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
        follow_up(deps, url, &reply, deadline, "refused snooze").await;
    }
    HttpReply::new(200, "")
}

/// Handles one interactivity request. Anything a client sent wrongly is a 4xx, never a 500.
pub async fn handle_interaction(
    deps: &Deps,
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> HttpReply {
    let deadline = tokio::time::Instant::now() + ANSWER_BUDGET;
    let now = deps.clock.now();
    match verify_signature(signing_secret, timestamp, signature, body, now) {
        Ok(()) => {}
        Err(SignatureError::Missing) => return HttpReply::new(401, "missing Slack signature headers"),
        Err(SignatureError::Stale) => return HttpReply::new(401, "stale or malformed request timestamp"),
        Err(SignatureError::Mismatch) => return HttpReply::new(401, "invalid signature"),
    }
    let interaction = match parse(body) {
        Ok(i) => i,
        Err(e) => return HttpReply::new(400, &e),
    };
    if interaction.kind != "block_actions" {
        return HttpReply::new(400, &format!("unsupported interaction type `{}`", interaction.kind));
    }
    let Some(action) = interaction.actions.first() else { return HttpReply::new(400, "no action in payload") };
    let Some(&(_, days, _)) = SNOOZE_ACTIONS.iter().find(|(id, _, _)| *id == action.action_id) else {
        return HttpReply::new(400, &format!("unknown action `{}`", action.action_id));
    };
    let key = match action.value.as_deref().map(ResourceKey::parse) {
        Some(Ok(key)) => key,
        _ => return HttpReply::new(400, "the action carries no valid resource key"),
    };
    let user = interaction.user.id.as_str();

    // A signature names one request: seen once, it is a replay until the window has closed
    // (a request may be up to the window early as well as late, hence twice the window).
    // Hex is case-blind, so the seen-key is the lowercase form: an upper-cased copy of a
    // captured signature verifies too and must not count as a new request.
    let signature = signature.unwrap_or_default().trim().to_ascii_lowercase();
    let remember_until = now + Duration::seconds(2 * SIGNATURE_WINDOW_SECONDS);
    match deps.snoozes.first_sight(&signature, remember_until).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(resource = %key, by = user, "replayed Slack request refused");
            return HttpReply::new(409, "this request was already handled");
        }
        Err(e) => return HttpReply::new(500, &e.to_string()),
    }

    let history = match deps.audit.events_for_resource(key.as_str()).await {
        Ok(h) => h,
        Err(e) => return HttpReply::new(500, &e.to_string()),
    };
    // A notice to whoever changed a resource (onboard) names no owner: the one before it does.
    let last_notice = history
        .iter()
        .filter(|e| e.event == AuditEventType::Notified && e.detail[crate::notify::OWNER_IS_CALLER] != true)
        .max_by_key(|e| e.at);
    let run_id = last_notice.map(|e| e.run_id.clone()).unwrap_or_else(|| "slack".into());
    let denied =
        |detail: Value| AuditEvent::new(key.as_str(), &run_id, AuditEventType::SnoozeDenied, now, ACTOR, detail);
    let is_owner = last_notice.is_some_and(|e| e.detail["owner_user"] == user);
    let allowed = is_owner || deps.policy.snooze.allowed_users.iter().any(|u| u == user);
    if !allowed {
        let event = denied(json!({ "by": user, "reason": "not the owner and not in snooze.allowed_users" }));
        let text = format!("Sorry <@{user}>, only the owner of `{key}` or a janitor admin may snooze it.");
        return refuse(deps, &interaction, event, text, deadline).await;
    }

    // An old message cannot keep a resource snoozed forever: past the longest snooze there
    // is, only a newer run's message can snooze it.
    let max_days = deps.policy.snooze.max_days;
    let sent = interaction.message_sent().or(last_notice.map(|e| e.at));
    let age = sent.and_then(|sent| now.signed_duration_since(sent).num_seconds().checked_div(86_400));
    if age.is_some_and(|days| days >= i64::from(max_days)) {
        let event = denied(
            json!({ "by": user, "reason": "message older than snooze.max_days", "sent": sent, "max_days": max_days }),
        );
        let text = format!(
            "This message is more than {max_days} days old, so it can no longer snooze `{key}`; the next janitor run's message can."
        );
        return refuse(deps, &interaction, event, text, deadline).await;
    }

    let days = days.min(max_days);
    let until = now + Duration::days(i64::from(days));
    let snooze = Snooze { key: key.clone(), until, by: user.to_owned(), at: now };
    match deps.snoozes.put_snooze(&snooze).await {
        Ok(true) => {}
        Ok(false) => {
            let longer = history
                .iter()
                .filter(|e| e.event == AuditEventType::Snoozed)
                .filter_map(|e| e.detail["until"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()))
                .map(|t| t.with_timezone(&Utc))
                .max()
                .filter(|t| *t > until);
            let event = denied(
                json!({ "by": user, "reason": "a longer snooze is live", "asked_until": until, "live_until": longer }),
            );
            let when = longer.map(|t| format!(" until {}", t.format("%Y-%m-%d"))).unwrap_or_default();
            let text = format!("`{key}` is already snoozed{when}, longer than {days} days; the longer snooze stays.");
            return refuse(deps, &interaction, event, text, deadline).await;
        }
        Err(e) => return HttpReply::new(500, &e.to_string()),
    }
    let detail = json!({ "by": user, "until": until, "days": days });
    let event = AuditEvent::new(key.as_str(), &run_id, AuditEventType::Snoozed, now, ACTOR, detail);
    if let Err(e) = deps.audit.record(&[event]).await {
        return HttpReply::new(500, &e.to_string());
    }
    tracing::info!(resource = %key, by = user, %until, "snoozed");
    crate::emf::count(&run_id, now, crate::emf::Metric::Snoozed, 1).emit();
    if let (Some(url), Some(message)) = (&interaction.response_url, &interaction.message) {
        let note = format!(":zzz: Snoozed by <@{user}> until {}", until.format("%Y-%m-%d"));
        let update = json!({
            "replace_original": true,
            "text": message["text"].as_str().unwrap_or("Cloud Janitor"),
            "blocks": mark_snoozed(&message["blocks"], key.as_str(), &note),
        });
        follow_up(deps, url, &update, deadline, "snooze stored").await;
    }
    HttpReply::new(200, "")
}

// ------------------------------------------------------------------ signed links

/// A snooze link (Teams, email). Opening it (GET) only shows what it would snooze and asks
/// for how long: mail scanners and link previews open links, and must not snooze anything.
/// The choice comes back as a form POST, which snoozes once per link, for its holder only,
/// while the holder is still the resource's latest notified owner.
pub async fn handle_link(deps: &Deps, method: &str, query: Option<&str>, body: &[u8]) -> HttpReply {
    let now = deps.clock.now();
    let fields = |raw: &[u8]| serde_urlencoded::from_bytes::<HashMap<String, String>>(raw).unwrap_or_default();
    let (from_query, from_body) = (fields(query.unwrap_or_default().as_bytes()), fields(body));
    let Some(token) = from_body.get("t").or(from_query.get("t")) else {
        return HttpReply::page(
            400,
            "Not a snooze link",
            "<p>This address needs the link from a Cloud Janitor message.</p>",
        );
    };
    let Some(links) = &deps.delivery.links else {
        return HttpReply::page(503, "Snooze links are off", "<p>Ask a janitor admin to snooze the resource.</p>");
    };
    let claim = match links.open(token, now).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(LinkError::Expired)) => {
            return HttpReply::page(
                410,
                "This link has expired",
                "<p>It can no longer snooze anything; the next janitor message has a new one.</p>",
            );
        }
        Ok(Err(LinkError::Malformed)) => {
            return HttpReply::page(
                400,
                "Not a valid snooze link",
                "<p>Use the link exactly as the message gave it.</p>",
            );
        }
        Ok(Err(LinkError::Forged)) => {
            tracing::warn!("a snooze link that the key did not sign");
            return HttpReply::page(
                403,
                "Not a valid snooze link",
                "<p>Use the link exactly as the message gave it.</p>",
            );
        }
        Err(e) => return unavailable(e),
    };
    let (claim, mac) = claim;
    let Ok(key) = ResourceKey::parse(&claim.key) else {
        return HttpReply::page(400, "Not a valid snooze link", "<p>It names no resource.</p>");
    };
    let esc = crate::report_page::esc;
    let what =
        format!("{} <code>{}</code> in {} ({})", key.kind(), esc(key.id()), esc(key.region()), esc(key.account()));
    let max_days = deps.policy.snooze.max_days;
    let choices: Vec<u32> = SNOOZE_ACTIONS.iter().map(|(_, days, _)| (*days).min(max_days)).collect();
    match method {
        "GET" | "HEAD" => {
            let buttons: String = choices
                .iter()
                .map(|days| format!("<button name=days value={days} style=\"font-size:1em;margin-right:.5em\">Snooze {days} days</button>"))
                .collect();
            let body = format!(
                "<p>Snooze {what}, so that Cloud Janitor leaves it as it is?</p>\
                 <form method=post><input type=hidden name=t value=\"{}\">{buttons}</form>\
                 <p style=\"color:#555\">Sent to {} by run {}. The link works once.</p>",
                esc(token),
                esc(&claim.holder),
                esc(&claim.run_id)
            );
            HttpReply::page(200, "Snooze a resource", &body)
        }
        "POST" => {
            let days = match from_body.get("days").and_then(|d| d.parse::<u32>().ok()) {
                Some(days) if choices.contains(&days) => days,
                _ => return HttpReply::page(400, "Choose how long", "<p>The form names no snooze length.</p>"),
            };
            snooze_by_link(deps, &claim, &mac, key, days, &what).await
        }
        other => HttpReply::new(405, &format!("method {other} is not allowed here")),
    }
}

/// A failure on our side: logged, not shown (the page is public).
fn unavailable(e: crate::JanitorError) -> HttpReply {
    tracing::error!(error = %e, "snooze link failed");
    HttpReply::page(
        500,
        "Not snoozed",
        "<p>Something failed on our side; nothing was snoozed. Try again in a minute.</p>",
    )
}

async fn snooze_by_link(
    deps: &Deps,
    claim: &LinkClaim,
    mac: &str,
    key: ResourceKey,
    days: u32,
    what: &str,
) -> HttpReply {
    let now = deps.clock.now();
    let holder = claim.holder.as_str();
    let history = match deps.audit.events_for_resource(key.as_str()).await {
        Ok(h) => h,
        Err(e) => return unavailable(e),
    };
    // The latest try to tell an owner: a link snoozes only while that try reached its holder.
    let last_notice = history
        .iter()
        .filter(|e| match e.event {
            AuditEventType::Notified => e.detail[crate::notify::OWNER_IS_CALLER] != true,
            AuditEventType::NotifyFailed => e.detail[crate::notify::OWNER_IS_CALLER] != true,
            _ => false,
        })
        .max_by_key(|e| e.at);
    let run_id = last_notice.map(|e| e.run_id.clone()).unwrap_or_else(|| claim.run_id.clone());
    let record =
        |event: AuditEventType, detail: Value| AuditEvent::new(key.as_str(), &run_id, event, now, ACTOR, detail);
    // A newer notice to someone else (the owner tag changed), or one that failed, ends the
    // old holder's right.
    let holds = last_notice
        .is_some_and(|e| e.event == AuditEventType::Notified && e.detail[crate::notify::LINK_HOLDER] == holder);
    if !holds {
        let event = record(
            AuditEventType::SnoozeDenied,
            json!({ "by": holder, "via": "link", "reason": "the link's holder is no longer the notified owner" }),
        );
        if let Err(e) = deps.audit.record(&[event]).await {
            return unavailable(e);
        }
        return HttpReply::page(
            403,
            "This link can no longer snooze",
            "<p>The resource was told to someone else since, or the last message failed; a newer message can \
             snooze it, or a janitor admin.</p>",
        );
    }
    // Used up only now, so a refusal above leaves it for its holder's later try.
    let remember_until = DateTime::from_timestamp(claim.expires, 0).unwrap_or(now) + Duration::seconds(60);
    match deps.snoozes.first_sight(&format!("link:{mac}"), remember_until).await {
        Ok(true) => {}
        Ok(false) => {
            let event = record(
                AuditEventType::SnoozeDenied,
                json!({ "by": holder, "via": "link", "reason": "the link was already used" }),
            );
            if let Err(e) = deps.audit.record(&[event]).await {
                return unavailable(e);
            }
            return HttpReply::page(409, "This link was already used", "<p>Each snooze link works once.</p>");
        }
        Err(e) => return unavailable(e),
    }
    let until = now + Duration::days(i64::from(days));
    let snooze = Snooze { key: key.clone(), until, by: holder.to_owned(), at: now };
    match deps.snoozes.put_snooze(&snooze).await {
        Ok(true) => {}
        Ok(false) => {
            let event = record(
                AuditEventType::SnoozeDenied,
                json!({ "by": holder, "via": "link", "reason": "a longer snooze is live", "asked_until": until }),
            );
            if let Err(e) = deps.audit.record(&[event]).await {
                return unavailable(e);
            }
            return HttpReply::page(
                200,
                "Already snoozed longer",
                &format!("<p>{what} is already snoozed beyond {days} days; that snooze stays.</p>"),
            );
        }
        Err(e) => return unavailable(e),
    }
    let event = record(AuditEventType::Snoozed, json!({ "by": holder, "via": "link", "until": until, "days": days }));
    if let Err(e) = deps.audit.record(&[event]).await {
        return unavailable(e);
    }
    tracing::info!(resource = %key, by = holder, %until, "snoozed by link");
    crate::emf::count(&run_id, now, crate::emf::Metric::Snoozed, 1).emit();
    HttpReply::page(200, "Snoozed", &format!("<p>{what} is snoozed until {}.</p>", until.format("%Y-%m-%d %H:%M UTC")))
}
