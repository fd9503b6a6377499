//! Parsing the command line, and clap's errors as one `error:` line composed from the error's
//! kind and context (never from its printed wording, which clap may reword).

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use super::values::Sources;
use super::Cli;
use crate::error::{clip, invalid_value, Error};
use crate::process::{self, Front};

/// Parses the command line (and the variables behind it); on failure prints help, or one
/// `error:` line (with the usage when no command was given), and returns the exit code.
pub(crate) fn parse() -> std::result::Result<(Cli, Sources), ExitCode> {
    let command = Cli::command();
    let e = match command.clone().try_get_matches() {
        Ok(matches) => {
            let cli = Cli::from_arg_matches(&matches).map_err(|e| config_error(&e, &command))?;
            let sources = match matches.subcommand() {
                Some((name, sub)) => Sources {
                    command: command.find_subcommand(name).cloned().unwrap_or_default(),
                    matches: sub.clone(),
                },
                None => Sources {
                    command: command.clone(),
                    matches,
                },
            };
            return Ok((cli, sources));
        }
        Err(e) => e,
    };
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let names: Vec<&str> = command
                .get_subcommands()
                .map(|c| c.get_name())
                .filter(|n| *n != "help")
                .collect();
            let e = Error::Config(format!(
                "no command given: use one of {} (see s3-asset-manager --help)",
                names.join(", ")
            ));
            let code = process::fail(Front::Cli, &e);
            eprintln!("\n{}", command.clone().render_usage());
            Err(code)
        }
        _ => Err(config_error(&e, &command)),
    }
}

/// Prints a parsing error as one line and returns the configuration exit code.
fn config_error(e: &clap::Error, command: &clap::Command) -> ExitCode {
    process::fail(Front::Cli, &Error::Config(describe(e, command)))
}

/// A context value as text: a list joined by commas.
fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What went wrong, from the error's kind and context.
fn describe(e: &clap::Error, command: &clap::Command) -> String {
    let ctx = |k| context(e, k);
    let arg = ctx(ContextKind::InvalidArg).unwrap_or_default();
    let what = match e.kind() {
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => return bad_value(e, command),
        ErrorKind::UnknownArgument => format!("unexpected argument {}", quote(&arg)),
        ErrorKind::InvalidSubcommand => format!(
            "unrecognized subcommand {}",
            quote(&ctx(ContextKind::InvalidSubcommand).unwrap_or_default())
        ),
        ErrorKind::MissingRequiredArgument => format!("a required argument is missing: {arg}"),
        ErrorKind::ArgumentConflict => format!(
            "{arg} cannot be used with {}",
            ctx(ContextKind::PriorArg).unwrap_or_default()
        ),
        ErrorKind::TooManyValues | ErrorKind::NoEquals => format!(
            "unexpected value {} for {arg}",
            quote(&ctx(ContextKind::InvalidValue).unwrap_or_default())
        ),
        other => match other.as_str() {
            Some(kind) if !arg.is_empty() => format!("{arg}: {kind}"),
            Some(kind) => kind.to_string(),
            None => "invalid arguments".to_string(),
        },
    };
    let suggestion =
        ctx(ContextKind::SuggestedArg).or_else(|| ctx(ContextKind::SuggestedSubcommand));
    match suggestion {
        Some(s) => format!(
            "{what}; did you mean {}? (see s3-asset-manager --help)",
            quote(&s)
        ),
        None => format!("{what} (see s3-asset-manager --help)"),
    }
}

/// A value clap reports in quotes, cut short like every value in a message.
fn quote(s: &str) -> String {
    let clipped = clip(s);
    format!("'{}'", &clipped[1..clipped.len() - 1].replace("\\\"", "\""))
}

/// A value a parser refused: only the boolean flags parse in clap (the other settings are
/// checked when the settings are built), and a flag given on the command line sets itself to
/// true, so the bad value came from the flag's variable.
fn bad_value(e: &clap::Error, command: &clap::Command) -> String {
    let arg = context(e, ContextKind::InvalidArg).unwrap_or_default();
    let value = context(e, ContextKind::InvalidValue).unwrap_or_default();
    let long = arg
        .split([' ', '='])
        .next()
        .unwrap_or("")
        .trim_start_matches('-');
    let env = command
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env());
    let name = match env {
        Some(env) => format!("{} (--{long})", env.to_string_lossy()),
        None => format!("--{long}"),
    };
    let why = match (std::error::Error::source(e), e.get(ContextKind::ValidValue)) {
        (Some(why), _) => why.to_string(),
        (None, Some(ContextValue::Strings(valid))) if !valid.is_empty() => {
            format!("use one of {}", valid.join(", "))
        }
        _ => "not a valid value".to_string(),
    };
    invalid_value(&name, &value, &why).to_string()
}
