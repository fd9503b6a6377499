//! The commands the pipeline's tasks run: `check` and `upload` (the original tool's two
//! tasks), `hash` and `fetch`, with their arguments.

use std::path::PathBuf;

use clap::Args;

use super::values::{self, Sources};
use super::{engine, FilterArgs, LegacyArgs, PackageArgs, RepoArgs, StoreArgs};
use crate::codehash;
use crate::commit;
use crate::engine::CacheMode;
use crate::error::{clip, Error, RefusedKind, Result};

/// `check`.
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    package: PackageArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// `upload`.
#[derive(Args, Debug)]
pub(crate) struct UploadArgs {
    #[command(flatten)]
    package: PackageArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// `hash`.
#[derive(Args, Debug)]
pub(crate) struct HashArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print every record that went into the hash: type, size, SHA-256, path.
    #[arg(long)]
    list: bool,
}

/// `fetch`.
#[derive(Args, Debug)]
pub(crate) struct FetchArgs {
    /// The commit whose set to fetch, all 40 or 64 hex digits (default: HEAD of --repo).
    #[arg(long)]
    commit: Option<String>,
    #[command(flatten)]
    repo: RepoArgs,
    /// Where to write the files.
    #[arg(long, value_name = "DIR", value_parser = values::dest_dir)]
    dest: PathBuf,
    #[command(flatten)]
    legacy: LegacyArgs,
    #[command(flatten)]
    store: StoreArgs,
}

impl CheckArgs {
    /// Finds the commit's set, or restores it from the cache, and writes the markers.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        let Self {
            repo,
            package,
            filter,
            store,
        } = self;
        let cache = package.cache(sources)?;
        let settings = store.settings(sources, cache, package.accept_legacy(), || {
            filter.spec(sources)
        })?;
        // The original tool writes .commit-hash before touching S3; so does lookup, but
        // a bad bucket setting must still be reported before anything else happens.
        let engine = engine(&settings).await?;
        let opts = settings.lookup(repo.repo, Some(package.package_dir));
        engine
            .lookup(&opts)
            .await?
            .log_summary(engine.store().as_ref());
        Ok(())
    }
}

impl UploadArgs {
    /// Publishes the package directory as the commit's set, unless `.found` says it was found.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        let Self { package, store } = self;
        let cache = package.cache(sources)?;
        let settings = store.settings(sources, cache, package.accept_legacy(), || Ok(None))?;
        let engine = engine(&settings).await?;
        let opts = settings.publish(package.package_dir, None, None);
        engine
            .publish(&opts)
            .await?
            .log_summary(engine.store().as_ref());
        Ok(())
    }
}

impl HashArgs {
    /// Prints the code hash (with `--list`, every record before it) to stdout.
    pub(crate) fn run(self, sources: &Sources) -> Result<()> {
        let Self { repo, filter, list } = self;
        let Some(spec) = filter.spec(sources)? else {
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
        Ok(())
    }
}

impl FetchArgs {
    /// Downloads a complete set into `--dest`, verified.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        let Self {
            commit,
            repo,
            dest,
            legacy,
            store,
        } = self;
        let settings =
            store.settings(sources, CacheMode::Off, legacy.accept_legacy(), || Ok(None))?;
        let commit = match commit {
            Some(c) => commit::parse_commit(&c).ok_or_else(|| {
                Error::Config(format!(
                    "--commit {} is not a full commit id: give all 40 hex digits (64 in a SHA-256 repository)",
                    clip(&c)
                ))
            })?,
            None => commit::resolve_head(&repo.repo)?,
        };
        let engine = engine(&settings).await?;
        match engine.fetch(&commit, &dest, settings.accept_legacy).await? {
            Some(report) => report.log_summary(engine.store().as_ref()),
            None => {
                return Err(Error::refused(
                    RefusedKind::Incomplete,
                    format!("no complete asset set for commit {commit}: publish it first (its manifest is missing)"),
                ))
            }
        }
        Ok(())
    }
}
