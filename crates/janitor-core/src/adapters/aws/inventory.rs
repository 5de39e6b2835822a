//! `AwsInventory`: the listings discovery needs, paginated, one client per account/region.

use async_trait::async_trait;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::{StreamExt, stream};

use super::{AwsClients, bucket_block, ingress_permission, to_chrono};
use crate::error::{JanitorError, Result};
use crate::model::{ResourceKey, ResourceKind, Scope, Tags};
use crate::ports::*;

/// Per-bucket reads in flight at once.
const BUCKET_CONCURRENCY: usize = 16;
/// The credential report is generated asynchronously; poll this often, this many times.
const REPORT_POLL: std::time::Duration = std::time::Duration::from_secs(2);
const REPORT_POLL_ATTEMPTS: usize = 30;

pub struct AwsInventory {
    clients: AwsClients,
}

impl AwsInventory {
    pub fn new(clients: AwsClients) -> Self {
        AwsInventory { clients }
    }
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

fn rds_tags(tags: &[aws_sdk_rds::types::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

/// `Some(None)` when the error is the given "not configured" code, so the caller can treat
/// absence as a value.
fn absent_if<T, E: ProvideErrorMetadata>(err: &E, code: &str) -> Option<Option<T>> {
    (err.code() == Some(code)).then_some(None)
}

#[async_trait]
impl Inventory for AwsInventory {
    async fn home_account(&self) -> Result<String> {
        self.clients.home_account().await
    }

    async fn enabled_regions(&self, account: &str) -> Result<Vec<String>> {
        let ec2 = self.clients.ec2(account, &self.clients.home_region()).await?;
        let out = ec2
            .describe_regions()
            .all_regions(false)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("ec2", "DescribeRegions", e))?;
        let home = partition_of(&self.clients.home_region());
        Ok(out
            .regions()
            .iter()
            .filter(|r| r.opt_in_status() != Some("not-opted-in"))
            .filter_map(|r| r.region_name().map(str::to_owned))
            // Credentials never reach across partitions (aws, aws-cn, aws-us-gov).
            .filter(|r| partition_of(r) == home)
            .collect())
    }

    async fn ec2_instances(&self, scope: &Scope) -> Result<Vec<Ec2Instance>> {
        self.describe_instances(scope, &[]).await
    }

    async fn ec2_instances_by_id(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Ec2Instance>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.describe_instances(scope, ids).await
    }

    async fn ebs_volumes(&self, scope: &Scope) -> Result<Vec<EbsVolume>> {
        let ec2 = self.clients.ec2(&scope.account, &scope.region).await?;
        // Only what a rule can flag, filtered by EC2: an estate's attached, encrypted volumes
        // (one per instance at least) never cross the wire.
        let mut volumes = std::collections::BTreeMap::new();
        for (name, value) in [("status", "available"), ("encrypted", "false")] {
            let filter = aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();
            let pages: Vec<_> = ec2
                .describe_volumes()
                .filters(filter)
                .max_results(500)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| JanitorError::from_sdk("ec2", "DescribeVolumes", e))?;
            for v in pages.iter().flat_map(|page| page.volumes()) {
                let Some(id) = v.volume_id() else { continue };
                volumes.entry(id.to_owned()).or_insert_with(|| EbsVolume {
                    id: id.to_owned(),
                    state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    size_gib: v.size().unwrap_or_default(),
                    volume_type: v.volume_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                    encrypted: v.encrypted().unwrap_or(false),
                    created_at: v.create_time().and_then(to_chrono),
                    attached_to: v.attachments().iter().filter_map(|a| a.instance_id().map(str::to_owned)).collect(),
                    tags: ec2_tags(v.tags()),
                });
            }
        }
        Ok(volumes.into_values().collect())
    }

    async fn security_groups(&self, scope: &Scope) -> Result<Vec<SecurityGroup>> {
        let ec2 = self.clients.ec2(&scope.account, &scope.region).await?;
        let pages: Vec<_> = ec2
            .describe_security_groups()
            .max_results(1000)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("ec2", "DescribeSecurityGroups", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.security_groups())
            .filter_map(|g| {
                Some(SecurityGroup {
                    id: g.group_id()?.to_owned(),
                    name: g.group_name().unwrap_or_default().to_owned(),
                    vpc_id: g.vpc_id().map(str::to_owned),
                    ingress: g.ip_permissions().iter().filter_map(ingress_permission).collect(),
                    tags: ec2_tags(g.tags()),
                })
            })
            .collect())
    }

