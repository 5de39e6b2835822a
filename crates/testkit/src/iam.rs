//! The local pipeline under IAM, as AWS runs it: each function gets credentials of a role of
//! its own, made in the emulator from that function's statements in `template.yaml`, and the
//! emulator authorises every request against them. Two checks, because moto checks actions
//! but not resources (it ignores a statement scoped to a table's ARN):
//! - enforced: moto denies any action a function is not granted (on `*` in the test copy);
//!   the handlers log each denied call, and the test names function, action and target;
//! - static: every call's real target (table, index, topic, secret, role) is matched
//!   against the `Resource` of the template statement that grants the action.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use janitor_core::aws::{AwsClients, TableNames};
use serde_json::{Value, json};

use crate::template::{FunctionDef, Template, iam_action};
use crate::{HOME_ACCOUNT, HOME_REGION};

/// Temporary credentials of one function's role.
#[derive(Debug, Clone)]
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl RoleCredentials {
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN", self.session_token.clone()),
        ]
    }
}

/// The names moto authorises some actions under, where they differ from IAM's: it takes the
/// prefix from the signing name (CloudWatch signs as `monitoring`) and names a few S3 calls
/// after its own routes. The test copy grants both names; the static check uses IAM's.
fn moto_names(action: &str) -> Vec<String> {
    let mut names = vec![action.to_owned()];
    if let Some(op) = action.strip_prefix("cloudwatch:") {
        names.push(format!("monitoring:{op}"));
    }
    // S3 Control signs as `s3`; bucket-level public access block calls miss moto's route
    // table (it spells the query `public_access_block`) and fall back to the method default.
    let extra: &[&str] = match action {
        "s3:GetAccountPublicAccessBlock" => &["s3:GetPublicAccessBlock"],
        "s3:PutAccountPublicAccessBlock" => &["s3:PutPublicAccessBlock"],
        "s3:GetBucketPublicAccessBlock" => &["s3:ListBucket"],
        "s3:PutBucketPublicAccessBlock" => &["s3:CreateBucket"],
        "s3:ListBucket" => &["s3:HeadBucket"],
        // moto authorises a transaction under its operation's name.
        "dynamodb:PutItem" | "dynamodb:UpdateItem" => &["dynamodb:TransactWriteItems"],
        _ => &[],
    };
    names.extend(extra.iter().map(|s| (*s).to_owned()));
    names
}

/// The function's Allow statements with `Resource` widened to `*` (moto denies any
/// resource-scoped grant) and actions under moto's names too. `without` drops one action.
fn widened_policy(function: &FunctionDef, without: Option<&str>) -> Value {
    let actions: BTreeSet<String> =
        function.actions.iter().filter(|a| Some(a.as_str()) != without).flat_map(|a| moto_names(a)).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }],
    })
}

/// One role per function (`cloud-janitor-<name>`), its policy taken from the template, and
/// credentials from assuming it. `without` = `(function, action)` removes one grant, to
/// prove the enforced run notices.
pub async fn function_roles(
    clients: &AwsClients,
    template: &Template,
    without: Option<(&str, &str)>,
) -> Result<BTreeMap<String, RoleCredentials>> {
    let iam = clients.iam(HOME_ACCOUNT).await?;
    let sts = aws_sdk_sts::Client::new(&clients.config_for(HOME_ACCOUNT, HOME_REGION).await?);
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole" }],
    });
    let mut out = BTreeMap::new();
    for function in template.functions()? {
        let role = format!("cloud-janitor-{}", function.name);
        let created = iam.create_role().role_name(&role).assume_role_policy_document(trust.to_string()).send().await?;
        let drop = without.filter(|(f, _)| *f == function.name).map(|(_, a)| a);
        iam.put_role_policy()
            .role_name(&role)
            .policy_name("template")
            .policy_document(widened_policy(&function, drop).to_string())
            .send()
            .await?;
        let arn = created.role().map(|r| r.arn().to_owned()).context("role arn")?;
        let assumed = sts.assume_role().role_arn(arn).role_session_name(&function.name).send().await?;
        let c = assumed.credentials().context("no credentials")?;
        out.insert(
            function.name.clone(),
            RoleCredentials {
                access_key_id: c.access_key_id().to_owned(),
                secret_access_key: c.secret_access_key().to_owned(),
                session_token: c.session_token().to_owned(),
            },
        );
    }
    Ok(out)
}

/// The member-account role (`member_role` in `account`) as `member-role.yaml` ships it (with
/// remediation allowed): every member-account call of the enforced run is authorised
/// against exactly its statements.
pub async fn member_role(clients: &AwsClients, account: &str, member_role: &str) -> Result<()> {
    let actions: BTreeSet<String> =
        crate::template::member_role_actions()?.iter().flat_map(|a| moto_names(a)).collect();
    let iam = clients.iam(account).await?;
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": { "AWS": format!("arn:aws:iam::{HOME_ACCOUNT}:root") }, "Action": "sts:AssumeRole" }],
    });
    iam.create_role().role_name(member_role).assume_role_policy_document(trust.to_string()).send().await?;
    let policy =
        json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }] });
    iam.put_role_policy()
        .role_name(member_role)
        .policy_name("janitor")
        .policy_document(policy.to_string())
        .send()
        .await?;
    Ok(())
}

