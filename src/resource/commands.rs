//! The resource's operations (`check`, `in`, `out`) over the engine, and the process
//! conventions the three binaries share: the request on stdin, the response on stdout only
//! on success, one error line and exit 1 otherwise.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{parse_request, CheckRequest, InRequest, MetadataField, OutRequest, Response, Version};
use crate::assets;
use crate::commit;
use crate::engine::{
    found_report, refuse_damaged, refuse_invalid, refuse_untrusted, Engine, Outcome, Report,
    SetState,
};
use crate::error::{clip, Error, RefusedKind, Result};
use crate::log;
use crate::manifest::BuildIdentity;
use crate::process::{self, Front};

fn valid_commit(v: &Version) -> Result<String> {
    commit::parse_commit(&v.commit).ok_or_else(|| {
        Error::Config(format!(
            "invalid version: commit {:?} is not a full hex commit id",
            v.commit.chars().take(80).collect::<String>()
        ))
    })
}

fn field(name: &str, value: impl ToString) -> MetadataField {
    MetadataField {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// What the UI shows of a `get` or `put`: the set (its commit, code hash, place, and, where
/// its manifest was read, when it was created and by which build), then what this step did.
fn metadata(r: &Report, url: &str, manifest: Option<&SetFacts>) -> Vec<MetadataField> {
    let mut m = vec![field("commit", &r.commit)];
    if let Some(h) = &r.code_hash {
        m.push(field("code_hash", h));
    }
    m.push(field("url", url));
    if let Some(manifest) = manifest {
        m.push(field("created", &manifest.created));
        if let Some(b) = manifest.build.as_ref().and_then(build_name) {
            m.push(field("build", b));
        }
        if let Some(signer) = &manifest.signer {
            m.push(field("signer", signer));
        }
    }
    m.push(field("outcome", r.outcome.as_str()));
    m.push(field("files", r.files));
    m.push(field("bytes", r.bytes));
    m.push(field("seconds", format!("{:.2}", r.seconds)));
    m
}

/// What a set's manifest says of it, kept for the metadata once the manifest is dropped.
struct SetFacts {
    created: String,
    build: Option<BuildIdentity>,
    signer: Option<String>,
}

/// The build that wrote a set, as Concourse names it (`team/pipeline/job #42`), or its page
/// when the manifest has the external URL.
fn build_name(b: &BuildIdentity) -> Option<String> {
    let (team, pipeline, job, name) = (
        b.team.as_deref()?,
        b.pipeline.as_deref()?,
        b.job.as_deref()?,
        b.name.as_deref()?,
    );
    Some(match b.url.as_deref() {
        Some(url) => format!(
            "{}/teams/{team}/pipelines/{pipeline}/jobs/{job}/builds/{name}",
            url.trim_end_matches('/')
        ),
        None => format!("{team}/{pipeline}/{job} #{name}"),
    })
}

/// Where a commit's set is, as a URL (`s3://bucket/prefix/artifacts/<commit>/`).
fn set_url(engine: &Engine, commit: &str) -> String {
    format!(
        "{}/{}",
        engine.store().url(),
        engine.layout().artifacts(commit).root()
    )
}

/// Resolves a relative path param inside `base`, refusing anything that escapes it.
fn inside(base: &Path, rel: &str, what: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    // Also refused: "." and the like, which would name the whole put directory.
    let escapes = rel.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
        || !p.components().any(|c| matches!(c, Component::Normal(_)));
    if escapes {
        return Err(Error::Config(format!(
            "params.{what} {} must be a relative path inside the put's directory (an input name such as \"repo\")", clip(rel)
        )));
    }
    Ok(base.join(p))
}

/// `check`: complete asset sets in order of completion.
pub(crate) async fn check(req: CheckRequest) -> Result<Vec<Version>> {
    let since = match &req.version {
        Some(v) => Some(valid_commit(v)?),
        None => None,
    };
    let engine = req.source.settings()?.engine().await?;
    let versions = engine.versions(since.as_deref()).await?;
    let requests = match engine.store().requests() {
        0 => String::new(),
        n => format!(" ({})", log::count(n, "S3 request")),
    };
    log::phase(format!(
        "check: {}{requests}",
        log::count(versions.len() as u64, "version")
    ));
    Ok(versions
        .into_iter()
        .map(|commit| Version { commit })
        .collect())
}

/// `in`: download and verify a complete set into `dest`, with the markers.
pub(crate) async fn fetch(req: InRequest, dest: &Path) -> Result<Response> {
    let commit = valid_commit(&req.version)?;
    let params = req.params.clone().unwrap_or_default();
    let settings = req.source.settings()?;
    let engine = settings.engine().await?;
    std::fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
    assets::write_marker(dest, assets::COMMIT_MARKER, &commit)?;
    let artifacts = engine.layout().artifacts(&commit);
    // Markers alone: found must mean fetchable, so the listing is checked against the
    // manifest. A download checks every object itself, and lists only on a failure.
    let state = if params.skip_download {
        engine
            .fetchable_state(&artifacts, settings.accept_legacy)
            .await?
    } else {
        engine.set_state(&artifacts, settings.accept_legacy).await?
    };
    let facts = SetFacts::of(&state);
    // A set a reader refuses (damaged, invalid or untrusted) is not complete: `.commit-hash`
    // only, so the build runs and its upload repairs the set, unless the set is required.
    let refused = |refusal: Error, why: &str| {
        if params.require {
            return Err(refusal);
        }
        log::warn(format!(
            "refusing {artifacts}: {why}; wrote .commit-hash only, so the build runs"
        ));
        Ok(Report::new(&commit, Outcome::Missing))
    };
    let report = match state {
        SetState::Missing => {
            if params.require {
                return Err(Error::refused(RefusedKind::Incomplete, format!(
                    "no complete asset set for commit {commit} in {}: it was never published, or its upload was interrupted (params.require is true)",
                    engine.store().url()
                )));
            }
            log::phase(format!(
                "{artifacts} is not complete: wrote .commit-hash only"
            ));
            Report::new(&commit, Outcome::Missing)
        }
        SetState::Damaged { why, .. } => refused(refuse_damaged(&artifacts, &why), &why)?,
        SetState::Invalid { why } => refused(refuse_invalid(&artifacts, &why), &why)?,
        SetState::Untrusted { why, .. } => refused(refuse_untrusted(&artifacts, &why), &why)?,
        state if params.skip_download => {
            found_report(&commit, &state).unwrap_or_else(|| Report::new(&commit, Outcome::Missing))
        }
        // A download learns of damage from the listing it makes beside the downloads, before
        // any file is renamed into place: the same as a damaged set found before it.
        state => match engine.download(&commit, state, dest).await {
            Ok(Some(report)) => report,
            Ok(None) => Report::new(&commit, Outcome::Missing),
            Err(Error::Refused {
                kind: RefusedKind::Damaged,
                message,
            }) if !params.require => {
                remove_empty_dirs(dest);
                log::warn(format!(
                    "{message}; wrote .commit-hash only, so the build runs"
                ));
                Report::new(&commit, Outcome::Missing)
            }
            Err(e) => return Err(e),
        },
    };
    write_found_markers(dest, &report)?;
    report.log_summary(engine.store().as_ref());
    let facts = facts.filter(|_| report.outcome == Outcome::Found);
    Ok(Response {
        metadata: metadata(&report, &set_url(&engine, &commit), facts.as_ref()),
        version: Version { commit },
    })
}

/// `.code-hash` (when known) and `.found` in `dest`, for a set found.
fn write_found_markers(dest: &Path, report: &Report) -> Result<()> {
    if report.outcome == Outcome::Found {
        if let Some(h) = &report.code_hash {
            assets::write_marker(dest, assets::CODE_HASH_MARKER, h)?;
        }
        assets::write_marker(dest, assets::FOUND_MARKER, "")?;
    }
    Ok(())
}

impl SetFacts {
    /// What a complete set's manifest says of it, for the metadata; `None` for any other.
    fn of(state: &SetState) -> Option<SetFacts> {
        match state {
            SetState::Complete(m) => Some(SetFacts {
                created: m.created.clone(),
                build: m.build.clone(),
                signer: m.signer.clone(),
            }),
            _ => None,
        }
    }
}

/// `out`: a lookup (no `path`) or a publish (with `path`).
pub(crate) async fn put(req: OutRequest, base: &Path) -> Result<Response> {
    let repo = inside(base, &req.params.repo, "repo")?;
    let path = match &req.params.path {
        Some(p) => Some(inside(base, p, "path")?),
        None => None,
    };
    // Every setting is checked before the checkout: a bad config line reads as one.
    let settings = req.source.settings()?;
    let commit = commit::resolve_head(&repo)?;
    let engine = settings.engine().await?;
    let report = match path {
        None => engine.lookup(&settings.lookup(repo, None)).await?,
        Some(dir) => {
            let opts = settings.publish(dir, Some(commit.clone()), Some(repo));
            engine.publish(&opts).await?
        }
    };
    report.log_summary(engine.store().as_ref());
    Ok(Response {
        metadata: metadata(&report, &set_url(&engine, &commit), None),
        version: Version { commit },
    })
}

/// Reads all of stdin, bounded so a runaway producer cannot exhaust memory.
pub(crate) fn read_stdin() -> Result<String> {
    use std::io::Read;
    const LIMIT: u64 = 16 << 20;
    let mut s = String::new();
    std::io::stdin()
        .take(LIMIT + 1)
        .read_to_string(&mut s)
        .map_err(|e| Error::Config(format!("invalid payload: cannot read stdin as UTF-8 ({e})")))?;
    if s.len() as u64 > LIMIT {
        return Err(Error::Config(
            "invalid payload: the request is over 16 MiB; a request holds only source, version and params".into(),
        ));
    }
    Ok(s)
}

/// Runs a resource operation on a fresh runtime, with the process-level conventions shared
/// by the three binaries: the response on stdout only on success, one error line and exit 1
/// ([`Front::Resource`]) otherwise. `name` names the process in the trace ([`crate::trace`]).
pub(crate) fn main<F, Fut, T>(name: &str, op: F) -> std::process::ExitCode
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
    T: Serialize,
{
    process::on_panic("");
    let result = read_stdin().and_then(|input| process::runtime()?.block_on(op(input)));
    crate::trace::finish(name);
    match result.and_then(|v| {
        serde_json::to_string(&v)
            .map_err(|e| Error::Internal(format!("cannot encode the response: {e}")))
    }) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => process::fail(Front::Resource, &e),
    }
}

/// The `check` binary: the request on stdin, the versions on stdout.
pub fn run_check() -> std::process::ExitCode {
    main("resource check", |input| async move {
        check(parse_request(&input)?).await
    })
}

/// The `in` binary: the request on stdin, the destination directory as `argv[1]`.
pub fn run_in() -> std::process::ExitCode {
    main("resource in", |input| async move {
        let dest = dir_arg()?;
        fetch(parse_request(&input)?, &dest).await
    })
}

/// The `out` binary: the request on stdin, the build's directory as `argv[1]`.
pub fn run_out() -> std::process::ExitCode {
    main("resource out", |input| async move {
        let base = dir_arg()?;
        put(parse_request(&input)?, &base).await
    })
}

/// The resource operation a multi-call binary was invoked as (`/opt/resource/check` is a
/// link to `s3-asset-manager`), from the file name of `argv[0]`.
pub(crate) fn invoked_as() -> Option<fn() -> std::process::ExitCode> {
    let argv0 = std::env::args_os().next()?;
    match Path::new(&argv0).file_name()?.to_str()? {
        "check" => Some(run_check),
        "in" => Some(run_in),
        "out" => Some(run_out),
        _ => None,
    }
}

/// The directory argument of `in` and `out`.
pub(crate) fn dir_arg() -> Result<PathBuf> {
    std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Config(
                "usage: in|out <directory> (Concourse passes it as the first argument)".into(),
            )
        })
}

/// Removes the directories under `dir` that hold nothing (those a refused download made for
/// its files), deepest first; never follows a symlink, and leaves anything with content.
fn remove_empty_dirs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let sub = e.path();
            remove_empty_dirs(&sub);
            let _ = std::fs::remove_dir(&sub); // refused unless empty
        }
    }
}
