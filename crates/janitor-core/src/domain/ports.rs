//! The small interfaces the domain logic needs from the outside world. AWS adapters are
//! named `<Tech><Port>` (see `aws`), in-memory fakes `InMemory<Port>` (see `memory`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEvent;
pub use crate::cost::{Billable, PriceSource};
use crate::error::Result;
use crate::model::{Finding, FindingKey, FlagHistory, ResourceKey, Scope, Snooze, Tags};

pub use crate::kinds::ebs_snapshot::EbsSnapshot;
pub use crate::kinds::ebs_volume::EbsVolume;
pub use crate::kinds::ec2_instance::Ec2Instance;
pub use crate::kinds::elastic_ip::ElasticIp;
pub use crate::kinds::iam_user::IamCredential;
pub use crate::kinds::lambda_function::LambdaFunction;
pub use crate::kinds::provisioned_product::{ProductInScope, ProvisionedProduct};
pub use crate::kinds::rds_instance::RdsInstance;
pub use crate::kinds::rds_snapshot::RdsSnapshot;
pub use crate::kinds::s3_bucket::{AclGrant, BucketRead, PublicAccessBlock, S3Bucket};
pub use crate::kinds::security_group::{IngressPermission, SecurityGroup};

#[async_trait]
pub trait Inventory: Send + Sync {
    /// The account the janitor's own credentials belong to.
    async fn home_account(&self) -> Result<String>;
    async fn enabled_regions(&self, account: &str) -> Result<Vec<String>>;
    async fn ec2_instances(&self, scope: &Scope) -> Result<Vec<Ec2Instance>>;
    /// The instances of `ids` in the scope (just launched); by default the listing, kept to them.
    async fn ec2_instances_by_id(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Ec2Instance>> {
        let mut all = self.ec2_instances(scope).await?;
        all.retain(|i| ids.contains(&i.id));
        Ok(all)
    }
    async fn rds_instances(&self, scope: &Scope) -> Result<Vec<RdsInstance>>;
    async fn elastic_ips(&self, scope: &Scope) -> Result<Vec<ElasticIp>>;
    /// The volumes a rule can flag: attached to nothing, or not encrypted (the AWS adapter
    /// asks EC2 for just those; a fake may return more, which the rules pass over).
    async fn ebs_volumes(&self, scope: &Scope) -> Result<Vec<EbsVolume>>;
    async fn security_groups(&self, scope: &Scope) -> Result<Vec<SecurityGroup>>;
    /// The snapshots this account owns (not public or shared ones).
    async fn ebs_snapshots(&self, scope: &Scope) -> Result<Vec<EbsSnapshot>>;
    /// Manual DB snapshots (automated ones expire by themselves).
    async fn rds_snapshots(&self, scope: &Scope) -> Result<Vec<RdsSnapshot>>;
    async fn lambda_functions(&self, scope: &Scope) -> Result<Vec<LambdaFunction>>;
    async fn lambda_tags(&self, scope: &Scope, arn: &str) -> Result<Tags>;
    /// Every Service Catalog provisioned product of the account in the region, whoever
    /// launched it (not only the caller's own).
    async fn provisioned_products(&self, scope: &Scope) -> Result<Vec<ProvisionedProduct>>;
    /// The whole credential report of an account, in one report rather than a call per user.
    async fn iam_credentials(&self, account: &str) -> Result<Vec<IamCredential>>;
    async fn iam_user_tags(&self, account: &str, user: &str) -> Result<Tags>;
    async fn account_public_access_block(&self, account: &str) -> Result<Option<PublicAccessBlock>>;
    /// Every bucket of the account; one that cannot be read (its policy denies the janitor,
    /// it was deleted mid-scan) is an `Err` with its name, so it never blinds the rest.
    async fn s3_buckets(&self, account: &str) -> Result<Vec<BucketRead>>;
    /// One bucket of the account, read as [`Inventory::s3_buckets`] reads each (just made
    /// or changed); by default the listing, kept to it.
    async fn s3_bucket(&self, account: &str, name: &str) -> Result<Option<BucketRead>> {
        Ok(self.s3_buckets(account).await?.into_iter().find(|read| match read {
            Ok(bucket) => bucket.name == name,
            Err((unread, _)) => unread == name,
        }))
    }
    async fn s3_bucket_tags(&self, account: &str, bucket: &S3Bucket) -> Result<Tags>;
    /// Whether the resource still exists (a terminated instance does not).
    async fn exists(&self, key: &ResourceKey) -> Result<bool>;
}

/// An account of the organization, as AWS Organizations lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgAccount {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, …: only active accounts are scanned.
    pub state: String,
}

