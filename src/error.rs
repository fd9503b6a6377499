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

/// An underlying error kept as the source of a store failure.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong. Decisions (retry, blame, exit code) are made on the
/// variant; `Display` is the one line a user reads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or invalid.
    #[error("{0}")]
    Config(String),

    /// The repository, package directory or a marker file cannot be used.
    #[error("{0}")]
    Input(String),

    /// The store refused access: the bucket does not exist, or the credentials were rejected
    /// or lack a permission. Not retried.
    #[error("{message}")]
    Denied {
        /// What failed, why, and what to do.
        message: String,
        /// The store's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The store kept throttling (503 SlowDown, 429) past the SDK's retries. Retried.
    #[error("{message}")]
    Throttled {
        /// What failed, why, and what to do.
        message: String,
        /// The store's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A failure that may pass: a 5xx, a reset or refused connection, a body cut off or
    /// corrupted on the way (which the store refuses by its checksum). Retried.
    #[error("{message}")]
    Transient {
        /// What failed, why, and what to do.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// The store refused the request itself, and would again (a 4xx other than the above, a
    /// key it cannot store). Never sent twice.
    #[error("{message}")]
    Rejected {
        /// What failed, why, and what to do.
        message: String,
        /// The store's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The store did not answer within the configured timeout (not retried: the timeout is
    /// the user's bound on how long a silent store may hold the build).
    #[error("{0}")]
    Timeout(String),

    /// A conditional copy or write was refused: its source or target changed meanwhile.
    #[error("{0}")]
    Precondition(String),

    /// What an operation names is not in the store: the object a copy reads, the set a
    /// `delete` removes.
    #[error("{0}")]
    NotFound(String),

    /// A reader refused a set: it is not complete, or its manifest does not count (`kind`
    /// says which). Exits with the input code when there is no complete set, the runtime
    /// code otherwise.
    #[error("{message}")]
    Refused {
        /// Why the set is refused.
        kind: RefusedKind,
        /// What was refused, why, and what to do.
        message: String,
    },

    /// Content, or a manifest, does not match what it must: a failed verification.
    #[error("{0}")]
    Corrupt(String),

    /// Concurrent publishers kept replacing each other's objects.
    #[error("{0}")]
    Conflict(String),

    /// A fault inside this process: a task that failed, a runtime that did not start.
    #[error("{0}")]
    Internal(String),

    /// A held write ([`crate::store::Hold`]) its caller withdrew: nothing was written. The
    /// caller decided so, and never shows it.
    #[error("{0}")]
    Withdrawn(String),

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

/// Why a reader refuses a set ([`Error::Refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKind {
    /// There is no complete set: no manifest (never published, or its upload was interrupted).
    Incomplete,
    /// Objects its manifest names are gone, of another size, or rewritten: the next publish
    /// repairs it.
    Damaged,
    /// Trusted keys are set, and none of them signed its manifest.
    Untrusted,
    /// Its manifest is not its own (it names another commit, code hash or prefix) or breaks a
    /// rule of the format.
    Invalid,
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Input(_) => exit::INPUT,
            Error::Denied { .. } => exit::STORE_REFUSED,
            Error::Refused { kind, .. } => match kind {
                RefusedKind::Incomplete => exit::INPUT,
                RefusedKind::Damaged | RefusedKind::Untrusted | RefusedKind::Invalid => {
                    exit::RUNTIME
                }
            },
            Error::Throttled { .. }
            | Error::Transient { .. }
            | Error::Rejected { .. }
            | Error::Timeout(_)
            | Error::Precondition(_)
            | Error::NotFound(_)
            | Error::Corrupt(_)
            | Error::Conflict(_)
            | Error::Internal(_)
            | Error::Withdrawn(_)
            | Error::Io { .. } => exit::RUNTIME,
        }
    }

    /// Whether trying the same thing again may succeed: the one question every retry loop
    /// asks. Only transient failures and throttling; a refusal is never sent twice.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, Error::Transient { .. } | Error::Throttled { .. })
    }

    /// Whether a concurrent publisher explains this: it kept replacing objects, or changed
    /// one that a copy was conditioned on.
    pub(crate) fn is_concurrent_write(&self) -> bool {
        matches!(self, Error::Conflict(_) | Error::Precondition(_))
    }

    /// This error with `advice` (what to do) after its message, where the message is the
    /// store's failure: a refusal, throttling, a timeout or a failure that may pass.
    pub(crate) fn advise(mut self, advice: &str) -> Self {
        match &mut self {
            Error::Denied { message, .. }
            | Error::Throttled { message, .. }
            | Error::Transient { message, .. }
            | Error::Rejected { message, .. }
            | Error::Timeout(message) => *message = format!("{message}; {advice}"),
            _ => {}
        }
        self
    }

    /// A transient failure with its cause.
    pub(crate) fn transient(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Transient {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A refusal by the store (or of a key it cannot hold), without a cause to keep.
    pub(crate) fn rejected(message: impl Into<String>) -> Self {
        Error::Rejected {
            message: message.into(),
            source: None,
        }
    }

    /// A set a reader refuses, and why.
    pub(crate) fn refused(kind: RefusedKind, message: impl Into<String>) -> Self {
        Error::Refused {
            kind,
            message: message.into(),
        }
    }

    /// Access refused, without a cause to keep.
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        Error::Denied {
            message: message.into(),
            source: None,
        }
    }

    /// A background task that failed (panicked or was cancelled) while doing `what`.
    pub(crate) fn task(what: &str, e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("{what} failed: {e}"))
    }

    /// Wraps an I/O error with what was being done to which path.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Whether a character must never reach a log raw: control characters, and the ones that
/// change how the rest of a line reads without showing themselves (bidirectional embeddings,
/// overrides and isolates, zero-width and invisible formatting characters, the byte order
/// mark) or break it (line and paragraph separators).
pub(crate) fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every [`is_unprintable`] character escaped (`\n`, `\u{202e}`).
pub(crate) fn escape_unprintable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            s.extend(c.escape_default());
        } else if is_unprintable(c) {
            s.extend(c.escape_unicode());
        } else {
            s.push(c);
        }
    }
    std::borrow::Cow::Owned(s)
}

