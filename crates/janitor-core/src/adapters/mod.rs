//! What stands behind the ports: AWS (`<Tech><Port>`, a cargo feature per service), Slack,
//! and the in-memory fakes (`InMemory<Port>`, behind the `memory` feature).

pub mod aws;
#[cfg(feature = "memory")]
pub mod memory;
pub mod prices;
pub mod slack;
pub mod teams;
