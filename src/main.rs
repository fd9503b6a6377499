//! The `s3-asset-manager` command line: the `check` and `upload` tasks, `hash` and `fetch`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use s3_asset_manager::codehash::{self, Patterns};
use s3_asset_manager::engine::Keys;
use s3_asset_manager::engine::{LookupOptions, PublishOptions};
use s3_asset_manager::error::{clip, clip_quoted, exit, one_line, Error, Result};
use s3_asset_manager::layout::Layout;
use s3_asset_manager::signing::{SigningKey, TrustedKeys};
use s3_asset_manager::store::{self, Bucket, StoreConfig, Tuning};
use s3_asset_manager::{log, CacheMode, CodeHashSpec, Engine};

/// Build each CI asset set once: find a commit's assets in S3, restore them from a
/// code-hash cache, or publish them.
///
/// Every flag can also be set by the environment variable shown with it; `check` and
/// `upload` read the same variables as the original Python tool.
#[derive(Parser, Debug)]
#[command(name = "s3-asset-manager", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Find the commit's asset set, or restore it from the cache; write .commit-hash,
    /// .code-hash and .found into the package directory (the `check` task).
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        package: PackageArgs,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish the package directory as the commit's asset set, unless .found exists
    /// (the `upload` task).
    Upload {
        #[command(flatten)]
        package: PackageArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the code hash of the repository's files matched by the filter.
    Hash {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print every record that went into the hash: type, size, SHA-256, path.
        #[arg(long)]
        list: bool,
    },
    /// Download a complete asset set and verify every file against its manifest.
    Fetch {
        /// The commit whose set to fetch (default: HEAD of --repo).
        #[arg(long)]
        commit: Option<String>,
        #[command(flatten)]
        repo: RepoArgs,
        /// Where to write the files.
        #[arg(long, value_name = "DIR")]
        dest: PathBuf,
        #[command(flatten)]
        legacy: LegacyArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args, Debug)]
struct RepoArgs {
    /// The git checkout.
    #[arg(
        long = "repo",
        env = "GIT_REPO_PATH",
        default_value = "./repo",
        value_name = "DIR"
    )]
    repo: PathBuf,
}

#[derive(Args, Debug)]
struct PackageArgs {
    /// The package directory: assets to publish, and the marker files.
    #[arg(
        long,
        env = "PACKAGE_DIRECTORY",
        default_value = "./packages",
        value_name = "DIR"
    )]
    package_dir: PathBuf,
    /// How to use cache/: read-write, read-only (never write it) or off.
    #[arg(
        long,
        env = "S3AM_CACHE",
        default_value = "read-write",
        value_name = "MODE",
        value_parser = parse_cache
    )]
    cache: CacheMode,
    #[command(flatten)]
    legacy: LegacyArgs,
}

#[derive(Args, Debug)]
struct LegacyArgs {
    /// Count sets without a manifest (written by the original tool) as found, and fetch them
    /// verified against each object's package-hash metadata.
    #[arg(long, env = "S3AM_ACCEPT_LEGACY", value_parser = parse_bool)]
    accept_legacy: bool,
}

