//! Whether a bucket is actually public: a public bucket policy or ACL grant that Block
//! Public Access (bucket or account level) does not neutralise. A private bucket without a
//! block is not public. Policy evaluation follows S3's documented meaning of "public":
//! an Allow to a wildcard principal not pinned by a fixed-value condition.

use serde_json::Value;

use crate::ports::{PublicAccessBlock, S3Bucket};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Condition keys whose fixed values make a wildcard principal non-public.
const PINNING_CONDITION_KEYS: [&str; 14] = [
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:userid",
    "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// e.g. `bucket policy`, `ACL grant READ to AllUsers`.
    pub via: Vec<String>,
}

/// `Ok(None)`: not public. `Err`: the policy could not be read, so no judgement is made.
pub fn assess(bucket: &S3Bucket, account_block: Option<&PublicAccessBlock>) -> Result<Option<Exposure>, String> {
    let bucket_block = bucket.block.unwrap_or_default();
    let account_block = account_block.copied().unwrap_or_default();
    let restrict_policy = bucket_block.restrict_public_buckets || account_block.restrict_public_buckets;
    let ignore_acls = bucket_block.ignore_public_acls || account_block.ignore_public_acls;

    let mut via = Vec::new();
    if let Some(policy) = &bucket.policy
        && !restrict_policy
        && policy_is_public(policy)?
    {
        via.push("bucket policy".to_owned());
    }
    if !ignore_acls {
        for grant in &bucket.acl_grants {
            let group = match grant.grantee_uri.as_deref() {
                Some(ALL_USERS) => "AllUsers",
                Some(AUTHENTICATED_USERS) => "AuthenticatedUsers",
                _ => continue,
            };
            via.push(format!("ACL grant {} to {group}", grant.permission));
        }
    }
    Ok((!via.is_empty()).then_some(Exposure { via }))
}

pub fn policy_is_public(policy: &str) -> Result<bool, String> {
    let doc: Value = serde_json::from_str(policy).map_err(|e| format!("bucket policy is not valid JSON: {e}"))?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => return Err("bucket policy has no Statement".into()),
    };
    Ok(statements.iter().any(statement_is_public))
}

fn statement_is_public(statement: &Value) -> bool {
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return false;
    }
    // NotPrincipal with Allow grants to everyone not listed.
    let wildcard =
        statement.get("NotPrincipal").is_some() || statement.get("Principal").is_some_and(principal_is_wildcard);
    wildcard && !pinned_by_condition(statement.get("Condition"))
}

fn principal_is_wildcard(principal: &Value) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(map) => map.values().any(principal_is_wildcard),
        Value::Array(list) => list.iter().any(principal_is_wildcard),
        _ => false,
    }
}

