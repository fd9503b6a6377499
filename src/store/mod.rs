//! The object store behind one small trait: S3 (any compatible service) or a local directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{clip, Error, Result};

mod config;
pub(crate) mod local;
pub(crate) mod s3;

pub(crate) use config::*;
pub use config::{Bucket, StoreConfig, Tuning};

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The entity tag, without quotes: changes whenever the object is rewritten.
    pub etag: Option<String>,
    /// When the object was last written (Unix milliseconds), when the store says.
    pub modified_ms: Option<u64>,
}

/// A multipart upload that was started and neither completed nor aborted: its parts take
/// space (and cost) until it is aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key the upload would have written.
    pub key: String,
    /// The store's upload id.
    pub id: String,
    /// When it was started (Unix milliseconds), when the store says.
    pub started_ms: Option<u64>,
}

/// The most keys one [`Store::delete`] takes: S3's limit for one DeleteObjects request.
pub const DELETE_BATCH: usize = 1000;

/// What a HEAD returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// User metadata, keys lowercased.
    pub metadata: BTreeMap<String, String>,
}

/// Options for a write.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// User metadata to store with the object.
    pub metadata: BTreeMap<String, String>,
    /// The content's SHA-256, sent as an S3 checksum on a single PUT where the store takes one.
    pub sha256: Option<[u8; 32]>,
    /// The CRC64/NVME of each part, in order, when the caller already read the file in the
    /// parts [`Store::checksum_parts`] gave; empty otherwise (the store computes them itself).
    pub part_crc64: Vec<u64>,
    /// How the write treats an object already at its key.
    pub mode: PutMode,
    /// Holds the object back from appearing until its caller decides (`None`: no hold).
    pub hold: Option<Hold>,
}

/// A write whose object may not appear until its caller decides ([`PutOptions::hold`]): a
/// publish starts a large file's upload before its read of the set has said whether to
/// write at all. The parts of a multipart upload go meanwhile (nothing is visible before it
/// completes), and the upload completes once the hold is released. A small file's write in
/// one request (S3) goes on the wire at once, its body kept back until the hold is released:
/// its connection is open and its head sent by then; any other one-request write waits before
/// it sends. Withdrawn, the write leaves nothing: the multipart upload is aborted, a body kept
/// back is cut off (a request whose body stops short stores nothing), and a local store's
/// temporary file removed.
#[derive(Debug, Clone)]
pub struct Hold(tokio::sync::watch::Receiver<Option<bool>>);

/// Decides a [`Hold`]: [`Decide::decide`] with `true` lets its writes appear, with `false`
/// withdraws them, and so does dropping it undecided.
#[derive(Debug)]
pub struct Decide(tokio::sync::watch::Sender<Option<bool>>);

impl Hold {
    /// A hold, and what decides it.
    pub fn new() -> (Decide, Hold) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (Decide(tx), Hold(rx))
    }

    /// The decision so far: `None` while undecided, `Some(false)` once withdrawn (by its
    /// decider, or by dropping it undecided).
    pub(crate) fn decision(&self) -> Option<bool> {
        match *self.0.borrow() {
            Some(d) => Some(d),
            None if self.0.has_changed().is_err() => Some(false),
            None => None,
        }
    }

    /// The decision, once made (`false`: withdrawn), as a future that owns what it waits on:
    /// for a request's body, which waits for it on the wire.
    pub(crate) fn decided(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            matches!(
                rx.wait_for(Option::is_some).await.map(|d| *d),
                Ok(Some(true))
            )
        }
    }

    /// Waits for the decision: `Ok` once released, the error to return once withdrawn.
    pub(crate) async fn released(&self, key: &str) -> Result<()> {
        match self.decided().await {
            true => Ok(()),
            false => Err(Error::Withdrawn(format!(
                "the write of {key} was withdrawn before it was visible"
            ))),
        }
    }
}

impl Decide {
    /// Lets the held writes appear (`true`), or withdraws them (`false`).
    pub fn decide(self, release: bool) {
        let _ = self.0.send(Some(release));
    }
}

/// How a write treats an object already at its key (as `object_store`'s `PutMode`). The
/// conditions are enforced by stores that support conditional writes (AWS, SeaweedFS, the
/// local store) and ignored by others (Garage 2.5): correctness never rests on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutMode {
    /// Write whatever is there.
    #[default]
    Overwrite,
    /// Write only if no object has the key (`If-None-Match: *`).
    Create,
    /// Write only if the object still carries this entity tag (`If-Match`).
    Update(String),
}

