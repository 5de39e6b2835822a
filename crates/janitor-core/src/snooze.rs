//! The Slack Snooze button: verify the request, authorise the clicker, store the snooze
//! with its TTL, audit it, and show it in the message — well within Slack's 3 seconds.

use std::collections::HashMap;

use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::model::{ResourceKey, Snooze};
use crate::slack::{SNOOZE_ACTIONS, SignatureError, mark_snoozed, verify_signature};

const ACTOR: &str = "snooze";

#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

impl HttpReply {
    fn new(status: u16, message: &str) -> HttpReply {
        HttpReply {
            status,
            body: if message.is_empty() { String::new() } else { json!({ "error": message }).to_string() },
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

/// Handles one interactivity request. Anything a client sent wrongly is a 4xx, never a 500.
pub async fn handle_interaction(
    deps: &Deps,
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> HttpReply {
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

    let history = match deps.audit.events_for_resource(key.as_str()).await {
        Ok(h) => h,
        Err(e) => return HttpReply::new(500, &e.to_string()),
    };
    let last_notice = history.iter().filter(|e| e.event == AuditEventType::Notified).max_by_key(|e| e.at);
    let run_id = last_notice.map(|e| e.run_id.clone()).unwrap_or_else(|| "slack".into());
    let is_owner = last_notice.is_some_and(|e| e.detail["owner_user"] == user);
    let allowed = is_owner || deps.policy.snooze.allowed_users.iter().any(|u| u == user);
    if !allowed {
        let detail = json!({ "by": user, "reason": "not the owner and not in snooze.allowed_users" });
        let denied = AuditEvent::new(key.as_str(), &run_id, AuditEventType::SnoozeDenied, now, ACTOR, detail);
        if let Err(e) = deps.audit.record(&[denied]).await {
            return HttpReply::new(500, &e.to_string());
        }
        if let Some(url) = &interaction.response_url {
            let reply = json!({
                "response_type": "ephemeral",
                "replace_original": false,
                "text": format!("Sorry <@{user}>, only the owner of `{key}` or a janitor admin may snooze it."),
            });
            if let Err(e) = deps.chat.respond(url, &reply).await {
                tracing::warn!(error = %e, "could not tell the clicker they may not snooze");
            }
        }
        return HttpReply::new(200, "");
    }

    let days = days.min(deps.policy.snooze.max_days);
    let until = now + Duration::days(i64::from(days));
    let snooze = Snooze { key: key.clone(), until, by: user.to_owned(), at: now };
    let detail = json!({ "by": user, "until": until, "days": days });
    let event = AuditEvent::new(key.as_str(), &run_id, AuditEventType::Snoozed, now, ACTOR, detail);
    if let Err(e) = deps.snoozes.put_snooze(&snooze).await {
        return HttpReply::new(500, &e.to_string());
    }
    if let Err(e) = deps.audit.record(&[event]).await {
        return HttpReply::new(500, &e.to_string());
    }
    tracing::info!(resource = %key, by = user, %until, "snoozed");
    if let (Some(url), Some(message)) = (&interaction.response_url, &interaction.message) {
        let note = format!(":zzz: Snoozed by <@{user}> until {}", until.format("%Y-%m-%d"));
        let update = json!({
            "replace_original": true,
            "text": message["text"].as_str().unwrap_or("Cloud Janitor"),
            "blocks": mark_snoozed(&message["blocks"], key.as_str(), &note),
        });
        if let Err(e) = deps.chat.respond(url, &update).await {
            tracing::warn!(error = %e, "snooze stored, but the message could not be updated");
        }
    }
    HttpReply::new(200, "")
}
