//! Where a download lands: a temporary file beside its target, renamed into place only when
//! its size and SHA-256 match the manifest. Both are named relative to a handle of their
//! directory, opened beneath the destination ([`crate::beneath`]): a directory swapped for a
//! link meanwhile redirects neither. A [`Sink`] takes an object's bytes in order and
//! writes and hashes them on the blocking pool; a [`Ranged`] file takes a large object's
//! ranges as they arrive, out of order, and hashes the file in order behind them.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::beneath::Dir;
use crate::error::{Error, Result};

/// Downloads read, hash and write this much at a time, so that each slice is still in the
/// core's cache (512 KiB of L2 on the benchmark machine) when the kernel copies it into the
/// page cache. Measured when 1 GiB still went through the in-order sink in 8 MiB ranges:
/// 0.81-0.87 s of system time, against 1.8-2.5 s when a whole range was hashed first and then
/// written in 512 KiB slices. Large writes cost more in any case: `dd` wrote 1 GiB in 0.3 s
/// of system time at 512 KiB and 0.7-1.0 s at 2 MiB.
pub(crate) const WRITE_SLICE: usize = 256 * 1024;

/// Files up to this size are handled on the async thread itself, with no trip to the blocking
/// pool: an upload reads and hashes them there, and a download writes them there as they
/// arrive, then checks them. That work takes about as long as the two thread switches of
/// a trip cost.
pub(crate) const INLINE_IO: usize = 128 * 1024;

/// Waits for a download's files to settle: each one renamed into place or removed. Every
/// [`Sink`], [`Ranged`] file and [`Kept`] file holds a [`Token`] of its tracker, and so does
/// each task of the download; a task aborted while it runs on another thread, or while its
/// write runs on the blocking pool, ends a moment later, and the download's error is
/// returned only once it has. Nothing of a refused download is written after its caller
/// cleans up.
pub(crate) struct Tracker {
    token: Token,
    ended: tokio::sync::mpsc::Receiver<()>,
}

/// Held by what may still create or hold a temporary file of a download; see [`Tracker`].
#[derive(Clone, Debug)]
pub(crate) struct Token {
    _held: tokio::sync::mpsc::Sender<()>,
}

impl Tracker {
    pub(crate) fn new() -> Self {
        let (tx, ended) = tokio::sync::mpsc::channel(1);
        Tracker {
            token: Token { _held: tx },
            ended,
        }
    }

    pub(crate) fn token(&self) -> Token {
        self.token.clone()
    }

    /// Waits until every token is dropped: each task that held one has ended, and each
    /// temporary file is renamed or removed (a file's token is dropped after its removal).
    pub(crate) async fn settled(self) {
        let Tracker { token, mut ended } = self;
        drop(token);
        // Nothing is ever sent: `recv` returns `None` once every sender is dropped.
        while ended.recv().await.is_some() {}
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a downloaded file goes: its directory, opened beneath the destination, and its name
/// there. Its temporary file is `.<name>.s3am-partial`, beside it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    dir: Dir,
    name: String,
    tmp: String,
}

impl Target {
    /// The file `name` in `dir`.
    pub(crate) fn new(dir: Dir, name: &str) -> Self {
        Target {
            tmp: format!(".{name}.s3am-partial"),
            name: name.to_string(),
            dir,
        }
    }

    /// The file's path, for messages.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// The temporary file's path, for messages.
    fn tmp_path(&self) -> PathBuf {
        self.dir.path().join(&self.tmp)
    }

    /// Creates the temporary file, never following a leftover (or planted) one of the same
    /// name: that is removed (a link itself, not what it points to) and the file created anew.
    fn create(&self, read: bool) -> Result<File> {
        match self.dir.create_new(&self.tmp, read) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = self.dir.unlink_at(&self.tmp);
                self.dir.create_new(&self.tmp, read)
            }
            other => other,
        }
        .map_err(|e| self.dir.error("cannot create", &self.tmp, e))
    }

    /// Removes the temporary file.
    fn remove_tmp(&self) {
        let _ = self.dir.unlink_at(&self.tmp);
    }
}

