//! DynamoDB adapters: audit log (with GSIs by run and by event type), locks and snoozes
//! (both with a TTL attribute that readers also compare with the clock, since DynamoDB
//! deletes expired items late). Items go through `serde_dynamo`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditEventType};
use crate::chain::{ANCHORS_RESOURCE, Anchor, CHAIN_RESOURCE, ChainHead, ChainLink, StoredRow, Tamper};
use crate::error::{JanitorError, Result};
use crate::model::{FindingKey, FlagHistory, ResourceKey, RuleId, Snooze};
use crate::ports::{AuditLog, LockOutcome, LockStore, SnoozeStore};

type Item = HashMap<String, AttributeValue>;

const BATCH_WRITE_MAX: usize = 25;
const BATCH_GET_MAX: usize = 100;
const UNPROCESSED_RETRIES: u32 = 8;
/// A finding's history sits beside its resource's audit rows, one item per rule:
/// `HISTORY#<rule>`.
const HISTORY_SK: &str = "HISTORY";

fn history_sk(rule: RuleId) -> String {
    format!("{HISTORY_SK}#{rule}")
}
pub const AUDIT_BY_RUN_INDEX: &str = "by-run";
pub const AUDIT_BY_EVENT_INDEX: &str = "by-event";
pub const TTL_ATTRIBUTE: &str = "expires_at";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub audit: String,
    pub lock: String,
    pub snooze: String,
}

impl TableNames {
    pub fn from_env() -> Result<TableNames> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| JanitorError::Config(format!("environment variable {name} is not set")))
        };
        Ok(TableNames {
            audit: var("JANITOR_AUDIT_TABLE")?,
            lock: var("JANITOR_LOCK_TABLE")?,
            snooze: var("JANITOR_SNOOZE_TABLE")?,
        })
    }

    pub fn with_prefix(prefix: &str) -> TableNames {
        TableNames {
            audit: format!("{prefix}-audit"),
            lock: format!("{prefix}-lock"),
            snooze: format!("{prefix}-snooze"),
        }
    }
}

fn to_item<T: Serialize>(value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|e| JanitorError::AuditWrite(format!("cannot encode item: {e}")))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item, table: &str) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| JanitorError::Aws {
        service: "dynamodb",
        operation: "decode",
        message: format!("unreadable item in {table}: {e}"),
    })
}

fn key_of(resource: &str, sk: Option<&str>) -> Item {
    let mut key = Item::from([("resource".to_owned(), AttributeValue::S(resource.to_owned()))]);
    if let Some(sk) = sk {
        key.insert("sk".to_owned(), AttributeValue::S(sk.to_owned()));
    }
    key
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 * 2u64.pow(attempt.min(6)))
}