/// Clients for the test harness itself while authorisation is on: an IAM user allowed
/// everything, standing in for a person changing the estate during a run.
pub async fn harness_clients(clients: &AwsClients, endpoint: &str) -> Result<AwsClients> {
    let iam = clients.iam(HOME_ACCOUNT).await?;
    let user = "janitor-test-harness";
    iam.create_user().user_name(user).send().await?;
    let everything =
        json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }] });
    iam.put_user_policy()
        .user_name(user)
        .policy_name("everything")
        .policy_document(everything.to_string())
        .send()
        .await?;
    let key = iam.create_access_key().user_name(user).send().await?;
    let key = key.access_key().context("no access key")?;
    let config = crate::sdk_config_with(endpoint, key.access_key_id(), key.secret_access_key()).await;
    Ok(AwsClients::from_config(config))
}

/// Switches moto's request authorisation on or off (`/moto-api/reset-auth`).
pub fn set_authorization(endpoint: &str, on: bool) -> Result<()> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = if on { "0" } else { "inf" };
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 200") {
        bail!("moto refused reset-auth: {}", answer.lines().next().unwrap_or_default());
    }
    Ok(())
}

/// One distinct call a function made, from its call log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservedCall {
    pub function: String,
    pub action: String,
    /// `table/NAME[/index/IDX]`, an ARN, or `*`.
    pub target: String,
    pub denied: bool,
}

