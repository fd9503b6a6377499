//! The version index behind the resource's `check`: one empty object per completed
//! artifacts set, keyed so that a plain listing yields the newest first.

use futures::StreamExt;

use super::{Engine, SetState};
use crate::error::Result;
use crate::log;
use crate::manifest::Manifest;
use crate::store::{Body, PutOptions};

/// How many new sets' manifests the resource's `check` asks about at once.
const LISTED_IN_FLIGHT: usize = 32;

impl Engine {
    pub(super) async fn write_index_entry(&self, commit: &str, completed_ms: u64) -> Result<()> {
        let key = self.layout.index_key(completed_ms, commit);
        self.store
            .put(&key, Body::Bytes(Vec::new()), &PutOptions::default())
            .await?;
        Ok(())
    }

    /// Writes a complete set's index entry if an interrupted publish left it out.
    pub(super) async fn ensure_indexed(&self, commit: &str, m: &Manifest) -> Result<()> {
        let Some(ms) = m.completed_ms else {
            return Ok(());
        };
        if self
            .store
            .head(&self.layout.index_key(ms, commit))
            .await?
            .is_none()
        {
            log::phase(format!(
                "indexing {commit}, which was complete but not indexed"
            ));
            self.write_index_entry(commit, ms).await?;
        }
        Ok(())
    }

    /// The complete artifacts sets for the resource's `check`, oldest first: the latest only
    /// when `since` is `None`; otherwise `since` (if it still exists) and every newer set.
    ///
    /// Anyone who can write `index/` can write any key there, so an entry counts only when
    /// it names a full hex commit whose set's manifest maps to exactly that entry (its
    /// completion time and its commit). The rest are skipped, counted in one warning, and
    /// bounded: past `SKIPPED_MAX` skipped entries, the check stops looking.
    pub(crate) async fn versions(&self, since: Option<&str>) -> Result<Vec<String>> {
        let mut skipped = Skipped::default();
        let found = match since {
            None => self
                .latest_version(&mut skipped)
                .await
                .map(|v| v.into_iter().collect()),
            Some(since) => self.versions_since(since, &mut skipped).await,
        };
        skipped.report();
        found
    }

    async fn versions_since(&self, since: &str, skipped: &mut Skipped) -> Result<Vec<String>> {
        let prefix = self.layout.index_prefix();
        let m = match self.read_manifest(&self.layout.artifacts(since)).await? {
            Some(SetState::Complete(m)) => m,
            _ => {
                log::phase(format!(
                    "version {since} no longer exists{}: reporting the latest set",
                    if self.keys.trusted.is_some() {
                        " as a trusted set"
                    } else {
                        ""
                    }
                ));
                return Ok(self.latest_version(skipped).await?.into_iter().collect());
            }
        };
        let Some(ms) = m.completed_ms else {
            // A set completed without an index entry cannot be placed in the order.
            return Ok(vec![since.to_string()]);
        };
        let stop = self.layout.index_key(ms, since);
        // Every entry before `since`'s own: the newer sets, newest first.
        let mut newer: Vec<(String, String)> = Vec::new();
        let mut after: Option<String> = None;
        'pages: loop {
            let page = self
                .store
                .list_page(&prefix, after.as_deref(), 1000)
                .await?;
            for o in &page {
                if o.key >= stop {
                    break 'pages;
                }
                match self.layout.index_commit(&o.key) {
                    Some(c) if c != since => newer.push((o.key.clone(), c.to_string())),
                    Some(_) => skipped.add(),
                    None => skipped.add(),
                }
                if skipped.exhausted() {
                    break 'pages;
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.key.clone()),
                _ => break,
            }
        }
        // Oldest first. Each candidate counts only once its manifest is there and maps to
        // its entry (all read at once, 32 in flight): a commit indexed twice (racing or
        // repairing publishers) counts once, at the completion its manifest names.
        let mut out = vec![since.to_string()];
        let mut checks = futures::stream::iter(newer.iter().rev())
            .map(|(key, c)| async move { (c, self.listed(key, c).await) })
            .buffered(LISTED_IN_FLIGHT);
        while let Some((c, listed)) = checks.next().await {
            match listed? {
                true => out.push(c.clone()),
                false => skipped.add(),
            }
            if skipped.exhausted() {
                break;
            }
        }
        Ok(out)
    }

    /// Whether the index entry `key` for `commit` counts as a version: the set's manifest
    /// exists, is valid, names this place and maps to exactly this entry, and with trusted
    /// keys set, one of them signed it. One request (the manifest), two with trusted keys.
    async fn listed(&self, key: &str, commit: &str) -> Result<bool> {
        let loc = self.layout.artifacts(commit);
        Ok(match self.read_manifest(&loc).await? {
            Some(SetState::Complete(m)) => m
                .completed_ms
                .is_some_and(|ms| self.layout.index_key(ms, commit) == key),
            _ => false,
        })
    }

    /// The newest indexed set that counts (see [`Engine::listed`]): the first entry, then
    /// pages of more when it does not count.
    async fn latest_version(&self, skipped: &mut Skipped) -> Result<Option<String>> {
        let prefix = self.layout.index_prefix();
        let mut after: Option<String> = None;
        let mut page_size = 1;
        loop {
            let page = self
                .store
                .list_page(&prefix, after.as_deref(), page_size)
                .await?;
            let Some(last) = page.last() else {
                return Ok(None);
            };
            // In order, the entries of a page read at once (a page after the first holds
            // only what a skipped entry pushed down).
            let mut checks = futures::stream::iter(&page)
                .map(|entry| async move {
                    match self.layout.index_commit(&entry.key) {
                        Some(c) => self.listed(&entry.key, c).await.map(|l| l.then_some(c)),
                        None => Ok(None),
                    }
                })
                .buffered(LISTED_IN_FLIGHT);
            while let Some(listed) = checks.next().await {
                if let Some(c) = listed? {
                    return Ok(Some(c.to_string()));
                }
                skipped.add();
                if skipped.exhausted() {
                    return Ok(None);
                }
            }
            if page.len() < page_size {
                return Ok(None);
            }
            after = Some(last.key.clone());
            page_size = 1000;
        }
    }
}

/// The most index entries one `check` skips (entries that are not a complete set's: forged,
/// malformed, or left by an interrupted or racing publish) before it stops looking: each may
/// have cost a read of a manifest.
pub(super) const SKIPPED_MAX: usize = 1000;

/// The index entries a `check` skipped, for its one warning.
#[derive(Debug, Default)]
struct Skipped(usize);

impl Skipped {
    fn add(&mut self) {
        self.0 += 1;
    }

    fn exhausted(&self) -> bool {
        self.0 >= SKIPPED_MAX
    }

    fn report(&self) {
        match self.0 {
            0 => {}
            n if self.exhausted() => log::warn(format!(
                "skipped {n} index entries that are not a complete set's (malformed, forged, or left by an interrupted or racing publish) and stopped looking there: remove them from index/"
            )),
            n => log::warn(format!(
                "skipped {n} index {} that {} not a complete set's (malformed, forged, or left by an interrupted or racing publish)",
                if n == 1 { "entry" } else { "entries" },
                if n == 1 { "is" } else { "are" }
            )),
        }
    }
}