/// Writes all items, retrying what DynamoDB leaves unprocessed; anything still unwritten
/// after the retries is an error, never silently dropped.
async fn batch_put(client: &Client, table: &str, items: Vec<Item>) -> Result<()> {
    for chunk in items.chunks(BATCH_WRITE_MAX) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| JanitorError::AuditWrite(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut attempt = 0;
        while !pending.is_empty() {
            let out = client.batch_write_item().request_items(table, pending).send().await.map_err(|e| {
                JanitorError::AuditWrite(JanitorError::from_sdk("dynamodb", "BatchWriteItem", e).to_string())
            })?;
            pending = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            attempt += 1;
            if attempt > UNPROCESSED_RETRIES {
                return Err(JanitorError::AuditWrite(format!(
                    "{} items to {table} still unprocessed after retries",
                    pending.len()
                )));
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    Ok(())
}

async fn batch_get(client: &Client, table: &str, keys: Vec<Item>) -> Result<Vec<Item>> {
    let mut found = Vec::new();
    for chunk in keys.chunks(BATCH_GET_MAX) {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(|e| JanitorError::InvalidInput(e.to_string()))?,
        );
        let mut attempt = 0;
        while let Some(request) = pending.take() {
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| JanitorError::from_sdk("dynamodb", "BatchGetItem", e))?;
            found.extend(out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
            pending = out.unprocessed_keys.and_then(|mut u| u.remove(table)).filter(|k| !k.keys().is_empty());
            if pending.is_some() {
                attempt += 1;
                if attempt > UNPROCESSED_RETRIES {
                    return Err(JanitorError::Transient {
                        service: "dynamodb",
                        operation: "BatchGetItem",
                        message: format!("keys of {table} still unprocessed after retries"),
                    });
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Serialize, Deserialize)]
struct AuditItem {
    resource: String,
    sk: String,
    run_id: String,
    event: AuditEventType,
    at: DateTime<Utc>,
    actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<RuleId>,
    #[serde(default)]
    detail: serde_json::Value,
    /// The row's place in its hash chain ([`crate::chain`]); none on rows written before
    /// the chain, which `verify` reports as not on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
}

/// A transaction cancelled because another writer moved the head first (or one was in
/// flight), or throttled: worth linking again. Anything else (an item too large, a bad
/// number) fails the same way every time.
fn lost_the_race(
    e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            let reasons = cancelled.cancellation_reasons();
            reasons.is_empty()
                || reasons.iter().any(|r| {
                    matches!(r.code(), Some("ConditionalCheckFailed" | "TransactionConflict" | "ThrottlingError"))
                })
        }
        _ => e.code() == Some("TransactionConflictException"),
    }
}

/// What one row takes of a transaction's 4 MB, roughly (its detail dominates).
fn row_weight(e: &AuditEvent) -> usize {
    serde_json::to_vec(&e.detail).map_or(0, |d| d.len()) + e.resource.len() + 600
}

/// DynamoDB's 4 MB a transaction, with room to spare.
const CHAIN_BYTES_PER_WRITE: usize = 3_500_000;

impl AuditItem {
    fn into_stored(self) -> StoredRow {
        let link = match (self.chain, self.seq, self.prev, self.hash) {
            (Some(chain), Some(seq), Some(prev), Some(hash)) => Some(ChainLink { chain, seq, prev, hash }),
            _ => None,
        };
        let event = AuditEvent {
            resource: self.resource,
            run_id: self.run_id,
            event: self.event,
            at: self.at,
            actor: self.actor,
            policy: self.policy,
            detail: self.detail,
        };
        StoredRow { event, sk: self.sk, link }
    }
}

/// Each chain's head: `resource` [`CHAIN_RESOURCE`], `sk` the chain. It has no `run_id` or
/// `event`, so it stays out of the GSIs (its run is `chain_run`).
#[derive(Debug, Serialize, Deserialize)]
struct HeadItem {
    resource: String,
    sk: String,
    chain_run: String,
    seq: u64,
    hash: String,
    updated_at: DateTime<Utc>,
}

/// A transaction holds 100 actions: the head's update and 99 rows.
const CHAIN_ROWS_PER_WRITE: usize = 99;
/// Writers of one chain racing for its head (a retried step beside its first attempt).
const CHAIN_RETRIES: u32 = 16;

/// Per-resource detection history; it has no `run_id`/`event`, so it stays out of the GSIs.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryItem {
    resource: String,
    sk: String,
    first_flagged: DateTime<Utc>,
    times_flagged: u32,
    last_run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deferred_since: Option<DateTime<Utc>>,
    /// The table's TTL attribute: DynamoDB deletes the row some time after it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "chrono::serde::ts_seconds_option")]
    expires_at: Option<DateTime<Utc>>,
}

pub struct DynamoAuditLog {
    client: Client,
    table: String,
    /// One writer at a time per chain within this process: only other processes race for
    /// a head, so a step writing many rows at once does not spend its retries on itself.
    writers: std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoAuditLog { client, table: table.to_owned(), writers: Default::default() }
    }

    fn writer(&self, chain: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        writers.entry(chain.to_owned()).or_default().clone()
    }

    async fn query_items(&self, index: Option<&str>, key_attr: &str, value: &str) -> Result<Vec<Item>> {
        let pages: Vec<_> = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key_attr)
            .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("dynamodb", "Query", e))?;
        Ok(pages.into_iter().flat_map(|page| page.items.unwrap_or_default()).collect())
    }

    async fn query_stored(&self, index: Option<&str>, key_attr: &str, value: &str) -> Result<Vec<StoredRow>> {
        let mut rows = Vec::new();
        for item in self.query_items(index, key_attr, value).await? {
            if item.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk.starts_with(HISTORY_SK)) {
                continue;
            }
            rows.push(from_item::<AuditItem>(item, &self.table)?.into_stored());
        }
        rows.sort_by_key(|r| r.event.at);
        Ok(rows)
    }

    async fn query(&self, index: Option<&str>, key_attr: &str, value: &str) -> Result<Vec<AuditEvent>> {
        Ok(self.query_stored(index, key_attr, value).await?.into_iter().map(|r| r.event).collect())
    }

    /// Every row of a run as stored, with its chain link: what `verify` reads. An item that
    /// is not a readable row is said, not fatal: the rest of the run is still checked.
    pub async fn stored_run(&self, run_id: &str) -> Result<(Vec<StoredRow>, Vec<Tamper>)> {
        let mut rows = Vec::new();
        let mut unreadable = Vec::new();
        for item in self.query_items(Some(AUDIT_BY_RUN_INDEX), "run_id", run_id).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let (resource, sk) = (text("resource"), text("sk"));
            if sk.starts_with(HISTORY_SK) {
                continue;
            }
            match serde_dynamo::from_item::<_, AuditItem>(item) {
                Ok(row) => rows.push(row.into_stored()),
                Err(e) => unreadable.push(Tamper::Unreadable { resource, sk, why: e.to_string() }),
            }
        }
        rows.sort_by_key(|r| r.event.at);
        Ok((rows, unreadable))
    }

    /// The chains' heads (of one run, or all), read consistently, with when each was last
    /// written.
    pub async fn chain_heads(&self, run_id: Option<&str>) -> Result<Vec<(ChainHead, DateTime<Utc>)>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_names("#k", "resource")
            .expression_attribute_values(":v", AttributeValue::S(CHAIN_RESOURCE.to_owned()));
        let query = match run_id {
            Some(run) => query
                .key_condition_expression("#k = :v AND begins_with(sk, :run)")
                .expression_attribute_values(":run", AttributeValue::S(format!("{run}#"))),
            None => query.key_condition_expression("#k = :v"),
        };
        let pages: Vec<_> = query
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("dynamodb", "Query", e))?;
        pages
            .into_iter()
            .flat_map(|page| page.items.unwrap_or_default())
            .map(|item| {
                let head: HeadItem = from_item(item, &self.table)?;
                Ok((
                    ChainHead { chain: head.sk, run_id: head.chain_run, seq: head.seq, hash: head.hash },
                    head.updated_at,
                ))
            })
            .collect()
    }

    async fn head(&self, chain: &str) -> Result<Option<(u64, String)>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(CHAIN_RESOURCE, Some(chain))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| JanitorError::AuditWrite(JanitorError::from_sdk("dynamodb", "GetItem", e).to_string()))?;
        match out.item {
            Some(item) => {
                let head: HeadItem = from_item(item, &self.table)?;
                Ok(Some((head.seq, head.hash)))
            }
            None => Ok(None),
        }
    }

    /// Appends `events` (one chain's) and moves its head, in one transaction: a row is never
    /// stored off its chain, and two writers of one chain take turns (the loser reads the
    /// new head and links again).
    async fn append(&self, chain: &str, events: &[AuditEvent]) -> Result<()> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        // Each row's sort key is part of what its hash covers.
        let sks: Vec<String> = events
            .iter()
            .map(|e| {
                let unique = uuid::Uuid::new_v4().simple().to_string();
                format!("{}#{}#{}#{}", e.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"), e.run_id, e.event.as_str(), &unique[..8])
            })
            .collect();
        let writer = self.writer(chain);
        let _turn = writer.lock().await;
        let mut attempt = 0;
        loop {
            let head = self.head(chain).await?;
            let heads = head.clone().map(|h| BTreeMap::from([(chain.to_owned(), h)])).unwrap_or_default();
            let keyed: Vec<(&AuditEvent, &str)> = events.iter().zip(sks.iter().map(String::as_str)).collect();
            let (links, next) = crate::chain::link(&keyed, &heads);
            let Some((seq, hash)) = next.get(chain).cloned() else {
                return Err(JanitorError::AuditWrite(format!("rows for chain {chain} link onto another")));
            };
            let run_id = events.first().map(|e| e.run_id.clone()).unwrap_or_default();
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(CHAIN_RESOURCE, Some(chain))))
                .update_expression("SET #seq = :seq, #hash = :hash, chain_run = :run, updated_at = :now")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#hash", "hash")
                .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
                .expression_attribute_values(":hash", AttributeValue::S(hash))
                .expression_attribute_values(":run", AttributeValue::S(run_id))
                .expression_attribute_values(":now", AttributeValue::S(Utc::now().to_rfc3339()));
            update = match &head {
                Some((old, _)) => update
                    .condition_expression("#seq = :old")
                    .expression_attribute_values(":old", AttributeValue::N(old.to_string())),
                None => update.condition_expression("attribute_not_exists(#seq)"),
            };
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(update.build().map_err(|e| JanitorError::AuditWrite(e.to_string()))?)
                    .build(),
            ];
            for ((e, sk), link) in events.iter().zip(&sks).zip(links) {
                let item = to_item(&AuditItem {
                    resource: e.resource.clone(),
                    sk: sk.clone(),
                    run_id: e.run_id.clone(),
                    event: e.event,
                    at: e.at,
                    actor: e.actor.clone(),
                    policy: e.policy,
                    detail: e.detail.clone(),
                    chain: Some(link.chain),
                    seq: Some(link.seq),
                    prev: Some(link.prev),
                    hash: Some(link.hash),
                })?;
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| JanitorError::AuditWrite(e.to_string()))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => return Ok(()),
                Err(e) if lost_the_race(&e) && attempt < CHAIN_RETRIES => {
                    attempt += 1;
                    // Jittered: the writers that lost together must not retry together.
                    let jitter = (uuid::Uuid::new_v4().as_u128() % 50) as u64;
                    tokio::time::sleep(backoff(attempt.min(4)) + Duration::from_millis(jitter)).await;
                }
                Err(e) => {
                    return Err(JanitorError::AuditWrite(
                        JanitorError::from_sdk("dynamodb", "TransactWriteItems", e).to_string(),
                    ));
                }
            }
        }
    }
}

