//! Completion: a set's manifest is written last, with `If-None-Match: *`, and publishers
//! racing on one set end with one consistent set.
//!
//! On a store that enforces conditional writes, the publisher whose manifest the store accepts
//! is done at once: every other publisher wrote its objects before its own manifest write,
//! which the store refuses; that publisher then checks the winner's set and, if its objects
//! replaced the winner's, takes the set over. On a store that ignores the header, every
//! publisher checks its objects after its manifest (the last manifest writer's check sees every
//! other publisher's writes), and the one with the smallest publisher id repairs the set while
//! the others wait for it.

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::retry::jitter;
use super::state::{judge_tag, PathIndex, Seen};
use super::transfer::{Origin, Stamp};
use super::{Engine, SetState};
use crate::error::{Error, Result};
use crate::layout::{meta, SetLocation};
use crate::log;
use crate::manifest::{FileEntry, Manifest, MANIFEST_MAX};
use crate::store::{Body, PutMode, PutOptions};

/// How many times a set is rewritten while concurrent publishers overwrite it.
const CONFLICT_ROUNDS: u32 = 8;

/// How long a set must stay unchanged while we wait for a concurrent publisher before we take
/// it that the publisher left: more than the longest pause between repair rounds
/// ([`super::retry::jitter`], 3.3 s in the last round).
const STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Bytes a second a waiting publisher allows the one it waits for to write its replaced
/// objects again, on top of [`STALL`].
const STALL_RATE: u64 = 20 << 20;

/// The keys and entity tags of a listing, hashed: any write into the set changes it.
fn fingerprint(listing: &[crate::store::ObjectInfo]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for o in listing {
        (&o.key, &o.etag, o.size).hash(&mut h);
    }
    h.finish()
}

/// One publisher's way through completing a set.
struct Completion<'a> {
    loc: &'a SetLocation,
    m: Manifest,
    /// Where the objects came from, to write replaced ones again.
    origin: &'a Origin,
    /// An artifacts set, indexed beside its manifest (a cache entry is not).
    artifacts: bool,
    /// The entity tag of the manifest we wrote last: a rewrite replaces only that one.
    ours: Option<String>,
    /// Set once we replaced the manifest of a publisher the store had let win: it took the
    /// set as complete and left, so waiting for it to repair could only time out.
    took_over: bool,
}

/// What the check after a round's manifest found.
enum Checked {
    /// The set is complete: ours, or another publisher's that we would take.
    Done,
    /// Our manifest was replaced by one that does not count; our objects stand: write it
    /// again.
    Again,
    /// These objects of ours were replaced.
    Replaced(Vec<FileEntry>),
}

fn conflict(loc: &SetLocation) -> Error {
    Error::Conflict(format!(
        "conflict: concurrent publishers kept replacing each other's objects under {loc}, so no consistent set could be written; downloads verify against the manifest and will refuse a mixed set: run the publish again"
    ))
}

