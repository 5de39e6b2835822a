//! Unit prices behind the [`PriceSource`] port: the table shipped with the janitor
//! (`prices/bundled.csv`, with its source and date), and the [`PriceBook`] a run prices
//! with: the policy's `[prices]` first, then the Price List API when the function has it,
//! then the bundled table; each answer kept while the process lives (a warm
//! Lambda keeps it across invocations: on-demand prices change rarely).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use serde::Deserialize;

use crate::cost::{Deployment, Price, PriceKey, PriceOrigin, PriceSource};
use crate::error::{JanitorError, Result};
use crate::policy::Policy;

/// When the bundled table was compiled; every basis that uses it says so.
pub const BUNDLED_AS_OF: &str = "2026-12-03";
pub const BUNDLED_LABEL: &str = "bundled table 2026-12-03";
const BUNDLED_CSV: &str = include_str!("../../prices/bundled.csv");

/// How a bundled figure was checked (see the table's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checked {
    AwsText,
    List,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    key: String,
    usd: f64,
    checked: Checked,
}

/// The bundled table, parsed.
pub fn bundled_rows() -> Result<Vec<(PriceKey, f64, Checked)>> {
    let mut reader = csv::ReaderBuilder::new().comment(Some(b'#')).from_reader(BUNDLED_CSV.as_bytes());
    let mut rows = Vec::new();
    for (line, row) in reader.deserialize::<Row>().enumerate() {
        let row = row.map_err(|e| JanitorError::Config(format!("bundled prices, row {}: {e}", line + 1)))?;
        if !row.usd.is_finite() || row.usd < 0.0 {
            return Err(JanitorError::Config(format!("bundled prices: {} has price {}", row.key, row.usd)));
        }
        rows.push((row.key.parse()?, row.usd, row.checked));
    }
    Ok(rows)
}

static BUNDLED: LazyLock<std::result::Result<HashMap<PriceKey, f64>, String>> = LazyLock::new(|| {
    bundled_rows().map(|rows| rows.into_iter().map(|(k, usd, _)| (k, usd)).collect()).map_err(|e| e.to_string())
});

/// The table shipped with the janitor. A Multi-AZ RDS price it does not list is twice the
/// Single-AZ one (one standby, as AWS bills MySQL, MariaDB and PostgreSQL).
#[derive(Debug, Clone, Copy, Default)]
pub struct BundledPrices;

impl BundledPrices {
    fn lookup(key: &PriceKey) -> Result<Option<f64>> {
        let table = BUNDLED.as_ref().map_err(|e| JanitorError::Config(e.clone()))?;
        if let Some(usd) = table.get(key) {
            return Ok(Some(*usd));
        }
        let single = match key {
            PriceKey::RdsInstance { region, class, engine, deployment: Deployment::MultiAz } => PriceKey::RdsInstance {
                region: region.clone(),
                class: class.clone(),
                engine: *engine,
                deployment: Deployment::SingleAz,
            },
            PriceKey::RdsStorage { region, storage_type, deployment: Deployment::MultiAz } => PriceKey::RdsStorage {
                region: region.clone(),
                storage_type: storage_type.clone(),
                deployment: Deployment::SingleAz,
            },
            _ => return Ok(None),
        };
        Ok(table.get(&single).map(|usd| usd * 2.0))
    }
}

#[async_trait]
impl PriceSource for BundledPrices {
    async fn unit_price(&self, key: &PriceKey) -> Result<Option<Price>> {
        Ok(BundledPrices::lookup(key)?.map(|usd| Price { usd, origin: PriceOrigin::Bundled }))
    }
}

/// The policy's `[prices]`: unit prices by key, a region of `*` holding in every region.
pub fn overrides(policy: &Policy) -> HashMap<PriceKey, f64> {
    policy.prices.iter().map(|(key, usd)| (key.clone(), *usd)).collect()
}