impl PutMode {
    /// Whether the write carries a condition.
    pub(crate) fn conditional(&self) -> bool {
        *self != PutMode::Overwrite
    }
}

/// What a write sends.
#[derive(Debug)]
pub enum Body<'a> {
    /// Bytes in memory, in one request.
    Bytes(Vec<u8>),
    /// A local file of `size` bytes, streamed, in parts when the store's multipart threshold
    /// says so. Parts take no condition: only [`PutMode::Overwrite`].
    File {
        /// The file.
        path: &'a Path,
        /// Its size when it was hashed.
        size: u64,
    },
    /// A small local file of `size` bytes, whose SHA-256 the caller took (in
    /// [`PutOptions::sha256`]), in one request. A store may read the file again when the
    /// request sends its body, so that no copy of it waits in memory for the store's answer:
    /// on a distant store that wait is a whole round trip, and the bodies of hundreds of
    /// files in flight would otherwise decide how many can be. The bytes sent are refused
    /// unless they are still what was hashed.
    Small {
        /// The file.
        path: &'a Path,
        /// Its size when it was hashed.
        size: u64,
    },
    /// A local file streamed in one request rather than held in memory: a large set's
    /// manifest. A store that has no such stream reads the file whole.
    Stream(&'a Path),
}

/// A streaming object body.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;

/// The operations the engine needs from a bucket.
#[async_trait]
pub trait Store: Send + Sync {
    /// A URL naming the bucket, for logs (`s3://bucket`, `file:///dir`).
    fn url(&self) -> String;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Up to `max_keys` objects whose key starts with `prefix` and sorts after `start_after`,
    /// sorted by key (one listing request).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<Vec<ObjectInfo>>;

    /// The first page of [`Store::list`] (up to 1,000 objects), and whether the listing goes
    /// on past it: by default, whether the page is full.
    async fn list_first(&self, prefix: &str) -> Result<(Vec<ObjectInfo>, bool)> {
        let page = self.list_page(prefix, None, 1000).await?;
        let more = page.len() == 1000;
        Ok((page, more))
    }

    /// Whether this store is known to enforce conditional writes ([`PutMode`]) without asking it:
    /// `Some(true)` for the local store; `None` when only a probe can tell (S3: AWS and SeaweedFS
    /// enforce them, Garage 2.5 ignores them).
    fn enforces_preconditions(&self) -> Option<bool> {
        None
    }

    /// Whether the store is taken to enforce [`PutMode::Create`] before any probe has
    /// answered: the local store, AWS S3, and a store configured so
    /// ([`StoreConfig::conditional_writes_enforced`]). A publisher then writes a small set's
    /// objects with `If-None-Match: *` at once, instead of reading the set first; the probe
    /// still runs beside those writes, and a store that ignores the header is still listed
    /// after its manifest.
    fn expects_enforcement(&self) -> bool {
        self.enforces_preconditions() == Some(true)
    }

    /// How many requests this store has sent (S3 only; 0 elsewhere).
    fn requests(&self) -> u64 {
        0
    }

    /// How many responses so far said the store is throttling (503 SlowDown, 429): transfer
    /// loops keep fewer requests in flight when it grows (S3 only; 0 elsewhere).
    fn throttled(&self) -> u64 {
        0
    }

    /// The fastest answer so far, from sending a request to its response's head: about the
    /// store's round trip, once a connection is open (S3 only; `None` elsewhere, or before
    /// the first answer).
    fn round_trip(&self) -> Option<Duration> {
        None
    }

    /// Whether requests go over TLS (HTTPS): each connection then holds its TLS state and
    /// buffers too, which the transfer loops count against their memory budget (S3 only).
    fn tls(&self) -> bool {
        false
    }

    /// Size and metadata of an object, or `None` if it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectHead>>;

    /// The object's content (or the inclusive byte range `first..=last`), or `None` if it
    /// does not exist.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>>;

    /// [`Store::get`], for a caller that checks the bytes itself: their size and SHA-256
    /// against a manifest. The S3 store then skips the SDK's own check of the object's
    /// checksum, which hashes each small object's body a second time.
    async fn get_checked(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
        self.get(key, range).await
    }

