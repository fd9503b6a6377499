//! The operations every front end calls, one module each, named as the docs name them
//! (`docs/reference.md` for the commands, `docs/bucket-layout.md` for the sets, manifests and
//! index, `docs/reliability.md` for the races and failures):
//!
//! - `lookup`: find a commit's set, or restore it from the cache (the `check` task, the
//!   resource's `put` without `path`);
//! - `restore`: a cache entry copied into an artifacts set, and the cache side of a publish;
//! - `publish`: upload a package directory as a commit's set (the `upload` task, `put`);
//! - `complete`: the manifest written last, racing publishers ending with one set, and the
//!   probe of whether the store enforces conditional writes;
//! - `fetch`: download and verify a set (the CLI's `fetch`, the resource's `in`);
//! - `index`: the version index behind the resource's `check`;
//! - `transfer`: the concurrent upload, copy and download loops every operation calls;
//! - `state`: the reads they all make: a set's manifest (bounded, validated, bound to its
//!   place, trusted), its listing, its damage;
//! - `retry`: the one retry loop, which asks the error whether to try again;
//! - `catalog`: every set in the bucket at a glance (`list`), from listings spread over key
//!   ranges;
//! - `prune`: `delete` and `prune`, manifest first, then the objects.
//!
//! This file holds the types they share, and the code hash.

mod catalog;
mod complete;
mod fetch;
mod index;
mod lookup;
mod prune;
mod publish;
mod restore;
mod retry;
mod state;
mod transfer;
mod window;

pub(crate) use catalog::{CatalogOptions, Kind, Listed, SetSummary};
pub(crate) use fetch::{found_report, refuse_damaged, refuse_invalid, refuse_untrusted};
pub(crate) use prune::{age, Plan, PruneOptions, Why, INCOMPLETE_MAX_AGE};
pub(crate) use window::{FLOOR as FEWEST_IN_FLIGHT, START as FIRST_IN_FLIGHT};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::codehash::{self, Patterns};
use crate::error::{clip, Error, Result};
use crate::layout::Layout;
use crate::log;
use crate::manifest::Manifest;
use crate::signing::{SigningKey, TrustedKeys};
use crate::store::{Store, Tuning};

