//! In-memory fakes of every port, for fast domain tests. They follow the same contracts as
//! the AWS adapters, which are tested against the emulator separately.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEvent;
use crate::error::{JanitorError, Result};
use crate::model::{FindingKey, FlagHistory, ResourceKey, Scope, Snooze, Tags};
use crate::ports::*;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned fake only means another test thread panicked; keep the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct InMemoryInventory {
    pub home_account: String,
    pub regions: HashMap<String, Vec<String>>,
    pub ec2: HashMap<Scope, Vec<Ec2Instance>>,
    pub rds: HashMap<Scope, Vec<RdsInstance>>,
    pub eips: HashMap<Scope, Vec<ElasticIp>>,
    pub ebs: HashMap<Scope, Vec<EbsVolume>>,
    pub security_groups: HashMap<Scope, Vec<SecurityGroup>>,
    pub ebs_snapshots: HashMap<Scope, Vec<EbsSnapshot>>,
    pub rds_snapshots: HashMap<Scope, Vec<RdsSnapshot>>,
    pub lambdas: HashMap<Scope, Vec<LambdaFunction>>,
    /// Lambda tags by function ARN.
    pub lambda_tags: HashMap<String, Tags>,
    pub provisioned_products: HashMap<Scope, Vec<ProvisionedProduct>>,
    pub iam: HashMap<String, Vec<IamCredential>>,
    pub iam_tags: HashMap<(String, String), Tags>,
    pub account_block: HashMap<String, PublicAccessBlock>,
    pub buckets: HashMap<String, Vec<S3Bucket>>,
    pub bucket_tags: HashMap<String, Tags>,
    /// Buckets (by name) whose policy or ACL read answers AccessDenied.
    pub unreadable_buckets: Vec<String>,
    /// Scopes whose every call answers AccessDenied.
    pub denied: HashSet<Scope>,
    /// Resources that no longer exist.
    pub gone: HashSet<ResourceKey>,
}