#[derive(Args, Debug)]
struct FilterArgs {
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

#[derive(Args, Debug)]
struct StoreArgs {
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
    #[arg(long, env = "S3AM_PATH_STYLE", value_parser = parse_bool)]
    path_style: bool,
    /// Skip the SDK's default checksums and the SHA-256 upload checksum, for stores that
    /// reject them.
    #[arg(long, env = "S3AM_SKIP_CHECKSUMS", value_parser = parse_bool)]
    skip_checksums: bool,
    /// A role ARN to assume on top of the default credentials.
    #[arg(long, env = "AWS_ROLE", value_name = "ARN")]
    role: Option<String>,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(long, env = "S3AM_SSE", value_name = "ALGORITHM", value_parser = parse_sse)]
    sse: Option<String>,
    /// The KMS key id for aws:kms.
    #[arg(long, env = "S3AM_SSE_KMS_KEY_ID", value_name = "KEY")]
    sse_kms_key_id: Option<String>,
    /// The most files transferred at once: the number in flight starts at 16, doubles while
    /// throughput grows, and halves when the store throttles.
    #[arg(long, env = "S3AM_CONCURRENCY", default_value_t = Tuning::default().concurrency, value_parser = parse_count)]
    concurrency: usize,
    /// Files at least this large upload multipart (bytes; K, M, G suffixes are binary).
    #[arg(long, env = "S3AM_MULTIPART_THRESHOLD", default_value = "16M", value_parser = parse_size)]
    multipart_threshold: u64,
    /// The smallest part of a multipart upload, and range of a large download; a file over
    /// 512M goes in about 64 parts, of at most 64M.
    #[arg(long, env = "S3AM_PART_SIZE", default_value = "8M", value_parser = parse_size)]
    part_size: u64,
    /// Objects larger than this are copied server-side in parts, concurrently (S3 allows
    /// at most 5G in one copy).
    #[arg(long, env = "S3AM_COPY_MULTIPART_THRESHOLD", default_value = "1G", value_parser = parse_copy_size)]
    copy_multipart_threshold: u64,
    /// Part size for multipart copies.
    #[arg(long, env = "S3AM_COPY_PART_SIZE", default_value = "512M", value_parser = parse_size)]
    copy_part_size: u64,
    /// The longest one S3 request may take, retries included, in seconds; a silent store is
    /// retried after a quarter of it (at most 30 s).
    #[arg(long, env = "S3AM_TIMEOUT", default_value_t = 120, value_parser = parse_seconds)]
    timeout: u64,
    /// An unencrypted OpenSSH Ed25519 private key file: every manifest written is signed.
    #[arg(long, env = "S3AM_SIGNING_KEY", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// A file of public key lines (ssh-ed25519 AAAA... comment): only sets signed by one of
    /// them count as complete.
    #[arg(long, env = "S3AM_TRUSTED_KEYS", value_name = "FILE")]
    trusted_keys: Option<PathBuf>,
    /// Print only warnings and errors.
    #[arg(long, short)]
    quiet: bool,
}

// Value parsers: each error is the reason alone; `value_error` names the value and where it
// came from (the variable or the flag).

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    const NOT: &str = "not a size: use bytes or a K, M or G suffix, e.g. 8M";
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1),
        Some((i, _)) => {
            let mult = match t[i..].trim().to_ascii_uppercase().as_str() {
                "B" => 1,
                "K" | "KB" | "KIB" => 1 << 10,
                "M" | "MB" | "MIB" => 1 << 20,
                "G" | "GB" | "GIB" => 1 << 30,
                _ => return Err(NOT.into()),
            };
            (&t[..i], mult)
        }
    };
    let n: u64 = num.parse().map_err(|_| NOT.to_string())?;
    if n == 0 {
        return Err("the size must be positive".into());
    }
    n.checked_mul(mult)
        .ok_or_else(|| "too large: sizes go up to 16 EiB".into())
}

fn parse_copy_size(s: &str) -> std::result::Result<u64, String> {
    match parse_size(s)? {
        n if n > 5 << 30 => Err("at most 5G, S3's limit for one copy".into()),
        n => Ok(n),
    }
}

fn parse_cache(s: &str) -> std::result::Result<CacheMode, String> {
    s.parse()
        .map_err(|_| "not a cache mode: use read-write, read-only or off".into())
}

fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err("not a boolean: use true/false, 1/0, yes/no or on/off".into()),
    }
}

fn parse_sse(s: &str) -> std::result::Result<String, String> {
    match s {
        "" | "AES256" | "aws:kms" => Ok(s.to_string()),
        _ => Err("not a server-side encryption: use AES256 or aws:kms".into()),
    }
}

fn parse_count(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

fn parse_seconds(s: &str) -> std::result::Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| "not a number of seconds: use a whole number, e.g. 120".into())
}

impl StoreArgs {
    async fn engine(&self, sources: &Sources) -> Result<Engine> {
        log::set_quiet(self.quiet);
        let (bucket, url_prefix) = match &self.bucket {
            Some(b) => Bucket::parse(b).map_err(|e| sources.blame("bucket", e))?,
            None => {
                return Err(Error::Config(
                    "PACKAGE_ASSETS_BUCKET is not set: set it (or --bucket) to an S3 bucket name, s3://bucket/prefix, or file:///abs/dir".into(),
                ))
            }
        };
        let prefix = match (&self.prefix, url_prefix.is_empty()) {
            (Some(p), true) => p.clone(),
            (None, _) => url_prefix,
            (Some(_), false) => {
                return Err(Error::Config(
                    "the prefix is given twice, in the bucket URL and in S3AM_PREFIX / --prefix: keep one".into(),
                ))
            }
        };
        let sse = self.sse.clone().filter(|s| !s.is_empty());
        if self.part_size < 5 << 20 || self.copy_part_size < 5 << 20 {
            log::warn("part sizes under 5 MiB are rejected by AWS S3 (fine for some other stores)");
        }
        let cfg = StoreConfig {
            bucket: Some(bucket),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            role_arn: self.role.clone().filter(|r| !r.is_empty()),
            skip_checksums: self.skip_checksums,
            server_side_encryption: sse,
            sse_kms_key_id: self.sse_kms_key_id.clone().filter(|k| !k.is_empty()),
            ..StoreConfig::default()
        };
        let tuning = Tuning {
            concurrency: self.concurrency,
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            copy_multipart_threshold: self.copy_multipart_threshold,
            copy_part_size: self.copy_part_size,
            timeout: Duration::from_secs(self.timeout.max(1)),
        };
        let layout = Layout::new(&prefix).map_err(|e| match &self.prefix {
            Some(_) => sources.blame("prefix", e),
            None => sources.blame("bucket", e),
        })?;
        let keys = self.keys(sources)?;
        let store = store::open(&cfg, &tuning).await?;
        Ok(Engine::new(store, layout, tuning).with_keys(keys))
    }

