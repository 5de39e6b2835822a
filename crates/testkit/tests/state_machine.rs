//! The shipped state machine and template, checked offline and run for real: the ASL in
//! `statemachine/` is executed unchanged by aws-local-stepfunctions, each Task invoking the
//! real handler binary, against moto and the Slack stub. Nothing here re-states the order
//! of the steps: the ASL decides it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use chrono::Utc;
use janitor_core::JanitorError;
use janitor_core::audit::AuditEventType;
use janitor_core::aws::{AwsClients, DynamoAuditLog, DynamoSnoozeStore, TableNames, dynamo};
use janitor_core::local::node_binary;
use janitor_core::model::{Finding, ResourceKey, ResourceKind, RuleId, Scope};
use janitor_core::ports::{AuditLog, SnoozeStore};
use serde_json::{Value, json};
use testkit::estate::{MEMBER_ACCOUNT, SECOND_REGION, TwinEstate, TwinWorld};
use testkit::probe::{
    bucket_blocked, db_exists, eip_exists, group_ingress, has_final_snapshot, instance_state, kept_snapshots,
    volume_exists,
};
use testkit::slack::SlackStub;
use testkit::state_machine::{
    Execution, LocalStateMachine, PipelineOptions, click_snooze, local_pipeline, snooze_link_event,
};
use testkit::template::{
    ACTIONS_OFF_THE_HAPPY_PATH, HOME_ONLY_ACTIONS, IMPLIED_ACTIONS, Template, member_role_actions, observed_actions,
    venv_tool,
};
use testkit::{HOME_ACCOUNT, HOME_REGION, Moto, repo_root};

fn asl_text() -> String {
    std::fs::read_to_string(repo_root().join(janitor_core::local::DEFINITION)).unwrap()
}

fn asl() -> Value {
    serde_json::from_str(&asl_text()).unwrap()
}

/// Every state of the definition, the Map's processor included, by name.
fn all_states(states: &Value, out: &mut BTreeMap<String, Value>) {
    for (name, state) in states.as_object().unwrap() {
        assert!(out.insert(name.clone(), state.clone()).is_none(), "state name {name} is used twice");
        if let Some(inner) = state.get("ItemProcessor").or(state.get("Iterator")) {
            all_states(&inner["States"], out);
        }
    }
}

fn states() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    all_states(&asl()["States"], &mut out);
    out
}

// ------------------------------------------------------------------ offline checks

#[test]
fn every_asl_placeholder_has_a_definition_substitution_and_back() {
    let text = asl_text();
    let mut placeholders = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').expect("unclosed ${") + start;
        placeholders.insert(rest[start + 2..end].to_owned());
        rest = &rest[end..];
    }
    let substitutions = Template::load().unwrap().definition_substitutions().unwrap();
    assert!(!placeholders.is_empty());
    assert_eq!(placeholders, substitutions, "ASL placeholders vs the template's DefinitionSubstitutions");
}

#[test]
fn every_custom_error_name_in_retry_and_catch_is_one_the_core_emits() {
    let mut names = BTreeSet::new();
    for (state_name, state) in states() {
        for clause in ["Retry", "Catch"] {
            for rule in state[clause].as_array().into_iter().flatten() {
                for name in rule["ErrorEquals"].as_array().unwrap() {
                    let name = name.as_str().unwrap().to_owned();
                    if !name.starts_with("States.") && !name.starts_with("Lambda.") {
                        assert!(
                            JanitorError::ALL_ERROR_NAMES.contains(&name.as_str()),
                            "{state_name}: {name} is not an error name the core emits"
                        );
                    }
                    names.insert(name);
                }
            }
        }
    }
    assert!(names.contains("Janitor.Transient"), "transient failures must be retried: {names:?}");
    assert!(names.contains("States.ALL"), "a failing scope must be caught: {names:?}");
}

#[test]
fn the_asl_names_its_steps_after_the_crates_and_catches_every_scope_task() {
    let states = states();
    let template = Template::load().unwrap();
    let functions: BTreeMap<String, String> = template
        .functions()
        .unwrap()
        .into_iter()
        .map(|f| (f.logical_id.trim_end_matches("Function").to_owned(), f.name))
        .collect();
    let function_of = |state: &Value| {
        let key = state["Resource"].as_str().unwrap().trim_start_matches("${").trim_end_matches("FunctionArn}");
        functions.get(key).cloned()
    };
    let releases = [
        ("discovery", "release"),
        ("metric-check", "release"),
        ("lock", "release"),
        ("notify", "release-all"),
        ("recheck", "release-after-grace"),
        ("remediate", "release-after-grace"),
    ];
    for (step, release) in releases {
        let state = states.get(step).unwrap_or_else(|| panic!("no state named {step}"));
        assert_eq!(function_of(state).as_deref(), Some(step), "state {step} must invoke the {step} function");
        assert_eq!(state["Catch"][0]["Next"], release, "{step} must hand a failure to {release}");
        assert!(state["TimeoutSeconds"].as_u64().is_some(), "{step} needs a timeout");
    }
    // Every release, per scope, is the lock function's Catch path.
    for release in ["release", "release-unnotified", "release-after-grace"] {
        assert_eq!(function_of(&states[release]).as_deref(), Some("lock"), "{release}");
    }
    assert_eq!(states["release-all"]["ItemProcessor"]["StartAt"], "release-unnotified");
    assert_eq!(function_of(&states["summary"]).as_deref(), Some("lock"), "the summary needs no Slack");
    // A Task must outlive its function, or Step Functions gives up while the Lambda still acts.
    let mut tasks_checked = 0;
    for f in template.functions().unwrap() {
        let timeout = template.json["Resources"][&f.logical_id]["Properties"]["Timeout"]
            .as_u64()
            .or(template.json["Globals"]["Function"]["Timeout"].as_u64())
            .unwrap();
        let key = format!("${{{}Arn}}", f.logical_id);
        for (name, state) in states.iter().filter(|(_, s)| s["Resource"] == key.as_str()) {
            let task_timeout = state["TimeoutSeconds"].as_u64().unwrap();
            assert!(task_timeout > timeout, "{name}: TimeoutSeconds {task_timeout} <= {} Timeout {timeout}", f.name);
            tasks_checked += 1;
        }
    }
    assert_eq!(tasks_checked, 11, "plan, six steps, three releases and the summary");
    assert_eq!(states["run-incomplete"]["Error"], JanitorError::RUN_INCOMPLETE);
    // One grace period per run: a single Wait, at the top level, between notify and act.
    let top = &asl()["States"];
    assert_eq!(top["grace"]["Type"], "Wait", "the Wait is not inside a Map");
    assert_eq!(top["grace"]["TimestampPath"], "$.grace_ends", "the grace period comes from notify's output");
    assert_eq!(states.values().filter(|s| s["Type"] == "Wait").count(), 1);
    assert_eq!((top["plan"]["Next"].as_str(), top["detect"]["Next"].as_str()), (Some("detect"), Some("notify")));
    assert_eq!((top["grace"]["Next"].as_str(), top["act"]["Next"].as_str()), (Some("act"), Some("summary")));
    for name in ["detect", "act", "release-all"] {
        let map = &top[name];
        assert_eq!(map["Type"], "Map", "{name}");
        assert!(map["MaxConcurrency"].as_u64().is_some_and(|n| (1..=10).contains(&n)), "{name}: bounded fan-out");
        // The items' results stay tiny ({} per scope): findings live in the run store.
        for (item_state, state) in map["ItemProcessor"]["States"].as_object().unwrap() {
            if state["End"] == true {
                let tiny = state["Result"] == json!({}) || state["Parameters"]["release_error.$"].is_string();
                assert!(tiny, "{name}/{item_state} must end with {{}} or the unrecorded scope");
            }
        }
    }
}

/// Every logical id an expression names (`Ref`, `Fn::GetAtt`, `${…}` in `Fn::Sub`).
fn named_ids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("Ref", Value::String(id)) => {
                        out.insert(id.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        out.extend(parts.first().and_then(Value::as_str).map(str::to_owned));
                    }
                    ("Fn::Sub", Value::String(text)) => {
                        for part in text.split("${").skip(1) {
                            let id = part.split(['}', '.']).next().unwrap_or_default();
                            out.insert(id.to_owned());
                        }
                    }
                    _ => named_ids(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| named_ids(v, out)),
        _ => {}
    }
}

/// SAM makes an HTTP API depend on the functions its routes invoke: a function whose
/// environment names that API would be a circular dependency CloudFormation refuses.
#[test]
fn no_function_names_the_api_whose_routes_invoke_it() {
    let template = Template::load().unwrap();
    for (id, function) in template.resources_of_type("AWS::Serverless::Function") {
        let mut named = BTreeSet::new();
        named_ids(&function["Properties"]["Environment"], &mut named);
        for (_, event) in function["Properties"]["Events"].as_object().into_iter().flatten() {
            if let Some(api) = event["Properties"]["ApiId"]["Ref"].as_str() {
                assert!(!named.contains(api), "{id}'s environment names {api}, whose routes invoke {id}: a cycle");
            }
        }
    }
    // The check sees a cycle when there is one.
    let mut looped = BTreeSet::new();
    named_ids(&json!({ "Variables": { "U": { "Fn::Sub": "https://${SlackApi}.execute-api" } } }), &mut looped);
    assert!(looped.contains("SlackApi"));
}

