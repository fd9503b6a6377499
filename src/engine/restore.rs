//! Restore and fill: server-side copies between a cache entry and an artifacts set, each
//! completed with its own manifest, written last.

use super::transfer::Origin;
use super::{Engine, SetState};
use crate::error::Result;
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::{FileEntry, Manifest};

impl Engine {
    /// Copies a complete cache entry to the artifacts set server-side, manifest last.
    pub(super) async fn restore(
        &self,
        cache: &SetLocation,
        m: &Manifest,
        artifacts: &SetLocation,
        commit: &str,
        code_hash: &str,
    ) -> Result<()> {
        log::phase(format!(
            "found {cache}: restoring {} files, {} to {artifacts} by server-side copy",
            m.files.len(),
            log::bytes(m.total_bytes())
        ));
        if self.keys.trusted.is_some() && self.keys.signing.is_none() {
            log::warn(format!(
                "restoring without a signing key: {artifacts} gets an unsigned manifest, which readers with trusted keys refuse; give this pipeline the signing key (S3AM_SIGNING_KEY, source.signing_key) to restore trusted sets"
            ));
        }
        let origin = Origin::Set {
            from: cache.clone(),
            etags: m
                .files
                .iter()
                .map(|f| (f.path.clone(), f.etag.clone()))
                .collect(),
        };
        let files = self
            .write_files(
                artifacts,
                &origin,
                &m.files,
                commit,
                Some(code_hash),
                "restored",
            )
            .await?;
        let Some(files) = self
            .converge(artifacts, &origin, files, commit, Some(code_hash))
            .await?
        else {
            return Ok(());
        };
        let manifest = Manifest::new(commit, Some(code_hash), files);
        self.complete_set(artifacts, manifest, &origin, true).await
    }

    pub(super) async fn fill_cache(
        &self,
        artifacts: &SetLocation,
        code_hash: &str,
        commit: &str,
        files: &[FileEntry],
    ) -> Result<()> {
        let cache = self.layout.cache(code_hash);
        // A fill usually finds the entry missing: list it at once.
        match self.read_state(&cache, false, true).await? {
            SetState::Complete(m) => match self.damage(&cache, &m).await? {
                None => {
                    log::phase(format!("{cache} is already complete: not rewriting it"));
                    return Ok(());
                }
                Some(problem) => log::warn(format!("{problem}; rewriting it")),
            },
            SetState::Untrusted { .. } if self.keys.signing.is_none() => {
                log::phase(format!(
                    "{cache} is not trusted, and only a signing publisher can replace it: not rewriting it"
                ));
                return Ok(());
            }
            _ => {}
        }
        let origin = Origin::Set {
            from: artifacts.clone(),
            etags: files
                .iter()
                .map(|f| (f.path.clone(), f.etag.clone()))
                .collect(),
        };
        let written = self
            .write_files(&cache, &origin, files, commit, Some(code_hash), "cached")
            .await?;
        let manifest = Manifest::new(commit, Some(code_hash), written);
        self.complete_set(&cache, manifest, &origin, false).await
    }
}
