//! Secrets never appear in any output: every command (the CLI's check, upload, fetch, list,
//! delete and prune, the resource's check, in and out), run with a recognisable secret key and
//! session token against Garage with wrong credentials, against an unreachable endpoint, with
//! malformed requests that carry the secret, and `--help` with the secret in the environment.
//! The signing key (a file for the CLI, text in the resource's `source`) is one of the
//! secrets, on the paths that succeed too.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Env, Repo, Run, S3Server};
use serde_json::{json, Value};

const SECRET: &str = "S3AM-TEST-SECRET-6c1f0e5b9a7d4c3e8f2a1b0c9d8e7f6a";
const TOKEN: &str = "S3AM-TEST-TOKEN-9d2b7e4f1a6c3e8b5d0f2a7c4e1b8d3f";
/// A signing key (made with `ssh-keygen -t ed25519 -N ''` for this test only).
const SIGNING_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBnGmDkDVBY8sFqhKupiGTcqyQqTMo1RZHZK1TppTm2twAAAJDyiYYF8omG
BQAAAAtzc2gtZWQyNTUxOQAAACBnGmDkDVBY8sFqhKupiGTcqyQqTMo1RZHZK1TppTm2tw
AAAEB4bUvxCc2VfNMnTowpFZxglTEwe0SJfUnFqaU3EhnUvWcaYOQNUFjywWqEq6mIZNyr
JCpMyjVFkdkrVOmlOba3AAAADHNlY3JldHMtdGVzdAE=
-----END OPENSSH PRIVATE KEY-----
";
/// An Ed25519 key in PKCS#8 (`openssl genpkey -algorithm ed25519`), which this tool does not
/// take: given as `S3AM_SIGNING_KEY`'s text, it was once printed whole in the error.
const PKCS8_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINiaGoQtXqHMnwaUhCrDvvkrAaYU380d7132xQeTsbZs
-----END PRIVATE KEY-----
";
/// The secret, token and signing keys, and distinctive pieces of them (a clipped or partial
/// echo: an OpenSSH key's first and last 40-odd characters were once printed); the last
/// ones are the keys' bodies.
const MARKS: [&str; 11] = [
    SECRET,
    TOKEN,
    "6c1f0e5b9a7d4c3e",
    "9d2b7e4f1a6c3e8b",
    SIGNING_KEY,
    "B4bUvxCc2VfNMnTowpFZxglTEwe0SJfUnFqaU3EhnUv",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUA",
    "JCpMyjVFkdkrVOmlOba3AAAADHNlY3JldHMtdGVzdAE",
    PKCS8_KEY,
    "MC4CAQAwBQYDK2VwBCIEINiaGoQtXqHMnwaUhCrDvvkr",
    "YU380d7132xQeTsbZs",
];

/// Where the credentials are sent.
struct Target {
    what: &'static str,
    /// The CLI's documented exit code for this failure.
    cli_code: i32,
    endpoint: String,
    region: String,
    access_key: String,
    bucket: String,
}

fn targets() -> Vec<Target> {
    let mut t = vec![Target {
        what: "unreachable endpoint",
        cli_code: 1,
        endpoint: "http://127.0.0.1:9".into(),
        region: "us-east-1".into(),
        access_key: "AKIDEXAMPLE".into(),
        bucket: "assets".into(),
    }];
    // Garage's real key id with the wrong secret: the signature does not match.
    let g = S3Server::get();
    t.push(Target {
        what: "the S3 store, wrong secret",
        cli_code: 4,
        bucket: g.new_bucket("secrets"),
        endpoint: g.endpoint,
        region: g.region,
        access_key: g.access_key,
    });
    t
}

/// A work directory with ./repo (committed) and ./packages ready to upload.
struct Work {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    head: String,
}

