//! `SnsEmail`, owners told by email through an SNS topic, and `KmsLinkKey`, the KMS HMAC key
//! that signs and checks snooze links.

use async_trait::async_trait;

use super::AwsClients;
use crate::delivery::{Delivery, Digest, LinkKey, Via, email_subject, email_text};
use crate::error::{JanitorError, Result};
use crate::slack::PostedMessage;

/// The message attribute each owner's email subscription filters on
/// (`{"owner": ["alice@example.com"]}`), so one topic reaches every owner, each only with theirs.
#[cfg(feature = "email")]
pub const OWNER_ATTRIBUTE: &str = "owner";

/// Publishes each owner's digest as plain text (an `email` subscription sends the message
/// as the body and the subject as the subject line). SNS takes a message that no
/// subscription receives without a word, so each owner must first have a confirmed
/// subscription filtered to them, and no subscription may take every owner's messages (and
/// snooze links): otherwise the message fails, recorded as NOTIFY_FAILED.
#[cfg(feature = "email")]
pub struct SnsEmail {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    /// The topic's subscriptions, read at most once a minute.
    subscribers: tokio::sync::Mutex<Option<(std::time::Instant, Subscribers)>>,
}

/// The owners each confirmed subscription is filtered to; `Err` names a subscription that
/// has no owner filter.
#[cfg(feature = "email")]
type Subscribers = std::result::Result<std::collections::HashSet<String>, String>;

#[cfg(feature = "email")]
const SUBSCRIBERS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(feature = "email")]
fn email_failure(message: String) -> JanitorError {
    JanitorError::Delivery { via: Via::Email, message }
}

/// The one owner a subscription is for: an `email` subscription whose filter policy (on
/// message attributes) has the single key `owner` with exactly its own address. SNS
/// compares values as written, and the janitor sends addresses lowercased.
#[cfg(feature = "email")]
pub fn subscribed_owner(
    protocol: Option<&str>,
    endpoint: Option<&str>,
    filter_policy: Option<&str>,
    scope: Option<&str>,
) -> Option<String> {
    if protocol != Some("email") || scope.is_some_and(|s| s != "MessageAttributes") {
        return None;
    }
    let policy: serde_json::Value = serde_json::from_str(filter_policy?).ok()?;
    let map = policy.as_object().filter(|m| m.len() == 1)?;
    let [value] = map.get(OWNER_ATTRIBUTE)?.as_array()?.as_slice() else { return None };
    let owner = value.as_str()?;
    (owner == endpoint?.to_ascii_lowercase()).then(|| owner.to_owned())
}

#[cfg(feature = "email")]
impl SnsEmail {
    pub fn new(clients: &AwsClients, topic_arn: String) -> SnsEmail {
        SnsEmail { client: clients.sns(), topic_arn, subscribers: Default::default() }
    }

    async fn read_subscribers(&self) -> Result<Subscribers> {
        let mut owners = std::collections::HashSet::new();
        for sub in list_owner_subscriptions(&self.client, &self.topic_arn).await? {
            match sub.owner {
                // Unconfirmed: it receives nothing yet.
                _ if !sub.confirmed => {}
                Some(owner) => {
                    owners.insert(owner);
                }
                None => {
                    return Ok(Err(format!(
                        "the owner email topic has a subscription that is not one owner's own ({} {}): \
                         it could receive other owners' messages and snooze links; subscribe owners with \
                         `janitor email subscribe` (filter {{\"{OWNER_ATTRIBUTE}\": [\"<its own address>\"]}}) and remove it",
                        sub.protocol, sub.endpoint
                    )));
                }
            }
        }
        Ok(Ok(owners))
    }

