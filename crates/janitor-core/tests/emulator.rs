//! Adapter and pipeline tests against moto in server mode, started by the test itself on a
//! free loopback port. Every assertion reads back real state: payloads produced by the
//! real handlers' entry points, items in the DynamoDB tables, the audit trail.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use janitor_core::audit::AuditEventType;
use janitor_core::aws::{self, AwsClients, DynamoLockStore, DynamoSnoozeStore, TableNames};
use janitor_core::model::{Action, Finding, ResourceKey, ResourceKind, RuleId, RunContext, Scope, StepPayload};
use janitor_core::policy::Policy;
use janitor_core::ports::{LockOutcome, LockStore};
use janitor_core::{Deps, step};
use serde_json::{Value, json};
use testkit::estate::{MEMBER_ACCOUNT, SECOND_REGION, Seeder, seed_twins};
use testkit::proxy::FaultProxy;
use testkit::{HOME_ACCOUNT, HOME_REGION, Moto, emulator_policy};

async fn deps_for(clients: &AwsClients, policy: Policy) -> (Deps, TableNames) {
    let tables = TableNames::with_prefix("test");
    testkit::tables::create_tables(&clients.dynamodb(), &tables).await.unwrap();
    (aws::deps_with(policy, clients.clone(), &tables), tables)
}

/// Runs discovery → metric-check → lock for every scope of the plan, through the same
/// JSON entry points the Lambdas use.
async fn detect(deps: &Deps, request: Value) -> (Value, Vec<StepPayload>, Vec<StepPayload>) {
    let plan = step::discovery(deps, request).await.unwrap();
    let mut discovered = Vec::new();
    let mut locked = Vec::new();
    for item in plan["scopes"].as_array().unwrap() {
        let found = step::discovery(deps, item.clone()).await.unwrap();
        discovered.push(serde_json::from_value(found.clone()).unwrap());
        let checked = step::metric_check(deps, found).await.unwrap();
        let held = step::lock(deps, checked).await.unwrap();
        assert_eq!(held["count"], held["findings"].as_array().unwrap().len());
        locked.push(serde_json::from_value(held).unwrap());
    }
    (plan, discovered, locked)
}

fn keys(payloads: &[StepPayload]) -> BTreeSet<String> {
    payloads.iter().flat_map(|p| p.findings.iter().map(|f| f.key.to_string())).collect()
}

