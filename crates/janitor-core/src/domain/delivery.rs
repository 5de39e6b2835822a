//! How an owner is told: the `[delivery]` policy (Slack, Microsoft Teams or email, per owner
//! domain or per channel), the `Delivery` port the Teams and email adapters implement (Slack
//! is the `Chat` port), the medium-neutral facts of a finding, and the signed snooze links
//! that stand in for Slack's buttons where a message cannot call back.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{JanitorError, Result};
use crate::model::{Finding, Mode, ResourceKey};
use crate::slack::{Deadline, PostedMessage};

/// What carries a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Via {
    #[default]
    Slack,
    Teams,
    Email,
}

/// Where one kind of owner is told (`{ via = "teams", webhook = "finops" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RouteSpec", into = "RouteSpec")]
pub enum Route {
    /// The owner's Slack user (an email Slack knows), the tag's channel, else the default channel.
    Slack,
    /// A Teams channel's webhook, by its name in the Teams secret.
    Teams { webhook: String },
    /// The owner's address (owners by email only), through the owner email topic.
    Email,
}

/// A route as the policy file spells it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    via: Via,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<String>,
}

impl TryFrom<RouteSpec> for Route {
    type Error = String;
    fn try_from(spec: RouteSpec) -> std::result::Result<Route, String> {
        match (spec.via, spec.webhook) {
            (Via::Teams, Some(webhook)) => Ok(Route::Teams { webhook }),
            (Via::Teams, None) => {
                Err("a teams route names its webhook (`webhook = \"<name in the Teams secret>\"`)".into())
            }
            (via, Some(_)) => Err(format!("a {via} route has no webhook")),
            (Via::Slack, None) => Ok(Route::Slack),
            (Via::Email, None) => Ok(Route::Email),
        }
    }
}

impl From<Route> for RouteSpec {
    fn from(route: Route) -> RouteSpec {
        match route {
            Route::Teams { webhook } => RouteSpec { via: Via::Teams, webhook: Some(webhook) },
            other => RouteSpec { via: other.via(), webhook: None },
        }
    }
}

impl Route {
    pub fn via(&self) -> Via {
        match self {
            Route::Slack => Via::Slack,
            Route::Teams { .. } => Via::Teams,
            Route::Email => Via::Email,
        }
    }
}

fn slack_route() -> Route {
    Route::Slack
}

/// `[delivery]`: how owners are told, by the owner tag's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// Owners no entry names, and resources without an owner.
    #[serde(default = "slack_route")]
    pub default: Route,
    /// By the owner's email domain (`"eu.example.com"`; a domain also holds for its
    /// subdomains, the longest wins; `"*"` for any email owner).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub domains: BTreeMap<String, Route>,
    /// By the channel an owner tag names (`"#finops"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, Route>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy { default: Route::Slack, domains: BTreeMap::new(), channels: BTreeMap::new() }
    }
}

impl DeliveryPolicy {
    /// The route of an owner tag's value (none: the default).
    pub fn route(&self, owner: Option<&str>) -> &Route {
        match owner {
            Some(channel) if channel.starts_with('#') => self.channels.get(channel),
            Some(email) if email.contains('@') => {
                let domain = email.rsplit('@').next().unwrap_or_default().to_ascii_lowercase();
                self.domains
                    .iter()
                    .filter(|(d, _)| {
                        let d = d.to_ascii_lowercase();
                        domain == d || domain.ends_with(&format!(".{d}"))
                    })
                    .max_by_key(|(d, _)| d.len())
                    .or_else(|| self.domains.get_key_value("*"))
                    .map(|(_, route)| route)
            }
            _ => None,
        }
        .unwrap_or(&self.default)
    }

    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let webhook = |at: &str, route: &Route| match route {
            Route::Teams { webhook } if webhook.trim().is_empty() => {
                Err(format!("{at}: a Teams route needs the name of a webhook in the Teams secret"))
            }
            _ => Ok(()),
        };
        webhook("delivery.default", &self.default)?;
        if self.default == Route::Email {
            return Err("delivery.default: email reaches owners by address only; default to slack or teams".into());
        }
        for (domain, route) in &self.domains {
            if domain != "*" && (domain.is_empty() || domain.contains(['@', ' ', '#'])) {
                return Err(format!("delivery.domains: `{domain}` is not an email domain"));
            }
            webhook(&format!("delivery.domains.\"{domain}\""), route)?;
        }
        for (channel, route) in &self.channels {
            if !channel.starts_with('#') {
                return Err(format!("delivery.channels: `{channel}` is not a #channel"));
            }
            if *route == Route::Email {
                return Err(format!("delivery.channels.\"{channel}\": a channel has no email address"));
            }
            webhook(&format!("delivery.channels.\"{channel}\""), route)?;
        }
        Ok(())
    }
}

