//! What the Lambda functions run: the steps of [`crate::step`] with each scope's findings and
//! candidates kept in the run store ([`crate::runstore`]) instead of the state machine's
//! payload, and the run-level steps of the state machine (notify across every scope, the
//! summary). Every input and output here is small whatever the estate's size.

use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Deps;
use crate::error::JanitorError;
use crate::model::{CaughtError, RunContext, Scope, ScopeFailure, ScopeStatus, StepPayload, Tally};
use crate::ports::PublishedReport;
use crate::runstore::{self, Stage};
use crate::step::{DiscoveryEvent, LockEvent, RunPlan, RunRequest, ScopeItem, StepResult, parse, tagged, to_json};
use crate::{emf, lock, metrics, notify, recheck, remediate};

/// Documents read or written at once by the run-level steps.
const STORE_CONCURRENCY: usize = 16;
/// Scopes listed in the execution's output (non-OK first); all of them are in the summary
/// document. Keeps the output, and the Cause of a failed run, far below their limits.
pub const SCOPES_LISTED: usize = 60;

/// The run as the top level of the state machine carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    pub run: RunContext,
    pub scopes: Vec<ScopeItem>,
    #[serde(default)]
    pub failures: Vec<ScopeFailure>,
    /// Findings notified (after notify): what the `anyone-notified` Choice reads.
    #[serde(default)]
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ends: Option<String>,
    /// What each item of the detect Map ended with: `{}`, or the scope whose failure could
    /// not even be recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detected: Vec<Value>,
    /// Same for the Map after the grace period (or the one releasing every scope).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acted: Vec<Value>,
    /// What the Catch of the run-level notify caught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeSummary {
    pub scope: Scope,
    pub status: ScopeStatus,
    pub tally: Tally,
}

/// The execution's output (and, when not every scope is OK, its failure's Cause).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: RunContext,
    pub plan_failures: Vec<ScopeFailure>,
    pub scope_count: usize,
    /// Up to [`SCOPES_LISTED`] scopes, those not OK first.
    pub scopes: Vec<ScopeSummary>,
    pub scopes_not_listed: usize,
    pub totals: Tally,
    pub failed: bool,
    pub incomplete: bool,
    /// Where the whole summary is kept.
    pub document: String,
    /// Where the run's report page was written (none: see the run-level alert and the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

async fn finish(deps: &Deps, payload: StepPayload, stage: Stage) -> StepResult {
    to_json(&runstore::save(deps, payload, stage).await?)
}

/// The scope's full payload as `stage` stored it, with what the state machine added (a
/// caught error).
async fn load_after(deps: &Deps, slim: StepPayload, stage: Stage) -> Result<StepPayload, JanitorError> {
    let scope = slim.run.scope()?.clone();
    let mut full = runstore::load(deps, &slim.run.id, &scope, stage).await?.ok_or_else(|| {
        JanitorError::InvalidInput(format!("run {} has no {} document for {scope}", slim.run.id, stage.as_str()))
    })?;
    full.error = slim.error;
    Ok(full)
}

/// The discovery function: [`plan`] or [`scan`] ([`DiscoveryEvent`]).
pub async fn discovery(deps: &Deps, input: Value) -> StepResult {
    match DiscoveryEvent::parse(input)? {
        DiscoveryEvent::Plan(request) => to_json(&plan(deps, request).await?),
        DiscoveryEvent::Scan(item) => scan(deps, item).await,
    }
}

/// The run's scopes, kept in the run store too.
pub async fn plan(deps: &Deps, request: RunRequest) -> Result<RunPlan, JanitorError> {
    let plan = crate::step::plan(deps, request).await?;
    runstore::put_json(deps, &runstore::plan_path(&plan.run.id), &plan).await?;
    Ok(plan)
}

/// One scope's scan, its findings and candidates kept in the run store.
pub async fn scan(deps: &Deps, item: ScopeItem) -> StepResult {
    let payload = crate::step::scan(deps, &item).await?;
    finish(deps, payload, Stage::Discovery).await
}

