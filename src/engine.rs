//! The operations every front end calls: lookup (find or restore), publish, fetch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::assets::{self, Asset};
use crate::codehash::{self, Patterns};
use crate::commit;
use crate::error::{clip, Error, Result};
use crate::layout::{Layout, SetLocation};
use crate::log::{self, Progress};
use crate::manifest::{FileEntry, Manifest};
use crate::sink::{Ranged, Sink, INLINE_IO, WRITE_SLICE};
use crate::store::{PutOptions, Store, Tuning};

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
            seconds: 0.0,
        }
    }

    /// Prints the closing summary line.
    pub fn log_summary(&self, store: &dyn Store) {
        let d = std::time::Duration::from_secs_f64(self.seconds);
        let requests = match store.requests() {
            0 => String::new(),
            1 => ", 1 S3 request".to_string(),
            n => format!(", {n} S3 requests"),
        };
        log::phase(format!(
            "summary: {} for commit {}: {} files, {} in {:.2} s ({}{requests})",
            self.outcome.as_str(),
            self.commit,
            self.files,
            log::bytes(self.bytes),
            self.seconds,
            log::rate(self.bytes, d)
        ));
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
    /// No manifest: missing, interrupted, or legacy without `accept_legacy`.
    Missing,
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
}

fn metadata(commit: &str, sha256: &[u8; 32], code_hash: Option<&str>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("commit-hash".to_string(), commit.to_string());
    m.insert(
        "package-hash".to_string(),
        base64::engine::general_purpose::STANDARD.encode(sha256),
    );
    if let Some(h) = code_hash {
        m.insert("code-hash".to_string(), h.to_string());
    }
    m
}

/// Writes a marker when there is a marker directory.
fn mark(dir: Option<&Path>, name: &str, content: &str) -> Result<()> {
    match dir {
        Some(d) => assets::write_marker(d, name, content),
        None => Ok(()),
    }
}

/// Attempts at one object's transfer (each made of the SDK's own retried requests): a body
/// cut off mid-stream, or a request that failed every SDK attempt, is tried again from the start.
const BODY_ATTEMPTS: u32 = 4;

/// Ranges of one large object downloaded at once.
const RANGES_IN_FLIGHT: usize = 4;

/// The most server-side copies in flight at once.
const COPIES_IN_FLIGHT: usize = 256;

/// How many times a set is rewritten while concurrent publishers overwrite it.
const CONFLICT_ROUNDS: u32 = 8;

/// The object metadata key naming the publisher that wrote it.
const PUBLISHER_KEY: &str = "publisher-id";

/// Where the files of a set being written come from, so that one a concurrent publisher
/// replaced can be written again.
enum Origin {
    /// Local files by relative path (a publish).
    Files(HashMap<String, Local>),
    /// Another set in the bucket (a cache restore or fill), with the entity tag each source
    /// object must still have.
    Set {
        from: SetLocation,
        etags: HashMap<String, Option<String>>,
    },
}

/// A local file to upload, with the SHA-256 of each of its parts when the store checksums
/// parts and the file was hashed in them.
struct Local {
    path: PathBuf,
    part_sha256: Vec<[u8; 32]>,
}

/// A random pause that grows with the round, so racing publishers fall out of step.
fn jitter(round: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(round);
    let spread = 400 * u64::from(round);
    std::time::Duration::from_millis(100 + h.finish() % spread)
}

