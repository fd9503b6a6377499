//! The command line: its arguments (each flag also read from a variable), their values
//! checked once into `Settings` with errors that name where a bad value came from, the
//! help texts written from the code's constants (`help`), and clap's own errors as one line
//! (`errors`).

mod errors;
mod help;
mod manage;
mod tasks;
pub(crate) mod values;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub(crate) use manage::{DeleteArgs, ListArgs, PruneArgs};
pub(crate) use tasks::{CheckArgs, FetchArgs, HashArgs, UploadArgs};
pub(crate) use values::Sources;

/// The `s3-asset-manager` program: the Concourse resource when invoked as `check`, `in` or
/// `out` (the links under /opt/resource), the command line otherwise. Parses the arguments
/// into settings, runs the command they name, and turns its error into one line on stderr and
/// an exit code.
pub fn main() -> ExitCode {
    if let Some(resource) = crate::resource::invoked_as() {
        return resource();
    }
    process::on_panic(" with the command you ran");
    let (cli, sources) = match errors::parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let runtime = match process::runtime() {
        Ok(r) => r,
        Err(e) => return process::fail(Front::Cli, &e),
    };
    let name = sources.command_name();
    let result = runtime.block_on(cli.command.run(&sources));
    crate::trace::finish(&name);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => process::fail(Front::Cli, &e),
    }
}

use crate::codehash::Patterns;
use crate::engine::{CacheMode, CodeHashSpec, Engine, Keys};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::log;
use crate::process::{self, Front};
use crate::settings::Settings;
use crate::signing::{self, SigningKey, TrustedKeys};
use crate::store::{self, Bucket, StoreConfig, Tuning};

/// Build each CI asset set once: find a commit's assets in S3, restore them from a
/// code-hash cache, or publish them.
///
/// Every flag can also be set by the environment variable shown with it; `check` and
/// `upload` read the same variables as the original Python tool.
#[derive(Parser, Debug)]
#[command(name = "s3-asset-manager", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Find the commit's asset set, or restore it from the cache; write .commit-hash,
    /// .code-hash and .found into the package directory (the `check` task).
    Check(CheckArgs),
    /// Publish the package directory as the commit's asset set, unless .found exists
    /// (the `upload` task).
    Upload(UploadArgs),
    /// Print the code hash of the repository's files matched by the filter.
    Hash(HashArgs),
    /// Download a complete asset set and verify every file against its manifest.
    Fetch(FetchArgs),
    /// List every artifacts set and cache entry, newest first: kind, state, size, when it
    /// was completed and last used, who signed it.
    List(ListArgs),
    /// Delete one set: its manifest (with its signature and index entries) first, then its
    /// objects.
    Delete(DeleteArgs),
    /// Delete artifacts sets and cache entries by age, count and size, and what interrupted
    /// uploads left behind; --dry-run prints the plan.
    Prune(PruneArgs),
}

impl Command {
    /// Runs the command, its settings read from `sources`: every command alike.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        match self {
            Command::Check(args) => args.run(sources).await,
            Command::Upload(args) => args.run(sources).await,
            Command::Hash(args) => args.run(sources),
            Command::Fetch(args) => args.run(sources).await,
            Command::List(args) => args.run(sources).await,
            Command::Delete(args) => args.run(sources).await,
            Command::Prune(args) => args.run(sources).await,
        }
    }
}

/// The engine a command runs on, the log at the level `--quiet` asks for: the command line
/// sets it here, as the store opens (building an engine sets no global state).
async fn engine(settings: &Settings) -> Result<Engine> {
    log::set_quiet(settings.quiet);
    settings.engine().await
}

/// The checkout.
#[derive(Args, Debug)]
pub(crate) struct RepoArgs {
    /// The git checkout.
    #[arg(
        long = "repo",
        env = "GIT_REPO_PATH",
        default_value = "./repo",
        value_parser = values::path_or("./repo"),
        value_name = "DIR"
    )]
    pub repo: PathBuf,
}