    async fn ebs_snapshots(&self, scope: &Scope) -> Result<Vec<EbsSnapshot>> {
        let ec2 = self.clients.ec2(&scope.account, &scope.region).await?;
        let pages: Vec<_> = ec2
            .describe_snapshots()
            .owner_ids("self")
            .max_results(1000)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("ec2", "DescribeSnapshots", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.snapshots())
            // `self` already says so in AWS; the owner is checked again so that an endpoint
            // ignoring the filter (the emulator) never makes another account's snapshot ours.
            .filter(|s| s.owner_id().is_none_or(|o| o == scope.account))
            .filter_map(|s| {
                Some(EbsSnapshot {
                    id: s.snapshot_id()?.to_owned(),
                    volume_id: s.volume_id().filter(|v| !v.is_empty() && *v != "vol-ffffffff").map(str::to_owned),
                    size_gib: s.volume_size().unwrap_or_default(),
                    state: s.state().map(|st| st.as_str().to_owned()).unwrap_or_default(),
                    started_at: s.start_time().and_then(to_chrono),
                    description: s.description().unwrap_or_default().to_owned(),
                    tags: ec2_tags(s.tags()),
                })
            })
            .collect())
    }

    async fn rds_snapshots(&self, scope: &Scope) -> Result<Vec<RdsSnapshot>> {
        let rds = self.clients.rds(&scope.account, &scope.region).await?;
        let pages: Vec<_> = rds
            .describe_db_snapshots()
            .snapshot_type("manual")
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("rds", "DescribeDBSnapshots", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.db_snapshots())
            .filter(|s| s.snapshot_type().is_none_or(|t| t == "manual"))
            .filter_map(|s| {
                Some(RdsSnapshot {
                    id: s.db_snapshot_identifier()?.to_owned(),
                    arn: s.db_snapshot_arn().map(str::to_owned),
                    db_instance: s.db_instance_identifier().unwrap_or_default().to_owned(),
                    engine: s.engine().unwrap_or_default().to_owned(),
                    allocated_gib: s.allocated_storage().unwrap_or_default(),
                    created_at: s.snapshot_create_time().and_then(to_chrono),
                    tags: rds_tags(s.tag_list()),
                })
            })
            .collect())
    }

    async fn lambda_functions(&self, scope: &Scope) -> Result<Vec<LambdaFunction>> {
        use crate::kinds::lambda_function::parse_last_modified;
        let lambda = self.clients.lambda(&scope.account, &scope.region).await?;
        let pages: Vec<_> = lambda
            .list_functions()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("lambda", "ListFunctions", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.functions())
            .filter_map(|f| {
                Some(LambdaFunction {
                    name: f.function_name()?.to_owned(),
                    arn: f.function_arn()?.to_owned(),
                    runtime: f.runtime().map(|r| r.as_str().to_owned()),
                    memory_mb: f.memory_size(),
                    architecture: if f.architectures().contains(&aws_sdk_lambda::types::Architecture::Arm64) {
                        crate::cost::Architecture::Arm64
                    } else {
                        crate::cost::Architecture::X86_64
                    },
                    last_modified: f.last_modified().and_then(parse_last_modified),
                })
            })
            .collect())
    }

    async fn lambda_tags(&self, scope: &Scope, arn: &str) -> Result<Tags> {
        let lambda = self.clients.lambda(&scope.account, &scope.region).await?;
        let out = lambda
            .list_tags()
            .resource(arn)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("lambda", "ListTags", e))?;
        Ok(out.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default())
    }

    async fn rds_instances(&self, scope: &Scope) -> Result<Vec<RdsInstance>> {
        let rds = self.clients.rds(&scope.account, &scope.region).await?;
        let pages: Vec<_> = rds
            .describe_db_instances()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("rds", "DescribeDBInstances", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.db_instances())
            .filter_map(|db| {
                Some(RdsInstance {
                    id: db.db_instance_identifier()?.to_owned(),
                    arn: db.db_instance_arn().map(str::to_owned),
                    status: db.db_instance_status().unwrap_or_default().to_owned(),
                    created_at: db.instance_create_time().and_then(to_chrono),
                    deletion_protection: db.deletion_protection().unwrap_or(false),
                    encrypted: db.storage_encrypted().unwrap_or(false),
                    cluster: db.db_cluster_identifier().filter(|c| !c.is_empty()).map(str::to_owned),
                    replica_of: db
                        .read_replica_source_db_instance_identifier()
                        .or(db.read_replica_source_db_cluster_identifier())
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    class: db.db_instance_class().unwrap_or_default().to_owned(),
                    engine: db.engine().unwrap_or_default().to_owned(),
                    multi_az: db.multi_az().unwrap_or(false),
                    storage_type: db.storage_type().unwrap_or_default().to_owned(),
                    allocated_gib: db.allocated_storage().unwrap_or_default(),
                    tags: rds_tags(db.tag_list()),
                })
            })
            .collect())
    }

    async fn elastic_ips(&self, scope: &Scope) -> Result<Vec<ElasticIp>> {
        let ec2 = self.clients.ec2(&scope.account, &scope.region).await?;
        let out =
            ec2.describe_addresses().send().await.map_err(|e| JanitorError::from_sdk("ec2", "DescribeAddresses", e))?;
        Ok(out
            .addresses()
            .iter()
            .filter_map(|a| {
                Some(ElasticIp {
                    allocation_id: a.allocation_id()?.to_owned(),
                    public_ip: a.public_ip().map(str::to_owned),
                    associated: a.association_id().is_some_and(|s| !s.is_empty())
                        || a.instance_id().is_some_and(|s| !s.is_empty())
                        || a.network_interface_id().is_some_and(|s| !s.is_empty()),
                    tags: ec2_tags(a.tags()),
                })
            })
            .collect())
    }

    async fn provisioned_products(&self, scope: &Scope) -> Result<Vec<ProvisionedProduct>> {
        use aws_sdk_servicecatalog::types::{AccessLevelFilter, AccessLevelFilterKey, SortOrder};
        let catalog = self.clients.service_catalog(&scope.account, &scope.region).await?;
        // Without the account-level filter Service Catalog answers only the caller's own
        // products: the janitor's, i.e. none.
        let whole_account = AccessLevelFilter::builder().key(AccessLevelFilterKey::Account).value("self").build();
        let pages: Vec<_> = catalog
            .search_provisioned_products()
            .access_level_filter(whole_account)
            // Unsorted pages may skip or repeat products (the AWS CLI's own advice): sorted by
            // creation, every product comes once, and each launcher's ranking holds run to run.
            .sort_by("createdTime")
            .sort_order(SortOrder::Ascending)
            .page_size(100)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("servicecatalog", "SearchProvisionedProducts", e))?;
        let mut seen = std::collections::HashSet::new();
        Ok(pages
            .iter()
            .flat_map(|page| page.provisioned_products())
            .filter(|p| p.id().is_some_and(|id| seen.insert(id.to_owned())))
            .filter_map(|p| {
                Some(ProvisionedProduct {
                    id: p.id()?.to_owned(),
                    name: p.name().unwrap_or_default().to_owned(),
                    arn: p.arn().map(str::to_owned),
                    product_type: p.r#type().unwrap_or_default().to_owned(),
                    status: p.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    created_at: p.created_time().and_then(to_chrono),
                    product_name: p.product_name().map(str::to_owned),
                    launched_by: p.user_arn().map(str::to_owned),
                    launched_by_session: p.user_arn_session().map(str::to_owned),
                    tags: p.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
                })
            })
            .collect())
    }

    async fn iam_credentials(&self, account: &str) -> Result<Vec<IamCredential>> {
        use aws_sdk_iam::types::ReportStateType;
        let iam = self.clients.iam(account).await?;
        let mut ready = false;
        for _ in 0..REPORT_POLL_ATTEMPTS {
            let state = iam
                .generate_credential_report()
                .send()
                .await
                .map_err(|e| JanitorError::from_sdk("iam", "GenerateCredentialReport", e))?;
            if state.state() == Some(&ReportStateType::Complete) {
                ready = true;
                break;
            }
            tokio::time::sleep(REPORT_POLL).await;
        }
        if !ready {
            return Err(JanitorError::Transient {
                service: "iam",
                operation: "GenerateCredentialReport",
                message: "credential report still not ready".into(),
            });
        }
        let report = iam
            .get_credential_report()
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("iam", "GetCredentialReport", e))?;
        let content = report.content().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        parse_credential_report(&content)
    }

    async fn iam_user_tags(&self, account: &str, user: &str) -> Result<Tags> {
        let iam = self.clients.iam(account).await?;
        let pages: Vec<_> = iam
            .list_user_tags()
            .user_name(user)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("iam", "ListUserTags", e))?;
        Ok(pages.iter().flat_map(|page| page.tags()).map(|t| (t.key().to_owned(), t.value().to_owned())).collect())
    }

    async fn account_public_access_block(&self, account: &str) -> Result<Option<PublicAccessBlock>> {
        let s3control = self.clients.s3control(account).await?;
        match s3control.get_public_access_block().account_id(account).send().await {
            Ok(out) => Ok(out.public_access_block_configuration().map(|c| PublicAccessBlock {
                block_public_acls: c.block_public_acls().unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                block_public_policy: c.block_public_policy().unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
            })),
            Err(e) => absent_if(&e, "NoSuchPublicAccessBlockConfiguration")
                .ok_or_else(|| JanitorError::from_sdk("s3control", "GetPublicAccessBlock", e)),
        }
    }

    async fn s3_bucket(&self, account: &str, name: &str) -> Result<Option<BucketRead>> {
        // Its region from GetBucketLocation: ListBuckets is what a single read avoids.
        let s3 = self.clients.s3(account, &self.clients.home_region()).await?;
        let region = match s3.get_bucket_location().bucket(name).send().await {
            Ok(out) => bucket_region(out.location_constraint()),
            Err(e) if e.code() == Some("NoSuchBucket") => return Ok(None),
            Err(e) => return Ok(Some(Err((name.to_owned(), JanitorError::from_sdk("s3", "GetBucketLocation", e))))),
        };
        Ok(Some(self.read_bucket(account, name.to_owned(), Some(region)).await.map_err(|e| (name.to_owned(), e))))
    }

    async fn s3_buckets(&self, account: &str) -> Result<Vec<BucketRead>> {
        let home_region = self.clients.home_region();
        let s3 = self.clients.s3(account, &home_region).await?;
        let pages: Vec<_> = s3
            .list_buckets()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("s3", "ListBuckets", e))?;
        let listed: Vec<(String, Option<String>, Option<chrono::DateTime<chrono::Utc>>)> = pages
            .iter()
            .flat_map(|page| page.buckets())
            .filter_map(|b| {
                Some((
                    b.name()?.to_owned(),
                    b.bucket_region().map(str::to_owned),
                    b.creation_date().and_then(to_chrono),
                ))
            })
            .collect();
        Ok(stream::iter(listed)
            .map(|(name, region, created_at)| async move {
                match self.read_bucket(account, name.clone(), region).await {
                    Ok(bucket) => Ok(S3Bucket { created_at, ..bucket }),
                    Err(e) => Err((name, e)),
                }
            })
            .buffered(BUCKET_CONCURRENCY)
            .collect()
            .await)
    }

    async fn exists(&self, key: &ResourceKey) -> Result<bool> {
        let (account, region, id) = (key.account(), key.region(), key.id());
        match key.kind() {
            ResourceKind::Ec2Instance => {
                let ec2 = self.clients.ec2(account, region).await?;
                match ec2.describe_instances().instance_ids(id).send().await {
                    Ok(out) => Ok(out.reservations().iter().flat_map(|r| r.instances()).any(|i| {
                        !matches!(
                            i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                            Some("terminated" | "shutting-down")
                        )
                    })),
                    Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("ec2", "DescribeInstances", e)),
                }
            }
            ResourceKind::RdsInstance => {
                let rds = self.clients.rds(account, region).await?;
                match rds.describe_db_instances().db_instance_identifier(id).send().await {
                    Ok(out) => Ok(!out.db_instances().is_empty()),
                    Err(e) if e.code().is_some_and(|c| c.starts_with("DBInstanceNotFound")) => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("rds", "DescribeDBInstances", e)),
                }
            }
            ResourceKind::ElasticIp => {
                let ec2 = self.clients.ec2(account, region).await?;
                match ec2.describe_addresses().allocation_ids(id).send().await {
                    Ok(out) => Ok(!out.addresses().is_empty()),
                    Err(e) if e.code() == Some("InvalidAllocationID.NotFound") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("ec2", "DescribeAddresses", e)),
                }
            }
            ResourceKind::EbsVolume => {
                let ec2 = self.clients.ec2(account, region).await?;
                match ec2.describe_volumes().volume_ids(id).send().await {
                    Ok(out) => Ok(out.volumes().iter().any(|v| v.state().is_none_or(|s| s.as_str() != "deleting"))),
                    Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("ec2", "DescribeVolumes", e)),
                }
            }
            ResourceKind::SecurityGroup => {
                let ec2 = self.clients.ec2(account, region).await?;
                match ec2.describe_security_groups().group_ids(id).send().await {
                    Ok(out) => Ok(!out.security_groups().is_empty()),
                    Err(e) if e.code() == Some("InvalidGroup.NotFound") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("ec2", "DescribeSecurityGroups", e)),
                }
            }
            ResourceKind::EbsSnapshot => {
                let ec2 = self.clients.ec2(account, region).await?;
                match ec2.describe_snapshots().snapshot_ids(id).send().await {
                    Ok(out) => Ok(!out.snapshots().is_empty()),
                    Err(e) if e.code() == Some("InvalidSnapshot.NotFound") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("ec2", "DescribeSnapshots", e)),
                }
            }
            ResourceKind::RdsSnapshot => {
                let rds = self.clients.rds(account, region).await?;
                match rds.describe_db_snapshots().db_snapshot_identifier(id).send().await {
                    Ok(out) => Ok(!out.db_snapshots().is_empty()),
                    Err(e) if e.code().is_some_and(|c| c.starts_with("DBSnapshotNotFound")) => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("rds", "DescribeDBSnapshots", e)),
                }
            }
            ResourceKind::LambdaFunction => {
                let lambda = self.clients.lambda(account, region).await?;
                match lambda.get_function_configuration().function_name(id).send().await {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("lambda", "GetFunctionConfiguration", e)),
                }
            }
            ResourceKind::ProvisionedProduct => {
                let catalog = self.clients.service_catalog(account, region).await?;
                match catalog.describe_provisioned_product().id(id).send().await {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("servicecatalog", "DescribeProvisionedProduct", e)),
                }
            }
            ResourceKind::IamUser => {
                let iam = self.clients.iam(account).await?;
                match iam.get_user().user_name(id).send().await {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("NoSuchEntity") => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("iam", "GetUser", e)),
                }
            }
            ResourceKind::S3Bucket => {
                let s3 = self.clients.s3(account, region).await?;
                match s3.head_bucket().bucket(id).send().await {
                    Ok(_) => Ok(true),
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
                    Err(e) => Err(JanitorError::from_sdk("s3", "HeadBucket", e)),
                }
            }
        }
    }

    async fn s3_bucket_tags(&self, account: &str, bucket: &S3Bucket) -> Result<Tags> {
        let s3 = self.clients.s3(account, &bucket.region).await?;
        match s3.get_bucket_tagging().bucket(&bucket.name).send().await {
            Ok(out) => Ok(out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()),
            Err(e) if e.code() == Some("NoSuchTagSet") => Ok(Tags::new()),
            Err(e) => Err(JanitorError::from_sdk("s3", "GetBucketTagging", e)),
        }
    }
}

