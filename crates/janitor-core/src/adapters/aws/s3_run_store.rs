//! `S3RunStore`: the run's documents as objects in the janitor's private run bucket.

use async_trait::async_trait;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{JanitorError, Result};
use crate::ports::RunStore;

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
        let out = match self.client.get_object().bucket(&self.bucket).key(path).send().await {
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
