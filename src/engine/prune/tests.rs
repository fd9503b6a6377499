//! Unit tests of `prune`.

use super::*;

/// Each reason renders as the plan's line always read.
#[test]
fn every_reason_reads_as_the_plans_line() {
    let (h, d) = (
        Duration::from_secs(3 * 3600),
        Duration::from_secs(86400 * 3),
    );
    let damaged = Incomplete::Manifest {
        state: Listed::Damaged,
        why: Some("1 of 2 objects missing: a.zip".into()),
    };
    let untrusted = Incomplete::Manifest {
        state: Listed::Untrusted,
        why: None,
    };
    let cases = [
        (
            Why::IncompleteOld { what: Incomplete::NoManifest, age: d, limit: h },
            "no manifest, last written 3d ago: older than --incomplete-max-age 3h",
        ),
        (
            Why::IncompleteOld { what: damaged.clone(), age: d, limit: h },
            "damaged (1 of 2 objects missing: a.zip), last written 3d ago: older than --incomplete-max-age 3h",
        ),
        (
            Why::IncompleteYoung { what: Incomplete::NoManifest, age: h, limit: d },
            "no manifest, last written 3h ago: may be an upload under way (--incomplete-max-age 3d)",
        ),
        (
            Why::IncompleteYoung { what: untrusted, age: h, limit: d },
            "untrusted, last written 3h ago: not counted as complete; goes once older than --incomplete-max-age 3d",
        ),
        (
            Why::IncompleteUntimed { what: damaged },
            "damaged (1 of 2 objects missing: a.zip), and the store gave no time: kept",
        ),
        (Why::Newest { keep_last: 1 }, "the newest (--keep-last 1)"),
        (Why::Newest { keep_last: 5 }, "one of the 5 newest (--keep-last 5)"),
        (
            Why::PastMaxAge { legacy: false, age: d, max: h },
            "completed 3d ago: older than --max-age 3h",
        ),
        (
            Why::PastMaxAge { legacy: true, age: d, max: h },
            "legacy set, last written 3d ago: older than --max-age 3h",
        ),
        (
            Why::WithinMaxAge { legacy: false, age: h, max: d },
            "completed 3h ago: within --max-age 3d",
        ),
        (
            Why::NoMaxAge { legacy: true, age: h },
            "legacy set, last written 3h ago (no --max-age)",
        ),
        (Why::Untimed, "the store gave no time: kept"),
        (
            Why::Unused { age: d, max: h },
            "last used 3d ago: unused for longer than --cache-max-unused 3h",
        ),
        (Why::Used { age: h }, "last used 3h ago"),
        (
            Why::OverCacheSize { last_used: Some(h), max_size: 2_000_000 },
            "least recently used (last used 3h ago): the cache is over --cache-max-size 2.0 MB",
        ),
        (
            Why::OverCacheSize { last_used: None, max_size: 2_000_000 },
            "least recently used (last used at an unknown time ago): the cache is over --cache-max-size 2.0 MB",
        ),
        (
            Why::OthersWrote { manifest: None },
            "no manifest, and not all written by this tool (an object without its publisher-id): the original tool's set, or another tool's; kept (--accept-legacy ages the original tool's sets by --max-age)",
        ),
        (
            Why::OthersWrote { manifest: Some(Listed::Invalid) },
            "invalid, but not all written by this tool (an object without its publisher-id): another tool's objects; kept",
        ),
    ];
    for (why, line) in cases {
        assert_eq!(why.to_string(), line, "{why:?}");
    }
}
