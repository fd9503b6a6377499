//! A publish that writes first, where the store refuses a write to a key that exists: its
//! objects beside its read of the set, so a small set is complete in two round trips.

use super::*;

impl Engine {
    /// Whether this publish writes its objects before it reads the set: on a store taken to
    /// enforce `If-None-Match: *` ([`crate::store::Store::expects_enforcement`]), for a set
    /// of small files (each sent from memory, and, where a cache entry may be filled, the
    /// whole set uploaded to it beside the artifacts), unless legacy sets count (a legacy
    /// set's objects would then have to stop the publish before it writes).
    pub(super) fn writes_first(
        &self,
        opts: &PublishOptions,
        files: &[Asset],
        marked: bool,
    ) -> bool {
        let may_fill =
            opts.cache == CacheMode::ReadWrite && (marked || opts.compute_code_hash.is_some());
        let total = crate::manifest::sum_sizes(files.iter().map(|a| a.size));
        self.store.expects_enforcement()
            && !opts.accept_legacy
            && files.iter().all(|a| a.size <= IN_MEMORY)
            && (!may_fill || total <= DIRECT_CACHE_MAX)
    }

    /// A publish that writes first ([`Engine::writes_first`]): every object goes out with
    /// `If-None-Match: *`, beside the read of the set (and of the cache entry it may fill),
    /// so a small set is complete after two round trips, its objects' and its manifest's.
    /// The store refuses a write to a key that exists, so a set that completed meanwhile
    /// keeps its objects: its readers still verify it. The read then decides as it does
    /// before any write: a complete set is left as it is (objects we wrote under names it
    /// does not have stay beside it, unread), and otherwise the keys refused (an interrupted
    /// upload's, or a concurrent publisher's) are written over before the manifest.
    pub(super) async fn publish_first(
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
        let code_hash = self.publish_code_hash(opts, marked.clone()).await?;
        let fill = code_hash
            .as_deref()
            .filter(|_| opts.cache == CacheMode::ReadWrite)
            .map(|h| self.layout.cache(h));
        if fill.is_none() {
            cache_target(opts.cache, code_hash.as_deref(), None);
        }
        let (entries, origin, total) = self.prepare(&files, &opts.package_dir).await?;
        self.say_uploading(files.len(), total, artifacts);
        let count = files.len() as u64;
        drop(files);
        let stamp = Stamp {
            commit: &commit,
            code_hash: code_hash.as_deref(),
            repair: false,
            hold: None,
        };
        self.start_probe();
        let (read, plan, wrote, cached) = tokio::join!(
            self.read_state_listed(artifacts, opts.accept_legacy),
            async {
                match &code_hash {
                    Some(h) if fill.is_some() => Some(self.cache_to_fill(h).await),
                    _ => None,
                }
            },
            self.write_new_files(artifacts, &origin, &entries, stamp),
            async {
                match &fill {
                    Some(loc) => Some(self.write_new_files(loc, &origin, &entries, stamp).await),
                    None => None,
                }
            }
        );
        drop(entries);
        let (state, listing) = read?;
        if !self.replaces(artifacts, state, &listing).await? {
            return Ok(skipped(commit, marked, started));
        }
        let (written, refused) = wrote?;
        let (fill, cached) = settle_fill(fill, plan.transpose()?, cached, stamp.code_hash)?;
        let (written, cached) = tokio::join!(
            self.write_refused(artifacts, &origin, written, &refused, stamp),
            async {
                match (&fill, cached) {
                    (Some(loc), Some((files, refused))) => Some(
                        self.write_refused(loc, &origin, files, &refused, stamp)
                            .await,
                    ),
                    _ => None,
                }
            }
        );
        let written = written?;
        let cached = cached
            .map(|r| unless_replaced(r, stamp.code_hash))
            .transpose()?
            .flatten()
            .map(|files| (files, None));
        let sets = Sets {
            artifacts,
            cache: fill.as_ref(),
        };
        self.complete_both(sets, &origin, stamp, written, cached)
            .await?;
        Ok(uploaded(commit, code_hash, count, total, started))
    }

    /// The files a first write placed (`written`), with those whose keys it found taken
    /// (`refused`) written over them.
    async fn write_refused(
        &self,
        to: &SetLocation,
        origin: &Origin,
        mut written: Vec<FileEntry>,
        refused: &[FileEntry],
        stamp: Stamp<'_>,
    ) -> Result<Vec<FileEntry>> {
        if !refused.is_empty() {
            log::phase(format!(
                "{} of {to} already had an object (an interrupted upload's, or a concurrent publisher's): writing over them",
                log::count(refused.len() as u64, "file")
            ));
            written.extend(
                self.write_files(to, origin, refused, stamp, "uploaded")
                    .await?,
            );
        }
        Ok(written)
    }
}

/// What a first write returned: the files written, and those whose keys it found taken.
type Written = (Vec<FileEntry>, Vec<FileEntry>);

/// The cache entry a first write filled, once the read of it is in: kept where the plan is to
/// fill it and a concurrent publisher did not replace it; `None` where the plan leaves it
/// (saying why), with what we wrote there left unread.
fn settle_fill(
    fill: Option<SetLocation>,
    plan: Option<Fill>,
    cached: Option<Result<Written>>,
    code_hash: Option<&str>,
) -> Result<(Option<SetLocation>, Option<Written>)> {
    let (fill, cached) = match (fill, plan, cached) {
        (Some(loc), Some(Fill::Into(_)), Some(wrote)) => (Some(loc), wrote.map(Some)),
        (_, Some(Fill::Leave(why)), _) => {
            log::phase(why.to_string());
            (None, Ok(None))
        }
        _ => (None, Ok(None)),
    };
    Ok(match unless_replaced(cached, code_hash)? {
        Some(cached) => (fill, cached),
        None => (None, None),
    })
}
