//! Transfers: the concurrent loops that write a set's files (uploads and server-side copies)
//! and download them verified, with per-file retries. Every operation moves bytes through
//! here, so its scheduling (how many in flight, ranges of a large object) lives in one place.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::retry::retried;
use super::window::{self, Window};
use super::Engine;
use crate::beneath::{Dir, Dirs};
use crate::error::{Error, Result};
use crate::layout::{meta, SetLocation};
use crate::log::{self, Progress};
use crate::manifest::{FileEntry, Pieces, Sha256Hex};
use crate::sink::{Kept, Ranged, Sink, Target, Token, INLINE_IO, WRITE_SLICE};
use crate::store::{Body, Hold, PutMode, PutOptions, Store, Tuning, PARTS_IN_FLIGHT};

/// What every object written into a set is stamped with: the commit its assets were built
/// from and the code hash, when caching is on. They travel together, so they cannot swap.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp<'a> {
    /// The commit.
    pub commit: &'a str,
    /// The code hash, when caching is on.
    pub code_hash: Option<&'a str>,
    /// Whether the objects are written again in a repair, after our manifest: their
    /// publisher is still at work, and racing publishers may wait for it.
    pub repair: bool,
    /// Holds the objects back from appearing until the publish has read the set
    /// ([`crate::store::Hold`]); `None`: they appear as they are written.
    pub hold: Option<&'a Hold>,
}

impl<'a> Stamp<'a> {
    /// The stamp of objects copied between an artifacts set and a cache entry: the places
    /// name both.
    pub(super) fn of(artifacts: &'a SetLocation, cache: &'a SetLocation) -> Self {
        Stamp {
            commit: artifacts.id(),
            code_hash: Some(cache.id()),
            repair: false,
            hold: None,
        }
    }
}

/// The user metadata of an asset object: its stamp, its content's SHA-256 (base64, Lambda's
/// `CodeSha256` format), and the publisher that wrote it.
fn metadata(stamp: Stamp<'_>, sha256: &[u8; 32], publisher: &str) -> BTreeMap<String, String> {
    with_package_hash(stamped(stamp, publisher), sha256)
}

/// [`metadata`] before the content's SHA-256 is known.
fn stamped(stamp: Stamp<'_>, publisher: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(meta::COMMIT.to_string(), stamp.commit.to_string());
    if let Some(h) = stamp.code_hash {
        m.insert(meta::CODE_HASH.to_string(), h.to_string());
    }
    m.insert(meta::PUBLISHER.to_string(), publisher.to_string());
    if stamp.repair {
        m.insert(meta::REPAIR.to_string(), "true".to_string());
    }
    m
}

/// `m` with the content's SHA-256 added, base64 (Lambda's `CodeSha256` format).
fn with_package_hash(
    mut m: BTreeMap<String, String>,
    sha256: &[u8; 32],
) -> BTreeMap<String, String> {
    m.insert(
        meta::PACKAGE_HASH.to_string(),
        base64::engine::general_purpose::STANDARD.encode(sha256),
    );
    m
}

/// Runs `job` as a task of its own, so that the work of many transfers (hashing, file
/// writes, the SDK's request handling) spreads over the runtime's threads instead of sharing
/// the one task that polls the loop. Dropping the returned future aborts the task: a loop
/// that stops at the first error leaves no transfer running.
pub(super) async fn spawned<T: Send + 'static>(
    job: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(job));
    (&mut task.0)
        .await
        .map_err(|e| Error::task("a transfer", e))?
}

/// What a large file's transfer holds in memory: its [`PARTS_IN_FLIGHT`] parts or ranges, each
/// with a 256 KiB buffer of ours and its connection's (up to about 400 KiB). Measured, not
/// guessed: downloading 8 files of 96 MiB peaked at 68 MB RSS with 8 MiB counted per file (4
/// files, 64 ranges at once), and at 42-46 MB with 16 MiB (2 files, 32 ranges); through a
/// 40 ms-each-way proxy that took 2.05-2.13 s, against 1.80-1.87 s and 89-90 MB for 8 files of
/// 8 ranges each when 4 MiB was counted.
const STREAMING: u64 = 16 << 20;

/// What any request in flight holds beyond its body: its connection's read buffer (capped at
/// `READ_BUFFER` in `store/s3/client.rs`) and the client's state. A small file's upload holds only
/// this: its body is read again as the request sends it ([`Body::Small`]); so does a small
/// file's download, which streams into its temporary file 16 KiB at a time.
/// Measured, not guessed, through a 400 ms-each-way proxy: 2,000 downloads of 64 KiB peaked
/// at 42-43 MB RSS with 256 in flight while each was received whole (budget: 64 KiB + 64 KiB
/// each), and at 49 MB with 505 connections once streamed (6.0 s, against 9.1 s); 2,000
/// uploads at 54 MB with 512 in flight, 35 MB at 256.
const PER_REQUEST: u64 = 64 << 10;

