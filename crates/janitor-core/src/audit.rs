//! Audit events: every decision about every resource, with run, time, actor and detail.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Finding, RuleId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
}

impl AuditEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEventType::Discovered => "DISCOVERED",
            AuditEventType::Exempt => "EXEMPT",
            AuditEventType::Idle => "IDLE",
            AuditEventType::NotIdle => "NOT_IDLE",
            AuditEventType::Deferred => "DEFERRED",
            AuditEventType::Locked => "LOCKED",
            AuditEventType::LockHeld => "LOCK_HELD",
            AuditEventType::Failed => "FAILED",
            AuditEventType::Notified => "NOTIFIED",
            AuditEventType::NotifyFailed => "NOTIFY_FAILED",
            AuditEventType::Snoozed => "SNOOZED",
            AuditEventType::SnoozeDenied => "SNOOZE_DENIED",
            AuditEventType::Rechecked => "RECHECKED",
            AuditEventType::Cleared => "CLEARED",
            AuditEventType::Gone => "GONE",
            AuditEventType::WouldRemediate => "WOULD_REMEDIATE",
            AuditEventType::Remediated => "REMEDIATED",
            AuditEventType::AlreadyCompliant => "ALREADY_COMPLIANT",
            AuditEventType::Skipped => "SKIPPED",
            AuditEventType::Halted => "HALTED",
        }
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
