//! Reads the state a run left behind, straight from the emulator, for tests to assert on.

use janitor_core::aws::AwsClients;

use crate::HOME_ACCOUNT;

/// An instance's state name in the home account (`running`, `stopped`, …).
pub async fn instance_state(clients: &AwsClients, region: &str, id: &str) -> String {
    let ec2 = clients.ec2(HOME_ACCOUNT, region).await.unwrap();
    let out = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()[0].instances()[0].state().unwrap().name().unwrap().as_str().to_owned()
}

/// Whether the home account still holds this Elastic IP allocation.
pub async fn eip_exists(clients: &AwsClients, region: &str, allocation: &str) -> bool {
    let ec2 = clients.ec2(HOME_ACCOUNT, region).await.unwrap();
    ec2.describe_addresses().allocation_ids(allocation).send().await.is_ok_and(|o| !o.addresses().is_empty())
}

/// Whether all four Block Public Access settings are on for the bucket.
pub async fn bucket_blocked(clients: &AwsClients, account: &str, region: &str, bucket: &str) -> bool {
    let s3 = clients.s3(account, region).await.unwrap();
    match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(_) => false,
    }
}

/// The tag keys on an IAM user.
pub async fn user_tags(clients: &AwsClients, account: &str, user: &str) -> Vec<String> {
    let iam = clients.iam(account).await.unwrap();
    let out = iam.list_user_tags().user_name(user).send().await.unwrap();
    out.tags().iter().map(|t| t.key().to_owned()).collect()
}

/// Whether the janitor's final snapshot of this DB instance exists (`janitor-final-<id>-<ts>`).
pub async fn has_final_snapshot(clients: &AwsClients, region: &str, db: &str) -> bool {
    let rds = clients.rds(HOME_ACCOUNT, region).await.unwrap();
    let out = rds.describe_db_snapshots().db_instance_identifier(db).send().await.unwrap();
    let prefix = format!("janitor-final-{db}-");
    out.db_snapshots().iter().any(|s| s.db_snapshot_identifier().unwrap_or_default().starts_with(&prefix))
}

/// Whether the DB instance still exists in the home account.
pub async fn db_exists(clients: &AwsClients, region: &str, db: &str) -> bool {
    let rds = clients.rds(HOME_ACCOUNT, region).await.unwrap();
    rds.describe_db_instances().db_instance_identifier(db).send().await.is_ok()
}

/// Whether the volume still exists (a deleted one is gone at once on the emulator).
pub async fn volume_exists(clients: &AwsClients, region: &str, id: &str) -> bool {
    let ec2 = clients.ec2(HOME_ACCOUNT, region).await.unwrap();
    match ec2.describe_volumes().volume_ids(id).send().await {
        Ok(out) => !out.volumes().is_empty(),
        Err(_) => false,
    }
}

/// The completed snapshots the janitor kept of `volume` (tagged `janitor:snapshot-of`).
pub async fn kept_snapshots(clients: &AwsClients, region: &str, volume: &str) -> Vec<String> {
    let ec2 = clients.ec2(HOME_ACCOUNT, region).await.unwrap();
    let filter = aws_sdk_ec2::types::Filter::builder().name("tag:janitor:snapshot-of").values(volume).build();
    let out = ec2.describe_snapshots().owner_ids("self").filters(filter).send().await.unwrap();
    out.snapshots()
        .iter()
        .filter(|s| s.state().is_some_and(|st| st.as_str() == "completed") && s.volume_id() == Some(volume))
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect()
}

/// A security group's TCP ingress as `(port, cidr)` pairs, IPv4 and IPv6 alike.
pub async fn group_ingress(clients: &AwsClients, region: &str, group: &str) -> Vec<(i32, String)> {
    let ec2 = clients.ec2(HOME_ACCOUNT, region).await.unwrap();
    let out = ec2.describe_security_groups().group_ids(group).send().await.unwrap();
    let mut pairs = Vec::new();
    for p in out.security_groups().iter().flat_map(|g| g.ip_permissions()) {
        let port = p.from_port().unwrap_or(-1);
        pairs.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| (port, c.to_owned())));
        pairs.extend(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()).map(|c| (port, c.to_owned())));
    }
    pairs.sort();
    pairs
}
