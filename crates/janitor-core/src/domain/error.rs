//! One typed error per failure class. The state machine matches the stable names from
//! [`JanitorError::error_name`], never a Rust type name.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub type Result<T, E = JanitorError> = std::result::Result<T, E>;

const TRANSIENT: &str = "Janitor.Transient";

#[derive(Debug, thiserror::Error)]
pub enum JanitorError {
    /// The step's input could not be understood; retrying will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The policy file is invalid; the message names the field.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// Missing or unusable configuration (environment, table names).
    #[error("configuration error: {0}")]
    Config(String),
    /// AWS refused the call for this principal, region or account.
    #[error("access denied by {service} {operation}: {message}")]
    AccessDenied { service: &'static str, operation: &'static str, message: String },
    /// Throttling, timeouts, 5xx: worth retrying later.
    #[error("transient failure in {service} {operation}: {message}")]
    Transient { service: &'static str, operation: &'static str, message: String },
    /// Any other AWS error.
    #[error("{service} {operation} failed: {message}")]
    Aws { service: &'static str, operation: &'static str, message: String },
    /// Slack refused or failed a call (after waiting out rate limits).
    #[error("slack {method} failed: {message}")]
    Slack { method: &'static str, message: String },
    /// Teams or email refused or failed a message.
    #[error("{via} delivery failed: {message}")]
    Delivery { via: crate::delivery::Via, message: String },
    /// The organization lists the account, but not as active (suspended, closing).
    #[error("account {account} is {state} in the organization; not scanned")]
    AccountNotActive { account: String, state: String },
    /// The audit record could not be written; the step must fail rather than lose it.
    #[error("audit write failed: {0}")]
    AuditWrite(String),
}

impl JanitorError {
    /// Stable name used as the Lambda `errorType`, matched by ASL Retry/Catch.
    pub fn error_name(&self) -> &'static str {
        match self {
            JanitorError::InvalidInput(_) => "Janitor.InvalidInput",
            JanitorError::InvalidPolicy(_) => "Janitor.InvalidPolicy",
            JanitorError::Config(_) => "Janitor.Config",
            JanitorError::AccessDenied { .. } => "Janitor.AccessDenied",
            JanitorError::Transient { .. } => TRANSIENT,
            JanitorError::Aws { .. } => "Janitor.AwsError",
            JanitorError::Slack { .. } => "Janitor.SlackError",
            JanitorError::Delivery { .. } => "Janitor.DeliveryError",
            JanitorError::AuditWrite(_) => "Janitor.AuditWriteFailed",
            JanitorError::AccountNotActive { .. } => "Janitor.AccountNotActive",
        }
    }

    /// Every name the core can emit, so template/ASL checks can compare against it.
    pub const ALL_ERROR_NAMES: [&'static str; 10] = [
        "Janitor.InvalidInput",
        "Janitor.InvalidPolicy",
        "Janitor.Config",
        "Janitor.AccessDenied",
        "Janitor.Transient",
        "Janitor.AwsError",
        "Janitor.SlackError",
        "Janitor.DeliveryError",
        "Janitor.AuditWriteFailed",
        "Janitor.AccountNotActive",
    ];

    /// What the state machine itself fails with when any scope is not OK (its Fail state).
    pub const RUN_INCOMPLETE: &'static str = "Janitor.RunIncomplete";

    /// Fails with `Janitor.Transient` when a scan part hit throttling or timeouts that
    /// outlasted the SDK's retries, so the state machine retries the step instead of going
    /// on with a partial scope.
    pub fn retry_if_transient(step: &'static str, failures: &[crate::model::ScopeFailure]) -> Result<()> {
        match failures.iter().find(|f| f.error == TRANSIENT) {
            Some(f) => Err(JanitorError::Transient {
                service: step,
                operation: "scan",
                message: format!("{}: {}", f.what, f.message),
            }),
            None => Ok(()),
        }
    }

    /// Classifies an SDK failure by its error code, after the SDK's own retries.
    pub fn from_sdk<E, R>(service: &'static str, operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_owned);
        let message = match (&code, err.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            _ => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&err)),
        };
        let transient_transport =
            matches!(err, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_));
        match code.as_deref() {
            Some(c) if is_access_denied_code(c) => JanitorError::AccessDenied { service, operation, message },
            Some(c) if is_throttling_code(c) => JanitorError::Transient { service, operation, message },
            _ if transient_transport => JanitorError::Transient { service, operation, message },
            _ => JanitorError::Aws { service, operation, message },
        }
    }
}

fn is_access_denied_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AuthFailure"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "OptInRequired"
            | "ExpiredToken"
            | "ExpiredTokenException"
    )
}

fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "RequestThrottled"
            | "SlowDown"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "InternalServerError"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_stable_and_listed() {
        let samples = [
            JanitorError::InvalidInput("x".into()),
            JanitorError::InvalidPolicy("x".into()),
            JanitorError::Config("x".into()),
            JanitorError::AccessDenied { service: "ec2", operation: "DescribeInstances", message: "m".into() },
            JanitorError::Transient { service: "ec2", operation: "DescribeInstances", message: "m".into() },
            JanitorError::Aws { service: "ec2", operation: "DescribeInstances", message: "m".into() },
            JanitorError::Slack { method: "chat.postMessage", message: "m".into() },
            JanitorError::Delivery { via: crate::delivery::Via::Teams, message: "m".into() },
            JanitorError::AuditWrite("x".into()),
            JanitorError::AccountNotActive { account: "1".into(), state: "SUSPENDED".into() },
        ];
        let names: Vec<_> = samples.iter().map(JanitorError::error_name).collect();
        assert_eq!(names, JanitorError::ALL_ERROR_NAMES.to_vec());
        assert!(names.iter().all(|n| n.starts_with("Janitor.") && !n.contains("::")));
    }
}
