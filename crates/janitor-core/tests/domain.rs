//! Fast domain tests on the in-memory fakes of the ports.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use janitor_core::audit::AuditEventType;
use janitor_core::error::JanitorError;
use janitor_core::memory::*;
use janitor_core::model::*;
use janitor_core::policy::Policy;
use janitor_core::ports::*;
use janitor_core::{Deps, step};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-central-1";

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn testing_instance(id: &str) -> Ec2Instance {
    Ec2Instance {
        id: id.into(),
        state: "running".into(),
        instance_type: "t3.large".into(),
        price_exception: None,
        launched_at: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        stopped_at: None,
        tags: tags(&[("Environment", "testing"), ("Owner", "o"), ("CostCenter", "c"), ("Project", "p")]),
    }
}

struct World {
    deps: Deps,
    audit: Arc<InMemoryAuditLog>,
    snoozes: Arc<InMemorySnoozeStore>,
    reports: Arc<InMemoryReportStore>,
}

fn world(inventory: InMemoryInventory, policy: Policy) -> World {
    let audit = Arc::new(InMemoryAuditLog::default());
    let snoozes = Arc::new(InMemorySnoozeStore::default());
    let reports = Arc::new(InMemoryReportStore::default());
    let deps = Deps {
        policy,
        inventory: Arc::new(inventory),
        directory: Arc::new(InMemoryDirectory::default()),
        metrics: Arc::new(InMemoryMetrics::default()),
        prices: Arc::new(janitor_core::prices::BundledPrices),
        snoozes: snoozes.clone(),
        locks: Arc::new(InMemoryLockStore::default()),
        audit: audit.clone(),
        remediator: Arc::new(InMemoryRemediator::default()),
        alerts: Arc::new(InMemoryAlerts::default()),
        chat: Arc::new(janitor_core::slack::NoChat),
        slack: janitor_core::slack::SlackSettings::from_env(),
        slack_secret: None,
        clock: Arc::new(FixedClock(Utc.with_ymd_and_hms(2026, 11, 23, 16, 0, 0).unwrap())),
        runs: Arc::new(InMemoryRunStore::default()),
        reports: reports.clone(),
        anchor_copies: None,
        delivery: Default::default(),
    };
    World { deps, audit, snoozes, reports }
}

fn scope_item(run_id: &str) -> Value {
    json!({"run": {"id": run_id, "mode": "dry-run", "scope": {"account": ACCOUNT, "region": REGION}}})
}

#[tokio::test]
async fn malformed_input_is_a_clear_invalid_input_error_for_every_step() {
    let w = world(InMemoryInventory::default(), Policy::builtin().unwrap());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("discovery", json!("go"), "expected a JSON object"),
        ("discovery", json!(null), "expected a JSON object"),
        ("discovery", json!({"mode": "enforced"}), "unknown variant `enforced`"),
        ("discovery", json!({"mode": "dry-run", "regionz": ["eu-west-1"]}), "unknown field `regionz`"),
        ("discovery", json!({"regions": ["Europe"]}), "not an AWS region name"),
        ("discovery", json!({"accounts": ["12345"]}), "12-digit account id"),
        ("discovery", json!({"run_id": "a/b"}), "run_id"),
        ("discovery", json!({"run": {"id": "r"}}), "run.scope is required"),
        ("discovery", json!({"run": {"id": "r", "scope": {"account": ACCOUNT}}}), "missing field `region`"),
        ("discovery", json!({"plan": {"request": {"mode": "dry-run"}}}), "missing field `execution`"),
        // The Catch path's input is explicit: a failed scope is never locked, a healthy one never released.
        (
            "lock",
            json!({"run": {"id": "r", "scope": {"account": ACCOUNT, "region": REGION}}, "error": {"Error": "States.Timeout"}}),
            "send it as {\"release\"",
        ),
        (
            "lock",
            json!({"release": {"run": {"id": "r", "scope": {"account": ACCOUNT, "region": REGION}}}}),
            "needs the caught error",
        ),
        ("metric-check", json!([]), "expected a JSON object"),
        ("metric-check", json!({"findings": []}), "missing field `run`"),
        ("metric-check", json!({"run": {"id": "r"}, "findings": [{"key": "nonsense"}]}), "resource key"),
        ("lock", json!({"run": {"id": "r"}}), "run.scope is required"),
        (
            "lock",
            json!({"run": {"id": "r", "scope": {"account": ACCOUNT, "region": REGION}}, "candidates": [{"key": format!("{ACCOUNT}/{REGION}/ec2-instance/i-1"), "rule": "ec2-idle-cpu"}]}),
            "run metric-check first",
        ),
        (
            "lock",
            json!({"run": {"id": "r", "scope": {"account": ACCOUNT, "region": REGION}}, "count": "three"}),
            "invalid type",
        ),
    ];
    for (step_name, input, needle) in cases {
        let result = match step_name {
            "discovery" => step::discovery(&w.deps, input.clone()).await,
            "metric-check" => step::metric_check(&w.deps, input.clone()).await,
            _ => step::lock(&w.deps, input.clone()).await,
        };
        let err = result.expect_err(&format!("{step_name} accepted {input}")).0;
        assert_eq!(err.error_name(), "Janitor.InvalidInput", "{step_name} {input}: {err}");
        assert!(err.to_string().contains(needle), "{step_name} {input}: `{err}` lacks `{needle}`");
        let diagnostic: lambda_runtime::Diagnostic = step::StepError(err).into();
        assert_eq!(diagnostic.error_type, "Janitor.InvalidInput");
    }
}

#[tokio::test]
async fn plan_defaults_to_home_account_enabled_regions_plus_account_wide_scope() {
    let inventory = InMemoryInventory {
        home_account: ACCOUNT.into(),
        regions: [(ACCOUNT.to_owned(), vec!["us-east-1".to_owned(), REGION.to_owned()])].into(),
        ..Default::default()
    };
    let w = world(inventory, Policy::builtin().unwrap());
    let plan: step::RunPlan = serde_json::from_value(step::discovery(&w.deps, json!({})).await.unwrap()).unwrap();
    assert_eq!(plan.run.mode, Mode::DryRun, "dry-run is the default");
    let scopes: Vec<String> = plan.scopes.iter().map(|s| s.run.scope.as_ref().unwrap().to_string()).collect();
    assert_eq!(scopes, [format!("{ACCOUNT}/{REGION}"), format!("{ACCOUNT}/us-east-1"), format!("{ACCOUNT}/global")]);
    assert!(plan.scopes.iter().all(|s| s.run.id == plan.run.id));
}

