//! Resolving the commit of a checked-out repository, and validating commit ids.

use std::path::Path;

use crate::error::{Error, Result};

/// Returns the full hex object id of HEAD in the work tree at `repo`.
///
/// A detached HEAD is fine; a missing path, a non-repository, a bare repository or a
/// repository without commits is an input error.
pub(crate) fn resolve_head(repo: &Path) -> Result<String> {
    if !repo.exists() {
        return Err(Error::Input(format!(
            "repository {} does not exist: set the repository (GIT_REPO_PATH, --repo or params.repo) to the checkout's directory",
            repo.display()
        )));
    }
    allow_partial_clones();
    let git = git2::Repository::open(repo).map_err(|e| {
        Error::Input(format!(
            "{} is not a git repository ({}): point the repository (GIT_REPO_PATH, --repo or params.repo) at the root of a checkout",
            repo.display(),
            e.message()
        ))
    })?;
    if git.is_bare() {
        return Err(Error::Input(format!(
            "{} is a bare repository: it has no checked-out files; point the repository (GIT_REPO_PATH, --repo or params.repo) at a work tree",
            repo.display()
        )));
    }
    let head = git.head().map_err(|e| {
        Error::Input(format!(
            "cannot resolve HEAD of {} ({}): commit something first, or check out a commit",
            repo.display(),
            e.message()
        ))
    })?;
    let commit = head.peel_to_commit().map_err(|e| {
        Error::Input(format!(
            "HEAD of {} is not a commit ({}): check out a commit",
            repo.display(),
            e.message()
        ))
    })?;
    Ok(commit.id().to_string())
}

/// Lets libgit2 open a partial clone (`git clone --filter=blob:none`) whose git wrote
/// `extensions.partialclone`: it refuses a repository with an extension it was not told of,
/// and HEAD and its commit are there in such a clone (only blobs are fetched on demand; the
/// code hash reads the work tree's files, never blobs).
fn allow_partial_clones() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 keeps the list in a static; this runs once, before this process
        // opens any repository, and nothing else sets it.
        if let Err(e) = unsafe { git2::opts::set_extensions(&["partialclone"]) } {
            crate::log::warn(format!(
                "cannot tell libgit2 about partial clones ({}): a partial clone will not open",
                e.message()
            ));
        }
    });
}

/// Checks that `s` is a full hex object id (SHA-1 or SHA-256), lowercased.
pub(crate) fn parse_commit(s: &str) -> Option<String> {
    let s = s.trim();
    let ok = (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_ids_only() {
        let id = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(parse_commit(id).unwrap(), id.to_ascii_lowercase());
        assert_eq!(
            parse_commit(&format!("{id}\n")).unwrap(),
            id.to_ascii_lowercase()
        );
        assert!(parse_commit("0123456").is_none());
        assert!(parse_commit("g123456789abcdef0123456789abcdef01234567").is_none());
        assert!(parse_commit("../../etc/passwd").is_none());
        assert!(parse_commit("").is_none());
    }
}
