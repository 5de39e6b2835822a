//! Onboard: resources judged the moment they are created or opened up, from their CloudTrail
//! event (delivered by EventBridge), with the rules that need no metric and no age
//! ([`crate::rules::Rule::at_creation`]). The owner is told at once, with the same protect
//! tag, snoozes, audit rows and Snooze button as a run; acting still waits for a daily run's
//! own notice, grace period and recheck. Each event is a run of its own, `onboard-<eventID>`,
//! so a redelivered event lands on the same run and tells nobody twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::discovery;
use crate::error::{JanitorError, Result};
use crate::model::{Exemption, Finding, GLOBAL_REGION, Mode, ResourceKind, RunContext, Scope};
use crate::notify;
use crate::policy::OnboardPolicy;
use crate::slack::Deadline;

const ACTOR: &str = "onboard";

/// What EventBridge calls a CloudTrail management event.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The calls onboard judges, by event source and name, and the kind each names. The
/// template's EventBridge rule matches exactly these (a test compares them).
pub const EVENTS: &[(&str, &str, ResourceKind)] = &[
    ("ec2.amazonaws.com", "RunInstances", ResourceKind::Ec2Instance),
    ("ec2.amazonaws.com", "CreateVolume", ResourceKind::EbsVolume),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", ResourceKind::SecurityGroup),
    ("ec2.amazonaws.com", "ModifySecurityGroupRules", ResourceKind::SecurityGroup),
    ("rds.amazonaws.com", "CreateDBInstance", ResourceKind::RdsInstance),
    ("rds.amazonaws.com", "ModifyDBInstance", ResourceKind::RdsInstance),
    ("s3.amazonaws.com", "CreateBucket", ResourceKind::S3Bucket),
    ("s3.amazonaws.com", "PutBucketPolicy", ResourceKind::S3Bucket),
    ("s3.amazonaws.com", "PutBucketAcl", ResourceKind::S3Bucket),
    // CloudTrail's names for the PutPublicAccessBlock and DeletePublicAccessBlock calls.
    ("s3.amazonaws.com", "PutBucketPublicAccessBlock", ResourceKind::S3Bucket),
    ("s3.amazonaws.com", "DeleteBucketPublicAccessBlock", ResourceKind::S3Bucket),
];

/// The calls that make a resource: their caller made it, so may stand as its owner (snooze
/// it) when it names none. Any other call changes a resource someone else may own.
const CREATING: &[&str] = &["RunInstances", "CreateVolume", "CreateDBInstance", "CreateBucket"];

/// The EventBridge envelope of a CloudTrail management event. Fields AWS adds later are
/// passed over: this is AWS's document, not the janitor's.
#[derive(Debug, Clone, Deserialize)]
pub struct CloudTrailEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub account: String,
    pub region: String,
    pub detail: ApiCall,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    #[serde(default)]
    pub event_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(rename = "sourceIPAddress", default)]
    pub source_ip_address: Option<String>,
    #[serde(default)]
    pub user_identity: UserIdentity,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub request_parameters: Option<Value>,
    #[serde(default)]
    pub response_elements: Option<Value>,
    /// The account the call was made in (the envelope's `account` too, unless forwarded).
    #[serde(default)]
    pub recipient_account_id: Option<String>,
    /// The resources CloudTrail names, with their accounts (S3 records a cross-account call in
    /// the caller's account too).
    #[serde(default)]
    pub resources: Vec<TrailResource>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrailResource {
    #[serde(rename = "accountId", default)]
    pub account_id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    /// An IAM user's name (the one a console sign-in names).
    #[serde(default)]
    pub user_name: Option<String>,
}

impl CloudTrailEvent {
    pub fn parse(input: Value) -> Result<CloudTrailEvent> {
        serde_json::from_value(input)
            .map_err(|e| JanitorError::InvalidInput(format!("onboard: not a CloudTrail event from EventBridge: {e}")))
    }

    /// A sample from `events/cloudtrail/` (the unit tests).
    #[cfg(test)]
    pub(crate) fn sample(name: &str) -> CloudTrailEvent {
        let path = format!("{}/../../events/cloudtrail/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        CloudTrailEvent::parse(serde_json::from_str(&text).unwrap()).unwrap()
    }
}

/// Resources of one kind in one scope, named by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scope: Scope,
    pub kind: ResourceKind,
    pub ids: Vec<String>,
}

