//! `AwsRemediator`: every action reads the resource first, so an action that is no longer
//! needed (already stopped, released, blocked) or no longer safe (deletion protection, an
//! address attached again) is reported instead of done.

use async_trait::async_trait;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::AwsClients;
use super::{bucket_block, ingress_permission};
use crate::error::{JanitorError, Result};
use crate::model::{Action, Finding, Tags, is_protected};
use crate::ports::{ActionOutcome, IngressPermission, Remediator};

pub const MFA_REQUIRED_TAG: &str = "janitor:mfa-required";
pub use crate::model::SNAPSHOT_OF_TAG;
/// How long one action waits for a volume's snapshot to complete; a volume whose snapshot
/// takes longer is kept, and a later run (finding its snapshot) deletes it.
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
const SNAPSHOT_POLL: std::time::Duration = std::time::Duration::from_secs(3);

pub struct AwsRemediator {
    clients: AwsClients,
    protect_tag: String,
}

impl AwsRemediator {
    /// `protect_tag` is read again with the resource right before each action.
    pub fn new(clients: AwsClients, protect_tag: &str) -> Self {
        AwsRemediator { clients, protect_tag: protect_tag.to_owned() }
    }

    /// `Some(outcome)` when the fresh tags say hands off.
    fn protected<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<ActionOutcome> {
        let tags: Tags = tags.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        is_protected(&tags, &self.protect_tag).then(|| ActionOutcome::Protected(self.protect_tag.clone()))
    }

    async fn stop_instance(&self, f: &Finding) -> Result<ActionOutcome> {
        let ec2 = self.clients.ec2(f.key.account(), f.key.region()).await?;
        let instance = match ec2.describe_instances().instance_ids(&f.id).send().await {
            Ok(out) => out.reservations().iter().flat_map(|r| r.instances()).next().cloned(),
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => None,
            Err(e) => return Err(JanitorError::from_sdk("ec2", "DescribeInstances", e)),
        };
        if let Some(outcome) = instance.as_ref().and_then(|i| {
            self.protected(i.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        }) {
            return Ok(outcome);
        }
        let state = instance.and_then(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()));
        match state.as_deref() {
            None | Some("terminated" | "shutting-down") => {
                Ok(ActionOutcome::Skipped("instance no longer exists".into()))
            }
            Some("stopped" | "stopping") => {
                Ok(ActionOutcome::AlreadyCompliant(format!("instance is {}", state.unwrap_or_default())))
            }
            Some(previous) => {
                ec2.stop_instances()
                    .instance_ids(&f.id)
                    .send()
                    .await
                    .map_err(|e| JanitorError::from_sdk("ec2", "StopInstances", e))?;
                Ok(ActionOutcome::Done(json!({ "stopped": f.id, "previous_state": previous })))
            }
        }
    }

    async fn snapshot_and_delete(&self, f: &Finding, now: DateTime<Utc>) -> Result<ActionOutcome> {
        let rds = self.clients.rds(f.key.account(), f.key.region()).await?;
        let db = match rds.describe_db_instances().db_instance_identifier(&f.id).send().await {
            Ok(out) => out.db_instances().first().cloned(),
            Err(e) if e.code().is_some_and(|c| c.starts_with("DBInstanceNotFound")) => None,
            Err(e) => return Err(JanitorError::from_sdk("rds", "DescribeDBInstances", e)),
        };
        let Some(db) = db else { return Ok(ActionOutcome::Skipped("DB instance no longer exists".into())) };
        if let Some(outcome) =
            self.protected(db.tag_list().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        {
            return Ok(outcome);
        }
        if db.deletion_protection().unwrap_or(false) {
            return Ok(ActionOutcome::Skipped("deletion protection is on; the janitor never turns it off".into()));
        }
        // Discovery made these notify-only; re-read here because a replica or cluster member
        // may have become one since (and AWS refuses a replica's final snapshot).
        if let Some(source) =
            db.read_replica_source_db_instance_identifier().or(db.read_replica_source_db_cluster_identifier())
        {
            return Ok(ActionOutcome::Skipped(format!(
                "a read replica of {source}; the janitor never deletes replicas"
            )));
        }
        if let Some(cluster) = db.db_cluster_identifier() {
            return Ok(ActionOutcome::Skipped(format!(
                "a member of cluster {cluster}; deletion and its protection belong to the cluster"
            )));
        }
        if db.db_instance_status() == Some("deleting") {
            return Ok(ActionOutcome::AlreadyCompliant("DB instance is already being deleted".into()));
        }
        let snapshot = final_snapshot_id(&f.id, now);
        // Never skip the final snapshot: a deletion without one cannot be undone.
        rds.delete_db_instance()
            .db_instance_identifier(&f.id)
            .skip_final_snapshot(false)
            .final_db_snapshot_identifier(&snapshot)
            .delete_automated_backups(false)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("rds", "DeleteDBInstance", e))?;
        Ok(ActionOutcome::Done(json!({ "deleted": f.id, "final_snapshot": snapshot })))
    }

