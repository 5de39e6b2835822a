//! The run's documents outside the Step Functions payload: each scope's full payload after
//! each step (`runs/<run>/<account>/<region>/<stage>.json`, plus `latest.json`), the plan and
//! the summary. Steps pass each other only `{run, stage, count, tally, …}`, so no estate is
//! too large for Step Functions' 256 KiB; each step reads the previous step's document, so a
//! retried step starts again from the same input.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Deps;
use crate::error::{JanitorError, Result};
use crate::model::{Scope, StepPayload};

/// The step that wrote a scope's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Discovery,
    MetricCheck,
    Lock,
    Released,
    Notify,
    Recheck,
    Remediate,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Discovery => "discovery",
            Stage::MetricCheck => "metric-check",
            Stage::Lock => "lock",
            Stage::Released => "released",
            Stage::Notify => "notify",
            Stage::Recheck => "recheck",
            Stage::Remediate => "remediate",
        }
    }
}

pub fn scope_path(run_id: &str, scope: &Scope, document: &str) -> String {
    format!("runs/{run_id}/{}/{}/{document}.json", scope.account, scope.region)
}

pub fn plan_path(run_id: &str) -> String {
    format!("runs/{run_id}/plan.json")
}

pub fn summary_path(run_id: &str) -> String {
    format!("runs/{run_id}/summary.json")
}

async fn put<T: Serialize>(deps: &Deps, path: &str, value: &T) -> Result<()> {
    let body = serde_json::to_vec(value).map_err(|e| JanitorError::InvalidInput(format!("{path}: {e}")))?;
    deps.runs.put(path, body).await
}

async fn get<T: DeserializeOwned>(deps: &Deps, path: &str) -> Result<Option<T>> {
    match deps.runs.get(path).await? {
        None => Ok(None),
        Some(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| JanitorError::InvalidInput(format!("run document {path}: {e}"))),
    }
}

pub async fn put_json<T: Serialize>(deps: &Deps, path: &str, value: &T) -> Result<()> {
    put(deps, path, value).await
}

pub async fn get_json<T: DeserializeOwned>(deps: &Deps, path: &str) -> Result<Option<T>> {
    get(deps, path).await
}

/// Stores the scope's full payload as `stage` (and as its latest), and returns what the
/// state machine carries on: the same payload without its lists.
pub async fn save(deps: &Deps, mut payload: StepPayload, stage: Stage) -> Result<StepPayload> {
    let scope = payload.run.scope()?.clone();
    payload.stage = Some(stage);
    put(deps, &scope_path(&payload.run.id, &scope, stage.as_str()), &payload).await?;
    put(deps, &scope_path(&payload.run.id, &scope, "latest"), &payload).await?;
    Ok(slim(payload))
}

pub async fn load(deps: &Deps, run_id: &str, scope: &Scope, stage: Stage) -> Result<Option<StepPayload>> {
    get(deps, &scope_path(run_id, scope, stage.as_str())).await
}

pub async fn load_latest(deps: &Deps, run_id: &str, scope: &Scope) -> Result<Option<StepPayload>> {
    get(deps, &scope_path(run_id, scope, "latest")).await
}

/// The payload as the state machine carries it: run, stage, counts, tally, grace end, error.
pub fn slim(mut payload: StepPayload) -> StepPayload {
    payload.findings.clear();
    payload.candidates.clear();
    payload.failures.clear();
    payload.held_elsewhere.clear();
    payload.outcomes.clear();
    payload
}
