//! SDK clients per account and region: the janitor's own credentials for its home account,
//! an assumed role for every other account; every call counted for the run statistics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
#[cfg(any(feature = "s3control", feature = "lambda"))]
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::sdk_config::SharedCredentialsProvider;
use tokio::sync::OnceCell;

use crate::error::{JanitorError, Result};
use crate::model::GLOBAL_REGION;

/// What keeps a person's command from reaching AWS at all, each said in one line.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no AWS credentials found: set AWS_PROFILE (or --profile), run `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials,
    #[error("your AWS SSO session has expired: run `{login}`")]
    Expired { login: String },
    #[error("AWS credentials could not be loaded: {0}")]
    Unusable(String),
    #[error("no AWS region: set AWS_REGION, give --region, or set `region` in your AWS profile")]
    NoRegion,
}

/// Role assumed in member accounts unless `JANITOR_ROLE_NAME` says otherwise.
pub const DEFAULT_MEMBER_ROLE: &str = "CloudJanitorMemberRole";
const FALLBACK_REGION: &str = "us-east-1";
/// Where the Price List Query API answers.
#[cfg(feature = "pricing")]
const PRICE_LIST_REGION: &str = "us-east-1";

/// AWS API calls made, per service and operation (every attempt, retries included).
#[derive(Debug, Default)]
pub struct ApiStats {
    calls: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    logged: Mutex<std::collections::HashSet<String>>,
}

impl ApiStats {
    fn count(&self, service: &str, operation: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(service.to_owned()).or_default().entry(operation.to_owned()).or_default() += 1;
    }

    /// Appends `line` to the call log once per process, when `JANITOR_CALL_LOG` is set.
    fn log_once(&self, line: String) {
        let Some(path) = std::env::var_os(CALL_LOG_ENV) else { return };
        if self.logged.lock().unwrap_or_else(|p| p.into_inner()).insert(line.clone()) {
            log_call(&path, &line);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// When set, every distinct AWS call a process makes is appended to this file, one
/// `Service:Operation<TAB>target` line each, and `…<TAB>target<TAB>denied` when AWS answered
/// 403: a test holds the IAM policy to what the code calls, on which resources. `target` is
/// what IAM scopes the call to (`table/NAME`, `table/NAME/index/IDX`, a topic, secret or role
/// ARN), or `*` for calls IAM does not scope here.
pub const CALL_LOG_ENV: &str = "JANITOR_CALL_LOG";

fn log_call(path: &std::ffi::OsStr, line: &str) {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot append to {CALL_LOG_ENV}");
    }
}

/// The resources one request targets, as IAM scopes it; `*` when it is not scoped by name.
pub fn call_targets(service: &str, uri: &str, body: &[u8]) -> Vec<String> {
    let form = |field: &str| {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        pairs.into_iter().find(|(k, _)| k == field).map(|(_, v)| v)
    };
    let targets = match service {
        "DynamoDB" => {
            let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            match (json["TableName"].as_str(), json["IndexName"].as_str(), json["RequestItems"].as_object()) {
                (Some(table), Some(index), _) => vec![format!("table/{table}/index/{index}")],
                (Some(table), None, _) => vec![format!("table/{table}")],
                (None, _, Some(items)) => items.keys().map(|t| format!("table/{t}")).collect(),
                // TransactWriteItems: each action names its table.
                _ => {
                    let mut tables: Vec<String> = json["TransactItems"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|action| action.as_object()?.values().next()?["TableName"].as_str())
                        .map(|t| format!("table/{t}"))
                        .collect();
                    tables.sort();
                    tables.dedup();
                    tables
                }
            }
        }
        "Secrets Manager" => {
            let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            json["SecretId"].as_str().map(str::to_owned).into_iter().collect()
        }
        "SNS" => form("TopicArn").into_iter().collect(),
        "KMS" => {
            let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            json["KeyId"].as_str().map(str::to_owned).into_iter().collect()
        }
        "STS" => form("RoleArn").into_iter().collect(),
        // Path-style (the emulator): `/bucket/key`; a bucket-level call names the bucket.
        "S3" => {
            let path = uri.split_once("://").map_or(uri, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
            let path = path.split(['?', '#']).next().unwrap_or_default();
            match path.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    vec![format!("arn:aws:s3:::{bucket}/{key}")]
                }
                _ if !path.trim_end_matches('/').is_empty() => {
                    vec![format!("arn:aws:s3:::{}", path.trim_end_matches('/'))]
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    };
    if targets.is_empty() { vec!["*".to_owned()] } else { targets }
}

/// The targets of the request in flight, from before it is sent until its answer.
#[derive(Debug, Clone)]
struct CallTargets(Vec<String>);

impl Storable for CallTargets {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug)]
struct CountCalls(Arc<ApiStats>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>().cloned() else { return Ok(()) };
        self.0.count(meta.service(), meta.name());
        if std::env::var_os(CALL_LOG_ENV).is_some() {
            let request = context.request();
            let targets = call_targets(meta.service(), request.uri(), request.body().bytes().unwrap_or_default());
            for target in &targets {
                self.0.log_once(format!("{}:{}\t{target}", meta.service(), meta.name()));
            }
            cfg.interceptor_state().store_put(CallTargets(targets));
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if context.response().status().as_u16() != 403 {
            return Ok(());
        }
        if let (Some(meta), Some(targets)) = (cfg.load::<Metadata>(), cfg.load::<CallTargets>()) {
            for target in &targets.0 {
                self.0.log_once(format!("{}:{}\t{target}\tdenied", meta.service(), meta.name()));
            }
        }
        Ok(())
    }
}

/// S3 Control puts the account id in front of the host (`{account}.s3-control...`). An
/// emulator on a loopback address has no such names, so the prefix is removed again.
#[derive(Debug)]
#[cfg(feature = "s3control")]
struct StripAccountHostPrefix;

#[cfg(feature = "s3control")]
impl Intercept for StripAccountHostPrefix {
    fn name(&self) -> &'static str {
        "StripAccountHostPrefix"
    }

    // Before signing: the emulator checks the signature against the host it receives.
    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let request = context.request_mut();
        let uri = request.uri().to_owned();
        if let Some((scheme, rest)) = uri.split_once("://")
            && let Some((label, host)) = rest.split_once('.')
            && !label.is_empty()
            && label.chars().all(|c| c.is_ascii_digit())
        {
            request.set_uri(format!("{scheme}://{host}"))?;
        }
        Ok(())
    }
}

/// When moto checks a REST-JSON request's signature (Lambda's), it hashes a body of its own
/// making for a GET unless the request signs its payload hash in `x-amz-content-sha256`, as
/// S3 requests do. Emulator only: AWS never sees the header.
#[derive(Debug)]
#[cfg(feature = "lambda")]
struct SignPayloadHash;

#[cfg(feature = "lambda")]
impl Intercept for SignPayloadHash {
    fn name(&self) -> &'static str {
        "SignPayloadHash"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        use sha2::Digest;
        let request = context.request_mut();
        let hash = hex::encode(sha2::Sha256::digest(request.body().bytes().unwrap_or_default()));
        request.headers_mut().insert("x-amz-content-sha256", hash);
        Ok(())
    }
}

