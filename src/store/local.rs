//! A local directory used as a bucket (`file:///abs/dir`): the same keys as files.
//!
//! Writes go to a temporary file under `<root>/.s3am/tmp` and are renamed into place, so
//! a reader never sees a half-written object. User metadata lives in a JSON sidecar under
//! `<root>/.s3am/meta/<key>`. Neither directory is a key: listings skip `.s3am`.
//! Conditional writes hold an exclusive lock on `<root>/.s3am/lock` from the check to the
//! rename, so of racing conditional writers (processes too) exactly one wins.

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    bare_etag, ObjectHead, ObjectInfo, PendingUpload, Precondition, PutOptions, Reader, Store,
};
use crate::error::{Error, Result};

const INTERNAL: &str = ".s3am";

/// A bucket kept in a local directory.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalStore {
    /// Opens the directory `root`, which must exist.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::denied(format!(
                "bucket directory {} does not exist: create it (mkdir -p {}) or fix PACKAGE_ASSETS_BUCKET",
                root.display(),
                root.display()
            )));
        }
        Ok(LocalStore {
            root: root.to_path_buf(),
        })
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
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
        Ok(self.root.join(key))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join(INTERNAL).join("meta").join(key)
    }

    fn tmp_path(&self) -> Result<PathBuf> {
        let dir = self.root.join(INTERNAL).join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(dir.join(format!("{}-{n}-{nanos}", std::process::id())))
    }

    /// Writes metadata, then moves `tmp` into place at `key`; returns the new entity tag.
    fn commit(&self, tmp: &Path, key: &str, opts: &PutOptions) -> Result<String> {
        let dest = self.path_of(key)?;
        let meta = self.meta_path(key);
        for p in [&dest, &meta] {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create", parent, e))?;
            }
        }
        let json = serde_json::to_vec(&opts.metadata).expect("metadata serialises");
        let placed = || -> std::io::Result<()> {
            std::fs::write(&meta, &json)?;
            std::fs::rename(tmp, &dest)
        };
        // A delete removes directories it empties: one that went between our
        // `create_dir_all` and the rename is made again.
        let mut result = placed();
        for _ in 0..3 {
            match &result {
                Err(e) if not_found(e) && tmp.exists() => {}
                _ => break,
            }
            for p in [&dest, &meta] {
                if let Some(parent) = p.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
            }
            result = placed();
        }
        result.map_err(|e| {
            let _ = std::fs::remove_file(tmp);
            Error::io("cannot write", &dest, e)
        })?;
        let meta = std::fs::metadata(&dest).map_err(|e| Error::io("cannot stat", &dest, e))?;
        Ok(etag_of(&meta))
    }

    /// [`Self::commit`] only when `cond` holds for the object at `key`; `None` (and `tmp`
    /// removed) when it does not.
    fn commit_if(
        &self,
        tmp: &Path,
        key: &str,
        opts: &PutOptions,
        cond: Precondition<'_>,
    ) -> Result<Option<String>> {
        let lock_path = self.root.join(INTERNAL).join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("cannot open", &lock_path, e))?;
        // Released when `lock` is dropped, after the rename.
        lock.lock()
            .map_err(|e| Error::io("cannot lock", &lock_path, e))?;
        let dest = self.path_of(key)?;
        let current = match std::fs::metadata(&dest) {
            Ok(m) if m.is_file() => Some(etag_of(&m)),
            Ok(_) => None,
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(Error::io("cannot stat", &dest, e)),
        };
        let holds = match cond {
            Precondition::Absent => current.is_none(),
            Precondition::Matches(want) => current == Some(bare_etag(want)),
        };
        if !holds {
            let _ = std::fs::remove_file(tmp);
            return Ok(None);
        }
        self.commit(tmp, key, opts).map(Some)
    }

    /// Removes the object at `key` and its metadata, then the directories that leaves
    /// empty (a later listing would walk them).
    fn delete_sync(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        for p in [&path, &self.meta_path(key)] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(Error::io("cannot delete", p, e)),
            }
        }
        for top in [self.root.clone(), self.root.join(INTERNAL).join("meta")] {
            let mut dir = top.join(key);
            while dir.pop() && dir != top && dir.starts_with(&top) {
                // Fails (and stops) at the first directory that is not empty.
                if std::fs::remove_dir(&dir).is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let dir_part = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_part)
        };
        let mut out = Vec::new();
        if !start.is_dir() {
            return Ok(out);
        }
        let internal = self.root.join(INTERNAL);
        let walker = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.path() != internal);
        for entry in walker {
            let entry = entry.map_err(|e| {
                let p = e.path().unwrap_or(&start).to_path_buf();
                Error::io(
                    "cannot list",
                    p,
                    e.into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
                )
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&self.root)
                .unwrap_or(entry.path());
            let Some(key) = rel.to_str() else { continue };
            if key.starts_with(prefix) {
                let meta = entry
                    .metadata()
                    .map_err(|e| Error::Internal(format!("cannot stat {key}: {e}")))?;
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: meta.len(),
                    etag: Some(etag_of(&meta)),
                    modified_ms: modified_ms(&meta),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// When a file was last written (Unix milliseconds).
fn modified_ms(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH);
    since.ok().map(|d| d.as_millis() as u64)
}

/// A local entity tag: every write is a rename of a new file, so its inode and time change.
fn etag_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{:x}-{:x}{:09}-{:x}",
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.len()
    )
}

