//! What a finding costs a month and what its action saves, from on-demand unit prices (the
//! [`PriceSource`] port). Every estimate says how it was made (`basis`), so a reader can
//! redo the arithmetic; what cannot be priced says why instead of claiming zero.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{JanitorError, Result};
use crate::model::{Action, Finding};

/// Hours in a month, as AWS's own pricing examples count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// US dollars.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Usd(f64);

impl Usd {
    pub const ZERO: Usd = Usd(0.0);

    /// Rounded to the cent: what a month's figure is kept and shown as.
    pub fn cents(value: f64) -> Usd {
        Usd((value * 100.0).round() / 100.0)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd::cents(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Usd {
    fn add_assign(&mut self, other: Usd) {
        *self = *self + other;
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

/// `$1,234.56`.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = (self.0 * 100.0).round() as i64;
        let (sign, cents) = if cents < 0 { ("-", -cents) } else { ("", cents) };
        let whole = (cents / 100).to_string();
        let mut grouped = String::new();
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        write!(f, "{sign}${grouped}.{:02}", cents % 100)
    }
}

/// A unit price's figure as the basis shows it: enough digits for $0.0000166667.
fn unit(usd: f64) -> String {
    let text = format!("{usd:.10}");
    let text = text.trim_end_matches('0');
    let text = text.strip_suffix('.').unwrap_or(text);
    // At least cents: $0.10, not $0.1.
    match text.split_once('.') {
        Some((_, decimals)) if decimals.len() >= 2 => format!("${text}"),
        Some((_, decimals)) => format!("${text}{}", "0".repeat(2 - decimals.len())),
        None => format!("${text}.00"),
    }
}

/// The database engines whose on-demand prices the janitor knows how to ask for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum DbEngine {
    Mysql,
    Postgres,
    Mariadb,
}

impl DbEngine {
    /// RDS's engine name (`DescribeDBInstances`' `Engine`), if it is one of these.
    pub fn from_rds(engine: &str) -> Option<DbEngine> {
        match engine {
            "mysql" => Some(DbEngine::Mysql),
            "postgres" => Some(DbEngine::Postgres),
            "mariadb" => Some(DbEngine::Mariadb),
            _ => None,
        }
    }

    /// The engine as the Price List names it (`databaseEngine`).
    pub fn price_list_name(self) -> &'static str {
        match self {
            DbEngine::Mysql => "MySQL",
            DbEngine::Postgres => "PostgreSQL",
            DbEngine::Mariadb => "MariaDB",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Deployment {
    SingleAz,
    MultiAz,
}

impl Deployment {
    pub fn of(multi_az: bool) -> Deployment {
        if multi_az { Deployment::MultiAz } else { Deployment::SingleAz }
    }

    /// As the Price List names it (`deploymentOption`).
    pub fn price_list_name(self) -> &'static str {
        match self {
            Deployment::SingleAz => "Single-AZ",
            Deployment::MultiAz => "Multi-AZ",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
pub enum Architecture {
    #[strum(serialize = "x86_64")]
    #[serde(rename = "x86_64")]
    X86_64,
    #[strum(serialize = "arm64")]
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One on-demand unit price, named as `kind/region/...` (`ec2/us-east-1/t3.large`): the
/// bundled table's rows and the policy's `[prices]` overrides are keyed by this text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PriceKey {
    /// Linux, shared tenancy, per hour.
    Ec2Instance { region: String, instance_type: String },
    /// Per hour.
    RdsInstance { region: String, class: String, engine: DbEngine, deployment: Deployment },
    /// Allocated storage (`gp2`, `gp3`, `io1`, `standard`), per GB-month.
    RdsStorage { region: String, storage_type: String, deployment: Deployment },
    /// Backup and manual snapshot storage beyond the free allowance, per GB-month.
    RdsBackup { region: String },
    /// Provisioned volume storage by volume type, per GB-month.
    EbsVolume { region: String, volume_type: String },
    /// Standard-tier snapshot storage, per GB-month.
    EbsSnapshot { region: String },
    /// A public IPv4 address (in use or idle), per hour.
    PublicIpv4 { region: String },
    /// Per request.
    LambdaRequest { region: String },
    /// Per GB-second of duration.
    LambdaGbSecond { region: String, architecture: Architecture },
}

/// What a price is per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceUnit {
    Hour,
    GbMonth,
    Request,
    GbSecond,
}

impl PriceUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceUnit::Hour => "h",
            PriceUnit::GbMonth => "GB-month",
            PriceUnit::Request => "request",
            PriceUnit::GbSecond => "GB-second",
        }
    }
}

impl PriceKey {
    pub fn region(&self) -> &str {
        match self {
            PriceKey::Ec2Instance { region, .. }
            | PriceKey::RdsInstance { region, .. }
            | PriceKey::RdsStorage { region, .. }
            | PriceKey::RdsBackup { region }
            | PriceKey::EbsVolume { region, .. }
            | PriceKey::EbsSnapshot { region }
            | PriceKey::PublicIpv4 { region }
            | PriceKey::LambdaRequest { region }
            | PriceKey::LambdaGbSecond { region, .. } => region,
        }
    }

    pub fn unit(&self) -> PriceUnit {
        match self {
            PriceKey::Ec2Instance { .. } | PriceKey::RdsInstance { .. } | PriceKey::PublicIpv4 { .. } => {
                PriceUnit::Hour
            }
            PriceKey::RdsStorage { .. }
            | PriceKey::RdsBackup { .. }
            | PriceKey::EbsVolume { .. }
            | PriceKey::EbsSnapshot { .. } => PriceUnit::GbMonth,
            PriceKey::LambdaRequest { .. } => PriceUnit::Request,
            PriceKey::LambdaGbSecond { .. } => PriceUnit::GbSecond,
        }
    }

    /// The same price in another region (`*` for a policy override that holds in any).
    pub fn in_region(&self, other: &str) -> PriceKey {
        let mut key = self.clone();
        match &mut key {
            PriceKey::Ec2Instance { region, .. }
            | PriceKey::RdsInstance { region, .. }
            | PriceKey::RdsStorage { region, .. }
            | PriceKey::RdsBackup { region }
            | PriceKey::EbsVolume { region, .. }
            | PriceKey::EbsSnapshot { region }
            | PriceKey::PublicIpv4 { region }
            | PriceKey::LambdaRequest { region }
            | PriceKey::LambdaGbSecond { region, .. } => *region = other.to_owned(),
        }
        key
    }
}

impl fmt::Display for PriceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceKey::Ec2Instance { region, instance_type } => write!(f, "ec2/{region}/{instance_type}"),
            PriceKey::RdsInstance { region, class, engine, deployment } => {
                write!(f, "rds/{region}/{class}/{}/{}", engine.as_str(), deployment.as_str())
            }
            PriceKey::RdsStorage { region, storage_type, deployment } => {
                write!(f, "rds-storage/{region}/{storage_type}/{}", deployment.as_str())
            }
            PriceKey::RdsBackup { region } => write!(f, "rds-backup/{region}"),
            PriceKey::EbsVolume { region, volume_type } => write!(f, "ebs/{region}/{volume_type}"),
            PriceKey::EbsSnapshot { region } => write!(f, "ebs-snapshot/{region}"),
            PriceKey::PublicIpv4 { region } => write!(f, "ipv4/{region}"),
            PriceKey::LambdaRequest { region } => write!(f, "lambda-request/{region}"),
            PriceKey::LambdaGbSecond { region, architecture } => {
                write!(f, "lambda-gb-second/{region}/{}", architecture.as_str())
            }
        }
    }
}