/// One message for one recipient, whatever carries it: a line per resource with the
/// findings of its rules.
pub struct Digest<'a> {
    pub resources: &'a [Vec<&'a Finding>],
    pub run_id: &'a str,
    pub mode: Mode,
    pub deadline: Deadline,
    /// This message's place among the recipient's messages (1-based) and how many there are.
    pub part: (usize, usize),
    /// The signed snooze link of each resource the recipient may snooze.
    pub links: &'a HashMap<ResourceKey, String>,
}

impl Digest<'_> {
    pub fn title(&self) -> String {
        let n = self.resources.len();
        format!(
            "Cloud Janitor: {n} resource{} need{} your attention",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" }
        )
    }

    /// The message's first line under the title; `code` marks up an identifier.
    pub fn context(&self, code: impl Fn(&str) -> String) -> String {
        let mut context = format!("Run {} ({}). Snooze a resource to keep it as it is.", code(self.run_id), self.mode);
        if self.part.1 > 1 {
            context.push_str(&format!(" Part {} of {}.", self.part.0, self.part.1));
        }
        context
    }
}

/// Teams and email (Slack is the [`crate::slack::Chat`] port, which also answers clicks).
#[async_trait]
pub trait Delivery: Send + Sync {
    /// Sends one digest to `to` (a webhook's name, an address); the receipt's `channel` says
    /// where it went and its `ts` names the message, if the medium names it.
    async fn send(&self, to: &str, digest: &Digest<'_>) -> Result<PostedMessage>;
    /// A later word on the same resources (what the recheck found and did).
    async fn follow_up(&self, to: &str, text: &str) -> Result<()>;
}

/// A delivery the function does not have: every call says which and why.
pub struct NoDelivery {
    pub via: Via,
    pub why: &'static str,
}

#[async_trait]
impl Delivery for NoDelivery {
    async fn send(&self, _: &str, _: &Digest<'_>) -> Result<PostedMessage> {
        Err(JanitorError::Delivery { via: self.via, message: format!("not configured: {}", self.why) })
    }
    async fn follow_up(&self, _: &str, _: &str) -> Result<()> {
        Err(JanitorError::Delivery { via: self.via, message: format!("not configured: {}", self.why) })
    }
}

/// One rule's part of a resource's line, as facts each medium marks up its own way.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub rule: String,
    pub reason: String,
    pub evidence: Option<String>,
    /// What the resource costs and what the action saves, with the basis.
    pub cost: Option<String>,
    /// "first flagged 2026-12-01, by 2 earlier runs".
    pub seen: String,
    /// When the action comes: the grace end, or the next daily run's.
    pub after: String,
    /// What happens then.
    pub then: String,
}

