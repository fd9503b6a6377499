//! The completion manifest: written last, it is what makes a set count as complete.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{clip, is_unprintable, Error};
use crate::layout::{is_code_hash, is_object_id, is_sha256_hex, SetLocation};

/// The manifest format this version writes.
pub(crate) const FORMAT: u32 = 1;

/// The largest manifest a reader takes (64 MiB: about 300,000 files). The bucket is hostile
/// input: a larger one is refused without reading past this.
pub(crate) const MANIFEST_MAX: u64 = 64 << 20;

/// The largest asset a manifest may name: 5 TiB, the most S3 stores in one object.
pub(crate) const MAX_ASSET_SIZE: u64 = 5 << 40;

/// The longest short text field (`created`, `tool_version`, an entity tag) a manifest may hold.
const MAX_FIELD: usize = 256;

/// The longest key prefix a manifest may name (S3 keys have at most 1,024 bytes).
const MAX_PREFIX: usize = 1024;

/// Why a manifest read from the bucket was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A format this version does not know: a newer version wrote it, so the set is left
    /// alone and the user told to upgrade.
    NewerFormat(String),
    /// Broken or hostile: too large, not JSON, or a field that breaks its rule (named).
    Invalid(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NewerFormat(why) | Refused::Invalid(why) => f.write_str(why),
        }
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        Error::Corrupt(r.to_string())
    }
}

/// A set's manifest: every asset with its size and SHA-256, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// The commit the assets were built from.
    pub commit: String,
    /// The code hash, when caching was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_hash: Option<String>,
    /// The key prefix the set was written under (`[prefix/]artifacts/<commit>/` or
    /// `[prefix/]cache/<code-hash>/`): with the commit or code hash, it binds the manifest, and
    /// so its signature, to that one place. Absent in manifests of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
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
    /// The trusted key that signed it, when read with trusted keys set: the reader's finding,
    /// never part of the JSON (a `signer` field there is ignored).
    #[serde(skip)]
    pub signer: Option<String>,
}

/// One asset in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// `/`-separated path relative to the set (and to the package directory).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content (64 lowercase hex digits in the manifest).
    pub sha256: Sha256Hex,
    /// The object's entity tag when the manifest was written: a later rewrite changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// For a large file, the SHA-256 of each of its pieces, from the same read as `sha256`: a
    /// reader checks each range it downloads as it arrives, in parallel, instead of hashing
    /// the whole file in order behind them. Absent for small files, and in manifests of
    /// earlier versions (whose readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<Pieces>,
}

/// The fewest bytes a piece of a large file may have ([`Pieces::size`]).
pub(crate) const PIECE_MIN: u64 = 1 << 20;

/// The most bytes a piece of a large file may have: S3's largest part.
pub(crate) const PIECE_MAX: u64 = 5 << 30;

/// The most pieces a file may have: S3's most parts.
pub(crate) const PIECES_MAX: usize = 10_000;

/// A large file cut into pieces of `size` bytes (the last one holds the rest), each with its
/// SHA-256: what a reader checks each downloaded range against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pieces {
    /// Bytes in every piece but the last.
    pub size: u64,
    /// The lowercase hex SHA-256 of each piece, in order.
    pub sha256: Vec<String>,
}

impl Pieces {
    /// The byte ranges (start, end) of the pieces of a file of `size` bytes.
    pub(crate) fn ranges(size: u64, piece: u64) -> impl Iterator<Item = (u64, u64)> {
        let piece = piece.max(1);
        (0..size.div_ceil(piece)).map(move |i| (i * piece, ((i + 1) * piece).min(size)))
    }
}

