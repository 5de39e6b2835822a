//! The audit table's hash chains: each row carries a SHA-256 over its content, its place in
//! its chain and the previous row's hash, and each chain's head (its last place and hash) is
//! kept beside the rows, written in the same transaction. A row changed, removed or slipped
//! in afterwards breaks the chain where it happened, and [`verify`] says where.
//!
//! A chain is one run's rows about one scope (account and region), so the parallel writers
//! of a run's scopes never wait for each other; the run's own rows (its end) are a chain too.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;

/// The previous hash of a chain's first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a row sits in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub chain: String,
    /// 1 for a chain's first row.
    pub seq: u64,
    pub prev: String,
    pub hash: String,
}

/// A chain's last place and hash, as written with its last rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub chain: String,
    pub run_id: String,
    pub seq: u64,
    pub hash: String,
}

/// A row as stored: its content, its table key (to name it) and its link, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub event: AuditEvent,
    /// The row's sort key: what an operator looks up.
    pub sk: String,
    pub link: Option<ChainLink>,
}

/// The chain a row belongs to: its run and its resource's scope (`account/region`), or the
/// first part of a key that is not a resource's (`janitor/runs`: `janitor`).
pub fn chain_of(event: &AuditEvent) -> String {
    let mut parts = event.resource.splitn(3, '/');
    let scope = match (parts.next(), parts.next(), parts.next()) {
        (Some(account), Some(region), Some(_))
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{account}/{region}")
        }
        (Some(first), _, _) => first.to_owned(),
        _ => String::new(),
    };
    format!("{}#{scope}", event.run_id)
}

/// The hash of a row at `seq` after `prev`: SHA-256 over a canonical JSON of everything the
/// row says and where it is kept (its sort key: a row moved is a row changed), with object
/// keys sorted and numbers in one spelling, so a row read back from DynamoDB hashes as it
/// was written.
pub fn row_hash(event: &AuditEvent, sk: &str, chain: &str, seq: u64, prev: &str) -> String {
    let content = serde_json::json!({
        "resource": event.resource,
        "sk": sk,
        "run_id": event.run_id,
        "event": event.event.as_str(),
        "at": event.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "actor": event.actor,
        "policy": event.policy.map(|p| p.to_string()),
        "detail": event.detail,
        "chain": chain,
        "seq": seq,
        "prev": prev,
    });
    let mut text = String::new();
    canonical(&content, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// JSON with sorted keys and each number in one spelling: integral values (however stored:
/// 5, 5.0) as integers, others in Rust's shortest round-trip form.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    out.push_str(&format!("{}", f as i64));
                } else {
                    out.push_str(&format!("{f}"));
                }
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Links `rows` (each event with its sort key, in order) onto chains whose heads are `heads`
/// (absent: a new chain). Returns each row's link and the chains' new heads.
pub fn link(
    rows: &[(&AuditEvent, &str)],
    heads: &BTreeMap<String, (u64, String)>,
) -> (Vec<ChainLink>, BTreeMap<String, (u64, String)>) {
    let mut next = heads.clone();
    let links = rows
        .iter()
        .map(|(e, sk)| {
            let chain = chain_of(e);
            let (seq, prev) = next.get(&chain).cloned().unwrap_or((0, GENESIS.to_owned()));
            let seq = seq + 1;
            let hash = row_hash(e, sk, &chain, seq, &prev);
            next.insert(chain.clone(), (seq, hash.clone()));
            ChainLink { chain, seq, prev, hash }
        })
        .collect();
    (links, next)
}

/// What [`verify`] found wrong, each naming the chain and the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// The row's content (or its link) is not what was hashed when it was written.
    Modified { chain: String, seq: u64, sk: String },
    /// The chain has no rows at these places (`seq` to `through`): they were deleted.
    Deleted { chain: String, seq: u64, through: u64 },
    /// A row that is not on its chain: no link, a second row at one place, a place outside
    /// the chain, or a chain without a head.
    Inserted { chain: String, seq: Option<u64>, sk: String },
    /// Two rows that each hash right, but the later does not name the earlier's hash: one of
    /// them was rewritten and hashed again.
    Relinked { chain: String, seq: u64, sk_before: String, sk: String },
    /// The head says the chain ends with another hash.
    HeadMismatch { chain: String, head_seq: u64 },
    /// An item the table holds that is not a readable row.
    Unreadable { resource: String, sk: String, why: String },
}