#[test]
fn the_template_ships_eight_arm64_rust_functions_and_the_guarded_entry_points() {
    let template = Template::load().unwrap();
    let t = &template.json;
    let functions = template.functions().unwrap();
    let names: BTreeSet<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    let expected = ["discovery", "lock", "metric-check", "notify", "onboard", "recheck", "remediate", "snooze"];
    assert_eq!(names, expected.into_iter().collect());
    assert_eq!(names, janitor_core::HANDLERS.into_iter().collect(), "one name per crate, binary and function");
    // onboard hears exactly the calls it judges, only those that succeeded, and what it could
    // not judge (undelivered, or failed three times) waits in a queue that raises an alarm.
    let onboard = &t["Resources"]["OnboardFunction"]["Properties"];
    let pattern = &onboard["Events"]["ResourceCreated"]["Properties"]["Pattern"];
    assert_eq!(pattern["detail-type"], json!([janitor_core::onboard::DETAIL_TYPE]));
    let names_heard: BTreeSet<(&str, &str)> = pattern["detail"]["eventName"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|name| {
            let name = name.as_str().unwrap();
            pattern["detail"]["eventSource"].as_array().unwrap().iter().filter_map(move |source| {
                let source = source.as_str().unwrap();
                janitor_core::onboard::EVENTS
                    .iter()
                    .any(|(s, n, _)| *s == source && *n == name)
                    .then_some((source, name))
            })
        })
        .collect();
    let judged: BTreeSet<(&str, &str)> = janitor_core::onboard::EVENTS.iter().map(|(s, n, _)| (*s, *n)).collect();
    assert_eq!(names_heard, judged, "the rule matches the calls onboard judges");
    for source in pattern["source"].as_array().unwrap() {
        let service = source.as_str().unwrap().trim_start_matches("aws.");
        assert!(judged.iter().any(|(s, _)| s.starts_with(service)), "{source} is heard but never judged");
    }
    assert_eq!(pattern["detail"]["errorCode"], json!([{ "exists": false }]));
    assert_eq!(onboard["Environment"]["Variables"]["JANITOR_MODE"], json!({ "Ref": "Mode" }));
    let dead_letters = json!({ "Fn::GetAtt": ["OnboardDeadLetters", "Arn"] });
    assert_eq!(onboard["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"], dead_letters);
    assert_eq!(onboard["Events"]["ResourceCreated"]["Properties"]["DeadLetterConfig"]["Arn"], dead_letters);
    // The security rule hears exactly the calls security::assess alerts on, denied calls and
    // the root user's, and none that ResourceCreated delivers already.
    let security = &onboard["Events"]["SecuritySignals"]["Properties"]["Pattern"];
    let detail_types: BTreeSet<&str> =
        security["detail-type"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(detail_types, [janitor_core::onboard::DETAIL_TYPE, janitor_core::security::SIGN_IN_DETAIL_TYPE].into());
    let mut heard = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for branch in security["$or"].as_array().unwrap() {
        let detail = &branch["detail"];
        for source in detail["eventSource"].as_array().into_iter().flatten() {
            for name in detail["eventName"].as_array().into_iter().flatten() {
                heard.insert((source.as_str().unwrap(), name.as_str().unwrap()));
            }
        }
        denied.extend(detail["errorCode"].as_array().into_iter().flatten().filter_map(|c| c.as_str()));
        if detail["userIdentity"]["type"] == json!(["Root"]) {
            let excluded: BTreeSet<&str> =
                detail["eventName"][0]["anything-but"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
            let resource_events: BTreeSet<&str> = janitor_core::onboard::EVENTS.iter().map(|(_, n, _)| *n).collect();
            assert_eq!(excluded, resource_events, "a root call ResourceCreated hears is not delivered twice");
        }
    }
    assert_eq!(heard, janitor_core::security::EVENTS.iter().copied().collect());
    assert_eq!(denied, janitor_core::security::DENIED_CODES.iter().copied().collect());
    assert_eq!(
        security["$or"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["detail"]["userIdentity"]["type"] == json!(["Root"]))
            .count(),
        1
    );
    // Anchor copies are an option (off by default), and when on, kept in compliance mode.
    assert_eq!(t["Parameters"]["AnchorLockDays"]["Default"], 0);
    let anchors = &t["Resources"]["AnchorBucket"];
    assert_eq!(anchors["Condition"], "LocksAnchors");
    let lock = &anchors["Properties"]["ObjectLockConfiguration"];
    assert_eq!(
        (lock["ObjectLockEnabled"].as_str(), anchors["Properties"]["ObjectLockEnabled"].as_bool()),
        (Some("Enabled"), Some(true))
    );
    assert_eq!(lock["Rule"]["DefaultRetention"]["Mode"], "COMPLIANCE");
    assert_eq!(lock["Rule"]["DefaultRetention"]["Days"], json!({ "Ref": "AnchorLockDays" }));
    for f in &functions {
        assert!(repo_root().join("crates").join(&f.name).join("Cargo.toml").exists(), "{}", f.name);
        let resource = &t["Resources"][&f.logical_id];
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda", "{}", f.name);
        assert!(f.opaque_policies.is_empty(), "{}: grants must be explicit statements", f.name);
    }
    assert_eq!(t["Globals"]["Function"]["Runtime"], "provided.al2023");
    assert_eq!(t["Globals"]["Function"]["Architectures"], json!(["arm64"]));
    assert_eq!(t["Parameters"]["Mode"]["Default"], "dry-run", "dry-run is the default everywhere");
    let schedule = &t["Resources"]["JanitorStateMachine"]["Properties"]["Events"]["Daily"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    assert_eq!(schedule["Properties"]["ScheduleExpression"], "cron(0 16 * * ? *)");
    assert_eq!(schedule["Properties"]["ScheduleExpressionTimezone"], json!({"Ref": "ScheduleTimezone"}));
    assert!(schedule["Properties"]["Input"].to_string().contains("${Mode}"));
    let route = &t["Resources"]["SnoozeFunction"]["Properties"]["Events"]["Interactivity"]["Properties"];
    assert_eq!((route["Path"].as_str(), route["Method"].as_str()), (Some("/slack/interactivity"), Some("POST")));
    // The public route is throttled and the snooze function's concurrency bounded, so a flood
    // of clicks or forged requests cannot exhaust the account's Lambda concurrency.
    let throttle = &t["Resources"]["SlackApi"]["Properties"]["DefaultRouteSettings"];
    assert_eq!(throttle["ThrottlingRateLimit"], json!({"Ref": "SlackApiRateLimit"}));
    assert_eq!(throttle["ThrottlingBurstLimit"], json!({"Ref": "SlackApiBurstLimit"}));
    for limit in ["SlackApiRateLimit", "SlackApiBurstLimit"] {
        assert!(t["Parameters"][limit]["Default"].as_i64().is_some_and(|n| n > 0), "{limit} has a positive default");
    }
    let reserved = &t["Resources"]["SnoozeFunction"]["Properties"]["ReservedConcurrentExecutions"];
    assert_eq!(reserved["Fn::If"][0], "ReservesSnoozeConcurrency", "{reserved}");
    assert_eq!(reserved["Fn::If"][1], json!({"Ref": "SnoozeReservedConcurrency"}));
    assert!(t["Parameters"]["SnoozeReservedConcurrency"]["Default"].as_i64().is_some_and(|n| n > 0));
    let audit = &t["Resources"]["AuditTable"]["Properties"];
    let indexes: BTreeSet<&str> =
        audit["GlobalSecondaryIndexes"].as_array().unwrap().iter().filter_map(|i| i["IndexName"].as_str()).collect();
    assert_eq!(indexes, [dynamo::AUDIT_BY_RUN_INDEX, dynamo::AUDIT_BY_EVENT_INDEX].into_iter().collect());
    assert_eq!(audit["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(audit["SSESpecification"]["SSEEnabled"], true);
    for table in ["LockTable", "SnoozeTable"] {
        let ttl = &t["Resources"][table]["Properties"]["TimeToLiveSpecification"];
        assert_eq!(ttl["AttributeName"], dynamo::TTL_ATTRIBUTE, "{table}");
    }
}

/// Each rule declares the IAM actions its reads and its action need; every one is granted
/// to a function of the template (the IAM-enforced run then proves the grant is the right one).
#[test]
fn every_rule_s_declared_iam_actions_are_granted() {
    let functions = Template::load().unwrap().functions().unwrap();
    let granted: BTreeSet<&str> = functions.iter().flat_map(|f| f.actions.iter().map(String::as_str)).collect();
    for (id, rule) in janitor_core::rules::REGISTRY {
        for action in rule.iam_actions() {
            assert!(granted.contains(action), "{id} needs {action}, which no function is granted");
        }
    }
}

/// `member-role.yaml` grants what the functions that assume it may do in a member account
/// (their unscoped reads and actions, less the calls made at home only), and nothing else;
/// so, every rule's declared actions too. The IAM-enforced runs then authorise every
/// member-account call against exactly these statements.
#[test]
fn the_member_role_grants_what_member_account_calls_need_and_nothing_more() {
    let granted = member_role_actions().unwrap();
    let mut needed = BTreeSet::new();
    for function in Template::load().unwrap().functions().unwrap() {
        if function.actions.contains("sts:AssumeRole") {
            needed.extend(function.unscoped_actions.iter().cloned());
        }
    }
    for home_only in HOME_ONLY_ACTIONS {
        needed.remove(*home_only);
    }
    let missing: Vec<&String> = needed.difference(&granted).collect();
    let extra: Vec<&String> = granted.difference(&needed).collect();
    assert!(missing.is_empty() && extra.is_empty(), "member-role.yaml lacks {missing:?}, grants beyond need {extra:?}");
    for (id, rule) in janitor_core::rules::REGISTRY {
        for action in rule.iam_actions() {
            assert!(granted.contains(*action), "{id} needs {action} in member accounts");
        }
    }
}

/// Every metric the functions publish is on the dashboard, and the dashboard and the alarms
/// read no metric they do not publish; the alarms reach the alert topic, which alarms can
/// publish to (not under the AWS-managed SNS key).
#[test]
fn the_dashboard_and_alarms_read_exactly_the_metrics_the_functions_publish() {
    use janitor_core::emf::{Metric, NAMESPACE};
    let template = Template::load().unwrap();
    let resources = &template.json["Resources"];
    let published: BTreeSet<String> = Metric::every().map(|m| m.name().to_owned()).collect();
    let body = resources["JanitorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"].as_str().unwrap();
    let body = body.replace("${AWS::Region}", "us-east-1").replace("${JanitorStateMachine}", "arn:sm");
    let dashboard: Value = serde_json::from_str(&body).unwrap();
    let mut shown = BTreeSet::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        for line in widget["properties"]["metrics"].as_array().unwrap() {
            match (&line[0], &line[1]) {
                (Value::String(ns), Value::String(name)) if ns == NAMESPACE => {
                    shown.insert(name.clone());
                }
                (Value::Object(expression), _) => {
                    let text = expression["expression"].as_str().unwrap();
                    assert!(text.contains(&format!("{{{NAMESPACE},")), "{text}");
                    let name = text.split("MetricName=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
                    shown.insert(name.to_owned());
                }
                _ => {}
            }
        }
    }
    assert_eq!(shown, published, "the dashboard shows every published metric, and only those");
    let alarms: Vec<_> = template.resources_of_type("AWS::CloudWatch::Alarm").collect();
    assert_eq!(alarms.len(), 3, "failed executions, failed scopes and events onboard never judged");
    for (id, alarm) in alarms {
        let p = &alarm["Properties"];
        assert_eq!(p["AlarmActions"], json!([{ "Ref": "AlertTopic" }]), "{id}");
        if p["Namespace"] == NAMESPACE {
            assert!(published.contains(p["MetricName"].as_str().unwrap()), "{id}");
        }
    }
    assert_eq!(resources["AlertTopic"]["Properties"]["KmsMasterKeyId"], json!({ "Ref": "AlertKey" }));
    let key_policy = resources["AlertKey"]["Properties"]["KeyPolicy"]["Statement"].as_array().unwrap();
    assert!(key_policy.iter().any(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com"));
}

#[test]
fn cfn_lint_reports_nothing() {
    for file in ["template.yaml", "member-role.yaml"] {
        let out = Command::new(venv_tool("cfn-lint").unwrap()).arg(repo_root().join(file)).output().unwrap();
        assert!(
            out.status.success(),
            "cfn-lint {file}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn asl_validator_reports_nothing() {
    let local = repo_root().join("statemachine/local");
    let validator = local.join("node_modules/asl-validator/dist/bin/asl-validator.js");
    let validator = if validator.exists() { validator } else { local.join("node_modules/.bin/asl-validator") };
    assert!(validator.exists(), "asl-validator is not installed: run `make node_modules`");
    let out = Command::new(node_binary(&repo_root()))
        .arg(&validator)
        .arg("--json-path")
        .arg(repo_root().join("statemachine/janitor.asl.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("is valid"), "asl-validator:\n{text}");
}

// ------------------------------------------------------------------ the whole run, locally

struct World {
    moto: Moto,
    clients: AwsClients,
    tables: TableNames,
    slack: SlackStub,
    estate: TwinEstate,
    machine: LocalStateMachine,
    _work: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn world(prefix: &str, options: PipelineOptions<'_>) -> World {
    let TwinWorld { moto, clients, tables, estate, .. } = TwinWorld::start(prefix).await.unwrap();
    let slack = SlackStub::for_twin_estate().await.unwrap();
    let work = std::env::temp_dir().join(format!("janitor-sfn-{prefix}-{}", std::process::id()));
    let options = PipelineOptions { service_catalog: Some(&moto.service_catalog), ..options };
    let machine = local_pipeline(&clients, &moto.endpoint, &tables, &slack, &work, options).await.unwrap();
    World { moto, clients, tables, slack, estate, machine, _work: TempDir(work) }
}

fn request(mode: &str) -> Value {
    json!({ "mode": mode, "regions": [HOME_REGION, SECOND_REGION], "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT] })
}

fn key(region: &str, kind: ResourceKind, id: &str) -> String {
    ResourceKey::new(HOME_ACCOUNT, region, kind, id).to_string()
}

async fn lock_holders(w: &World) -> Vec<String> {
    let out = w.clients.dynamodb().scan().table_name(&w.tables.lock).send().await.unwrap();
    out.items().iter().filter_map(|i| i.get("run_id").and_then(|v| v.as_s().ok()).cloned()).collect()
}

/// The ids of running instances in `region` tagged `Environment=<environment>`.
async fn tagged_instances(w: &World, region: &str, environment: &str) -> BTreeSet<String> {
    let ec2 = w.clients.ec2(HOME_ACCOUNT, region).await.unwrap();
    let filter = |name: &str, value: &str| aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();
    let pages: Vec<_> = ec2
        .describe_instances()
        .filters(filter("tag:Environment", environment))
        .filters(filter("instance-state-name", "running"))
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    pages
        .iter()
        .flat_map(|p| p.reservations())
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

/// The findings a scope's `stage` document of `run` holds in the run store.
async fn stored_findings(w: &World, run: &str, region: &str, stage: janitor_core::runstore::Stage) -> Vec<Finding> {
    let s3 = w.clients.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    let path = janitor_core::runstore::scope_path(run, &Scope::new(HOME_ACCOUNT, region), stage.as_str());
    let bucket = format!("cloud-janitor-runs-{}", w.tables.audit.trim_end_matches("-audit"));
    let body = s3.get_object().bucket(&bucket).key(&path).send().await.unwrap().body.collect().await.unwrap();
    serde_json::from_slice::<janitor_core::model::StepPayload>(&body.into_bytes()).unwrap().findings
}

fn scope_summary<'a>(summary: &'a Value, account: &str, region: &str) -> &'a Value {
    summary["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"]["account"] == account && s["scope"]["region"] == region)
        .unwrap_or_else(|| panic!("no summary for {account}/{region} in {summary}"))
}

fn explain(w: &World, execution: &Execution) -> String {
    let log = w.machine.log();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    let iam = w.machine.grant_problems().map(|p| p.join("\n")).unwrap_or_else(|e| e.to_string());
    format!(
        "{execution:#?}\n--- IAM problems so far:\n{iam}\n--- last handler log lines (newest first):\n{}",
        tail.join("\n")
    )
}

async fn click(w: &World, user: &str, resource: &str) -> Value {
    let message = json!({ "text": "Cloud Janitor", "blocks": [] });
    let reply = click_snooze(&w.machine, &w.slack, user, resource, "snooze_30d", &message).await.unwrap();
    assert_eq!(reply.status, "SUCCEEDED", "{}", explain(w, &reply));
    reply.output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_then_enforce_through_the_shipped_state_machine() {
    let w = world("sfn", PipelineOptions::default()).await;
    let id = |name: &str| w.estate.id(name).to_owned();
    let ec2 = ResourceKind::Ec2Instance;
    let audit = DynamoAuditLog::new(w.clients.dynamodb(), &w.tables.audit);
    // Bob's direct messages fail in the first run: his finding must not go further.
    w.slack.fail_channel("UBOB");

    // ---- run 1: dry-run
    let dry = w.machine.execute(&request("dry-run"), "local-dry-run").await.unwrap();
    // A notification failed, so the run is incomplete and must not end as a success.
    assert_eq!(dry.status, "FAILED", "{}", explain(&w, &dry));
    assert_eq!(dry.error.as_deref(), Some("Janitor.RunIncomplete"), "{}", explain(&w, &dry));
    let summary = dry.summary().expect("the summary rides in the Cause");
    assert_eq!(summary["run"]["id"], "local-dry-run", "the execution name is the run id");
    assert_eq!(summary["run"]["mode"], "dry-run");
    assert_eq!(summary["scopes"].as_array().unwrap().len(), 6, "2 accounts x (2 regions + global)");
    let us = scope_summary(&summary, HOME_ACCOUNT, HOME_REGION);
    assert_eq!(us["status"], "INCOMPLETE", "{us}\n{}", explain(&w, &dry));
    // Bob's message held three findings: his instance's missing tags and its missing
    // monitoring (the emulator holds no CPU data for it), and the badly named Service
    // Catalog product his SSO session launched.
    assert_eq!(us["tally"]["failed"], 3, "bob's notification: {us}");
    assert!(us["tally"]["notified"].as_u64().unwrap() >= 5, "{us}");
    // Each notified resource's findings would be acted on, or are notify-only (skipped).
    let tally = |field: &str| us["tally"][field].as_u64().unwrap();
    assert_eq!(tally("would_remediate") + tally("skipped"), tally("notified"), "{us}");
    assert!(tally("would_remediate") >= 5, "{us}");
    assert_eq!(us["tally"]["remediated"], 0);
    assert_eq!(scope_summary(&summary, MEMBER_ACCOUNT, HOME_REGION)["status"], "OK");
    assert_eq!((summary["failed"].as_bool(), summary["incomplete"].as_bool()), (Some(false), Some(true)));

    // The ASL decided the order; the trace shows each scope's path through both Maps, and
    // the run's one notify and one Wait between them.
    let item_paths: Vec<Vec<&str>> = (0..6).map(|i| dry.path_of(Some(i))).collect();
    let detected = ["discovery", "metric-check", "lock", "detected"];
    let full = [&detected[..], &["recheck", "anything-to-remediate", "remediate", "acted"]].concat();
    assert!(item_paths.iter().any(|p| p == &full), "a scope with findings is rechecked and remediated: {item_paths:?}");
    let quiet = [&detected[..], &["recheck", "anything-to-remediate", "acted"]].concat();
    assert!(item_paths.iter().any(|p| p == &quiet), "a scope with nothing left stops at recheck: {item_paths:?}");
    let top = [
        "plan",
        "detect",
        "notify",
        "anyone-notified",
        "grace",
        "act",
        "summary",
        "complete",
        "incomplete-cause",
        "run-incomplete",
    ];
    assert_eq!(dry.path_of(None), top);
    // One digest per owner for the whole run: alice's findings in two regions and the
    // account-wide scope reach her in one message.
    let to_alice: Vec<_> =
        w.slack.calls("chat.postMessage").into_iter().filter(|c| c.body["channel"] == "UALICE").collect();
    assert_eq!(to_alice.len(), 1, "one digest for alice across every scope");

    let events = audit.events_for_run("local-dry-run").await.unwrap();
    let has = |resource: &str, event: AuditEventType| events.iter().any(|e| e.resource == resource && e.event == event);
    let unused = key(HOME_REGION, ec2, &id("unused-env"));
    let bob = key(HOME_REGION, ec2, &id("missing-tags"));
    assert!(has(&unused, AuditEventType::Notified) && has(&unused, AuditEventType::WouldRemediate));
    assert!(has(&bob, AuditEventType::NotifyFailed) && !has(&bob, AuditEventType::WouldRemediate));
    assert_eq!(instance_state(&w.clients, HOME_REGION, &id("unused-env")).await, "running", "dry-run changes nothing");
    assert!(eip_exists(&w.clients, HOME_REGION, &id("eip-free")).await);
    assert!(lock_holders(&w).await.is_empty(), "every lock is released at the end of a run");

    // ---- between the runs: alice snoozes the idle instance through the real snooze function
    let idle = key(HOME_REGION, ec2, &id("idle"));
    let reply = click(&w, "UALICE", &idle).await;
    assert_eq!(reply["statusCode"], 200, "{reply}");
    let snoozes = DynamoSnoozeStore::new(w.clients.dynamodb(), &w.tables.snooze);
    let live = snoozes.live_snoozes(&[ResourceKey::parse(&idle).unwrap()], Utc::now()).await.unwrap();
    assert_eq!(live.values().next().map(|s| s.by.as_str()), Some("UALICE"), "snooze recorded");
    w.slack.restore_channel("UBOB");

    // ---- run 2: enforce
    let enforce = w.machine.execute(&request("enforce"), "local-enforce").await.unwrap();
    assert_eq!(enforce.status, "SUCCEEDED", "{}", explain(&w, &enforce));
    let summary = &enforce.output;
    assert_eq!((summary["failed"].as_bool(), summary["incomplete"].as_bool()), (Some(false), Some(false)));
    let top = ["plan", "detect", "notify", "anyone-notified", "grace", "act", "summary", "complete", "done"];
    assert_eq!(enforce.path_of(None), top);
    let us = scope_summary(summary, HOME_ACCOUNT, HOME_REGION);
    assert_eq!(us["status"], "OK", "{us}");
    assert!(us["tally"]["remediated"].as_u64().unwrap() >= 5, "{us}");

    for name in ["unused-env", "snooze-expired", "missing-tags"] {
        assert_eq!(instance_state(&w.clients, HOME_REGION, &id(name)).await, "stopped", "{name}");
    }
    assert_eq!(instance_state(&w.clients, SECOND_REGION, &id("eu-idle")).await, "stopped");
    for name in ["idle", "busy", "protected", "snoozed", "no-data", "partial-data"] {
        assert_eq!(instance_state(&w.clients, HOME_REGION, &id(name)).await, "running", "{name} must be untouched");
    }
    assert!(has_final_snapshot(&w.clients, HOME_REGION, "db-idle").await, "RDS deleted only with a final snapshot");
    assert!(db_exists(&w.clients, HOME_REGION, "db-busy").await);
    assert!(
        !eip_exists(&w.clients, HOME_REGION, &id("eip-free")).await
            && eip_exists(&w.clients, HOME_REGION, &id("eip-used")).await
    );
    assert!(bucket_blocked(&w.clients, HOME_ACCOUNT, HOME_REGION, "janitor-twin-public-policy").await);
    assert!(!bucket_blocked(&w.clients, HOME_ACCOUNT, HOME_REGION, "janitor-twin-private").await);
    let unattached = id("vol-unattached");
    assert!(!volume_exists(&w.clients, SECOND_REGION, &unattached).await, "the unattached volume is deleted");
    assert_eq!(kept_snapshots(&w.clients, SECOND_REGION, &unattached).await.len(), 1, "only after its snapshot");
    for name in ["vol-unencrypted", "vol-attached", "vol-protected", "vol-snoozed"] {
        assert!(volume_exists(&w.clients, SECOND_REGION, &id(name)).await, "{name} must be untouched");
    }
    assert!(db_exists(&w.clients, SECOND_REGION, "db-plain").await, "an unencrypted DB is reported, never deleted");
    let ingress = |cidrs: &[(i32, &str)]| cidrs.iter().map(|(p, c)| (*p, (*c).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        group_ingress(&w.clients, HOME_REGION, &id("sg-open-ssh")).await,
        ingress(&[(22, "10.0.0.0/8")]),
        "only the world-open range is revoked; the private one stays"
    );
    for (name, left) in
        [("sg-web", (443, "0.0.0.0/0")), ("sg-protected", (3389, "0.0.0.0/0")), ("sg-snoozed", (5432, "::/0"))]
    {
        assert_eq!(
            group_ingress(&w.clients, HOME_REGION, &id(name)).await,
            ingress(&[left]),
            "{name} must be untouched"
        );
    }
    assert!(lock_holders(&w).await.is_empty());

    // The audit trail of the enforce run, resource by resource.
    let events = audit.events_for_run("local-enforce").await.unwrap();
    // A finding is one resource and one rule: each rule that judged it leaves its own rows.
    let trail = |resource: &str, rule: Option<RuleId>| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e.resource == resource && rule.is_none_or(|r| e.policy == Some(r)))
            .map(|e| e.event.as_str())
            .collect()
    };
    assert_eq!(
        trail(&unused, Some(RuleId::Ec2UnusedEnvironment)),
        ["DISCOVERED", "LOCKED", "NOTIFIED", "RECHECKED", "REMEDIATED"],
        "notified, grace, rechecked, then remediated"
    );
    assert_eq!(trail(&unused, Some(RuleId::Ec2IdleCpu)), ["NOT_IDLE"], "the idle rule judged it too, apart");
    assert_eq!(trail(&idle, Some(RuleId::Ec2IdleCpu)), ["EXEMPT"], "the snooze is honoured");
    // Each rule that would judge it (idle CPU, monitoring) is exempt, and nothing else.
    assert!(trail(&idle, None).iter().all(|e| *e == "EXEMPT"), "{:?}", trail(&idle, None));
    assert!(events.iter().all(|e| e.run_id == "local-enforce"));
    let remediated = events.iter().filter(|e| e.event == AuditEventType::Remediated).count();
    let reported: u64 =
        summary["scopes"].as_array().unwrap().iter().map(|s| s["tally"]["remediated"].as_u64().unwrap_or(0)).sum();
    assert_eq!(remediated as u64, reported, "the execution summary agrees with the audit table");

    // Priced as AWS would price it: discovery and the metric check asked the Price List (the
    // stub's slice of it) under their own roles, and the run says what it saved.
    let discovered = events
        .iter()
        .find(|e| e.resource == unused && e.event == AuditEventType::Discovered)
        .expect("the unused instance was discovered");
    let basis = discovered.detail["cost"]["basis"].as_str().unwrap_or_default();
    assert!(basis.contains("$0.0104/h × 730 h [Price List API]"), "{}", discovered.detail);
    assert_eq!(discovered.detail["cost"]["monthly_savings"], json!(7.59));
    let idle_in_eu = events
        .iter()
        .find(|e| e.resource == key(SECOND_REGION, ec2, &id("eu-idle")) && e.event == AuditEventType::Idle)
        .expect("the idle instance in the second region");
    assert!(
        idle_in_eu.detail["cost"]["basis"].as_str().unwrap_or_default().contains("$0.0114/h × 730 h [Price List API]")
    );
    let priced_by: BTreeSet<String> = w
        .moto
        .service_catalog
        .calls()
        .into_iter()
        .filter(|c| c.operation == "GetProducts" && c.status == 200)
        .filter_map(|c| c.role)
        .collect();
    let role = |f: &str| format!("arn:aws:iam::{HOME_ACCOUNT}:role/cloud-janitor-{f}");
    let pricers = [role("discovery"), role("metric-check"), role("recheck")];
    assert_eq!(priced_by, pricers.into_iter().collect(), "who asked the Price List");
    assert!(summary["totals"]["savings_made"].as_f64().unwrap() > 0.0, "{}", summary["totals"]);

    // The run's report page: written by the summary step under the lock function's role to
    // the reports bucket, as this run's and as the latest, with the audit table's figures;
    // the run's alert links to it with a SigV4 query signature of seven days, and the link
    // serves the page to a client holding no credentials (moto checks no query signature:
    // that the signer, the lock role, may read runs/* is the template's, held by the grant
    // check below).
    let location = summary["report"].as_str().unwrap_or_else(|| panic!("no report: {}", explain(&w, &enforce)));
    let (bucket, key) = location.trim_start_matches("s3://").split_once('/').unwrap();
    assert_eq!(key, "runs/local-enforce.html");
    let s3 = w.clients.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    let read = |key: &'static str| {
        let s3 = s3.clone();
        let bucket = bucket.to_owned();
        async move {
            let out = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
            assert_eq!(out.content_type(), Some("text/html; charset=utf-8"));
            String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
        }
    };
    let page = read("runs/local-enforce.html").await;
    assert_eq!(read("latest.html").await, page, "latest.html is the last run's page");
    assert!(page.contains("local-enforce") && page.contains("(enforce)"), "the page is this run's");
    let made = summary["totals"]["savings_made"].as_f64().unwrap();
    let marker = "id=\"savings-saved\" data-value=\"";
    let at = page.find(marker).expect("the page's saved tile") + marker.len();
    let saved: f64 = page[at..].split('"').next().unwrap().parse().unwrap();
    assert!((saved - made).abs() < 0.005, "the page's saved figure ({saved}) is the run's ({made})");
    let alerts = w.machine.alerts_published().await.unwrap();
    let ended: Vec<&Value> =
        alerts.iter().filter(|(_, m)| m["metadata"]["eventType"] == "RunEnded").map(|(_, m)| m).collect();
    assert_eq!(ended.len(), 2, "one run-level alert per run: {alerts:?}");
    let last = ended.iter().find(|m| m["metadata"]["threadId"] == "local-enforce").expect("the enforce run's alert");
    assert!(last["content"]["title"].as_str().unwrap().contains(&format!("saved ${made:.2}/month")), "{last}");
    let next = last["content"]["nextSteps"][0].as_str().unwrap();
    let link = next.split_whitespace().find(|w| w.starts_with("http")).unwrap_or_else(|| panic!("no link: {next}"));
    assert!(link.contains("X-Amz-Signature=") && link.contains("X-Amz-Expires=604800"), "{link}");
    let opened = reqwest::get(link).await.unwrap();
    assert_eq!(opened.status(), 200, "the pre-signed link opens the page");
    assert_eq!(opened.text().await.unwrap(), page);

    // The functions' own metrics, as CloudWatch would extract them from their logs (EMF):
    // whole log lines, agreeing with the run's summary.
    let metrics: Vec<Value> = w
        .machine
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| {
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CloudJanitor" && doc["RunId"] == "local-enforce"
        })
        .collect();
    let sum = |metric: &str, with: &str| -> f64 {
        metrics.iter().filter(|d| with.is_empty() || d[with].is_string()).filter_map(|d| d[metric].as_f64()).sum()
    };
    let totals = &summary["totals"];
    assert_eq!(sum("Findings", "Rule"), totals["found"].as_f64().unwrap(), "findings by rule: {metrics:?}");
    assert_eq!(sum("Remediated", ""), totals["remediated"].as_f64().unwrap());
    assert!((sum("SavingsMade", "") - totals["savings_made"].as_f64().unwrap()).abs() < 0.005);
    let ended: Vec<&Value> = metrics.iter().filter(|d| d["Runs"] == 1.0).collect();
    assert_eq!(ended.len(), 1, "one run, one summary");
    assert_eq!((ended[0]["Mode"].as_str(), ended[0]["FailedScopes"].as_f64()), (Some("enforce"), Some(0.0)));
    assert!(ended[0]["RunDuration"].as_f64().is_some_and(|s| s > 0.0), "{}", ended[0]);

    // ---- every row both runs' functions wrote (and the snooze click's) is on its chain
    for run in ["local-dry-run", "local-enforce"] {
        let (rows, unreadable) = audit.stored_run(run).await.unwrap();
        let heads: Vec<_> = audit.chain_heads(Some(run)).await.unwrap().into_iter().map(|(h, _)| h).collect();
        assert!(unreadable.is_empty() && rows.iter().all(|r| r.link.is_some()), "{run}");
        // A chain per scope that wrote rows, and one for the run's own (its end).
        let chains: BTreeSet<&str> = heads.iter().map(|h| h.chain.as_str()).collect();
        let expected = [format!("{run}#{HOME_ACCOUNT}/{HOME_REGION}"), format!("{run}#janitor")];
        assert!(expected.iter().all(|c| chains.contains(c.as_str())), "{heads:?}");
        assert_eq!(janitor_core::chain::verify(&rows, &heads), [], "{run}");
    }
    // Each run's summary sealed its chains in an anchor, linked to the one before; the snooze
    // click wrote to the dry run's chain after its anchor, which still holds.
    let anchors = audit.anchors().await.unwrap();
    assert_eq!(anchors.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(), ["local-dry-run", "local-enforce"]);
    assert_eq!(anchors[1].previous, anchors[0].digest);
    let mut stored = std::collections::BTreeMap::new();
    for run in ["local-dry-run", "local-enforce"] {
        stored.insert(run, audit.stored_run(run).await.unwrap().0);
    }
    let rows_of = |run: &str| stored.get(run).map(Vec::as_slice).unwrap_or(&[]);
    assert_eq!(janitor_core::chain::verify_anchors(&anchors, rows_of), []);
    // ... and copied by the summary step (under the lock function's role) to the Object Lock
    // bucket, where no one can delete them: so an anchor deleted from the table is caught.
    use janitor_core::ports::AnchorCopies;
    let anchor_bucket = w.machine.names().unwrap().anchor_bucket.clone();
    let s3 = w.clients.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    let copies = janitor_core::aws::S3AnchorCopies::new(s3.clone(), &anchor_bucket).kept().await.unwrap();
    assert_eq!(copies, anchors, "each run's anchor, copied as the table holds it");
    let since = copies.first().map(|c| c.at);
    assert_eq!(janitor_core::chain::compare_copies(&anchors, &copies, since), []);
    let listed = s3.list_object_versions().bucket(&anchor_bucket).send().await.unwrap();
    let version = &listed.versions()[0];
    let locked = s3
        .delete_object()
        .bucket(&anchor_bucket)
        .key(version.key().unwrap())
        .version_id(version.version_id().unwrap())
        .send()
        .await;
    assert!(locked.is_err(), "a copy under compliance retention cannot be deleted, even by an admin");
    // A new version over a copy (PutObject may add one) or a delete marker changes what a
    // plain read returns, not the first version, which is what verify reads.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let forged = serde_json::to_vec(&anchors[1]).unwrap();
    s3.put_object()
        .bucket(&anchor_bucket)
        .key(version.key().unwrap())
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(forged.into())
        .send()
        .await
        .unwrap();
    s3.delete_object().bucket(&anchor_bucket).key(listed.versions()[1].key().unwrap()).send().await.unwrap();
    let still = janitor_core::aws::S3AnchorCopies::new(s3.clone(), &anchor_bucket).kept().await.unwrap();
    assert_eq!(still, anchors, "the first versions, as written by the summary steps");
    // (moto answers GetObjectRetention with the object; HeadObject says the same.)
    let head = s3
        .head_object()
        .bucket(&anchor_bucket)
        .key(version.key().unwrap())
        .version_id(version.version_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("COMPLIANCE"));
    let until = head.object_lock_retain_until_date().map(|d| d.secs()).unwrap_or_default();
    assert!(until > Utc::now().timestamp(), "kept until {until}");
    let mut table_without_first = anchors.clone();
    table_without_first.remove(0);
    assert_eq!(
        janitor_core::chain::compare_copies(&table_without_first, &copies, since),
        [janitor_core::chain::AnchorProblem::CopyDiffers { run_id: "local-dry-run".into() }]
    );

    // ---- least privilege: each function was granted exactly what its code called (onboard,
    // which no run invokes, in its own test)
    let observed = observed_actions(&w.machine.calls_dir()).unwrap();
    let mut problems = least_privilege(&observed, |f| f != "onboard");
    assert!(observed.contains_key("snooze") && observed.contains_key("remediate"), "{observed:?}");
    // Run under IAM: nothing denied, and every call's table, index, topic, secret or role is
    // one its granting statement names.
    problems.extend(w.machine.grant_problems().unwrap());
    assert!(problems.is_empty(), "IAM grants vs calls:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_caught_recorded_and_gives_back_every_lock() {
    // Notify cannot start (its Slack secret does not exist): the run's one notify fails, is
    // caught, and every scope records the failure and gives its locks back; nothing is acted on.
    let options = PipelineOptions { slack_secret_id: Some("cloud-janitor/no-such-secret"), ..Default::default() };
    let w = world("sfnfail", options).await;
    let run = w.machine.execute(&request("enforce"), "local-broken-notify").await.unwrap();
    assert_eq!(run.status, "FAILED", "{}", explain(&w, &run));
    assert_eq!(run.error.as_deref(), Some("Janitor.RunIncomplete"), "{}", explain(&w, &run));
    let summary = run.summary().unwrap_or_else(|| panic!("no summary: {}", explain(&w, &run)));
    assert_eq!(summary["failed"], true);
    let us = scope_summary(&summary, HOME_ACCOUNT, HOME_REGION);
    assert_eq!(us["status"], "FAILED", "{us}");
    assert!(us["tally"]["failed"].as_u64().unwrap() >= 5, "{us}");
    for scope in summary["scopes"].as_array().unwrap() {
        assert_eq!(scope["status"], "FAILED", "no scope of an unnotified run is OK: {scope}");
    }
    assert!(run.trace.iter().any(|t| t.state == "notify" && t.event == "StateCaught"), "{:?}", run.trace);
    let top = ["plan", "detect", "notify", "release-all", "summary", "complete", "incomplete-cause", "run-incomplete"];
    assert_eq!(run.path_of(None), top);

    let audit = DynamoAuditLog::new(w.clients.dynamodb(), &w.tables.audit);
    let events = audit.events_for_run("local-broken-notify").await.unwrap();
    let scope_row = events
        .iter()
        .find(|e| e.resource == format!("{HOME_ACCOUNT}/{HOME_REGION}/scope/-") && e.event == AuditEventType::Failed)
        .expect("the scope's failure is in the audit table");
    assert_eq!(scope_row.actor, "lock");
    let unused = key(HOME_REGION, ResourceKind::Ec2Instance, w.estate.id("unused-env"));
    assert!(events.iter().any(|e| e.resource == unused && e.event == AuditEventType::Failed));
    assert!(!events.iter().any(|e| e.event == AuditEventType::Remediated), "nothing acted on");
    assert!(lock_holders(&w).await.is_empty(), "the failed scopes gave their locks back");
    assert_eq!(instance_state(&w.clients, HOME_REGION, w.estate.id("unused-env")).await, "running");

    // The Catch path's own calls, which the two-pass run never reaches, are real and granted.
    let observed = observed_actions(&w.machine.calls_dir()).unwrap();
    let functions = Template::load().unwrap().functions().unwrap();
    for (function, action, _) in ACTIONS_OFF_THE_HAPPY_PATH.iter().filter(|(_, _, why)| why.contains("failing-step")) {
        assert!(observed[*function].contains(*action), "{function} should have called {action}: {observed:?}");
        let granted = &functions.iter().find(|f| f.name == *function).unwrap().actions;
        assert!(granted.contains(*action), "{function} needs {action} granted");
    }
}

/// Each of `functions` was granted exactly what its code called (less what it calls only off
/// the happy path, or what IAM implies).
fn least_privilege(observed: &BTreeMap<String, BTreeSet<String>>, functions: impl Fn(&str) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for function in Template::load().unwrap().functions().unwrap().into_iter().filter(|f| functions(&f.name)) {
        let called = observed.get(&function.name).cloned().unwrap_or_default();
        let implied: BTreeSet<String> = IMPLIED_ACTIONS
            .iter()
            .chain(ACTIONS_OFF_THE_HAPPY_PATH)
            .filter(|(f, _, _)| *f == function.name)
            .map(|(_, a, _)| a.to_string())
            .collect();
        for action in called.difference(&function.actions) {
            problems.push(format!("{} calls {action} but the template does not grant it", function.name));
        }
        for action in function.actions.iter().filter(|a| !called.contains(*a) && !implied.contains(*a)) {
            problems.push(format!("{} is granted {action} but never called it", function.name));
        }
    }
    problems
}

/// The schedule's own input (`{"mode": "${Mode}"}` with the Mode parameter as deployed).
fn scheduled_input(mode: &str) -> Value {
    let template = Template::load().unwrap();
    let daily = &template.json["Resources"]["JanitorStateMachine"]["Properties"]["Events"]["Daily"]["Properties"];
    let text = daily["Input"]["Fn::Sub"].as_str().expect("the schedule's Input is a !Sub of the Mode parameter");
    serde_json::from_str(&text.replace("${Mode}", mode)).unwrap()
}

/// Waits (polling the stub) until a Slack message whose text mentions `needle` was posted.
async fn posted(w: &World, needle: &str) {
    for _ in 0..1200 {
        if w.slack.calls("chat.postMessage").iter().any(|c| c.body.to_string().contains(needle)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no Slack message mentioning {needle} within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_under_iam_plan_every_region_wait_a_real_grace_and_overlap_without_sharing() {
    // A real grace of 30 s: run A is notified, waits, rechecks and acts; run B starts while A
    // waits holding its locks (B's scan of every region, nine kinds each, must end inside A's
    // grace). Everything under each function's own role.
    let w = world("sched", PipelineOptions { grace: "30s", ..Default::default() }).await;
    let input = scheduled_input("enforce");
    assert_eq!(input, json!({ "mode": "enforce" }), "the schedule passes the mode and nothing else");
    let ec2 = w.clients.ec2(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    let regions: BTreeSet<String> = ec2
        .describe_regions()
        .all_regions(false)
        .send()
        .await
        .unwrap()
        .regions()
        .iter()
        .filter(|r| r.opt_in_status() != Some("not-opted-in"))
        .filter_map(|r| r.region_name().map(str::to_owned))
        .filter(|r| janitor_core::aws::inventory::partition_of(r) == "aws")
        .collect();
    assert!(regions.len() > 10, "{regions:?}");
    let harness = w.machine.harness.clone().unwrap();

    let run_a = w.machine.execute(&input, "scheduled-a");
    let run_b_and_changes = async {
        posted(&w, "scheduled-a").await;
        let b = w.machine.execute(&input, "scheduled-b");
        let changes = async {
            // While the account-wide scope of whichever run told about them waits out its
            // grace, a user and a bucket disappear: its recheck must read them as gone.
            posted(&w, "dana-no-mfa").await;
            let iam = harness.iam(HOME_ACCOUNT).await.unwrap();
            iam.delete_login_profile().user_name("dana-no-mfa").send().await.unwrap();
            iam.delete_user().user_name("dana-no-mfa").send().await.unwrap();
            let s3 = harness.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap();
            s3.delete_object().bucket("janitor-twin-public-policy").key("index.html").send().await.unwrap();
            s3.delete_bucket().bucket("janitor-twin-public-policy").send().await.unwrap();
        };
        let (b, ()) = tokio::join!(b, changes);
        b
    };
    let (a, b) = tokio::join!(run_a, run_b_and_changes);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status, "SUCCEEDED", "{}", explain(&w, &a));
    assert_eq!(b.status, "SUCCEEDED", "{}", explain(&w, &b));

    // The schedule's input planned every enabled region of the home account, and global.
    for run in [&a, &b] {
        let planned: BTreeSet<String> = run.output["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["scope"]["account"], HOME_ACCOUNT);
                s["scope"]["region"].as_str().unwrap().to_owned()
            })
            .collect();
        let mut expected = regions.clone();
        expected.insert("global".into());
        assert_eq!(planned, expected);
    }

    let audit = DynamoAuditLog::new(w.clients.dynamodb(), &w.tables.audit);
    let mut events = audit.events_for_run("scheduled-a").await.unwrap();
    events.extend(audit.events_for_run("scheduled-b").await.unwrap());
    let rows = |resource: &str, run: &str, event: AuditEventType| {
        events
            .iter()
            .filter(|e| e.resource == resource && e.run_id == run && e.event == event)
            .cloned()
            .collect::<Vec<_>>()
    };
    // Overlapping runs never share a resource: B found A's resources held, and nothing was
    // acted on twice.
    let held_by_a: Vec<&str> = events
        .iter()
        .filter(|e| e.run_id == "scheduled-b" && e.event == AuditEventType::LockHeld)
        .map(|e| e.resource.as_str())
        .collect();
    assert!(!held_by_a.is_empty(), "run B should have met locks A held");
    for resource in &held_by_a {
        assert!(!rows(resource, "scheduled-a", AuditEventType::Locked).is_empty(), "{resource} held by A");
        assert!(rows(resource, "scheduled-b", AuditEventType::Notified).is_empty(), "B never tells about {resource}");
    }
    let resources: BTreeSet<&str> = events.iter().map(|e| e.resource.as_str()).collect();
    for resource in resources {
        let acted = events.iter().filter(|e| e.resource == resource && e.event == AuditEventType::Remediated).count();
        assert!(acted <= 1, "{resource} remediated {acted} times");
    }

    // A real grace: A acted only after the grace end it told the owner, and after a recheck.
    let unused = key(HOME_REGION, ResourceKind::Ec2Instance, w.estate.id("unused-env"));
    let told = rows(&unused, "scheduled-a", AuditEventType::Notified);
    let grace_ends: chrono::DateTime<Utc> = serde_json::from_value(told[0].detail["grace_ends"].clone()).unwrap();
    assert!(grace_ends >= told[0].at + chrono::Duration::seconds(10), "{grace_ends} vs {}", told[0].at);
    let rechecked = &rows(&unused, "scheduled-a", AuditEventType::Rechecked)[0];
    let remediated = &rows(&unused, "scheduled-a", AuditEventType::Remediated)[0];
    assert!(rechecked.at >= grace_ends && remediated.at >= rechecked.at);
    assert_eq!(instance_state(&w.clients, HOME_REGION, w.estate.id("unused-env")).await, "stopped");
    // What vanished during the grace is GONE, read as such under the recheck's own grants.
    let dana = ResourceKey::new(HOME_ACCOUNT, "global", ResourceKind::IamUser, "dana-no-mfa").to_string();
    let bucket = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::S3Bucket, "janitor-twin-public-policy");
    for resource in [dana, bucket.to_string()] {
        let trail: Vec<(&str, &str, &Value)> = events
            .iter()
            .filter(|e| e.resource == resource)
            .map(|e| (e.run_id.as_str(), e.event.as_str(), &e.detail))
            .collect();
        let told: Vec<&str> = trail.iter().filter(|t| t.1 == "NOTIFIED").map(|t| t.0).collect();
        let gone: Vec<&str> = trail.iter().filter(|t| t.1 == "GONE").map(|t| t.0).collect();
        assert_eq!(told.len(), 1, "one run told about {resource}: {trail:?}");
        assert_eq!(gone, told, "the run that told about {resource} found it gone: {trail:?}");
    }
    assert!(lock_holders(&w).await.is_empty(), "both runs gave back every lock");
    // The grants the two-pass run cannot reach are real and reached here.
    let observed = observed_actions(&w.machine.calls_dir()).unwrap();
    for (function, action, why) in
        ACTIONS_OFF_THE_HAPPY_PATH.iter().filter(|(_, _, why)| why.contains("scheduled-runs"))
    {
        assert!(observed[*function].contains(*action), "{function} should have called {action} ({why}): {observed:?}");
    }
    let problems = w.machine.grant_problems().unwrap();
    assert!(problems.is_empty(), "IAM grants vs calls:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_grant_fails_the_run_naming_function_action_and_resource() {
    let options = PipelineOptions { without_grant: Some(("discovery", "ec2:DescribeRegions")), ..Default::default() };
    let w = world("nogrant", options).await;
    let run = w.machine.execute(&scheduled_input("dry-run"), "no-grant").await.unwrap();
    assert_eq!(run.error.as_deref(), Some("Janitor.RunIncomplete"), "{}", explain(&w, &run));
    let summary = run.summary().unwrap();
    assert_eq!(summary["plan_failures"][0]["what"], "enabled-regions", "{summary}");
    assert_eq!(summary["plan_failures"][0]["error"], "Janitor.AccessDenied", "{summary}");
    let problems = w.machine.grant_problems().unwrap();
    assert_eq!(problems, ["discovery was denied ec2:DescribeRegions on * (enforced run)"]);

    // The static check: a call on a table the granting statement does not name.
    let template = Template::load().unwrap();
    let names = testkit::iam::LocalNames {
        tables: w.tables.clone(),
        run_bucket: "runs".into(),
        reports_bucket: "reports".into(),
        anchor_bucket: "anchors".into(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:t".into(),
        security_topic_arn: "arn:aws:sns:us-east-1:123456789012:s".into(),
        secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:s".into(),
        member_role: "CloudJanitorMemberRole".into(),
        email_topic_arn: "arn:aws:sns:us-east-1:123456789012:e".into(),
        teams_secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:t".into(),
        link_key_arn: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
    };
    let call = |function: &str, action: &str, target: String| testkit::iam::ObservedCall {
        function: function.into(),
        action: action.into(),
        target,
        denied: false,
    };
    let calls = [
        call("lock", "dynamodb:DeleteItem", format!("table/{}", w.tables.lock)),
        // Audit rows are never deleted: no function may delete on the audit table.
        call("lock", "dynamodb:DeleteItem", format!("table/{}", w.tables.audit)),
        call("remediate", "dynamodb:Query", format!("table/{}/index/by-run", w.tables.audit)),
        call("remediate", "dynamodb:Query", format!("table/{}", w.tables.audit)),
    ];
    let problems = testkit::iam::grant_problems(&template, &names, &calls).unwrap();
    let table = |name: &str| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}");
    assert_eq!(
        problems,
        [
            format!("lock calls dynamodb:DeleteItem on {}, which no statement grants there", table(&w.tables.audit)),
            format!("remediate calls dynamodb:Query on {}, which no statement grants there", table(&w.tables.audit)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_of_5000_instances_and_3000_findings_stays_far_below_the_payload_limit() {
    // One scope far past any Step Functions payload: 3,000 findings and 2,000 instances for
    // the metric check. Every finding is found and kept in the run store; notify is capped.
    // moto holds no CPU data for these instances: missing monitoring (which would flag all
    // 5,000) is off, so the findings are the 3,000 this test counts.
    let options = PipelineOptions { rules_off: &["ec2_missing_monitoring"], ..Default::default() };
    let w = world("big", options).await;
    let region = "us-west-2";
    let home = testkit::estate::Seeder::new(w.clients.clone(), HOME_ACCOUNT);
    let required = [("Owner", "platform@example.com"), ("CostCenter", "c"), ("Project", "p")];
    let testing = [&required[..], &[("Environment", "testing")]].concat();
    let production = [&required[..], &[("Environment", "production")]].concat();
    for _ in 0..6 {
        home.instances(region, 500, &testing).await.unwrap();
    }
    for _ in 0..4 {
        home.instances(region, 500, &production).await.unwrap();
    }
    // The estate as the emulator holds it: a RunInstances of 500 that the SDK retried after
    // a slow answer launches its batch twice (moto ignores the ClientToken that makes the
    // retry idempotent in AWS), so the expectation is counted, not assumed.
    let testing_ids = tagged_instances(&w, region, "testing").await;
    assert!(testing_ids.len() >= 3000, "seeded {} testing instances", testing_ids.len());
    let expected = testing_ids.len();
    let input = json!({ "mode": "dry-run", "regions": [region], "accounts": [HOME_ACCOUNT] });
    let run = w.machine.execute(&input, "big-scope").await.unwrap();
    assert!(run.succeeded(), "{}", explain(&w, &run));
    eprintln!("largest Task input or output: {} bytes", run.largest_payload_bytes);
    assert!(run.largest_payload_bytes < 262_144 / 8, "payload {} bytes", run.largest_payload_bytes);

    let scope = scope_summary(&run.output, HOME_ACCOUNT, region);
    let tally = &scope["tally"];
    assert_eq!(tally["found"], expected, "every finding is found: {scope}");
    assert_eq!(tally["deferred"], expected - 100, "{scope}");
    assert_eq!(tally["notified"], 100, "notify is capped by max_findings_per_scope: {scope}");
    assert_eq!(tally["would_remediate"], 100, "{scope}");
    // Every finding is reported: the scope's metric-check document holds every testing
    // instance, and nothing else.
    let stored = stored_findings(&w, "big-scope", region, janitor_core::runstore::Stage::MetricCheck).await;
    let stored_ids: BTreeSet<String> = stored.iter().map(|f| f.id.clone()).collect();
    assert_eq!(stored_ids, testing_ids);
    let audit = DynamoAuditLog::new(w.clients.dynamodb(), &w.tables.audit);
    let events = audit.events_for_run("big-scope").await.unwrap();
    let in_scope = format!("{HOME_ACCOUNT}/{region}/");
    let rows = |event: AuditEventType| {
        events.iter().filter(|e| e.event == event && e.resource.starts_with(in_scope.as_str())).collect::<Vec<_>>()
    };
    let discovered: BTreeSet<&str> = rows(AuditEventType::Discovered).iter().map(|e| e.resource.as_str()).collect();
    let stored_keys: BTreeSet<String> = stored.iter().map(|f| f.key.to_string()).collect();
    assert_eq!(discovered, stored_keys.iter().map(String::as_str).collect(), "one DISCOVERED row per finding");
    assert_eq!(rows(AuditEventType::Deferred).len(), expected - 100);
    assert!(lock_holders(&w).await.is_empty());
    // The deferred findings' places were kept under the lock role's own grants, and the
    // run's thousands of audit rows are intact on their chains.
    let observed = observed_actions(&w.machine.calls_dir()).unwrap();
    assert!(observed["lock"].contains("dynamodb:BatchWriteItem"), "{observed:?}");
    assert_eq!(w.machine.grant_problems().unwrap(), Vec::<String>::new());
    let (stored_rows, unreadable) = audit.stored_run("big-scope").await.unwrap();
    let heads: Vec<_> = audit.chain_heads(Some("big-scope")).await.unwrap().into_iter().map(|(h, _)| h).collect();
    assert!(unreadable.is_empty());
    assert_eq!(janitor_core::chain::verify(&stored_rows, &heads), []);
}

// ------------------------------------------------------------------ onboard: judged at creation

/// A CloudTrail sample from `events/cloudtrail`, as EventBridge delivers it.
fn cloudtrail(name: &str) -> Value {
    let path = repo_root().join("events/cloudtrail").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The Slack messages posted so far to `channel`.
fn messages_to(w: &World, channel: &str) -> Vec<Value> {
    w.slack.calls("chat.postMessage").into_iter().filter(|c| c.body["channel"] == channel).map(|c| c.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_made_public_or_non_compliant_is_told_to_its_owner_from_its_cloudtrail_event() {
    let teams = testkit::teams::TeamsStub::start().await.unwrap();
    let w = world("onboard", PipelineOptions { teams: Some(&teams), ..Default::default() }).await;
    let seed = testkit::estate::Seeder::new(w.clients.clone(), HOME_ACCOUNT);
    let audit = DynamoAuditLog::new(w.clients.dynamodb(), &w.tables.audit);
    let invoke = |event: Value| {
        let w = &w;
        async move {
            let started = std::time::Instant::now();
            let out = w.machine.invoke("onboard", &event).await.unwrap();
            assert_eq!(out.status, "SUCCEEDED", "{}", explain(w, &out));
            (out.output, started.elapsed())
        }
    };
    let mut latencies = Vec::new();

    // ---- a bucket made public (PutBucketPolicy): the owner's message, the audit rows, no run
    let event = cloudtrail("s3-PutBucketPolicy-public");
    let bucket = event["detail"]["requestParameters"]["bucketName"].as_str().unwrap().to_owned();
    let s3 = w.clients.s3(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let owner_tag = aws_sdk_s3::types::Tag::builder().key("Owner").value("alice@example.com").build().unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(owner_tag).build().unwrap();
    s3.put_bucket_tagging().bucket(&bucket).tagging(tagging).send().await.unwrap();
    let policy = event["detail"]["requestParameters"]["bucketPolicy"].to_string();
    s3.put_bucket_policy().bucket(&bucket).policy(policy).send().await.unwrap();
    let before = w.slack.calls("chat.postMessage").len();
    let (out, took) = invoke(event.clone()).await;
    latencies.push(("PutBucketPolicy", took));
    let run = format!("onboard-{}", event["detail"]["eventID"].as_str().unwrap());
    assert_eq!(
        (out["run"].as_str(), out["findings"].as_u64(), out["notified"].as_u64()),
        (Some(run.as_str()), Some(1), Some(1)),
        "{out}"
    );
    // Its owner (the Owner tag), alice, is told in Slack.
    let to_alice = messages_to(&w, "UALICE");
    let told =
        to_alice.last().unwrap_or_else(|| panic!("nothing sent to alice: {:?}", w.slack.calls("chat.postMessage")));
    let text = told["blocks"].to_string();
    assert!(text.contains(&bucket) && text.contains("the next daily run's grace period"), "{text}");
    assert!(text.contains("snooze_30d"), "the same Snooze button: {text}");
    assert_eq!(w.slack.calls("chat.postMessage").len(), before + 1, "one message");
    let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::S3Bucket, &bucket).to_string();
    let rows = audit.events_for_run(&run).await.unwrap();
    let about = |event: AuditEventType| rows.iter().filter(|r| r.resource == key && r.event == event).count();
    assert_eq!((about(AuditEventType::Discovered), about(AuditEventType::Notified)), (1, 1), "{rows:#?}");
    let discovered = rows.iter().find(|r| r.event == AuditEventType::Discovered).unwrap();
    assert_eq!(discovered.policy, Some(RuleId::S3PublicBucket));
    assert_eq!(discovered.detail["trigger"]["event"], "PutBucketPolicy");
    assert_eq!(discovered.detail["trigger"]["by"], "arn:aws:iam::123456789012:user/alice");
    let (stored, unreadable) = audit.stored_run(&run).await.unwrap();
    let heads: Vec<_> = audit.chain_heads(Some(&run)).await.unwrap().into_iter().map(|(h, _)| h).collect();
    assert!(unreadable.is_empty() && !heads.is_empty());
    assert_eq!(janitor_core::chain::verify(&stored, &heads), [], "onboard's rows are on their chain");

    // The same event delivered again tells nobody and writes no second notice.
    let (again, _) = invoke(event.clone()).await;
    assert_eq!(again["notified"], 0, "{again}");
    assert_eq!(w.slack.calls("chat.postMessage").len(), before + 1);
    // Another change to the bucket within renotify_after is on record, not a second message.
    let mut acl = cloudtrail("s3-PutBucketAcl-public");
    acl["detail"]["requestParameters"]["bucketName"] = json!(bucket);
    let (acl_out, _) = invoke(acl.clone()).await;
    assert_eq!((acl_out["notified"].as_u64(), acl_out["exempt"].as_u64()), (Some(0), Some(1)), "{acl_out}");
    assert_eq!(w.slack.calls("chat.postMessage").len(), before + 1);
    let acl_run = format!("onboard-{}", acl["detail"]["eventID"].as_str().unwrap());
    let exempt = audit.events_for_run(&acl_run).await.unwrap();
    assert!(
        exempt.iter().any(|r| r.event == AuditEventType::Exempt && r.detail["reason"] == "recently notified"),
        "{exempt:#?}"
    );
    // The owner can snooze it from that message, as from a run's.
    assert_eq!(discovered.detail["owner"], "alice@example.com");
    let reply = click(&w, "UALICE", &key).await;
    assert_eq!(reply["statusCode"], 200, "{reply}");
    let snoozes = DynamoSnoozeStore::new(w.clients.dynamodb(), &w.tables.snooze);
    let live = snoozes.live_snoozes(&[ResourceKey::parse(&key).unwrap()], Utc::now()).await.unwrap();
    assert_eq!(live.len(), 1, "alice's click snoozed the bucket");

    // ---- each other resource event, on a resource made as the sample says
    let mut launch = cloudtrail("ec2-RunInstances");
    let instance = seed.instance(HOME_REGION, &[("Name", "alice-scratch")]).await.unwrap();
    launch["detail"]["responseElements"]["instancesSet"]["items"] = json!([{ "instanceId": instance }]);
    let mut volume_event = cloudtrail("ec2-CreateVolume");
    let volume_region = volume_event["detail"]["awsRegion"].as_str().unwrap().to_owned();
    let volume = seed.volume(&volume_region, false, None, &[("Name", "bob-data")]).await.unwrap();
    volume_event["detail"]["responseElements"]["volumeId"] = json!(volume);
    let mut ingress = cloudtrail("ec2-AuthorizeSecurityGroupIngress-open-ssh");
    let group = seed.security_group(HOME_REGION, "alice-temp-ssh", &[(22, "0.0.0.0/0")], &[]).await.unwrap();
    ingress["detail"]["requestParameters"]["groupId"] = json!(group);
    for rule in ingress["detail"]["responseElements"]["securityGroupRuleSet"]["items"].as_array_mut().unwrap() {
        rule["groupId"] = json!(group);
    }
    let database = cloudtrail("rds-CreateDBInstance");
    let db = database["detail"]["requestParameters"]["dBInstanceIdentifier"].as_str().unwrap().to_owned();
    seed.database_with(HOME_REGION, &db, false, &[]).await.unwrap();
    for (event, name, id, kind, rule, owner) in [
        (&launch, "RunInstances", instance.as_str(), ResourceKind::Ec2Instance, RuleId::Ec2MissingTags, "UALICE"),
        (&volume_event, "CreateVolume", volume.as_str(), ResourceKind::EbsVolume, RuleId::EbsUnencrypted, "UBOB"),
        (
            &ingress,
            "AuthorizeSecurityGroupIngress",
            group.as_str(),
            ResourceKind::SecurityGroup,
            RuleId::SgOpenAdminPorts,
            "UALICE",
        ),
        (&database, "CreateDBInstance", db.as_str(), ResourceKind::RdsInstance, RuleId::RdsUnencrypted, "UALICE"),
    ] {
        let sent = messages_to(&w, owner).len();
        let (out, took) = invoke(event.clone()).await;
        latencies.push((name, took));
        assert!(out["notified"].as_u64().is_some_and(|n| n >= 1), "{name}: {out}");
        let told = messages_to(&w, owner);
        assert_eq!(told.len(), sent + 1, "{name}: one message to {owner}");
        assert!(told[sent]["blocks"].to_string().contains(id), "{name}: {}", told[sent]["blocks"]);
        let region = event["detail"]["awsRegion"].as_str().unwrap();
        let key = ResourceKey::new(HOME_ACCOUNT, region, kind, id).to_string();
        let run = format!("onboard-{}", event["detail"]["eventID"].as_str().unwrap());
        let rows = audit.events_for_run(&run).await.unwrap();
        assert!(
            rows.iter().any(|r| r.resource == key && r.event == AuditEventType::Notified && r.policy == Some(rule)),
            "{name}: {rows:#?}"
        );
        // Rules that need a metric or an age wait for the daily run.
        assert!(rows.iter().all(|r| r.policy.is_none_or(|p| p.rule().at_creation())), "{name}: {rows:#?}");
    }
    // Who launched an instance owns it when no tag says otherwise, and may snooze it; who opened
    // a port on a group is told, but owns nothing and may not.
    let launched = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::Ec2Instance, &instance).to_string();
    let opened = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, ResourceKind::SecurityGroup, &group).to_string();
    click(&w, "UALICE", &launched).await;
    click(&w, "UALICE", &opened).await;
    let keys = [ResourceKey::parse(&launched).unwrap(), ResourceKey::parse(&opened).unwrap()];
    let live = snoozes.live_snoozes(&keys, Utc::now()).await.unwrap();
    assert_eq!(live.keys().map(|k| k.to_string()).collect::<Vec<_>>(), std::slice::from_ref(&launched), "{live:?}");
    let denied = audit.events_for_resource(&opened).await.unwrap();
    assert!(denied.iter().any(|r| r.event == AuditEventType::SnoozeDenied), "{denied:#?}");

    // ---- owners the policy routes to Teams and to email: a card and an email, each with a
    // signed snooze link that opens a page (snoozing nothing) whose form snoozes, once
    // #platform owns an instance (S3 tags cannot hold `#`), dave a bucket made public.
    let platform_instance =
        seed.instance(HOME_REGION, &[("Name", "platform-batch"), ("Owner", "#platform")]).await.unwrap();
    let mut launched_for_platform = cloudtrail("ec2-RunInstances");
    launched_for_platform["detail"]["responseElements"]["instancesSet"]["items"] =
        json!([{ "instanceId": platform_instance }]);
    launched_for_platform["detail"]["eventID"] = json!("7a1c2e3f-0000-4000-8000-000000000001");
    let dave_bucket = format!("dave-{bucket}");
    s3.create_bucket().bucket(&dave_bucket).send().await.unwrap();
    let tag = aws_sdk_s3::types::Tag::builder().key("Owner").value("dave@mail.example").build().unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().unwrap();
    s3.put_bucket_tagging().bucket(&dave_bucket).tagging(tagging).send().await.unwrap();
    let mut made_public = cloudtrail("s3-PutBucketPolicy-public");
    let policy = made_public["detail"]["requestParameters"]["bucketPolicy"].to_string().replace(&bucket, &dave_bucket);
    s3.put_bucket_policy().bucket(&dave_bucket).policy(&policy).send().await.unwrap();
    made_public["detail"]["requestParameters"]["bucketName"] = json!(dave_bucket);
    made_public["detail"]["eventID"] = json!("7a1c2e3f-0000-4000-8000-000000000002");
    let routed = [platform_instance.clone(), dave_bucket.clone()];
    for (event, name) in [(launched_for_platform, "RunInstances, to Teams"), (made_public, "PutBucketPolicy, by email")]
    {
        let sent = w.slack.calls("chat.postMessage").len();
        let (out, took) = invoke(event).await;
        latencies.push((name, took));
        assert_eq!(out["notified"], 1, "{name}: {out}");
        assert_eq!(w.slack.calls("chat.postMessage").len(), sent, "{name}: not told in Slack");
    }
    let cards = teams.cards("platform");
    assert_eq!(cards.len(), 1, "{cards:#?}");
    let card = cards[0]["attachments"][0]["content"].to_string();
    assert!(card.contains(&routed[0]) && card.contains("the next daily run's grace period"), "{card}");
    assert!(card.contains("ec2-missing-tags") && card.contains("Action.OpenUrl"), "{card}");
    let url = |text: &str| {
        let start = text.find(testkit::state_machine::SNOOZE_LINK_URL).unwrap_or_else(|| panic!("no link in {text}"));
        text[start..].split(['"', '\n', ' ']).next().unwrap().to_owned()
    };
    let emails = w.machine.emails_published().await.unwrap();
    assert_eq!(emails.len(), 1, "{emails:#?}");
    let (subject, body, to) = &emails[0];
    assert_eq!(
        (subject.as_str(), to.as_str()),
        ("Cloud Janitor: 1 resource needs your attention", "dave@mail.example")
    );
    assert!(body.contains(&routed[1]) && body.contains("Rule: s3-public-bucket") && body.contains("Why: "), "{body}");
    let snoozes = DynamoSnoozeStore::new(w.clients.dynamodb(), &w.tables.snooze);
    let kinds = [ResourceKind::Ec2Instance, ResourceKind::S3Bucket];
    for ((name, kind), (link, holder)) in
        routed.iter().zip(kinds).zip([(url(&card), "#platform"), (url(body), "dave@mail.example")])
    {
        let token = link.split_once("?t=").unwrap().1.to_owned();
        let opened = w.machine.invoke("snooze", &snooze_link_event("GET", &format!("t={token}"), "")).await.unwrap();
        assert_eq!(opened.output["statusCode"], 200, "{}", explain(&w, &opened));
        assert!(opened.output["body"].as_str().unwrap().contains(name.as_str()), "{}", opened.output);
        let key = ResourceKey::new(HOME_ACCOUNT, HOME_REGION, kind, name);
        assert!(
            snoozes.live_snoozes(std::slice::from_ref(&key), Utc::now()).await.unwrap().is_empty(),
            "opening snoozes nothing"
        );
        let form = serde_urlencoded::to_string([("t", token.as_str()), ("days", "7")]).unwrap();
        let used = w.machine.invoke("snooze", &snooze_link_event("POST", "", &form)).await.unwrap();
        assert_eq!(used.output["statusCode"], 200, "{}", explain(&w, &used));
        let live = snoozes.live_snoozes(std::slice::from_ref(&key), Utc::now()).await.unwrap();
        assert_eq!(live.get(&key).map(|s| s.by.as_str()), Some(holder), "{live:?}");
        let again = w.machine.invoke("snooze", &snooze_link_event("POST", "", &form)).await.unwrap();
        assert_eq!(again.output["statusCode"], 409, "a link works once: {}", again.output);
    }

    // An email owner with no subscription would get nothing from SNS: the message fails, on
    // record, and the event is retried (then kept in the dead-letter queue).
    let erin_bucket = format!("erin-{bucket}");
    s3.create_bucket().bucket(&erin_bucket).send().await.unwrap();
    let tag = aws_sdk_s3::types::Tag::builder().key("Owner").value("erin@mail.example").build().unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().unwrap();
    s3.put_bucket_tagging().bucket(&erin_bucket).tagging(tagging).send().await.unwrap();
    let mut unreachable = cloudtrail("s3-PutBucketPolicy-public");
    let policy = unreachable["detail"]["requestParameters"]["bucketPolicy"].to_string().replace(&bucket, &erin_bucket);
    s3.put_bucket_policy().bucket(&erin_bucket).policy(&policy).send().await.unwrap();
    unreachable["detail"]["requestParameters"]["bucketName"] = json!(erin_bucket);
    unreachable["detail"]["eventID"] = json!("7a1c2e3f-0000-4000-8000-000000000003");
    let failed = w.machine.invoke("onboard", &unreachable).await.unwrap();
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    let run = format!("onboard-{}", unreachable["detail"]["eventID"].as_str().unwrap());
    let rows = audit.events_for_run(&run).await.unwrap();
    let refused = rows.iter().find(|r| r.event == AuditEventType::NotifyFailed).unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(
        refused.detail["message"].as_str().unwrap().contains("erin@mail.example has no confirmed subscription"),
        "{}",
        refused.detail
    );
    assert_eq!(w.machine.emails_published().await.unwrap().len(), 1, "nothing published for erin");

    // ---- what onboard does not judge: a failed call (one denied call is no burst)
    let sent = w.slack.calls("chat.postMessage").len();
    let (out, _) = invoke(cloudtrail("ec2-RunInstances-denied")).await;
    assert_eq!((out["ignored"].as_str(), out.get("alerts")), (Some("call-failed"), None), "{out}");
    assert_eq!(w.slack.calls("chat.postMessage").len(), sent);

    // ---- security events: alerted at once to the security topic and channel, each on record
    let before = w.machine.security_alerts_published().await.unwrap().len();
    for (sample, signal) in [
        ("cloudtrail-StopLogging", "cloudtrail-tampering"),
        ("iam-AttachUserPolicy-admin", "admin-policy-granted"),
        ("signin-ConsoleLogin-root", "root-activity"),
    ] {
        let event = cloudtrail(sample);
        let (out, took) = invoke(event.clone()).await;
        latencies.push((sample, took));
        assert_eq!(out["alerts"], json!([signal]), "{sample}: {out}");
        let run = format!("onboard-{}", event["detail"]["eventID"].as_str().unwrap());
        let rows = audit.events_for_run(&run).await.unwrap();
        let row = rows.iter().find(|r| r.event == AuditEventType::SecurityAlert).unwrap_or_else(|| panic!("{rows:#?}"));
        assert_eq!((row.detail["signal"].as_str(), row.detail["topic"].as_str()), (Some(signal), Some("delivered")));
        assert_eq!(row.detail["slack"], "delivered");
        assert!(row.resource.ends_with(&format!("/security/{signal}")), "{}", row.resource);
        // Delivered again, the event raises nothing new.
        let (again, _) = invoke(event).await;
        assert!(again.get("alerts").is_none(), "{sample}: {again}");
    }
    let alerts = w.machine.security_alerts_published().await.unwrap();
    assert_eq!(alerts.len(), before + 3, "{alerts:#?}");
    assert!(
        alerts
            .iter()
            .any(|(subject, m)| subject.contains("org-management-events") && m["metadata"]["eventType"] == "security")
    );
    assert!(w.machine.alerts_published().await.unwrap().iter().all(|(_, m)| m["metadata"]["eventType"] != "security"));
    let posted = messages_to(&w, "#security");
    assert!(
        posted.len() >= 3 && posted.iter().any(|m| m["text"].as_str().unwrap_or("").contains("AdministratorAccess")),
        "{posted:#?}"
    );

    // Failed sign-ins are counted: the fifth within the hour alerts, once; the sixth does not.
    let before = w.machine.security_alerts_published().await.unwrap().len();
    let mut raised = Vec::new();
    for attempt in 0..6 {
        let mut failure = cloudtrail("signin-ConsoleLogin-failure");
        failure["detail"]["eventID"] = json!(format!("5f0a7c3e-0000-4000-8000-00000000000{attempt}"));
        let (out, _) = invoke(failure).await;
        raised.push(out.get("alerts").is_some());
    }
    assert_eq!(raised, [false, false, false, false, true, false]);
    assert_eq!(w.machine.security_alerts_published().await.unwrap().len(), before + 1);
    // A malformed event fails (Lambda retries it, then the dead-letter queue keeps it).
    let broken = w.machine.invoke("onboard", &json!({ "detail-type": "AWS API Call via CloudTrail" })).await.unwrap();
    assert_eq!(broken.status, "FAILED", "{broken:?}");
    assert_eq!(broken.error.as_deref(), Some("Janitor.InvalidInput"), "{broken:?}");

    for (name, took) in &latencies {
        println!("event -> owner's message ({name}, invoke of the real binary incl. start): {} ms", took.as_millis());
    }
    // ---- under its own role: nothing denied, every grant used, every call inside its statement
    let observed = observed_actions(&w.machine.calls_dir()).unwrap();
    let mut problems = least_privilege(&observed, |f| f == "onboard");
    problems.extend(w.machine.grant_problems().unwrap());
    assert!(problems.is_empty(), "IAM grants vs calls:\n{}", problems.join("\n"));
}