/// What a run prices with: the policy's overrides, then `api` (if the function has the Price
/// List API), then the bundled table. An API that fails or has no answer is logged and the
/// table answers instead: a price is an estimate, never a reason to fail a scan.
pub struct PriceBook {
    overrides: HashMap<PriceKey, f64>,
    api: Option<Arc<dyn PriceSource>>,
    /// Set once the API denied access: asking again per price would only fail again.
    api_denied: AtomicBool,
    cache: Mutex<HashMap<PriceKey, Option<Price>>>,
}

impl PriceBook {
    /// The bundled table under the policy's overrides (the command line's default).
    pub fn bundled(policy: &Policy) -> PriceBook {
        PriceBook {
            overrides: overrides(policy),
            api: None,
            api_denied: AtomicBool::new(false),
            cache: Mutex::default(),
        }
    }

    /// The Price List API first (deployed runs), the bundled table when it cannot answer.
    pub fn with_api(policy: &Policy, api: Arc<dyn PriceSource>) -> PriceBook {
        PriceBook { api: Some(api), ..PriceBook::bundled(policy) }
    }

    fn cached(&self, key: &PriceKey) -> Option<Option<Price>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied()
    }

    /// The price, and whether it may be kept (not a stand-in for an API that failed).
    async fn look_up(&self, key: &PriceKey) -> Result<(Option<Price>, bool)> {
        let policy = self.overrides.get(key).or_else(|| self.overrides.get(&key.in_region("*")));
        if let Some(usd) = policy {
            return Ok((Some(Price { usd: *usd, origin: PriceOrigin::Policy }), true));
        }
        let mut keep = true;
        if let Some(api) = self.api.as_ref().filter(|_| !self.api_denied.load(Ordering::Relaxed)) {
            match api.unit_price(key).await {
                Ok(Some(price)) => return Ok((Some(price), true)),
                Ok(None) => {
                    tracing::info!(price = %key, "the Price List API has no such price; using the bundled table")
                }
                Err(e @ JanitorError::AccessDenied { .. }) => {
                    // Said once, loudly: a missing grant or an SCP, not a passing fault.
                    if !self.api_denied.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = e.error_name(), message = %e, "the Price List API denied access; every price comes from the bundled table");
                    }
                }
                Err(e) => {
                    tracing::warn!(price = %key, error = e.error_name(), message = %e, "Price List API failed; using the bundled table");
                    keep = false;
                }
            }
        }
        Ok((BundledPrices.unit_price(key).await?, keep))
    }
}

