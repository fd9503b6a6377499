//! The `s3-asset-manager` command line: parses the arguments into settings (`cli`) and
//! dispatches each command to the engine. Invoked as `check`, `in` or `out` (the links under
//! /opt/resource), the same binary is the Concourse resource.

use std::process::ExitCode;

use s3_asset_manager::cli::{self, Command, Sources};
use s3_asset_manager::codehash;
use s3_asset_manager::commit;
use s3_asset_manager::error::{clip, Error, Result};
use s3_asset_manager::process::{self, Front};
use s3_asset_manager::trace;
use s3_asset_manager::CacheMode;

async fn run(command: Command, sources: Sources) -> Result<()> {
    match command {
        Command::Check {
            repo,
            package,
            filter,
            store,
        } => {
            let cache = package.cache(&sources)?;
            let settings = store.settings(&sources, cache, package.accept_legacy(), || {
                filter.spec(&sources)
            })?;
            // The original tool writes .commit-hash before touching S3; so does lookup, but
            // a bad bucket setting must still be reported before anything else happens.
            let engine = settings.engine().await?;
            let opts = settings.lookup(repo.repo, Some(package.package_dir));
            engine
                .lookup(&opts)
                .await?
                .log_summary(engine.store().as_ref());
        }
        Command::Upload { package, store } => {
            let cache = package.cache(&sources)?;
            let settings = store.settings(&sources, cache, package.accept_legacy(), || Ok(None))?;
            let engine = settings.engine().await?;
            let opts = settings.publish(package.package_dir, None, None);
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
            let settings =
                store.settings(&sources, CacheMode::Off, legacy.accept_legacy(), || {
                    Ok(None)
                })?;
            let commit = match commit {
                Some(c) => commit::parse_commit(&c).ok_or_else(|| {
                    Error::Config(format!(
                        "--commit {} is not a full commit id: give all 40 hex digits (64 in a SHA-256 repository)",
                        clip(&c)
                    ))
                })?,
                None => commit::resolve_head(&repo.repo)?,
            };
            let engine = settings.engine().await?;
            match engine.fetch(&commit, &dest, settings.accept_legacy).await? {
                Some(report) => report.log_summary(engine.store().as_ref()),
                None => {
                    return Err(Error::Input(format!(
                        "no complete asset set for commit {commit}: publish it first (its manifest is missing)"
                    )))
                }
            }
        }
        Command::List(args) => args.run(&sources).await?,
        Command::Delete(args) => args.run(&sources).await?,
        Command::Prune(args) => args.run(&sources).await?,
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Some(resource) = s3_asset_manager::resource::invoked_as() {
        let code = resource();
        trace::finish("resource");
        return code;
    }
    process::on_panic(" with the command you ran");
    let (cli, sources) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let runtime = match process::runtime() {
        Ok(r) => r,
        Err(e) => return process::fail(Front::Cli, &e),
    };
    let name = sources.command_name();
    let result = runtime.block_on(run(cli.command, sources));
    trace::finish(&name);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => process::fail(Front::Cli, &e),
    }
}
