//! A loopback HTTP proxy in front of the emulator that answers AccessDenied for requests
//! signed for chosen regions, the way AWS does for a region an SCP or IAM policy denies.
//! Everything else is forwarded unchanged.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct FaultProxy {
    pub endpoint: String,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    denied_regions: Vec<String>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Held across each DynamoDB write when set: see [`FaultProxy::serialising_writes`].
    writes: Option<tokio::sync::Mutex<()>>,
}

/// DynamoDB's item writes, whose condition AWS checks and applies atomically.
fn is_dynamodb_write(request: &Request<Incoming>) -> bool {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    matches!(
        target.strip_prefix("DynamoDB_20120810."),
        Some("PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems")
    )
}

/// `Credential=AKID/20261123/eu-west-1/ec2/aws4_request` → (`eu-west-1`, `ec2`).
fn signing_scope(request: &Request<Incoming>) -> Option<(String, String)> {
    let auth = request.headers().get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?.split(',').next()?;
    let mut parts = credential.split('/').skip(2);
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

fn denied(service: &str) -> Response<Full<Bytes>> {
    // JSON services (Lambda's REST-JSON, Service Catalog's AWS JSON 1.1) answer in JSON and
    // name the error in a header (the SDKs read either).
    if service == "lambda" || service == "servicecatalog" {
        let body = r#"{"Message":"User is not authorized to perform this action in this region"}"#;
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
        response.headers_mut().insert("x-amzn-errortype", "AccessDeniedException".parse().expect("static header"));
        return response;
    }
    let body = if service == "ec2" {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code>\
         <Message>You are not authorized to perform this operation.</Message></Error></Errors>\
         <RequestID>fault-proxy</RequestID></Response>"
    } else {
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
         <Message>User is not authorized to perform this action in this region</Message></Error>\
         <RequestId>fault-proxy</RequestId></ErrorResponse>"
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert("content-type", "text/xml".parse().expect("static header"));
    response
}

fn bad_gateway(message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some((region, service)) = signing_scope(&request)
        && shared.denied_regions.contains(&region)
    {
        return Ok(denied(&service));
    }
    // moto's threaded server checks a write's condition and applies it in two steps, so two
    // racing conditional puts can both succeed there; DynamoDB never lets them.
    let _write = match (&shared.writes, is_dynamodb_write(&request)) {
        (Some(lock), true) => Some(lock.lock().await),
        _ => None,
    };
    let (mut parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(bad_gateway(format!("cannot read request: {e}"))),
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    parts.uri = match format!("{}{path}", shared.upstream).parse() {
        Ok(uri) => uri,
        Err(e) => return Ok(bad_gateway(format!("bad upstream uri: {e}"))),
    };
    let response = match shared.client.request(Request::from_parts(parts, Full::new(body))).await {
        Ok(r) => r,
        Err(e) => return Ok(bad_gateway(format!("upstream failed: {e}"))),
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => Ok(Response::from_parts(parts, Full::new(collected.to_bytes()))),
        Err(e) => Ok(bad_gateway(format!("cannot read upstream response: {e}"))),
    }
}

impl FaultProxy {
    pub async fn start(upstream: &str, denied_regions: &[&str]) -> anyhow::Result<FaultProxy> {
        Self::with(upstream, denied_regions, false).await
    }

    /// A proxy that makes the emulator's DynamoDB writes atomic as DynamoDB's are (one at a
    /// time), for tests of racing conditional writes.
    pub async fn serialising_writes(upstream: &str) -> anyhow::Result<FaultProxy> {
        Self::with(upstream, &[], true).await
    }

    async fn with(upstream: &str, denied_regions: &[&str], serialise: bool) -> anyhow::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            denied_regions: denied_regions.iter().map(|r| (*r).to_owned()).collect(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            writes: serialise.then(|| tokio::sync::Mutex::new(())),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(FaultProxy { endpoint, task })
    }
}