impl Facts {
    pub fn of(f: &Finding, mode: Mode, deadline: Deadline, evidence_max: usize) -> Facts {
        let cost = f.cost.as_ref().map(|cost| {
            let basis = truncate(&cost.basis, 240);
            match cost.monthly_cost {
                Some(monthly) if cost.monthly_savings > crate::cost::Usd::ZERO => {
                    format!("{monthly}/month, the action saves {}/month ({basis})", cost.monthly_savings)
                }
                Some(monthly) => format!("{monthly}/month ({basis})"),
                None => format!("not priced ({basis})"),
            }
        });
        Facts {
            rule: f.policy.to_string(),
            reason: f.reason.clone(),
            evidence: crate::slack::evidence_line(&f.evidence).map(|e| truncate(&e, evidence_max)),
            cost,
            seen: match (f.first_flagged, f.times_flagged) {
                (Some(first), 0) => format!("first flagged {}", first.format("%Y-%m-%d")),
                (Some(first), n) => format!("first flagged {}, by {n} earlier runs", first.format("%Y-%m-%d")),
                (None, _) => "first flagged now".to_owned(),
            },
            after: match deadline {
                Deadline::At(grace_ends) => grace_ends.format("%Y-%m-%d %H:%M UTC").to_string(),
                Deadline::NextRun => "the next daily run's grace period".to_owned(),
            },
            then: match mode {
                Mode::DryRun => format!("nothing (dry-run; enforce would {})", f.action.describe()),
                Mode::Enforce => f.action.describe().to_owned(),
            },
        }
    }
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// The plain-text email of a digest: readable in any client, links spelled out.
pub fn email_text(digest: &Digest<'_>) -> String {
    let mut out = format!("{}\n\n{}\n", digest.title(), digest.context(str::to_owned));
    for (n, findings) in digest.resources.iter().enumerate() {
        let Some(first) = findings.first() else { continue };
        out.push_str(&format!(
            "\n{}. {} {} in {} (account {})\n",
            n + 1,
            first.kind,
            first.id,
            first.key.region(),
            first.key.account()
        ));
        for f in findings {
            let facts = Facts::of(f, digest.mode, digest.deadline, 600);
            out.push_str(&format!("   Rule: {}\n   Why: {}\n", facts.rule, facts.reason));
            if let Some(evidence) = &facts.evidence {
                out.push_str(&format!("   Evidence: {evidence}\n"));
            }
            if let Some(cost) = &facts.cost {
                out.push_str(&format!("   Cost: {cost}\n"));
            }
            out.push_str(&format!("   Seen: {}.\n   After {}: {}\n", facts.seen, facts.after, facts.then));
        }
        match digest.links.get(&first.key) {
            Some(link) => out.push_str(&format!("   To keep it as it is, snooze it: {link}\n")),
            None => out.push_str("   To keep it as it is, ask a janitor admin to snooze it.\n"),
        }
    }
    out.push_str(
        "\nResource key, rule and run are in the janitor's audit log. This message was sent by Cloud Janitor.\n",
    );
    out
}

/// An email subject: SNS sends it as the subject line (ASCII, under 100 characters).
pub fn email_subject(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(99).collect()
}

// ------------------------------------------------------------------ signed snooze links

/// Makes and checks the MAC of a snooze link; the key never leaves its keeper (a KMS HMAC
/// key in AWS: the functions that tell owners may only make MACs, the snooze function only
/// check them).
#[async_trait]
pub trait LinkKey: Send + Sync {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// False for a MAC the key did not make; an error only when the check itself failed.
    async fn verify(&self, message: &[u8], mac: &[u8]) -> Result<bool>;
}

/// What a snooze link says: this holder may snooze this resource until the link expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkClaim {
    #[serde(rename = "k")]
    pub key: String,
    /// Whom the notice went to (the owner tag's email or #channel): the NOTIFIED row's
    /// `link_holder`, which must still be the resource's latest owner notice.
    #[serde(rename = "h")]
    pub holder: String,
    #[serde(rename = "r")]
    pub run_id: String,
    /// Seconds since the epoch after which the link snoozes nothing.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Where links point and what signs them.
#[derive(Clone)]
pub struct SnoozeLinks {
    /// The HTTP API's link route, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com/snooze`.
    pub url: String,
    pub key: std::sync::Arc<dyn LinkKey>,
}

/// HMAC-SHA-256.
const MAC_BYTES: usize = 32;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    Forged,
    Expired,
}

impl SnoozeLinks {
    /// A link for `claim`: `<url>?t=<claim>.<mac>`, both base64url.
    pub async fn link(&self, claim: &LinkClaim) -> Result<String> {
        let body = B64.encode(serde_json::to_vec(claim).map_err(|e| JanitorError::InvalidInput(e.to_string()))?);
        let mac = self.key.sign(body.as_bytes()).await?;
        Ok(format!("{}?t={body}.{}", self.url, B64.encode(mac)))
    }

