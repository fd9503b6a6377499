//! A local directory used as a bucket (`file:///abs/dir`): the same keys as files.
//!
//! Writes go to a temporary file under `<root>/.s3am/tmp` and are renamed into place, so
//! a reader never sees a half-written object. User metadata lives in a JSON sidecar under
//! `<root>/.s3am/meta/<key>`. Neither directory is a key: listings skip `.s3am`.
//! Conditional writes hold an exclusive lock on `<root>/.s3am/lock` from the check to the
//! rename, so of racing conditional writers (processes too) exactly one wins.
//! Every path below the root is resolved from a handle of it, never through a symbolic link
//! ([`crate::beneath`]): a link planted inside the bucket is refused, never read, written or
//! deleted through, and never listed as an object. The root itself may be a link.

use std::collections::BTreeMap;
use std::io::{SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    bare_etag, read_unchanged, Body, ObjectHead, ObjectInfo, PendingUpload, PutMode, PutOptions,
    Reader, Store,
};
use crate::beneath::{Dir, Stat, Tree};
use crate::error::{Error, Result};

use keys::{etag_of, etag_of_meta, not_found, stat_modified_ms};

const INTERNAL: &str = ".s3am";

/// A bucket kept in a local directory.
#[derive(Debug)]
pub(crate) struct LocalStore {
    root: PathBuf,
    /// The root, opened once: every path below it is resolved from here, never through a
    /// link planted in the bucket.
    dir: Dir,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A write's temporary file under `.s3am/tmp`: renamed into place by [`LocalStore::commit`],
/// or removed when dropped.
struct Tmp {
    dir: Dir,
    name: String,
    placed: bool,
}

impl Drop for Tmp {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.dir.unlink_at(&self.name);
        }
    }
}

/// The directory part of a key that can be stored (empty at the top) and its file name, or
/// why it cannot be stored.
fn split(key: &str) -> Result<(&str, &str)> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && !key.contains('\0')
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && key.split('/').next() != Some(INTERNAL);
    if !ok {
        return Err(Error::rejected(format!(
            "key {key:?} cannot be stored in a file bucket: it has an empty, '.', '..' or reserved segment"
        )));
    }
    Ok(key.rsplit_once('/').unwrap_or(("", key)))
}

impl LocalStore {
    /// Opens the directory `root`, which must exist.
    #[cfg(test)]
    pub(crate) fn open(root: &Path) -> Result<Self> {
        Self::open_named(root, super::Names::default())
    }

