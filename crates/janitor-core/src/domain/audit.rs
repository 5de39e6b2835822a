//! Audit events: every decision about every resource, with run, time, actor and detail.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Finding, RuleId};

/// Each name is spelled once: serde and `as_str` both take it from the variant.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditEventType {
    Discovered,
    Exempt,
    Idle,
    NotIdle,
    Deferred,
    Locked,
    LockHeld,
    Failed,
    Notified,
    NotifyFailed,
    Snoozed,
    SnoozeDenied,
    Rechecked,
    Cleared,
    Gone,
    WouldRemediate,
    Remediated,
    AlreadyCompliant,
    Skipped,
    Halted,
    /// A run's end, with its totals, under [`RUNS_RESOURCE`]: the report's trend reads them.
    RunEnded,
    /// A security signal in a CloudTrail event, alerted (onboard).
    SecurityAlert,
}

/// The audit rows about runs rather than resources.
pub const RUNS_RESOURCE: &str = "janitor/runs";

/// The detail of a RUN_ENDED row: how a run ended, for the report's trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    pub mode: crate::model::Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub status: crate::model::ScopeStatus,
    pub scopes: usize,
    pub totals: crate::model::Tally,
}

impl RunEnd {
    pub fn event(&self, run_id: &str, at: DateTime<Utc>, actor: &str) -> AuditEvent {
        let detail = serde_json::to_value(self).unwrap_or_default();
        AuditEvent::new(RUNS_RESOURCE, run_id, AuditEventType::RunEnded, at, actor, detail)
    }
}

impl AuditEventType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// A resource key, or a scope's pseudo key for scope-level events.
    pub resource: String,
    pub run_id: String,
    pub event: AuditEventType,
    pub at: DateTime<Utc>,
    /// The step (or person) that decided.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RuleId>,
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        resource: impl Into<String>,
        run_id: &str,
        event: AuditEventType,
        at: DateTime<Utc>,
        actor: &str,
        detail: serde_json::Value,
    ) -> Self {
        AuditEvent {
            resource: resource.into(),
            run_id: run_id.to_owned(),
            event,
            at,
            actor: actor.to_owned(),
            policy: None,
            detail,
        }
    }

    pub fn with_policy(self, policy: Option<RuleId>) -> Self {
        AuditEvent { policy, ..self }
    }

    /// Whether this row is about `finding`: its resource and its rule.
    pub fn is_about(&self, finding: &Finding) -> bool {
        self.resource == finding.key.as_str() && self.policy == Some(finding.policy)
    }

    pub fn for_finding(
        finding: &Finding,
        run_id: &str,
        event: AuditEventType,
        at: DateTime<Utc>,
        actor: &str,
        detail: serde_json::Value,
    ) -> Self {
        AuditEvent::new(finding.key.as_str(), run_id, event, at, actor, detail).with_policy(Some(finding.policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn every_event_name_is_the_same_in_json_in_the_table_and_back() {
        for event in AuditEventType::iter() {
            assert_eq!(serde_json::to_value(event).unwrap(), serde_json::json!(event.as_str()));
            assert_eq!(event.as_str().parse::<AuditEventType>().unwrap(), event);
            assert_eq!(serde_json::from_value::<AuditEventType>(serde_json::json!(event.as_str())).unwrap(), event);
        }
    }
}
