//! Code-hash pattern parsing (`CODE_HASH_FIND_FILTER` / `source.code_hash_filter`) and the
//! other string settings: bucket, key prefix and manifest asset paths.
//!
//! The input is read as UTF-8 (lossily) and used whole by `Patterns::from_spaced`,
//! `Bucket::parse`, `Layout::new` and `check_asset_path`, and split at NUL bytes into the
//! list given to `Patterns::new` (so list items may hold any other character, newlines too).
//!
//! Property: nothing panics; every error is one line shorter than 1000 characters; patterns
//! that parse are normalised (see `check_patterns`); accepted buckets, prefixes and asset
//! paths are well formed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3_asset_manager::codehash::Patterns;
use s3_asset_manager::layout::Layout;
use s3_asset_manager::manifest::check_asset_path;
use s3_asset_manager::store::Bucket;
use s3_asset_manager_fuzz::{check_error, check_message, check_patterns};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let input = input.as_ref();

    match Patterns::from_spaced(input) {
        Ok(p) => check_patterns(&p),
        Err(e) => check_error("Patterns::from_spaced", &e),
    }
    match Patterns::new(input.split('\0')) {
        Ok(p) => check_patterns(&p),
        Err(e) => check_error("Patterns::new", &e),
    }

    match Bucket::parse(input) {
        Ok((Bucket::S3(name), _prefix)) => {
            assert!(
                (3..=63).contains(&name.len()),
                "bucket name {name:?} accepted"
            );
        }
        Ok((Bucket::Local(path), prefix)) => {
            assert!(path.is_absolute(), "relative file bucket {path:?} accepted");
            assert!(prefix.is_empty());
        }
        Err(e) => check_error("Bucket::parse", &e),
    }

    match Layout::new(input) {
        Ok(l) => {
            let p = l.prefix();
            if !p.is_empty() {
                let body = p.strip_suffix('/').expect("prefix ends in '/'");
                for seg in body.split('/') {
                    assert!(
                        !seg.is_empty() && seg != "." && seg != "..",
                        "prefix {p:?} accepted"
                    );
                }
            }
        }
        Err(e) => check_error("Layout::new", &e),
    }

    match check_asset_path(input) {
        Ok(()) => {
            assert!(!input.is_empty() && !input.starts_with('/'));
            assert!(input
                .split('/')
                .all(|s| !s.is_empty() && s != ".." && !s.starts_with('.')));
        }
        Err(why) => check_message("check_asset_path", why),
    }
});