/// What a small download's connection holds beyond [`PER_REQUEST`] over HTTPS: its TLS
/// state and record buffers. Measured, not guessed: 2,000 verified downloads of 64 KiB through
/// a 40 ms-each-way proxy peaked at 80 MB RSS over HTTPS (stunnel in front of Garage) with
/// about 505 in flight, against 55 MB over HTTP: about 60 KB a download more.
const PER_TLS_CONNECTION: u64 = 64 << 10;

/// What a small upload's or a server-side copy's connection holds over HTTPS beyond
/// [`PER_REQUEST`] or [`COPY_REQUEST`]: its TLS state and the records it encrypts ahead of
/// the socket. Less than a download's: only a short answer comes back. Measured, not guessed,
/// through a 40 ms-each-way proxy, over HTTPS (stunnel in front of Garage) against HTTP:
/// 2,000 uploads of 64 KiB peaked at 63-64 MB RSS with 512 in flight, against 54 MB (about
/// 18 KB an upload more); a cache restore of 2,000 files at 59-61 MB with about 680 copies in
/// flight, against 53 MB (about 10 KB a copy more).
const PER_TLS_WRITE: u64 = 16 << 10;

/// What a server-side copy in flight holds: its request's state in the HTTP client and the
/// SDK, and its connection's buffers, with no body. Measured, not guessed: a cache restore of
/// 2,000 files through a 400 ms-each-way proxy peaked at 67-69 MB RSS with 1,024 copies in
/// flight (when copies counted nothing and the window's limit decided), about 48 KB a copy
/// above the 14 MB the process holds with none.
const COPY_REQUEST: u64 = 48 << 10;

/// Where the files of a set being written come from, so that one a concurrent publisher
/// replaced can be written again.
pub(super) enum Origin {
    /// The files of a package directory, by their paths relative to it (a publish), with
    /// the CRC64/NVME of each part of those read in parts when the store checksums parts.
    /// Nothing per file beyond that: a set of 50,000 files would otherwise hold a path and a
    /// map entry for each, some 12 MB, for the whole publish.
    Files {
        dir: PathBuf,
        part_crc64: HashMap<String, Vec<u64>>,
    },
    /// Another set in the bucket (a cache restore or fill), with the entity tag each source
    /// object must still have.
    Set {
        from: SetLocation,
        etags: HashMap<String, Option<String>>,
    },
}

