//! Values given by variables and flags: their parsers (each error is the reason alone), and
//! where each value came from, to name it in an error (`S3AM_CACHE (--cache)` for one from
//! the environment, `--cache` for one from the command line).

use std::path::PathBuf;

use crate::error::{invalid_value, Error, Result};

/// Where each setting of the command that runs came from, as clap recorded it.
pub(crate) struct Sources {
    pub(super) command: clap::Command,
    pub(super) matches: clap::ArgMatches,
}

impl Sources {
    /// The command that runs (`upload`), for the trace.
    pub(crate) fn command_name(&self) -> String {
        self.command.get_name().to_string()
    }

    /// `S3AM_CACHE (--cache)` for a value from the environment, `--cache (S3AM_CACHE)` for
    /// one from a flag, `--cache` for a flag without a variable.
    pub(crate) fn name(&self, id: &str) -> String {
        let arg = self.command.get_arguments().find(|a| a.get_id() == id);
        let flag = match arg.and_then(|a| a.get_long()) {
            Some(long) => format!("--{long}"),
            None => id.to_string(),
        };
        let from_env = matches!(
            self.matches.value_source(id),
            Some(clap::parser::ValueSource::EnvVariable)
        );
        match arg.and_then(|a| a.get_env()) {
            Some(env) if from_env => format!("{} ({flag})", env.to_string_lossy()),
            Some(env) => format!("{flag} ({})", env.to_string_lossy()),
            None => flag,
        }
    }

    /// A configuration error about setting `id`, naming where the setting came from.
    pub(crate) fn blame(&self, id: &str, e: Error) -> Error {
        match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", self.name(id))),
            other => other,
        }
    }

    /// The value `raw` of setting `id`, parsed; an error names the value, where it came from
    /// and why it is not one.
    pub(crate) fn value<T>(
        &self,
        id: &str,
        raw: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        parse(raw).map_err(|why| invalid_value(&self.name(id), raw, &why))
    }
}

/// A size: bytes, or a number with a binary `K`, `M` or `G` suffix.
pub(crate) fn parse_size(s: &str) -> std::result::Result<u64, String> {
    const NOT: &str = "not a size: use bytes or a K, M or G suffix, e.g. 8M";
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1),
        Some((i, _)) => {
            let mult = match t[i..].trim().to_ascii_uppercase().as_str() {
                "B" => 1,
                "K" | "KB" | "KIB" => 1 << 10,
                "M" | "MB" | "MIB" => 1 << 20,
                "G" | "GB" | "GIB" => 1 << 30,
                _ => return Err(NOT.into()),
            };
            (&t[..i], mult)
        }
    };
    let n: u64 = num.parse().map_err(|_| NOT.to_string())?;
    if n == 0 {
        return Err("the size must be positive".into());
    }
    n.checked_mul(mult)
        .ok_or_else(|| "too large: sizes go up to 16 EiB".into())
}

/// A copy's part threshold: a size of at most 5 GiB, S3's limit for one copy.
pub(crate) fn parse_copy_size(s: &str) -> std::result::Result<u64, String> {
    match parse_size(s)? {
        n if n > 5 << 30 => Err("at most 5G, S3's limit for one copy".into()),
        n => Ok(n),
    }
}

/// A path whose variable, set but empty, means the default (`default`), as an unset one does:
/// `GIT_REPO_PATH=` is `./repo`, `S3AM_SIGNING_KEY=` no key (an empty default).
pub(crate) fn path_or(
    default: &'static str,
) -> impl Fn(&str) -> std::result::Result<PathBuf, String> + Clone + Send + Sync + 'static {
    move |s: &str| Ok(PathBuf::from(if s.is_empty() { default } else { s }))
}

/// A directory that must be named: `fetch --dest`.
pub(crate) fn dest_dir(s: &str) -> std::result::Result<PathBuf, String> {
    if s.is_empty() {
        return Err("empty: give the directory to write the set into".into());
    }
    Ok(PathBuf::from(s))
}

/// A boolean, as the tasks' variables are written.
pub(crate) fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err("not a boolean: use true/false, 1/0, yes/no or on/off".into()),
    }
}

/// A count of at least 1.
pub(crate) fn parse_count(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

/// A count of 0 or more.
pub(crate) fn parse_keep(s: &str) -> std::result::Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| "must be a whole number, 0 or more".into())
}

/// A duration: a whole number with `s`, `m`, `h` or `d`, e.g. `90s`, `30m`, `12h`, `7d`.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    const NOT: &str = "not a duration: use a whole number with s, m, h or d, e.g. 7d";
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or(NOT)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| NOT.to_string())?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(NOT.into()),
    };
    if n == 0 {
        return Err("the duration must be positive".into());
    }
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| "too long".into())
}

/// A whole number of seconds.
pub(crate) fn parse_seconds(s: &str) -> std::result::Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| "not a number of seconds: use a whole number, e.g. 120".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_counts_and_booleans() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("17179869184G")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_copy_size("6G").is_err());
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        for yes in ["true", "TRUE", "t", "1", "yes", "Y", "on", " On "] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes:?}");
        }
        for no in ["false", "False", "f", "0", "no", "N", "off", "", " "] {
            assert_eq!(parse_bool(no), Ok(false), "{no:?}");
        }
        for bad in ["maybe", "2", "tru", "yes please", "-1"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_keep("0"), Ok(0));
        assert!(parse_keep("-1").is_err());
        let secs = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30m"), Ok(1800));
        assert_eq!(secs("12h"), Ok(43200));
        assert_eq!(secs("7d"), Ok(604800));
        for bad in [
            "",
            "7",
            "d",
            "1.5d",
            "-1d",
            "7 days",
            "0s",
            "99999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
