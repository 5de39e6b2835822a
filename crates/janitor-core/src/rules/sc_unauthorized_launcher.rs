//! Seed 000: a provisioned product launched by someone not on the organization's list of
//! people allowed to launch products. The list is the policy's `allowed`, plus a file kept in
//! the janitor's run bucket under `config/` (one principal per line, `#` comments, or a JSON
//! array), read once per scope that has products. A list that cannot be read is a recorded
//! failure and no product is judged against it: an unreadable list must not flag everyone.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, yes};
use crate::error::{JanitorError, Result};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;
use crate::ports::RunStore;

/// Where in the run bucket an allow-list may be kept: the janitor's read grant covers it.
pub const ALLOW_LIST_PREFIX: &str = "config/";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Principals allowed to launch: ARN patterns (`*` matches any run of characters), or a
    /// bare name, matched against the user, role or session name.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// A list in the run bucket, under `config/`, added to `allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list_key: Option<String>,
}

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> std::result::Result<(), String> {
        if self.enabled && self.allowed.is_empty() && self.allow_list_key.is_none() {
            return Err(format!(
                "{table}: name the allowed launchers (`allowed`) or the list's key in the run bucket (`allow_list_key`); with neither every product would be flagged"
            ));
        }
        if let Some(key) = &self.allow_list_key
            && (!key.starts_with(ALLOW_LIST_PREFIX) || key.contains("..") || key.len() <= ALLOW_LIST_PREFIX.len())
        {
            return Err(format!("{table}.allow_list_key: a key under {ALLOW_LIST_PREFIX} in the run bucket, got {key:?}"));
        }
        if let Some(bad) = self.allowed.iter().find(|a| a.trim().is_empty()) {
            return Err(format!("{table}.allowed: an empty entry ({bad:?}) would match nobody"));
        }
        Ok(())
    }
}

/// The principals allowed to launch products, as read for one scope.
#[derive(Debug, Clone, PartialEq)]
pub struct LauncherAllowList {
    entries: Vec<String>,
    /// Where the entries came from, for the finding's evidence.
    pub source: String,
}

impl LauncherAllowList {
    pub fn new(entries: Vec<String>, source: impl Into<String>) -> Self {
        LauncherAllowList { entries, source: source.into() }
    }

    /// The policy's entries and the run bucket's file. A key that holds nothing, or a file
    /// that names nobody, is an error: both are far likelier a mistake than "nobody may".
    pub async fn load(config: &Config, runs: &dyn RunStore) -> Result<LauncherAllowList> {
        let mut entries = config.allowed.clone();
        let mut source = String::from("policy");
        if let Some(key) = &config.allow_list_key {
            let body = runs.get(key).await?.ok_or_else(|| {
                JanitorError::Config(format!(
                    "the launcher allow-list {key} is not in the run bucket: upload it, or name the launchers in `allowed` (janitor scan reads it with --run-bucket)"
                ))
            })?;
            let listed = Self::parse(&body).map_err(|e| JanitorError::Config(format!("launcher allow-list {key}: {e}")))?;
            if listed.is_empty() {
                return Err(JanitorError::Config(format!("the launcher allow-list {key} names nobody")));
            }
            entries.extend(listed);
            source = format!("policy + s3 run bucket {key}");
        }
        Ok(LauncherAllowList { entries, source })
    }

    /// One principal per line (blank lines and `#` comments skipped), or a JSON array.
    pub fn parse(body: &[u8]) -> std::result::Result<Vec<String>, String> {
        let text = std::str::from_utf8(body).map_err(|_| "not UTF-8 text".to_owned())?;
        let text = text.trim_start_matches('\u{feff}');
        if text.trim_start().starts_with(['[', '{']) {
            let list: Vec<String> = serde_json::from_str(text).map_err(|e| format!("not a JSON array of strings: {e}"))?;
            return Ok(list.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
        }
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            // A principal has no spaces or quotes: such a line is some other format, which
            // read as names would match nobody and flag everyone.
            if entry.contains(char::is_whitespace) || entry.contains(['"', '\'', ',', '{', '}']) {
                return Err(format!("line {}: {entry:?} is not a principal", n + 1));
            }
            entries.push(entry.to_owned());
        }
        Ok(entries)
    }

    /// Whether any entry allows any of the launcher's principals (its ARN and session). A
    /// bare name is a person: an IAM user's name, or an IAM Identity Center session's user
    /// (the only session names AWS sets rather than the caller).
    pub fn allows(&self, principals: &[&str]) -> bool {
        self.entries.iter().any(|entry| {
            principals.iter().any(|principal| {
                if entry.starts_with("arn:") {
                    glob(entry, principal)
                } else {
                    person(principal) == Some(entry.as_str())
                }
            })
        })
    }
}

