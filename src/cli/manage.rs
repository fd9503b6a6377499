//! The commands that look after the bucket: `list`, `delete` and `prune`, their arguments,
//! and how they print (a table for people, JSON for programs; the plan of a prune).

use std::time::{Duration, Instant, UNIX_EPOCH};

use clap::{ArgGroup, Args};

use super::values::{self, Sources};
use super::{engine, LegacyArgs, StoreArgs};
use crate::engine::{
    age, now_ms, CacheMode, CatalogOptions, Engine, Kind, Listed, Plan, PruneOptions, SetSummary,
    Why, INCOMPLETE_MAX_AGE,
};
use crate::error::{escape_unprintable, Error, Result};
use crate::layout::{is_code_hash, is_object_id};
use crate::log;

/// `list`.
#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Only sets of this kind: artifacts or cache.
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Only sets in these states, comma-separated: complete, incomplete, damaged, legacy,
    /// untrusted, invalid (the last three read every manifest, as --verify does).
    #[arg(long, value_name = "STATES")]
    state: Option<String>,
    /// Read every manifest (and, with trusted keys, its signature) and check it against the
    /// listing: shows damaged, untrusted and invalid sets and who signed each, at one or two
    /// requests per set. On whenever trusted keys are set.
    #[arg(long)]
    verify: bool,
    /// Print a JSON array of objects (kind, id, state, files, bytes, created, last_used,
    /// signer, why) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    legacy: LegacyArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// `delete`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["commit", "code_hash"])))]
pub(crate) struct DeleteArgs {
    /// The commit whose artifacts set goes (all 40 or 64 hex digits).
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// The code hash whose cache entry goes (64 hex digits).
    #[arg(long, value_name = "HASH")]
    code_hash: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// `prune`.
#[derive(Args, Debug)]
pub(crate) struct PruneArgs {
    /// Remove complete artifacts sets completed longer ago than this, by their manifest's
    /// time (90s, 30m, 12h, 7d).
    #[arg(
        long,
        env = "S3AM_PRUNE_MAX_AGE",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    max_age: Option<String>,
    /// Never remove the N newest complete artifacts sets.
    #[arg(
        long,
        env = "S3AM_PRUNE_KEEP_LAST",
        value_name = "N",
        allow_hyphen_values = true
    )]
    keep_last: Option<String>,
    /// Remove cache entries neither written nor restored from within this.
    #[arg(
        long,
        env = "S3AM_PRUNE_CACHE_MAX_UNUSED",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    cache_max_unused: Option<String>,
    /// Remove the least recently used cache entries until the cache fits in this (bytes, or
    /// a K, M or G suffix).
    #[arg(
        long,
        env = "S3AM_PRUNE_CACHE_MAX_SIZE",
        value_name = "SIZE",
        allow_hyphen_values = true
    )]
    cache_max_size: Option<String>,
    /// Remove sets that are not complete (no manifest, or one that is damaged, invalid or
    /// untrusted) whose every object this tool wrote, index entries of sets that are gone, and
    /// unfinished multipart uploads, once untouched for this long; nothing younger. The
    /// original tool's sets are kept (aged by --max-age with --accept-legacy).
    #[arg(
        long,
        env = "S3AM_PRUNE_INCOMPLETE_MAX_AGE",
        value_name = "DURATION",
        default_value = "1d",
        allow_hyphen_values = true
    )]
    incomplete_max_age: String,
    /// Print the plan (what would go, what stays and why, the bytes freed) and delete
    /// nothing.
    #[arg(long, env = "S3AM_PRUNE_DRY_RUN", value_parser = values::parse_bool)]
    dry_run: bool,
    #[command(flatten)]
    legacy: LegacyArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// Unix milliseconds as RFC 3339 to the second.
fn time(ms: Option<u64>) -> Option<String> {
    ms.map(|ms| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    })
}

/// What a command made, for its last line: the time and, on S3, the requests.
fn took(engine: &Engine, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    match engine.store().requests() {
        0 => format!("in {secs:.2} s"),
        n => format!("in {secs:.2} s ({n} S3 requests)"),
    }
}

