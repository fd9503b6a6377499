//! The Concourse resource type: every request, response and `source` type in one place (this
//! file), and the `check`, `in` and `out` operations over the engine with the binaries'
//! process conventions (`commands.rs`).
//!
//! Requests are JSON on stdin; unknown keys are rejected by name. Responses are JSON on stdout,
//! written by the binaries only on success.

mod commands;
mod request;
mod values;

pub(crate) use commands::invoked_as;
pub use commands::{run_check, run_in, run_out};
pub(crate) use request::parse_request;
pub(crate) use values::{PatternList, Secret, Text};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::error::Category;

use crate::codehash::Patterns;
use crate::engine::{CacheMode, CodeHashSpec, Keys};
use crate::error::{clip_quoted, invalid_value, Error, Result};
use crate::layout::Layout;
use crate::settings::Settings;
use crate::signing::{SigningKey, TrustedKeys};
use crate::store::{self, Bucket, StoreConfig, Tuning};

/// The resource's `source`. Each key is named as the task variable that sets the same thing
/// (`S3AM_PATH_STYLE` is `path_style`); concourse/s3-resource's names for the same things
/// (`use_path_style`, `skip_s3_checksums`, `server_side_encryption`, `region_name`,
/// `aws_role_arn`) are taken as aliases, and its `enable_aws_creds_provider` and `disable_ssl`
/// as what they mean here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The bucket name, `s3://name/prefix`, or `file:///abs/dir`.
    pub(crate) bucket: String,
    /// A key prefix inside the bucket.
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    /// The region.
    #[serde(default, alias = "region_name")]
    pub(crate) region: Option<String>,
    /// A custom endpoint: a URL, or a bare host (`minio.example.com:9000`), taken as https
    /// unless `disable_ssl`.
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// s3-resource's: a bare `endpoint` host is reached over plain http.
    #[serde(default)]
    pub(crate) disable_ssl: bool,
    /// s3-resource's: the worker's own credentials (instance or task role) when no keys are
    /// given. Always so here: the AWS SDK's default chain is used without keys.
    #[serde(default)]
    #[allow(dead_code)] // Taken so that s3-resource's sources parse; nothing to do with it.
    pub(crate) enable_aws_creds_provider: Option<bool>,
    /// s3-resource's: refused when true (certificates are always verified; trust a private
    /// CA with `ca_bundle`).
    #[serde(default)]
    pub(crate) skip_ssl_verification: bool,
    /// Path-style addressing (MinIO, Garage, Ceph).
    #[serde(default, alias = "use_path_style")]
    pub(crate) path_style: bool,
    /// Explicit access key id; otherwise the default credential chain.
    #[serde(default)]
    pub(crate) access_key_id: Option<String>,
    /// Explicit secret access key.
    #[serde(default)]
    pub(crate) secret_access_key: Option<Secret>,
    /// Explicit session token.
    #[serde(default)]
    pub(crate) session_token: Option<Secret>,
    /// A role to assume.
    #[serde(default, alias = "aws_role_arn")]
    pub(crate) role: Option<String>,
    /// `AES256` or `aws:kms`.
    #[serde(default, alias = "server_side_encryption")]
    pub(crate) sse: Option<String>,
    /// The KMS key for `aws:kms`.
    #[serde(default)]
    pub(crate) sse_kms_key_id: Option<String>,
    /// Skip the SDK's default checksums (stores that reject them).
    #[serde(default, alias = "skip_s3_checksums")]
    pub(crate) skip_checksums: bool,
    /// The store refuses a PUT with `If-None-Match: *` to a key that exists.
    #[serde(default)]
    pub(crate) conditional_writes_enforced: bool,
    /// Extra CA certificates (PEM text) to trust, for an endpoint with a private CA.
    #[serde(default)]
    pub(crate) ca_bundle: Option<String>,
    /// The code-hash patterns: a space-separated string or a list. Unset: caching off.
    #[serde(default)]
    pub(crate) code_hash_filter: Option<PatternList>,
    /// A salt mixed into the code hash.
    #[serde(default)]
    pub(crate) code_hash_salt: Option<String>,
    /// `read-write` (default), `read-only` or `off`.
    #[serde(default)]
    pub(crate) cache: Option<String>,
    /// Count sets without a manifest as found.
    #[serde(default)]
    pub(crate) accept_legacy: bool,
    /// An OpenSSH Ed25519 private key (its text) that signs every manifest written.
    #[serde(default)]
    pub(crate) signing_key: Option<Secret>,
    /// Public key lines (`ssh-ed25519 AAAA... comment`): only sets signed by one count.
    #[serde(default)]
    pub(crate) trusted_keys: Option<Vec<String>>,
    /// The most files transferred at once (`S3AM_CONCURRENCY`).
    #[serde(default)]
    pub(crate) concurrency: Option<Text>,
    /// Files at least this large upload multipart (`S3AM_MULTIPART_THRESHOLD`).
    #[serde(default)]
    pub(crate) multipart_threshold: Option<Text>,
    /// The smallest part of a multipart upload (`S3AM_PART_SIZE`).
    #[serde(default)]
    pub(crate) part_size: Option<Text>,
    /// Objects larger than this are copied in parts (`S3AM_COPY_MULTIPART_THRESHOLD`).
    #[serde(default)]
    pub(crate) copy_multipart_threshold: Option<Text>,
    /// Part size for multipart copies (`S3AM_COPY_PART_SIZE`).
    #[serde(default)]
    pub(crate) copy_part_size: Option<Text>,
    /// The longest one request may take, in seconds (`S3AM_TIMEOUT`).
    #[serde(default)]
    pub(crate) timeout: Option<Text>,
}

