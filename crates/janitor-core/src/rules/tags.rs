//! Seed 001's required tags: each is a key, or a table naming the key with the values it
//! may take or a pattern its whole value must match:
//!
//! ```toml
//! tags = ["Owner", { key = "Environment", values = ["production", "staging"] },
//!         { key = "CostCenter", pattern = "cc-[0-9]{3,6}" }]
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Tags;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TagRequirement {
    Key(String),
    Rule(TagRule),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    pub key: String,
    /// The values it may take (exact, case-sensitive); empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<TagPattern>,
}

/// A regular expression the whole value must match, compiled once when the policy loads (an
/// invalid one is a policy error naming the field).
#[derive(Debug, Clone)]
pub struct TagPattern {
    text: String,
    whole: regex_lite::Regex,
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl TagPattern {
    pub fn new(text: &str) -> Result<TagPattern, String> {
        // On its own first: `a)|(?:b` would compile inside the group and lose its anchors.
        regex_lite::Regex::new(text).map_err(|e| format!("bad pattern {text:?}: {e}"))?;
        let whole =
            regex_lite::Regex::new(&format!("^(?:{text})$")).map_err(|e| format!("bad pattern {text:?}: {e}"))?;
        Ok(TagPattern { text: text.to_owned(), whole })
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn matches(&self, value: &str) -> bool {
        self.whole.is_match(value)
    }
}

impl Serialize for TagPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TagPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TagPattern::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A key, or a table: the table keeps its own field errors (an untagged enum would only say
/// "matched no variant").
impl<'de> Deserialize<'de> for TagRequirement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TagRequirement;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a tag key, or a table { key, values, pattern }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TagRequirement, E> {
                Ok(TagRequirement::Key(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<TagRequirement, A::Error> {
                TagRule::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(TagRequirement::Rule)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TagRequirement {
    pub fn key(&self) -> &str {
        match self {
            TagRequirement::Key(key) => key,
            TagRequirement::Rule(rule) => &rule.key,
        }
    }

    /// Why `value` is not acceptable, if it is not.
    fn refuses(&self, value: &str) -> Option<String> {
        let TagRequirement::Rule(rule) = self else { return None };
        if !rule.values.is_empty() && !rule.values.iter().any(|v| v == value) {
            return Some(format!("not one of {}", rule.values.join(", ")));
        }
        match &rule.pattern {
            Some(pattern) if !pattern.matches(value) => Some(format!("does not match {}", pattern.as_str())),
            _ => None,
        }
    }
}

/// What is wrong with a resource's tags: required keys absent or blank, and values the
/// policy does not allow (key, value, why).
#[derive(Debug, Default, PartialEq)]
pub struct TagProblems<'a> {
    pub missing: Vec<&'a str>,
    pub invalid: Vec<(&'a str, String, String)>,
}

impl TagProblems<'_> {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }

    /// `missing required tags: CostCenter; Environment = "prod1" is not one of …`
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing required tags: {}", self.missing.join(", ")));
        }
        parts.extend(self.invalid.iter().map(|(key, value, why)| format!("{key} = {value:?} {why}")));
        parts.join("; ")
    }

    pub fn evidence(&self) -> serde_json::Value {
        let invalid: serde_json::Map<String, serde_json::Value> = self
            .invalid
            .iter()
            .map(|(k, v, why)| ((*k).to_owned(), serde_json::json!({ "value": v, "why": why })))
            .collect();
        serde_json::json!({ "missing_tags": self.missing, "invalid_tags": invalid })
    }
}

pub fn tag_problems<'a>(tags: &Tags, required: &'a [TagRequirement]) -> TagProblems<'a> {
    let mut problems = TagProblems::default();
    for requirement in required {
        match tags.get(requirement.key()).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => problems.missing.push(requirement.key()),
            Some(value) => {
                if let Some(why) = requirement.refuses(value) {
                    problems.invalid.push((requirement.key(), value.to_owned(), why));
                }
            }
        }
    }
    problems
}

/// At least one requirement, no blank key, no key twice, no empty list of values.
pub fn validate(table: &str, required: &[TagRequirement]) -> Result<(), String> {
    if required.is_empty() || required.iter().any(|t| t.key().trim().is_empty()) {
        return Err(format!("{table}.tags: needs at least one non-empty tag key"));
    }
    if let Some(TagRequirement::Rule(rule)) =
        required.iter().find(|t| matches!(t, TagRequirement::Rule(r) if r.values.is_empty() && r.pattern.is_none()))
    {
        return Err(format!("{table}.tags: {} names neither values nor a pattern; list it as a plain key", rule.key));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = required.iter().map(TagRequirement::key).find(|k| !seen.insert(*k)) {
        return Err(format!("{table}.tags: {twice} is listed twice"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Table {
        tags: Vec<TagRequirement>,
    }

    fn parse(text: &str) -> Result<Vec<TagRequirement>, String> {
        toml::from_str::<Table>(text).map(|t| t.tags).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_values_and_patterns_are_checked_and_explained() {
        let required = parse(
            r#"tags = ["Owner", { key = "Environment", values = ["production", "staging"] },
                       { key = "CostCenter", pattern = "cc-[0-9]{3,6}" }]"#,
        )
        .unwrap();
        let tags = |pairs: &[(&str, &str)]| -> Tags {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let ok = tags(&[("Owner", "a"), ("Environment", "staging"), ("CostCenter", "cc-1234")]);
        assert!(tag_problems(&ok, &required).is_empty());
        let bad = tags(&[("Environment", "prod"), ("CostCenter", "cc-1234x")]);
        let problems = tag_problems(&bad, &required);
        assert_eq!(problems.missing, ["Owner"]);
        assert_eq!(problems.invalid.len(), 2);
        let text = problems.describe();
        assert!(text.contains("missing required tags: Owner"), "{text}");
        assert!(text.contains("Environment = \"prod\" not one of production, staging"), "{text}");
        assert!(text.contains("CostCenter = \"cc-1234x\" does not match"), "the whole value must match: {text}");
        assert_eq!(problems.evidence()["invalid_tags"]["Environment"]["value"], "prod");
    }

    #[test]
    fn a_bad_table_is_an_error_naming_what_is_wrong() {
        let unknown = parse(r#"tags = [{ key = "Owner", valeus = ["x"] }]"#).unwrap_err();
        assert!(unknown.contains("valeus"), "{unknown}");
        let pattern = parse(r#"tags = [{ key = "Owner", pattern = "(" }]"#).unwrap_err();
        assert!(pattern.contains("bad pattern"), "{pattern}");
        let escape = parse(r#"tags = [{ key = "Owner", pattern = "a)|(?:b" }]"#).unwrap_err();
        assert!(escape.contains("bad pattern"), "a pattern may not close the anchoring group: {escape}");
        assert!(validate("rules.x", &parse(r#"tags = [{ key = "Owner", values = [] }]"#).unwrap()).is_err());
        assert!(validate("rules.x", &parse(r#"tags = ["Owner", { key = "Owner" }]"#).unwrap()).is_err());
        assert!(validate("rules.x", &[]).is_err());
    }
}