impl ListArgs {
    /// Lists the sets, filtered, to stdout.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        let kind = match &self.kind {
            Some(k) => Some(sources.value("kind", k, |k| match k.trim() {
                "artifacts" => Ok(Kind::Artifacts),
                "cache" => Ok(Kind::Cache),
                _ => Err("not a kind: use artifacts or cache".to_string()),
            })?),
            None => None,
        };
        let states = match &self.state {
            Some(s) => Some(sources.value("state", s, |s| {
                s.split(',')
                    .map(|one| {
                        Listed::ALL
                            .into_iter()
                            .find(|l| l.name() == one.trim())
                            .ok_or_else(|| {
                                let names: Vec<&str> =
                                    Listed::ALL.iter().map(|l| l.name()).collect();
                                format!("not a state: use {}", names.join(", "))
                            })
                    })
                    .collect::<std::result::Result<Vec<_>, String>>()
            })?),
            None => None,
        };
        let accept_legacy = self.legacy.accept_legacy();
        let settings = self
            .store
            .settings(sources, CacheMode::Off, accept_legacy, || Ok(None))?;
        let needs_manifests = states.iter().flatten().any(|s| {
            matches!(
                s,
                Listed::Complete | Listed::Damaged | Listed::Untrusted | Listed::Invalid
            )
        });
        let verify = self.verify || settings.keys.trusted.is_some() || needs_manifests;
        let engine = engine(&settings).await?;
        let started = Instant::now();
        let catalog = engine
            .catalog(CatalogOptions {
                verify,
                accept_legacy,
                index: false,
            })
            .await?;
        let shown: Vec<&SetSummary> = catalog
            .sets
            .iter()
            .filter(|s| kind.is_none_or(|k| s.kind == k))
            .filter(|s| states.as_ref().is_none_or(|st| st.contains(&s.state)))
            .collect();
        match self.json {
            true => println!("{}", json(&shown)),
            false => print!("{}", table(&shown)),
        }
        log::phase(format!(
            "listed {} of {} {}",
            shown.len(),
            log::count(catalog.sets.len() as u64, "set"),
            took(&engine, started)
        ));
        Ok(())
    }
}

