//! `SnsAlerts`: run summaries and halt alerts to an SNS topic that Amazon Q Developer in
//! chat applications (AWS Chatbot) relays to Slack.

use async_trait::async_trait;

use super::AwsClients;
use crate::error::{JanitorError, Result};
use crate::ports::AlertSink;

pub struct SnsAlerts {
    client: aws_sdk_sns::Client,
    topic_arn: Option<String>,
}

impl SnsAlerts {
    pub fn new(clients: &AwsClients, topic_arn: Option<String>) -> Self {
        SnsAlerts { client: clients.sns(), topic_arn }
    }
}

#[async_trait]
impl AlertSink for SnsAlerts {
    async fn publish(&self, subject: &str, message: &serde_json::Value) -> Result<()> {
        let topic = self
            .topic_arn
            .as_deref()
            .ok_or_else(|| JanitorError::Config("JANITOR_ALERT_TOPIC_ARN is not set; cannot publish alerts".into()))?;
        // SNS subjects: ASCII, at most 100 characters.
        let subject: String = subject.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(100).collect();
        self.client
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(message.to_string())
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("sns", "Publish", e))?;
        Ok(())
    }
}