#[tokio::test]
async fn protect_tag_and_live_snoozes_exempt_while_expired_snoozes_do_not() {
    let scope = Scope::new(ACCOUNT, REGION);
    let mut protected = testing_instance("i-protected");
    protected.tags.insert("janitor:protect".into(), "yes".into());
    let inventory = InMemoryInventory {
        ec2: [(
            scope.clone(),
            vec![testing_instance("i-plain"), protected, testing_instance("i-snoozed"), testing_instance("i-expired")],
        )]
        .into(),
        ..Default::default()
    };
    let w = world(inventory, Policy::builtin().unwrap());
    let now = w.deps.clock.now();
    let key = |id: &str| ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, id);
    w.snoozes
        .put_snooze(&Snooze { key: key("i-snoozed"), until: now + Duration::minutes(1), by: "U1".into(), at: now })
        .await
        .unwrap();
    w.snoozes
        .put_snooze(&Snooze { key: key("i-expired"), until: now - Duration::seconds(1), by: "U1".into(), at: now })
        .await
        .unwrap();

    let out: StepPayload = serde_json::from_value(step::discovery(&w.deps, scope_item("r1")).await.unwrap()).unwrap();
    let ids: Vec<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["i-expired", "i-plain"]);
    let exempt: Vec<(String, String)> = w
        .audit
        .events()
        .into_iter()
        .filter(|e| e.event == AuditEventType::Exempt)
        .map(|e| (e.resource, e.detail["reason"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert!(exempt.contains(&(key("i-protected").to_string(), "protect tag".into())));
    assert!(exempt.contains(&(key("i-snoozed").to_string(), "snoozed".into())));
}

#[tokio::test]
async fn scope_cap_defers_the_overflow_with_an_audit_row_each() {
    let scope = Scope::new(ACCOUNT, REGION);
    let instances = (0..7).map(|i| testing_instance(&format!("i-{i}"))).collect();
    let inventory = InMemoryInventory { ec2: [(scope, instances)].into(), ..Default::default() };
    let policy = Policy::from_toml_str(
        "max_findings_per_scope = 5\n[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n",
        "cap policy",
    )
    .unwrap();
    let w = world(inventory, policy);
    let found = step::discovery(&w.deps, scope_item("r1")).await.unwrap();
    let reported: StepPayload = serde_json::from_value(found.clone()).unwrap();
    assert_eq!((reported.findings.len(), reported.deferred), (7, 0), "every finding is found and reported");
    let out: StepPayload = serde_json::from_value(step::lock(&w.deps, found).await.unwrap()).unwrap();
    assert_eq!((out.count, out.findings.len(), out.deferred), (5, 5, 2), "the cap is on what is notified");
    assert_eq!(w.audit.events().iter().filter(|e| e.event == AuditEventType::Deferred).count(), 2);
}

/// A standing backlog over the cap cannot starve the rest: what one run defers is first in
/// line the next (longest waiting first), and every finding is notified within a few runs.
#[tokio::test]
async fn what_the_cap_defers_is_first_in_line_next_run() {
    let scope = Scope::new(ACCOUNT, REGION);
    let instances = (0..5).map(|i| testing_instance(&format!("i-{i}"))).collect();
    let inventory = InMemoryInventory { ec2: [(scope, instances)].into(), ..Default::default() };
    let policy = Policy::from_toml_str(
        "max_findings_per_scope = 2\n[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n",
        "cap policy",
    )
    .unwrap();
    let mut w = world(inventory, policy);
    w.deps.chat = Arc::new(InMemoryChat::default());
    let start = w.deps.clock.now();
    let mut notified_per_run = Vec::new();
    for day in 0..4 {
        w.deps.clock = Arc::new(FixedClock(start + Duration::days(day)));
        w.deps.locks = Arc::new(InMemoryLockStore::default());
        let run = format!("r{day}");
        let found = step::discovery(&w.deps, scope_item(&run)).await.unwrap();
        let locked = step::lock(&w.deps, found).await.unwrap();
        let out: StepPayload = serde_json::from_value(locked.clone()).unwrap();
        assert_eq!((out.findings.len(), out.deferred), (2, 3), "{run}");
        let mut ids: Vec<String> = out.findings.iter().map(|f| f.id.clone()).collect();
        ids.sort();
        notified_per_run.push(ids);
        // Day 2's owners are never told (Slack is down that day): those keep their place.
        if day != 2 {
            let told: StepPayload = serde_json::from_value(step::notify(&w.deps, locked).await.unwrap()).unwrap();
            assert_eq!(told.count, 2, "{run}");
            assert!(told.findings.iter().all(|f| f.deferred_since.is_none()), "told is no longer deferred");
        }
    }
    assert_eq!(notified_per_run[0], ["i-0", "i-1"]);
    assert_eq!(notified_per_run[1], ["i-2", "i-3"], "yesterday's deferred go first");
    assert_eq!(notified_per_run[2], ["i-0", "i-4"], "then the longest waiting: i-4 since day 0, i-0 since day 1");
    assert_eq!(notified_per_run[3], ["i-0", "i-4"], "not told on day 2, so still first in line on day 3");
    let deferred_rows = w.audit.events().into_iter().filter(|e| e.event == AuditEventType::Deferred).count();
    assert_eq!(deferred_rows, 12, "a DEFERRED row per deferred finding per run");
}

/// Under the cap, what the run may act on goes before what it only reports: a pile of
/// notify-only findings cannot keep an actionable one from its owner.
#[tokio::test]
async fn the_cap_takes_actionable_findings_before_notify_only_ones() {
    let scope = Scope::new(ACCOUNT, REGION);
    let mut untagged = testing_instance("i-a-untagged");
    untagged.tags = tags(&[("Environment", "production"), ("Owner", "o")]);
    let inventory = InMemoryInventory {
        ec2: [(scope, vec![untagged, testing_instance("i-b-testing")])].into(),
        ..Default::default()
    };
    let policy = Policy::from_toml_str(
        "max_findings_per_scope = 1\n[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n\
         [rules.ec2_missing_tags]\ntags = [\"Owner\", \"CostCenter\"]\naction = \"notify-only\"\n",
        "p",
    )
    .unwrap();
    let w = world(inventory, policy);
    let found = step::discovery(&w.deps, scope_item("r-order")).await.unwrap();
    let out: StepPayload = serde_json::from_value(step::lock(&w.deps, found).await.unwrap()).unwrap();
    let kept: Vec<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(kept, ["i-b-testing"], "the stoppable one first, though the other sorts first by name");
    assert_eq!(out.deferred, 1);
}

#[tokio::test]
async fn times_flagged_counts_earlier_runs_once_even_when_a_step_is_retried() {
    let scope = Scope::new(ACCOUNT, REGION);
    let inventory = InMemoryInventory { ec2: [(scope, vec![testing_instance("i-1")])].into(), ..Default::default() };
    let w = world(inventory, Policy::builtin().unwrap());
    let flagged = |v: Value| -> (u32, Option<chrono::DateTime<Utc>>) {
        let p: StepPayload = serde_json::from_value(v).unwrap();
        (p.findings[0].times_flagged, p.findings[0].first_flagged)
    };
    let first = flagged(step::discovery(&w.deps, scope_item("r1")).await.unwrap());
    let retried = flagged(step::discovery(&w.deps, scope_item("r1")).await.unwrap());
    let next = flagged(step::discovery(&w.deps, scope_item("r2")).await.unwrap());
    assert_eq!(first.0, 0);
    assert_eq!(retried.0, 0, "a retry of the same run is not an earlier run");
    assert_eq!(next.0, 1);
    assert_eq!(first.1, next.1, "first flagged stays put");
}

#[tokio::test]
async fn a_flag_history_past_its_retention_no_longer_counts_and_each_run_extends_it() {
    let scope = Scope::new(ACCOUNT, REGION);
    let inventory = InMemoryInventory { ec2: [(scope, vec![testing_instance("i-1")])].into(), ..Default::default() };
    let w = world(
        inventory,
        Policy::from_toml_str(
            "history_retention_days = 30\n[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n",
            "p",
        )
        .unwrap(),
    );
    let now = w.deps.clock.now();
    let key = FindingKey {
        resource: ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, "i-1"),
        rule: RuleId::Ec2UnusedEnvironment,
    };
    let stale = FlagHistory {
        first_flagged: now - Duration::days(200),
        times_flagged: 9,
        last_run: "long-ago".into(),
        deferred_since: None,
        expires_at: Some(now - Duration::hours(1)),
    };
    w.audit.save_flag_history(&[(key.clone(), stale)]).await.unwrap();
    let out: StepPayload = serde_json::from_value(step::discovery(&w.deps, scope_item("r1")).await.unwrap()).unwrap();
    assert_eq!(
        (out.findings[0].times_flagged, out.findings[0].first_flagged),
        (0, Some(now)),
        "expired: a fresh start"
    );
    let saved = w.audit.flag_history(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(saved[&key].expires_at, Some(now + Duration::days(30)), "kept for the policy's retention from this run");
}

#[tokio::test]
async fn with_no_accounts_named_a_run_covers_the_organization_s_active_accounts_less_the_excluded() {
    let account = |id: &str, state: &str| OrgAccount { id: id.into(), name: id.into(), state: state.into() };
    let policy = Policy::from_toml_str(
        "excluded_accounts = [\"444444444444\", \"666666666666\"]\nexcluded_regions = [\"eu-west-1\"]\n[rules.eip_unattached]\n",
        "p",
    )
    .unwrap();
    let inventory = InMemoryInventory { home_account: ACCOUNT.into(), ..Default::default() };
    let mut w = world(inventory, policy);
    w.deps.directory = Arc::new(InMemoryDirectory {
        accounts: Some(vec![
            account(ACCOUNT, "ACTIVE"),
            account("222222222222", "ACTIVE"),
            account("333333333333", "SUSPENDED"),
            account("444444444444", "ACTIVE"),
            // Closed and excluded: it stays listed as suspended for months, and must not
            // fail every run meanwhile.
            account("666666666666", "SUSPENDED"),
        ]),
        denied: false,
    });
    let request = json!({"mode": "dry-run", "regions": [REGION, "eu-west-1"]});
    let plan = step::discovery(&w.deps, request.clone()).await.unwrap();
    let scopes: Vec<String> = plan["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["run"]["scope"]["account"].as_str().unwrap(),
                s["run"]["scope"]["region"].as_str().unwrap()
            )
        })
        .collect();
    let want = [
        format!("{ACCOUNT}/{REGION}"),
        format!("{ACCOUNT}/global"),
        format!("222222222222/{REGION}"),
        "222222222222/global".into(),
    ];
    assert_eq!(scopes, want, "excluded account and region left out");
    let failures = plan["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{plan}");
    assert_eq!(failures[0]["error"], "Janitor.AccountNotActive");
    assert_eq!(failures[0]["scope"]["account"], "333333333333");

    // Named accounts are taken as named, the exclusion still holds.
    let named = json!({"mode": "dry-run", "regions": [REGION], "accounts": ["444444444444", "555555555555"]});
    let plan = step::discovery(&w.deps, named).await.unwrap();
    let accounts: Vec<&str> =
        plan["scopes"].as_array().unwrap().iter().filter_map(|s| s["run"]["scope"]["account"].as_str()).collect();
    assert!(accounts.iter().all(|a| *a == "555555555555"), "{accounts:?}");
    // Nothing left to scan is a recorded failure, never a clean run.
    let plan = step::discovery(&w.deps, json!({"mode": "dry-run", "accounts": ["444444444444"]})).await.unwrap();
    assert_eq!(plan["count"], 0);
    assert_eq!(plan["failures"][0]["what"], "plan", "{plan}");

    // In no organization: the janitor's own account. Not allowed to list it: the same, recorded.
    w.deps.directory = Arc::new(InMemoryDirectory::default());
    let plan = step::discovery(&w.deps, request.clone()).await.unwrap();
    assert_eq!(plan["count"], 2, "{plan}");
    assert!(plan["failures"].as_array().unwrap().is_empty());
    w.deps.directory = Arc::new(InMemoryDirectory { accounts: None, denied: true });
    let plan = step::discovery(&w.deps, request).await.unwrap();
    assert_eq!(plan["count"], 2, "{plan}");
    assert_eq!(plan["failures"][0]["what"], "organization");
    assert_eq!(plan["failures"][0]["error"], "Janitor.AccessDenied");
}

