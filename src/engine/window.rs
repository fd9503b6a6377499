//! How many transfers are in flight: a window that hides the store's round trip without
//! tuning. It starts at [`START`], or, for a store farther away, at what its round trip holds
//! at [`FAR_RATE`] (or the limit set, if lower); where a higher limit is set, it doubles each
//! time a window's worth of transfers completes faster than the last (as TCP's slow start
//! does) and goes back to the fastest window once throughput stops improving. It halves when
//! the store throttles (503 SlowDown), much as TCP's congestion control does.
//! Bytes held in memory by the transfers in flight stay within a fixed budget.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::Result;
use crate::log;
use crate::store::{Hold, Store};

/// Transfers in flight when a loop starts (or `S3AM_CONCURRENCY`, if lower): as many as
/// s5cmd's workers. Far from the store, every doubling on the way up costs a round trip: 2,000
/// files of 64 KiB through a 400 ms-each-way proxy took 10.6 s to upload and 8.9 s to
/// download starting at 64, 9.9 s and 8.2 s at 128, and 9.2 s and 7.5 s at 256 (s5cmd: 6.7 s
/// and 8.5 s), and took no longer on loopback or at 40 ms each way, where 2 shared cores
/// saturate the store. The memory budget still bounds what they hold, and a store that
/// throttles halves it (S3 takes 3,500 PUTs a second per prefix).
pub(crate) const START: usize = 256;

/// Transfers in flight when a loop starts held ([`Window::held_by`]) before the store's round
/// trip is known: they wait for the read of the set anyway, so the connections and request
/// heads of twice [`START`] travel during the read's round trip rather than after it; once the
/// read is in, the window goes where the round trip says ([`Window::learn`]: back to
/// [`START`] near the store). Far from it (400 ms each way), the 2,000-file upload started
/// 257 beside the read and 247 more once it answered, which then took a new connection's two
/// round trips (trace, 2026-12-07).
pub(crate) const HELD_START: usize = 2 * START;

/// The requests a second that a distant store is taken to answer at once, for where the
/// window starts: [`START`] in flight keep a store 256 ms away or nearer busy at that rate,
/// and one farther away starts with as many as its round trip (the fastest answer so far,
/// [`Store::round_trip`]) holds at that rate, up to the limit and the memory budget, rather
/// than doubling from 256 a round trip at a time. S3 takes 3,500 PUTs and 5,500 GETs a second
/// per prefix.
pub(crate) const FAR_RATE: f64 = 1000.0;

/// The most bytes that transfers in flight hold in memory at once (files of up to 128 KiB
/// stream through their requests' buffers, larger small files are read or received whole,
/// and large ones stream through buffers of their own).
pub(super) const MEMORY_BUDGET: u64 = 32 << 20;

/// The fewest transfers in flight after throttling: a store that sheds a share of requests
/// at random, whatever the load, must not stall a transfer to one at a time.
pub(crate) const FLOOR: usize = 4;

/// Whether this process has said that the store throttles: once is enough, whichever
/// transfer loop (uploads, copies, downloads) noticed first.
static TOLD: AtomicBool = AtomicBool::new(false);

/// A throughput gain that counts as growth, between two windows.
const GAIN: f64 = 1.1;

/// The adaptive limit of one transfer loop.
#[derive(Debug)]
pub(super) struct Window {
    limit: usize,
    max: usize,
    growing: bool,
    /// The limit of the fastest round so far: a doubling that gained nothing goes back to it.
    best_limit: usize,
    /// Completions and start time of the current round: as many completions as were in
    /// flight at most during it, the limit or fewer where the memory budget admitted fewer.
    round_done: usize,
    /// The most transfers in flight since the round started (0: not told; the limit then).
    round_peak: usize,
    round_start: Instant,
    best_rate: f64,
    /// The store's throttle count when last seen, and completions since the last decrease.
    throttles: u64,
    since_decrease: usize,
    /// What the transfers wait for before they are answered, if anything (a publish's read
    /// of its set): its round trip is known once that is decided ([`Window::learn`]).
    held: Option<Hold>,
    /// Whether the store's round trip was known when the window started.
    heard: bool,
}