impl Engine {
    /// Starts learning whether the store enforces conditional writes, in the background,
    /// beside the writes that precede a manifest: the answer is ready when the manifest is.
    pub(super) fn start_probe(&self) {
        if self.store.enforces_preconditions().is_some() || self.conditional.initialized() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move { engine.enforces_conditional_writes().await });
    }

    /// Whether the store refuses a write with `If-None-Match: *` to a key that exists. Asked
    /// once per process, of an empty object ([`crate::layout::Layout::probe_key`]): a refused
    /// write proves it; an accepted one may have created the key, so a second write tells.
    /// Anything else counts as "no", which costs a check of our objects after each manifest.
    pub(super) async fn enforces_conditional_writes(&self) -> bool {
        if let Some(known) = self.store.enforces_preconditions() {
            return known;
        }
        *self
            .conditional
            .get_or_init(|| async {
                let key = self.layout.probe_key();
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let put = || self.store.put(&key, Body::Bytes(Vec::new()), &opts);
                let refused = match put().await {
                    Ok(None) => Ok(true),
                    Ok(Some(_)) => put().await.map(|r| r.is_none()),
                    Err(e) => Err(e),
                };
                match &refused {
                    Ok(true) => log::phase(
                        "the store enforces conditional writes (If-None-Match): a manifest it accepts completes the set",
                    ),
                    Ok(false) if self.store.expects_enforcement() => log::warn(format!(
                        "the store accepted a second write with If-None-Match: * to {key}, so it ignores conditional writes, yet it was taken to enforce them (S3AM_CONDITIONAL_WRITES_ENFORCED / source.conditional_writes_enforced, or an AWS endpoint): objects are checked again after the manifest, but a set completed meanwhile may have had objects replaced; unset that setting for this store"
                    )),
                    Ok(false) => log::phase(
                        "the store ignores conditional writes (If-None-Match): objects are checked again after the manifest",
                    ),
                    Err(e) => log::phase(format!(
                        "could not learn whether the store enforces conditional writes ({e}); objects are checked again after the manifest"
                    )),
                }
                matches!(refused, Ok(true))
            })
            .await
    }

    /// The files whose object in `loc` is missing or no longer carries the entity tag we
    /// wrote: a concurrent writer replaced them.
    async fn overwritten(&self, loc: &SetLocation, files: &[FileEntry]) -> Result<Vec<FileEntry>> {
        // Checked page by page as the listing arrives: 50,000 keys would hold megabytes.
        let index = PathIndex::new(files);
        let mut seen = vec![Seen::Missing; files.len()];
        self.list_known_each(loc, index.sorted_paths(), |page| {
            index.mark(loc, &page, &mut seen, judge_tag);
        })
        .await?;
        Ok(files
            .iter()
            .zip(&seen)
            .filter(|(_, s)| **s != Seen::Whole)
            .map(|(f, _)| f.clone())
            .collect())
    }

    /// If a publisher with a smaller id wrote some of `bad`, waits for it to complete `loc`
    /// with a set that verifies; true when it did. False when we are the winner, or it gave
    /// no sign of finishing (we then take over).
    ///
    /// Once we took a set over from a publisher the store had let win, only objects written
    /// in a repair count: that publisher left after its manifest, but one repairing is still
    /// at work and ends with a check of its own, so racing repairers settle on one of them.
    ///
    /// The winner may also have left already: its check passed before our writes landed, and
    /// then it saw our manifest replace its own and left the set to us. Nothing in the bucket
    /// tells that apart from a winner about to write, so a set that does not change for
    /// [`STALL`] (plus the time its replaced objects take to write again at [`STALL_RATE`])
    /// means it left, and we take over at once instead of waiting out the timeout.
    async fn yield_to_winner(
        &self,
        loc: &SetLocation,
        bad: &[FileEntry],
        repairers_only: bool,
    ) -> Result<bool> {
        let mut winner: Option<String> = None;
        for f in bad.iter().take(3) {
            if let Some(h) = self.store.head(&loc.key(&f.path)).await? {
                if repairers_only && !h.metadata.contains_key(meta::REPAIR) {
                    continue;
                }
                if let Some(id) = h.metadata.get(meta::PUBLISHER) {
                    if *id < self.publisher && winner.as_ref().is_none_or(|w| id < w) {
                        winner = Some(id.clone());
                    }
                }
            }
        }
        let Some(winner) = winner else {
            return Ok(false);
        };
        log::phase(format!(
            "publisher {winner} is writing {loc} at the same time; waiting for it to complete the set (we are {})",
            self.publisher
        ));
        let bytes: u64 = bad.iter().map(|f| f.size).sum();
        let stall = STALL + std::time::Duration::from_secs(bytes / STALL_RATE);
        let deadline = Instant::now() + self.tuning.timeout;
        let mut unchanged: Option<(u64, Instant)> = None;
        loop {
            let (state, listing) =
                tokio::join!(self.read_manifest(loc), self.store.list(loc.root()));
            let listing = listing?;
            if let Some(SetState::Complete(m)) = state? {
                if self.damage_in(loc, &m, &listing).is_none() {
                    log::phase(format!(
                        "publisher {winner} completed {loc}: keeping its set, which verifies"
                    ));
                    return Ok(true);
                }
            }
            let now = fingerprint(&listing);
            match unchanged {
                Some((before, since)) if before == now => {
                    if since.elapsed() >= stall {
                        log::warn(format!(
                            "publisher {winner} wrote nothing to {loc} for {} s: it left the set to us; taking over",
                            since.elapsed().as_secs()
                        ));
                        return Ok(false);
                    }
                }
                _ => unchanged = Some((now, Instant::now())),
            }
            if Instant::now() >= deadline {
                log::warn(format!(
                    "publisher {winner} did not complete {loc} within {} s: taking over",
                    self.tuning.timeout.as_secs()
                ));
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Writes a set's manifest last (an artifacts set's index entry beside it). Unless the
    /// store enforced our `If-None-Match: *`, then checks that no concurrent writer replaced
    /// an object (or, where keys are set, the manifest) meanwhile, repairing if so.
    pub(super) async fn complete_set(
        &self,
        loc: &SetLocation,
        m: Manifest,
        origin: &Origin,
        artifacts: bool,
    ) -> Result<()> {
        let mut c = Completion {
            loc,
            m,
            origin,
            artifacts,
            ours: None,
            took_over: false,
        };
        for round in 1..=CONFLICT_ROUNDS {
            let Some(digest) = self.write_round(&mut c).await? else {
                return Ok(());
            };
            let bad = match self.check_round(&mut c, &digest).await? {
                Checked::Done => return Ok(()),
                Checked::Again => continue,
                Checked::Replaced(bad) => bad,
            };
            if self.yield_to_winner(loc, &bad, c.took_over).await? {
                return Ok(());
            }
            // Objects written now and no manifest after them would leave the set damaged
            // for good: the publisher whose manifest is in place left it to us.
            if round == CONFLICT_ROUNDS {
                break;
            }
            self.repair(&mut c, &bad, round).await?;
        }
        Err(conflict(loc))
    }

    /// One round's manifest (and index entry): the SHA-256 of the bytes we wrote, or `None`
    /// when the set is complete as it is (the store let us win, or another publisher's set
    /// verifies).
    async fn write_round(&self, c: &mut Completion<'_>) -> Result<Option<[u8; 32]>> {
        let loc = c.loc;
        let now_ms = super::now_ms();
        if c.artifacts {
            c.m.completed_ms = Some(now_ms);
        }
        let mode = match c.ours.as_deref() {
            None => PutMode::Create,
            // A store that gave no entity tag cannot be asked to match it.
            Some("") => PutMode::Overwrite,
            Some(etag) => PutMode::Update(etag.to_string()),
        };
        // The index entry goes out with the manifest, a round trip saved: it only helps
        // discovery, and the resource's check lists an indexed set only once its manifest
        // exists. A set repaired in a later round gets a later entry, counted once.
        let (written, indexed) = tokio::join!(self.write_manifest(loc, &c.m, mode), async {
            match c.artifacts {
                true => self.write_index_entry(&c.m.commit, now_ms).await,
                false => Ok(()),
            }
        });
        let written = written?;
        indexed?;
        if let Some((digest, etag)) = written {
            let first = c.ours.replace(etag).is_none();
            // The store let us win: a publisher writing into the set from now on sees its
            // own manifest refused, and checks our set after its writes.
            let won = first && self.enforces_conditional_writes().await;
            return Ok((!won).then_some(digest));
        }
        match c.ours {
            // Our own writes (the files rewritten last round) may have landed after that
            // publisher checked its set: check it again now.
            Some(_) => log::phase(format!(
                "the store refused to replace our manifest of {loc} (If-Match): a concurrent publisher replaced it; checking its set"
            )),
            None => log::phase(format!(
                "the store refused our manifest {} (If-None-Match: *): another publisher completed {loc} first; checking its set",
                loc.manifest_key()
            )),
        }
        if self
            .completed_by_another(loc, &c.m.commit, c.artifacts)
            .await?
        {
            return Ok(None);
        }
        // Its set does not verify: replace its manifest, as without the header (an
        // unconditional write always returns Some).
        c.took_over = true;
        let (digest, etag) = self
            .write_manifest(loc, &c.m, PutMode::Overwrite)
            .await?
            .unwrap_or_default();
        c.ours = Some(etag);
        Ok(Some(digest))
    }

    /// Whether our objects, or our manifest (whose SHA-256 is `digest`), were replaced after
    /// we wrote them.
    /// Where keys are set, the manifest is read beside the listing: a publisher that holds a
    /// key must not end with a manifest in place that it would not take itself (an unsigned
    /// publisher's, racing it). Otherwise only once objects were replaced.
    async fn check_round(&self, c: &mut Completion<'_>, digest: &[u8; 32]) -> Result<Checked> {
        let loc = c.loc;
        let key = loc.manifest_key();
        let read_current = || self.small_object(&key, MANIFEST_MAX);
        let (bad, early) = tokio::join!(self.overwritten(loc, &c.m.files), async {
            match self.keys.trusted.is_some() {
                true => read_current().await.map(Some),
                false => Ok(None),
            }
        });
        let bad = bad?;
        let current = match early? {
            Some(current) => current,
            None if bad.is_empty() => return Ok(Checked::Done),
            None => read_current().await?,
        };
        if current.is_some_and(|now| Sha256::digest(&now)[..] == digest[..]) {
            return Ok(match bad.is_empty() {
                true => Checked::Done,
                false => Checked::Replaced(bad),
            });
        }
        // A later publisher wrote its own manifest, and checks its own objects: it stands if
        // it is a set we would take (valid, its own place's, and trusted where keys are
        // set). Otherwise ours goes back, and so do our objects.
        if let Some(SetState::Complete(_)) = self.read_manifest(loc).await? {
            log::phase(format!(
                "a concurrent publisher completed {loc} after us; it verifies its own set"
            ));
            return Ok(Checked::Done);
        }
        log::warn(format!(
            "a concurrent publisher replaced our manifest of {loc} with one that does not count: writing ours again"
        ));
        c.took_over = true;
        Ok(match bad.is_empty() {
            true => Checked::Again,
            false => Checked::Replaced(bad),
        })
    }

    /// Writes the objects a concurrent publisher replaced (`bad`) again, after a pause that
    /// puts racing publishers out of step, and records their new entity tags.
    async fn repair(&self, c: &mut Completion<'_>, bad: &[FileEntry], round: u32) -> Result<()> {
        log::warn(format!(
            "{} objects of {} were replaced by a concurrent publisher after its manifest was written; writing ours again (round {round} of {CONFLICT_ROUNDS})",
            bad.len(),
            c.loc
        ));
        tokio::time::sleep(jitter(round)).await;
        let stamp = Stamp {
            commit: &c.m.commit,
            code_hash: c.m.code_hash.as_deref(),
            repair: true,
            hold: None,
        };
        let redone = self
            .write_files(c.loc, c.origin, bad, stamp, "rewrote")
            .await?;
        for r in redone {
            if let Some(f) = c.m.files.iter_mut().find(|f| f.path == r.path) {
                *f = r;
            }
        }
        Ok(())
    }

    /// Whether the set another publisher completed at `loc` verifies (then it stands, and an
    /// artifacts set is indexed in case its publisher could not).
    async fn completed_by_another(
        &self,
        loc: &SetLocation,
        commit: &str,
        artifacts: bool,
    ) -> Result<bool> {
        let SetState::Complete(winner) = self.set_state(loc, false).await? else {
            return Ok(false);
        };
        if let Some(problem) = self.damage(loc, &winner).await? {
            log::warn(format!("{problem}; writing our manifest over it"));
            return Ok(false);
        }
        log::phase(format!(
            "{loc} was completed by another publisher and verifies: keeping its set"
        ));
        if artifacts {
            self.ensure_indexed(commit, &winner).await?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
mod write;
