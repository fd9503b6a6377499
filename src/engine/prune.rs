//! Deleting sets: `delete` one set, `prune` by age, count and size.
//!
//! Every removal goes in the order that keeps readers safe: first the manifests (with their
//! signatures and index entries), and only once every one of them is gone, the objects. A
//! removal that fails part-way leaves each set complete, or without its manifest: never a
//! manifest whose objects are gone. Readers check a set's objects against its manifest
//! anyway (found means fetchable), so a prune racing a publish can cost a rebuild, never a
//! deploy of a broken set.

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use super::catalog::{CatalogOptions, IndexEntry, Kind, Listed, SetSummary, DIGITS};
use super::Engine;
use crate::error::Result;
use crate::layout::SetLocation;
use crate::log;
use crate::manifest::sum_sizes;
use crate::signing;
use crate::store::{PendingUpload, DELETE_BATCH};

/// Delete requests (of up to 1,000 keys each) in flight at once.
const DELETES_IN_FLIGHT: usize = 8;

/// Aborts of unfinished uploads in flight at once.
const ABORTS_IN_FLIGHT: usize = 16;
/// HEAD requests at once, asking who wrote a set without a manifest.
const HEADS_IN_FLIGHT: usize = 32;

/// What a prune removes; `None` and 0 prune nothing of their kind.
#[derive(Debug, Clone)]
pub(crate) struct PruneOptions {
    /// Artifacts sets completed longer ago than this.
    pub max_age: Option<Duration>,
    /// The newest artifacts sets never pruned.
    pub keep_last: usize,
    /// Cache entries neither written nor restored from within this.
    pub cache_max_unused: Option<Duration>,
    /// Least recently used cache entries, until the cache fits in this many bytes.
    pub cache_max_size: Option<u64>,
    /// Sets without a manifest, index entries of sets that are gone, and unfinished
    /// uploads, untouched for longer than this (never anything younger).
    pub incomplete_max_age: Duration,
    /// Count artifacts sets without a manifest as legacy sets (aged like complete ones).
    pub accept_legacy: bool,
}

/// The default of [`PruneOptions::incomplete_max_age`]: a day.
pub(crate) const INCOMPLETE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A set a prune removes, or keeps, and why.
#[derive(Debug, Clone)]
pub(crate) struct Removal {
    /// The set.
    pub set: SetSummary,
    /// Why it goes or stays.
    pub why: Why,
}

/// Whether a set goes or stays, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// It goes.
    Remove(Why),
    /// It stays.
    Keep(Why),
}

/// What a prune will do.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// The sets that go.
    pub remove: Vec<Removal>,
    /// The sets that stay.
    pub keep: Vec<Removal>,
    /// Index entries that go: those of removed sets, and those of sets that are gone.
    pub index: Vec<IndexEntry>,
    /// Unfinished uploads that are aborted.
    pub uploads: Vec<PendingUpload>,
}

impl Plan {
    /// The bytes the removed sets hold (their objects as listed).
    pub(crate) fn bytes(&self) -> u64 {
        sum_sizes(self.remove.iter().map(|r| r.set.stored_bytes()))
    }
}

/// What a removal deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deleted {
    /// Sets.
    pub sets: u64,
    /// Objects (manifests, signatures and index entries included).
    pub objects: u64,
    /// Bytes of the sets' objects.
    pub bytes: u64,
    /// Unfinished uploads aborted.
    pub uploads: u64,
}

/// A duration as a person reads it: `90s`, `30m`, `12h`, `7d`.
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// How long ago `ms` was, at `now_ms`.
fn since(now_ms: u64, ms: Option<u64>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(now_ms.saturating_sub(ms)))
}

