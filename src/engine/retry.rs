//! Trying again: how many times a transfer is started over, the pause between tries, and the
//! one loop every transfer retries through. Whether an error is worth another try is the
//! error's to say ([`crate::error::Error::retryable`]).

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::log;

/// Attempts at one object's transfer (each made of the SDK's own retried requests): a body
/// cut off mid-stream, or a request that failed every SDK attempt, is tried again from the start.
pub(super) const BODY_ATTEMPTS: u32 = 4;

/// A random pause that grows with the round, so racing publishers fall out of step.
pub(super) fn jitter(round: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(round);
    let spread = 400 * u64::from(round);
    Duration::from_millis(100 + h.finish() % spread)
}

/// Runs `op` until it succeeds, fails with an error that is not retryable, or has been tried
/// [`BODY_ATTEMPTS`] times; each retry is one warning that ends with `again`, e.g. "writing
/// fn.zip again (1 of 4)".
pub(super) async fn retried<T, F, Fut>(again: impl Fn() -> String, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.retryable() && attempt < BODY_ATTEMPTS => {
                log::warn(format!("{e}; {} ({attempt} of {BODY_ATTEMPTS})", again()));
                tokio::time::sleep(jitter(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
