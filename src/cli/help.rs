//! Help texts written from the constants they describe, so that `--help` cannot drift from
//! what the code does.

use crate::engine::{FEWEST_IN_FLIGHT, FIRST_IN_FLIGHT};
use crate::store::s3::{SILENT_MAX, SILENT_SHARE};
use crate::store::{LARGEST_PART, LARGE_FILE, LARGE_FILE_PARTS};

/// The help of `--concurrency`, written from the window's constants.
pub(super) fn concurrency() -> String {
    format!(
        "The most files transferred at once: the number in flight starts at {FIRST_IN_FLIGHT} (or this, if lower), doubles up to this while throughput grows, and halves (to no fewer than {FEWEST_IN_FLIGHT}) when the store throttles"
    )
}

/// The help of `--timeout`, written from the constants of a silent store's retry.
pub(super) fn timeout() -> String {
    let share = match SILENT_SHARE {
        4 => "a quarter".to_string(),
        n => format!("1/{n}"),
    };
    format!(
        "The longest one S3 request may take, retries included, in seconds; a silent store is retried after {share} of it (at most {} s)",
        SILENT_MAX.as_secs()
    )
}

/// The help of `--part-size`, written from the part-size constants.
pub(super) fn part_size() -> String {
    format!(
        "The smallest part of a multipart upload, and range of a large download; a file over {}M goes in about {LARGE_FILE_PARTS} parts, of at most {}M",
        LARGE_FILE >> 20,
        LARGEST_PART >> 20
    )
}
