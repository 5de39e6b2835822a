//! Cloud Janitor core, in layers: `domain` (model, policy, ports, audit, errors), the
//! registries `rules` and `kinds`, `steps` (what a run does), `adapters` (AWS, Slack,
//! in-memory fakes) and `entry` (what the Lambdas, the CLI and the tests call).

pub mod adapters;
pub mod domain;
pub mod entry;
pub mod kinds;
pub mod rules;
pub mod steps;

// Short paths for every module, whatever its layer (`crate::model`, `janitor_core::aws`).
#[cfg(feature = "memory")]
pub use adapters::memory;
pub use adapters::{aws, prices, slack, teams};
pub use domain::{audit, chain, cost, delivery, error, model, policy, ports, runstore, s3_public};
#[cfg(feature = "local")]
pub use entry::local;
pub use entry::{emf, handler, step, telemetry};
pub use steps::{discovery, export, lock, metrics, notify, onboard, recheck, remediate, report_page, security, snooze};

use std::sync::Arc;

pub use error::{JanitorError, Result};

/// The Lambda handlers: crate, binary, SAM function and state names all follow these.
pub const HANDLERS: [&str; 8] =
    ["discovery", "metric-check", "lock", "notify", "snooze", "recheck", "remediate", "onboard"];

/// Everything a step needs, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    pub policy: policy::Policy,
    pub inventory: Arc<dyn ports::Inventory>,
    pub directory: Arc<dyn ports::AccountDirectory>,
    pub metrics: Arc<dyn ports::MetricSource>,
    /// Unit prices for each finding's cost and savings (a [`prices::PriceBook`]).
    pub prices: Arc<dyn cost::PriceSource>,
    pub snoozes: Arc<dyn ports::SnoozeStore>,
    pub locks: Arc<dyn ports::LockStore>,
    pub audit: Arc<dyn ports::AuditLog>,
    pub remediator: Arc<dyn ports::Remediator>,
    pub alerts: Arc<dyn ports::AlertSink>,
    pub chat: Arc<dyn slack::Chat>,
    pub slack: slack::SlackSettings,
    /// Loaded when `JANITOR_SLACK_SECRET_ID` is set; the snooze handler needs its signing secret.
    pub slack_secret: Option<slack::SlackSecret>,
    pub clock: Arc<dyn ports::Clock>,
    /// The run's documents too large for the state machine's payload.
    pub runs: Arc<dyn ports::RunStore>,
    /// Where the run's summary step puts the report page.
    pub reports: Arc<dyn ports::ReportStore>,
    /// Where the summary step copies the run's audit anchor, if the stack keeps copies.
    pub anchor_copies: Option<Arc<dyn ports::AnchorCopies>>,
    /// Teams, email and the snooze links (Slack is `chat`).
    pub delivery: delivery::Deliveries,
}
