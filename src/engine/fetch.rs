//! Fetch: download a set and verify every file (the CLI's `fetch` and the resource's `in`).

use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};

use super::{Engine, Outcome, Report, SetState};
use crate::beneath::{Dir, Tree};
use crate::error::{Error, RefusedKind, Result};
use crate::layout::{meta, SetLocation};
use crate::log;
use crate::manifest::{FileEntry, Manifest};
use crate::store::ObjectInfo;

impl Engine {
    /// Downloads the commit's set into `dest`, verified: a complete set against its manifest;
    /// with `accept_legacy`, a legacy set (no manifest) against each object's `package-hash`.
    /// Returns `None` when there is no such set.
    pub(crate) async fn fetch(
        &self,
        commit: &str,
        dest: &Path,
        accept_legacy: bool,
    ) -> Result<Option<Report>> {
        let artifacts = self.layout.artifacts(commit);
        let state = self.set_state(&artifacts, accept_legacy).await?;
        self.download(commit, state, dest).await
    }

    /// Downloads the set in `state` into `dest`, verified; `None` when the state is `Missing`.
    ///
    /// `state` comes without a listing ([`Engine::set_state`] reads the manifest alone): the
    /// downloads start at once, and the set is listed beside them (found means fetchable). No
    /// file is renamed into place before that listing shows every object the manifest names,
    /// so a damaged set is refused with the line that says how, and leaves no file behind.
    pub(crate) async fn download(
        &self,
        commit: &str,
        state: SetState,
        dest: &Path,
    ) -> Result<Option<Report>> {
        let started = Instant::now();
        let artifacts = self.layout.artifacts(commit);
        match &state {
            SetState::Untrusted { why, .. } => return Err(refuse_untrusted(&artifacts, why)),
            SetState::Invalid { why } => return Err(refuse_invalid(&artifacts, why)),
            SetState::Damaged { why, .. } => return Err(refuse_damaged(&artifacts, why)),
            _ => {}
        }
        let Some(mut report) = found_report(commit, &state) else {
            return Ok(None);
        };
        // The manifest's bytes, read and parsed, are freed by now.
        super::release_freed_memory();
        // A complete set's files are its manifest's (not copied: 50,000 entries are megabytes).
        let (legacy, source, manifest) = match state {
            SetState::Complete(m) => {
                log::phase(format!(
                    "downloading {}, {} from {artifacts} to {}",
                    log::count(m.files.len() as u64, "file"),
                    log::bytes(report.bytes),
                    dest.display()
                ));
                (Vec::new(), "the manifest", Some(m))
            }
            SetState::Legacy { objects } => {
                let files = self.legacy_entries(&artifacts, &objects).await?;
                log::phase(format!(
                    "downloading legacy set {artifacts}: {}, {} to {}, verified against their package-hash metadata",
                    log::count(files.len() as u64, "file"),
                    log::bytes(report.bytes),
                    dest.display()
                ));
                (files, "their package-hash metadata", None)
            }
            SetState::Untrusted { .. }
            | SetState::Invalid { .. }
            | SetState::Damaged { .. }
            | SetState::Missing => return Ok(None),
        };
        let files: &[FileEntry] = match &manifest {
            Some(m) => &m.files,
            None => &legacy,
        };
        let unverified = files.iter().filter(|f| !f.sha256.is_known()).count();
        if unverified > 0 {
            log::warn(format!(
                "{unverified} of {} objects of {artifacts} carry no package-hash metadata: those are checked by size only",
                files.len()
            ));
        }
        // Opened once: everything below it is created and opened from this handle, never
        // through a link (the destination itself may be one: the user named it).
        std::fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
        let dest = Dir::open_root(dest, Tree::Destination)
            .map_err(|e| Error::io("cannot open", dest, e))?;
        let tracker = crate::sink::Tracker::new();
        let downloaded = self
            .download_gated(&artifacts, manifest.as_deref(), files, dest, &tracker)
            .await;
        // The downloads are dropped by now, their tasks told to stop; the error goes back only
        // once every task has ended and every temporary file is gone, so that nothing of a
        // refused set appears after the caller has cleaned up (the resource's `get`).
        tracker.settled().await;
        downloaded?;
        log::phase(verified_line(files.len(), unverified, source));
        report.moved = report.bytes;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(Some(report))
    }