impl InMemoryInventory {
    fn check(&self, scope: &Scope, operation: &'static str) -> Result<()> {
        if self.denied.contains(scope) {
            return Err(JanitorError::AccessDenied {
                service: "fake",
                operation,
                message: format!("denied in {scope}"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Inventory for InMemoryInventory {
    async fn home_account(&self) -> Result<String> {
        Ok(self.home_account.clone())
    }
    async fn enabled_regions(&self, account: &str) -> Result<Vec<String>> {
        Ok(self.regions.get(account).cloned().unwrap_or_default())
    }
    async fn ec2_instances(&self, scope: &Scope) -> Result<Vec<Ec2Instance>> {
        self.check(scope, "DescribeInstances")?;
        Ok(self.ec2.get(scope).cloned().unwrap_or_default())
    }
    async fn rds_instances(&self, scope: &Scope) -> Result<Vec<RdsInstance>> {
        self.check(scope, "DescribeDBInstances")?;
        Ok(self.rds.get(scope).cloned().unwrap_or_default())
    }
    async fn elastic_ips(&self, scope: &Scope) -> Result<Vec<ElasticIp>> {
        self.check(scope, "DescribeAddresses")?;
        Ok(self.eips.get(scope).cloned().unwrap_or_default())
    }
    async fn ebs_volumes(&self, scope: &Scope) -> Result<Vec<EbsVolume>> {
        self.check(scope, "DescribeVolumes")?;
        Ok(self.ebs.get(scope).cloned().unwrap_or_default())
    }
    async fn security_groups(&self, scope: &Scope) -> Result<Vec<SecurityGroup>> {
        self.check(scope, "DescribeSecurityGroups")?;
        Ok(self.security_groups.get(scope).cloned().unwrap_or_default())
    }
    async fn ebs_snapshots(&self, scope: &Scope) -> Result<Vec<EbsSnapshot>> {
        self.check(scope, "DescribeSnapshots")?;
        Ok(self.ebs_snapshots.get(scope).cloned().unwrap_or_default())
    }
    async fn rds_snapshots(&self, scope: &Scope) -> Result<Vec<RdsSnapshot>> {
        self.check(scope, "DescribeDBSnapshots")?;
        Ok(self.rds_snapshots.get(scope).cloned().unwrap_or_default())
    }
    async fn lambda_functions(&self, scope: &Scope) -> Result<Vec<LambdaFunction>> {
        self.check(scope, "ListFunctions")?;
        Ok(self.lambdas.get(scope).cloned().unwrap_or_default())
    }
    async fn provisioned_products(&self, scope: &Scope) -> Result<Vec<ProvisionedProduct>> {
        self.check(scope, "SearchProvisionedProducts")?;
        Ok(self.provisioned_products.get(scope).cloned().unwrap_or_default())
    }
    async fn lambda_tags(&self, scope: &Scope, arn: &str) -> Result<Tags> {
        self.check(scope, "ListTags")?;
        Ok(self.lambda_tags.get(arn).cloned().unwrap_or_default())
    }
    async fn iam_credentials(&self, account: &str) -> Result<Vec<IamCredential>> {
        Ok(self.iam.get(account).cloned().unwrap_or_default())
    }
    async fn iam_user_tags(&self, account: &str, user: &str) -> Result<Tags> {
        Ok(self.iam_tags.get(&(account.to_owned(), user.to_owned())).cloned().unwrap_or_default())
    }
    async fn account_public_access_block(&self, account: &str) -> Result<Option<PublicAccessBlock>> {
        Ok(self.account_block.get(account).copied())
    }
    async fn s3_buckets(&self, account: &str) -> Result<Vec<BucketRead>> {
        let buckets = self.buckets.get(account).cloned().unwrap_or_default();
        Ok(buckets
            .into_iter()
            .map(|b| match self.unreadable_buckets.iter().find(|name| **name == b.name) {
                Some(name) => Err((
                    name.clone(),
                    JanitorError::AccessDenied {
                        service: "s3",
                        operation: "GetBucketPolicy",
                        message: format!("AccessDenied on bucket {name}"),
                    },
                )),
                None => Ok(b),
            })
            .collect())
    }
    async fn s3_bucket_tags(&self, _account: &str, bucket: &S3Bucket) -> Result<Tags> {
        Ok(self.bucket_tags.get(&bucket.name).cloned().unwrap_or_default())
    }
    async fn exists(&self, key: &ResourceKey) -> Result<bool> {
        Ok(!self.gone.contains(key))
    }
}

/// The organization as a test sets it: `None` is an account in no organization; `denied`
/// answers as a member account that is no delegated administrator would.
#[derive(Default)]
pub struct InMemoryDirectory {
    pub accounts: Option<Vec<OrgAccount>>,
    pub denied: bool,
}

#[async_trait]
impl AccountDirectory for InMemoryDirectory {
    async fn organization_accounts(&self) -> Result<Option<Vec<OrgAccount>>> {
        if self.denied {
            return Err(JanitorError::AccessDenied {
                service: "organizations",
                operation: "ListAccounts",
                message: "not the management account or a delegated administrator".into(),
            });
        }
        Ok(self.accounts.clone())
    }
}

/// Records what it was asked to do and answers `Done`.
#[derive(Default)]
pub struct InMemoryRemediator {
    applied: Mutex<Vec<(ResourceKey, crate::model::Action)>>,
}

impl InMemoryRemediator {
    pub fn applied(&self) -> Vec<(ResourceKey, crate::model::Action)> {
        lock(&self.applied).clone()
    }
}

#[async_trait]
impl Remediator for InMemoryRemediator {
    async fn apply(&self, finding: &crate::model::Finding, _now: DateTime<Utc>) -> Result<ActionOutcome> {
        lock(&self.applied).push((finding.key.clone(), finding.action));
        Ok(ActionOutcome::Done(serde_json::Value::Null))
    }
}

#[derive(Default)]
pub struct InMemoryAlerts {
    published: Mutex<Vec<(String, serde_json::Value)>>,
    /// While set, every publish fails as a throttled SNS would.
    failing: std::sync::atomic::AtomicBool,
}

impl InMemoryAlerts {
    pub fn published(&self) -> Vec<(String, serde_json::Value)> {
        lock(&self.published).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl AlertSink for InMemoryAlerts {
    async fn publish(&self, subject: &str, message: &serde_json::Value) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(JanitorError::Transient {
                service: "sns",
                operation: "Publish",
                message: "Throttling: Rate exceeded".into(),
            });
        }
        lock(&self.published).push((subject.to_owned(), message.clone()));
        Ok(())
    }
}

/// Series keyed by the metric's dimension value (instance or DB identifier).
#[derive(Default)]
pub struct InMemoryMetrics {
    pub series: HashMap<String, MetricSeries>,
    pub calls: AtomicUsize,
}

#[async_trait]
impl MetricSource for InMemoryMetrics {
    async fn daily_series(
        &self,
        _scope: &Scope,
        queries: &[MetricQuery],
        window: &MetricWindow,
    ) -> Result<HashMap<String, MetricSeries>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(queries
            .iter()
            .map(|q| {
                let points = self
                    .series
                    .get(&q.dimension_value)
                    .map(|s| s.iter().filter(|(t, _)| *t >= window.start && *t < window.end).copied().collect())
                    .unwrap_or_default();
                (q.id.clone(), points)
            })
            .collect())
    }
}

#[derive(Default)]
pub struct InMemorySnoozeStore {
    snoozes: Mutex<HashMap<ResourceKey, Snooze>>,
    seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

#[async_trait]
impl SnoozeStore for InMemorySnoozeStore {
    async fn live_snoozes(&self, keys: &[ResourceKey], now: DateTime<Utc>) -> Result<HashMap<ResourceKey, Snooze>> {
        let stored = lock(&self.snoozes);
        Ok(keys
            .iter()
            .filter_map(|k| stored.get(k).filter(|s| s.until > now).map(|s| (k.clone(), s.clone())))
            .collect())
    }
    async fn put_snooze(&self, snooze: &Snooze) -> Result<bool> {
        let mut stored = lock(&self.snoozes);
        if stored.get(&snooze.key).is_some_and(|live| live.until.timestamp() >= snooze.until.timestamp()) {
            return Ok(false);
        }
        stored.insert(snooze.key.clone(), snooze.clone());
        Ok(true)
    }
    async fn first_sight(&self, id: &str, until: DateTime<Utc>) -> Result<bool> {
        Ok(lock(&self.seen).insert(id.to_owned(), until).is_none())
    }
}

#[derive(Default)]
pub struct InMemoryLockStore {
    locks: Mutex<HashMap<ResourceKey, (String, DateTime<Utc>)>>,
    /// Per run: scopes that reserved actions, and the total reserved.
    reservations: Mutex<HashMap<String, (HashSet<String>, usize)>>,
    counters: Mutex<HashMap<String, HashSet<String>>>,
}

impl InMemoryLockStore {
    pub fn holder(&self, key: &ResourceKey) -> Option<String> {
        lock(&self.locks).get(key).map(|(run, _)| run.clone())
    }
}

#[async_trait]
impl LockStore for InMemoryLockStore {
    async fn count_once(&self, key: &str, member: &str, cap: u64, _until: DateTime<Utc>) -> Result<u64> {
        let mut counters = lock(&self.counters);
        let members = counters.entry(key.to_owned()).or_default();
        if !members.contains(member) && members.len() as u64 >= cap {
            return Ok(cap + 1);
        }
        members.insert(member.to_owned());
        Ok(members.len() as u64)
    }

    async fn acquire(
        &self,
        key: &ResourceKey,
        run_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LockOutcome> {
        let mut locks = lock(&self.locks);
        match locks.get(key) {
            Some((holder, held_until)) if holder != run_id && *held_until > now => {
                Ok(LockOutcome::HeldBy { run_id: holder.clone(), until: *held_until })
            }
            _ => {
                locks.insert(key.clone(), (run_id.to_owned(), until));
                Ok(LockOutcome::Acquired)
            }
        }
    }
    async fn release(&self, key: &ResourceKey, run_id: &str) -> Result<()> {
        let mut locks = lock(&self.locks);
        if locks.get(key).is_some_and(|(holder, _)| holder == run_id) {
            locks.remove(key);
        }
        Ok(())
    }
    async fn reserve_actions(
        &self,
        run_id: &str,
        scope: &str,
        count: usize,
        cap: usize,
        _until: DateTime<Utc>,
    ) -> Result<bool> {
        let mut reservations = lock(&self.reservations);
        let (scopes, total) = reservations.entry(run_id.to_owned()).or_default();
        if scopes.contains(scope) {
            return Ok(true);
        }
        if *total + count > cap {
            return Ok(false);
        }
        scopes.insert(scope.to_owned());
        *total += count;
        Ok(true)
    }
}

#[derive(Default)]
pub struct InMemoryAuditLog {
    events: Mutex<Vec<AuditEvent>>,
    history: Mutex<HashMap<FindingKey, FlagHistory>>,
}

impl InMemoryAuditLog {
    pub fn events(&self) -> Vec<AuditEvent> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        lock(&self.events).extend_from_slice(events);
        Ok(())
    }
    async fn flag_history(&self, keys: &[FindingKey]) -> Result<HashMap<FindingKey, FlagHistory>> {
        let history = lock(&self.history);
        Ok(keys.iter().filter_map(|k| history.get(k).map(|h| (k.clone(), h.clone()))).collect())
    }
    async fn save_flag_history(&self, entries: &[(FindingKey, FlagHistory)]) -> Result<()> {
        lock(&self.history).extend(entries.iter().cloned());
        Ok(())
    }
    async fn events_for_run(&self, run_id: &str) -> Result<Vec<AuditEvent>> {
        Ok(lock(&self.events).iter().filter(|e| e.run_id == run_id).cloned().collect())
    }
    async fn events_for_resource(&self, key: &str) -> Result<Vec<AuditEvent>> {
        Ok(lock(&self.events).iter().filter(|e| e.resource == key).cloned().collect())
    }
}

/// Reads history from a real audit log but writes nowhere: `janitor scan` never writes to AWS.
pub struct ReadOnlyAuditLog<A> {
    pub inner: Option<A>,
    pub recorded: InMemoryAuditLog,
}

#[async_trait]
impl<A: AuditLog> AuditLog for ReadOnlyAuditLog<A> {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        self.recorded.record(events).await
    }
    async fn flag_history(&self, keys: &[FindingKey]) -> Result<HashMap<FindingKey, FlagHistory>> {
        match &self.inner {
            Some(inner) => inner.flag_history(keys).await,
            None => Ok(HashMap::new()),
        }
    }
    async fn save_flag_history(&self, _entries: &[(FindingKey, FlagHistory)]) -> Result<()> {
        Ok(())
    }
    async fn events_for_run(&self, run_id: &str) -> Result<Vec<AuditEvent>> {
        self.recorded.events_for_run(run_id).await
    }
    async fn events_for_resource(&self, key: &str) -> Result<Vec<AuditEvent>> {
        self.recorded.events_for_resource(key).await
    }
}

pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

#[derive(Default)]
pub struct InMemoryRunStore {
    documents: Mutex<HashMap<String, Vec<u8>>>,
}

impl InMemoryRunStore {
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = lock(&self.documents).keys().cloned().collect();
        paths.sort();
        paths
    }
}

/// Report pages kept in memory, with links into nowhere: the domain tests.
#[derive(Default)]
pub struct InMemoryReportStore {
    pages: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl InMemoryReportStore {
    /// The page stored under `key` (`runs/<run>.html`, `latest.html`).
    pub fn page(&self, key: &str) -> Option<String> {
        lock(&self.pages).get(key).map(|p| String::from_utf8_lossy(p).into_owned())
    }
}

#[async_trait]
impl ReportStore for InMemoryReportStore {
    async fn publish(&self, run_id: &str, html: Vec<u8>) -> Result<PublishedReport> {
        let key = report_key(run_id);
        let mut pages = lock(&self.pages);
        pages.insert(key.clone(), html.clone());
        pages.insert("latest.html".into(), html);
        Ok(PublishedReport { location: format!("memory://{key}"), link: format!("https://reports.invalid/{key}") })
    }
}

/// Anchor copies kept in memory: the domain tests.
#[derive(Default)]
pub struct InMemoryAnchorCopies {
    copies: Mutex<Vec<crate::chain::Anchor>>,
}

#[async_trait]
impl crate::ports::AnchorCopies for InMemoryAnchorCopies {
    async fn keep(&self, anchor: &crate::chain::Anchor) -> Result<()> {
        lock(&self.copies).push(anchor.clone());
        Ok(())
    }

    async fn kept(&self) -> Result<Vec<crate::chain::Anchor>> {
        Ok(lock(&self.copies).clone())
    }
}

/// Reads the operator's configuration (`config/…`, the launcher allow-list) from a real run
/// bucket, and keeps the run's own documents in memory: `janitor scan` never writes to AWS.
pub struct ReadOnlyRunStore<R> {
    pub bucket: Option<R>,
    pub written: InMemoryRunStore,
}

#[async_trait]
impl<R: RunStore> RunStore for ReadOnlyRunStore<R> {
    async fn put(&self, path: &str, body: Vec<u8>) -> Result<()> {
        self.written.put(path, body).await
    }
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match &self.bucket {
            Some(bucket) if path.starts_with("config/") => bucket.get(path).await,
            _ => self.written.get(path).await,
        }
    }
}

#[async_trait]
impl RunStore for InMemoryRunStore {
    async fn put(&self, path: &str, body: Vec<u8>) -> Result<()> {
        lock(&self.documents).insert(path.to_owned(), body);
        Ok(())
    }
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(lock(&self.documents).get(path).cloned())
    }
}

/// A Slack that takes every message (owners resolve to no user, so each goes to the channel
/// it is addressed to) and remembers where each went.
#[derive(Default)]
pub struct InMemoryChat {
    posted: Mutex<Vec<(String, String)>>,
    blocks: Mutex<Vec<serde_json::Value>>,
}

impl InMemoryChat {
    /// `(channel, text)` of every message posted, in order.
    pub fn posted(&self) -> Vec<(String, String)> {
        lock(&self.posted).clone()
    }

    /// The Block Kit blocks of every message posted, in order.
    pub fn blocks(&self) -> Vec<serde_json::Value> {
        lock(&self.blocks).clone()
    }
}

#[async_trait]
impl crate::slack::Chat for InMemoryChat {
    async fn lookup_user_by_email(&self, _email: &str) -> Result<Option<String>> {
        Ok(None)
    }
    async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: &serde_json::Value,
    ) -> Result<crate::slack::PostedMessage> {
        lock(&self.blocks).push(blocks.clone());
        let mut posted = lock(&self.posted);
        posted.push((channel.to_owned(), text.to_owned()));
        Ok(crate::slack::PostedMessage { channel: channel.to_owned(), ts: format!("{}.000100", posted.len()) })
    }
    async fn reply_in_thread(&self, _channel: &str, _ts: &str, _text: &str) -> Result<()> {
        Ok(())
    }
    async fn respond(&self, _response_url: &str, _body: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A digest as the fake keeps it: to whom, the text a person would read, its links.
pub type SentDigest = (String, String, std::collections::HashMap<crate::model::ResourceKey, String>);

/// Teams or email that keeps what it was given: each digest as the email text a person would
/// read, with its links, and each follow-up.
#[derive(Default)]
pub struct InMemoryDelivery {
    sent: Mutex<Vec<SentDigest>>,
    follow_ups: Mutex<Vec<(String, String)>>,
    failing: Mutex<std::collections::HashSet<String>>,
}

impl InMemoryDelivery {
    /// `(to, text, links)` of every digest sent, in order.
    pub fn sent(&self) -> Vec<SentDigest> {
        lock(&self.sent).clone()
    }

    pub fn follow_ups(&self) -> Vec<(String, String)> {
        lock(&self.follow_ups).clone()
    }

    /// Messages to `to` fail from now on.
    pub fn fail(&self, to: &str) {
        lock(&self.failing).insert(to.to_owned());
    }
}

#[async_trait]
impl crate::delivery::Delivery for InMemoryDelivery {
    async fn send(&self, to: &str, digest: &crate::delivery::Digest<'_>) -> Result<crate::slack::PostedMessage> {
        if lock(&self.failing).contains(to) {
            return Err(crate::error::JanitorError::Delivery {
                via: crate::delivery::Via::Teams,
                message: format!("{to} is failing"),
            });
        }
        let mut sent = lock(&self.sent);
        sent.push((to.to_owned(), crate::delivery::email_text(digest), digest.links.clone()));
        Ok(crate::slack::PostedMessage { channel: to.to_owned(), ts: format!("m-{}", sent.len()) })
    }
    async fn follow_up(&self, to: &str, text: &str) -> Result<()> {
        lock(&self.follow_ups).push((to.to_owned(), text.to_owned()));
        Ok(())
    }
}

/// A link key that is an HMAC-SHA-256 key held in memory.
pub struct InMemoryLinkKey(pub Vec<u8>);

#[async_trait]
impl crate::delivery::LinkKey for InMemoryLinkKey {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .map_err(|e| crate::error::JanitorError::Config(e.to_string()))?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
    async fn verify(&self, message: &[u8], mac: &[u8]) -> Result<bool> {
        use hmac::{KeyInit, Mac};
        let mut check = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .map_err(|e| crate::error::JanitorError::Config(e.to_string()))?;
        check.update(message);
        Ok(check.verify_slice(mac).is_ok())
    }
}
