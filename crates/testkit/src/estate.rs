//! Seeds estates through the real AWS SDK: the twin estate (a violating and a compliant twin
//! of every rule) used by the tests and the demo, and a large estate for the benchmark.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use chrono::{DateTime, Duration, Utc};
use janitor_core::aws::AwsClients;
use janitor_core::metrics::window_ending;
use janitor_core::model::{ResourceKey, ResourceKind, Snooze};
use janitor_core::ports::SnoozeStore;

use crate::HOME_ACCOUNT;

pub const SECOND_REGION: &str = "eu-west-1";
pub const MEMBER_ACCOUNT: &str = "222222222222";
/// Tags that satisfy the default required-tags rule.
pub const COMPLIANT_TAGS: [(&str, &str); 3] =
    [("Owner", "alice@example.com"), ("CostCenter", "cc-42"), ("Project", "atlas")];

pub fn public_read_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }]
    })
    .to_string()
}

pub struct Seeder {
    pub clients: AwsClients,
    pub account: String,
    /// Metric datapoints are placed in the window the metric check will read at `now`.
    pub now: DateTime<Utc>,
}

impl Seeder {
    pub fn new(clients: AwsClients, account: &str) -> Seeder {
        Seeder { clients, account: account.to_owned(), now: Utc::now() }
    }