/// The sets as a JSON array.
fn json(sets: &[&SetSummary]) -> String {
    let items: Vec<serde_json::Value> = sets
        .iter()
        .map(|s| {
            serde_json::json!({
                "kind": s.kind.name(),
                "id": s.id(),
                "state": s.state.name(),
                "files": s.files,
                "bytes": s.bytes,
                "created": time(s.created_ms),
                "last_used": time(s.last_used_ms),
                "signer": s.signer,
                "why": s.why,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("JSON values serialise")
}

/// The sets as a table, a header first.
fn table(sets: &[&SetSummary]) -> String {
    let mut rows = vec![[
        "KIND",
        "STATE",
        "ID",
        "FILES",
        "SIZE",
        "CREATED",
        "LAST USED",
        "SIGNER",
    ]
    .map(String::from)];
    for s in sets {
        let dash = || "-".to_string();
        rows.push([
            s.kind.name().to_string(),
            s.state.name().to_string(),
            s.id().to_string(),
            s.files.to_string(),
            log::bytes(s.bytes),
            time(s.created_ms).unwrap_or_else(dash),
            time(s.last_used_ms).unwrap_or_else(dash),
            s.signer.clone().unwrap_or_else(dash),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl DeleteArgs {
    /// Deletes one set: manifest, signature and index entries first, then the objects.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        let id = |flag: &str, raw: &str, valid: fn(&str) -> bool, what: &str| {
            sources.value(flag, raw, |s| {
                let s = s.trim().to_ascii_lowercase();
                match valid(&s) {
                    true => Ok(s),
                    false => Err(format!("not {what}")),
                }
            })
        };
        let commit = match &self.commit {
            Some(c) => Some(id(
                "commit",
                c,
                is_object_id,
                "a full commit id: give all 40 (or 64) hex digits",
            )?),
            None => None,
        };
        let code_hash = match &self.code_hash {
            Some(h) => Some(id(
                "code_hash",
                h,
                is_code_hash,
                "a code hash: give all 64 hex digits",
            )?),
            None => None,
        };
        let settings = self
            .store
            .settings(sources, CacheMode::Off, false, || Ok(None))?;
        let loc = match (commit, code_hash) {
            (Some(c), _) => settings.layout.artifacts(&c),
            (None, Some(h)) => settings.layout.cache(&h),
            (None, None) => unreachable!("clap requires --commit or --code-hash"),
        };
        let engine = engine(&settings).await?;
        let started = Instant::now();
        match engine.delete_set(&loc).await? {
            Some(d) => log::phase(format!(
                "deleted {loc}: {}, {} {}",
                log::count(d.objects, "object"),
                log::bytes(d.bytes),
                took(&engine, started)
            )),
            None => {
                return Err(Error::NotFound(format!(
                    "nothing to delete: there is no object under {loc} in {}; `s3-asset-manager list` shows the sets there are",
                    engine.store().url()
                )))
            }
        }
        Ok(())
    }
}

impl PruneArgs {
    /// The options, checked.
    fn options(&self, sources: &Sources) -> Result<PruneOptions> {
        let duration = |id: &str, raw: &Option<String>| match raw {
            Some(r) => sources.value(id, r, values::parse_duration).map(Some),
            None => Ok(None),
        };
        let opts = PruneOptions {
            max_age: duration("max_age", &self.max_age)?,
            keep_last: match &self.keep_last {
                Some(k) => sources.value("keep_last", k, values::parse_keep)?,
                None => 0,
            },
            cache_max_unused: duration("cache_max_unused", &self.cache_max_unused)?,
            cache_max_size: match &self.cache_max_size {
                Some(s) => Some(sources.value("cache_max_size", s, values::parse_size)?),
                None => None,
            },
            incomplete_max_age: sources.value(
                "incomplete_max_age",
                &self.incomplete_max_age,
                values::parse_duration,
            )?,
            accept_legacy: self.legacy.accept_legacy(),
        };
        if opts.incomplete_max_age < Duration::from_secs(3600) {
            log::warn(format!(
                "--incomplete-max-age {} is under an hour: an upload that runs longer loses its objects (the default is {})",
                age(opts.incomplete_max_age),
                age(INCOMPLETE_MAX_AGE)
            ));
        }
        Ok(opts)
    }

    /// Plans the prune, prints the plan, and (unless a dry run) carries it out.
    pub(crate) async fn run(self, sources: &Sources) -> Result<()> {
        let opts = self.options(sources)?;
        let settings = self
            .store
            .settings(sources, CacheMode::Off, opts.accept_legacy, || Ok(None))?;
        let engine = engine(&settings).await?;
        let started = Instant::now();
        let now_ms = now_ms();
        let plan = engine.plan_prune(&opts, now_ms).await?;
        print!("{}", plan_text(&plan, self.dry_run, now_ms));
        let what = format!(
            "{}, {}, {} and {}",
            log::count(plan.remove.len() as u64, "set"),
            log::bytes(plan.bytes()),
            log::count(plan.index.len() as u64, "index entry"),
            log::count(plan.uploads.len() as u64, "unfinished upload")
        )
        .replace("index entrys", "index entries");
        if self.dry_run {
            log::phase(format!(
                "dry run: would delete {what}; keeping {}; nothing was deleted {}",
                log::count(plan.keep.len() as u64, "set"),
                took(&engine, started)
            ));
            return Ok(());
        }
        engine.prune(&plan).await?;
        log::phase(format!(
            "pruned {what}; kept {} {}",
            log::count(plan.keep.len() as u64, "set"),
            took(&engine, started)
        ));
        Ok(())
    }
}

/// The plan, one line a set: what goes and why, and in a dry run what stays and why.
fn plan_text(plan: &Plan, dry_run: bool, now_ms: u64) -> String {
    let verb = if dry_run { "would delete" } else { "delete" };
    let line = |verb: &str, s: &SetSummary, why: &Why| {
        format!(
            "{verb} {} {} ({}, {}): {why}\n",
            s.kind.name(),
            s.id(),
            log::count(s.files, "file"),
            log::bytes(s.bytes)
        )
    };
    let mut out = String::new();
    for r in &plan.remove {
        out.push_str(&line(verb, &r.set, &r.why));
    }
    if dry_run {
        for r in &plan.keep {
            out.push_str(&line("keep", &r.set, &r.why));
        }
    }
    for e in &plan.index {
        out.push_str(&format!("{verb} index entry {}\n", e.key));
    }
    for u in &plan.uploads {
        let ago = u
            .started_ms
            .map(|ms| age(Duration::from_millis(now_ms.saturating_sub(ms))))
            .unwrap_or_else(|| "?".into());
        out.push_str(&format!(
            "{} unfinished upload of {} (started {ago} ago)\n",
            if dry_run { "would abort" } else { "abort" },
            escape_unprintable(&u.key)
        ));
    }
    out
}
