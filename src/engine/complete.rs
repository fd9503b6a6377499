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

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::retry::jitter;
use super::transfer::Origin;
use super::{Engine, SetState};
use crate::error::{Error, Result};
use crate::layout::{meta, SetLocation};
use crate::log;
use crate::manifest::{FileEntry, Manifest, MANIFEST_MAX};
use crate::signing;
use crate::store::{Precondition, PutOptions};

/// How many times a set is rewritten while concurrent publishers overwrite it.
const CONFLICT_ROUNDS: u32 = 8;

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
                let (key, opts) = (self.layout.probe_key(), PutOptions::default());
                let put = || {
                    self.store
                        .put_bytes_if(&key, Vec::new(), &opts, Precondition::Absent)
                };
                let refused = match put().await {
                    Ok(None) => Ok(true),
                    Ok(Some(_)) => put().await.map(|r| r.is_none()),
                    Err(e) => Err(e),
                };
                match &refused {
                    Ok(true) => log::phase(
                        "the store enforces conditional writes (If-None-Match): a manifest it accepts completes the set",
                    ),
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
        let now: HashMap<String, Option<String>> = self
            .list_known(loc, files.iter().map(|f| f.path.as_str()))
            .await?
            .into_iter()
            .map(|o| (o.key, o.etag))
            .collect();
        Ok(files
            .iter()
            .filter(|f| match now.get(&loc.key(&f.path)) {
                None => true,
                Some(etag) => etag.is_some() && f.etag.is_some() && *etag != f.etag,
            })
            .cloned()
            .collect())
    }

    /// If a publisher with a smaller id wrote some of `bad`, waits for it to complete `loc`
    /// with a set that verifies; true when it did. False when we are the winner, or it gave
    /// no sign of finishing within the timeout (we then take over).
    async fn yield_to_winner(&self, loc: &SetLocation, bad: &[FileEntry]) -> Result<bool> {
        let mut winner: Option<String> = None;
        for f in bad.iter().take(3) {
            if let Some(h) = self.store.head(&loc.key(&f.path)).await? {
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
        let deadline = Instant::now() + self.tuning.timeout;
        while Instant::now() < deadline {
            if let SetState::Complete(m) = self.set_state(loc, false).await? {
                if self.damage(loc, &m).await?.is_none() {
                    log::phase(format!(
                        "publisher {winner} completed {loc}: keeping its set, which verifies"
                    ));
                    return Ok(true);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        log::warn(format!(
            "publisher {winner} did not complete {loc} within {} s: taking over",
            self.tuning.timeout.as_secs()
        ));
        Ok(false)
    }

    /// Writes a set's manifest last (an artifacts set's index entry beside it). Unless the
    /// store enforced our `If-None-Match: *`, then checks that no concurrent writer replaced
    /// an object meanwhile, repairing if so.
    pub(super) async fn complete_set(
        &self,
        loc: &SetLocation,
        mut m: Manifest,
        origin: &Origin,
        artifacts: bool,
    ) -> Result<()> {
        let code_hash = m.code_hash.clone();
        // The entity tag of the manifest we wrote last: a rewrite replaces only that one.
        let mut ours: Option<String> = None;
        // Set once we replaced the manifest of a publisher the store had let win: it took the
        // set as complete and left, so waiting for it to repair could only time out.
        let mut took_over = false;
        for round in 1..=CONFLICT_ROUNDS {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            if artifacts {
                m.completed_ms = Some(now_ms);
            }
            let cond = match ours.as_deref() {
                None => Some(Precondition::Absent),
                // A store that gave no entity tag cannot be asked to match it.
                Some("") => None,
                Some(etag) => Some(Precondition::Matches(etag)),
            };
            // The index entry goes out with the manifest, a round trip saved: it only helps
            // discovery, and the resource's check lists an indexed set only once its manifest
            // exists. A set repaired in a later round gets a later entry, counted once.
            let (written, indexed) = tokio::join!(self.write_manifest(loc, &m, cond), async {
                match artifacts {
                    true => self.write_index_entry(&m.commit, now_ms).await,
                    false => Ok(()),
                }
            });
            let written = written?;
            indexed?;
            let body = match written {
                Some((body, etag)) => {
                    let first = ours.is_none();
                    ours = Some(etag);
                    if first && self.enforces_conditional_writes().await {
                        // The store let us win: a publisher writing into the set from now
                        // on sees its own manifest refused, and checks our set after its
                        // writes.
                        return Ok(());
                    }
                    body
                }
                None => {
                    match ours {
                        // Our own writes (the files rewritten last round) may have landed
                        // after that publisher checked its set: check it again now.
                        Some(_) => log::phase(format!(
                            "the store refused to replace our manifest of {loc} (If-Match): a concurrent publisher replaced it; checking its set"
                        )),
                        None => log::phase(format!(
                            "the store refused our manifest {} (If-None-Match: *): another publisher completed {loc} first; checking its set",
                            loc.manifest_key()
                        )),
                    }
                    if self.completed_by_another(loc, &m.commit, artifacts).await? {
                        return Ok(());
                    }
                    // Its set does not verify: replace its manifest, as without the header
                    // (an unconditional write always returns Some).
                    took_over = true;
                    let (body, etag) = self
                        .write_manifest(loc, &m, None)
                        .await?
                        .unwrap_or_default();
                    ours = Some(etag);
                    body
                }
            };
            // Whether our objects, or our manifest, were replaced meanwhile. Where keys are
            // set, the manifest is read beside the listing: a publisher that holds a key must
            // not end with a manifest in place that it would not take itself (an unsigned
            // publisher's, racing it). Otherwise only once objects were replaced.
            let key = loc.manifest_key();
            let read_current = || self.store.get_bytes(&key, MANIFEST_MAX);
            let (bad, early) = tokio::join!(self.overwritten(loc, &m.files), async {
                match self.keys.trusted.is_some() {
                    true => read_current().await.map(Some),
                    false => Ok(None),
                }
            });
            let bad = bad?;
            let current = match early? {
                Some(current) => current,
                None if bad.is_empty() => return Ok(()),
                None => read_current().await?,
            };
            if current.as_deref() != Some(body.as_slice()) {
                // A later publisher wrote its own manifest, and checks its own objects: it
                // stands if it is a set we would take (valid, its own place's, and trusted
                // where keys are set). Otherwise ours goes back, and so do our objects.
                if let Some(SetState::Complete(_)) = self.read_manifest(loc).await? {
                    log::phase(format!(
                        "a concurrent publisher completed {loc} after us; it verifies its own set"
                    ));
                    return Ok(());
                }
                log::warn(format!(
                    "a concurrent publisher replaced our manifest of {loc} with one that does not count: writing ours again"
                ));
                took_over = true;
                if bad.is_empty() {
                    continue;
                }
            } else if bad.is_empty() {
                return Ok(());
            }
            if !took_over && self.yield_to_winner(loc, &bad).await? {
                return Ok(());
            }
            log::warn(format!(
                "{} objects of {loc} were replaced by a concurrent publisher after its manifest was written; writing ours again (round {round} of {CONFLICT_ROUNDS})",
                bad.len()
            ));
            tokio::time::sleep(jitter(round)).await;
            let redone = self
                .write_files(
                    loc,
                    origin,
                    &bad,
                    &m.commit,
                    code_hash.as_deref(),
                    "rewrote",
                )
                .await?;
            for r in redone {
                if let Some(f) = m.files.iter_mut().find(|f| f.path == r.path) {
                    *f = r;
                }
            }
        }
        Err(conflict(loc))
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

    /// Writes the manifest (under `cond` when given); its bytes and entity tag, or `None`
    /// when the store refused the conditional write.
    async fn write_manifest(
        &self,
        loc: &SetLocation,
        m: &Manifest,
        cond: Option<Precondition<'_>>,
    ) -> Result<Option<(Vec<u8>, String)>> {
        let body = m.to_bytes();
        // The signature goes first, under a name bound to these exact bytes: once the
        // manifest is visible, so is its signature, and no other manifest can claim it.
        let signed = match &self.keys.signing {
            Some(key) => {
                let sig = key.sign(&body)?;
                self.store
                    .put_bytes(
                        &signing::signature_key(loc, &body),
                        sig,
                        &PutOptions::default(),
                    )
                    .await?;
                format!(", signed by {}", key.fingerprint())
            }
            None => String::new(),
        };
        let opts = PutOptions {
            metadata: BTreeMap::new(),
            sha256: Some(Sha256::digest(&body).into()),
            part_crc64: Vec::new(),
        };
        let key = loc.manifest_key();
        let etag = match cond {
            Some(cond) => {
                let Some(etag) = self
                    .store
                    .put_bytes_if(&key, body.clone(), &opts, cond)
                    .await?
                else {
                    return Ok(None);
                };
                etag
            }
            None => self.store.put_bytes(&key, body.clone(), &opts).await?,
        };
        log::phase(format!("wrote manifest {key}: {loc} is complete{signed}"));
        Ok(Some((body, etag)))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::engine::{CacheMode, Keys, PublishOptions};
    use crate::layout::Layout;
    use crate::signing::{SigningKey, TrustedKeys, Verdict};
    use crate::store::{local::LocalStore, ObjectHead, ObjectInfo, Reader, Store, Tuning};

    /// A local bucket where an unsigned publisher races ours: its manifest of the same set
    /// (ours, with another `created`, unsigned) lands just before our manifest write (where
    /// the store enforces `If-None-Match`) or just after it (where it ignores the header, as
    /// Garage does).
    struct Racing {
        inner: LocalStore,
        enforces: bool,
        raced: Mutex<bool>,
    }

    impl Racing {
        /// The racing publisher's manifest, once: ours, restamped and unsigned.
        async fn race(&self, key: &str, ours: &[u8]) {
            let first = !std::mem::replace(&mut *self.raced.lock().unwrap(), true);
            if first && key.ends_with(crate::layout::MANIFEST_NAME) {
                let mut m = Manifest::parse(ours, key).unwrap();
                m.created = "2000-01-01T00:00:00Z".into();
                let opts = PutOptions::default();
                self.inner
                    .put_bytes(key, m.to_bytes(), &opts)
                    .await
                    .unwrap();
            }
        }
    }

    #[async_trait]
    impl Store for Racing {
        fn url(&self) -> String {
            self.inner.url()
        }
        fn enforces_preconditions(&self) -> Option<bool> {
            Some(self.enforces)
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
            self.inner.list(prefix).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            after: Option<&str>,
            max: usize,
        ) -> Result<Vec<ObjectInfo>> {
            self.inner.list_page(prefix, after, max).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectHead>> {
            self.inner.head(key).await
        }
        async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
            self.inner.get(key, range).await
        }
        async fn put_file(
            &self,
            key: &str,
            path: &Path,
            size: u64,
            opts: &PutOptions,
        ) -> Result<String> {
            self.inner.put_file(key, path, size, opts).await
        }
        async fn put_bytes(&self, key: &str, body: Vec<u8>, opts: &PutOptions) -> Result<String> {
            self.inner.put_bytes(key, body, opts).await
        }
        async fn put_bytes_if(
            &self,
            key: &str,
            body: Vec<u8>,
            opts: &PutOptions,
            cond: Precondition<'_>,
        ) -> Result<Option<String>> {
            if self.enforces {
                self.race(key, &body).await;
                return self.inner.put_bytes_if(key, body, opts, cond).await;
            }
            let ours = body.clone();
            let etag = self.inner.put_bytes(key, body, opts).await?;
            self.race(key, &ours).await;
            Ok(Some(etag))
        }
        async fn copy(
            &self,
            src: &str,
            dst: &str,
            size: u64,
            opts: &PutOptions,
            if_match: Option<&str>,
        ) -> Result<String> {
            self.inner.copy(src, dst, size, opts, if_match).await
        }
    }

    /// A signing publisher racing an unsigned one never ends with the unsigned manifest in
    /// place: it takes the set over, and its own signed manifest is what readers find.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signing_publisher_never_keeps_a_racing_unsigned_manifest() {
        for enforces in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let bucket = dir.path().join("bucket");
            std::fs::create_dir_all(&bucket).unwrap();
            let store = Arc::new(Racing {
                inner: LocalStore::open(&bucket).unwrap(),
                enforces,
                raced: Mutex::new(false),
            });
            let key = SigningKey::parse(crate::signing::tests::PRIVATE.as_bytes(), "k").unwrap();
            let key = Arc::new(key);
            let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default())
                .with_keys(Keys {
                    signing: Some(key.clone()),
                    trusted: None,
                });
            let pkg = dir.path().join("pkg");
            std::fs::create_dir_all(&pkg).unwrap();
            std::fs::write(pkg.join("fn.zip"), "ours").unwrap();
            let commit = "0123456789abcdef0123456789abcdef01234567";
            engine
                .publish(&PublishOptions {
                    package_dir: pkg,
                    commit: Some(commit.into()),
                    code_hash: None,
                    compute_code_hash: None,
                    cache: CacheMode::Off,
                    accept_legacy: false,
                })
                .await
                .unwrap();
            assert!(*store.raced.lock().unwrap(), "the race never ran");
            let loc = engine.layout().artifacts(commit);
            let body = store
                .get_bytes(&loc.manifest_key(), 1 << 20)
                .await
                .unwrap()
                .unwrap();
            let sig = store
                .get_bytes(&signing::signature_key(&loc, &body), 1 << 20)
                .await
                .unwrap();
            let own = TrustedKeys::including(None, &key);
            assert!(
                matches!(own.verify(&body, sig.as_deref()), Verdict::Trusted(_)),
                "enforces {enforces}: the manifest in place is not ours: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
