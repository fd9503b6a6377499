//! Bucket layout: where asset sets, cache entries and manifests live.

use crate::error::{Error, Result};

/// The manifest's name inside a set. It starts with `.`, so it never collides with an asset.
pub const MANIFEST_NAME: &str = ".manifest.json";

/// The key layout under an optional prefix.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout under `prefix` (empty for the bucket root); slashes at either end are ignored.
    pub fn new(prefix: &str) -> Result<Self> {
        let trimmed = prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Layout::default());
        }
        if trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.chars().any(char::is_control))
        {
            return Err(Error::Config(format!(
                "invalid prefix {prefix:?}: use '/'-separated names without '.', '..', empty or control characters"
            )));
        }
        Ok(Layout {
            prefix: format!("{trimmed}/"),
        })
    }

    /// The prefix with its trailing slash, or empty.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The asset set for a commit: `[prefix/]artifacts/<commit>/`.
    pub fn artifacts(&self, commit: &str) -> SetLocation {
        SetLocation {
            root: format!("{}artifacts/{commit}/", self.prefix),
        }
    }

    /// The cache entry for a code hash: `[prefix/]cache/<code-hash>/`.
    pub fn cache(&self, code_hash: &str) -> SetLocation {
        SetLocation {
            root: format!("{}cache/{code_hash}/", self.prefix),
        }
    }
}

/// One asset set's place in the bucket (an artifacts set or a cache entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetLocation {
    root: String,
}

impl SetLocation {
    /// The key prefix, ending in `/`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The key of an asset at relative path `rel`.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.root)
    }

    /// The key of the completion manifest.
    pub fn manifest_key(&self) -> String {
        self.key(MANIFEST_NAME)
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
        assert!(Layout::new("a//b").is_err());
    }
}
