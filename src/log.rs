//! Logs on stderr: one line per phase, one per transfer, progress and a summary.
//! Colour only on a terminal, and never when `NO_COLOR` is set.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

fn colour() -> bool {
    static C: OnceLock<bool> = OnceLock::new();
    *C.get_or_init(|| {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
    })
}

fn paint(code: &str, s: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// A log line with nothing raw that could hide or forge text (a name read from the bucket
/// may hold a newline or a bidirectional override): every line goes through here.
fn printable(msg: &str) -> std::borrow::Cow<'_, str> {
    crate::error::escape_unprintable(msg)
}

/// A line a future logged while it was held ([`held`]).
enum Line {
    Phase(String),
    Detail(String),
    Warn(String),
}

tokio::task_local! {
    /// Where the lines of a held future go, instead of stderr.
    static HELD: Arc<std::sync::Mutex<Vec<Line>>>;
}

/// The lines a held future logged, kept back for its caller.
pub(crate) struct Held(Arc<std::sync::Mutex<Vec<Line>>>);

impl Held {
    /// Prints the lines kept back, in their order: the caller wants what the future did.
    pub(crate) fn release(self) {
        let lines = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for line in lines {
            match line {
                Line::Phase(m) => phase(m),
                Line::Detail(m) => detail(m),
                Line::Warn(m) => warn(m),
            }
        }
    }
}

/// `fut` with its phase, detail and warning lines kept back rather than printed (errors
/// still print): for work that may turn out unwanted, such as a read made beside another
/// that may make it moot. [`Held::release`] prints them; dropping the [`Held`] drops them.
pub(crate) fn held<F: std::future::Future>(
    fut: F,
) -> (Held, impl std::future::Future<Output = F::Output>) {
    let lines: Arc<std::sync::Mutex<Vec<Line>>> = Arc::default();
    (Held(lines.clone()), HELD.scope(lines, fut))
}

/// Keeps `line` back when a held future is logging it; `false` when none is.
fn kept(line: impl FnOnce() -> Line) -> bool {
    match HELD.try_with(Arc::clone) {
        Ok(lines) => {
            lines.lock().unwrap_or_else(|p| p.into_inner()).push(line());
            true
        }
        Err(_) => false,
    }
}

/// Silences info lines (warnings and errors still print).
pub(crate) fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// A phase line: what the tool is doing or has decided.
pub(crate) fn phase(msg: impl AsRef<str>) {
    if kept(|| Line::Phase(msg.as_ref().to_string())) {
        return;
    }
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{} {}", paint("1;36", "==>"), printable(msg.as_ref()));
    }
}

/// A detail line, e.g. one transfer.
pub(crate) fn detail(msg: impl AsRef<str>) {
    if kept(|| Line::Detail(msg.as_ref().to_string())) {
        return;
    }
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("    {}", printable(msg.as_ref()));
    }
}

/// A warning: something the user should know about but that does not stop the run.
pub(crate) fn warn(msg: impl AsRef<str>) {
    if kept(|| Line::Warn(msg.as_ref().to_string())) {
        return;
    }
    eprintln!("{} {}", paint("1;33", "warning:"), printable(msg.as_ref()));
}

/// The one line printed for a fatal error.
pub(crate) fn error(msg: impl AsRef<str>) {
    eprintln!("{} {}", paint("1;31", "error:"), printable(msg.as_ref()));
}

/// A count with its noun, singular for one: `1 file`, `2 files`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// Bytes in decimal units, e.g. `12.3 MB`.
pub(crate) fn bytes(n: u64) -> String {
    if n == u64::MAX {
        // What a saturating sum of sizes stops at: never shown as a number it is not.
        return "over 18.4 EB (the sizes overflow)".into();
    }
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Throughput in MB/s.
///
/// Only where it means something: below [`RATE_MIN_BYTES`] a transfer's time is its round
/// trips, and "0.5 MB/s" for a few hundred bytes would read as slowness.
pub(crate) fn rate(n: u64, d: Duration) -> Option<String> {
    let secs = d.as_secs_f64().max(1e-6);
    (n >= RATE_MIN_BYTES).then(|| format!("{:.1} MB/s", n as f64 / 1e6 / secs))
}

/// The fewest bytes a transfer moves for its rate to be shown: 1 MiB.
pub(crate) const RATE_MIN_BYTES: u64 = 1 << 20;

/// Counts a transfer of many files and prints a progress line every few seconds.
#[derive(Debug)]
pub(crate) struct Progress {
    verb: &'static str,
    files: u64,
    bytes: u64,
    done_files: AtomicU64,
    done_bytes: AtomicU64,
    started: Instant,
}

impl Progress {
    /// Starts counting; the returned guard prints progress until it is dropped.
    pub(crate) fn start(verb: &'static str, files: u64, bytes: u64) -> (Arc<Self>, ProgressGuard) {
        let p = Arc::new(Progress {
            verb,
            files,
            bytes,
            done_files: AtomicU64::new(0),
            done_bytes: AtomicU64::new(0),
            started: Instant::now(),
        });
        let ticker = p.clone();
        let handle = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            every.tick().await;
            loop {
                every.tick().await;
                let (f, b) = ticker.done();
                detail(format!(
                    "progress: {} {f}/{}, {} of {}{}",
                    ticker.verb,
                    count(ticker.files, "file"),
                    crate::log::bytes(b),
                    crate::log::bytes(ticker.bytes),
                    rate(b, ticker.started.elapsed())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
        });
        (p, ProgressGuard(handle))
    }

    /// Records one finished file and prints its transfer line.
    pub(crate) fn file_done(&self, name: &str, size: u64, took: Duration) {
        self.done_files.fetch_add(1, Ordering::Relaxed);
        self.done_bytes.fetch_add(size, Ordering::Relaxed);
        detail(format!(
            "{} {name} {} in {:.2} s{}",
            self.verb,
            bytes(size),
            took.as_secs_f64(),
            rate(size, took)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }

    /// Files and bytes done so far.
    pub(crate) fn done(&self) -> (u64, u64) {
        (
            self.done_files.load(Ordering::Relaxed),
            self.done_bytes.load(Ordering::Relaxed),
        )
    }

    /// Time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Stops the progress ticker when dropped.
#[derive(Debug)]
pub(crate) struct ProgressGuard(tokio::task::JoinHandle<()>);

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(12_345_678), "12.3 MB");
        assert_eq!(
            rate(10_000_000, Duration::from_secs(2)).as_deref(),
            Some("5.0 MB/s")
        );
        // A few hundred bytes: no rate, which would only measure round trips.
        assert_eq!(rate(358, Duration::from_millis(700)), None);
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(2, "S3 request"), "2 S3 requests");
    }
}
