//! `testkit pipeline`: the action half of the demo, narrated. The shipped state machine runs
//! locally twice (dry-run, then enforce) with the real handler binaries against the emulator
//! and a local Slack stub, with a Snooze click through the real snooze function in between.

use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use janitor_core::audit::AuditEvent;
use janitor_core::aws::{AwsClients, DynamoAuditLog, TableNames};
use janitor_core::local::{Execution, TALLY_COLUMNS, ending, summary_rows};
use janitor_core::ports::AuditLog;
use serde_json::{Value, json};

use crate::estate::{MEMBER_ACCOUNT, SECOND_REGION};
use crate::slack::SlackStub;
use crate::state_machine::{click_snooze, local_pipeline};
use crate::{HOME_ACCOUNT, HOME_REGION};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    t
}

fn request(mode: &str) -> Value {
    json!({ "mode": mode, "regions": [HOME_REGION, SECOND_REGION], "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT] })
}

/// One row per scope: what the execution output (or the failure's Cause) reports.
pub fn scope_table(execution: &Execution) -> Table {
    let mut header = vec!["scope", "status"];
    header.extend(TALLY_COLUMNS);
    let mut t = table(&header);
    for row in summary_rows(&execution.summary().unwrap_or(Value::Null)) {
        t.add_row(row);
    }
    t
}

fn events_table(events: &[AuditEvent], wanted: &[&str]) -> Table {
    let mut t = table(&["resource", "event", "detail"]);
    for e in events.iter().filter(|e| wanted.contains(&e.event.as_str())) {
        let d = &e.detail;
        let detail =
            d.get("would").or(d.get("reason")).or(d.get("result")).or(d.get("error")).cloned().unwrap_or(Value::Null);
        t.add_row([e.resource.clone(), e.event.as_str().to_owned(), detail.to_string().trim_matches('"').to_owned()]);
    }
    t
}

pub async fn narrate(clients: AwsClients, endpoint: &str, prefix: &str, work: &Path) -> Result<()> {
    let slack = SlackStub::for_twin_estate().await?;
    let tables = TableNames::with_prefix(prefix);
    let machine = local_pipeline(&clients, endpoint, &tables, &slack, work, Default::default()).await?;
    let audit = DynamoAuditLog::new(clients.dynamodb(), &tables.audit);

    println!("== 3. The daily run in dry-run: statemachine/janitor.asl.json, run locally by aws-local-stepfunctions;");
    println!(
        "      every Task is the real handler binary (grace period 0 s, so the Wait lasts under a second). Bob's Slack DMs fail this time."
    );
    slack.fail_channel("UBOB");
    let dry = machine.execute(&request("dry-run"), "demo-dry-run").await?;
    println!("   execution demo-dry-run: {} (a failed notification leaves the run incomplete)", ending(&dry));
    println!("{}", scope_table(&dry));
    if let Some(item) = (0..8).map(|i| dry.path_of(Some(i))).max_by_key(|p| p.len()) {
        println!("   one scope's path through the ASL: {}", item.join(" -> "));
    }

    let mut t = table(&["Slack message to", "resources", "outcome"]);
    let posts = slack.calls("chat.postMessage");
    for post in posts.iter().filter(|p| p.body["thread_ts"].is_null()) {
        let count =
            post.body["blocks"].as_array().map(|b| b.iter().filter(|b| b["type"] == "actions").count()).unwrap_or(0);
        let outcome = match post.reply["error"].as_str() {
            None => "posted".to_owned(),
            Some(error) => format!("failed: HTTP {} {error}", post.status),
        };
        t.add_row([post.body["channel"].as_str().unwrap_or("?").to_owned(), count.to_string(), outcome]);
    }
    println!("\n   Slack messages (one per owner per scope, Snooze buttons on each resource):\n{t}");

    let dry_events = audit.events_for_run("demo-dry-run").await?;
    println!("\n== 4. What dry-run would do (audit WOULD_REMEDIATE), and what it would not:");
    println!("{}", events_table(&dry_events, &["WOULD_REMEDIATE", "NOTIFY_FAILED"]));

    let (idle, message) = posts
        .iter()
        .filter(|p| p.body["channel"] == "UALICE" && p.reply["ok"] == true)
        .find_map(|p| {
            let blocks = p.body["blocks"].as_array()?;
            let key = blocks
                .iter()
                .filter(|b| b["type"] == "actions")
                .filter_map(|b| b["elements"][0]["value"].as_str())
                .find(|key| key.contains("/ec2-instance/"))?;
            Some((key.to_owned(), json!({ "text": p.body["text"], "blocks": p.body["blocks"] })))
        })
        .context("alice got no instance to snooze")?;
    println!(
        "\n== 5. Alice clicks \"Snooze 30 days\" on {idle}: a signed Slack request through API Gateway to the snooze function"
    );
    let reply = click_snooze(&machine, &slack, "UALICE", &idle, "snooze_30d", &message).await?;
    let updated =
        slack.calls("response_url").last().is_some_and(|c| c.body["blocks"].to_string().contains("Snoozed by"));
    println!(
        "   snooze answered HTTP {}; the Slack message now says: {}",
        reply.output["statusCode"],
        if updated { "Snoozed by @alice, without that resource's buttons" } else { "(unchanged)" }
    );
    slack.restore_channel("UBOB");

    println!("\n== 6. Enforce: a new execution of the same state machine");
    let enforce = machine.execute(&request("enforce"), "demo-enforce").await?;
    println!("   execution demo-enforce: {}", ending(&enforce));
    println!("{}", scope_table(&enforce));
    let enforce_events = audit.events_for_run("demo-enforce").await?;
    println!("{}", events_table(&enforce_events, &["REMEDIATED", "EXEMPT", "SKIPPED", "HALTED", "FAILED"]));
    println!("   handler invocations: {}", serde_json::to_string(&enforce.invocations)?);
    Ok(())
}
