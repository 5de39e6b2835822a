//! Reads `template.yaml` the way cfn-lint does (its own CloudFormation YAML decoder, tags
//! and all) and answers what the checks need: each function's environment and IAM actions,
//! and the state machine's substitutions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::repo_root;

/// The repository's venv tool `name` (installed by `make venv`).
pub fn venv_tool(name: &str) -> Result<PathBuf> {
    let path = repo_root().join(".venv/bin").join(name);
    if !path.exists() {
        bail!("{} is missing: run `make venv`", path.display());
    }
    Ok(path)
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub actions: BTreeSet<String>,
    pub resource: Value,
}

#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    /// The crate (and binary) name, from `CodeUri: crates/<name>`.
    pub name: String,
    pub env_vars: BTreeSet<String>,
    pub actions: BTreeSet<String>,
    /// Actions of the statements on `Resource: "*"`.
    pub unscoped_actions: BTreeSet<String>,
    /// Each Allow statement: its actions and its `Resource` as the template writes it.
    pub statements: Vec<Statement>,
    /// SAM policy templates or managed policies: grants the action check cannot see.
    pub opaque_policies: Vec<Value>,
}

pub struct Template {
    pub json: Value,
}

impl Template {
    pub fn load() -> Result<Template> {
        Template::load_from(&repo_root().join("template.yaml"))
    }

    pub fn load_from(path: &Path) -> Result<Template> {
        let script = "import json, sys\nfrom cfnlint.decode import decode\n\
                      template, problems = decode(sys.argv[1])\n\
                      if problems:\n    sys.exit('\\n'.join(str(p) for p in problems))\n\
                      print(json.dumps(template))";
        let out = Command::new(venv_tool("python")?).arg("-c").arg(script).arg(path).output()?;
        if !out.status.success() {
            bail!("cannot decode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        }
        Ok(Template { json: serde_json::from_slice(&out.stdout).context("decoder output")? })
    }

    pub fn resources_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.json["Resources"].as_object().into_iter().flatten().filter(move |(_, r)| r["Type"] == kind)
    }

    pub fn global_env_vars(&self) -> BTreeSet<String> {
        keys(&self.json["Globals"]["Function"]["Environment"]["Variables"])
    }

    pub fn functions(&self) -> Result<Vec<FunctionDef>> {
        let mut out = Vec::new();
        for (id, resource) in self.resources_of_type("AWS::Serverless::Function") {
            let props = &resource["Properties"];
            let code_uri = props["CodeUri"].as_str().with_context(|| format!("{id}: CodeUri"))?;
            let name = code_uri.strip_prefix("crates/").with_context(|| format!("{id}: CodeUri {code_uri}"))?;
            let mut env_vars = self.global_env_vars();
            env_vars.extend(keys(&props["Environment"]["Variables"]));
            let mut actions = BTreeSet::new();
            let mut unscoped_actions = BTreeSet::new();
            let mut statement_list = Vec::new();
            let mut opaque_policies = Vec::new();
            for policy in props["Policies"].as_array().into_iter().flatten() {
                // A policy under a condition (`!If [Cond, {Statement}, !Ref AWS::NoValue]`) is
                // read as granted: the local stack is deployed with every option on.
                let policy = match &policy["Fn::If"] {
                    Value::Array(branches) if branches.len() == 3 && branches[2]["Ref"] == "AWS::NoValue" => {
                        &branches[1]
                    }
                    _ => policy,
                };
                let Some(statements) = policy["Statement"].as_array() else {
                    opaque_policies.push(policy.clone());
                    continue;
                };
                for statement in statements {
                    if statement["Effect"] != "Allow" {
                        continue;
                    }
                    let these: BTreeSet<String> = match &statement["Action"] {
                        Value::String(a) => [a.clone()].into(),
                        Value::Array(list) => list.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
                        other => bail!("{id}: unexpected Action {other}"),
                    };
                    if statement["Resource"] == "*" {
                        unscoped_actions.extend(these.iter().cloned());
                    }
                    actions.extend(these.iter().cloned());
                    statement_list.push(Statement { actions: these, resource: statement["Resource"].clone() });
                }
            }
            out.push(FunctionDef {
                logical_id: id.clone(),
                name: name.to_owned(),
                env_vars,
                actions,
                unscoped_actions,
                statements: statement_list,
                opaque_policies,
            });
        }
        Ok(out)
    }

    /// The keys of the state machine's DefinitionSubstitutions.
    pub fn definition_substitutions(&self) -> Result<BTreeSet<String>> {
        let (_, machine) = self
            .resources_of_type("AWS::Serverless::StateMachine")
            .next()
            .context("no AWS::Serverless::StateMachine in the template")?;
        Ok(keys(&machine["Properties"]["DefinitionSubstitutions"]))
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Calls the functions that assume the member role make in the janitor's own account only.
pub const HOME_ONLY_ACTIONS: &[&str] =
    &["organizations:ListAccounts", "pricing:GetProducts", "sns:GetSubscriptionAttributes"];

/// Every action `member-role.yaml` grants: its read policy and its act policy (the one
/// `AllowRemediation=true` adds).
pub fn member_role_actions() -> Result<BTreeSet<String>> {
    let template = Template::load_from(&repo_root().join("member-role.yaml"))?;
    let policies = &template.json["Resources"]["MemberRole"]["Properties"]["Policies"];
    let mut actions = BTreeSet::new();
    for policy in policies.as_array().into_iter().flatten() {
        // `!If [Remediates, {policy}, !Ref AWS::NoValue]`: the policy as it is when remediating.
        let policy = policy.get("Fn::If").and_then(|branches| branches.get(1)).unwrap_or(policy);
        for statement in policy["PolicyDocument"]["Statement"].as_array().into_iter().flatten() {
            if statement["Effect"] != "Allow" {
                continue;
            }
            match &statement["Action"] {
                Value::String(a) => {
                    actions.insert(a.clone());
                }
                Value::Array(list) => actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned))),
                other => bail!("member-role.yaml: unexpected Action {other}"),
            }
        }
    }
    if actions.is_empty() {
        bail!("member-role.yaml grants nothing");
    }
    Ok(actions)
}