#[tokio::test]
async fn denied_scope_is_recorded_not_thrown_and_transient_failures_fail_the_step() {
    let scope = Scope::new(ACCOUNT, REGION);
    let inventory = InMemoryInventory { denied: [scope].into(), ..Default::default() };
    let w = world(inventory, Policy::builtin().unwrap());
    let out: StepPayload = serde_json::from_value(step::discovery(&w.deps, scope_item("r1")).await.unwrap()).unwrap();
    // Every regional kind: EC2 instances, RDS instances, Elastic IPs, EBS volumes, security
    // groups, EBS and RDS snapshots, Lambda functions, Service Catalog provisioned products.
    assert_eq!(out.failures.len(), 9);
    assert!(out.failures.iter().all(|f| f.error == "Janitor.AccessDenied"));
    assert_eq!(w.audit.events().iter().filter(|e| e.event == AuditEventType::Failed).count(), 9);

    // Kinds whose rules are all off are not listed, so they cannot fail either.
    let inventory = InMemoryInventory { denied: [Scope::new(ACCOUNT, REGION)].into(), ..Default::default() };
    let ec2_only = Policy::from_toml_str("[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n", "p").unwrap();
    let w = world(inventory, ec2_only);
    let out: StepPayload = serde_json::from_value(step::discovery(&w.deps, scope_item("r1")).await.unwrap()).unwrap();
    let failed: Vec<&str> = out.failures.iter().map(|f| f.what.as_str()).collect();
    assert_eq!(failed, ["ec2-instance"], "no RDS or address listing without an RDS or address rule");

    struct Throttled;
    #[async_trait::async_trait]
    impl Inventory for Throttled {
        async fn home_account(&self) -> janitor_core::Result<String> {
            Ok(ACCOUNT.into())
        }
        async fn enabled_regions(&self, _: &str) -> janitor_core::Result<Vec<String>> {
            Ok(vec![])
        }
        async fn ec2_instances(&self, _: &Scope) -> janitor_core::Result<Vec<Ec2Instance>> {
            Err(JanitorError::Transient {
                service: "ec2",
                operation: "DescribeInstances",
                message: "Throttling: Rate exceeded".into(),
            })
        }
        async fn rds_instances(&self, _: &Scope) -> janitor_core::Result<Vec<RdsInstance>> {
            Ok(vec![])
        }
        async fn elastic_ips(&self, _: &Scope) -> janitor_core::Result<Vec<ElasticIp>> {
            Ok(vec![])
        }
        async fn ebs_volumes(&self, _: &Scope) -> janitor_core::Result<Vec<EbsVolume>> {
            Ok(vec![])
        }
        async fn security_groups(&self, _: &Scope) -> janitor_core::Result<Vec<SecurityGroup>> {
            Ok(vec![])
        }
        async fn ebs_snapshots(&self, _: &Scope) -> janitor_core::Result<Vec<EbsSnapshot>> {
            Ok(vec![])
        }
        async fn rds_snapshots(&self, _: &Scope) -> janitor_core::Result<Vec<RdsSnapshot>> {
            Ok(vec![])
        }
        async fn lambda_functions(&self, _: &Scope) -> janitor_core::Result<Vec<LambdaFunction>> {
            Ok(vec![])
        }
        async fn lambda_tags(&self, _: &Scope, _: &str) -> janitor_core::Result<Tags> {
            Ok(Tags::new())
        }
        async fn provisioned_products(&self, _: &Scope) -> janitor_core::Result<Vec<ProvisionedProduct>> {
            Ok(vec![])
        }
        async fn iam_credentials(&self, _: &str) -> janitor_core::Result<Vec<IamCredential>> {
            Ok(vec![])
        }
        async fn iam_user_tags(&self, _: &str, _: &str) -> janitor_core::Result<Tags> {
            Ok(Tags::new())
        }
        async fn account_public_access_block(&self, _: &str) -> janitor_core::Result<Option<PublicAccessBlock>> {
            Ok(None)
        }
        async fn s3_buckets(&self, _: &str) -> janitor_core::Result<Vec<BucketRead>> {
            Ok(vec![])
        }
        async fn s3_bucket_tags(&self, _: &str, _: &S3Bucket) -> janitor_core::Result<Tags> {
            Ok(Tags::new())
        }
        async fn exists(&self, _: &ResourceKey) -> janitor_core::Result<bool> {
            Ok(true)
        }
    }
    let mut w = world(InMemoryInventory::default(), Policy::builtin().unwrap());
    w.deps.inventory = Arc::new(Throttled);
    let err = step::discovery(&w.deps, scope_item("r1")).await.unwrap_err().0;
    assert_eq!(err.error_name(), "Janitor.Transient", "{err}");
    assert!(w.audit.events().iter().any(|e| e.event == AuditEventType::Failed), "the failure is still audited");
}

