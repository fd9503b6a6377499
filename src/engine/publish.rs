//! Publish: upload a package directory as a commit's asset set (the `upload` task and the
//! resource's `put` with `path`), fill the cache, and write the manifest last.

use std::path::PathBuf;
use std::time::Instant;

use super::restore::Fill;
use super::transfer::{Origin, Stamp, IN_MEMORY};
use super::{CacheMode, Engine, Outcome, PublishOptions, Report, SetState};
use crate::assets::{self, Asset};
use crate::codehash;
use crate::error::{Error, Result};
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::{FileEntry, Manifest, Pieces};
use crate::store::ObjectInfo;

mod first;
mod hashing;
mod held;

use hashing::hash_assets;

impl Engine {
    /// The `upload` task: publish the package directory as the commit's asset set.
    pub(crate) async fn publish(&self, opts: &PublishOptions) -> Result<Report> {
        let started = Instant::now();
        let dir = &opts.package_dir;
        if let Some(report) = found_already(opts, started) {
            return Ok(report);
        }
        let commit = match &opts.commit {
            Some(c) => c.clone(),
            None => assets::read_commit(dir)?,
        };
        let marked = match &opts.code_hash {
            Some(h) => Some(h.clone()),
            None => assets::read_code_hash(dir)?,
        };
        let files = assets::collect(dir)?;
        if files.is_empty() {
            return Err(Error::Input(format!(
                "no files to upload in {}: the build must write its assets there (hidden files are skipped)",
                dir.display()
            )));
        }
        let artifacts = self.layout.artifacts(&commit);
        let start = Start {
            commit,
            marked,
            artifacts: &artifacts,
            started,
        };
        if self.writes_first(opts, &files, start.marked.is_some()) {
            return self.publish_first(opts, files, start).await;
        }
        self.publish_held(opts, files, start).await
    }

    /// Whether to publish over the set in `state`: not when it is complete (then indexed, in
    /// case its publisher could not), a legacy set, or untrusted with no key to replace it.
    async fn replaces(
        &self,
        artifacts: &SetLocation,
        state: SetState,
        listing: &[ObjectInfo],
    ) -> Result<bool> {
        match state {
            SetState::Complete(m) => match self.damage_in(artifacts, &m, listing) {
                None => {
                    log::phase(format!(
                        "{artifacts} is already complete (another pipeline published it): uploading nothing"
                    ));
                    self.ensure_indexed(artifacts.id(), &m).await?;
                    return Ok(false);
                }
                Some(problem) => log::warn(format!("{problem}; publishing it again")),
            },
            SetState::Legacy { .. } => {
                log::phase(format!(
                    "{artifacts} holds a legacy set, accepted as complete: uploading nothing"
                ));
                return Ok(false);
            }
            SetState::Untrusted { why, .. } => match &self.keys.signing {
                Some(key) => log::warn(format!(
                    "{artifacts} is complete, but {why}: replacing it with a set signed by {}",
                    key.fingerprint()
                )),
                None => {
                    log::warn(format!(
                        "{artifacts} is complete, but {why}; this publisher holds no signing key (S3AM_SIGNING_KEY, source.signing_key) that could make it trusted: uploading nothing"
                    ));
                    return Ok(false);
                }
            },
            // Never from `read_state_listed`: damage is judged above, against the listing.
            SetState::Damaged { .. } => {}
            SetState::Invalid { .. } => log::warn(format!(
                "{artifacts} has a manifest that is not its own: publishing the set over it"
            )),
            SetState::Missing => {}
        }
        Ok(true)
    }

    /// Where the cache may be written, whether the entry of `code_hash` needs filling.
    async fn fill_plan(
        &self,
        opts: &PublishOptions,
        code_hash: Option<&str>,
    ) -> Result<Option<Fill>> {
        Ok(match code_hash {
            Some(h) if opts.cache == CacheMode::ReadWrite => Some(self.cache_to_fill(h).await?),
            _ => None,
        })
    }

    /// The code hash a publish stamps: the marker's, or computed when the publish may.
    async fn publish_code_hash(
        &self,
        opts: &PublishOptions,
        marked: Option<String>,
    ) -> Result<Option<String>> {
        Ok(match (marked, &opts.compute_code_hash) {
            (None, Some((repo, spec))) => Some(self.code_hash(repo, spec).await?),
            (h, _) => h,
        })
    }

    /// Hashes the assets: their manifest entries, where their bytes come from, and how many
    /// bytes in all.
    async fn prepare(
        &self,
        files: &[Asset],
        dir: &std::path::Path,
    ) -> Result<(Vec<FileEntry>, Origin, u64)> {
        let parts: Vec<Option<u64>> = files
            .iter()
            .map(|a| self.store.checksum_parts(a.size))
            .collect();
        // A file that downloads in ranges gets a SHA-256 for each range too.
        let pieces: Vec<Option<u64>> = files
            .iter()
            .map(|a| {
                (a.size >= self.tuning.multipart_threshold)
                    .then(|| crate::store::transfer_part_size(a.size, self.tuning.part_size))
            })
            .collect();
        let hashed = hash_assets(files, parts, pieces).await?;
        let total = crate::manifest::sum_sizes(hashed.iter().map(|h| h.size));
        let entries: Vec<FileEntry> = files
            .iter()
            .zip(&hashed)
            .map(|(a, h)| FileEntry {
                path: a.rel.clone(),
                size: h.size,
                sha256: h.sha256.map(Into::into).unwrap_or_default(),
                etag: None,
                pieces: h.pieces.clone(),
            })
            .collect();
        let part_crc64 = files
            .iter()
            .zip(hashed)
            .filter(|(_, h)| !h.parts.is_empty())
            .map(|(a, h)| (a.rel.clone(), h.parts))
            .collect();
        let origin = Origin::Files {
            dir: dir.to_path_buf(),
            part_crc64,
        };
        Ok((entries, origin, total))
    }