    /// Whether a message to `to` reaches someone, and only them.
    async fn check_reaches(&self, to: &str) -> Result<()> {
        let mut cached = self.subscribers.lock().await;
        let stale = cached.as_ref().is_none_or(|(at, _)| at.elapsed() > SUBSCRIBERS_FRESH_FOR);
        if stale {
            *cached = Some((std::time::Instant::now(), self.read_subscribers().await?));
        }
        match cached.as_ref().map(|(_, s)| s) {
            Some(Ok(owners)) if owners.contains(to) => Ok(()),
            Some(Ok(_)) | None => Err(email_failure(format!(
                "{to} has no confirmed subscription to the owner email topic filtered to them \
                 (janitor email subscribe {to}); the message would reach nobody"
            ))),
            Some(Err(unfiltered)) => Err(email_failure(unfiltered.clone())),
        }
    }

    async fn publish(&self, to: &str, subject: &str, body: String) -> Result<String> {
        self.check_reaches(to).await?;
        let owner = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(to.to_ascii_lowercase())
            .build()
            .map_err(|e| email_failure(e.to_string()))?;
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(email_subject(subject))
            .message(body)
            .message_attributes(OWNER_ATTRIBUTE, owner)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("sns", "Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

/// Subscribes `address` to the owner email topic, filtered to messages for it (SNS mails it
/// a confirmation first). Returns the subscription's ARN, or "pending confirmation".
#[cfg(feature = "email")]
pub async fn subscribe_owner(clients: &AwsClients, topic_arn: &str, address: &str) -> Result<String> {
    let address = address.trim().to_ascii_lowercase();
    let well_formed = address.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty() && domain.contains('.') && !domain.contains('@') && !address.contains(char::is_whitespace)
    });
    if !well_formed {
        return Err(JanitorError::InvalidInput(format!("`{address}` is not an email address")));
    }
    let filter = serde_json::json!({ OWNER_ATTRIBUTE: [address] }).to_string();
    let out = clients
        .sns()
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("email")
        .endpoint(&address)
        .attributes("FilterPolicyScope", "MessageAttributes")
        .attributes("FilterPolicy", filter)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| JanitorError::from_sdk("sns", "Subscribe", e))?;
    Ok(out.subscription_arn().unwrap_or("pending confirmation").to_owned())
}

/// A subscription of the owner email topic.
#[cfg(feature = "email")]
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerSubscription {
    pub protocol: String,
    pub endpoint: String,
    pub confirmed: bool,
    /// The owner it is for; none: not one owner's own, so it may take others' mail.
    pub owner: Option<String>,
}

/// Every subscription of the owner email topic (the CLI's list).
#[cfg(feature = "email")]
pub async fn owner_subscriptions(clients: &AwsClients, topic_arn: &str) -> Result<Vec<OwnerSubscription>> {
    list_owner_subscriptions(&clients.sns(), topic_arn).await
}

#[cfg(feature = "email")]
async fn list_owner_subscriptions(client: &aws_sdk_sns::Client, topic_arn: &str) -> Result<Vec<OwnerSubscription>> {
    let mut out = Vec::new();
    let mut pages = client.list_subscriptions_by_topic().topic_arn(topic_arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| JanitorError::from_sdk("sns", "ListSubscriptionsByTopic", e))?;
        for sub in page.subscriptions() {
            let mut listed = OwnerSubscription {
                protocol: sub.protocol().unwrap_or("?").to_owned(),
                endpoint: sub.endpoint().unwrap_or("?").to_owned(),
                confirmed: false,
                owner: None,
            };
            // An unconfirmed one is listed as "PendingConfirmation", not by its ARN.
            let Some(arn) = sub.subscription_arn().filter(|a| a.starts_with("arn:")) else {
                out.push(listed);
                continue;
            };
            let attributes = client
                .get_subscription_attributes()
                .subscription_arn(arn)
                .send()
                .await
                .map_err(|e| JanitorError::from_sdk("sns", "GetSubscriptionAttributes", e))?
                .attributes()
                .cloned()
                .unwrap_or_default();
            listed.confirmed = attributes.get("PendingConfirmation").is_none_or(|p| p != "true");
            listed.owner = subscribed_owner(
                sub.protocol(),
                sub.endpoint(),
                attributes.get("FilterPolicy").map(String::as_str),
                attributes.get("FilterPolicyScope").map(String::as_str),
            );
            out.push(listed);
        }
    }
    Ok(out)
}

