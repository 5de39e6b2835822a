//! `janitor`: the command line. `scan` is read-only detection from a laptop with your own
//! AWS credentials; `run` drives the detection steps (discovery → metric-check → lock)
//! against the janitor's tables, exactly as the Lambdas do.

mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use janitor_core::aws::{self, AwsClients, DynamoAuditLog, DynamoSnoozeStore, TableNames};
use janitor_core::memory::{InMemoryLockStore, InMemorySnoozeStore, ReadOnlyAuditLog};
use janitor_core::model::{Mode, ScopeFailure, ScopeStatus, StepPayload};
use janitor_core::policy::{Policy, PolicyDuration};
use janitor_core::ports::SystemClock;
use janitor_core::step::{self, RunRequest, ScopeItem};
use janitor_core::{Deps, discovery, lock, metrics, telemetry};

use report::{Output, ScanReport};

#[derive(Parser)]
#[command(name = "janitor", version, about = "Cloud Janitor: find idle, untagged, public or insecure AWS resources")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read-only scan: discovery and the metric check. Never writes to AWS.
    Scan(ScanArgs),
    /// Detection as the state machine runs it: discovery, metric check and locks, with
    /// every decision written to the audit table. Dry-run unless --mode enforce.
    Run(RunArgs),
    /// The audit trail of one run or one resource.
    Audit(AuditArgs),
    /// Every finding of one run, with its rule's evidence and what became of it (JSON, CSV
    /// or a table), from the audit table.
    Export(ExportArgs),
    /// One run as a self-contained HTML page (no scripts, fonts or CDNs; charts as inline
    /// SVG), from the audit table: savings found, saved and still possible, findings by rule,
    /// account, region and owner, the trend across runs, the oldest unresolved findings.
    Report(ReportArgs),
    /// Owners told by email (the stack's OwnerEmailTopic): subscribe one, or list who is.
    Email(EmailArgs),
}

#[derive(Args)]
struct EmailArgs {
    #[command(subcommand)]
    action: EmailAction,
    /// The stack output OwnerEmailTopicArn.
    #[arg(long, env = "JANITOR_EMAIL_TOPIC_ARN", global = true)]
    topic: Option<String>,
    #[arg(long, env = "AWS_PROFILE", global = true)]
    profile: Option<String>,
    #[arg(long, env = "AWS_REGION", global = true)]
    region: Option<String>,
}

#[derive(Subcommand)]
enum EmailAction {
    /// Subscribes an owner, filtered to their own messages; SNS mails them a confirmation.
    Subscribe {
        /// The owner's address, as their Owner tags spell it.
        address: String,
    },
    /// Every subscription, whether confirmed, and whose mail it takes; exit code 1 when one is
    /// not one owner's own (the janitor then sends no email at all).
    List,
}

#[derive(Args)]
struct ReportArgs {
    /// The run to report.
    #[arg(long)]
    run: String,
    /// How many runs (up to this one) the trend shows.
    #[arg(long, default_value_t = 14)]
    runs: usize,
    /// Where to write the page (default: cloud-janitor-report-<run>.html).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    table: AuditTableArgs,
}

#[derive(Args)]
struct ExportArgs {
    /// The run whose findings to export.
    #[arg(long)]
    run: String,
    #[command(flatten)]
    table: AuditTableArgs,
    #[arg(long, value_enum, default_value_t = Output::Json)]
    output: Output,
}

/// Where the audit table is, and whose credentials read it.
#[derive(Args)]
struct AuditTableArgs {
    /// Required; checked when the table is opened, since `janitor audit verify` takes its
    /// own and clap would otherwise demand the parent's too.
    #[arg(long, env = "JANITOR_AUDIT_TABLE")]
    audit_table: Option<String>,
    #[arg(long, env = "AWS_PROFILE")]
    profile: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
}

impl AuditTableArgs {
    async fn open(&self) -> anyhow::Result<DynamoAuditLog> {
        Ok(self.open_with_clients().await?.0)
    }

    async fn open_with_clients(&self) -> anyhow::Result<(DynamoAuditLog, AwsClients)> {
        let table = self.audit_table.as_deref().context("give --audit-table (or set JANITOR_AUDIT_TABLE)")?;
        let clients = AwsClients::load_checked(self.profile.as_deref(), self.region.as_deref()).await?;
        Ok((DynamoAuditLog::new(clients.dynamodb(), table), clients))
    }
}

