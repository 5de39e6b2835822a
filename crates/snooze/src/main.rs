//! `snooze` Lambda behind the API Gateway HTTP API: `POST /slack/interactivity` (Slack's
//! Snooze buttons, `janitor_core::snooze::handle_interaction`) and `GET|POST /snooze` (the
//! signed snooze links of Teams and email, `janitor_core::snooze::handle_link`). Builds its
//! dependencies once.

use janitor_core::{JanitorError, aws, snooze, telemetry};
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let deps = aws::Wiring::from_env().await?.slack().await?.link_checks().build();
    let secret =
        deps.slack_secret.clone().ok_or_else(|| JanitorError::Config("JANITOR_SLACK_SECRET_ID is not set".into()))?;
    let (deps, secret) = (&deps, &secret);
    run(service_fn(|request: Request| async move {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let path = request.raw_http_path();
        // lambda_http has already decoded a base64-encoded body, so these are the raw bytes Slack signed.
        let reply = if path.ends_with("/snooze") {
            snooze::handle_link(deps, request.method().as_str(), request.uri().query(), request.body().as_ref()).await
        } else {
            snooze::handle_interaction(
                deps,
                &secret.signing_secret,
                header("x-slack-request-timestamp"),
                header("x-slack-signature"),
                request.body().as_ref(),
            )
            .await
        };
        let mut response = Response::builder().status(reply.status).header("content-type", reply.content_type);
        if reply.content_type.starts_with("text/html") {
            // The link's token is in the address: never sent on, cached or framed.
            response = response
                .header("referrer-policy", "no-referrer")
                .header("cache-control", "no-store")
                .header("x-frame-options", "DENY")
                .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
        }
        response.body(Body::from(reply.body)).map_err(Error::from)
    }))
    .await
}
