//! Where keys are on disk: listing a prefix, and deleting a key with the directories it
//! leaves empty; the entity tags and times the listing reports.

use super::*;

impl LocalStore {
    /// Removes the object at `key` and its metadata, then the directories that leaves
    /// empty (a later listing would walk them). A link on the way is refused, never
    /// deleted through.
    pub(super) fn delete_sync(&self, key: &str) -> Result<()> {
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

    pub(super) fn list_sync(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
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
pub(super) fn modified_ms(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH);
    since.ok().map(|d| d.as_millis() as u64)
}

/// When a file was last written (Unix milliseconds), from `fstatat`.
pub(super) fn stat_modified_ms(st: &Stat) -> Option<u64> {
    let (secs, nanos) = st.mtime();
    let ms = secs.checked_mul(1000)?.checked_add(nanos / 1_000_000)?;
    u64::try_from(ms).ok()
}

/// A local entity tag: every write is a rename of a new file, so its inode and time change.
pub(super) fn etag(ino: u64, (secs, nanos): (i64, i64), len: u64) -> String {
    format!("{ino:x}-{secs:x}{nanos:09}-{len:x}")
}

/// [`etag`] of what `fstatat` says.
pub(super) fn etag_of(st: &Stat) -> String {
    etag(st.ino(), st.mtime(), st.len())
}

/// [`etag`] of a listed file.
pub(super) fn etag_of_meta(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    etag(meta.ino(), (meta.mtime(), meta.mtime_nsec()), meta.len())
}

pub(super) fn not_found(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}