    /// The signing key and trusted keys, read from their files.
    fn keys(&self, sources: &Sources) -> Result<Keys> {
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let signing = match path(&self.signing_key) {
            Some(p) => Some(Arc::new(
                SigningKey::from_file(&p).map_err(|e| sources.blame("signing_key", e))?,
            )),
            None => None,
        };
        let trusted = match path(&self.trusted_keys) {
            Some(p) => Some(Arc::new(
                TrustedKeys::from_file(&p).map_err(|e| sources.blame("trusted_keys", e))?,
            )),
            None => None,
        };
        Ok(Keys { signing, trusted })
    }
}

impl FilterArgs {
    fn spec(&self, sources: &Sources) -> Result<Option<CodeHashSpec>> {
        match self.filter.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(f) => Ok(Some(CodeHashSpec {
                patterns: Patterns::from_spaced(f).map_err(|e| sources.blame("filter", e))?,
                salt: self.salt.clone(),
            })),
        }
    }
}

/// Where each setting of the command that runs came from, to name it in an error: the
/// variable (and its flag) when the environment set it, the flag otherwise.
struct Sources {
    command: clap::Command,
    matches: clap::ArgMatches,
}

impl Sources {
    /// `S3AM_CACHE (--cache)` for a value from the environment, `--cache` for one from a flag.
    fn name(&self, id: &str) -> String {
        let arg = self.command.get_arguments().find(|a| a.get_id() == id);
        let flag = match arg.and_then(|a| a.get_long()) {
            Some(long) => format!("--{long}"),
            None => id.to_string(),
        };
        let from_env = matches!(
            self.matches.value_source(id),
            Some(clap::parser::ValueSource::EnvVariable)
        );
        match arg.and_then(|a| a.get_env()) {
            Some(env) if from_env => format!("{} ({flag})", env.to_string_lossy()),
            _ => flag,
        }
    }

    /// A configuration error about setting `id`, naming where the setting came from.
    fn blame(&self, id: &str, e: Error) -> Error {
        match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", self.name(id))),
            other => other,
        }
    }
}