impl Tamper {
    fn place(&self) -> (&str, u64) {
        match self {
            Tamper::Modified { chain, seq, .. }
            | Tamper::Deleted { chain, seq, .. }
            | Tamper::Relinked { chain, seq, .. } => (chain, *seq),
            Tamper::Inserted { chain, seq, .. } => (chain, seq.unwrap_or(0)),
            Tamper::HeadMismatch { chain, head_seq } => (chain, *head_seq),
            Tamper::Unreadable { .. } => ("", 0),
        }
    }
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tamper::Modified { chain, seq, sk } => {
                write!(f, "MODIFIED row {seq} of chain {chain} (sk {sk}): its content does not hash to its hash")
            }
            Tamper::Deleted { chain, seq, through } if seq == through => {
                write!(f, "DELETED row {seq} of chain {chain}: the chain has no row there")
            }
            Tamper::Deleted { chain, seq, through } => {
                write!(f, "DELETED rows {seq} to {through} of chain {chain}: the chain has no rows there")
            }
            Tamper::Inserted { chain, seq: Some(seq), sk } => {
                write!(f, "INSERTED row at {seq} of chain {chain} (sk {sk}): it is not on the chain")
            }
            Tamper::Inserted { chain, seq: None, sk } => {
                write!(f, "INSERTED row in chain {chain} (sk {sk}): it carries no link")
            }
            Tamper::Relinked { chain, seq, sk_before, sk } => write!(
                f,
                "MODIFIED row {} or {seq} of chain {chain} (sk {sk_before} or {sk}): each hashes right but \
                 the later does not name the earlier's hash, so one was rewritten and hashed again",
                seq - 1
            ),
            Tamper::HeadMismatch { chain, head_seq } => {
                write!(f, "HEAD of chain {chain} says row {head_seq} is last with another hash")
            }
            Tamper::Unreadable { resource, sk, why } => {
                write!(f, "UNREADABLE item {resource} (sk {sk}): {why}")
            }
        }
    }
}

