//! The findings of one run, from its audit trail (seeds 001/004: an export for spreadsheets
//! and other tools): one row per finding with the rule's evidence, and what became of it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{AuditEvent, AuditEventType};
use crate::model::{ResourceKey, RuleId};

/// One finding of a run. JSON keeps `evidence` as the rule wrote it; CSV carries it as a JSON
/// string in one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub key: String,
    pub account: String,
    pub region: String,
    pub kind: String,
    pub id: String,
    pub policy: Option<RuleId>,
    pub reason: String,
    pub evidence: serde_json::Value,
    pub owner: Option<String>,
    pub action: Option<String>,
    /// What it costs and its action saves, as found.
    pub cost: Option<crate::cost::Cost>,
    pub found_at: DateTime<Utc>,
    /// The resource's last event in the run (NOTIFIED, SNOOZED, REMEDIATED, …).
    pub outcome: AuditEventType,
    pub outcome_at: DateTime<Utc>,
}

/// The same row for CSV, whose cells are text.
#[derive(Debug, Serialize)]
pub struct FindingCsvRow<'a> {
    key: &'a str,
    account: &'a str,
    region: &'a str,
    kind: &'a str,
    id: &'a str,
    policy: &'a str,
    reason: &'a str,
    evidence: String,
    owner: &'a str,
    action: &'a str,
    monthly_cost: String,
    monthly_savings: String,
    cost_basis: &'a str,
    found_at: String,
    outcome: &'a str,
    outcome_at: String,
}

impl FindingRow {
    pub fn csv(&self) -> FindingCsvRow<'_> {
        FindingCsvRow {
            key: &self.key,
            account: &self.account,
            region: &self.region,
            kind: &self.kind,
            id: &self.id,
            policy: self.policy.map(RuleId::as_str).unwrap_or_default(),
            reason: &self.reason,
            evidence: if self.evidence.is_null() { String::new() } else { self.evidence.to_string() },
            owner: self.owner.as_deref().unwrap_or_default(),
            action: self.action.as_deref().unwrap_or_default(),
            monthly_cost: money(self.cost.as_ref().and_then(|c| c.monthly_cost)),
            monthly_savings: money(self.cost.as_ref().filter(|c| c.monthly_cost.is_some()).map(|c| c.monthly_savings)),
            cost_basis: self.cost.as_ref().map(|c| c.basis.as_str()).unwrap_or_default(),
            found_at: self.found_at.to_rfc3339(),
            outcome: self.outcome.as_str(),
            outcome_at: self.outcome_at.to_rfc3339(),
        }
    }
}

/// Dollars and cents for a CSV cell; empty when not priced.
fn money(usd: Option<crate::cost::Usd>) -> String {
    usd.map(|u| format!("{:.2}", u.value())).unwrap_or_default()
}

/// Every finding of the run whose trail is `events`: a resource discovery flagged
/// (DISCOVERED) or the metric check found idle (IDLE), one per resource and rule, sorted by
/// key and rule. Its outcome is the last row about that resource and rule.
pub fn findings_of_run(events: &[AuditEvent]) -> Vec<FindingRow> {
    let mut rows: Vec<FindingRow> = Vec::new();
    let mut sorted: Vec<&AuditEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.at);
    let mut seen: std::collections::HashSet<(&str, Option<RuleId>)> = Default::default();
    for e in &sorted {
        if !matches!(e.event, AuditEventType::Discovered | AuditEventType::Idle) {
            continue;
        }
        let Ok(key) = ResourceKey::parse(&e.resource) else { continue };
        if !seen.insert((e.resource.as_str(), e.policy)) {
            continue;
        }
        let text = |field: &str| e.detail[field].as_str().map(str::to_owned);
        rows.push(FindingRow {
            key: e.resource.clone(),
            account: key.account().to_owned(),
            region: key.region().to_owned(),
            kind: key.kind().as_str().to_owned(),
            id: key.id().to_owned(),
            policy: e.policy,
            reason: text("reason").unwrap_or_default(),
            evidence: e.detail["evidence"].clone(),
            owner: text("owner"),
            action: text("action"),
            cost: serde_json::from_value(e.detail["cost"].clone()).ok(),
            found_at: e.at,
            outcome: e.event,
            outcome_at: e.at,
        });
    }
    let mut by_resource: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, row) in rows.iter().enumerate() {
        by_resource.entry(row.key.clone()).or_default().push(i);
    }
    // In time order, each row about a resource moves its findings' outcome on; rows about the
    // whole resource (a Snooze click) count for each of its rules. A refused snooze changes
    // nothing, so it is no outcome.
    for e in sorted.iter().filter(|e| e.event != AuditEventType::SnoozeDenied) {
        for &i in by_resource.get(&e.resource).into_iter().flatten() {
            let row = &mut rows[i];
            if e.policy.is_none() || e.policy == row.policy {
                row.outcome = e.event;
                row.outcome_at = e.at;
                // What the action saved, as the finding stood when acted on (recheck reprices).
                if let Ok(cost) = serde_json::from_value(e.detail["cost"].clone()) {
                    row.cost = Some(cost);
                }
            }
        }
    }
    rows.sort_by(|a, b| (&a.key, a.policy).cmp(&(&b.key, b.policy)));
    rows
}