/// The person a principal names: an IAM user, or the user of an IAM Identity Center session
/// (`assumed-role/AWSReservedSSO_<set>_<id>/<user>`). Any other session name is the
/// caller's to choose, so it names nobody.
pub fn person(principal: &str) -> Option<&str> {
    let (_, resource) = principal.rsplit_once(':')?;
    if let Some(user) = resource.strip_prefix("user/") {
        return user.rsplit('/').next();
    }
    let (role, session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
    role.starts_with("AWSReservedSSO_").then_some(session)
}

/// `*` matches any run of characters, everything else itself (case-sensitive, as IAM ARNs).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

pub struct ScUnauthorizedLauncher;
pub const RULE: ScUnauthorizedLauncher = ScUnauthorizedLauncher;

impl Rule for ScUnauthorizedLauncher {
    fn kind(&self) -> ResourceKind {
        ResourceKind::ProvisionedProduct
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "Service Catalog provisioned product",
            violating_when: "launched by a principal on neither `allowed` nor the allow-list in the run bucket (`allow_list_key`)",
            action: "notify only",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["servicecatalog:SearchProvisionedProducts"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let Resource::ProvisionedProduct(item) = resource else { return Judgement::Complies };
        if policy.rules.sc_unauthorized_launcher.is_none() {
            return Judgement::Complies;
        }
        // Not read (a recorded failure) or no launcher known: nothing to judge against.
        let Some(list) = &item.allow_list else { return Judgement::Complies };
        let product = &item.product;
        let principals: Vec<&str> =
            [product.launched_by.as_deref(), product.launched_by_session.as_deref()].into_iter().flatten().collect();
        if principals.is_empty() || list.allows(&principals) {
            return Judgement::Complies;
        }
        let launcher = product.launcher().unwrap_or_default();
        Judgement::Violates {
            reason: format!("launched by {launcher}, who is not on the launcher allow-list"),
            evidence: json!({
                "launched_by": product.launched_by,
                "session": product.launched_by_session,
                "allow_list": list.source,
            }),
            action: Action::NotifyOnly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_arn_patterns_or_names() {
        let list = LauncherAllowList::new(
            vec!["arn:aws:iam::*:role/Platform*".into(), "alice@example.com".into()],
            "test",
        );
        assert!(list.allows(&["arn:aws:iam::123456789012:role/PlatformAdmin"]));
        assert!(list.allows(&[
            "arn:aws:iam::123456789012:role/AWSReservedSSO_Dev_abc",
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_abc/alice@example.com",
        ]));
        assert!(!list.allows(&["arn:aws:iam::123456789012:role/Dev"]));
        assert!(!list.allows(&["arn:aws:iam::123456789012:user/malice@example.com"]), "a name matches whole");
        assert!(!list.allows(&["arn:aws:iam::123456789012:role/platform"]), "ARNs are case-sensitive");
        assert!(
            !list.allows(&["arn:aws:sts::123456789012:assumed-role/Dev/alice@example.com"]),
            "a session name the caller chose names nobody"
        );
    }

    #[test]
    fn a_list_is_lines_with_comments_or_a_json_array() {
        let lines = b"# who may launch\narn:aws:iam::*:role/Platform*\n\n  bob@example.com  # on call\n";
        assert_eq!(LauncherAllowList::parse(lines).unwrap(), ["arn:aws:iam::*:role/Platform*", "bob@example.com"]);
        assert_eq!(LauncherAllowList::parse(br#"["a", " b ", ""]"#).unwrap(), ["a", "b"]);
        assert!(LauncherAllowList::parse(br#"["a", 1]"#).is_err());
        assert!(LauncherAllowList::parse(&[0xff, 0xfe]).is_err());
        assert!(LauncherAllowList::parse(br#"{"allowed": ["a"]}"#).is_err(), "not a list: an error, never nobody");
        assert!(LauncherAllowList::parse(b"Alice Smith, Bob").is_err());
        assert_eq!(LauncherAllowList::parse("\u{feff}alice\n".as_bytes()).unwrap(), ["alice"]);
    }

    #[test]
    fn the_table_names_a_list_under_config_or_refuses() {
        let config = |allowed: &[&str], key: Option<&str>| Config {
            enabled: true,
            allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
            allow_list_key: key.map(str::to_owned),
        };
        assert!(config(&[], None).validate("t").unwrap_err().contains("every product would be flagged"));
        assert!(config(&[], Some("runs/x")).validate("t").is_err());
        assert!(config(&[], Some("config/../runs/x")).validate("t").is_err());
        assert!(config(&[" "], None).validate("t").is_err());
        assert!(config(&[], Some("config/allowed-launchers.txt")).validate("t").is_ok());
    }
}
