//! What every process of this tool starts and ends with, whichever front end it runs (the
//! command line, the task entrypoints or the resource): the panic hook, the allocator's arenas
//! and the async runtime first; last, a failure's one error line and the exit code the front
//! end gives it.

use std::process::ExitCode;

use crate::error::{one_line, Error, Result};
use crate::log;

/// Runtime worker threads at most, whatever the cores or `TOKIO_WORKER_THREADS` say:
/// transfers wait on the network and hashing runs on the blocking pool, so a 32-core worker
/// gains nothing from 32 of them, and each costs memory.
pub(crate) const MOST_WORKERS: usize = 4;

/// glibc's malloc arenas at most. glibc gives each thread that allocates at once an arena
/// of its own, up to 8 per core, and keeps each one's freed pages: a 50,000-file upload with
/// `TOKIO_WORKER_THREADS=32` peaked at 97 MB RSS against 60 MB with 2 threads (2 cores,
/// loopback, as fast: 12.9 s and 12.7 s).
const ARENAS: i32 = 4;

/// Sets the panic hook: a panic is one line that says it is a bug, then `report`, never a
/// backtrace.
pub(crate) fn on_panic(report: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        log::error(one_line(&format!(
            "internal error ({info}): this is a bug in s3-asset-manager; please report it{report}"
        )));
    }));
}

/// The async runtime: a worker thread per core, or as many as `TOKIO_WORKER_THREADS` says,
/// and [`MOST_WORKERS`] at most; the allocator's arenas capped first.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets a tunable of glibc's allocator before this process starts its
    // threads; it touches no memory.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked = std::env::var("TOKIO_WORKER_THREADS").ok();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(workers(asked.as_deref(), cores))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// A front end, by what its failures exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    /// The command line and the task entrypoints: the error's own exit code
    /// ([`Error::exit_code`]: configuration 2, input 3, store refused 4, any other 1), as the
    /// README documents them.
    Cli,
    /// The Concourse resource (`check`, `in`, `out`): 1 for every failure, which Concourse
    /// shows as a failed step, the error line saying why.
    Resource,
}

impl Front {
    /// The exit code of a run of this front end that failed with `e`.
    pub(crate) fn exit_code(self, e: &Error) -> i32 {
        match self {
            Front::Cli => e.exit_code(),
            Front::Resource => crate::error::exit::RUNTIME,
        }
    }
}

/// Ends a failed run of `front`: the error as the one `error:` line on stderr ([`one_line`]),
/// and the exit code to return from `main`.
pub(crate) fn fail(front: Front, e: &Error) -> ExitCode {
    log::error(one_line(&e.to_string()));
    ExitCode::from(front.exit_code(e) as u8)
}

/// The worker threads for `cores` cores, `asked` being `TOKIO_WORKER_THREADS` (one that is
/// not a positive number is left out, where tokio itself would panic).
fn workers(asked: Option<&str>, cores: usize) -> usize {
    let asked = asked
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0);
    asked.unwrap_or(cores).clamp(1, MOST_WORKERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_follow_the_cores_or_the_variable_up_to_the_most() {
        assert_eq!(workers(None, 2), 2);
        assert_eq!(workers(None, 32), MOST_WORKERS);
        assert_eq!(workers(Some("32"), 2), MOST_WORKERS);
        assert_eq!(workers(Some("1"), 16), 1);
        assert_eq!(workers(Some("many"), 2), 2);
        assert_eq!(workers(Some("0"), 3), 3);
        let rt = runtime().unwrap();
        let n = rt.metrics().num_workers();
        assert!((1..=MOST_WORKERS).contains(&n), "{n} workers");
    }

    /// The command line exits with the error's own code, the resource with 1 for any failure.
    #[test]
    fn each_front_end_exits_as_documented() {
        let config = Error::Config("bad".into());
        let input = Error::Input("no repo".into());
        let denied = Error::denied("no such bucket");
        let corrupt = Error::Corrupt("changed".into());
        let cli: Vec<i32> = [&config, &input, &denied, &corrupt]
            .map(|e| Front::Cli.exit_code(e))
            .into();
        assert_eq!(cli, [2, 3, 4, 1]);
        for e in [&config, &input, &denied, &corrupt] {
            assert_eq!(Front::Resource.exit_code(e), 1, "{e}");
        }
    }
}