impl FromStr for PriceKey {
    type Err = JanitorError;

    fn from_str(text: &str) -> Result<PriceKey> {
        let bad = |why: &str| {
            JanitorError::InvalidInput(format!(
                "price key `{text}` {why} (e.g. ec2/us-east-1/t3.large, rds/us-east-1/db.t3.micro/mysql/single-az, \
                 rds-storage/us-east-1/gp2/single-az, rds-backup/*, ebs/*/gp3, ebs-snapshot/*, ipv4/*, \
                 lambda-request/*, lambda-gb-second/*/arm64)"
            ))
        };
        let parts: Vec<&str> = text.split('/').collect();
        if parts.iter().any(|p| p.trim().is_empty() || p.trim() != *p) {
            return Err(bad("has an empty or padded part"));
        }
        let region = || parts.get(1).map(|r| (*r).to_owned()).unwrap_or_default();
        let engine =
            |t: &str| DbEngine::from_str(t).map_err(|_| bad("names no known engine (mysql, postgres, mariadb)"));
        let deployment =
            |t: &str| Deployment::from_str(t).map_err(|_| bad("names no deployment (single-az, multi-az)"));
        Ok(match parts.as_slice() {
            ["ec2", _, instance_type] => {
                PriceKey::Ec2Instance { region: region(), instance_type: (*instance_type).into() }
            }
            ["rds", _, class, e, d] => PriceKey::RdsInstance {
                region: region(),
                class: (*class).into(),
                engine: engine(e)?,
                deployment: deployment(d)?,
            },
            ["rds-storage", _, storage_type, d] => PriceKey::RdsStorage {
                region: region(),
                storage_type: (*storage_type).into(),
                deployment: deployment(d)?,
            },
            ["rds-backup", _] => PriceKey::RdsBackup { region: region() },
            ["ebs", _, volume_type] => PriceKey::EbsVolume { region: region(), volume_type: (*volume_type).into() },
            ["ebs-snapshot", _] => PriceKey::EbsSnapshot { region: region() },
            ["ipv4", _] => PriceKey::PublicIpv4 { region: region() },
            ["lambda-request", _] => PriceKey::LambdaRequest { region: region() },
            ["lambda-gb-second", _, a] => PriceKey::LambdaGbSecond {
                region: region(),
                architecture: Architecture::from_str(a).map_err(|_| bad("names no architecture (x86_64, arm64)"))?,
            },
            _ => return Err(bad("is not of a known form")),
        })
    }
}