/// The package directory and how a set is taken.
#[derive(Args, Debug)]
pub(crate) struct PackageArgs {
    /// The package directory: assets to publish, and the marker files.
    #[arg(
        long,
        env = "PACKAGE_DIRECTORY",
        default_value = "./packages",
        value_parser = values::path_or("./packages"),
        value_name = "DIR"
    )]
    pub package_dir: PathBuf,
    /// How to use cache/: read-write, read-only (never write it) or off.
    #[arg(
        long,
        env = "S3AM_CACHE",
        default_value = "read-write",
        value_name = "MODE"
    )]
    cache: String,
    #[command(flatten)]
    legacy: LegacyArgs,
}

/// Sets without a manifest.
#[derive(Args, Debug)]
pub(crate) struct LegacyArgs {
    /// Count sets without a manifest (written by the original tool) as found, and fetch them
    /// verified against each object's package-hash metadata.
    #[arg(long, env = "S3AM_ACCEPT_LEGACY", value_parser = values::parse_bool)]
    accept_legacy: bool,
}

/// The code-hash definition.
#[derive(Args, Debug)]
pub(crate) struct FilterArgs {
    /// Space-separated globs (relative to the repository) of the files the assets are built
    /// from; turns caching on.
    #[arg(long, env = "CODE_HASH_FIND_FILTER", value_name = "PATTERNS")]
    filter: Option<String>,
    /// A salt mixed into the code hash (change it to invalidate the cache).
    #[arg(
        long,
        env = "CODE_HASH_SALT",
        default_value = "",
        hide_default_value = true
    )]
    salt: String,
}

/// Where the bucket is, how to reach it, and the transfer knobs. Values are checked when the
/// settings are built ([`StoreArgs::settings`]), where it is known which variable or flag
/// gave them.
#[derive(Args, Debug)]
pub(crate) struct StoreArgs {
    /// The bucket: a name, s3://bucket/prefix, or file:///abs/dir.
    #[arg(long, env = "PACKAGE_ASSETS_BUCKET", value_name = "BUCKET")]
    bucket: Option<String>,
    /// A key prefix inside the bucket.
    #[arg(long, env = "S3AM_PREFIX", value_name = "PREFIX")]
    prefix: Option<String>,
    /// A custom S3 endpoint URL (MinIO, Garage, Ceph, R2); AWS_ENDPOINT_URL works too.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The region (otherwise AWS_REGION / AWS_DEFAULT_REGION / the profile, then us-east-1).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Use path-style addressing (most S3-compatible stores need it).
    #[arg(long, env = "S3AM_PATH_STYLE", value_parser = values::parse_bool)]
    path_style: bool,
    /// Skip the SDK's default checksums and the SHA-256 upload checksum, for stores that
    /// reject them.
    #[arg(long, env = "S3AM_SKIP_CHECKSUMS", value_parser = values::parse_bool)]
    skip_checksums: bool,
    /// The store refuses a PUT with If-None-Match: * to a key that exists (AWS S3 is known
    /// to): a small set's publish writes its objects first, without reading the set before.
    #[arg(long, env = "S3AM_CONDITIONAL_WRITES_ENFORCED", value_parser = values::parse_bool)]
    conditional_writes_enforced: bool,
    /// A role ARN to assume on top of the default credentials.
    #[arg(long, env = "AWS_ROLE", value_name = "ARN")]
    role: Option<String>,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(long, env = "S3AM_SSE", value_name = "ALGORITHM")]
    sse: Option<String>,
    /// The KMS key id for aws:kms.
    #[arg(long, env = "S3AM_SSE_KMS_KEY_ID", value_name = "KEY")]
    sse_kms_key_id: Option<String>,
    // The most files transferred at once; the help says how the number in flight moves.
    #[arg(long, env = "S3AM_CONCURRENCY", value_name = "N", help = help::concurrency(),
          default_value_t = Tuning::default().concurrency.to_string())]
    concurrency: String,
    /// Files at least this large upload multipart (bytes; K, M, G suffixes are binary).
    #[arg(
        long,
        env = "S3AM_MULTIPART_THRESHOLD",
        value_name = "SIZE",
        default_value = "16M"
    )]
    multipart_threshold: String,
    // The smallest part of a multipart upload; the help says how large files go.
    #[arg(
        long,
        env = "S3AM_PART_SIZE",
        value_name = "SIZE",
        default_value = "8M",
        help = help::part_size()
    )]
    part_size: String,
    /// Objects larger than this are copied server-side in parts, concurrently (S3 allows
    /// at most 5G in one copy).
    #[arg(
        long,
        env = "S3AM_COPY_MULTIPART_THRESHOLD",
        value_name = "SIZE",
        default_value = "1G"
    )]
    copy_multipart_threshold: String,
    /// Part size for multipart copies.
    #[arg(
        long,
        env = "S3AM_COPY_PART_SIZE",
        value_name = "SIZE",
        default_value = "512M"
    )]
    copy_part_size: String,
    // The longest one S3 request may take; the help says when a silent store is retried.
    #[arg(long, env = "S3AM_TIMEOUT", value_name = "SECONDS", help = help::timeout(),
          default_value_t = Tuning::default().timeout.as_secs().to_string())]
    timeout: String,
    /// An unencrypted OpenSSH Ed25519 private key, as a file's path or as the key's text:
    /// every manifest written is signed.
    #[arg(
        long,
        env = "S3AM_SIGNING_KEY",
        value_name = "FILE|KEY",
        hide_env_values = true
    )]
    signing_key: Option<String>,
    /// Public key lines (ssh-ed25519 AAAA... comment), as a file's path or as the lines
    /// themselves: only sets signed by one of them count as complete.
    #[arg(
        long,
        env = "S3AM_TRUSTED_KEYS",
        value_name = "FILE|KEYS",
        hide_env_values = true
    )]
    trusted_keys: Option<String>,
    /// Print only warnings and errors.
    #[arg(long, short)]
    quiet: bool,
}

