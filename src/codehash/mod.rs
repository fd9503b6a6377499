//! Code hash v1: the cache key computed over the files that make up the assets.
//!
//! The byte layout is public (docs/code-hash-v1.md), and a second implementation under
//! `tests/` must agree with this one, so change nothing here without a new version tag.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{clip, Error, Result};

/// The version tag that starts the hashed byte stream.
pub(crate) const VERSION_TAG: &[u8] = b"s3-asset-manager code-hash v1\0";

/// A normalised, validated list of code-hash patterns.
#[derive(Debug, Clone)]
pub(crate) struct Patterns {
    list: Vec<String>,
    set: GlobSet,
}

impl Patterns {
    /// Parses a space-separated list, as in `CODE_HASH_FIND_FILTER`.
    pub(crate) fn from_spaced(s: &str) -> Result<Self> {
        Self::new(s.split_whitespace())
    }

    /// Parses one pattern per item, normalising each (see docs/code-hash-v1.md for the rules).
    pub(crate) fn new<I, S>(items: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for item in items {
            list.push(normalise(item.as_ref())?);
        }
        if list.is_empty() {
            return Err(Error::Config(
                "the code-hash filter is empty: give one or more glob patterns relative to the repository root, e.g. \"src/** package.json\"".into(),
            ));
        }
        list.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        list.dedup();
        let mut builder = GlobSetBuilder::new();
        for p in &list {
            for glob in [p.clone(), format!("{p}/**")] {
                let g = GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| {
                        Error::Config(format!(
                            "invalid code-hash pattern {}: {}; fix its glob syntax",
                            clip(p),
                            // globset quotes raw characters, a newline among them.
                            crate::error::one_line(&e.kind().to_string())
                        ))
                    })?;
                builder.add(g);
            }
        }
        let set = builder
            .build()
            .map_err(|e| Error::Config(format!("invalid code-hash patterns: {e}")))?;
        Ok(Patterns { list, set })
    }

    /// The normalised patterns, sorted and deduplicated.
    pub(crate) fn as_slice(&self) -> &[String] {
        &self.list
    }

    fn matches(&self, rel: &[u8]) -> bool {
        self.set
            .is_match(Path::new(std::ffi::OsStr::from_bytes(rel)))
    }

    /// Directories (relative to the repository) that hold every possible match.
    fn walk_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for p in &self.list {
            let mut root = PathBuf::new();
            for comp in p.split('/') {
                if comp.bytes().any(|b| b"*?[]{}\\".contains(&b)) {
                    break;
                }
                root.push(comp);
            }
            roots.push(root);
        }
        roots.sort();
        let mut kept: Vec<PathBuf> = Vec::new();
        for r in roots {
            if !kept.iter().any(|k| r.starts_with(k)) {
                kept.push(r);
            }
        }
        kept
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.list.join(" "))
    }
}

fn normalise(raw: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Config(format!(
            "invalid code-hash pattern {}: {why}; patterns are globs relative to the repository root", clip(raw)
        ))
    };
    if raw.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    if raw.starts_with('/') {
        return Err(bad("it is absolute"));
    }
    check_brackets(raw).map_err(bad)?;
    let mut parts: Vec<&str> = Vec::new();
    for seg in raw.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if seg == ".." {
            return Err(bad("it leaves the repository with '..'"));
        }
        if seg != "**" && seg.contains("**") {
            return Err(bad("'**' must be a whole path segment, as in src/**/*.py"));
        }
        // `a/**/**/b` means the same as `a/**/b`.
        if seg == "**" && parts.last() == Some(&"**") {
            continue;
        }
        parts.push(seg);
    }
    if parts.is_empty() {
        return Ok("**".into());
    }
    Ok(parts.join("/"))
}

/// Rejects the glob forms the written spec leaves out: `/` inside `[...]` or `{...}`, and
/// nested braces.
fn check_brackets(raw: &str) -> std::result::Result<(), &'static str> {
    let (mut in_class, mut in_brace) = (false, false);
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => {
                in_class = true;
                // A `]` right after `[`, `[!` or `[^` is a literal member.
                if matches!(chars.peek(), Some('!' | '^')) {
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
            }
            ']' if in_class => in_class = false,
            '/' if in_class || in_brace => return Err("'/' inside [...] or {...}"),
            '{' if !in_class => {
                if in_brace {
                    return Err("nested {...}");
                }
                in_brace = true;
            }
            '}' if in_brace && !in_class => in_brace = false,
            _ => {}
        }
    }
    Ok(())
}