impl Engine {
    /// Decides what a prune at `now_ms` removes: from listings (about one request per 1,000
    /// objects, and one per 1,000 unfinished uploads) and every set's manifest, read and
    /// verified (one request per set; two with trusted keys). Only a verified set counts as
    /// complete: one that is not (and with trusted keys, one no trusted key signed) never
    /// takes a complete set's place in the `--keep-last` window or the cache's size and
    /// order, and is aged as an incomplete set is. Age and order come from the manifest's
    /// `completed_ms` (signed where keys are set), not from when the store says it was written.
    pub(crate) async fn plan_prune(&self, opts: &PruneOptions, now_ms: u64) -> Result<Plan> {
        let catalog = CatalogOptions {
            verify: true,
            accept_legacy: opts.accept_legacy,
            index: true,
        };
        let (catalog, uploads) = tokio::join!(self.catalog(catalog), self.pending_uploads());
        let (catalog, uploads) = (catalog?, uploads?);
        let mut plan = Plan::default();
        let mut newest_kept = 0;
        let mut cache = Vec::new();
        // Newest first: the first `keep_last` artifacts sets are the newest.
        // Legacy sets are refused by readers where trusted keys are set: aged, never counted
        // among the newest.
        let legacy_counts = self.keys.trusted.is_none();
        for set in catalog.sets {
            let decision = match (set.kind, set.state) {
                (
                    _,
                    Listed::Incomplete
                    | Listed::Damaged
                    | Listed::Untrusted
                    | Listed::Invalid
                    | Listed::Unverified,
                ) => not_complete(&set, opts, now_ms),
                (Kind::Artifacts, Listed::Complete | Listed::Legacy)
                    if newest_kept < opts.keep_last
                        && (set.state == Listed::Complete || legacy_counts) =>
                {
                    newest_kept += 1;
                    Decision::Keep(Why::Newest {
                        keep_last: opts.keep_last,
                    })
                }
                (Kind::Artifacts, _) => artifacts(&set, opts, now_ms),
                (Kind::Cache, _) => match unused(&set, opts, now_ms) {
                    Decision::Remove(why) => Decision::Remove(why),
                    // Kept unless the cache is over its size: decided below, by last use.
                    Decision::Keep(why) => {
                        cache.push(Removal { set, why });
                        continue;
                    }
                },
            };
            match decision {
                Decision::Remove(why) => plan.remove.push(Removal { set, why }),
                Decision::Keep(why) => plan.keep.push(Removal { set, why }),
            }
        }
        least_recently_used(&mut plan, cache, opts.cache_max_size, now_ms);
        self.keep_what_others_wrote(&mut plan).await?;
        let removed: HashSet<&str> = plan
            .remove
            .iter()
            .filter(|r| r.set.kind == Kind::Artifacts)
            .map(|r| r.set.id())
            .collect();
        let standing: HashSet<&str> = plan
            .keep
            .iter()
            .filter(|r| r.set.kind == Kind::Artifacts && r.set.has_manifest)
            .map(|r| r.set.id())
            .collect();
        let old = |ms: Option<u64>| since(now_ms, ms).is_some_and(|a| a > opts.incomplete_max_age);
        plan.index = catalog
            .index
            .into_iter()
            .filter(|e| {
                removed.contains(e.commit.as_str())
                    || (!standing.contains(e.commit.as_str()) && old(Some(e.completed_ms)))
            })
            .collect();
        plan.uploads = uploads.into_iter().filter(|u| old(u.started_ms)).collect();
        Ok(plan)
    }