#[async_trait]
impl AuditLog for DynamoAuditLog {
    async fn record(&self, events: &[AuditEvent]) -> Result<()> {
        // Each chain's rows in the order given, a transaction at a time.
        let mut chains: BTreeMap<String, Vec<AuditEvent>> = BTreeMap::new();
        for e in events {
            chains.entry(crate::chain::chain_of(e)).or_default().push(e.clone());
        }
        for (chain, rows) in chains {
            let mut part: Vec<AuditEvent> = Vec::new();
            let mut weight = 0;
            for row in rows {
                let w = row_weight(&row);
                if !part.is_empty() && (part.len() == CHAIN_ROWS_PER_WRITE || weight + w > CHAIN_BYTES_PER_WRITE) {
                    self.append(&chain, &std::mem::take(&mut part)).await?;
                    weight = 0;
                }
                weight += w;
                part.push(row);
            }
            if !part.is_empty() {
                self.append(&chain, &part).await?;
            }
        }
        Ok(())
    }

    async fn flag_history(&self, keys: &[FindingKey]) -> Result<HashMap<FindingKey, FlagHistory>> {
        // BatchGetItem refuses a request that names one item twice.
        let wanted: HashMap<(String, String), &FindingKey> =
            keys.iter().map(|k| ((k.resource.as_str().to_owned(), history_sk(k.rule)), k)).collect();
        let items = wanted.keys().map(|(resource, sk)| key_of(resource, Some(sk))).collect();
        let mut out = HashMap::new();
        for item in batch_get(&self.client, &self.table, items).await? {
            let row: HistoryItem = from_item(item, &self.table)?;
            let Some(key) = wanted.get(&(row.resource, row.sk)) else { continue };
            out.insert(
                (*key).clone(),
                FlagHistory {
                    first_flagged: row.first_flagged,
                    times_flagged: row.times_flagged,
                    last_run: row.last_run,
                    deferred_since: row.deferred_since,
                    expires_at: row.expires_at,
                },
            );
        }
        Ok(out)
    }