impl TryFrom<String> for PriceKey {
    type Error = JanitorError;
    fn try_from(text: String) -> Result<PriceKey> {
        text.parse()
    }
}

impl From<PriceKey> for String {
    fn from(key: PriceKey) -> String {
        key.to_string()
    }
}

/// Where a unit price came from, as the basis names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriceOrigin {
    /// The AWS Price List Query API, this run.
    PriceListApi,
    /// The table shipped with the janitor (see its date and source).
    Bundled,
    /// The policy's `[prices]`.
    Policy,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub usd: f64,
    pub origin: PriceOrigin,
}

#[async_trait]
pub trait PriceSource: Send + Sync {
    /// The on-demand unit price of `key`, `None` when the source has none.
    async fn unit_price(&self, key: &PriceKey) -> Result<Option<Price>>;
}

/// What a resource is billed for, as its listing tells: carried from discovery to the metric
/// check with each candidate, so an idle resource is priced where it is found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "billed", rename_all = "kebab-case")]
pub enum Billable {
    Ec2Instance {
        instance_type: String,
        running: bool,
    },
    RdsInstance {
        class: String,
        /// RDS's engine name (`mysql`, `aurora-postgresql`, …).
        engine: String,
        multi_az: bool,
        storage_type: String,
        allocated_gib: i32,
    },
    EbsVolume {
        volume_type: String,
        size_gib: i32,
    },
    EbsSnapshot {
        size_gib: i32,
    },
    RdsSnapshot {
        allocated_gib: i32,
    },
    PublicIpv4,
    LambdaFunction {
        architecture: Architecture,
    },
    /// Costs nothing as it is (an empty bucket, an IAM user, a security group).
    Free {
        why: String,
    },
    /// Not priced here, and why.
    Unpriced {
        why: String,
    },
}

/// What a finding's resource costs a month as it is, and what the finding's action saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// `None` when it cannot be priced (the basis says why); never a made-up zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_cost: Option<Usd>,
    /// What the action saves a month: nothing for notify-only and security actions.
    pub monthly_savings: Usd,
    /// How the figures were made, e.g. `t3.large on-demand Linux us-east-1, $0.0832/h × 730 h`.
    pub basis: String,
}

