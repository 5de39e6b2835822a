//! The snooze endpoint as API Gateway delivers it: a real HTTP API (payload v2) event with a
//! base64-encoded, Slack-signed form body, then forged, stale and malformed variants.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use janitor_core::memory::*;
use janitor_core::model::ResourceKey;
use janitor_core::policy::Policy;
use janitor_core::ports::SnoozeStore;
use janitor_core::slack::{NoChat, SlackSettings, sign};
use janitor_core::{Deps, snooze};
use lambda_http::Body;
use serde_json::{Value, json};

const SECRET: &str = "demo-signing-secret";
const SENT_AT: i64 = 1_763_910_000;
const KEY: &str = "123456789012/us-east-1/ec2-instance/i-0d4c3b2a190807060";

fn deps(clock_at: i64, snoozes: Arc<InMemorySnoozeStore>) -> Deps {
    let policy = Policy::from_toml_str("[snooze]\nallowed_users = [\"U0JANITOR\"]\n", "test").unwrap();
    Deps {
        policy,
        inventory: Arc::new(InMemoryInventory::default()),
        directory: Arc::new(InMemoryDirectory::default()),
        metrics: Arc::new(InMemoryMetrics::default()),
        prices: Arc::new(janitor_core::prices::BundledPrices),
        snoozes,
        locks: Arc::new(InMemoryLockStore::default()),
        audit: Arc::new(InMemoryAuditLog::default()),
        remediator: Arc::new(InMemoryRemediator::default()),
        alerts: Arc::new(InMemoryAlerts::default()),
        chat: Arc::new(NoChat),
        slack: SlackSettings::from_env(),
        slack_secret: None,
        clock: Arc::new(FixedClock(Utc.timestamp_opt(clock_at, 0).unwrap())),
        runs: Arc::new(InMemoryRunStore::default()),
        reports: Arc::new(janitor_core::memory::InMemoryReportStore::default()),
        anchor_copies: None,
        delivery: Default::default(),
    }
}

