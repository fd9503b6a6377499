//! The one error type every engine operation returns, and how it maps to exit codes.

use std::path::PathBuf;

/// Exit codes shared by every front end (documented in the README).
pub mod exit {
    /// Success: the asset set was found, restored, published, or a build is needed.
    pub const OK: i32 = 0;
    /// A runtime failure: a transfer, the network, the local disk, or a failed verification.
    pub const RUNTIME: i32 = 1;
    /// A configuration error: a missing or invalid variable, flag or setting.
    pub const CONFIG: i32 = 2;
    /// An input error: the repository, the package directory or the markers are not usable.
    pub const INPUT: i32 = 3;
    /// The store refused: the bucket does not exist or the credentials were rejected.
    pub const STORE_REFUSED: i32 = 4;
}

/// Everything that can go wrong, worded so that `Display` is the one line a user reads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or invalid.
    #[error("{0}")]
    Config(String),

    /// The repository, package directory or a marker file cannot be used.
    #[error("{0}")]
    Input(String),

    /// The store rejected the bucket or the credentials.
    #[error("{0}")]
    StoreRefused(String),

    /// The store failed or could not be reached.
    #[error("{0}")]
    Store(String),

    /// Downloaded or copied content does not match its manifest.
    #[error("{0}")]
    Verify(String),

    /// A local file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot read".
        what: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Input(_) => exit::INPUT,
            Error::StoreRefused(_) => exit::STORE_REFUSED,
            Error::Store(_) | Error::Verify(_) | Error::Io { .. } => exit::RUNTIME,
        }
    }

    /// Wraps an I/O error with what was being done to which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Quotes a user-supplied value for an error message, cut to 60 characters so that a huge
/// or hostile value still gives a one-line message.
pub fn clip(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
