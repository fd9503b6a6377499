//! A publish whose large files start uploading beside its read of the set: their parts go
//! while the read is on its way, and their multipart uploads complete only once the read has
//! said to write the set. Far from the store, the read and the upload's start no longer wait
//! for each other.

use super::*;
use crate::store::Hold;

impl Engine {
    /// Whether this publish holds its writes rather than waiting for its read of the set: a
    /// set with a file in parts (whose parts may go before anything is visible) and too large
    /// for its cache entry to be written beside it (it is copied server-side after).
    pub(super) fn holds_large_files(&self, opts: &PublishOptions, files: &[Asset]) -> bool {
        let total = crate::manifest::sum_sizes(files.iter().map(|a| a.size));
        !opts.accept_legacy
            && total > DIRECT_CACHE_MAX
            && files
                .iter()
                .any(|a| a.size >= self.tuning.multipart_threshold)
    }

    /// A publish that holds its writes ([`Engine::holds_large_files`]): every file is written
    /// under a [`Hold`] beside the read of the set. A large file's parts go at once, and its
    /// upload completes once the read has said to write the set; a file sent in one request
    /// waits for that before it sends. A set the read finds complete (or one this publisher
    /// may not replace) withdraws them all: the uploads are aborted and nothing appears, so
    /// the late-publisher safety holds as when the read came first.
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
        let (decide, hold) = Hold::new();
        let stamp = Stamp {
            commit: &commit,
            code_hash: code_hash.as_deref(),
            repair: false,
            hold: Some(&hold),
        };
        let files = &files;
        let read = async move {
            let (state, fill) = tokio::join!(
                self.read_state_listed(artifacts, opts.accept_legacy),
                self.fill_plan(opts, stamp.code_hash)
            );
            // An error drops `decide`, which withdraws the writes.
            let (state, listing) = state?;
            let fill = fill?;
            let go = self.replaces(artifacts, state, &listing).await?;
            if go {
                let total = crate::manifest::sum_sizes(files.iter().map(|a| a.size));
                self.say_uploading(files.len(), total, artifacts);
            }
            decide.decide(go);
            Ok::<_, Error>((go, fill))
        };
        let write = async {
            let (entries, origin, total) = self.prepare(files, &opts.package_dir).await?;
            self.start_probe();
            let written = self
                .write_files(artifacts, &origin, &entries, stamp, "uploaded")
                .await;
            Ok::<_, Error>((written, origin, total))
        };
        let (decided, wrote) = tokio::join!(read, write);
        let (go, fill) = decided?;
        if !go {
            return Ok(skipped(commit, marked, started));
        }
        let (written, origin, total) = wrote?;
        let written = written?;
        let count = files.len() as u64;
        super::super::release_freed_memory();
        let cache = cache_target(opts.cache, code_hash.as_deref(), fill);
        let stamp = Stamp {
            hold: None,
            ..stamp
        };
        let cached = match &cache {
            Some(loc) => unless_replaced(
                self.copy_to_cache(artifacts, loc, &written)
                    .await
                    .map(|(f, from)| (f, Some(from))),
                stamp.code_hash,
            )?,
            None => None,
        };
        let sets = Sets {
            artifacts,
            cache: cache.as_ref(),
        };
        self.complete_both(sets, &origin, stamp, written, cached)
            .await?;
        Ok(uploaded(commit, code_hash, count, total, started))
    }
}