/// Quotes a user-supplied value for an error message, cut to 60 characters so that a huge
/// or hostile value still gives a one-line message, with nothing unprintable left raw.
pub(crate) fn clip(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(60).collect();
    let quoted = escape_unprintable(&format!("{head:?}")).into_owned();
    if chars.next().is_some() {
        quoted + "…"
    } else {
        quoted
    }
}

/// The configuration error for a bad `value` of the setting `name` (a variable, a flag, a
/// `source` field): `invalid value "x" for NAME: why`.
pub(crate) fn invalid_value(name: &str, value: &str, why: &str) -> Error {
    Error::Config(format!("invalid value {} for {name}: {why}", clip(value)))
}

/// The longest error message the front ends print, in characters (after `error: `).
pub(crate) const MAX_MESSAGE: usize = 360;

/// Makes a message safe to print as the one error line: control characters (a newline in a
/// path, say) are escaped, and a message longer than [`MAX_MESSAGE`] keeps its start (what
/// failed) and its end (what to do), joined by `…`, so a huge value cannot flood the log.
pub(crate) fn one_line(msg: &str) -> String {
    let s = escape_unprintable(msg);
    let n = s.chars().count();
    if n <= MAX_MESSAGE {
        return s.into_owned();
    }
    let head = MAX_MESSAGE * 2 / 5;
    let tail = MAX_MESSAGE - head - 1;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

/// Shortens every span of `text` quoted by one of `delims` (as serde and clap quote the
/// values they echo) to 60 characters, like [`clip`], keeping the words around it.
pub(crate) fn clip_quoted(text: &str, delims: &[char]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(4096));
    let mut i = 0;
    while i < chars.len() {
        let d = chars[i];
        out.push(d);
        i += 1;
        if !delims.contains(&d) {
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] != d {
            i += if chars[i] == '\\' && d == '"' { 2 } else { 1 };
        }
        if i >= chars.len() {
            // No closing quote: copy the rest as it is; one_line still bounds it.
            out.extend(&chars[start..]);
            break;
        }
        let inner = &chars[start..i];
        if inner.len() > 60 {
            out.extend(&inner[..60]);
            out.push('…');
        } else {
            out.extend(inner);
        }
        out.push(d);
        i += 1;
    }
    out
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_and_bounds() {
        assert_eq!(one_line("a\nb"), "a\\nb");
        assert_eq!(one_line("a\u{202e}b\u{2028}c"), "a\\u{202e}b\\u{2028}c");
        assert_eq!(clip("x\u{2066}y\n"), "\"x\\u{2066}y\\n\"");
        let long = format!("start {} end: what to do", "x".repeat(100_000));
        let s = one_line(&long);
        assert_eq!(s.chars().count(), MAX_MESSAGE);
        assert!(
            s.starts_with("start ") && s.ends_with("end: what to do"),
            "{s}"
        );
    }

    /// A refused set exits as it did when it was an input error (no complete set) or a
    /// runtime one (damaged, untrusted or invalid), and is never retried.
    #[test]
    fn refused_sets_exit_by_their_kind() {
        let codes = [
            RefusedKind::Incomplete,
            RefusedKind::Damaged,
            RefusedKind::Untrusted,
            RefusedKind::Invalid,
        ]
        .map(|kind| {
            let e = Error::refused(kind, "refusing it");
            assert!(!e.retryable() && !e.is_concurrent_write());
            assert_eq!(e.to_string(), "refusing it");
            e.exit_code()
        });
        assert_eq!(
            codes,
            [exit::INPUT, exit::RUNTIME, exit::RUNTIME, exit::RUNTIME]
        );
    }

    #[test]
    fn clip_quoted_keeps_the_words_around() {
        let big = "a".repeat(1000);
        let s = clip_quoted(
            &format!("invalid type: string \"{big}\", expected a boolean"),
            &['"'],
        );
        assert_eq!(
            s,
            format!(
                "invalid type: string \"{}…\", expected a boolean",
                &big[..60]
            )
        );
        assert_eq!(clip_quoted("x \"a\\\"b\" y", &['"']), "x \"a\\\"b\" y");
        assert_eq!(clip_quoted("README's", &['\'']), "README's");
    }
}
