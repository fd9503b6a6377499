//! S3 and S3-compatible stores through the AWS SDK: its credential chain, retries and
//! timeouts, plus streaming multipart upload and multipart server-side copy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective,
    ServerSideEncryption,
};
use aws_sdk_s3::Client;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};

use super::{
    bare_etag, part_size_for, ObjectHead, ObjectInfo, PutOptions, Reader, Store, StoreConfig,
    Tuning,
};
use crate::error::{Error, Result};

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
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    tuning: Tuning,
    requests: Arc<AtomicU64>,
}

/// Counts every request attempt the client sends (retries included), for the logs and tests.
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

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
        self.0.fetch_add(1, Ordering::Relaxed);
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
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(cfg.path_style)
            .interceptor(CountRequests(requests.clone()))
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
            sse: cfg
                .server_side_encryption
                .as_deref()
                .map(ServerSideEncryption::from),
            sse_kms_key_id: cfg.sse_kms_key_id.clone(),
            tuning: tuning.clone(),
            requests,
        })
    }

    /// Turns an SDK error into one actionable line, never including credentials.
    fn fail<E>(&self, what: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let bucket = &self.bucket;
        let endpoint = &self.endpoint;
        match &err {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se.err().code().unwrap_or("");
                let msg = one_line(se.err().message().unwrap_or(""));
                match code {
                    "NoSuchBucket" => Error::StoreRefused(format!(
                        "bucket {bucket:?} does not exist at {endpoint}: create it, or fix PACKAGE_ASSETS_BUCKET / the endpoint"
                    )),
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"
                    | "InvalidToken" | "InvalidClientTokenId" => Error::StoreRefused(format!(
                        "{endpoint} rejected the credentials while {what} ({code}): check AWS_ACCESS_KEY_ID / the secret key / the session token or profile"
                    )),
                    // Some stores (Garage) answer a bad key or signature with a plain AccessDenied.
                    _ if status == 403 && is_credential_message(&msg) => Error::StoreRefused(format!(
                        "{endpoint} rejected the credentials while {what} ({code}): check AWS_ACCESS_KEY_ID / the secret key / the session token or profile"
                    )),
                    _ if code == "AccessDenied" || status == 403 => Error::StoreRefused(format!(
                        "access denied to bucket {bucket:?} at {endpoint} while {what} ({code} {msg}): grant the credentials s3:ListBucket, s3:GetObject and s3:PutObject on it"
                    )),
                    _ if (200..300).contains(&status) => Error::Store(format!(
                        "{what} failed at {endpoint}: its answer (HTTP {status}) could not be read ({})",
                        root_cause(&err)
                    )),
                    _ => Error::Store(format!(
                        "{what} failed at {endpoint}: HTTP {status} {code} {msg}"
                    )),
                }
            }
            SdkError::TimeoutError(_) => Error::Timeout(format!(
                "{what} timed out after {} s at {endpoint}: the store does not answer; check the endpoint, the network and HTTPS_PROXY, or raise S3AM_TIMEOUT",
                self.tuning.timeout.as_secs()
            )),
            SdkError::DispatchFailure(_) if root_cause(&err).contains("no credentials") => {
                Error::Config(format!(
                    "no AWS credentials found while {what}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or AWS_WEB_IDENTITY_TOKEN_FILE, or run where an instance or task role is available"
                ))
            }
            SdkError::DispatchFailure(_) => Error::Store(format!(
                "cannot reach {endpoint} while {what} ({}): check the endpoint (AWS_ENDPOINT_URL / --endpoint), the network and HTTPS_PROXY/NO_PROXY",
                root_cause(&err)
            )),
            SdkError::ConstructionFailure(_) => {
                let text = one_line(&DisplayErrorContext(&err).to_string());
                if text.to_ascii_lowercase().contains("credential") {
                    Error::Config(format!(
                        "no usable AWS credentials while {what} ({text}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available"
                    ))
                } else {
                    Error::Store(format!("{what} could not be sent: {text}"))
                }
            }
            _ => Error::Store(format!(
                "{what} failed at {endpoint}: {}",
                one_line(&DisplayErrorContext(&err).to_string())
            )),
        }
    }

    /// A failed copy; a failed `x-amz-copy-source-if-match` means the source was rewritten.
    fn fail_copy<E>(&self, src: &str, dst: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let SdkError::ServiceError(se) = &err {
            if se.raw().status().as_u16() == 412 {
                return Error::Verify(format!(
                    "{src} changed after its manifest was written (entity tag differs): not copying it"
                ));
            }
        }
        self.fail(&format!("copying {src} to {dst}"), err)
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

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String> {
        let resp = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(Self::metadata(opts)))
            .set_checksum_algorithm(self.checksums.then_some(ChecksumAlgorithm::Sha256))
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.sse_kms_key_id.clone())
            .send()
            .await
            .map_err(|e| self.fail(&format!("starting the multipart upload of {key}"), e))?;
        resp.upload_id().map(str::to_string).ok_or_else(|| {
            Error::Store(format!("{} returned no upload id for {key}", self.endpoint))
        })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<String> {
        parts.sort_by_key(|p| p.part_number());
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.fail(&format!("completing the multipart upload of {key}"), e))?;
        Ok(out.e_tag().map(bare_etag).unwrap_or_default())
    }

    /// Completes a multipart upload from its parts, or aborts it when the parts failed or
    /// completion fails, so no half-written object ever appears.
    async fn finish_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Result<Vec<CompletedPart>>,
    ) -> Result<String> {
        let done = match parts {
            Ok(parts) => self.complete_multipart(key, upload_id, parts).await,
            Err(e) => Err(e),
        };
        if done.is_err() {
            self.abort_multipart(key, upload_id).await;
        }
        done
    }

    async fn put_object(&self, key: &str, body: ByteStream, opts: &PutOptions) -> Result<String> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(Self::metadata(opts)))
            .set_checksum_sha256(self.checksum(opts.sha256))
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.sse_kms_key_id.clone())
            .body(body)
            .customize()
            // An in-memory body would otherwise be hashed once more to sign it; the S3
            // checksum (when on) already covers its content.
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.fail(&format!("uploading {key}"), e))?;
        Ok(out.e_tag().map(bare_etag).unwrap_or_default())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        // Best effort: an unfinished multipart upload is invisible to readers either way.
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        opts: &PutOptions,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>> {
        let part_size = part_size_for(size, self.tuning.part_size);
        let count = size.div_ceil(part_size).max(1);
        // Parts the caller hashed already (with the whole file, on other cores) are sent
        // without another pass over them.
        let known = (opts.part_sha256.len() as u64 == count).then_some(&opts.part_sha256);
        let parallel = self.tuning.concurrency.clamp(1, 4);
        futures::stream::iter(0..count)
            .map(|i| {
                async move {
                    let offset = i * part_size;
                    let len = part_size.min(size - offset) as usize;
                    let p = path.to_path_buf();
                    // Hash the part through a small buffer, then stream it from the file: memory
                    // stays a few MiB whatever the part size and the parts in flight.
                    let checksums = self.checksums;
                    let known = known.map(|k| k[i as usize]);
                    let digest = tokio::task::spawn_blocking(move || {
                        if !checksums {
                            return Ok::<_, Error>([0u8; 32]);
                        }
                        if let Some(d) = known {
                            return Ok(d);
                        }
                        crate::codehash::sha256_range(&p, offset, len as u64)
                    })
                    .await
                    .map_err(|e| Error::Store(format!("reading part of {key}: {e}")))??;
                    let body = ByteStream::read_from()
                        .path(path)
                        .offset(offset)
                        .length(Length::Exact(len as u64))
                        .buffer_size(256 * 1024)
                        .build()
                        .await
                        .map_err(|e| {
                            Error::Input(format!("cannot read {}: {e}", path.display()))
                        })?;
                    let number = (i + 1) as i32;
                    let checksum = self.checksum(Some(digest));
                    let resp = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .set_checksum_sha256(checksum.clone())
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| self.fail(&format!("uploading part {number} of {key}"), e))?;
                    Ok::<_, Error>(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(resp.e_tag().map(str::to_string))
                            .set_checksum_sha256(checksum)
                            .build(),
                    )
                }
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await
    }

    async fn copy_parts(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        upload_id: &str,
        if_match: Option<&str>,
    ) -> Result<Vec<CompletedPart>> {
        let part_size = part_size_for(size, self.tuning.copy_part_size);
        let count = size.div_ceil(part_size).max(1);
        let source = self.copy_source(src);
        futures::stream::iter(0..count)
            .map(|i| {
                let source = source.clone();
                async move {
                    let first = i * part_size;
                    let last = (first + part_size).min(size) - 1;
                    let number = (i + 1) as i32;
                    let resp = self
                        .client
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(dst)
                        .upload_id(upload_id)
                        .part_number(number)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={first}-{last}"))
                        .set_copy_source_if_match(if_match.map(str::to_string))
                        .send()
                        .await
                        .map_err(|e| self.fail_copy(src, dst, e))?;
                    let result = resp.copy_part_result();
                    Ok::<_, Error>(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(result.and_then(|r| r.e_tag()).map(str::to_string))
                            .set_checksum_sha256(
                                result.and_then(|r| r.checksum_sha256()).map(str::to_string),
                            )
                            .build(),
                    )
                }
            })
            .buffer_unordered(self.tuning.concurrency.clamp(1, 8))
            .try_collect()
            .await
    }
}

