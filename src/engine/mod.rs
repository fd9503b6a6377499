//! The operations every front end calls, one module each, in SPEC.md's words:
//!
//! - `lookup`: find a commit's set, or restore it from the cache (the `check` task, the
//!   resource's `put` without `path`);
//! - `restore`: a cache entry copied into an artifacts set, and the cache side of a publish;
//! - `publish`: upload a package directory as a commit's set (the `upload` task, `put`);
//! - `complete`: the manifest written last, racing publishers ending with one set, and the
//!   probe of whether the store enforces conditional writes;
//! - `fetch`: download and verify a set (the CLI's `fetch`, the resource's `in`);
//! - `index`: the version index behind the resource's `check`;
//! - `transfer`: the concurrent upload, copy and download loops every operation calls.
//!
//! This file holds the types they share and the reads they all make: a set's state, its
//! damage, the code hash.

mod complete;
mod fetch;
mod index;
mod lookup;
mod publish;
mod restore;
mod retry;
mod transfer;
mod window;

pub use fetch::{found_report, refuse_invalid, refuse_untrusted};
pub use window::{FLOOR as FEWEST_IN_FLIGHT, START as FIRST_IN_FLIGHT};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::codehash::{self, Patterns};
use crate::error::{clip, Error, Result};
use crate::layout::{Layout, SetLocation};
use crate::log;
use crate::manifest::{Manifest, Refused, MANIFEST_MAX};
use crate::signing::{self, SigningKey, TrustedKeys, Verdict, SIGNATURE_MAX};
use crate::store::{ObjectInfo, Store, Tuning};

/// How the cache may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Restore from and write to `cache/`.
    #[default]
    ReadWrite,
    /// Restore from `cache/` but never write it (untrusted pipelines).
    ReadOnly,
    /// Ignore `cache/` entirely.
    Off,
}

impl std::str::FromStr for CacheMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read-write" => Ok(CacheMode::ReadWrite),
            "read-only" => Ok(CacheMode::ReadOnly),
            "off" => Ok(CacheMode::Off),
            other => Err(Error::Config(format!(
                "invalid cache mode {}: use read-write, read-only or off",
                clip(other)
            ))),
        }
    }
}

/// The patterns and salt that define the code hash.
#[derive(Debug, Clone)]
pub struct CodeHashSpec {
    /// Which files make up the assets.
    pub patterns: Patterns,
    /// An optional salt mixed into the hash.
    pub salt: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The set was already complete.
    Found,
    /// The set was restored from the cache by server-side copy.
    Restored,
    /// The set was uploaded.
    Uploaded,
    /// Nothing was done (a `.found` marker, or another pipeline completed the set first).
    Skipped,
    /// The set is not there: the pipeline must build.
    Missing,
}

impl Outcome {
    /// The outcome's name in logs and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::Restored => "restored",
            Outcome::Uploaded => "uploaded",
            Outcome::Skipped => "skipped",
            Outcome::Missing => "missing",
        }
    }
}

/// The result of an operation, for the summary line and resource metadata.
#[derive(Debug, Clone)]
pub struct Report {
    /// The commit.
    pub commit: String,
    /// The code hash, when known.
    pub code_hash: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Files in the set (or transferred).
    pub files: u64,
    /// Bytes in the set (or transferred).
    pub bytes: u64,
    /// Bytes this run moved: uploaded, copied server-side or downloaded (0 when it only
    /// looked, so the summary shows no rate).
    pub moved: u64,
    /// Wall time of the operation.
    pub seconds: f64,
}

impl Report {
    /// A report with nothing transferred yet.
    pub fn new(commit: &str, outcome: Outcome) -> Self {
        Report {
            commit: commit.to_string(),
            code_hash: None,
            outcome,
            files: 0,
            bytes: 0,
            moved: 0,
            seconds: 0.0,
        }
    }

