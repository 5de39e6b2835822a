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
    // The SDK's credential chain and HTTP stack explain every provider they try; a person
    // gets the one line `load_checked` says instead, unless RUST_LOG asks for more.
    let default = if verbose {
        "info,aws_config=warn,aws_smithy_runtime=warn"
    } else {
        "warn,aws_config=error,aws_smithy_runtime=error,aws_runtime=error"
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_target(false)
        .try_init();
}