    /// Instances with an encrypted root volume (an unencrypted one is its own twin).
    pub async fn instances(&self, region: &str, count: i32, tags: &[(&str, &str)]) -> Result<Vec<String>> {
        use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, ResourceType, Tag, TagSpecification};
        let ec2 = self.clients.ec2(&self.account, region).await?;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let out = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/sda1")
                    .ebs(EbsBlockDevice::builder().volume_size(8).encrypted(true).build())
                    .build(),
            )
            .set_tag_specifications((!tags.is_empty()).then(|| vec![spec.build()]))
            .send()
            .await
            .context("RunInstances")?;
        Ok(out.instances().iter().filter_map(|i| i.instance_id().map(str::to_owned)).collect())
    }

    pub async fn instance(&self, region: &str, tags: &[(&str, &str)]) -> Result<String> {
        self.instances(region, 1, tags).await?.pop().context("no instance started")
    }

    /// An EBS volume in the region's first zone, attached to `instance` if given.
    pub async fn volume(
        &self,
        region: &str,
        encrypted: bool,
        instance: Option<&str>,
        tags: &[(&str, &str)],
    ) -> Result<String> {
        use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
        let ec2 = self.clients.ec2(&self.account, region).await?;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Volume);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let out = ec2
            .create_volume()
            .availability_zone(format!("{region}a"))
            .size(10)
            .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
            .encrypted(encrypted)
            .set_tag_specifications((!tags.is_empty()).then(|| vec![spec.build()]))
            .send()
            .await
            .context("CreateVolume")?;
        let id = out.volume_id().context("no volume id")?.to_owned();
        if let Some(instance) = instance {
            ec2.attach_volume()
                .volume_id(&id)
                .instance_id(instance)
                .device("/dev/sdf")
                .send()
                .await
                .context("AttachVolume")?;
        }
        Ok(id)
    }

    /// A security group in the region's default VPC, open to each `(port, cidr)` over TCP.
    pub async fn security_group(
        &self,
        region: &str,
        name: &str,
        ingress: &[(i32, &str)],
        tags: &[(&str, &str)],
    ) -> Result<String> {
        use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification};
        let ec2 = self.clients.ec2(&self.account, region).await?;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        // No spaces in the description: the emulator's signature check refuses such a form body.
        let out = ec2
            .create_security_group()
            .group_name(name)
            .description("janitor-twin")
            .set_tag_specifications((!tags.is_empty()).then(|| vec![spec.build()]))
            .send()
            .await
            .context("CreateSecurityGroup")?;
        let id = out.group_id().context("no group id")?.to_owned();
        let permissions: Vec<IpPermission> = ingress
            .iter()
            .map(|(port, cidr)| {
                let p = IpPermission::builder().ip_protocol("tcp").from_port(*port).to_port(*port);
                if cidr.contains(':') {
                    p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(*cidr).build()).build()
                } else {
                    p.ip_ranges(IpRange::builder().cidr_ip(*cidr).build()).build()
                }
            })
            .collect();
        if !permissions.is_empty() {
            ec2.authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(permissions))
                .send()
                .await
                .context("AuthorizeSecurityGroupIngress")?;
        }
        Ok(id)
    }

    /// A snapshot of `volume`, owned by this account.
    pub async fn ebs_snapshot(&self, region: &str, volume: &str, tags: &[(&str, &str)]) -> Result<String> {
        use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
        let ec2 = self.clients.ec2(&self.account, region).await?;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Snapshot);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let out = ec2
            .create_snapshot()
            .volume_id(volume)
            .set_tag_specifications((!tags.is_empty()).then(|| vec![spec.build()]))
            .send()
            .await
            .context("CreateSnapshot")?;
        Ok(out.snapshot_id().context("no snapshot id")?.to_owned())
    }

    /// A manual snapshot `id` of the DB instance `db`.
    pub async fn db_snapshot(&self, region: &str, db: &str, id: &str, tags: &[(&str, &str)]) -> Result<()> {
        use aws_sdk_rds::types::Tag;
        let rds = self.clients.rds(&self.account, region).await?;
        rds.create_db_snapshot()
            .db_instance_identifier(db)
            .db_snapshot_identifier(id)
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
            .send()
            .await
            .context("CreateDBSnapshot")?;
        Ok(())
    }

    pub async fn stop(&self, region: &str, id: &str) -> Result<()> {
        let ec2 = self.clients.ec2(&self.account, region).await?;
        ec2.stop_instances().instance_ids(id).send().await.context("StopInstances")?;
        Ok(())
    }

    /// One datapoint per day of the metric check's window, oldest first; `None` leaves a gap.
    pub async fn daily_metric(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dimension: &str,
        series: &[(&str, Vec<Option<f64>>)],
    ) -> Result<()> {
        let days = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0) as u32;
        let window = window_ending(self.now, days);
        let mut data = Vec::new();
        for (id, values) in series {
            for (day, value) in values.iter().enumerate() {
                let Some(value) = value else { continue };
                let at = window.start + Duration::days(day as i64) + Duration::hours(12);
                data.push(
                    MetricDatum::builder()
                        .metric_name(metric)
                        .dimensions(Dimension::builder().name(dimension).value(*id).build())
                        .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                        .value(*value)
                        .build(),
                );
            }
        }
        let cloudwatch = self.clients.cloudwatch(&self.account, region).await?;
        for chunk in data.chunks(1000) {
            cloudwatch
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .context("PutMetricData")?;
        }
        Ok(())
    }

    pub async fn daily_cpu(&self, region: &str, series: &[(&str, Vec<Option<f64>>)]) -> Result<()> {
        self.daily_metric(region, "AWS/EC2", "CPUUtilization", "InstanceId", series).await
    }

    pub async fn daily_connections(&self, region: &str, series: &[(&str, Vec<Option<f64>>)]) -> Result<()> {
        self.daily_metric(region, "AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", series).await
    }

    /// A DB instance with encrypted storage.
    pub async fn database(&self, region: &str, id: &str, tags: &[(&str, &str)]) -> Result<()> {
        self.database_with(region, id, true, tags).await
    }

    pub async fn database_with(&self, region: &str, id: &str, encrypted: bool, tags: &[(&str, &str)]) -> Result<()> {
        use aws_sdk_rds::types::Tag;
        let rds = self.clients.rds(&self.account, region).await?;
        rds.create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .master_username("janitor")
            .master_user_password("not-a-real-password-1")
            .allocated_storage(20)
            .storage_encrypted(encrypted)
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
            .send()
            .await
            .context("CreateDBInstance")?;
        Ok(())
    }

    /// A read replica `id` of the instance `source`.
    pub async fn read_replica(&self, region: &str, id: &str, source: &str, tags: &[(&str, &str)]) -> Result<()> {
        use aws_sdk_rds::types::Tag;
        let rds = self.clients.rds(&self.account, region).await?;
        rds.create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(source)
            .db_instance_class("db.t3.micro")
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
            .send()
            .await
            .context("CreateDBInstanceReadReplica")?;
        Ok(())
    }

    /// An Aurora PostgreSQL cluster `cluster` (deletion protection as given) with one
    /// instance `member`.
    pub async fn aurora_member(
        &self,
        region: &str,
        cluster: &str,
        member: &str,
        deletion_protection: bool,
        tags: &[(&str, &str)],
    ) -> Result<()> {
        use aws_sdk_rds::types::Tag;
        let rds = self.clients.rds(&self.account, region).await?;
        rds.create_db_cluster()
            .db_cluster_identifier(cluster)
            .engine("aurora-postgresql")
            .master_username("janitor")
            .master_user_password("not-a-real-password-1")
            .deletion_protection(deletion_protection)
            .send()
            .await
            .context("CreateDBCluster")?;
        rds.create_db_instance()
            .db_instance_identifier(member)
            .db_cluster_identifier(cluster)
            .db_instance_class("db.r6g.large")
            .engine("aurora-postgresql")
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
            .send()
            .await
            .context("CreateDBInstance in a cluster")?;
        Ok(())
    }

    /// Allocates an Elastic IP, associated with `attach_to` when given.
    pub async fn elastic_ip(&self, region: &str, attach_to: Option<&str>) -> Result<String> {
        let ec2 = self.clients.ec2(&self.account, region).await?;
        let out = ec2
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .send()
            .await
            .context("AllocateAddress")?;
        let allocation = out.allocation_id().context("no allocation id")?.to_owned();
        if let Some(instance) = attach_to {
            ec2.associate_address()
                .allocation_id(&allocation)
                .instance_id(instance)
                .send()
                .await
                .context("AssociateAddress")?;
        }
        Ok(allocation)
    }

    pub async fn user(&self, name: &str, console_password: bool, mfa: bool, tags: &[(&str, &str)]) -> Result<()> {
        use aws_sdk_iam::types::Tag;
        let iam = self.clients.iam(&self.account).await?;
        let tags: Vec<Tag> =
            tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?;
        iam.create_user().user_name(name).set_tags(Some(tags)).send().await.context("CreateUser")?;
        if console_password {
            iam.create_login_profile()
                .user_name(name)
                .password("Correct-Horse-9")
                .send()
                .await
                .context("CreateLoginProfile")?;
        }
        if mfa {
            let device = iam
                .create_virtual_mfa_device()
                .virtual_mfa_device_name(name)
                .send()
                .await
                .context("CreateVirtualMFADevice")?;
            let serial = device.virtual_mfa_device().map(|d| d.serial_number().to_owned()).context("no MFA serial")?;
            iam.enable_mfa_device()
                .user_name(name)
                .serial_number(serial)
                .authentication_code1("123456")
                .authentication_code2("654321")
                .send()
                .await
                .context("EnableMFADevice")?;
        }
        Ok(())
    }

    pub async fn bucket(&self, name: &str, region: &str) -> Result<()> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let s3 = self.clients.s3(&self.account, region).await?;
        let mut create = s3.create_bucket().bucket(name);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        create.send().await.context("CreateBucket")?;
        Ok(())
    }

    /// A Python function that is never run (the emulator only stores it), with its role.
    pub async fn lambda_function(&self, region: &str, name: &str, tags: &[(&str, &str)]) -> Result<String> {
        use aws_sdk_lambda::primitives::Blob;
        use aws_sdk_lambda::types::{FunctionCode, Runtime};
        const ROLE: &str = "janitor-twin-function";
        let iam = self.clients.iam(&self.account).await?;
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = match iam.get_role().role_name(ROLE).send().await {
            Ok(out) => out.role().map(|r| r.arn().to_owned()),
            Err(_) => iam
                .create_role()
                .role_name(ROLE)
                .assume_role_policy_document(trust)
                .send()
                .await
                .context("CreateRole")?
                .role()
                .map(|r| r.arn().to_owned()),
        }
        .context("no role ARN")?;
        // The smallest valid zip archive: an end-of-central-directory record and nothing else.
        let mut empty_zip = b"PK\x05\x06".to_vec();
        empty_zip.resize(22, 0);
        let lambda = self.clients.lambda(&self.account, region).await?;
        let out = lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Python312)
            .handler("index.handler")
            .role(role)
            .code(FunctionCode::builder().zip_file(Blob::new(empty_zip)).build())
            .set_tags(Some(tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()))
            .send()
            .await
            .context("CreateFunction")?;
        Ok(out.function_arn().context("no function ARN")?.to_owned())
    }

    /// One small object, so the bucket is not empty.
    pub async fn object(&self, bucket: &str, region: &str, key: &str) -> Result<()> {
        let s3 = self.clients.s3(&self.account, region).await?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"janitor twin"))
            .send()
            .await
            .context("PutObject")?;
        Ok(())
    }

    pub async fn bucket_policy(&self, name: &str, region: &str, policy: &str) -> Result<()> {
        let s3 = self.clients.s3(&self.account, region).await?;
        s3.put_bucket_policy().bucket(name).policy(policy).send().await.context("PutBucketPolicy")?;
        Ok(())
    }

    pub async fn bucket_public_read_acl(&self, name: &str, region: &str) -> Result<()> {
        let s3 = self.clients.s3(&self.account, region).await?;
        s3.put_bucket_acl()
            .bucket(name)
            .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
            .send()
            .await
            .context("PutBucketAcl")?;
        Ok(())
    }

    pub async fn bucket_tags(&self, name: &str, region: &str, tags: &[(&str, &str)]) -> Result<()> {
        use aws_sdk_s3::types::{Tag, Tagging};
        let s3 = self.clients.s3(&self.account, region).await?;
        let tags: Vec<Tag> =
            tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect::<Result<_, _>>()?;
        s3.put_bucket_tagging()
            .bucket(name)
            .tagging(Tagging::builder().set_tag_set(Some(tags)).build()?)
            .send()
            .await
            .context("PutBucketTagging")?;
        Ok(())
    }

    pub async fn bucket_block_all(&self, name: &str, region: &str) -> Result<()> {
        let s3 = self.clients.s3(&self.account, region).await?;
        s3.put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(janitor_core::aws::remediator::full_bucket_block())
            .send()
            .await
            .context("PutPublicAccessBlock")?;
        Ok(())
    }

    pub async fn account_block_all(&self) -> Result<()> {
        let s3control = self.clients.s3control(&self.account).await?;
        let config = aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        s3control
            .put_public_access_block()
            .account_id(&self.account)
            .public_access_block_configuration(config)
            .send()
            .await
            .context("s3control PutPublicAccessBlock")?;
        Ok(())
    }

    pub fn key(&self, region: &str, kind: ResourceKind, id: &str) -> ResourceKey {
        ResourceKey::new(&self.account, region, kind, id)
    }
}