#[tokio::test]
async fn metric_check_uses_one_batched_read_per_metric_rule() {
    let scope = Scope::new(ACCOUNT, REGION);
    let mut instances = Vec::new();
    for i in 0..50 {
        let mut inst = testing_instance(&format!("i-{i:02}"));
        inst.tags.insert("Environment".into(), "production".into());
        instances.push(inst);
    }
    let inventory = InMemoryInventory { ec2: [(scope, instances)].into(), ..Default::default() };
    let mut w = world(inventory, Policy::builtin().unwrap());
    let window = janitor_core::metrics::window_ending(w.deps.clock.now(), 7);
    let mut series = std::collections::HashMap::new();
    for i in 0..50 {
        let value = if i < 10 { 1.0 } else { 50.0 };
        series.insert(
            format!("i-{i:02}"),
            (0..7).map(|d| (window.start + Duration::days(d) + Duration::hours(1), value)).collect(),
        );
    }
    let metrics = Arc::new(InMemoryMetrics { series, ..Default::default() });
    w.deps.metrics = metrics.clone();
    let found = step::discovery(&w.deps, scope_item("r1")).await.unwrap();
    let checked: StepPayload = serde_json::from_value(step::metric_check(&w.deps, found).await.unwrap()).unwrap();
    assert_eq!(checked.count, 10);
    assert!(checked.candidates.is_empty());
    // One batched read per metric rule on the kind, not per instance: idle CPU over seven
    // days, monitoring over the last one.
    assert_eq!(metrics.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn every_events_sample_is_a_valid_handler_input() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let request: step::RunRequest = serde_json::from_value(read("discovery.json")).unwrap();
    request.validate().unwrap();
    let _: step::ScopeItem = serde_json::from_value(read("discovery-scope.json")).unwrap();
    let checked: StepPayload = serde_json::from_value(read("metric-check.json")).unwrap();
    assert!(!checked.candidates.is_empty());
    let locked: StepPayload = serde_json::from_value(read("lock.json")).unwrap();
    assert_eq!(locked.count, locked.findings.len());
    for later in ["notify.json", "recheck.json", "remediate.json"] {
        let payload: StepPayload = serde_json::from_value(read(later)).unwrap();
        assert!(payload.run.scope.is_some(), "{later}");
    }
    let remediate: StepPayload = serde_json::from_value(read("remediate.json")).unwrap();
    assert!(remediate.findings.iter().all(|f| f.notified.is_some()), "remediate needs notified findings");
}

#[tokio::test]
async fn remediation_refuses_findings_not_notified_not_past_grace_or_not_rechecked() {
    use janitor_core::audit::AuditEvent;
    let scope = Scope::new(ACCOUNT, REGION);
    let inventory = InMemoryInventory {
        ec2: [(
            scope,
            ["i-told", "i-untold", "i-early", "i-no-end", "i-hasty", "i-snoozed-late"].map(testing_instance).to_vec(),
        )]
        .into(),
        ..Default::default()
    };
    let mut w = world(inventory, Policy::builtin().unwrap());
    let remediator = Arc::new(InMemoryRemediator::default());
    w.deps.remediator = remediator.clone();
    let now = w.deps.clock.now();
    let mut item = scope_item("r1");
    item["run"]["mode"] = json!("enforce");
    let mut payload: StepPayload = serde_json::from_value(step::discovery(&w.deps, item).await.unwrap()).unwrap();
    let key = |id: &str| ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, id).to_string();
    let notice = |hours_ago: i64| Notice {
        via: Default::default(),
        channel: "D1".into(),
        ts: "1.0".into(),
        at: now - Duration::hours(hours_ago),
        owner_user: None,
    };
    let at = |hours_ago: i64| now - Duration::hours(hours_ago);
    // The NOTIFIED row carries the grace end notify decided; the guard reads only that.
    let told = |id: &str, hours_ago: i64, grace_ends: Option<i64>| {
        let detail = grace_ends.map_or(Value::Null, |h| json!({ "grace_ends": at(h) }));
        AuditEvent::new(key(id), "r1", AuditEventType::Notified, at(hours_ago), "test", detail)
            .with_policy(Some(RuleId::Ec2UnusedEnvironment))
    };
    let rechecked = |id: &str, hours_ago: i64| {
        AuditEvent::new(key(id), "r1", AuditEventType::Rechecked, at(hours_ago), "test", Value::Null)
            .with_policy(Some(RuleId::Ec2UnusedEnvironment))
    };
    // Told 80 h ago, grace ended 8 h ago, rechecked since; never told (the payload claims
    // otherwise); told 10 h ago with 62 h to go; told with no recorded grace end; told, grace
    // over, but rechecked before it ended; told and rechecked, then snoozed after the recheck.
    w.audit
        .record(&[
            told("i-told", 80, Some(8)),
            rechecked("i-told", 1),
            told("i-early", 10, Some(-62)),
            rechecked("i-early", 1),
            told("i-no-end", 80, None),
            rechecked("i-no-end", 1),
            told("i-hasty", 80, Some(8)),
            rechecked("i-hasty", 9),
            told("i-snoozed-late", 80, Some(8)),
            rechecked("i-snoozed-late", 1),
        ])
        .await
        .unwrap();
    let snooze_key = ResourceKey::parse(&key("i-snoozed-late")).unwrap();
    w.snoozes
        .put_snooze(&Snooze { key: snooze_key, until: now + Duration::days(30), by: "UALICE".into(), at: now })
        .await
        .unwrap();
    for f in &mut payload.findings {
        f.notified = Some(notice(if f.id == "i-early" { 10 } else { 80 }));
    }
    let out: StepPayload =
        serde_json::from_value(step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap())
            .unwrap();
    let result =
        |id: &str| out.outcomes.iter().find(|o| o.key.to_string() == key(id)).map(|o| o.result.as_str()).unwrap();
    assert_eq!(result("i-told"), "REMEDIATED");
    for id in ["i-untold", "i-early", "i-no-end", "i-hasty"] {
        assert_eq!(result(id), "SKIPPED", "{id}");
    }
    assert_eq!(result("i-snoozed-late"), "SNOOZED", "a snooze after the recheck wins");
    let acted: Vec<String> = remediator.applied().into_iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(acted, vec![key("i-told")], "only the notified, rechecked, past-grace, unsnoozed finding is touched");
}

#[tokio::test]
async fn one_unreadable_bucket_is_a_recorded_failure_and_the_rest_are_judged() {
    let public = |name: &str| S3Bucket {
        name: name.into(),
        region: REGION.into(),
        policy: None,
        acl_grants: vec![AclGrant {
            grantee_uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
            permission: "READ".into(),
        }],
        block: None,
        created_at: None,
        empty: Some(false),
    };
    let inventory = InMemoryInventory {
        buckets: [(ACCOUNT.to_owned(), vec![public("b-open"), public("b-denied"), public("b-open-too")])].into(),
        unreadable_buckets: vec!["b-denied".into()],
        ..Default::default()
    };
    let w = world(inventory, Policy::builtin().unwrap());
    let item = json!({"run": {"id": "r-s3", "mode": "dry-run", "scope": {"account": ACCOUNT, "region": "global"}}});
    let out: StepPayload = serde_json::from_value(step::discovery(&w.deps, item).await.unwrap()).unwrap();
    let flagged: Vec<&str> = out.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(flagged, ["b-open", "b-open-too"], "the readable buckets are still judged");
    assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
    assert_eq!(out.failures[0].what, "s3-bucket/b-denied");
    assert_eq!(out.failures[0].error, "Janitor.AccessDenied");
    assert_eq!(out.tally.status, ScopeStatus::Incomplete, "a bucket not judged is never a clean scope");
}

/// Enforce-mode findings of `run` as remediate receives them: locked, each owner told 80 h
/// ago with a grace period that ended 8 h ago, and rechecked since.
async fn ready_to_act(w: &World, run: &str) -> StepPayload {
    use janitor_core::audit::AuditEvent;
    let now = w.deps.clock.now();
    let mut item = scope_item(run);
    item["run"]["mode"] = json!("enforce");
    let found = step::discovery(&w.deps, item).await.unwrap();
    let locked = step::lock(&w.deps, step::metric_check(&w.deps, found).await.unwrap()).await.unwrap();
    let mut payload: StepPayload = serde_json::from_value(locked).unwrap();
    let mut rows = Vec::new();
    for f in &mut payload.findings {
        let told = now - Duration::hours(80);
        f.notified = Some(Notice {
            via: Default::default(),
            channel: "D1".into(),
            ts: "1.0".into(),
            at: told,
            owner_user: None,
        });
        let detail = json!({ "grace_ends": now - Duration::hours(8) });
        // A finding's rows name its rule, as notify and recheck write them.
        rows.push(AuditEvent::for_finding(f, run, AuditEventType::Notified, told, "test", detail));
        rows.push(AuditEvent::for_finding(f, run, AuditEventType::Rechecked, now, "test", Value::Null));
    }
    w.audit.record(&rows).await.unwrap();
    payload
}

#[tokio::test]
async fn notify_only_findings_take_no_share_of_the_action_cap() {
    let scope = Scope::new(ACCOUNT, REGION);
    let mut untagged = testing_instance("i-untagged-1");
    untagged.tags = tags(&[("Environment", "production"), ("Owner", "o")]);
    let mut untagged_2 = untagged.clone();
    untagged_2.id = "i-untagged-2".into();
    let inventory = InMemoryInventory {
        ec2: [(scope, vec![testing_instance("i-test"), untagged, untagged_2])].into(),
        ..Default::default()
    };
    let policy = Policy::from_toml_str(
        "max_actions_per_run = 1\n[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n\
         [rules.ec2_missing_tags]\ntags = [\"Owner\", \"CostCenter\"]\naction = \"notify-only\"\n",
        "p",
    )
    .unwrap();
    let mut w = world(inventory, policy);
    let remediator = Arc::new(InMemoryRemediator::default());
    w.deps.remediator = remediator.clone();
    let payload = ready_to_act(&w, "r-cap").await;
    assert_eq!(payload.findings.len(), 3);
    let out: StepPayload =
        serde_json::from_value(step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap())
            .unwrap();
    let results: BTreeMap<String, &str> =
        out.outcomes.iter().map(|o| (o.key.id().to_owned(), o.result.as_str())).collect();
    assert_eq!(results["i-test"], "REMEDIATED", "the one action fits the cap of 1: {results:?}");
    assert_eq!(results["i-untagged-1"], "SKIPPED");
    assert_eq!(results["i-untagged-2"], "SKIPPED");
    assert_eq!(out.tally.halted, 0);
    assert_eq!(remediator.applied().len(), 1);
}

