//! `testkit loop`: the action half of the demo, narrated. Runs the real steps against the
//! emulator and a local Slack stub: notifications, a snooze click, the recheck, then
//! remediation in dry-run and in enforce.

use std::sync::Arc;

use anyhow::Result;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use janitor_core::aws::{self, AwsClients, TableNames};
use janitor_core::memory::InMemoryAlerts;
use janitor_core::model::StepPayload;
use janitor_core::slack::{SlackChat, SlackSettings};
use serde_json::{Value, json};

use crate::estate::{MEMBER_ACCOUNT, SECOND_REGION};
use crate::pipeline::{click_snooze, continue_scopes, run_scopes};
use crate::slack::SlackStub;
use crate::{HOME_ACCOUNT, HOME_REGION};

const SECRET: &str = "demo-signing-secret";

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    t
}

fn outcomes(payloads: &[StepPayload]) -> Table {
    let mut t = table(&["resource", "outcome", "detail"]);
    for o in payloads.iter().flat_map(|p| &p.outcomes) {
        let detail =
            o.detail.get("reason").or(o.detail.get("would")).or(o.detail.get("result")).cloned().unwrap_or(Value::Null);
        t.add_row([o.key.to_string(), o.result.clone(), detail.to_string().trim_matches('"').to_owned()]);
    }
    t
}

fn request(mode: &str, run_id: &str) -> Value {
    json!({ "mode": mode, "regions": [HOME_REGION, SECOND_REGION], "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT], "run_id": run_id })
}

pub async fn narrate(clients: AwsClients, prefix: &str) -> Result<()> {
    let slack = SlackStub::start().await?;
    slack.add_user("alice@example.com", "UALICE");
    slack.add_user("dana@example.com", "UDANA");
    let text = crate::emulator_policy_toml().replace("grace_period_hours = 72", "grace_period_hours = 0");
    let policy = janitor_core::policy::Policy::from_toml_str(&text, "demo policy")?;
    let mut deps = aws::deps_with(policy, clients, &TableNames::with_prefix(prefix));
    let settings = SlackSettings {
        api_url: slack.api_url(),
        default_channel: "#cloud-janitor".into(),
        response_url_prefix: slack.base_url.clone(),
    };
    deps.chat = Arc::new(SlackChat::new(settings.clone(), "xoxb-demo".into())?);
    deps.slack = settings;
    let alerts = Arc::new(InMemoryAlerts::default());
    deps.alerts = alerts.clone();

    println!("== 3. Dry-run: discovery -> metric-check -> lock -> notify (grace period shortened to 0 for the demo)");
    let notified = run_scopes(&deps, request("dry-run", "demo-dry-run"), &["metric-check", "lock", "notify"]).await?;
    let mut t = table(&["Slack message to", "resources", "ts"]);
    let posts: Vec<_> = slack.calls("chat.postMessage").into_iter().filter(|c| c.status == 200).collect();
    for post in &posts {
        let count =
            post.body["blocks"].as_array().map(|b| b.iter().filter(|b| b["type"] == "actions").count()).unwrap_or(0);
        t.add_row([post.body["channel"].as_str().unwrap_or("?").to_owned(), count.to_string(), "posted".into()]);
    }
    println!("{t}");

    let Some(message) = posts.iter().find(|p| p.body["channel"] == "UALICE") else {
        anyhow::bail!("alice got no message")
    };
    let first_key = message.body["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .unwrap_or_default()
        .to_owned();
    println!("\n== 4. Alice clicks \"Snooze 30 days\" on {first_key} (a signed Slack request)");
    let shown = json!({ "text": message.body["text"], "blocks": message.body["blocks"] });
    let reply =
        click_snooze(&deps, SECRET, "UALICE", &first_key, "snooze_30d", &slack.response_url("alice"), &shown).await;
    let updated =
        slack.calls("response_url").last().is_some_and(|c| c.body["blocks"].to_string().contains("Snoozed by"));
    let shows = if updated { "Snoozed by @alice" } else { "(unchanged)" };
    println!("   snooze endpoint answered HTTP {}; the message now says: {shows}", reply.status);

    println!("\n== 5. After the grace period: recheck -> remediate (dry-run)");
    let finished = continue_scopes(&deps, notified, &["recheck", "remediate"]).await?;
    println!("{}", outcomes(&finished));

    println!("\n== 6. Enforce: a new run, same steps, acting on what still violates");
    let enforced = run_scopes(
        &deps,
        request("enforce", "demo-enforce"),
        &["metric-check", "lock", "notify", "recheck", "remediate"],
    )
    .await?;
    println!("{}", outcomes(&enforced));

    println!("\n== 7. Summaries published (Amazon Q custom notifications)");
    for (subject, message) in alerts.published() {
        println!(
            "   {subject}: {}",
            message["content"]["description"].as_str().unwrap_or("").lines().next().unwrap_or("")
        );
    }
    Ok(())
}