    /// Writes `body` to `key` as [`PutOptions::mode`] says; returns the new object's entity
    /// tag, or `None` when the store refused a conditional write because its condition did
    /// not hold (HTTP 412 or 409; for [`PutMode::Update`] also a missing object). A store that
    /// ignores conditions writes anyway.
    async fn put(&self, key: &str, body: Body<'_>, opts: &PutOptions) -> Result<Option<String>>;

    /// The part size when this store uploads a file of `size` bytes in parts, each with its
    /// own CRC64/NVME checksum: a caller that reads the file anyway (for its SHA-256) can
    /// compute them in the same pass and pass them in [`PutOptions::part_crc64`].
    fn checksum_parts(&self, _size: u64) -> Option<u64> {
        None
    }

    /// Copies `src` to `dst` inside the bucket without downloading it, replacing the metadata;
    /// returns the copy's entity tag. With `if_match`, the copy fails with [`Error::Precondition`]
    /// unless `src` still has that entity tag.
    async fn copy(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String>;

    /// Deletes up to [`DELETE_BATCH`] keys in one request (S3's DeleteObjects). A key that
    /// does not exist is not an error; any key the store refused to delete is.
    async fn delete(&self, keys: &[String]) -> Result<()>;

    /// The unfinished multipart uploads of keys starting with `prefix` (the local store: the
    /// temporary files interrupted writes left behind).
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>>;

    /// Aborts an unfinished upload, freeing its parts.
    async fn abort_upload(&self, upload: &PendingUpload) -> Result<()>;

    /// Reads a small object into memory, or `None` if it does not exist. Reads no more than
    /// `limit + 1` bytes: a longer object comes back cut there, so that the caller can tell
    /// it is over the limit without its memory following a hostile object's size.
    async fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(r) = self.get(key, None).await? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        r.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .await
            .map_err(|e| {
                Error::transient(format!("reading {key} from {} failed: {e}", self.url()), e)
            })?;
        Ok(Some(buf))
    }
}

/// An entity tag without its quotes.
pub(crate) fn bare_etag(e: &str) -> String {
    e.trim().trim_matches('"').to_string()
}

/// One mebibyte.
pub(crate) const MIB: u64 = 1024 * 1024;

/// Opens the configured store.
pub async fn open(cfg: &StoreConfig, tuning: &Tuning) -> Result<Arc<dyn Store>> {
    match &cfg.bucket {
        None => Err(Error::Config(
            "no bucket given: set PACKAGE_ASSETS_BUCKET (or --bucket) to an S3 bucket name or file:///abs/dir".into(),
        )),
        Some(Bucket::Local(dir)) => Ok(Arc::new(local::LocalStore::open_named(dir, cfg.names)?)),
        Some(Bucket::S3(name)) => Ok(Arc::new(s3::S3Store::open(name, cfg, tuning).await?)),
    }
}

/// Reads a small file whole, refusing one whose size is no longer the `size` it was listed
/// with: the build must have finished writing it.
pub(crate) fn read_exactly(path: &Path, size: u64) -> Result<Vec<u8>> {
    let body = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    check_unchanged(path, size, body.len() as u64)?;
    Ok(body)
}

/// Reads a small file whole, refusing one that is no longer what was listed (its `size`) and
/// hashed (`sha256`, when given).
pub(crate) fn read_unchanged(path: &Path, size: u64, sha256: Option<[u8; 32]>) -> Result<Vec<u8>> {
    let body = read_exactly(path, size)?;
    if sha256.is_some_and(|want| <[u8; 32]>::from(Sha256::digest(&body)) != want) {
        return Err(changed(path));
    }
    Ok(body)
}

/// The error for a file whose content is no longer what was hashed.
pub(crate) fn changed(path: &Path) -> Error {
    Error::Input(format!(
        "{} changed while it was being uploaded: the build must finish writing its assets before the upload",
        path.display()
    ))
}

/// The error for a file read at another size than it was listed with.
pub(crate) fn check_unchanged(path: &Path, size: u64, read: u64) -> Result<()> {
    if read == size {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{} changed while it was being uploaded ({size} bytes when listed, {read} now): the build must finish writing its assets before the upload",
        path.display()
    )))
}

#[cfg(test)]
mod tests;