#[tokio::test]
async fn a_failure_after_acting_never_acts_twice_nor_records_the_acted_on_as_unremediated() {
    let scope = Scope::new(ACCOUNT, REGION);
    let instances = (0..2).map(|i| testing_instance(&format!("i-{i}"))).collect();
    let inventory = InMemoryInventory { ec2: [(scope, instances)].into(), ..Default::default() };
    let policy = Policy::from_toml_str("[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n", "p").unwrap();
    let mut w = world(inventory, policy);
    let remediator = Arc::new(InMemoryRemediator::default());
    let locks = Arc::new(InMemoryLockStore::default());
    let alerts = Arc::new(InMemoryAlerts::default());
    w.deps.remediator = remediator.clone();
    w.deps.locks = locks.clone();
    w.deps.alerts = alerts.clone();
    let payload = ready_to_act(&w, "r-after").await;
    let input = serde_json::to_value(&payload).unwrap();

    // The actions happen, then the summary publish fails: the step fails for a retry.
    alerts.set_failing(true);
    let err = step::remediate(&w.deps, input.clone()).await.unwrap_err();
    assert_eq!(err.0.error_name(), "Janitor.Transient");
    assert_eq!(remediator.applied().len(), 2);
    for f in &payload.findings {
        assert_eq!(locks.holder(&f.key).as_deref(), Some("r-after"), "the retry still holds {}", f.key);
    }

    // The state machine's retry: reports what was done, acts on nothing again.
    alerts.set_failing(false);
    let out: StepPayload = serde_json::from_value(step::remediate(&w.deps, input.clone()).await.unwrap()).unwrap();
    assert_eq!(remediator.applied().len(), 2, "a retry never acts twice");
    assert!(out.outcomes.iter().all(|o| o.result == AuditEventType::Remediated), "{:?}", out.outcomes);
    assert_eq!(out.tally.remediated, 2);
    assert!(payload.findings.iter().all(|f| locks.holder(&f.key).is_none()));
    let rows = w.audit.events_for_run("r-after").await.unwrap();
    let remediated = rows.iter().filter(|e| e.event == AuditEventType::Remediated).count();
    assert_eq!(remediated, 2, "one REMEDIATED row per resource, not one per attempt");

    // Or retries run out and the Catch path releases the scope: what was remediated stays so.
    let mut caught = input;
    caught["error"] = json!({ "Error": "Janitor.Transient", "Cause": "{\"errorMessage\":\"sns Publish: throttled\"}" });
    let released: StepPayload = serde_json::from_value(step::release(&w.deps, caught).await.unwrap()).unwrap();
    assert_eq!((released.tally.remediated, released.tally.failed), (2, 0), "{:?}", released.tally);
    // Two t3.large stopped in eu-central-1 ($0.096/h × 730 h each) saved what they saved.
    assert_eq!(released.tally.savings_made.to_string(), "$140.16", "{:?}", released.tally);
    let rows = w.audit.events_for_run("r-after").await.unwrap();
    let failed_findings =
        rows.iter().filter(|e| e.event == AuditEventType::Failed && e.resource.contains("/ec2-instance/")).count();
    assert_eq!(failed_findings, 0, "no REMEDIATED resource is recorded as failed");
}

#[tokio::test]
async fn the_catch_path_records_the_failure_releases_the_scope_locks_and_alerts() {
    let scope = Scope::new(ACCOUNT, REGION);
    let instances = (0..3).map(|i| testing_instance(&format!("i-{i}"))).collect();
    let inventory = InMemoryInventory { ec2: [(scope.clone(), instances)].into(), ..Default::default() };
    let policy = Policy::from_toml_str("[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n", "p").unwrap();
    let mut w = world(inventory, policy);
    let locks = Arc::new(InMemoryLockStore::default());
    let alerts = Arc::new(InMemoryAlerts::default());
    w.deps.locks = locks.clone();
    w.deps.alerts = alerts.clone();
    let found = step::discovery(&w.deps, scope_item("r-caught")).await.unwrap();
    let locked = step::lock(&w.deps, step::metric_check(&w.deps, found).await.unwrap()).await.unwrap();
    let keys: Vec<ResourceKey> =
        serde_json::from_value::<StepPayload>(locked.clone()).unwrap().findings.into_iter().map(|f| f.key).collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| locks.holder(k).as_deref() == Some("r-caught")));

    // What Step Functions hands the Catch target: the failed step's input plus {Error, Cause}.
    let mut caught = locked;
    caught["error"] = json!({
        "Error": "Runtime.ExitError",
        "Cause": "{\"errorType\":\"Runtime.ExitError\",\"errorMessage\":\"notify exited (code 1)\"}",
    });
    let out: StepPayload = serde_json::from_value(step::release(&w.deps, caught).await.unwrap()).unwrap();
    assert_eq!(out.tally.status, ScopeStatus::Failed);
    assert_eq!((out.tally.failed, out.count), (3, 0));
    assert!(keys.iter().all(|k| locks.holder(k).is_none()), "every lock given back");
    let failed: Vec<_> = w.audit.events().into_iter().filter(|e| e.event == AuditEventType::Failed).collect();
    assert_eq!(failed.len(), 4, "one row for the scope and one per finding");
    assert!(failed.iter().any(|e| e.resource == scope.audit_key()));
    assert!(failed.iter().all(|e| e.detail["message"] == "notify exited (code 1)" && e.actor == "lock"));
    let published = alerts.published();
    assert_eq!(published.len(), 1);
    assert!(published[0].1["content"]["description"].as_str().unwrap().contains("Runtime.ExitError"));
}

