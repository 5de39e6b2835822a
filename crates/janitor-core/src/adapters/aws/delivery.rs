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
/// as the body and the subject as the subject line).
#[cfg(feature = "email")]
pub struct SnsEmail {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

#[cfg(feature = "email")]
impl SnsEmail {
    pub fn new(clients: &AwsClients, topic_arn: String) -> SnsEmail {
        SnsEmail { client: clients.sns(), topic_arn }
    }

    async fn publish(&self, to: &str, subject: &str, body: String) -> Result<String> {
        let owner = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(to.to_ascii_lowercase())
            .build()
            .map_err(|e| JanitorError::Delivery { via: Via::Email, message: e.to_string() })?;
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
        Ok(out.mac().map(|b| b.as_ref().to_vec()).unwrap_or_default())
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
