//! The AWS Price List Query API (`pricing:GetProducts`) behind the [`PriceSource`] port.
//! Each price key becomes one query of exact attribute matches; what those matches cannot
//! tell apart (a snapshot's archive tier, a public IPv4 block) is told apart by the
//! product's usage type. An answer that is still not one price is no answer: the bundled
//! table prices it instead (see [`crate::prices::PriceBook`]).

use async_trait::async_trait;
use aws_sdk_pricing::types::{Filter, FilterType};
use serde_json::Value;

use super::AwsClients;
use crate::cost::{Architecture, Price, PriceKey, PriceOrigin, PriceSource};
use crate::error::{JanitorError, Result};

/// At most this many pages of 100 products for one price: a query that matches more is
/// not naming one price.
const MAX_PAGES: usize = 5;

pub struct AwsPriceList {
    clients: AwsClients,
}

impl AwsPriceList {
    pub fn new(clients: AwsClients) -> Self {
        AwsPriceList { clients }
    }
}

/// One GetProducts query: the service, exact attribute matches, which of the products
/// matched to keep (by their attributes) and the unit their price must be in.
pub struct Query {
    pub service_code: &'static str,
    pub filters: Vec<(&'static str, String)>,
    pub keep: fn(&Value) -> bool,
    /// `Hrs`, `GB-Mo`; `None` where AWS's unit names vary (Lambda's).
    pub unit: Option<&'static str>,
}

fn any(_: &Value) -> bool {
    true
}

fn usage_type(attributes: &Value) -> &str {
    attributes["usagetype"].as_str().unwrap_or_default()
}

/// `EBS:SnapshotUsage` in us-east-1, `EUW2-EBS:SnapshotUsage` elsewhere; not the archive tier.
fn standard_snapshot(attributes: &Value) -> bool {
    let usage = usage_type(attributes);
    usage == "EBS:SnapshotUsage" || usage.ends_with("-EBS:SnapshotUsage")
}

fn rds_backup(attributes: &Value) -> bool {
    let usage = usage_type(attributes);
    usage == "RDS:ChargedBackupUsage" || usage.ends_with("-RDS:ChargedBackupUsage")
}

/// An Elastic IP the janitor releases is an idle public IPv4 address (in use costs the same).
fn idle_ipv4(attributes: &Value) -> bool {
    usage_type(attributes).ends_with("PublicIPv4:IdleAddress")
}

/// RDS storage by its API name, as the Price List names it (`volumeType`).
fn rds_volume_type(storage_type: &str) -> Option<&'static str> {
    Some(match storage_type {
        "gp2" => "General Purpose",
        "gp3" => "General Purpose-GP3",
        "io1" => "Provisioned IOPS",
        "io2" => "Provisioned IOPS-IO2",
        "standard" => "Magnetic",
        _ => return None,
    })
}

