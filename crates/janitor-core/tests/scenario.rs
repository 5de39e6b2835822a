//! The whole loop on moto and a local Slack stub: detection → notify → a signed snooze click
//! → recheck → remediate, in dry-run and then enforce. Every assertion reads real state:
//! instance states, snapshots, addresses, bucket settings, IAM tags, Slack calls, audit rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use janitor_core::audit::AuditEventType;
use janitor_core::aws::{self, AwsClients, DynamoSnoozeStore, SnsAlerts, TableNames};
use janitor_core::memory::InMemoryAlerts;
use janitor_core::model::{ResourceKey, ResourceKind, Scope, StepPayload};
use janitor_core::ports::{AlertSink, SnoozeStore};
use janitor_core::slack::{SlackChat, SlackSettings};
use janitor_core::{Deps, snooze, step};
use serde_json::{Value, json};
use testkit::estate::{MEMBER_ACCOUNT, SECOND_REGION, Seeder, TwinEstate, TwinWorld};
use testkit::pipeline::{click_snooze, continue_scopes, run_scopes};
use testkit::probe::{bucket_blocked, db_exists, eip_exists, has_final_snapshot, instance_state, user_tags};
use testkit::slack::SlackStub;
use testkit::{HOME_ACCOUNT, HOME_REGION, Moto, emulator_policy_with_grace};

const SIGNING_SECRET: &str = "test-signing-secret";

struct World {
    moto: Moto,
    clients: AwsClients,
    tables: TableNames,
    slack: SlackStub,
    estate: TwinEstate,
    home: Seeder,
}

/// The emulator policy with no grace period (the test plays its passing), plus `edits`.
fn policy(edits: &[(&str, &str)]) -> janitor_core::policy::Policy {
    let mut text = emulator_policy_with_grace("0s");
    for (from, to) in edits {
        text = text.replace(from, to);
    }
    janitor_core::policy::Policy::from_toml_str(&text, "scenario policy").unwrap()
}

async fn world() -> World {
    let TwinWorld { moto, clients, tables, estate, home } = TwinWorld::start("scenario").await.unwrap();
    let slack = SlackStub::for_twin_estate().await.unwrap();
    // Bob's direct messages fail: his findings must never be remediated.
    slack.fail_channel("UBOB");
    World { moto, clients, tables, slack, estate, home }
}

fn deps(w: &World, policy: janitor_core::policy::Policy, alerts: Arc<dyn AlertSink>) -> Deps {
    let mut deps = aws::deps_with(policy, w.clients.clone(), &w.tables);
    let settings = SlackSettings {
        api_url: w.slack.api_url(),
        default_channel: "#cloud-janitor".into(),
        response_url_prefix: w.slack.base_url.clone(),
        security_channel: None,
    };
    deps.chat = Arc::new(SlackChat::new(settings.clone(), "xoxb-test".into()).unwrap());
    deps.slack = settings;
    deps.alerts = alerts;
    deps
}

async fn run_steps(deps: &Deps, run_id: &str, mode: &str, steps: &[&str]) -> Vec<StepPayload> {
    let request = json!({
        "mode": mode,
        "regions": [HOME_REGION, SECOND_REGION],
        "accounts": [HOME_ACCOUNT, MEMBER_ACCOUNT],
        "run_id": run_id,
    });
    run_scopes(deps, request, steps).await.unwrap()
}

async fn click(deps: &Deps, w: &World, user: &str, key: &str, action: &str, message: &Value) -> snooze::HttpReply {
    click_snooze(deps, SIGNING_SECRET, user, key, action, &w.slack.response_url(user), message).await
}

