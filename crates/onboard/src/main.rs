//! `onboard` Lambda: builds its dependencies once per cold start, then hands every CloudTrail
//! event EventBridge delivers to `janitor_core::handler::onboard`.

use janitor_core::{aws, handler, telemetry};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let mode = handler::mode_from_env()?;
    let deps = aws::Wiring::from_env()
        .await?
        .inventory()
        .security_alerts()
        .slack()
        .await?
        .teams()
        .await?
        .email()
        .links()
        .build();
    run(service_fn(|event: LambdaEvent<Value>| handler::onboard(&deps, mode, event.payload))).await
}