#[derive(Args)]
#[command(
    group = clap::ArgGroup::new("subject").required(true).args(["run", "resource"]),
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct AuditArgs {
    #[command(subcommand)]
    action: Option<AuditAction>,
    /// Every event of this run (the by-run index).
    #[arg(long)]
    run: Option<String>,
    /// Every event of this resource key (`account/region/kind/id`).
    #[arg(long)]
    resource: Option<String>,
    #[command(flatten)]
    table: AuditTableArgs,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Checks the audit table's hash chains: every row is where its chain says, says what
    /// was hashed when it was written, and follows its predecessor. Names the first modified,
    /// deleted or inserted row of each broken chain; exit code 1 when any is.
    Verify(VerifyArgs),
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["run", "day", "all"]))]
struct VerifyArgs {
    /// One run.
    #[arg(long)]
    run: Option<String>,
    /// The runs whose chains were last written, or that ended, that day (UTC, YYYY-MM-DD).
    #[arg(long)]
    day: Option<chrono::NaiveDate>,
    /// Every run the table holds chains of.
    #[arg(long)]
    all: bool,
    /// The Object Lock bucket each run's anchor is copied to (the stack's AnchorBucketName
    /// output): the table's anchors are checked against those copies too.
    #[arg(long, env = "JANITOR_ANCHOR_BUCKET")]
    anchor_bucket: Option<String>,
    #[command(flatten)]
    table: AuditTableArgs,
}

#[derive(Args)]
struct Common {
    /// AWS profile (default: the standard credential chain).
    #[arg(long, env = "AWS_PROFILE")]
    profile: Option<String>,
    /// Region for account-wide calls (IAM, S3 listing, STS).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
    /// Regions to scan (comma-separated); default: every enabled region.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Accounts to scan (comma-separated); others are reached by assuming JANITOR_ROLE_NAME.
    /// Default: the organization's active accounts (from its management account or a
    /// delegated administrator), else your own.
    #[arg(long, value_delimiter = ',')]
    accounts: Vec<String>,
    /// Policy file (default: JANITOR_POLICY_FILE, else the built-in policies/janitor.toml).
    #[arg(long)]
    policy: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Log what each step decides (stderr).
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    common: Common,
    /// Snooze table to honour (read only).
    #[arg(long, env = "JANITOR_SNOOZE_TABLE")]
    snooze_table: Option<String>,
    /// Audit table to read first-flagged / times-flagged from (read only).
    #[arg(long, env = "JANITOR_AUDIT_TABLE")]
    audit_table: Option<String>,
    /// The janitor's run bucket, to read the operator's lists under `config/` (the launcher
    /// allow-list) from; nothing is written to it.
    #[arg(long, env = "JANITOR_RUN_BUCKET")]
    run_bucket: Option<String>,
    /// Where each finding's prices come from: the table shipped with the janitor (no AWS
    /// call), or the AWS Price List Query API first (needs pricing:GetProducts).
    #[arg(long, value_enum, default_value_t = Prices::Bundled)]
    prices: Prices,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Prices {
    Bundled,
    Api,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value_t = Mode::DryRun)]
    mode: Mode,
    #[arg(long, env = "JANITOR_AUDIT_TABLE")]
    audit_table: String,
    #[arg(long, env = "JANITOR_LOCK_TABLE")]
    lock_table: String,
    #[arg(long, env = "JANITOR_SNOOZE_TABLE")]
    snooze_table: String,
    /// Run id (default: a fresh one).
    #[arg(long)]
    run_id: Option<String>,
    /// The whole pipeline on this machine: the shipped state machine run by
    /// aws-local-stepfunctions, every step the real handler binary (built next to this one),
    /// notify, the grace Wait (really waited), recheck and remediate.
    #[arg(long)]
    local: bool,
    /// With --local: the grace period for this run instead of the policy's (e.g. `0s`, `30s`),
    /// so a local run does not wait out the policy's 72 hours.
    #[arg(long, requires = "local", value_parser = parse_duration)]
    grace: Option<PolicyDuration>,
    /// With --local: the S3 bucket for the run's documents (each scope's findings between
    /// steps, the plan and the summary), as the deployed stack's run bucket.
    #[arg(long, env = "JANITOR_RUN_BUCKET")]
    run_bucket: Option<String>,
    /// With --local: the S3 bucket the summary writes the report page to (runs/<run>.html,
    /// latest.html), as the stack's reports bucket; without it the run's alert says so.
    #[arg(long, env = "JANITOR_REPORTS_BUCKET")]
    reports_bucket: Option<String>,
    /// With --local: the repository holding statemachine/ (needs `make node_modules`).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
}