fn sample_request() -> lambda_http::Request {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/snooze.json");
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn header<'a>(request: &'a lambda_http::Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn body(request: &lambda_http::Request) -> Vec<u8> {
    match request.body() {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        Body::Empty => Vec::new(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn the_signed_api_gateway_sample_snoozes_for_seven_days() {
    let request = sample_request();
    let raw = body(&request);
    assert!(raw.starts_with(b"payload="), "lambda_http decoded the base64 body");
    let snoozes = Arc::new(InMemorySnoozeStore::default());
    let deps = deps(SENT_AT + 10, snoozes.clone());
    let reply = snooze::handle_interaction(
        &deps,
        SECRET,
        header(&request, "x-slack-request-timestamp"),
        header(&request, "x-slack-signature"),
        &raw,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let now = Utc.timestamp_opt(SENT_AT + 10, 0).unwrap();
    let live = snoozes.live_snoozes(&[ResourceKey::parse(KEY).unwrap()], now).await.unwrap();
    let snooze = live.values().next().expect("snooze stored");
    assert_eq!((snooze.by.as_str(), snooze.until), ("U0JANITOR", now + Duration::days(7)));
}

#[tokio::test]
async fn forged_stale_tampered_or_unsigned_requests_get_401_and_no_snooze() {
    let request = sample_request();
    let raw = body(&request);
    let ts = header(&request, "x-slack-request-timestamp");
    let sig = header(&request, "x-slack-signature");
    let tampered = String::from_utf8(raw.clone()).unwrap().replace("snooze_7d", "snooze_30d");
    let forged = sign("not-our-secret", SENT_AT, &raw);
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>, i64);
    let cases: Vec<Case> = vec![
        ("stale", ts, sig, raw.clone(), SENT_AT + 301),
        ("from the future", ts, sig, raw.clone(), SENT_AT - 301),
        ("tampered body", ts, sig, tampered.into_bytes(), SENT_AT),
        ("forged signature", ts, Some(&forged), raw.clone(), SENT_AT),
        ("no signature", ts, None, raw.clone(), SENT_AT),
        ("no timestamp", None, sig, raw.clone(), SENT_AT),
    ];
    for (name, ts, sig, body, clock) in cases {
        let snoozes = Arc::new(InMemorySnoozeStore::default());
        let reply = snooze::handle_interaction(&deps(clock, snoozes.clone()), SECRET, ts, sig, &body).await;
        assert_eq!(reply.status, 401, "{name}: {reply:?}");
        let now = Utc.timestamp_opt(clock, 0).unwrap();
        assert!(snoozes.live_snoozes(&[ResourceKey::parse(KEY).unwrap()], now).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn malformed_but_signed_payloads_get_400_never_500() {
    let interaction =
        |actions: Value| json!({ "type": "block_actions", "user": { "id": "U0JANITOR" }, "actions": actions });
    let form = |payload: &str| serde_urlencoded::to_string([("payload", payload)]).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("not a form", "%%%".into()),
        ("no payload field", "token=abc".into()),
        ("payload not JSON", form("{not json")),
        ("wrong type", form(&json!({ "type": "view_submission", "user": { "id": "U1" } }).to_string())),
        ("no user", form(&json!({ "type": "block_actions", "actions": [] }).to_string())),
        ("no actions", form(&interaction(json!([])).to_string())),
        ("unknown action", form(&interaction(json!([{ "action_id": "delete_now", "value": KEY }])).to_string())),
        ("no value", form(&interaction(json!([{ "action_id": "snooze_7d" }])).to_string())),
        ("bad key", form(&interaction(json!([{ "action_id": "snooze_7d", "value": "i-123" }])).to_string())),
        (
            "unknown kind",
            form(&interaction(json!([{ "action_id": "snooze_7d", "value": "1/us-east-1/ufo/x" }])).to_string()),
        ),
    ];
    for (name, body) in cases {
        let signature = sign(SECRET, SENT_AT, body.as_bytes());
        let snoozes = Arc::new(InMemorySnoozeStore::default());
        let reply = snooze::handle_interaction(
            &deps(SENT_AT, snoozes),
            SECRET,
            Some(&SENT_AT.to_string()),
            Some(&signature),
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 400, "{name}: {reply:?}");
        assert!(reply.body.contains("error"), "{name}: a reason is given");
    }
}

/// A signed block_actions body for `action_id` on KEY, clicked in a message posted at
/// `message_ts`, and its signature at `sent`.
fn signed_click(action_id: &str, message_ts: i64, sent: i64) -> (Vec<u8>, String) {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": "U0JANITOR" },
        "actions": [{ "action_id": action_id, "value": KEY }],
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "message": { "ts": format!("{message_ts}.000100"), "text": "Cloud Janitor", "blocks": [] },
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap().into_bytes();
    let signature = sign(SECRET, sent, &body);
    (body, signature)
}

async fn audit_rows(deps: &Deps, event: &str) -> Vec<Value> {
    let rows = deps.audit.events_for_resource(KEY).await.unwrap();
    rows.into_iter().filter(|e| e.event.as_str() == event).map(|e| e.detail).collect()
}

#[tokio::test]
async fn a_replayed_request_is_refused_inside_the_signature_window() {
    let snoozes = Arc::new(InMemorySnoozeStore::default());
    let deps = deps(SENT_AT + 10, snoozes.clone());
    let (body, signature) = signed_click("snooze_7d", SENT_AT - 60, SENT_AT);
    let at = SENT_AT.to_string();
    let click = || snooze::handle_interaction(&deps, SECRET, Some(&at), Some(&signature), &body);
    assert_eq!(click().await.status, 200);
    let replay = click().await;
    assert_eq!(replay.status, 409, "{replay:?}");
    assert!(replay.body.contains("already handled"), "{replay:?}");
    // Hex is case-blind: the same signature upper-cased still verifies, and is still a replay.
    let shouting = format!("v0={}", signature.trim_start_matches("v0=").to_ascii_uppercase());
    let disguised = snooze::handle_interaction(&deps, SECRET, Some(&at), Some(&shouting), &body).await;
    assert_eq!(disguised.status, 409, "{disguised:?}");
    assert_eq!(audit_rows(&deps, "SNOOZED").await.len(), 1, "the replays stored and audited nothing");
}

#[tokio::test]
async fn a_shorter_snooze_never_shortens_a_longer_live_one() {
    let snoozes = Arc::new(InMemorySnoozeStore::default());
    let first = deps(SENT_AT, snoozes.clone());
    let now = Utc.timestamp_opt(SENT_AT, 0).unwrap();
    let key = ResourceKey::parse(KEY).unwrap();
    let (long, long_sig) = signed_click("snooze_30d", SENT_AT - 60, SENT_AT);
    let reply = snooze::handle_interaction(&first, SECRET, Some(&SENT_AT.to_string()), Some(&long_sig), &long).await;
    assert_eq!(reply.status, 200);
    let (short, short_sig) = signed_click("snooze_7d", SENT_AT - 60, SENT_AT);
    let reply = snooze::handle_interaction(&first, SECRET, Some(&SENT_AT.to_string()), Some(&short_sig), &short).await;
    assert_eq!(reply.status, 200, "a valid click; the clicker is told why nothing changed");
    let live = snoozes.live_snoozes(std::slice::from_ref(&key), now).await.unwrap();
    assert_eq!(live[&key].until, now + Duration::days(30), "the longer snooze stays");
    let denied = audit_rows(&first, "SNOOZE_DENIED").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["reason"], "a longer snooze is live");
    // A longer one than the live one still extends it.
    let (longer, longer_sig) = signed_click("snooze_30d", SENT_AT - 60, SENT_AT + 86_400);
    let later = deps(SENT_AT + 86_400, snoozes.clone());
    let at = (SENT_AT + 86_400).to_string();
    assert_eq!(snooze::handle_interaction(&later, SECRET, Some(&at), Some(&longer_sig), &longer).await.status, 200);
    let live = snoozes.live_snoozes(std::slice::from_ref(&key), now).await.unwrap();
    assert_eq!(live[&key].until, now + Duration::days(31));
}

#[tokio::test]
async fn a_click_on_a_message_older_than_the_longest_snooze_is_refused() {
    let snoozes = Arc::new(InMemorySnoozeStore::default());
    let deps = deps(SENT_AT, snoozes.clone());
    let max_days = deps.policy.snooze.max_days;
    let old = SENT_AT - i64::from(max_days) * 86_400 - 60;
    let (body, signature) = signed_click("snooze_7d", old, SENT_AT);
    let reply = snooze::handle_interaction(&deps, SECRET, Some(&SENT_AT.to_string()), Some(&signature), &body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let now = Utc.timestamp_opt(SENT_AT, 0).unwrap();
    assert!(snoozes.live_snoozes(&[ResourceKey::parse(KEY).unwrap()], now).await.unwrap().is_empty());
    let denied = audit_rows(&deps, "SNOOZE_DENIED").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["reason"], "message older than snooze.max_days");
    // A day younger than that, the same click snoozes.
    let (body, signature) = signed_click("snooze_7d", old + 2 * 86_400, SENT_AT);
    let reply = snooze::handle_interaction(&deps, SECRET, Some(&SENT_AT.to_string()), Some(&signature), &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(snoozes.live_snoozes(&[ResourceKey::parse(KEY).unwrap()], now).await.unwrap().len(), 1);
}

/// Slack answering `response_url` with 429 and a long Retry-After (or not at all).
struct StalledSlack {
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl janitor_core::slack::Chat for StalledSlack {
    async fn lookup_user_by_email(&self, _: &str) -> janitor_core::Result<Option<String>> {
        Ok(None)
    }
    async fn post_message(
        &self,
        _: &str,
        _: &str,
        _: &Value,
    ) -> janitor_core::Result<janitor_core::slack::PostedMessage> {
        unreachable!("the snooze handler posts no new messages")
    }
    async fn reply_in_thread(&self, _: &str, _: &str, _: &str) -> janitor_core::Result<()> {
        Ok(())
    }
    async fn respond(&self, _: &str, _: &Value) -> janitor_core::Result<()> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        Ok(())
    }
}

#[tokio::test]
async fn a_rate_limited_response_url_never_holds_the_answer_to_slack() {
    let snoozes = Arc::new(InMemorySnoozeStore::default());
    let stalled = Arc::new(StalledSlack { calls: Default::default() });
    let mut deps = deps(SENT_AT, snoozes.clone());
    deps.chat = stalled.clone();
    let (body, signature) = signed_click("snooze_7d", SENT_AT - 60, SENT_AT);
    // The stall is 120 s; Slack waits 3 s, and the handler must have answered by then (5 s
    // leaves a loaded machine room; a handler that waited the stall out would take 120 s).
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        snooze::handle_interaction(&deps, SECRET, Some(&SENT_AT.to_string()), Some(&signature), &body),
    )
    .await
    .expect("the handler answered while response_url was still stalled");
    assert_eq!(answered.status, 200);
    assert_eq!(stalled.calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the message update was attempted");
    let now = Utc.timestamp_opt(SENT_AT, 0).unwrap();
    assert_eq!(snoozes.live_snoozes(&[ResourceKey::parse(KEY).unwrap()], now).await.unwrap().len(), 1);
    assert_eq!(audit_rows(&deps, "SNOOZED").await.len(), 1, "stored and audited before the follow-up");
}
