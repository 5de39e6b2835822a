//! What `janitor scan` / `janitor run` print: every finding with its key, kind, policy and
//! reason, plus the scopes scanned, the scopes that failed and the AWS calls made.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use janitor_core::audit::AuditEvent;
use janitor_core::model::{Finding, ResourceKey, RunContext, Scope, ScopeFailure, StepPayload};
use janitor_core::step::RunPlan;
use serde::Serialize;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Serialize)]
pub struct Summary {
    pub scopes_planned: usize,
    pub scopes_scanned: usize,
    pub scopes_failed: usize,
    /// One per resource and rule it breaks.
    pub findings: usize,
    /// Resources with at least one finding.
    pub resources: usize,
    pub deferred: usize,
    pub held_elsewhere: usize,
    pub max_scope_payload_bytes: usize,
    pub by_policy: BTreeMap<String, usize>,
    /// What the flagged resources cost and their actions would save a month, each resource
    /// once, and how many could not be priced.
    pub cost: janitor_core::cost::Totals,
    /// The scopes' tallies added up (found counts what detection found, before locks).
    pub tally: janitor_core::model::Tally,
    pub seconds: f64,
}

#[derive(Serialize)]
pub struct ScanReport {
    pub run: RunContext,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// Scopes (or parts of scopes) that could not be scanned; never swallowed.
    pub failures: Vec<ScopeFailure>,
    pub held_elsewhere: Vec<ResourceKey>,
    pub scopes: Vec<Scope>,
    pub api_calls: BTreeMap<String, BTreeMap<String, u64>>,
}

impl ScanReport {
    pub fn build(
        plan: RunPlan,
        results: Vec<Result<(StepPayload, usize), ScopeFailure>>,
        elapsed: Duration,
        api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    ) -> ScanReport {
        let mut findings = Vec::new();
        let mut failures = plan.failures.clone();
        let mut held_elsewhere = Vec::new();
        let mut deferred = 0;
        let mut max_scope_payload_bytes = 0;
        let mut failed_scopes = std::collections::BTreeSet::new();
        let mut tally = janitor_core::model::Tally::default();
        for f in &failures {
            failed_scopes.insert(f.scope.clone());
        }
        for result in results {
            match result {
                Ok((payload, bytes)) => {
                    max_scope_payload_bytes = max_scope_payload_bytes.max(bytes);
                    tally.add(&payload.tally);
                    for f in &payload.failures {
                        failed_scopes.insert(f.scope.clone());
                    }
                    failures.extend(payload.failures);
                    findings.extend(payload.findings);
                    held_elsewhere.extend(payload.held_elsewhere);
                    deferred += payload.deferred;
                }
                Err(failure) => {
                    failed_scopes.insert(failure.scope.clone());
                    failures.push(failure);
                }
            }
        }
        findings.sort_by(|a, b| (&a.key, a.policy).cmp(&(&b.key, b.policy)));
        let resources = findings.iter().map(|f| &f.key).collect::<std::collections::BTreeSet<_>>().len();
        let mut by_policy = BTreeMap::new();
        for f in &findings {
            *by_policy.entry(f.policy.to_string()).or_insert(0) += 1;
        }
        let scopes: Vec<Scope> = plan.scopes.iter().filter_map(|s| s.run.scope.clone()).collect();
        ScanReport {
            summary: Summary {
                scopes_planned: scopes.len(),
                scopes_scanned: scopes.iter().filter(|s| !failed_scopes.contains(*s)).count(),
                scopes_failed: failed_scopes.len(),
                findings: findings.len(),
                resources,
                deferred,
                held_elsewhere: held_elsewhere.len(),
                max_scope_payload_bytes,
                by_policy,
                cost: janitor_core::cost::totals(&findings),
                tally,
                seconds: (elapsed.as_secs_f64() * 100.0).round() / 100.0,
            },
            run: plan.run,
            findings,
            failures,
            held_elsewhere,
            scopes,
            api_calls,
        }
    }

