//! How the SDK client is built: TLS and proxies, credentials (explicit keys, an assumed role,
//! or the default chain), retries, timeouts and checksums, and the request counters.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::Client;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::errors::check_endpoint;
use super::MAX_ATTEMPTS;
use crate::error::{Error, Result};
use crate::store::{StoreConfig, Tuning};

/// What [`CountRequests`] counts of every request attempt, shared with the store.
#[derive(Debug)]
pub(super) struct Counts {
    /// Attempts sent, retries included.
    pub(super) sent: AtomicU64,
    /// Answers that said the store is throttling (503, 429).
    pub(super) throttled: AtomicU64,
    /// The fastest answer so far, from a request's sending to its response's head, in
    /// microseconds (`u64::MAX` until the first).
    pub(super) fastest_us: AtomicU64,
}

impl Counts {
    pub(super) fn new() -> Self {
        Counts {
            sent: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            fastest_us: AtomicU64::new(u64::MAX),
        }
    }
}

/// Counts every request attempt the client sends (retries included), the throttled answers
/// and the fastest answer, for the logs, the transfer loops and tests.
#[derive(Debug)]
struct CountRequests(Arc<Counts>);

/// When the attempt in flight was sent, kept in the operation's config bag between hooks.
#[derive(Debug, Clone)]
struct SentAt(Instant);

