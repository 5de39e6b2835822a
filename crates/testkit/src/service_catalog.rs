//! A Service Catalog stub: moto has no provisioned products, so this answers the calls the
//! janitor makes (`SearchProvisionedProducts`, `DescribeProvisionedProduct`) in the service's
//! own wire protocol (AWS JSON 1.1, `X-Amz-Target: AWS242ServiceCatalogService.<Op>`), so the
//! real SDK client is what the tests exercise. moto has no Price List either: the same
//! server answers `AWSPriceListService.GetProducts` (see [`crate::pricing`]). Like AWS it answers per caller: the account
//! comes from the SigV4 access key (moto's record of the credentials it issued), the region
//! from the credential scope; and a caller acting through a role the test registered is held
//! to that role's actions (AccessDeniedException otherwise). It runs on a thread of its own,
//! so sync and async tests alike can start it.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// `X-Amz-Target` prefix -> the service's IAM prefix and SigV4 signing name.
const TARGETS: [(&str, &str); 2] =
    [("AWS242ServiceCatalogService.", "servicecatalog"), ("AWSPriceListService.", "pricing")];
/// The most products one SearchProvisionedProducts page holds.
const MAX_PAGE_SIZE: usize = 100;

/// One provisioned product as a test makes it.
#[derive(Debug, Clone)]
pub struct StubProduct {
    /// `pp-` and 13 characters, as Service Catalog names them.
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub product_name: String,
    /// `UserArn`: who launched it.
    pub user_arn: String,
    /// `UserArnSession`.
    pub user_arn_session: Option<String>,
    pub created: DateTime<Utc>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Provisioned {
    id: String,
    spec: StubProduct,
}

/// One call as the stub saw and answered it.
#[derive(Debug, Clone)]
pub struct ScCall {
    pub operation: String,
    pub account: Option<String>,
    pub region: String,
    /// The role the caller acted through, when it was one.
    pub role: Option<String>,
    pub body: Value,
    pub status: u16,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
struct Caller {
    account: String,
    role: Option<String>,
}

#[derive(Default)]
struct State {
    moto: String,
    products: Vec<Provisioned>,
    calls: Vec<ScCall>,
    callers: HashMap<String, Caller>,
    /// Role ARN -> the IAM actions its policy allows (exact names or `service:*`).
    roles: HashMap<String, Vec<String>>,
    /// Who a key nobody named belongs to, when the test says (see [`ServiceCatalogStub::unnamed_callers_are`]).
    unnamed: Option<Caller>,
    /// The Price List's products (`GetProducts`).
    price_list: Vec<Value>,
}

pub struct ServiceCatalogStub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ServiceCatalogStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCatalogStub").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Drop for ServiceCatalogStub {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/x-amz-json-1.1".parse().expect("static header"));
    response
}

fn error(kind: &str, message: String) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({ "__type": kind, "Message": message }))
}

/// `Credential=AKID/20261202/us-east-1/servicecatalog/aws4_request` -> (AKID, region, service).
fn credential_scope(authorization: &str) -> Option<(String, String, String)> {
    let credential = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    let mut parts = credential.split('/');
    let key = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    Some((key, region, service))
}

