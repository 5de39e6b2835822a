//! `lock` Lambda: builds its dependencies once per cold start, then hands every event to
//! `janitor_core::handler::lock`.

use janitor_core::{aws, handler, telemetry};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let deps =
        aws::Wiring::from_env().await?.alerts().run_store().await?.reports().await?.anchor_copies().await?.build();
    run(service_fn(|event: LambdaEvent<Value>| handler::lock(&deps, event.payload))).await
}
