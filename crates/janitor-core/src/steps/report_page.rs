//! The report page: one run, from the audit table, as one self-contained HTML file (no
//! script, font, stylesheet or image fetched; charts are inline SVG, and the page's content
//! security policy refuses anything else). First the money: what the run's findings would
//! save a month, what was saved, what is still possible; then the findings by rule,
//! account, region and owner, the trend across the last runs, the oldest unresolved
//! findings, every finding, and each finding's audit trail in this run.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, AuditEventType, RUNS_RESOURCE, RunEnd};
use crate::cost::{Totals, Usd, totals_of};
use crate::error::Result;
use crate::export::{FindingRow, findings_of_run};
use crate::model::{FindingKey, Mode, ResourceKey};
use crate::ports::AuditLog;

/// A finding is resolved once it no longer violates: acted on, or found compliant or gone.
pub fn resolved(outcome: AuditEventType) -> bool {
    use AuditEventType::*;
    matches!(outcome, Remediated | Cleared | Gone | AlreadyCompliant | Exempt)
}

/// What the page is made of.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub run_id: String,
    pub mode: Option<Mode>,
    pub generated_at: DateTime<Utc>,
    pub rows: Vec<FindingRow>,
    /// When each finding (resource and rule) was first flagged, across runs.
    pub first_flagged: HashMap<(String, String), DateTime<Utc>>,
    /// This run's events about each resource.
    pub trails: BTreeMap<String, Vec<AuditEvent>>,
    /// The last runs that recorded their end, oldest first (this one included, if it did).
    pub runs: Vec<(String, DateTime<Utc>, RunEnd)>,
}

/// Reads one run and the `last_runs` before it from the audit table.
pub async fn gather(audit: &dyn AuditLog, run_id: &str, last_runs: usize, now: DateTime<Utc>) -> Result<ReportInput> {
    let events = audit.events_for_run(run_id).await?;
    let rows = findings_of_run(&events);
    let keys: Vec<FindingKey> = rows
        .iter()
        .filter_map(|r| Some(FindingKey { resource: ResourceKey::parse(&r.key).ok()?, rule: r.policy? }))
        .collect();
    let history = audit.flag_history(&keys).await?;
    let first_flagged =
        history.into_iter().map(|(k, h)| ((k.resource.to_string(), k.rule.to_string()), h.first_flagged)).collect();
    let keys: std::collections::HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let mut trails: BTreeMap<String, Vec<AuditEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| keys.contains(e.resource.as_str())) {
        trails.entry(e.resource.clone()).or_default().push(e.clone());
    }
    // One row a run (a retried summary may have written two: the last counts), up to this
    // run's end, or its last event if it recorded none.
    let mut ended: BTreeMap<String, (DateTime<Utc>, RunEnd)> = BTreeMap::new();
    for e in audit.events_for_resource(RUNS_RESOURCE).await?.into_iter().filter(|e| e.event == AuditEventType::RunEnded)
    {
        if let Ok(end) = serde_json::from_value::<RunEnd>(e.detail) {
            ended.insert(e.run_id, (e.at, end));
        }
    }
    let until = ended.get(run_id).map(|(at, _)| *at).or_else(|| events.iter().map(|e| e.at).max());
    let mut runs: Vec<(String, DateTime<Utc>, RunEnd)> = ended
        .into_iter()
        .map(|(id, (at, end))| (id, at, end))
        .filter(|(_, at, _)| until.is_none_or(|u| *at <= u))
        .collect();
    runs.sort_by_key(|(_, at, _)| *at);
    let skip = runs.len().saturating_sub(last_runs.max(1));
    let runs: Vec<_> = runs.into_iter().skip(skip).collect();
    let mode = runs.iter().find(|(id, _, _)| id == run_id).map(|(_, _, end)| end.mode);
    Ok(ReportInput { run_id: run_id.to_owned(), mode, generated_at: now, rows, first_flagged, trails, runs })
}

/// The page's headline figures (each resource counted once, as everywhere).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub findings: usize,
    pub resources: usize,
    pub all: Totals,
    pub saved: Usd,
    pub possible: Usd,
}

