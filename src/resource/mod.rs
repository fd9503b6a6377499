//! The Concourse resource type: every request, response and `source` type in one place (this
//! file), and the `check`, `in` and `out` operations over the engine with the binaries'
//! process conventions (`commands.rs`).
//!
//! Requests are JSON on stdin; unknown keys are rejected by name. Responses are JSON on stdout,
//! written by the binaries only on success.

mod commands;

pub use commands::{
    check, dir_arg, fetch, invoked_as, main, put, read_stdin, run_check, run_in, run_out,
};

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

/// A secret string: never printed by `Debug`, nor by a deserialisation error (a number given
/// for a secret key is still the key: the error names the field and the type, not the value).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error as _, IgnoredAny};
        // Whatever it is, read it whole and say only that it is not a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Text(String),
            Other(IgnoredAny),
        }
        match Any::deserialize(d) {
            Ok(Any::Text(s)) => Ok(Secret(s)),
            _ => Err(D::Error::custom(
                "expected a string (the value given is not shown: it is a secret)",
            )),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One pattern string (space-separated) or a list of patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternList {
    /// `"src/** package.json"`
    Spaced(String),
    /// `["src/**", "package.json"]`
    List(Vec<String>),
}

// By hand rather than `#[serde(untagged)]`, whose only message for a wrong type is "data did
// not match any variant of untagged enum PatternList".
impl<'de> Deserialize<'de> for PatternList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PatternList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<PatternList, E> {
                Ok(PatternList::Spaced(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PatternList, A::Error> {
                let mut list = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    list.push(p);
                }
                Ok(PatternList::List(list))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The resource's `source`. Each key is named as the task variable that sets the same thing
/// (`S3AM_PATH_STYLE` is `path_style`); concourse/s3-resource's names for the same things
/// (`use_path_style`, `skip_s3_checksums`, `server_side_encryption`, `region_name`,
/// `aws_role_arn`) are taken as aliases, and its `enable_aws_creds_provider` and `disable_ssl`
/// as what they mean here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The bucket name, `s3://name/prefix`, or `file:///abs/dir`.
    pub bucket: String,
    /// A key prefix inside the bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The region.
    #[serde(default, alias = "region_name")]
    pub region: Option<String>,
    /// A custom endpoint: a URL, or a bare host (`minio.example.com:9000`), taken as https
    /// unless `disable_ssl`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// s3-resource's: a bare `endpoint` host is reached over plain http.
    #[serde(default)]
    pub disable_ssl: bool,
    /// s3-resource's: the worker's own credentials (instance or task role) when no keys are
    /// given. Always so here: the AWS SDK's default chain is used without keys.
    #[serde(default)]
    pub enable_aws_creds_provider: Option<bool>,
    /// s3-resource's: refused when true (certificates are always verified; trust a private
    /// CA with `ca_bundle`).
    #[serde(default)]
    pub skip_ssl_verification: bool,
    /// Path-style addressing (MinIO, Garage, Ceph).
    #[serde(default, alias = "use_path_style")]
    pub path_style: bool,
    /// Explicit access key id; otherwise the default credential chain.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Explicit secret access key.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Explicit session token.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// A role to assume.
    #[serde(default, alias = "aws_role_arn")]
    pub role: Option<String>,
    /// `AES256` or `aws:kms`.
    #[serde(default, alias = "server_side_encryption")]
    pub sse: Option<String>,
    /// The KMS key for `aws:kms`.
    #[serde(default)]
    pub sse_kms_key_id: Option<String>,
    /// Skip the SDK's default checksums (stores that reject them).
    #[serde(default, alias = "skip_s3_checksums")]
    pub skip_checksums: bool,
    /// The store refuses a PUT with `If-None-Match: *` to a key that exists.
    #[serde(default)]
    pub conditional_writes_enforced: bool,
    /// Extra CA certificates (PEM text) to trust, for an endpoint with a private CA.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The code-hash patterns: a space-separated string or a list. Unset: caching off.
    #[serde(default)]
    pub code_hash_filter: Option<PatternList>,
    /// A salt mixed into the code hash.
    #[serde(default)]
    pub code_hash_salt: Option<String>,
    /// `read-write` (default), `read-only` or `off`.
    #[serde(default)]
    pub cache: Option<String>,
    /// Count sets without a manifest as found.
    #[serde(default)]
    pub accept_legacy: bool,
    /// An OpenSSH Ed25519 private key (its text) that signs every manifest written.
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// Public key lines (`ssh-ed25519 AAAA... comment`): only sets signed by one count.
    #[serde(default)]
    pub trusted_keys: Option<Vec<String>>,
    /// The most files transferred at once (`S3AM_CONCURRENCY`).
    #[serde(default)]
    pub concurrency: Option<Text>,
    /// Files at least this large upload multipart (`S3AM_MULTIPART_THRESHOLD`).
    #[serde(default)]
    pub multipart_threshold: Option<Text>,
    /// The smallest part of a multipart upload (`S3AM_PART_SIZE`).
    #[serde(default)]
    pub part_size: Option<Text>,
    /// Objects larger than this are copied in parts (`S3AM_COPY_MULTIPART_THRESHOLD`).
    #[serde(default)]
    pub copy_multipart_threshold: Option<Text>,
    /// Part size for multipart copies (`S3AM_COPY_PART_SIZE`).
    #[serde(default)]
    pub copy_part_size: Option<Text>,
    /// The longest one request may take, in seconds (`S3AM_TIMEOUT`).
    #[serde(default)]
    pub timeout: Option<Text>,
}

/// A setting written as a string or a number (`"16M"`, `256`), as its task variable's text.
#[derive(Debug, Clone)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(s.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A version: one complete asset set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// The commit, full hex.
    pub commit: String,
}

/// The `check` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
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
    pub skip_download: bool,
    /// Fail when the set is not complete (instead of writing `.commit-hash` only).
    #[serde(default)]
    pub require: bool,
}

/// The `in` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InRequest {
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
    pub repo: String,
    /// The package directory to publish; without it the put is a lookup.
    #[serde(default)]
    pub path: Option<String>,
}