/// Checks every chain of `rows` against `heads`: each place from 1 to the head's has exactly
/// one row, whose content hashes to its hash and whose previous hash is its predecessor's.
/// Problems come in chain order, each chain's from its first place. The work is bounded by
/// the rows, whatever a head claims.
pub fn verify(rows: &[StoredRow], heads: &[ChainHead]) -> Vec<Tamper> {
    let mut problems = Vec::new();
    let mut chains: BTreeMap<String, Vec<&StoredRow>> = BTreeMap::new();
    for row in rows {
        match &row.link {
            Some(link) => chains.entry(link.chain.clone()).or_default().push(row),
            None => problems.push(Tamper::Inserted { chain: chain_of(&row.event), seq: None, sk: row.sk.clone() }),
        }
    }
    let heads: BTreeMap<&str, &ChainHead> = heads.iter().map(|h| (h.chain.as_str(), h)).collect();
    for chain in heads.keys() {
        chains.entry((*chain).to_owned()).or_default();
    }
    let link_of = |row: &StoredRow| {
        row.link.clone().unwrap_or_else(|| ChainLink {
            chain: String::new(),
            seq: 0,
            prev: String::new(),
            hash: String::new(),
        })
    };
    for (chain, members) in chains {
        let inserted = |row: &StoredRow| Tamper::Inserted {
            chain: chain.clone(),
            seq: Some(link_of(row).seq),
            sk: row.sk.clone(),
        };
        let Some(head) = heads.get(chain.as_str()) else {
            problems.extend(members.into_iter().map(inserted));
            continue;
        };
        let mut by_place: BTreeMap<u64, Vec<&StoredRow>> = BTreeMap::new();
        for row in members {
            let seq = link_of(row).seq;
            if (1..=head.seq).contains(&seq) {
                by_place.entry(seq).or_default().push(row);
            } else {
                problems.push(inserted(row));
            }
        }
        let hashes_right = |row: &StoredRow, seq: u64| {
            let link = link_of(row);
            link.hash == row_hash(&row.event, &row.sk, &chain, seq, &link.prev)
        };
        // The hash and sort key of the row kept at the last place seen; no hash after a gap.
        let mut prev: Option<(String, String)> = Some((GENESIS.to_owned(), String::new()));
        let mut expected = 1;
        for (&seq, at_place) in &by_place {
            if seq > expected {
                problems.push(Tamper::Deleted { chain: chain.clone(), seq: expected, through: seq - 1 });
                prev = None;
            }
            let follows = |row: &StoredRow| prev.as_ref().is_none_or(|(hash, _)| &link_of(row).prev == hash);
            // The chain goes on from the original: the next row names its hash as previous
            // (or the head does, at the end).
            let followed = |row: &StoredRow| {
                let hash = link_of(row).hash;
                match by_place.get(&(seq + 1)) {
                    Some(next) => next.iter().any(|n| link_of(n).prev == hash),
                    None => seq == head.seq && head.hash == hash,
                }
            };
            let fits = |row: &StoredRow| hashes_right(row, seq) && follows(row);
            let original =
                at_place.iter().position(|r| fits(r) && followed(r)).or_else(|| at_place.iter().position(|r| fits(r)));
            let kept = match original {
                Some(i) => i,
                None => {
                    // Nothing here fits: a row that hashes right names another predecessor
                    // (one of the two was re-hashed), else the first row was changed.
                    match at_place.iter().position(|r| hashes_right(r, seq)) {
                        Some(i) => {
                            let sk_before = prev.as_ref().map(|(_, sk)| sk.clone()).unwrap_or_default();
                            let sk = at_place[i].sk.clone();
                            problems.push(Tamper::Relinked { chain: chain.clone(), seq, sk_before, sk });
                            i
                        }
                        None => {
                            problems.push(Tamper::Modified { chain: chain.clone(), seq, sk: at_place[0].sk.clone() });
                            0
                        }
                    }
                }
            };
            for (i, row) in at_place.iter().enumerate() {
                if i != kept {
                    problems.push(inserted(row));
                }
            }
            prev = Some((link_of(at_place[kept]).hash, at_place[kept].sk.clone()));
            expected = seq + 1;
        }
        if expected <= head.seq {
            problems.push(Tamper::Deleted { chain: chain.clone(), seq: expected, through: head.seq });
        } else if head.seq > 0 && prev.as_ref().is_some_and(|(hash, _)| hash != &head.hash) {
            problems.push(Tamper::HeadMismatch { chain: chain.clone(), head_seq: head.seq });
        }
    }
    problems.sort_by(|a, b| a.place().cmp(&b.place()));
    problems
}

/// The partition of the chains' heads.
pub const CHAIN_RESOURCE: &str = "janitor/chain";

/// The partition of the anchors.
pub const ANCHORS_RESOURCE: &str = "janitor/anchors";

/// A run's chains as they stood when it ended, sealed with a digest and linked to an earlier
/// anchor: a chain rewritten consistently (rows and head), a cut tail or a removed chain no
/// longer matches what was anchored, and a copy kept outside the table (an Object Lock
/// bucket) keeps the anchors themselves honest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub run_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Sorted by chain.
    pub heads: Vec<AnchoredHead>,
    /// The digest of the anchor before (or [`GENESIS`]): runs that end together may name
    /// the same one.
    pub previous: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct AnchoredHead {
    pub chain: String,
    pub seq: u64,
    pub hash: String,
}

impl Anchor {
    pub fn new(run_id: &str, at: chrono::DateTime<chrono::Utc>, heads: &[ChainHead], previous: &str) -> Anchor {
        let mut heads: Vec<AnchoredHead> =
            heads.iter().map(|h| AnchoredHead { chain: h.chain.clone(), seq: h.seq, hash: h.hash.clone() }).collect();
        heads.sort();
        let mut anchor =
            Anchor { run_id: run_id.to_owned(), at, heads, previous: previous.to_owned(), digest: String::new() };
        anchor.digest = anchor.computed_digest();
        anchor
    }

