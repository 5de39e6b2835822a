//! The steps of a run, each a function of `Deps` and a payload: discovery, the metric check,
//! lock (and the Catch path's release), notify, recheck, remediate; the snooze click; the
//! findings export. They reach AWS and Slack only through the ports.

pub mod discovery;
pub mod export;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod onboard;
pub mod recheck;
pub mod remediate;
pub mod report_page;
pub mod security;
pub mod snooze;
