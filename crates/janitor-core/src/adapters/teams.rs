//! Microsoft Teams: `TeamsWebhooks`, the [`Delivery`] adapter that posts an Adaptive Card
//! to a channel's incoming webhook (the Workflows "when a Teams webhook request is
//! received" flow, or a legacy Office 365 connector), with the same facts as the Slack
//! message and a signed snooze link in place of its buttons (a webhook's card cannot call
//! back: Action.Submit is not supported there, Action.OpenUrl is).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::delivery::{Delivery, Digest, Facts, Via};
use crate::error::{JanitorError, Result};
use crate::slack::PostedMessage;

/// Cards are refused above 28 KB (and Workflows has refused less); a digest is cut to stay
/// well under.
pub const CARD_BYTES_MAX: usize = 20_000;
/// Resources per card before the size check (one line each, with its rules' facts).
pub const RESOURCES_PER_CARD: usize = 6;
const EVIDENCE_TEXT_MAX: usize = 300;
const MAX_RATE_LIMIT_WAITS: u32 = 3;

/// The Teams secret: incoming webhook URLs by the name the policy's routes use. A webhook URL
/// lets anyone who has it post, so it lives in Secrets Manager, not in the policy.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSecret {
    pub webhooks: BTreeMap<String, String>,
}

impl std::fmt::Debug for TeamsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TeamsSecret {{ webhooks: {:?} }}", self.webhooks.keys().collect::<Vec<_>>())
    }
}

impl TeamsSecret {
    pub fn parse(json: &str) -> Result<TeamsSecret> {
        let secret: TeamsSecret = serde_json::from_str(json).map_err(|e| {
            JanitorError::Config(format!(
                "the Teams secret must be JSON {{\"webhooks\": {{\"<name>\": \"<url>\"}}}}: {e}"
            ))
        })?;
        // A webhook URL is a credential: only over TLS (plain HTTP only to this machine, for tests).
        let loopback = |url: &str| url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:");
        if let Some((name, _)) = secret.webhooks.iter().find(|(_, url)| !url.starts_with("https://") && !loopback(url))
        {
            return Err(JanitorError::Config(format!("the Teams webhook `{name}` is not an https:// URL")));
        }
        Ok(secret)
    }
}

pub struct TeamsWebhooks {
    http: reqwest::Client,
    secret: TeamsSecret,
}

fn fail(message: impl Into<String>) -> JanitorError {
    JanitorError::Delivery { via: Via::Teams, message: message.into() }
}

impl TeamsWebhooks {
    pub fn new(secret: TeamsSecret) -> Result<TeamsWebhooks> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| JanitorError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(TeamsWebhooks { http, secret })
    }

    /// Posts `card`, waiting out throttling. A legacy connector answers 200 with `1`, and
    /// also 200 with an error text when Teams refused the message; Workflows answers 202.
    async fn post(&self, webhook: &str, card: &Value) -> Result<()> {
        let url = self
            .secret
            .webhooks
            .get(webhook)
            .ok_or_else(|| fail(format!("no webhook named `{webhook}` in the Teams secret")))?;
        let size = card.to_string().len();
        if size > CARD_BYTES_MAX + 8_000 {
            return Err(fail(format!("a card of {size} bytes is over Teams' 28 KB")));
        }
        for attempt in 0..=MAX_RATE_LIMIT_WAITS {
            let response = self.http.post(url).json(card).send().await.map_err(|e| fail(e.to_string()))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = response.text().await.map_err(|e| fail(e.to_string()))?;
            let throttled = status == 429 || (status == 200 && text.contains("HTTP error 429"));
            if throttled && attempt < MAX_RATE_LIMIT_WAITS {
                // Teams names no wait; Microsoft suggests seconds, growing.
                let wait = retry_after.unwrap_or(2u64.pow(attempt + 1)).min(30);
                tracing::warn!(webhook, wait, "throttled by Teams");
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let body = text.trim();
            return match status {
                202 => Ok(()),
                200 if body.is_empty() || body == "1" => Ok(()),
                _ => Err(fail(format!(
                    "webhook `{webhook}` answered HTTP {status}: {}",
                    body.chars().take(200).collect::<String>()
                ))),
            };
        }
        Err(fail(format!("webhook `{webhook}` still throttled after waiting")))
    }
}

#[async_trait]
impl Delivery for TeamsWebhooks {
    async fn send(&self, webhook: &str, digest: &Digest<'_>) -> Result<PostedMessage> {
        self.post(webhook, &card(digest)).await?;
        // A webhook names no message: the receipt is where it went.
        // Workflows' 202 says the flow took the card, not that the channel shows it; a flow
        // that fails later shows in its run history only.
        Ok(PostedMessage { channel: webhook.to_owned(), ts: String::new() })
    }

    async fn follow_up(&self, webhook: &str, text: &str) -> Result<()> {
        let body = vec![json!({ "type": "TextBlock", "text": plain(text), "wrap": true })];
        self.post(webhook, &envelope(body)).await
    }
}

/// A message with one Adaptive Card 1.4 (the highest Workflows accepts), full width.
fn envelope(body: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": { "width": "Full" },
                "body": body,
            },
        }],
    })
}

fn text(text: impl Into<String>) -> Value {
    json!({ "type": "TextBlock", "text": text.into(), "wrap": true })
}

/// Teams renders `**bold**`, `_italic_`, lists and links in a TextBlock; these characters
/// would start markup in a value that is only data (ids, reasons).
fn plain(value: &str) -> String {
    value.replace('*', "\\*").replace('_', "\\_").replace('[', "\\[")
}