/// A bucket's region from its location constraint (none for us-east-1, `EU` of old).
fn bucket_region(constraint: Option<&aws_sdk_s3::types::BucketLocationConstraint>) -> String {
    match constraint.map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_owned(),
        Some("EU") => "eu-west-1".to_owned(),
        Some(other) => other.to_owned(),
    }
}

impl AwsInventory {
    /// Every instance of the scope that still exists (whatever its state: each rule decides
    /// which states it judges), or those of `ids`.
    async fn describe_instances(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Ec2Instance>> {
        let ec2 = self.clients.ec2(&scope.account, &scope.region).await?;
        let alive = aws_sdk_ec2::types::Filter::builder()
            .name("instance-state-name")
            .set_values(Some(["pending", "running", "stopping", "stopped"].map(String::from).to_vec()))
            .build();
        // By id, EC2 takes no page size, and an id it does not know fails the whole call.
        let request = if ids.is_empty() {
            ec2.describe_instances().filters(alive).max_results(1000)
        } else {
            ec2.describe_instances().filters(alive).set_instance_ids(Some(ids.to_vec()))
        };
        let pages: Vec<_> = request
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| JanitorError::from_sdk("ec2", "DescribeInstances", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.reservations())
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                Some(Ec2Instance {
                    id: i.instance_id()?.to_owned(),
                    state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default(),
                    instance_type: i.instance_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                    price_exception: crate::kinds::ec2_instance::price_exception(
                        &scope.region,
                        i.instance_lifecycle().is_some_and(|l| l.as_str() == "spot"),
                        i.placement().and_then(|p| p.tenancy()).map(|t| t.as_str()),
                        i.platform_details(),
                        i.placement().and_then(|p| p.availability_zone()),
                    ),
                    launched_at: i.launch_time().and_then(to_chrono),
                    // A reason older than the launch is a stale one (a start that failed).
                    stopped_at: i
                        .state_transition_reason()
                        .filter(|_| i.state().and_then(|s| s.name()).is_some_and(|n| n.as_str() == "stopped"))
                        .and_then(crate::kinds::ec2_instance::stopped_at_from_reason)
                        .filter(|at| i.launch_time().and_then(to_chrono).is_none_or(|launched| *at >= launched)),
                    tags: ec2_tags(i.tags()),
                })
            })
            .collect())
    }

    async fn read_bucket(&self, account: &str, name: String, region: Option<String>) -> Result<S3Bucket> {
        let region = match region.filter(|r| !r.is_empty()) {
            Some(r) => r,
            None => {
                let s3 = self.clients.s3(account, &self.clients.home_region()).await?;
                let out = s3
                    .get_bucket_location()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(|e| JanitorError::from_sdk("s3", "GetBucketLocation", e))?;
                bucket_region(out.location_constraint())
            }
        };
        let s3 = self.clients.s3(account, &region).await?;
        // Versions and delete markers count: a bucket of old versions is not empty (and bills).
        let (policy, acl, block, versions) = tokio::join!(
            s3.get_bucket_policy().bucket(&name).send(),
            s3.get_bucket_acl().bucket(&name).send(),
            s3.get_public_access_block().bucket(&name).send(),
            s3.list_object_versions().bucket(&name).max_keys(1).send(),
        );
        // Emptiness only feeds a notify-only waste rule: a bucket whose versions cannot be
        // listed is still judged for public access, just never called empty.
        let empty = match versions {
            Ok(out) => {
                Some(out.versions().is_empty() && out.delete_markers().is_empty() && out.is_truncated() != Some(true))
            }
            Err(e) => {
                let error = JanitorError::from_sdk("s3", "ListObjectVersions", e);
                tracing::warn!(bucket = %name, %error, "emptiness not read");
                None
            }
        };
        let policy = match policy {
            Ok(out) => out.policy().map(str::to_owned),
            Err(e) => {
                absent_if(&e, "NoSuchBucketPolicy").ok_or_else(|| JanitorError::from_sdk("s3", "GetBucketPolicy", e))?
            }
        };
        let acl = acl.map_err(|e| JanitorError::from_sdk("s3", "GetBucketAcl", e))?;
        let acl_grants = acl
            .grants()
            .iter()
            .map(|g| AclGrant {
                grantee_uri: g.grantee().and_then(|gr| gr.uri()).map(str::to_owned),
                permission: g.permission().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            })
            .collect();
        let block = match block {
            Ok(out) => out.public_access_block_configuration().map(bucket_block),
            Err(e) => absent_if(&e, "NoSuchPublicAccessBlockConfiguration")
                .ok_or_else(|| JanitorError::from_sdk("s3", "GetPublicAccessBlock", e))?,
        };
        Ok(S3Bucket { name, region, policy, acl_grants, block, created_at: None, empty })
    }
}

