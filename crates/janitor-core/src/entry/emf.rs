//! The janitor's own metrics, as CloudWatch Embedded Metric Format: one JSON document per
//! line on stdout, which CloudWatch Logs turns into metrics in the `CloudJanitor` namespace
//! (no PutMetricData call, no grant). Written with `println!`, not through `tracing`: the
//! JSON log layer nests a message under `fields`, and CloudWatch extracts only a document
//! that is the whole log event. Only the Lambda handlers emit them; the command line's
//! stdout is its report.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::audit::AuditEventType;
use crate::model::{RunContext, StepPayload};

pub const NAMESPACE: &str = "CloudJanitor";

/// Every metric the janitor publishes; the dashboard and alarms in `template.yaml` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr, strum::EnumIter)]
pub enum Metric {
    /// Findings after the metric check, by rule and by account.
    Findings,
    /// Parts of a scope that could not be listed.
    ScanFailures,
    /// What the actions of the findings found would save a month (USD).
    SavingsFound,
    Notified,
    Snoozed,
    Remediated,
    WouldRemediate,
    /// Actions that failed, or were halted by the run's cap.
    ActionsFailed,
    Halted,
    /// What the remediated actions save a month (USD).
    SavingsMade,
    /// What the dry-run's actions would have saved a month (USD).
    SavingsWould,
    Runs,
    RunDuration,
    FailedScopes,
    IncompleteScopes,
}

impl Metric {
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn every() -> impl Iterator<Item = Metric> {
        <Metric as strum::IntoEnumIterator>::iter()
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::SavingsFound | Metric::SavingsMade | Metric::SavingsWould => "None",
            Metric::RunDuration => "Seconds",
            _ => "Count",
        }
    }
}

/// The dimensions the janitor's metrics are kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr)]
pub enum Dimension {
    Rule,
    Account,
    Mode,
}

/// One EMF document: values of some metrics, kept by each of `sets` of its dimensions (an
/// empty set: across everything).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    at: DateTime<Utc>,
    run: String,
    dimensions: BTreeMap<Dimension, String>,
    sets: Vec<Vec<Dimension>>,
    values: BTreeMap<Metric, f64>,
}

impl Document {
    pub fn new(run_id: &str, at: DateTime<Utc>) -> Document {
        Document { at, run: run_id.to_owned(), dimensions: BTreeMap::new(), sets: Vec::new(), values: BTreeMap::new() }
    }

    pub fn dimension(mut self, dimension: Dimension, value: impl Into<String>) -> Document {
        self.dimensions.insert(dimension, value.into());
        self
    }

    /// Each set is its own metric in CloudWatch; every dimension named must be set.
    pub fn kept_by(mut self, sets: &[&[Dimension]]) -> Document {
        self.sets = sets.iter().map(|s| s.to_vec()).collect();
        self
    }

    /// A value that is not a number (NaN, infinite) is left out: CloudWatch would reject
    /// the whole document over it.
    pub fn value(mut self, metric: Metric, value: f64) -> Document {
        if value.is_finite() {
            self.values.insert(metric, value);
        }
        self
    }

