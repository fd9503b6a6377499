//! The completion manifest: written last, it is what makes a set count as complete.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest format this version writes.
pub const FORMAT: u32 = 1;

/// A set's manifest: every asset with its size and SHA-256, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// The commit the assets were built from.
    pub commit: String,
    /// The code hash, when caching was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_hash: Option<String>,
    /// The version of s3-asset-manager that wrote the manifest.
    pub tool_version: String,
    /// When the set was completed (RFC 3339, UTC).
    pub created: String,
    /// When an artifacts set was completed (Unix milliseconds): names its index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_ms: Option<u64>,
    /// The Concourse build that produced the set, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildIdentity>,
    /// Every asset, sorted by path.
    pub files: Vec<FileEntry>,
}

/// One asset in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `/`-separated path relative to the set (and to the package directory).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// The object's entity tag when the manifest was written: a later rewrite changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The Concourse build identity from the `BUILD_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildIdentity {
    /// `BUILD_TEAM_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// `BUILD_PIPELINE_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// `BUILD_JOB_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// `BUILD_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `BUILD_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `ATC_EXTERNAL_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl BuildIdentity {
    /// Reads the identity from the environment; `None` when no variable is set.
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let b = BuildIdentity {
            team: get("BUILD_TEAM_NAME"),
            pipeline: get("BUILD_PIPELINE_NAME"),
            job: get("BUILD_JOB_NAME"),
            name: get("BUILD_NAME"),
            id: get("BUILD_ID"),
            url: get("ATC_EXTERNAL_URL"),
        };
        (b != BuildIdentity::default()).then_some(b)
    }
}

impl Manifest {
    /// A new manifest stamped with this tool's version, the current time and the build.
    pub fn new(commit: &str, code_hash: Option<&str>, mut files: Vec<FileEntry>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            format: FORMAT,
            commit: commit.to_string(),
            code_hash: code_hash.map(str::to_string),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            completed_ms: None,
            build: BuildIdentity::from_env(),
            files,
        }
    }

    /// Parses and validates a manifest read from `key`.
    pub fn parse(bytes: &[u8], key: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            // serde quotes the offending value in full: keep it short.
            let why = crate::error::clip_quoted(&e.to_string(), &['"', '`']);
            Error::Verify(format!(
                "manifest {key} is not valid JSON ({why}): the set cannot be trusted; delete the manifest and publish again"
            ))
        })?;
        if m.format != FORMAT {
            return Err(Error::Verify(format!(
                "manifest {key} has format {} but this version reads format {FORMAT}: upgrade s3-asset-manager",
                m.format
            )));
        }
        for f in &m.files {
            check_asset_path(&f.path).map_err(|why| {
                Error::Verify(format!(
                    "manifest {key} lists an unsafe path {} ({why}): refusing the set",
                    crate::error::clip(&f.path)
                ))
            })?;
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Verify(format!(
                    "manifest {key} has an invalid SHA-256 for {}: refusing the set",
                    crate::error::clip(&f.path)
                )));
            }
        }
        Ok(m)
    }

    /// Serialises the manifest as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }

    /// The sum of all asset sizes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Checks that `path` is a safe relative asset path: `/`-separated, no empty, `.` or `..`
/// segments, no leading `.` in any segment, no control characters, not absolute.
pub fn check_asset_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err("absolute path or backslash");
    }
    if path.chars().any(char::is_control) {
        return Err("control character");
    }
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err("empty segment");
        }
        if seg == "." || seg == ".." {
            return Err("'.' or '..' segment");
        }
        if seg.starts_with('.') {
            return Err("hidden segment");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_validates() {
        let m = Manifest::new(
            "abc",
            Some("def"),
            vec![
                FileEntry {
                    path: "b/x.zip".into(),
                    size: 3,
                    sha256: "0".repeat(64),
                    etag: None,
                },
                FileEntry {
                    path: "a.zip".into(),
                    size: 4,
                    sha256: "1".repeat(64),
                    etag: Some("abc".into()),
                },
            ],
        );
        assert_eq!(m.files[0].path, "a.zip");
        assert_eq!(m.total_bytes(), 7);
        let back = Manifest::parse(&m.to_bytes(), "k").unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn parse_errors_are_one_short_line() {
        let long = format!("{{\"format\":\"{}\"}}", "x".repeat(850));
        let e = Manifest::parse(long.as_bytes(), "k")
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300 && !e.contains('\n'), "{e}");
    }

    #[test]
    fn rejects_unsafe_paths() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            "a/.",
            ".hidden",
            "a\0b",
            "a\nb",
            "",
            "a\\b",
        ] {
            assert!(check_asset_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_asset_path("dir/fn.zip").is_ok());
    }
}