/// Reads `{function}.calls` files (`Service:Operation<TAB>target[<TAB>denied]` lines).
pub fn observed_calls(calls_dir: &Path) -> Result<Vec<ObservedCall>> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(calls_dir)? {
        let path = entry?.path();
        let Some(function) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".calls")) else {
            continue;
        };
        for line in std::fs::read_to_string(&path)?.lines() {
            let mut fields = line.split('\t');
            let call = fields.next().unwrap_or_default();
            let target = fields.next().unwrap_or("*").to_owned();
            let denied = fields.next() == Some("denied");
            let (service, operation) = call.split_once(':').with_context(|| format!("bad call line {line}"))?;
            // IAM has no action for a transaction: each of its writes is authorised as the
            // single-item call (the audit chain's row puts and head update).
            let actions = match (service, operation) {
                ("DynamoDB", "TransactWriteItems") => {
                    vec!["dynamodb:PutItem".to_owned(), "dynamodb:UpdateItem".to_owned()]
                }
                _ => iam_action(service, operation).into_iter().collect(),
            };
            for action in actions {
                out.insert(ObservedCall { function: function.to_owned(), action, target: target.clone(), denied });
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// What the template's `Resource` expressions mean in the local run.
pub struct LocalNames {
    pub tables: TableNames,
    pub run_bucket: String,
    pub reports_bucket: String,
    /// The Object Lock bucket of anchor copies.
    pub anchor_bucket: String,
    pub topic_arn: String,
    pub security_topic_arn: String,
    pub secret_arn: String,
    pub member_role: String,
    /// Owners told by email.
    pub email_topic_arn: String,
    pub teams_secret_arn: String,
    /// The KMS HMAC key of snooze links.
    pub link_key_arn: String,
}

impl LocalNames {
    fn table_arn(&self, name: &str) -> String {
        format!("arn:aws:dynamodb:{HOME_REGION}:{HOME_ACCOUNT}:table/{name}")
    }

    fn logical(&self, id: &str) -> Option<String> {
        Some(match id {
            "AuditTable.Arn" => self.table_arn(&self.tables.audit),
            "LockTable.Arn" => self.table_arn(&self.tables.lock),
            "SnoozeTable.Arn" => self.table_arn(&self.tables.snooze),
            "RunBucket.Arn" => format!("arn:aws:s3:::{}", self.run_bucket),
            "RunBucket" => self.run_bucket.clone(),
            "ReportsBucket.Arn" => format!("arn:aws:s3:::{}", self.reports_bucket),
            "ReportsBucket" => self.reports_bucket.clone(),
            "AnchorBucket.Arn" => format!("arn:aws:s3:::{}", self.anchor_bucket),
            "AnchorBucket" => self.anchor_bucket.clone(),
            "AlertTopic" => self.topic_arn.clone(),
            "SecurityTopic" => self.security_topic_arn.clone(),
            "SlackSecretArn" => self.secret_arn.clone(),
            "OwnerEmailTopic" => self.email_topic_arn.clone(),
            "TeamsSecretArn" => self.teams_secret_arn.clone(),
            "SnoozeLinkKey.Arn" => self.link_key_arn.clone(),
            "MemberRoleName" => self.member_role.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::Region" => HOME_REGION.into(),
            "AWS::AccountId" => HOME_ACCOUNT.into(),
            _ => return None,
        })
    }

    /// A statement's `Resource` as ARN patterns (`*` wildcards kept).
    pub fn resolve(&self, resource: &Value) -> Result<Vec<String>> {
        match resource {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(list) => Ok(list.iter().map(|r| self.resolve(r)).collect::<Result<Vec<_>>>()?.concat()),
            Value::Object(o) => {
                if let Some(id) = o.get("Ref").and_then(Value::as_str) {
                    return self.logical(id).map(|v| vec![v]).with_context(|| format!("no local value for Ref {id}"));
                }
                if let Some(parts) = o.get("Fn::GetAtt").and_then(Value::as_array) {
                    let id = parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(".");
                    return self.logical(&id).map(|v| vec![v]).with_context(|| format!("no local value for {id}"));
                }
                if let Some(text) = o.get("Fn::Sub").and_then(Value::as_str) {
                    let mut out = String::new();
                    let mut rest = text;
                    while let Some(start) = rest.find("${") {
                        let end = rest[start..].find('}').context("unclosed ${ in Fn::Sub")? + start;
                        let name = &rest[start + 2..end];
                        out.push_str(&rest[..start]);
                        out.push_str(&self.logical(name).with_context(|| format!("no local value for ${{{name}}}"))?);
                        rest = &rest[end + 1..];
                    }
                    out.push_str(rest);
                    return Ok(vec![out]);
                }
                bail!("unsupported Resource expression {resource}")
            }
            other => bail!("unsupported Resource {other}"),
        }
    }

    /// The ARN a logged target stands for; `None` for calls IAM does not scope by name.
    pub fn target_arn(&self, target: &str) -> Option<String> {
        if target == "*" {
            None
        } else if target.starts_with("arn:") {
            Some(target.to_owned())
        } else if let Some(table) = target.strip_prefix("table/") {
            Some(self.table_arn(table))
        } else {
            Some(target.to_owned())
        }
    }
}

/// `*` matches any run of characters, `?` one: IAM's resource wildcards.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), arn.as_bytes())
}

/// Every problem the two checks find, one line each naming function, action and resource:
/// calls the emulator denied, and calls whose target no granting statement covers.
pub fn grant_problems(template: &Template, names: &LocalNames, calls: &[ObservedCall]) -> Result<Vec<String>> {
    // Per function: each statement's actions and its resources as ARN patterns.
    type Grants = Vec<(BTreeSet<String>, Vec<String>)>;
    let mut statements: BTreeMap<String, Grants> = BTreeMap::new();
    for function in template.functions()? {
        let mut list = Vec::new();
        for statement in &function.statements {
            list.push((statement.actions.clone(), names.resolve(&statement.resource)?));
        }
        statements.insert(function.name.clone(), list);
    }
    let mut problems = Vec::new();
    for call in calls {
        if call.denied {
            problems.push(format!("{} was denied {} on {} (enforced run)", call.function, call.action, call.target));
            continue;
        }
        let Some(arn) = names.target_arn(&call.target) else { continue };
        let granted = statements.get(&call.function).into_iter().flatten().any(|(actions, resources)| {
            actions.contains(&call.action) && resources.iter().any(|r| arn_matches(r, &arn))
        });
        if !granted {
            problems.push(format!("{} calls {} on {arn}, which no statement grants there", call.function, call.action));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_wildcards_match_as_iam_does() {
        assert!(arn_matches("*", "arn:aws:dynamodb:us-east-1:1:table/a"));
        assert!(arn_matches(
            "arn:aws:iam::*:role/CloudJanitorMemberRole",
            "arn:aws:iam::210987654321:role/CloudJanitorMemberRole"
        ));
        assert!(!arn_matches("arn:aws:iam::*:role/CloudJanitorMemberRole", "arn:aws:iam::2:role/Admin"));
        let table = "arn:aws:dynamodb:us-east-1:1:table/audit";
        assert!(arn_matches(table, table));
        assert!(
            !arn_matches(table, "arn:aws:dynamodb:us-east-1:1:table/audit/index/by-run"),
            "a table grant is not its index"
        );
        assert!(arn_matches(
            "arn:aws:dynamodb:us-east-1:1:table/audit/index/*",
            "arn:aws:dynamodb:us-east-1:1:table/audit/index/by-run"
        ));
        assert!(arn_matches("a?c", "abc") && !arn_matches("a?c", "ac"));
    }

    #[test]
    fn moto_gets_its_own_names_besides_iams() {
        assert_eq!(moto_names("cloudwatch:GetMetricData"), ["cloudwatch:GetMetricData", "monitoring:GetMetricData"]);
        assert_eq!(moto_names("ec2:DescribeRegions"), ["ec2:DescribeRegions"]);
    }
}