impl Cost {
    fn unpriced(why: impl Into<String>) -> Cost {
        Cost { monthly_cost: None, monthly_savings: Usd::ZERO, basis: why.into() }
    }
}

/// Storage whose provisioned IOPS (and gp3's throughput) are billed apart, which the
/// janitor does not read.
fn iops_note(storage_type: &str) -> &'static str {
    match storage_type {
        "io1" | "io2" | "gp3" => " (provisioned IOPS and throughput beyond the baseline, if any, not counted)",
        _ => "",
    }
}

/// Why an action saves nothing, for the basis.
fn saves_nothing(action: Action) -> &'static str {
    match action {
        Action::NotifyOnly => "notify only: nothing is removed",
        Action::TagMfaRequired | Action::BlockPublicAccess | Action::RevokeOpenIngress => {
            "a security action: it saves nothing"
        }
        _ => "its action removes nothing billed",
    }
}

fn origin_note(origins: &[PriceOrigin]) -> String {
    let mut names: Vec<&str> = origins
        .iter()
        .map(|o| match o {
            PriceOrigin::PriceListApi => "Price List API",
            PriceOrigin::Bundled => crate::prices::BUNDLED_LABEL,
            PriceOrigin::Policy => "policy [prices]",
        })
        .collect();
    names.dedup();
    format!(" [{}]", names.join(", "))
}

/// The unit price, or the basis of a cost that cannot be priced.
async fn need(prices: &dyn PriceSource, key: PriceKey) -> std::result::Result<Price, Cost> {
    match prices.unit_price(&key).await {
        Ok(Some(price)) => Ok(price),
        Ok(None) => {
            Err(Cost::unpriced(format!("no on-demand price for {key} (set it in the policy's [prices] to price it)")))
        }
        Err(e) => Err(Cost::unpriced(format!("the price of {key} could not be read: {e}"))),
    }
}

/// What the resource costs a month and what `action` saves, in `region`.
pub async fn estimate(prices: &dyn PriceSource, region: &str, billable: &Billable, action: Action) -> Cost {
    match estimate_or_why(prices, region, billable, action).await {
        Ok(cost) | Err(cost) => cost,
    }
}