/// A download in progress. The file is created at the first chunk, so a download that fails
/// before any byte arrives leaves nothing behind.
pub(crate) struct Sink {
    target: Target,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
    token: Token,
}

impl Sink {
    /// A download to `target`, held by `token`.
    pub(crate) fn new(target: Target, token: Token) -> Self {
        Sink {
            target,
            file: None,
            hasher: Sha256::new(),
            size: 0,
            token,
        }
    }

    /// Hashes and writes one chunk, on the blocking pool.
    pub(crate) async fn write(mut self, chunk: Vec<u8>) -> Result<Self> {
        blocking(move || {
            self.write_now(&chunk)?;
            Ok(self)
        })
        .await
    }

    /// Hashes and writes one slice on this thread: a small file's ([`INLINE_IO`]), whose
    /// page-cache writes take less than a trip to the blocking pool.
    pub(crate) fn write_inline(&mut self, chunk: &[u8]) -> Result<()> {
        self.write_now(chunk)
    }

    fn write_now(&mut self, chunk: &[u8]) -> Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(self.target.create(false)?),
        };
        for piece in chunk.chunks(WRITE_SLICE) {
            self.hasher.update(piece);
            file.write_all(piece)
                .map_err(|e| Error::io("cannot write", self.target.tmp_path(), e))?;
        }
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Writes the `last` chunk (which may be empty), checks the size and (when `sha256` is
    /// given) the SHA-256: in one trip to the blocking pool, or on this thread for a small file
    /// ([`INLINE_IO`]). Returns the checked file, for its owner to rename
    /// to its target ([`Kept::rename`]). On a mismatch the temporary file is removed and
    /// `mismatch(size, sha256)` is the error.
    pub(crate) async fn finish(
        mut self,
        last: Vec<u8>,
        size: u64,
        sha256: Option<[u8; 32]>,
        mismatch: impl FnOnce(u64, &str) -> Error + Send + 'static,
    ) -> Result<Kept> {
        let small = self.size + last.len() as u64 <= INLINE_IO as u64;
        let finish = move || {
            if !last.is_empty() || self.file.is_none() {
                self.write_now(&last)?; // creates the file, even an empty one
            }
            let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
            if self.size != size || sha256.is_some_and(|want| want != got) {
                return Err(mismatch(self.size, &hex::encode(got)));
            }
            drop(self.file.take());
            Ok(Kept::new(self.target.clone(), self.token.clone()))
        };
        if small {
            return finish();
        }
        blocking(finish).await
    }
}

/// A downloaded file whose size and SHA-256 matched, still under its temporary name: renamed
/// into place by [`Kept::rename`], or removed when dropped (the download it belongs to failed).
/// Its token is dropped after either (fields drop after [`Drop::drop`] has run).
#[derive(Debug)]
pub(crate) struct Kept {
    target: Target,
    renamed: bool,
    _token: Token,
}

impl Kept {
    fn new(target: Target, token: Token) -> Self {
        Kept {
            target,
            renamed: false,
            _token: token,
        }
    }

    /// Renames the file to its target, in the directory it was created in (a link at the
    /// target's name is replaced, not followed).
    pub(crate) fn rename(mut self) -> Result<()> {
        self.renamed = true;
        let t = &self.target;
        t.dir.rename_at(&t.tmp, &t.dir, &t.name).map_err(|e| {
            t.remove_tmp();
            Error::io("cannot write", t.path(), e)
        })
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if !self.renamed {
            self.target.remove_tmp();
        }
    }
}

impl Drop for Sink {
    /// A sink dropped before `finish` succeeded (an error, a cancelled task) removes its file.
    fn drop(&mut self) {
        if self.file.take().is_some() {
            self.target.remove_tmp();
        }
    }
}