/// The finding of `rule` on the resource `key` (a resource may break several rules).
fn finding<'a>(payloads: &'a [StepPayload], key: &str, rule: RuleId) -> &'a Finding {
    payloads
        .iter()
        .flat_map(|p| &p.findings)
        .find(|f| f.key.as_str() == key && f.policy == rule)
        .unwrap_or_else(|| panic!("no {rule} finding on {key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_is_scanned_account_by_account_without_naming_them() {
    use aws_sdk_organizations::types::OrganizationFeatureSet;
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let org = clients.organizations().await.unwrap();
    org.create_organization().feature_set(OrganizationFeatureSet::All).send().await.unwrap();
    let mut members = std::collections::BTreeMap::new();
    for name in ["dev", "staging", "prod", "sandbox", "closed"] {
        let out = org.create_account().email(format!("{name}@example.com")).account_name(name).send().await.unwrap();
        let id = out.create_account_status().and_then(|s| s.account_id()).unwrap().to_owned();
        members.insert(name, id);
    }
    org.close_account().account_id(&members["closed"]).send().await.unwrap();
    // A violation in each member account: an Elastic IP attached to nothing.
    let mut addresses = std::collections::BTreeMap::new();
    for name in ["dev", "staging", "prod", "sandbox"] {
        let seeder = Seeder::new(clients.clone(), &members[name]);
        addresses.insert(name, seeder.elastic_ip(HOME_REGION, None).await.unwrap());
    }
    let policy_text = testkit::emulator_policy_toml()
        .replace("excluded_accounts = []", &format!("excluded_accounts = [\"{}\"]", members["sandbox"]));
    let policy = Policy::from_toml_str(&policy_text, "org policy").unwrap();
    let (deps, _) = deps_for(&clients, policy).await;

    let (plan, _, locked) = detect(&deps, json!({"mode": "dry-run", "regions": [HOME_REGION], "run_id": "org"})).await;
    let accounts: BTreeSet<&str> =
        plan["scopes"].as_array().unwrap().iter().filter_map(|s| s["run"]["scope"]["account"].as_str()).collect();
    let want: BTreeSet<&str> =
        [HOME_ACCOUNT, members["dev"].as_str(), members["staging"].as_str(), members["prod"].as_str()].into();
    assert_eq!(accounts, want, "the active accounts, less the excluded one: {plan}");
    let failures = plan["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{plan}");
    assert_eq!(
        (failures[0]["scope"]["account"].as_str(), failures[0]["error"].as_str()),
        (Some(members["closed"].as_str()), Some("Janitor.AccountNotActive"))
    );
    for name in ["dev", "staging", "prod"] {
        let key = ResourceKey::new(&members[name], HOME_REGION, ResourceKind::ElasticIp, &addresses[name]);
        finding(&locked, key.as_str(), RuleId::EipUnattached);
    }
    let sandbox = &members["sandbox"];
    assert!(keys(&locked).iter().all(|k| !k.starts_with(sandbox.as_str())), "nothing of the excluded account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_estate_yields_exactly_the_violations_and_locks_them() {
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let (deps, tables) = deps_for(&clients, emulator_policy()).await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    let member = Seeder::new(clients.clone(), MEMBER_ACCOUNT);
    let snoozes = DynamoSnoozeStore::new(clients.dynamodb(), &tables.snooze);
    let estate = seed_twins(&home, &member, &snoozes).await.unwrap();
    testkit::estate::provision_catalog_twins(&moto.service_catalog);

    let request = json!({
        "mode": "dry-run",
        "regions": [HOME_REGION, SECOND_REGION],
        "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT],
        "run_id": "run-one",
    });
    let (plan, discovered, locked) = detect(&deps, request.clone()).await;
    assert_eq!(plan["count"], 6, "2 accounts × (2 regions + account-wide): {plan}");
    assert!(locked.iter().all(|p| p.failures.is_empty()), "no scope may fail: {locked:?}");

    let found = keys(&locked);

    // Each finding's history row carries the table's TTL attribute, in epoch seconds.
    let unused = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::Ec2Instance, estate.id("unused-env"));
    let row = clients
        .dynamodb()
        .get_item()
        .table_name(&tables.audit)
        .key("resource", aws_sdk_dynamodb::types::AttributeValue::S(unused.to_string()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("HISTORY#ec2-unused-environment".into()))
        .send()
        .await
        .unwrap();
    let ttl: i64 = row.item().and_then(|i| i.get("expires_at")).and_then(|v| v.as_n().ok()).unwrap().parse().unwrap();
    let retention = (Utc::now() + Duration::days(400)).timestamp();
    assert!((ttl - retention).abs() < 3600, "expires_at {ttl} is history_retention_days (400) from now");
    assert_eq!(found, estate.expected_findings, "exactly the seeded violations");
    assert!(found.is_disjoint(&estate.untouchable));
    // The functions price through the Price List (the stub's slice of it) first.
    let cost = finding(&locked, unused.as_str(), RuleId::Ec2UnusedEnvironment).cost.clone().unwrap();
    assert_eq!(
        (cost.monthly_cost.map(|c| c.to_string()), cost.monthly_savings.to_string()),
        (Some("$7.59".into()), "$7.59".into())
    );
    assert!(cost.basis.contains("$0.0104/h × 730 h [Price List API]"), "{}", cost.basis);

    let key = |region: &str, name: &str| {
        ResourceKey::new(HOME_ACCOUNT, region, ResourceKind::Ec2Instance, estate.id(name)).to_string()
    };
    let idle = finding(&locked, &key(HOME_REGION, "idle"), RuleId::Ec2IdleCpu);
    assert_eq!((idle.policy, idle.action), (RuleId::Ec2IdleCpu, Action::StopInstance));
    assert_eq!(idle.evidence["max_daily_average_cpu"], 4.9);
    assert_eq!(idle.owner.as_deref(), Some("alice@example.com"));
    let missing = finding(&locked, &key(HOME_REGION, "missing-tags"), RuleId::Ec2MissingTags);
    assert_eq!(missing.policy, RuleId::Ec2MissingTags);
    assert!(missing.reason.contains("CostCenter, Project"), "{}", missing.reason);
    let unused = finding(&locked, &key(HOME_REGION, "unused-env"), RuleId::Ec2UnusedEnvironment);
    assert_eq!(unused.action, Action::StopInstance);
    let db = finding(&locked, &format!("{HOME_ACCOUNT}/{HOME_REGION}/rds-instance/db-idle"), RuleId::RdsIdle);
    assert_eq!((db.policy, db.action), (RuleId::RdsIdle, Action::SnapshotAndDeleteDb));
    let bucket = finding(
        &locked,
        &format!("{HOME_ACCOUNT}/{HOME_REGION}/s3-bucket/janitor-twin-public-policy"),
        RuleId::S3PublicBucket,
    );
    assert_eq!(bucket.owner.as_deref(), Some("web@example.com"));
    let acl_bucket = finding(
        &locked,
        &format!("{HOME_ACCOUNT}/{SECOND_REGION}/s3-bucket/janitor-twin-public-acl"),
        RuleId::S3PublicBucket,
    );
    assert!(acl_bucket.reason.contains("AllUsers"), "{}", acl_bucket.reason);
    let first_seen: Vec<_> =
        locked.iter().flat_map(|p| &p.findings).map(|f| (f.times_flagged, f.first_flagged.is_some())).collect();
    assert!(first_seen.iter().all(|s| *s == (0, true)), "first run: never flagged before");

    // The audit trail says why each twin was or was not flagged.
    let events = deps.audit.events_for_run("run-one").await.unwrap();
    let has = |resource: &str, event: AuditEventType, needle: &str| {
        events.iter().any(|e| e.resource == resource && e.event == event && e.detail.to_string().contains(needle))
    };
    assert!(has(&key(HOME_REGION, "protected"), AuditEventType::Exempt, "protect tag"));
    assert!(has(&key(HOME_REGION, "snoozed"), AuditEventType::Exempt, "snoozed"));
    assert!(has(&key(HOME_REGION, "busy"), AuditEventType::NotIdle, "5.10"));
    assert!(has(&key(HOME_REGION, "partial-data"), AuditEventType::NotIdle, "5 of 7 days"));
    assert!(has(&key(HOME_REGION, "no-data"), AuditEventType::NotIdle, "0 of 7 days"));
    assert!(has(&key(HOME_REGION, "idle"), AuditEventType::Idle, "4.9"));
    assert!(has(&key(HOME_REGION, "unused-env"), AuditEventType::Discovered, "Environment=testing"));
    for f in &found {
        assert!(has(f, AuditEventType::Locked, "until"), "LOCKED audit row for {f}");
    }
    let by_resource = deps.audit.events_for_resource(&key(HOME_REGION, "idle")).await.unwrap();
    assert!(by_resource.iter().any(|e| e.event == AuditEventType::Idle));

    // The run's findings export from its trail alone: every finding, each with its rule's
    // evidence, owner, action and where it got to (locked, here).
    let exported = janitor_core::export::findings_of_run(&events);
    let exported_keys: BTreeSet<String> = exported.iter().map(|r| r.key.clone()).collect();
    assert_eq!(exported_keys, found, "the export lists exactly the run's findings");
    let idle = exported.iter().find(|r| r.key == key(HOME_REGION, "idle")).unwrap();
    assert_eq!(idle.policy, Some(RuleId::Ec2IdleCpu));
    assert_eq!(idle.evidence["max_daily_average_cpu"], 4.9);
    assert_eq!((idle.owner.as_deref(), idle.action.as_deref()), (Some("alice@example.com"), Some("stop-instance")));
    assert_eq!(idle.outcome, AuditEventType::Locked);
    let unused = exported.iter().find(|r| r.key == key(HOME_REGION, "unused-env")).unwrap();
    assert_eq!(unused.evidence["value"], "testing");
    assert_eq!(unused.policy, Some(RuleId::Ec2UnusedEnvironment));

    // Every finding is locked by this run, for the whole run (grace + margin).
    let locks = DynamoLockStore::new(clients.dynamodb(), &tables.lock);
    for f in &found {
        let (holder, until) = locks.holder(&ResourceKey::parse(f).unwrap()).await.unwrap().expect("lock item");
        assert_eq!(holder, "run-one");
        assert!(until > Utc::now() + Duration::hours(90));
    }

    // A second run sees the history and finds everything held by the first run.
    let mut second = request.clone();
    second["run_id"] = json!("run-two");
    let (_, discovered_again, locked_again) = detect(&deps, second).await;
    let again: Vec<&Finding> = discovered_again.iter().flat_map(|p| &p.findings).collect();
    let rule = RuleId::Ec2UnusedEnvironment;
    let unused =
        again.iter().find(|f| f.key.to_string() == key(HOME_REGION, "unused-env") && f.policy == rule).unwrap();
    assert_eq!(unused.times_flagged, 1);
    assert_eq!(unused.first_flagged, finding(&discovered, &key(HOME_REGION, "unused-env"), rule).first_flagged);
    assert!(locked_again.iter().all(|p| p.count == 0), "all held by run-one");
    let held: BTreeSet<String> =
        locked_again.iter().flat_map(|p| p.held_elsewhere.iter().map(ToString::to_string)).collect();
    assert_eq!(held, estate.expected_findings);

    // With the production age gate, resources launched "now" are never idle.
    let (strict, _) = deps_for(&clients, Policy::builtin().unwrap()).await;
    let us = discovered.iter().find(|p| p.run.scope == Some(Scope::new(HOME_ACCOUNT, HOME_REGION))).unwrap();
    let checked: StepPayload =
        serde_json::from_value(step::metric_check(&strict, serde_json::to_value(us).unwrap()).await.unwrap()).unwrap();
    assert!(checked.findings.iter().all(|f| f.policy != RuleId::Ec2IdleCpu && f.policy != RuleId::RdsIdle));
    let strict_events = strict.audit.events_for_resource(&key(HOME_REGION, "idle")).await.unwrap();
    assert!(
        strict_events
            .iter()
            .any(|e| e.event == AuditEventType::NotIdle && e.detail.to_string().contains("younger than"))
    );
}

fn synthetic_payload(run_id: &str, count: usize) -> StepPayload {
    let scope = Scope::new(HOME_ACCOUNT, HOME_REGION);
    let mut payload = StepPayload::new(RunContext {
        id: run_id.into(),
        mode: Default::default(),
        scope: Some(scope),
        started_at: None,
    });
    payload.findings = (0..count)
        .map(|i| {
            let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::ElasticIp, &format!("eipalloc-{i:04}"));
            Finding::new(key, RuleId::EipUnattached, "unattached", Action::ReleaseAddress)
        })
        .collect();
    payload.recount();
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_runs_each_hold_a_resource_exactly_once() {
    let moto = Moto::start().unwrap();
    // Both runs' lock steps really race; the proxy only gives moto DynamoDB's atomic
    // conditional writes (its threaded server can let two racing puts both pass).
    let atomic = FaultProxy::serialising_writes(&moto.endpoint).await.unwrap();
    let clients = AwsClients::from_config(testkit::sdk_config_for(&atomic.endpoint).await);
    let (deps, tables) = deps_for(&clients, emulator_policy()).await;
    let a = serde_json::to_value(synthetic_payload("run-a", 40)).unwrap();
    let b = serde_json::to_value(synthetic_payload("run-b", 40)).unwrap();
    let (a_out, b_out) = tokio::join!(step::lock(&deps, a.clone()), step::lock(&deps, b));
    let a_out: StepPayload = serde_json::from_value(a_out.unwrap()).unwrap();
    let b_out: StepPayload = serde_json::from_value(b_out.unwrap()).unwrap();
    let a_keys: BTreeSet<_> = a_out.findings.iter().map(|f| f.key.clone()).collect();
    let b_keys: BTreeSet<_> = b_out.findings.iter().map(|f| f.key.clone()).collect();
    assert!(a_keys.is_disjoint(&b_keys), "no resource held by both runs");
    assert_eq!(a_keys.len() + b_keys.len(), 40, "every resource held by one run");
    assert_eq!(a_out.held_elsewhere.len(), b_keys.len());
    let store = DynamoLockStore::new(clients.dynamodb(), &tables.lock);
    for key in &a_keys {
        assert_eq!(store.holder(key).await.unwrap().unwrap().0, "run-a");
    }
    for key in &b_keys {
        assert_eq!(store.holder(key).await.unwrap().unwrap().0, "run-b");
    }

    // Re-entrant: a retried lock step of run-a keeps exactly what it had.
    let again: StepPayload = serde_json::from_value(step::lock(&deps, a).await.unwrap()).unwrap();
    assert_eq!(again.findings.iter().map(|f| f.key.clone()).collect::<BTreeSet<_>>(), a_keys);

    // An expired lock is taken over; a live one is not, and released locks are free again.
    let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::ElasticIp, "eipalloc-stale");
    let now = Utc::now();
    assert_eq!(
        store.acquire(&key, "old-run", now - Duration::days(10), now - Duration::days(1)).await.unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(store.acquire(&key, "run-c", now, now + Duration::hours(1)).await.unwrap(), LockOutcome::Acquired);
    assert!(
        matches!(store.acquire(&key, "run-d", now, now + Duration::hours(1)).await.unwrap(), LockOutcome::HeldBy { run_id, .. } if run_id == "run-c")
    );
    store.release(&key, "run-d").await.unwrap();
    assert_eq!(store.holder(&key).await.unwrap().unwrap().0, "run-c", "only the holder can release");
    store.release(&key, "run-c").await.unwrap();
    assert_eq!(store.holder(&key).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_answering_access_denied_is_reported_while_others_are_scanned() {
    let moto = Moto::start().unwrap();
    let direct = moto.clients().await;
    let seeder = Seeder::new(direct.clone(), HOME_ACCOUNT);
    let us = seeder.instance(HOME_REGION, &[("Environment", "testing")]).await.unwrap();
    seeder.instance(SECOND_REGION, &[("Environment", "testing")]).await.unwrap();

    let proxy = FaultProxy::start(&moto.endpoint, &[SECOND_REGION]).await.unwrap();
    let catalog_proxy = FaultProxy::start(&moto.service_catalog.endpoint, &[SECOND_REGION]).await.unwrap();
    let via_proxy = AwsClients::from_config(testkit::sdk_config_for(&proxy.endpoint).await)
        .with_service_catalog_endpoint(&catalog_proxy.endpoint);
    let tables = TableNames::with_prefix("test");
    testkit::tables::create_tables(&direct.dynamodb(), &tables).await.unwrap();
    let deps = aws::deps_with(emulator_policy(), via_proxy, &tables);

    let plan =
        step::discovery(&deps, json!({"regions": [HOME_REGION, SECOND_REGION], "run_id": "run-denied"})).await.unwrap();
    let mut payloads = Vec::new();
    for item in plan["scopes"].as_array().unwrap() {
        let out = step::discovery(&deps, item.clone()).await.expect("AccessDenied is recorded, not thrown");
        payloads.push(serde_json::from_value::<StepPayload>(out).unwrap());
    }
    let scope_of = |region: &str| payloads.iter().find(|p| p.run.scope.as_ref().unwrap().region == region).unwrap();
    let denied = scope_of(SECOND_REGION);
    assert!(denied.findings.is_empty() && denied.candidates.is_empty());
    let what: BTreeSet<&str> = denied.failures.iter().map(|f| f.what.as_str()).collect();
    let every_regional_kind = [
        "ec2-instance",
        "rds-instance",
        "elastic-ip",
        "ebs-volume",
        "security-group",
        "ebs-snapshot",
        "rds-snapshot",
        "lambda-function",
        "provisioned-product",
    ];
    assert_eq!(what, BTreeSet::from(every_regional_kind));
    assert!(denied.failures.iter().all(|f| f.error == "Janitor.AccessDenied"), "{:?}", denied.failures);
    let healthy = scope_of(HOME_REGION);
    assert!(healthy.failures.is_empty());
    // One instance, a finding per rule it breaks.
    let found: Vec<(String, RuleId)> = healthy.findings.iter().map(|f| (f.id.clone(), f.policy)).collect();
    assert_eq!(found, vec![(us.clone(), RuleId::Ec2UnusedEnvironment), (us, RuleId::Ec2MissingTags)]);

    let events = deps.audit.events_for_resource(&Scope::new(HOME_ACCOUNT, SECOND_REGION).audit_key()).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event == AuditEventType::Failed).count(), every_regional_kind.len());
}

/// AWS takes no final snapshot of a read replica, and an Aurora member's deletion (and its
/// deletion protection) belongs to its cluster: idle ones are notified, never "final
/// snapshot then delete" — decided at discovery and re-read by the remediator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_replicas_and_cluster_members_are_notify_only_and_never_deleted() {
    use janitor_core::aws::AwsRemediator;
    use janitor_core::ports::{ActionOutcome, Remediator};
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let (deps, _) = deps_for(&clients, emulator_policy()).await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    let owner = [("Owner", "dba@example.com")];
    home.database(HOME_REGION, "db-source", &owner).await.unwrap();
    home.read_replica(HOME_REGION, "db-replica", "db-source", &owner).await.unwrap();
    home.aurora_member(HOME_REGION, "aurora-guarded", "db-member", true, &owner).await.unwrap();
    let idle = vec![Some(0.0); 7];
    let ids = ["db-source", "db-replica", "db-member"];
    home.daily_connections(HOME_REGION, &ids.map(|id| (id, idle.clone()))).await.unwrap();

    let item =
        json!({"run": {"id": "r-rds", "mode": "enforce", "scope": {"account": HOME_ACCOUNT, "region": HOME_REGION}}});
    let found = step::discovery(&deps, item).await.unwrap();
    let checked: StepPayload = serde_json::from_value(step::metric_check(&deps, found).await.unwrap()).unwrap();
    let key = |id: &str| format!("{HOME_ACCOUNT}/{HOME_REGION}/rds-instance/{id}");
    let source = finding(std::slice::from_ref(&checked), &key("db-source"), RuleId::RdsIdle);
    assert_eq!((source.policy, source.action), (RuleId::RdsIdle, Action::SnapshotAndDeleteDb));
    let replica = finding(std::slice::from_ref(&checked), &key("db-replica"), RuleId::RdsIdle);
    assert_eq!((replica.policy, replica.action), (RuleId::RdsIdle, Action::NotifyOnly), "{replica:?}");
    assert!(replica.reason.contains("read replica of db-source"), "{}", replica.reason);
    let member = finding(std::slice::from_ref(&checked), &key("db-member"), RuleId::RdsIdle);
    assert_eq!((member.policy, member.action), (RuleId::RdsIdle, Action::NotifyOnly), "{member:?}");
    assert!(member.reason.contains("cluster aurora-guarded"), "{}", member.reason);
    assert_eq!(member.owner.as_deref(), Some("dba@example.com"), "the owner is still told");

    // Even handed a delete for them (an old payload, a policy edit), the remediator re-reads
    // the instance and refuses.
    let remediator = AwsRemediator::new(clients.clone(), "janitor:protect");
    for f in [replica, member] {
        let forced = Finding { action: Action::SnapshotAndDeleteDb, ..f.clone() };
        let out = remediator.apply(&forced, Utc::now()).await.unwrap();
        assert!(matches!(out, ActionOutcome::Skipped(_)), "{}: {out:?}", f.id);
        assert!(testkit::probe::db_exists(&clients, HOME_REGION, &f.id).await, "{} still exists", f.id);
    }
}

/// The snooze table's conditional writes on DynamoDB itself: a shorter snooze never replaces
/// a longer one (an expired one that TTL has not yet deleted is always shorter), and a
/// signed request is seen once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snooze_table_keeps_the_longer_snooze_and_sees_each_request_once() {
    use janitor_core::model::Snooze;
    use janitor_core::ports::SnoozeStore;
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let (_, tables) = deps_for(&clients, emulator_policy()).await;
    let store = DynamoSnoozeStore::new(clients.dynamodb(), &tables.snooze);
    let now = Utc::now();
    let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::Ec2Instance, "i-0123456789abcdef0");
    let snooze = |days: i64, at| Snooze { key: key.clone(), until: at + Duration::days(days), by: "U1".into(), at };
    let live_until = || async { store.live_snoozes(std::slice::from_ref(&key), now).await.unwrap()[&key].until };

    assert!(store.put_snooze(&snooze(30, now)).await.unwrap(), "nothing stored yet");
    assert!(!store.put_snooze(&snooze(7, now)).await.unwrap(), "7 days would shorten 30");
    assert!(!store.put_snooze(&snooze(30, now)).await.unwrap(), "the same end is not longer");
    assert_eq!(live_until().await.timestamp(), (now + Duration::days(30)).timestamp());
    assert!(store.put_snooze(&snooze(31, now)).await.unwrap(), "a longer one extends it");
    assert_eq!(live_until().await.timestamp(), (now + Duration::days(31)).timestamp());

    // Expired but still stored (TTL deletes late): any new snooze replaces it.
    let other = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::Ec2Instance, "i-0fedcba9876543210");
    let old =
        Snooze { key: other.clone(), until: now - Duration::days(1), by: "U1".into(), at: now - Duration::days(8) };
    assert!(store.put_snooze(&old).await.unwrap());
    let fresh = Snooze { key: other.clone(), until: now + Duration::days(1), by: "U2".into(), at: now };
    assert!(store.put_snooze(&fresh).await.unwrap(), "an expired snooze is shorter than any live one");
    let live = store.live_snoozes(std::slice::from_ref(&other), now).await.unwrap();
    assert_eq!(live[&other].by, "U2");

    let until = now + Duration::minutes(10);
    assert!(store.first_sight("v0=abc123", until).await.unwrap());
    assert!(!store.first_sight("v0=abc123", until).await.unwrap(), "a replay");
    assert!(store.first_sight("v0=def456", until).await.unwrap());
    // Seen requests never read as snoozes.
    assert_eq!(store.live_snoozes(&[key.clone(), other.clone()], now).await.unwrap().len(), 2);
}