    /// Never deletes a volume without a completed snapshot of it: one the janitor took in an
    /// earlier attempt (found by its tag), else a new one.
    async fn snapshot_and_delete_volume(&self, f: &Finding) -> Result<ActionOutcome> {
        let ec2 = self.clients.ec2(f.key.account(), f.key.region()).await?;
        let volume = match ec2.describe_volumes().volume_ids(&f.id).send().await {
            Ok(out) => out.volumes().first().cloned(),
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => None,
            Err(e) => return Err(JanitorError::from_sdk("ec2", "DescribeVolumes", e)),
        };
        let Some(volume) = volume else { return Ok(ActionOutcome::Skipped("volume no longer exists".into())) };
        if let Some(outcome) =
            self.protected(volume.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        {
            return Ok(outcome);
        }
        let state = volume.state().map(|s| s.as_str().to_owned()).unwrap_or_default();
        if state != "available" || !volume.attachments().is_empty() {
            return Ok(ActionOutcome::Skipped(format!("volume is {state} (attached again?); not deleted")));
        }
        let kept = ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(aws_sdk_ec2::types::Filter::builder().name("volume-id").values(&f.id).build())
            .filters(aws_sdk_ec2::types::Filter::builder().name(format!("tag:{SNAPSHOT_OF_TAG}")).values(&f.id).build())
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("ec2", "DescribeSnapshots", e))?
            .snapshots()
            .iter()
            .find(|s| s.state().is_none_or(|st| st.as_str() != "error"))
            .and_then(|s| Some((s.snapshot_id()?.to_owned(), s.state().map(|st| st.as_str().to_owned()))));
        let (snapshot, mut snapshot_state) = match kept {
            Some(kept) => kept,
            None => {
                use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
                let tags = TagSpecification::builder()
                    .resource_type(ResourceType::Snapshot)
                    .tags(Tag::builder().key(SNAPSHOT_OF_TAG).value(&f.id).build())
                    .build();
                // The tag says what it is; no free-text description (moto's signature check
                // refuses an EC2 form body with spaces, so the emulator run could not prove it).
                let out = ec2
                    .create_snapshot()
                    .volume_id(&f.id)
                    .tag_specifications(tags)
                    .send()
                    .await
                    .map_err(|e| JanitorError::from_sdk("ec2", "CreateSnapshot", e))?;
                let id = out.snapshot_id().unwrap_or_default().to_owned();
                (id, out.state().map(|s| s.as_str().to_owned()))
            }
        };
        let deadline = std::time::Instant::now() + SNAPSHOT_WAIT;
        loop {
            match snapshot_state.as_deref() {
                Some("completed") => break,
                Some("error") => {
                    return Ok(ActionOutcome::Skipped(format!("snapshot {snapshot} failed; the volume is kept")));
                }
                other if std::time::Instant::now() >= deadline => {
                    return Ok(ActionOutcome::Skipped(format!(
                        "snapshot {snapshot} is still {}; the volume is kept until it completed (a later run deletes it)",
                        other.unwrap_or("pending")
                    )));
                }
                _ => {}
            }
            tokio::time::sleep(SNAPSHOT_POLL).await;
            snapshot_state = ec2
                .describe_snapshots()
                .snapshot_ids(&snapshot)
                .send()
                .await
                .map_err(|e| JanitorError::from_sdk("ec2", "DescribeSnapshots", e))?
                .snapshots()
                .first()
                .and_then(|s| s.state().map(|st| st.as_str().to_owned()));
        }
        match ec2.delete_volume().volume_id(&f.id).send().await {
            Ok(_) => Ok(ActionOutcome::Done(json!({ "deleted": f.id, "snapshot": snapshot }))),
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => {
                Ok(ActionOutcome::AlreadyCompliant(format!("volume already deleted; snapshot {snapshot} kept")))
            }
            Err(e) if e.code() == Some("VolumeInUse") => {
                Ok(ActionOutcome::Skipped(format!("volume was attached again; not deleted (snapshot {snapshot} kept)")))
            }
            Err(e) => Err(JanitorError::from_sdk("ec2", "DeleteVolume", e)),
        }
    }