    /// What the digest should be for what the anchor says.
    pub fn computed_digest(&self) -> String {
        let content = serde_json::json!({
            "run_id": self.run_id,
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "heads": self.heads,
            "previous": self.previous,
        });
        let mut text = String::new();
        canonical(&content, &mut text);
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// What [`verify_anchors`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorProblem {
    /// The anchor does not say what was sealed.
    Modified { run_id: String },
    /// The anchor names an earlier one that is not there: an anchor was removed.
    Unlinked { run_id: String },
    /// The row at an anchored place is gone or is not the one anchored.
    Unlike { run_id: String, chain: String, seq: u64 },
    /// The copy outside the table differs from the table's anchor, or the table lacks it.
    CopyDiffers { run_id: String },
}

impl fmt::Display for AnchorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnchorProblem::Modified { run_id } => write!(f, "ANCHOR of run {run_id} does not hash to its digest"),
            AnchorProblem::Unlinked { run_id } => {
                write!(f, "ANCHOR of run {run_id} names an earlier anchor that is not there: one was removed")
            }
            AnchorProblem::Unlike { run_id, chain, seq } => {
                write!(f, "ANCHORED row {seq} of chain {chain} (run {run_id}) is gone or is not the row anchored")
            }
            AnchorProblem::CopyDiffers { run_id } => {
                write!(f, "ANCHOR of run {run_id} differs from its copy outside the table, or is missing")
            }
        }
    }
}

/// Checks the anchors (oldest first) against themselves and against each run's stored rows
/// (`rows_of`: a run's rows, as [`verify`] reads them).
pub fn verify_anchors<'a>(anchors: &[Anchor], rows_of: impl Fn(&str) -> &'a [StoredRow]) -> Vec<AnchorProblem> {
    let mut problems = Vec::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::from([GENESIS]);
    for anchor in anchors {
        if anchor.digest != anchor.computed_digest() {
            problems.push(AnchorProblem::Modified { run_id: anchor.run_id.clone() });
        }
        if !seen.contains(anchor.previous.as_str()) {
            problems.push(AnchorProblem::Unlinked { run_id: anchor.run_id.clone() });
        }
        seen.insert(anchor.digest.as_str());
        let rows = rows_of(&anchor.run_id);
        for head in &anchor.heads {
            let there = rows.iter().any(|r| {
                r.link.as_ref().is_some_and(|l| l.chain == head.chain && l.seq == head.seq && l.hash == head.hash)
            });
            if !there {
                problems.push(AnchorProblem::Unlike {
                    run_id: anchor.run_id.clone(),
                    chain: head.chain.clone(),
                    seq: head.seq,
                });
            }
        }
    }
    problems
}