impl OrgAccount {
    pub fn active(&self) -> bool {
        self.state == "ACTIVE"
    }
}

/// Which accounts a run covers when it is not told.
#[async_trait]
pub trait AccountDirectory: Send + Sync {
    /// Every account of the organization the janitor's account manages (or is a delegated
    /// administrator of); `None` when that account is in no organization.
    async fn organization_accounts(&self) -> Result<Option<Vec<OrgAccount>>>;
}

/// What one remediation did. Acting is always preceded by a fresh read, so an action that
/// is no longer needed, or no longer safe, is reported rather than done.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    Done(serde_json::Value),
    AlreadyCompliant(String),
    Skipped(String),
    /// The fresh read found the protect tag (named here): someone protected it after recheck.
    Protected(String),
}

#[async_trait]
pub trait Remediator: Send + Sync {
    async fn apply(&self, finding: &Finding, now: DateTime<Utc>) -> Result<ActionOutcome>;
}

/// Operator alerts and run summaries (SNS, read by Amazon Q Developer in chat applications).
#[async_trait]
pub trait AlertSink: Send + Sync {
    async fn publish(&self, subject: &str, message: &serde_json::Value) -> Result<()>;
}

/// What an `AlertSink` publishes: an Amazon Q Developer (in chat applications) custom
/// notification, threaded by run. `related` is deduplicated (a resource may have several
/// findings) and capped at 20 keys to keep messages short.
pub fn alert_message(
    run: &crate::model::RunContext,
    id: String,
    title: String,
    description: String,
    event_type: &str,
    related: &[String],
) -> serde_json::Value {
    let scope = run.scope.as_ref().map(|s| s.to_string()).unwrap_or_default();
    serde_json::json!({
        "version": "1.0",
        "source": "custom",
        "id": id,
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": description,
            "keywords": ["cloud-janitor", run.mode.to_string()],
        },
        "metadata": {
            "threadId": run.id,
            "summary": format!("Cloud Janitor {} {}", run.mode, scope),
            "eventType": event_type,
            "relatedResources": related.iter().collect::<std::collections::BTreeSet<_>>().into_iter().take(20).collect::<Vec<_>>(),
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Maximum,
    Sum,
}

impl Statistic {
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Average => "Average",
            Statistic::Maximum => "Maximum",
            Statistic::Sum => "Sum",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Unique within one request; CloudWatch wants `[a-z][a-zA-Z0-9_]*`.
    pub id: String,
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimension: &'static str,
    pub dimension_value: String,
    pub stat: Statistic,
}

/// Whole UTC days `[start, end)`, one datapoint per day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub days: u32,
}

pub type MetricSeries = Vec<(DateTime<Utc>, f64)>;

#[async_trait]
pub trait MetricSource: Send + Sync {
    /// Daily series for every query, batched by the adapter; a query with no data maps to
    /// an empty series.
    async fn daily_series(
        &self,
        scope: &Scope,
        queries: &[MetricQuery],
        window: &MetricWindow,
    ) -> Result<HashMap<String, MetricSeries>>;
}

#[async_trait]
pub trait SnoozeStore: Send + Sync {
    /// Snoozes still live at `now`; expired ones are ignored even if still stored.
    async fn live_snoozes(&self, keys: &[ResourceKey], now: DateTime<Utc>) -> Result<HashMap<ResourceKey, Snooze>>;
    /// Stores the snooze unless one lasting at least as long is live: a shorter snooze never
    /// shortens a longer one. `false` when the longer one stays.
    async fn put_snooze(&self, snooze: &Snooze) -> Result<bool>;
    /// Records that the signed request `id` was seen, until `until`; `false` when it was seen
    /// already (a replay inside the signature window).
    async fn first_sight(&self, id: &str, until: DateTime<Utc>) -> Result<bool>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    Acquired,
    HeldBy { run_id: String, until: DateTime<Utc> },
}

#[async_trait]
pub trait LockStore: Send + Sync {
    /// Takes the lock unless another run holds a live one; re-entrant for the same run.
    async fn acquire(
        &self,
        key: &ResourceKey,
        run_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LockOutcome>;
    /// Releases the lock if this run holds it.
    async fn release(&self, key: &ResourceKey, run_id: &str) -> Result<()>;
    /// Reserves `count` actions of the run-wide cap for one scope. False when the cap
    /// would be exceeded; re-entrant for a scope that already reserved.
    async fn reserve_actions(
        &self,
        run_id: &str,
        scope: &str,
        count: usize,
        cap: usize,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Counts `member` (an event id) once in the counter `key` (forgotten after `until`) and
    /// returns how many distinct members it holds: a retried or redelivered event is not
    /// counted twice. A counter holds at most `cap`; a new member of a full one gets `cap + 1`.
    async fn count_once(&self, key: &str, member: &str, cap: u64, until: DateTime<Utc>) -> Result<u64>;
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Writes every event or fails; a partial write is retried, never dropped.
    async fn record(&self, events: &[AuditEvent]) -> Result<()>;
    /// Each finding's detection history (per resource and rule).
    async fn flag_history(&self, keys: &[FindingKey]) -> Result<HashMap<FindingKey, FlagHistory>>;
    async fn save_flag_history(&self, entries: &[(FindingKey, FlagHistory)]) -> Result<()>;
    async fn events_for_run(&self, run_id: &str) -> Result<Vec<AuditEvent>>;
    async fn events_for_resource(&self, key: &str) -> Result<Vec<AuditEvent>>;
    /// Seals the run's chains as they stand now in an anchor linked to the latest one; a log
    /// that keeps no chains (the in-memory fakes) has nothing to seal.
    async fn anchor_run(&self, _run_id: &str, _at: DateTime<Utc>) -> Result<Option<crate::chain::Anchor>> {
        Ok(None)
    }
}

/// Where a run keeps what is too big for a Step Functions payload: each scope's findings
/// and candidates after each step, the plan and the summary, as JSON documents by path
/// (`runs/<run>/…`, see [`crate::runstore`]).
#[async_trait]
pub trait RunStore: Send + Sync {
    async fn put(&self, path: &str, body: Vec<u8>) -> Result<()>;
    /// `None` when nothing was stored at `path`.
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>>;
}

/// Where each run's report page is kept (`runs/<run>.html` and `latest.html`), and a link
/// to it that people without AWS credentials can open.
#[async_trait]
pub trait ReportStore: Send + Sync {
    async fn publish(&self, run_id: &str, html: Vec<u8>) -> Result<PublishedReport>;
}

/// A run id as part of an S3 key: run ids are execution names (letters, digits, `-` and
/// `_`), and anything else is replaced so that a key never escapes its prefix.
fn key_safe(run_id: &str) -> String {
    let safe: String =
        run_id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    safe.trim_start_matches('.').to_owned()
}

/// The run's page's key.
pub fn report_key(run_id: &str) -> String {
    format!("runs/{}.html", key_safe(run_id))
}

/// Copies of the audit table's anchors kept where no one can change them for a while (an S3
/// bucket under Object Lock), so that the anchors themselves can be checked.
#[async_trait]
pub trait AnchorCopies: Send + Sync {
    async fn keep(&self, anchor: &crate::chain::Anchor) -> Result<()>;
    /// Every copy kept, oldest first.
    async fn kept(&self) -> Result<Vec<crate::chain::Anchor>>;
}

/// Where a run's anchor is copied: in the order anchors were made.
pub fn anchor_copy_key(anchor: &crate::chain::Anchor) -> String {
    format!("anchors/{}-{}.json", anchor.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"), key_safe(&anchor.run_id))
}

/// How long a report's link opens the page: SigV4's limit, seven days. A link signed with a
/// Lambda function's temporary credentials stops working when they expire, whichever comes
/// first; `latest.html` in the reports bucket is the lasting way in.
pub const REPORT_LINK_DAYS: u64 = 7;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedReport {
    /// Where the run's page is (`s3://bucket/runs/<run>.html`): safe to log and to keep in
    /// the execution's output.
    pub location: String,
    /// A link that opens it for a while (an S3 pre-signed URL): said only in the alert.
    #[serde(skip)]
    pub link: String,
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