    /// Moves each set the plan removes as not complete (no manifest, or one that does not
    /// count) to the kept unless this tool wrote every one of its objects: every object it
    /// writes carries its `publisher-id`, so a set with one object without it is the
    /// original tool's (a legacy set, which deploys may still point at) or another tool's,
    /// never only what an interrupted upload of this one left, however many objects with a
    /// `publisher-id` were planted beside it. One HEAD per object of such a set, stopping at
    /// the first without; with `--accept-legacy` manifest-less sets are legacy sets, aged as
    /// such, and never get here.
    async fn keep_what_others_wrote(&self, plan: &mut Plan) -> Result<()> {
        let not_complete = |r: &Removal| !matches!(r.set.state, Listed::Complete | Listed::Legacy);
        // Every object of the set but its manifest, signatures and `.last-used` record.
        let heads: Vec<(usize, String)> = (plan.remove.iter().enumerate())
            .filter(|(_, r)| not_complete(r))
            .flat_map(|(i, r)| {
                let loc = &r.set.loc;
                (r.set.objects.iter())
                    .filter(|o| {
                        o.key != loc.manifest_key()
                            && o.key != loc.last_used_key()
                            && !signing::is_signature_key(loc, &o.key)
                    })
                    .map(move |o| (i, o.key.clone()))
            })
            .collect();
        let others = std::sync::Mutex::new(HashSet::new());
        futures::stream::iter(heads)
            .map(|(i, key)| {
                let others = &others;
                async move {
                    if others.lock().expect("not poisoned").contains(&i) {
                        return Ok(());
                    }
                    let head = self.store.head(&key).await?;
                    // Gone since the listing: nothing of it to keep.
                    if head
                        .is_some_and(|h| !h.metadata.contains_key(crate::layout::meta::PUBLISHER))
                    {
                        others.lock().expect("not poisoned").insert(i);
                    }
                    Ok::<_, crate::error::Error>(())
                }
            })
            .buffer_unordered(HEADS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        let others = others.into_inner().expect("not poisoned");
        if others.is_empty() {
            return Ok(());
        }
        let (mut kept, mut removed) = (Vec::new(), Vec::new());
        for (i, r) in std::mem::take(&mut plan.remove).into_iter().enumerate() {
            if !others.contains(&i) {
                removed.push(r);
                continue;
            }
            let why = Why::OthersWrote {
                manifest: r.set.has_manifest.then_some(r.set.state),
            };
            kept.push(Removal { why, ..r });
        }
        plan.remove = removed;
        plan.keep.extend(kept);
        Ok(())
    }

    /// The unfinished uploads of keys this layout writes, `artifacts/` and `cache/`: at the
    /// bucket root the prefix is empty, and would take in other prefixes' uploads, and any
    /// other tool's in the bucket.
    async fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        let (artifacts, cache) = (self.layout.artifacts_prefix(), self.layout.cache_prefix());
        let (artifacts, cache) = tokio::join!(
            self.store.pending_uploads(&artifacts),
            self.store.pending_uploads(&cache)
        );
        let mut all = artifacts?;
        all.extend(cache?);
        // Not another prefix's, below what this layout takes for a set's place.
        let (artifacts, cache) = (self.layout.artifacts_prefix(), self.layout.cache_prefix());
        all.retain(|u| {
            let rest = u
                .key
                .strip_prefix(&artifacts)
                .or(u.key.strip_prefix(&cache));
            let rel = rest.and_then(|r| r.split_once('/')).map(|(_, rel)| rel);
            !rel.is_some_and(crate::layout::is_foreign_tree)
        });
        // The local store's temporary files answer every prefix: each once.
        all.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        all.dedup_by(|a, b| (&a.key, &a.id) == (&b.key, &b.id));
        Ok(all)
    }

