//! The handlers' single entry points: JSON in, JSON out, typed errors with stable names.
//! Each Lambda's `main` calls exactly one of these.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Deps;
use crate::error::JanitorError;
use crate::model::{Mode, RunContext, ScopeFailure, StepPayload};
use crate::{discovery, lock, metrics, notify, recheck, remediate};

/// A handler failure as Lambda reports it: `errorType` is the stable name ASL matches.
#[derive(Debug)]
pub struct StepError(pub JanitorError);

impl From<JanitorError> for StepError {
    fn from(e: JanitorError) -> Self {
        StepError(e)
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<StepError> for lambda_runtime::Diagnostic {
    fn from(e: StepError) -> Self {
        lambda_runtime::Diagnostic { error_type: e.0.error_name().to_owned(), error_message: e.0.to_string() }
    }
}

pub(crate) type StepResult = Result<Value, StepError>;

/// What starts a run: the schedule, a manual execution, or the CLI.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    /// Defaults to a fresh id; the state machine passes its execution name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl RunRequest {
    pub fn validate(&self) -> Result<(), JanitorError> {
        for region in self.regions.iter().flatten() {
            let ok = region.len() <= 32
                && region.split('-').count() >= 3
                && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(JanitorError::InvalidInput(format!("regions: `{region}` is not an AWS region name")));
            }
        }
        for account in self.accounts.iter().flatten() {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return Err(JanitorError::InvalidInput(format!("accounts: `{account}` is not a 12-digit account id")));
            }
        }
        if let Some(id) = &self.run_id
            && (id.is_empty() || id.len() > 80 || id.contains('#') || id.contains('/'))
        {
            return Err(JanitorError::InvalidInput(format!(
                "run_id: `{id}` must be 1-80 characters without `#` or `/`"
            )));
        }
        Ok(())
    }

    pub fn run_context(&self) -> RunContext {
        let id = self.run_id.clone().unwrap_or_else(new_run_id);
        RunContext { id, mode: self.mode, scope: None, started_at: None }
    }
}

/// A run id (an execution name, or `janitor run --run-id`) must be new: one already in the
/// audit table would share that run's locks, action cap, documents and decisions.
pub async fn refuse_reused_run_id(audit: &dyn crate::ports::AuditLog, id: &str) -> Result<(), JanitorError> {
    if audit.events_for_run(id).await?.is_empty() {
        Ok(())
    } else {
        Err(JanitorError::InvalidInput(format!(
            "run_id: `{id}` was already used (the audit table has its rows); a run id names one run only"
        )))
    }
}

pub fn new_run_id() -> String {
    let short = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%SZ"), &short[..8])
}

/// The state machine's plan input: the execution input as given, and the execution name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    pub request: Value,
    pub execution: String,
}

impl PlanInput {
    pub(crate) fn into_request(self) -> Result<RunRequest, JanitorError> {
        if !self.request.is_object() {
            return Err(JanitorError::InvalidInput(format!(
                "execution input: expected a JSON object like {{\"mode\": \"dry-run\"}}, got {}",
                kind_of(&self.request)
            )));
        }
        let mut request: RunRequest = serde_json::from_value(self.request)
            .map_err(|e| JanitorError::InvalidInput(format!("execution input: {e}")))?;
        // The run id keys locks, the action cap and the run store: two executions must never
        // share one, so it is the execution's own name (unique per state machine in AWS).
        if let Some(given) = request.run_id.as_deref()
            && given != self.execution
        {
            return Err(JanitorError::InvalidInput(format!(
                "run_id: `{given}` is not this execution's name `{}`; the run id is the execution name \
                 (start the execution with that name instead)",
                self.execution
            )));
        }
        request.run_id = Some(self.execution);
        Ok(request)
    }
}

/// One Map item: a run narrowed to one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeItem {
    pub run: RunContext,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run: RunContext,
    pub scopes: Vec<ScopeItem>,
    /// Always present: the state machine's summary reads it.
    #[serde(default)]
    pub failures: Vec<ScopeFailure>,
    pub count: usize,
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(step: &str, input: Value) -> Result<T, JanitorError> {
    if !input.is_object() {
        return Err(JanitorError::InvalidInput(format!("{step}: expected a JSON object, got {}", kind_of(&input))));
    }
    serde_json::from_value(input).map_err(|e| JanitorError::InvalidInput(format!("{step}: {e}")))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> StepResult {
    serde_json::to_value(value).map_err(|e| StepError(JanitorError::InvalidInput(format!("cannot encode output: {e}"))))
}

/// Turns a run request into the list of scopes the Map state fans out over.
pub async fn plan(deps: &Deps, request: RunRequest) -> Result<RunPlan, JanitorError> {
    request.validate()?;
    // Step Functions keeps execution names unique for 90 days only, the audit table for
    // ever: a run id seen before would inherit that run's decisions, so it is refused.
    if let Some(id) = &request.run_id {
        refuse_reused_run_id(deps.audit.as_ref(), id).await?;
    }
    let run = RunContext { started_at: Some(deps.clock.now()), ..request.run_context() };
    let (scopes, failures) =
        discovery::plan_scopes(deps, request.accounts.as_deref(), request.regions.as_deref()).await?;
    let scopes: Vec<ScopeItem> =
        scopes.into_iter().map(|scope| ScopeItem { run: RunContext { scope: Some(scope), ..run.clone() } }).collect();
    Ok(RunPlan { count: scopes.len(), run, scopes, failures })
}

/// What the discovery function is asked: the plan of a run, or one scope's scan.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryEvent {
    /// `{"plan": {"request": <execution input>, "execution": <execution name>}}` from the
    /// state machine's first state; a bare run request (`{"mode": …}`) from a person.
    Plan(RunRequest),
    /// One item of the detect Map: `{"run": {id, mode, scope}}`.
    Scan(ScopeItem),
}