fn not_found(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
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

    /// The temporary files of writes that never finished (a killed process's).
    async fn pending_uploads(&self, _prefix: &str) -> Result<Vec<PendingUpload>> {
        let dir = self.root.join(INTERNAL).join("tmp");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let (Ok(meta), Some(name)) = (
                entry.metadata(),
                entry.file_name().to_str().map(str::to_string),
            ) else {
                continue;
            };
            out.push(PendingUpload {
                key: format!("{INTERNAL}/tmp/{name}"),
                id: name,
                started_ms: modified_ms(&meta),
            });
        }
        Ok(out)
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<()> {
        if upload.id.contains('/') || upload.id.starts_with('.') {
            return Err(Error::Internal(format!(
                "not a temporary file: {}",
                upload.id
            )));
        }
        let path = self.root.join(INTERNAL).join("tmp").join(&upload.id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(Error::io("cannot delete", &path, e)),
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
        let path = self.path_of(key)?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("cannot stat", &path, e)),
        };
        let metadata = match std::fs::read(self.meta_path(key)) {
            Ok(bytes) => {
                serde_json::from_slice::<BTreeMap<String, String>>(&bytes).unwrap_or_default()
            }
            Err(_) => BTreeMap::new(),
        };
        Ok(Some(ObjectHead {
            size: meta.len(),
            metadata,
        }))
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Reader>> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path_of(key)?;
        // Without blocking: opening a FIFO to read waits for a writer, forever. What was
        // opened is then checked to be a regular file before a byte is read.
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("cannot open", &path, e)),
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

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        _size: u64,
        opts: &PutOptions,
    ) -> Result<String> {
        self.path_of(key)?;
        let tmp = self.tmp_path()?;
        tokio::fs::copy(path, &tmp)
            .await
            .map_err(|e| Error::io("cannot copy", path, e))?;
        self.commit(&tmp, key, opts)
    }

    async fn put_bytes(&self, key: &str, body: Vec<u8>, opts: &PutOptions) -> Result<String> {
        self.path_of(key)?;
        let tmp = self.tmp_path()?;
        tokio::fs::write(&tmp, body)
            .await
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        self.commit(&tmp, key, opts)
    }

    async fn put_bytes_if(
        &self,
        key: &str,
        body: Vec<u8>,
        opts: &PutOptions,
        cond: Precondition<'_>,
    ) -> Result<Option<String>> {
        self.path_of(key)?;
        let tmp = self.tmp_path()?;
        tokio::fs::write(&tmp, body)
            .await
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        self.commit_if(&tmp, key, opts, cond)
    }

    async fn copy(
        &self,
        src: &str,
        dst: &str,
        _size: u64,
        opts: &PutOptions,
        if_match: Option<&str>,
    ) -> Result<String> {
        let from = self.path_of(src)?;
        self.path_of(dst)?;
        let tmp = self.tmp_path()?;
        let missing = || {
            Error::NotFound(format!(
                "cannot copy {src}: it does not exist in {}",
                self.url()
            ))
        };
        let src_file = std::fs::File::open(&from).map_err(|e| {
            if not_found(&e) {
                missing()
            } else {
                Error::io("cannot copy", &from, e)
            }
        })?;
        // Compare the tag of the very file we copy from, so a rewrite in between is caught.
        let meta = src_file
            .metadata()
            .map_err(|e| Error::io("cannot stat", &from, e))?;
        if let Some(want) = if_match {
            if etag_of(&meta) != bare_etag(want) {
                return Err(Error::Precondition(format!(
                    "{src} changed after its manifest was written (entity tag differs): not copying it"
                )));
            }
        }
        let mut reader = tokio::fs::File::from_std(src_file);
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io("cannot create", &tmp, e))?;
        tokio::io::copy(&mut reader, &mut out)
            .await
            .map_err(|e| Error::io("cannot copy", &from, e))?;
        drop(out);
        self.commit(&tmp, dst, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO at a key is refused at once, not read (which would wait for a writer forever);
    /// a directory is no object.
    #[tokio::test]
    async fn non_regular_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("a/dir")).unwrap();
        let fifo = dir.path().join("a/.manifest.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.get_bytes("a/.manifest.json", 100),
        )
        .await
        .expect("reading a FIFO must not block");
        let e = read.expect_err("a FIFO is refused").to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(store.get("a/dir", None).await.unwrap().is_none());
        assert!(store.head("a/.manifest.json").await.unwrap().is_none());
    }
}