/// What the twin estate holds and what a scan must find in it.
#[derive(Debug, Default)]
pub struct TwinEstate {
    /// Named resources (e.g. `idle` → `i-...`) for assertions.
    pub ids: BTreeMap<String, String>,
    pub expected_findings: BTreeSet<String>,
    /// Resources a run must never touch: protected, snoozed, compliant twins.
    pub untouchable: BTreeSet<String>,
}

impl TwinEstate {
    pub fn id(&self, name: &str) -> &str {
        self.ids.get(name).map(String::as_str).unwrap_or_else(|| panic!("no resource named {name} in the estate"))
    }
}

fn with_required<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut tags = COMPLIANT_TAGS.to_vec();
    tags.extend_from_slice(extra);
    tags
}

/// The SSO role people launch Service Catalog products through, and the allow-list entry
/// that admits it (seed 000).
const SSO_DEVELOPER_ROLE: &str = "AWSReservedSSO_Developer_0123abcd";
pub const ALLOWED_LAUNCHERS: &str = "arn:aws:iam::*:role/AWSReservedSSO_Developer_*";
/// The launcher allow-list as kept in the run bucket.
pub const ALLOW_LIST_BODY: &str =
    "# who may launch Service Catalog products\narn:aws:iam::*:role/AWSReservedSSO_Developer_*\n";