    /// Revokes the world-open ranges the finding recorded that the group still has, one
    /// CIDR at a time within each permission: the group's other sources stay as they were.
    async fn revoke_open_ingress(&self, f: &Finding) -> Result<ActionOutcome> {
        use crate::rules::sg_open_admin_ports::{MAX_PORTS, WORLD_V4, WORLD_V6};
        use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
        let Some(recorded) = f
            .evidence
            .get("open")
            .and_then(|open| serde_json::from_value::<Vec<IngressPermission>>(open.clone()).ok())
            .filter(|open| !open.is_empty())
        else {
            return Ok(ActionOutcome::Skipped("the finding records no open ingress to revoke".into()));
        };
        // Whatever the payload says, only world-open TCP/UDP ranges of a few named ports are
        // ever revoked: never a private range, never "all traffic".
        let narrow = |p: &IngressPermission| {
            p.tcp_or_udp() && p.port_range().is_some_and(|(from, to)| usize::from(to - from) < MAX_PORTS)
        };
        let world_only =
            |p: &IngressPermission| p.ipv4.iter().all(|c| c == WORLD_V4) && p.ipv6.iter().all(|c| c == WORLD_V6);
        if let Some(refused) = recorded.iter().find(|p| !narrow(p) || !world_only(p)) {
            return Ok(ActionOutcome::Skipped(format!(
                "refused: {refused:?} is not a world-open range of named TCP/UDP ports"
            )));
        }
        let ec2 = self.clients.ec2(f.key.account(), f.key.region()).await?;
        let group = match ec2.describe_security_groups().group_ids(&f.id).send().await {
            Ok(out) => out.security_groups().first().cloned(),
            Err(e) if e.code() == Some("InvalidGroup.NotFound") => None,
            Err(e) => return Err(JanitorError::from_sdk("ec2", "DescribeSecurityGroups", e)),
        };
        let Some(group) = group else { return Ok(ActionOutcome::Skipped("security group no longer exists".into())) };
        if let Some(outcome) =
            self.protected(group.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        {
            return Ok(outcome);
        }
        let current: Vec<IngressPermission> = group.ip_permissions().iter().filter_map(ingress_permission).collect();
        let still_open: Vec<IngressPermission> = recorded
            .iter()
            .filter_map(|r| {
                let same: Vec<&IngressPermission> = current
                    .iter()
                    .filter(|c| c.protocol == r.protocol && c.from_port == r.from_port && c.to_port == r.to_port)
                    .collect();
                let open = IngressPermission {
                    ipv4: r.ipv4.iter().filter(|c| same.iter().any(|n| n.ipv4.contains(c))).cloned().collect(),
                    ipv6: r.ipv6.iter().filter(|c| same.iter().any(|n| n.ipv6.contains(c))).cloned().collect(),
                    ..r.clone()
                };
                (!open.ipv4.is_empty() || !open.ipv6.is_empty()).then_some(open)
            })
            .collect();
        if still_open.is_empty() {
            return Ok(ActionOutcome::AlreadyCompliant("the open ranges were already removed".into()));
        }
        let permissions: Vec<IpPermission> = still_open
            .iter()
            .map(|p| {
                IpPermission::builder()
                    .ip_protocol(&p.protocol)
                    .set_from_port(p.from_port)
                    .set_to_port(p.to_port)
                    .set_ip_ranges(
                        (!p.ipv4.is_empty())
                            .then(|| p.ipv4.iter().map(|c| IpRange::builder().cidr_ip(c).build()).collect()),
                    )
                    .set_ipv6_ranges(
                        (!p.ipv6.is_empty())
                            .then(|| p.ipv6.iter().map(|c| Ipv6Range::builder().cidr_ipv6(c).build()).collect()),
                    )
                    .build()
            })
            .collect();
        let revoke = ec2.revoke_security_group_ingress().group_id(&f.id).set_ip_permissions(Some(permissions));
        let out = match revoke.send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("InvalidPermission.NotFound") => {
                return Ok(ActionOutcome::AlreadyCompliant("the open ranges were removed meanwhile".into()));
            }
            Err(e) => return Err(JanitorError::from_sdk("ec2", "RevokeSecurityGroupIngress", e)),
        };
        // EC2 may answer without an error and still leave what it did not recognise.
        let unknown: Vec<IngressPermission> =
            out.unknown_ip_permissions().iter().filter_map(ingress_permission).collect();
        if out.r#return() == Some(false) || !unknown.is_empty() {
            return Err(JanitorError::Aws {
                service: "ec2",
                operation: "RevokeSecurityGroupIngress",
                message: format!("EC2 did not revoke {unknown:?} of {}", f.id),
            });
        }
        Ok(ActionOutcome::Done(json!({ "revoked": still_open, "group": f.id })))
    }

    async fn release_address(&self, f: &Finding) -> Result<ActionOutcome> {
        let ec2 = self.clients.ec2(f.key.account(), f.key.region()).await?;
        let address = match ec2.describe_addresses().allocation_ids(&f.id).send().await {
            Ok(out) => out.addresses().first().cloned(),
            Err(e) if e.code() == Some("InvalidAllocationID.NotFound") => None,
            Err(e) => return Err(JanitorError::from_sdk("ec2", "DescribeAddresses", e)),
        };
        let Some(address) = address else {
            return Ok(ActionOutcome::AlreadyCompliant("address already released".into()));
        };
        if let Some(outcome) =
            self.protected(address.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        {
            return Ok(outcome);
        }
        if address.association_id().is_some_and(|a| !a.is_empty())
            || address.instance_id().is_some_and(|i| !i.is_empty())
        {
            return Ok(ActionOutcome::Skipped("address is associated again; not released".into()));
        }
        ec2.release_address()
            .allocation_id(&f.id)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("ec2", "ReleaseAddress", e))?;
        Ok(ActionOutcome::Done(json!({ "released": f.id, "public_ip": address.public_ip() })))
    }

    async fn tag_mfa_required(&self, f: &Finding, now: DateTime<Utc>) -> Result<ActionOutcome> {
        let iam = self.clients.iam(f.key.account()).await?;
        let tags = match iam.list_user_tags().user_name(&f.id).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("NoSuchEntity") => {
                return Ok(ActionOutcome::Skipped("user no longer exists".into()));
            }
            Err(e) => return Err(JanitorError::from_sdk("iam", "ListUserTags", e)),
        };
        if let Some(outcome) = self.protected(tags.tags().iter().map(|t| (t.key(), t.value()))) {
            return Ok(outcome);
        }
        let devices = match iam.list_mfa_devices().user_name(&f.id).send().await {
            Ok(out) => out.mfa_devices().len(),
            Err(e) if e.code() == Some("NoSuchEntity") => {
                return Ok(ActionOutcome::Skipped("user no longer exists".into()));
            }
            Err(e) => return Err(JanitorError::from_sdk("iam", "ListMFADevices", e)),
        };
        if devices > 0 {
            return Ok(ActionOutcome::AlreadyCompliant("user has MFA now".into()));
        }
        if tags.tags().iter().any(|t| t.key() == MFA_REQUIRED_TAG) {
            return Ok(ActionOutcome::AlreadyCompliant(format!("user already tagged {MFA_REQUIRED_TAG}")));
        }
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(MFA_REQUIRED_TAG)
            .value(now.format("%Y-%m-%d").to_string())
            .build()
            .map_err(|e| JanitorError::InvalidInput(e.to_string()))?;
        iam.tag_user()
            .user_name(&f.id)
            .tags(tag)
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("iam", "TagUser", e))?;
        Ok(ActionOutcome::Done(json!({ "tagged": f.id, "tag": MFA_REQUIRED_TAG })))
    }

    async fn block_public_access(&self, f: &Finding) -> Result<ActionOutcome> {
        let s3 = self.clients.s3(f.key.account(), f.key.region()).await?;
        let tags = match s3.get_bucket_tagging().bucket(&f.id).send().await {
            Ok(out) => out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
            Err(e) if e.code() == Some("NoSuchTagSet") => Tags::new(),
            Err(e) if e.code() == Some("NoSuchBucket") => {
                return Ok(ActionOutcome::Skipped("bucket no longer exists".into()));
            }
            Err(e) => return Err(JanitorError::from_sdk("s3", "GetBucketTagging", e)),
        };
        if let Some(outcome) = self.protected(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return Ok(outcome);
        }
        let current = match s3.get_public_access_block().bucket(&f.id).send().await {
            Ok(out) => out.public_access_block_configuration().map(bucket_block),
            Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => None,
            Err(e) if e.code() == Some("NoSuchBucket") => {
                return Ok(ActionOutcome::Skipped("bucket no longer exists".into()));
            }
            Err(e) => return Err(JanitorError::from_sdk("s3", "GetPublicAccessBlock", e)),
        };
        let all_on = current.is_some_and(|b| b.all_on());
        if all_on {
            return Ok(ActionOutcome::AlreadyCompliant("all four Block Public Access settings are on".into()));
        }
        s3.put_public_access_block()
            .bucket(&f.id)
            .public_access_block_configuration(full_bucket_block())
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("s3", "PutPublicAccessBlock", e))?;
        Ok(ActionOutcome::Done(json!({ "blocked": f.id })))
    }
}

