//! What a store is opened with: where the bucket is, its settings, and the transfer knobs.

use super::*;

/// Where the bucket is: S3 or a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bucket {
    /// An S3 bucket by name.
    S3(String),
    /// A local directory used as a bucket (`file:///abs/path`).
    Local(PathBuf),
}

impl Bucket {
    /// Parses `name`, `s3://name[/prefix]` or `file:///abs/path`, returning any prefix in the URL.
    pub(crate) fn parse(s: &str) -> Result<(Bucket, String)> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::Config(
                "the bucket is empty: set PACKAGE_ASSETS_BUCKET (or --bucket) to an S3 bucket name or file:///abs/dir".into(),
            ));
        }
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::Config(format!(
                    "invalid bucket {}: a file bucket needs an absolute path, e.g. file:///tmp/assets", clip(s)
                )));
            }
            return Ok((Bucket::Local(PathBuf::from(path)), String::new()));
        }
        let (name, prefix) = match s.strip_prefix("s3://") {
            Some(rest) => rest.split_once('/').unwrap_or((rest, "")),
            None => (s, ""),
        };
        let valid = (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid {
            return Err(Error::Config(format!(
                "invalid bucket name {}: use 3-63 lowercase letters, digits, '.', '-' (or s3://bucket/prefix, file:///abs/dir)", clip(name)
            )));
        }
        Ok((Bucket::S3(name.to_string()), prefix.to_string()))
    }
}

/// Everything needed to open a store. Its `Debug` never shows the credentials.
#[derive(Clone, Default)]
pub struct StoreConfig {
    /// The bucket, with any `s3://bucket/prefix` prefix already split off.
    pub bucket: Option<Bucket>,
    /// A custom endpoint URL (otherwise `AWS_ENDPOINT_URL` or AWS).
    pub endpoint: Option<String>,
    /// The region (otherwise the default chain, then `us-east-1`).
    pub region: Option<String>,
    /// Use path-style addressing (MinIO, Garage, Ceph).
    pub path_style: bool,
    /// Explicit access key id (otherwise the default credential chain).
    pub access_key_id: Option<String>,
    /// Explicit secret access key.
    pub secret_access_key: Option<String>,
    /// Explicit session token.
    pub session_token: Option<String>,
    /// A role to assume on top of the base credentials.
    pub role_arn: Option<String>,
    /// Skip the SDK's default checksums and the SHA-256 upload checksum (stores that reject them).
    pub skip_checksums: bool,
    /// The store is known to enforce `If-None-Match: *` on PutObject (AWS S3 is taken to
    /// without it): publishes of small sets write their objects first.
    pub conditional_writes_enforced: bool,
    /// Server-side encryption (`AES256` or `aws:kms`).
    pub server_side_encryption: Option<String>,
    /// The KMS key id for `aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// Extra CA certificates (PEM) to trust, for an endpoint with a private CA; `AWS_CA_BUNDLE`
    /// (a file) is read too.
    pub ca_bundle: Option<String>,
    /// Which settings an error tells the user to fix: the task variables or `source` keys.
    pub names: Names,
}

/// The settings an error names, in the words of the front end that runs: the tasks' and the
/// command line's variables, or the resource's `source` keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Names {
    /// `PACKAGE_ASSETS_BUCKET`, `AWS_ACCESS_KEY_ID`, `S3AM_TIMEOUT`, ...
    #[default]
    Variables,
    /// `source.bucket`, `source.access_key_id`, `source.timeout`, ...
    Source,
}