impl Window {
    /// A window that starts at [`START`], or more for a store whose `round_trip` is longer
    /// than [`START`] requests at [`FAR_RATE`] take (or at `max`, if smaller), and never
    /// exceeds `max`; `throttles` is the store's throttle count now.
    pub(super) fn new(max: usize, throttles: u64, round_trip: Option<Duration>) -> Self {
        let max = max.max(1);
        let far = round_trip.map_or(0, |rt| (rt.as_secs_f64() * FAR_RATE) as usize);
        let start = START.max(far).min(max);
        Window {
            limit: start,
            max,
            growing: true,
            best_limit: start,
            round_done: 0,
            round_peak: 0,
            round_start: Instant::now(),
            best_rate: 0.0,
            throttles,
            since_decrease: usize::MAX,
            held: None,
            heard: round_trip.is_some(),
        }
    }

    /// A window whose transfers are held (`hold`, a publish's writes while it reads its
    /// set): it starts before the store's round trip is known, and learns it once the hold
    /// is decided, not a round trip later when the first of them is answered.
    pub(super) fn held_by(mut self, hold: Option<&Hold>) -> Self {
        self.held = hold.cloned();
        if self.held.is_some() && !self.heard {
            self.limit = HELD_START.min(self.max);
            self.best_limit = self.limit;
        }
        self
    }

    /// Sets a window that started before the store's round trip was known where
    /// [`Window::new`] would have started it, while it is still growing: as far as the round
    /// trip holds at [`FAR_RATE`], up to the limit, or back to [`START`] near the store.
    fn learn(&mut self, round_trip: Option<Duration>) {
        let Some(rt) = round_trip else { return };
        if self.growing {
            let far = (rt.as_secs_f64() * FAR_RATE) as usize;
            self.limit = START.max(far).min(self.max);
            self.best_limit = self.limit;
        }
    }

    /// The current limit.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Notes how many transfers are in flight now, after the loop started all it could.
    fn in_flight(&mut self, running: usize) {
        self.round_peak = self.round_peak.max(running);
    }

    /// Accounts for one completed transfer, given the store's throttle count now.
    fn completed(&mut self, throttles: u64) {
        if throttles > self.throttles {
            self.throttles = throttles;
            // One throttled burst halves the window once: later 503s from requests sent
            // before the decrease say nothing new.
            if self.since_decrease >= self.limit / 2 {
                let before = self.limit;
                self.limit = (self.limit / 2).max(FLOOR.min(self.max));
                self.growing = false;
                self.since_decrease = 0;
                self.restart_round();
                if !TOLD.swap(true, Ordering::Relaxed) {
                    log::warn(format!(
                        "the store is throttling requests (503 SlowDown): {} transfers in flight now, down from {before}; throttled requests are retried with backoff",
                        self.limit
                    ));
                }
            }
            return;
        }
        self.since_decrease = self.since_decrease.saturating_add(1);
        self.round_done += 1;
        // A round is one window's worth of completions: about one round trip of the store's.
        // Where the memory budget held fewer than the limit in flight, a round of the limit's
        // length would span two round trips, and a doubling would seem to gain nothing.
        let round = match self.round_peak {
            0 => self.limit,
            peak => peak.min(self.limit),
        };
        if self.round_done < round {
            return;
        }
        let rate = self.round_done as f64 / self.round_start.elapsed().as_secs_f64().max(1e-6);
        self.restart_round();
        if rate > self.best_rate * GAIN {
            // Faster than ever: double while starting out, then grow by one (after a
            // plateau or a throttled burst, the room left above is small).
            self.best_rate = rate;
            self.best_limit = self.limit;
            let next = if self.growing {
                self.limit * 2
            } else {
                self.limit + 1
            };
            self.limit = next.min(self.max);
        } else if self.growing {
            // The last doubling gained nothing: the store (or this machine) is saturated, and
            // the extra transfers in flight would only queue there, costing CPU and memory.
            // Back to the fastest window, growing by one from there.
            self.growing = false;
            self.limit = self.best_limit.min(self.limit);
        }
    }

    fn restart_round(&mut self) {
        self.round_done = 0;
        self.round_peak = 0;
        self.round_start = Instant::now();
    }
}

/// How many transfers complete between two hand-backs of freed memory to the system
/// ([`super::release_freed_memory`]): each leaves freed request state behind, scattered
/// between the entries that live on, and glibc returns none of it by itself.
const TRIM_EVERY: u64 = 2048;

