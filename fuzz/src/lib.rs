//! Properties shared by the fuzz targets. Every check panics on a violation, which libFuzzer
//! reports as a crash and saves under `fuzz/artifacts/<target>/`.
//!
//! With `S3AM_FUZZ_MESSAGES=warn` in the environment, an error message that breaks the
//! one-line rule is printed to stderr (once per caller and kind of violation) instead of
//! panicking, so a known message bug does not stop a run that looks for panics and broken
//! invariants.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use s3_asset_manager::codehash::Patterns;
use s3_asset_manager::error::Error;

/// The longest error line accepted, in characters.
pub const MAX_ERROR_CHARS: usize = 1000;

fn warn_only() -> bool {
    static WARN: OnceLock<bool> = OnceLock::new();
    *WARN.get_or_init(|| std::env::var("S3AM_FUZZ_MESSAGES").as_deref() == Ok("warn"))
}

fn violation(what: &str, kind: &str, detail: String) {
    if !warn_only() {
        panic!("{what}: {kind}: {detail}");
    }
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen
        .get_or_insert_with(HashSet::new)
        .insert(format!("{what}: {kind}"))
    {
        eprintln!("S3AM_FUZZ_MESSAGES=warn: {what}: {kind}: {detail}");
    }
}

/// An error message must be one bounded line: a user reads it in a CI log.
pub fn check_message(what: &str, msg: &str) {
    if msg.contains(['\n', '\r']) {
        violation(what, "error message has a line break", format!("{msg:?}"));
    }
    let n = msg.chars().count();
    if n >= MAX_ERROR_CHARS {
        let head: String = msg.chars().take(200).collect();
        violation(
            what,
            "error message is too long",
            format!("{n} chars: {head:?}…"),
        );
    }
}

/// `check_message` on an error's `Display`.
pub fn check_error(what: &str, e: &Error) {
    check_message(what, &e.to_string());
}

/// A parsed pattern list holds only normalised, repository-relative patterns, and parsing
/// that list again yields the same list.
pub fn check_patterns(p: &Patterns) {
    let list = p.as_slice();
    assert!(!list.is_empty(), "parsed patterns are empty");
    for pat in list {
        assert!(!pat.starts_with('/'), "pattern {pat:?} is absolute");
        for seg in pat.split('/') {
            assert!(!seg.is_empty(), "pattern {pat:?} has an empty segment");
            assert!(seg != "..", "pattern {pat:?} has a '..' segment");
            assert!(seg != ".", "pattern {pat:?} has a '.' segment");
        }
        assert!(!pat.contains('\0'), "pattern {pat:?} has a NUL");
    }
    assert!(
        list.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
        "patterns not sorted and deduplicated: {list:?}"
    );
    match Patterns::new(list) {
        Ok(again) => assert_eq!(again.as_slice(), list, "normalising is not idempotent"),
        Err(e) => panic!("normalised patterns {list:?} are rejected when parsed again: {e}"),
    }
}

/// A manifest that parsed keeps every rule a reader relies on: hex ids, no path twice, each
/// path safe and printable, sizes within 5 TiB whose sum does not overflow, lowercase hex
/// SHA-256s, printable entity tags and prefix.
pub fn check_manifest(m: &s3_asset_manager::manifest::Manifest) {
    use s3_asset_manager::error::is_unprintable;
    use s3_asset_manager::layout::{is_code_hash, is_object_id, is_sha256_hex};
    use s3_asset_manager::manifest::{check_asset_path, MAX_ASSET_SIZE};
    assert!(is_object_id(&m.commit), "commit {:?} accepted", m.commit);
    if let Some(h) = &m.code_hash {
        assert!(is_code_hash(h), "code hash {h:?} accepted");
    }
    if let Some(p) = &m.prefix {
        assert!(!p.chars().any(is_unprintable), "prefix {p:?} accepted");
    }
    let mut seen = HashSet::new();
    let mut total: u64 = 0;
    for f in &m.files {
        assert!(check_asset_path(&f.path).is_ok(), "unsafe path {:?} accepted", f.path);
        assert!(!f.path.chars().any(is_unprintable), "path {:?} accepted", f.path);
        assert!(seen.insert(f.path.clone()), "path {:?} accepted twice", f.path);
        assert!(f.size <= MAX_ASSET_SIZE, "size {} accepted", f.size);
        total = total.checked_add(f.size).expect("sizes that overflow accepted");
        assert!(f.sha256.is_known(), "sha256 {:?} accepted", f.sha256);
        assert!(is_sha256_hex(&f.sha256.to_string()), "sha256 {:?} accepted", f.sha256);
        if let Some(e) = &f.etag {
            assert!(!e.chars().any(is_unprintable), "etag {e:?} accepted");
        }
    }
    assert_eq!(m.total_bytes(), total);
}