impl Work {
    fn new() -> Work {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = Repo::init(&root.join("repo"));
        repo.write("src/handler.py", "def handler(): pass\n")
            .write("README.md", "readme\n");
        let head = repo.commit("first");
        let pkg = root.join("packages");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join(".commit-hash"), &head).unwrap();
        std::fs::write(pkg.join("fn.zip"), "zip").unwrap();
        std::fs::create_dir_all(root.join("bucket")).unwrap();
        std::fs::write(root.join("signing_key"), SIGNING_KEY).unwrap();
        // The key with its private scalar intact but its framing broken.
        let broken =
            SIGNING_KEY.replace("OPENSSH PRIVATE KEY-----\n", "OPENSSH PRIVATE KEY-----\n!");
        std::fs::write(root.join("broken_key"), broken).unwrap();
        Work {
            _tmp: tmp,
            root,
            head,
        }
    }

    fn file_bucket(&self) -> String {
        format!("file://{}/bucket", self.root.display())
    }
}

fn task_env(t: &Target) -> Env {
    let mut e = Env::new();
    for (k, v) in [
        ("PACKAGE_ASSETS_BUCKET", t.bucket.as_str()),
        ("AWS_ENDPOINT_URL", &t.endpoint),
        ("AWS_REGION", &t.region),
        ("AWS_ACCESS_KEY_ID", &t.access_key),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("S3AM_PATH_STYLE", "true"),
        ("CODE_HASH_FIND_FILTER", "src"),
        ("S3AM_TIMEOUT", "20"),
        ("S3AM_SIGNING_KEY", "signing_key"),
    ] {
        e.insert(k.into(), v.into());
    }
    e
}

fn source(t: &Target) -> Value {
    json!({
        "bucket": t.bucket,
        "endpoint": t.endpoint,
        "region_name": t.region,
        "use_path_style": true,
        "access_key_id": t.access_key,
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        "code_hash_filter": ["src"],
        "signing_key": SIGNING_KEY,
    })
}

/// One run to make: a name, the binary, argv, the environment and stdin.
struct Job {
    name: String,
    bin: String,
    args: Vec<String>,
    env: Env,
    stdin: String,
    /// The exit code the run must end with; `None`: any failure (non-zero).
    want_code: Option<i32>,
}

fn cli_job(name: String, args: &[&str], env: Env) -> Job {
    Job {
        name,
        bin: common::CLI.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env,
        stdin: String::new(),
        want_code: None,
    }
}

fn resource_job(name: String, bin: &str, stdin: String) -> Job {
    Job {
        name,
        bin: common::resource_bin(bin),
        // `in` and `out` work in the job's own copy of the work directory (its working
        // directory): never in the one every job is copied from while others run.
        args: if bin == "check" {
            vec![]
        } else {
            vec![".".into()]
        },
        env: Env::new(),
        stdin,
        // The resource binaries exit 1 on every failure.
        want_code: Some(1),
    }
}

/// The CLI's check, upload, fetch, list, delete and prune, and the resource's check, in and
/// out, against `t`.
fn store_jobs(t: &Target, w: &Work) -> Vec<Job> {
    let env = task_env(t);
    let c = w.head.as_str();
    let src = source(t);
    let mut jobs = vec![
        cli_job(format!("{}: cli check", t.what), &["check"], env.clone()),
        cli_job(format!("{}: cli upload", t.what), &["upload"], env.clone()),
        cli_job(
            format!("{}: cli fetch --commit", t.what),
            &["fetch", "--commit", c, "--dest", "fetched"],
            env.clone(),
        ),
        cli_job(
            format!("{}: cli fetch --repo", t.what),
            &["fetch", "--repo", "repo", "--dest", "fetched"],
            env.clone(),
        ),
        cli_job(format!("{}: cli list", t.what), &["list"], env.clone()),
        cli_job(
            format!("{}: cli list --verify --json", t.what),
            &["list", "--verify", "--json"],
            env.clone(),
        ),
        cli_job(
            format!("{}: cli delete --commit", t.what),
            &["delete", "--commit", c],
            env.clone(),
        ),
        cli_job(
            format!("{}: cli prune --dry-run", t.what),
            &["prune", "--dry-run"],
            env.clone(),
        ),
        cli_job(format!("{}: cli prune", t.what), &["prune"], env.clone()),
    ];
    for j in &mut jobs {
        j.want_code = Some(t.cli_code);
    }
    let requests = [
        ("check", json!({"source": src})),
        ("check", json!({"source": src, "version": {"commit": c}})),
        ("in", json!({"source": src, "version": {"commit": c}})),
        (
            "in",
            json!({"source": src, "version": {"commit": c}, "params": {"skip_download": true}}),
        ),
        ("out", json!({"source": src, "params": {"repo": "repo"}})),
        (
            "out",
            json!({"source": src, "params": {"repo": "repo", "path": "packages"}}),
        ),
    ];
    for (i, (bin, req)) in requests.into_iter().enumerate() {
        jobs.push(resource_job(
            format!("{}: resource {bin} #{i}", t.what),
            bin,
            req.to_string(),
        ));
    }
    jobs
}