/// Why an event is passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Ignored {
    /// Not a CloudTrail API call.
    NotAnApiCall,
    /// The call failed: it made or changed nothing.
    CallFailed,
    /// One of the janitor's own roles (`[onboard].ignore_principals`): its fixes come back as events.
    ByTheJanitor,
    /// A call onboard does not judge.
    NotJudged,
    /// The call names no resource onboard can read.
    NoResource,
    /// The account or region is excluded by the policy.
    Excluded,
}

/// What the event names, or why it is passed over.
pub fn triage(policy: &crate::policy::Policy, event: &CloudTrailEvent) -> std::result::Result<Target, Ignored> {
    let call = &event.detail;
    if event.detail_type != DETAIL_TYPE {
        return Err(Ignored::NotAnApiCall);
    }
    if call.error_code.is_some() {
        return Err(Ignored::CallFailed);
    }
    if call.user_identity.arn.as_deref().is_some_and(|arn| policy.onboard.ignores(arn)) {
        return Err(Ignored::ByTheJanitor);
    }
    let Some(&(_, _, kind)) =
        EVENTS.iter().find(|(source, name, _)| *source == call.event_source && *name == call.event_name)
    else {
        return Err(Ignored::NotJudged);
    };
    let bucket_owner = (kind == ResourceKind::S3Bucket)
        .then(|| call.resources.iter().find(|r| r.kind.as_deref() == Some("AWS::S3::Bucket")))
        .flatten()
        .and_then(|r| r.account_id.clone());
    let account = bucket_owner.or_else(|| call.recipient_account_id.clone()).unwrap_or_else(|| event.account.clone());
    let region = if kind.account_wide() {
        GLOBAL_REGION.to_owned()
    } else {
        call.aws_region.clone().unwrap_or_else(|| event.region.clone())
    };
    if policy.excludes_account(&account) || (!kind.account_wide() && policy.excludes_region(&region)) {
        return Err(Ignored::Excluded);
    }
    let ids = resource_ids(call);
    if ids.is_empty() {
        return Err(Ignored::NoResource);
    }
    Ok(Target { scope: Scope::new(&account, region), kind, ids })
}

/// The ids a call names, where CloudTrail records them for each event.
fn resource_ids(call: &ApiCall) -> Vec<String> {
    let request = call.request_parameters.as_ref().unwrap_or(&Value::Null);
    let response = call.response_elements.as_ref().unwrap_or(&Value::Null);
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let mut ids: Vec<String> = match call.event_name.as_str() {
        "RunInstances" => response["instancesSet"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| text(&item["instanceId"]))
            .collect(),
        "CreateVolume" => text(&response["volumeId"]).into_iter().collect(),
        // A group named by its name (default VPC) is named by id in the rules it got.
        "AuthorizeSecurityGroupIngress" => text(&request["groupId"])
            .into_iter()
            .chain(
                response["securityGroupRuleSet"]["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|rule| text(&rule["groupId"])),
            )
            .collect(),
        "ModifySecurityGroupRules" => {
            text(&request["ModifySecurityGroupRulesRequest"]["GroupId"]).into_iter().collect()
        }
        // A rename applied now names the instance by its new identifier; one applied in the
        // next maintenance window leaves the old one until then.
        "ModifyDBInstance" if request["applyImmediately"] == true => text(&request["newDBInstanceIdentifier"])
            .or_else(|| text(&request["dBInstanceIdentifier"]))
            .into_iter()
            .collect(),
        "CreateDBInstance" | "ModifyDBInstance" => text(&request["dBInstanceIdentifier"]).into_iter().collect(),
        _ => text(&request["bucketName"]).into_iter().collect(),
    };
    ids.sort();
    ids.dedup();
    ids
}

/// Whom to tell about what a principal did when the resource names no owner: the policy's
/// `[onboard].owners`, else an IAM Identity Center user's email (its session name, which AWS
/// sets; an IAM user's name is anyone's to choose).
pub fn creator(policy: &OnboardPolicy, who: &UserIdentity) -> Option<String> {
    let arn = who.arn.as_deref()?;
    if let Some(owner) = policy.owner_for(arn) {
        return Some(owner.to_owned());
    }
    if !arn.contains(":assumed-role/") {
        return None;
    }
    crate::rules::sc_unauthorized_launcher::person(arn).filter(|p| p.contains('@')).map(str::to_owned)
}

/// What one event came to (the function's answer, and its log line).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Onboarded {
    pub run: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<Ignored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    pub findings: usize,
    pub notified: usize,
    pub exempt: usize,
    /// Security alerts raised (see [`crate::security`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<crate::security::SignalKind>,
}