fn conflict(loc: &SetLocation) -> Error {
    Error::Verify(format!(
        "conflict: concurrent publishers kept replacing each other's objects under {loc}, so no consistent set could be written; downloads verify against the manifest and will refuse a mixed set: run the publish again"
    ))
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
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
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Reads a set's manifest; a set without one is `Missing` (or `Legacy`, logged).
    pub async fn set_state(&self, loc: &SetLocation, accept_legacy: bool) -> Result<SetState> {
        let key = loc.manifest_key();
        if let Some(bytes) = self.store.get_bytes(&key).await? {
            // Writes are atomic, so an unreadable or unsafe manifest was put there by hand
            // (or by an attacker): refuse the set loudly rather than guess.
            return Ok(SetState::Complete(Box::new(Manifest::parse(&bytes, &key)?)));
        }
        let objects = self.store.list(loc.root()).await?;
        if objects.is_empty() {
            return Ok(SetState::Missing);
        }
        if accept_legacy {
            log::phase(format!(
                "{loc} has {} objects and no manifest: a legacy set (written by the original tool, or interrupted); counted as found because accept_legacy is on",
                objects.len()
            ));
            Ok(SetState::Legacy { objects })
        } else {
            log::warn(format!(
                "{loc} has {} objects but no manifest: an interrupted upload, or a legacy set from the original tool; not counted as found (turn on accept_legacy to count legacy sets)",
                objects.len()
            ));
            Ok(SetState::Missing)
        }
    }

    /// The `check` task: resolve the commit, write the markers, find or restore the set.
    pub async fn lookup(&self, opts: &LookupOptions) -> Result<Report> {
        let started = Instant::now();
        let commit = commit::resolve_head(&opts.repo)?;
        mark(opts.markers.as_deref(), assets::COMMIT_MARKER, &commit)?;
        log::phase(format!("commit {commit} ({})", opts.repo.display()));
        let artifacts = self.layout.artifacts(&commit);
        let mut report = Report::new(&commit, Outcome::Missing);
        let found = |report: &mut Report, files: u64, bytes: u64| -> Result<()> {
            mark(opts.markers.as_deref(), assets::FOUND_MARKER, "")?;
            report.outcome = Outcome::Found;
            report.files = files;
            report.bytes = bytes;
            Ok(())
        };
        match self.set_state(&artifacts, opts.accept_legacy).await? {
            SetState::Complete(m) => {
                log::phase(format!(
                    "found {artifacts}: complete, {} files, {} (created {})",
                    m.files.len(),
                    log::bytes(m.total_bytes()),
                    m.created
                ));
                report.code_hash = m.code_hash.clone();
                if let Some(h) = &m.code_hash {
                    mark(opts.markers.as_deref(), assets::CODE_HASH_MARKER, h)?;
                }
                found(&mut report, m.files.len() as u64, m.total_bytes())?;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            SetState::Legacy { objects } => {
                let bytes = objects.iter().map(|o| o.size).sum();
                found(&mut report, objects.len() as u64, bytes)?;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            SetState::Missing => log::phase(format!("{artifacts} is not complete")),
        }
        let spec = match (&opts.code_hash, opts.cache) {
            (Some(spec), CacheMode::ReadWrite | CacheMode::ReadOnly) => spec,
            _ => {
                log::phase("caching is off: build needed");
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
        };
        let hash = self.code_hash(&opts.repo, spec).await?;
        mark(opts.markers.as_deref(), assets::CODE_HASH_MARKER, &hash)?;
        report.code_hash = Some(hash.clone());
        let cache = self.layout.cache(&hash);
        match self.set_state(&cache, false).await? {
            SetState::Complete(m) => match self.damage(&cache, &m).await? {
                Some(problem) => log::warn(format!(
                    "{problem}; not restoring it: build needed (the upload rewrites the entry)"
                )),
                None => {
                    self.restore(&cache, &m, &artifacts, &commit, &hash).await?;
                    mark(opts.markers.as_deref(), assets::FOUND_MARKER, "")?;
                    report.outcome = Outcome::Restored;
                    report.files = m.files.len() as u64;
                    report.bytes = m.total_bytes();
                }
            },
            _ => log::phase(format!("no complete cache entry {cache}: build needed")),
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Computes the code hash on the blocking pool and logs it.
    pub async fn code_hash(&self, repo: &Path, spec: &CodeHashSpec) -> Result<String> {
        let started = Instant::now();
        let (repo_buf, spec_c) = (repo.to_path_buf(), spec.clone());
        let h = tokio::task::spawn_blocking(move || {
            codehash::compute(&repo_buf, &spec_c.patterns, &spec_c.salt)
        })
        .await
        .map_err(|e| Error::Store(format!("code hash task failed: {e}")))??;
        log::phase(format!(
            "code hash {} over {} files matching \"{}\" ({:.2} s)",
            h.hex,
            h.records.len(),
            spec.patterns,
            started.elapsed().as_secs_f64()
        ));
        Ok(h.hex)
    }

    /// Copies a complete cache entry to the artifacts set server-side, manifest last.
    async fn restore(
        &self,
        cache: &SetLocation,
        m: &Manifest,
        artifacts: &SetLocation,
        commit: &str,
        code_hash: &str,
    ) -> Result<()> {
        log::phase(format!(
            "found {cache}: restoring {} files, {} to {artifacts} by server-side copy",
            m.files.len(),
            log::bytes(m.total_bytes())
        ));
        let origin = Origin::Set {
            from: cache.clone(),
            etags: m
                .files
                .iter()
                .map(|f| (f.path.clone(), f.etag.clone()))
                .collect(),
        };
        let files = self
            .write_files(
                artifacts,
                &origin,
                &m.files,
                commit,
                Some(code_hash),
                "restored",
            )
            .await?;
        let Some(files) = self
            .converge(artifacts, &origin, files, commit, Some(code_hash))
            .await?
        else {
            return Ok(());
        };
        let manifest = Manifest::new(commit, Some(code_hash), files);
        self.complete_set(artifacts, manifest, &origin, true).await
    }

    /// Why a complete set cannot be trusted, if it cannot: an object its manifest names is
    /// missing, has another size, or was rewritten after the manifest (its entity tag differs).
    pub async fn damage(&self, loc: &SetLocation, m: &Manifest) -> Result<Option<String>> {
        let present: HashMap<String, (u64, Option<String>)> = self
            .store
            .list(loc.root())
            .await?
            .into_iter()
            .map(|o| (o.key, (o.size, o.etag)))
            .collect();
        for f in &m.files {
            let why = match present.get(&loc.key(&f.path)) {
                None => "is missing".to_string(),
                Some((size, _)) if *size != f.size => {
                    format!("is {size} bytes but its manifest says {}", f.size)
                }
                Some((_, Some(etag))) if f.etag.as_ref().is_some_and(|e| e != etag) => {
                    "was modified after the manifest was written".to_string()
                }
                Some(_) => continue,
            };
            return Ok(Some(format!("{loc} is damaged: {} {why}", f.path)));
        }
        Ok(None)
    }

    /// Writes one file of a set from its origin, with fresh metadata; returns its entity tag
    /// and its SHA-256 (hex), which a small local file gets only here, from the bytes sent.
    async fn write_one(
        &self,
        to: &SetLocation,
        origin: &Origin,
        f: &FileEntry,
        commit: &str,
        code_hash: Option<&str>,
    ) -> Result<(String, String)> {
        let opts = |sha: [u8; 32], part_sha256: Vec<[u8; 32]>| PutOptions {
            metadata: {
                let mut m = metadata(commit, &sha, code_hash);
                m.insert(PUBLISHER_KEY.to_string(), self.publisher.clone());
                m
            },
            sha256: Some(sha),
            part_sha256,
        };
        let key = to.key(&f.path);
        let local = match origin {
            Origin::Files(paths) => paths.get(&f.path).ok_or_else(|| {
                Error::Input(format!("{} vanished from the package directory", f.path))
            })?,
            Origin::Set { from, etags } => {
                let sha = parse_hex32(&f.sha256).ok_or_else(|| {
                    Error::Verify(format!("invalid SHA-256 for {} in a manifest", f.path))
                })?;
                let if_match = etags.get(&f.path).cloned().flatten();
                let etag = self
                    .store
                    .copy(
                        &from.key(&f.path),
                        &key,
                        f.size,
                        &opts(sha, Vec::new()),
                        if_match.as_deref(),
                    )
                    .await?;
                return Ok((etag, f.sha256.clone()));
            }
        };
        if f.size <= IN_MEMORY {
            // Read once, hashed and sent from memory: no second pass over the file.
            let (body, sha) = read_small(&local.path, f.size).await?;
            let etag = self
                .store
                .put_bytes(&key, body, &opts(sha, Vec::new()))
                .await?;
            return Ok((etag, hex::encode(sha)));
        }
        let sha = parse_hex32(&f.sha256)
            .ok_or_else(|| Error::Verify(format!("{} was not hashed before its upload", f.path)))?;
        let etag = self
            .store
            .put_file(
                &key,
                &local.path,
                f.size,
                &opts(sha, local.part_sha256.clone()),
            )
            .await?;
        Ok((etag, f.sha256.clone()))
    }

    /// Writes `files` into `to` concurrently; returns them with their new entity tags.
    async fn write_files(
        &self,
        to: &SetLocation,
        origin: &Origin,
        files: &[FileEntry],
        commit: &str,
        code_hash: Option<&str>,
        verb: &'static str,
    ) -> Result<Vec<FileEntry>> {
        let total = files.iter().map(|f| f.size).sum();
        let (progress, _guard) = Progress::start(verb, files.len() as u64, total);
        // Server-side copies move no bytes through this process, and the store handles many
        // at once more cheaply than a few at a time (Garage: 2,000 copies take 3.8 s at 16 in
        // flight, 2.5 s at 256), so a copy keeps more requests in flight than an upload.
        let window = match origin {
            Origin::Files(_) => self.tuning.concurrency,
            Origin::Set { .. } => self
                .tuning
                .concurrency
                .saturating_mul(16)
                .min(COPIES_IN_FLIGHT),
        };
        let mut written: Vec<(usize, FileEntry)> = futures::stream::iter(files.iter().enumerate())
            .map(|(i, f)| {
                let progress = progress.clone();
                async move {
                    let t = Instant::now();
                    // The SDK retries each request; a file whose request still failed after
                    // all of them is written again from the start, a few times, before the
                    // whole publish gives up.
                    let mut attempt = 1;
                    let (etag, sha256) = loop {
                        match self.write_one(to, origin, f, commit, code_hash).await {
                            Err(Error::Store(e)) if attempt < BODY_ATTEMPTS => {
                                log::warn(format!(
                                    "{e}; writing {} again ({attempt} of {BODY_ATTEMPTS})",
                                    f.path
                                ));
                                tokio::time::sleep(jitter(attempt)).await;
                                attempt += 1;
                            }
                            other => break other?,
                        }
                    };
                    progress.file_done(&f.path, f.size, t.elapsed());
                    Ok::<_, Error>((
                        i,
                        FileEntry {
                            etag: Some(etag),
                            sha256,
                            ..f.clone()
                        },
                    ))
                }
            })
            .buffer_unordered(window.max(1))
            .try_collect()
            .await?;
        written.sort_unstable_by_key(|(i, _)| *i);
        let written: Vec<FileEntry> = written.into_iter().map(|(_, f)| f).collect();
        let took = progress.elapsed();
        log::phase(format!(
            "{verb} {} files, {} to {to} in {:.2} s ({})",
            files.len(),
            log::bytes(total),
            took.as_secs_f64(),
            log::rate(total, took)
        ));
        Ok(written)
    }

    /// The files whose object in `loc` is missing or no longer carries the entity tag we
    /// wrote: a concurrent writer replaced them.
    async fn overwritten(&self, loc: &SetLocation, files: &[FileEntry]) -> Result<Vec<FileEntry>> {
        let now: HashMap<String, Option<String>> = self
            .store
            .list(loc.root())
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

    /// Makes `loc` hold exactly our files. When a concurrent publisher has replaced some, the
    /// one with the smallest publisher id wins: a loser waits for the winner to complete the
    /// set (ours is then superseded: `None`), and takes over only if it never does.
    async fn converge(
        &self,
        loc: &SetLocation,
        origin: &Origin,
        mut files: Vec<FileEntry>,
        commit: &str,
        code_hash: Option<&str>,
    ) -> Result<Option<Vec<FileEntry>>> {
        for round in 1..=CONFLICT_ROUNDS {
            let bad = self.overwritten(loc, &files).await?;
            if bad.is_empty() {
                return Ok(Some(files));
            }
            if self.yield_to_winner(loc, &bad).await? {
                return Ok(None);
            }
            log::warn(format!(
                "{} objects of {loc} were replaced by a concurrent publisher; writing ours again (round {round} of {CONFLICT_ROUNDS})",
                bad.len()
            ));
            tokio::time::sleep(jitter(round)).await;
            let redone = self
                .write_files(loc, origin, &bad, commit, code_hash, "rewrote")
                .await?;
            for r in redone {
                if let Some(f) = files.iter_mut().find(|f| f.path == r.path) {
                    *f = r;
                }
            }
        }
        Err(conflict(loc))
    }

    /// If a publisher with a smaller id wrote some of `bad`, waits for it to complete `loc`
    /// with a set that verifies; true when it did. False when we are the winner, or it gave
    /// no sign of finishing within the timeout (we then take over).
    async fn yield_to_winner(&self, loc: &SetLocation, bad: &[FileEntry]) -> Result<bool> {
        let mut winner: Option<String> = None;
        for f in bad.iter().take(3) {
            if let Some(h) = self.store.head(&loc.key(&f.path)).await? {
                if let Some(id) = h.metadata.get(PUBLISHER_KEY) {
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

    /// Writes a set's manifest last, then checks that no concurrent writer replaced an object
    /// meanwhile (repairing if so); an artifacts set is then indexed for the resource's check.
    async fn complete_set(
        &self,
        loc: &SetLocation,
        mut m: Manifest,
        origin: &Origin,
        artifacts: bool,
    ) -> Result<()> {
        let code_hash = m.code_hash.clone();
        for round in 1..=CONFLICT_ROUNDS {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            if artifacts {
                m.completed_ms = Some(now_ms);
            }
            let body = self.write_manifest(loc, &m).await?;
            let bad = self.overwritten(loc, &m.files).await?;
            if bad.is_empty() {
                if artifacts {
                    self.write_index_entry(&m.commit, now_ms).await?;
                }
                return Ok(());
            }
            let current = self.store.get_bytes(&loc.manifest_key()).await?;
            if current.as_deref() != Some(body.as_slice()) {
                // A later publisher wrote its own manifest; it checks its own objects.
                log::phase(format!(
                    "a concurrent publisher completed {loc} after us; it verifies its own set"
                ));
                return Ok(());
            }
            if self.yield_to_winner(loc, &bad).await? {
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

    async fn write_index_entry(&self, commit: &str, completed_ms: u64) -> Result<()> {
        let key = self.layout.index_key(completed_ms, commit);
        self.store
            .put_bytes(&key, Vec::new(), &PutOptions::default())
            .await?;
        Ok(())
    }

    /// Writes a complete set's index entry if an interrupted publish left it out.
    async fn ensure_indexed(&self, commit: &str, m: &Manifest) -> Result<()> {
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
        let key = self.layout.artifacts(since).manifest_key();
        let Some(bytes) = self.store.get_bytes(&key).await? else {
            log::phase(format!(
                "version {since} no longer exists: reporting the latest set"
            ));
            return Ok(self.latest_version(&prefix).await?.into_iter().collect());
        };
        let m = Manifest::parse(&bytes, &key)?;
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
        // first completion.
        let mut out = vec![since.to_string()];
        for c in newer.into_iter().rev() {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The newest indexed set whose manifest still exists.
    async fn latest_version(&self, prefix: &str) -> Result<Option<String>> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_page(prefix, after.as_deref(), 1).await?;
            let Some(entry) = page.first() else {
                return Ok(None);
            };
            if let Some(c) = self.layout.index_commit(&entry.key) {
                if self
                    .store
                    .head(&self.layout.artifacts(c).manifest_key())
                    .await?
                    .is_some()
                {
                    return Ok(Some(c.to_string()));
                }
            }
            after = Some(entry.key.clone());
        }
    }

    async fn write_manifest(&self, loc: &SetLocation, m: &Manifest) -> Result<Vec<u8>> {
        let body = m.to_bytes();
        let opts = PutOptions {
            metadata: BTreeMap::new(),
            sha256: Some(Sha256::digest(&body).into()),
            part_sha256: Vec::new(),
        };
        self.store
            .put_bytes(&loc.manifest_key(), body.clone(), &opts)
            .await?;
        log::phase(format!(
            "wrote manifest {}: {loc} is complete",
            loc.manifest_key()
        ));
        Ok(body)
    }

    /// The `upload` task: publish the package directory as the commit's asset set.
    pub async fn publish(&self, opts: &PublishOptions) -> Result<Report> {
        let started = Instant::now();
        let dir = &opts.package_dir;
        let skipped = |commit: String, code_hash: Option<String>| Report {
            commit,
            code_hash,
            outcome: Outcome::Skipped,
            files: 0,
            bytes: 0,
            seconds: started.elapsed().as_secs_f64(),
        };
        if assets::is_found(dir) {
            log::phase(format!(
                "{} exists: the assets were found or restored, nothing to upload",
                dir.join(assets::FOUND_MARKER).display()
            ));
            let commit = match &opts.commit {
                Some(c) => c.clone(),
                None => assets::read_commit(dir).unwrap_or_default(),
            };
            return Ok(skipped(commit, None));
        }
        let commit = match &opts.commit {
            Some(c) => c.clone(),
            None => assets::read_commit(dir)?,
        };
        let code_hash = match &opts.code_hash {
            Some(h) => Some(h.clone()),
            None => assets::read_code_hash(dir)?,
        };
        let files = assets::collect(dir)?;
        if files.is_empty() {
            return Err(Error::Input(format!(
                "no files to upload in {}: the build must write its assets there (hidden files are skipped)",
                dir.display()
            )));
        }
        let artifacts = self.layout.artifacts(&commit);
        match self.set_state(&artifacts, opts.accept_legacy).await? {
            SetState::Complete(m) => match self.damage(&artifacts, &m).await? {
                None => {
                    log::phase(format!(
                        "{artifacts} is already complete (another pipeline published it): uploading nothing"
                    ));
                    self.ensure_indexed(&commit, &m).await?;
                    return Ok(skipped(commit, code_hash));
                }
                Some(problem) => log::warn(format!("{problem}; publishing it again")),
            },
            SetState::Legacy { .. } => {
                log::phase(format!(
                    "{artifacts} holds a legacy set, accepted as complete: uploading nothing"
                ));
                return Ok(skipped(commit, code_hash));
            }
            SetState::Missing => {}
        }
        let code_hash = match (code_hash, &opts.compute_code_hash) {
            (None, Some((repo, spec))) => Some(self.code_hash(repo, spec).await?),
            (h, _) => h,
        };
        let parts: Vec<Option<u64>> = files
            .iter()
            .map(|a| self.store.checksum_parts(a.size))
            .collect();
        let hashed = hash_assets(&files, parts).await?;
        let total: u64 = hashed.iter().map(|h| h.size).sum();
        log::phase(format!(
            "uploading {} files, {} to {}{artifacts}",
            files.len(),
            log::bytes(total),
            self.store.url().trim_end_matches('/').to_string() + "/"
        ));
        let entries: Vec<FileEntry> = files
            .iter()
            .zip(&hashed)
            .map(|(a, h)| FileEntry {
                path: a.rel.clone(),
                size: h.size,
                sha256: h.sha256.map(hex::encode).unwrap_or_default(),
                etag: None,
            })
            .collect();
        let origin = Origin::Files(
            files
                .iter()
                .zip(hashed)
                .map(|(a, h)| {
                    let local = Local {
                        path: a.path.clone(),
                        part_sha256: h.parts,
                    };
                    (a.rel.clone(), local)
                })
                .collect(),
        );
        let ch = code_hash.as_deref();
        let written = self
            .write_files(&artifacts, &origin, &entries, &commit, ch, "uploaded")
            .await?;
        let Some(written) = self
            .converge(&artifacts, &origin, written, &commit, ch)
            .await?
        else {
            return Ok(skipped(commit, code_hash));
        };
        if let Some(h) = &code_hash {
            if opts.cache == CacheMode::ReadWrite {
                match self.fill_cache(&artifacts, h, &commit, &written).await {
                    Err(Error::Verify(e)) => log::warn(format!(
                        "cache/{h}/ not filled: {e} (a concurrent publisher); the next build fills it"
                    )),
                    other => other?,
                }
            } else {
                log::phase(format!(
                    "cache is {}: not writing cache/{h}/",
                    if opts.cache == CacheMode::Off {
                        "off"
                    } else {
                        "read-only"
                    }
                ));
            }
        }
        let manifest = Manifest::new(&commit, code_hash.as_deref(), written);
        self.complete_set(&artifacts, manifest, &origin, true)
            .await?;
        Ok(Report {
            commit,
            code_hash,
            outcome: Outcome::Uploaded,
            files: files.len() as u64,
            bytes: total,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn fill_cache(
        &self,
        artifacts: &SetLocation,
        code_hash: &str,
        commit: &str,
        files: &[FileEntry],
    ) -> Result<()> {
        let cache = self.layout.cache(code_hash);
        if let SetState::Complete(m) = self.set_state(&cache, false).await? {
            match self.damage(&cache, &m).await? {
                None => {
                    log::phase(format!("{cache} is already complete: not rewriting it"));
                    return Ok(());
                }
                Some(problem) => log::warn(format!("{problem}; rewriting it")),
            }
        }
        let origin = Origin::Set {
            from: artifacts.clone(),
            etags: files
                .iter()
                .map(|f| (f.path.clone(), f.etag.clone()))
                .collect(),
        };
        let written = self
            .write_files(&cache, &origin, files, commit, Some(code_hash), "cached")
            .await?;
        let manifest = Manifest::new(commit, Some(code_hash), written);
        self.complete_set(&cache, manifest, &origin, false).await
    }

    /// Downloads a complete set into `dest` and verifies every file against the manifest.
    /// Returns `None` when the set is not complete.
    pub async fn fetch(&self, commit: &str, dest: &Path) -> Result<Option<(Manifest, Report)>> {
        let started = Instant::now();
        let artifacts = self.layout.artifacts(commit);
        let m = match self.set_state(&artifacts, false).await? {
            SetState::Complete(m) => *m,
            _ => return Ok(None),
        };
        std::fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
        let total = m.total_bytes();
        log::phase(format!(
            "downloading {} files, {} from {artifacts} to {}",
            m.files.len(),
            log::bytes(total),
            dest.display()
        ));
        let (progress, guard) = Progress::start("downloaded", m.files.len() as u64, total);
        futures::stream::iter(&m.files)
            .map(|f| {
                let progress = progress.clone();
                let key = artifacts.key(&f.path);
                async move {
                    let t = Instant::now();
                    self.download_verified(&key, f, dest).await?;
                    progress.file_done(&f.path, f.size, t.elapsed());
                    Ok::<_, Error>(())
                }
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect::<()>()
            .await?;
        drop(guard);
        let report = Report {
            commit: commit.to_string(),
            code_hash: m.code_hash.clone(),
            outcome: Outcome::Found,
            files: m.files.len() as u64,
            bytes: total,
            seconds: started.elapsed().as_secs_f64(),
        };
        log::phase(format!(
            "verified {} files against the manifest (size and SHA-256)",
            m.files.len()
        ));
        Ok(Some((m, report)))
    }

    /// Downloads a legacy set (no manifest), refusing unsafe keys and checking each file's
    /// size against the listing and its SHA-256 against the `package-hash` metadata.
    pub async fn fetch_legacy(
        &self,
        loc: &SetLocation,
        objects: &[crate::store::ObjectInfo],
        dest: &Path,
    ) -> Result<()> {
        std::fs::create_dir_all(dest).map_err(|e| Error::io("cannot create", dest, e))?;
        log::phase(format!(
            "downloading legacy set {loc}: {} objects, verified against their package-hash metadata",
            objects.len()
        ));
        futures::stream::iter(objects)
            .map(|o| async move {
                let rel = o.key.strip_prefix(loc.root()).unwrap_or(&o.key);
                crate::manifest::check_asset_path(rel).map_err(|why| {
                    Error::Verify(format!(
                        "refusing object {:?} of legacy set {loc}: unsafe path ({why})",
                        o.key
                    ))
                })?;
                let head = self.store.head(&o.key).await?;
                let sha = head
                    .and_then(|h| h.metadata.get("package-hash").cloned())
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .filter(|d| d.len() == 32)
                    .map(hex::encode);
                let entry = FileEntry {
                    path: rel.to_string(),
                    size: o.size,
                    sha256: sha.unwrap_or_default(),
                    etag: None,
                };
                let t = Instant::now();
                self.download_verified(&o.key, &entry, dest).await?;
                log::detail(format!(
                    "downloaded {rel} {} in {:.2} s",
                    log::bytes(o.size),
                    t.elapsed().as_secs_f64()
                ));
                Ok::<_, Error>(())
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// Streams `key` to `dest/<f.path>` through a temporary file, renamed into place only when
    /// the size (and the SHA-256, unless `f.sha256` is empty) match.
    async fn download_verified(&self, key: &str, f: &FileEntry, dest: &Path) -> Result<()> {
        // The SDK retries a request until its response starts; a body cut off mid-stream is
        // retried here, from the start of the file.
        let mut attempt = 1;
        loop {
            match self.download_once(key, f, dest).await {
                Err(Error::Store(e)) if attempt < BODY_ATTEMPTS => {
                    log::warn(format!("{e}; retrying ({attempt} of {BODY_ATTEMPTS})"));
                    tokio::time::sleep(jitter(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn download_once(&self, key: &str, f: &FileEntry, dest: &Path) -> Result<()> {
        crate::manifest::check_asset_path(&f.path).map_err(|why| {
            Error::Verify(format!(
                "refusing to download {}: unsafe path ({why})",
                crate::error::clip(&f.path)
            ))
        })?;
        let target = dest.join(&f.path);
        let parent = target.parent().unwrap_or(dest).to_path_buf();
        create_dirs_inside(dest, &f.path)?;
        let tmp = parent.join(format!(
            ".{}.s3am-partial",
            target.file_name().unwrap_or_default().to_string_lossy()
        ));
        let missing = || {
            Error::Verify(format!(
                "{key} is listed in the manifest but missing from {}: the set is damaged; publish it again",
                self.store.url()
            ))
        };
        let failed = |e: std::io::Error| Error::Store(format!("downloading {key} failed: {e}"));
        let expected = f.sha256.clone();
        let want_size = f.size;
        let key_owned = key.to_string();
        let mismatch = move |size, got: &str| {
            Error::Verify(format!(
                "{key_owned} does not match its manifest (got {size} bytes, SHA-256 {got}; expected {want_size} bytes, {expected}): the object was changed after publishing; refusing it"
            ))
        };
        if f.size >= self.tuning.multipart_threshold {
            // A large object comes in ranges, several at once, each written where it belongs
            // as its bytes arrive; the file is hashed in order behind them.
            let part = self.tuning.part_size.max(1);
            let ranges: Vec<(u64, u64)> = (0..f.size.div_ceil(part))
                .map(|i| (i * part, ((i + 1) * part).min(f.size)))
                .collect();
            let ranged = Ranged::create(tmp)?;
            let file = &ranged;
            let mut written = futures::stream::iter(ranges)
                .map(|(start, end)| async move {
                    let mut body = self
                        .store
                        .get(key, Some((start, end - 1)))
                        .await?
                        .ok_or_else(missing)?;
                    let mut buf = vec![0u8; WRITE_SLICE];
                    let mut at = start;
                    loop {
                        let n = body.read(&mut buf).await.map_err(failed)?;
                        if n == 0 {
                            break;
                        }
                        if at + n as u64 > end {
                            return Err(Error::Verify(format!(
                                "{key} sent more than the {} bytes asked of it: the object was changed after publishing; refusing it",
                                end - start
                            )));
                        }
                        file.write_at(&buf[..n], at)?;
                        at += n as u64;
                    }
                    if at != end {
                        return Err(failed(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("a range ended after {} of {} bytes", at - start, end - start),
                        )));
                    }
                    Ok::<_, Error>(end)
                })
                .buffered(RANGES_IN_FLIGHT);
            // `buffered` yields the ranges in order, so each one completes the file up to its end.
            while let Some(end) = written.next().await {
                file.complete_to(end?);
            }
            drop(written);
            return ranged
                .finish(target, f.size, f.sha256.clone(), mismatch)
                .await;
        }
        let mut sink = Sink::new(tmp);
        let mut body = self.store.get(key, None).await?.ok_or_else(missing)?;
        // Small objects (most of them) fit in one chunk, which goes to the sink with `finish`:
        // one trip to the blocking pool creates, writes, checks and renames the file.
        let chunk = (f.size + 1).clamp(64 * 1024, 4 * WRITE_SLICE as u64);
        let last = loop {
            let mut buf = Vec::with_capacity(chunk as usize);
            (&mut body)
                .take(chunk)
                .read_to_end(&mut buf)
                .await
                .map_err(failed)?;
            if (buf.len() as u64) < chunk {
                break buf;
            }
            sink = sink.write(buf).await?;
        };
        sink.finish(last, target, f.size, f.sha256.clone(), mismatch)
            .await
    }
}

/// Creates the directories of `rel` (a checked asset path) under `dest`, refusing to pass
/// through anything that is not a real directory, such as a symlink planted in `dest`: a
/// download never writes outside its destination.
fn create_dirs_inside(dest: &Path, rel: &str) -> Result<()> {
    let mut dir = dest.to_path_buf();
    let segments: Vec<&str> = rel.split('/').collect();
    for seg in &segments[..segments.len() - 1] {
        dir.push(seg);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Verify(format!(
                    "refusing to download {}: {} exists and is not a directory (a symlink or a file); the destination must not redirect writes",
                    crate::error::clip(rel),
                    dir.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                // Another download of the same set created it meanwhile.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(Error::io("cannot create", &dir, e)),
            },
            Err(e) => return Err(Error::io("cannot stat", &dir, e)),
        }
    }
    Ok(())
}

/// Files up to this size are read once when they upload, and hashed from those bytes.
const IN_MEMORY: u64 = 1 << 20;

/// Reads a small file whole, on the blocking pool, and hashes it.
async fn read_small(path: &Path, size: u64) -> Result<(Vec<u8>, [u8; 32])> {
    let p = path.to_path_buf();
    let read = move || {
        let body = std::fs::read(&p).map_err(|e| Error::io("cannot read", &p, e))?;
        if body.len() as u64 != size {
            return Err(Error::Input(format!(
                "{} changed while it was being uploaded ({size} bytes when listed, {} now): the build must finish writing its assets before the upload",
                p.display(),
                body.len()
            )));
        }
        let sha = Sha256::digest(&body).into();
        Ok((body, sha))
    };
    if size <= INLINE_IO as u64 {
        return read();
    }
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| Error::Store(format!("reading task failed: {e}")))?
}

/// One asset's size and SHA-256 (none for a small file, hashed as it uploads), and the
/// SHA-256 of each of its parts when it was hashed in parts.
struct Hashed {
    size: u64,
    sha256: Option<[u8; 32]>,
    parts: Vec<[u8; 32]>,
}

/// Hashes the assets larger than [`IN_MEMORY`] on the blocking pool, in parallel: size and
/// SHA-256, and where `parts[i]` gives a part size, the SHA-256 of each part too. The parts of
/// a large file are hashed on other cores while one core hashes the whole file, so the upload
/// that follows reads each part once, to send it.
async fn hash_assets(files: &[Asset], parts: Vec<Option<u64>>) -> Result<Vec<Hashed>> {
    let work: Vec<(PathBuf, u64, Option<u64>)> = files
        .iter()
        .zip(parts)
        .map(|(a, p)| (a.path.clone(), a.size, p))
        .collect();
    tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        work.par_iter()
            .map(|(path, size, part)| {
                if *size <= IN_MEMORY {
                    return Ok(Hashed {
                        size: *size,
                        sha256: None,
                        parts: Vec::new(),
                    });
                }
                let Some(part) = part.filter(|p| *p > 0) else {
                    let (size, sha256) = codehash::sha256_file(path)?;
                    return Ok(Hashed {
                        size,
                        sha256: Some(sha256),
                        parts: Vec::new(),
                    });
                };
                let (whole, parts) = rayon::join(
                    || codehash::sha256_file(path),
                    || {
                        (0..size.div_ceil(part))
                            .into_par_iter()
                            .map(|i| {
                                codehash::sha256_range(path, i * part, part.min(size - i * part))
                            })
                            .collect::<Result<Vec<_>>>()
                    },
                );
                let (got, sha256) = whole?;
                // A file that changed size since it was listed is hashed again by the store.
                let parts = if got == *size { parts? } else { Vec::new() };
                Ok(Hashed {
                    size: got,
                    sha256: Some(sha256),
                    parts,
                })
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| Error::Store(format!("hashing task failed: {e}")))?
}
