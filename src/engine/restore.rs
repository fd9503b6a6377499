//! Restore and fill: a cache entry copied server-side into an artifacts set, and the cache
//! side of a publish (whether to fill the entry; copying a large set into it). Each set is
//! completed with its own manifest, written last.

use super::transfer::{Origin, Stamp};
use super::{Engine, SetState};
use crate::error::Result;
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::{FileEntry, Manifest};
use crate::store::{Body, PutOptions};

impl Engine {
    /// Copies a complete cache entry to the artifacts set server-side, manifest last. The
    /// places name the commit and the code hash the objects are stamped with. With
    /// `record_use` (a read-write pipeline), the entry's last use is recorded beside the
    /// copies: an empty object, `.last-used`, whose time a listing shows.
    pub(super) async fn restore(
        &self,
        cache: &SetLocation,
        m: &Manifest,
        artifacts: &SetLocation,
        record_use: bool,
    ) -> Result<()> {
        log::phase(format!(
            "found {cache}: restoring {}, {} to {artifacts} by server-side copy",
            log::count(m.files.len() as u64, "file"),
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
        self.start_probe();
        let stamp = Stamp::of(artifacts, cache);
        let record = async {
            if !record_use {
                return;
            }
            let key = cache.last_used_key();
            if let Err(e) = self
                .store
                .put(&key, Body::Bytes(Vec::new()), &PutOptions::default())
                .await
            {
                log::warn(format!(
                    "could not record this use of {cache} ({e}): a prune by --cache-max-unused may take it as unused"
                ));
            }
        };
        let (files, ()) = tokio::join!(
            self.write_files(artifacts, &origin, &m.files, stamp, "restored"),
            record
        );
        let files = files?;
        let manifest = Manifest::new(artifacts, stamp.commit, stamp.code_hash, files);
        self.complete_set(artifacts, manifest, &origin, true).await
    }

    /// Whether a publish should fill the cache entry for `code_hash`: into its location when
    /// the entry is missing or damaged (or untrusted, for a signing publisher); otherwise
    /// why not.
    pub(super) async fn cache_to_fill(&self, code_hash: &str) -> Result<Fill> {
        let cache = self.layout.cache(code_hash);
        // A fill usually finds the entry missing: list it at once.
        match self.read_state_listed(&cache, false).await? {
            (SetState::Complete(m), listing) => match self.damage_in(&cache, &m, &listing) {
                None => return Ok(Fill::Leave(Unfilled::Complete(cache))),
                Some(problem) => log::warn(format!("{problem}; rewriting it")),
            },
            (SetState::Untrusted { .. }, _) if self.keys.signing.is_none() => {
                return Ok(Fill::Leave(Unfilled::Untrusted(cache)));
            }
            _ => {}
        }
        Ok(Fill::Into(cache))
    }

    /// Copies the artifacts just written (`files`) to the cache entry `cache`, server-side:
    /// the copied files, and where they came from for a repair. The places name the commit
    /// and the code hash the copies are stamped with.
    pub(super) async fn copy_to_cache(
        &self,
        artifacts: &SetLocation,
        cache: &SetLocation,
        files: &[FileEntry],
    ) -> Result<(Vec<FileEntry>, Origin)> {
        let origin = Origin::Set {
            from: artifacts.clone(),
            etags: files
                .iter()
                .map(|f| (f.path.clone(), f.etag.clone()))
                .collect(),
        };
        let written = self
            .write_files(cache, &origin, files, Stamp::of(artifacts, cache), "cached")
            .await?;
        Ok((written, origin))
    }
}

/// Whether a publish fills a cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fill {
    /// Fill the entry there: it is missing or damaged, or untrusted and this publisher signs.
    Into(SetLocation),
    /// Leave it as it is, for this reason.
    Leave(Unfilled),
}

/// Why a publish leaves a cache entry as it is; `Display` is the line the log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unfilled {
    /// It is complete already.
    Complete(SetLocation),
    /// It is not trusted, and this publisher holds no signing key to replace it.
    Untrusted(SetLocation),
}

impl std::fmt::Display for Unfilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfilled::Complete(cache) => write!(f, "{cache} is already complete: not rewriting it"),
            Unfilled::Untrusted(cache) => write!(
                f,
                "{cache} is not trusted, and only a signing publisher can replace it: not rewriting it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

    /// Each reason a publish leaves a cache entry reads as the log line always read.
    #[test]
    fn an_unfilled_entry_says_why() {
        let cache = Layout::new("team").unwrap().cache("abc");
        assert_eq!(
            Unfilled::Complete(cache.clone()).to_string(),
            "team/cache/abc/ is already complete: not rewriting it"
        );
        assert_eq!(
            Unfilled::Untrusted(cache).to_string(),
            "team/cache/abc/ is not trusted, and only a signing publisher can replace it: not rewriting it"
        );
    }
}