async fn run(cli: Cli, sources: Sources) -> Result<()> {
    match cli.command {
        Command::Check {
            repo,
            package,
            filter,
            store,
        } => {
            let opts = LookupOptions {
                repo: repo.repo,
                markers: Some(package.package_dir),
                code_hash: filter.spec(&sources)?,
                cache: package.cache,
                accept_legacy: package.legacy.accept_legacy,
            };
            // The original tool writes .commit-hash before touching S3; so does lookup, but
            // a bad bucket setting must still be reported before anything else happens.
            let engine = store.engine(&sources).await?;
            engine
                .lookup(&opts)
                .await?
                .log_summary(engine.store().as_ref());
        }
        Command::Upload { package, store } => {
            let opts = PublishOptions {
                package_dir: package.package_dir,
                commit: None,
                code_hash: None,
                compute_code_hash: None,
                cache: package.cache,
                accept_legacy: package.legacy.accept_legacy,
            };
            let engine = store.engine(&sources).await?;
            engine
                .publish(&opts)
                .await?
                .log_summary(engine.store().as_ref());
        }
        Command::Hash { repo, filter, list } => {
            let Some(spec) = filter.spec(&sources)? else {
                return Err(Error::Config(
                    "no code-hash filter: set CODE_HASH_FIND_FILTER (or --filter) to space-separated globs, e.g. \"src/** package.json\"".into(),
                ));
            };
            let h = codehash::compute(&repo.repo, &spec.patterns, &spec.salt)?;
            if list {
                for r in &h.records {
                    println!("{r}");
                }
            }
            println!("{}", h.hex);
        }
        Command::Fetch {
            commit,
            repo,
            dest,
            legacy,
            store,
        } => {
            let commit = match commit {
                Some(c) => s3_asset_manager::commit::parse_commit(&c).ok_or_else(|| {
                    Error::Config(format!(
                        "--commit {} is not a full commit id: give all 40 hex digits",
                        s3_asset_manager::error::clip(&c)
                    ))
                })?,
                None => s3_asset_manager::commit::resolve_head(&repo.repo)?,
            };
            let engine = store.engine(&sources).await?;
            match engine.fetch(&commit, &dest, legacy.accept_legacy).await? {
                Some(report) => report.log_summary(engine.store().as_ref()),
                None => {
                    return Err(Error::Input(format!(
                        "no complete asset set for commit {commit}: publish it first (its manifest is missing)"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // One binary for the whole image: invoked as check, in or out (the links under
    // /opt/resource), it is the Concourse resource.
    if let Some(run) = s3_asset_manager::resource::invoked_as() {
        return run();
    }
    std::panic::set_hook(Box::new(|info| {
        log::error(one_line(&format!(
            "internal error ({info}): this is a bug in s3-asset-manager; please report it with the command you ran"
        )));
    }));
    let (cli, sources) = match parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            log::error(format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::RUNTIME as u8);
        }
    };
    match runtime.block_on(run(cli, sources)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(one_line(&e.to_string()));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Parses the command line (and the variables behind it); on failure prints help, or one
/// `error:` line (with the usage when no command was given), and returns the exit code.
fn parse() -> std::result::Result<(Cli, Sources), ExitCode> {
    use clap::error::ErrorKind;
    let command = Cli::command();
    let e = match command.clone().try_get_matches() {
        Ok(matches) => {
            let cli = Cli::from_arg_matches(&matches).map_err(|e| config_error(&e, &command))?;
            let sources = match matches.subcommand() {
                Some((name, sub)) => Sources {
                    command: command.find_subcommand(name).cloned().unwrap_or_default(),
                    matches: sub.clone(),
                },
                None => Sources {
                    command: command.clone(),
                    matches,
                },
            };
            return Ok((cli, sources));
        }
        Err(e) => e,
    };
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let names: Vec<&str> = command
                .get_subcommands()
                .map(|c| c.get_name())
                .filter(|n| *n != "help")
                .collect();
            log::error(format!(
                "no command given: use one of {} (see s3-asset-manager --help)",
                names.join(", ")
            ));
            eprintln!("\n{}", command.clone().render_usage());
            Err(ExitCode::from(exit::CONFIG as u8))
        }
        _ => Err(config_error(&e, &command)),
    }
}

/// Prints a parsing error as one line and returns the configuration exit code.
fn config_error(e: &clap::Error, command: &clap::Command) -> ExitCode {
    // A bad value's line says what to use; any other line points to the help.
    let line = value_error(e, command).unwrap_or_else(|| {
        let text = e.to_string();
        let mut lines = text.lines();
        let mut first = lines
            .next()
            .unwrap_or("invalid arguments")
            .trim_start_matches("error: ")
            .to_string();
        // clap names what is missing on the indented lines that follow the first.
        for l in lines.take_while(|l| l.starts_with("  ") && !l.trim().is_empty()) {
            first.push(' ');
            first.push_str(l.trim());
        }
        let first = clip_quoted(&first, &['\'', '"']);
        format!("{first} (see s3-asset-manager --help)")
    });
    log::error(one_line(&line));
    ExitCode::from(exit::CONFIG as u8)
}

/// An invalid value as `invalid value "x" for S3AM_CACHE (--cache): why`, naming the variable
/// when the value came from it (no flag on the command line) and the flag otherwise.
fn value_error(e: &clap::Error, command: &clap::Command) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return None;
    };
    let long = arg.split([' ', '=']).next()?.strip_prefix("--")?;
    let env = command
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env());
    let flag = format!("--{long}");
    let on_command_line = std::env::args_os().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    let name = match env {
        Some(env) if !on_command_line => format!("{} ({flag})", env.to_string_lossy()),
        _ => flag,
    };
    let why = match (std::error::Error::source(e), e.get(ContextKind::ValidValue)) {
        (Some(why), _) => why.to_string(),
        (None, Some(ContextValue::Strings(valid))) => format!("use one of {}", valid.join(", ")),
        _ => "not a valid value".to_string(),
    };
    Some(format!("invalid value {} for {name}: {why}", clip(value)))
}