    async fn save_flag_history(&self, entries: &[(FindingKey, FlagHistory)]) -> Result<()> {
        let items = entries
            .iter()
            .map(|(key, h)| {
                to_item(&HistoryItem {
                    resource: key.resource.as_str().to_owned(),
                    sk: history_sk(key.rule),
                    first_flagged: h.first_flagged,
                    times_flagged: h.times_flagged,
                    last_run: h.last_run.clone(),
                    deferred_since: h.deferred_since,
                    expires_at: h.expires_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        batch_put(&self.client, &self.table, items).await
    }

    async fn events_for_run(&self, run_id: &str) -> Result<Vec<AuditEvent>> {
        self.query(Some(AUDIT_BY_RUN_INDEX), "run_id", run_id).await
    }

    async fn events_for_resource(&self, key: &str) -> Result<Vec<AuditEvent>> {
        self.query(None, "resource", key).await
    }

    async fn anchor_run(&self, run_id: &str, at: DateTime<Utc>) -> Result<Option<Anchor>> {
        let heads: Vec<ChainHead> = self.chain_heads(Some(run_id)).await?.into_iter().map(|(h, _)| h).collect();
        let previous = self.anchors().await?.pop().map(|a| a.digest).unwrap_or_else(|| crate::chain::GENESIS.into());
        let anchor = Anchor::new(run_id, at, &heads, &previous);
        let item = to_item(&AnchorItem {
            resource: ANCHORS_RESOURCE.to_owned(),
            sk: format!("{}#{run_id}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            anchor: anchor.clone(),
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| JanitorError::AuditWrite(JanitorError::from_sdk("dynamodb", "PutItem", e).to_string()))?;
        Ok(Some(anchor))
    }
}

/// An anchor as kept in the audit table, as one map: no top-level `run_id` or `event`, so
/// out of the GSIs (a run's rows stay its rows).
#[derive(Debug, Serialize, Deserialize)]
struct AnchorItem {
    resource: String,
    sk: String,
    anchor: Anchor,
}

impl DynamoAuditLog {
    /// Every anchor, oldest first.
    pub async fn anchors(&self) -> Result<Vec<Anchor>> {
        let mut anchors = Vec::new();
        for item in self.query_items(None, "resource", ANCHORS_RESOURCE).await? {
            let kept: AnchorItem = from_item(item, &self.table)?;
            anchors.push(kept.anchor);
        }
        anchors.sort_by(|a, b| (a.at, &a.run_id).cmp(&(b.at, &b.run_id)));
        Ok(anchors)
    }
}

// ---------------------------------------------------------------- locks

#[derive(Debug, Serialize, Deserialize)]
struct LockItem {
    resource: String,
    run_id: String,
    locked_at: DateTime<Utc>,
    until: DateTime<Utc>,
    expires_at: i64,
}

pub struct DynamoLockStore {
    client: Client,
    table: String,
}

impl DynamoLockStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoLockStore { client, table: table.to_owned() }
    }

    pub async fn holder(&self, key: &ResourceKey) -> Result<Option<(String, DateTime<Utc>)>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key.as_str(), None)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("dynamodb", "GetItem", e))?;
        match out.item {
            Some(item) => {
                let lock: LockItem = from_item(item, &self.table)?;
                Ok(Some((lock.run_id, lock.until)))
            }
            None => Ok(None),
        }
    }
}

#[async_trait]
impl LockStore for DynamoLockStore {
    async fn acquire(
        &self,
        key: &ResourceKey,
        run_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LockOutcome> {
        let item = to_item(&LockItem {
            resource: key.as_str().to_owned(),
            run_id: run_id.to_owned(),
            locked_at: now,
            until,
            expires_at: until.timestamp(),
        })?;
        // A lock vanishing between the failed put and the read is retried a few times.
        for _ in 0..3 {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#r) OR run_id = :run OR expires_at < :now")
                .expression_attribute_names("#r", "resource")
                .expression_attribute_values(":run", AttributeValue::S(run_id.to_owned()))
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(LockOutcome::Acquired),
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                    if let Some((holder, held_until)) = self.holder(key).await? {
                        return Ok(LockOutcome::HeldBy { run_id: holder, until: held_until });
                    }
                }
                Err(e) => return Err(JanitorError::from_sdk("dynamodb", "PutItem", e)),
            }
        }
        Err(JanitorError::Transient {
            service: "dynamodb",
            operation: "PutItem",
            message: format!("lock on {key} kept changing"),
        })
    }