/// Malformed requests and settings that still carry the secret and the token.
fn malformed_jobs(w: &Work) -> Vec<Job> {
    let c = w.head.as_str();
    let bucket = w.file_bucket();
    let with = |extra: Value| {
        let mut s = json!({
            "bucket": bucket,
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": SECRET,
            "session_token": TOKEN,
        });
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let sources = [
        ("unknown key", with(json!({"secret_key": SECRET}))),
        ("unknown key 2", with(json!({"bogus": true}))),
        ("wrong-typed bool", with(json!({"use_path_style": "yes"}))),
        ("wrong-typed string", with(json!({"region_name": 1}))),
        ("wrong-typed filter", with(json!({"code_hash_filter": 7}))),
        ("invalid cache", with(json!({"cache": "sometimes"}))),
        ("invalid glob", with(json!({"code_hash_filter": "[a"}))),
        (
            "secret as a list",
            with(json!({"secret_access_key": [SECRET]})),
        ),
        (
            "token as an object",
            with(json!({"session_token": {TOKEN: TOKEN}})),
        ),
        ("invalid bucket", with(json!({"bucket": "Bad_Bucket"}))),
        (
            "signing key as a list",
            with(json!({"signing_key": [SIGNING_KEY]})),
        ),
        (
            "signing key with broken framing",
            with(json!({"signing_key": SIGNING_KEY.replace("-----\n", "-----\n!")})),
        ),
        (
            "signing key cut short",
            with(json!({"signing_key": &SIGNING_KEY[..200]})),
        ),
        (
            "private key given as a trusted key",
            with(json!({"trusted_keys": [SIGNING_KEY]})),
        ),
        ("no access key id", {
            let mut s = with(json!({}));
            s.as_object_mut().unwrap().remove("access_key_id");
            s["bucket"] = json!("assets");
            s
        }),
    ];
    let mut jobs = Vec::new();
    for (what, src) in &sources {
        for (bin, req) in [
            ("check", json!({"source": src})),
            ("in", json!({"source": src, "version": {"commit": c}})),
            ("out", json!({"source": src, "params": {"repo": "repo"}})),
        ] {
            jobs.push(resource_job(
                format!("malformed ({what}): {bin}"),
                bin,
                req.to_string(),
            ));
        }
    }
    let good = with(json!({}));
    for (what, bin, stdin) in [
        (
            "unknown top-level key",
            "check",
            json!({"source": good, "token": TOKEN}).to_string(),
        ),
        (
            "bad version",
            "in",
            json!({"source": good, "version": {"commit": "../../x"}}).to_string(),
        ),
        (
            "unknown param",
            "out",
            json!({"source": good, "params": {"repo": "repo", "secret": SECRET}}).to_string(),
        ),
        (
            "truncated after the secret",
            "check",
            format!(r#"{{"source": {{"bucket": "assets", "secret_access_key": "{SECRET}"#),
        ),
        (
            "truncated inside the token",
            "in",
            format!(
                r#"{{"source": {{"bucket": "assets", "session_token": "{}"#,
                &TOKEN[..30]
            ),
        ),
        (
            "duplicate secret",
            "check",
            format!(
                r#"{{"source": {{"bucket": "assets", "secret_access_key": "{SECRET}", "secret_access_key": "{SECRET}"}}}}"#
            ),
        ),
        (
            "request as a list",
            "out",
            json!([good, {"repo": "repo"}]).to_string(),
        ),
    ] {
        jobs.push(resource_job(
            format!("malformed ({what}): {bin}"),
            bin,
            stdin,
        ));
    }
    // The CLI with the secret in its environment and a bad setting or flag.
    let mut env = Env::new();
    env.insert("PACKAGE_ASSETS_BUCKET".into(), bucket.clone());
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), SECRET.into());
    env.insert("AWS_SESSION_TOKEN".into(), TOKEN.into());
    let with_env = |k: &str, v: &str| {
        let mut e = env.clone();
        e.insert(k.into(), v.into());
        e
    };
    for (what, args, e) in [
        ("unknown flag", vec!["check", "--bogus"], env.clone()),
        (
            "bad boolean",
            vec!["check"],
            with_env("S3AM_PATH_STYLE", "maybe"),
        ),
        (
            "bad cache",
            vec!["upload"],
            with_env("S3AM_CACHE", "sometimes"),
        ),
        (
            "bad bucket",
            vec!["fetch", "--commit", c, "--dest", "x"],
            with_env("PACKAGE_ASSETS_BUCKET", "Bad_Bucket"),
        ),
        (
            "bad glob",
            vec!["check"],
            with_env("CODE_HASH_FIND_FILTER", "[a"),
        ),
        (
            "bad commit",
            vec!["fetch", "--commit", "xyz", "--dest", "x"],
            env.clone(),
        ),
        (
            "missing repo",
            vec!["check"],
            with_env("GIT_REPO_PATH", "./nope"),
        ),
        (
            "bad .commit-hash",
            vec!["upload"],
            with_env("PACKAGE_DIRECTORY", "./repo"),
        ),
        (
            "broken signing key",
            vec!["upload"],
            with_env("S3AM_SIGNING_KEY", "broken_key"),
        ),
        (
            "private key as trusted keys",
            vec!["check"],
            with_env("S3AM_TRUSTED_KEYS", "signing_key"),
        ),
    ] {
        jobs.push(cli_job(format!("malformed cli ({what})"), &args, e));
    }
    jobs
}