fn sso_launch(person: &str) -> (String, Option<String>) {
    (
        format!("arn:aws:iam::{HOME_ACCOUNT}:role/{SSO_DEVELOPER_ROLE}"),
        Some(format!("arn:aws:sts::{HOME_ACCOUNT}:assumed-role/{SSO_DEVELOPER_ROLE}/{person}")),
    )
}

/// The Service Catalog twins (seed 000), all in the home account's first region, by twin
/// name: stale, fresh, badly named, launched by someone not allowed, carol's six products
/// (her sixth is one too many), and a badly named one protected and one snoozed.
pub fn catalog_twins(now: chrono::DateTime<Utc>) -> Vec<(String, crate::service_catalog::StubProduct)> {
    let product = |id: &str, name: &str, launcher: (String, Option<String>), days_old: i64, tags: &[(&str, &str)]| {
        crate::service_catalog::StubProduct {
            id: id.to_owned(),
            account: HOME_ACCOUNT.to_owned(),
            region: crate::HOME_REGION.to_owned(),
            name: name.to_owned(),
            product_name: "sandbox-vpc".to_owned(),
            user_arn: launcher.0,
            user_arn_session: launcher.1,
            created: now - Duration::days(days_old),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    };
    let mallory = (format!("arn:aws:iam::{HOME_ACCOUNT}:user/mallory"), None);
    let mut twins = vec![
        ("sc-stale", product("pp-twinstale0001", "payments-sandbox", sso_launch("alice@example.com"), 120, &[])),
        ("sc-fresh", product("pp-twinfresh0001", "payments-api", sso_launch("alice@example.com"), 10, &[])),
        ("sc-bad-name", product("pp-twinbadname01", "Payments_Test", sso_launch("bob@example.com"), 5, &[])),
        ("sc-rogue", product("pp-twinrogue0001", "mallory-lab", mallory, 3, &[])),
        (
            "sc-protected",
            product(
                "pp-twinprotect01",
                "Protected_Name",
                sso_launch("bob@example.com"),
                5,
                &[("janitor:protect", "true")],
            ),
        ),
        ("sc-snoozed", product("pp-twinsnoozed01", "Snoozed_Name", sso_launch("bob@example.com"), 5, &[])),
    ]
    .into_iter()
    .map(|(twin, p)| (twin.to_owned(), p))
    .collect::<Vec<_>>();
    for n in 1..=6 {
        let p = product(
            &format!("pp-twincarol000{n}"),
            &format!("carol-env-{n}"),
            sso_launch("carol@example.com"),
            40 - n,
            &[],
        );
        twins.push((format!("sc-carol-{n}"), p));
    }
    twins
}

/// Provisions the Service Catalog twins in the stub (their keys are in [`seed_twins`]'s estate).
pub fn provision_catalog_twins(stub: &crate::service_catalog::ServiceCatalogStub) {
    for (_, product) in catalog_twins(Utc::now()) {
        stub.provision(product);
    }
}

/// Seeds the twin estate in two regions of the home account plus an account-wide scope
/// in a member account whose account-level Block Public Access neutralises a public bucket.
pub async fn seed_twins(home: &Seeder, member: &Seeder, snoozes: &dyn SnoozeStore) -> Result<TwinEstate> {
    let r1 = crate::HOME_REGION;
    let r2 = SECOND_REGION;
    let mut estate = TwinEstate::default();
    let ec2 = ResourceKind::Ec2Instance;

    type Twin<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let instances: [Twin; 12] = [
        ("unused-env", r1, with_required(&[("Environment", "testing")])),
        ("protect-false", r1, with_required(&[("Environment", "unused"), ("janitor:protect", "false")])),
        ("missing-tags", r1, vec![("Owner", "bob@example.com"), ("Environment", "production")]),
        ("idle", r1, with_required(&[("Environment", "production")])),
        ("busy", r1, with_required(&[("Environment", "production")])),
        ("no-data", r1, with_required(&[])),
        ("partial-data", r1, with_required(&[])),
        ("protected", r1, with_required(&[("Environment", "testing"), ("janitor:protect", "true")])),
        ("snoozed", r1, with_required(&[("Environment", "testing")])),
        ("snooze-expired", r1, with_required(&[("Environment", "testing")])),
        ("eu-idle", r2, with_required(&[])),
        ("eu-busy", r2, with_required(&[])),
    ];
    for (name, region, tags) in &instances {
        let id = home.instance(region, tags).await?;
        estate.ids.insert((*name).to_owned(), id);
    }
    // Stopped instances (seed 004: stopped long; the emulator policy's threshold is 0 days).
    for (name, extra) in [
        ("stopped", vec![("Environment", "testing")]),
        ("stopped-protected", vec![("janitor:protect", "true")]),
        ("stopped-snoozed", vec![]),
    ] {
        let id = home.instance(r1, &with_required(&extra)).await?;
        home.stop(r1, &id).await?;
        estate.ids.insert(name.into(), id);
    }

    // Security groups (seeds 002/004): SSH open to the world beside a private range, HTTPS
    // open to the world (not an admin port), RDP open but protected, PostgreSQL open over
    // IPv6 but snoozed.
    for (name, ingress, extra) in [
        ("sg-open-ssh", vec![(22, "0.0.0.0/0"), (22, "10.0.0.0/8")], vec![]),
        ("sg-web", vec![(443, "0.0.0.0/0")], vec![]),
        ("sg-protected", vec![(3389, "0.0.0.0/0")], vec![("janitor:protect", "true")]),
        ("sg-snoozed", vec![(5432, "::/0")], vec![]),
    ] {
        let id = home.security_group(r1, &format!("janitor-twin-{name}"), &ingress, &with_required(&extra)).await?;
        estate.ids.insert(name.into(), id);
    }

    let below = vec![Some(4.9); 7];
    let mut above = vec![Some(1.0); 7];
    above[3] = Some(5.1);
    let mut gaps = vec![Some(1.0); 7];
    gaps[1] = None;
    gaps[5] = None;
    home.daily_cpu(
        r1,
        &[(estate.id("idle"), below.clone()), (estate.id("busy"), above.clone()), (estate.id("partial-data"), gaps)],
    )
    .await?;
    home.daily_cpu(r2, &[(estate.id("eu-idle"), below.clone()), (estate.id("eu-busy"), vec![Some(5.1); 7])]).await?;

    // EBS (seed 004) in the second region: waste and encryption, with their twins.
    let vol_free = home.volume(r2, true, None, &with_required(&[])).await?;
    let vol_plain = home.volume(r2, false, Some(estate.id("eu-busy")), &with_required(&[])).await?;
    let vol_used = home.volume(r2, true, Some(estate.id("eu-busy")), &with_required(&[])).await?;
    let vol_protected = home.volume(r2, true, None, &with_required(&[("janitor:protect", "true")])).await?;
    let vol_snoozed = home.volume(r2, true, None, &with_required(&[])).await?;
    // Old snapshots (seed 004; the emulator policy's threshold is 0 days).
    let snap_old = home.ebs_snapshot(r2, &vol_used, &with_required(&[])).await?;
    let snap_protected = home.ebs_snapshot(r2, &vol_used, &with_required(&[("janitor:protect", "true")])).await?;
    let snap_snoozed = home.ebs_snapshot(r2, &vol_used, &with_required(&[])).await?;
    for (name, id) in [("snap-old", snap_old), ("snap-protected", snap_protected), ("snap-snoozed", snap_snoozed)] {
        estate.ids.insert(name.into(), id);
    }
    for (name, id) in [
        ("vol-unattached", vol_free),
        ("vol-unencrypted", vol_plain),
        ("vol-attached", vol_used),
        ("vol-protected", vol_protected),
        ("vol-snoozed", vol_snoozed),
    ] {
        estate.ids.insert(name.into(), id);
    }

    home.database(r1, "db-idle", &with_required(&[])).await?;
    home.database(r1, "db-busy", &with_required(&[])).await?;
    let mut one_connection = vec![Some(0.0); 7];
    one_connection[6] = Some(1.0);
    home.daily_connections(r1, &[("db-idle", vec![Some(0.0); 7]), ("db-busy", one_connection)]).await?;
    estate.ids.insert("db-idle".into(), "db-idle".into());
    estate.ids.insert("db-busy".into(), "db-busy".into());
    home.db_snapshot(r1, "db-busy", "db-busy-manual", &with_required(&[])).await?;
    home.db_snapshot(r1, "db-busy", "db-busy-kept", &with_required(&[("janitor:protect", "true")])).await?;
    home.database_with(r2, "db-plain", false, &with_required(&[])).await?;
    estate.ids.insert("db-plain".into(), "db-plain".into());

    // Lambda functions (seed 004: unused): none invoked but fn-busy, 12 calls yesterday.
    for (name, extra) in [
        ("fn-unused", vec![]),
        ("fn-busy", vec![]),
        ("fn-protected", vec![("janitor:protect", "true")]),
        ("fn-snoozed", vec![]),
    ] {
        home.lambda_function(r1, &format!("janitor-twin-{name}"), &with_required(&extra)).await?;
        estate.ids.insert(name.into(), format!("janitor-twin-{name}"));
    }
    let mut one_busy_day = vec![None; 30];
    one_busy_day[29] = Some(12.0);
    home.daily_metric(r1, "AWS/Lambda", "Invocations", "FunctionName", &[(estate.id("fn-busy"), one_busy_day)]).await?;

    let free = home.elastic_ip(r1, None).await?;
    let used = home.elastic_ip(r1, Some(estate.id("busy"))).await?;
    let eu_free = home.elastic_ip(r2, None).await?;
    estate.ids.insert("eip-free".into(), free);
    estate.ids.insert("eip-used".into(), used);
    estate.ids.insert("eip-eu-free".into(), eu_free);

    home.user("dana-no-mfa", true, false, &[("Owner", "dana@example.com")]).await?;
    home.user("erin-mfa", true, true, &[]).await?;
    home.user("ci-bot-no-console", false, false, &[]).await?;
    home.user("break-glass", true, false, &[("janitor:protect", "emergency access")]).await?;
    member.user("member-no-mfa", true, false, &[]).await?;

    let policy_bucket = "janitor-twin-public-policy";
    let acl_bucket = "janitor-twin-public-acl";
    let private_bucket = "janitor-twin-private";
    let blocked_bucket = "janitor-twin-bucket-blocked";
    let member_bucket = "janitor-twin-member-account-blocked";
    home.bucket(policy_bucket, r1).await?;
    home.bucket_policy(policy_bucket, r1, &public_read_policy(policy_bucket)).await?;
    home.bucket_tags(policy_bucket, r1, &[("Owner", "web@example.com")]).await?;
    home.bucket(acl_bucket, r2).await?;
    home.bucket_public_read_acl(acl_bucket, r2).await?;
    home.bucket(private_bucket, r1).await?;
    home.bucket(blocked_bucket, r1).await?;
    home.bucket_policy(blocked_bucket, r1, &public_read_policy(blocked_bucket)).await?;
    home.bucket_block_all(blocked_bucket, r1).await?;
    member.bucket(member_bucket, r1).await?;
    member.bucket_policy(member_bucket, r1, &public_read_policy(member_bucket)).await?;
    member.account_block_all().await?;
    // Each of those holds an object; empty buckets (seed 004) are twins of their own.
    for (seeder, bucket, region) in [
        (home, policy_bucket, r1),
        (home, acl_bucket, r2),
        (home, private_bucket, r1),
        (home, blocked_bucket, r1),
        (member, member_bucket, r1),
    ] {
        seeder.object(bucket, region, "index.html").await?;
    }
    let (empty_bucket, empty_protected, empty_snoozed) =
        ("janitor-twin-empty", "janitor-twin-empty-protected", "janitor-twin-empty-snoozed");
    for bucket in [empty_bucket, empty_protected, empty_snoozed] {
        home.bucket(bucket, r1).await?;
        home.bucket_tags(bucket, r1, &COMPLIANT_TAGS).await?;
    }
    home.bucket_tags(empty_protected, r1, &with_required(&[("janitor:protect", "true")])).await?;

    let now = Utc::now();
    for (twin, product) in catalog_twins(now) {
        estate.ids.insert(twin, product.id);
    }
    for key in [
        home.key(r1, ResourceKind::ProvisionedProduct, estate.id("sc-snoozed")),
        home.key(r1, ec2, estate.id("stopped-snoozed")),
        home.key(r1, ResourceKind::SecurityGroup, estate.id("sg-snoozed")),
        home.key(r2, ResourceKind::EbsSnapshot, estate.id("snap-snoozed")),
        home.key(r1, ResourceKind::S3Bucket, empty_snoozed),
        home.key(r1, ResourceKind::LambdaFunction, estate.id("fn-snoozed")),
    ] {
        snoozes.put_snooze(&Snooze { key, until: now + Duration::days(7), by: "U-OWNER".into(), at: now }).await?;
    }
    snoozes
        .put_snooze(&Snooze {
            key: home.key(r2, ResourceKind::EbsVolume, estate.id("vol-snoozed")),
            until: now + Duration::days(7),
            by: "U-OWNER".into(),
            at: now,
        })
        .await?;
    snoozes
        .put_snooze(&Snooze {
            key: home.key(r1, ec2, estate.id("snoozed")),
            until: now + Duration::days(7),
            by: "U-OWNER".into(),
            at: now,
        })
        .await?;
    snoozes
        .put_snooze(&Snooze {
            key: home.key(r1, ec2, estate.id("snooze-expired")),
            until: now - Duration::hours(1),
            by: "U-OWNER".into(),
            at: now - Duration::days(8),
        })
        .await?;

    let mut expected = Vec::new();
    // no-data: running without a CloudWatch datapoint (missing monitoring, seed 002).
    for name in ["unused-env", "protect-false", "missing-tags", "idle", "snooze-expired", "stopped", "no-data"] {
        expected.push(home.key(r1, ec2, estate.id(name)));
    }
    expected.push(home.key(r2, ec2, estate.id("eu-idle")));
    expected.push(home.key(r1, ResourceKind::RdsInstance, "db-idle"));
    expected.push(home.key(r2, ResourceKind::EbsVolume, estate.id("vol-unattached")));
    expected.push(home.key(r2, ResourceKind::EbsVolume, estate.id("vol-unencrypted")));
    expected.push(home.key(r2, ResourceKind::RdsInstance, "db-plain"));
    expected.push(home.key(r1, ResourceKind::SecurityGroup, estate.id("sg-open-ssh")));
    expected.push(home.key(r2, ResourceKind::EbsSnapshot, estate.id("snap-old")));
    expected.push(home.key(r1, ResourceKind::RdsSnapshot, "db-busy-manual"));
    expected.push(home.key(r1, ResourceKind::ElasticIp, estate.id("eip-free")));
    expected.push(home.key(r2, ResourceKind::ElasticIp, estate.id("eip-eu-free")));
    expected.push(ResourceKey::new(HOME_ACCOUNT, "global", ResourceKind::IamUser, "dana-no-mfa"));
    expected.push(ResourceKey::new(MEMBER_ACCOUNT, "global", ResourceKind::IamUser, "member-no-mfa"));
    expected.push(home.key(r1, ResourceKind::S3Bucket, policy_bucket));
    expected.push(home.key(r2, ResourceKind::S3Bucket, acl_bucket));
    expected.push(home.key(r1, ResourceKind::S3Bucket, empty_bucket));
    expected.push(home.key(r1, ResourceKind::LambdaFunction, estate.id("fn-unused")));
    for name in ["sc-stale", "sc-bad-name", "sc-rogue", "sc-carol-6"] {
        expected.push(home.key(r1, ResourceKind::ProvisionedProduct, estate.id(name)));
    }

    estate.expected_findings.extend(expected.iter().map(ToString::to_string));

    for name in ["busy", "partial-data", "protected", "snoozed", "stopped-protected", "stopped-snoozed"] {
        estate.untouchable.insert(home.key(r1, ec2, estate.id(name)).to_string());
    }
    estate.untouchable.insert(home.key(r2, ec2, estate.id("eu-busy")).to_string());
    estate.untouchable.insert(home.key(r1, ResourceKind::RdsInstance, "db-busy").to_string());
    // vol-unencrypted and db-plain are findings (notify-only): reported, never acted on.
    for name in ["vol-attached", "vol-protected", "vol-snoozed"] {
        estate.untouchable.insert(home.key(r2, ResourceKind::EbsVolume, estate.id(name)).to_string());
    }
    estate.untouchable.insert(home.key(r1, ResourceKind::ElasticIp, estate.id("eip-used")).to_string());
    for name in ["sg-web", "sg-protected", "sg-snoozed"] {
        estate.untouchable.insert(home.key(r1, ResourceKind::SecurityGroup, estate.id(name)).to_string());
    }
    for name in ["snap-protected", "snap-snoozed"] {
        estate.untouchable.insert(home.key(r2, ResourceKind::EbsSnapshot, estate.id(name)).to_string());
    }
    estate.untouchable.insert(home.key(r1, ResourceKind::RdsSnapshot, "db-busy-kept").to_string());
    for user in ["erin-mfa", "ci-bot-no-console", "break-glass"] {
        estate.untouchable.insert(ResourceKey::new(HOME_ACCOUNT, "global", ResourceKind::IamUser, user).to_string());
    }
    estate.untouchable.insert(home.key(r1, ResourceKind::S3Bucket, private_bucket).to_string());
    estate.untouchable.insert(home.key(r1, ResourceKind::S3Bucket, blocked_bucket).to_string());
    for name in ["fn-busy", "fn-protected", "fn-snoozed"] {
        estate.untouchable.insert(home.key(r1, ResourceKind::LambdaFunction, estate.id(name)).to_string());
    }
    for bucket in [empty_protected, empty_snoozed] {
        estate.untouchable.insert(home.key(r1, ResourceKind::S3Bucket, bucket).to_string());
    }
    estate.untouchable.insert(ResourceKey::new(MEMBER_ACCOUNT, r1, ResourceKind::S3Bucket, member_bucket).to_string());
    let carols = (1..=5).map(|n| format!("sc-carol-{n}"));
    for name in ["sc-fresh", "sc-protected", "sc-snoozed"].into_iter().map(str::to_owned).chain(carols) {
        estate.untouchable.insert(home.key(r1, ResourceKind::ProvisionedProduct, estate.id(&name)).to_string());
    }
    Ok(estate)
}

/// A large estate for the benchmark: `per_region` compliant, metric-checked instances in
/// each region, a tenth of them idle.
pub async fn seed_bench(home: &Seeder, regions: &[String], per_region: i32) -> Result<usize> {
    let mut total = 0;
    for region in regions {
        let mut ids = Vec::new();
        let mut left = per_region;
        while left > 0 {
            let batch = left.min(250);
            ids.extend(home.instances(region, batch, &with_required(&[("Environment", "production")])).await?);
            left -= batch;
        }
        let series: Vec<(&str, Vec<Option<f64>>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), vec![Some(if i % 10 == 0 { 2.0 } else { 35.0 }); 7]))
            .collect();
        home.daily_cpu(region, &series).await?;
        total += ids.len();
    }
    Ok(total)
}

/// A fresh emulator holding the three tables `{prefix}-audit|lock|snooze` and the twin estate.
pub struct TwinWorld {
    pub moto: crate::Moto,
    pub clients: AwsClients,
    pub tables: janitor_core::aws::TableNames,
    pub estate: TwinEstate,
    pub home: Seeder,
}

impl TwinWorld {
    pub async fn start(prefix: &str) -> Result<TwinWorld> {
        let moto = crate::Moto::start()?;
        let clients = moto.clients().await;
        let tables = janitor_core::aws::TableNames::with_prefix(prefix);
        crate::tables::create_tables(&clients.dynamodb(), &tables).await?;
        let home = Seeder::new(clients.clone(), HOME_ACCOUNT);
        let member = Seeder::new(clients.clone(), MEMBER_ACCOUNT);
        let snoozes = janitor_core::aws::DynamoSnoozeStore::new(clients.dynamodb(), &tables.snooze);
        let estate = seed_twins(&home, &member, &snoozes).await?;
        provision_catalog_twins(&moto.service_catalog);
        Ok(TwinWorld { moto, clients, tables, estate, home })
    }
}