/// `ec2-stopped-missing-tags` on the emulator: a stopped instance missing a required tag is
/// reported notify-only; one with every tag, a protected one and a snoozed one are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_instances_missing_tags_are_reported_and_never_acted_on() {
    use janitor_core::model::Snooze;
    use janitor_core::ports::SnoozeStore;
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let (deps, tables) = deps_for(&clients, emulator_policy()).await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    let all = [("Owner", "ops@example.com"), ("CostCenter", "cc-1"), ("Project", "p")];
    let untagged = [("Owner", "ops@example.com")];
    let protected = [("Owner", "ops@example.com"), ("janitor:protect", "true")];
    let mut ids = std::collections::BTreeMap::new();
    for (name, tags) in
        [("untagged", &untagged[..]), ("tagged", &all[..]), ("protected", &protected[..]), ("snoozed", &untagged[..])]
    {
        let id = home.instance(HOME_REGION, tags).await.unwrap();
        home.stop(HOME_REGION, &id).await.unwrap();
        ids.insert(name, id);
    }
    let key = |name: &str| ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::Ec2Instance, &ids[name]);
    let now = Utc::now();
    let snoozes = DynamoSnoozeStore::new(clients.dynamodb(), &tables.snooze);
    let snooze = Snooze { key: key("snoozed"), until: now + Duration::days(3), by: "U1".into(), at: now };
    snoozes.put_snooze(&snooze).await.unwrap();

    let item = json!({"run": {"id": "r-stopped", "mode": "enforce", "scope": {"account": HOME_ACCOUNT, "region": HOME_REGION}}});
    let found: StepPayload = serde_json::from_value(step::discovery(&deps, item).await.unwrap()).unwrap();
    let flagged: Vec<&Finding> = found.findings.iter().filter(|f| f.policy == RuleId::Ec2StoppedMissingTags).collect();
    assert_eq!(flagged.len(), 1, "{:?}", found.findings);
    let f = flagged[0];
    assert_eq!(f.key, key("untagged"));
    assert_eq!(f.action, Action::NotifyOnly);
    assert!(f.reason.contains("CostCenter, Project"), "{}", f.reason);
    assert_eq!(f.owner.as_deref(), Some("ops@example.com"));
    assert!(found.candidates.iter().all(|c| !ids.values().any(|id| c.key.id() == id)), "stopped is never idle-checked");
    let events = deps.audit.events_for_run("r-stopped").await.unwrap();
    let exempt =
        |name: &str| events.iter().any(|e| e.resource == key(name).as_str() && e.event == AuditEventType::Exempt);
    assert!(exempt("protected") && exempt("snoozed"), "{events:?}");
    assert!(
        !events.iter().any(|e| e.resource == key("tagged").as_str() && e.policy == Some(RuleId::Ec2StoppedMissingTags)),
        "a stopped instance with every tag is not a tag finding"
    );
    // Stopped long (the emulator policy's threshold is 0 days): the stop time is EC2's own.
    let long: BTreeSet<&str> =
        found.findings.iter().filter(|f| f.policy == RuleId::Ec2StoppedLong).map(|f| f.key.as_str()).collect();
    assert_eq!(
        long,
        BTreeSet::from([key("untagged").as_str(), key("tagged").as_str()]),
        "protected and snoozed exempt"
    );
    let tagged = found.findings.iter().find(|f| f.policy == RuleId::Ec2StoppedLong && f.key == key("tagged")).unwrap();
    let stopped_at: chrono::DateTime<Utc> = serde_json::from_value(tagged.evidence["stopped_at"].clone()).unwrap();
    assert!((now - stopped_at).num_minutes().abs() < 10, "read from the state transition reason: {stopped_at}");
    assert_eq!(tagged.action, Action::NotifyOnly);
}