impl PackageArgs {
    /// The cache mode, checked.
    pub(crate) fn cache(&self, sources: &Sources) -> Result<CacheMode> {
        sources.value("cache", &self.cache, |s| {
            s.parse::<CacheMode>()
                .map_err(|_| "not a cache mode: use read-write, read-only or off".into())
        })
    }

    /// Whether legacy sets count.
    pub(crate) fn accept_legacy(&self) -> bool {
        self.legacy.accept_legacy
    }
}

impl LegacyArgs {
    /// Whether legacy sets count.
    pub(crate) fn accept_legacy(&self) -> bool {
        self.accept_legacy
    }
}

impl FilterArgs {
    /// The code-hash definition, or `None` without a filter.
    pub(crate) fn spec(&self, sources: &Sources) -> Result<Option<CodeHashSpec>> {
        match self.filter.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(f) => Ok(Some(CodeHashSpec {
                patterns: Patterns::from_spaced(f).map_err(|e| sources.blame("filter", e))?,
                salt: self.salt.clone(),
            })),
        }
    }
}

impl StoreArgs {
    /// Checks every value into the settings a command runs with: the transfer knobs first,
    /// then `code_hash` (already checked by the caller, in its place in that order), then
    /// the bucket, the prefix and the keys.
    pub(crate) fn settings(
        &self,
        sources: &Sources,
        cache: CacheMode,
        accept_legacy: bool,
        code_hash: impl FnOnce() -> Result<Option<CodeHashSpec>>,
    ) -> Result<Settings> {
        let tuning = self.tuning(sources)?;
        let sse = match &self.sse {
            Some(s) => sources.value("sse", s, |s| store::parse_sse(s).map_err(String::from))?,
            None => None,
        };
        let code_hash = code_hash()?;
        let (bucket, layout) = self.place(sources)?;
        if tuning.part_size < 5 << 20 || tuning.copy_part_size < 5 << 20 {
            log::warn("part sizes under 5 MiB are rejected by AWS S3 (fine for some other stores)");
        }
        let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let store = StoreConfig {
            bucket: Some(bucket),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            role_arn: nonempty(&self.role),
            skip_checksums: self.skip_checksums,
            conditional_writes_enforced: self.conditional_writes_enforced,
            server_side_encryption: sse,
            sse_kms_key_id: nonempty(&self.sse_kms_key_id),
            ..StoreConfig::default()
        };
        Ok(Settings {
            store,
            layout,
            tuning,
            keys: self.keys(sources)?,
            cache,
            accept_legacy,
            code_hash,
            quiet: self.quiet,
        })
    }