impl Engine {
    /// Writes one file of a set from its origin, with fresh metadata; returns its entity tag
    /// and its SHA-256, which a small local file gets only here, from the bytes sent.
    /// With `new_only`, a small local file is written with `If-None-Match: *`, and `None`
    /// says the store refused it (the key exists); anything else is not written at all and
    /// counts as refused, to be written once the caller knows it may.
    async fn write_one(
        &self,
        to: &SetLocation,
        origin: &Origin,
        f: &FileEntry,
        stamp: Stamp<'_>,
        new_only: bool,
    ) -> Result<Option<(String, Sha256Hex)>> {
        let opts = |sha: [u8; 32], part_crc64: Vec<u64>| PutOptions {
            metadata: metadata(stamp, &sha, &self.publisher),
            sha256: Some(sha),
            part_crc64,
            mode: PutMode::Overwrite,
            hold: stamp.hold.cloned(),
        };
        let key = to.key(&f.path);
        let (path, part_crc64) = match origin {
            Origin::Files { dir, part_crc64 } => (dir.join(&f.path), part_crc64.get(&f.path)),
            Origin::Set { .. } if new_only => return Ok(None),
            Origin::Set { from, etags } => {
                let sha = f.sha256.bytes().ok_or_else(|| {
                    Error::Corrupt(format!("invalid SHA-256 for {} in a manifest", f.path))
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
                return Ok(Some((etag, f.sha256)));
            }
        };
        if f.size <= IN_MEMORY {
            return self.write_small(key, path, f.size, stamp, new_only).await;
        }
        let (store, size) = (self.store.clone(), f.size);
        if new_only {
            return Ok(None);
        }
        let sha = f.sha256.bytes().ok_or_else(|| {
            Error::Corrupt(format!("{} was not hashed before its upload", f.path))
        })?;
        let opts = opts(sha, part_crc64.cloned().unwrap_or_default());
        let etag = spawned(async move {
            let body = Body::File { path: &path, size };
            unless_withdrawn(store.put(&key, body, &opts).await)
        })
        .await?;
        Ok(etag.map(|etag| (etag, f.sha256)))
    }

    /// [`Engine::write_one`] of a small local file (at most [`IN_MEMORY`] bytes), hashed as it
    /// goes: up to [`INLINE_IO`] read again as its request sends it, above that read once and
    /// sent from memory.
    async fn write_small(
        &self,
        key: String,
        path: PathBuf,
        size: u64,
        stamp: Stamp<'_>,
        new_only: bool,
    ) -> Result<Option<(String, Sha256Hex)>> {
        let store = self.store.clone();
        if size <= INLINE_IO as u64 {
            // Hashed here, then read again as the request sends it: nothing of the file waits
            // in memory for the store's answer, so the files in flight that hide a distant
            // store's round trip cost their requests, not their bodies.
            let stamped = stamped(stamp, &self.publisher);
            let hold = stamp.hold.cloned();
            return spawned(async move {
                let sha = hash_small(&path, size)?;
                let opts = PutOptions {
                    metadata: with_package_hash(stamped, &sha),
                    sha256: Some(sha),
                    part_crc64: Vec::new(),
                    mode: mode(new_only),
                    hold,
                };
                let body = Body::Small { path: &path, size };
                let etag = unless_withdrawn(store.put(&key, body, &opts).await)?;
                Ok(etag.map(|etag| (etag, sha.into())))
            })
            .await;
        }
        // Read once, hashed and sent from memory: no second pass over the file.
        let stamped = stamped(stamp, &self.publisher);
        let hold = stamp.hold.cloned();
        spawned(async move {
            let (body, sha) = read_small(&path, size).await?;
            let opts = PutOptions {
                metadata: with_package_hash(stamped, &sha),
                sha256: Some(sha),
                part_crc64: Vec::new(),
                mode: mode(new_only),
                hold,
            };
            let etag = unless_withdrawn(store.put(&key, Body::Bytes(body), &opts).await)?;
            Ok(etag.map(|etag| (etag, sha.into())))
        })
        .await
    }

    /// The memory a transfer of `size` bytes holds while in flight: a small file whole (read
    /// for its upload, or received before it is written) and its request's buffers, a large
    /// one the buffers it streams through. Files of up to [`INLINE_IO`] hold only their
    /// request's ([`PER_REQUEST`]); their callers count that instead.
    fn memory_held(&self, size: u64) -> u64 {
        if size >= self.tuning.multipart_threshold {
            STREAMING
        } else {
            size.min(IN_MEMORY) + PER_REQUEST
        }
    }

    /// Writes `files` into `to` concurrently; returns them with their new entity tags.
    pub(super) async fn write_files(
        &self,
        to: &SetLocation,
        origin: &Origin,
        files: &[FileEntry],
        stamp: Stamp<'_>,
        verb: &'static str,
    ) -> Result<Vec<FileEntry>> {
        let (written, _) = self
            .write_some(to, origin, files, stamp, verb, false)
            .await?;
        Ok(written)
    }

    /// Writes `files` into `to` concurrently where their keys are free, each with
    /// `If-None-Match: *`: the files written, with their new entity tags, and those the store
    /// refused (their keys exist). Only small local files are written so; any other counts
    /// as refused. On a store that ignores the header, every write is accepted.
    pub(super) async fn write_new_files(
        &self,
        to: &SetLocation,
        origin: &Origin,
        files: &[FileEntry],
        stamp: Stamp<'_>,
    ) -> Result<(Vec<FileEntry>, Vec<FileEntry>)> {
        self.write_some(to, origin, files, stamp, "uploaded", true)
            .await
    }

    /// [`Engine::write_files`], or with `new_only` [`Engine::write_new_files`].
    async fn write_some(
        &self,
        to: &SetLocation,
        origin: &Origin,
        files: &[FileEntry],
        stamp: Stamp<'_>,
        verb: &'static str,
        new_only: bool,
    ) -> Result<(Vec<FileEntry>, Vec<FileEntry>)> {
        let total = crate::manifest::sum_sizes(files.iter().map(|f| f.size));
        let (progress, _guard) = Progress::start(verb, files.len() as u64, total);
        let max = self.tuning.concurrency;
        let throttles = self.store.throttled();
        // Server-side copies move no bytes through this process, and the store handles many at
        // once more cheaply than a few at a time (Garage: 2,000 copies took 3.8 s at 16 in
        // flight, 2.5 s at 256); they start with the whole window too, and hold only their
        // requests' state ([`COPY_REQUEST`], and over HTTPS their connections').
        let mut window = Window::new(max, throttles, self.store.round_trip()).held_by(stamp.hold);
        let tls = if self.store.tls() { PER_TLS_WRITE } else { 0 };
        let jobs = files.iter().enumerate().map(|(i, f)| {
            let progress = progress.clone();
            let held = match origin {
                // A small file is read again as its request sends it ([`Body::Small`]): it
                // holds its request's buffers (and its connection's TLS state), not its body.
                Origin::Files { .. } if f.size <= INLINE_IO as u64 => PER_REQUEST + tls,
                Origin::Files { .. } => self.memory_held(f.size),
                Origin::Set { .. } => COPY_REQUEST + tls,
            };
            (held, async move {
                let t = Instant::now();
                // The SDK retries each request; a file whose request still failed after
                // all of them is written again from the start, a few times, before the
                // whole publish gives up.
                let done = retried(
                    || format!("writing {} again", f.path),
                    || self.write_one(to, origin, f, stamp, new_only),
                )
                .await?;
                if done.is_some() {
                    progress.file_done(&f.path, f.size, t.elapsed());
                }
                Ok::<_, Error>((i, done))
            })
        });
        // What each write returned, in the files' order: the entries are made once all are
        // written, not cloned as each one completes.
        let mut results: Vec<Option<(String, Sha256Hex)>> = Vec::new();
        results.resize_with(files.len(), || None);
        let reserved = files.len() as u64 * window::PER_FILE;
        window::run(
            self.store.as_ref(),
            &mut window,
            reserved,
            jobs,
            |(i, done)| results[i] = done,
        )
        .await?;
        let count = results.iter().filter(|r| r.is_some()).count();
        let (mut written, mut refused) = (Vec::with_capacity(count), Vec::new());
        for (f, done) in files.iter().zip(results) {
            match done {
                Some((etag, sha256)) => written.push(FileEntry {
                    etag: Some(etag),
                    sha256,
                    ..f.clone()
                }),
                None => refused.push(f.clone()),
            }
        }
        let took = progress.elapsed();
        let total = total - crate::manifest::sum_sizes(refused.iter().map(|f| f.size));
        if written.is_empty() && !refused.is_empty() {
            // Nothing written: all refused (their keys were taken) or withdrawn.
            return Ok((written, refused));
        }
        log::phase(format!(
            "{verb} {}, {} to {to} in {:.2} s{}",
            log::count(written.len() as u64, "file"),
            log::bytes(total),
            took.as_secs_f64(),
            log::rate(total, took)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
        Ok((written, refused))
    }
}

mod download;

/// Files up to this size are read once when they upload, and hashed from those bytes.
pub(super) const IN_MEMORY: u64 = 1 << 20;

/// Reads a small file whole, on the blocking pool, and hashes it.
async fn read_small(path: &Path, size: u64) -> Result<(Vec<u8>, [u8; 32])> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let body = crate::store::read_exactly(&p, size)?;
        let sha = Sha256::digest(&body).into();
        Ok((body, sha))
    })
    .await
    .map_err(|e| Error::task("reading a file", e))?
}

/// The SHA-256 of a file of at most [`INLINE_IO`] bytes, read on this thread into a buffer
/// the thread keeps: nothing is allocated for it, and nothing of it is kept.
fn hash_small(path: &Path, size: u64) -> Result<[u8; 32]> {
    use std::io::Read;
    thread_local!(static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
    BUFFER.with_borrow_mut(|buf| {
        buf.clear();
        // One byte more than expected shows a file that grew.
        std::fs::File::open(path)
            .and_then(|f| f.take(size + 1).read_to_end(buf))
            .map_err(|e| Error::io("cannot read", path, e))?;
        let now = match buf.len() as u64 {
            n if n > size => std::fs::metadata(path).map_or(n, |m| m.len()),
            n => n,
        };
        crate::store::check_unchanged(path, size, now)?;
        Ok(Sha256::digest(&buf[..]).into())
    })
}

/// A write's entity tag, or `None` (not written, as a refused one) when its caller withdrew it
/// ([`crate::store::Hold`]): every held write then runs to its end, and a multipart upload is
/// aborted rather than cancelled by the first withdrawal's error.
fn unless_withdrawn(put: Result<Option<String>>) -> Result<Option<String>> {
    match put {
        Err(Error::Withdrawn(_)) => Ok(None),
        other => other,
    }
}

/// A write of a file only a publisher that found its key free may make ([`PutMode::Create`]),
/// or any write.
fn mode(new_only: bool) -> PutMode {
    match new_only {
        true => PutMode::Create,
        false => PutMode::Overwrite,
    }
}
