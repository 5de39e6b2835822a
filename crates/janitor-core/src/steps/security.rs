//! Security signals in CloudTrail events: what is alerted at once (CloudTrail stopped or
//! weakened, the root user at work, an admin policy granted, SSH or RDP opened to the world)
//! and what is counted first (failed console sign-ins per user per hour, denied calls per
//! principal in a window). Pure: `onboard` counts, records and delivers.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::onboard::CloudTrailEvent;
use crate::policy::SecurityPolicy;

/// What EventBridge calls a console sign-in.
pub const SIGN_IN_DETAIL_TYPE: &str = "AWS Console Sign In via CloudTrail";

/// Error codes of a call refused for want of permission (EC2's are prefixed `Client.` in
/// CloudTrail).
pub const DENIED_CODES: &[&str] =
    &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation"];

/// The calls the security rule (SecuritySignals) hears besides denied ones and the root
/// user's. Opened security groups come by onboard's own rule (ResourceCreated).
pub const EVENTS: &[(&str, &str)] = &[
    ("cloudtrail.amazonaws.com", "StopLogging"),
    ("cloudtrail.amazonaws.com", "DeleteTrail"),
    ("cloudtrail.amazonaws.com", "UpdateTrail"),
    ("iam.amazonaws.com", "AttachUserPolicy"),
    ("iam.amazonaws.com", "AttachRolePolicy"),
    ("iam.amazonaws.com", "AttachGroupPolicy"),
    ("iam.amazonaws.com", "PutUserPolicy"),
    ("iam.amazonaws.com", "PutRolePolicy"),
    ("iam.amazonaws.com", "PutGroupPolicy"),
    ("iam.amazonaws.com", "CreatePolicyVersion"),
    ("signin.amazonaws.com", "ConsoleLogin"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum SignalKind {
    CloudtrailTampering,
    RootActivity,
    AdminPolicyGranted,
    IamPolicyChanged,
    OpenIngress,
    ConsoleLoginFailures,
    AccessDeniedBurst,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Severity {
    Medium,
    High,
}

/// A threshold an event counts towards: alerted when the count in the window reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// What is counted, per what: `<signal>/<account>/<principal>`.
    pub counter: String,
    pub threshold: u64,
    pub window_minutes: u32,
}

/// One security signal of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub kind: SignalKind,
    pub severity: Severity,
    /// Who or what it is about: a trail, a principal, a policy, a group.
    pub subject: String,
    pub title: String,
    pub evidence: Value,
    /// Alerted only once its count reaches the threshold.
    pub counted: Option<Counted>,
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// Whether a policy document (as CloudTrail records it: a JSON string) allows every action
/// on every resource.
fn allows_everything(document: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(document) else { return false };
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return false,
    };
    let has_star = |v: &Value| match v {
        Value::String(s) => s == "*",
        Value::Array(list) => list.iter().any(|x| x == "*"),
        _ => false,
    };
    statements.iter().any(|s| s["Effect"] == "Allow" && has_star(&s["Action"]) && has_star(&s["Resource"]))
}

/// The security signals of one event under the policy's `[security]` table.
pub fn assess(policy: &SecurityPolicy, event: &CloudTrailEvent) -> Vec<Signal> {
    let call = &event.detail;
    let who = call.user_identity.arn.clone().unwrap_or_else(|| "unknown principal".into());
    let account = call.recipient_account_id.clone().unwrap_or_else(|| event.account.clone());
    let request = call.request_parameters.clone().unwrap_or(Value::Null);
    let response = call.response_elements.clone().unwrap_or(Value::Null);
    let source = call.event_source.as_str();
    let name = call.event_name.as_str();
    let failed = call.error_code.is_some();
    let mut signals = Vec::new();
    let evidence = |extra: Value| {
        let mut e = json!({ "event": name, "event_id": call.event_id, "by": who, "source_ip": call.source_ip_address });
        if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
            e.extend(extra);
        }
        e
    };

    if policy.root_activity && call.user_identity.kind.as_deref() == Some("Root") {
        signals.push(Signal {
            kind: SignalKind::RootActivity,
            severity: Severity::High,
            subject: format!("root of {account}"),
            title: format!("The root user of {account} called {name}"),
            evidence: evidence(json!({ "error": call.error_code })),
            counted: None,
        });
    }

    let burst = policy.access_denied_burst;
    if let Some(code) = call.error_code.as_deref().filter(|c| DENIED_CODES.contains(c))
        && burst.count > 0
    {
        signals.push(Signal {
            kind: SignalKind::AccessDeniedBurst,
            severity: Severity::Medium,
            subject: who.clone(),
            title: format!("{who} was denied {} calls within {} minutes", burst.count, burst.minutes),
            evidence: evidence(json!({ "error": code, "source": source })),
            counted: Some(Counted {
                counter: format!("{}/{account}/{who}", SignalKind::AccessDeniedBurst.as_str()),
                threshold: u64::from(burst.count),
                window_minutes: burst.minutes,
            }),
        });
    }

    match (source, name) {
        ("cloudtrail.amazonaws.com", "StopLogging" | "DeleteTrail" | "UpdateTrail")
            if policy.cloudtrail_tampering && !failed =>
        {
            let trail = text(&request["name"]).unwrap_or("?");
            let trail = trail.rsplit('/').next().unwrap_or(trail).to_owned();
            // An update that turns nothing off is a change, not tampering.
            let weakens = name != "UpdateTrail"
                || request["enableLogFileValidation"] == false
                || request["isMultiRegionTrail"] == false
                || request["includeGlobalServiceEvents"] == false
                || text(&request["s3BucketName"]).is_some();
            if weakens {
                signals.push(Signal {
                    kind: SignalKind::CloudtrailTampering,
                    severity: Severity::High,
                    subject: trail.clone(),
                    title: format!("CloudTrail trail {trail} in {account}: {name}"),
                    evidence: evidence(json!({ "request": request })),
                    counted: None,
                });
            }
        }
        (
            "iam.amazonaws.com",
            "AttachUserPolicy"
            | "AttachRolePolicy"
            | "AttachGroupPolicy"
            | "PutUserPolicy"
            | "PutRolePolicy"
            | "PutGroupPolicy"
            | "CreatePolicyVersion",
        ) if !failed && policy.iam_policy_changes != crate::policy::IamPolicyChanges::Off => {
            let to = ["userName", "roleName", "groupName", "policyArn"]
                .iter()
                .find_map(|k| text(&request[*k]).map(|v| format!("{k} {v}")))
                .unwrap_or_default();
            let arn = text(&request["policyArn"]);
            let admin = arn.is_some_and(|a| policy.admin_policies.iter().any(|p| p == a))
                || text(&request["policyDocument"]).is_some_and(allows_everything);
            if admin || policy.iam_policy_changes == crate::policy::IamPolicyChanges::All {
                let (kind, severity) = if admin {
                    (SignalKind::AdminPolicyGranted, Severity::High)
                } else {
                    (SignalKind::IamPolicyChanged, Severity::Medium)
                };
                let what = arn.map(str::to_owned).or_else(|| text(&request["policyName"]).map(str::to_owned));
                signals.push(Signal {
                    kind,
                    severity,
                    subject: to.clone(),
                    title: format!(
                        "{name} on {to}: {}{}",
                        what.unwrap_or_else(|| "an inline policy".into()),
                        if admin { " (full access)" } else { "" }
                    ),
                    evidence: evidence(json!({ "request": request })),
                    counted: None,
                });
            }
        }
        ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress") if policy.open_ingress && !failed => {
            let open: Vec<Value> = response["securityGroupRuleSet"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| {
                    r["isEgress"] != true
                        && (text(&r["cidrIpv4"]) == Some("0.0.0.0/0") || text(&r["cidrIpv6"]) == Some("::/0"))
                })
                .cloned()
                .collect();
            if !open.is_empty() {
                let group = text(&request["groupId"])
                    .or_else(|| open.first().and_then(|r| text(&r["groupId"])))
                    .unwrap_or("?")
                    .to_owned();
                signals.push(Signal {
                    kind: SignalKind::OpenIngress,
                    severity: Severity::Medium,
                    subject: group.clone(),
                    title: format!("Security group {group} opened to the internet"),
                    evidence: evidence(json!({ "rules": open })),
                    counted: None,
                });
            }
        }
        ("signin.amazonaws.com", "ConsoleLogin") if response["ConsoleLogin"] == "Failure" => {
            let threshold = policy.console_login_failures_per_hour;
            if threshold > 0 {
                let user = call.user_identity.user_name.clone().unwrap_or_else(|| who.clone());
                signals.push(Signal {
                    kind: SignalKind::ConsoleLoginFailures,
                    severity: Severity::High,
                    subject: user.clone(),
                    title: format!("{threshold} failed console sign-ins for {user} in {account} within the hour"),
                    evidence: evidence(json!({ "error": call.error_message })),
                    counted: Some(Counted {
                        counter: format!("{}/{account}/{user}", SignalKind::ConsoleLoginFailures.as_str()),
                        threshold: u64::from(threshold),
                        window_minutes: 60,
                    }),
                });
            }
        }
        _ => {}
    }
    signals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(policy: &SecurityPolicy, name: &str) -> Vec<SignalKind> {
        assess(policy, &CloudTrailEvent::sample(name)).into_iter().map(|s| s.kind).collect()
    }

    #[test]
    fn each_sample_raises_the_signals_it_carries_and_no_other() {
        let p = SecurityPolicy::default();
        use SignalKind::*;
        assert_eq!(kinds(&p, "cloudtrail-StopLogging"), [CloudtrailTampering]);
        assert_eq!(kinds(&p, "cloudtrail-DeleteTrail"), [CloudtrailTampering]);
        assert_eq!(kinds(&p, "cloudtrail-UpdateTrail"), [CloudtrailTampering], "log file validation turned off");
        assert_eq!(kinds(&p, "signin-ConsoleLogin-root"), [RootActivity]);
        assert_eq!(kinds(&p, "signin-ConsoleLogin"), []);
        assert_eq!(kinds(&p, "signin-ConsoleLogin-failure"), [ConsoleLoginFailures]);
        assert_eq!(kinds(&p, "iam-AttachUserPolicy-admin"), [AdminPolicyGranted]);
        assert_eq!(kinds(&p, "iam-PutUserPolicy"), [AdminPolicyGranted], "an inline Allow * on *");
        assert_eq!(kinds(&p, "iam-AttachRolePolicy"), [], "not an admin policy (admin-only by default)");
        assert_eq!(kinds(&p, "ec2-AuthorizeSecurityGroupIngress-open-ssh"), [OpenIngress]);
        assert_eq!(kinds(&p, "ec2-RunInstances-denied"), [AccessDeniedBurst]);
        assert_eq!(kinds(&p, "iam-CreateUser-denied"), [AccessDeniedBurst]);
        assert_eq!(kinds(&p, "s3-CreateBucket-root"), [RootActivity]);
        assert_eq!(kinds(&p, "ec2-RunInstances"), []);
        let all = SecurityPolicy { iam_policy_changes: crate::policy::IamPolicyChanges::All, ..p.clone() };
        assert_eq!(kinds(&all, "iam-AttachRolePolicy"), [IamPolicyChanged]);
    }

    #[test]
    fn counted_signals_say_what_they_count_per_whom() {
        let p = SecurityPolicy::default();
        let failure = assess(&p, &CloudTrailEvent::sample("signin-ConsoleLogin-failure")).remove(0);
        let counted = failure.counted.unwrap();
        assert_eq!(counted.counter, "console-login-failures/123456789012/alice");
        assert_eq!((counted.threshold, counted.window_minutes), (5, 60));
        let never = crate::policy::Burst { count: 0, minutes: 10 };
        let off = SecurityPolicy { console_login_failures_per_hour: 0, access_denied_burst: never, ..p };
        assert_eq!(kinds(&off, "signin-ConsoleLogin-failure"), []);
        assert_eq!(kinds(&off, "ec2-RunInstances-denied"), []);
    }
}
