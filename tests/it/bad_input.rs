//! The bad-input corpus (`tests/corpus/bad-input.json`): every case runs one built binary
//! (the CLI, or the resource's check/in/out from the staged image layout) in a fresh work
//! directory on a `file://` bucket and must fail with its documented exit code, exactly one
//! `error:` line naming what went wrong, no panic or backtrace, nothing on stdout, and no
//! stderr line longer than `MAX_LINE` characters, however large the input.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{git, Repo, Run};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/bad-input.json");
/// The corpus must keep at least this many cases.
const MIN_CASES: usize = 45;
/// No stderr line may be this long or longer.
const MAX_LINE: usize = 400;

/// One corpus entry, checked for shape when it is read.
struct Case {
    name: String,
    bin: String,
    args: Option<Vec<String>>,
    env: BTreeMap<String, String>,
    stdin: Option<String>,
    request: Option<Value>,
    setup: Vec<Value>,
    exit: i32,
    error: String,
}

fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(CORPUS).unwrap_or_else(|e| panic!("read {CORPUS}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {CORPUS}: {e}"));
    let cases = doc["cases"].as_array().expect("\"cases\" is a list");
    let mut out = Vec::new();
    for c in cases {
        let obj = c.as_object().expect("each case is an object");
        for k in obj.keys() {
            assert!(
                ["name", "bin", "args", "env", "stdin", "request", "setup", "exit", "error"]
                    .contains(&k.as_str()),
                "unknown key {k:?} in case {c}"
            );
        }
        let s = |k: &str| c[k].as_str().map(str::to_string);
        let case = Case {
            name: s("name").expect("name"),
            bin: s("bin").expect("bin"),
            args: c.get("args").map(|a| {
                a.as_array()
                    .expect("args is a list")
                    .iter()
                    .map(|v| v.as_str().expect("args are strings").to_string())
                    .collect()
            }),
            env: c
                .get("env")
                .map(|e| {
                    e.as_object()
                        .expect("env is an object")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().expect("env values").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            stdin: s("stdin"),
            request: c.get("request").cloned(),
            setup: c
                .get("setup")
                .map(|v| v.as_array().expect("setup is a list").clone())
                .unwrap_or_default(),
            exit: c["exit"].as_i64().expect("exit") as i32,
            error: s("error").expect("error"),
        };
        assert!(
            ["cli", "check", "in", "out"].contains(&case.bin.as_str()),
            "{}: bin {:?}",
            case.name,
            case.bin
        );
        assert!(
            case.bin != "cli" || (case.stdin.is_none() && case.request.is_none()),
            "{}: the CLI reads no stdin",
            case.name
        );
        assert!(
            case.bin == "cli" || case.stdin.is_some() != case.request.is_some(),
            "{}: a resource case needs exactly one of stdin and request",
            case.name
        );
        assert!(!case.error.is_empty(), "{}: empty error needle", case.name);
        out.push(case);
    }
    out
}

/// Substitutes the corpus placeholders.
struct Vars {
    dir: PathBuf,
    head: Option<String>,
}

impl Vars {
    fn expand(&self, s: &str) -> String {
        let mut s = s
            .replace("${DIR}", &self.dir.to_string_lossy())
            .replace(
                "${BUCKET}",
                &format!("file://{}/bucket", self.dir.display()),
            )
            .replace("${HUGE}", &"a".repeat(1 << 20))
            .replace("${BIG}", &"a".repeat(100 << 10));
        if s.contains("${HEAD}") {
            let head = self.head.as_deref().expect("${HEAD} needs a repo in setup");
            s = s.replace("${HEAD}", head);
        }
        s
    }
}

fn setup(case: &Case, dir: &Path) -> Option<String> {
    std::fs::create_dir_all(dir.join("bucket")).unwrap();
    let mut head = None;
    for step in &case.setup {
        let rel = |k: &str| step[k].as_str().map(|p| dir.join(p));
        let parent = |p: &Path| std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if let Some(p) = rel("repo") {
            let r = Repo::init(&p);
            r.write("src/app.py", "print('hi')\n")
                .write("package.json", "{}\n")
                .write("README.md", "readme\n");
            head = Some(r.commit("first"));
        } else if let Some(p) = rel("empty_repo") {
            Repo::init(&p);
        } else if let Some(p) = rel("bare") {
            std::fs::create_dir_all(&p).unwrap();
            git(&p, &["init", "-q", "--bare"]);
        } else if let Some(p) = rel("dir") {
            std::fs::create_dir_all(p).unwrap();
        } else if let Some(p) = rel("file") {
            parent(&p);
            let content = step["content"].as_str().expect("file needs content");
            let vars = Vars {
                dir: dir.to_path_buf(),
                head: head.clone(),
            };
            std::fs::write(p, vars.expand(content)).unwrap();
        } else if let Some(p) = rel("symlink") {
            parent(&p);
            let target = step["target"].as_str().expect("symlink needs target");
            std::os::unix::fs::symlink(target, p).unwrap();
        } else {
            panic!("{}: unknown setup step {step}", case.name);
        }
    }
    head
}

/// Runs one case; returns what was wrong with it, if anything.
fn run_case(case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let head = setup(case, &dir);
    let vars = Vars {
        dir: dir.clone(),
        head,
    };
    let (bin, default_args): (String, Vec<String>) = match case.bin.as_str() {
        "cli" => (common::CLI.to_string(), vec![]),
        "check" => (common::resource_bin("check"), vec![]),
        other => (common::resource_bin(other), vec!["${DIR}".to_string()]),
    };
    let args: Vec<String> = case
        .args
        .clone()
        .unwrap_or(default_args)
        .iter()
        .map(|a| vars.expand(a))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: BTreeMap<String, String> = case
        .env
        .iter()
        .map(|(k, v)| (k.clone(), vars.expand(v)))
        .collect();
    let stdin = match (&case.stdin, &case.request) {
        (Some(s), _) => vars.expand(s),
        (None, Some(r)) => vars.expand(&r.to_string()),
        (None, None) => String::new(),
    };
    let r: Run = common::run_bin_stdin(&bin, &args, &dir, &env, &stdin);
    check_run(case, &r)
}

fn check_run(case: &Case, r: &Run) -> Result<(), String> {
    let mut problems = Vec::new();
    if r.code != case.exit {
        problems.push(format!("exit {} (want {})", r.code, case.exit));
    }
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    match errors.as_slice() {
        [line] if line.contains(&case.error) => {}
        [_] => problems.push(format!("the error line lacks {:?}", case.error)),
        other => problems.push(format!("{} error lines (want 1)", other.len())),
    }
    if r.stderr.contains("panicked") || r.stderr.contains("RUST_BACKTRACE") {
        problems.push("a panic or backtrace on stderr".into());
    }
    if !r.stdout.is_empty() {
        problems.push(format!("stdout not empty: {}", shorten(&r.stdout)));
    }
    for l in r.stderr.lines() {
        let n = l.chars().count();
        if n >= MAX_LINE {
            problems.push(format!("a stderr line of {n} chars: {}", shorten(l)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n    stderr: {}",
            case.name,
            problems.join("; "),
            shorten(&r.stderr).replace('\n', "\n            ")
        ))
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 600 {
        s.chars().take(300).collect::<String>()
            + " […] "
            + &s.chars().skip(s.chars().count() - 300).collect::<String>()
    } else {
        s.to_string()
    }
}

#[test]
fn every_bad_input_fails_with_one_short_line_and_its_exit_code() {
    let cases = load();
    assert!(
        cases.len() >= MIN_CASES,
        "the corpus has {} cases; it must keep at least {MIN_CASES}",
        cases.len()
    );
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(&c.name), "duplicate case name {:?}", c.name);
    }
    // Stage the image once before the threads start.
    common::image_root();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(4)
        .clamp(1, 8);
    let chunk = cases.len().div_ceil(workers);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|c| run_case(c).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    println!("bad-input corpus: {} cases run", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