/// The table's anchors against their copies outside it (an Object Lock bucket, which no one
/// can change while it holds them): each copy must have its anchor, unchanged, in the table,
/// and each anchor of the table made since `since` (the first copy of all: those before were
/// made before copies were kept) its copy. `copies` holds those of the runs checked.
pub fn compare_copies(
    anchors: &[Anchor],
    copies: &[Anchor],
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<AnchorProblem> {
    let mut problems: Vec<AnchorProblem> = Vec::new();
    let mut differs = |run_id: &str| {
        if !problems.iter().any(|p| matches!(p, AnchorProblem::CopyDiffers { run_id: r } if r == run_id)) {
            problems.push(AnchorProblem::CopyDiffers { run_id: run_id.to_owned() });
        }
    };
    for copy in copies {
        if !anchors.contains(copy) {
            differs(&copy.run_id);
        }
    }
    for anchor in anchors.iter().filter(|a| since.is_some_and(|first| a.at >= first)) {
        if !copies.contains(anchor) {
            differs(&anchor.run_id);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEventType;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn rows(n: usize) -> (Vec<StoredRow>, Vec<ChainHead>) {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 0, 0).unwrap();
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                let resource = format!("123456789012/us-east-1/ec2-instance/i-{i}");
                let detail = json!({ "cost": { "monthly_savings": 7.59, "hours": 730.0 }, "i": i });
                AuditEvent::new(resource, "r1", AuditEventType::Discovered, at, "discovery", detail)
            })
            .collect();
        let sks: Vec<String> = (0..n).map(|i| format!("sk{i}")).collect();
        let keyed: Vec<(&AuditEvent, &str)> = events.iter().zip(sks.iter().map(String::as_str)).collect();
        let (links, heads) = link(&keyed, &BTreeMap::new());
        let stored = events
            .iter()
            .zip(links)
            .enumerate()
            .map(|(i, (event, link))| StoredRow { event: event.clone(), sk: format!("sk{i}"), link: Some(link) })
            .collect();
        let heads =
            heads.into_iter().map(|(chain, (seq, hash))| ChainHead { chain, run_id: "r1".into(), seq, hash }).collect();
        (stored, heads)
    }

    #[test]
    fn an_untouched_chain_verifies_and_numbers_read_back_differently_hash_the_same() {
        let (stored, heads) = rows(5);
        assert_eq!(heads.len(), 1, "one scope, one chain");
        assert_eq!(heads[0].chain, "r1#123456789012/us-east-1");
        assert!(verify(&stored, &heads).is_empty());
        // DynamoDB gives 730.0 back as 730.
        let mut read_back = stored.clone();
        read_back[2].event.detail["cost"]["hours"] = json!(730);
        assert!(verify(&read_back, &heads).is_empty());
    }

    #[test]
    fn a_modified_a_deleted_and_an_inserted_row_are_each_named() {
        let (stored, heads) = rows(5);
        let mut modified = stored.clone();
        modified[1].event.detail["cost"]["monthly_savings"] = json!(0.0);
        let chain = heads[0].chain.clone();
        assert_eq!(verify(&modified, &heads), [Tamper::Modified { chain: chain.clone(), seq: 2, sk: "sk1".into() }]);

        let mut deleted = stored.clone();
        deleted.remove(2);
        assert_eq!(verify(&deleted, &heads), [Tamper::Deleted { chain: chain.clone(), seq: 3, through: 3 }]);
        let mut tail = stored.clone();
        tail.truncate(2);
        assert_eq!(verify(&tail, &heads), [Tamper::Deleted { chain: chain.clone(), seq: 3, through: 5 }]);
        // A head pushed far ahead costs nothing to check.
        let mut far = heads.clone();
        far[0].seq = u64::MAX;
        assert_eq!(verify(&stored, &far), [Tamper::Deleted { chain: chain.clone(), seq: 6, through: u64::MAX }]);
        // A row rewritten and hashed again: the break is named between it and the next.
        let mut rehashed = stored.clone();
        rehashed[1].event.actor = "someone".into();
        let prev = rehashed[1].link.as_ref().unwrap().prev.clone();
        let hash = row_hash(&rehashed[1].event, "sk1", &chain, 2, &prev);
        rehashed[1].link.as_mut().unwrap().hash = hash;
        assert_eq!(
            verify(&rehashed, &heads),
            [Tamper::Relinked { chain: chain.clone(), seq: 3, sk_before: "sk1".into(), sk: "sk2".into() }]
        );
        // Moved to another sort key: changed.
        let mut moved = stored.clone();
        moved[4].sk = "elsewhere".into();
        assert_eq!(verify(&moved, &heads), [Tamper::Modified { chain: chain.clone(), seq: 5, sk: "elsewhere".into() }]);

        // A row made to fit place 3 (its hash recomputed over the real predecessor), read
        // before the original: the chain goes on from the original, so the forgery is named.
        let mut inserted = stored.clone();
        let mut forged = stored[2].clone();
        forged.event.resource = "123456789012/us-east-1/ec2-instance/i-forged".into();
        let link = forged.link.as_mut().unwrap();
        forged.sk = "forged".into();
        link.hash = row_hash(&forged.event, "forged", &chain, 3, &link.prev);
        inserted.insert(2, forged);
        assert_eq!(
            verify(&inserted, &heads),
            [Tamper::Inserted { chain: chain.clone(), seq: Some(3), sk: "forged".into() }]
        );
        let mut unlinked = stored.clone();
        unlinked.push(StoredRow { link: None, sk: "bare".into(), ..stored[0].clone() });
        assert_eq!(verify(&unlinked, &heads), [Tamper::Inserted { chain, seq: None, sk: "bare".into() }]);
    }
}

#[cfg(test)]
mod anchor_tests {
    use super::*;
    use crate::audit::AuditEventType;
    use chrono::{TimeZone, Utc};