    /// 0: clean; 2: some scope could not be scanned, so the findings are incomplete.
    pub fn exit_code(&self) -> ExitCode {
        if self.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) }
    }

    pub fn print(&self, output: Output) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match output {
            Output::Json => {
                serde_json::to_writer_pretty(&mut out, self)?;
                writeln!(out)?;
            }
            Output::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record([
                    "key",
                    "account",
                    "region",
                    "kind",
                    "id",
                    "policy",
                    "reason",
                    "owner",
                    "action",
                    "first_flagged",
                    "times_flagged",
                    "monthly_cost",
                    "monthly_savings",
                    "cost_basis",
                ])?;
                for f in &self.findings {
                    writer.write_record([
                        f.key.as_str(),
                        f.key.account(),
                        f.key.region(),
                        f.kind.as_str(),
                        &f.id,
                        f.policy.as_str(),
                        &f.reason,
                        f.owner.as_deref().unwrap_or(""),
                        &f.action.to_string(),
                        &f.first_flagged.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        &f.times_flagged.to_string(),
                        &money(f.cost.as_ref().and_then(|c| c.monthly_cost)),
                        &money(f.cost.as_ref().map(|c| c.monthly_savings)),
                        f.cost.as_ref().map(|c| c.basis.as_str()).unwrap_or_default(),
                    ])?;
                }
                writer.flush()?;
            }
            Output::Table => {
                writeln!(out, "{}", self.findings_table())?;
                let s = &self.summary;
                writeln!(
                    out,
                    "run {} ({}): {} findings on {} resources in {}/{} scopes, {} failed, {} deferred by caps, {} held by other runs, {:.1}s, {} AWS calls",
                    self.run.id,
                    self.run.mode,
                    s.findings,
                    s.resources,
                    s.scopes_scanned,
                    s.scopes_planned,
                    s.scopes_failed,
                    s.deferred,
                    s.held_elsewhere,
                    s.seconds,
                    self.api_calls.values().flat_map(|ops| ops.values()).sum::<u64>()
                )?;
                let unpriced = match s.cost.unpriced {
                    0 => String::new(),
                    n => format!(" ({n} resources not priced)"),
                };
                writeln!(
                    out,
                    "flagged resources cost {}/month; their actions would save {}/month{unpriced}",
                    s.cost.monthly_cost, s.cost.monthly_savings
                )?;
                if !self.failures.is_empty() {
                    let mut table = Table::new();
                    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
                    table.set_header(["failed scope", "what", "error", "message"]);
                    for f in &self.failures {
                        table.add_row([f.scope.to_string(), f.what.clone(), f.error.clone(), f.message.clone()]);
                    }
                    writeln!(out, "{table}")?;
                }
            }
        }
        Ok(())
    }

    fn findings_table(&self) -> Table {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header([
            "account", "region", "kind", "id", "policy", "reason", "owner", "action", "$/month", "saves", "seen",
        ]);
        for f in &self.findings {
            let seen = match f.times_flagged {
                0 => "new".to_owned(),
                n => format!("{} earlier", n),
            };
            table.add_row([
                f.key.account().to_owned(),
                f.key.region().to_owned(),
                f.kind.to_string(),
                f.id.clone(),
                f.policy.to_string(),
                f.reason.clone(),
                f.owner.clone().unwrap_or_else(|| "-".into()),
                f.action.to_string(),
                f.cost.as_ref().and_then(|c| c.monthly_cost).map_or_else(|| "-".into(), |c| c.to_string()),
                f.cost.as_ref().map_or_else(|| "-".into(), |c| c.monthly_savings.to_string()),
                seen,
            ]);
        }
        table
    }
}

/// A money cell for CSV: plain dollars and cents, empty when unknown.
fn money(usd: Option<janitor_core::cost::Usd>) -> String {
    usd.map(|u| format!("{:.2}", u.value())).unwrap_or_default()
}

/// Prints audit events oldest first.
pub fn print_audit(events: &[AuditEvent], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, events)?;
            writeln!(out)?;
        }
        // CSV keeps everything machine-readable; the table drops the policy for width.
        Output::Csv => {
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    vec![
                        e.at.to_rfc3339(),
                        e.run_id.clone(),
                        e.resource.clone(),
                        e.event.as_str().to_owned(),
                        e.actor.clone(),
                        e.policy.map(|p| p.to_string()).unwrap_or_default(),
                        e.detail.to_string(),
                    ]
                })
                .collect();
            print_rows(&["at", "run_id", "resource", "event", "actor", "policy", "detail"], &rows, output)?;
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    vec![
                        e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        e.run_id.clone(),
                        e.resource.clone(),
                        e.event.as_str().to_owned(),
                        e.actor.clone(),
                        e.detail.to_string(),
                    ]
                })
                .collect();
            print_rows(&["at", "run", "resource", "event", "actor", "detail"], &rows, output)?;
            println!("{} events", events.len());
        }
    }
    Ok(())
}

pub fn run_summary_header() -> Vec<&'static str> {
    let mut header = vec!["scope", "status"];
    header.extend(janitor_core::local::TALLY_COLUMNS);
    header
}

/// Plain rows as a table or CSV (JSON callers print their own document).
pub fn print_rows(header: &[&str], rows: &[Vec<String>], output: Output) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Output::Csv = output {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(header)?;
        for row in rows {
            writer.write_record(row)?;
        }
        writer.flush()?;
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row.clone());
    }
    writeln!(out, "{table}")?;
    Ok(())
}

/// A run's findings: JSON keeps each rule's evidence as written, CSV as a JSON string column.
pub fn print_findings(rows: &[janitor_core::export::FindingRow], output: Output) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?,
        Output::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            for row in rows {
                writer.serialize(row.csv())?;
            }
            writer.flush()?;
        }
        Output::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.key.clone(),
                        r.policy.map(|p| p.to_string()).unwrap_or_default(),
                        r.reason.clone(),
                        r.owner.clone().unwrap_or_default(),
                        r.outcome.as_str().to_owned(),
                    ]
                })
                .collect();
            drop(out);
            print_rows(&["resource", "policy", "reason", "owner", "outcome"], &cells, output)?;
        }
    }
    Ok(())
}
