//! An IAM user who can sign in to the console without MFA (from the credential report).

use serde_json::json;

use super::{Judgement, Resource, Rule, RuleDoc};
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

pub type Config = super::Switch;

pub struct ConsoleWithoutMfa;
pub const RULE: ConsoleWithoutMfa = ConsoleWithoutMfa;

impl Rule for ConsoleWithoutMfa {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::IamUser
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "IAM user",
            violating_when: "console password, no MFA (from the credential report)",
            action: "tag `janitor:mfa-required`",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:ListUserTags", "iam:GetUser", "iam:TagUser"]
    }
    fn judge(&self, _policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        match resource {
            // Root's row is never a finding: its MFA is a different control.
            Resource::IamUser(user) if user.user != "<root_account>" && user.password_enabled && !user.mfa_active => {
                Judgement::Violates {
                    reason: "console password enabled without MFA".into(),
                    evidence: json!({ "password_enabled": true, "mfa_active": false }),
                    action: Action::TagMfaRequired,
                }
            }
            _ => Judgement::Complies,
        }
    }
}