/// The digest as a card: a title, the run, then per resource what, where, each rule's
/// facts, and its Snooze link when the recipient may snooze it.
pub fn card(digest: &Digest<'_>) -> Value {
    let mut body = vec![
        json!({ "type": "TextBlock", "text": digest.title(), "size": "Large", "weight": "Bolder", "wrap": true }),
        json!({ "type": "TextBlock", "text": digest.context(plain), "isSubtle": true, "wrap": true }),
    ];
    for findings in digest.resources {
        let Some(first) = findings.first() else { continue };
        let mut items = vec![text(format!(
            "**{}** {} in {} ({})",
            first.kind,
            plain(&first.id),
            first.key.region(),
            first.key.account()
        ))];
        for f in findings {
            let facts = Facts::of(f, digest.mode, digest.deadline, EVIDENCE_TEXT_MAX);
            items.push(text(format!("**{}**: {}", facts.rule, plain(&crate::delivery::truncate(&facts.reason, 300)))));
            let mut rows = Vec::new();
            if let Some(evidence) = facts.evidence {
                rows.push(json!({ "title": "Evidence", "value": plain(&evidence) }));
            }
            if let Some(cost) = facts.cost {
                rows.push(json!({ "title": "Cost", "value": plain(&cost) }));
            }
            rows.push(json!({ "title": "Seen", "value": facts.seen }));
            rows.push(json!({ "title": format!("After {}", facts.after), "value": facts.then }));
            items.push(json!({ "type": "FactSet", "facts": rows }));
        }
        match digest.links.get(&first.key) {
            Some(link) => items.push(json!({
                "type": "ActionSet",
                "actions": [{ "type": "Action.OpenUrl", "title": "Snooze…", "url": link }],
            })),
            None => items.push(json!({
                "type": "TextBlock", "text": "To keep it as it is, ask a janitor admin to snooze it.", "isSubtle": true, "wrap": true,
            })),
        }
        body.push(json!({ "type": "Container", "separator": true, "spacing": "Medium", "items": items }));
    }
    envelope(body)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::{Action, Finding, Mode, ResourceKey, ResourceKind, RuleId};
    use crate::slack::Deadline;

    #[test]
    fn the_card_carries_the_facts_and_a_link_only_where_the_recipient_may_snooze() {
        let key = |id: &str| ResourceKey::new("111111111111", "us-east-1", ResourceKind::Ec2Instance, id);
        let mut idle = Finding::new(key("i-1"), RuleId::Ec2IdleCpu, "idle *for* 14 days", Action::StopInstance);
        idle.evidence = json!({ "daily_average_cpu": [0.5, 1.0] });
        let other = Finding::new(key("i-2"), RuleId::Ec2IdleCpu, "idle", Action::StopInstance);
        let resources = vec![vec![&idle], vec![&other]];
        let links = HashMap::from([(key("i-1"), "https://api.example/snooze?t=abc.def".to_owned())]);
        let digest = Digest {
            resources: &resources,
            run_id: "r-1",
            mode: Mode::DryRun,
            deadline: Deadline::NextRun,
            part: (1, 2),
            links: &links,
        };
        let card = card(&digest);
        assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
        let content = &card["attachments"][0]["content"];
        assert_eq!(content["version"], "1.4");
        let text = content.to_string();
        assert!(text.contains("Cloud Janitor: 2 resources need your attention"), "{text}");
        assert!(text.contains("Part 1 of 2"), "{text}");
        assert!(text.contains("idle \\\\*for\\\\* 14 days"), "markup in data is escaped: {text}");
        assert!(text.contains("nothing (dry-run; enforce would"), "{text}");
        let first = &content["body"][2]["items"];
        let actions: Vec<&Value> = first.as_array().unwrap().iter().filter(|i| i["type"] == "ActionSet").collect();
        assert_eq!(actions[0]["actions"][0]["url"], "https://api.example/snooze?t=abc.def");
        let second = content["body"][3]["items"].to_string();
        assert!(!second.contains("Action.OpenUrl") && second.contains("ask a janitor admin"), "{second}");
    }

    #[test]
    fn a_full_card_of_long_findings_stays_under_the_size_teams_takes() {
        let findings: Vec<Finding> = (0..RESOURCES_PER_CARD)
            .flat_map(|n| {
                let key = ResourceKey::new("111111111111", "us-east-1", ResourceKind::Ec2Instance, &format!("i-{n}"));
                [RuleId::Ec2IdleCpu, RuleId::Ec2MissingMonitoring, RuleId::Ec2MissingTags].map(|rule| {
                    let mut f = Finding::new(key.clone(), rule, "why ".repeat(50), Action::StopInstance);
                    f.evidence = json!({ "series": vec![1.5; 200], "note": "x".repeat(2000) });
                    f
                })
            })
            .collect();
        let resources: Vec<Vec<&Finding>> = findings.chunks(3).map(|c| c.iter().collect()).collect();
        let links: HashMap<ResourceKey, String> = findings
            .iter()
            .map(|f| (f.key.clone(), format!("https://x.example/snooze?t={}", "a".repeat(300))))
            .collect();
        let digest = Digest {
            resources: &resources,
            run_id: "r-1",
            mode: Mode::Enforce,
            deadline: Deadline::NextRun,
            part: (1, 1),
            links: &links,
        };
        let size = card(&digest).to_string().len();
        assert!(size <= CARD_BYTES_MAX, "{size} bytes");
    }
}