    async fn count_once(&self, key: &str, member: &str, cap: u64, until: DateTime<Utc>) -> Result<u64> {
        // A string set: adding a member it holds changes nothing, so a retry counts once.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("resource", AttributeValue::S(format!("counter/{key}")))
            .update_expression("ADD #ids :id SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(#ids) OR size(#ids) < :cap OR contains(#ids, :member)")
            .expression_attribute_names("#ids", "ids")
            .expression_attribute_values(":id", AttributeValue::Ss(vec![member.to_owned()]))
            .expression_attribute_values(":member", AttributeValue::S(member.to_owned()))
            .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(until.timestamp().to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match out {
            Ok(out) => {
                let ids = out.attributes().and_then(|a| a.get("ids")).and_then(|v| v.as_ss().ok());
                ids.map(|ids| ids.len() as u64).ok_or_else(|| JanitorError::Aws {
                    service: "dynamodb",
                    operation: "UpdateItem",
                    message: format!("counter {key} came back without its members"),
                })
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(cap + 1),
            Err(e) => Err(JanitorError::from_sdk("dynamodb", "UpdateItem", e)),
        }
    }

    async fn reserve_actions(
        &self,
        run_id: &str,
        scope: &str,
        count: usize,
        cap: usize,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let resource = format!("run/{run_id}/actions");
        let key = Item::from([("resource".to_owned(), AttributeValue::S(resource.clone()))]);
        if count <= cap {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET actions = if_not_exists(actions, :zero) + :n, expires_at = :ttl ADD scopes :scopes")
                .condition_expression(
                    "(attribute_not_exists(actions) OR actions <= :limit) AND (attribute_not_exists(scopes) OR NOT contains(scopes, :scope))",
                )
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
                .expression_attribute_values(":limit", AttributeValue::N((cap - count).to_string()))
                .expression_attribute_values(":ttl", AttributeValue::N(until.timestamp().to_string()))
                .expression_attribute_values(":scopes", AttributeValue::Ss(vec![scope.to_owned()]))
                .expression_attribute_values(":scope", AttributeValue::S(scope.to_owned()))
                .send()
                .await;
            match update {
                Ok(_) => return Ok(true),
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(JanitorError::from_sdk("dynamodb", "UpdateItem", e)),
            }
        }
        // Refused: either this scope reserved before (a retried step) or the cap is reached.
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("dynamodb", "GetItem", e))?;
        let reserved_before = out
            .item
            .and_then(|item| item.get("scopes").and_then(|v| v.as_ss().ok()).map(|set| set.iter().any(|s| s == scope)))
            .unwrap_or(false);
        Ok(reserved_before)
    }

    async fn release(&self, key: &ResourceKey, run_id: &str) -> Result<()> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key.as_str(), None)))
            .condition_expression("run_id = :run")
            .expression_attribute_values(":run", AttributeValue::S(run_id.to_owned()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            // Not ours (or already gone): nothing to release.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(JanitorError::from_sdk("dynamodb", "DeleteItem", e)),
        }
    }
}