    /// Prints the closing summary line: what happened and what follows from it, with a
    /// rate only where bytes moved.
    pub fn log_summary(&self, store: &dyn Store) {
        log::phase(format!(
            "summary: {} for commit {}: {}",
            self.outcome.as_str(),
            self.commit,
            self.summary(store.requests())
        ));
    }

    /// The summary after "summary: <outcome> for commit <commit>: ".
    fn summary(&self, requests: u64) -> String {
        let requests = match requests {
            0 => None,
            1 => Some("1 S3 request".to_string()),
            n => Some(format!("{n} S3 requests")),
        };
        let set = format!("{} files, {}", self.files, log::bytes(self.bytes));
        let seconds = format!("{:.2} s", self.seconds);
        // In brackets: the rate where bytes moved, and the requests made.
        let aside = |first: String| {
            let all: Vec<String> = std::iter::once(first).chain(requests.clone()).collect();
            format!("({})", all.join(", "))
        };
        if self.moved == 0 {
            let what = match self.outcome {
                Outcome::Missing => "build needed".to_string(),
                Outcome::Found => format!("{set} already complete: skip the build"),
                Outcome::Skipped => "upload skipped: the set is already complete".to_string(),
                Outcome::Restored | Outcome::Uploaded => set,
            };
            return format!("{what} {}", aside(seconds));
        }
        let how = match self.outcome {
            Outcome::Restored => " copied from the cache",
            Outcome::Found => " downloaded and verified",
            _ => "",
        };
        let rate = log::rate(self.moved, std::time::Duration::from_secs_f64(self.seconds));
        format!("{set}{how} in {seconds} {}", aside(rate))
    }
}

/// Whether a set is complete, as decided by its manifest.
#[derive(Debug, Clone)]
pub enum SetState {
    /// The manifest exists.
    Complete(Box<Manifest>),
    /// Objects but no manifest, counted as found because `accept_legacy` is on.
    Legacy {
        /// The objects found.
        objects: Vec<crate::store::ObjectInfo>,
    },
    /// A manifest, but trusted keys are set and it carries no valid signature from one of
    /// them: not complete. A reader refuses it; a publisher holding a signing key replaces it.
    Untrusted {
        /// The manifest.
        manifest: Box<Manifest>,
        /// Why it is not trusted, naming its signer or saying it is unsigned.
        why: String,
    },
    /// A manifest that is not this set's: it names another commit, code hash or prefix (a
    /// set copied from elsewhere), or breaks a rule of the format (too large, a duplicate
    /// path, a size over 5 TiB, ...). Not complete: a reader refuses it, `check` builds, and
    /// any publisher replaces it.
    Invalid {
        /// What is wrong with it, naming what it names and where it was found, or the field.
        why: String,
    },
    /// No manifest: missing, interrupted, or legacy without `accept_legacy`.
    Missing,
}

/// The keys of signed sets: the private key this publisher signs manifests with, and the
/// public keys whose signatures a reader trusts (none: every complete set is trusted).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Signs every manifest written.
    pub signing: Option<Arc<SigningKey>>,
    /// Makes a set complete only when its manifest is signed by one of these.
    pub trusted: Option<Arc<TrustedKeys>>,
}

/// Options for a lookup (the `check` task and the resource's `put` without `path`).
#[derive(Debug, Clone)]
pub struct LookupOptions {
    /// The checkout.
    pub repo: PathBuf,
    /// Where the markers go; `None` writes none (the resource's `put`, whose `get` writes them).
    pub markers: Option<PathBuf>,
    /// The code-hash definition; `None` turns caching off.
    pub code_hash: Option<CodeHashSpec>,
    /// How the cache may be used.
    pub cache: CacheMode,
    /// Count sets without a manifest as found.
    pub accept_legacy: bool,
}

/// Options for a publish (the `upload` task and the resource's `put` with `path`).
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The package directory holding the assets and markers.
    pub package_dir: PathBuf,
    /// The commit; `None` reads `.commit-hash`.
    pub commit: Option<String>,
    /// The code hash; `None` reads `.code-hash` when present.
    pub code_hash: Option<String>,
    /// Without a code hash from either, compute one from this checkout and definition (only
    /// when something is actually uploaded).
    pub compute_code_hash: Option<(PathBuf, CodeHashSpec)>,
    /// How the cache may be used.
    pub cache: CacheMode,
    /// Count sets without a manifest as already complete.
    pub accept_legacy: bool,
}