    /// Opens the directory `root`, which must exist, with an error naming the setting in `names`'
    /// words.
    pub(crate) fn open_named(root: &Path, names: super::Names) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::denied(format!(
                "bucket directory {} does not exist: create it (mkdir -p {}) or fix {}",
                root.display(),
                root.display(),
                names.bucket()
            )));
        }
        let dir =
            Dir::open_root(root, Tree::Bucket).map_err(|e| Error::io("cannot open", root, e))?;
        Ok(LocalStore {
            root: root.to_path_buf(),
            dir,
        })
    }

    /// The directory that holds `key`'s file (created when `create` is set) and the file's
    /// name there; `None` when the directory is missing.
    fn parent_of<'k>(&self, key: &'k str, create: bool) -> Result<Option<(Dir, &'k str)>> {
        let (dir, name) = split(key)?;
        Ok(self.dir.walk(dir, create)?.map(|d| (d, name)))
    }

    /// [`Self::parent_of`] for `key`'s metadata sidecar, under `.s3am/meta`.
    fn meta_parent_of<'k>(&self, key: &'k str, create: bool) -> Result<Option<(Dir, &'k str)>> {
        let (dir, name) = split(key)?;
        let rel = format!("{INTERNAL}/meta/{dir}");
        Ok(self.dir.walk(&rel, create)?.map(|d| (d, name)))
    }

    /// What is at `key`: `None` when nothing, or something that is not a regular file. A
    /// link there is refused.
    fn stat_key(&self, key: &str) -> Result<Option<Stat>> {
        let Some((parent, name)) = self.parent_of(key, false)? else {
            return Ok(None);
        };
        match parent.stat_at(name) {
            Ok(s) if s.is_link() => parent.refuse_link(name).map(|()| None),
            Ok(s) if s.is_file() => Ok(Some(s)),
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(parent.error("cannot stat", name, e)),
        }
    }

    /// Opens `key` to read, without blocking (opening a FIFO to read waits for a writer,
    /// forever), and checks that it is a regular file; `None` when it is missing or a
    /// directory. Returns its path too, for messages.
    fn open_key(&self, key: &str) -> Result<Option<(std::fs::File, PathBuf)>> {
        let Some((parent, name)) = self.parent_of(key, false)? else {
            return Ok(None);
        };
        let path = parent.path().join(name);
        let f = match parent.open_at(name, libc::O_RDONLY | libc::O_NONBLOCK) {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(parent.error("cannot open", name, e)),
        };
        let kind = f
            .metadata()
            .map_err(|e| Error::io("cannot stat", &path, e))?
            .file_type();
        if kind.is_dir() {
            return Ok(None);
        }
        if !kind.is_file() {
            return Err(Error::rejected(format!(
                "{} is not a regular file (a FIFO, socket or device): refusing to read it; remove it from the bucket directory",
                path.display()
            )));
        }
        Ok(Some((f, path)))
    }

    /// A new temporary file under `.s3am/tmp`, open for writing.
    fn tmp_file(&self) -> Result<(Tmp, std::fs::File)> {
        let dir = self
            .dir
            .walk(&format!("{INTERNAL}/tmp"), true)?
            .expect("created");
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{}-{n}-{nanos}", std::process::id());
        let file = dir
            .create_new(&name, false)
            .map_err(|e| dir.error("cannot create", &name, e))?;
        let tmp = Tmp {
            dir,
            name,
            placed: false,
        };
        Ok((tmp, file))
    }

    /// A temporary file holding what `fill` writes to it (given its path, for messages), on
    /// the blocking pool.
    async fn tmp_with(
        &self,
        fill: impl FnOnce(&mut std::fs::File, PathBuf) -> Result<()> + Send + 'static,
    ) -> Result<Tmp> {
        let (tmp, mut file) = self.tmp_file()?;
        let path = tmp.dir.path().join(&tmp.name);
        tokio::task::spawn_blocking(move || fill(&mut file, path))
            .await
            .map_err(|e| Error::task("a write to the bucket directory", e))??;
        Ok(tmp)
    }

    /// Writes metadata, then moves `tmp` into place at `key`; returns the new entity tag.
    fn commit(&self, mut tmp: Tmp, key: &str, opts: &PutOptions) -> Result<String> {
        let json = serde_json::to_vec(&opts.metadata).expect("metadata serialises");
        // No delete removes a directory between its creation here and the rename.
        let _dirs = self.dirs_lock(false)?;
        let (parent, name) = self.parent_of(key, true)?.expect("created");
        let (meta, _) = self.meta_parent_of(key, true)?.expect("created");
        parent.refuse_link(name)?;
        meta.open_at(name, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
            .and_then(|mut f| f.write_all(&json))
            .map_err(|e| meta.error("cannot write", name, e))?;
        // Renamed, the file keeps its inode and time, so its tag; a delete may remove it
        // as soon as it is in place.
        let st = tmp
            .dir
            .stat_at(&tmp.name)
            .map_err(|e| tmp.dir.error("cannot stat", &tmp.name, e))?;
        tmp.dir
            .rename_at(&tmp.name, &parent, name)
            .map_err(|e| parent.error("cannot write", name, e))?;
        tmp.placed = true;
        Ok(etag_of(&st))
    }

    /// A lock between writes and deletes' removal of the directories they empty: shared
    /// while a write makes its directories and renames its file into place, exclusive while
    /// a delete removes directories. The file is opened for each, so that threads of one
    /// process exclude each other too (a lock belongs to an open file).
    fn dirs_lock(&self, exclusive: bool) -> Result<std::fs::File> {
        let internal = self.dir.walk(INTERNAL, true)?.expect("created");
        let name = "dirs.lock";
        let f = internal
            .open_at(name, libc::O_WRONLY | libc::O_CREAT)
            .map_err(|e| internal.error("cannot open", name, e))?;
        match exclusive {
            true => f.lock(),
            false => f.lock_shared(),
        }
        .map_err(|e| internal.error("cannot lock", name, e))?;
        Ok(f)
    }

    /// [`Self::commit`] only when `opts.mode`'s condition holds for the object at `key`; `None`
    /// (and `tmp` removed) when it does not.
    fn commit_if(&self, tmp: Tmp, key: &str, opts: &PutOptions) -> Result<Option<String>> {
        let internal = self.dir.walk(INTERNAL, true)?.expect("created");
        let lock = internal
            .open_at("lock", libc::O_WRONLY | libc::O_CREAT)
            .map_err(|e| internal.error("cannot open", "lock", e))?;
        // Released when `lock` is dropped, after the rename.
        lock.lock()
            .map_err(|e| internal.error("cannot lock", "lock", e))?;
        let current = self.stat_key(key)?.map(|s| etag_of(&s));
        let holds = match &opts.mode {
            PutMode::Overwrite => true,
            PutMode::Create => current.is_none(),
            PutMode::Update(want) => current == Some(bare_etag(want)),
        };
        if !holds {
            return Ok(None);
        }
        self.commit(tmp, key, opts).map(Some)
    }
}

#[async_trait]
impl Store for LocalStore {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn enforces_preconditions(&self) -> Option<bool> {
        // Conditional writes check and rename under one lock.
        Some(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.list_sync(prefix)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        keys.iter().try_for_each(|k| self.delete_sync(k))
    }

