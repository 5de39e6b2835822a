//! The domain: what a finding, a resource key, a run and an audit row are, the policy file,
//! the ports the steps need from the outside world, and the errors. No AWS or Slack types.

pub mod audit;
pub mod chain;
pub mod cost;
pub mod delivery;
pub mod error;
pub mod model;
pub mod policy;
pub mod ports;
pub mod runstore;
pub mod s3_public;
