//! The version index behind the resource's `check`: one empty object per completed
//! artifacts set, keyed so that a plain listing yields the newest first.

use futures::StreamExt;

use super::{Engine, SetState};
use crate::error::Result;
use crate::log;
use crate::manifest::Manifest;
use crate::store::PutOptions;

/// How many new sets' manifests the resource's `check` asks about at once.
const LISTED_IN_FLIGHT: usize = 32;

impl Engine {
    pub(super) async fn write_index_entry(&self, commit: &str, completed_ms: u64) -> Result<()> {
        let key = self.layout.index_key(completed_ms, commit);
        self.store
            .put_bytes(&key, Vec::new(), &PutOptions::default())
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
    pub async fn versions(&self, since: Option<&str>) -> Result<Vec<String>> {
        let prefix = self.layout.index_prefix();
        let Some(since) = since else {
            return Ok(self.latest_version(&prefix).await?.into_iter().collect());
        };
        let m = match self.set_state(&self.layout.artifacts(since), false).await? {
            SetState::Complete(m) => m,
            _ => {
                log::phase(format!(
                    "version {since} no longer exists{}: reporting the latest set",
                    if self.keys.trusted.is_some() {
                        " as a trusted set"
                    } else {
                        ""
                    }
                ));
                return Ok(self.latest_version(&prefix).await?.into_iter().collect());
            }
        };
        let Some(ms) = m.completed_ms else {
            // A set completed without an index entry cannot be placed in the order.
            return Ok(vec![since.to_string()]);
        };
        let stop = self.layout.index_key(ms, since);
        let mut newer: Vec<String> = Vec::new();
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
                if let Some(c) = self.layout.index_commit(&o.key) {
                    newer.push(c.to_string());
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.key.clone()),
                _ => break,
            }
        }
        // Oldest first; a commit indexed twice (two racing publishers) counts once, at its
        // first completion. An entry is written beside its set's manifest, so each new set
        // counts only once its manifest is there (all checked at once, one round trip).
        let mut seen = std::collections::HashSet::from([since.to_string()]);
        let candidates: Vec<String> = newer
            .into_iter()
            .rev()
            .filter(|c| seen.insert(c.clone()))
            .collect();
        let listed: Vec<Result<bool>> = futures::stream::iter(candidates.iter())
            .map(|c| self.listed(c))
            .buffered(LISTED_IN_FLIGHT)
            .collect()
            .await;
        let mut out = vec![since.to_string()];
        for (c, listed) in candidates.into_iter().zip(listed) {
            if listed? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Whether an indexed commit's set counts as a version: its manifest exists (a HEAD) and,
    /// with trusted keys set, one of them signed it (which costs reading it and its signature).
    async fn listed(&self, commit: &str) -> Result<bool> {
        let loc = self.layout.artifacts(commit);
        if self.keys.trusted.is_some() {
            return Ok(matches!(
                self.set_state(&loc, false).await?,
                SetState::Complete(_)
            ));
        }
        Ok(self.store.head(&loc.manifest_key()).await?.is_some())
    }

    /// The newest indexed set whose manifest still exists (and is trusted, with trusted keys).
    async fn latest_version(&self, prefix: &str) -> Result<Option<String>> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_page(prefix, after.as_deref(), 1).await?;
            let Some(entry) = page.first() else {
                return Ok(None);
            };
            if let Some(c) = self.layout.index_commit(&entry.key) {
                if self.listed(c).await? {
                    return Ok(Some(c.to_string()));
                }
            }
            after = Some(entry.key.clone());
        }
    }
}
