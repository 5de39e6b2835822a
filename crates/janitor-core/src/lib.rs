//! Cloud Janitor core: the domain logic every handler and the CLI share, the port traits it
//! needs, their AWS adapters and in-memory fakes.

pub mod audit;
pub mod aws;
pub mod discovery;
pub mod error;
pub mod export;
pub mod handler;
pub mod kinds;
#[cfg(feature = "local")]
pub mod local;
pub mod lock;
#[cfg(feature = "memory")]
pub mod memory;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod policy;
pub mod ports;
pub mod recheck;
pub mod remediate;
pub mod rules;
pub mod runstore;
pub mod s3_public;
pub mod slack;
pub mod snooze;
pub mod step;
pub mod telemetry;

use std::sync::Arc;

pub use error::{JanitorError, Result};

/// The Lambda handlers: crate, binary, SAM function and state names all follow these.
pub const HANDLERS: [&str; 7] = ["discovery", "metric-check", "lock", "notify", "snooze", "recheck", "remediate"];

/// Everything a step needs, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    pub policy: policy::Policy,
    pub inventory: Arc<dyn ports::Inventory>,
    pub metrics: Arc<dyn ports::MetricSource>,
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
}