/// An endpoint must be an http(s) URL with a host, or the SDK fails later with a vaguer
/// "dispatch failure".
fn check_endpoint(ep: &str) -> Result<()> {
    let rest = ep
        .strip_prefix("https://")
        .or_else(|| ep.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Ok(()),
        _ => Err(Error::Config(format!(
            "invalid endpoint {}: use an http:// or https:// URL such as https://s3.example.com:9000",
            crate::error::clip(ep)
        ))),
    }
}

/// The innermost error's message, e.g. "Connection refused (os error 111)".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    one_line(&cur.to_string())
}

fn is_credential_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "signature",
        "access key",
        "no such key id",
        "credential",
        "token",
    ]
    .iter()
    .any(|w| m.contains(w))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
        let upload_id = self.create_multipart(key, opts).await?;
        let parts = self.upload_parts(key, path, size, opts, &upload_id).await;
        self.finish_multipart(key, &upload_id, parts).await
    }

    fn checksum_parts(&self, size: u64) -> Option<u64> {
        (self.checksums && size >= self.tuning.multipart_threshold)
            .then(|| part_size_for(size, self.tuning.part_size))
    }

    async fn put_bytes(&self, key: &str, body: Vec<u8>, opts: &PutOptions) -> Result<String> {
        self.put_object(key, ByteStream::from(body), opts).await
    }

    async fn copy(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String> {
        let if_match = if_match.map(|e| format!("\"{}\"", bare_etag(e)));
        if size <= self.tuning.copy_multipart_threshold {
            let out = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(dst)
                .copy_source(self.copy_source(src))
                .set_copy_source_if_match(if_match)
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(Self::metadata(opts)))
                .set_server_side_encryption(self.sse.clone())
                .set_ssekms_key_id(self.sse_kms_key_id.clone())
                .send()
                .await
                .map_err(|e| self.fail_copy(src, dst, e))?;
            return Ok(out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(bare_etag)
                .unwrap_or_default());
        }
        let upload_id = self.create_multipart(dst, opts).await?;
        let parts = self
            .copy_parts(src, dst, size, &upload_id, if_match.as_deref())
            .await;
        self.finish_multipart(dst, &upload_id, parts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
