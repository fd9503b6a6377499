//! Bucket layout: where asset sets, cache entries and manifests live.

use crate::error::{clip, Error, Result};

/// The user metadata keys every asset object carries (and the original tool's readers use).
pub(crate) mod meta {
    /// The commit the object was built from.
    pub(crate) const COMMIT: &str = "commit-hash";
    /// Base64 SHA-256 of the content: Lambda's `CodeSha256` format.
    pub(crate) const PACKAGE_HASH: &str = "package-hash";
    /// The code hash, when caching was on.
    pub(crate) const CODE_HASH: &str = "code-hash";
    /// The publisher (process) that wrote the object: racing publishers of one set tell
    /// their objects apart by it.
    pub(crate) const PUBLISHER: &str = "publisher-id";
    /// Set on an object a publisher wrote again after its manifest, repairing a set a
    /// concurrent publisher overwrote: that publisher is still at work (the first writer of
    /// an object may have completed the set and left).
    pub(crate) const REPAIR: &str = "publisher-repair";
}

/// The manifest's name inside a set. It starts with `.`, so it never collides with an asset.
pub(crate) const MANIFEST_NAME: &str = ".manifest.json";

/// The empty object a read-write restore writes into a cache entry: its time in a listing is
/// when the entry was last used. It starts with `.`, so it never collides with an asset.
pub(crate) const LAST_USED_NAME: &str = ".last-used";

/// The name of the conditional-write probe under `artifacts/` ([`Layout::probe_key`]).
const PROBE_NAME: &str = ".conditional-write-probe";

/// Index times count down from here (milliseconds; the year 2286).
const INDEX_EPOCH_END: u64 = 9_999_999_999_999;

/// The key layout under an optional prefix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout under `prefix` (empty for the bucket root); slashes at either end are ignored.
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        let trimmed = prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Layout::default());
        }
        if trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.chars().any(char::is_control))
        {
            return Err(Error::Config(format!(
                "invalid prefix {}: use '/'-separated names without '.', '..', empty or control characters", clip(prefix)
            )));
        }
        Ok(Layout {
            prefix: format!("{trimmed}/"),
        })
    }

    /// The asset set for a commit: `[prefix/]artifacts/<commit>/`.
    pub(crate) fn artifacts(&self, commit: &str) -> SetLocation {
        SetLocation {
            root: format!("{}artifacts/{commit}/", self.prefix),
            id: commit.to_string(),
            cache: false,
        }
    }

    /// The empty object a publisher writes twice with `If-None-Match: *` to learn whether the
    /// store enforces conditional writes: `[prefix/]artifacts/.conditional-write-probe`. Its
    /// name starts with `.`, so it is never a commit's set.
    pub(crate) fn probe_key(&self) -> String {
        format!("{}artifacts/{PROBE_NAME}", self.prefix)
    }

    /// Where completed artifacts sets are indexed for the resource's `check`.
    pub(crate) fn index_prefix(&self) -> String {
        format!("{}index/", self.prefix)
    }

    /// The index entry of a set completed at `completed_ms` (Unix milliseconds).
    ///
    /// Keys hold the time inverted, so a plain ascending listing yields the newest set first:
    /// finding the latest set, or every set newer than a known one, costs one listing request
    /// per 1,000 new sets however long the history is.
    pub(crate) fn index_key(&self, completed_ms: u64, commit: &str) -> String {
        let inverted = INDEX_EPOCH_END.saturating_sub(completed_ms);
        format!("{}{inverted:013}-{commit}", self.index_prefix())
    }

    /// The commit named by an index key, if it is one: 13 digits, `-`, and a full lowercase
    /// hex object id (40 or 64 digits). Anyone who writes `index/` can write any key there,
    /// so nothing else is ever taken for a commit.
    pub(crate) fn index_commit<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(&self.index_prefix())?;
        let (time, commit) = rest.split_once('-')?;
        (time.len() == 13 && time.bytes().all(|b| b.is_ascii_digit()) && is_object_id(commit))
            .then_some(commit)
    }

    /// The commit an index key names and when its set was completed (Unix milliseconds),
    /// if the key is an index entry ([`Layout::index_commit`]).
    pub(crate) fn index_entry<'k>(&self, key: &'k str) -> Option<(&'k str, u64)> {
        let commit = self.index_commit(key)?;
        let inverted: u64 = key[self.index_prefix().len()..][..13].parse().ok()?;
        Some((commit, INDEX_EPOCH_END.saturating_sub(inverted)))
    }

    /// Where artifacts sets are: `[prefix/]artifacts/`.
    pub(crate) fn artifacts_prefix(&self) -> String {
        format!("{}artifacts/", self.prefix)
    }

    /// Where cache entries are: `[prefix/]cache/`.
    pub(crate) fn cache_prefix(&self) -> String {
        format!("{}cache/", self.prefix)
    }

    /// The cache entry for a code hash: `[prefix/]cache/<code-hash>/`.
    pub(crate) fn cache(&self, code_hash: &str) -> SetLocation {
        SetLocation {
            root: format!("{}cache/{code_hash}/", self.prefix),
            id: code_hash.to_string(),
            cache: true,
        }
    }
}