/// The `out` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutRequest {
    /// The source.
    pub source: Source,
    /// The params.
    pub params: OutParams,
}

/// One metadata entry shown in the Concourse UI.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MetadataField {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// The `in` and `out` response.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// The version fetched or produced.
    pub version: Version,
    /// What the UI shows.
    pub metadata: Vec<MetadataField>,
}

/// A request the binaries read on stdin. The keys each of its objects takes are known (from
/// the types), so an error about a key none of them takes is recognised by where it is.
pub trait Request: serde::de::DeserializeOwned {
    /// Its `params` (`()` for `check`, which takes none).
    type Params: serde::de::DeserializeOwned;
}

impl Request for CheckRequest {
    type Params = ();
}

impl Request for InRequest {
    type Params = InParams;
}

impl Request for OutRequest {
    type Params = OutParams;
}

/// The keys a struct that derives `Deserialize` takes, aliases included: the list its
/// `Deserialize` hands [`serde::Deserializer::deserialize_struct`], read by a deserializer
/// that stops there. Empty for anything else.
fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    type Stop = serde::de::value::Error;
    struct Keys<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Keys<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop::custom("read its keys"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(Keys(&mut keys));
    keys
}

/// The key an error's `path` ends at, when the object holding it (the request, its
/// `source`, `version` or `params`) does not take it, with the keys that object takes.
fn unknown_key<T: Request>(
    path: &serde_path_to_error::Path,
) -> Option<(&str, &'static [&'static str])> {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let (Segment::Map { key }, parent) = segments.split_last()? else {
        return None;
    };
    let keys = match parent {
        [] => keys_of::<T>(),
        [Segment::Map { key: part }] => match part.as_str() {
            "source" => keys_of::<Source>(),
            "version" => keys_of::<Version>(),
            "params" => keys_of::<T::Params>(),
            _ => return None,
        },
        _ => return None,
    };
    (!keys.contains(&key.as_str())).then_some((key.as_str(), keys))
}

/// Parses a request, turning serde's message into one actionable line.
pub fn parse_request<T: Request>(input: &str) -> Result<T> {
    let invalid = |why: &str| {
        Error::Config(format!(
            "invalid payload: {}; see the README's \"Concourse resource\" section for the source and params keys",
            tidy(why)
        ))
    };
    // serde reads a struct from a JSON array too (its fields in order), so `[{"bucket": ...}]`
    // would pass for a request and `"params": [true, true]` for params: every request and
    // each of its parts is an object.
    let value: serde_json::Value =
        serde_json::from_str(input).map_err(|e| invalid(&e.to_string()))?;
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    };
    let Some(top) = value.as_object() else {
        return Err(invalid(&format!(
            "the request must be a JSON object such as {{\"source\": {{\"bucket\": ...}}}}, not {}",
            kind(&value)
        )));
    };
    for key in ["source", "version", "params"] {
        if let Some(v) = top.get(key).filter(|v| v.is_array()) {
            return Err(invalid(&format!(
                "`{key}` must be a JSON object, not {}",
                kind(v)
            )));
        }
    }
    // serde_path_to_error names the field a type error is about (`source.use_path_style`),
    // which serde_json's own message leaves to a line and column.
    let mut de = serde_json::Deserializer::from_str(input);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let unknown = unknown_key::<T>(e.path()).map(|(key, keys)| (key.to_string(), keys));
        let e = e.into_inner();
        let text = match unknown {
            // serde lists the keys it expected after an unknown one: one or two read well
            // (expected `repo` or `path`); of a longer list, the key itself is what matters.
            Some((key, keys)) if e.classify() == Category::Data && keys.len() > 2 => {
                match e.line() {
                    0 => format!("unknown field `{key}`"),
                    line => format!("unknown field `{key}` at line {line} column {}", e.column()),
                }
            }
            _ => e.to_string(),
        };
        match path.as_str() {
            "" | "." => invalid(&text),
            _ => invalid(&format!("`{path}`: {text}")),
        }
    })
}

/// serde's message on one line, with the values it echoes (a key, a string) clipped.
fn tidy(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = clip_quoted(&s, &['"', '`']);
    if s.chars().count() > 240 {
        s.chars().take(240).collect::<String>() + "…"
    } else {
        s
    }
}

impl Source {
    /// The cache mode.
    pub fn cache_mode(&self) -> Result<CacheMode> {
        match self.cache.as_deref() {
            None => Ok(CacheMode::ReadWrite),
            Some(m) => m.parse(),
        }
    }

    /// The code-hash definition, or `None` when caching is off.
    pub fn code_hash_spec(&self) -> Result<Option<CodeHashSpec>> {
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
    pub fn keys(&self) -> Result<Keys> {
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
    fn tuning(&self) -> Result<Tuning> {
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
    pub fn settings(&self) -> Result<Settings> {
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