    /// Carries out `plan`: manifests first, then objects, then unfinished uploads.
    pub(crate) async fn prune(&self, plan: &Plan) -> Result<Deleted> {
        let sets: Vec<&SetSummary> = plan.remove.iter().map(|r| &r.set).collect();
        let index = plan.index.iter().map(|e| e.key.clone()).collect();
        let mut deleted = self.remove(&sets, index, Removing::Prune).await?;
        futures::stream::iter(&plan.uploads)
            .map(|u| self.store.abort_upload(u))
            .buffer_unordered(ABORTS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        deleted.uploads = plan.uploads.len() as u64;
        Ok(deleted)
    }

    /// Deletes the set at `loc` (manifest, signature and index entries first, then its
    /// objects); `None` when nothing is there.
    pub(crate) async fn delete_set(&self, loc: &SetLocation) -> Result<Option<Deleted>> {
        let opts = CatalogOptions::default();
        let (summary, index) = tokio::join!(self.summary(loc, opts), async {
            match loc.is_cache() {
                true => Ok(Vec::new()),
                false => self.list_spread(self.layout.index_prefix(), DIGITS).await,
            }
        });
        let Some(summary) = summary? else {
            return Ok(None);
        };
        let index = index?
            .into_iter()
            .filter(|o| self.layout.index_commit(&o.key) == Some(loc.id()))
            .map(|o| o.key)
            .collect();
        self.remove(&[&summary], index, Removing::Delete)
            .await
            .map(Some)
    }

    /// Deletes `sets` and the index entries `index`: every manifest, signature and index
    /// entry first, and only once all of them are gone, the objects. A failure says what a
    /// second run of `by` does with what is left.
    async fn remove(
        &self,
        sets: &[&SetSummary],
        index: Vec<String>,
        by: Removing,
    ) -> Result<Deleted> {
        let first_wave = |s: &SetSummary, key: &str| {
            key == s.loc.manifest_key() || signing::is_signature_key(&s.loc, key)
        };
        let mut manifests: Vec<String> = index;
        let mut objects: Vec<String> = Vec::new();
        for s in sets {
            for o in &s.objects {
                match first_wave(s, &o.key) {
                    true => manifests.push(o.key.clone()),
                    false => objects.push(o.key.clone()),
                }
            }
        }
        let n = sets.iter().filter(|s| s.has_manifest).count() as u64;
        if n > 0 {
            log::phase(format!(
                "deleting {} first, with their signatures and index entries",
                log::count(n, "manifest")
            ));
        }
        let again = "no set lost an object; run it again";
        self.delete_keys(&manifests)
            .await
            .map_err(|e| e.advise(again))?;
        // What goes is on stdout already (the plan, or `delete`'s last line).
        self.delete_keys(&objects)
            .await
            .map_err(|e| e.advise(by.objects_failed()))?;
        Ok(Deleted {
            sets: sets.len() as u64,
            objects: (manifests.len() + objects.len()) as u64,
            bytes: sum_sizes(sets.iter().map(|s| s.stored_bytes())),
            uploads: 0,
        })
    }

    /// Deletes `keys` in batches of [`DELETE_BATCH`], [`DELETES_IN_FLIGHT`] at once.
    async fn delete_keys(&self, keys: &[String]) -> Result<()> {
        futures::stream::iter(keys.chunks(DELETE_BATCH))
            .map(|batch| self.store.delete(batch))
            .buffer_unordered(DELETES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// What removes sets: a prune, or `delete`.
#[derive(Clone, Copy)]
enum Removing {
    Prune,
    Delete,
}

impl Removing {
    /// What to do when the objects of sets whose manifests went could not all be deleted.
    fn objects_failed(self) -> &'static str {
        match self {
            Removing::Prune => "the sets' manifests went first, so no reader counts what is left; a prune removes it once it is older than --incomplete-max-age, or `delete` at once",
            Removing::Delete => "its manifest went first, so no reader counts what is left; run `delete` again to remove it",
        }
    }
}

/// Whether a set that is not complete goes: one without a manifest (an interrupted upload,
/// or one under way) or one whose manifest does not count (damaged, untrusted or invalid),
/// aged alike by its newest object. Such a set never counts among the newest or in the
/// cache's size.
fn not_complete(set: &SetSummary, opts: &PruneOptions, now_ms: u64) -> Decision {
    let what = match set.has_manifest {
        false => Incomplete::NoManifest,
        true => Incomplete::Manifest {
            state: set.state,
            why: set.why.clone(),
        },
    };
    let limit = opts.incomplete_max_age;
    match since(now_ms, set.newest_ms) {
        Some(age) if age > limit => Decision::Remove(Why::IncompleteOld { what, age, limit }),
        Some(age) => Decision::Keep(Why::IncompleteYoung { what, age, limit }),
        None => Decision::Keep(Why::IncompleteUntimed { what }),
    }
}

/// Whether an artifacts set (complete, or legacy) goes by age.
fn artifacts(set: &SetSummary, opts: &PruneOptions, now_ms: u64) -> Decision {
    let legacy = set.state == Listed::Legacy;
    match (since(now_ms, set.age_from_ms()), opts.max_age) {
        (Some(age), Some(max)) if age > max => {
            Decision::Remove(Why::PastMaxAge { legacy, age, max })
        }
        (Some(age), Some(max)) => Decision::Keep(Why::WithinMaxAge { legacy, age, max }),
        (Some(age), None) => Decision::Keep(Why::NoMaxAge { legacy, age }),
        (None, _) => Decision::Keep(Why::Untimed),
    }
}

/// Whether a cache entry goes for being unused.
fn unused(set: &SetSummary, opts: &PruneOptions, now_ms: u64) -> Decision {
    match (
        since(now_ms, set.last_used_ms.or(set.newest_ms)),
        opts.cache_max_unused,
    ) {
        (Some(age), Some(max)) if age > max => Decision::Remove(Why::Unused { age, max }),
        (Some(age), _) => Decision::Keep(Why::Used { age }),
        (None, _) => Decision::Keep(Why::Untimed),
    }
}

/// Of the cache entries not removed yet (`cache`, most recently used first), the least
/// recently used go until the rest fit in `max_size`.
fn least_recently_used(
    plan: &mut Plan,
    mut cache: Vec<Removal>,
    max_size: Option<u64>,
    now_ms: u64,
) {
    cache.sort_by_key(|r| std::cmp::Reverse(r.set.last_used_ms.or(r.set.newest_ms)));
    let mut total = 0u64;
    for mut r in cache {
        total = total.saturating_add(r.set.bytes);
        match max_size {
            Some(max_size) if total > max_size => {
                r.why = Why::OverCacheSize {
                    last_used: since(now_ms, r.set.last_used_ms.or(r.set.newest_ms)),
                    max_size,
                };
                plan.remove.push(r);
            }
            _ => plan.keep.push(r),
        }
    }
}

mod why;

pub(crate) use why::{Incomplete, Why};

#[cfg(test)]
mod tests;
