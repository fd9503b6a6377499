//! The package directory: the asset files to publish and the marker files the tasks share.

use std::fs;
use std::path::{Path, PathBuf};

use crate::commit::parse_commit;
use crate::error::{Error, Result};

/// Written by `check`: the commit the assets belong to.
pub(crate) const COMMIT_MARKER: &str = ".commit-hash";
/// Written by `check` when caching is on: the code hash.
pub(crate) const CODE_HASH_MARKER: &str = ".code-hash";
/// Written when the asset set is already complete: the pipeline skips the build.
pub(crate) const FOUND_MARKER: &str = ".found";

/// One file to publish.
#[derive(Debug, Clone)]
pub(crate) struct Asset {
    /// `/`-separated path relative to the package directory.
    pub rel: String,
    /// Where it is on disk.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// Every non-hidden regular file under `dir`, recursively, sorted by relative path.
///
/// Hidden files and directories (names starting with `.`) are skipped at every level.
/// A symlink to a regular file counts as that file; symlinked directories are not entered.
pub(crate) fn collect(dir: &Path) -> Result<Vec<Asset>> {
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "package directory {} does not exist: run the build into it, or set PACKAGE_DIRECTORY (or --package-dir)",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| {
            let p = e.path().unwrap_or(dir).to_path_buf();
            let io = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
            Error::Input(format!(
                "cannot read {} in the package directory ({io}): fix its permissions",
                p.display()
            ))
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let meta = fs::metadata(entry.path()).map_err(|e| {
            Error::Input(format!(
                "cannot read {} in the package directory ({e}): fix it or remove it",
                entry.path().display()
            ))
        })?;
        if !meta.is_file() || entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let Some(rel) = rel.to_str() else {
            return Err(Error::Input(format!(
                "asset name {} is not UTF-8: S3 keys must be UTF-8; rename the file",
                entry.path().display()
            )));
        };
        // A manifest naming such a path is refused by every reader: refuse it here first.
        if let Err(why) = crate::manifest::check_asset_path(rel) {
            return Err(Error::Input(format!(
                "asset name {} cannot be published ({why}): rename the file",
                crate::error::clip(rel)
            )));
        }
        out.push(Asset {
            rel: rel.to_string(),
            path: entry.path().to_path_buf(),
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Writes a marker file, creating the package directory if needed. Never through a symlink
/// planted at its name: the content goes to a new temporary file beside it, which is then
/// renamed over the name (replacing a symlink, not what it points to).
pub(crate) fn write_marker(dir: &Path, name: &str, content: &str) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the package directory", dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(
        "{name}.tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .and_then(|()| fs::rename(&tmp, &path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write", &path, e)
    })
}

/// Removes the `.found` and `.code-hash` an earlier `check` left in `dir` (a package directory
/// used again, as on a workstation): they belong to the commit it checked, and would make
/// `upload` skip this one, or fill that commit's cache entry with this one's build.
pub(crate) fn clear_markers(dir: &Path) -> Result<()> {
    for name in [FOUND_MARKER, CODE_HASH_MARKER] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove the earlier check's", &path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `.found` exists in `dir`.
pub(crate) fn is_found(dir: &Path) -> bool {
    dir.join(FOUND_MARKER).exists()
}

/// Reads and validates `.commit-hash`.
pub(crate) fn read_commit(dir: &Path) -> Result<String> {
    let path = dir.join(COMMIT_MARKER);
    let text = fs::read_to_string(&path).map_err(|e| {
        Error::Input(format!(
            "cannot read {} ({e}): run `check` first in the same package directory, or set PACKAGE_DIRECTORY",
            path.display()
        ))
    })?;
    parse_commit(&text).ok_or_else(|| {
        Error::Input(format!(
            "{} does not hold a commit id ({:?}): run `check` again to rewrite it",
            path.display(),
            text.trim().chars().take(80).collect::<String>()
        ))
    })
}

/// Reads and validates `.code-hash`, if present.
pub(crate) fn read_code_hash(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(CODE_HASH_MARKER);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let t = text.trim();
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Some(t.to_ascii_lowercase()))
            } else {
                Err(Error::Input(format!(
                    "{} does not hold a code hash: run `check` again to rewrite it",
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink planted at a marker's name is replaced, and what it points to is untouched.
    #[test]
    fn markers_never_write_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let pkg = dir.path().join("pkg");
        fs::create_dir(&pkg).unwrap();
        std::os::unix::fs::symlink(&victim, pkg.join(COMMIT_MARKER)).unwrap();
        write_marker(&pkg, COMMIT_MARKER, "abc").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        let marker = pkg.join(COMMIT_MARKER);
        assert!(fs::symlink_metadata(&marker).unwrap().is_file());
        assert_eq!(fs::read_to_string(&marker).unwrap(), "abc");
        // Nothing else is left in the directory.
        assert_eq!(fs::read_dir(&pkg).unwrap().count(), 1);
    }
}