    /// The claim of a token, if its MAC is the key's and it has not expired; also the MAC,
    /// which names the link for "used once".
    pub async fn open(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(LinkClaim, String), LinkError>> {
        let Some((body, mac)) = token.trim().split_once('.') else { return Ok(Err(LinkError::Malformed)) };
        let (Ok(raw), Ok(mac_bytes)) = (B64.decode(body), B64.decode(mac)) else {
            return Ok(Err(LinkError::Malformed));
        };
        // Checked before the key is asked, so junk costs no KMS request; trusted only after.
        let Ok(claim) = serde_json::from_slice::<LinkClaim>(&raw) else { return Ok(Err(LinkError::Malformed)) };
        if mac_bytes.len() != MAC_BYTES {
            return Ok(Err(LinkError::Forged));
        }
        if now.timestamp() >= claim.expires {
            return Ok(Err(LinkError::Expired));
        }
        if !self.key.verify(body.as_bytes(), &mac_bytes).await? {
            return Ok(Err(LinkError::Forged));
        }
        Ok(Ok((claim, hex::encode(mac_bytes))))
    }
}

/// The channels beyond Slack a function has, and its snooze links.
#[derive(Clone)]
pub struct Deliveries {
    pub teams: std::sync::Arc<dyn Delivery>,
    pub email: std::sync::Arc<dyn Delivery>,
    /// Without it, Teams and email messages say to ask a janitor admin to snooze.
    pub links: Option<SnoozeLinks>,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            teams: std::sync::Arc::new(NoDelivery { via: Via::Teams, why: "JANITOR_TEAMS_SECRET_ID is not set" }),
            email: std::sync::Arc::new(NoDelivery { via: Via::Email, why: "JANITOR_EMAIL_TOPIC_ARN is not set" }),
            links: None,
        }
    }
}

impl Deliveries {
    pub fn of(&self, via: Via) -> Option<&dyn Delivery> {
        match via {
            Via::Slack => None,
            Via::Teams => Some(self.teams.as_ref()),
            Via::Email => Some(self.email.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml: &str) -> DeliveryPolicy {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn an_owner_is_routed_by_domain_subdomain_channel_or_default() {
        let p = policy(
            r##"
            default = { via = "teams", webhook = "general" }
            domains = { "example.com" = { via = "slack" }, "eu.example.com" = { via = "teams", webhook = "eu" }, "*" = { via = "email" } }
            channels = { "#finops" = { via = "teams", webhook = "finops" } }
            "##,
        );
        p.validate().unwrap();
        assert_eq!(p.route(Some("alice@example.com")), &Route::Slack);
        assert_eq!(p.route(Some("bob@ops.EU.example.com")), &Route::Teams { webhook: "eu".into() });
        assert_eq!(p.route(Some("carol@contractor.example")), &Route::Email);
        assert_eq!(p.route(Some("#finops")), &Route::Teams { webhook: "finops".into() });
        assert_eq!(p.route(Some("#other")), &Route::Teams { webhook: "general".into() });
        assert_eq!(p.route(None), &Route::Teams { webhook: "general".into() });
        // A lookalike domain is not a subdomain.
        let q = policy(r#"domains = { "example.com" = { via = "email" } }"#);
        assert_eq!(q.route(Some("eve@badexample.com")), &Route::Slack);
    }

    #[test]
    fn routes_that_cannot_reach_anyone_are_refused() {
        for (toml, says) in [
            (r#"default = { via = "email" }"#, "by address only"),
            (r##"channels = { "#x" = { via = "email" } }"##, "no email address"),
            (r#"channels = { "x" = { via = "slack" } }"#, "not a #channel"),
            (r#"domains = { "a@b" = { via = "slack" } }"#, "not an email domain"),
            (r#"default = { via = "teams", webhook = " " }"#, "name of a webhook"),
        ] {
            let err = policy(toml).validate().unwrap_err();
            assert!(err.contains(says), "{toml}: {err}");
        }
        assert!(toml::from_str::<DeliveryPolicy>(r#"default = { via = "pigeon" }"#).is_err());
        assert!(toml::from_str::<DeliveryPolicy>(r#"default = { via = "teams" }"#).is_err(), "webhook required");
        assert!(toml::from_str::<DeliveryPolicy>(r#"default = { via = "slack", webhook = "x" }"#).is_err());
    }
}