/// The engine: a store and a layout.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    layout: Layout,
    tuning: Tuning,
    /// A random id stamped on every object this process writes into a set: when publishers
    /// race on one set, the smallest id keeps writing and the others wait for it.
    publisher: String,
    keys: Keys,
    /// Whether the store enforces `If-None-Match: *`, learned once per process (see
    /// [`Engine::enforces_conditional_writes`]).
    conditional: Arc<tokio::sync::OnceCell<bool>>,
}

impl Engine {
    /// An engine over `store` with keys laid out by `layout`.
    pub fn new(store: Arc<dyn Store>, layout: Layout, tuning: Tuning) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Engine {
            store,
            layout,
            tuning,
            publisher: format!("{:016x}", h.finish()),
            keys: Keys::default(),
            conditional: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The same engine, signing and trusting with `keys`. A signing key implies trust in its
    /// own public key: such a publisher takes only sets signed by a trusted key or by itself,
    /// so it never signs what it has not verified.
    pub fn with_keys(mut self, mut keys: Keys) -> Self {
        if let Some(own) = &keys.signing {
            keys.trusted = Some(Arc::new(TrustedKeys::including(
                keys.trusted.as_deref(),
                own,
            )));
        }
        self.keys = keys;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Reads a set's manifest; a set without one is `Missing` (or `Legacy`, logged), which
    /// takes a listing after it.
    pub async fn set_state(&self, loc: &SetLocation, accept_legacy: bool) -> Result<SetState> {
        match self.read_manifest(loc).await? {
            Some(state) => Ok(state),
            None => {
                let objects = self.store.list(loc.root()).await?;
                Ok(self.unfinished(loc, objects, accept_legacy))
            }
        }
    }

    /// A set's state and its listing, both read at once: for a set that is probably missing,
    /// or whose objects will be checked against its manifest ([`Engine::damage_in`]).
    pub(super) async fn read_state_listed(
        &self,
        loc: &SetLocation,
        accept_legacy: bool,
    ) -> Result<(SetState, Vec<ObjectInfo>)> {
        let (state, listing) = tokio::join!(self.read_manifest(loc), self.store.list(loc.root()));
        let listing = listing?;
        Ok(match state? {
            Some(state) => (state, listing),
            None => (
                self.unfinished(loc, listing.clone(), accept_legacy),
                listing,
            ),
        })
    }

    /// The state of a set that has a manifest (complete, untrusted or invalid); `None`
    /// without one. Everything read here is hostile input: the manifest and its signature are
    /// read up to their size limits only, the manifest is validated field by field, and it
    /// must name this place (its commit or code hash, and its prefix), whoever signed it.
    pub(super) async fn read_manifest(&self, loc: &SetLocation) -> Result<Option<SetState>> {
        let key = loc.manifest_key();
        let Some(bytes) = self.store.get_bytes(&key, MANIFEST_MAX).await? else {
            return Ok(None);
        };
        // Writes are atomic, so an unreadable, unsafe or misplaced manifest was put there by
        // hand (or by an attacker): the set is not complete, and the log says why.
        let invalid = |why: String| {
            log::warn(format!("{why}: {loc} is not counted as complete"));
            Ok(Some(SetState::Invalid { why }))
        };
        let manifest = match Manifest::parse(&bytes, &key) {
            Ok(m) => Box::new(m),
            Err(Refused::Invalid(why)) => return invalid(why),
            // Not ours to judge, or to replace: stop and say so.
            Err(newer @ Refused::NewerFormat(_)) => return Err(newer.into()),
        };
        if let Err(why) = manifest.check_place(loc, self.keys.trusted.is_some()) {
            return invalid(why);
        }
        let Some(trusted) = &self.keys.trusted else {
            return Ok(Some(SetState::Complete(manifest)));
        };
        // The signature of exactly these bytes: never another manifest's.
        let signature = self
            .store
            .get_bytes(&signing::signature_key(loc, &bytes), SIGNATURE_MAX)
            .await?;
        Ok(Some(match trusted.verify(&bytes, signature.as_deref()) {
            Verdict::Trusted(signer) => {
                log::phase(format!("{loc} is signed by trusted key {signer}"));
                SetState::Complete(manifest)
            }
            Verdict::Untrusted(why) => {
                log::warn(format!(
                    "{loc} has a manifest, but {why}: not counted as complete"
                ));
                SetState::Untrusted { manifest, why }
            }
        }))
    }

    /// The state of a set without a manifest, from its listing: missing, or (logged) an
    /// interrupted upload or a legacy set.
    pub(super) fn unfinished(
        &self,
        loc: &SetLocation,
        mut objects: Vec<ObjectInfo>,
        accept_legacy: bool,
    ) -> SetState {
        // A signature left by an interrupted publish is not an asset.
        objects.retain(|o| !signing::is_signature_key(loc, &o.key));
        if objects.is_empty() {
            return SetState::Missing;
        }
        let n = objects.len();
        if loc.is_cache() {
            log::warn(format!(
                "{loc} has {n} objects but no manifest: an interrupted upload; not used"
            ));
            SetState::Missing
        } else if accept_legacy && self.keys.trusted.is_some() {
            log::warn(format!(
                "{loc} has {n} objects and no manifest: a legacy set, which is unsigned: not counted as found because trusted keys are set"
            ));
            SetState::Missing
        } else if accept_legacy {
            log::phase(format!(
                "{loc} has {n} objects and no manifest: a legacy set (written by the original tool, or interrupted); counted as found because accept_legacy is on"
            ));
            SetState::Legacy { objects }
        } else {
            log::warn(format!(
                "{loc} has {n} objects but no manifest: an interrupted upload, or a legacy set from the original tool; not counted as found (to count legacy sets, turn on accept_legacy: S3AM_ACCEPT_LEGACY=true, --accept-legacy or source.accept_legacy)"
            ));
            SetState::Missing
        }
    }

    /// Computes the code hash on the blocking pool and logs it.
    pub async fn code_hash(&self, repo: &Path, spec: &CodeHashSpec) -> Result<String> {
        let started = Instant::now();
        let (repo_buf, spec_c) = (repo.to_path_buf(), spec.clone());
        let h = tokio::task::spawn_blocking(move || {
            codehash::compute(&repo_buf, &spec_c.patterns, &spec_c.salt)
        })
        .await
        .map_err(|e| Error::task("computing the code hash", e))??;
        log::phase(format!(
            "code hash {} over {} files matching \"{}\" ({:.2} s)",
            h.hex,
            h.records.len(),
            spec.patterns,
            started.elapsed().as_secs_f64()
        ));
        Ok(h.hex)
    }

    /// Why a complete set cannot be trusted, if it cannot: an object its manifest names is
    /// missing, has another size, or was rewritten after the manifest (its entity tag differs).
    pub async fn damage(&self, loc: &SetLocation, m: &Manifest) -> Result<Option<String>> {
        let listing = self
            .list_known(loc, m.files.iter().map(|f| f.path.as_str()))
            .await?;
        Ok(self.damage_in(loc, m, &listing))
    }

    /// The objects of `loc`, at least those at the relative paths `rels`, listed in one round
    /// trip however many there are: knowing the keys, it asks for every 900 of them at once
    /// (listing a page of 1,000 after the key before each slice) instead of page after page.
    /// The other 100 of a page leave room for objects it does not know (the manifest, a
    /// signature); a slice that more of them push past one page is read on to its end.
    pub(super) async fn list_known<'a>(
        &self,
        loc: &SetLocation,
        rels: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<ObjectInfo>> {
        const PAGE: usize = 1000;
        const SLICE: usize = 900;
        let mut keys: Vec<String> = rels.map(|r| loc.key(r)).collect();
        if keys.len() <= SLICE {
            return self.store.list(loc.root()).await;
        }
        // Listings are in UTF-8 byte order, which is `String`'s.
        keys.sort_unstable();
        // Slice i holds the keys after `bounds[i]` up to and including `bounds[i + 1]`.
        let mut bounds: Vec<Option<&str>> = vec![None];
        bounds.extend(keys.chunks(SLICE).map(|c| c.last().map(String::as_str)));
        let last = bounds.len() - 2;
        *bounds.last_mut().expect("at least two bounds") = None;
        let slices = (0..=last).map(|i| {
            let (from, to) = (bounds[i], bounds[i + 1]);
            async move {
                let mut out: Vec<ObjectInfo> = Vec::new();
                let mut after = from.map(str::to_string);
                loop {
                    let page = self
                        .store
                        .list_page(loc.root(), after.as_deref(), PAGE)
                        .await?;
                    let full = page.len() == PAGE;
                    let next = page.last().map(|o| o.key.clone());
                    let past_end = |k: &str| to.is_some_and(|t| k > t);
                    // A full page that reached the slice's last key ends the slice too.
                    let reached = next.as_deref().is_some_and(|k| to.is_some_and(|t| k >= t));
                    let done = !full || reached;
                    out.extend(page.into_iter().filter(|o| !past_end(&o.key)));
                    if done {
                        return Ok::<_, Error>(out);
                    }
                    after = next;
                }
            }
        });
        let mut all: Vec<ObjectInfo> = futures::future::try_join_all(slices)
            .await?
            .into_iter()
            .flatten()
            .collect();
        all.dedup_by(|a, b| a.key == b.key);
        Ok(all)
    }

    /// [`Engine::damage`] against a listing of the set already read.
    pub(super) fn damage_in(
        &self,
        loc: &SetLocation,
        m: &Manifest,
        listing: &[ObjectInfo],
    ) -> Option<String> {
        let present: HashMap<&str, (u64, Option<&String>)> = listing
            .iter()
            .map(|o| (o.key.as_str(), (o.size, o.etag.as_ref())))
            .collect();
        for f in &m.files {
            let why = match present.get(loc.key(&f.path).as_str()) {
                None => "is missing".to_string(),
                Some((size, _)) if *size != f.size => {
                    format!("is {size} bytes but its manifest says {}", f.size)
                }
                Some((_, Some(etag))) if f.etag.as_ref().is_some_and(|e| e != *etag) => {
                    "was modified after the manifest was written".to_string()
                }
                Some(_) => continue,
            };
            return Some(format!("{loc} is damaged: {} {why}", f.path));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{local::LocalStore, PutOptions};

    /// A set of 2,345 objects in a local store, half of them known: the slices listed at once
    /// return every object of the set exactly once, in order, however the unknown ones push
    /// each slice past a page.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_known_keys_in_slices_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path()).unwrap());
        let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
        let loc = engine.layout().artifacts(&"a".repeat(40));
        let rels: Vec<String> = (0..2345).map(|i| format!("d{}/f{i:05}", i % 7)).collect();
        for r in &rels {
            store
                .put_bytes(&loc.key(r), b"x".to_vec(), &PutOptions::default())
                .await
                .unwrap();
        }
        // Another set beside it, whose keys sort after ours.
        let other = engine.layout().artifacts(&"b".repeat(40));
        store
            .put_bytes(&other.key("f"), b"y".to_vec(), &PutOptions::default())
            .await
            .unwrap();
        let mut want: Vec<String> = rels.iter().map(|r| loc.key(r)).collect();
        want.sort();
        for known in [
            rels.iter().collect::<Vec<_>>(),
            rels.iter().step_by(2).collect(),
        ] {
            let got: Vec<String> = engine
                .list_known(&loc, known.iter().map(|r| r.as_str()))
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
            assert_eq!(got, want, "{} keys known", known.len());
        }
    }
}
