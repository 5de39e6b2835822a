//! `janitor scan` end to end: the real binary against moto, as someone outside the project
//! would check our findings.

use std::collections::BTreeSet;

use janitor_core::aws::TableNames;
use serde_json::Value;
use testkit::estate::{MEMBER_ACCOUNT, SECOND_REGION, Seeder, TwinWorld};
use testkit::proxy::FaultProxy;
use testkit::{HOME_ACCOUNT, HOME_REGION, Moto, emulator_policy_toml};

/// The janitor binary aimed at the emulator, with throwaway credentials.
fn janitor(endpoint: &str, subcommand: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_janitor"));
    command
        .arg(subcommand)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", HOME_REGION)
        .env_remove("AWS_PROFILE");
    command
}

/// `catalog`: the emulator's Service Catalog stub, which moto (and its proxy) cannot answer for.
async fn janitor_scan(endpoint: &str, catalog: &str, policy: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let out = janitor(endpoint, "scan")
        .env("AWS_ENDPOINT_URL_SERVICE_CATALOG", catalog)
        .args(["--regions", &format!("{HOME_REGION},{SECOND_REGION}")])
        .args(["--policy", policy.to_str().unwrap(), "--output", "json", "--quiet"])
        .args(extra)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

fn policy_file(dir: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("janitor-{dir}-{}.toml", std::process::id()));
    std::fs::write(&path, emulator_policy_toml()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_json_lists_exactly_the_seeded_violations_and_writes_nothing() {
    let TwinWorld { moto, clients, tables, estate, .. } = TwinWorld::start("cli").await.unwrap();
    let policy = policy_file("scan");

    let accounts = format!("{HOME_ACCOUNT},{MEMBER_ACCOUNT}");
    let (code, report) = janitor_scan(
        &moto.endpoint,
        &moto.service_catalog.endpoint,
        &policy,
        &["--accounts", &accounts, "--snooze-table", &tables.snooze, "--audit-table", &tables.audit],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    let found: BTreeSet<String> =
        report["findings"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(found, estate.expected_findings);
    for f in report["findings"].as_array().unwrap() {
        for field in ["key", "kind", "policy", "reason", "action"] {
            assert!(f[field].is_string(), "finding lacks {field}: {f}");
        }
    }
    // Each finding says what its resource costs and what its action saves, and how.
    for f in report["findings"].as_array().unwrap() {
        assert!(f["cost"]["basis"].as_str().is_some_and(|b| !b.is_empty()), "unexplained cost: {f}");
        assert!(f["cost"]["monthly_savings"].is_f64(), "{f}");
    }
    // The savings total, by hand from the bundled prices (730 h a month, each resource once):
    //   us-east-1: five running t3.micro a rule stops (three unused-environment, one missing
    //     tags, one idle) at $0.0104/h: 5 × $7.59 = $37.95; the unattached Elastic IP at
    //     $0.005/h: $3.65; the idle db.t3.micro PostgreSQL Single-AZ, $0.018/h × 730 + 20 GB
    //     gp2 × $0.115 = $15.44, less its 20 GB final snapshot × $0.095 = $13.54;
    //   eu-west-1: the idle t3.micro at $0.0114/h: $8.32; its unattached Elastic IP: $3.65;
    //     the unattached 10 GB gp3 volume, 10 × $0.088 less its snapshot 10 × $0.05: $0.38.
    //   37.95 + 3.65 + 13.54 + 8.32 + 3.65 + 0.38 = $67.49.
    // Notify-only and security findings save nothing; the stopped instance, the products and
    // the public buckets are not priced, and say why.
    assert_eq!(report["summary"]["cost"]["monthly_savings"], serde_json::json!(67.49), "{}", report["summary"]);
    assert_eq!(report["summary"]["scopes_scanned"], 6);
    assert_eq!(report["summary"]["scopes_failed"], 0);
    assert!(report["failures"].as_array().unwrap().is_empty());
    // One batched read per region and metric rule (EC2 idle CPU, EC2 monitoring, RDS
    // connections, Lambda invocations), not one per metric-checked resource.
    assert!(report["api_calls"]["CloudWatch"]["GetMetricData"].as_u64().unwrap() <= 8, "{}", report["api_calls"]);

    // Read-only: the audit table got no rows and the lock table no locks.
    let dynamodb = clients.dynamodb();
    for table in [&tables.audit, &tables.lock] {
        let scan = dynamodb.scan().table_name(table).send().await.unwrap();
        assert_eq!(scan.count(), 0, "janitor scan wrote to {table}");
    }
    let _ = std::fs::remove_file(policy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_reports_a_denied_region_and_exits_non_zero() {
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let seeder = Seeder::new(clients, HOME_ACCOUNT);
    seeder.instance(HOME_REGION, &[("Environment", "testing")]).await.unwrap();
    let proxy = FaultProxy::start(&moto.endpoint, &[SECOND_REGION]).await.unwrap();
    let policy = policy_file("denied");
    let (code, report) = janitor_scan(&proxy.endpoint, &moto.service_catalog.endpoint, &policy, &[]).await;
    assert_eq!(code, 2, "incomplete scan must not look like success: {report}");
    // One instance breaking three rules (unused environment, missing required tags, and no
    // CloudWatch data: the emulator holds none for it).
    assert_eq!(report["summary"]["resources"], 1);
    assert_eq!(report["summary"]["findings"], 3);
    assert_eq!(report["summary"]["scopes_failed"], 1);
    let failures = report["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|f| f["scope"]["region"] == SECOND_REGION && f["error"] == "Janitor.AccessDenied"),
        "{failures:?}"
    );
    let _ = std::fs::remove_file(policy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lists_a_runs_and_a_resources_events() {
    use janitor_core::audit::{AuditEvent, AuditEventType};
    use janitor_core::aws::DynamoAuditLog;
    use janitor_core::ports::AuditLog;
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let tables = TableNames::with_prefix("audit");
    testkit::tables::create_tables(&clients.dynamodb(), &tables).await.unwrap();
    let log = DynamoAuditLog::new(clients.dynamodb(), &tables.audit);
    let key = format!("{HOME_ACCOUNT}/{HOME_REGION}/ec2-instance/i-1");
    let now = chrono::Utc::now();
    log.record(&[
        AuditEvent::new(&key, "r1", AuditEventType::Discovered, now, "discovery", serde_json::json!({"reason": "x"})),
        AuditEvent::new(&key, "r1", AuditEventType::Locked, now, "lock", Value::Null),
        AuditEvent::new(&key, "r2", AuditEventType::LockHeld, now, "lock", Value::Null),
    ])
    .await
    .unwrap();
    let by_run = janitor_audit(&moto.endpoint, &tables.audit, &["--run", "r1"]).await;
    assert_eq!(by_run.len(), 2);
    assert!(by_run.contains(&"DISCOVERED".to_owned()) && by_run.contains(&"LOCKED".to_owned()));
    let by_resource = janitor_audit(&moto.endpoint, &tables.audit, &["--resource", &key]).await;
    assert_eq!(by_resource.len(), 3);
    assert!(by_resource.contains(&"LOCK_HELD".to_owned()));

    // The run's findings as CSV: a header, then one row with the rule's evidence as JSON.
    let out = janitor(&moto.endpoint, "export")
        .args(["--run", "r1", "--audit-table", &tables.audit, "--output", "csv"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..6], ["key", "account", "region", "kind", "id", "policy"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let cell = |name: &str| rows[0].get(header.iter().position(|h| h == name).unwrap()).unwrap().to_owned();
    assert_eq!(cell("key"), key);
    assert_eq!(cell("reason"), "x");
    assert_eq!(cell("outcome"), "LOCKED", "the resource's last event in the run");
}

/// `janitor audit … --output json`, returning the event names.
async fn janitor_audit(endpoint: &str, table: &str, args: &[&str]) -> Vec<String> {
    let output = janitor(endpoint, "audit")
        .args(args)
        .args(["--audit-table", table, "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let events: Value = serde_json::from_slice(&output.stdout).unwrap();
    events.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_local_executes_the_state_machine_and_fails_loudly_when_a_notification_fails() {
    let TwinWorld { moto, clients, tables, .. } = TwinWorld::start("local").await.unwrap();
    let policy = policy_file("local");
    let repo = testkit::repo_root();
    clients.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap().create_bucket().bucket("cli-local-runs").send().await.unwrap();
    // No Slack is configured, so every notification fails: nothing may be remediated, and
    // the run must not end as a success.
    let out = janitor(&moto.endpoint, "run")
        .env("AWS_ENDPOINT_URL_SERVICE_CATALOG", &moto.service_catalog.endpoint)
        .args(["--local", "--grace", "1s", "--run-bucket", "cli-local-runs", "--repo", repo.to_str().unwrap()])
        .args(["--mode", "enforce", "--run-id", "cli-local"])
        .args(["--regions", HOME_REGION, "--accounts", HOME_ACCOUNT, "--policy", policy.to_str().unwrap()])
        .args(["--audit-table", &tables.audit, "--lock-table", &tables.lock, "--snooze-table", &tables.snooze])
        .env_remove("JANITOR_SLACK_SECRET_ID")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("run cli-local (enforce): FAILED with Janitor.RunIncomplete"), "{stdout}");
    assert!(stdout.contains("123456789012/us-east-1") && stdout.contains("INCOMPLETE"), "{stdout}");

    use janitor_core::ports::AuditLog;
    let audit = janitor_core::aws::DynamoAuditLog::new(clients.dynamodb(), &tables.audit);
    let events = audit.events_for_run("cli-local").await.unwrap();
    let count = |name: &str| events.iter().filter(|e| e.event.as_str() == name).count();
    assert!(count("NOTIFY_FAILED") >= 5, "{events:?}");
    assert_eq!(count("REMEDIATED") + count("WOULD_REMEDIATE"), 0, "never remediated without a notification");
}

/// A newcomer's first command: the real binary with a clean environment and a home of its
/// own. No credentials, an expired SSO session or no region each gets one line and exit 1,
/// never an SDK dump or a "transient failure" after retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_expired_credentials_and_a_missing_region_say_so_in_one_line() {
    let home = std::env::temp_dir().join(format!("janitor-newcomer-{}", std::process::id()));
    let cache = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let config = home.join(".aws/config");
    std::fs::write(
        &config,
        "[profile expired]\nsso_session = janitor-test\nsso_account_id = 111122223333\nsso_role_name = Admin\nregion = us-east-1\n\n\
         [sso-session janitor-test]\nsso_start_url = https://d-0000000000.awsapps.com/start\nsso_region = us-east-1\n",
    )
    .unwrap();
    // The SDK keys its token cache by the SHA-1 of the session name ("janitor-test").
    std::fs::write(
        cache.join("90a61b2ebee1c5ca7451c555eea8ce02c7edd5c0.json"),
        r#"{"accessToken": "expired-token", "expiresAt": "2020-01-01T00:00:00Z", "region": "us-east-1", "startUrl": "https://d-0000000000.awsapps.com/start"}"#,
    )
    .unwrap();
    let newcomer = |env: &[(&str, &str)]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_janitor"));
        command
            .args(["scan", "--quiet"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
            // Nothing answers on loopback port 9: a call that slips past the check fails fast.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
        for (k, v) in env {
            command.env(k, v);
        }
        command
    };
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 3] = [
        ("no credentials", vec![("AWS_REGION", "us-east-1")], "no AWS credentials found"),
        (
            "expired SSO",
            vec![("AWS_PROFILE", "expired")],
            "SSO session has expired: run `aws sso login --profile expired`",
        ),
        ("no region", vec![("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret")], "no AWS region"),
    ];
    for (name, env, expected) in cases {
        let out = newcomer(&env).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}: one line, not a dump:\n{stderr}");
        assert!(lines[0].starts_with("error: ") && lines[0].contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("ransient"), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// Debian's Chromium, headless, with the flags this machine's closed network needs.
fn chromium(profile: &std::path::Path) -> std::process::Command {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is not installed: `apt-get install chromium` (.ci/run installs it)");
    let mut command = std::process::Command::new(binary);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The `data-value` of the element with `id` in a page as Chromium rendered it.
fn rendered_value(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[at..];
    let from = rest.find("data-value=\"").unwrap() + "data-value=\"".len();
    rest[from..from + rest[from..].find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_renders_in_a_real_browser_with_the_audit_tables_totals() {
    use janitor_core::audit::{AuditEventType, RUNS_RESOURCE};
    use janitor_core::aws::DynamoAuditLog;
    use janitor_core::ports::AuditLog;
    let TwinWorld { moto, clients, tables, .. } = TwinWorld::start("report").await.unwrap();
    let policy = policy_file("report");
    let accounts = format!("{HOME_ACCOUNT},{MEMBER_ACCOUNT}");
    for run in ["r-report-1", "r-report-2"] {
        let out = janitor(&moto.endpoint, "run")
            .env("AWS_ENDPOINT_URL_SERVICE_CATALOG", &moto.service_catalog.endpoint)
            .env("AWS_ENDPOINT_URL_PRICING", &moto.service_catalog.endpoint)
            .args(["--regions", &format!("{HOME_REGION},{SECOND_REGION}"), "--accounts", &accounts])
            .args(["--policy", policy.to_str().unwrap(), "--run-id", run, "--output", "json", "--quiet"])
            .args(["--audit-table", &tables.audit, "--lock-table", &tables.lock, "--snooze-table", &tables.snooze])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "janitor run {run}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let work = std::env::temp_dir().join(format!("janitor-report-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let page = work.join("report.html");
    let out = janitor(&moto.endpoint, "report")
        .args(["--run", "r-report-2", "--audit-table", &tables.audit, "--out", page.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "janitor report: {}", String::from_utf8_lossy(&out.stderr));

    // What the audit table says, worked out here from its rows: one finding per resource and
    // rule, each resource's saving counted once.
    let log = DynamoAuditLog::new(clients.dynamodb(), &tables.audit);
    let events = log.events_for_run("r-report-2").await.unwrap();
    let found: Vec<_> =
        events.iter().filter(|e| matches!(e.event, AuditEventType::Discovered | AuditEventType::Idle)).collect();
    let findings: BTreeSet<(String, Option<String>)> =
        found.iter().map(|e| (e.resource.clone(), e.policy.map(|p| p.to_string()))).collect();
    let mut saves: std::collections::BTreeMap<&str, f64> = Default::default();
    for e in &found {
        let s = e.detail["cost"]["monthly_savings"].as_f64().unwrap_or(0.0);
        let best = saves.entry(e.resource.as_str()).or_default();
        *best = best.max(s);
    }
    let savings: f64 = saves.values().sum();
    let runs = log.events_for_resource(RUNS_RESOURCE).await.unwrap();
    assert_eq!(runs.len(), 2, "each run recorded its end");

    // The page as a browser renders it: its figures, its console, and a picture.
    let profile = work.join("profile");
    let rendered = chromium(&profile).arg("--dump-dom").arg(format!("file://{}", page.display())).output().unwrap();
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    let dom = String::from_utf8_lossy(&rendered.stdout);
    let console: Vec<&str> =
        std::str::from_utf8(&rendered.stderr).unwrap().lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged to the console: {console:?}");
    assert_eq!(rendered_value(&dom, "findings"), findings.len().to_string());
    assert_eq!(rendered_value(&dom, "savings-found"), format!("{savings:.2}"));
    assert_eq!(rendered_value(&dom, "savings-saved"), "0.00", "a dry-run saves nothing");
    // The trend: both runs, each with what it found (the second's findings were locked by
    // the first, and are found all the same).
    let trend = &dom[dom.find("id=\"trend-found\"").unwrap()..];
    for run in ["r-report-1", "r-report-2"] {
        let bar = format!("data-label=\"{run}\" data-value=\"{}\"", findings.len());
        assert!(trend.contains(&bar), "{bar} in the trend");
    }
    assert!(savings > 0.0);
    let screenshot = work.join("report.png");
    let shot = chromium(&profile)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1280,2400")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot of the page at {} ({size} bytes)", screenshot.display());
    eprintln!("report: {}  screenshot: {}", page.display(), screenshot.display());
    let _ = std::fs::remove_file(policy);
}

/// `janitor audit verify …`: exit code and output.
async fn janitor_verify(endpoint: &str, table: &str, args: &[&str]) -> (i32, String) {
    let out =
        janitor(endpoint, "audit").arg("verify").args(args).args(["--audit-table", table]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_a_modified_a_deleted_and_an_inserted_row() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use janitor_core::audit::{AuditEvent, AuditEventType};
    use janitor_core::aws::{AwsClients, DynamoAuditLog};
    use janitor_core::ports::AuditLog;
    let moto = Moto::start().unwrap();
    // DynamoDB applies a transaction's condition and writes atomically; moto's threaded
    // server needs the proxy for that when writers race.
    let atomic = FaultProxy::serialising_writes(&moto.endpoint).await.unwrap();
    let clients = AwsClients::from_config(testkit::sdk_config_for(&atomic.endpoint).await);
    let tables = TableNames::with_prefix("chain");
    testkit::tables::create_tables(&clients.dynamodb(), &tables).await.unwrap();
    let log = std::sync::Arc::new(DynamoAuditLog::new(clients.dynamodb(), &tables.audit));
    let now = chrono::Utc::now();
    let rows = |run: &str, writer: usize| -> Vec<AuditEvent> {
        (0..5)
            .map(|i| {
                let key = format!("{HOME_ACCOUNT}/{HOME_REGION}/ec2-instance/i-{writer}-{i}");
                let detail =
                    serde_json::json!({ "reason": "idle", "cost": { "monthly_savings": 7.59, "hours": 730.0 } });
                AuditEvent::new(key, run, AuditEventType::Discovered, now, "discovery", detail)
            })
            .collect()
    };
    // Eight writers of one chain at once (a step and its retry, at worst): they take turns.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let log = log.clone();
            let batch = rows("r-ok", w);
            tokio::spawn(async move { log.record(&batch).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    for run in ["r-mod", "r-del", "r-ins", "r-cut"] {
        log.record(&rows(run, 0)).await.unwrap();
        log.record(&rows(run, 1)).await.unwrap();
    }
    // r-cut ends: its chain is sealed in an anchor.
    let anchor = log.anchor_run("r-cut", now).await.unwrap().expect("the DynamoDB log keeps chains");
    assert_eq!((anchor.heads.len(), anchor.heads[0].seq), (1, 10));
    let heads = log.chain_heads(None).await.unwrap();
    let ok_head = heads.iter().find(|(h, _)| h.run_id == "r-ok").unwrap();
    assert_eq!(ok_head.0.seq, 40, "40 rows, one chain, no place taken twice");
    for run in ["r-ok", "r-mod", "r-del", "r-ins", "r-cut"] {
        let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--run", run]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("intact"), "{out}");
    }

    let dynamodb = clients.dynamodb();
    let stored = |run: &'static str| {
        let log = log.clone();
        async move { log.stored_run(run).await.unwrap().0 }
    };
    let key_of = |row: &janitor_core::chain::StoredRow| {
        [
            ("resource".to_owned(), AttributeValue::S(row.event.resource.clone())),
            ("sk".to_owned(), AttributeValue::S(row.sk.clone())),
        ]
        .into()
    };
    // Modified: a row's reason rewritten in place.
    let target = stored("r-mod").await.into_iter().find(|r| r.link.as_ref().unwrap().seq == 4).unwrap();
    dynamodb
        .update_item()
        .table_name(&tables.audit)
        .set_key(Some(key_of(&target)))
        .update_expression("SET #d.#r = :r")
        .expression_attribute_names("#d", "detail")
        .expression_attribute_names("#r", "reason")
        .expression_attribute_values(":r", AttributeValue::S("busy".into()))
        .send()
        .await
        .unwrap();
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--run", "r-mod"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN, first: MODIFIED row 4 of chain r-mod#123456789012/us-east-1"), "{out}");
    assert!(out.contains(&target.sk), "the row is named by its key: {out}");

    // Deleted: a row in the middle taken out.
    let target = stored("r-del").await.into_iter().find(|r| r.link.as_ref().unwrap().seq == 7).unwrap();
    dynamodb.delete_item().table_name(&tables.audit).set_key(Some(key_of(&target))).send().await.unwrap();
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--run", "r-del"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN, first: DELETED row 7 of chain r-del#123456789012/us-east-1"), "{out}");

    // Inserted: a row copying a real one's link (place, previous hash, hash) with other
    // content, and a row with no link at all.
    let original = stored("r-ins").await.into_iter().find(|r| r.link.as_ref().unwrap().seq == 3).unwrap();
    let mut item = dynamodb
        .get_item()
        .table_name(&tables.audit)
        .set_key(Some(key_of(&original)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.insert("sk".into(), AttributeValue::S(format!("{}-forged", original.sk)));
    item.insert("actor".into(), AttributeValue::S("someone".into()));
    dynamodb.put_item().table_name(&tables.audit).set_item(Some(item.clone())).send().await.unwrap();
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--run", "r-ins"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN, first: INSERTED row at 3 of chain r-ins#123456789012/us-east-1"), "{out}");
    assert!(out.contains("-forged"), "{out}");
    for link in ["chain", "seq", "prev", "hash"] {
        item.remove(link);
    }
    item.insert("sk".into(), AttributeValue::S(format!("{}-bare", original.sk)));
    dynamodb.put_item().table_name(&tables.audit).set_item(Some(item)).send().await.unwrap();
    let (_, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--run", "r-ins"]).await;
    assert!(out.contains("carries no link"), "{out}");

    // Cut: r-cut's last row removed and its head set back to the row before, consistently.
    // The chain alone verifies; the anchor sealed when the run ended does not.
    let cut = stored("r-cut").await;
    let place = |seq: u64| cut.iter().find(|r| r.link.as_ref().unwrap().seq == seq).unwrap();
    dynamodb.delete_item().table_name(&tables.audit).set_key(Some(key_of(place(10)))).send().await.unwrap();
    let chain = place(9).link.clone().unwrap();
    dynamodb
        .update_item()
        .table_name(&tables.audit)
        .key("resource", AttributeValue::S(janitor_core::chain::CHAIN_RESOURCE.into()))
        .key("sk", AttributeValue::S(chain.chain.clone()))
        .update_expression("SET #s = :s, #h = :h")
        .expression_attribute_names("#s", "seq")
        .expression_attribute_names("#h", "hash")
        .expression_attribute_values(":s", AttributeValue::N("9".into()))
        .expression_attribute_values(":h", AttributeValue::S(chain.hash.clone()))
        .send()
        .await
        .unwrap();
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--run", "r-cut"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("run r-cut: 9 rows on 1 chain(s), intact"), "{out}");
    assert!(
        out.contains(
            "ANCHORED row 10 of chain r-cut#123456789012/us-east-1 (run r-cut) is gone or is not the row anchored"
        ),
        "{out}"
    );

    // Everything, and the day: three broken runs and one broken anchor.
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--all"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("run r-ok: 40 rows on 1 chain(s), intact"), "{out}");
    assert!(out.contains("5 run(s), 80 row(s) checked, 3 broken; 1 anchor(s) checked, 1 broken"), "{out}");
    let today = now.date_naive().to_string();
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &["--day", &today]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("5 run(s)"), "{out}");

    // The anchor's copy in an Object Lock bucket: with the table's anchor deleted (the chain
    // checks cannot see that: r-cut no longer has an anchor to fail), the copy still says it.
    use janitor_core::ports::AnchorCopies;
    let s3 = clients.s3("123456789012", "us-east-1").await.unwrap();
    testkit::object_lock_bucket(&s3, "chain-anchors", 1).await.unwrap();
    janitor_core::aws::S3AnchorCopies::new(s3, "chain-anchors").keep(&anchor).await.unwrap();
    let with_copies = ["--all", "--anchor-bucket", "chain-anchors"];
    let (_, out) = janitor_verify(&moto.endpoint, &tables.audit, &with_copies).await;
    assert!(out.contains("1 anchor copies read from s3://chain-anchors"), "{out}");
    assert!(!out.contains("differs from its copy"), "{out}");
    let anchors = dynamodb
        .query()
        .table_name(&tables.audit)
        .key_condition_expression("#r = :r")
        .expression_attribute_names("#r", "resource")
        .expression_attribute_values(":r", AttributeValue::S(janitor_core::chain::ANCHORS_RESOURCE.into()))
        .send()
        .await
        .unwrap();
    for item in anchors.items() {
        let key = [("resource", item["resource"].clone()), ("sk", item["sk"].clone())];
        let key = key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        dynamodb.delete_item().table_name(&tables.audit).set_key(Some(key)).send().await.unwrap();
    }
    let (code, out) = janitor_verify(&moto.endpoint, &tables.audit, &with_copies).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ANCHOR of run r-cut differs from its copy outside the table, or is missing"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_subscribe_filters_an_owner_to_their_mail_and_list_flags_a_subscription_taking_everyones() {
    use janitor_core::aws::{self, AwsClients};
    let moto = Moto::start().unwrap();
    let clients = AwsClients::from_config(testkit::sdk_config_for(&moto.endpoint).await);
    let sns = clients.sns();
    let topic = sns.create_topic().name("owner-email").send().await.unwrap().topic_arn().unwrap().to_owned();
    let email = |args: &[&str]| {
        let mut command = janitor(&moto.endpoint, "email");
        command.args(args).args(["--topic", &topic]);
        command
    };
    let out = email(&["subscribe", "Alice@Example.com"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let subs = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap();
    let arn = subs.subscriptions()[0].subscription_arn().unwrap().to_owned();
    let attributes = sns.get_subscription_attributes().subscription_arn(&arn).send().await.unwrap();
    let attributes = attributes.attributes().unwrap();
    assert_eq!(attributes["Endpoint"], "alice@example.com");
    let filter: Value = serde_json::from_str(&attributes["FilterPolicy"]).unwrap();
    assert_eq!(filter, serde_json::json!({ "owner": ["alice@example.com"] }));

    let listed = email(&["list"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success() && text.contains("alice@example.com\tconfirmed\talice@example.com"), "{text}");
    // A subscription without an owner filter would get every owner's mail and snooze links.
    sns.subscribe().topic_arn(&topic).protocol("email").endpoint("everyone@example.com").send().await.unwrap();
    let listed = email(&["list"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.status.code(), Some(1), "{text}");
    assert!(text.contains("everyone@example.com\tconfirmed\tNOT ONE OWNER'S OWN"), "{text}");
    for bad in ["not-an-address", "alice@", "@example.com"] {
        let out = email(&["subscribe", bad]).output().await.unwrap();
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not an email address"),
            "{bad}"
        );
    }

    // The adapter sends to alice only while no subscription could take others' mail.
    use janitor_core::delivery::{Delivery, Digest};
    let finding = janitor_core::model::Finding::new(
        janitor_core::model::ResourceKey::new(
            HOME_ACCOUNT,
            HOME_REGION,
            janitor_core::model::ResourceKind::S3Bucket,
            "b",
        ),
        janitor_core::model::RuleId::S3PublicBucket,
        "public",
        janitor_core::model::Action::BlockPublicAccess,
    );
    let resources = vec![vec![&finding]];
    let links = Default::default();
    let digest = Digest {
        resources: &resources,
        run_id: "r-mail",
        mode: janitor_core::model::Mode::DryRun,
        deadline: janitor_core::slack::Deadline::NextRun,
        part: (1, 1),
        links: &links,
    };
    let refused = aws::SnsEmail::new(&clients, topic.clone()).send("alice@example.com", &digest).await.unwrap_err();
    assert!(refused.to_string().contains("not one owner's own (email everyone@example.com)"), "{refused}");
    let everyone = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap();
    for sub in everyone.subscriptions().iter().filter(|s| s.endpoint() == Some("everyone@example.com")) {
        sns.unsubscribe().subscription_arn(sub.subscription_arn().unwrap()).send().await.unwrap();
    }
    let mail = aws::SnsEmail::new(&clients, topic.clone());
    assert!(!mail.send("alice@example.com", &digest).await.unwrap().ts.is_empty(), "a message id");
    let nobody = mail.send("bob@example.com", &digest).await.unwrap_err();
    assert!(nobody.to_string().contains("bob@example.com has no confirmed subscription"), "{nobody}");
}
