//! The Price List Query API as the stub beside moto serves it (`X-Amz-Target:
//! AWSPriceListService.GetProducts`, AWS JSON 1.1): products in the Price List's own shape
//! (`product.attributes`, `terms.OnDemand.<sku>.<term>.priceDimensions.<rate>`), each
//! answered as a JSON document in a string, filtered by exact attribute match and paged with
//! `NextToken`. The products are a slice of the real list for the twin estate, with the
//! neighbours a careless query would also match: a Local Zone's volumes under the parent
//! region's code, the snapshot archive tier, unused capacity reservations, a public IPv4
//! block, and Lambda's later duration tiers.

use serde_json::{Value, json};

/// The most products one GetProducts page holds.
pub const MAX_RESULTS: usize = 100;

/// One product of the list: its service, attributes and on-demand price dimensions
/// (`(unit, beginRange, USD)`).
pub fn product(service: &str, family: Option<&str>, attributes: Value, dimensions: &[(&str, &str, &str)]) -> Value {
    let sku = format!("SKU{:016X}", fxhash(&format!("{service}{attributes}")));
    let term = format!("{sku}.JRTCKXETXF");
    let mut dims = serde_json::Map::new();
    for (i, (unit, begin, usd)) in dimensions.iter().enumerate() {
        let rate = format!("{term}.RATE{i:06}");
        dims.insert(
            rate.clone(),
            json!({
                "unit": unit, "beginRange": begin, "endRange": "Inf", "appliesTo": [],
                "description": format!("${usd} per {unit}"), "rateCode": rate,
                "pricePerUnit": { "USD": usd },
            }),
        );
    }
    let mut attributes = attributes;
    attributes["servicecode"] = json!(service);
    let mut product = json!({ "sku": sku, "attributes": attributes });
    if let Some(family) = family {
        product["productFamily"] = json!(family);
    }
    json!({
        "product": product,
        "serviceCode": service,
        "terms": {
            "OnDemand": { term.clone(): {
                "priceDimensions": dims, "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
                "offerTermCode": "JRTCKXETXF", "termAttributes": {},
            } },
            "Reserved": {},
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    })
}

/// A small, stable hash for SKUs (no randomness: the same list every run).
fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub fn ec2_instance(region: &str, instance_type: &str, capacity: &str, location_type: &str, usd: &str) -> Value {
    product(
        "AmazonEC2",
        Some("Compute Instance"),
        json!({
            "instanceType": instance_type, "regionCode": region, "locationType": location_type,
            "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
            "capacitystatus": capacity, "licenseModel": "No License required", "marketoption": "OnDemand",
            "usagetype": format!("BoxUsage:{instance_type}"), "operation": "RunInstances",
        }),
        &[("Hrs", "0", usd)],
    )
}

fn ebs(region: &str, volume: &str, location_type: &str, usd: &str) -> Value {
    product(
        "AmazonEC2",
        Some("Storage"),
        json!({ "volumeApiName": volume, "regionCode": region, "locationType": location_type,
                "usagetype": format!("EBS:VolumeUsage.{volume}") }),
        &[("GB-Mo", "0", usd)],
    )
}

fn snapshot(region: &str, usage: &str, usd: &str) -> Value {
    product(
        "AmazonEC2",
        Some("Storage Snapshot"),
        json!({ "regionCode": region, "locationType": "AWS Region", "usagetype": usage }),
        &[("GB-Mo", "0", usd)],
    )
}

fn rds(region: &str, class: &str, engine: &str, deployment: &str, usd: &str) -> Value {
    product(
        "AmazonRDS",
        Some("Database Instance"),
        json!({ "instanceType": class, "databaseEngine": engine, "deploymentOption": deployment,
                "regionCode": region, "locationType": "AWS Region", "licenseModel": "No license required",
                "usagetype": format!("InstanceUsage:{class}") }),
        &[("Hrs", "0", usd)],
    )
}

fn rds_storage(region: &str, volume_type: &str, deployment: &str, usd: &str) -> Value {
    product(
        "AmazonRDS",
        Some("Database Storage"),
        json!({ "volumeType": volume_type, "deploymentOption": deployment, "databaseEngine": "Any",
                "regionCode": region, "locationType": "AWS Region", "usagetype": "RDS:GP2-Storage" }),
        &[("GB-Mo", "0", usd)],
    )
}

fn regional_prefix(region: &str) -> &'static str {
    match region {
        "eu-west-1" => "EU-",
        _ => "",
    }
}