pub async fn metric_check(deps: &Deps, input: Value) -> StepResult {
    let slim: StepPayload = parse("metric-check", input)?;
    let payload = load_after(deps, slim, Stage::Discovery).await?;
    let checked = metrics::check_candidates(deps, payload).await?;
    let documents = emf::scope_found(&checked, deps.clock.now());
    let stored = finish(deps, checked, Stage::MetricCheck).await?;
    // Once stored: a step retried after a failed save must not count its findings twice.
    documents.iter().for_each(emf::Document::emit);
    Ok(stored)
}

/// The lock function: a scope's locks, the Catch path's [`release`], or the run's
/// [`summarize`] (the run's bookkeeping: it needs no Slack, so a broken Slack set-up cannot
/// keep a run from saying how it ended).
pub async fn lock(deps: &Deps, input: Value) -> StepResult {
    if let Some(state) = tagged(&input, "summarize") {
        return to_json(&summarize(deps, parse("summarize", state)?).await?);
    }
    match LockEvent::parse(input)? {
        LockEvent::Lock(slim) => {
            let payload = load_after(deps, slim, Stage::MetricCheck).await?;
            finish(deps, lock::lock_findings(deps, payload).await?, Stage::Lock).await
        }
        LockEvent::Release(slim) => release(deps, slim).await,
    }
}

/// The Catch path of a scope: records the failure and releases what the scope's last stored
/// stage holds.
pub async fn release(deps: &Deps, slim: StepPayload) -> StepResult {
    let scope = slim.run.scope()?.clone();
    // What the scope held when it failed: its last stored stage, else its latest document.
    let stored = match slim.stage {
        Some(stage) => runstore::load(deps, &slim.run.id, &scope, stage).await?,
        None => None,
    };
    let stored = match stored {
        Some(p) => Some(p),
        None if slim.stage.is_some() => runstore::load_latest(deps, &slim.run.id, &scope).await?,
        None => None,
    };
    let payload = match stored {
        Some(full) => StepPayload { error: slim.error, ..full },
        None => slim,
    };
    finish(deps, lock::release_failed_scope(deps, payload).await?, Stage::Released).await
}

/// Every scope's payload as it left the detect Map: locked, or released after a failure.
async fn detected_payloads(deps: &Deps, state: &RunState) -> Result<Vec<StepPayload>, JanitorError> {
    stream::iter(state.scopes.clone())
        .map(|item| async move {
            let scope = item.run.scope()?.clone();
            for stage in [Stage::Lock, Stage::Released] {
                if let Some(payload) = runstore::load(deps, &item.run.id, &scope, stage).await? {
                    return Ok(payload);
                }
            }
            // Not even the failure was recorded: the scope is failed, and nothing in it goes on.
            let mut payload = StepPayload::new(item.run.clone());
            payload.error = Some(CaughtError {
                error: "Janitor.Unrecorded".into(),
                cause: "no record of the scope's detection".into(),
            });
            payload.recount();
            Ok(payload)
        })
        .buffered(STORE_CONCURRENCY)
        .try_collect()
        .await
}