/// The IAM action an SDK operation needs (`service` as the SDK names it in its metadata).
/// `None`: the call needs no permission (STS GetCallerIdentity).
pub fn iam_action(service: &str, operation: &str) -> Option<String> {
    let prefix = match service {
        "STS" if operation == "GetCallerIdentity" => return None,
        "S3" | "S3 Control" => "s3",
        "Secrets Manager" => "secretsmanager",
        other => return Some(format!("{}:{operation}", other.to_ascii_lowercase().replace(' ', ""))),
    };
    // S3's IAM actions are not always named after the API operation.
    let action = match (service, operation) {
        ("S3", "ListBuckets") => "ListAllMyBuckets",
        ("S3", "GetPublicAccessBlock") => "GetBucketPublicAccessBlock",
        ("S3", "PutPublicAccessBlock") => "PutBucketPublicAccessBlock",
        ("S3", "HeadBucket") => "ListBucket",
        ("S3", "ListObjectVersions") => "ListBucketVersions",
        ("S3 Control", "GetPublicAccessBlock") => "GetAccountPublicAccessBlock",
        ("S3 Control", "PutPublicAccessBlock") => "PutAccountPublicAccessBlock",
        (_, op) => op,
    };
    Some(format!("{prefix}:{action}"))
}

/// Actions a function needs that no SDK call of ours names, each with the reason.
pub const IMPLIED_ACTIONS: &[(&str, &str, &str)] = &[
    ("discovery", "sts:AssumeRole", "member-account credentials come from the SDK's assume-role provider"),
    ("metric-check", "sts:AssumeRole", "member-account credentials come from the SDK's assume-role provider"),
    ("recheck", "sts:AssumeRole", "member-account credentials come from the SDK's assume-role provider"),
    ("remediate", "sts:AssumeRole", "member-account credentials come from the SDK's assume-role provider"),
    ("onboard", "sts:AssumeRole", "member-account credentials come from the SDK's assume-role provider"),
    ("remediate", "rds:CreateDBSnapshot", "DeleteDBInstance with a final snapshot needs it"),
    ("remediate", "ec2:CreateTags", "CreateSnapshot with tags on create needs it"),
    ("notify", "s3:ListBucket", "without it S3 answers a missing run document (a scope that failed) with AccessDenied"),
    ("lock", "s3:ListBucket", "without it S3 answers a missing run document (a scope that failed) with AccessDenied"),
    (
        "discovery",
        "s3:ListBucket",
        "without it S3 answers a missing launcher allow-list with AccessDenied, not NoSuchKey",
    ),
];