async fn estimate_or_why(
    prices: &dyn PriceSource,
    region: &str,
    billable: &Billable,
    action: Action,
) -> std::result::Result<Cost, Cost> {
    let region = region.to_owned();
    let cost = |monthly: f64, saves: f64, basis: String| Cost {
        monthly_cost: Some(Usd::cents(monthly)),
        monthly_savings: Usd::cents(saves.max(0.0)),
        basis,
    };
    Ok(match billable {
        Billable::Ec2Instance { running: false, .. } => {
            Cost::unpriced("stopped: no instance-hours are billed; its EBS volumes still are, and are not counted here")
        }
        Billable::Ec2Instance { instance_type, running: true } => {
            let hourly =
                need(prices, PriceKey::Ec2Instance { region: region.clone(), instance_type: instance_type.clone() })
                    .await?;
            let monthly = hourly.usd * HOURS_PER_MONTH;
            let mut basis = format!(
                "{instance_type} on-demand Linux {region}, {}/h × 730 h{}",
                unit(hourly.usd),
                origin_note(&[hourly.origin])
            );
            let saves = if action == Action::StopInstance {
                basis.push_str("; stopping keeps its EBS volumes, not counted");
                monthly
            } else {
                basis.push_str(&format!("; {}", saves_nothing(action)));
                0.0
            };
            cost(monthly, saves, basis)
        }
        Billable::RdsInstance { class, engine, multi_az, storage_type, allocated_gib } => {
            let Some(db_engine) = DbEngine::from_rds(engine) else {
                return Err(Cost::unpriced(format!("no on-demand price is looked up for the {engine} engine")));
            };
            let deployment = Deployment::of(*multi_az);
            let hourly = need(
                prices,
                PriceKey::RdsInstance { region: region.clone(), class: class.clone(), engine: db_engine, deployment },
            )
            .await?;
            let storage = need(
                prices,
                PriceKey::RdsStorage { region: region.clone(), storage_type: storage_type.clone(), deployment },
            )
            .await?;
            let gib = f64::from((*allocated_gib).max(0));
            let monthly = hourly.usd * HOURS_PER_MONTH + gib * storage.usd;
            let mut origins = vec![hourly.origin, storage.origin];
            let mut basis = format!(
                "{class} {engine} {} {region}, {}/h × 730 h + {allocated_gib} GB {storage_type} × {}/GB-month{}",
                deployment.price_list_name(),
                unit(hourly.usd),
                unit(storage.usd),
                iops_note(storage_type)
            );
            let saves = if action == Action::SnapshotAndDeleteDb {
                let backup = need(prices, PriceKey::RdsBackup { region: region.clone() }).await?;
                origins.push(backup.origin);
                basis.push_str(&format!(
                    "; the final snapshot kept costs at most {allocated_gib} GB × {}/GB-month",
                    unit(backup.usd)
                ));
                monthly - gib * backup.usd
            } else {
                basis.push_str(&format!("; {}", saves_nothing(action)));
                0.0
            };
            basis.push_str(&origin_note(&origins));
            cost(monthly, saves, basis)
        }
        Billable::EbsVolume { volume_type, size_gib } => {
            let per_gb =
                need(prices, PriceKey::EbsVolume { region: region.clone(), volume_type: volume_type.clone() }).await?;
            let gib = f64::from((*size_gib).max(0));
            let monthly = gib * per_gb.usd;
            let mut origins = vec![per_gb.origin];
            let mut basis = format!("{size_gib} GB {volume_type} in {region} × {}/GB-month", unit(per_gb.usd));
            basis.push_str(iops_note(volume_type));
            let saves = if action == Action::SnapshotAndDeleteVolume {
                let snapshot = need(prices, PriceKey::EbsSnapshot { region: region.clone() }).await?;
                origins.push(snapshot.origin);
                basis.push_str(&format!(
                    "; the snapshot kept costs at most {size_gib} GB × {}/GB-month",
                    unit(snapshot.usd)
                ));
                if snapshot.usd > per_gb.usd {
                    basis.push_str(", more than the volume: deleting it saves nothing");
                }
                monthly - gib * snapshot.usd
            } else {
                basis.push_str(&format!("; {}", saves_nothing(action)));
                0.0
            };
            basis.push_str(&origin_note(&origins));
            cost(monthly, saves, basis)
        }
        // A bound is not a cost: totals would add up what no bill shows.
        Billable::EbsSnapshot { size_gib } => {
            let per_gb = need(prices, PriceKey::EbsSnapshot { region: region.clone() }).await?;
            let bound = Usd::cents(f64::from((*size_gib).max(0)) * per_gb.usd);
            Cost::unpriced(format!(
                "at most {bound}/month ({size_gib} GB × {}/GB-month): a snapshot is billed only for the blocks \
                 no earlier snapshot holds; {}{}",
                unit(per_gb.usd),
                saves_nothing(action),
                origin_note(&[per_gb.origin])
            ))
        }
        Billable::RdsSnapshot { allocated_gib } => {
            let per_gb = need(prices, PriceKey::RdsBackup { region: region.clone() }).await?;
            let bound = Usd::cents(f64::from((*allocated_gib).max(0)) * per_gb.usd);
            Cost::unpriced(format!(
                "at most {bound}/month ({allocated_gib} GB × {}/GB-month): backup storage is billed only beyond \
                 the free allowance; {}{}",
                unit(per_gb.usd),
                saves_nothing(action),
                origin_note(&[per_gb.origin])
            ))
        }
        Billable::PublicIpv4 => {
            let hourly = need(prices, PriceKey::PublicIpv4 { region: region.clone() }).await?;
            let monthly = hourly.usd * HOURS_PER_MONTH;
            let mut basis = format!("public IPv4 address in {region}, {}/h × 730 h", unit(hourly.usd));
            let saves = if action == Action::ReleaseAddress {
                monthly
            } else {
                basis.push_str(&format!("; {}", saves_nothing(action)));
                0.0
            };
            basis.push_str(&origin_note(&[hourly.origin]));
            cost(monthly, saves, basis)
        }
        // Costs nothing whatever its rates: the rates only explain why.
        Billable::LambdaFunction { architecture } => {
            let requests = need(prices, PriceKey::LambdaRequest { region: region.clone() }).await;
            let duration =
                need(prices, PriceKey::LambdaGbSecond { region: region.clone(), architecture: *architecture }).await;
            let rates = match (requests, duration) {
                (Ok(requests), Ok(duration)) => format!(
                    " ({} per million requests, {}/GB-second {}){}",
                    unit(requests.usd * 1_000_000.0),
                    unit(duration.usd),
                    architecture.as_str(),
                    origin_note(&[requests.origin, duration.origin])
                ),
                _ => String::new(),
            };
            cost(
                0.0,
                0.0,
                format!("billed only when invoked{rates}: unused, it costs nothing; {}", saves_nothing(action)),
            )
        }
        Billable::Free { why } => cost(0.0, 0.0, format!("{why}; {}", saves_nothing(action))),
        Billable::Unpriced { why } => Cost::unpriced(why.clone()),
    })
}