#[cfg(feature = "email")]
#[async_trait]
impl Delivery for SnsEmail {
    async fn send(&self, to: &str, digest: &Digest<'_>) -> Result<PostedMessage> {
        let id = self.publish(to, &digest.title(), email_text(digest)).await?;
        Ok(PostedMessage { channel: to.to_owned(), ts: id })
    }

    async fn follow_up(&self, to: &str, text: &str) -> Result<()> {
        self.publish(to, "Cloud Janitor: what the recheck found", text.to_owned()).await.map(|_| ())
    }
}

/// HMAC-SHA-256 with a KMS key of spec HMAC_256: the key material never leaves KMS, and IAM
/// says who may make MACs (kms:GenerateMac) and who may only check them (kms:VerifyMac).
#[cfg(feature = "links")]
pub struct KmsLinkKey {
    client: aws_sdk_kms::Client,
    key_id: String,
}

#[cfg(feature = "links")]
impl KmsLinkKey {
    pub fn new(clients: &AwsClients, key_id: String) -> KmsLinkKey {
        KmsLinkKey { client: clients.kms(), key_id }
    }
}

#[cfg(feature = "links")]
#[async_trait]
impl LinkKey for KmsLinkKey {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let out = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(aws_smithy_types::Blob::new(message))
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("kms", "GenerateMac", e))?;
        match out.mac() {
            Some(mac) if mac.as_ref().len() == 32 => Ok(mac.as_ref().to_vec()),
            _ => Err(JanitorError::Aws {
                service: "kms",
                operation: "GenerateMac",
                message: "no HMAC-SHA-256 MAC in the answer".into(),
            }),
        }
    }

    async fn verify(&self, message: &[u8], mac: &[u8]) -> Result<bool> {
        let sent = self
            .client
            .verify_mac()
            .key_id(&self.key_id)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(aws_smithy_types::Blob::new(message))
            .mac(aws_smithy_types::Blob::new(mac))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.mac_valid()),
            // KMS answers a MAC it did not make with KMSInvalidMacException, not MacValid=false.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_kms_invalid_mac_exception()) => Ok(false),
            Err(e) => Err(JanitorError::from_sdk("kms", "VerifyMac", e)),
        }
    }
}

#[cfg(all(test, feature = "email"))]
mod tests {
    use super::subscribed_owner;

    #[test]
    fn a_subscription_counts_only_as_its_own_addresss_exact_owner_filter() {
        let owner = |protocol: &str, endpoint: &str, policy: &str| {
            subscribed_owner(Some(protocol), Some(endpoint), Some(policy), None)
        };
        assert_eq!(
            owner("email", "Alice@Example.com", r#"{"owner": ["alice@example.com"]}"#),
            Some("alice@example.com".into())
        );
        // SNS compares as written: a capitalised filter never matches what the janitor sends.
        assert_eq!(owner("email", "alice@example.com", r#"{"owner": ["Alice@example.com"]}"#), None);
        // Someone else's mail, several owners, another key, a prefix, the body, no filter, not email.
        assert_eq!(owner("email", "mallory@example.com", r#"{"owner": ["alice@example.com"]}"#), None);
        assert_eq!(owner("email", "a@x.io", r#"{"owner": ["a@x.io", "b@x.io"]}"#), None);
        assert_eq!(owner("email", "a@x.io", r#"{"owner": ["a@x.io"], "team": ["t"]}"#), None);
        assert_eq!(owner("email", "a@x.io", r#"{"owner": [{"prefix": "a"}]}"#), None);
        assert_eq!(
            subscribed_owner(Some("email"), Some("a@x.io"), Some(r#"{"owner": ["a@x.io"]}"#), Some("MessageBody")),
            None
        );
        assert_eq!(subscribed_owner(Some("email"), Some("a@x.io"), None, None), None);
        assert_eq!(owner("https", "a@x.io", r#"{"owner": ["a@x.io"]}"#), None);
    }
}