impl aws_smithy_types::config_bag::Storable for SentAt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        self.0.sent.fetch_add(1, Ordering::Relaxed);
        cfg.interceptor_state().store_put(SentAt(Instant::now()));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        // Every attempt's response passes here, retried ones included: the transfer loops see
        // throttling as it happens, not only once retries run out.
        if matches!(context.response().status().as_u16(), 503 | 429) {
            self.0.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(SentAt(at)) = cfg.load::<SentAt>() {
            let us = at.elapsed().as_micros().min(u64::MAX as u128 - 1) as u64;
            self.0.fastest_us.fetch_min(us, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Traces every request attempt when `S3AM_TRACE` is set ([`crate::trace`]).
#[derive(Debug)]
struct TraceRequests;

/// The trace of the attempt in flight, kept in the operation's config bag between hooks.
#[derive(Debug, Clone)]
struct Traced(Option<crate::trace::Pending>);

impl aws_smithy_types::config_bag::Storable for Traced {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for TraceRequests {
    fn name(&self) -> &'static str {
        "TraceRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "request".into());
        let req = context.request();
        // The path and query only: never a header, so never a credential.
        let uri = req.uri();
        let line = format!(
            "{} {}",
            req.method(),
            uri.find("://")
                .and_then(|i| uri[i + 3..].find('/').map(|j| &uri[i + 3 + j..]))
                .unwrap_or(uri)
        );
        let pending = crate::trace::begin(&operation, line, req.body().content_length());
        cfg.interceptor_state().store_put(Traced(pending));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let Some(pending) = cfg.load::<Traced>().and_then(|t| t.0.clone()) else {
            return Ok(());
        };
        cfg.interceptor_state().store_put(Traced(None));
        let response = context.response();
        let status = response.map(|r| r.status().as_u16());
        let received = response
            .and_then(|r| r.headers().get("content-length"))
            .and_then(|v| v.parse().ok());
        crate::trace::end(pending, status, received);
        Ok(())
    }
}

/// The SDK settings for `cfg` with the CA certificates of [`ca_bundle`], validated before
/// anything is sent: a bad endpoint or half-given key pair fails here, not on the first
/// request (a bad CA bundle fails in [`ca_bundle`]).
pub(super) async fn sdk_config(
    cfg: &StoreConfig,
    tuning: &Tuning,
    ca_bundle: Option<Vec<u8>>,
) -> Result<SdkConfig> {
    let loader = loader(ca_bundle, tuning);
    let loader = with_credentials(with_endpoint(loader, cfg)?, cfg)?;
    let mut sdk = loader.load().await;
    if sdk.region().is_none() {
        sdk = sdk.into_builder().region(Region::new("us-east-1")).build();
    }
    Ok(assume_role(sdk, cfg).await)
}

/// The S3 client on `sdk`, counting its attempts into `sent` and `throttled`.
pub(super) fn s3_client(sdk: &SdkConfig, cfg: &StoreConfig, counts: &Arc<Counts>) -> Client {
    let mut s3 = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(cfg.path_style)
        .interceptor(CountRequests(counts.clone()))
        // The default retry quota runs dry after ~100 retries in a run, which a large
        // transfer through a flaky store reaches; every request still stops at MAX_ATTEMPTS.
        .retry_partition(
            RetryPartition::custom("s3-asset-manager")
                .token_bucket(TokenBucket::unlimited())
                .build(),
        );
    if crate::trace::enabled() {
        s3 = s3.interceptor(TraceRequests);
    }
    if cfg.skip_checksums {
        s3 = s3
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    Client::from_conf(s3.build())
}

/// `client` without the SDK's check of a response's checksum (with its store's checksums on,
/// a GetObject asks for the object's checksum and hashes the body against it): for downloads
/// checked against their manifest's SHA-256 anyway, where it only hashed each small file twice.
pub(super) fn without_response_checks(client: &Client) -> Client {
    let config = client
        .config()
        .to_builder()
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// [`without_response_checks`] on connections of their own from `http` (built with
/// [`SMALL_READ_BUFFER`]): for small objects downloaded whole and checked against their
/// manifest, many at once, where each connection's buffers are most of the memory.
pub(super) fn for_small_downloads(
    client: &Client,
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
) -> Client {
    let config = without_response_checks(client)
        .config()
        .to_builder()
        .http_client(http)
        .build();
    Client::from_conf(config)
}

/// The CA certificates to trust beyond the system's: `AWS_CA_BUNDLE`'s file, then the
/// configured bundle, so a pipeline can add its private CA without losing the host's.
pub(super) fn ca_bundle(cfg: &StoreConfig) -> Result<Option<Vec<u8>>> {
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
    Ok(ca_bundle)
}

/// The SDK loader with our HTTP client, retries and timeouts, which bound every request by
/// the configured timeout whatever the store does.
fn loader(ca_bundle: Option<Vec<u8>>, tuning: &Tuning) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client(ca_bundle, READ_BUFFER))
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
                .read_timeout(silent_after(tuning.timeout))
                // ...and no request, retries included, outlives the configured timeout.
                .operation_timeout(tuning.timeout)
                .build(),
        )
}

/// How long a store may stay silent before a request is sent again: a
/// [`SILENT_SHARE`]th of the whole request's timeout, from 2 s up to [`SILENT_MAX`].
fn silent_after(timeout: Duration) -> Duration {
    (timeout / SILENT_SHARE).clamp(Duration::from_secs(2), SILENT_MAX)
}

/// A silent store is retried after this share of `S3AM_TIMEOUT` (a quarter)...
pub(crate) const SILENT_SHARE: u32 = 4;

/// ...and after no more than this.
pub(crate) const SILENT_MAX: Duration = Duration::from_secs(30);

/// The most idle connections kept open to the store. A transfer of many small files opens up
/// to about 500 (as many as the memory budget lets fly), and an idle one keeps its read buffer
/// (up to [`READ_BUFFER`]): once a transfer ends, the rest close rather than hold them
/// through the manifest write and check that follow a 50,000-file upload. 64 stay: the
/// requests between transfers (a manifest, its listing, a cache entry's) and the start of the
/// next transfer open none.
const IDLE_CONNECTIONS: usize = 64;

/// The most each connection's HTTP/1 read buffer grows to. hyper grows it while reads fill
/// it (up to about 400 KiB) and a connection keeps it, reserved again while it waits for its
/// next response: with 64 KiB files arriving in one burst, about 128 KiB a connection, or
/// 21 MB of the 35 MB a 2,000-file download held at 170 in flight (heaptrack, 100 ms each
/// way). Capped, a connection waiting on a distant store holds 32 KiB, and a large download
/// reads 32 KiB from the socket at a time, which measured no slower (256 MiB on loopback:
/// 0.44-0.54 s against 0.51-0.63 s uncapped). A response's head must fit in it: S3's are a
/// few KiB (an object's user metadata is at most 2 KiB).
pub(crate) const READ_BUFFER: usize = 32 << 10;

/// The read buffer of the connections that download small objects whole, checked against
/// their manifest ([`for_small_downloads`]). hyper's read buffers held 30.75 MB of the heap
/// with 256 downloads of 64 KiB in flight at [`READ_BUFFER`]'s 32 KiB (heaptrack), about
/// 120 KB a connection: its buffer, and the allocations of the body chunks split off it that
/// were still on their way out. A fetch of 2,000 on loopback peaked at 55-68 MB RSS, against
/// 52-54 MB at 16 KiB and 46-48 MB at 8 KiB (3 runs each, 2 cores, as fast: 1.14, 1.22 and
/// 1.13 s). A large download reads in ranges through the others: 256 MiB took 0.47 s and
/// 0.46 s of CPU at 32 KiB, 0.54 s and 0.56 s at 16 KiB. 16 KiB leaves a response's head room
/// to spare (S3's are a few KiB).
pub(super) const SMALL_READ_BUFFER: usize = 16 << 10;

/// Builds the HTTP client: rustls, the system's roots plus `AWS_CA_BUNDLE`,
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment, and each connection's read
/// buffer capped at `read_buffer` ([`READ_BUFFER`], [`SMALL_READ_BUFFER`]).
pub(super) fn http_client(
    ca_bundle: Option<Vec<u8>>,
    read_buffer: usize,
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
        // The builder the SDK's connector would make, with the read buffer capped.
        let mut hyper = hyper_util::client::legacy::Builder::new(TokioExecutor::new());
        hyper
            .pool_timer(TokioTimer::new()) // without it, idle connections never time out
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .http1_max_buf_size(read_buffer);
        let mut b = aws_smithy_http_client::Connector::builder()
            .proxy_config(ProxyConfig::from_env())
            .hyper_builder(hyper);
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(ctx.clone())
            .build()
    })
}

