//! Slack: the `Chat` port, its Web API adapter `SlackChat`, request signature checks, and
//! the Block Kit messages the janitor sends.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{JanitorError, Result};
use crate::model::{Finding, Mode};

/// Slack's limit is 50 blocks a message; each resource takes two (text and buttons).
pub const RESOURCES_PER_MESSAGE: usize = 20;
/// Slack rejects section text over 3,000 characters.
const SECTION_TEXT_MAX: usize = 2900;
/// One rule's evidence in a resource's line.
const EVIDENCE_TEXT_MAX: usize = 600;
const MAX_RATE_LIMIT_WAITS: u32 = 5;
/// Requests older (or newer) than this are replays.
pub const SIGNATURE_WINDOW_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq)]
pub struct PostedMessage {
    pub channel: String,
    pub ts: String,
}

#[async_trait]
pub trait Chat: Send + Sync {
    /// The Slack user id of an email address, if Slack knows it.
    async fn lookup_user_by_email(&self, email: &str) -> Result<Option<String>>;
    async fn post_message(&self, channel: &str, text: &str, blocks: &Value) -> Result<PostedMessage>;
    /// Adds a reply in the thread of an earlier message.
    async fn reply_in_thread(&self, channel: &str, ts: &str, text: &str) -> Result<()>;
    /// Answers an interaction through its `response_url`.
    async fn respond(&self, response_url: &str, body: &Value) -> Result<()>;
}

/// Bot token and signing secret, kept together in one Secrets Manager secret (JSON).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSecret {
    pub bot_token: String,
    pub signing_secret: String,
}

impl std::fmt::Debug for SlackSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackSecret { .. }")
    }
}

impl SlackSecret {
    pub fn parse(json: &str) -> Result<SlackSecret> {
        serde_json::from_str(json).map_err(|e| {
            JanitorError::Config(format!("the Slack secret must be JSON {{\"bot_token\", \"signing_secret\"}}: {e}"))
        })
    }
}

/// Slack settings from the environment; the API base URL is configuration so tests and
/// the demo point it at a local stub.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub api_url: String,
    pub default_channel: String,
    /// `response_url`s must start with this, so a forged one cannot make us call elsewhere.
    pub response_url_prefix: String,
    /// Where security alerts go (`JANITOR_SECURITY_CHANNEL`), else the default channel.
    pub security_channel: Option<String>,
}

impl SlackSettings {
    pub fn from_env() -> SlackSettings {
        let var = |name: &str, default: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.into())
        };
        SlackSettings {
            api_url: var("JANITOR_SLACK_API_URL", "https://slack.com/api"),
            default_channel: var("JANITOR_SLACK_CHANNEL", "#cloud-janitor"),
            response_url_prefix: var("JANITOR_SLACK_RESPONSE_URL_PREFIX", "https://hooks.slack.com/"),
            security_channel: std::env::var("JANITOR_SECURITY_CHANNEL").ok().filter(|v| !v.is_empty()),
        }
    }
}

pub struct SlackChat {
    http: reqwest::Client,
    settings: SlackSettings,
    token: String,
}

impl SlackChat {
    pub fn new(settings: SlackSettings, token: String) -> Result<SlackChat> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| JanitorError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(SlackChat { http, settings, token })
    }

    /// Sends one request, waiting out HTTP 429 as Slack's `Retry-After` asks.
    async fn send(&self, method: &'static str, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Value> {
        let fail = |message: String| JanitorError::Slack { method, message };
        for _ in 0..=MAX_RATE_LIMIT_WAITS {
            let response = build().send().await.map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            if status.as_u16() == 429 {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                tracing::warn!(method, wait, "rate limited by Slack");
                tokio::time::sleep(Duration::from_secs(wait.min(60))).await;
                continue;
            }
            let text = response.text().await.map_err(|e| fail(e.to_string()))?;
            if !status.is_success() {
                return Err(fail(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>())));
            }
            return Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)));
        }
        Err(fail("still rate limited after waiting".into()))
    }

    async fn call(&self, method: &'static str, body: &Value) -> Result<Value> {
        let url = format!("{}/{method}", self.settings.api_url.trim_end_matches('/'));
        let answer = self.send(method, || self.http.post(&url).bearer_auth(&self.token).json(body)).await?;
        if answer["ok"] != true {
            let error = answer["error"].as_str().unwrap_or("unknown error").to_owned();
            return Err(JanitorError::Slack { method, message: error });
        }
        Ok(answer)
    }
}