fn key(region: &str, kind: ResourceKind, id: &str) -> String {
    ResourceKey::new(HOME_ACCOUNT, region, kind, id).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_notify_snooze_recheck_then_dry_run_and_enforce() {
    let w = world().await;
    let alerts = Arc::new(InMemoryAlerts::default());
    let deps = deps(&w, policy(&[]), alerts.clone());
    let ec2 = ResourceKind::Ec2Instance;
    let id = |name: &str| w.estate.id(name).to_owned();

    // ---- dry-run: detection and notification
    w.slack.rate_limit_next(1);
    let notified = run_steps(&deps, "dry-1", "dry-run", &["metric-check", "lock", "notify"]).await;
    let posts = w.slack.calls("chat.postMessage");
    assert_eq!(posts[0].status, 429, "the first post was rate limited ...");
    assert!(posts.iter().skip(1).any(|c| c.status == 200), "... and retried after Retry-After");
    assert!(posts.iter().all(|c| c.authorization.as_deref() == Some("Bearer xoxb-test")));
    let to_alice: Vec<&testkit::slack::RecordedCall> =
        posts.iter().filter(|c| c.status == 200 && c.body["channel"] == "UALICE").collect();
    // us-east-1: unused-env, protect-false, idle, snooze-expired, db-idle, stopped (long),
    // sg-open-ssh, the manual snapshot db-busy-manual, fn-unused, no-data (missing
    // monitoring) and the stale Service Catalog product (no owner tag: launched in alice's
    // SSO session); eu-west-1: eu-idle and the rest; the account-wide scope: the empty bucket.
    assert_eq!(to_alice.len(), 3, "one message per owner per scope, not one per resource");
    let us_message = to_alice.iter().find(|c| c.body["blocks"].to_string().contains(&id("idle"))).unwrap();
    let buttons = us_message.body["blocks"].as_array().unwrap().iter().filter(|b| b["type"] == "actions").count();
    assert_eq!(buttons, 11);
    let text = us_message.body["blocks"].to_string();
    assert!(text.contains("Snooze 7 days") && text.contains("Snooze 30 days") && text.contains("dry-run"));
    assert!(text.contains("daily average CPU at most 4.90%"), "evidence in the message");
    let bob_key = key(HOME_REGION, ec2, &id("missing-tags"));
    let all_notified: BTreeSet<String> =
        notified.iter().flat_map(|p| p.findings.iter().map(|f| f.key.to_string())).collect();
    assert!(!all_notified.contains(&bob_key), "a failed notification leaves the run");
    // Bob's message also held the badly named product his SSO session launched.
    let bob_product = key(HOME_REGION, ResourceKind::ProvisionedProduct, &id("sc-bad-name"));
    assert!(!all_notified.contains(&bob_product));
    assert_eq!(all_notified.len(), w.estate.expected_findings.len() - 2);
    let events = deps.audit.events_for_run("dry-1").await.unwrap();
    assert!(events.iter().any(|e| e.resource == bob_key && e.event == AuditEventType::NotifyFailed));
    // One NOTIFIED row per finding told (a resource may break several rules).
    let notified_rows = events.iter().filter(|e| e.event == AuditEventType::Notified).count();
    assert_eq!(notified_rows, notified.iter().map(|p| p.findings.len()).sum::<usize>());
    assert!(notified_rows > all_notified.len(), "unused-env and others break two rules each");

    // ---- the owner snoozes the idle instance; a stranger's click is refused
    let idle_key = key(HOME_REGION, ec2, &id("idle"));
    let message = json!({ "text": us_message.body["text"], "blocks": us_message.body["blocks"] });
    let reply = click(&deps, &w, "UALICE", &idle_key, "snooze_30d", &message).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let unused_key = key(HOME_REGION, ec2, &id("unused-env"));
    let refused = click(&deps, &w, "UMALLORY", &unused_key, "snooze_7d", &message).await;
    assert_eq!(refused.status, 200);
    let snoozes = DynamoSnoozeStore::new(w.clients.dynamodb(), &w.tables.snooze);
    let live = snoozes
        .live_snoozes(&[ResourceKey::parse(&idle_key).unwrap(), ResourceKey::parse(&unused_key).unwrap()], Utc::now())
        .await
        .unwrap();
    assert_eq!(live.keys().map(|k| k.to_string()).collect::<Vec<_>>(), vec![idle_key.clone()]);
    assert_eq!(live.values().next().unwrap().by, "UALICE");
    let responses = w.slack.calls("response_url");
    let update = responses.iter().find(|c| c.body["replace_original"] == true).expect("message updated");
    assert!(update.body["blocks"].to_string().contains("Snoozed by <@UALICE>"));
    assert!(!update.body["blocks"].to_string().contains(&format!("\"value\":\"{idle_key}\"")), "its buttons are gone");
    let ephemeral = responses.iter().find(|c| c.body["response_type"] == "ephemeral").expect("refusal shown");
    assert!(ephemeral.body["text"].as_str().unwrap().contains("only the owner"));

    // ---- the world changes during the grace period
    let iam = w.clients.iam(HOME_ACCOUNT).await.unwrap();
    let device = iam.create_virtual_mfa_device().virtual_mfa_device_name("dana-late").send().await.unwrap();
    let serial = device.virtual_mfa_device().unwrap().serial_number().to_owned();
    iam.enable_mfa_device()
        .user_name("dana-no-mfa")
        .serial_number(serial)
        .authentication_code1("1")
        .authentication_code2("2")
        .send()
        .await
        .unwrap();
    let gone = id("protect-false");
    w.clients
        .ec2(HOME_ACCOUNT, HOME_REGION)
        .await
        .unwrap()
        .terminate_instances()
        .instance_ids(&gone)
        .send()
        .await
        .unwrap();

    // ---- recheck and dry-run remediation: everything recorded, nothing touched
    let finished = continue_scopes(&deps, notified, &["recheck", "remediate"]).await.unwrap();
    let events = deps.audit.events_for_run("dry-1").await.unwrap();
    let event_of =
        |resource: &str, event: AuditEventType| events.iter().any(|e| e.resource == resource && e.event == event);
    assert!(event_of(&idle_key, AuditEventType::Snoozed));
    assert!(event_of(&format!("{HOME_ACCOUNT}/global/iam-user/dana-no-mfa"), AuditEventType::Cleared));
    assert!(event_of(&key(HOME_REGION, ec2, &gone), AuditEventType::Gone));
    let would: BTreeSet<String> = finished
        .iter()
        .flat_map(|p| &p.outcomes)
        .filter(|o| o.result == AuditEventType::WouldRemediate)
        .map(|o| o.key.to_string())
        .collect();
    assert!(would.contains(&unused_key) && !would.contains(&idle_key) && !would.contains(&bob_key));
    assert_eq!(instance_state(&w.clients, HOME_REGION, &id("unused-env")).await, "running", "dry-run changes nothing");
    assert!(eip_exists(&w.clients, HOME_REGION, &id("eip-free")).await);
    assert!(!bucket_blocked(&w.clients, HOME_ACCOUNT, HOME_REGION, "janitor-twin-public-policy").await);
    assert!(alerts.published().iter().all(|(_, m)| m["version"] == "1.0" && m["source"] == "custom"));

    // ---- enforce: a fresh run acts on what is still violating, and only that
    let enforced =
        run_steps(&deps, "enforce-1", "enforce", &["metric-check", "lock", "notify", "recheck", "remediate"]).await;
    let done: BTreeSet<String> = enforced
        .iter()
        .flat_map(|p| &p.outcomes)
        .filter(|o| o.result == AuditEventType::Remediated)
        .map(|o| o.key.to_string())
        .collect();
    for name in ["unused-env", "snooze-expired"] {
        assert_eq!(instance_state(&w.clients, HOME_REGION, &id(name)).await, "stopped", "{name}");
    }
    assert_eq!(instance_state(&w.clients, SECOND_REGION, &id("eu-idle")).await, "stopped");
    for name in ["idle", "busy", "protected", "snoozed", "missing-tags", "no-data", "partial-data"] {
        assert_eq!(instance_state(&w.clients, HOME_REGION, &id(name)).await, "running", "{name} must be untouched");
    }
    assert!(has_final_snapshot(&w.clients, HOME_REGION, "db-idle").await, "final snapshot exists");
    assert!(db_exists(&w.clients, HOME_REGION, "db-busy").await);
    assert!(!eip_exists(&w.clients, HOME_REGION, &id("eip-free")).await, "released");
    assert!(eip_exists(&w.clients, HOME_REGION, &id("eip-used")).await, "associated address kept");
    assert!(bucket_blocked(&w.clients, HOME_ACCOUNT, HOME_REGION, "janitor-twin-public-policy").await);
    assert!(bucket_blocked(&w.clients, HOME_ACCOUNT, SECOND_REGION, "janitor-twin-public-acl").await);
    assert!(
        !bucket_blocked(&w.clients, HOME_ACCOUNT, HOME_REGION, "janitor-twin-private").await,
        "private bucket untouched"
    );
    assert!(user_tags(&w.clients, MEMBER_ACCOUNT, "member-no-mfa").await.contains(&"janitor:mfa-required".to_owned()));
    assert!(!user_tags(&w.clients, HOME_ACCOUNT, "dana-no-mfa").await.contains(&"janitor:mfa-required".to_owned()));
    assert!(!user_tags(&w.clients, HOME_ACCOUNT, "break-glass").await.contains(&"janitor:mfa-required".to_owned()));
    assert!(!done.contains(&bob_key) && !done.contains(&idle_key));
    let threads = w.slack.calls("chat.postMessage").into_iter().filter(|c| c.body["thread_ts"].is_string()).count();
    assert!(threads > 0, "outcomes reported in the notification threads");

    // ---- idempotent: the same remediation again (a retried step) reports what this run
    // already did, from the audit trail, and acts on nothing twice.
    let us = enforced.iter().find(|p| p.run.scope == Some(Scope::new(HOME_ACCOUNT, HOME_REGION))).unwrap().clone();
    let mut again = us.clone();
    again.outcomes.clear();
    let again: StepPayload =
        serde_json::from_value(step::remediate(&deps, serde_json::to_value(again).unwrap()).await.unwrap()).unwrap();
    let unused = again.outcomes.iter().find(|o| o.key.to_string() == unused_key).unwrap();
    assert_eq!(unused.result, AuditEventType::Remediated);
    assert_eq!(unused.detail["decided"]["by"], "an earlier attempt of this step", "{unused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blast_radius_cap_halts_a_run_and_alerts() {
    let w = world().await;
    let alerts = Arc::new(InMemoryAlerts::default());
    let deps = deps(&w, policy(&[("max_actions_per_run = 25", "max_actions_per_run = 2")]), alerts.clone());
    let finished =
        run_steps(&deps, "capped", "enforce", &["metric-check", "lock", "notify", "recheck", "remediate"]).await;
    let us = finished.iter().find(|p| p.run.scope == Some(Scope::new(HOME_ACCOUNT, HOME_REGION))).unwrap();
    // Everything the run would act on halts; a notify-only finding has nothing to halt.
    let halted = |o: &&janitor_core::model::Outcome| o.result == AuditEventType::Halted;
    let notify_only =
        |o: &&janitor_core::model::Outcome| o.result == AuditEventType::Skipped && o.detail["action"] == "notify-only";
    assert!(us.outcomes.iter().all(|o| halted(&o) || notify_only(&o)), "{:?}", us.outcomes);
    assert!(us.outcomes.iter().filter(halted).count() >= 5, "{:?}", us.outcomes);
    assert_eq!(instance_state(&w.clients, HOME_REGION, w.estate.id("unused-env")).await, "running");
    assert!(eip_exists(&w.clients, HOME_REGION, w.estate.id("eip-free")).await);
    let halts: Vec<_> =
        alerts.published().into_iter().filter(|(_, m)| m["metadata"]["eventType"] == "JanitorHalted").collect();
    assert!(!halts.is_empty());
    assert!(halts[0].1["content"]["title"].as_str().unwrap().contains("more than 2 actions"));
    let total: usize = finished.iter().map(|p| p.count).sum();
    assert!(total <= 2, "never more actions than the cap across the run: {total}");
    let _ = &w.home;
    let _ = &w.moto;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_reach_a_real_sns_topic() {
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let topic =
        clients.sns().create_topic().name("janitor-alerts").send().await.unwrap().topic_arn().unwrap().to_owned();
    let alerts = SnsAlerts::new(&clients, Some(topic));
    alerts.publish("Cloud Janitor run r1", &json!({ "version": "1.0", "source": "custom" })).await.unwrap();
    let unset = SnsAlerts::new(&clients, None).publish("x", &json!({})).await.unwrap_err();
    assert_eq!(unset.error_name(), "Janitor.Config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_secret_is_read_from_secrets_manager_and_checked() {
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let sm = clients.secrets_manager();
    sm.create_secret()
        .name("janitor/slack")
        .secret_string(r#"{"bot_token":"xoxb-1","signing_secret":"s3cr3t"}"#)
        .send()
        .await
        .unwrap();
    sm.create_secret().name("janitor/bad").secret_string(r#"{"token":"xoxb-1"}"#).send().await.unwrap();
    let secret = aws::slack_secret(&clients, "janitor/slack").await.unwrap();
    assert_eq!((secret.bot_token.as_str(), secret.signing_secret.as_str()), ("xoxb-1", "s3cr3t"));
    assert!(!format!("{secret:?}").contains("s3cr3t"), "secrets never reach the logs");
    let bad = aws::slack_secret(&clients, "janitor/bad").await.unwrap_err();
    assert_eq!(bad.error_name(), "Janitor.Config");
    assert!(bad.to_string().contains("bot_token"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remediator_rereads_and_refuses_what_is_no_longer_safe_or_needed() {
    use janitor_core::aws::AwsRemediator;
    use janitor_core::model::{Action, Finding, RuleId};
    use janitor_core::ports::{ActionOutcome, Remediator};
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    let finding = |kind: ResourceKind, id: &str, action: Action| bare_finding(kind, id, RuleId::EipUnattached, action);
    let remediator = AwsRemediator::new(clients.clone(), "janitor:protect");
    let now = Utc::now();

    let rds = clients.rds(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    home.database(HOME_REGION, "db-protected", &[]).await.unwrap();
    rds.modify_db_instance()
        .db_instance_identifier("db-protected")
        .deletion_protection(true)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    let out = remediator
        .apply(&finding(ResourceKind::RdsInstance, "db-protected", Action::SnapshotAndDeleteDb), now)
        .await
        .unwrap();
    assert!(matches!(&out, ActionOutcome::Skipped(r) if r.contains("deletion protection")), "{out:?}");
    assert!(rds.describe_db_instances().db_instance_identifier("db-protected").send().await.is_ok(), "not deleted");

    let instance = home.instance(HOME_REGION, &[]).await.unwrap();
    let eip = home.elastic_ip(HOME_REGION, Some(&instance)).await.unwrap();
    let out = remediator.apply(&finding(ResourceKind::ElasticIp, &eip, Action::ReleaseAddress), now).await.unwrap();
    assert!(matches!(&out, ActionOutcome::Skipped(r) if r.contains("associated")), "{out:?}");

    let stop = finding(ResourceKind::Ec2Instance, &instance, Action::StopInstance);
    assert!(matches!(remediator.apply(&stop, now).await.unwrap(), ActionOutcome::Done(_)));
    assert!(matches!(remediator.apply(&stop, now).await.unwrap(), ActionOutcome::AlreadyCompliant(_)), "idempotent");

    let gone = finding(ResourceKind::ElasticIp, "eipalloc-00000000000000000", Action::ReleaseAddress);
    assert!(matches!(remediator.apply(&gone, now).await.unwrap(), ActionOutcome::AlreadyCompliant(_)));

    // A protect tag put on after the recheck is read with the resource and wins, every kind.
    let protect = [("janitor:protect", "yes")];
    let ec2 = clients.ec2(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    let guarded = home.instance(HOME_REGION, &[]).await.unwrap();
    let free_eip = home.elastic_ip(HOME_REGION, None).await.unwrap();
    home.database(HOME_REGION, "db-guarded", &protect).await.unwrap();
    home.user("guarded-user", true, false, &protect).await.unwrap();
    home.bucket("janitor-guarded", HOME_REGION).await.unwrap();
    home.bucket_tags("janitor-guarded", HOME_REGION, &protect).await.unwrap();
    let tag = aws_sdk_ec2::types::Tag::builder().key("janitor:protect").value("").build();
    ec2.create_tags().resources(&guarded).resources(&free_eip).tags(tag).send().await.unwrap();
    let cases = [
        finding(ResourceKind::Ec2Instance, &guarded, Action::StopInstance),
        finding(ResourceKind::ElasticIp, &free_eip, Action::ReleaseAddress),
        finding(ResourceKind::RdsInstance, "db-guarded", Action::SnapshotAndDeleteDb),
        Finding {
            key: ResourceKey::new(HOME_ACCOUNT, "global", ResourceKind::IamUser, "guarded-user"),
            ..finding(ResourceKind::IamUser, "guarded-user", Action::TagMfaRequired)
        },
        Finding {
            key: ResourceKey::new(HOME_ACCOUNT, "global", ResourceKind::S3Bucket, "janitor-guarded"),
            ..finding(ResourceKind::S3Bucket, "janitor-guarded", Action::BlockPublicAccess)
        },
    ];
    for case in &cases {
        let out = remediator.apply(case, now).await.unwrap();
        assert_eq!(out, ActionOutcome::Protected("janitor:protect".into()), "{}", case.key);
    }
    assert_eq!(instance_state(&clients, HOME_REGION, &guarded).await, "running");
    assert!(eip_exists(&clients, HOME_REGION, &free_eip).await);
    assert!(db_exists(&clients, HOME_REGION, "db-guarded").await);
    assert!(!user_tags(&clients, HOME_ACCOUNT, "guarded-user").await.iter().any(|t| t == "janitor:mfa-required"));
    assert!(!bucket_blocked(&clients, HOME_ACCOUNT, HOME_REGION, "janitor-guarded").await);
    // `false` still means unprotected.
    let tag = aws_sdk_ec2::types::Tag::builder().key("janitor:protect").value("False").build();
    ec2.create_tags().resources(&guarded).tags(tag).send().await.unwrap();
    assert!(matches!(remediator.apply(&cases[0], now).await.unwrap(), ActionOutcome::Done(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattached_volume_is_deleted_only_after_a_completed_snapshot_of_it() {
    use janitor_core::aws::AwsRemediator;
    use janitor_core::model::{Action, RuleId};
    use janitor_core::ports::{ActionOutcome, Remediator};
    use testkit::probe::{kept_snapshots, volume_exists};
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    let volume =
        |id: &str| bare_finding(ResourceKind::EbsVolume, id, RuleId::EbsUnattached, Action::SnapshotAndDeleteVolume);
    let remediator = AwsRemediator::new(clients.clone(), "janitor:protect");
    let now = Utc::now();

    let free = home.volume(HOME_REGION, true, None, &[]).await.unwrap();
    let out = remediator.apply(&volume(&free), now).await.unwrap();
    let ActionOutcome::Done(result) = &out else { panic!("{out:?}") };
    let kept = kept_snapshots(&clients, HOME_REGION, &free).await;
    assert_eq!(kept.len(), 1, "one snapshot kept, tagged with the volume");
    assert_eq!(result["snapshot"], kept[0].as_str());
    assert!(!volume_exists(&clients, HOME_REGION, &free).await, "deleted after its snapshot");
    // A retry finds nothing left to do and takes no second snapshot.
    assert!(matches!(remediator.apply(&volume(&free), now).await.unwrap(), ActionOutcome::Skipped(_)));
    assert_eq!(kept_snapshots(&clients, HOME_REGION, &free).await.len(), 1);

    // Attached again since the recheck, or protected since: kept, and no snapshot taken.
    let instance = home.instance(HOME_REGION, &[]).await.unwrap();
    let reattached = home.volume(HOME_REGION, true, Some(&instance), &[]).await.unwrap();
    let out = remediator.apply(&volume(&reattached), now).await.unwrap();
    assert!(matches!(&out, ActionOutcome::Skipped(r) if r.contains("attached")), "{out:?}");
    assert!(volume_exists(&clients, HOME_REGION, &reattached).await);
    let guarded = home.volume(HOME_REGION, true, None, &[("Janitor:Protect", "yes")]).await.unwrap();
    assert_eq!(
        remediator.apply(&volume(&guarded), now).await.unwrap(),
        ActionOutcome::Protected("janitor:protect".into())
    );
    assert!(volume_exists(&clients, HOME_REGION, &guarded).await);
    assert!(kept_snapshots(&clients, HOME_REGION, &reattached).await.is_empty());
    assert!(kept_snapshots(&clients, HOME_REGION, &guarded).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_security_group_loses_exactly_its_world_open_admin_ranges() {
    use janitor_core::aws::{AwsInventory, AwsRemediator};
    use janitor_core::model::{Action, RuleId, Scope};
    use janitor_core::ports::{ActionOutcome, Inventory, Remediator};
    use janitor_core::rules::{Judgement, Resource, Rule, sg_open_admin_ports};
    use testkit::probe::group_ingress;
    let moto = Moto::start().unwrap();
    let clients = moto.clients().await;
    let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
    let policy = testkit::emulator_policy();
    let now = Utc::now();
    let open = [(22, "0.0.0.0/0"), (22, "10.0.0.0/8"), (3306, "::/0"), (443, "0.0.0.0/0")];
    let group = home.security_group(HOME_REGION, "wide-open", &open, &[]).await.unwrap();
    let guarded = home.security_group(HOME_REGION, "guarded", &open[..1], &[("janitor:protect", "1")]).await.unwrap();

    // Judged from the AWS listing, as discovery would.
    let listed =
        AwsInventory::new(clients.clone()).security_groups(&Scope::new(HOME_ACCOUNT, HOME_REGION)).await.unwrap();
    let finding_for = |id: &str| {
        let listed = listed.iter().find(|g| g.id == id).expect("listed");
        let Judgement::Violates { evidence, action, reason } =
            sg_open_admin_ports::RULE.judge(&policy, now, Resource::SecurityGroup(listed))
        else {
            panic!("{id} is open to the world on 22 and 3306");
        };
        assert!(reason.contains("port 22"), "{reason}");
        janitor_core::model::Finding {
            evidence,
            ..bare_finding(ResourceKind::SecurityGroup, id, RuleId::SgOpenAdminPorts, action)
        }
    };
    let finding = finding_for(&group);
    assert_eq!(finding.action, Action::RevokeOpenIngress);
    let default_group = listed.iter().find(|g| g.name == "default").expect("the default VPC's group is listed");
    let judged = sg_open_admin_ports::RULE.judge(&policy, now, Resource::SecurityGroup(default_group));
    assert_eq!(judged, Judgement::Complies, "a group open only to itself is not open to the world");

    // Someone closed the IPv6 range in the meantime: only what is still open is revoked.
    let ec2 = clients.ec2(HOME_ACCOUNT, HOME_REGION).await.unwrap();
    let v6 = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(3306)
        .to_port(3306)
        .ipv6_ranges(aws_sdk_ec2::types::Ipv6Range::builder().cidr_ipv6("::/0").build())
        .build();
    ec2.revoke_security_group_ingress().group_id(&group).ip_permissions(v6).send().await.unwrap();
    let remediator = AwsRemediator::new(clients.clone(), "janitor:protect");
    let out = remediator.apply(&finding, now).await.unwrap();
    let ActionOutcome::Done(done) = &out else { panic!("{out:?}") };
    assert_eq!(done["revoked"].as_array().map(Vec::len), Some(1), "{done}");
    let left = group_ingress(&clients, HOME_REGION, &group).await;
    assert_eq!(left, [(22, "10.0.0.0/8".to_owned()), (443, "0.0.0.0/0".to_owned())], "the rest of the group stays");
    assert!(matches!(remediator.apply(&finding, now).await.unwrap(), ActionOutcome::AlreadyCompliant(_)));

    let out = remediator.apply(&finding_for(&guarded), now).await.unwrap();
    assert_eq!(out, ActionOutcome::Protected("janitor:protect".into()));
    assert_eq!(group_ingress(&clients, HOME_REGION, &guarded).await, [(22, "0.0.0.0/0".to_owned())]);
    let blind =
        bare_finding(ResourceKind::SecurityGroup, &guarded, RuleId::SgOpenAdminPorts, Action::RevokeOpenIngress);
    assert!(matches!(remediator.apply(&blind, now).await.unwrap(), ActionOutcome::Skipped(_)), "no evidence, no act");
}

/// A finding in the home region as a payload would hand it to the remediator.
fn bare_finding(
    kind: ResourceKind,
    id: &str,
    policy: janitor_core::model::RuleId,
    action: janitor_core::model::Action,
) -> janitor_core::model::Finding {
    janitor_core::model::Finding::new(ResourceKey::new(HOME_ACCOUNT, HOME_REGION, kind, id), policy, "test", action)
}