/// Whose credentials these are, as moto's STS answers GetCallerIdentity for them. moto
/// reads the access key from the request and checks no signature while its authorisation is
/// off, so the caller's key and token are enough; with authorisation on the call is refused,
/// which is why the IAM-enforced pipeline names its callers up front.
fn caller_identity(moto: &str, key: &str, token: Option<&str>) -> Result<Caller, String> {
    let hostport = moto.strip_prefix("http://").ok_or("moto's endpoint is not http://")?;
    let mut stream = TcpStream::connect(hostport).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let day = Utc::now().format("%Y%m%d");
    let token = token.map(|t| format!("X-Amz-Security-Token: {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{token}\
         Authorization: AWS4-HMAC-SHA256 Credential={key}/{day}/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(|e| format!("read: {e}"))?;
    let field = |name: &str| {
        let open = format!("<{name}>");
        let from = raw.find(&open)? + open.len();
        let to = raw[from..].find('<')? + from;
        Some(raw[from..to].to_owned())
    };
    let account =
        field("Account").ok_or_else(|| format!("moto did not say: {}", raw.lines().next().unwrap_or_default()))?;
    // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION -> arn:aws:iam::ACCOUNT:role/ROLE
    let role = field("Arn").and_then(|arn| {
        let rest = arn.split_once(":assumed-role/")?.1;
        Some(format!("arn:aws:iam::{account}:role/{}", rest.split('/').next()?))
    });
    Ok(Caller { account, role })
}

fn allows(actions: &[String], action: &str) -> bool {
    actions.iter().any(|granted| {
        granted == action
            || granted == "*"
            || granted.strip_suffix('*').is_some_and(|prefix| action.starts_with(prefix))
    })
}

fn attributes(p: &Provisioned) -> Value {
    let s = &p.spec;
    json!({
        "Name": s.name,
        "Arn": format!("arn:aws:servicecatalog:{}:{}:stack/{}/{}", s.region, s.account, s.name, p.id),
        "Type": "CFN_STACK",
        "Id": p.id,
        "Status": "AVAILABLE",
        "CreatedTime": s.created.timestamp() as f64,
        "IdempotencyToken": format!("token-{}", p.id),
        "LastRecordId": format!("rec-{}", p.id),
        "ProductId": "prod-stub",
        "ProductName": s.product_name,
        "ProvisioningArtifactId": "pa-stub",
        "ProvisioningArtifactName": "v1",
        "UserArn": s.user_arn,
        "UserArnSession": s.user_arn_session,
        "Tags": s.tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>(),
    })
}

fn handle(
    state: &Mutex<State>,
    target: Option<String>,
    authorization: Option<String>,
    token: Option<String>,
    body: Value,
) -> (StatusCode, Value) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let (operation, wanted) = TARGETS
        .iter()
        .find_map(|(prefix, service)| Some((target.as_deref()?.strip_prefix(prefix)?.to_owned(), *service)))
        .unwrap_or_default();
    let scope = authorization.as_deref().and_then(credential_scope);
    let (answer, account, region, role) = match scope {
        None => (
            error("MissingAuthenticationTokenException", "Missing Authentication Token".into()),
            None,
            String::new(),
            None,
        ),
        Some((_, region, service)) if service != wanted => (
            error(
                "InvalidSignatureException",
                format!("Credential should be scoped to correct service: '{wanted}', not {service:?}"),
            ),
            None,
            region,
            None,
        ),
        Some((key, region, _)) => {
            let known = match state.callers.get(&key).cloned().or_else(|| state.unnamed.clone()) {
                Some(caller) => Some(caller),
                None => match caller_identity(&state.moto, &key, token.as_deref()) {
                    Ok(caller) => {
                        state.callers.insert(key.clone(), caller.clone());
                        Some(caller)
                    }
                    Err(e) => {
                        eprintln!("service catalog stub: whose key {key} is, moto would not say: {e}");
                        None
                    }
                },
            };
            match known {
                None => (
                    error(
                        "UnrecognizedClientException",
                        "The security token included in the request is invalid.".into(),
                    ),
                    None,
                    region,
                    None,
                ),
                Some(caller) => {
                    let action = format!("{wanted}:{operation}");
                    let denied = caller
                        .role
                        .as_ref()
                        .and_then(|role| state.roles.get(role))
                        .is_some_and(|granted| !allows(granted, &action));
                    let answer = if denied {
                        let who = caller.role.clone().unwrap_or_default();
                        error("AccessDeniedException", format!("User: {who} is not authorized to perform: {action}"))
                    } else {
                        answer_operation(&state, &operation, &caller, &region, &body)
                    };
                    (answer, Some(caller.account), region, caller.role)
                }
            }
        }
    };
    let (status, reply_body) = answer;
    let error = reply_body["__type"].as_str().map(str::to_owned);
    state.calls.push(ScCall { operation, account, region, role, body, status: status.as_u16(), error });
    (status, reply_body)
}

fn answer_operation(
    state: &State,
    operation: &str,
    caller: &Caller,
    region: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let here = |p: &&Provisioned| p.spec.account == caller.account && p.spec.region == region;
    match operation {
        "SearchProvisionedProducts" => {
            // Without `Account`/`self`, Service Catalog answers the caller's own products only.
            let whole_account =
                body["AccessLevelFilter"]["Key"] == "Account" && body["AccessLevelFilter"]["Value"] == "self";
            let size = match body["PageSize"].as_u64().map_or(20, |n| n as usize) {
                0 => 20,
                n if n > MAX_PAGE_SIZE => {
                    return error("ValidationException", format!("PageSize must be between 0 and {MAX_PAGE_SIZE}"));
                }
                n => n,
            };
            let offset: usize = match body["PageToken"].as_str() {
                None | Some("") => 0,
                Some(token) => match token.parse() {
                    Ok(n) => n,
                    Err(_) => return error("InvalidParametersException", "bad page token".into()),
                },
            };
            let mut mine: Vec<&Provisioned> = state
                .products
                .iter()
                .filter(here)
                .filter(|p| whole_account || caller.role.as_deref() == Some(p.spec.user_arn.as_str()))
                .collect();
            // Sorted by creation when asked; else the stub's own order (newest first), which
            // a caller ranking products must not take for launch order.
            if body["SortBy"] == "createdTime" {
                mine.sort_by_key(|p| (p.spec.created, p.id.clone()));
                if body["SortOrder"] == "DESCENDING" {
                    mine.reverse();
                }
            } else {
                mine.sort_by_key(|p| std::cmp::Reverse((p.spec.created, p.id.clone())));
            }
            let page: Vec<Value> = mine.iter().skip(offset).take(size).map(|p| attributes(p)).collect();
            let mut out = json!({ "ProvisionedProducts": page, "TotalResultsCount": mine.len() });
            if offset + size < mine.len() {
                out["NextPageToken"] = json!((offset + size).to_string());
            }
            (StatusCode::OK, out)
        }
        "DescribeProvisionedProduct" => {
            let id = body["Id"].as_str().unwrap_or_default();
            match state.products.iter().filter(here).find(|p| p.id == id) {
                Some(p) => {
                    let a = attributes(p);
                    let detail = json!({
                        "Name": a["Name"], "Arn": a["Arn"], "Type": a["Type"], "Id": a["Id"],
                        "Status": a["Status"], "CreatedTime": a["CreatedTime"],
                        "IdempotencyToken": a["IdempotencyToken"], "LastRecordId": a["LastRecordId"],
                        "ProductId": a["ProductId"], "ProvisioningArtifactId": a["ProvisioningArtifactId"],
                    });
                    (StatusCode::OK, json!({ "ProvisionedProductDetail": detail, "CloudWatchDashboards": [] }))
                }
                None => error("ResourceNotFoundException", format!("Provisioned product {id} not found")),
            }
        }
        "GetProducts" => match crate::pricing::get_products(&state.price_list, body) {
            Ok(answer) => (StatusCode::OK, answer),
            Err((kind, message)) => error(kind, message),
        },
        other => error("UnknownOperationException", format!("the stub does not serve {other:?}")),
    }
}

impl ServiceCatalogStub {
    /// Starts the stub beside the moto server at `moto` (whose issued credentials it knows).
    pub fn start(moto: &str) -> anyhow::Result<ServiceCatalogStub> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let mut callers = HashMap::new();
        // moto's own default credentials belong to its default account.
        callers.insert("testing".to_owned(), Caller { account: crate::HOME_ACCOUNT.to_owned(), role: None });
        let state = Arc::new(Mutex::new(State {
            moto: moto.to_owned(),
            callers,
            price_list: crate::pricing::twin_price_list(),
            ..State::default()
        }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                loop {
                    let accepted = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => accepted,
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let state = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let state = state.clone();
                            async move {
                                let header = |name: &str| {
                                    request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                                };
                                let (target, authorization) = (header("x-amz-target"), header("authorization"));
                                let token = header("x-amz-security-token");
                                let raw = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let body: Value = serde_json::from_slice(&raw).unwrap_or_default();
                                let (status, answer) = handle(&state, target, authorization, token, body);
                                Ok::<_, Infallible>(reply(status, answer))
                            }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
        });
        Ok(ServiceCatalogStub { endpoint, state, shutdown: Some(stop), thread: Some(thread) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Provisions a product under its own id.
    pub fn provision(&self, spec: StubProduct) {
        self.with(|s| s.products.push(Provisioned { id: spec.id.clone(), spec }));
    }

    /// Terminates a product: it is no longer listed or described.
    pub fn terminate(&self, id: &str) {
        self.with(|s| s.products.retain(|p| p.id != id));
    }

    /// Names the caller of an access key (credentials the test made, as moto would say
    /// while its authorisation is on and it will not answer for them).
    pub fn name_caller(&self, access_key: &str, account: &str, role: Option<&str>) {
        let caller = Caller { account: account.to_owned(), role: role.map(str::to_owned) };
        self.with(|s| s.callers.insert(access_key.to_owned(), caller));
    }

    /// Takes every key nobody named as `role` in `account`: in the IAM-enforced pipeline the
    /// only such keys are the member role's, assumed by the functions mid-run.
    pub fn unnamed_callers_are(&self, account: &str, role: &str) {
        self.with(|s| s.unnamed = Some(Caller { account: account.to_owned(), role: Some(role.to_owned()) }));
    }

    /// Holds callers acting through each role to the actions its policy grants.
    pub fn enforce_roles(&self, roles: BTreeMap<String, Vec<String>>) {
        self.with(|s| s.roles.extend(roles));
    }

    /// Replaces the Price List's products.
    pub fn publish_prices(&self, list: Vec<Value>) {
        self.with(|s| s.price_list = list);
    }

    pub fn calls(&self) -> Vec<ScCall> {
        self.with(|s| s.calls.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_names_key_region_and_service() {
        let header = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261202/eu-west-1/servicecatalog/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(credential_scope(header), Some(("ASIAEXAMPLE".into(), "eu-west-1".into(), "servicecatalog".into())));
        assert_eq!(credential_scope("Bearer x"), None);
    }

    #[test]
    fn granted_actions_match_exactly_or_by_trailing_wildcard() {
        let granted = vec!["servicecatalog:Search*".to_owned(), "ec2:DescribeInstances".to_owned()];
        assert!(allows(&granted, "servicecatalog:SearchProvisionedProducts"));
        assert!(!allows(&granted, "servicecatalog:DescribeProvisionedProduct"));
    }
}
