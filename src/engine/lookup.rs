//! Lookup: find a commit's asset set, or restore it from the cache (the `check` task and the
//! resource's `put` without `path`).

use std::path::Path;
use std::time::Instant;

use super::{CacheMode, CodeHashSpec, Engine, Hashed, LookupOptions, Outcome, Report, SetState};
use crate::assets;
use crate::commit;
use crate::error::Result;
use crate::layout::SetLocation;
use crate::log;
use crate::store::ObjectInfo;

/// A cache entry read beside its set's read: the code hash that names it, its state and its
/// listing.
type CacheRead = (Hashed, SetState, Vec<ObjectInfo>);

/// Writes a marker when there is a marker directory.
fn mark(dir: Option<&Path>, name: &str, content: &str) -> Result<()> {
    match dir {
        Some(d) => assets::write_marker(d, name, content),
        None => Ok(()),
    }
}

impl Engine {
    /// The `check` task: resolve the commit, write the markers, find or restore the set.
    pub(crate) async fn lookup(&self, opts: &LookupOptions) -> Result<Report> {
        let started = Instant::now();
        let commit = commit::resolve_head(&opts.repo)?;
        if let Some(d) = opts.markers.as_deref() {
            assets::clear_markers(d)?;
        }
        mark(opts.markers.as_deref(), assets::COMMIT_MARKER, &commit)?;
        log::phase(format!("commit {commit} ({})", opts.repo.display()));
        let artifacts = self.layout.artifacts(&commit);
        let mut report = Report::new(&commit, Outcome::Missing);
        let found = |report: &mut Report, files: u64, bytes: u64| -> Result<()> {
            mark(opts.markers.as_deref(), assets::FOUND_MARKER, "")?;
            report.outcome = Outcome::Found;
            report.files = files;
            report.bytes = bytes;
            Ok(())
        };
        // The manifest and the listing at once: a set is found only when every object its
        // manifest names is there with its size, and a set without a manifest is said. With
        // caching on, the code hash is computed, and the cache entry read, beside them: a
        // set not found then costs no round trip more to find in the cache. Found, the
        // entry's read is dropped unused, and the hash stopped.
        // What the entry's read logs is kept back until the set's read has decided.
        let (held, cache_read) = log::held(async {
            match &opts.code_hash {
                Some(spec) if opts.cache != CacheMode::Off => {
                    Some(self.read_cache(opts, spec).await)
                }
                _ => None,
            }
        });
        let read = self.fetchable_state(&artifacts, opts.accept_legacy);
        tokio::pin!(cache_read, read);
        let mut cached = None;
        let state = tokio::select! {
            state = &mut read => state,
            entry = &mut cache_read => {
                cached = Some(entry);
                (&mut read).await
            }
        };
        match &state? {
            SetState::Complete(m) => {
                log::phase(format!(
                    "found {artifacts}: complete, {}, {} (created {})",
                    log::count(m.files.len() as u64, "file"),
                    log::bytes(m.total_bytes()),
                    m.created
                ));
                report.code_hash = m.code_hash.clone();
                if let Some(h) = &m.code_hash {
                    mark(opts.markers.as_deref(), assets::CODE_HASH_MARKER, h)?;
                }
                found(&mut report, m.files.len() as u64, m.total_bytes())?;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            SetState::Legacy { objects } => {
                let bytes = crate::manifest::sum_sizes(objects.iter().map(|o| o.size));
                found(&mut report, objects.len() as u64, bytes)?;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            SetState::Untrusted { .. } => {
                log::phase(format!("{artifacts} is not trusted: building it again"))
            }
            SetState::Invalid { .. } | SetState::Damaged { .. } => log::phase(format!(
                "{artifacts} is not complete: building it again (the upload repairs it)"
            )),
            SetState::Missing => log::phase(format!("{artifacts} is not complete")),
        }
        let cached = match cached {
            Some(entry) => entry,
            None => cache_read.await,
        };
        self.try_cache(opts, (cached, held), &mut report, &artifacts)
            .await?;
        if report.outcome == Outcome::Restored {
            mark(opts.markers.as_deref(), assets::FOUND_MARKER, "")?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The code hash of `opts.repo` by `spec`, and its cache entry's state with its listing
    /// (read at once), unlogged and unmarked: the lookup may find the set and need neither.
    async fn read_cache(&self, opts: &LookupOptions, spec: &CodeHashSpec) -> Result<CacheRead> {
        let hash = self.code_hash_unlogged(&opts.repo, spec).await?;
        let cache = self.layout.cache(&hash.hex);
        let (state, listing) = self.read_state_listed(&cache, false).await?;
        Ok((hash, state, listing))
    }

    /// Restores `artifacts` from a complete cache entry when caching is on and there is one
    /// (`cached`: the code hash, and the entry read beside the set's read, with the lines
    /// that read logged, kept back until now), and says so in `report`.
    async fn try_cache(
        &self,
        opts: &LookupOptions,
        (cached, held): (Option<Result<CacheRead>>, log::Held),
        report: &mut Report,
        artifacts: &SetLocation,
    ) -> Result<()> {
        let (hash, state, listing) = match (cached, &opts.code_hash) {
            (Some(read), Some(spec)) => {
                if let Ok((hash, ..)) = &read {
                    hash.log(spec);
                }
                held.release();
                let (hash, state, listing) = read?;
                (hash.hex, state, listing)
            }
            _ => {
                log::phase("caching is off: build needed");
                return Ok(());
            }
        };
        mark(opts.markers.as_deref(), assets::CODE_HASH_MARKER, &hash)?;
        report.code_hash = Some(hash.clone());
        let cache = self.layout.cache(&hash);
        match (state, listing) {
            (SetState::Complete(m), listing) => match self.damage_in(&cache, &m, &listing) {
                Some(problem) => log::warn(format!(
                    "{problem}; not restoring it: build needed (the upload rewrites the entry)"
                )),
                None => {
                    let record_use = opts.cache == CacheMode::ReadWrite;
                    if let Err(e) = self.restore(&cache, &m, artifacts, record_use).await {
                        // A prune (or a lifecycle rule) may have removed the entry while
                        // it was copied: then the build runs, as if it had never been.
                        if let SetState::Complete(_) = self.fetchable_state(&cache, false).await? {
                            return Err(e);
                        }
                        log::warn(format!(
                            "{cache} went away while it was restored ({e}): build needed"
                        ));
                        return Ok(());
                    }
                    report.outcome = Outcome::Restored;
                    report.files = m.files.len() as u64;
                    report.bytes = m.total_bytes();
                    report.moved = m.total_bytes();
                    return Ok(());
                }
            },
            (SetState::Untrusted { .. }, _) => {
                log::phase(format!("not restoring the untrusted {cache}: build needed"))
            }
            _ => log::phase(format!("no complete cache entry {cache}: build needed")),
        }
        Ok(())
    }
}