/// What kind of file a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file without the owner's execute bit.
    Regular,
    /// A regular file with the owner's execute bit.
    Executable,
    /// A symbolic link; its content is the link text.
    Symlink,
}

impl Kind {
    /// The one-letter tag used in the hashed stream and in `hash --list`.
    pub(crate) fn tag(self) -> char {
        match self {
            Kind::Regular => 'f',
            Kind::Executable => 'x',
            Kind::Symlink => 'l',
        }
    }
}

/// One matched file as it enters the hash.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Regular, executable or symlink.
    pub kind: Kind,
    /// The `/`-separated path relative to the repository root, as raw bytes.
    pub path: Vec<u8>,
    /// The content length (the link text's length for a symlink).
    pub size: u64,
    /// SHA-256 of the content (of the link text for a symlink).
    pub sha256: [u8; 32],
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.kind.tag(),
            self.size,
            hex::encode(self.sha256),
            String::from_utf8_lossy(&self.path)
        )
    }
}

/// The result of hashing: the hex digest and the records that went into it.
#[derive(Debug, Clone)]
pub(crate) struct CodeHash {
    /// Lowercase hex SHA-256.
    pub hex: String,
    /// Every record, sorted by path bytes.
    pub records: Vec<Record>,
}

/// Computes the code hash of the files under `repo` matched by `patterns`.
pub(crate) fn compute(repo: &Path, patterns: &Patterns, salt: &str) -> Result<CodeHash> {
    compute_unless(repo, patterns, salt, &AtomicBool::new(false))
}

/// [`compute`], given up at the next file once `stop` is set (the caller no longer needs
/// the hash): then an error that no one is meant to see.
pub(crate) fn compute_unless(
    repo: &Path,
    patterns: &Patterns,
    salt: &str,
    stop: &AtomicBool,
) -> Result<CodeHash> {
    if !repo.is_dir() {
        return Err(Error::Input(format!(
            "repository {} is not a directory: set the repository (GIT_REPO_PATH, --repo or params.repo) to the checkout's directory",
            repo.display()
        )));
    }
    if salt.contains('\0') {
        return Err(Error::Config(
            "the code-hash salt contains a NUL byte: use printable text".into(),
        ));
    }
    let found = collect(repo, patterns, stop)?;
    if found.is_empty() {
        return Err(Error::Input(format!(
            "the code-hash patterns \"{patterns}\" match no file in {}: fix the filter (CODE_HASH_FIND_FILTER, --filter or source.code_hash_filter); patterns are globs relative to the repository root",
            repo.display()
        )));
    }
    let records = found
        .into_par_iter()
        .map(|(rel, abs)| match stop.load(Ordering::Relaxed) {
            true => Err(stopped()),
            false => record(rel, &abs),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CodeHash {
        hex: digest(patterns.as_slice(), salt, &records),
        records,
    })
}

/// The digest over an already sorted record list (the spec's byte stream).
pub(crate) fn digest(patterns: &[String], salt: &str, records: &[Record]) -> String {
    let mut h = Sha256::new();
    h.update(VERSION_TAG);
    for p in patterns {
        h.update(b"p ");
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    h.update(b"s ");
    h.update(salt.as_bytes());
    h.update(b"\0");
    for r in records {
        h.update(format!("{} {} {} ", r.kind.tag(), r.size, hex::encode(r.sha256)).as_bytes());
        h.update(&r.path);
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

/// What [`compute_unless`] returns once stopped.
fn stopped() -> Error {
    Error::Input("the code hash was stopped: it was not needed".into())
}

/// Walks the repository and returns matched paths, sorted and deduplicated by raw bytes;
/// stops at the next entry once `stop` is set.
fn collect(
    repo: &Path,
    patterns: &Patterns,
    stop: &AtomicBool,
) -> Result<BTreeMap<Vec<u8>, PathBuf>> {
    let mut found = BTreeMap::new();
    for root in patterns.walk_roots() {
        let Some(start) = real_dir_prefix(repo, &root) else {
            continue;
        };
        let walker = walkdir::WalkDir::new(repo.join(&start))
            .follow_links(false)
            .follow_root_links(false)
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git");
        for entry in walker {
            if stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(repo).to_path_buf();
                let io = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
                Error::io("cannot read", path, io)
            })?;
            let ft = entry.file_type();
            if !(ft.is_file() || ft.is_symlink()) {
                continue;
            }
            let rel = entry.path().strip_prefix(repo).unwrap_or(entry.path());
            let rel_bytes = rel.as_os_str().as_bytes().to_vec();
            if patterns.matches(&rel_bytes) {
                found.insert(rel_bytes, entry.path().to_path_buf());
            }
        }
    }
    Ok(found)
}

/// The longest prefix of `rel` whose every component is a real directory (or the first
/// non-directory component itself), so walking it never passes through a symlink. `None`
/// when the prefix does not exist or would enter `.git`.
fn real_dir_prefix(repo: &Path, rel: &Path) -> Option<PathBuf> {
    let mut cur = PathBuf::new();
    for comp in rel.components() {
        if comp.as_os_str() == ".git" {
            return None;
        }
        cur.push(comp);
        let meta = std::fs::symlink_metadata(repo.join(&cur)).ok()?;
        if !meta.is_dir() {
            break;
        }
    }
    Some(cur)
}

fn record(path: Vec<u8>, abs: &Path) -> Result<Record> {
    let meta = std::fs::symlink_metadata(abs).map_err(|e| Error::io("cannot stat", abs, e))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(abs).map_err(|e| Error::io("cannot read link", abs, e))?;
        let text = target.as_os_str().as_bytes();
        return Ok(Record {
            kind: Kind::Symlink,
            path,
            size: text.len() as u64,
            sha256: Sha256::digest(text).into(),
        });
    }
    let kind = if meta.permissions().mode() & 0o100 != 0 {
        Kind::Executable
    } else {
        Kind::Regular
    };
    let (size, sha256) = sha256_file(abs)?;
    Ok(Record {
        kind,
        path,
        size,
        sha256,
    })
}

/// Reads a whole file in 256 KiB chunks, handing each to `f`; returns its length.
fn each_chunk(path: &Path, mut f: impl FnMut(&[u8])) -> Result<u64> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            return Ok(size);
        }
        size += n as u64;
        f(&buf[..n]);
    }
}