fn parse_duration(text: &str) -> Result<PolicyDuration, String> {
    PolicyDuration::try_from(text.to_owned())
}

fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<Policy> {
    Ok(match path {
        Some(path) => Policy::load(path)?,
        None => Policy::from_env()?,
    })
}

fn progress(quiet: bool, len: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} scanning {pos}/{len} scopes [{bar:30}] {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// How far each scope goes: read-only detection, or detection plus locks.
#[derive(Clone, Copy, PartialEq)]
enum Depth {
    Detect,
    Lock,
}

/// A scope's final payload and the size of its largest step payload (discovery's, which
/// carries the candidates), to watch the Step Functions 256 KB limit.
async fn scan_scope(deps: &Deps, item: &ScopeItem, depth: Depth) -> Result<(StepPayload, usize), ScopeFailure> {
    let scope = item.run.scope.clone().unwrap_or_else(|| janitor_core::model::Scope::new("?", "?"));
    let fail = |what: &str, e: janitor_core::JanitorError| ScopeFailure {
        scope: scope.clone(),
        what: what.to_owned(),
        error: e.error_name().to_owned(),
        message: e.to_string(),
    };
    let found = discovery::discover_scope(deps, &item.run).await.map_err(|e| fail("discovery", e))?;
    let payload_bytes = serde_json::to_vec(&found).map(|v| v.len()).unwrap_or_default();
    let checked = metrics::check_candidates(deps, found).await.map_err(|e| fail("metric-check", e))?;
    if depth == Depth::Lock {
        let locked = lock::lock_findings(deps, checked).await.map_err(|e| fail("lock", e))?;
        return Ok((locked, payload_bytes));
    }
    Ok((checked, payload_bytes))
}

async fn execute(
    deps: &Deps,
    common: &Common,
    request: RunRequest,
    depth: Depth,
    clients: &AwsClients,
) -> anyhow::Result<ScanReport> {
    let started = std::time::Instant::now();
    let plan = step::plan(deps, request).await.context("planning the scopes")?;
    let bar = progress(common.quiet, plan.scopes.len());
    let results: Vec<Result<(StepPayload, usize), ScopeFailure>> = stream::iter(&plan.scopes)
        .map(|item| {
            let bar = bar.clone();
            async move {
                let result = scan_scope(deps, item, depth).await;
                bar.inc(1);
                result
            }
        })
        .buffer_unordered(deps.policy.scan_concurrency)
        .collect()
        .await;
    bar.finish_and_clear();
    Ok(ScanReport::build(plan, results, started.elapsed(), clients.stats().snapshot()))
}

async fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let policy = load_policy(c.policy.as_ref())?;
    let clients = AwsClients::load_checked(c.profile.as_deref(), c.region.as_deref()).await?;
    let dynamodb = clients.dynamodb();
    let snoozes: Arc<dyn janitor_core::ports::SnoozeStore> = match &args.snooze_table {
        Some(table) => Arc::new(DynamoSnoozeStore::new(dynamodb.clone(), table)),
        None => Arc::new(InMemorySnoozeStore::default()),
    };
    let audit = ReadOnlyAuditLog {
        inner: args.audit_table.as_deref().map(|t| DynamoAuditLog::new(dynamodb.clone(), t)),
        recorded: Default::default(),
    };
    let run_bucket = match &args.run_bucket {
        Some(bucket) => {
            let home = clients.home_account().await?;
            Some(aws::S3RunStore::new(clients.s3(&home, janitor_core::model::GLOBAL_REGION).await?, bucket))
        }
        None => None,
    };
    let prices = Arc::new(match args.prices {
        Prices::Bundled => janitor_core::prices::PriceBook::bundled(&policy),
        Prices::Api => {
            let api = Arc::new(aws::AwsPriceList::new(clients.clone()));
            janitor_core::prices::PriceBook::with_api(&policy, api)
        }
    });
    let deps = Deps {
        policy,
        inventory: Arc::new(aws::AwsInventory::new(clients.clone())),
        directory: Arc::new(aws::OrganizationsDirectory::new(clients.clone())),
        metrics: Arc::new(aws::CloudWatchMetrics::new(clients.clone())),
        prices,
        snoozes,
        locks: Arc::new(InMemoryLockStore::default()),
        audit: Arc::new(audit),
        // A scan never acts or alerts; these are never reached from detection.
        remediator: Arc::new(janitor_core::memory::InMemoryRemediator::default()),
        alerts: Arc::new(janitor_core::memory::InMemoryAlerts::default()),
        chat: Arc::new(janitor_core::slack::NoChat),
        slack: janitor_core::slack::SlackSettings::from_env(),
        slack_secret: None,
        clock: Arc::new(SystemClock),
        runs: Arc::new(janitor_core::memory::ReadOnlyRunStore { bucket: run_bucket, written: Default::default() }),
        reports: Arc::new(janitor_core::memory::InMemoryReportStore::default()),
        anchor_copies: None,
        delivery: Default::default(),
    };
    let request =
        RunRequest { mode: Mode::DryRun, regions: some(&c.regions), accounts: some(&c.accounts), run_id: None };
    let report = execute(&deps, c, request, Depth::Detect, &clients).await?;
    report.print(c.output)?;
    Ok(report.exit_code())
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.local {
        return run_local(args).await;
    }
    let c = &args.common;
    let policy = load_policy(c.policy.as_ref())?;
    let clients = AwsClients::load_checked(c.profile.as_deref(), c.region.as_deref()).await?;
    let tables = TableNames {
        audit: args.audit_table.clone(),
        lock: args.lock_table.clone(),
        snooze: args.snooze_table.clone(),
    };
    let deps = aws::deps_with(policy, clients.clone(), &tables);
    let mode = args.mode;
    // The plan refuses a run id already in the audit table.
    let request =
        RunRequest { mode, regions: some(&c.regions), accounts: some(&c.accounts), run_id: args.run_id.clone() };
    let started = chrono::Utc::now();
    let report = execute(&deps, c, request, Depth::Lock, &clients).await?;
    // The run's own row, as the state machine's summary writes it: the report's trend.
    let s = &report.summary;
    let ended = janitor_core::audit::RunEnd {
        mode,
        started_at: Some(started),
        status: if report.failures.is_empty() { ScopeStatus::Ok } else { ScopeStatus::Incomplete },
        scopes: s.scopes_planned,
        totals: s.tally.clone(),
    };
    report.print(c.output)?;
    deps.audit.record(&[ended.event(&report.run.id, chrono::Utc::now(), "janitor run")]).await?;
    Ok(report.exit_code())
}