/// Hands the memory a finished phase freed back to the system. glibc's allocator keeps freed
/// memory in the arena of the thread that freed it, so phases that ran on other threads (the
/// hashing pool, the runtime's workers) would otherwise add their high-water marks to the
/// process's peak RSS: the 50,000-file upload peaked at 80 MB RSS with 42 MB of heap in use.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the
    // system; it touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// This machine's clock in Unix milliseconds (0 before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How the cache may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CacheMode {
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
pub(crate) struct CodeHashSpec {
    /// Which files make up the assets.
    pub patterns: Patterns,
    /// An optional salt mixed into the hash.
    pub salt: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct Report {
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
    pub(crate) fn new(commit: &str, outcome: Outcome) -> Self {
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
    pub(crate) fn log_summary(&self, store: &dyn Store) {
        log::phase(format!(
            "summary: {} for commit {}: {}",
            self.outcome.as_str(),
            self.commit,
            self.summary(store.requests())
        ));
    }

    /// The summary after `summary: <outcome> for commit <commit>: `.
    fn summary(&self, requests: u64) -> String {
        let requests = (requests > 0).then(|| log::count(requests, "S3 request"));
        let set = format!(
            "{}, {}",
            log::count(self.files, "file"),
            log::bytes(self.bytes)
        );
        let seconds = format!("{:.2} s", self.seconds);
        // In brackets: the rate where it means something, and the requests made.
        let aside = |first: Option<String>| {
            let all: Vec<String> = first.into_iter().chain(requests.clone()).collect();
            match all.is_empty() {
                true => String::new(),
                false => format!(" ({})", all.join(", ")),
            }
        };
        if self.moved == 0 {
            let what = match self.outcome {
                Outcome::Missing => "build needed".to_string(),
                Outcome::Found => format!("{set} already complete: skip the build"),
                Outcome::Skipped => "upload skipped: the set is already complete".to_string(),
                Outcome::Restored | Outcome::Uploaded => set,
            };
            return format!("{what}{}", aside(Some(seconds)));
        }
        let how = match self.outcome {
            Outcome::Restored => " copied from the cache",
            Outcome::Found => " downloaded and verified",
            _ => "",
        };
        let rate = log::rate(self.moved, std::time::Duration::from_secs_f64(self.seconds));
        format!("{set}{how} in {seconds}{}", aside(rate))
    }
}

/// Whether a set is complete, as decided by its manifest.
#[derive(Debug, Clone)]
pub(crate) enum SetState {
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
    /// A manifest, but objects it names are gone, of another size, or rewritten (expiry, a
    /// manual delete): not found. A reader refuses it, `check` builds, a publish repairs it.
    Damaged {
        /// What is damaged: "2 of 14 objects missing: a.zip, b.zip".
        why: String,
    },
    /// No manifest: missing, interrupted, or legacy without `accept_legacy`.
    Missing,
}

/// The keys of signed sets: the private key this publisher signs manifests with, and the
/// public keys whose signatures a reader trusts (none: every complete set is trusted).
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    /// Signs every manifest written.
    pub signing: Option<Arc<SigningKey>>,
    /// Makes a set complete only when its manifest is signed by one of these.
    pub trusted: Option<Arc<TrustedKeys>>,
}

/// Options for a lookup (the `check` task and the resource's `put` without `path`).
#[derive(Debug, Clone)]
pub(crate) struct LookupOptions {
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
pub(crate) struct PublishOptions {
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
pub(crate) struct Engine {
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
    /// Held by whoever reads and parses a manifest over 256 KiB: one at a time in the
    /// process, so hostile manifests cannot add up (see `Engine::manifest_bytes`).
    large_manifest: Arc<tokio::sync::Mutex<()>>,
}

impl Engine {
    /// An engine over `store` with keys laid out by `layout`.
    pub(crate) fn new(store: Arc<dyn Store>, layout: Layout, tuning: Tuning) -> Self {
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
            large_manifest: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The same engine, signing and trusting with `keys`. A signing key implies trust in its
    /// own public key: such a publisher takes only sets signed by a trusted key or by itself,
    /// so it never signs what it has not verified.
    pub(crate) fn with_keys(mut self, mut keys: Keys) -> Self {
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
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The layout.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Computes the code hash on the blocking pool and logs it.
    pub(crate) async fn code_hash(&self, repo: &Path, spec: &CodeHashSpec) -> Result<String> {
        let h = self.code_hash_unlogged(repo, spec).await?;
        h.log(spec);
        Ok(h.hex)
    }

    /// Computes the code hash on the blocking pool, without a word: for a hash that may not
    /// be needed. Dropped before it is done, it stops the computation at the next file, so
    /// that the process does not wait for it to end.
    pub(crate) async fn code_hash_unlogged(
        &self,
        repo: &Path,
        spec: &CodeHashSpec,
    ) -> Result<Hashed> {
        /// Sets its flag when dropped: when the hash is done, or no longer wanted.
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let started = Instant::now();
        let stop = StopOnDrop(Arc::default());
        let (repo_buf, spec_c, flag) = (repo.to_path_buf(), spec.clone(), stop.0.clone());
        let h = tokio::task::spawn_blocking(move || {
            codehash::compute_unless(&repo_buf, &spec_c.patterns, &spec_c.salt, &flag)
        })
        .await
        .map_err(|e| Error::task("computing the code hash", e))??;
        Ok(Hashed {
            hex: h.hex,
            files: h.records.len(),
            took: started.elapsed(),
        })
    }
}

/// A code hash computed, and what its log line says of it.
pub(crate) struct Hashed {
    /// Lowercase hex SHA-256.
    pub(crate) hex: String,
    /// The files it covers.
    files: usize,
    /// How long it took.
    took: std::time::Duration,
}

impl Hashed {
    /// Logs the hash, over how many files of `spec`'s patterns, and how long it took.
    pub(crate) fn log(&self, spec: &CodeHashSpec) {
        log::phase(format!(
            "code hash {} over {} matching \"{}\" ({:.2} s)",
            self.hex,
            log::count(self.files as u64, "file"),
            spec.patterns,
            self.took.as_secs_f64()
        ));
    }
}

#[cfg(test)]
mod tests;