    /// The transfer knobs.
    fn tuning(&self, sources: &Sources) -> Result<Tuning> {
        let size = |id: &str, raw: &String| sources.value(id, raw, values::parse_size);
        Ok(Tuning {
            concurrency: sources.value("concurrency", &self.concurrency, values::parse_count)?,
            multipart_threshold: size("multipart_threshold", &self.multipart_threshold)?,
            part_size: size("part_size", &self.part_size)?,
            copy_multipart_threshold: sources.value(
                "copy_multipart_threshold",
                &self.copy_multipart_threshold,
                values::parse_copy_size,
            )?,
            copy_part_size: size("copy_part_size", &self.copy_part_size)?,
            timeout: std::time::Duration::from_secs(
                sources
                    .value("timeout", &self.timeout, values::parse_seconds)?
                    .max(1),
            ),
        })
    }

    /// The bucket and the key layout inside it: a prefix in the bucket URL or in
    /// `S3AM_PREFIX`, not both.
    fn place(&self, sources: &Sources) -> Result<(Bucket, Layout)> {
        let (bucket, url_prefix) = match &self.bucket {
            Some(b) => Bucket::parse(b).map_err(|e| sources.blame("bucket", e))?,
            None => {
                return Err(Error::Config(
                    "PACKAGE_ASSETS_BUCKET is not set: set it (or --bucket) to an S3 bucket name, s3://bucket/prefix, or file:///abs/dir".into(),
                ))
            }
        };
        let layout = match (&self.prefix, url_prefix.is_empty()) {
            (Some(p), true) => Layout::new(p).map_err(|e| sources.blame("prefix", e))?,
            (None, _) => Layout::new(&url_prefix).map_err(|e| sources.blame("bucket", e))?,
            (Some(_), false) => {
                return Err(Error::Config(
                    "the prefix is given twice, in the bucket URL and in S3AM_PREFIX / --prefix: keep one".into(),
                ))
            }
        };
        Ok((bucket, layout))
    }

    /// The signing key and trusted keys: each setting is a key's text
    /// ([`signing::is_key_text`]) or the path of a file holding it. Errors name the setting,
    /// never its value, which may be the key.
    fn keys(&self, sources: &Sources) -> Result<Keys> {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let signing = match given(&self.signing_key) {
            Some(v) => {
                let name = sources.name("signing_key");
                Some(std::sync::Arc::new(match signing::is_key_text(&v) {
                    true => SigningKey::parse(v.as_bytes(), &name)?,
                    false => SigningKey::from_file(Path::new(&v), &name)?,
                }))
            }
            None => None,
        };
        let trusted = match given(&self.trusted_keys) {
            Some(v) => {
                let name = sources.name("trusted_keys");
                Some(std::sync::Arc::new(match signing::is_key_text(&v) {
                    true => {
                        let lines: Vec<(String, &str)> = (v.lines().enumerate())
                            .map(|(i, l)| (format!("{name}, line {}", i + 1), l))
                            .collect();
                        TrustedKeys::parse(&lines, &name)?
                    }
                    false => TrustedKeys::from_file(Path::new(&v), &name)?,
                }))
            }
            None => None,
        };
        Ok(Keys { signing, trusted })
    }
}