/// Seed 000 through the real Service Catalog client against the stub: every product of
/// each account (two pages of them), judged per launcher, against an allow-list the operator
/// keeps in the run bucket; a missing list is a recorded failure that blinds only its rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_products_are_judged_per_account_against_the_allow_list_in_the_run_bucket() {
    use testkit::service_catalog::StubProduct;
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let now = Utc::now();
    let product = |id: String, account: &str, name: String, user: &str, session: Option<String>| StubProduct {
        id,
        account: account.into(),
        region: HOME_REGION.into(),
        name,
        product_name: "sandbox-vpc".into(),
        user_arn: user.into(),
        user_arn_session: session,
        created: now - Duration::days(1),
        tags: vec![],
    };
    let dev = format!("arn:aws:iam::{HOME_ACCOUNT}:role/AWSReservedSSO_Developer_0123abcd");
    let dave = format!("arn:aws:sts::{HOME_ACCOUNT}:assumed-role/AWSReservedSSO_Developer_0123abcd/dave@example.com");
    for n in 0..120 {
        let id = format!("pp-dave{n:09}");
        moto.service_catalog.provision(product(id, HOME_ACCOUNT, format!("dave-env-{n}"), &dev, Some(dave.clone())));
    }
    // Control Tower's vended accounts are provisioned products too: excluded by the policy.
    moto.service_catalog.provision(StubProduct {
        product_name: "AWS Control Tower Account Factory".into(),
        ..product(
            "pp-ctaccount0001".into(),
            HOME_ACCOUNT,
            "Workloads Prod".into(),
            &format!("arn:aws:iam::{HOME_ACCOUNT}:role/AWSControlTowerAdmin"),
            None,
        )
    });
    let mallory = format!("arn:aws:iam::{MEMBER_ACCOUNT}:user/mallory");
    moto.service_catalog.provision(product("pp-mallory00001".into(), MEMBER_ACCOUNT, "lab".into(), &mallory, None));

    let bucket = "janitor-sc-runs";
    let s3 = clients.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let key = "config/allowed-launchers.txt";
    let body = testkit::estate::ALLOW_LIST_BODY.as_bytes().to_vec();
    s3.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
    let policy = Policy::from_toml_str(&testkit::pipeline_policy_with_grace("0s"), "pipeline").unwrap();
    let (mut deps, _) = deps_for(&clients, policy).await;
    deps.runs = std::sync::Arc::new(aws::S3RunStore::new(s3.clone(), bucket));

    let request = json!({ "regions": [HOME_REGION], "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT], "run_id": "sc-1", "mode": "dry-run" });
    let (_, discovered, _) = detect(&deps, request.clone()).await;
    let of = |payloads: &[StepPayload], rule: RuleId| -> BTreeSet<String> {
        payloads.iter().flat_map(|p| &p.findings).filter(|f| f.policy == rule).map(|f| f.key.to_string()).collect()
    };
    let per_user = of(&discovered, RuleId::ScProductsPerUser);
    assert_eq!(per_user.len(), 115, "dave's products past his oldest five, across both pages");
    assert!(per_user.iter().all(|k| k.starts_with(&format!("{HOME_ACCOUNT}/"))));
    let home = |id: &str| ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::ProvisionedProduct, id).to_string();
    assert!(!per_user.contains(&home("pp-dave000000004")) && per_user.contains(&home("pp-dave000000005")));
    let member = ResourceKey::new(MEMBER_ACCOUNT, HOME_REGION, ResourceKind::ProvisionedProduct, "pp-mallory00001");
    assert_eq!(of(&discovered, RuleId::ScUnauthorizedLauncher), BTreeSet::from([member.to_string()]));
    assert!(discovered.iter().flat_map(|p| &p.findings).all(|f| f.key.id() != "pp-ctaccount0001"));
    let owner = discovered.iter().flat_map(|p| &p.findings).find(|f| f.key.id() == "pp-dave000000100").unwrap();
    assert_eq!(owner.owner.as_deref(), Some("dave@example.com"), "no owner tag: the launcher's SSO session");
    assert!(
        discovered.iter().all(|p| p.failures.is_empty()),
        "{:?}",
        discovered.iter().map(|p| &p.failures).collect::<Vec<_>>()
    );
    let searches: Vec<_> = moto
        .service_catalog
        .calls()
        .into_iter()
        .filter(|c| c.operation == "SearchProvisionedProducts" && c.account.as_deref() == Some(HOME_ACCOUNT))
        .collect();
    assert_eq!(searches.len(), 2, "120 products come in two pages of 100");
    assert!(searches.iter().all(|c| c.body["AccessLevelFilter"] == json!({ "Key": "Account", "Value": "self" })));

    // Recheck asks whether a product no longer listed still exists: terminated, it does not.
    let gone = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::ProvisionedProduct, "pp-dave000000119");
    assert!(deps.inventory.exists(&gone).await.unwrap());
    moto.service_catalog.terminate("pp-dave000000119");
    assert!(!deps.inventory.exists(&gone).await.unwrap(), "ResourceNotFoundException reads as gone");

    // The operator deletes the list: the launcher rule cannot judge (a recorded failure of
    // each scope with products), the other Service Catalog rules still do.
    s3.delete_object().bucket(bucket).key(key).send().await.unwrap();
    let request = json!({ "regions": [HOME_REGION], "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT], "run_id": "sc-2", "mode": "dry-run" });
    let (_, discovered, _) = detect(&deps, request).await;
    assert!(of(&discovered, RuleId::ScUnauthorizedLauncher).is_empty());
    assert_eq!(of(&discovered, RuleId::ScProductsPerUser).len(), 114);
    let failures: Vec<_> = discovered.iter().flat_map(|p| &p.failures).collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures.iter().all(|f| f.what == "provisioned-product/launcher-allow-list" && f.error == "Janitor.Config")
    );
    assert!(failures[0].message.contains("not in the run bucket"), "{}", failures[0].message);
}