#[async_trait]
impl PriceSource for PriceBook {
    async fn unit_price(&self, key: &PriceKey) -> Result<Option<Price>> {
        if let Some(known) = self.cached(key) {
            return Ok(known);
        }
        let (price, keep) = self.look_up(key).await?;
        if keep {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), price);
        }
        Ok(price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::DbEngine;

    #[test]
    fn the_bundled_table_parses_and_prices_every_region_it_lists() {
        let rows = bundled_rows().unwrap();
        assert!(rows.len() > 300, "{}", rows.len());
        let regions: std::collections::BTreeSet<String> = rows.iter().map(|(k, _, _)| k.region().to_owned()).collect();
        for region in &regions {
            for key in [
                PriceKey::Ec2Instance { region: region.clone(), instance_type: "t3.micro".into() },
                PriceKey::EbsVolume { region: region.clone(), volume_type: "gp3".into() },
                PriceKey::EbsSnapshot { region: region.clone() },
                PriceKey::PublicIpv4 { region: region.clone() },
            ] {
                assert!(BundledPrices::lookup(&key).unwrap().is_some(), "{key}");
            }
        }
        let keys: std::collections::HashSet<&PriceKey> = rows.iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys.len(), rows.len(), "no key is listed twice");
    }

    #[tokio::test]
    async fn multi_az_is_twice_single_az_and_policy_overrides_win() {
        let single = PriceKey::RdsInstance {
            region: "us-east-1".into(),
            class: "db.t3.micro".into(),
            engine: DbEngine::Mysql,
            deployment: Deployment::SingleAz,
        };
        let multi = PriceKey::RdsInstance {
            region: "us-east-1".into(),
            class: "db.t3.micro".into(),
            engine: DbEngine::Mysql,
            deployment: Deployment::MultiAz,
        };
        let s = BundledPrices.unit_price(&single).await.unwrap().unwrap().usd;
        let m = BundledPrices.unit_price(&multi).await.unwrap().unwrap().usd;
        assert!((m - 2.0 * s).abs() < 1e-12, "{s} {m}");

        let mut policy = Policy::builtin().unwrap();
        policy.prices.insert("ec2/*/t3.micro".parse().unwrap(), 0.009);
        policy.prices.insert("ipv4/eu-west-1".parse().unwrap(), 0.0);
        let book = PriceBook::bundled(&policy);
        let t3 = PriceKey::Ec2Instance { region: "us-east-1".into(), instance_type: "t3.micro".into() };
        assert_eq!(book.unit_price(&t3).await.unwrap(), Some(Price { usd: 0.009, origin: PriceOrigin::Policy }));
        let ip = PriceKey::PublicIpv4 { region: "eu-west-1".into() };
        assert_eq!(book.unit_price(&ip).await.unwrap().unwrap().usd, 0.0);
        let other_ip = PriceKey::PublicIpv4 { region: "us-east-1".into() };
        assert_eq!(book.unit_price(&other_ip).await.unwrap().unwrap().origin, PriceOrigin::Bundled);
    }

    #[test]
    fn a_policy_price_must_name_a_known_key_and_a_real_price() {
        let ok = Policy::from_toml_str("[prices]\n\"ec2/*/m5.large\" = 0.08\n", "p").unwrap();
        assert_eq!(overrides(&ok).len(), 1);
        for (toml, says) in [
            ("[prices]\n\"gpu/us-east-1/x\" = 1.0\n", "price key `gpu/us-east-1/x`"),
            ("[prices]\n\"ec2/us-east-1/t3.micro\" = -1.0\n", "must be a price of 0 or more"),
            ("[prices]\n\"rds/*/db.t3.micro/oracle/single-az\" = 1.0\n", "no known engine"),
        ] {
            let err = Policy::from_toml_str(toml, "p").unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    /// An API that fails every call with `denied` (AccessDenied) or a throttle, counting them.
    struct Failing {
        denied: bool,
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl PriceSource for Failing {
        async fn unit_price(&self, _: &PriceKey) -> Result<Option<Price>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let message = "no".to_owned();
            Err(if self.denied {
                JanitorError::AccessDenied { service: "pricing", operation: "GetProducts", message }
            } else {
                JanitorError::Transient { service: "pricing", operation: "GetProducts", message }
            })
        }
    }

    #[tokio::test]
    async fn an_api_that_fails_leaves_the_bundled_table_to_answer() {
        let snapshot = PriceKey::EbsSnapshot { region: "us-east-1".into() };
        let ip = PriceKey::PublicIpv4 { region: "us-east-1".into() };
        // A throttle: the table answers, and the API is asked again next time.
        let throttled = Arc::new(Failing { denied: false, calls: Default::default() });
        let book = PriceBook::with_api(&Policy::builtin().unwrap(), throttled.clone());
        for _ in 0..2 {
            let price = book.unit_price(&snapshot).await.unwrap();
            assert_eq!(price, Some(Price { usd: 0.05, origin: PriceOrigin::Bundled }));
        }
        assert_eq!(throttled.calls.load(Ordering::Relaxed), 2, "a stand-in answer is not kept");
        let nowhere = PriceKey::EbsSnapshot { region: "xx-nowhere-1".into() };
        assert_eq!(book.unit_price(&nowhere).await.unwrap(), None);
        // Denied: said once, and not asked again by this process.
        let denied = Arc::new(Failing { denied: true, calls: Default::default() });
        let book = PriceBook::with_api(&Policy::builtin().unwrap(), denied.clone());
        assert_eq!(book.unit_price(&snapshot).await.unwrap().map(|p| p.usd), Some(0.05));
        assert_eq!(book.unit_price(&ip).await.unwrap().map(|p| p.origin), Some(PriceOrigin::Bundled));
        assert_eq!(denied.calls.load(Ordering::Relaxed), 1);
    }
}
