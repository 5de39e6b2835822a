//! `S3RunStore`: the run's documents as objects in the janitor's private run bucket.
//! `S3ReportStore`: each run's report page in the private reports bucket, with a
//! pre-signed link to it.

use async_trait::async_trait;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::chain::Anchor;
use crate::error::{JanitorError, Result};
use crate::ports::{AnchorCopies, PublishedReport, ReportStore, RunStore, anchor_copy_key, report_key};

pub struct S3RunStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3RunStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3RunStore { client, bucket: bucket.to_owned() }
    }
}

#[async_trait]
impl RunStore for S3RunStore {
    async fn put(&self, path: &str, body: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(path)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("s3", "PutObject", e))?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.get_version(path, None).await
    }
}

impl S3RunStore {
    /// The object at `path` (a given version of it, or the current one); `None` if there is none.
    async fn get_version(&self, path: &str, version: Option<&str>) -> Result<Option<Vec<u8>>> {
        let request =
            self.client.get_object().bucket(&self.bucket).key(path).set_version_id(version.map(str::to_owned));
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(JanitorError::from_sdk("s3", "GetObject", e)),
        };
        let bytes = out.body.collect().await.map_err(|e| JanitorError::Transient {
            service: "s3",
            operation: "GetObject",
            message: format!("reading {path}: {e}"),
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

/// [`crate::ports::REPORT_LINK_DAYS`] as the SDK's presigning takes it.
pub const REPORT_LINK_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(crate::ports::REPORT_LINK_DAYS * 24 * 3600);

pub struct S3ReportStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ReportStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3ReportStore { client, bucket: bucket.to_owned() }
    }

    async fn put_page(&self, key: &str, html: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("text/html; charset=utf-8")
            // Each run's page is read once or twice, and latest.html is rewritten daily:
            // a browser must not keep yesterday's as today's.
            .cache_control("no-cache")
            .body(html.into())
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("s3", "PutObject", e))?;
        Ok(())
    }
}

#[async_trait]
impl ReportStore for S3ReportStore {
    async fn publish(&self, run_id: &str, html: Vec<u8>) -> Result<PublishedReport> {
        let key = report_key(run_id);
        self.put_page(&key, html.clone()).await?;
        self.put_page("latest.html", html).await?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(REPORT_LINK_LIFETIME)
            .map_err(|e| JanitorError::Config(format!("report link lifetime: {e}")))?;
        let link = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .presigned(config)
            .await
            .map_err(|e| JanitorError::from_sdk("s3", "GetObject", e))?;
        Ok(PublishedReport { location: format!("s3://{}/{key}", self.bucket), link: link.uri().to_owned() })
    }
}

/// Anchor copies in an S3 bucket under Object Lock (compliance mode, a default retention):
/// each written once under a key of its own, which S3 keeps unchanged until it expires.
pub struct S3AnchorCopies {
    store: S3RunStore,
}

impl S3AnchorCopies {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3AnchorCopies { store: S3RunStore::new(client, bucket) }
    }
}

#[async_trait]
impl AnchorCopies for S3AnchorCopies {
    async fn keep(&self, anchor: &Anchor) -> Result<()> {
        let body = serde_json::to_vec(anchor)
            .map_err(|e| JanitorError::InvalidInput(format!("anchor of run {}: {e}", anchor.run_id)))?;
        self.store
            .client
            .put_object()
            .bucket(&self.store.bucket)
            .key(anchor_copy_key(anchor))
            .content_type("application/json")
            // A bucket under Object Lock takes no write without a checksum of its body.
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .body(body.into())
            .send()
            .await
            .map_err(|e| JanitorError::from_sdk("s3", "PutObject", e))?;
        Ok(())
    }

    /// The first version of each key: the one Object Lock keeps. A later version (a
    /// PutObject over it) or a delete marker changes what a plain read returns, not this.
    async fn kept(&self) -> Result<Vec<Anchor>> {
        let mut first: std::collections::BTreeMap<String, (aws_smithy_types::DateTime, String)> = Default::default();
        // ListObjectVersions has no paginator: its pages go by key and version markers.
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .store
                .client
                .list_object_versions()
                .bucket(&self.store.bucket)
                .prefix("anchors/")
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| JanitorError::from_sdk("s3", "ListObjectVersions", e))?;
            for version in page.versions() {
                let (Some(key), Some(id), Some(at)) = (version.key(), version.version_id(), version.last_modified())
                else {
                    continue;
                };
                let entry = first.entry(key.to_owned()).or_insert_with(|| (*at, id.to_owned()));
                // S3 lists a key's versions newest first: of two in the same instant, the
                // later listed is the older.
                if (at.secs(), at.subsec_nanos()) <= (entry.0.secs(), entry.0.subsec_nanos()) {
                    *entry = (*at, id.to_owned());
                }
            }
            if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        let mut copies = Vec::new();
        for (key, (_, version)) in first {
            let body = self.store.get_version(&key, Some(&version)).await?.ok_or_else(|| JanitorError::Aws {
                service: "s3",
                operation: "GetObject",
                message: format!("{key} version {version} is listed but cannot be read"),
            })?;
            let anchor: Anchor = serde_json::from_slice(&body).map_err(|e| {
                JanitorError::InvalidInput(format!("{key} in {} is not an anchor: {e}", self.store.bucket))
            })?;
            copies.push(anchor);
        }
        copies.sort_by(|a, b| (a.at, &a.run_id).cmp(&(b.at, &b.run_id)));
        Ok(copies)
    }
}