/// The Concourse build identity from the `BUILD_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuildIdentity {
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
    pub(crate) fn from_env() -> Option<Self> {
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
    /// A new manifest for the set at `loc`, stamped with this tool's version, the current
    /// time and the build.
    pub(crate) fn new(
        loc: &SetLocation,
        commit: &str,
        code_hash: Option<&str>,
        mut files: Vec<FileEntry>,
    ) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            format: FORMAT,
            commit: commit.to_string(),
            code_hash: code_hash.map(str::to_string),
            prefix: Some(loc.root().to_string()),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            completed_ms: None,
            build: BuildIdentity::from_env(),
            files,
            signer: None,
        }
    }

    /// Parses and validates a manifest read from `key`: every field a reader relies on, each
    /// refused with a message that names it. What was read from the bucket is hostile input.
    pub(crate) fn parse(bytes: &[u8], key: &str) -> std::result::Result<Self, Refused> {
        let invalid = |what: String| Refused::Invalid(format!("manifest {key}: {what}"));
        if bytes.len() as u64 > MANIFEST_MAX {
            return Err(invalid(format!(
                "it is over {} MiB, the most a manifest may hold",
                MANIFEST_MAX >> 20
            )));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            // serde quotes the offending value in full: keep it short.
            let why = crate::error::clip_quoted(&e.to_string(), &['"', '`']);
            invalid(format!("it is not valid JSON ({why})"))
        })?;
        if m.format != FORMAT {
            return Err(Refused::NewerFormat(format!(
                "manifest {key} has format {} but this version reads format {FORMAT}: upgrade s3-asset-manager",
                m.format
            )));
        }
        m.validate().map_err(invalid)?;
        Ok(m)
    }

    /// Every field's rule, the first broken one named (`files[3].size`, say).
    fn validate(&self) -> std::result::Result<(), String> {
        self.validate_fields()?;
        let mut seen = HashSet::with_capacity(self.files.len());
        let mut total: u64 = 0;
        for (i, f) in self.files.iter().enumerate() {
            check_asset_path(&f.path)
                .map_err(|why| format!("`files[{i}].path` {} is unsafe ({why})", clip(&f.path)))?;
            if !seen.insert(f.path.as_str()) {
                return Err(format!(
                    "`files[{i}].path` {} is listed twice",
                    clip(&f.path)
                ));
            }
            if f.size > MAX_ASSET_SIZE {
                return Err(format!(
                    "`files[{i}].size` {} is over 5 TiB, the most S3 stores in one object",
                    f.size
                ));
            }
            total = total
                .checked_add(f.size)
                .ok_or_else(|| format!("`files`: the sizes add up past {} bytes", u64::MAX))?;
            validate_file(i, f)?;
        }
        Ok(())
    }

    /// [`Manifest::validate`]'s checks of the fields beside the files.
    fn validate_fields(&self) -> std::result::Result<(), String> {
        if !is_object_id(&self.commit) {
            return Err(format!(
                "`commit` {} is not a full lowercase hex commit id",
                clip(&self.commit)
            ));
        }
        if let Some(h) = self.code_hash.as_deref().filter(|h| !is_code_hash(h)) {
            return Err(format!(
                "`code_hash` {} is not 64 lowercase hex digits",
                clip(h)
            ));
        }
        if let Some(p) = &self.prefix {
            let bad = p.len() > MAX_PREFIX || !p.ends_with('/') || p.chars().any(is_unprintable);
            if bad {
                return Err(format!(
                    "`prefix` {} is not a key prefix (at most {MAX_PREFIX} bytes, ending in '/', printable)",
                    clip(p)
                ));
            }
        }
        for (name, value) in [
            ("created", &self.created),
            ("tool_version", &self.tool_version),
        ] {
            if value.len() > MAX_FIELD || value.chars().any(is_unprintable) {
                return Err(format!(
                    "`{name}` {} is longer than {MAX_FIELD} bytes or not printable",
                    clip(value)
                ));
            }
        }
        // What names the build is shown to users (the resource's metadata): bounded and
        // printable like the fields above.
        if let Some(b) = &self.build {
            for (name, value) in [
                ("build.team", &b.team),
                ("build.pipeline", &b.pipeline),
                ("build.job", &b.job),
                ("build.name", &b.name),
                ("build.id", &b.id),
                ("build.url", &b.url),
            ] {
                let Some(value) = value else { continue };
                if value.len() > MAX_FIELD || value.chars().any(is_unprintable) {
                    return Err(format!(
                        "`{name}` {} is longer than {MAX_FIELD} bytes or not printable",
                        clip(value)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether this manifest is the one of the set at `loc`: it names that commit (an
    /// artifacts set) or code hash (a cache entry), and the prefix it was written under is
    /// `loc`'s. A manifest copied anywhere else (with its signature, which covers these names)
    /// is not that set's. One without a prefix (written by an earlier version) passes only
    /// when `require_prefix` is false: readers with trusted keys require it.
    pub(crate) fn check_place(
        &self,
        loc: &SetLocation,
        require_prefix: bool,
    ) -> std::result::Result<(), String> {
        let key = loc.manifest_key();
        let (field, named) = match loc.is_cache() {
            true => ("code hash", self.code_hash.as_deref().unwrap_or("none")),
            false => ("commit", self.commit.as_str()),
        };
        if named != loc.id() {
            return Err(format!(
                "manifest {key} names {field} {named}: a set copied from another place is not this set"
            ));
        }
        match &self.prefix {
            Some(p) if p != loc.root() => Err(format!(
                "manifest {key} was written under {}: a set copied from another place is not this set",
                clip(p)
            )),
            None if require_prefix => Err(format!(
                "manifest {key} names no key prefix (an earlier version wrote it), so nothing binds its signature to this place"
            )),
            _ => Ok(()),
        }
    }

    /// Serialises the manifest as JSON, indented down to its list of files, one file to a
    /// line: as easy to read as fully indented JSON, and about 40 % smaller for a large set
    /// (50,000 files: 8 MB against 13 MB), which every reader downloads and parses.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // About what a file's line takes, so the buffer is allocated once.
        let guess = 1024 + self.files.len() * 180;
        let mut v = Vec::with_capacity(guess);
        self.write_json(&mut v).expect("manifest serialises");
        v
    }

    /// Writes the bytes of [`Manifest::to_bytes`] to `w`, without holding them.
    pub(crate) fn write_json(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        let mut ser = serde_json::Serializer::with_formatter(&mut w, ShallowPretty::default());
        self.serialize(&mut ser).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    }

    /// The sum of all asset sizes (which [`Manifest::parse`] checked cannot overflow).
    pub(crate) fn total_bytes(&self) -> u64 {
        sum_sizes(self.files.iter().map(|f| f.size))
    }
}

/// Sizes added without overflow: a sum past `u64::MAX` stops there.
pub(crate) fn sum_sizes(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().fold(0, u64::saturating_add)
}

/// Checks that `path` is a safe relative asset path: `/`-separated, no empty, `.` or `..`
/// segments, no leading `.` in any segment, not absolute, and nothing a log could not show as
/// it is (control characters, bidirectional overrides, invisible formatting characters, line
/// and paragraph separators).
pub(crate) fn check_asset_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err("absolute path or backslash");
    }
    if path.chars().any(char::is_control) {
        return Err("control character");
    }
    if path.chars().any(is_unprintable) {
        return Err("bidirectional, invisible or separator character");
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

/// [`Manifest::validate`]'s checks of one file's digests and entity tag (`i`: its index).
fn validate_file(i: usize, f: &FileEntry) -> std::result::Result<(), String> {
    if !f.sha256.is_known() {
        return Err(format!(
            "`files[{i}].sha256` of {} is not 64 lowercase hex digits",
            clip(&f.path)
        ));
    }
    if let Some(p) = &f.pieces {
        let count = f.size.div_ceil(p.size.max(1));
        if !(PIECE_MIN..=PIECE_MAX).contains(&p.size) {
            return Err(format!(
                    "`files[{i}].pieces.size` of {} is {}, not between {PIECE_MIN} and {PIECE_MAX} bytes",
                    clip(&f.path),
                    p.size
                ));
        }
        if f.size == 0 || count > PIECES_MAX as u64 || p.sha256.len() as u64 != count {
            return Err(format!(
                    "`files[{i}].pieces.sha256` of {} holds {} digests, but {} bytes in pieces of {} make {count} (at most {PIECES_MAX})",
                    clip(&f.path),
                    p.sha256.len(),
                    f.size,
                    p.size
                ));
        }
        if let Some(j) = p.sha256.iter().position(|h| !is_sha256_hex(h)) {
            return Err(format!(
                "`files[{i}].pieces.sha256[{j}]` of {} is not 64 lowercase hex digits",
                clip(&f.path)
            ));
        }
    }
    if let Some(etag) = &f.etag {
        if etag.len() > MAX_FIELD || !etag.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                    "`files[{i}].etag` of {} is not a printable entity tag of at most {MAX_FIELD} bytes",
                    clip(&f.path)
                ));
        }
    }
    Ok(())
}

mod pretty;
mod sha;

use pretty::ShallowPretty;
pub(crate) use sha::Sha256Hex;

#[cfg(test)]
mod tests;