/// What a set of findings costs and saves a month, each resource counted once: several
/// findings of one resource share its cost, and their actions overlap (stopping an instance
/// twice saves once), so a resource counts its largest saving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub monthly_cost: Usd,
    pub monthly_savings: Usd,
    /// Resources no figure could be given for.
    pub unpriced: usize,
}

pub fn totals<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Totals {
    totals_of(findings.into_iter().map(|f| (f.key.as_str(), f.cost.as_ref())))
}

/// [`totals`] of `(resource key, cost)` pairs, as export rows carry them.
pub fn totals_of<'a>(items: impl IntoIterator<Item = (&'a str, Option<&'a Cost>)>) -> Totals {
    let mut by_resource: std::collections::BTreeMap<&str, (Option<Usd>, Usd)> = Default::default();
    for (key, cost) in items {
        let (cost, saves) = match cost {
            Some(c) => (c.monthly_cost, c.monthly_savings),
            None => (None, Usd::ZERO),
        };
        let entry = by_resource.entry(key).or_insert((None, Usd::ZERO));
        entry.0 = match (entry.0, cost) {
            (Some(a), Some(b)) => Some(if b > a { b } else { a }),
            (a, b) => a.or(b),
        };
        if saves > entry.1 {
            entry.1 = saves;
        }
    }
    let mut totals = Totals::default();
    for (cost, saves) in by_resource.into_values() {
        match cost {
            Some(c) => totals.monthly_cost += c,
            None => totals.unpriced += 1,
        }
        totals.monthly_savings += saves;
    }
    totals
}

