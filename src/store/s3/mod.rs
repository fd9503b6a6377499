//! S3 and S3-compatible stores through the AWS SDK: its credential chain, retries and
//! timeouts, set up in `client`. Uploads (single and multipart) and server-side copies are in
//! `upload`, and how an SDK failure becomes a one-line error is in `errors`.

mod client;
mod copy;
mod delete;
mod errors;
mod small;
pub(crate) use client::{SILENT_MAX, SILENT_SHARE};
mod sse;
mod upload;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use base64::Engine as _;

use super::{
    bare_etag, transfer_part_size, Body, ObjectHead, ObjectInfo, PendingUpload, PutOptions, Reader,
    Store, StoreConfig, Tuning,
};
use crate::error::{Error, Result};

/// Attempts per request (the first try and its retries) on throttling, 5xx, resets and
/// timeouts, with exponential backoff and jitter.
pub(crate) const MAX_ATTEMPTS: u32 = 8;

/// The largest multipart threshold under which whole downloads go through
/// [`client::SMALL_READ_BUFFER`]'s connections: the default one, 16 MiB (a larger file reads
/// in ranges). Past it, a whole object may be large, and reads of 16 KiB would cost it CPU.
const SMALL_WHOLE: u64 = 16 << 20;

/// An S3 bucket.
#[derive(Debug, Clone)]
pub(crate) struct S3Store {
    client: Client,
    /// `client` without the SDK's check of a response's checksum, for the downloads the
    /// engine checks itself ([`Store::get_checked`]); the same connections.
    unchecked: Client,
    /// `unchecked` on connections of their own, with small read buffers: for small objects
    /// downloaded whole ([`client::for_small_downloads`]).
    small: Client,
    bucket: String,
    endpoint: String,
    /// Which settings its errors name.
    names: crate::store::Names,
    checksums: bool,
    sse: sse::Sse,
    tuning: Tuning,
    counts: Arc<client::Counts>,
    /// Whether the store took a full-object CRC64/NVME multipart upload (until it refuses one).
    crc64_multipart: Arc<AtomicBool>,
    /// Whether the store is taken to enforce `If-None-Match: *`: AWS S3, or configured so.
    expects_enforcement: bool,
    /// Whether requests go over HTTPS ([`Store::tls`]).
    tls: bool,
}

impl S3Store {
    /// Opens `bucket` with the given settings; nothing is sent until the first request.
    pub(crate) async fn open(bucket: &str, cfg: &StoreConfig, tuning: &Tuning) -> Result<Self> {
        // Read once, for both HTTP clients.
        let ca_bundle = client::ca_bundle(cfg)?;
        let sdk = client::sdk_config(cfg, tuning, ca_bundle.clone()).await?;
        let aws = is_aws(sdk.endpoint_url());
        // AWS's own endpoints, without one set, are HTTPS.
        let tls = sdk.endpoint_url().is_none_or(|u| u.starts_with("https://"));
        let endpoint = sdk
            .endpoint_url()
            .map(errors::shown_endpoint)
            .unwrap_or_else(|| "AWS S3".to_string());
        let counts = Arc::new(client::Counts::new());
        let s3 = client::s3_client(&sdk, cfg, &counts);
        let small = client::for_small_downloads(
            &s3,
            client::http_client(ca_bundle, client::SMALL_READ_BUFFER),
        );
        Ok(S3Store {
            unchecked: client::without_response_checks(&s3),
            small,
            client: s3,
            bucket: bucket.to_string(),
            endpoint,
            names: cfg.names,
            checksums: !cfg.skip_checksums,
            sse: sse::Sse::new(
                cfg.server_side_encryption.as_deref(),
                cfg.sse_kms_key_id.clone(),
            ),
            tuning: tuning.clone(),
            counts,
            crc64_multipart: Arc::new(AtomicBool::new(true)),
            expects_enforcement: aws || cfg.conditional_writes_enforced,
            tls,
        })
    }

    fn checksum(&self, sha256: Option<[u8; 32]>) -> Option<String> {
        sha256
            .filter(|_| self.checksums)
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
    }