/// Each resource is in one place: saved when any of its findings was remediated, still
/// possible when none of them is resolved; so saved + possible never exceeds found.
pub fn figures(rows: &[FindingRow]) -> Figures {
    let mut by_resource: BTreeMap<&str, Vec<&FindingRow>> = BTreeMap::new();
    for r in rows {
        by_resource.entry(r.key.as_str()).or_default().push(r);
    }
    let of = |keep: &dyn Fn(&[&FindingRow]) -> bool| {
        totals_of(
            by_resource
                .values()
                .filter(|findings| keep(findings))
                .flat_map(|findings| findings.iter().map(|r| (r.key.as_str(), r.cost.as_ref()))),
        )
    };
    Figures {
        findings: rows.len(),
        resources: by_resource.len(),
        all: of(&|_| true),
        saved: of(&|f| f.iter().any(|r| r.outcome == AuditEventType::Remediated)).monthly_savings,
        possible: of(&|f| !f.iter().any(|r| resolved(r.outcome))).monthly_savings,
    }
}

pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart, one bar a label, as inline SVG.
fn bars(title: &str, id: &str, items: &[(String, f64)], value: impl Fn(f64) -> String) -> String {
    const ROW: usize = 22;
    const LABEL: usize = 230;
    const BAR: f64 = 300.0;
    let max = items.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let height = ROW * items.len().max(1) + 8;
    let mut svg = format!(
        "<figure id=\"{id}\"><figcaption>{}</figcaption><svg role=\"img\" aria-label=\"{}\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        esc(title),
        esc(title),
        LABEL + 380,
        LABEL + 380
    );
    if items.is_empty() {
        svg.push_str("<text x=\"0\" y=\"16\" class=\"muted\">nothing</text>");
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let y = i * ROW + 4;
        let width = if max > 0.0 { (v / max * BAR).max(1.0) } else { 1.0 };
        let _ = write!(
            svg,
            "<g data-label=\"{label}\" data-value=\"{v}\"><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{width:.1}\" height=\"{h}\" rx=\"2\"></rect>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{shown}</text></g>",
            label = esc(label),
            tx = LABEL - 8,
            ty = y + 13,
            h = ROW - 6,
            vx = LABEL as f64 + width + 6.0,
            shown = esc(&value(*v)),
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn counted<'a>(rows: &'a [FindingRow], by: impl Fn(&'a FindingRow) -> String) -> Vec<(String, f64)> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        *counts.entry(by(r)).or_default() += 1.0;
    }
    let mut items: Vec<(String, f64)> = counts.into_iter().collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items
}

fn tile(id: &str, label: &str, value: &str, shown: &str) -> String {
    format!(
        "<div class=\"tile\" id=\"{id}\" data-value=\"{}\"><div class=\"figure\">{}</div><div class=\"label\">{}</div></div>",
        esc(value),
        esc(shown),
        esc(label)
    )
}

fn money_cell(usd: Option<Usd>) -> String {
    usd.map(|u| u.to_string()).unwrap_or_else(|| "–".into())
}

/// The page.
pub fn render(input: &ReportInput) -> String {
    let f = figures(&input.rows);
    let mode = input.mode.map(|m| m.to_string()).unwrap_or_else(|| "run".into());
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Cloud Janitor report: {run}</title><style>{STYLE}</style></head><body>\
         <header><h1>Cloud Janitor</h1><p>Run <code id=\"run-id\">{run}</code> ({mode}), report made {at}</p></header>",
        run = esc(&input.run_id),
        mode = esc(&mode),
        at = input.generated_at.format("%Y-%m-%d %H:%M UTC"),
    );
    html.push_str("<section class=\"tiles\">");
    html.push_str(&tile(
        "savings-found",
        "a month: savings found (what the findings' actions save)",
        &format!("{:.2}", f.all.monthly_savings.value()),
        &f.all.monthly_savings.to_string(),
    ));
    html.push_str(&tile(
        "savings-saved",
        "a month: saved by this run",
        &format!("{:.2}", f.saved.value()),
        &f.saved.to_string(),
    ));
    html.push_str(&tile(
        "savings-possible",
        "a month: still possible (not resolved)",
        &format!("{:.2}", f.possible.value()),
        &f.possible.to_string(),
    ));
    html.push_str(&tile("findings", "findings", &f.findings.to_string(), &f.findings.to_string()));
    html.push_str(&tile("resources", "resources", &f.resources.to_string(), &f.resources.to_string()));
    html.push_str(&tile(
        "cost-flagged",
        "a month: what the flagged resources cost",
        &format!("{:.2}", f.all.monthly_cost.value()),
        &f.all.monthly_cost.to_string(),
    ));
    html.push_str(&tile("unpriced", "resources not priced", &f.all.unpriced.to_string(), &f.all.unpriced.to_string()));
    html.push_str("</section><section class=\"charts\">");
    let count = |v: f64| format!("{v:.0}");
    html.push_str(&bars(
        "Findings by rule",
        "by-rule",
        &counted(&input.rows, |r| r.policy.map(|p| p.to_string()).unwrap_or_default()),
        count,
    ));
    html.push_str(&bars("Findings by account", "by-account", &counted(&input.rows, |r| r.account.clone()), count));
    html.push_str(&bars("Findings by region", "by-region", &counted(&input.rows, |r| r.region.clone()), count));
    html.push_str(&bars(
        "Findings by owner",
        "by-owner",
        &counted(&input.rows, |r| r.owner.clone().unwrap_or_else(|| "(no owner)".into())),
        count,
    ));
    let short = |id: &str| id.chars().take(24).collect::<String>();
    let found: Vec<(String, f64)> =
        input.runs.iter().map(|(id, _, end)| (short(id), end.totals.found as f64)).collect();
    let savings: Vec<(String, f64)> = input
        .runs
        .iter()
        .map(|(id, _, end)| (short(id), (end.totals.savings_found.value() * 100.0).round() / 100.0))
        .collect();
    html.push_str(&bars("Findings per run (last runs)", "trend-found", &found, count));
    html.push_str(&bars("Savings found per run (USD a month)", "trend-savings", &savings, |v| {
        Usd::cents(v).to_string()
    }));
    html.push_str("</section>");

    let index: HashMap<&str, usize> = input.trails.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let link = |key: &str| match index.get(key) {
        Some(i) => format!("<a href=\"#trail-{i}\">trail</a>"),
        None => String::new(),
    };
    let first = |r: &FindingRow| {
        input.first_flagged.get(&(r.key.clone(), r.policy.map(|p| p.to_string()).unwrap_or_default())).copied()
    };
    let mut open: Vec<&FindingRow> = input.rows.iter().filter(|r| !resolved(r.outcome)).collect();
    open.sort_by_key(|r| (first(r).unwrap_or(r.found_at), r.key.clone()));
    html.push_str("<section><h2>Oldest unresolved findings</h2><table id=\"oldest\"><thead><tr><th>first flagged</th><th>resource</th><th>rule</th><th>owner</th><th>saves a month</th><th>last event</th><th></th></tr></thead><tbody>");
    for r in open.iter().take(10) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            first(r).unwrap_or(r.found_at).format("%Y-%m-%d"),
            esc(&r.key),
            esc(&r.policy.map(|p| p.to_string()).unwrap_or_default()),
            esc(r.owner.as_deref().unwrap_or("–")),
            money_cell(r.cost.as_ref().filter(|c| c.monthly_cost.is_some()).map(|c| c.monthly_savings)),
            r.outcome.as_str(),
            link(&r.key)
        );
    }
    html.push_str("</tbody></table></section>");

    html.push_str("<section><h2>Every finding</h2><table id=\"findings-table\"><thead><tr><th>resource</th><th>rule</th><th>reason</th><th>owner</th><th>action</th><th>cost a month</th><th>saves a month</th><th>last event</th><th></th></tr></thead><tbody>");
    for r in &input.rows {
        let cost = r.cost.as_ref();
        let _ = write!(
            html,
            "<tr data-key=\"{key}\"><td><code>{key}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\" title=\"{basis}\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.policy.map(|p| p.to_string()).unwrap_or_default()),
            esc(&r.reason),
            esc(r.owner.as_deref().unwrap_or("–")),
            esc(r.action.as_deref().unwrap_or("–")),
            money_cell(cost.and_then(|c| c.monthly_cost)),
            money_cell(cost.filter(|c| c.monthly_cost.is_some()).map(|c| c.monthly_savings)),
            r.outcome.as_str(),
            link(&r.key),
            key = esc(&r.key),
            basis = esc(cost.map(|c| c.basis.as_str()).unwrap_or("not priced")),
        );
    }
    html.push_str("</tbody></table></section><section><h2>Audit trails in this run</h2>");
    for (i, (key, events)) in input.trails.iter().enumerate() {
        let _ = write!(html, "<details id=\"trail-{i}\"><summary><code>{}</code></summary><table><tbody>", esc(key));
        for e in events {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.event.as_str(),
                esc(&e.actor),
                esc(&e.policy.map(|p| p.to_string()).unwrap_or_default()),
                esc(&e.detail.to_string())
            );
        }
        html.push_str("</tbody></table></details>");
    }
    html.push_str("</section><footer>Savings count each resource once. Prices: each finding's basis (hover a cost).</footer></body></html>\n");
    html
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2433;background:#fff}\
h1{margin:0 0 4px;font-size:24px}h2{font-size:18px;margin:28px 0 8px}header p{margin:0;color:#555}\
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:20px 0}.tile{border:1px solid #d8dde6;border-radius:8px;padding:12px 16px;min-width:150px}\
.tile .figure{font-size:26px;font-weight:600}.tile .label{color:#555;font-size:12px}\
#savings-found .figure,#savings-saved .figure,#savings-possible .figure{color:#0b7a3e}\
.charts{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}\
svg text{font-size:12px;fill:#1d2433}svg rect{fill:#3b6fd8}.muted{fill:#888}\
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #e5e8ee;padding:4px 8px;text-align:left;vertical-align:top}\
td.num{text-align:right;white-space:nowrap}code{font-size:12px}details{margin:4px 0}summary{cursor:pointer}\
footer{margin-top:24px;color:#777;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::Cost;

    fn row(key: &str, outcome: AuditEventType, saves: f64) -> FindingRow {
        let k = ResourceKey::parse(key).unwrap();
        FindingRow {
            key: key.into(),
            account: k.account().into(),
            region: k.region().into(),
            kind: k.kind().to_string(),
            id: k.id().into(),
            policy: Some(crate::model::RuleId::Ec2IdleCpu),
            reason: "idle <script>".into(),
            evidence: serde_json::Value::Null,
            owner: Some("alice@example.com".into()),
            action: Some("stop-instance".into()),
            cost: Some(Cost {
                monthly_cost: Some(Usd::cents(saves)),
                monthly_savings: Usd::cents(saves),
                basis: "b".into(),
            }),
            found_at: Utc::now(),
            outcome,
            outcome_at: Utc::now(),
        }
    }

    #[test]
    fn the_headline_counts_each_resource_once_and_splits_saved_from_possible() {
        let rows = vec![
            row("1/us-east-1/ec2-instance/i-1", AuditEventType::Remediated, 7.59),
            row("1/us-east-1/ec2-instance/i-2", AuditEventType::Snoozed, 60.74),
            row("1/us-east-1/ec2-instance/i-3", AuditEventType::Cleared, 10.0),
        ];
        let f = figures(&rows);
        assert_eq!((f.findings, f.resources), (3, 3));
        assert_eq!(f.all.monthly_savings.to_string(), "$78.33");
        assert_eq!((f.saved.to_string(), f.possible.to_string()), ("$7.59".into(), "$60.74".into()));
        let input = ReportInput {
            run_id: "r<1>".into(),
            mode: Some(Mode::Enforce),
            generated_at: Utc::now(),
            rows,
            first_flagged: HashMap::new(),
            trails: BTreeMap::new(),
            runs: Vec::new(),
        };
        let html = render(&input);
        assert!(html.contains("id=\"savings-saved\" data-value=\"7.59\""), "{html}");
        assert!(html.contains("r&lt;1&gt;") && !html.contains("<script>"), "text is escaped");
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing is fetched");
    }

    #[test]
    fn a_resource_is_saved_or_still_possible_never_both() {
        let mut open = row("1/us-east-1/ec2-instance/i-1", AuditEventType::Notified, 7.59);
        open.policy = Some(crate::model::RuleId::Ec2MissingMonitoring);
        let rows = vec![row("1/us-east-1/ec2-instance/i-1", AuditEventType::Remediated, 7.59), open];
        let f = figures(&rows);
        assert_eq!((f.findings, f.resources), (2, 1));
        assert_eq!(f.all.monthly_savings.to_string(), "$7.59");
        assert_eq!((f.saved.to_string(), f.possible.to_string()), ("$7.59".into(), "$0.00".into()));
    }
}
