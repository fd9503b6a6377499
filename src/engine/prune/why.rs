//! Why a prune keeps or removes a set: each reason, with what it was decided on, and the
//! line the plan shows for it.

use super::*;

/// Why a prune removes a set or keeps it, with what the decision was made on; `Display` is
/// the plan's line for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// Goes: not complete, last written `age` ago, longer than `--incomplete-max-age`.
    IncompleteOld {
        /// What the set is.
        what: Incomplete,
        /// How long ago it was last written.
        age: Duration,
        /// `--incomplete-max-age`.
        limit: Duration,
    },
    /// Stays: not complete, last written `age` ago, within `--incomplete-max-age`.
    IncompleteYoung {
        /// What the set is.
        what: Incomplete,
        /// How long ago it was last written.
        age: Duration,
        /// `--incomplete-max-age`.
        limit: Duration,
    },
    /// Stays: not complete, and the store gave no time.
    IncompleteUntimed {
        /// What the set is.
        what: Incomplete,
    },
    /// Stays: one of the `--keep-last` newest complete artifacts sets.
    Newest {
        /// `--keep-last`.
        keep_last: usize,
    },
    /// Goes: an artifacts set completed (a legacy set: last written) `age` ago, longer than
    /// `--max-age`.
    PastMaxAge {
        /// A legacy set, aged by its newest object.
        legacy: bool,
        /// How long ago it was completed.
        age: Duration,
        /// `--max-age`.
        max: Duration,
    },
    /// Stays: an artifacts set completed `age` ago, within `--max-age`.
    WithinMaxAge {
        /// A legacy set, aged by its newest object.
        legacy: bool,
        /// How long ago it was completed.
        age: Duration,
        /// `--max-age`.
        max: Duration,
    },
    /// Stays: an artifacts set completed `age` ago, and no `--max-age`.
    NoMaxAge {
        /// A legacy set, aged by its newest object.
        legacy: bool,
        /// How long ago it was completed.
        age: Duration,
    },
    /// Stays: a set the store gave no time for.
    Untimed,
    /// Goes: a cache entry last used `age` ago, longer than `--cache-max-unused`.
    Unused {
        /// How long ago it was last used.
        age: Duration,
        /// `--cache-max-unused`.
        max: Duration,
    },
    /// Stays (unless the cache is over `--cache-max-size`): a cache entry last used `age` ago.
    Used {
        /// How long ago it was last used.
        age: Duration,
    },
    /// Goes: among the least recently used cache entries while the cache is over
    /// `--cache-max-size`.
    OverCacheSize {
        /// How long ago it was last used, where the store said.
        last_used: Option<Duration>,
        /// `--cache-max-size`.
        max_size: u64,
    },
    /// Stays: not complete, but an object of it was not written by this tool.
    OthersWrote {
        /// Its state, where it has a manifest; `None` without one.
        manifest: Option<Listed>,
    },
}

/// What a set that is not complete is, as a plan names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incomplete {
    /// No manifest: an interrupted upload, or one under way.
    NoManifest,
    /// A manifest that does not count: damaged, untrusted or invalid, and why.
    Manifest {
        /// Its state.
        state: Listed,
        /// Why, where the listing said.
        why: Option<String>,
    },
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::NoManifest => f.write_str("no manifest"),
            Incomplete::Manifest {
                state,
                why: Some(why),
            } => write!(f, "{} ({why})", state.name()),
            Incomplete::Manifest { state, why: None } => f.write_str(state.name()),
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let completed = |legacy: bool| match legacy {
            true => "legacy set, last written",
            false => "completed",
        };
        match self {
            Why::IncompleteOld { what, age: a, limit } => write!(
                f,
                "{what}, last written {} ago: older than --incomplete-max-age {}",
                age(*a),
                age(*limit)
            ),
            Why::IncompleteYoung { what, age: a, limit } => {
                write!(f, "{what}, last written {} ago: ", age(*a))?;
                match what {
                    Incomplete::NoManifest => write!(
                        f,
                        "may be an upload under way (--incomplete-max-age {})",
                        age(*limit)
                    ),
                    Incomplete::Manifest { .. } => write!(
                        f,
                        "not counted as complete; goes once older than --incomplete-max-age {}",
                        age(*limit)
                    ),
                }
            }
            Why::IncompleteUntimed { what } => {
                write!(f, "{what}, and the store gave no time: kept")
            }
            Why::Newest { keep_last: 1 } => f.write_str("the newest (--keep-last 1)"),
            Why::Newest { keep_last: n } => {
                write!(f, "one of the {n} newest (--keep-last {n})")
            }
            Why::PastMaxAge { legacy, age: a, max } => write!(
                f,
                "{} {} ago: older than --max-age {}",
                completed(*legacy),
                age(*a),
                age(*max)
            ),
            Why::WithinMaxAge { legacy, age: a, max } => write!(
                f,
                "{} {} ago: within --max-age {}",
                completed(*legacy),
                age(*a),
                age(*max)
            ),
            Why::NoMaxAge { legacy, age: a } => {
                write!(f, "{} {} ago (no --max-age)", completed(*legacy), age(*a))
            }
            Why::Untimed => f.write_str("the store gave no time: kept"),
            Why::Unused { age: a, max } => write!(
                f,
                "last used {} ago: unused for longer than --cache-max-unused {}",
                age(*a),
                age(*max)
            ),
            Why::Used { age: a } => write!(f, "last used {} ago", age(*a)),
            Why::OverCacheSize {
                last_used,
                max_size,
            } => write!(
                f,
                "least recently used (last used {} ago): the cache is over --cache-max-size {}",
                last_used.map_or_else(|| "at an unknown time".into(), age),
                log::bytes(*max_size)
            ),
            Why::OthersWrote { manifest: None } => f.write_str(
                "no manifest, and not all written by this tool (an object without its publisher-id): the original tool's set, or another tool's; kept (--accept-legacy ages the original tool's sets by --max-age)",
            ),
            Why::OthersWrote {
                manifest: Some(state),
            } => write!(
                f,
                "{}, but not all written by this tool (an object without its publisher-id): another tool's objects; kept",
                state.name()
            ),
        }
    }
}
