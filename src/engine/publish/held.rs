//! A publish that writes beside its read of the set, held: every file's write starts at
//! once, and its object appears only once the read has said to write the set. Far from the
//! store, the read and the writes' start no longer wait for each other.

use super::*;
use crate::store::Hold;

impl Engine {
    /// A publish that holds its writes: every file is written under a [`Hold`] beside the
    /// read of the set (and of the cache entry it may fill). A small file's request goes at
    /// once, its body kept back until the read has said to write the set; a large file's
    /// parts go at once, and its upload completes only then. A small set's cache entry is
    /// written from the local files the same way, under a hold of its own that the read of
    /// the entry decides; a larger one is copied server-side after the artifacts. A set the
    /// read finds complete (or one this publisher may not replace) withdraws them all: bodies
    /// kept back are cut off, uploads are aborted, and nothing appears, so the late-publisher
    /// safety holds as when the read came first.
    pub(super) async fn publish_held(
        &self,
        opts: &PublishOptions,
        files: Vec<Asset>,
        start: Start<'_>,
    ) -> Result<Report> {
        let Start {
            commit,
            marked,
            artifacts,
            started,
        } = start;
        // The objects are stamped with the code hash: it comes first (it is local work).
        let code_hash = self.publish_code_hash(opts, marked.clone()).await?;
        // A small set's cache entry is written beside the artifacts, from the same files:
        // sending its bytes twice costs less than the round trip a server-side copy waits for.
        let total = crate::manifest::sum_sizes(files.iter().map(|a| a.size));
        let direct = code_hash
            .as_deref()
            .filter(|_| opts.cache == CacheMode::ReadWrite && total <= DIRECT_CACHE_MAX)
            .map(|h| self.layout.cache(h));
        let (decide, hold) = Hold::new();
        let (decide_cache, cache_hold) = Hold::new();
        let stamp = Stamp {
            commit: &commit,
            code_hash: code_hash.as_deref(),
            repair: false,
            hold: Some(&hold),
        };
        let count = files.len();
        let direct_to = direct.as_ref();
        let read = async move {
            let (state, fill) = tokio::join!(
                self.read_state_listed(artifacts, opts.accept_legacy),
                self.fill_plan(opts, stamp.code_hash)
            );
            // An error drops `decide` and `decide_cache`, which withdraws the writes.
            let (state, listing) = state?;
            let fill = fill?;
            let go = self.replaces(artifacts, state, &listing).await?;
            let cache = match go {
                true => cache_target(opts.cache, stamp.code_hash, fill),
                false => None,
            };
            if go {
                self.say_uploading(count, total, artifacts);
            }
            // The cache entry's writes appear where the read found it to fill.
            decide_cache.decide(cache.is_some() && cache.as_ref() == direct_to);
            decide.decide(go);
            Ok::<_, Error>((go, cache))
        };
        let write = async move {
            let (entries, origin, total) = self.prepare(&files, &opts.package_dir).await?;
            // What each file needs from here on is in its entry and the origin. A set of
            // 50,000 files that held its list through the upload peaked at 67-68 MB RSS
            // (TOKIO_WORKER_THREADS=32, loopback), against 60-62 MB without it.
            drop(files);
            super::super::release_freed_memory();
            self.start_probe();
            let cache_stamp = Stamp {
                hold: Some(&cache_hold),
                ..stamp
            };
            let (written, cached) = tokio::join!(
                self.write_files(artifacts, &origin, &entries, stamp, "uploaded"),
                async {
                    match direct_to {
                        Some(loc) => Some(
                            self.write_files(loc, &origin, &entries, cache_stamp, "cached")
                                .await,
                        ),
                        None => None,
                    }
                }
            );
            Ok::<_, Error>((written, cached, origin, total))
        };
        let (decided, wrote) = tokio::join!(read, write);
        let (go, cache) = decided?;
        if !go {
            return Ok(skipped(commit, marked, started));
        }
        let (written, cached_direct, origin, total) = wrote?;
        let written = written?;
        let count = count as u64;
        super::super::release_freed_memory();
        let stamp = Stamp {
            hold: None,
            ..stamp
        };
        let copied = match (&cache, cached_direct) {
            (Some(loc), _) if Some(loc) != direct_to => Some(
                self.copy_to_cache(artifacts, loc, &written)
                    .await
                    .map(|(f, from)| (f, Some(from))),
            ),
            (Some(_), Some(files)) => Some(files.map(|f| (f, None))),
            _ => None,
        };
        let cached = copied
            .map(|r| unless_replaced(r, stamp.code_hash))
            .transpose()?
            .flatten();
        let sets = Sets {
            artifacts,
            cache: cache.as_ref(),
        };
        self.complete_both(sets, &origin, stamp, written, cached)
            .await?;
        Ok(uploaded(commit, code_hash, count, total, started))
    }
}
