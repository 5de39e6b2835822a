//! Logging set-up: JSON lines in Lambda (CloudWatch Logs Insights can query the fields),
//! human-readable on a terminal.

use tracing_subscriber::EnvFilter;

pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .try_init();
}

pub fn init_cli(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_target(false)
        .try_init();
}
