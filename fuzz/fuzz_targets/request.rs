//! Concourse request parsing, as the `check`, `in` and `out` binaries do it before touching
//! the network: `parse_request`, then `source.validate()` and the version's commit id. (The
//! completion manifest, the other JSON the tool reads from outside, has its own target.)
//!
//! Property: nothing panics; every error is one line shorter than 1000 characters; code-hash
//! patterns that parse are normalised (see `check_patterns`); a commit id that parses is a
//! full lowercase hex id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3_asset_manager::commit::parse_commit;
use s3_asset_manager::resource::{
    parse_request, CheckRequest, InRequest, OutRequest, Request, Source, Version,
};
use s3_asset_manager_fuzz::{check_error, check_patterns};

fn check_source(source: &Source) {
    if let Err(e) = source.validate() {
        check_error("source.validate", &e);
    }
    if let Err(e) = source.cache_mode() {
        check_error("source.cache_mode", &e);
    }
    match source.code_hash_spec() {
        Ok(Some(spec)) => check_patterns(&spec.patterns),
        Ok(None) => {}
        Err(e) => check_error("source.code_hash_spec", &e),
    }
}

fn check_version(v: &Version) {
    if let Some(c) = parse_commit(&v.commit) {
        assert!(
            c.len() == 40 || c.len() == 64,
            "commit {c:?} has a bad length"
        );
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "commit {c:?} is not lowercase hex"
        );
    }
}

fn request<T: Request>(
    input: &str,
    parts: impl FnOnce(&T) -> (&Source, Option<&Version>),
) {
    match parse_request::<T>(input) {
        Ok(req) => {
            let (source, version) = parts(&req);
            check_source(source);
            if let Some(v) = version {
                check_version(v);
            }
        }
        Err(e) => check_error("parse_request", &e),
    }
}

fuzz_target!(|data: &[u8]| {
    // The binaries read stdin as UTF-8 and stop with their own message otherwise.
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    request::<CheckRequest>(input, |r| (&r.source, r.version.as_ref()));
    request::<InRequest>(input, |r| (&r.source, Some(&r.version)));
    request::<OutRequest>(input, |r| (&r.source, None));
});