#[tokio::test]
async fn the_state_machine_plan_input_takes_the_execution_name_as_run_id_and_validates_the_rest() {
    let w = world(InMemoryInventory::default(), Policy::from_toml_str("", "default policy").unwrap());
    let input = json!({ "plan": { "request": { "mode": "enforce", "regions": [REGION] }, "execution": "exec-42" } });
    let plan = step::discovery(&w.deps, input).await.unwrap();
    // The plan stamps when the run began: the summary reports its duration from it.
    assert_eq!(plan["run"], json!({ "id": "exec-42", "mode": "enforce", "started_at": "2026-11-23T16:00:00Z" }));
    assert_eq!(plan["failures"], json!([]), "always present: the summary state reads it");
    let same = json!({ "plan": { "request": { "mode": "dry-run", "run_id": "exec-42" }, "execution": "exec-42" } });
    assert_eq!(step::discovery(&w.deps, same).await.unwrap()["run"]["id"], "exec-42");
    for (request, expected) in [
        (json!({ "mode": "enforced" }), "unknown variant"),
        (json!({ "mode": "dry-run", "region": ["eu-west-1"] }), "unknown field `region`"),
        (json!("dry-run"), "expected a JSON object"),
        (json!({ "regions": ["Mars"] }), "not an AWS region"),
        // A run id of its own would let two executions share locks and the action cap.
        (json!({ "mode": "enforce", "run_id": "exec-41" }), "is not this execution's name"),
    ] {
        let err =
            step::discovery(&w.deps, json!({ "plan": { "request": request, "execution": "e" } })).await.unwrap_err();
        assert_eq!(err.0.error_name(), "Janitor.InvalidInput");
        assert!(err.0.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn a_run_id_chosen_by_hand_must_be_new() {
    let w = world(InMemoryInventory::default(), Policy::from_toml_str("", "default policy").unwrap());
    step::refuse_reused_run_id(w.audit.as_ref(), "r-new").await.unwrap();
    let row = janitor_core::audit::AuditEvent::new(
        "123456789012/us-east-1/ec2-instance/i-1",
        "r-used",
        AuditEventType::Locked,
        Utc::now(),
        "lock",
        json!({}),
    );
    w.deps.audit.record(&[row]).await.unwrap();
    let err = step::refuse_reused_run_id(w.audit.as_ref(), "r-used").await.unwrap_err();
    assert_eq!(err.error_name(), "Janitor.InvalidInput");
    assert!(err.to_string().contains("already used"), "{err}");
}

#[test]
fn the_tally_counts_outcomes_and_marks_a_scope_incomplete_or_failed() {
    let run =
        RunContext { id: "r".into(), mode: Mode::DryRun, scope: Some(Scope::new(ACCOUNT, REGION)), started_at: None };
    let mut payload = StepPayload::new(run);
    for event in ["NOTIFIED", "NOTIFIED", "SNOOZED", "GONE", "WOULD_REMEDIATE", "RECHECKED"] {
        payload.tally.count(event.parse().unwrap());
    }
    payload.recount();
    let t = &payload.tally;
    assert_eq!((t.notified, t.snoozed, t.cleared, t.would_remediate, t.status), (2, 1, 1, 1, ScopeStatus::Ok));
    payload.tally.count(AuditEventType::NotifyFailed);
    payload.recount();
    assert_eq!(payload.tally.status, ScopeStatus::Incomplete);
    payload.error = Some(CaughtError { error: "States.Timeout".into(), cause: String::new() });
    payload.recount();
    assert_eq!(payload.tally.status, ScopeStatus::Failed);
    assert_eq!(serde_json::to_value(payload.tally.status).unwrap(), "FAILED");
}

/// The README's rules table is the registry's: a rule added, renamed or re-described without
/// the README (or the other way round) fails here.
#[test]
fn the_readme_rules_table_is_the_registry() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let table = janitor_core::rules::readme_table();
    assert!(readme.contains(&table), "README.md's rules table differs from the registry; it should read:\n{table}");
}

/// An instance in the testing environment that also lacks a required tag: two rules break.
fn two_rule_world(run_cap: usize) -> (World, Scope) {
    let scope = Scope::new(ACCOUNT, REGION);
    let mut both = testing_instance("i-both");
    both.tags.remove("CostCenter");
    let inventory = InMemoryInventory { ec2: [(scope.clone(), vec![both])].into(), ..Default::default() };
    let policy = Policy::from_toml_str(
        &format!(
            "max_actions_per_run = {run_cap}\n[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n\
             [rules.ec2_missing_tags]\ntags = [\"Owner\", \"CostCenter\"]\n"
        ),
        "p",
    )
    .unwrap();
    (world(inventory, policy), scope)
}

#[tokio::test]
async fn a_resource_breaking_two_rules_is_two_findings_one_lock_and_one_slack_line() {
    let (mut w, _) = two_rule_world(10);
    let chat = Arc::new(InMemoryChat::default());
    let locks = Arc::new(InMemoryLockStore::default());
    w.deps.chat = chat.clone();
    w.deps.locks = locks.clone();
    let found = step::discovery(&w.deps, scope_item("r-two")).await.unwrap();
    let checked = step::metric_check(&w.deps, found).await.unwrap();
    let locked: StepPayload = serde_json::from_value(step::lock(&w.deps, checked).await.unwrap()).unwrap();
    let rules: Vec<RuleId> = locked.findings.iter().map(|f| f.policy).collect();
    assert_eq!(rules, [RuleId::Ec2UnusedEnvironment, RuleId::Ec2MissingTags]);
    let key = locked.findings[0].key.clone();
    assert!(locked.findings.iter().all(|f| f.key == key));
    assert_eq!(locks.holder(&key).as_deref(), Some("r-two"), "one lock for the resource");

    let notified: StepPayload =
        serde_json::from_value(step::notify(&w.deps, serde_json::to_value(&locked).unwrap()).await.unwrap()).unwrap();
    assert_eq!(notified.findings.len(), 2, "both findings go on, each notified");
    let messages = chat.blocks();
    assert_eq!(messages.len(), 1);
    let sections: Vec<&Value> = messages[0]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["block_id"].as_str().is_some_and(|id| id.starts_with("r:")))
        .collect();
    assert_eq!(sections.len(), 1, "one line (and one Snooze) per resource: {messages:?}");
    let text = sections[0]["text"]["text"].as_str().unwrap();
    assert!(text.contains("ec2-unused-environment") && text.contains("ec2-missing-tags"), "{text}");
    assert!(chat.posted()[0].1.contains("1 resource needs"), "{:?}", chat.posted());
    let rows = w.audit.events();
    let notified_rules: Vec<Option<RuleId>> =
        rows.iter().filter(|e| e.event == AuditEventType::Notified).map(|e| e.policy).collect();
    assert_eq!(notified_rules, [Some(RuleId::Ec2UnusedEnvironment), Some(RuleId::Ec2MissingTags)]);
}

#[tokio::test]
async fn one_finding_of_a_resource_clearing_at_recheck_keeps_the_lock_for_the_other() {
    let (mut w, scope) = two_rule_world(10);
    let locks = Arc::new(InMemoryLockStore::default());
    w.deps.locks = locks.clone();
    let payload = ready_to_act(&w, "r-half").await;
    assert_eq!(payload.findings.len(), 2);
    // Someone adds the missing tag during the grace period.
    w.deps.inventory =
        Arc::new(InMemoryInventory { ec2: [(scope, vec![testing_instance("i-both")])].into(), ..Default::default() });
    let out: StepPayload =
        serde_json::from_value(step::recheck(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap()).unwrap();
    assert_eq!(out.findings.iter().map(|f| f.policy).collect::<Vec<_>>(), [RuleId::Ec2UnusedEnvironment]);
    let cleared: Vec<Option<RuleId>> =
        w.audit.events().iter().filter(|e| e.event == AuditEventType::Cleared).map(|e| e.policy).collect();
    assert_eq!(cleared, [Some(RuleId::Ec2MissingTags)]);
    assert_eq!(
        locks.holder(&out.findings[0].key).as_deref(),
        Some("r-half"),
        "the finding still in the run keeps its resource's lock"
    );
}

#[tokio::test]
async fn two_findings_on_one_resource_are_one_action_of_the_cap() {
    let (mut w, _) = two_rule_world(1);
    let remediator = Arc::new(InMemoryRemediator::default());
    w.deps.remediator = remediator.clone();
    let payload = ready_to_act(&w, "r-one-action").await;
    assert_eq!(payload.findings.len(), 2);
    let mut input = serde_json::to_value(&payload).unwrap();
    input["run"]["mode"] = json!("enforce");
    let out: StepPayload = serde_json::from_value(step::remediate(&w.deps, input).await.unwrap()).unwrap();
    assert_eq!(out.tally.halted, 0, "a cap of 1 resource fits one resource: {:?}", out.outcomes);
    let results: Vec<(RuleId, AuditEventType)> = out.outcomes.iter().map(|o| (o.policy, o.result)).collect();
    assert_eq!(
        results,
        [
            (RuleId::Ec2UnusedEnvironment, AuditEventType::Remediated),
            (RuleId::Ec2MissingTags, AuditEventType::Remediated)
        ]
    );
}

#[tokio::test]
async fn an_exclusion_made_during_the_grace_period_holds_at_the_moment_of_action() {
    let (mut w, scope) = two_rule_world(10);
    let remediator = Arc::new(InMemoryRemediator::default());
    w.deps.remediator = remediator.clone();
    let payload = ready_to_act(&w, "r-excluded").await;
    w.deps.policy.excluded_regions = vec![scope.region.clone()];
    let out: StepPayload =
        serde_json::from_value(step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap())
            .unwrap();
    assert!(!out.outcomes.is_empty());
    for o in &out.outcomes {
        assert_eq!(o.result, AuditEventType::Skipped, "{o:?}");
        assert!(o.detail["reason"].as_str().unwrap().contains("excluded by the policy"), "{o:?}");
    }
    assert!(remediator.applied().is_empty());
}

#[tokio::test]
async fn remediate_acts_only_while_the_resource_is_still_locked_by_its_run() {
    let (mut w, _) = two_rule_world(10);
    let locks = Arc::new(InMemoryLockStore::default());
    let remediator = Arc::new(InMemoryRemediator::default());
    w.deps.locks = locks.clone();
    w.deps.remediator = remediator.clone();
    let payload = ready_to_act(&w, "r-late").await;
    let key = payload.findings[0].key.clone();
    // The lock outlived its TTL and another run took the resource over.
    let now = w.deps.clock.now();
    locks.release(&key, "r-late").await.unwrap();
    assert_eq!(locks.acquire(&key, "r-newer", now, now + Duration::hours(80)).await.unwrap(), LockOutcome::Acquired);
    let out: StepPayload =
        serde_json::from_value(step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap())
            .unwrap();
    assert!(out.outcomes.iter().all(|o| o.result == AuditEventType::Skipped), "{:?}", out.outcomes);
    assert!(out.outcomes[0].detail["reason"].as_str().unwrap().contains("r-newer"), "{:?}", out.outcomes);
    assert!(remediator.applied().is_empty(), "never acts on a resource another run holds");
    assert_eq!(locks.holder(&key).as_deref(), Some("r-newer"), "and never frees its lock");
}

#[tokio::test]
async fn each_finding_is_priced_and_the_summary_says_what_the_run_saves_or_would_save() {
    // A running t3.large in eu-central-1 at the bundled $0.096/h: 730 h make $70.08 a month.
    for (mode, said, line) in [
        (Mode::DryRun, "Would save $70.08/month.", "(would save $70.08/month)"),
        (Mode::Enforce, "Saved $70.08/month.", "(saves $70.08/month)"),
    ] {
        let scope = Scope::new(ACCOUNT, REGION);
        let inventory =
            InMemoryInventory { ec2: [(scope, vec![testing_instance("i-1")])].into(), ..Default::default() };
        let policy = Policy::from_toml_str("[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n", "p").unwrap();
        let mut w = world(inventory, policy);
        let alerts = Arc::new(InMemoryAlerts::default());
        w.deps.alerts = alerts.clone();
        let mut payload = ready_to_act(&w, &format!("r-saves-{mode}")).await;
        payload.run.mode = mode;
        let cost = payload.findings[0].cost.clone().expect("discovery prices each finding");
        assert_eq!(
            (cost.monthly_cost.map(|c| c.to_string()), cost.monthly_savings.to_string()),
            (Some("$70.08".into()), "$70.08".into())
        );
        assert!(cost.basis.starts_with("t3.large on-demand Linux eu-central-1, $0.096/h × 730 h"), "{}", cost.basis);
        let out: StepPayload =
            serde_json::from_value(step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap())
                .unwrap();
        let (would, made) = (out.tally.savings_would.to_string(), out.tally.savings_made.to_string());
        match mode {
            Mode::DryRun => assert_eq!((would.as_str(), made.as_str()), ("$70.08", "$0.00")),
            Mode::Enforce => assert_eq!((would.as_str(), made.as_str()), ("$0.00", "$70.08")),
        }
        let published = alerts.published();
        let description = published[0].1["content"]["description"].as_str().unwrap().to_owned();
        assert!(description.contains(said), "{description}");
        assert!(description.contains(line), "{description}");
        // The DISCOVERED row keeps the figures, for the export and the report.
        let rows = w.audit.events_for_run(&format!("r-saves-{mode}")).await.unwrap();
        let discovered = rows.iter().find(|e| e.event == AuditEventType::Discovered).unwrap();
        assert_eq!(discovered.detail["cost"]["monthly_savings"], json!(70.08));
    }
}

/// A report store that is down.
struct BrokenReports;

#[async_trait::async_trait]
impl ReportStore for BrokenReports {
    async fn publish(&self, _: &str, _: Vec<u8>) -> janitor_core::Result<PublishedReport> {
        Err(JanitorError::Transient { service: "s3", operation: "PutObject", message: "slow down".into() })
    }
}

#[tokio::test]
async fn the_summary_writes_the_report_page_and_its_alert_links_to_it() {
    use janitor_core::handler::{RunState, summarize};
    let scope = Scope::new(ACCOUNT, REGION);
    let inventory = InMemoryInventory { ec2: [(scope, vec![testing_instance("i-1")])].into(), ..Default::default() };
    let policy = Policy::from_toml_str("[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n", "p").unwrap();
    let mut w = world(inventory, policy);
    let alerts = Arc::new(InMemoryAlerts::default());
    w.deps.alerts = alerts.clone();
    let payload = ready_to_act(&w, "r-report").await;
    step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap();
    let state: RunState =
        serde_json::from_value(json!({ "run": { "id": "r-report", "mode": "enforce" }, "scopes": [] })).unwrap();

    let summary = summarize(&w.deps, state.clone()).await.unwrap();
    assert_eq!(summary.report.as_deref(), Some("memory://runs/r-report.html"));
    let page = w.reports.page("runs/r-report.html").expect("the run's page");
    assert_eq!(w.reports.page("latest.html").as_deref(), Some(page.as_str()));
    // The page is made from the audit table: the remediated instance's $70.08 a month.
    assert!(page.contains("id=\"savings-saved\" data-value=\"70.08\""), "{page}");
    let runs = w.audit.events_for_resource(janitor_core::audit::RUNS_RESOURCE).await.unwrap();
    assert_eq!(runs.iter().filter(|e| e.event == AuditEventType::RunEnded).count(), 1, "the run's own row");
    let published = alerts.published();
    let ended = &published.last().expect("the run-level alert").1;
    assert_eq!(ended["metadata"]["eventType"], "RunEnded");
    let next = ended["content"]["nextSteps"][0].as_str().unwrap();
    assert!(next.contains("https://reports.invalid/runs/r-report.html"), "{next}");
    assert!(next.contains("up to 7 days"), "{next}");

    // The page cannot be written, then the alert cannot be sent either: the run still ends,
    // and says what it could not do.
    w.deps.reports = Arc::new(BrokenReports);
    let summary = summarize(&w.deps, state.clone()).await.unwrap();
    assert_eq!(summary.report, None);
    let next = alerts.published().last().unwrap().1["content"]["nextSteps"][0].as_str().unwrap().to_owned();
    assert!(next.starts_with("The report page could not be written") && next.contains("slow down"), "{next}");
    alerts.set_failing(true);
    let before = alerts.published().len();
    assert!(summarize(&w.deps, state).await.is_ok(), "a failed alert does not fail the run's summary");
    assert_eq!(alerts.published().len(), before);
}

/// Four owners, four routes: Teams by domain, email by domain, Teams by channel, Slack for
/// the rest. Returns the world, the Teams and email fakes, and the run's notified payload.
async fn routed_world() -> (World, Arc<InMemoryDelivery>, Arc<InMemoryDelivery>, Arc<InMemoryChat>, StepPayload) {
    let scope = Scope::new(ACCOUNT, REGION);
    let owned = |id: &str, owner: &str| {
        let mut i = testing_instance(id);
        i.tags.insert("Owner".into(), owner.into());
        i
    };
    let inventory = InMemoryInventory {
        ec2: [(
            scope.clone(),
            vec![
                owned("i-alice", "alice@teams.example"),
                owned("i-bob", "Bob@mail.example"),
                owned("i-fin", "#finops"),
                owned("i-dana", "dana@example.com"),
            ],
        )]
        .into(),
        ..Default::default()
    };
    let policy = Policy::from_toml_str(
        "[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n\
         [delivery]\ndomains = { \"teams.example\" = { via = \"teams\", webhook = \"platform\" }, \"mail.example\" = { via = \"email\" } }\n\
         channels = { \"#finops\" = { via = \"teams\", webhook = \"finops\" } }\n",
        "p",
    )
    .unwrap();
    let mut w = world(inventory, policy);
    let (teams, email, chat) = (
        Arc::new(InMemoryDelivery::default()),
        Arc::new(InMemoryDelivery::default()),
        Arc::new(InMemoryChat::default()),
    );
    w.deps.chat = chat.clone();
    w.deps.delivery.teams = teams.clone();
    w.deps.delivery.email = email.clone();
    w.deps.delivery.links = Some(janitor_core::delivery::SnoozeLinks {
        url: "https://api.example/snooze".into(),
        key: Arc::new(InMemoryLinkKey(b"link-key".to_vec())),
    });
    let found = step::discovery(&w.deps, scope_item("r-routes")).await.unwrap();
    let checked = step::metric_check(&w.deps, found).await.unwrap();
    let locked = step::lock(&w.deps, checked).await.unwrap();
    let notified = serde_json::from_value(step::notify(&w.deps, locked).await.unwrap()).unwrap();
    (w, teams, email, chat, notified)
}

fn token_of(link: &str) -> String {
    link.split_once("?t=").unwrap().1.to_owned()
}

#[tokio::test]
async fn owners_are_told_by_teams_email_or_slack_as_the_policy_routes_them_with_a_link_only_for_owners() {
    let (w, teams, email, chat, notified) = routed_world().await;
    assert_eq!(notified.findings.len(), 4, "every finding notified");
    let sent = teams.sent();
    let to: Vec<&str> = sent.iter().map(|(to, _, _)| to.as_str()).collect();
    assert_eq!(to, ["finops", "platform"]);
    let alice = ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, "i-alice");
    let fin = ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, "i-fin");
    // A webhook's channel is not alice: her card carries no link; #finops's channel is #finops.
    assert!(sent[1].1.contains("i-alice") && sent[1].2.is_empty(), "{sent:?}");
    assert!(sent[1].1.contains("ask a janitor admin to snooze it"), "{}", sent[1].1);
    assert!(sent[0].2[&fin].starts_with("https://api.example/snooze?t="), "{sent:?}");
    let mails = email.sent();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].0, "bob@mail.example", "addresses are lowercased, as subscriptions filter them");
    assert!(
        mails[0].1.contains("i-bob") && mails[0].1.contains("To keep it as it is, snooze it: https://"),
        "{}",
        mails[0].1
    );
    assert_eq!(chat.posted().len(), 1, "dana stays on Slack");
    assert!(chat.blocks()[0].to_string().contains("i-dana"));

    let rows = w.audit.events();
    let notice = |id: &str| {
        rows.iter().find(|e| e.event == AuditEventType::Notified && e.resource.ends_with(id)).unwrap().detail.clone()
    };
    assert_eq!(notice("i-alice")["via"], "teams");
    assert!(notice("i-alice").get("link_holder").is_none());
    assert_eq!(notice("i-fin")["link_holder"], "#finops");
    assert_eq!(notice("i-bob")["via"], "email");
    assert_eq!(notice("i-bob")["recipient"], "bob@mail.example");
    assert_eq!(notice("i-dana")["via"], "slack");
    assert!(notice("i-dana").get("link_holder").is_none());
    let alice_notice = notified.findings.iter().find(|f| f.key == alice).unwrap().notified.clone().unwrap();
    assert_eq!((alice_notice.via, alice_notice.channel.as_str()), (janitor_core::delivery::Via::Teams, "platform"));
}

