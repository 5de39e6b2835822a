//! `notify` Lambda: builds its dependencies once per cold start, then hands every event to
//! `janitor_core::handler::notify`.

use janitor_core::{aws, handler, telemetry};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let deps = aws::Wiring::from_env().await?.run_store().await?.slack().await?.teams().await?.email().links().build();
    run(service_fn(|event: LambdaEvent<Value>| handler::notify(&deps, event.payload))).await
}