/// Granted actions the two-pass run does not reach, each with the reason and where it is
/// exercised instead.
pub const ACTIONS_OFF_THE_HAPPY_PATH: &[(&str, &str, &str)] = &[
    (
        "notify",
        "sns:Publish",
        "tells owners the policy routes to email (onboard's test sends one through the same adapter)",
    ),
    ("notify", "sns:ListSubscriptionsByTopic", "checks an email owner's subscription (as onboard's test does)"),
    ("notify", "sns:GetSubscriptionAttributes", "checks an email owner's subscription (as onboard's test does)"),
    (
        "remediate",
        "sns:ListSubscriptionsByTopic",
        "tells email owners the outcome (the same adapter as onboard's test)",
    ),
    (
        "remediate",
        "sns:GetSubscriptionAttributes",
        "tells email owners the outcome (the same adapter as onboard's test)",
    ),
    (
        "notify",
        "kms:GenerateMac",
        "signs the snooze links of Teams and email messages (onboard's test signs them through the same adapter)",
    ),
    ("snooze", "kms:VerifyMac", "checks a snooze link (onboard's test opens and uses one)"),
    (
        "recheck",
        "lambda:GetFunctionConfiguration",
        "asks whether a flagged function that is no longer listed still exists (the emulator test a_deleted_lambda_function_reads_as_gone calls it)",
    ),
    (
        "recheck",
        "servicecatalog:DescribeProvisionedProduct",
        "asks whether a flagged product that is no longer listed still exists (the Service Catalog emulator test calls it)",
    ),
    (
        "discovery",
        "organizations:ListAccounts",
        "a run that names its accounts never lists the organization (the scheduled-runs test does)",
    ),
    ("lock", "dynamodb:DeleteItem", "the Catch path releases a failed scope's locks (the failing-step test calls it)"),
    ("lock", "sns:Publish", "the Catch path alerts about a failed scope (the failing-step test calls it)"),
    (
        "lock",
        "dynamodb:Query",
        "the Catch path reads what the run already did in the scope (the failing-step test calls it)",
    ),
    (
        "recheck",
        "dynamodb:DeleteItem",
        "releases a finding that cleared during the grace period (the scheduled-runs test calls it)",
    ),
    ("recheck", "iam:GetUser", "tells a user deleted during the grace period (the scheduled-runs test calls it)"),
    ("recheck", "s3:ListBucket", "tells a bucket deleted during the grace period (the scheduled-runs test calls it)"),
    ("discovery", "ec2:DescribeRegions", "plans a run given no regions (the scheduled-runs test calls it)"),
    ("lock", "dynamodb:GetItem", "reads who holds a lock another run took (the scheduled-runs test calls it)"),
    (
        "lock",
        "dynamodb:BatchWriteItem",
        "keeps the places of findings deferred past the scope's cap (the 5,000-instance test's scope passes it)",
    ),
    (
        "notify",
        "dynamodb:BatchWriteItem",
        "clears the deferral of findings notified after waiting a run (domain-tested: what_the_cap_defers_is_first_in_line_next_run)",
    ),
    (
        "remediate",
        "dynamodb:GetItem",
        "reads who holds a resource's lock when another run took it before the action (domain-tested)",
    ),
];

/// The IAM actions each function called (denied calls included), from its call log.
pub fn observed_actions(calls_dir: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for call in crate::iam::observed_calls(calls_dir)? {
        out.entry(call.function).or_default().insert(call.action);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_operations_map_to_iam_actions() {
        assert_eq!(iam_action("EC2", "StopInstances").as_deref(), Some("ec2:StopInstances"));
        assert_eq!(iam_action("S3", "ListBuckets").as_deref(), Some("s3:ListAllMyBuckets"));
        assert_eq!(iam_action("S3 Control", "GetPublicAccessBlock").as_deref(), Some("s3:GetAccountPublicAccessBlock"));
        assert_eq!(iam_action("Secrets Manager", "GetSecretValue").as_deref(), Some("secretsmanager:GetSecretValue"));
        assert_eq!(iam_action("CloudWatch", "GetMetricData").as_deref(), Some("cloudwatch:GetMetricData"));
        assert_eq!(iam_action("DynamoDB", "BatchWriteItem").as_deref(), Some("dynamodb:BatchWriteItem"));
        assert_eq!(iam_action("STS", "GetCallerIdentity"), None);
    }
}
