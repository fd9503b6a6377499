//! S3 and S3-compatible stores through the AWS SDK: its credential chain, retries and
//! timeouts. Uploads (single and multipart) and server-side copies are in `upload`, and how
//! an SDK failure becomes a one-line error is in `errors`.

mod errors;
mod sse;
mod upload;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use base64::Engine as _;

use super::{
    bare_etag, transfer_part_size, ObjectHead, ObjectInfo, Precondition, PutOptions, Reader, Store,
    StoreConfig, Tuning,
};
use crate::error::{Error, Result};
use errors::check_endpoint;

/// Attempts per request (the first try and its retries) on throttling, 5xx, resets and
/// timeouts, with exponential backoff and jitter.
pub const MAX_ATTEMPTS: u32 = 8;

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
    checksums: bool,
    sse: sse::Sse,
    tuning: Tuning,
    requests: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    /// Whether the store took a full-object CRC64/NVME multipart upload (until it refuses one).
    crc64_multipart: Arc<AtomicBool>,
}

/// Counts every request attempt the client sends (retries included), for the logs and tests.
#[derive(Debug)]
struct CountRequests {
    sent: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        // Every attempt's response passes here, retried ones included: the transfer loops see
        // throttling as it happens, not only once retries run out.
        if matches!(context.response().status().as_u16(), 503 | 429) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Builds the HTTP client: rustls, the system's roots plus `AWS_CA_BUNDLE`, and
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment.
fn http_client(
    ca_bundle: Option<Vec<u8>>,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let mut trust = TrustStore::default();
    if let Some(pem) = ca_bundle {
        trust = trust.with_pem_certificate(pem);
    }
    let ctx = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context without extra names always builds");
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b =
            aws_smithy_http_client::Connector::builder().proxy_config(ProxyConfig::from_env());
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(ctx.clone())
            .build()
    })
}

impl S3Store {
    /// Opens `bucket` with the given settings; nothing is sent until the first request.
    pub async fn open(bucket: &str, cfg: &StoreConfig, tuning: &Tuning) -> Result<Self> {
        let mut ca_bundle = match std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty()) {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                Error::Config(format!(
                    "cannot read AWS_CA_BUNDLE {}: {e}; point it at a PEM file of CA certificates",
                    Path::new(&path).display()
                ))
            })?),
            None => None,
        };
        if let Some(pem) = &cfg.ca_bundle {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Config(
                    "the CA bundle holds no PEM certificate: give the CA certificate's text, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----".into(),
                ));
            }
            let mut all = ca_bundle.unwrap_or_default();
            all.push(b'\n');
            all.extend_from_slice(pem.as_bytes());
            ca_bundle = Some(all);
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client(ca_bundle))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    // A store silent this long gets the request retried...
                    .read_timeout(
                        (tuning.timeout / 4).clamp(Duration::from_secs(2), Duration::from_secs(30)),
                    )
                    // ...and no request, retries included, outlives the configured timeout.
                    .operation_timeout(tuning.timeout)
                    .build(),
            );
        if let Some(r) = &cfg.region {
            loader = loader.region(Region::new(r.clone()));
        }
        let env_endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|v| !v.is_empty());
        for ep in cfg.endpoint.iter().chain(env_endpoint.iter()) {
            check_endpoint(ep)?;
        }
        if let Some(ep) = &cfg.endpoint {
            loader = loader.endpoint_url(ep.clone());
        }
        match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id.clone(),
                    secret.clone(),
                    cfg.session_token.clone(),
                    None,
                    "s3-asset-manager-config",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "give both access_key_id and secret_access_key, or neither to use the default credential chain".into(),
                ))
            }
        }
        let mut sdk = loader.load().await;
        if sdk.region().is_none() {
            sdk = sdk.into_builder().region(Region::new("us-east-1")).build();
        }
        if let Some(role) = &cfg.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
                .session_name("s3-asset-manager")
                .configure(&sdk)
                .build()
                .await;
            sdk = sdk
                .into_builder()
                .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(provider))
                .build();
        }
        let endpoint = sdk
            .endpoint_url()
            .map(str::to_string)
            .unwrap_or_else(|| "AWS S3".to_string());
        let requests = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(AtomicU64::new(0));
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(cfg.path_style)
            .interceptor(CountRequests {
                sent: requests.clone(),
                throttled: throttled.clone(),
            })
            // The default retry quota runs dry after ~100 retries in a run, which a large
            // transfer through a flaky store reaches; every request still stops at MAX_ATTEMPTS.
            .retry_partition(
                RetryPartition::custom("s3-asset-manager")
                    .token_bucket(TokenBucket::unlimited())
                    .build(),
            );
        if cfg.skip_checksums {
            s3 = s3
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(s3.build()),
            bucket: bucket.to_string(),
            endpoint,
            checksums: !cfg.skip_checksums,
            sse: sse::Sse::new(
                cfg.server_side_encryption.as_deref(),
                cfg.sse_kms_key_id.clone(),
            ),
            tuning: tuning.clone(),
            requests,
            throttled,
            crc64_multipart: Arc::new(AtomicBool::new(true)),
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

    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, percent_encode(key))
    }
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
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().map(bare_etag),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<Vec<ObjectInfo>> {
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
        Ok(page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(bare_etag),
                })
            })
            .collect())
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
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
        let req = self
            .client
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

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        opts: &PutOptions,
    ) -> Result<String> {
        if size < self.tuning.multipart_threshold {
            let body = ByteStream::read_from()
                .path(path)
                .buffer_size(256 * 1024)
                .build()
                .await
                .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
            return self.put_object(key, body, opts).await;
        }
        let (upload_id, checksum) = self.start_upload(key, opts).await?;
        let parts = self
            .upload_parts(key, path, size, opts, &upload_id, checksum)
            .await;
        self.finish_multipart(key, &upload_id, parts).await
    }

    fn checksum_parts(&self, size: u64) -> Option<u64> {
        (self.checksums && size >= self.tuning.multipart_threshold)
            .then(|| transfer_part_size(size, self.tuning.part_size))
    }

    async fn put_bytes(&self, key: &str, body: Vec<u8>, opts: &PutOptions) -> Result<String> {
        self.put_object(key, ByteStream::from(body), opts).await
    }

    async fn put_bytes_if(
        &self,
        key: &str,
        body: Vec<u8>,
        opts: &PutOptions,
        cond: Precondition<'_>,
    ) -> Result<Option<String>> {
        self.put_object_if(key, ByteStream::from(body), opts, Some(cond))
            .await
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::part_size_for;

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