impl Names {
    /// Where the bucket is set.
    pub(crate) fn bucket(self) -> &'static str {
        match self {
            Names::Variables => "PACKAGE_ASSETS_BUCKET",
            Names::Source => "source.bucket",
        }
    }

    /// Where credentials are set.
    pub(crate) fn credentials(self) -> &'static str {
        match self {
            Names::Variables => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or AWS_WEB_IDENTITY_TOKEN_FILE",
            Names::Source => "set source.access_key_id and source.secret_access_key",
        }
    }

    /// Where the key id, secret and token are checked.
    pub(crate) fn key_id(self) -> &'static str {
        match self {
            Names::Variables => {
                "check AWS_ACCESS_KEY_ID / the secret key / the session token or profile"
            }
            Names::Source => {
                "check source.access_key_id, source.secret_access_key and source.session_token"
            }
        }
    }

    /// Where the role to assume is set.
    pub(crate) fn role(self) -> &'static str {
        match self {
            Names::Variables => "AWS_ROLE / --role",
            Names::Source => "source.role",
        }
    }

    /// Where the endpoint is set.
    pub(crate) fn endpoint(self) -> &'static str {
        match self {
            Names::Variables => "AWS_ENDPOINT_URL / --endpoint",
            Names::Source => "source.endpoint",
        }
    }

    /// Where the request timeout is set.
    pub(crate) fn timeout(self) -> &'static str {
        match self {
            Names::Variables => "S3AM_TIMEOUT",
            Names::Source => "source.timeout",
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("StoreConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("role_arn", &self.role_arn)
            .field("skip_checksums", &self.skip_checksums)
            .field(
                "conditional_writes_enforced",
                &self.conditional_writes_enforced,
            )
            .field("server_side_encryption", &self.server_side_encryption)
            .field("sse_kms_key_id", &self.sse_kms_key_id)
            .field("ca_bundle", &self.ca_bundle.as_ref().map(|_| "<PEM>"))
            .finish()
    }
}

/// Transfer knobs; the defaults suit CI workers, tests shrink them to reach multipart paths.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The most files transferred at once: the adaptive window grows up to it.
    pub concurrency: usize,
    /// Files at least this large upload multipart.
    pub multipart_threshold: u64,
    /// Part size for multipart uploads.
    pub part_size: u64,
    /// Objects larger than this copy multipart (S3's single-copy limit is 5 GiB).
    pub copy_multipart_threshold: u64,
    /// Part size for multipart copies.
    pub copy_part_size: u64,
    /// The longest one request may take, retries included (a silent store is retried after a
    /// quarter of it, at most 30 s).
    pub timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            concurrency: 1024,
            multipart_threshold: 16 * MIB,
            part_size: 8 * MIB,
            copy_multipart_threshold: 1024 * MIB,
            copy_part_size: 512 * MIB,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Parts (uploads) or ranges (downloads) of one large object in flight at once, unless
/// `S3AM_CONCURRENCY` is lower. A connection to S3 carries about 100 MB/s, and each 8 MiB part
/// also waits a round trip: 16 at once keep about 730 MB/s moving across a 100 ms round trip
/// and 1.2 GB/s across 30 ms, where 8 kept half that (410 MB/s through a 40 ms-each-way proxy).
pub(crate) const PARTS_IN_FLIGHT: usize = 16;

/// The part size for `size` bytes: `preferred`, raised so that no upload needs more than
/// S3's 10,000 parts.
pub(crate) fn part_size_for(size: u64, preferred: u64) -> u64 {
    preferred.max(size.div_ceil(10_000)).max(1)
}

/// The part (upload) or range (download) size for a large file of `size` bytes: at least
/// `preferred` (`S3AM_PART_SIZE`), and larger for a file over 512 MiB, so that it goes in about
/// 64 parts (four rounds of [`PARTS_IN_FLIGHT`]) of at most 64 MiB, above that as many as it
/// takes; and never over S3's 10,000 parts. Every part waits a round trip, so fewer, larger
/// parts move a large file faster across a distance (1 GiB through a 40 ms-each-way proxy:
/// download 2.49 s in 16 MiB ranges against 2.69 s in 8 MiB ones, upload 4.39 s against 4.54 s).
pub(crate) fn transfer_part_size(size: u64, preferred: u64) -> u64 {
    let large = size.div_ceil(LARGE_FILE_PARTS).min(LARGEST_PART);
    part_size_for(size, preferred.max(large))
}

/// A file over this many bytes goes in larger parts than `S3AM_PART_SIZE`.
pub(crate) const LARGE_FILE: u64 = 512 * MIB;

/// About how many parts a file over [`LARGE_FILE`] goes in.
pub(crate) const LARGE_FILE_PARTS: u64 = LARGE_FILE / (8 * MIB);

/// The largest part [`transfer_part_size`] chooses, up to S3's 10,000 parts.
pub(crate) const LARGEST_PART: u64 = 64 * MIB;

/// A server-side encryption setting: `AES256` or `aws:kms` (an empty one means none), or
/// why it is not one. Every front end checks it here.
pub(crate) fn parse_sse(s: &str) -> std::result::Result<Option<String>, &'static str> {
    match s {
        "" => Ok(None),
        "AES256" | "aws:kms" => Ok(Some(s.to_string())),
        _ => Err("not a server-side encryption: use AES256 or aws:kms"),
    }
}
