//! `snooze` Lambda behind the API Gateway HTTP API route `POST /slack/interactivity`:
//! builds its dependencies once, then hands every request to
//! `janitor_core::snooze::handle_interaction`.

use janitor_core::{JanitorError, aws, snooze, telemetry};
use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let deps = aws::Wiring::from_env().await?.slack().await?.build();
    let secret =
        deps.slack_secret.clone().ok_or_else(|| JanitorError::Config("JANITOR_SLACK_SECRET_ID is not set".into()))?;
    let (deps, secret) = (&deps, &secret);
    run(service_fn(|request: Request| async move {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        // lambda_http has already decoded a base64-encoded body, so these are the raw bytes Slack signed.
        let reply = snooze::handle_interaction(
            deps,
            &secret.signing_secret,
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            request.body().as_ref(),
        )
        .await;
        Response::builder()
            .status(reply.status)
            .header("content-type", "application/json")
            .body(Body::from(reply.body))
            .map_err(Error::from)
    }))
    .await
}
