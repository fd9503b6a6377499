//! Fetch: download a set and verify every file (the CLI's `fetch` and the resource's `in`).

use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};

use super::{Engine, Outcome, Report, SetState};
use crate::error::{Error, Result};
use crate::layout::SetLocation;
use crate::log::{self, Progress};
use crate::manifest::{FileEntry, Manifest};

impl Engine {
    /// Downloads a complete set into `dest` and verifies every file against the manifest.
    /// Returns `None` when the set is not complete.
    pub async fn fetch(&self, commit: &str, dest: &Path) -> Result<Option<(Manifest, Report)>> {
        let started = Instant::now();
        let artifacts = self.layout.artifacts(commit);
        let m = match self.set_state(&artifacts, false).await? {
            SetState::Complete(m) => *m,
            _ => return Ok(None),
        };
        std::fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
        let total = m.total_bytes();
        log::phase(format!(
            "downloading {} files, {} from {artifacts} to {}",
            m.files.len(),
            log::bytes(total),
            dest.display()
        ));
        let (progress, guard) = Progress::start("downloaded", m.files.len() as u64, total);
        futures::stream::iter(&m.files)
            .map(|f| {
                let progress = progress.clone();
                let key = artifacts.key(&f.path);
                async move {
                    let t = Instant::now();
                    self.download_verified(&key, f, dest).await?;
                    progress.file_done(&f.path, f.size, t.elapsed());
                    Ok::<_, Error>(())
                }
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect::<()>()
            .await?;
        drop(guard);
        let report = Report {
            commit: commit.to_string(),
            code_hash: m.code_hash.clone(),
            outcome: Outcome::Found,
            files: m.files.len() as u64,
            bytes: total,
            seconds: started.elapsed().as_secs_f64(),
        };
        log::phase(format!(
            "verified {} files against the manifest (size and SHA-256)",
            m.files.len()
        ));
        Ok(Some((m, report)))
    }

    /// Downloads a legacy set (no manifest), refusing unsafe keys and checking each file's
    /// size against the listing and its SHA-256 against the `package-hash` metadata.
    pub async fn fetch_legacy(
        &self,
        loc: &SetLocation,
        objects: &[crate::store::ObjectInfo],
        dest: &Path,
    ) -> Result<()> {
        std::fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
        log::phase(format!(
            "downloading legacy set {loc}: {} objects, verified against their package-hash metadata",
            objects.len()
        ));
        futures::stream::iter(objects)
            .map(|o| async move {
                let rel = o.key.strip_prefix(loc.root()).unwrap_or(&o.key);
                crate::manifest::check_asset_path(rel).map_err(|why| {
                    Error::Verify(format!(
                        "refusing object {:?} of legacy set {loc}: unsafe path ({why})",
                        o.key
                    ))
                })?;
                let head = self.store.head(&o.key).await?;
                let sha = head
                    .and_then(|h| h.metadata.get("package-hash").cloned())
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .filter(|d| d.len() == 32)
                    .map(hex::encode);
                let entry = FileEntry {
                    path: rel.to_string(),
                    size: o.size,
                    sha256: sha.unwrap_or_default(),
                    etag: None,
                };
                let t = Instant::now();
                self.download_verified(&o.key, &entry, dest).await?;
                log::detail(format!(
                    "downloaded {rel} {} in {:.2} s",
                    log::bytes(o.size),
                    t.elapsed().as_secs_f64()
                ));
                Ok::<_, Error>(())
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect::<()>()
            .await
    }
}