#[tokio::test]
async fn a_snooze_link_shows_a_page_then_snoozes_once_for_its_holder_and_refuses_forgeries_and_old_links() {
    use janitor_core::snooze::handle_link;
    let (mut w, teams, email, _, _) = routed_world().await;
    let fin = ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, "i-fin");
    let token = token_of(&teams.sent()[0].2[&fin]);
    let query = format!("t={token}");

    // Opening it (a person, a mail scanner, a link preview) snoozes nothing.
    let page = handle_link(&w.deps, "GET", Some(&query), b"").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("i-fin") && page.body.contains("<form method=post>"), "{}", page.body);
    assert!(w.snoozes.live_snoozes(std::slice::from_ref(&fin), w.deps.clock.now()).await.unwrap().is_empty());

    let form = |days: u32| format!("t={token}&days={days}");
    assert_eq!(handle_link(&w.deps, "POST", None, form(9999).as_bytes()).await.status, 400, "only the lengths offered");
    let done = handle_link(&w.deps, "POST", None, form(7).as_bytes()).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("snoozed until 2026-11-30"), "{}", done.body);
    let live = w.snoozes.live_snoozes(std::slice::from_ref(&fin), w.deps.clock.now()).await.unwrap();
    assert_eq!(live[&fin].by, "#finops");
    let snoozed = w.audit.events().into_iter().filter(|e| e.event == AuditEventType::Snoozed).collect::<Vec<_>>();
    assert_eq!(snoozed.len(), 1);
    assert_eq!((snoozed[0].detail["via"].as_str(), snoozed[0].run_id.as_str()), (Some("link"), "r-routes"));

    // Once only.
    assert_eq!(handle_link(&w.deps, "POST", None, form(30).as_bytes()).await.status, 409);
    let bob = ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, "i-bob");
    let bob_token = token_of(&email.sent()[0].2[&bob]);

    // A claim edited to another resource or holder is not the key's.
    let (claim, mac) = bob_token.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let edited = String::from_utf8(b64.decode(claim).unwrap()).unwrap().replace("i-bob", "i-dana");
    let forged = format!("{}.{mac}", b64.encode(edited));
    assert_eq!(handle_link(&w.deps, "POST", None, format!("t={forged}&days=7").as_bytes()).await.status, 403);
    assert_eq!(handle_link(&w.deps, "GET", Some("t=garbage"), b"").await.status, 400);
    assert_eq!(handle_link(&w.deps, "GET", None, b"").await.status, 400);

    // Past snooze.max_days (90 by default) the link is dead.
    let mut old = w.deps.clone();
    old.clock = Arc::new(FixedClock(w.deps.clock.now() + Duration::days(91)));
    assert_eq!(handle_link(&old, "POST", None, format!("t={bob_token}&days=7").as_bytes()).await.status, 410);

    // Told to someone else since: the old holder's link no longer snoozes, and is not used up.
    w.deps
        .audit
        .record(&[janitor_core::audit::AuditEvent::new(
            bob.as_str(),
            "r-later",
            AuditEventType::Notified,
            w.deps.clock.now() + Duration::hours(1),
            "notify",
            json!({ "via": "email", "link_holder": "robert@mail.example" }),
        )])
        .await
        .unwrap();
    w.deps.clock = Arc::new(FixedClock(w.deps.clock.now() + Duration::hours(2)));
    let refused = handle_link(&w.deps, "POST", None, format!("t={bob_token}&days=7").as_bytes()).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let denied = w.audit.events().into_iter().filter(|e| e.event == AuditEventType::SnoozeDenied).count();
    assert_eq!(denied, 2, "the used link and the old holder");
    assert!(w.snoozes.live_snoozes(std::slice::from_ref(&bob), w.deps.clock.now()).await.unwrap().is_empty());

    // Told to bob again: his link works (the refusal did not use it up), unless the latest
    // try to tell the owner failed.
    let notice_to = |event: AuditEventType, at: chrono::DateTime<Utc>| {
        janitor_core::audit::AuditEvent::new(
            bob.as_str(),
            "r-again",
            event,
            at,
            "notify",
            json!({ "via": "email", "link_holder": "bob@mail.example" }),
        )
    };
    let t0 = w.deps.clock.now();
    w.deps.audit.record(&[notice_to(AuditEventType::Notified, t0 + Duration::hours(1))]).await.unwrap();
    w.deps.audit.record(&[notice_to(AuditEventType::NotifyFailed, t0 + Duration::hours(2))]).await.unwrap();
    w.deps.clock = Arc::new(FixedClock(t0 + Duration::hours(3)));
    let after_failure = handle_link(&w.deps, "POST", None, format!("t={bob_token}&days=7").as_bytes()).await;
    assert_eq!(after_failure.status, 403, "{}", after_failure.body);
    w.deps.audit.record(&[notice_to(AuditEventType::Notified, t0 + Duration::hours(4))]).await.unwrap();
    w.deps.clock = Arc::new(FixedClock(t0 + Duration::hours(5)));
    let snoozed = handle_link(&w.deps, "POST", None, format!("t={bob_token}&days=7").as_bytes()).await;
    assert_eq!(snoozed.status, 200, "{}", snoozed.body);
    assert_eq!(
        w.snoozes.live_snoozes(std::slice::from_ref(&bob), w.deps.clock.now()).await.unwrap()[&bob].by,
        "bob@mail.example"
    );
    // A second use is refused, on record.
    assert_eq!(handle_link(&w.deps, "POST", None, format!("t={bob_token}&days=30").as_bytes()).await.status, 409);
    let reasons: Vec<String> = w
        .audit
        .events()
        .into_iter()
        .filter(|e| e.event == AuditEventType::SnoozeDenied)
        .map(|e| e.detail["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r == "the link was already used"), "{reasons:?}");
}

#[tokio::test]
async fn a_teams_message_that_fails_is_notify_failed_and_its_resource_leaves_the_run() {
    let scope = Scope::new(ACCOUNT, REGION);
    let mut owned = testing_instance("i-t");
    owned.tags.insert("Owner".into(), "carol@teams.example".into());
    let inventory = InMemoryInventory { ec2: [(scope, vec![owned])].into(), ..Default::default() };
    let policy = Policy::from_toml_str(
        "[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n\
         [delivery]\ndomains = { \"teams.example\" = { via = \"teams\", webhook = \"gone\" } }\n",
        "p",
    )
    .unwrap();
    let mut w = world(inventory, policy);
    let locks = Arc::new(InMemoryLockStore::default());
    w.deps.locks = locks.clone();
    // No Teams configured at all: the route fails, named, and is recorded.
    let found = step::discovery(&w.deps, scope_item("r-fail")).await.unwrap();
    let checked = step::metric_check(&w.deps, found).await.unwrap();
    let locked = step::lock(&w.deps, checked).await.unwrap();
    let notified: StepPayload = serde_json::from_value(step::notify(&w.deps, locked).await.unwrap()).unwrap();
    assert!(notified.findings.is_empty());
    let failed = w.audit.events().into_iter().find(|e| e.event == AuditEventType::NotifyFailed).unwrap();
    assert_eq!(failed.detail["via"], "teams");
    assert_eq!(failed.detail["error"], "Janitor.DeliveryError");
    assert!(failed.detail["message"].as_str().unwrap().contains("JANITOR_TEAMS_SECRET_ID"), "{}", failed.detail);
    let key = ResourceKey::new(ACCOUNT, REGION, ResourceKind::Ec2Instance, "i-t");
    assert_eq!(locks.holder(&key), None, "released: never notified, never remediated");
}

#[tokio::test]
async fn after_the_recheck_teams_and_email_owners_hear_the_outcome_by_the_same_medium() {
    use janitor_core::delivery::Via;
    let scope = Scope::new(ACCOUNT, REGION);
    let inventory = InMemoryInventory {
        ec2: [(scope, vec![testing_instance("i-by-teams"), testing_instance("i-by-mail")])].into(),
        ..Default::default()
    };
    let policy = Policy::from_toml_str("[rules.ec2_unused_environment]\nvalues = [\"testing\"]\n", "p").unwrap();
    let mut w = world(inventory, policy);
    let (teams, email) = (Arc::new(InMemoryDelivery::default()), Arc::new(InMemoryDelivery::default()));
    w.deps.delivery.teams = teams.clone();
    w.deps.delivery.email = email.clone();
    let mut payload = ready_to_act(&w, "r-told").await;
    for f in &mut payload.findings {
        let notice = f.notified.as_mut().unwrap();
        (notice.via, notice.channel) = match f.id.as_str() {
            "i-by-teams" => (Via::Teams, "platform".into()),
            _ => (Via::Email, "dave@mail.example".into()),
        };
    }
    step::remediate(&w.deps, serde_json::to_value(&payload).unwrap()).await.unwrap();
    let cards = teams.follow_ups();
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0].0, "platform");
    assert!(cards[0].1.contains("Grace period over") && cards[0].1.contains("i-by-teams"), "{}", cards[0].1);
    assert!(!cards[0].1.contains("i-by-mail"), "each owner hears only of theirs");
    let mails = email.follow_ups();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, "dave@mail.example");
    assert!(mails[0].1.contains("i-by-mail") && mails[0].1.contains("done: stop"), "{}", mails[0].1);
}