/// A version: one complete asset set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// The commit, full hex.
    pub(crate) commit: String,
}

/// The `check` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// The source.
    pub source: Source,
    /// The last version seen, if any.
    #[serde(default)]
    pub version: Option<Version>,
}

/// `get` params.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InParams {
    /// Write the markers only; download nothing.
    #[serde(default)]
    pub(crate) skip_download: bool,
    /// Fail when the set is not complete (instead of writing `.commit-hash` only).
    #[serde(default)]
    pub(crate) require: bool,
}

/// The `in` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InRequest {
    /// The source.
    pub source: Source,
    /// The version to fetch.
    pub version: Version,
    /// The params.
    #[serde(default)]
    pub params: Option<InParams>,
}

/// `put` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutParams {
    /// The git checkout, relative to the put's directory.
    pub(crate) repo: String,
    /// The package directory to publish; without it the put is a lookup.
    #[serde(default)]
    pub(crate) path: Option<String>,
}

/// The `out` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutRequest {
    /// The source.
    pub source: Source,
    /// The params.
    pub params: OutParams,
}

/// One metadata entry shown in the Concourse UI.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct MetadataField {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// The `in` and `out` response.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Response {
    /// The version fetched or produced.
    pub version: Version,
    /// What the UI shows.
    pub metadata: Vec<MetadataField>,
}

impl Source {
    /// The cache mode.
    pub(crate) fn cache_mode(&self) -> Result<CacheMode> {
        match self.cache.as_deref() {
            None => Ok(CacheMode::ReadWrite),
            Some(m) => m.parse(),
        }
    }

    /// The code-hash definition, or `None` when caching is off.
    pub(crate) fn code_hash_spec(&self) -> Result<Option<CodeHashSpec>> {
        if self.cache_mode()? == CacheMode::Off {
            return Ok(None);
        }
        let patterns = match &self.code_hash_filter {
            None => return Ok(None),
            Some(PatternList::Spaced(s)) => Patterns::from_spaced(s)?,
            Some(PatternList::List(l)) => Patterns::new(l)?,
        };
        Ok(Some(CodeHashSpec {
            patterns,
            salt: self.code_hash_salt.clone().unwrap_or_default(),
        }))
    }