/// The query for `key`, `None` for what the Price List cannot be asked.
pub fn query(key: &PriceKey) -> Option<Query> {
    let region = key.region().to_owned();
    // A Local Zone's products carry their parent region's code: only the region's own.
    let in_region = |mut filters: Vec<(&'static str, String)>| {
        filters.push(("regionCode", region.clone()));
        filters.push(("locationType", "AWS Region".to_owned()));
        filters
    };
    Some(match key {
        PriceKey::Ec2Instance { instance_type, .. } => Query {
            service_code: "AmazonEC2",
            filters: in_region(vec![
                ("productFamily", "Compute Instance".into()),
                ("instanceType", instance_type.clone()),
                ("operatingSystem", "Linux".into()),
                ("tenancy", "Shared".into()),
                ("preInstalledSw", "NA".into()),
                ("capacitystatus", "Used".into()),
                ("licenseModel", "No License required".into()),
                ("marketoption", "OnDemand".into()),
            ]),
            keep: any,
            unit: Some("Hrs"),
        },
        PriceKey::EbsVolume { volume_type, .. } => Query {
            service_code: "AmazonEC2",
            filters: in_region(vec![("productFamily", "Storage".into()), ("volumeApiName", volume_type.clone())]),
            keep: any,
            unit: Some("GB-Mo"),
        },
        PriceKey::EbsSnapshot { .. } => Query {
            service_code: "AmazonEC2",
            filters: in_region(vec![("productFamily", "Storage Snapshot".into())]),
            keep: standard_snapshot,
            unit: Some("GB-Mo"),
        },
        PriceKey::RdsInstance { class, engine, deployment, .. } => Query {
            service_code: "AmazonRDS",
            filters: in_region(vec![
                ("productFamily", "Database Instance".into()),
                ("instanceType", class.clone()),
                ("databaseEngine", engine.price_list_name().into()),
                ("deploymentOption", deployment.price_list_name().into()),
                // Not EC2's spelling: RDS writes `license` in lower case.
                ("licenseModel", "No license required".into()),
            ]),
            keep: any,
            unit: Some("Hrs"),
        },
        PriceKey::RdsStorage { storage_type, deployment, .. } => Query {
            service_code: "AmazonRDS",
            filters: in_region(vec![
                ("productFamily", "Database Storage".into()),
                ("volumeType", rds_volume_type(storage_type)?.into()),
                ("deploymentOption", deployment.price_list_name().into()),
                ("databaseEngine", "Any".into()),
            ]),
            keep: any,
            unit: Some("GB-Mo"),
        },
        PriceKey::RdsBackup { .. } => Query {
            service_code: "AmazonRDS",
            filters: in_region(vec![("productFamily", "Storage Snapshot".into()), ("databaseEngine", "Any".into())]),
            keep: rds_backup,
            unit: Some("GB-Mo"),
        },
        // Public IPv4 products have no product family, and no location type to match.
        PriceKey::PublicIpv4 { .. } => Query {
            service_code: "AmazonVPC",
            filters: vec![("group", "VPCPublicIPv4Address".into()), ("regionCode", region.clone())],
            keep: idle_ipv4,
            unit: Some("Hrs"),
        },
        PriceKey::LambdaRequest { .. } => Query {
            service_code: "AWSLambda",
            filters: vec![("group", "AWS-Lambda-Requests".into()), ("regionCode", region.clone())],
            keep: any,
            unit: Some("Requests"),
        },
        PriceKey::LambdaGbSecond { architecture, .. } => Query {
            service_code: "AWSLambda",
            filters: vec![
                (
                    "group",
                    match architecture {
                        Architecture::X86_64 => "AWS-Lambda-Duration",
                        Architecture::Arm64 => "AWS-Lambda-Duration-ARM",
                    }
                    .into(),
                ),
                ("regionCode", region.clone()),
            ],
            keep: any,
            unit: None,
        },
    })
}

/// The on-demand prices of the products `query` keeps: the first tier of each price
/// dimension in its unit, above zero (free-tier and reservation rows are priced $0).
pub fn on_demand_prices(query: &Query, products: &[Value]) -> Vec<f64> {
    let mut prices: Vec<f64> = Vec::new();
    for product in products {
        if !(query.keep)(&product["product"]["attributes"]) {
            continue;
        }
        let Some(terms) = product["terms"]["OnDemand"].as_object() else { continue };
        for term in terms.values() {
            let Some(dimensions) = term["priceDimensions"].as_object() else { continue };
            for dimension in dimensions.values() {
                let first_tier = dimension["beginRange"].as_str().is_none_or(|b| b == "0");
                let unit_ok = query.unit.is_none_or(|u| dimension["unit"].as_str() == Some(u));
                let usd = dimension["pricePerUnit"]["USD"].as_str().and_then(|p| p.parse::<f64>().ok());
                if let (true, true, Some(usd)) = (first_tier, unit_ok, usd)
                    && usd.is_finite()
                    && usd > 0.0
                    && !prices.iter().any(|p| (p - usd).abs() < 1e-12)
                {
                    prices.push(usd);
                }
            }
        }
    }
    prices
}