    fn metadata(opts: &PutOptions) -> HashMap<String, String> {
        opts.metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// An object's content (or a byte range of it) through `client`.
    async fn get_with(
        &self,
        client: &Client,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Reader>> {
        let req = client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|(a, b)| format!("bytes={a}-{b}")));
        match req.send().await {
            Ok(o) => Ok(Some(Box::pin(o.body.into_async_read()))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.fail(&format!("downloading {key}"), e)),
        }
    }

    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, percent_encode(key))
    }
}

/// Whether requests go to AWS S3 itself, which enforces `If-None-Match: *` on PutObject (since
/// August 2024): no endpoint other than AWS's is configured, here or for S3 alone
/// (`AWS_ENDPOINT_URL_S3`).
fn is_aws(endpoint: Option<&str>) -> bool {
    let s3_only = std::env::var("AWS_ENDPOINT_URL_S3").ok();
    aws_endpoint(endpoint.or(s3_only.as_deref().filter(|v| !v.is_empty())))
}

/// Whether `endpoint` (`None`: the SDK's own) is AWS S3's.
fn aws_endpoint(endpoint: Option<&str>) -> bool {
    match endpoint {
        None => true,
        Some(url) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let host = rest.split(['/', ':', '?']).next().unwrap_or("");
            host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
        }
    }
}