    /// The downloads of `files` beside the listing that judges the set's damage (a legacy
    /// set, without `manifest`, has none to judge): no file is renamed into place before the
    /// listing shows every object the manifest names; a download that fails first waits for
    /// the listing, which says how the set is damaged when it is.
    async fn download_gated(
        &self,
        artifacts: &SetLocation,
        manifest: Option<&Manifest>,
        files: &[FileEntry],
        dest: Dir,
        tracker: &crate::sink::Tracker,
    ) -> Result<()> {
        let (undamaged, gate) = tokio::sync::watch::channel(false);
        let listed = async {
            if let Some(m) = manifest {
                if let Some(why) = self.damage(artifacts, m).await? {
                    return Err(refuse_damaged(artifacts, &why));
                }
            }
            let _ = undamaged.send(true);
            Ok(())
        };
        let downloads = self.download_files(artifacts, files, dest, gate, tracker.token());
        tokio::pin!(listed, downloads);
        let mut listing_done = false;
        loop {
            tokio::select! {
                r = &mut listed, if !listing_done => {
                    r?;
                    listing_done = true;
                }
                r = &mut downloads => {
                    if let Err(e) = r {
                        // A missing or changed object: the listing says how the set is
                        // damaged, when it is.
                        if !listing_done {
                            listed.await?;
                        }
                        return Err(e);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// The entries of a legacy set: each object's path (refused when unsafe), its listed size,
    /// and the SHA-256 in its `package-hash` metadata (empty when it has none).
    async fn legacy_entries(
        &self,
        loc: &SetLocation,
        objects: &[ObjectInfo],
    ) -> Result<Vec<FileEntry>> {
        futures::stream::iter(objects)
            .map(|o| async move {
                let rel = o.key.strip_prefix(loc.root()).unwrap_or(&o.key);
                crate::manifest::check_asset_path(rel).map_err(|why| {
                    Error::Corrupt(format!(
                        "refusing object {:?} of legacy set {loc}: unsafe path ({why})",
                        o.key
                    ))
                })?;
                let sha = self
                    .store
                    .head(&o.key)
                    .await?
                    .and_then(|h| h.metadata.get(meta::PACKAGE_HASH).cloned())
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|d| <[u8; 32]>::try_from(d).ok())
                    .map(crate::manifest::Sha256Hex::from);
                Ok::<_, Error>(FileEntry {
                    path: rel.to_string(),
                    size: o.size,
                    sha256: sha.unwrap_or_default(),
                    etag: None,
                    pieces: None,
                })
            })
            .buffered(self.tuning.concurrency.max(1))
            .try_collect()
            .await
    }
}

/// What a found set holds, as a report with nothing moved yet; `None` when it is missing.
pub(crate) fn found_report(commit: &str, state: &SetState) -> Option<Report> {
    let mut r = Report::new(commit, Outcome::Found);
    match state {
        SetState::Complete(m) => {
            r.code_hash = m.code_hash.clone();
            r.files = m.files.len() as u64;
            r.bytes = m.total_bytes();
        }
        SetState::Legacy { objects } => {
            r.files = objects.len() as u64;
            r.bytes = crate::manifest::sum_sizes(objects.iter().map(|o| o.size));
        }
        SetState::Untrusted { .. }
        | SetState::Invalid { .. }
        | SetState::Damaged { .. }
        | SetState::Missing => return None,
    }
    Some(r)
}

/// The error for a set whose manifest is not its own (copied from another place) or breaks
/// the format: a reader never takes it.
pub(crate) fn refuse_invalid(loc: &SetLocation, why: &str) -> Error {
    Error::refused(
        RefusedKind::Invalid,
        format!("{why}: refusing {loc}; publish the set again"),
    )
}

/// The error for a set whose objects no longer match its manifest: found means fetchable.
pub(crate) fn refuse_damaged(loc: &SetLocation, why: &str) -> Error {
    Error::refused(
        RefusedKind::Damaged,
        format!("{why}: refusing {loc}; publish the set again (the upload repairs it)"),
    )
}

/// The error for a set whose manifest no trusted key signed: a reader never takes it.
pub(crate) fn refuse_untrusted(loc: &SetLocation, why: &str) -> Error {
    Error::refused(RefusedKind::Untrusted, format!(
        "refusing {loc}: {why}; with trusted keys set, only sets signed by one of them count: publish it again from a pipeline that holds a trusted signing key"
    ))
}

/// What a download verified, in one line: `count` files against `source`, `unverified` of
/// them (without a SHA-256) by size only.
fn verified_line(count: usize, unverified: usize, source: &str) -> String {
    match unverified {
        0 => format!(
            "verified {} against {source} (size and SHA-256)",
            log::count(count as u64, "file")
        ),
        n if n == count => {
            format!(
                "checked {} by size only: none has package-hash metadata",
                log::count(n as u64, "file")
            )
        }
        n => format!(
            "verified {}: size for all, SHA-256 for the {} with package-hash metadata",
            log::count(count as u64, "file"),
            count - n
        ),
    }
}