    /// The signing and trusted keys, each malformed one named by its field.
    pub(crate) fn keys(&self) -> Result<Keys> {
        let signing = match &self.signing_key {
            Some(text) => Some(Arc::new(SigningKey::parse(
                text.0.as_bytes(),
                "source.signing_key",
            )?)),
            None => None,
        };
        let trusted = match &self.trusted_keys {
            Some(lines) => {
                let named: Vec<(String, &str)> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (format!("source.trusted_keys[{i}]"), l.as_str()))
                    .collect();
                Some(Arc::new(TrustedKeys::parse(&named, "source.trusted_keys")?))
            }
            None => None,
        };
        Ok(Keys { signing, trusted })
    }

    /// The transfer settings, each as its task variable takes it; errors name the key.
    pub fn tuning(&self) -> Result<Tuning> {
        use crate::cli::values;
        let d = Tuning::default();
        fn get<T>(
            key: &str,
            v: &Option<Text>,
            default: T,
            parse: impl Fn(&str) -> std::result::Result<T, String>,
        ) -> Result<T> {
            match v {
                None => Ok(default),
                Some(Text(raw)) => {
                    parse(raw).map_err(|why| invalid_value(&format!("source.{key}"), raw, &why))
                }
            }
        }
        Ok(Tuning {
            concurrency: get(
                "concurrency",
                &self.concurrency,
                d.concurrency,
                values::parse_count,
            )?,
            multipart_threshold: get(
                "multipart_threshold",
                &self.multipart_threshold,
                d.multipart_threshold,
                values::parse_size,
            )?,
            part_size: get(
                "part_size",
                &self.part_size,
                d.part_size,
                values::parse_size,
            )?,
            copy_multipart_threshold: get(
                "copy_multipart_threshold",
                &self.copy_multipart_threshold,
                d.copy_multipart_threshold,
                values::parse_copy_size,
            )?,
            copy_part_size: get(
                "copy_part_size",
                &self.copy_part_size,
                d.copy_part_size,
                values::parse_size,
            )?,
            timeout: match &self.timeout {
                None => d.timeout,
                Some(Text(raw)) => std::time::Duration::from_secs(
                    values::parse_seconds(raw)
                        .map_err(|why| invalid_value("source.timeout", raw, &why))?
                        .max(1),
                ),
            },
        })
    }

    /// Checks every setting that can be checked without the network.
    pub fn validate(&self) -> Result<()> {
        self.settings().map(drop)
    }

    /// Checks every field once into the settings the resource runs with.
    pub(crate) fn settings(&self) -> Result<Settings> {
        let cache = self.cache_mode()?;
        let keys = self.keys()?;
        let code_hash = self.code_hash_spec()?;
        let tuning = self.tuning()?;
        let (bucket, url_prefix) = Bucket::parse(&self.bucket)?;
        let layout = match (self.prefix.as_deref(), url_prefix.is_empty()) {
            (Some(p), true) => Layout::new(p)?,
            (None, _) => Layout::new(&url_prefix)?,
            (Some(_), false) => {
                return Err(Error::Config(
                    "the prefix is given twice, in source.bucket (s3://name/prefix) and in source.prefix: keep one".into(),
                ))
            }
        };
        let sse = match &self.sse {
            Some(v) => store::parse_sse(v).map_err(|why| invalid_value("source.sse", v, why))?,
            None => None,
        };
        if self.skip_ssl_verification {
            return Err(Error::Config(
                "source.skip_ssl_verification is not supported: certificates are always verified; give the endpoint's CA certificates (PEM) in source.ca_bundle".into(),
            ));
        }
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
        // A bare host is https where the store opens (as for `--endpoint`), http here with
        // s3-resource's `disable_ssl`.
        let endpoint = nonempty(&self.endpoint).map(|e| match e.contains("://") {
            false if self.disable_ssl => format!("http://{e}"),
            _ => e,
        });
        let store = StoreConfig {
            bucket: Some(bucket),
            endpoint,
            region: nonempty(&self.region),
            path_style: self.path_style,
            access_key_id: nonempty(&self.access_key_id),
            secret_access_key: self.secret_access_key.as_ref().map(|s| s.0.clone()),
            session_token: self.session_token.as_ref().map(|s| s.0.clone()),
            role_arn: nonempty(&self.role),
            skip_checksums: self.skip_checksums,
            conditional_writes_enforced: self.conditional_writes_enforced,
            server_side_encryption: sse,
            sse_kms_key_id: nonempty(&self.sse_kms_key_id),
            ca_bundle: nonempty(&self.ca_bundle),
            names: store::Names::Source,
        };
        Ok(Settings {
            store,
            layout,
            tuning,
            keys,
            cache,
            accept_legacy: self.accept_legacy,
            code_hash,
            quiet: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::request::{keys_of, Request};
    use super::*;

    /// The error line for `input` as a request of type `T`, without the README's pointer.
    fn refused<T: Request + std::fmt::Debug>(input: &str) -> String {
        let e = parse_request::<T>(input).unwrap_err().to_string();
        let pointer =
            "; see the README's \"Concourse resource\" section for the source and params keys";
        e.strip_suffix(pointer).unwrap_or(&e).to_string()
    }

    #[test]
    fn the_keys_each_part_takes_come_from_its_type() {
        assert_eq!(keys_of::<Version>(), ["commit"]);
        assert_eq!(keys_of::<InParams>(), ["skip_download", "require"]);
        assert_eq!(keys_of::<InRequest>(), ["source", "version", "params"]);
        assert!(
            keys_of::<Source>().contains(&"region_name"),
            "aliases count"
        );
        assert!(keys_of::<()>().is_empty());
    }

    /// An unknown key is named with where it is; serde's list of the keys expected is kept
    /// only where it is one or two long.
    #[test]
    fn an_unknown_key_is_named_by_where_it_is() {
        let source = r#"{"source": {"bucket": "b", "bucket_name": "x"}}"#;
        assert_eq!(
            refused::<CheckRequest>(source),
            "invalid payload: `source.bucket_name`: unknown field `bucket_name` at line 1 column 40"
        );
        let top = r#"{"source": {"bucket": "b"}, "bogus": 1}"#;
        assert_eq!(
            refused::<InRequest>(top),
            "invalid payload: `bogus`: unknown field `bogus` at line 1 column 35"
        );
        assert_eq!(
            refused::<OutRequest>(top),
            "invalid payload: `bogus`: unknown field `bogus`, expected `source` or `params` at line 1 column 35"
        );
        let version = r#"{"source": {"bucket": "b"}, "version": {"ref": "x"}}"#;
        assert_eq!(
            refused::<InRequest>(version),
            "invalid payload: `version.ref`: unknown field `ref`, expected `commit` at line 1 column 45"
        );
        let params = r#"{"source": {"bucket": "b"}, "params": {"repo": "r", "dir": "x"}}"#;
        assert_eq!(
            refused::<OutRequest>(params),
            "invalid payload: `params.dir`: unknown field `dir`, expected `repo` or `path` at line 1 column 57"
        );
        // A known key (an alias) given twice is not an unknown one.
        let twice = r#"{"source": {"bucket": "b", "region_name": "x", "region": "y"}}"#;
        assert_eq!(
            refused::<CheckRequest>(twice),
            "invalid payload: `source`: duplicate field `region` at line 1 column 55"
        );
        // serde's words decide nothing: a key that reads like its message stays whole.
        let wordy = r#"{"source": {"bucket": "b", "x, expected one of y": 1}}"#;
        assert_eq!(
            refused::<CheckRequest>(wordy),
            "invalid payload: `source.x, expected one of y`: unknown field `x, expected one of y` at line 1 column 49"
        );
    }
}