/// Runs that succeed while signing with the key, on the work directory's file:// bucket.
fn signing_jobs(w: &Work) -> Vec<Job> {
    let mut env = Env::new();
    env.insert("PACKAGE_ASSETS_BUCKET".into(), w.file_bucket());
    env.insert("S3AM_SIGNING_KEY".into(), "signing_key".into());
    let mut upload = cli_job("signing: cli upload".into(), &["upload"], env);
    upload.want_code = Some(0);
    let src = json!({"bucket": w.file_bucket(), "signing_key": SIGNING_KEY});
    let mut out = resource_job(
        "signing: resource out".into(),
        "out",
        json!({"source": src, "params": {"repo": "repo", "path": "packages"}}).to_string(),
    );
    out.want_code = Some(0);
    // Concourse passes secrets as values: the key's text in the variable itself.
    let mut env = Env::new();
    env.insert("PACKAGE_ASSETS_BUCKET".into(), w.file_bucket());
    env.insert("S3AM_SIGNING_KEY".into(), SIGNING_KEY.into());
    let mut text = cli_job(
        "signing: key text in S3AM_SIGNING_KEY".into(),
        &["upload"],
        env,
    );
    text.want_code = Some(0);
    vec![upload, out, text]
}

/// Key settings whose values are secrets but not what they should be: a PKCS#8 key's text,
/// an OpenSSH key cut short, the secret given as a path, and an endpoint URL carrying a
/// password. Each fails with an error line that names the setting, never the value.
fn bad_key_jobs(w: &Work) -> Vec<Job> {
    let cut = &SIGNING_KEY[..SIGNING_KEY.len() - 60];
    let mut jobs = Vec::new();
    for (what, var, value, code) in [
        (
            "PKCS#8 key text",
            "S3AM_SIGNING_KEY",
            PKCS8_KEY.to_string(),
            2,
        ),
        (
            "OpenSSH key cut short",
            "S3AM_SIGNING_KEY",
            cut.to_string(),
            2,
        ),
        (
            "the secret as a path",
            "S3AM_SIGNING_KEY",
            SECRET.to_string(),
            2,
        ),
        (
            "the secret as trusted keys",
            "S3AM_TRUSTED_KEYS",
            SECRET.to_string(),
            2,
        ),
        (
            "a key as trusted keys",
            "S3AM_TRUSTED_KEYS",
            SIGNING_KEY.to_string(),
            2,
        ),
        (
            "a password in the endpoint",
            "AWS_ENDPOINT_URL",
            format!("http://user:{SECRET}@127.0.0.1:9"),
            1,
        ),
    ] {
        let mut env = Env::new();
        env.insert("PACKAGE_ASSETS_BUCKET".into(), "assets".into());
        if var != "AWS_ENDPOINT_URL" {
            env.insert("PACKAGE_ASSETS_BUCKET".into(), w.file_bucket());
        }
        env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret".into());
        env.insert("AWS_REGION".into(), "us-east-1".into());
        env.insert(var.into(), value);
        let mut j = cli_job(format!("bad key: {what}"), &["upload"], env);
        j.want_code = Some(code);
        jobs.push(j);
    }
    jobs
}