/// Recheck asks whether a flagged resource that is no longer listed still exists, with the
/// one read per kind its role is granted: a deleted Lambda function (GetFunctionConfiguration
/// answering ResourceNotFoundException) is gone, a live one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lambda_function_reads_as_gone() {
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    home.lambda_function(HOME_REGION, "janitor-exists-probe", &[]).await.unwrap();
    let (deps, _) = deps_for(&clients, emulator_policy()).await;
    let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::LambdaFunction, "janitor-exists-probe");
    assert!(deps.inventory.exists(&key).await.unwrap());
    let lambda = clients.lambda(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    lambda.delete_function().function_name("janitor-exists-probe").send().await.unwrap();
    assert!(!deps.inventory.exists(&key).await.unwrap(), "ResourceNotFoundException reads as gone");
    let calls = clients.stats().snapshot();
    assert!(calls.get("Lambda").is_some_and(|ops| ops.contains_key("GetFunctionConfiguration")), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_price_list_api_answers_one_price_per_key_through_the_real_sdk() {
    use janitor_core::cost::{PriceKey, PriceOrigin, PriceSource};
    use testkit::pricing::ec2_instance;
    let moto = Moto::start().unwrap();
    let api = aws::AwsPriceList::new(moto.clients().await);
    let price = |key: &'static str| {
        let api = &api;
        async move {
            let key: PriceKey = key.parse().unwrap();
            api.unit_price(&key).await.unwrap().map(|p| {
                assert_eq!(p.origin, PriceOrigin::PriceListApi);
                p.usd
            })
        }
    };
    // Each beside neighbours a looser query would also match (see testkit::pricing).
    for (key, expected) in [
        ("ec2/us-east-1/t3.micro", Some(0.0104)), // not its capacity-reservation rows
        ("ec2/eu-west-1/t3.micro", Some(0.0114)),
        ("ebs/us-east-1/gp3", Some(0.08)),      // not the Local Zone's $0.10
        ("ebs-snapshot/eu-west-1", Some(0.05)), // not the archive tier
        ("ipv4/us-east-1", Some(0.005)),        // not a contiguous block
        ("rds/us-east-1/db.t3.micro/postgres/multi-az", Some(0.036)),
        ("rds/us-east-1/db.t3.micro/mysql/single-az", Some(0.017)),
        ("rds-storage/us-east-1/gp2/single-az", Some(0.115)),
        ("rds-backup/eu-west-1", Some(0.095)),
        ("lambda-gb-second/us-east-1/x86_64", Some(0.0000166667)), // the first tier
        ("lambda-request/eu-west-1", Some(0.0000002)),
        ("ec2/us-east-1/m5.large", None), // not in this list: the bundled table answers it
        ("rds-storage/us-east-1/aurora/single-az", None),
    ] {
        assert_eq!(price(key).await, expected, "{key}");
    }
    let calls = moto.service_catalog.calls();
    let first = calls.iter().find(|c| c.operation == "GetProducts").unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["ServiceCode"], "AmazonEC2");
    assert_eq!(first.body["FormatVersion"], "aws_v1");
    let filters = first.body["Filters"].as_array().unwrap();
    for (field, value) in [("regionCode", "us-east-1"), ("locationType", "AWS Region"), ("capacitystatus", "Used")] {
        assert!(filters.iter().any(|f| f["Field"] == field && f["Value"] == value), "{field}: {filters:?}");
    }
    assert_eq!(calls.iter().filter(|c| c.operation == "GetProducts").count(), 12, "the aurora key asks nothing");

    // Rows of one price come in pages of 100 and are one price, up to five pages; a query
    // matching more names no one price, nor do two prices for one key.
    let asked = || moto.service_catalog.calls().iter().filter(|c| c.operation == "GetProducts").count();
    let rows = |n: usize, usd: &str| -> Vec<Value> {
        (0..n).map(|_| ec2_instance("us-east-1", "t3.small", "Used", "AWS Region", usd)).collect()
    };
    for (count, pages, expected) in [(250, 3, Some(0.0208)), (500, 5, Some(0.0208)), (501, 6, None)] {
        let before = asked();
        moto.service_catalog.publish_prices(rows(count, "0.0208000000"));
        assert_eq!(price("ec2/us-east-1/t3.small").await, expected, "{count} rows");
        assert_eq!(asked() - before, pages, "{count} rows: pages read");
    }
    let mut two = rows(150, "0.0208000000");
    two.extend(rows(1, "0.0300000000"));
    moto.service_catalog.publish_prices(two);
    assert_eq!(price("ec2/us-east-1/t3.small").await, None, "two prices for one key are no answer");
}