/// Whether `rel`, a key's path below a set's place, is another prefix's tree rather than
/// an asset of that set: somewhere in it, `artifacts/<commit>/…` or `cache/<code hash>/…`
/// (a set's place), `index/<13 digits>-<commit>` (an index entry) or
/// `artifacts/.conditional-write-probe`. A team publishing under
/// `S3AM_PREFIX=artifacts/<40 hex>` writes such keys below what the bucket root's layout
/// takes for a set; they are never listed, pruned or deleted as that set's. (A package
/// directory would need those very directory names to hold such a path.)
pub(crate) fn is_foreign_tree(rel: &str) -> bool {
    let segs: Vec<&str> = rel.split('/').collect();
    segs.windows(3).any(|w| match w[0] {
        "artifacts" => is_object_id(w[1]),
        "cache" => is_code_hash(w[1]),
        _ => false,
    }) || segs.windows(2).any(|w| match w[0] {
        "index" => w[1].split_once('-').is_some_and(|(t, c)| {
            t.len() == 13 && t.bytes().all(|b| b.is_ascii_digit()) && is_object_id(c)
        }),
        "artifacts" => w[1] == PROBE_NAME,
        _ => false,
    })
}

/// Whether `s` is a full lowercase hex object id: 40 digits (SHA-1) or 64 (SHA-256).
pub(crate) fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && is_lower_hex(s)
}

/// Whether `s` is a code hash: 64 lowercase hex digits.
pub(crate) fn is_code_hash(s: &str) -> bool {
    is_sha256_hex(s)
}

/// Whether `s` is a SHA-256 in lowercase hex (64 digits), as manifests record them.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One asset set's place in the bucket (an artifacts set or a cache entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetLocation {
    root: String,
    /// The commit (artifacts) or code hash (cache) the place is named by.
    id: String,
    cache: bool,
}

impl SetLocation {
    /// The key prefix, ending in `/`.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The commit of an artifacts set, or the code hash of a cache entry.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Whether this is a cache entry (which the original tool never wrote in this layout, so
    /// it has no legacy sets) rather than an artifacts set.
    pub(crate) fn is_cache(&self) -> bool {
        self.cache
    }

    /// The key of an asset at relative path `rel`.
    pub(crate) fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.root)
    }

    /// The key of the completion manifest.
    pub(crate) fn manifest_key(&self) -> String {
        self.key(MANIFEST_NAME)
    }

    /// The key whose time says when a cache entry was last used ([`LAST_USED_NAME`]).
    pub(crate) fn last_used_key(&self) -> String {
        self.key(LAST_USED_NAME)
    }
}

impl std::fmt::Display for SetLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_original_tool() {
        let l = Layout::new("").unwrap();
        assert_eq!(l.artifacts("abc").key("fn.zip"), "artifacts/abc/fn.zip");
        assert_eq!(l.cache("123").key("a/b.tgz"), "cache/123/a/b.tgz");
        assert_eq!(
            l.artifacts("abc").manifest_key(),
            "artifacts/abc/.manifest.json"
        );
        let l = Layout::new("/team/x/").unwrap();
        assert_eq!(l.artifacts("abc").root(), "team/x/artifacts/abc/");
        assert!(Layout::new("a/../b").is_err());
        let newer = l.index_key(1_800_000_000_001, "c2");
        let older = l.index_key(1_800_000_000_000, "c1");
        assert!(newer < older, "newest sorts first");
        assert_eq!(older, "team/x/index/8199999999999-c1");
        // Only a full hex object id is a commit.
        assert_eq!(l.index_commit(&older), None);
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let key = l.index_key(1_800_000_000_000, sha);
        assert_eq!(l.index_commit(&key), Some(sha));
        assert_eq!(l.index_entry(&key), Some((sha, 1_800_000_000_000)));
        for bad in [
            "..",
            "not-a-commit",
            &sha.to_uppercase(),
            &sha[..39],
            &format!("{sha}0"),
        ] {
            let key = format!("team/x/index/0000000000000-{bad}");
            assert_eq!(l.index_commit(&key), None, "{bad}");
        }
        assert!(l
            .index_commit(&format!("team/x/index/0000000000000-{}", "a".repeat(64)))
            .is_some());
        assert_eq!(l.index_commit("team/x/index/junk"), None);
        assert!(Layout::new("a//b").is_err());
    }

    /// Another prefix's sets and index entries below a set's place are told from assets.
    #[test]
    fn another_prefixs_tree_is_not_a_sets_asset() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let h = "a".repeat(64);
        for foreign in [
            format!("artifacts/{c}/fn.zip"),
            format!("artifacts/{c}/.manifest.json"),
            format!("team/cache/{h}/lib/x"),
            format!("index/0000000000001-{c}"),
            format!("a/b/index/0000000000001-{c}"),
            "team/artifacts/.conditional-write-probe".into(),
        ] {
            assert!(is_foreign_tree(&foreign), "{foreign}");
        }
        for asset in [
            "fn.zip".to_string(),
            "lib/artifacts/x.zip".into(),
            format!("artifacts/{c}"),
            format!("cache/{c}/x"),
            "index/readme".into(),
            format!("index/1-{c}"),
        ] {
            assert!(!is_foreign_tree(&asset), "{asset}");
        }
    }
}