/// The slice of the Price List the twin estate needs (us-east-1, eu-west-1), at the prices
/// AWS lists, and the neighbours each query must not pick up.
pub fn twin_price_list() -> Vec<Value> {
    let mut list = Vec::new();
    for (region, t3_micro, gp3, ipv4_prefix) in
        [("us-east-1", "0.0104000000", "0.0800000000", "USE1"), ("eu-west-1", "0.0114000000", "0.0880000000", "EU")]
    {
        let pfx = regional_prefix(region);
        list.push(ec2_instance(region, "t3.micro", "Used", "AWS Region", t3_micro));
        list.push(ec2_instance(region, "t3.micro", "UnusedCapacityReservation", "AWS Region", t3_micro));
        list.push(ec2_instance(region, "t3.micro", "AllocatedCapacityReservation", "AWS Region", "0.0000000000"));
        list.push(ebs(region, "gp3", "AWS Region", gp3));
        list.push(snapshot(region, &format!("{pfx}EBS:SnapshotUsage"), "0.0500000000"));
        list.push(snapshot(region, &format!("{pfx}EBS:SnapshotArchiveStorage"), "0.0125000000"));
        for usage in ["InUseAddress", "IdleAddress"] {
            list.push(product(
                "AmazonVPC",
                None,
                json!({ "group": "VPCPublicIPv4Address", "regionCode": region,
                        "usagetype": format!("{ipv4_prefix}-PublicIPv4:{usage}") }),
                &[("Hrs", "0", "0.0050000000")],
            ));
        }
        list.push(product(
            "AmazonVPC",
            None,
            json!({ "group": "VPCPublicIPv4Address", "regionCode": region,
                    "usagetype": format!("{ipv4_prefix}-PublicIPv4:ContiguousBlock") }),
            &[("Hrs", "0", "0.0080000000")],
        ));
        list.push(product(
            "AWSLambda",
            Some("Serverless"),
            json!({ "group": "AWS-Lambda-Requests", "regionCode": region, "usagetype": "Request" }),
            &[("Requests", "0", "0.0000002000")],
        ));
        list.push(product(
            "AWSLambda",
            Some("Serverless"),
            json!({ "group": "AWS-Lambda-Duration", "regionCode": region, "usagetype": "Lambda-GB-Second" }),
            &[
                ("Lambda-GB-Second", "0", "0.0000166667"),
                ("Lambda-GB-Second", "6000000000", "0.0000150000"),
                ("Lambda-GB-Second", "15000000000", "0.0000133334"),
            ],
        ));
        list.push(product(
            "AmazonRDS",
            Some("Storage Snapshot"),
            json!({ "databaseEngine": "Any", "regionCode": region, "locationType": "AWS Region",
                    "usagetype": format!("{pfx}RDS:ChargedBackupUsage") }),
            &[("GB-Mo", "0", "0.0950000000")],
        ));
    }
    // us-east-1's Local Zone (Boston) carries the parent's code; its volumes cost more.
    list.push(ebs("us-east-1", "gp3", "AWS Local Zone", "0.1000000000"));
    list.push(rds("us-east-1", "db.t3.micro", "PostgreSQL", "Single-AZ", "0.0180000000"));
    list.push(rds("us-east-1", "db.t3.micro", "PostgreSQL", "Multi-AZ", "0.0360000000"));
    list.push(rds("us-east-1", "db.t3.micro", "MySQL", "Single-AZ", "0.0170000000"));
    list.push(rds("eu-west-1", "db.t3.micro", "PostgreSQL", "Single-AZ", "0.0190000000"));
    list.push(rds_storage("us-east-1", "General Purpose", "Single-AZ", "0.1150000000"));
    list.push(rds_storage("eu-west-1", "General Purpose", "Single-AZ", "0.1270000000"));
    list
}

/// `GetProducts` over `list`: the service's products whose every filter matches exactly
/// (`productFamily` is the product's own field, the rest its attributes), a page at a time.
pub fn get_products(list: &[Value], body: &Value) -> Result<Value, (&'static str, String)> {
    let service = body["ServiceCode"].as_str().ok_or(("ValidationException", "ServiceCode is required".to_owned()))?;
    let size = match body["MaxResults"].as_u64() {
        None => MAX_RESULTS,
        Some(n) if (1..=MAX_RESULTS as u64).contains(&n) => n as usize,
        Some(n) => return Err(("ValidationException", format!("MaxResults must be between 1 and 100, got {n}"))),
    };
    let mut filters = Vec::new();
    for filter in body["Filters"].as_array().into_iter().flatten() {
        if filter["Type"] != "TERM_MATCH" {
            return Err(("InvalidParameterException", format!("the stub matches TERM_MATCH only: {filter}")));
        }
        match (filter["Field"].as_str(), filter["Value"].as_str()) {
            (Some(field), Some(value)) => filters.push((field, value)),
            _ => return Err(("InvalidParameterException", format!("a filter needs Field and Value: {filter}"))),
        }
    }
    let matching: Vec<&Value> = list
        .iter()
        .filter(|p| p["serviceCode"] == service)
        .filter(|p| {
            filters.iter().all(|(field, value)| {
                let have = if *field == "productFamily" {
                    &p["product"]["productFamily"]
                } else {
                    &p["product"]["attributes"][*field]
                };
                have.as_str() == Some(*value)
            })
        })
        .collect();
    let offset: usize = match body["NextToken"].as_str() {
        None | Some("") => 0,
        Some(token) => token.parse().map_err(|_| ("InvalidNextTokenException", "bad token".to_owned()))?,
    };
    let page: Vec<String> = matching.iter().skip(offset).take(size).map(|p| p.to_string()).collect();
    let mut out = json!({ "FormatVersion": "aws_v1", "PriceList": page });
    if offset + size < matching.len() {
        out["NextToken"] = json!((offset + size).to_string());
    }
    Ok(out)
}