/// `notify`, once per run: one digest per owner across every scope.
pub async fn notify(deps: &Deps, input: Value) -> StepResult {
    let mut state: RunState = parse("notify", input)?;
    let payloads = detected_payloads(deps, &state).await?;
    let notified = notify::notify_run(deps, payloads).await?;
    state.count = notified.iter().map(|p| p.count).sum();
    let told = notified.iter().map(|p| p.tally.notified).sum();
    state.grace_ends = notified.iter().find_map(|p| p.grace_ends.clone());
    stream::iter(notified)
        .map(|payload| runstore::save(deps, payload, Stage::Notify))
        .buffer_unordered(STORE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    emf::count(&state.run.id, deps.clock.now(), emf::Metric::Notified, told).emit();
    to_json(&state)
}

/// The mode of a function no run starts (onboard): `JANITOR_MODE`, the stack's `Mode`;
/// dry-run when unset.
pub fn mode_from_env() -> Result<crate::model::Mode, JanitorError> {
    match std::env::var("JANITOR_MODE") {
        Ok(text) if !text.trim().is_empty() => serde_json::from_value(Value::String(text.trim().to_owned()))
            .map_err(|_| JanitorError::Config(format!("JANITOR_MODE: `{text}` is neither dry-run nor enforce"))),
        _ => Ok(crate::model::Mode::DryRun),
    }
}

/// The onboard function: one CloudTrail event, judged and told (see [`crate::onboard`]).
pub async fn onboard(deps: &Deps, mode: crate::model::Mode, input: Value) -> StepResult {
    let event = crate::onboard::CloudTrailEvent::parse(input)?;
    to_json(&crate::onboard::onboard(deps, mode, &event).await?)
}

/// After the grace period: the scope's notified findings again, with fresh reads. A scope
/// with nothing notified is passed on without a scan.
pub async fn recheck(deps: &Deps, input: Value) -> StepResult {
    let slim: StepPayload = parse("recheck", input)?;
    let payload = load_after(deps, slim, Stage::Notify).await?;
    if payload.findings.is_empty() || payload.error.is_some() {
        return finish(deps, payload, Stage::Recheck).await;
    }
    finish(deps, recheck::recheck(deps, payload).await?, Stage::Recheck).await
}

pub async fn remediate(deps: &Deps, input: Value) -> StepResult {
    let slim: StepPayload = parse("remediate", input)?;
    let payload = load_after(deps, slim, Stage::Recheck).await?;
    let acted = remediate::remediate(deps, payload).await?;
    let document = emf::scope_acted(&acted, deps.clock.now());
    let stored = finish(deps, acted, Stage::Remediate).await?;
    document.emit();
    Ok(stored)
}

/// The run's summary from every scope's latest document and what the Maps reported.
pub async fn summarize(deps: &Deps, state: RunState) -> Result<RunSummary, JanitorError> {
    let unrecorded: Vec<Scope> = state
        .detected
        .iter()
        .chain(&state.acted)
        .filter_map(|v| v.get("scope").and_then(|s| serde_json::from_value(s.clone()).ok()))
        .collect();
    let mut scopes: Vec<ScopeSummary> = stream::iter(state.scopes.clone())
        .map(|item| async move {
            let scope = item.run.scope()?.clone();
            Ok::<_, JanitorError>(match runstore::load_latest(deps, &item.run.id, &scope).await? {
                Some(p) => ScopeSummary { scope, status: p.tally.status, tally: p.tally },
                // Every scope leaves a document; none means not even its failure was recorded.
                None => {
                    let tally = Tally { status: ScopeStatus::Failed, problems: 1, ..Tally::default() };
                    ScopeSummary { scope, status: ScopeStatus::Failed, tally }
                }
            })
        })
        .buffered(STORE_CONCURRENCY)
        .try_collect()
        .await?;
    for summary in &mut scopes {
        if unrecorded.contains(&summary.scope) {
            summary.status = ScopeStatus::Failed;
            summary.tally.status = ScopeStatus::Failed;
        }
    }
    if state.error.is_some() {
        // Notify itself failed: every scope was released unnotified by the release Map.
        for summary in &mut scopes {
            summary.status = ScopeStatus::Failed;
        }
    }
    let mut totals = Tally::default();
    for s in &scopes {
        totals.add(&s.tally);
    }
    let failed = scopes.iter().any(|s| s.status == ScopeStatus::Failed);
    let incomplete = !state.failures.is_empty() || scopes.iter().any(|s| s.status == ScopeStatus::Incomplete);
    totals.status = if failed {
        ScopeStatus::Failed
    } else if incomplete {
        ScopeStatus::Incomplete
    } else {
        ScopeStatus::Ok
    };
    let document = runstore::summary_path(&state.run.id);
    let mut summary = RunSummary {
        run: state.run,
        plan_failures: state.failures,
        scope_count: scopes.len(),
        scopes,
        scopes_not_listed: 0,
        totals,
        failed,
        incomplete,
        document,
        report: None,
    };
    runstore::put_json(deps, &summary.document, &summary).await?;
    let failed_scopes = summary.scopes.iter().filter(|s| s.status == ScopeStatus::Failed).count();
    let incomplete_scopes = summary.scopes.iter().filter(|s| s.status == ScopeStatus::Incomplete).count();
    let now = deps.clock.now();
    let ended = crate::audit::RunEnd {
        mode: summary.run.mode,
        started_at: summary.run.started_at,
        status: summary.totals.status,
        scopes: summary.scope_count,
        totals: summary.totals.clone(),
    };
    // The run's own row, for the report's trend. The summary document already holds the
    // run's end, so a failed write is said, not a failed run.
    if let Err(e) = deps.audit.record(&[ended.event(&summary.run.id, now, "summary")]).await {
        tracing::warn!(error = e.error_name(), message = %e, "the run's RUN_ENDED row could not be written");
    }
    // The run's chains sealed as they stand, after its own last row.
    match deps.audit.anchor_run(&summary.run.id, now).await {
        Ok(Some(anchor)) => {
            tracing::info!(digest = %anchor.digest, chains = anchor.heads.len(), "run anchored");
            // Kept where the table's writers cannot reach; a copy missed is what `janitor
            // audit verify --anchor-bucket` reports, so it cannot go unseen.
            if let Some(copies) = &deps.anchor_copies
                && let Err(e) = copies.keep(&anchor).await
            {
                tracing::warn!(error = e.error_name(), message = %e, "the run's anchor could not be copied");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = e.error_name(), message = %e, "the run's anchor could not be written"),
    }
    emf::run_ended(&summary.run, now, failed_scopes, incomplete_scopes).emit();
    // The page and the alert that links to it come last and cannot fail the run: its record
    // is the audit table and the summary document, both written above.
    let report = publish_report(deps, &summary.run.id, now).await;
    match &report {
        Ok(published) => summary.report = Some(published.location.clone()),
        Err(e) => tracing::warn!(error = e.error_name(), message = %e, "the run's report page could not be written"),
    }
    let subject = format!("Cloud Janitor run {} ended", summary.run.id);
    if let Err(e) = deps.alerts.publish(&subject, &run_message(&summary, report.as_ref())).await {
        tracing::warn!(error = e.error_name(), message = %e, "the run's summary alert could not be published");
    }
    if summary.scopes.len() > SCOPES_LISTED {
        summary.scopes.sort_by_key(|s| s.status == ScopeStatus::Ok);
        summary.scopes_not_listed = summary.scopes.len() - SCOPES_LISTED;
        summary.scopes.truncate(SCOPES_LISTED);
    }
    Ok(summary)
}

/// How many runs the report page's trend shows.
pub const REPORT_TREND_RUNS: usize = 14;

/// The run's report page, from the audit table, kept where people can open it.
async fn publish_report(
    deps: &Deps,
    run_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<PublishedReport, JanitorError> {
    let input = crate::report_page::gather(deps.audit.as_ref(), run_id, REPORT_TREND_RUNS, now).await?;
    deps.reports.publish(run_id, crate::report_page::render(&input).into_bytes()).await
}

/// The run-level alert (Amazon Q Developer's custom notification): how the run ended, what
/// its findings cost and save, and the link to its report page.
pub fn run_message(summary: &RunSummary, report: Result<&PublishedReport, &JanitorError>) -> Value {
    let t = &summary.totals;
    let (verb, savings) = match summary.run.mode {
        crate::model::Mode::DryRun => ("would save", t.savings_would),
        crate::model::Mode::Enforce => ("saved", t.savings_made),
    };
    let status = if summary.failed {
        "FAILED"
    } else if summary.incomplete {
        "INCOMPLETE"
    } else {
        "OK"
    };
    let title =
        format!(":bar_chart: Cloud Janitor {} run: {} finding(s), {verb} {savings}/month", summary.run.mode, t.found);
    let description = format!(
        "*Run* `{}` ({}) ended {status}: {} scope(s), {} finding(s), {} notified, {} snoozed, {} remediated, \
         {} would be remediated, {} failed. Findings' actions would save {}/month; {verb} {savings}/month.",
        summary.run.id,
        summary.run.mode,
        summary.scope_count,
        t.found,
        t.notified,
        t.snoozed,
        t.remediated,
        t.would_remediate,
        t.failed,
        t.savings_found,
    );
    let next = match report {
        // A bare link: Slack and Teams (Amazon Q renders each in its own markdown) both make
        // it clickable.
        Ok(published) => format!(
            "Open the report: {} (the link works for up to {} days; {} keeps the page)",
            published.link,
            crate::ports::REPORT_LINK_DAYS,
            published.location
        ),
        Err(e) => format!("The report page could not be written: {e}"),
    };
    let mut message = crate::ports::alert_message(
        &summary.run,
        format!("{}-summary", summary.run.id),
        title,
        description,
        "RunEnded",
        &[],
    );
    message["content"]["nextSteps"] = serde_json::json!([next]);
    message
}