/// The Teams adapter against the webhook stub, as Teams answers: Workflows' 202, a legacy
/// connector's 200 `1`, its 200 with an error text (a failure, not a delivery), throttling
/// waited out, a webhook the secret does not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_webhooks_take_a_card_and_a_refusal_disguised_as_200_is_a_failure() {
    use janitor_core::delivery::{Delivery, Digest};
    use janitor_core::slack::Deadline;
    use janitor_core::teams::{TeamsSecret, TeamsWebhooks};
    use testkit::teams::{Answer, TeamsStub};
    let stub = TeamsStub::start().await.unwrap();
    stub.answer("legacy", Answer::Legacy);
    stub.answer("refusing", Answer::LegacyRefused);
    let secret = TeamsSecret::parse(&stub.secret(&["flow", "legacy", "refusing"])).unwrap();
    let teams = TeamsWebhooks::new(secret).unwrap();
    let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::Ec2Instance, "i-0teams");
    let finding = Finding::new(key, RuleId::Ec2MissingTags, "missing CostCenter", Action::StopInstance);
    let resources = vec![vec![&finding]];
    let links = Default::default();
    let digest = Digest {
        resources: &resources,
        run_id: "r-teams",
        mode: janitor_core::model::Mode::DryRun,
        deadline: Deadline::NextRun,
        part: (1, 1),
        links: &links,
    };

    let posted = teams.send("flow", &digest).await.unwrap();
    assert_eq!(posted.channel, "flow");
    let card = &stub.cards("flow")[0]["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert!(card.to_string().contains("i-0teams") && card.to_string().contains("missing CostCenter"), "{card}");
    teams.send("legacy", &digest).await.unwrap();
    assert_eq!(stub.cards("legacy").len(), 1);

    let refused = teams.send("refusing", &digest).await.unwrap_err();
    assert_eq!(refused.error_name(), "Janitor.DeliveryError");
    assert!(refused.to_string().contains("HTTP error 413"), "{refused}");
    assert!(stub.cards("refusing").is_empty());

    stub.throttle_next(1);
    teams.follow_up("flow", "Grace period over, rechecked.").await.unwrap();
    assert_eq!(stub.cards("flow").len(), 2, "posted once the throttling passed");

    let unknown = teams.send("nowhere", &digest).await.unwrap_err();
    assert!(unknown.to_string().contains("no webhook named `nowhere`"), "{unknown}");
    assert!(TeamsSecret::parse(r#"{"webhooks": {"x": "http://example.com/hook"}}"#).is_err(), "https only");
}