/// Whether the owner was already told about this finding: by an earlier delivery of this
/// event (its rows are written), or by any run within `[onboard].renotify_after`.
enum Told {
    ThisRun,
    Recently { at: DateTime<Utc>, run: String },
}

async fn told_already(deps: &Deps, finding: &Finding, run_id: &str, now: DateTime<Utc>) -> Result<Option<Told>> {
    let window = deps.policy.onboard.renotify_after.as_chrono();
    let trail = deps.audit.events_for_resource(finding.key.as_str()).await?;
    let notices = trail.iter().filter(|e| e.is_about(finding) && e.event == AuditEventType::Notified);
    let mut recent = None;
    for notice in notices {
        if notice.run_id == run_id {
            return Ok(Some(Told::ThisRun));
        }
        if notice.at > now - window && recent.as_ref().is_none_or(|(at, _)| notice.at > *at) {
            recent = Some((notice.at, notice.run_id.clone()));
        }
    }
    Ok(recent.map(|(at, run)| Told::Recently { at, run }))
}

/// Judges what one CloudTrail event made or changed and tells its owner. Passes over what
/// it does not judge (answered, not failed); fails, so Lambda tries again, when a resource
/// could not be read or a row not written: each failure is on record first.
pub async fn onboard(deps: &Deps, mode: Mode, event: &CloudTrailEvent) -> Result<Onboarded> {
    let call = &event.detail;
    let run_id = format!("onboard-{}", call.event_id);
    let mut out = Onboarded { run: run_id.clone(), event: call.event_name.clone(), ..Default::default() };
    if !call.user_identity.arn.as_deref().is_some_and(|arn| deps.policy.onboard.ignores(arn)) {
        out.alerts = alert(deps, mode, &run_id, event).await?;
    }
    let target = match triage(&deps.policy, event) {
        Ok(target) => target,
        Err(why) => {
            tracing::info!(run = %run_id, event = %call.event_name, ignored = <&str>::from(why), "event passed over");
            out.ignored = Some(why);
            return Ok(out);
        }
    };
    out.resources = Some(target.ids.clone());
    let now = deps.clock.now();
    let run = RunContext { id: run_id.clone(), mode, scope: Some(target.scope.clone()), started_at: Some(now) };
    let scanned = crate::kinds::scan_ids(target.kind, deps, &target.scope, &target.ids).await;
    let (mut payload, mut events) = discovery::settle(deps, &run, vec![(target.kind, scanned)], now, ACTOR).await?;
    // No rule judged at creation reads a metric (a test holds the registry to it).
    payload.candidates.clear();
    let owner = creator(&deps.policy.onboard, &call.user_identity);
    let trigger = json!({
        "event": call.event_name,
        "event_id": call.event_id,
        "event_time": call.event_time,
        "by": call.user_identity.arn,
        "source_ip": call.source_ip_address,
    });
    // The caller of a change (a policy, a rule) is told, but is not the resource's owner: what
    // they were told about they may not snooze (see snooze::handle_interaction).
    let creating = CREATING.contains(&call.event_name.as_str());
    let mut callers_only = std::collections::HashSet::new();
    let mut fresh = Vec::new();
    for mut f in std::mem::take(&mut payload.findings) {
        if f.owner.is_none() {
            f.owner = owner.clone();
            if !creating && f.owner.is_some() {
                callers_only.insert(f.key.clone());
            }
        }
        match told_already(deps, &f, &run_id, now).await? {
            Some(Told::ThisRun) => {}
            Some(Told::Recently { at, run }) => events.push(AuditEvent::for_finding(
                &f,
                &run_id,
                AuditEventType::Exempt,
                now,
                ACTOR,
                json!({ "reason": Exemption::RecentlyNotified, "notified_at": at, "notified_by_run": run, "trigger": trigger }),
            )),
            None => fresh.push(f),
        }
    }
    fresh.sort_by(|a, b| (&a.key, a.policy).cmp(&(&b.key, b.policy)));
    out.findings = fresh.len();
    for f in &fresh {
        events.push(AuditEvent::for_finding(
            f,
            &run_id,
            AuditEventType::Discovered,
            now,
            ACTOR,
            json!({ "reason": f.reason, "action": f.action, "evidence": f.evidence, "owner": f.owner, "cost": f.cost, "trigger": trigger }),
        ));
    }
    payload.findings = fresh;
    payload.recount();
    out.exempt = events.iter().filter(|e| e.event == AuditEventType::Exempt).count();
    deps.audit.record(&events).await?;
    let failures = payload.failures.clone();
    let told =
        notify::deliver(deps, vec![payload], Deadline::NextRun, &|f: &Finding| callers_only.contains(&f.key)).await?;
    out.notified = told.iter().map(|p| p.findings.len()).sum();
    if let Some(first) = failures.first() {
        // On record as FAILED rows; Lambda's retries (then the dead-letter queue) take it on.
        return Err(JanitorError::Transient {
            service: "onboard",
            operation: "read",
            message: format!("{} of {} not read: {}: {}", failures.len(), call.event_name, first.what, first.message),
        });
    }
    // NOTIFY_FAILED rows are written; a later delivery tells them (only NOTIFIED rows count).
    if out.notified < out.findings {
        // Whatever carried it (Slack, Teams, email): each failure is on its NOTIFY_FAILED row.
        return Err(JanitorError::Slack {
            method: "deliver",
            message: format!(
                "{} finding(s) of {} not told to their owner (see their NOTIFY_FAILED rows)",
                out.findings - out.notified,
                call.event_name
            ),
        });
    }
    tracing::info!(run = %run_id, event = %call.event_name, findings = out.findings, notified = out.notified, exempt = out.exempt, "event judged");
    Ok(out)
}