    /// The document as CloudWatch reads it. The run id rides along as a plain property (for
    /// Logs Insights), never as a dimension: one metric per run would cost per run.
    pub fn to_json(&self) -> Value {
        let sets: Vec<Vec<&'static str>> =
            self.sets.iter().map(|set| set.iter().map(|d| <&'static str>::from(*d)).collect()).collect();
        let metrics: Vec<Value> = self.values.keys().map(|m| json!({ "Name": m.name(), "Unit": m.unit() })).collect();
        let mut document = json!({
            "_aws": {
                "Timestamp": self.at.timestamp_millis(),
                "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": sets, "Metrics": metrics }],
            },
            "RunId": self.run,
        });
        for (dimension, value) in &self.dimensions {
            document[<&'static str>::from(*dimension)] = json!(value);
        }
        for (metric, value) in &self.values {
            document[metric.name()] = json!(value);
        }
        document
    }

    /// One line on stdout: one log event.
    pub fn emit(&self) {
        println!("{}", self.to_json());
    }
}

/// A scope's findings once the metric check is done: one document per rule (by rule and by
/// account), and one for the scope's failures and savings (by account and overall).
pub fn scope_found(payload: &StepPayload, at: DateTime<Utc>) -> Vec<Document> {
    let account = payload.run.scope.as_ref().map(|s| s.account.clone()).unwrap_or_default();
    let mut by_rule: BTreeMap<&'static str, usize> = BTreeMap::new();
    for f in &payload.findings {
        *by_rule.entry(f.policy.as_str()).or_default() += 1;
    }
    let mut documents: Vec<Document> = by_rule
        .into_iter()
        .map(|(rule, count)| {
            Document::new(&payload.run.id, at)
                .dimension(Dimension::Rule, rule)
                .dimension(Dimension::Account, &account)
                .kept_by(&[&[Dimension::Rule], &[Dimension::Account]])
                .value(Metric::Findings, count as f64)
        })
        .collect();
    documents.push(
        Document::new(&payload.run.id, at)
            .dimension(Dimension::Account, &account)
            .kept_by(&[&[Dimension::Account], &[]])
            .value(Metric::ScanFailures, payload.failures.len() as f64)
            .value(Metric::SavingsFound, payload.tally.savings_found.value()),
    );
    documents
}

/// What a scope's remediation did, by account and overall.
pub fn scope_acted(payload: &StepPayload, at: DateTime<Utc>) -> Document {
    use AuditEventType::*;
    let account = payload.run.scope.as_ref().map(|s| s.account.clone()).unwrap_or_default();
    let count =
        |results: &[AuditEventType]| payload.outcomes.iter().filter(|o| results.contains(&o.result)).count() as f64;
    Document::new(&payload.run.id, at)
        .dimension(Dimension::Account, account)
        .kept_by(&[&[Dimension::Account], &[]])
        .value(Metric::Remediated, count(&[Remediated]))
        .value(Metric::WouldRemediate, count(&[WouldRemediate]))
        .value(Metric::ActionsFailed, count(&[Failed]))
        .value(Metric::Halted, count(&[Halted]))
        .value(Metric::SavingsMade, payload.tally.savings_made.value())
        .value(Metric::SavingsWould, payload.tally.savings_would.value())
}

/// A plain count across everything (notified, snoozed).
pub fn count(run_id: &str, at: DateTime<Utc>, metric: Metric, value: usize) -> Document {
    Document::new(run_id, at).kept_by(&[&[]]).value(metric, value as f64)
}

/// How the run ended, by mode and overall: the failed-scopes alarm reads `FailedScopes`.
pub fn run_ended(run: &RunContext, at: DateTime<Utc>, failed: usize, incomplete: usize) -> Document {
    let mut document = Document::new(&run.id, at)
        .dimension(Dimension::Mode, run.mode.to_string())
        .kept_by(&[&[Dimension::Mode], &[]])
        .value(Metric::Runs, 1.0)
        .value(Metric::FailedScopes, failed as f64)
        .value(Metric::IncompleteScopes, incomplete as f64);
    if let Some(started) = run.started_at {
        document = document.value(Metric::RunDuration, (at - started).num_milliseconds().max(0) as f64 / 1000.0);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Finding, Mode, ResourceKey, ResourceKind, RuleId, Scope};
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap()
    }

    #[test]
    fn a_document_is_what_cloudwatch_extracts_metrics_from() {
        let doc = Document::new("r1", at())
            .dimension(Dimension::Account, "111111111111")
            .kept_by(&[&[Dimension::Account], &[]])
            .value(Metric::Remediated, 2.0)
            .value(Metric::SavingsMade, 12.5)
            .to_json();
        assert_eq!(doc["_aws"]["Timestamp"], json!(at().timestamp_millis()));
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CloudJanitor");
        assert_eq!(directive["Dimensions"], json!([["Account"], []]));
        assert_eq!(
            directive["Metrics"],
            json!([{ "Name": "Remediated", "Unit": "Count" }, { "Name": "SavingsMade", "Unit": "None" }])
        );
        // Every dimension and metric named is a top-level member, as the format requires.
        assert_eq!((doc["Account"].as_str(), doc["Remediated"].as_f64()), (Some("111111111111"), Some(2.0)));
        assert_eq!((doc["SavingsMade"].as_f64(), doc["RunId"].as_str()), (Some(12.5), Some("r1")));
        assert!(!doc.to_string().contains('\n'), "one line, one log event");
    }

    #[test]
    fn a_scope_s_findings_are_counted_by_rule_and_account() {
        let scope = Scope::new("111111111111", "us-east-1");
        let run = RunContext { id: "r1".into(), mode: Mode::DryRun, scope: Some(scope), started_at: None };
        let mut payload = StepPayload::new(run);
        for (id, rule) in [("i-1", RuleId::Ec2IdleCpu), ("i-2", RuleId::Ec2IdleCpu), ("i-3", RuleId::Ec2MissingTags)] {
            let key = ResourceKey::new("111111111111", "us-east-1", ResourceKind::Ec2Instance, id);
            payload.findings.push(Finding::new(key, rule, "x", Action::StopInstance));
        }
        let docs: Vec<Value> = scope_found(&payload, at()).iter().map(Document::to_json).collect();
        let findings: Vec<(&str, f64)> =
            docs.iter().filter_map(|d| Some((d["Rule"].as_str()?, d["Findings"].as_f64()?))).collect();
        assert_eq!(findings, [("ec2-idle-cpu", 2.0), ("ec2-missing-tags", 1.0)]);
        assert!(docs.iter().all(|d| d["Account"] == "111111111111"));
        assert_eq!(docs.last().unwrap()["ScanFailures"], json!(0.0));
    }

    #[test]
    fn a_run_says_how_long_it_took() {
        let run = RunContext {
            id: "r1".into(),
            mode: Mode::Enforce,
            scope: None,
            started_at: Some(at() - chrono::Duration::seconds(95)),
        };
        let doc = run_ended(&run, at(), 1, 2).to_json();
        assert_eq!((doc["RunDuration"].as_f64(), doc["FailedScopes"].as_f64()), (Some(95.0), Some(1.0)));
        assert_eq!((doc["Mode"].as_str(), doc["IncompleteScopes"].as_f64()), (Some("enforce"), Some(2.0)));
    }
}