    fn run(run_id: &str, n: usize) -> (Vec<StoredRow>, Vec<ChainHead>) {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 0, 0).unwrap();
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                let resource = format!("123456789012/us-east-1/ec2-instance/i-{i}");
                AuditEvent::new(resource, run_id, AuditEventType::Discovered, at, "discovery", Value::Null)
            })
            .collect();
        let sks: Vec<String> = (0..n).map(|i| format!("{run_id}-sk{i}")).collect();
        let keyed: Vec<(&AuditEvent, &str)> = events.iter().zip(sks.iter().map(String::as_str)).collect();
        let (links, heads) = link(&keyed, &BTreeMap::new());
        let rows = events
            .iter()
            .zip(links)
            .zip(&sks)
            .map(|((e, link), sk)| StoredRow { event: e.clone(), sk: sk.clone(), link: Some(link) })
            .collect();
        let heads = heads
            .into_iter()
            .map(|(chain, (seq, hash))| ChainHead { chain, run_id: run_id.into(), seq, hash })
            .collect();
        (rows, heads)
    }

    #[test]
    fn anchors_catch_what_a_chain_alone_cannot() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 17, 0, 0).unwrap();
        let (rows_a, heads_a) = run("a", 4);
        let (rows_b, heads_b) = run("b", 3);
        let first = Anchor::new("a", at, &heads_a, GENESIS);
        let second = Anchor::new("b", at, &heads_b, &first.digest);
        let anchors = vec![first.clone(), second.clone()];
        let runs = BTreeMap::from([("a", rows_a.clone()), ("b", rows_b.clone())]);
        assert_eq!(verify_anchors(&anchors, |r| runs.get(r).map(Vec::as_slice).unwrap_or(&[])), []);

        // Run a's tail cut and its head set back: the chain verifies, the anchor does not.
        let mut cut = rows_a.clone();
        cut.pop();
        let mut head = heads_a.clone();
        head[0].seq = 3;
        head[0].hash = cut[2].link.as_ref().unwrap().hash.clone();
        assert_eq!(verify(&cut, &head), []);
        let runs = BTreeMap::from([("a", cut), ("b", rows_b.clone())]);
        let problems = verify_anchors(&anchors, |r| runs.get(r).map(Vec::as_slice).unwrap_or(&[]));
        assert_eq!(
            problems,
            [AnchorProblem::Unlike { run_id: "a".into(), chain: "a#123456789012/us-east-1".into(), seq: 4 }]
        );

        // The first anchor removed, or its heads edited.
        let runs = BTreeMap::from([("a", rows_a), ("b", rows_b)]);
        let rows_of = |r: &str| runs.get(r).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            verify_anchors(std::slice::from_ref(&second), rows_of),
            [AnchorProblem::Unlinked { run_id: "b".into() }]
        );
        let mut edited = first.clone();
        edited.heads[0].seq = 3;
        let problems = verify_anchors(&[edited.clone(), second.clone()], rows_of);
        assert_eq!(problems[0], AnchorProblem::Modified { run_id: "a".into() });

        // The copies outside the table hold the anchors to what they were.
        let copies = vec![first.clone(), second.clone()];
        let since = Some(first.at);
        assert_eq!(compare_copies(&anchors, &copies, since), []);
        let differs = |run: &str| AnchorProblem::CopyDiffers { run_id: run.into() };
        assert_eq!(compare_copies(&[edited, second.clone()], &copies, since), [differs("a")], "an anchor edited");
        assert_eq!(compare_copies(std::slice::from_ref(&second), &copies, since), [differs("a")], "an anchor deleted");
        let forged = Anchor::new("c", at, &heads_b, &second.digest);
        let with_forged = [first.clone(), second.clone(), forged];
        assert_eq!(compare_copies(&with_forged, &copies, since), [differs("c")], "an anchor added");
        // Anchors made before copies were kept are not expected to have one.
        let earlier = Anchor::new("z", at - chrono::Duration::days(1), &heads_b, GENESIS);
        assert_eq!(compare_copies(&[earlier, first, second.clone()], &copies, since), []);
        // A run checked alone whose copy was never written.
        assert_eq!(compare_copies(std::slice::from_ref(&second), &[], since), [differs("b")]);
    }
}