/// The configured region and endpoint; either endpoint (configured or `AWS_ENDPOINT_URL`) is
/// checked here, as the SDK would only fail later with a vague "dispatch failure".
fn with_endpoint(mut loader: ConfigLoader, cfg: &StoreConfig) -> Result<ConfigLoader> {
    if let Some(r) = &cfg.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let env_endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty());
    // A bare host (`minio.example.com:9000`) is https, as concourse/s3-resource takes it.
    let url = |ep: &str| match ep.contains("://") {
        true => ep.to_string(),
        false => format!("https://{ep}"),
    };
    let configured = cfg.endpoint.as_deref().map(url);
    let from_env = env_endpoint.as_deref().map(url);
    for ep in configured.iter().chain(from_env.iter()) {
        check_endpoint(ep)?;
    }
    match (configured, from_env, env_endpoint) {
        (Some(ep), _, _) => loader = loader.endpoint_url(ep),
        // The SDK reads the variable itself, but would refuse a bare host.
        (None, Some(ep), Some(raw)) if ep != raw => loader = loader.endpoint_url(ep),
        _ => {}
    }
    Ok(loader)
}

/// Explicit keys, when given, replace the default chain; one without the other is a mistake
/// that the chain would otherwise hide.
fn with_credentials(loader: ConfigLoader, cfg: &StoreConfig) -> Result<ConfigLoader> {
    match (&cfg.access_key_id, &cfg.secret_access_key) {
        (Some(id), Some(secret)) => Ok(loader.credentials_provider(Credentials::new(
            id.clone(),
            secret.clone(),
            cfg.session_token.clone(),
            None,
            "s3-asset-manager-config",
        ))),
        (None, None) => Ok(loader),
        _ => Err(Error::Config(
            "give both access_key_id and secret_access_key, or neither to use the default credential chain".into(),
        )),
    }
}

/// With a role configured, its temporary credentials, obtained with the loaded ones.
async fn assume_role(sdk: SdkConfig, cfg: &StoreConfig) -> SdkConfig {
    let Some(role) = &cfg.role_arn else {
        return sdk;
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
        .session_name("s3-asset-manager")
        .configure(&sdk)
        .build()
        .await;
    sdk.into_builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(provider))
        .build()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_sdk_s3::config::SharedCredentialsProvider;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// An HTTP client that answers every request with 200 and records the checksum mode
    /// each one asked for.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Option<String>>>>);

    impl HttpConnector for Recorder {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let mode = request.headers().get("x-amz-checksum-mode");
            self.0.lock().unwrap().push(mode.map(str::to_string));
            let ok = HttpResponse::new(200.try_into().unwrap(), SdkBody::from("body"));
            HttpConnectorFuture::ready(Ok(ok))
        }
    }

    impl HttpClient for Recorder {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    #[tokio::test]
    async fn downloads_checked_against_a_manifest_do_not_ask_for_the_stores_checksum() {
        let recorder = Recorder::default();
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "id", "secret", None, None, "test",
            )))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(RetryConfig::disabled())
            .http_client(recorder.clone())
            .build();
        let counts = Arc::new(Counts::new());
        let client = s3_client(&sdk, &StoreConfig::default(), &counts);
        for c in [&client, &without_response_checks(&client)] {
            c.get_object().bucket("b").key("k").send().await.unwrap();
        }
        let modes = recorder.0.lock().unwrap().clone();
        assert_eq!(
            modes,
            [Some("ENABLED".to_string()), None],
            "the SDK checks a response's checksum by default; the unchecked client does not ask for it"
        );
        // The small downloads' client: on the HTTP client it is given, unchecked too.
        let own = Recorder::default();
        let small = for_small_downloads(&client, SharedHttpClient::new(own.clone()));
        small
            .get_object()
            .bucket("b")
            .key("k")
            .send()
            .await
            .unwrap();
        assert_eq!(
            recorder.0.lock().unwrap().len(),
            2,
            "not on the others' connections"
        );
        assert_eq!(*own.0.lock().unwrap(), [None]);
        assert_eq!(
            counts.sent.load(Ordering::Relaxed),
            3,
            "all count their requests"
        );
        let fastest = counts.fastest_us.load(Ordering::Relaxed);
        assert!(
            fastest < 10_000_000,
            "the fastest answer is timed: {fastest} µs"
        );
    }
}
