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

/// The owners a filter policy (on message attributes) lets through, by exact value; none
/// when it does not filter on the owner attribute by exact values.
#[cfg(feature = "email")]
pub fn filtered_owners(filter_policy: Option<&str>, scope: Option<&str>) -> Option<Vec<String>> {
    if scope.is_some_and(|s| s != "MessageAttributes") {
        return None;
    }
    let policy: serde_json::Value = serde_json::from_str(filter_policy?).ok()?;
    let values = policy.get(OWNER_ATTRIBUTE)?.as_array()?;
    values.iter().map(|v| v.as_str().map(str::to_ascii_lowercase)).collect()
}

#[cfg(feature = "email")]
impl SnsEmail {
    pub fn new(clients: &AwsClients, topic_arn: String) -> SnsEmail {
        SnsEmail { client: clients.sns(), topic_arn, subscribers: Default::default() }
    }

    async fn read_subscribers(&self) -> Result<Subscribers> {
        let mut owners = std::collections::HashSet::new();
        let mut pages = self.client.list_subscriptions_by_topic().topic_arn(&self.topic_arn).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| JanitorError::from_sdk("sns", "ListSubscriptionsByTopic", e))?;
            for sub in page.subscriptions() {
                let (Some(arn), endpoint) = (sub.subscription_arn(), sub.endpoint().unwrap_or("?")) else { continue };
                // Unconfirmed: it receives nothing yet.
                if !arn.starts_with("arn:") {
                    continue;
                }
                let out = self
                    .client
                    .get_subscription_attributes()
                    .subscription_arn(arn)
                    .send()
                    .await
                    .map_err(|e| JanitorError::from_sdk("sns", "GetSubscriptionAttributes", e))?;
                let attributes = out.attributes().cloned().unwrap_or_default();
                if attributes.get("PendingConfirmation").is_some_and(|p| p == "true") {
                    continue;
                }
                let filter = attributes.get("FilterPolicy").map(String::as_str);
                match filtered_owners(filter, attributes.get("FilterPolicyScope").map(String::as_str)) {
                    Some(list) => owners.extend(list),
                    None => {
                        return Ok(Err(format!(
                            "the owner email topic has a subscription without an owner filter ({} {endpoint}): it would \
                             receive every owner's messages and snooze links; give it {{\"{OWNER_ATTRIBUTE}\": [\"<address>\"]}} or remove it",
                            sub.protocol().unwrap_or("?")
                        )));
                    }
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
            Some(Ok(owners)) if owners.contains(&to.to_ascii_lowercase()) => Ok(()),
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
    if address.split('@').count() != 2 || address.contains(char::is_whitespace) || address.starts_with('@') {
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

/// Each subscription of the owner email topic: endpoint, whether confirmed, and the owners
/// its filter lets through (none: it takes every owner's mail).
#[cfg(feature = "email")]
pub async fn owner_subscriptions(
    clients: &AwsClients,
    topic_arn: &str,
) -> Result<Vec<(String, bool, Option<Vec<String>>)>> {
    let client = clients.sns();
    let mut out = Vec::new();
    let mut pages = client.list_subscriptions_by_topic().topic_arn(topic_arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| JanitorError::from_sdk("sns", "ListSubscriptionsByTopic", e))?;
        for sub in page.subscriptions() {
            let endpoint = sub.endpoint().unwrap_or("?").to_owned();
            let Some(arn) = sub.subscription_arn().filter(|a| a.starts_with("arn:")) else {
                out.push((endpoint, false, None));
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
            let confirmed = attributes.get("PendingConfirmation").is_none_or(|p| p != "true");
            let owners = filtered_owners(
                attributes.get("FilterPolicy").map(String::as_str),
                attributes.get("FilterPolicyScope").map(String::as_str),
            );
            out.push((endpoint, confirmed, owners));
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
    use super::filtered_owners;

    #[test]
    fn only_a_filter_on_exact_owner_values_counts_as_filtered() {
        let owners = |policy: &str, scope: Option<&str>| filtered_owners(Some(policy), scope);
        assert_eq!(owners(r#"{"owner": ["Alice@Example.com"]}"#, None), Some(vec!["alice@example.com".into()]));
        assert_eq!(
            owners(r#"{"owner": ["a@x", "b@x"]}"#, Some("MessageAttributes")),
            Some(vec!["a@x".into(), "b@x".into()])
        );
        // Prefix or anything-but matching, another attribute, the body, no filter: not per owner.
        assert_eq!(owners(r#"{"owner": [{"prefix": "a"}]}"#, None), None);
        assert_eq!(owners(r#"{"team": ["x"]}"#, None), None);
        assert_eq!(owners(r#"{"owner": ["a@x"]}"#, Some("MessageBody")), None);
        assert_eq!(filtered_owners(None, None), None);
        assert_eq!(owners("not json", None), None);
    }
}
