//! A local Slack Web API stub: a real HTTP server on loopback that records every request
//! and answers like Slack. It can answer 429 with Retry-After, and fail chosen channels.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// `chat.postMessage`, `users.lookupByEmail`, … or `response_url`.
    pub method: String,
    pub status: u16,
    pub authorization: Option<String>,
    pub body: Value,
    /// What the stub answered (Slack answers most failures with HTTP 200 and `ok: false`).
    pub reply: Value,
}

#[derive(Default)]
struct State {
    calls: Vec<RecordedCall>,
    users: HashMap<String, String>,
    rate_limit_next: usize,
    failing_channels: HashSet<String>,
    messages: usize,
}

pub struct SlackStub {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for SlackStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// JSON bodies as they are; form bodies (users.lookupByEmail) as an object of their fields.
fn body_as_json(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap_or_else(|_| {
        let form: HashMap<String, String> = serde_urlencoded::from_bytes(raw).unwrap_or_default();
        json!(form)
    })
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    response
}

fn handle(state: &Mutex<State>, method: String, authorization: Option<String>, body: Value) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let (status, reply, retry_after) = match method.as_str() {
        "chat.postMessage" if state.rate_limit_next > 0 => {
            state.rate_limit_next -= 1;
            (StatusCode::TOO_MANY_REQUESTS, json!({ "ok": false, "error": "ratelimited" }), Some("1"))
        }
        "chat.postMessage" => {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            if state.failing_channels.contains(&channel) {
                (StatusCode::OK, json!({ "ok": false, "error": "channel_not_found" }), None)
            } else {
                state.messages += 1;
                // Posting to a user id opens a direct message channel.
                let posted_in = channel.strip_prefix('U').map(|rest| format!("D{rest}")).unwrap_or(channel);
                let ts = format!("1763900000.{:06}", state.messages);
                (StatusCode::OK, json!({ "ok": true, "channel": posted_in, "ts": ts }), None)
            }
        }
        "users.lookupByEmail" => match body["email"].as_str().and_then(|e| state.users.get(e)) {
            Some(id) => (StatusCode::OK, json!({ "ok": true, "user": { "id": id } }), None),
            None => (StatusCode::OK, json!({ "ok": false, "error": "users_not_found" }), None),
        },
        "response_url" => (StatusCode::OK, json!({ "ok": true }), None),
        _ => (StatusCode::OK, json!({ "ok": false, "error": "unknown_method" }), None),
    };
    state.calls.push(RecordedCall { method, status: status.as_u16(), authorization, body, reply: reply.clone() });
    let mut response = answer(status, reply);
    if let Some(seconds) = retry_after {
        response.headers_mut().insert("retry-after", seconds.parse().expect("static header"));
    }
    response
}

impl SlackStub {
    pub async fn start() -> anyhow::Result<SlackStub> {
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
                            let authorization =
                                request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                            let raw = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let method = match path.strip_prefix("/api/") {
                                Some(m) => m.to_owned(),
                                None => "response_url".to_owned(),
                            };
                            Ok::<_, Infallible>(handle(&state, method, authorization, body_as_json(&raw)))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(SlackStub { base_url, state, task })
    }

    /// A stub that knows the twin estate's owners as Slack users.
    pub async fn for_twin_estate() -> anyhow::Result<SlackStub> {
        let stub = SlackStub::start().await?;
        for (email, id) in [("alice@example.com", "UALICE"), ("bob@example.com", "UBOB"), ("dana@example.com", "UDANA")]
        {
            stub.add_user(email, id);
        }
        Ok(stub)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn api_url(&self) -> String {
        format!("{}/api", self.base_url)
    }

    pub fn response_url(&self, name: &str) -> String {
        format!("{}/response/{name}", self.base_url)
    }

    pub fn add_user(&self, email: &str, id: &str) {
        self.with(|s| s.users.insert(email.to_owned(), id.to_owned()));
    }

    /// The next `n` chat.postMessage calls answer HTTP 429 with `Retry-After: 1`.
    pub fn rate_limit_next(&self, n: usize) {
        self.with(|s| s.rate_limit_next = n);
    }

    pub fn fail_channel(&self, channel: &str) {
        self.with(|s| s.failing_channels.insert(channel.to_owned()));
    }

    pub fn restore_channel(&self, channel: &str) {
        self.with(|s| s.failing_channels.remove(channel));
    }

    pub fn calls(&self, method: &str) -> Vec<RecordedCall> {
        self.with(|s| s.calls.iter().filter(|c| c.method == method).cloned().collect())
    }
}