/// Unix milliseconds of an S3 timestamp.
fn unix_ms(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<u64> {
    t.and_then(|t| t.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
}

/// A listed object as the trait gives it.
impl S3Store {
    /// One listing request: up to `max_keys` objects under `prefix` after `start_after`, and
    /// whether the listing goes on past them (the store's word: it may answer fewer keys than
    /// asked and still go on).
    async fn list_one(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<(Vec<ObjectInfo>, bool)> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .max_keys(max_keys.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| self.fail(&format!("listing {prefix}"), e))?;
        let more = page.is_truncated().unwrap_or(false);
        Ok((page.contents().iter().filter_map(info).collect(), more))
    }
}

fn info(o: &aws_sdk_s3::types::Object) -> Option<ObjectInfo> {
    Some(ObjectInfo {
        key: o.key()?.to_string(),
        size: o.size().unwrap_or(0).max(0) as u64,
        etag: o.e_tag().map(bare_etag),
        modified_ms: unix_ms(o.last_modified()),
    })
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request body streamed from the file at `path` through a buffer of `buffer` bytes
/// (read again from the start if the request is retried).
async fn file_body(path: &Path, buffer: usize) -> Result<ByteStream> {
    ByteStream::read_from()
        .path(path)
        .buffer_size(buffer)
        .build()
        .await
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))
}

#[async_trait]
impl Store for S3Store {
    fn url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(&format!("listing {prefix}"), e))?;
            out.extend(page.contents().iter().filter_map(info));
        }
        Ok(out)
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<Vec<ObjectInfo>> {
        Ok(self.list_one(prefix, start_after, max_keys).await?.0)
    }

    async fn list_first(&self, prefix: &str) -> Result<(Vec<ObjectInfo>, bool)> {
        self.list_one(prefix, None, 1000).await
    }

    fn expects_enforcement(&self) -> bool {
        self.expects_enforcement
    }

    fn requests(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed)
    }

    fn throttled(&self) -> u64 {
        self.counts.throttled.load(Ordering::Relaxed)
    }

    fn tls(&self) -> bool {
        self.tls
    }

    fn round_trip(&self) -> Option<Duration> {
        match self.counts.fastest_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectHead>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(ObjectHead {
                size: o.content_length().unwrap_or(0).max(0) as u64,
                metadata: o
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.fail(&format!("reading the metadata of {key}"), e)),
        }
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
        self.get_with(&self.client, key, range).await
    }

    async fn get_checked(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
        // A whole object is smaller than the multipart threshold (a larger one goes in ranges):
        // where that is small, through the connections with small read buffers.
        let client = match range {
            None if self.tuning.multipart_threshold <= SMALL_WHOLE => &self.small,
            _ => &self.unchecked,
        };
        self.get_with(client, key, range).await
    }

    async fn put(&self, key: &str, body: Body<'_>, opts: &PutOptions) -> Result<Option<String>> {
        let parts =
            matches!(body, Body::File { size, .. } if size >= self.tuning.multipart_threshold);
        // A small file's body waits for the hold on the wire (an empty one would be whole
        // with its head, so it waits here).
        let on_the_wire = matches!(body, Body::Small { size, .. } if size > 0);
        if let (Some(hold), false, false) = (&opts.hold, parts, on_the_wire) {
            hold.released(key).await?;
        }
        match body {
            Body::Bytes(bytes) => self.put_object(key, ByteStream::from(bytes), opts).await,
            Body::Stream(path) => {
                let body = file_body(path, 64 * 1024).await?;
                self.put_object(key, body, opts).await
            }
            Body::Small { path, size } => {
                // Without the store's checksum, the body checks its bytes against the digest
                // itself.
                let verify = opts.sha256.filter(|_| !self.checksums);
                let sent = match &opts.hold {
                    Some(hold) if on_the_wire => {
                        self.put_held(key, path, size, verify, hold, opts).await
                    }
                    _ => {
                        let body = small::body(path.to_path_buf(), size, verify, None);
                        self.put_object(key, body, opts).await
                    }
                };
                if sent.is_err() {
                    // A file rewritten since it was hashed fails as a digest the store
                    // refused, or as a body that stopped (which reads as a network failure):
                    // say what happened.
                    super::read_unchanged(path, size, opts.sha256)?;
                }
                sent
            }
            Body::File { path, size } if size < self.tuning.multipart_threshold => {
                let body = file_body(path, 256 * 1024).await?;
                self.put_object(key, body, opts).await
            }
            Body::File { .. } if opts.mode.conditional() => Err(Error::Internal(format!(
                "a conditional write of {key} cannot go in parts"
            ))),
            Body::File { path, size } => {
                let (upload_id, checksum) = self.start_upload(key, opts).await?;
                let mut parts = self
                    .upload_parts(key, path, size, opts, &upload_id, checksum)
                    .await;
                if let (Some(hold), Ok(_)) = (&opts.hold, &parts) {
                    // The parts are in; the object appears only once the hold is released.
                    if let Err(e) = hold.released(key).await {
                        parts = Err(e);
                    }
                }
                self.finish_multipart(key, &upload_id, parts, opts)
                    .await
                    .map(Some)
            }
        }
    }

    fn checksum_parts(&self, size: u64) -> Option<u64> {
        (self.checksums && size >= self.tuning.multipart_threshold)
            .then(|| transfer_part_size(size, self.tuning.part_size))
    }

    async fn copy(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String> {
        self.copy_object(src, dst, size, opts, if_match).await
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.delete_objects(keys).await
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        self.list_uploads(prefix).await
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        self.abort(&upload.key, &upload.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::part_size_for;

    #[test]
    fn aws_endpoints_are_told_from_others() {
        assert!(aws_endpoint(None));
        assert!(aws_endpoint(Some("https://s3.eu-west-1.amazonaws.com")));
        assert!(aws_endpoint(Some(
            "https://bucket.s3.cn-north-1.amazonaws.com.cn/"
        )));
        assert!(!aws_endpoint(Some("http://127.0.0.1:3900")));
        assert!(!aws_endpoint(Some("https://amazonaws.com.evil.example")));
        assert!(!aws_endpoint(Some("https://s3.example.com/amazonaws.com")));
        assert!(!aws_endpoint(Some("https://x.r2.cloudflarestorage.com")));
    }

    #[test]
    fn encodes_copy_sources() {
        assert_eq!(percent_encode("a/b c+d.zip"), "a/b%20c%2Bd.zip");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn part_sizes_respect_the_part_limit() {
        assert_eq!(part_size_for(100, 8), 8);
        assert_eq!(part_size_for(1_000_000_000_000, 8 << 20), 100_000_000);
    }

    #[test]
    fn large_files_go_in_larger_parts() {
        const MIB: u64 = 1 << 20;
        // Up to 512 MiB, the preferred size; then about 64 parts, of at most 64 MiB.
        assert_eq!(transfer_part_size(100 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(transfer_part_size(512 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(transfer_part_size(1024 * MIB, 8 * MIB), 16 * MIB);
        assert_eq!(transfer_part_size(100 * 1024 * MIB, 8 * MIB), 64 * MIB);
        // A larger preferred size wins, and S3's 10,000 parts still bound it.
        assert_eq!(transfer_part_size(1024 * MIB, 32 * MIB), 32 * MIB);
        assert_eq!(transfer_part_size(1_000_000_000_000, 8 * MIB), 100_000_000);
    }
}
