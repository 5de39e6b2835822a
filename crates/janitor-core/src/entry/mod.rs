//! Entry points: what each Lambda's `main` calls (`handler`, with the run store), the same
//! steps on whole payloads in one process (`step`: the CLI and the tests), the shipped state
//! machine run on this machine (`local`), and logging set-up (`telemetry`).

pub mod emf;
pub mod handler;
#[cfg(feature = "local")]
pub mod local;
pub mod step;
pub mod telemetry;