/// Operators that, with a fixed value, only ever match the listed values. Anything else
/// does not pin: negations (`StringNotLike`, `ArnNotEquals`, `NotIpAddress`, …) match
/// everyone else, `…IfExists` and `ForAllValues:` match when the key is absent, and
/// `Null` tests presence, not value.
const PINNING_OPERATORS: [&str; 6] =
    ["StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "IpAddress"];

fn operator_pins(operator: &str) -> bool {
    // `ForAnyValue:` with a positive operator still needs one of the fixed values present.
    let base = operator.strip_prefix("ForAnyValue:").unwrap_or(operator);
    PINNING_OPERATORS.contains(&base)
}

fn pinned_by_condition(condition: Option<&Value>) -> bool {
    let Some(Value::Object(operators)) = condition else { return false };
    operators.iter().any(|(operator, keys)| {
        let Value::Object(keys) = keys else { return false };
        operator_pins(operator)
            && keys.iter().any(|(key, values)| {
                PINNING_CONDITION_KEYS.contains(&key.to_ascii_lowercase().as_str()) && values_are_fixed(values)
            })
    })
}

/// S3's "fixed value": no wildcard (`*`, `?`), no policy variable (`${aws:username}`
/// resolves per request), not an everything-CIDR. An account id written as a JSON number
/// is as fixed as the string.
fn values_are_fixed(values: &Value) -> bool {
    let fixed = |v: &Value| match v {
        Value::String(s) => !s.contains(['*', '?']) && !s.contains("${") && s != "0.0.0.0/0" && s != "::/0",
        Value::Number(_) => true,
        _ => false,
    };
    match values {
        Value::Array(list) => !list.is_empty() && list.iter().all(fixed),
        other => fixed(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::AclGrant;

    fn bucket(policy: Option<&str>, grants: &[&str], block: Option<PublicAccessBlock>) -> S3Bucket {
        S3Bucket {
            name: "b".into(),
            region: "us-east-1".into(),
            policy: policy.map(str::to_owned),
            acl_grants: grants
                .iter()
                .map(|uri| AclGrant { grantee_uri: Some((*uri).to_owned()), permission: "READ".into() })
                .collect(),
            block,
            created_at: None,
            empty: None,
        }
    }

    const PUBLIC_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

    #[test]
    fn public_policy_and_acl_are_public() {
        assert_eq!(assess(&bucket(Some(PUBLIC_POLICY), &[], None), None).unwrap().unwrap().via, ["bucket policy"]);
        let by_acl = assess(&bucket(None, &[ALL_USERS, AUTHENTICATED_USERS], None), None).unwrap().unwrap();
        assert_eq!(by_acl.via, ["ACL grant READ to AllUsers", "ACL grant READ to AuthenticatedUsers"]);
    }

    #[test]
    fn private_bucket_without_block_is_not_public() {
        let owner_grant = "http://acs.amazonaws.com/groups/s3/LogDelivery";
        assert_eq!(assess(&bucket(None, &[owner_grant], None), None).unwrap(), None);
        let account_only = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:*","Resource":"*"}}"#;
        assert_eq!(assess(&bucket(Some(account_only), &[], None), None).unwrap(), None);
    }

    #[test]
    fn block_public_access_neutralises_exposure_at_either_level() {
        let restrict =
            PublicAccessBlock { restrict_public_buckets: true, ignore_public_acls: true, ..Default::default() };
        let b = bucket(Some(PUBLIC_POLICY), &[ALL_USERS], Some(restrict));
        assert_eq!(assess(&b, None).unwrap(), None);
        let b = bucket(Some(PUBLIC_POLICY), &[ALL_USERS], None);
        assert_eq!(assess(&b, Some(&restrict)).unwrap(), None);
        // BlockPublicPolicy alone only stops *new* public policies; the existing one still applies.
        let only_new = PublicAccessBlock { block_public_policy: true, block_public_acls: true, ..Default::default() };
        assert!(assess(&b, Some(&only_new)).unwrap().is_some());
    }

    #[test]
    fn fixed_value_conditions_pin_a_wildcard_principal() {
        let pinned = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1a2b3c4d"}}}]}"#;
        assert!(!policy_is_public(pinned).unwrap());
        let open_ip = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}}]}"#;
        assert!(policy_is_public(open_ip).unwrap());
        let deny = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
        assert!(!policy_is_public(deny).unwrap());
        assert!(policy_is_public("not json").is_err());
    }

    /// Operator by operator, against S3's meaning of public: only a positive operator with a
    /// fixed value on a pinning key limits a wildcard principal.
    #[test]
    fn only_positive_fixed_value_operators_pin_a_wildcard_principal() {
        let with = |operator: &str, key: &str, value: &str| {
            let policy = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{{"{operator}":{{"{key}":{value}}}}}}}]}}"#
            );
            policy_is_public(&policy).unwrap()
        };
        let vpce = "aws:SourceVpce";
        let one = r#""vpce-1a2b3c4d""#;
        let table: &[(&str, &str, &str, bool)] = &[
            ("StringEquals", vpce, one, false),
            ("StringEqualsIgnoreCase", vpce, one, false),
            ("StringLike", vpce, one, false),
            ("ForAnyValue:StringEquals", vpce, one, false),
            ("StringEquals", vpce, r#"["vpce-1", "vpce-2"]"#, false),
            ("ArnEquals", "aws:SourceArn", r#""arn:aws:sns:us-east-1:111122223333:t""#, false),
            ("ArnLike", "aws:SourceArn", r#""arn:aws:sns:us-east-1:111122223333:t""#, false),
            ("IpAddress", "aws:SourceIp", r#""203.0.113.0/24""#, false),
            ("StringEquals", "aws:PrincipalOrgID", r#""o-abc123""#, false),
            ("StringEquals", "aws:SourceAccount", "111122223333", false),
            // Public: a value that is not fixed.
            ("StringLike", vpce, r#""vpce-*""#, true),
            ("StringLike", vpce, r#""vpce-1a2b3c4?""#, true),
            ("StringEquals", "aws:SourceAccount", r#""${aws:PrincipalAccount}""#, true),
            ("StringEquals", vpce, r#"["vpce-1", "vpce-*"]"#, true),
            ("StringEquals", vpce, r#"[]"#, true),
            ("IpAddress", "aws:SourceIp", r#""0.0.0.0/0""#, true),
            ("IpAddress", "aws:SourceIp", r#""::/0""#, true),
            // Public: negations match everyone else.
            ("StringNotEquals", vpce, one, true),
            ("StringNotEqualsIgnoreCase", vpce, one, true),
            ("StringNotLike", vpce, one, true),
            ("ForAnyValue:StringNotEquals", vpce, one, true),
            ("ForAnyValue:StringNotLike", vpce, one, true),
            ("ArnNotEquals", "aws:SourceArn", r#""arn:aws:sns:us-east-1:111122223333:t""#, true),
            ("ArnNotLike", "aws:SourceArn", r#""arn:aws:sns:us-east-1:111122223333:t""#, true),
            ("NotIpAddress", "aws:SourceIp", r#""203.0.113.0/24""#, true),
            // Public: true when the key is absent from the request.
            ("StringEqualsIfExists", vpce, one, true),
            ("ArnLikeIfExists", "aws:SourceArn", r#""arn:aws:sns:us-east-1:111122223333:t""#, true),
            ("IpAddressIfExists", "aws:SourceIp", r#""203.0.113.0/24""#, true),
            ("ForAllValues:StringEquals", vpce, one, true),
            ("ForAllValues:StringLike", vpce, one, true),
            // Public: Null tests presence, not value.
            ("Null", vpce, r#""false""#, true),
            // Public: a key that does not identify the caller.
            ("StringEquals", "aws:UserAgent", r#""curl/8.0""#, true),
            ("Bool", "aws:SecureTransport", r#""true""#, true),
        ];
        for (operator, key, value, public) in table {
            assert_eq!(with(operator, key, value), *public, "{operator} {{{key}: {value}}}");
        }
    }
}