    /// The temporary files of writes that never finished (a killed process's). A link at
    /// `.s3am` or `.s3am/tmp` is refused: nothing is ever deleted through it.
    async fn pending_uploads(&self, _prefix: &str) -> Result<Vec<PendingUpload>> {
        let Some(dir) = self.dir.walk(&format!("{INTERNAL}/tmp"), false)? else {
            return Ok(Vec::new());
        };
        let files = dir
            .files()
            .map_err(|e| Error::io("cannot list", dir.path(), e))?;
        Ok(files
            .into_iter()
            .map(|(name, st)| PendingUpload {
                key: format!("{INTERNAL}/tmp/{name}"),
                id: name,
                started_ms: stat_modified_ms(&st),
            })
            .collect())
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        if upload.id.contains('/') || upload.id.starts_with('.') {
            return Err(Error::Internal(format!(
                "not a temporary file: {}",
                upload.id
            )));
        }
        let Some(dir) = self.dir.walk(&format!("{INTERNAL}/tmp"), false)? else {
            return Ok(());
        };
        match dir.unlink_at(&upload.id) {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(dir.error("cannot delete", &upload.id, e)),
        }
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<Vec<ObjectInfo>> {
        let mut all = self.list_sync(prefix)?;
        if let Some(after) = start_after {
            all.retain(|o| o.key.as_str() > after);
        }
        all.truncate(max_keys);
        Ok(all)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectHead>> {
        let Some(st) = self.stat_key(key)? else {
            return Ok(None);
        };
        let mut metadata = BTreeMap::new();
        if let Some((meta, name)) = self.meta_parent_of(key, false)? {
            meta.refuse_link(name)?;
            if let Ok(bytes) = meta
                .open_at(name, libc::O_RDONLY | libc::O_NONBLOCK)
                .and_then(|mut f| {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut f, &mut bytes).map(|_| bytes)
                })
            {
                metadata = serde_json::from_slice(&bytes).unwrap_or_default();
            }
        }
        Ok(Some(ObjectHead {
            size: st.len(),
            metadata,
        }))
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
        let Some((f, path)) = self.open_key(key)? else {
            return Ok(None);
        };
        let mut f = tokio::fs::File::from_std(f);
        match range {
            None => Ok(Some(Box::pin(f))),
            Some((first, last)) => {
                f.seek(SeekFrom::Start(first))
                    .await
                    .map_err(|e| Error::io("cannot seek", &path, e))?;
                Ok(Some(Box::pin(f.take(last + 1 - first))))
            }
        }
    }

    async fn put(&self, key: &str, body: Body<'_>, opts: &PutOptions) -> Result<Option<String>> {
        split(key)?;
        let tmp = match body {
            Body::Bytes(bytes) => {
                self.tmp_with(move |out, path| write_body(out, &bytes, path))
                    .await?
            }
            Body::Small { path, size } => {
                let (from, sha256) = (path.to_path_buf(), opts.sha256);
                self.tmp_with(move |out, path| {
                    write_body(out, &read_unchanged(&from, size, sha256)?, path)
                })
                .await?
            }
            Body::File { path, .. } | Body::Stream(path) => {
                let from = path.to_path_buf();
                self.tmp_with(move |out, _| {
                    std::fs::File::open(&from)
                        .and_then(|mut f| std::io::copy(&mut f, out))
                        .map(drop)
                        .map_err(|e| Error::io("cannot copy", &from, e))
                })
                .await?
            }
        };
        if let Some(hold) = &opts.hold {
            // Withdrawn, the temporary file goes with `tmp`.
            hold.released(key).await?;
        }
        match &opts.mode {
            PutMode::Overwrite => self.commit(tmp, key, opts).map(Some),
            _ => self.commit_if(tmp, key, opts),
        }
    }

    async fn copy(
        &self,
        src: &str,
        dst: &str,
        _size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String> {
        split(dst)?;
        let missing = || {
            Error::NotFound(format!(
                "cannot copy {src}: it does not exist in {}",
                self.url()
            ))
        };
        let (mut src_file, from) = self.open_key(src)?.ok_or_else(missing)?;
        // Compare the tag of the very file we copy from, so a rewrite in between is caught.
        let meta = src_file
            .metadata()
            .map_err(|e| Error::io("cannot stat", &from, e))?;
        if let Some(want) = if_match {
            if etag_of_meta(&meta) != bare_etag(want) {
                return Err(Error::Precondition(format!(
                    "{src} changed after its manifest was written (entity tag differs): not copying it"
                )));
            }
        }
        let tmp = self
            .tmp_with(move |out, _| {
                std::io::copy(&mut src_file, out)
                    .map(drop)
                    .map_err(|e| Error::io("cannot copy", &from, e))
            })
            .await?;
        self.commit(tmp, dst, opts)
    }
}

/// Writes a body into a temporary file.
fn write_body(out: &mut std::fs::File, body: &[u8], path: PathBuf) -> Result<()> {
    out.write_all(body)
        .map_err(|e| Error::io("cannot write", path, e))
}

mod keys;
#[cfg(test)]
mod tests;