/// The audit key of a security alert: its account, region and signal.
fn alert_key(event: &CloudTrailEvent, kind: crate::security::SignalKind) -> String {
    let call = &event.detail;
    let account = call.recipient_account_id.as_deref().unwrap_or(&event.account);
    let region = call.aws_region.as_deref().unwrap_or(&event.region);
    format!("{account}/{region}/security/{}", kind.as_str())
}

/// Evidence in a message: Slack takes 3,000 characters a section, and a policy document
/// alone may be 10 KB; the audit row keeps all of it.
const EVIDENCE_CHARS: usize = 1_500;

/// Raises the event's security signals: each counted one when its count reaches its
/// threshold in its window (an event counted once, however often it is delivered), the
/// others at once. An alert is published to the security topic and posted to the security
/// channel, and recorded with how each went; a redelivered event repeats only what failed.
async fn alert(
    deps: &Deps,
    mode: Mode,
    run_id: &str,
    event: &CloudTrailEvent,
) -> Result<Vec<crate::security::SignalKind>> {
    use crate::security::assess;
    let signals = assess(&deps.policy.security, event);
    if signals.is_empty() {
        return Ok(Vec::new());
    }
    let now = deps.clock.now();
    let earlier = deps.audit.events_for_run(run_id).await?;
    let run = RunContext { id: run_id.to_owned(), mode, scope: None, started_at: Some(now) };
    let mut raised = Vec::new();
    let mut undelivered = Vec::new();
    for signal in signals {
        let key = alert_key(event, signal.kind);
        let done_before = |channel: &str| {
            earlier.iter().any(|e| {
                e.event == AuditEventType::SecurityAlert && e.resource == key && e.detail[channel] == "delivered"
            })
        };
        let (topic_done, slack_done) = (done_before("topic"), done_before("slack"));
        if topic_done && slack_done {
            continue;
        }
        let mut count = None;
        if let Some(counted) = &signal.counted {
            // Windows by when the calls were made, not when their events arrived.
            let at = event.detail.event_time.unwrap_or(now).timestamp();
            let window = i64::from(counted.window_minutes.max(1)) * 60;
            let start = at - at.rem_euclid(window);
            let until =
                chrono::DateTime::from_timestamp((start + 2 * window).max(now.timestamp() + window), 0).unwrap_or(now);
            let counter = format!("{}/{start}", counted.counter);
            let n = deps.locks.count_once(&counter, &event.detail.event_id, counted.threshold, until).await?;
            // Exactly one event is the threshold's in a window: one alert per window.
            if n != counted.threshold {
                continue;
            }
            count = Some(n);
        }
        let mut evidence = serde_json::to_string_pretty(&signal.evidence).unwrap_or_default();
        if let Some((cut, _)) = evidence.char_indices().nth(EVIDENCE_CHARS) {
            evidence.truncate(cut);
            evidence.push_str("\n… (the audit row has it all)");
        }
        let description =
            format!("*{}* ({}), from CloudTrail.\n```{evidence}```", signal.title, <&str>::from(signal.severity));
        let topic = if topic_done {
            Ok(())
        } else {
            let message = crate::ports::alert_message(
                &run,
                format!("{run_id}/{}", signal.kind.as_str()),
                signal.title.clone(),
                description.clone(),
                "security",
                std::slice::from_ref(&signal.subject),
            );
            deps.alerts.publish(&format!("Cloud Janitor security: {}", signal.title), &message).await
        };
        let slack = if slack_done {
            Ok(())
        } else {
            let channel = deps.slack.security_channel.clone().unwrap_or_else(|| deps.slack.default_channel.clone());
            let blocks = serde_json::json!([
                { "type": "header", "text": { "type": "plain_text", "text": format!("Security: {}", signal.kind.as_str()) } },
                { "type": "section", "text": { "type": "mrkdwn", "text": description } },
            ]);
            deps.chat.post_message(&channel, &signal.title, &blocks).await.map(|_| ())
        };
        let outcome = |done: bool, result: &Result<()>| match result {
            _ if done => json!("delivered"),
            Ok(()) => json!("delivered"),
            Err(e) => json!({ "failed": e.error_name(), "message": e.to_string() }),
        };
        let row = AuditEvent::new(
            key,
            run_id,
            AuditEventType::SecurityAlert,
            now,
            ACTOR,
            json!({
                "signal": signal.kind,
                "severity": signal.severity,
                "subject": signal.subject,
                "title": signal.title,
                "evidence": signal.evidence,
                "count": count,
                "threshold": signal.counted.as_ref().map(|c| c.threshold),
                "window_minutes": signal.counted.as_ref().map(|c| c.window_minutes),
                "topic": outcome(topic_done, &topic),
                "slack": outcome(slack_done, &slack),
            }),
        );
        deps.audit.record(&[row]).await?;
        if topic.is_err() || slack.is_err() {
            undelivered.push(signal.kind);
        }
        raised.push(signal.kind);
    }
    if let Some(kind) = undelivered.first() {
        // On record; Lambda tries again, and only what failed is sent again.
        return Err(JanitorError::Transient {
            service: "onboard",
            operation: "alert",
            message: format!("security alert {} not delivered", kind.as_str()),
        });
    }
    Ok(raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> crate::policy::Policy {
        crate::policy::Policy::from_toml_str(crate::policy::BUILTIN_POLICY, "built-in").unwrap()
    }

    #[test]
    fn each_sample_names_its_resources_in_their_scope() {
        let p = policy();
        let target = |name: &str| triage(&p, &CloudTrailEvent::sample(name));
        let run = target("ec2-RunInstances").unwrap();
        assert_eq!((run.kind, run.scope.region.as_str()), (ResourceKind::Ec2Instance, "us-east-1"));
        assert!(!run.ids.is_empty() && run.ids.iter().all(|id| id.starts_with("i-")), "{run:?}");
        assert_eq!(target("ec2-CreateVolume").unwrap().kind, ResourceKind::EbsVolume);
        let sg = target("ec2-AuthorizeSecurityGroupIngress-open-ssh").unwrap();
        assert_eq!(sg.kind, ResourceKind::SecurityGroup);
        assert!(sg.ids[0].starts_with("sg-"), "{sg:?}");
        let bucket = target("s3-PutBucketPolicy-public").unwrap();
        assert_eq!(bucket.scope, Scope::new("123456789012", GLOBAL_REGION));
        assert_eq!(bucket.ids, ["alice-scratch-exports-20261203"]);
        assert_eq!(target("rds-CreateDBInstance").unwrap().kind, ResourceKind::RdsInstance);
        assert_eq!(target("ec2-RunInstances-denied"), Err(Ignored::CallFailed));
        assert_eq!(target("cloudtrail-StopLogging"), Err(Ignored::NotJudged));
    }

    #[test]
    fn a_group_named_by_its_name_or_in_a_nested_request_and_a_deferred_rename_are_read_right() {
        let p = policy();
        let mut by_name = CloudTrailEvent::sample("ec2-AuthorizeSecurityGroupIngress-open-ssh");
        let id = by_name.detail.request_parameters.as_ref().unwrap()["groupId"].clone();
        let request = by_name.detail.request_parameters.as_mut().unwrap();
        request.as_object_mut().unwrap().remove("groupId");
        request["groupName"] = json!("default");
        assert_eq!(triage(&p, &by_name).unwrap().ids, [id.as_str().unwrap()], "from the rules it got");
        let mut modify = CloudTrailEvent::sample("ec2-AuthorizeSecurityGroupIngress-open-ssh");
        modify.detail.event_name = "ModifySecurityGroupRules".into();
        modify.detail.request_parameters =
            Some(json!({ "ModifySecurityGroupRulesRequest": { "GroupId": "sg-0feed" } }));
        assert_eq!(triage(&p, &modify).unwrap().ids, ["sg-0feed"]);
        let mut rename = CloudTrailEvent::sample("rds-CreateDBInstance");
        rename.detail.event_name = "ModifyDBInstance".into();
        rename.detail.request_parameters =
            Some(json!({ "dBInstanceIdentifier": "old", "newDBInstanceIdentifier": "new", "applyImmediately": false }));
        assert_eq!(triage(&p, &rename).unwrap().ids, ["old"], "renamed in the next maintenance window");
        rename.detail.request_parameters.as_mut().unwrap()["applyImmediately"] = json!(true);
        assert_eq!(triage(&p, &rename).unwrap().ids, ["new"]);
    }

    #[test]
    fn the_janitors_own_calls_and_excluded_accounts_are_passed_over() {
        let mut event = CloudTrailEvent::sample("s3-PutBucketAcl-public");
        event.detail.user_identity.arn =
            Some("arn:aws:sts::123456789012:assumed-role/CloudJanitorMemberRole/remediate".into());
        assert_eq!(triage(&policy(), &event), Err(Ignored::ByTheJanitor));
        let mut p = policy();
        p.excluded_accounts = vec!["123456789012".into()];
        assert_eq!(triage(&p, &CloudTrailEvent::sample("s3-PutBucketAcl-public")), Err(Ignored::Excluded));
    }

    #[test]
    fn the_creator_is_told_by_the_policy_or_by_their_identity_center_email() {
        let mut p = OnboardPolicy::default();
        let who = |arn: &str| UserIdentity { kind: None, arn: Some(arn.into()), user_name: None };
        assert_eq!(creator(&p, &who("arn:aws:iam::123456789012:user/alice")), None);
        p.owners.insert("arn:aws:iam::*:user/*".into(), "#platform".into());
        p.owners.insert("arn:aws:iam::*:user/alice".into(), "alice@example.com".into());
        assert_eq!(creator(&p, &who("arn:aws:iam::123456789012:user/alice")).as_deref(), Some("alice@example.com"));
        assert_eq!(creator(&p, &who("arn:aws:iam::123456789012:user/bob")).as_deref(), Some("#platform"));
        let sso = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Developer_0123/bob@example.com";
        assert_eq!(creator(&p, &who(sso)).as_deref(), Some("bob@example.com"));
        let named = "arn:aws:iam::123456789012:user/carol@example.com";
        assert_eq!(creator(&OnboardPolicy::default(), &who(named)), None, "an IAM user's name is anyone's to choose");
        let chosen = "arn:aws:sts::123456789012:assumed-role/ci-deploy/anyone@example.com";
        assert_eq!(
            creator(&OnboardPolicy::default(), &who(chosen)),
            None,
            "a session name the caller chose names nobody"
        );
    }

    #[test]
    fn a_malformed_event_is_an_invalid_input() {
        let e = CloudTrailEvent::parse(json!({ "detail-type": DETAIL_TYPE })).unwrap_err();
        assert_eq!(e.error_name(), "Janitor.InvalidInput");
    }
}