impl DiscoveryEvent {
    pub fn parse(input: Value) -> Result<DiscoveryEvent, JanitorError> {
        if let Some(plan) = tagged(&input, "plan") {
            return Ok(DiscoveryEvent::Plan(parse::<PlanInput>("plan", plan)?.into_request()?));
        }
        if input.get("run").is_some() {
            return Ok(DiscoveryEvent::Scan(parse("discovery", input)?));
        }
        Ok(DiscoveryEvent::Plan(parse("plan", input)?))
    }
}

/// What the lock function is asked for one scope: its locks, or (the state machine's Catch
/// path, `{"release": <the failed step's input with its caught error>}`) their release.
#[derive(Debug, Clone, PartialEq)]
pub enum LockEvent {
    Lock(StepPayload),
    Release(StepPayload),
}

impl LockEvent {
    pub fn parse(input: Value) -> Result<LockEvent, JanitorError> {
        if let Some(caught) = tagged(&input, "release") {
            let payload: StepPayload = parse("release", caught)?;
            payload.run.scope()?;
            if payload.error.is_none() {
                return Err(JanitorError::InvalidInput("release: needs the caught error at `error`".into()));
            }
            return Ok(LockEvent::Release(payload));
        }
        let payload: StepPayload = parse("lock", input)?;
        payload.run.scope()?;
        if payload.error.is_some() {
            // Explicit, so a failed scope is never mistaken for one to lock (or the reverse).
            return Err(JanitorError::InvalidInput(
                "lock: the payload carries a caught error; send it as {\"release\": …}".into(),
            ));
        }
        Ok(LockEvent::Lock(payload))
    }
}

/// The body of `{"<tag>": body}`: an object with that one key.
pub(crate) fn tagged(input: &Value, tag: &str) -> Option<Value> {
    match input.as_object() {
        Some(map) if map.len() == 1 => map.get(tag).cloned(),
        _ => None,
    }
}

/// `discovery`: a plan ([`DiscoveryEvent::Plan`]) or one scope's findings and candidates.
pub async fn discovery(deps: &Deps, input: Value) -> StepResult {
    match DiscoveryEvent::parse(input)? {
        DiscoveryEvent::Plan(request) => to_json(&plan(deps, request).await?),
        DiscoveryEvent::Scan(item) => to_json(&scan(deps, &item).await?),
    }
}

/// One scope's findings and candidates.
pub async fn scan(deps: &Deps, item: &ScopeItem) -> Result<StepPayload, JanitorError> {
    let payload = discovery::discover_scope(deps, &item.run).await?;
    // A throttled or timed-out listing must be retried by the state machine, not skipped.
    JanitorError::retry_if_transient("discovery", &payload.failures)?;
    Ok(payload)
}

pub async fn metric_check(deps: &Deps, input: Value) -> StepResult {
    let payload: StepPayload = parse("metric-check", input)?;
    to_json(&metrics::check_candidates(deps, payload).await?)
}

/// `lock`: a scope's locks, or their release ([`LockEvent`]).
pub async fn lock(deps: &Deps, input: Value) -> StepResult {
    match LockEvent::parse(input)? {
        LockEvent::Lock(payload) => to_json(&lock::lock_findings(deps, payload).await?),
        LockEvent::Release(payload) => to_json(&lock::release_failed_scope(deps, payload).await?),
    }
}

/// The Catch path of a scope: `{"release": …}` for [`lock`].
pub async fn release(deps: &Deps, caught: Value) -> StepResult {
    lock(deps, json!({ "release": caught })).await
}

pub async fn notify(deps: &Deps, input: Value) -> StepResult {
    let payload: StepPayload = parse("notify", input)?;
    to_json(&notify::notify(deps, payload).await?)
}

pub async fn recheck(deps: &Deps, input: Value) -> StepResult {
    let payload: StepPayload = parse("recheck", input)?;
    to_json(&recheck::recheck(deps, payload).await?)
}

pub async fn remediate(deps: &Deps, input: Value) -> StepResult {
    let payload: StepPayload = parse("remediate", input)?;
    to_json(&remediate::remediate(deps, payload).await?)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