#[async_trait]
impl Chat for SlackChat {
    async fn lookup_user_by_email(&self, email: &str) -> Result<Option<String>> {
        let url = format!("{}/users.lookupByEmail", self.settings.api_url.trim_end_matches('/'));
        let answer = self
            .send("users.lookupByEmail", || self.http.post(&url).bearer_auth(&self.token).form(&[("email", email)]))
            .await?;
        match (answer["ok"].as_bool(), answer["error"].as_str()) {
            (Some(true), _) => Ok(answer["user"]["id"].as_str().map(str::to_owned)),
            (_, Some("users_not_found")) => Ok(None),
            (_, error) => {
                Err(JanitorError::Slack { method: "users.lookupByEmail", message: error.unwrap_or("unknown").into() })
            }
        }
    }

    async fn post_message(&self, channel: &str, text: &str, blocks: &Value) -> Result<PostedMessage> {
        let answer = self
            .call(
                "chat.postMessage",
                &json!({ "channel": channel, "text": text, "blocks": blocks, "unfurl_links": false }),
            )
            .await?;
        match (answer["channel"].as_str(), answer["ts"].as_str()) {
            (Some(channel), Some(ts)) => Ok(PostedMessage { channel: channel.into(), ts: ts.into() }),
            _ => {
                Err(JanitorError::Slack { method: "chat.postMessage", message: "answer without channel or ts".into() })
            }
        }
    }

    async fn reply_in_thread(&self, channel: &str, ts: &str, text: &str) -> Result<()> {
        self.call("chat.postMessage", &json!({ "channel": channel, "thread_ts": ts, "text": text })).await.map(|_| ())
    }

    async fn respond(&self, response_url: &str, body: &Value) -> Result<()> {
        if !response_url.starts_with(&self.settings.response_url_prefix) {
            return Err(JanitorError::InvalidInput(format!("response_url {response_url} is not a Slack URL")));
        }
        self.send("response_url", || self.http.post(response_url).json(body)).await.map(|_| ())
    }
}

/// Used where Slack is not configured; every call says so.
pub struct NoChat;

#[async_trait]
impl Chat for NoChat {
    async fn lookup_user_by_email(&self, _: &str) -> Result<Option<String>> {
        Err(not_configured())
    }
    async fn post_message(&self, _: &str, _: &str, _: &Value) -> Result<PostedMessage> {
        Err(not_configured())
    }
    async fn reply_in_thread(&self, _: &str, _: &str, _: &str) -> Result<()> {
        Err(not_configured())
    }
    async fn respond(&self, _: &str, _: &Value) -> Result<()> {
        Err(not_configured())
    }
}

