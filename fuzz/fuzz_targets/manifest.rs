//! The completion manifest, as every reader takes it from the bucket (hostile input):
//! `Manifest::parse`, then `check_place` against an artifacts set and a cache entry.
//!
//! Property: nothing panics; every error is one line shorter than 1000 characters; what
//! parses keeps every rule of the format (see `check_manifest` in `src/lib.rs`); a manifest
//! accepted at a place names that place; and one serialised again parses to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3_asset_manager::layout::Layout;
use s3_asset_manager::manifest::Manifest;
use s3_asset_manager_fuzz::{check_manifest, check_message};

fuzz_target!(|data: &[u8]| {
    let m = match Manifest::parse(data, "artifacts/x/.manifest.json") {
        Ok(m) => m,
        Err(e) => return check_message("Manifest::parse", &e.to_string()),
    };
    check_manifest(&m);
    let again = Manifest::parse(&m.to_bytes(), "k").expect("a parsed manifest parses again");
    assert_eq!(again, m, "serialising changed the manifest");
    for prefix in ["", "team"] {
        let layout = Layout::new(prefix).unwrap();
        let mut places = vec![layout.artifacts(&m.commit)];
        places.extend(m.code_hash.as_deref().map(|h| layout.cache(h)));
        for loc in places {
            for strict in [false, true] {
                match m.check_place(&loc, strict) {
                    Ok(()) => {
                        let named = match loc.is_cache() {
                            true => m.code_hash.as_deref(),
                            false => Some(m.commit.as_str()),
                        };
                        assert_eq!(named, Some(loc.id()), "accepted at another place");
                        if let Some(p) = &m.prefix {
                            assert_eq!(p, loc.root(), "accepted under another prefix");
                        } else {
                            assert!(!strict, "accepted without a prefix where one is required");
                        }
                    }
                    Err(why) => check_message("Manifest::check_place", &why),
                }
            }
        }
    }
});