// ---------------------------------------------------------------- snoozes

#[derive(Debug, Serialize, Deserialize)]
struct SnoozeItem {
    resource: String,
    until: DateTime<Utc>,
    by: String,
    at: DateTime<Utc>,
    expires_at: i64,
}

pub struct DynamoSnoozeStore {
    client: Client,
    table: String,
}

impl DynamoSnoozeStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoSnoozeStore { client, table: table.to_owned() }
    }
}

#[async_trait]
impl SnoozeStore for DynamoSnoozeStore {
    async fn live_snoozes(&self, keys: &[ResourceKey], now: DateTime<Utc>) -> Result<HashMap<ResourceKey, Snooze>> {
        let mut unique: Vec<&ResourceKey> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let request = unique.iter().map(|k| key_of(k.as_str(), None)).collect();
        let mut live = HashMap::new();
        for item in batch_get(&self.client, &self.table, request).await? {
            let row: SnoozeItem = from_item(item, &self.table)?;
            // DynamoDB's TTL deletes late: the clock decides.
            if row.until > now {
                let key = ResourceKey::parse(&row.resource)?;
                live.insert(key.clone(), Snooze { key, until: row.until, by: row.by, at: row.at });
            }
        }
        Ok(live)
    }

    async fn put_snooze(&self, snooze: &Snooze) -> Result<bool> {
        let item = to_item(&SnoozeItem {
            resource: snooze.key.as_str().to_owned(),
            until: snooze.until,
            by: snooze.by.clone(),
            at: snooze.at,
            expires_at: snooze.until.timestamp(),
        })?;
        // Only a longer snooze replaces a stored one (an expired one is always shorter).
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#r) OR #ttl < :until")
            .expression_attribute_names("#r", "resource")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":until", AttributeValue::N(snooze.until.timestamp().to_string()))
            .send()
            .await;
        conditional(put, "PutItem")
    }

    /// Seen requests share the snooze table under `request/<id>` (never a resource key, so
    /// no snooze read can meet them); TTL clears them once the signature window has closed.
    async fn first_sight(&self, id: &str, until: DateTime<Utc>) -> Result<bool> {
        let item = Item::from([
            ("resource".to_owned(), AttributeValue::S(format!("request/{id}"))),
            (TTL_ATTRIBUTE.to_owned(), AttributeValue::N(until.timestamp().to_string())),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#r)")
            .expression_attribute_names("#r", "resource")
            .send()
            .await;
        conditional(put, "PutItem")
    }
}

/// A conditional write's answer: written, refused by its condition, or failed.
fn conditional<T, E, R>(
    result: std::result::Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
    operation: &'static str,
) -> Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(JanitorError::from_sdk("dynamodb", operation, e)),
    }
}