#[async_trait]
impl PriceSource for AwsPriceList {
    async fn unit_price(&self, key: &PriceKey) -> Result<Option<Price>> {
        let Some(query) = query(key) else { return Ok(None) };
        let filters = query
            .filters
            .iter()
            .map(|(field, value)| {
                Filter::builder()
                    .r#type(FilterType::TermMatch)
                    .field(*field)
                    .value(value)
                    .build()
                    .map_err(|e| JanitorError::InvalidInput(format!("price list filter {field}={value}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let pricing = self.clients.pricing().await?;
        let mut pages = pricing
            .get_products()
            .service_code(query.service_code)
            .set_filters(Some(filters))
            .format_version("aws_v1")
            .max_results(100)
            .into_paginator()
            .send();
        let mut products = Vec::new();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            read += 1;
            if read > MAX_PAGES {
                tracing::warn!(price = %key, "the Price List matched more than {MAX_PAGES} pages; not one price");
                return Ok(None);
            }
            let page = page.map_err(|e| JanitorError::from_sdk("pricing", "GetProducts", e))?;
            // Each item is a JSON document of its own, in a string.
            for item in page.price_list() {
                let product: Value = serde_json::from_str(item).map_err(|e| JanitorError::Aws {
                    service: "pricing",
                    operation: "GetProducts",
                    message: format!("a price list item is not JSON: {e}"),
                })?;
                products.push(product);
            }
        }
        let prices = on_demand_prices(&query, &products);
        match prices.as_slice() {
            [usd] => Ok(Some(Price { usd: *usd, origin: PriceOrigin::PriceListApi })),
            [] if !products.is_empty() => {
                // Products matched but none priced in the expected unit: AWS changed something.
                let units: Vec<&str> = products
                    .iter()
                    .flat_map(|p| p["terms"]["OnDemand"].as_object().into_iter().flat_map(|t| t.values()))
                    .flat_map(|t| t["priceDimensions"].as_object().into_iter().flat_map(|d| d.values()))
                    .filter_map(|d| d["unit"].as_str())
                    .collect();
                tracing::warn!(price = %key, expected = ?query.unit, ?units, "the Price List's products have no usable price");
                Ok(None)
            }
            [] => Ok(None),
            several => {
                tracing::warn!(price = %key, ?several, "the Price List answered several prices; not one price");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(usage: &str, unit: &str, usd: &str, begin: &str) -> Value {
        json!({
            "product": { "attributes": { "usagetype": usage } },
            "terms": { "OnDemand": { "SKU.JRTCKXETXF": { "priceDimensions": {
                "SKU.JRTCKXETXF.6YS6EN2CT7": { "unit": unit, "beginRange": begin, "endRange": "Inf",
                    "pricePerUnit": { "USD": usd } } } } } },
        })
    }

    #[test]
    fn the_standard_snapshot_tier_is_told_from_the_archive_tier() {
        let q = query(&PriceKey::EbsSnapshot { region: "eu-west-2".into() }).unwrap();
        let products = [
            item("EUW2-EBS:SnapshotArchiveStorage", "GB-Mo", "0.0132500000", "0"),
            item("EUW2-EBS:SnapshotUsage", "GB-Mo", "0.0530000000", "0"),
            item("EUW2-EBS:SnapshotUsageUnderBilling", "GB-Mo", "0.0000000000", "0"),
        ];
        assert_eq!(on_demand_prices(&q, &products), vec![0.053]);
    }

    #[test]
    fn only_the_first_tier_in_the_unit_above_zero_counts() {
        let q = query(&PriceKey::LambdaGbSecond { region: "us-east-1".into(), architecture: Architecture::X86_64 })
            .unwrap();
        let products = [
            item("Lambda-GB-Second", "Lambda-GB-Second", "0.0000166667", "0"),
            item("Lambda-GB-Second", "Lambda-GB-Second", "0.0000150000", "6000000000"),
        ];
        assert_eq!(on_demand_prices(&q, &products), vec![0.0000166667]);
        let ec2 =
            query(&PriceKey::Ec2Instance { region: "us-east-1".into(), instance_type: "t3.micro".into() }).unwrap();
        assert!(on_demand_prices(&ec2, &[item("BoxUsage:t3.micro", "Quantity", "1.0", "0")]).is_empty());
        assert_eq!(on_demand_prices(&ec2, &[item("BoxUsage:t3.micro", "Hrs", "0.0104000000", "0")]), vec![0.0104]);
        assert!(ec2.filters.contains(&("locationType", "AWS Region".to_owned())));
    }
}