/// `janitor run --local`: one execution of the shipped state machine on this machine.
async fn run_local(args: RunArgs) -> anyhow::Result<ExitCode> {
    use janitor_core::local::{LocalRunner, ending, summary_rows};
    let c = &args.common;
    let bin_dir = std::env::current_exe()?.parent().map(PathBuf::from).unwrap_or_default();
    let work = std::env::temp_dir().join(format!("janitor-local-{}", std::process::id()));
    let mut runner = LocalRunner::new(&args.repo, &bin_dir, &work)?;
    let run_bucket = args.run_bucket.clone().context(
        "--local needs --run-bucket (or JANITOR_RUN_BUCKET): an S3 bucket for the run's documents between steps",
    )?;
    // Every handler gets this command's settings; the rest of the environment passes through.
    runner.shared_env = vec![
        ("JANITOR_RUN_BUCKET".into(), run_bucket),
        ("JANITOR_AUDIT_TABLE".into(), args.audit_table.clone()),
        ("JANITOR_LOCK_TABLE".into(), args.lock_table.clone()),
        ("JANITOR_SNOOZE_TABLE".into(), args.snooze_table.clone()),
    ];
    if let Some(bucket) = &args.reports_bucket {
        runner.shared_env.push(("JANITOR_REPORTS_BUCKET".into(), bucket.clone()));
    }
    if let Some(grace) = args.grace {
        let mut policy = load_policy(c.policy.as_ref())?;
        policy.grace_period = grace;
        let path = work.join("policy.toml");
        std::fs::write(&path, toml::to_string(&policy)?)?;
        runner.shared_env.push(("JANITOR_POLICY_FILE".into(), path.display().to_string()));
    } else if let Some(policy) = &c.policy {
        runner.shared_env.push(("JANITOR_POLICY_FILE".into(), policy.display().to_string()));
    }
    let mode = args.mode;
    let request = RunRequest { mode, regions: some(&c.regions), accounts: some(&c.accounts), run_id: None };
    if let Some(id) = &args.run_id {
        let clients = AwsClients::load_checked(c.profile.as_deref(), c.region.as_deref()).await?;
        let audit = DynamoAuditLog::new(clients.dynamodb(), &args.audit_table);
        janitor_core::step::refuse_reused_run_id(&audit, id).await?;
    }
    let execution_name = args.run_id.clone().unwrap_or_else(janitor_core::step::new_run_id);
    let execution = runner.execute(&serde_json::to_value(&request)?, &execution_name).await?;
    let summary = execution.summary().unwrap_or_default();
    match c.output {
        Output::Json => {
            let transitions = execution.trace.iter().filter(|t| t.event == "StateEntered").count();
            let report = serde_json::json!({
                "status": execution.status,
                "error": execution.error,
                "summary": summary,
                "state_transitions": transitions,
                "invocations": execution.invocations,
                "peak_rss_kib": execution.peak_rss_kib,
                "largest_payload_bytes": execution.largest_payload_bytes,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Table | Output::Csv => {
            println!("run {execution_name} ({mode}): {}", ending(&execution));
            report::print_rows(&report::run_summary_header(), &summary_rows(&summary), c.output)?;
            if summary.is_null() {
                eprintln!("{}", execution.cause.as_deref().unwrap_or_default());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(if execution.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    use janitor_core::ports::AuditLog;
    if let Some(AuditAction::Verify(verify)) = args.action {
        return verify_audit(verify).await;
    }
    let log = args.table.open().await?;
    let events = match (&args.run, &args.resource) {
        (Some(run), _) => log.events_for_run(run).await?,
        (None, Some(resource)) => log.events_for_resource(resource).await?,
        (None, None) => anyhow::bail!("give --run or --resource"),
    };
    report::print_audit(&events, args.output)?;
    Ok(ExitCode::SUCCESS)
}

/// `janitor audit verify`: each chosen run's rows against its chains' heads, then the
/// anchors that sealed those chains when each run ended.
async fn verify_audit(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    use janitor_core::audit::{AuditEventType, RUNS_RESOURCE};
    use janitor_core::chain::{AnchorProblem, compare_copies, verify, verify_anchors};
    use janitor_core::ports::{AnchorCopies, AuditLog};
    let (log, clients) = args.table.open_with_clients().await?;
    let heads = log.chain_heads(args.run.as_deref()).await?;
    let anchors = log.anchors().await?;
    // Runs are known by their heads, the rows their ends left and their anchors: a run
    // whose heads were removed is still checked (and found without a chain).
    let ended: Vec<(String, chrono::DateTime<chrono::Utc>)> = match &args.run {
        Some(_) => Vec::new(),
        None => log
            .events_for_resource(RUNS_RESOURCE)
            .await?
            .into_iter()
            .filter(|e| e.event == AuditEventType::RunEnded)
            .map(|e| (e.run_id, e.at))
            .chain(anchors.iter().map(|a| (a.run_id.clone(), a.at)))
            .collect(),
    };
    let mut runs: Vec<String> = match (&args.run, args.day) {
        (Some(run), _) => vec![run.clone()],
        (None, Some(day)) => heads
            .iter()
            .map(|(h, at)| (h.run_id.clone(), *at))
            .chain(ended)
            .filter(|(_, at)| at.date_naive() == day)
            .map(|(run, _)| run)
            .collect(),
        (None, None) => heads.iter().map(|(h, _)| h.run_id.clone()).chain(ended.into_iter().map(|(r, _)| r)).collect(),
    };
    runs.sort();
    runs.dedup();
    let (mut rows_checked, mut broken) = (0, 0);
    let mut stored = std::collections::BTreeMap::new();
    for run in &runs {
        let (rows, mut problems) = log.stored_run(run).await?;
        let run_heads: Vec<_> = heads.iter().filter(|(h, _)| &h.run_id == run).map(|(h, _)| h.clone()).collect();
        rows_checked += rows.len();
        if rows.is_empty() && run_heads.is_empty() && problems.is_empty() {
            println!("run {run}: no rows and no chain");
            broken += 1;
        } else {
            problems.extend(verify(&rows, &run_heads));
            match problems.first() {
                None => println!("run {run}: {} rows on {} chain(s), intact", rows.len(), run_heads.len()),
                Some(first) => {
                    broken += 1;
                    println!("run {run}: BROKEN, first: {first}");
                    for more in &problems[1..] {
                        println!("  then: {more}");
                    }
                }
            }
        }
        stored.insert(run.clone(), rows);
    }
    // Every anchor links to an earlier one only when all are read; a run or a day checks
    // its own anchors against its rows.
    let chosen: Vec<_> = anchors.iter().filter(|a| args.all || runs.contains(&a.run_id)).cloned().collect();
    let mut anchor_problems: Vec<AnchorProblem> =
        verify_anchors(&chosen, |run| stored.get(run).map(Vec::as_slice).unwrap_or(&[]))
            .into_iter()
            .filter(|p| args.all || !matches!(p, AnchorProblem::Unlinked { .. }))
            .collect();
    if let Some(bucket) = &args.anchor_bucket {
        let home = clients.home_account().await?;
        let s3 = clients.s3(&home, janitor_core::model::GLOBAL_REGION).await?;
        let kept = janitor_core::aws::S3AnchorCopies::new(s3, bucket).kept().await?;
        let since = kept.iter().map(|c| c.at).min();
        let copies: Vec<_> = kept
            .into_iter()
            // A day's copies too: a run removed from the table whole is still the day's.
            .filter(|c| args.all || runs.contains(&c.run_id) || args.day.is_some_and(|d| c.at.date_naive() == d))
            .collect();
        println!("{} anchor copies read from s3://{bucket}", copies.len());
        anchor_problems.extend(compare_copies(&chosen, &copies, since));
    }
    for problem in &anchor_problems {
        println!("{problem}");
    }
    let broken_anchors: std::collections::BTreeSet<&str> = anchor_problems
        .iter()
        .map(|p| match p {
            AnchorProblem::Modified { run_id }
            | AnchorProblem::Unlinked { run_id }
            | AnchorProblem::Unlike { run_id, .. }
            | AnchorProblem::CopyDiffers { run_id } => run_id.as_str(),
        })
        .collect();
    println!(
        "{} run(s), {rows_checked} row(s) checked, {broken} broken; {} anchor(s) checked, {} broken",
        runs.len(),
        chosen.len(),
        broken_anchors.len()
    );
    Ok(if broken == 0 && broken_anchors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    use janitor_core::ports::AuditLog;
    let log = args.table.open().await?;
    let rows = janitor_core::export::findings_of_run(&log.events_for_run(&args.run).await?);
    report::print_findings(&rows, args.output)?;
    Ok(ExitCode::SUCCESS)
}

async fn report_page(args: ReportArgs) -> anyhow::Result<ExitCode> {
    use janitor_core::report_page::{gather, render};
    let log = args.table.open().await?;
    let input = gather(&log, &args.run, args.runs, chrono::Utc::now()).await?;
    if input.rows.is_empty() && input.runs.iter().all(|(id, _, _)| id != &args.run) {
        anyhow::bail!("the audit table has nothing of run {}", args.run);
    }
    let out = args.out.unwrap_or_else(|| PathBuf::from(format!("cloud-janitor-report-{}.html", args.run)));
    std::fs::write(&out, render(&input)).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

async fn email(args: EmailArgs) -> anyhow::Result<ExitCode> {
    let topic = args.topic.as_deref().context("give --topic (the stack output OwnerEmailTopicArn)")?;
    let clients = AwsClients::load_checked(args.profile.as_deref(), args.region.as_deref()).await?;
    match args.action {
        EmailAction::Subscribe { address } => {
            let subscription = aws::delivery::subscribe_owner(&clients, topic, &address).await?;
            println!("{subscription}: {address} confirms by the mail SNS sent, then gets their own findings");
            Ok(ExitCode::SUCCESS)
        }
        EmailAction::List => {
            let mut unfiltered = false;
            for sub in aws::delivery::owner_subscriptions(&clients, topic).await? {
                let state = if sub.confirmed { "confirmed" } else { "pending confirmation" };
                let takes = match sub.owner {
                    Some(owner) => owner,
                    None if sub.confirmed => {
                        unfiltered = true;
                        "NOT ONE OWNER'S OWN (no filter to its own address): the janitor sends no email until it is removed".into()
                    }
                    None => "-".into(),
                };
                println!("{}\t{state}\t{takes}", sub.endpoint);
            }
            Ok(if unfiltered { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

fn some(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = match &cli.command {
        Command::Scan(a) => a.common.verbose,
        Command::Run(a) => a.common.verbose,
        Command::Audit(_) | Command::Export(_) | Command::Report(_) | Command::Email(_) => false,
    };
    telemetry::init_cli(verbose);
    let result = match cli.command {
        Command::Scan(args) => scan(args).await,
        Command::Run(args) => run(args).await,
        Command::Audit(args) => audit(args).await,
        Command::Export(args) => export(args).await,
        Command::Report(args) => report_page(args).await,
        Command::Email(args) => email(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