/// `--help` with the secret in the environment.
fn help_jobs() -> Vec<Job> {
    let mut env = Env::new();
    env.insert("AWS_SECRET_ACCESS_KEY".into(), SECRET.into());
    env.insert("AWS_SESSION_TOKEN".into(), TOKEN.into());
    env.insert("PACKAGE_ASSETS_BUCKET".into(), "assets".into());
    env.insert("S3AM_SIGNING_KEY".into(), SIGNING_KEY.into());
    env.insert("S3AM_TRUSTED_KEYS".into(), PKCS8_KEY.into());
    let mut jobs = Vec::new();
    for args in [
        &["check", "--help"][..],
        &["upload", "--help"],
        &["fetch", "--help"],
        &["list", "--help"],
        &["delete", "--help"],
        &["prune", "--help"],
        &["check", "-h"],
        &["--help"],
    ] {
        let mut j = cli_job(format!("help: {}", args.join(" ")), args, env.clone());
        j.want_code = Some(0);
        jobs.push(j);
    }
    jobs
}

fn run(job: &Job, cwd: &Path) -> Run {
    let args: Vec<&str> = job.args.iter().map(String::as_str).collect();
    common::run_bin_stdin(&job.bin, &args, cwd, &job.env, &job.stdin)
}

/// What is wrong with a run, if anything.
fn problems(job: &Job, r: &Run) -> Vec<String> {
    let mut p = Vec::new();
    for m in MARKS {
        if r.stdout.contains(m) {
            p.push(format!("stdout contains {m:?}"));
        }
        if r.stderr.contains(m) {
            p.push(format!("stderr contains {m:?}"));
        }
    }
    match job.want_code {
        Some(want) if r.code != want => p.push(format!("exit {} (want {want})", r.code)),
        None if r.code == 0 => p.push("exit 0 (want a failure)".into()),
        _ => {}
    }
    if job.want_code != Some(0) && !r.stderr.lines().any(|l| l.starts_with("error:")) {
        p.push("no error line".into());
    }
    if r.stderr.contains("panicked") {
        p.push("a panic".into());
    }
    p
}

/// Runs every job in `work` (in parallel: unreachable endpoints take a while each).
fn run_all(jobs: Vec<Job>, work: &Work) -> Vec<String> {
    common::image_root();
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|job| {
                s.spawn(move || {
                    // A fresh copy of the work directory per job, so runs do not interfere.
                    let tmp = tempfile::tempdir().unwrap();
                    copy_dir(&work.root, tmp.path());
                    let r = run(job, tmp.path());
                    (job, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                let (job, r) = h.join().unwrap();
                let p = problems(job, &r);
                (!p.is_empty()).then(|| {
                    format!(
                        "{}: {}\n    exit {}; stdout: {}\n    stderr: {}",
                        job.name,
                        p.join("; "),
                        r.code,
                        r.stdout.trim(),
                        r.stderr.trim().replace('\n', "\n            ")
                    )
                })
            })
            .collect()
    })
}

fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .expect("cp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_never_appear_in_any_output() {
    let work = Work::new();
    let mut jobs = Vec::new();
    let targets = targets();
    for t in &targets {
        jobs.extend(store_jobs(t, &work));
    }
    jobs.extend(malformed_jobs(&work));
    jobs.extend(help_jobs());
    jobs.extend(signing_jobs(&work));
    jobs.extend(bad_key_jobs(&work));
    let n = jobs.len();
    let failures = run_all(jobs, &work);
    eprintln!(
        "secrets: {n} runs ({} store targets), {} with problems",
        targets.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