/// A large download whose ranges arrive at once and out of order: each range is written at
/// its offset as its bytes arrive, while they are still in the cache, the way `s5cmd` writes.
/// A thread on the blocking pool follows behind and hashes the file in order, reading back
/// what the page cache already holds, as far as the ranges are complete. No range is held in
/// memory, and the file is renamed into place only when its size and SHA-256 match.
pub(crate) struct Ranged {
    target: Target,
    file: Arc<File>,
    complete: Option<std::sync::mpsc::Sender<u64>>,
    hasher: Option<tokio::task::JoinHandle<Result<(u64, String)>>>,
    kept: bool,
    token: Token,
}

impl Ranged {
    /// Creates the temporary file and starts the hasher.
    pub(crate) fn create(target: Target, token: Token) -> Result<Self> {
        let file = Arc::new(target.create(true)?);
        let (complete, upto) = std::sync::mpsc::channel::<u64>();
        let reader = file.clone();
        let path = target.tmp_path();
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; WRITE_SLICE];
            let mut done = 0u64;
            // Ends when the sender is dropped: after the last range, or on a failure.
            for end in upto {
                while done < end {
                    let n = (end - done).min(WRITE_SLICE as u64) as usize;
                    reader
                        .read_exact_at(&mut buf[..n], done)
                        .map_err(|e| Error::io("cannot read back", &path, e))?;
                    hasher.update(&buf[..n]);
                    done += n as u64;
                }
            }
            Ok((done, hex::encode(hasher.finalize())))
        });
        Ok(Ranged {
            target,
            file,
            complete: Some(complete),
            hasher: Some(hasher),
            kept: false,
            token,
        })
    }

    /// A handle that writes ranges of the file from a task of its own.
    pub(crate) fn writer(&self) -> RangeWriter {
        RangeWriter {
            tmp: self.target.tmp_path(),
            file: self.file.clone(),
        }
    }

    /// Every byte before `end` has been written: the hasher may read up to there.
    pub(crate) fn complete_to(&self, end: u64) {
        if let Some(tx) = &self.complete {
            let _ = tx.send(end);
        }
    }

    /// A large download whose ranges are each checked by their writers (against the SHA-256
    /// of each piece in the manifest), so no hasher follows behind.
    pub(crate) fn create_unhashed(target: Target, token: Token) -> Result<Self> {
        let file = Arc::new(target.create(false)?);
        Ok(Ranged {
            target,
            file,
            complete: None,
            hasher: None,
            kept: false,
            token,
        })
    }

    /// Waits for the hasher, checks the size and (when given) the SHA-256, and
    /// returns the checked file; see [`Sink::finish`]. A file made by
    /// [`Ranged::create_unhashed`] has had every range checked: it is returned as it is.
    pub(crate) async fn finish(
        mut self,
        size: u64,
        sha256: Option<[u8; 32]>,
        mismatch: impl FnOnce(u64, &str) -> Error + Send + 'static,
    ) -> Result<Kept> {
        drop(self.complete.take());
        if let Some(hasher) = self.hasher.take() {
            let (got_size, got) = hasher
                .await
                .map_err(|e| Error::task("a download's hash", e))??;
            if got_size != size || sha256.is_some_and(|want| hex::encode(want) != got) {
                return Err(mismatch(got_size, &got));
            }
        }
        self.kept = true;
        Ok(Kept::new(self.target.clone(), self.token.clone()))
    }
}

/// Writes ranges of a [`Ranged`] file from a task of its own; the file is removed by its
/// `Ranged`, or renamed through the [`Kept`] that `Ranged::finish` returns.
#[derive(Clone)]
pub(crate) struct RangeWriter {
    tmp: PathBuf,
    file: Arc<File>,
}

impl RangeWriter {
    /// Writes bytes at `offset`. A page-cache write of one slice is short enough to make on
    /// the async thread that received them.
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io("cannot write", &self.tmp, e))
    }
}

impl Drop for Ranged {
    /// A download that failed or was cancelled removes its file; its hasher stops at the
    /// dropped sender.
    fn drop(&mut self) {
        if !self.kept {
            self.target.remove_tmp();
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::task("a download's write", e))?
}

#[cfg(test)]
mod tests;