/// One row of the credential report, its columns found by name (AWS adds columns over time).
#[derive(serde::Deserialize)]
struct ReportRow {
    user: String,
    arn: String,
    #[serde(deserialize_with = "report_flag")]
    password_enabled: bool,
    #[serde(deserialize_with = "report_flag")]
    mfa_active: bool,
}

/// The report says `true`, `false`, `not_supported` or `N/A`; only `true` is true.
fn report_flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<bool, D::Error> {
    let text: String = serde::Deserialize::deserialize(deserializer)?;
    Ok(text == "true")
}

/// Parses the credential report CSV by column name (the column order is not a contract).
pub fn parse_credential_report(content: &[u8]) -> Result<Vec<IamCredential>> {
    let bad = |message: String| JanitorError::Aws { service: "iam", operation: "GetCredentialReport", message };
    csv::Reader::from_reader(content)
        .deserialize::<ReportRow>()
        .map(|row| {
            let row = row.map_err(|e| bad(format!("unreadable report row: {e}")))?;
            Ok(IamCredential {
                user: row.user,
                arn: row.arn,
                password_enabled: row.password_enabled,
                mfa_active: row.mfa_active,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_report_is_read_by_column_name() {
        let csv = "user,arn,user_creation_time,password_enabled,password_last_used,mfa_active\n\
                   <root_account>,arn:aws:iam::1:root,t,not_supported,n,true\n\
                   alice,arn:aws:iam::1:user/alice,t,true,n,false\n\
                   bob,arn:aws:iam::1:user/bob,t,false,n,false\n";
        let rows = parse_credential_report(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[1].password_enabled && !rows[1].mfa_active);
        assert!(!rows[2].password_enabled);
        assert!(parse_credential_report(b"name,arn\nx,y\n").is_err());
    }
}

/// The partition a region belongs to, by its name.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso") {
        "aws-iso"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod partition_tests {
    use super::partition_of;

    #[test]
    fn regions_of_other_partitions_are_told_apart() {
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("us-east-1"), "aws");
    }
}
