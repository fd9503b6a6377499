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
    bare_etag, ObjectHead, ObjectInfo, PendingUpload, Precondition, PutOptions, Reader, Store,
};
use crate::beneath::{Dir, Stat, Tree};
use crate::error::{Error, Result};

const INTERNAL: &str = ".s3am";

/// A bucket kept in a local directory.
#[derive(Debug)]
pub struct LocalStore {
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
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_named(root, super::Names::default())
    }

    /// [`LocalStore::open`], an error naming the setting in `names`' words.
    pub fn open_named(root: &Path, names: super::Names) -> Result<Self> {
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

    /// [`Self::commit`] only when `cond` holds for the object at `key`; `None` (and `tmp`
    /// removed) when it does not.
    fn commit_if(
        &self,
        tmp: Tmp,
        key: &str,
        opts: &PutOptions,
        cond: Precondition<'_>,
    ) -> Result<Option<String>> {
        let internal = self.dir.walk(INTERNAL, true)?.expect("created");
        let lock = internal
            .open_at("lock", libc::O_WRONLY | libc::O_CREAT)
            .map_err(|e| internal.error("cannot open", "lock", e))?;
        // Released when `lock` is dropped, after the rename.
        lock.lock()
            .map_err(|e| internal.error("cannot lock", "lock", e))?;
        let current = self.stat_key(key)?.map(|s| etag_of(&s));
        let holds = match cond {
            Precondition::Absent => current.is_none(),
            Precondition::Matches(want) => current == Some(bare_etag(want)),
        };
        if !holds {
            return Ok(None);
        }
        self.commit(tmp, key, opts).map(Some)
    }

    /// Removes the object at `key` and its metadata, then the directories that leaves
    /// empty (a later listing would walk them). A link on the way is refused, never
    /// deleted through.
    fn delete_sync(&self, key: &str) -> Result<()> {
        let (dir_part, name) = split(key)?;
        let names: Vec<&str> = dir_part.split('/').filter(|s| !s.is_empty()).collect();
        for top in ["", &format!("{INTERNAL}/meta")] {
            let Some(top) = self.dir.walk(top, false)? else {
                continue;
            };
            // The directories down to the key's, each opened from the one above it.
            let mut chain = vec![top];
            for n in &names {
                match chain.last().expect("the top").open_dir(n)? {
                    Some(d) => chain.push(d),
                    None => break,
                }
            }
            if chain.len() == names.len() + 1 {
                let parent = chain.last().expect("the top");
                parent.refuse_link(name)?;
                match parent.unlink_at(name) {
                    Ok(()) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(parent.error("cannot delete", name, e)),
                }
            }
            let _dirs = self.dirs_lock(true)?;
            for (dir, n) in chain.iter().zip(&names).rev() {
                // Fails (and stops) at the first directory that is not empty.
                if dir.rmdir_at(n).is_err() {
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
            // The walk below starts at a path, which would follow a link on the way: there
            // must be none.
            if self.dir.walk(dir_part, false)?.is_none() {
                return Ok(Vec::new());
            }
            self.root.join(dir_part)
        };
        let mut out = Vec::new();
        if !start.is_dir() {
            return Ok(out);
        }
        let internal = self.root.join(INTERNAL);
        // Links are never followed, so never listed: only the root may be one.
        let walker = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .follow_root_links(dir_part.is_empty())
            .into_iter()
            .filter_entry(|e| e.path() != internal);
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                // Deleted while the walk went on (a prune or delete beside this list): S3
                // lists such a key or not, and so does this.
                Err(e) if e.io_error().is_some_and(not_found) => continue,
                Err(e) => {
                    let p = e.path().unwrap_or(&start).to_path_buf();
                    return Err(Error::io(
                        "cannot list",
                        p,
                        e.into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
                    ));
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&self.root)
                .unwrap_or(entry.path());
            let Some(key) = rel.to_str() else { continue };
            if key.starts_with(prefix) {
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.io_error().is_some_and(not_found) => continue,
                    Err(e) => return Err(Error::Internal(format!("cannot stat {key}: {e}"))),
                };
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: meta.len(),
                    etag: Some(etag_of_meta(&meta)),
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

/// When a file was last written (Unix milliseconds), from `fstatat`.
fn stat_modified_ms(st: &Stat) -> Option<u64> {
    let (secs, nanos) = st.mtime();
    let ms = secs.checked_mul(1000)?.checked_add(nanos / 1_000_000)?;
    u64::try_from(ms).ok()
}

/// A local entity tag: every write is a rename of a new file, so its inode and time change.
fn etag(ino: u64, (secs, nanos): (i64, i64), len: u64) -> String {
    format!("{ino:x}-{secs:x}{nanos:09}-{len:x}")
}

/// [`etag`] of what `fstatat` says.
fn etag_of(st: &Stat) -> String {
    etag(st.ino(), st.mtime(), st.len())
}

/// [`etag`] of a listed file.
fn etag_of_meta(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    etag(meta.ino(), (meta.mtime(), meta.mtime_nsec()), meta.len())
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

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        _size: u64,
        opts: &PutOptions,
    ) -> Result<String> {
        split(key)?;
        let from = path.to_path_buf();
        let tmp = self
            .tmp_with(move |out, _| {
                std::fs::File::open(&from)
                    .and_then(|mut f| std::io::copy(&mut f, out))
                    .map(drop)
                    .map_err(|e| Error::io("cannot copy", &from, e))
            })
            .await?;
        self.commit(tmp, key, opts)
    }

    async fn put_bytes(&self, key: &str, body: Vec<u8>, opts: &PutOptions) -> Result<String> {
        split(key)?;
        let tmp = self
            .tmp_with(move |out, path| write_body(out, &body, path))
            .await?;
        self.commit(tmp, key, opts)
    }

    async fn put_bytes_if(
        &self,
        key: &str,
        body: Vec<u8>,
        opts: &PutOptions,
        cond: Precondition<'_>,
    ) -> Result<Option<String>> {
        split(key)?;
        let tmp = self
            .tmp_with(move |out, path| write_body(out, &body, path))
            .await?;
        self.commit_if(tmp, key, opts, cond)
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

    /// A bucket with `outside` beside it holding one file, and the store.
    fn planted() -> (tempfile::TempDir, PathBuf, PathBuf, LocalStore) {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("bucket"), tmp.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("fn.zip"), "precious").unwrap();
        let store = LocalStore::open(&root).unwrap();
        (tmp, root, outside, store)
    }

    fn untouched(outside: &Path) {
        let names: Vec<_> = std::fs::read_dir(outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["fn.zip"], "something was written outside");
        assert_eq!(
            std::fs::read_to_string(outside.join("fn.zip")).unwrap(),
            "precious"
        );
    }

    /// A link where a key's directory should be: no read, write, delete or listing goes
    /// through it, each refused with the line naming it.
    #[tokio::test]
    async fn a_link_at_a_keys_directory_is_refused() {
        let (_tmp, root, outside, store) = planted();
        std::fs::create_dir_all(root.join("artifacts")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("artifacts/c")).unwrap();
        let refused = |e: Error| {
            let e = e.to_string();
            assert!(
                e.contains("artifacts/c is a symbolic link inside the bucket directory")
                    && e.ends_with("remove the link"),
                "{e}"
            );
        };
        let opts = PutOptions::default();
        refused(
            store
                .delete(&["artifacts/c/fn.zip".into()])
                .await
                .unwrap_err(),
        );
        refused(
            store
                .put_bytes("artifacts/c/new", b"x".to_vec(), &opts)
                .await
                .unwrap_err(),
        );
        let cond = Precondition::Absent;
        let e = store
            .put_bytes_if("artifacts/c/new", b"x".to_vec(), &opts, cond)
            .await;
        refused(e.unwrap_err());
        refused(store.get("artifacts/c/fn.zip", None).await.err().unwrap());
        refused(store.head("artifacts/c/fn.zip").await.unwrap_err());
        refused(store.list("artifacts/c/").await.unwrap_err());
        store
            .put_bytes("artifacts/a/fn.zip", b"a".to_vec(), &opts)
            .await
            .unwrap();
        let e = store
            .copy("artifacts/a/fn.zip", "artifacts/c/fn.zip", 1, &opts, None)
            .await;
        refused(e.unwrap_err());
        // A listing above it skips it: a link is never an object.
        let keys: Vec<String> = store
            .list("artifacts/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec!["artifacts/a/fn.zip"]);
        untouched(&outside);
        // A link at a key's own name is refused too.
        std::os::unix::fs::symlink(outside.join("fn.zip"), root.join("artifacts/a/link")).unwrap();
        let e = store
            .get("artifacts/a/link", None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a/link is a symbolic link"), "{e}");
        let e = store
            .delete(&["artifacts/a/link".into()])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("a/link is a symbolic link"), "{e}");
        untouched(&outside);
    }

    /// Links at `.s3am`'s directories and lock: no temporary file, sidecar or lock is
    /// written through them, and no pending upload is listed or removed through them.
    #[tokio::test]
    async fn links_at_the_internal_directories_are_refused() {
        let opts = PutOptions::default();
        for (at, needle) in [
            (".s3am", ".s3am is a symbolic link"),
            (".s3am/tmp", ".s3am/tmp is a symbolic link"),
            (".s3am/meta", ".s3am/meta is a symbolic link"),
        ] {
            let (_tmp, root, outside, store) = planted();
            if at != ".s3am" {
                std::fs::create_dir_all(root.join(".s3am")).unwrap();
            }
            std::os::unix::fs::symlink(&outside, root.join(at)).unwrap();
            let e = store
                .put_bytes("a/b", b"x".to_vec(), &opts)
                .await
                .unwrap_err();
            assert!(e.to_string().contains(needle), "{at}: {e}");
            if at != ".s3am/meta" {
                let e = store.pending_uploads("").await.unwrap_err();
                assert!(e.to_string().contains(needle), "{at}: {e}");
                let upload = PendingUpload {
                    key: ".s3am/tmp/fn.zip".into(),
                    id: "fn.zip".into(),
                    started_ms: None,
                };
                let e = store.abort_upload(&upload).await.unwrap_err();
                assert!(e.to_string().contains(needle), "{at}: {e}");
            }
            untouched(&outside);
        }
        let (_tmp, root, outside, store) = planted();
        std::fs::create_dir_all(root.join(".s3am")).unwrap();
        std::os::unix::fs::symlink(outside.join("fn.zip"), root.join(".s3am/lock")).unwrap();
        let cond = Precondition::Absent;
        let e = store
            .put_bytes_if("a/b", b"x".to_vec(), &opts, cond)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains(".s3am/lock is a symbolic link"),
            "{e}"
        );
        untouched(&outside);
    }

    /// A write, read, conditional write and delete still work through a bucket directory
    /// that is itself a link, and a delete removes the directories it empties.
    #[tokio::test]
    async fn the_root_may_be_a_link() {
        let (tmp, root, _outside, _) = planted();
        let via = tmp.path().join("via");
        std::os::unix::fs::symlink(&root, &via).unwrap();
        let store = LocalStore::open(&via).unwrap();
        let opts = PutOptions::default();
        let tag = store
            .put_bytes("a/b/c", b"x".to_vec(), &opts)
            .await
            .unwrap();
        let cond = Precondition::Matches(&tag);
        let e = store
            .put_bytes_if("a/b/c", b"y".to_vec(), &opts, cond)
            .await;
        assert!(e.unwrap().is_some());
        let cond = Precondition::Absent;
        let e = store
            .put_bytes_if("a/b/c", b"z".to_vec(), &opts, cond)
            .await;
        assert!(e.unwrap().is_none());
        assert_eq!(store.get_bytes("a/b/c", 10).await.unwrap().unwrap(), b"y");
        assert_eq!(store.list("a/").await.unwrap().len(), 1);
        store.delete(&["a/b/c".into()]).await.unwrap();
        assert!(!root.join("a").exists() && !root.join(".s3am/meta/a").exists());
        assert!(store.pending_uploads("").await.unwrap().is_empty());
    }

    /// Sets deleted while a list walks the bucket (a prune beside an upload) are left out,
    /// never an error: S3 answers such a list with or without them.
    #[test]
    fn a_list_racing_deletes_never_fails() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let rounds = std::sync::Arc::new(AtomicU32::new(0));
        let churn = {
            let (root, rounds) = (tmp.path().to_path_buf(), rounds.clone());
            std::thread::spawn(move || {
                while rounds.load(Ordering::Relaxed) < 100 {
                    for i in 0..20 {
                        let d = root.join(format!("artifacts/{i:040}/a/b"));
                        std::fs::create_dir_all(&d).unwrap();
                        for f in 0..5 {
                            std::fs::write(d.join(format!("f{f}")), b"x").unwrap();
                        }
                    }
                    std::fs::remove_dir_all(root.join("artifacts")).unwrap();
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (mut lists, mut listed) = (0, 0);
        while rounds.load(Ordering::Relaxed) < 100 {
            listed += store.list_sync("artifacts/").expect("a racing list").len();
            listed += store.list_sync("artifacts/0").expect("a racing list").len();
            lists += 2;
        }
        churn.join().unwrap();
        // Lists ran while the tree existed, not only before or after it.
        assert!(lists > 100 && listed > 0, "{lists} lists, {listed} keys");
    }

    /// Writes beside deletes that remove the directories they empty all land: a directory
    /// removed on the way is made again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_racing_deletes_never_fail() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let tmp = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(LocalStore::open(tmp.path()).unwrap());
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let deleter = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut deletes = 0u32;
                while !done.load(Ordering::Relaxed) {
                    for i in 0..4 {
                        store.delete_sync(&format!("a/b/c/d/k{i}")).unwrap();
                    }
                    deletes += 1;
                }
                deletes
            })
        };
        let opts = PutOptions::default();
        for n in 0..1500 {
            let key = format!("a/b/c/d/k{}", n % 4);
            store
                .put_bytes(&key, b"x".to_vec(), &opts)
                .await
                .unwrap_or_else(|e| panic!("write {n} beside deletes: {e}"));
        }
        done.store(true, Ordering::Relaxed);
        assert!(deleter.join().unwrap() > 100);
    }
}