#[derive(Clone)]
pub struct AwsClients {
    inner: Arc<Inner>,
}

struct Inner {
    base: SdkConfig,
    member_role: String,
    external_id: Option<String>,
    home_account: OnceCell<String>,
    assumed: Mutex<HashMap<String, SharedCredentialsProvider>>,
    stats: Arc<ApiStats>,
    /// Service Catalog's own endpoint when an emulator serves it apart (the SDK also takes
    /// `AWS_ENDPOINT_URL_SERVICE_CATALOG`).
    service_catalog_endpoint: Option<String>,
    /// The Price List's, likewise (`AWS_ENDPOINT_URL_PRICING`).
    pricing_endpoint: Option<String>,
}

impl AwsClients {
    /// Default credential chain (or a named profile), standard retries with backoff for
    /// throttling, and generous timeouts for large accounts.
    pub async fn load(profile: Option<&str>, region: Option<&str>) -> AwsClients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(6))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(std::time::Duration::from_secs(120))
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .build(),
            );
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_owned()));
        }
        AwsClients::from_config(loader.load().await)
    }

    /// As [`AwsClients::load`], for a person at a terminal: credentials and a region must be
    /// there before the first call, and a missing or expired one is said in one line
    /// instead of an SDK error chain (or a "transient failure") many calls later.
    pub async fn load_checked(
        profile: Option<&str>,
        region: Option<&str>,
    ) -> std::result::Result<AwsClients, SetupError> {
        let clients = AwsClients::load(profile, region).await;
        let base = &clients.inner.base;
        let Some(provider) = base.credentials_provider() else { return Err(SetupError::NoCredentials) };
        if let Err(e) = aws_credential_types::provider::ProvideCredentials::provide_credentials(&provider).await {
            let chain = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
            return Err(match e {
                CredentialsError::CredentialsNotLoaded(_) => SetupError::NoCredentials,
                // The chain's last resort: off EC2 it times out or is refused by a proxy,
                // which only means nothing earlier in the chain had credentials either.
                _ if chain.contains("IMDS") => SetupError::NoCredentials,
                _ if chain.contains("expired") => SetupError::Expired {
                    login: match profile {
                        Some(profile) => format!("aws sso login --profile {profile}"),
                        None => "aws sso login".to_owned(),
                    },
                },
                _ => SetupError::Unusable(chain),
            });
        }
        if base.region().is_none() {
            return Err(SetupError::NoRegion);
        }
        Ok(clients)
    }

    pub fn from_config(base: SdkConfig) -> AwsClients {
        AwsClients {
            inner: Arc::new(Inner {
                base,
                member_role: std::env::var("JANITOR_ROLE_NAME").unwrap_or_else(|_| DEFAULT_MEMBER_ROLE.to_owned()),
                external_id: std::env::var("JANITOR_EXTERNAL_ID").ok().filter(|s| !s.is_empty()),
                home_account: OnceCell::new(),
                assumed: Mutex::new(HashMap::new()),
                stats: Arc::new(ApiStats::default()),
                service_catalog_endpoint: None,
                pricing_endpoint: None,
            }),
        }
    }

    /// Sends Service Catalog calls to `endpoint` (an emulator of it, beside the one that
    /// serves everything else).
    pub fn with_service_catalog_endpoint(self, endpoint: impl Into<String>) -> AwsClients {
        let endpoint = Some(endpoint.into());
        self.reconfigured(|inner| inner.service_catalog_endpoint = endpoint)
    }

    /// Sends Price List calls to `endpoint` (an emulator of it).
    pub fn with_pricing_endpoint(self, endpoint: impl Into<String>) -> AwsClients {
        let endpoint = Some(endpoint.into());
        self.reconfigured(|inner| inner.pricing_endpoint = endpoint)
    }

    fn reconfigured(self, change: impl FnOnce(&mut Inner)) -> AwsClients {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            base: shared.base.clone(),
            member_role: shared.member_role.clone(),
            external_id: shared.external_id.clone(),
            home_account: OnceCell::new(),
            assumed: Mutex::new(HashMap::new()),
            stats: shared.stats.clone(),
            service_catalog_endpoint: shared.service_catalog_endpoint.clone(),
            pricing_endpoint: shared.pricing_endpoint.clone(),
        });
        change(&mut inner);
        AwsClients { inner: Arc::new(inner) }
    }

    pub fn stats(&self) -> Arc<ApiStats> {
        self.inner.stats.clone()
    }

    /// True when an endpoint override (an emulator) is in use.
    pub fn is_emulated(&self) -> bool {
        self.inner.base.endpoint_url().is_some()
    }

    pub fn home_region(&self) -> String {
        self.inner.base.region().map(|r| r.to_string()).unwrap_or_else(|| FALLBACK_REGION.to_owned())
    }

    pub async fn home_account(&self) -> Result<String> {
        self.inner
            .home_account
            .get_or_try_init(|| async {
                let sts = aws_sdk_sts::Client::from_conf(
                    aws_sdk_sts::config::Builder::from(&self.inner.base).interceptor(CountCalls(self.stats())).build(),
                );
                let me = sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| JanitorError::from_sdk("sts", "GetCallerIdentity", e))?;
                me.account.ok_or_else(|| JanitorError::Aws {
                    service: "sts",
                    operation: "GetCallerIdentity",
                    message: "no account in the answer".into(),
                })
            })
            .await
            .cloned()
    }

    async fn credentials_for(&self, account: &str) -> Result<Option<SharedCredentialsProvider>> {
        if account == self.home_account().await? {
            return Ok(None);
        }
        if let Some(provider) = self.inner.assumed.lock().unwrap_or_else(|p| p.into_inner()).get(account) {
            return Ok(Some(provider.clone()));
        }
        let role_arn = format!("arn:aws:iam::{account}:role/{}", self.inner.member_role);
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("cloud-janitor")
            .configure(&self.inner.base);
        if let Some(external_id) = &self.inner.external_id {
            builder = builder.external_id(external_id);
        }
        let provider = SharedCredentialsProvider::new(builder.build().await);
        self.inner.assumed.lock().unwrap_or_else(|p| p.into_inner()).insert(account.to_owned(), provider.clone());
        Ok(Some(provider))
    }

    /// The SDK config for one account and region (`global` means the home region).
    pub async fn config_for(&self, account: &str, region: &str) -> Result<SdkConfig> {
        let region = if region == GLOBAL_REGION { self.home_region() } else { region.to_owned() };
        let mut builder = self.inner.base.to_builder().region(Region::new(region));
        if let Some(credentials) = self.credentials_for(account).await? {
            builder = builder.credentials_provider(credentials);
        }
        Ok(builder.build())
    }

    #[cfg(feature = "ec2")]
    pub async fn ec2(&self, account: &str, region: &str) -> Result<aws_sdk_ec2::Client> {
        let config = self.config_for(account, region).await?;
        Ok(aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&config).interceptor(CountCalls(self.stats())).build(),
        ))
    }

    #[cfg(feature = "lambda")]
    pub async fn lambda(&self, account: &str, region: &str) -> Result<aws_sdk_lambda::Client> {
        let config = self.config_for(account, region).await?;
        let mut builder = aws_sdk_lambda::config::Builder::from(&config).interceptor(CountCalls(self.stats()));
        if self.is_emulated() {
            builder = builder.interceptor(SignPayloadHash);
        }
        Ok(aws_sdk_lambda::Client::from_conf(builder.build()))
    }

    /// AWS Organizations, in the janitor's own account (its endpoint is global).
    #[cfg(feature = "organizations")]
    pub async fn organizations(&self) -> Result<aws_sdk_organizations::Client> {
        let account = self.home_account().await?;
        let config = self.config_for(&account, &self.home_region()).await?;
        Ok(aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&config).interceptor(CountCalls(self.stats())).build(),
        ))
    }

    #[cfg(feature = "servicecatalog")]
    pub async fn service_catalog(&self, account: &str, region: &str) -> Result<aws_sdk_servicecatalog::Client> {
        let config = self.config_for(account, region).await?;
        let mut builder = aws_sdk_servicecatalog::config::Builder::from(&config).interceptor(CountCalls(self.stats()));
        if let Some(endpoint) = &self.inner.service_catalog_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(aws_sdk_servicecatalog::Client::from_conf(builder.build()))
    }

    /// The Price List Query API, with the janitor's own credentials: it answers in us-east-1
    /// (and ap-south-1) for every region, which each query names instead.
    #[cfg(feature = "pricing")]
    pub async fn pricing(&self) -> Result<aws_sdk_pricing::Client> {
        let account = self.home_account().await?;
        let config = self.config_for(&account, PRICE_LIST_REGION).await?;
        let mut builder = aws_sdk_pricing::config::Builder::from(&config).interceptor(CountCalls(self.stats()));
        if let Some(endpoint) = &self.inner.pricing_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(aws_sdk_pricing::Client::from_conf(builder.build()))
    }

    #[cfg(feature = "rds")]
    pub async fn rds(&self, account: &str, region: &str) -> Result<aws_sdk_rds::Client> {
        let config = self.config_for(account, region).await?;
        Ok(aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&config).interceptor(CountCalls(self.stats())).build(),
        ))
    }

    #[cfg(feature = "iam")]
    pub async fn iam(&self, account: &str) -> Result<aws_sdk_iam::Client> {
        let config = self.config_for(account, GLOBAL_REGION).await?;
        Ok(aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&config).interceptor(CountCalls(self.stats())).build(),
        ))
    }

    #[cfg(feature = "cloudwatch")]
    pub async fn cloudwatch(&self, account: &str, region: &str) -> Result<aws_sdk_cloudwatch::Client> {
        let config = self.config_for(account, region).await?;
        Ok(aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&config).interceptor(CountCalls(self.stats())).build(),
        ))
    }

    #[cfg(feature = "s3")]
    pub async fn s3(&self, account: &str, region: &str) -> Result<aws_sdk_s3::Client> {
        let config = self.config_for(account, region).await?;
        // Emulators serve buckets by path; real S3 wants virtual-hosted names.
        let builder = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(self.is_emulated())
            .interceptor(CountCalls(self.stats()));
        Ok(aws_sdk_s3::Client::from_conf(builder.build()))
    }

    #[cfg(feature = "s3control")]
    pub async fn s3control(&self, account: &str) -> Result<aws_sdk_s3control::Client> {
        let config = self.config_for(account, GLOBAL_REGION).await?;
        let mut builder = aws_sdk_s3control::config::Builder::from(&config).interceptor(CountCalls(self.stats()));
        if self.is_emulated() {
            builder = builder.interceptor(StripAccountHostPrefix);
        }
        Ok(aws_sdk_s3control::Client::from_conf(builder.build()))
    }

    #[cfg(feature = "sns")]
    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&self.inner.base).interceptor(CountCalls(self.stats())).build(),
        )
    }

    #[cfg(feature = "links")]
    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&self.inner.base).interceptor(CountCalls(self.stats())).build(),
        )
    }

    #[cfg(feature = "secretsmanager")]
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&self.inner.base)
                .interceptor(CountCalls(self.stats()))
                .build(),
        )
    }

    /// The janitor's own tables live in its home account and region.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.inner.base).interceptor(CountCalls(self.stats())).build(),
        )
    }
}