/// What a transfer holds for each of its files for as long as it runs, in flight or not:
/// the file's entry and what its write returned (its entity tag, its SHA-256). heaptrack of a
/// 50,000-file upload put them at 6.4 and 3.2 MB, about 200 bytes a file; counted with room
/// to spare, so that a large set leaves fewer requests in flight than a small one.
pub(super) const PER_FILE: u64 = 320;

/// Runs `jobs` (each with the bytes it holds in memory while it runs), at most `window`'s
/// limit at once and within [`MEMORY_BUDGET`], of which `reserved` bytes are held already
/// (the transfer's [`PER_FILE`] records); hands each result to `done` in completion order
/// (not collected: 50,000 of them would hold megabytes), or returns the first error (the
/// others are then dropped, which cancels them).
pub(super) async fn run<T, F>(
    store: &dyn Store,
    window: &mut Window,
    reserved: u64,
    jobs: impl IntoIterator<Item = (u64, F)>,
    mut done: impl FnMut(T),
) -> Result<()>
where
    F: Future<Output = Result<T>>,
{
    let mut pending = jobs.into_iter().peekable();
    let mut running = FuturesUnordered::new();
    let mut holding = reserved.min(MEMORY_BUDGET / 2);
    let mut completed = 0u64;
    let mut held = window.held.take().map(|h| Box::pin(h.decided()));
    loop {
        while running.len() < window.limit() {
            // One job always runs, however large; the others wait for room in the budget.
            let fits = match pending.peek() {
                Some((cost, _)) => running.is_empty() || holding + cost <= MEMORY_BUDGET,
                None => false,
            };
            if !fits {
                break;
            }
            if let Some((cost, job)) = pending.next() {
                holding += cost;
                running.push(async move { (cost, job.await) });
            }
        }
        window.in_flight(running.len());
        // Woken once the hold is decided, to start what the store's round trip holds.
        let next = match held.as_mut() {
            Some(decided) => tokio::select! {
                next = running.next() => Some(next),
                _ = decided => None,
            },
            None => Some(running.next().await),
        };
        let Some(next) = next else {
            held = None;
            window.learn(store.round_trip());
            continue;
        };
        let Some((cost, result)) = next else {
            return Ok(());
        };
        holding -= cost;
        done(result?);
        completed += 1;
        if completed.is_multiple_of(TRIM_EVERY) {
            super::release_freed_memory();
        }
        window.completed(store.throttled());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store farther away than 256 requests at [`FAR_RATE`] take starts the window at what
    /// its round trip holds, up to the limit; a nearer one, or one not yet heard, at [`START`].
    #[test]
    fn a_distant_store_starts_the_window_at_what_its_round_trip_holds() {
        let ms = |ms| Some(Duration::from_millis(ms));
        assert_eq!(Window::new(1024, 0, None).limit(), START);
        assert_eq!(Window::new(1024, 0, ms(80)).limit(), START);
        assert_eq!(Window::new(1024, 0, ms(800)).limit(), 800);
        assert_eq!(Window::new(1024, 0, ms(2000)).limit(), 1024);
        assert_eq!(Window::new(100, 0, ms(800)).limit(), 100);
    }

    /// A window held before the store was heard (a publish's writes beside its read) starts
    /// at [`HELD_START`], and goes where the round trip says once it is known, while it is
    /// still growing: wider far from the store, back to [`START`] near it.
    #[test]
    fn a_held_window_goes_where_the_round_trip_says_once_it_is_known() {
        let ms = |ms| Some(Duration::from_millis(ms));
        let (_decide, hold) = Hold::new();
        let held = || Window::new(1024, 0, None).held_by(Some(&hold));
        assert_eq!(held().limit(), HELD_START);
        assert_eq!(Window::new(1024, 0, None).held_by(None).limit(), START);
        assert_eq!(
            Window::new(1024, 0, ms(80)).held_by(Some(&hold)).limit(),
            START,
            "a store already heard starts where its round trip says"
        );
        assert_eq!(Window::new(100, 0, None).held_by(Some(&hold)).limit(), 100);
        let mut w = held();
        w.learn(None);
        assert_eq!(w.limit(), HELD_START, "nothing learnt");
        w.learn(ms(80));
        assert_eq!(w.limit(), START, "near: back to the start");
        w.learn(ms(800));
        assert_eq!(w.limit(), 800);
        w.learn(ms(2000));
        assert_eq!(w.limit(), 1024, "up to the limit");
        let mut w = held();
        w.growing = false;
        w.learn(ms(800));
        assert_eq!(w.limit(), HELD_START, "a window that stopped growing stays");
    }

    #[test]
    fn grows_while_throughput_grows_and_halves_once_per_throttled_burst() {
        assert_eq!(
            Window::new(256, 0, None).limit(),
            256,
            "the default limit at once"
        );
        let mut w = Window::new(4 * START, 0, None);
        assert_eq!(w.limit(), START);
        // A round of completions at a rising rate doubles the window.
        for _ in 0..START {
            w.completed(0);
        }
        assert_eq!(w.limit(), 2 * START);
        // Throttling halves it once, and says so once.
        w.completed(1);
        assert_eq!(w.limit(), START);
        w.completed(2);
        w.completed(3);
        assert_eq!(w.limit(), START, "one burst, one decrease");
        for _ in 0..START {
            w.completed(3);
        }
        let before = w.limit();
        assert!(
            before <= START + 1,
            "no doubling after a throttle: {before}"
        );
        w.completed(4);
        assert_eq!(w.limit(), before / 2, "a later burst halves it again");
        assert!(TOLD.load(Ordering::Relaxed));
    }

    #[test]
    fn a_doubling_that_gains_nothing_is_undone() {
        let mut w = Window::new(1024, 0, None);
        // A first round, then a second one as fast: the window doubles after the first...
        for _ in 0..START {
            w.completed(0);
        }
        assert_eq!(w.limit(), 2 * START);
        // ...and a round at twice the window that completes no faster than the first (the
        // store is saturated) takes it back to where it was fastest.
        w.best_rate = f64::INFINITY;
        for _ in 0..2 * START {
            w.completed(0);
        }
        assert_eq!(w.limit(), START, "back to the fastest window");
        assert!(!w.growing);
    }

    #[test]
    fn a_round_is_as_long_as_the_transfers_the_budget_let_in_flight() {
        let mut w = Window::new(1024, 0, None);
        w.in_flight(START);
        for _ in 0..START {
            w.completed(0);
        }
        assert_eq!(w.limit(), 2 * START);
        // The budget admits 100 of the 128: the round ends after 100 completions (one round
        // trip), not 128 (two), and its rate is compared with the last one's.
        w.best_rate = 0.0;
        w.in_flight(100);
        for _ in 0..99 {
            w.completed(0);
            w.in_flight(100);
        }
        assert_eq!(w.limit(), 2 * START, "the round is not over yet");
        w.completed(0);
        assert_eq!(
            w.limit(),
            4 * START,
            "a faster round of 100 doubles the window"
        );
    }

    #[test]
    fn stays_between_its_floor_and_its_maximum() {
        let mut w = Window::new(4, 0, None);
        assert_eq!(w.limit(), 4);
        for _ in 0..100 {
            w.completed(0);
        }
        assert_eq!(w.limit(), 4, "never above the maximum");
        let mut w = Window::new(256, 0, None);
        for t in 1..100 {
            for _ in 0..10 {
                w.completed(t);
            }
        }
        assert_eq!(
            w.limit(),
            FLOOR,
            "throttling never stalls it below the floor"
        );
        let mut w = Window::new(1, 0, None);
        w.completed(1);
        assert_eq!(w.limit(), 1, "a maximum below the floor wins");
    }

    /// The most `run` kept in flight at once: jobs of `cost` bytes each, with `reserved`
    /// bytes held already.
    async fn peak_in_flight(cost: u64, reserved: u64) -> usize {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::local::LocalStore::open(dir.path()).unwrap();
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut w = Window::new(4 * START, 0, None);
        let jobs = (0..4 * START).map(|_| {
            let (now, peak) = (&now, &peak);
            (cost, async move {
                peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        });
        run(&store, &mut w, reserved, jobs, |()| {}).await.unwrap();
        peak.load(Ordering::SeqCst)
    }

    /// The records a large set holds for each of its files leave fewer requests in flight,
    /// but never fewer than half the budget's worth.
    #[tokio::test]
    async fn what_each_file_holds_comes_out_of_the_budget() {
        let cost = 256 << 10;
        assert_eq!(peak_in_flight(cost, 0).await, 128);
        assert_eq!(peak_in_flight(cost, MEMORY_BUDGET / 4).await, 96);
        assert_eq!(peak_in_flight(cost, 10 * MEMORY_BUDGET).await, 64);
    }
}