/// All four S3 Block Public Access settings on.
pub fn full_bucket_block() -> aws_sdk_s3::types::PublicAccessBlockConfiguration {
    aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build()
}

/// `janitor-final-<id>-<utc timestamp>`, within RDS's 255-character identifier limit.
pub fn final_snapshot_id(db: &str, now: DateTime<Utc>) -> String {
    let mut id = format!("{}{db}", crate::model::FINAL_SNAPSHOT_PREFIX);
    id.truncate(255 - 15);
    format!("{}-{}", id.trim_end_matches('-'), now.format("%Y%m%d%H%M%S"))
}

#[async_trait]
impl Remediator for AwsRemediator {
    async fn apply(&self, finding: &Finding, now: DateTime<Utc>) -> Result<ActionOutcome> {
        match finding.action {
            Action::StopInstance => self.stop_instance(finding).await,
            Action::SnapshotAndDeleteDb => self.snapshot_and_delete(finding, now).await,
            Action::ReleaseAddress => self.release_address(finding).await,
            Action::TagMfaRequired => self.tag_mfa_required(finding, now).await,
            Action::BlockPublicAccess => self.block_public_access(finding).await,
            Action::SnapshotAndDeleteVolume => self.snapshot_and_delete_volume(finding).await,
            Action::RevokeOpenIngress => self.revoke_open_ingress(finding).await,
            Action::NotifyOnly => Ok(ActionOutcome::Skipped("the policy says notify only".into())),
        }
    }
}