fn not_configured() -> JanitorError {
    JanitorError::Config("Slack is not configured (JANITOR_SLACK_SECRET_ID)".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Stale,
    Mismatch,
}

/// Slack's v0 scheme: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the
/// signing secret, timestamps within five minutes, compared in constant time.
pub fn verify_signature(
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> std::result::Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else { return Err(SignatureError::Missing) };
    let sent: i64 = timestamp.trim().parse().map_err(|_| SignatureError::Stale)?;
    // Checked: the timestamp is the caller's, and i64::MIN - now would overflow.
    match now.timestamp().checked_sub(sent).map(i64::unsigned_abs) {
        Some(age) if age <= SIGNATURE_WINDOW_SECONDS.unsigned_abs() => {}
        _ => return Err(SignatureError::Stale),
    }
    let Some(hex_digest) = signature.strip_prefix("v0=") else { return Err(SignatureError::Mismatch) };
    let Ok(expected) = hex::decode(hex_digest) else { return Err(SignatureError::Mismatch) };
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(signing_secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// The signature Slack would send for `body` at `timestamp` (for tests, the demo and the stub).
pub fn sign(signing_secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(signing_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

pub const SNOOZE_ACTIONS: [(&str, u32, &str); 2] =
    [("snooze_7d", 7, "Snooze 7 days"), ("snooze_30d", 30, "Snooze 30 days")];

use crate::delivery::truncate;

/// The rule's evidence; a daily series (CPU, connections) also as a sparkline.
pub(crate) fn evidence_line(evidence: &Value) -> Option<String> {
    let field = |(k, v): (&String, &Value)| match v
        .as_array()
        .map(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
    {
        Some(Some(series)) if series.len() > 1 => format!("{k}: {} {v}", crate::cost::sparkline(&series)),
        _ => format!("{k}: {v}"),
    };
    match evidence {
        Value::Object(map) if !map.is_empty() => Some(map.iter().map(field).collect::<Vec<_>>().join(", ")),
        _ => None,
    }
}

/// Basis text kept short enough that the rule's action stays in the line.
const COST_BASIS_MAX: usize = 240;

/// What the resource costs and what the action saves, with how that was worked out.
pub fn cost_line(cost: &crate::cost::Cost) -> String {
    let basis = truncate(&cost.basis, COST_BASIS_MAX);
    match cost.monthly_cost {
        Some(monthly) if cost.monthly_savings > crate::cost::Usd::ZERO => {
            format!("*{monthly}/month*, the action saves *{}/month* ({basis})", cost.monthly_savings)
        }
        Some(monthly) => format!("*{monthly}/month* ({basis})"),
        None => format!("not priced ({basis})"),
    }
}

/// When a notice says its action comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The end of this run's grace period.
    At(DateTime<Utc>),
    /// Told at creation (onboard): only a daily run's own notice, grace period and recheck
    /// lead to the action.
    NextRun,
}

/// One resource: what, where, and for each rule it breaks why, since when, and what happens
/// at the end of the grace period; one pair of Snooze buttons for the resource.
pub fn resource_blocks(findings: &[&Finding], mode: Mode, deadline: Deadline) -> Vec<Value> {
    let Some(first) = findings.first() else { return Vec::new() };
    let mut text = format!("*{}* `{}` in {} ({})", first.kind, first.id, first.key.region(), first.key.account());
    for f in findings {
        text.push_str(&format!("\n{}", finding_text(f, mode, deadline, findings.len() > 1)));
    }
    let buttons: Vec<Value> = SNOOZE_ACTIONS
        .iter()
        .map(|(action_id, _, label)| {
            json!({
                "type": "button",
                "action_id": action_id,
                "text": { "type": "plain_text", "text": label },
                "value": first.key.as_str(),
            })
        })
        .collect();
    vec![
        json!({ "type": "section", "block_id": format!("r:{}", first.key), "text": { "type": "mrkdwn", "text": truncate(&text, SECTION_TEXT_MAX) } }),
        json!({ "type": "actions", "block_id": format!("a:{}", first.key), "elements": buttons }),
    ]
}

/// One rule's part of a resource's line; `named` when the resource breaks several.
fn finding_text(f: &Finding, mode: Mode, deadline: Deadline, named: bool) -> String {
    let facts = crate::delivery::Facts::of(f, mode, deadline, EVIDENCE_TEXT_MAX);
    let mut text = if named { format!("• `{}`: {}", facts.rule, facts.reason) } else { facts.reason };
    if let Some(evidence) = facts.evidence {
        // Cut per rule, so a long series never pushes another rule's action out of the line.
        text.push_str(&format!("\n_Evidence:_ {evidence}"));
    }
    if let Some(cost) = &f.cost {
        text.push_str(&format!("\n_Cost:_ {}", cost_line(cost)));
    }
    text.push_str(&format!("\n_{}._ After {}: *{}*", facts.seen, facts.after, facts.then));
    text
}

/// One message (of possibly several) for one recipient: a line per resource, each with the
/// findings of its rules.
pub fn notification_blocks(digest: &crate::delivery::Digest<'_>) -> (String, Value) {
    let title = digest.title();
    let context = digest.context(|id| format!("`{id}`"));
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": truncate(&title, 140) } }),
        json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": context }] }),
    ];
    for findings in digest.resources {
        blocks.extend(resource_blocks(findings, digest.mode, digest.deadline));
    }
    (title, Value::Array(blocks))
}

/// The message after a click: the clicked resource's buttons become a note of who snoozed
/// it until when; everything else stays as it was.
pub fn mark_snoozed(blocks: &Value, key: &str, note: &str) -> Value {
    let Value::Array(blocks) = blocks else { return blocks.clone() };
    Value::Array(
        blocks
            .iter()
            .map(|block| {
                if block["block_id"] == format!("a:{key}") {
                    json!({ "type": "context", "block_id": format!("s:{key}"), "elements": [{ "type": "mrkdwn", "text": note }] })
                } else {
                    block.clone()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The example request from Slack's "Verifying requests from Slack" documentation.
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TIMESTAMP: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).unwrap()
    }

    #[test]
    fn a_line_shows_the_cost_what_the_action_saves_and_a_series_at_a_glance() {
        use crate::model::{Action, ResourceKey, ResourceKind, RuleId};
        let key = ResourceKey::new("111111111111", "us-east-1", ResourceKind::Ec2Instance, "i-1");
        let finding = Finding {
            evidence: json!({ "daily_average_cpu": [0.5, 1.0, 4.5], "threshold_percent": 5.0 }),
            cost: Some(crate::cost::Cost {
                monthly_cost: Some(crate::cost::Usd::cents(60.74)),
                monthly_savings: crate::cost::Usd::cents(60.74),
                basis: "t3.large on-demand Linux us-east-1, $0.0832/h × 730 h".into(),
            }),
            ..Finding::new(key, RuleId::Ec2IdleCpu, "idle", Action::StopInstance)
        };
        let text = finding_text(&finding, Mode::DryRun, Deadline::At(at(1_800_000_000)), false);
        assert!(text.contains("After 2027-01-15 08:00 UTC: *nothing (dry-run"), "{text}");
        let told = finding_text(&finding, Mode::Enforce, Deadline::NextRun, false);
        assert!(told.contains("After the next daily run's grace period: *"), "{told}");
        assert!(text.contains("daily_average_cpu: ▁▂█ [0.5,1.0,4.5]"), "{text}");
        assert!(text.contains("threshold_percent: 5.0"), "{text}");
        assert!(
            text.contains(
                "_Cost:_ *$60.74/month*, the action saves *$60.74/month* (t3.large on-demand Linux us-east-1"
            ),
            "{text}"
        );
        let unpriced = Finding {
            cost: Some(crate::cost::Cost {
                monthly_cost: None,
                monthly_savings: crate::cost::Usd::ZERO,
                basis: "stopped".into(),
            }),
            ..finding
        };
        assert!(
            finding_text(&unpriced, Mode::DryRun, Deadline::At(at(1_800_000_000)), false)
                .contains("_Cost:_ not priced (stopped)")
        );
    }

    #[test]
    fn slacks_published_example_verifies() {
        let now = at(1531420618 + 30);
        assert_eq!(
            verify_signature(SLACK_SECRET, Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), SLACK_BODY.as_bytes(), now),
            Ok(())
        );
        assert_eq!(sign(SLACK_SECRET, 1531420618, SLACK_BODY.as_bytes()), SLACK_SIGNATURE);
    }

    #[test]
    fn forged_stale_tampered_and_missing_are_rejected() {
        let now = at(1531420618);
        let body = SLACK_BODY.as_bytes();
        let check = |secret, ts: Option<&str>, sig: Option<&str>, body: &[u8], now| {
            verify_signature(secret, ts, sig, body, now)
        };
        assert_eq!(
            check("another-secret", Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(SLACK_SECRET, Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, at(1531420618 + 301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(SLACK_SECRET, Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, at(1531420618 - 301)),
            Err(SignatureError::Stale)
        );
        let tampered = SLACK_BODY.replace("roadrunner", "coyote");
        assert_eq!(
            check(SLACK_SECRET, Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), tampered.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(SLACK_SECRET, Some("1531420619"), Some(SLACK_SIGNATURE), body, now),
            Err(SignatureError::Mismatch)
        );
        // Timestamps at the ends of i64 are stale, not an overflow.
        for extreme in [i64::MIN.to_string(), i64::MAX.to_string()] {
            assert_eq!(
                check(SLACK_SECRET, Some(&extreme), Some(SLACK_SIGNATURE), body, now),
                Err(SignatureError::Stale),
                "{extreme}"
            );
        }
        assert_eq!(check(SLACK_SECRET, None, Some(SLACK_SIGNATURE), body, now), Err(SignatureError::Missing));
        assert_eq!(check(SLACK_SECRET, Some(SLACK_TIMESTAMP), None, body, now), Err(SignatureError::Missing));
        assert_eq!(
            check(SLACK_SECRET, Some("yesterday"), Some(SLACK_SIGNATURE), body, now),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(SLACK_SECRET, Some(SLACK_TIMESTAMP), Some("v1=abc"), body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(SLACK_SECRET, Some(SLACK_TIMESTAMP), Some("v0=zz"), body, now), Err(SignatureError::Mismatch));
    }
}