/// Reads `len` bytes of `path` from `offset` in 256 KiB chunks, handing each to `f`.
fn each_chunk_in(path: &Path, offset: u64, len: u64, mut f: impl FnMut(&[u8])) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], offset + done)
            .map_err(|e| Error::io("cannot read", path, e))?;
        f(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// Streams a file through SHA-256 and returns its length and digest.
pub(crate) fn sha256_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let size = each_chunk(path, |chunk| h.update(chunk))?;
    Ok((size, h.finalize().into()))
}

/// Size and SHA-256 of a file, and the CRC64/NVME of each `part`-byte part of it, in one pass:
/// the multipart upload that follows sends those part checksums without reading for them.
pub(crate) fn sha256_and_part_crc64(path: &Path, part: u64) -> Result<(u64, [u8; 32], Vec<u64>)> {
    let mut h = Sha256::new();
    let mut crcs = Vec::new();
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut in_part = 0u64;
    let size = each_chunk(path, |chunk| {
        h.update(chunk);
        let mut rest = chunk;
        while !rest.is_empty() {
            let take = ((part - in_part) as usize).min(rest.len());
            crc.update(&rest[..take]);
            in_part += take as u64;
            rest = &rest[take..];
            if in_part == part {
                crcs.push(crc.finalize_reset());
                in_part = 0;
            }
        }
    })?;
    if in_part > 0 || crcs.is_empty() {
        crcs.push(crc.finalize());
    }
    Ok((size, h.finalize().into(), crcs))
}

/// The CRC64/NVME of `len` bytes of `path` from `offset`.
pub(crate) fn crc64_range(path: &Path, offset: u64, len: u64) -> Result<u64> {
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    each_chunk_in(path, offset, len, |chunk| crc.update(chunk))?;
    Ok(crc.finalize())
}

/// The SHA-256 of `len` bytes of `path` from `offset`.
pub(crate) fn sha256_range(path: &Path, offset: u64, len: u64) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    each_chunk_in(path, offset, len, |chunk| h.update(chunk))?;
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests;