    /// Says what the upload of `files` files of `total` bytes to `artifacts` is.
    fn say_uploading(&self, files: usize, total: u64, artifacts: &SetLocation) {
        log::phase(format!(
            "uploading {}, {} to {}{artifacts}",
            log::count(files as u64, "file"),
            log::bytes(total),
            self.store.url().trim_end_matches('/').to_string() + "/"
        ));
    }

    /// Writes the manifests of the artifacts set (`written`) and, when it was filled, the
    /// cache entry at once (the artifacts' no earlier than the cache entry's).
    async fn complete_both(
        &self,
        sets: Sets<'_>,
        origin: &Origin,
        stamp: Stamp<'_>,
        written: Vec<FileEntry>,
        cached: Option<Cached>,
    ) -> Result<()> {
        let manifest = Manifest::new(sets.artifacts, stamp.commit, stamp.code_hash, written);
        let (filled, completed) = tokio::join!(
            async {
                match (&cached, sets.cache) {
                    (Some((files, from)), Some(loc)) => {
                        let m = Manifest::new(loc, stamp.commit, stamp.code_hash, files.clone());
                        let from = from.as_ref().unwrap_or(origin);
                        self.complete_set(loc, m, from, false).await
                    }
                    _ => Ok(()),
                }
            },
            self.complete_set(sets.artifacts, manifest, origin, true)
        );
        completed?;
        unless_replaced(filled, stamp.code_hash).map(|_| ())
    }
}

/// What a publish starts with: its commit, the code hash its marker gave, its artifacts set,
/// and when it started.
struct Start<'a> {
    commit: String,
    marked: Option<String>,
    artifacts: &'a SetLocation,
    started: Instant,
}

/// The two sets a publish writes: the artifacts set, and the cache entry when it is filled.
#[derive(Clone, Copy)]
struct Sets<'a> {
    artifacts: &'a SetLocation,
    cache: Option<&'a SetLocation>,
}

/// A cache entry's files, and where they came from when not from the local files.
type Cached = (Vec<FileEntry>, Option<Origin>);

/// The cache entry a publish fills, if any; the log says why not otherwise.
fn cache_target(
    mode: CacheMode,
    code_hash: Option<&str>,
    plan: Option<Fill>,
) -> Option<SetLocation> {
    match (code_hash, plan) {
        (Some(_), Some(Fill::Into(loc))) => Some(loc),
        (_, Some(Fill::Leave(why))) => {
            log::phase(why.to_string());
            None
        }
        (Some(h), None) => {
            log::phase(format!(
                "cache is {}: not writing cache/{h}/",
                if mode == CacheMode::Off {
                    "off"
                } else {
                    "read-only"
                }
            ));
            None
        }
        (None, _) => None,
    }
}

/// A publish with nothing to do: `.found` in the package directory (the assets were found
/// or restored); `None` otherwise.
fn found_already(opts: &PublishOptions, started: Instant) -> Option<Report> {
    let dir = &opts.package_dir;
    if !assets::is_found(dir) {
        return None;
    }
    log::phase(format!(
        "{} exists: the assets were found or restored, nothing to upload",
        dir.join(assets::FOUND_MARKER).display()
    ));
    let commit = match &opts.commit {
        Some(c) => c.clone(),
        None => assets::read_commit(dir).unwrap_or_default(),
    };
    Some(skipped(commit, None, started))
}

/// The report of a publish that uploaded nothing.
fn skipped(commit: String, code_hash: Option<String>, started: Instant) -> Report {
    Report {
        commit,
        code_hash,
        outcome: Outcome::Skipped,
        files: 0,
        bytes: 0,
        moved: 0,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The report of a publish that uploaded `files` files of `bytes` in all.
fn uploaded(
    commit: String,
    code_hash: Option<String>,
    files: u64,
    bytes: u64,
    started: Instant,
) -> Report {
    Report {
        commit,
        code_hash,
        outcome: Outcome::Uploaded,
        files,
        bytes,
        moved: bytes,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// A cache fill's result: its value, or `None` (said in a warning) when a concurrent
/// publisher kept replacing the entry, which costs only the fill; any other error stands.
fn unless_replaced<T>(filled: Result<T>, code_hash: Option<&str>) -> Result<Option<T>> {
    match filled {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_concurrent_write() => {
            log::warn(not_filled(code_hash.unwrap_or_default(), &e));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The largest set whose cache entry is uploaded from the local files beside the artifacts
/// rather than copied server-side after them: about what one connection moves in a distant
/// store's round trip (100 MB/s x 80 ms).
const DIRECT_CACHE_MAX: u64 = 8 << 20;

/// Why a cache entry was left unfilled: a concurrent publisher kept replacing it (`why`, a
/// concurrent write).
fn not_filled(code_hash: &str, why: &Error) -> String {
    format!(
        "cache/{code_hash}/ not filled: {why} (a concurrent publisher); the next build fills it"
    )
}
