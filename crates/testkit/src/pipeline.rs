//! Drives runs through the handlers' JSON entry points, in order, as the state machine
//! does; and clicks Snooze buttons the way Slack does (a signed form post). Shared by the
//! end-to-end tests and the demo.

use anyhow::{Context, Result};
use chrono::Utc;
use janitor_core::model::StepPayload;
use janitor_core::slack::sign;
use janitor_core::{Deps, snooze, step};
use serde_json::{Value, json};

pub async fn run_step(deps: &Deps, name: &str, payload: Value) -> Result<Value> {
    let out = match name {
        "discovery" => step::discovery(deps, payload).await,
        "metric-check" => step::metric_check(deps, payload).await,
        "lock" => step::lock(deps, payload).await,
        "notify" => step::notify(deps, payload).await,
        "recheck" => step::recheck(deps, payload).await,
        "remediate" => step::remediate(deps, payload).await,
        other => anyhow::bail!("no step named {other}"),
    };
    out.map_err(|e| anyhow::anyhow!("{name} failed with {}: {}", e.0.error_name(), e.0))
}

/// Plans a run from `request`, then takes every scope through discovery and `steps`.
pub async fn run_scopes(deps: &Deps, request: Value, steps: &[&str]) -> Result<Vec<StepPayload>> {
    let plan = run_step(deps, "discovery", request).await?;
    let items = plan["scopes"].as_array().context("the plan has no scopes")?.clone();
    let mut discovered = Vec::new();
    for item in items {
        discovered.push(serde_json::from_value(run_step(deps, "discovery", item).await?)?);
    }
    continue_scopes(deps, discovered, steps).await
}

/// Takes payloads on through more steps (e.g. recheck and remediate after the grace period).
pub async fn continue_scopes(deps: &Deps, payloads: Vec<StepPayload>, steps: &[&str]) -> Result<Vec<StepPayload>> {
    let mut out = Vec::new();
    for payload in payloads {
        let mut value = serde_json::to_value(payload)?;
        for name in steps {
            if *name == "recheck" {
                wait_for_grace_end(&value).await?;
            }
            value = run_step(deps, name, value).await?;
        }
        out.push(serde_json::from_value(value)?);
    }
    Ok(out)
}

/// What the state machine's grace Wait does: sleeps until the payload's `grace_ends`.
async fn wait_for_grace_end(payload: &Value) -> Result<()> {
    let Some(text) = payload["grace_ends"].as_str() else { return Ok(()) };
    let ends = chrono::DateTime::parse_from_rfc3339(text).context("grace_ends")?.with_timezone(&Utc);
    if let Ok(left) = (ends - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
    Ok(())
}

/// Clicks a Snooze button as Slack would: a block_actions form post, signed with `secret`.
pub async fn click_snooze(
    deps: &Deps,
    secret: &str,
    user: &str,
    key: &str,
    action: &str,
    response_url: &str,
    message: &Value,
) -> snooze::HttpReply {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user },
        "actions": [{ "action_id": action, "value": key, "type": "button" }],
        "response_url": response_url,
        "message": message,
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
    let ts = Utc::now().timestamp();
    let signature = sign(secret, ts, body.as_bytes());
    snooze::handle_interaction(deps, secret, Some(&ts.to_string()), Some(&signature), body.as_bytes()).await
}
