//! A local Microsoft Teams incoming-webhook stub: a real HTTP server on loopback, one URL per
//! webhook name (`/webhook/<name>`), that records every card posted and answers as Teams
//! does: Workflows 202, or a legacy connector's 200 `1`, or that connector's 200 with an
//! error text when Teams refused the message; throttling as 429.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How a webhook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Workflows: 202 Accepted, no body.
    Accepted,
    /// A legacy Office 365 connector: 200 with `1`.
    Legacy,
    /// A legacy connector whose message Teams refused: 200 with the error in the body.
    LegacyRefused,
}

#[derive(Default)]
struct State {
    /// `(webhook, card)` of every post that was taken.
    cards: Vec<(String, Value)>,
    answers: HashMap<String, Answer>,
    throttle_next: usize,
}

pub struct TeamsStub {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TeamsStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TeamsStub {{ {} }}", self.base_url)
    }
}

impl Drop for TeamsStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

fn handle(state: &Mutex<State>, path: &str, raw: &[u8]) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let Some(name) = path.strip_prefix("/webhook/") else { return reply(StatusCode::NOT_FOUND, "") };
    if state.throttle_next > 0 {
        state.throttle_next -= 1;
        let mut throttled = reply(StatusCode::TOO_MANY_REQUESTS, "");
        throttled.headers_mut().insert("retry-after", "1".parse().expect("static header"));
        return throttled;
    }
    let Ok(card) = serde_json::from_slice::<Value>(raw) else {
        return reply(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    // What Workflows checks first: a message with an Adaptive Card attachment.
    let attachment = &card["attachments"][0];
    if card["type"] != "message"
        || attachment["contentType"] != "application/vnd.microsoft.card.adaptive"
        || attachment["content"]["type"] != "AdaptiveCard"
    {
        return reply(StatusCode::BAD_REQUEST, "Property 'type' must be 'AdaptiveCard'");
    }
    match state.answers.get(name).copied().unwrap_or(Answer::Accepted) {
        Answer::LegacyRefused => reply(
            StatusCode::OK,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413",
        ),
        answer => {
            state.cards.push((name.to_owned(), card));
            match answer {
                Answer::Legacy => reply(StatusCode::OK, "1"),
                _ => reply(StatusCode::ACCEPTED, ""),
            }
        }
    }
}

impl TeamsStub {
    pub async fn start() -> anyhow::Result<TeamsStub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let raw = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            Ok::<_, Infallible>(handle(&state, &path, &raw))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(TeamsStub { base_url, state, task })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/webhook/{name}", self.base_url)
    }

    /// The Teams secret for these webhooks (`{"webhooks": {name: url}}`).
    pub fn secret(&self, names: &[&str]) -> String {
        let webhooks: BTreeMap<&str, String> = names.iter().map(|n| (*n, self.webhook_url(n))).collect();
        serde_json::json!({ "webhooks": webhooks }).to_string()
    }

    pub fn answer(&self, webhook: &str, answer: Answer) {
        self.with(|s| s.answers.insert(webhook.to_owned(), answer));
    }

    /// The next `n` posts answer 429 with `Retry-After: 1`.
    pub fn throttle_next(&self, n: usize) {
        self.with(|s| s.throttle_next = n);
    }

    /// The cards each webhook took, in order.
    pub fn cards(&self, webhook: &str) -> Vec<Value> {
        self.with(|s| s.cards.iter().filter(|(w, _)| w == webhook).map(|(_, c)| c.clone()).collect())
    }
}