/// A series at a glance: `▁▂▅█`, scaled between its own least and greatest values (all
/// equal reads as a flat low line).
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (Some(min), Some(max)) = (finite.iter().copied().reduce(f64::min), finite.iter().copied().reduce(f64::max))
    else {
        return String::new();
    };
    values
        .iter()
        .map(|v| {
            if !v.is_finite() || max <= min {
                return BARS[0];
            }
            let step = ((v - min) / (max - min) * 7.0).round() as usize;
            BARS[step.min(7)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKey;
    use std::collections::HashMap;

    struct Table(HashMap<String, f64>);

    #[async_trait]
    impl PriceSource for Table {
        async fn unit_price(&self, key: &PriceKey) -> Result<Option<Price>> {
            Ok(self.0.get(&key.to_string()).map(|usd| Price { usd: *usd, origin: PriceOrigin::Bundled }))
        }
    }

    fn table(rows: &[(&str, f64)]) -> Table {
        Table(rows.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
    }

    #[test]
    fn dollars_read_as_people_write_them() {
        assert_eq!(Usd::cents(1234.5).to_string(), "$1,234.50");
        assert_eq!(Usd::cents(0.004).to_string(), "$0.00");
        assert_eq!(Usd::cents(1_000_000.0).to_string(), "$1,000,000.00");
        assert_eq!(Usd::cents(-3.65).to_string(), "-$3.65");
        assert_eq!(unit(0.0832), "$0.0832");
        assert_eq!(unit(0.1), "$0.10");
        assert_eq!(unit(0.0000166667), "$0.0000166667");
        assert_eq!(unit(2.0), "$2.00");
    }

    #[test]
    fn price_keys_round_trip_and_refuse_garbage() {
        for text in [
            "ec2/us-east-1/t3.large",
            "rds/eu-west-1/db.t3.micro/postgres/multi-az",
            "rds-storage/*/gp3/single-az",
            "rds-backup/us-east-1",
            "ebs/us-east-1/gp2",
            "ebs-snapshot/*",
            "ipv4/us-east-1",
            "lambda-request/us-east-1",
            "lambda-gb-second/us-east-1/arm64",
        ] {
            let key: PriceKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
        }
        for bad in
            ["ec2/us-east-1", "rds/us-east-1/db.t3.micro/oracle/single-az", "ebs//gp2", "gpu/x/y", "ipv4/ us-east-1"]
        {
            assert!(bad.parse::<PriceKey>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn stopping_an_instance_saves_its_hours_and_keeps_ebs() {
        let prices = table(&[("ec2/us-east-1/t3.large", 0.0832)]);
        let billable = Billable::Ec2Instance { instance_type: "t3.large".into(), running: true };
        let c = estimate(&prices, "us-east-1", &billable, Action::StopInstance).await;
        assert_eq!(c.monthly_cost, Some(Usd::cents(60.74)));
        assert_eq!(c.monthly_savings, Usd::cents(60.74));
        assert!(c.basis.contains("t3.large on-demand Linux us-east-1, $0.0832/h × 730 h"), "{}", c.basis);
        assert!(c.basis.contains("EBS"), "{}", c.basis);
        let notify = estimate(&prices, "us-east-1", &billable, Action::NotifyOnly).await;
        assert_eq!((notify.monthly_cost, notify.monthly_savings), (Some(Usd::cents(60.74)), Usd::ZERO));
        let elsewhere = estimate(&prices, "ap-south-2", &billable, Action::StopInstance).await;
        assert_eq!((elsewhere.monthly_cost, elsewhere.monthly_savings), (None, Usd::ZERO));
        assert!(elsewhere.basis.contains("ec2/ap-south-2/t3.large"), "{}", elsewhere.basis);
        let stopped = Billable::Ec2Instance { instance_type: "t3.large".into(), running: false };
        assert_eq!(estimate(&prices, "us-east-1", &stopped, Action::NotifyOnly).await.monthly_cost, None);
    }

    #[tokio::test]
    async fn deleting_rds_saves_instance_and_storage_less_the_final_snapshot() {
        let prices = table(&[
            ("rds/us-east-1/db.t3.micro/mysql/single-az", 0.017),
            ("rds-storage/us-east-1/gp2/single-az", 0.115),
            ("rds-backup/us-east-1", 0.095),
        ]);
        let db = Billable::RdsInstance {
            class: "db.t3.micro".into(),
            engine: "mysql".into(),
            multi_az: false,
            storage_type: "gp2".into(),
            allocated_gib: 20,
        };
        let c = estimate(&prices, "us-east-1", &db, Action::SnapshotAndDeleteDb).await;
        // 0.017 × 730 = 12.41, + 20 × 0.115 = 2.30: 14.71; less 20 × 0.095 = 1.90: 12.81.
        assert_eq!(c.monthly_cost, Some(Usd::cents(14.71)));
        assert_eq!(c.monthly_savings, Usd::cents(12.81));
        let aurora = Billable::RdsInstance {
            class: "db.r6g.large".into(),
            engine: "aurora-mysql".into(),
            multi_az: false,
            storage_type: "aurora".into(),
            allocated_gib: 1,
        };
        assert_eq!(estimate(&prices, "us-east-1", &aurora, Action::NotifyOnly).await.monthly_cost, None);
    }

    #[tokio::test]
    async fn addresses_volumes_and_security_actions() {
        let prices = table(&[("ipv4/us-east-1", 0.005), ("ebs/us-east-1/gp3", 0.08), ("ebs-snapshot/us-east-1", 0.05)]);
        let ip = estimate(&prices, "us-east-1", &Billable::PublicIpv4, Action::ReleaseAddress).await;
        assert_eq!((ip.monthly_cost, ip.monthly_savings), (Some(Usd::cents(3.65)), Usd::cents(3.65)));
        let volume = Billable::EbsVolume { volume_type: "gp3".into(), size_gib: 100 };
        let deleted = estimate(&prices, "us-east-1", &volume, Action::SnapshotAndDeleteVolume).await;
        assert_eq!((deleted.monthly_cost, deleted.monthly_savings), (Some(Usd::cents(8.0)), Usd::cents(3.0)));
        assert!(deleted.basis.contains("provisioned IOPS"), "gp3 IOPS beyond the baseline are billed apart");
        let kept = estimate(&prices, "us-east-1", &volume, Action::NotifyOnly).await;
        assert_eq!(kept.monthly_savings, Usd::ZERO);
        // A snapshot's size is a bound on its bill, not its bill.
        let snapshot =
            estimate(&prices, "us-east-1", &Billable::EbsSnapshot { size_gib: 10 }, Action::NotifyOnly).await;
        assert_eq!(snapshot.monthly_cost, None);
        assert!(snapshot.basis.starts_with("at most $0.50/month"), "{}", snapshot.basis);
        // An unused function costs nothing, whether or not its rates are known here.
        let lambda = Billable::LambdaFunction { architecture: Architecture::Arm64 };
        assert_eq!(estimate(&prices, "us-east-1", &lambda, Action::NotifyOnly).await.monthly_cost, Some(Usd::ZERO));
        let free = Billable::Free { why: "a security group is not billed".into() };
        let sg = estimate(&prices, "us-east-1", &free, Action::RevokeOpenIngress).await;
        assert_eq!((sg.monthly_cost, sg.monthly_savings), (Some(Usd::ZERO), Usd::ZERO));
        assert!(sg.basis.contains("saves nothing"), "{}", sg.basis);
    }

    #[test]
    fn totals_count_each_resource_once() {
        let key = ResourceKey::new("111111111111", "us-east-1", crate::model::ResourceKind::Ec2Instance, "i-1");
        let priced = |rule, saves: f64| Finding {
            cost: Some(Cost {
                monthly_cost: Some(Usd::cents(60.74)),
                monthly_savings: Usd::cents(saves),
                basis: String::new(),
            }),
            ..Finding::new(key.clone(), rule, "x", Action::StopInstance)
        };
        let other = ResourceKey::new("111111111111", "us-east-1", crate::model::ResourceKind::ElasticIp, "eipalloc-1");
        let ip = Finding {
            cost: Some(Cost {
                monthly_cost: Some(Usd::cents(3.65)),
                monthly_savings: Usd::cents(3.65),
                basis: String::new(),
            }),
            ..Finding::new(other, crate::model::RuleId::EipUnattached, "x", Action::ReleaseAddress)
        };
        let stopped = ResourceKey::new("111111111111", "us-east-1", crate::model::ResourceKind::Ec2Instance, "i-2");
        let unpriced = Finding::new(stopped, crate::model::RuleId::Ec2StoppedLong, "x", Action::NotifyOnly);
        let findings = [
            priced(crate::model::RuleId::Ec2MissingTags, 60.74),
            priced(crate::model::RuleId::Ec2IdleCpu, 60.74),
            ip,
            unpriced,
        ];
        let t = totals(&findings);
        assert_eq!(t.monthly_cost, Usd::cents(64.39));
        assert_eq!(t.monthly_savings, Usd::cents(64.39));
        assert_eq!(t.unpriced, 1);
    }

    #[test]
    fn sparklines_scale_to_their_series() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[2.0, 2.0, 2.0]), "▁▁▁");
        assert_eq!(sparkline(&[]), "");
    }
}
