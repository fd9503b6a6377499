//! The standalone `check`/`upload` tasks and `fetch`, run as the built binary against a real
//! S3 server (Garage, started by scripts/test) and against the embedded file:// store.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, git, Env, S3Server, Task};

/// A task directory whose repo has a handler, package.json and a README.
fn task(env: Env) -> Task {
    Task::new(
        env,
        &[
            ("src/handler.py", "def handler(): pass\n"),
            ("package.json", "{}\n"),
            ("README.md", "readme\n"),
        ],
    )
}

/// "Builds" text assets into ./packages.
fn build(t: &Task, files: &[(&str, &str)]) {
    let bytes: Vec<(&str, &[u8])> = files.iter().map(|(r, c)| (*r, c.as_bytes())).collect();
    t.build(&bytes);
}

fn garage_env(g: &S3Server, tag: &str) -> (Env, String) {
    let bucket = g.new_bucket(tag);
    (g.env(&bucket), bucket)
}

fn file_env() -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new();
    env.insert(
        "PACKAGE_ASSETS_BUCKET".into(),
        format!("file://{}", dir.path().display()),
    );
    (env, dir)
}

/// The main job: miss, build, upload, found; a new commit with unchanged code is restored
/// from the cache; a changed, renamed or chmod +x file gives a new code hash and a miss.
fn full_flow(mut env: Env) {
    env.insert("CODE_HASH_FIND_FILTER".into(), "src package.json".into());
    let t = task(env);
    let c1 = t.repo.head();

    t.run(&["check"]).ok();
    assert!(!t.found(), "a miss must not write .found");
    assert_eq!(t.marker(".commit-hash").unwrap(), c1);
    let h1 = t.marker(".code-hash").unwrap();
    assert_eq!(h1.len(), 64);

    build(
        &t,
        &[("fn.zip", "zip-bytes"), ("web/site.tgz", "tgz-bytes")],
    );
    let up = t.run(&["upload"]);
    up.ok();
    assert!(up.stderr.contains("summary: uploaded"), "{}", up.stderr);
    assert!(
        up.stderr.contains("uploaded 2 files, 18 B to ") && !up.stderr.contains("MB/s"),
        "transfer lines count the files, and show no rate for a few bytes: {}",
        up.stderr
    );

    t.reset_packages();
    let r = t.run(&["check"]);
    r.ok();
    assert!(t.found(), "the published set must be found: {}", r.stderr);
    // upload after a find does nothing
    let r = t.run(&["upload"]);
    r.ok();
    assert!(r.stderr.contains(".found exists"), "{}", r.stderr);

    // A new commit that touches no matched file: restored from the cache.
    t.reset_packages();
    t.repo.write("README.md", "more docs\n");
    let c2 = t.repo.commit("docs");
    let r = t.run(&["check"]);
    r.ok();
    assert!(t.found(), "restored from the cache: {}", r.stderr);
    assert!(r.stderr.contains("summary: restored"), "{}", r.stderr);
    assert_eq!(t.marker(".commit-hash").unwrap(), c2);
    assert_eq!(t.marker(".code-hash").unwrap(), h1);
    let dest = t.root.join("fetched");
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_to_string(dest.join("fn.zip")).unwrap(),
        "zip-bytes"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("web/site.tgz")).unwrap(),
        "tgz-bytes"
    );

    // Each change to the code gives a new hash and a miss.
    let mut hashes = vec![h1];
    type Change<'a> = (&'a str, &'a dyn Fn(&Path));
    let changes: [Change; 3] = [
        ("content", &|r| {
            std::fs::write(r.join("src/handler.py"), "changed\n").unwrap()
        }),
        ("rename", &|r| {
            std::fs::rename(r.join("src/handler.py"), r.join("src/main.py")).unwrap()
        }),
        ("chmod +x", &|r| {
            std::fs::set_permissions(
                r.join("src/main.py"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap()
        }),
    ];
    for (what, change) in changes {
        t.reset_packages();
        change(&t.repo.dir);
        t.repo.commit(what);
        t.run(&["check"]).ok();
        assert!(!t.found(), "{what}: must miss");
        let h = t.marker(".code-hash").unwrap();
        assert!(!hashes.contains(&h), "{what}: the code hash must change");
        hashes.push(h);
    }
}

#[test]
fn full_flow_on_garage() {
    let g = S3Server::get();
    let (env, bucket) = garage_env(&g, "flow");
    full_flow(env);
    let keys = g.keys(&bucket);
    let manifests = keys
        .iter()
        .filter(|k| k.ends_with("/.manifest.json"))
        .count();
    assert_eq!(
        manifests, 3,
        "two artifacts sets and one cache entry: {keys:?}"
    );
    let fnzip = keys
        .iter()
        .find(|k| k.starts_with("artifacts/") && k.ends_with("/fn.zip"))
        .unwrap();
    let meta = g.metadata(&bucket, fnzip);
    assert!(
        meta.contains_key("commit-hash") && meta.contains_key("code-hash"),
        "{meta:?}"
    );
    assert_eq!(
        meta["package-hash"], "S5pKxZ88OqMicyYN9s9L81jRxG+EFRJqo1tjgNCruPc=",
        "base64 SHA-256 of the content, Lambda's CodeSha256 format"
    );
}

#[test]
fn full_flow_on_the_file_store() {
    let (env, _dir) = file_env();
    full_flow(env);
}

#[test]
fn nested_hidden_many_and_large_assets_with_multipart_paths() {
    let g = S3Server::get();
    let (mut env, bucket) = garage_env(&g, "big");
    for (k, v) in common::SMALL_PARTS
        .into_iter()
        .chain([("CODE_HASH_FIND_FILTER", "src")])
    {
        env.insert(k.into(), v.into());
    }
    let t = task(env);
    t.run(&["check"]).ok();
    let mut files: Vec<(String, String)> = (0..1100)
        .map(|i| {
            (
                format!("many/{:02}/f{i}.txt", i % 7),
                format!("content {i}"),
            )
        })
        .collect();
    files.push(("a/b/c/deep.zip".into(), "deep".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    build(&t, &refs);
    build(
        &t,
        &[
            (".hidden", "no"),
            ("dir/.hidden", "no"),
            (".git/config", "no"),
            ("x/.cache/y", "no"),
        ],
    );
    let big: Vec<u8> = (0..(13u32 << 20) + 7).map(|i| (i % 251) as u8).collect();
    std::fs::write(t.packages().join("big.bin"), &big).unwrap();
    let r = t.run(&["upload"]);
    r.ok();
    let keys = g.keys(&bucket);
    let c1 = t.repo.head();
    let art: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("artifacts/{c1}/")))
        .collect();
    assert_eq!(
        art.len(),
        1100 + 2 + 1,
        "every asset plus the manifest, no hidden file"
    );
    assert!(keys
        .iter()
        .all(|k| !k.contains(".hidden") && !k.contains(".cache") && !k.contains(".git/")));
    assert!(keys.contains(&format!("artifacts/{c1}/a/b/c/deep.zip")));

    // Restore through multipart copy, then fetch and compare byte for byte.
    t.reset_packages();
    t.repo.write("README.md", "x\n");
    let c2 = t.repo.commit("docs");
    let r = t.run(&["check"]);
    r.ok();
    assert!(t.found(), "{}", r.stderr);
    let dest = t.root.join("out");
    t.run(&["fetch", "--commit", &c2, "--dest", dest.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(dest.join("big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(dest.join("many/03/f1102.txt")).ok(),
        None
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("many/03/f3.txt")).unwrap(),
        "content 3"
    );
    assert!(!dest.join(".hidden").exists());
}

#[test]
fn a_set_without_manifest_is_legacy() {
    let g = S3Server::get();
    let (env, bucket) = garage_env(&g, "legacy");
    let t = task(env);
    let c = t.repo.head();
    g.put(&bucket, &format!("artifacts/{c}/fn.zip"), b"old tool");
    let r = t.run(&["check"]);
    r.ok();
    assert!(!t.found(), "not found by default");
    assert!(
        r.stderr.contains("no manifest"),
        "the log names it: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("artifacts/{c}/")),
        "{}",
        r.stderr
    );

    let mut env = t.env.clone();
    env.insert("S3AM_ACCEPT_LEGACY".into(), "true".into());
    let r = cli(&["check"], &t.root, &env);
    r.ok();
    assert!(t.found(), "found with accept_legacy: {}", r.stderr);
    assert!(r.stderr.contains("legacy"), "{}", r.stderr);
    let r = cli(&["check", "--accept-legacy"], &t.root, &t.env);
    r.ok();
    // `check` removed the last run's `.found` first: this one wrote it again.
    assert!(t.found(), "found with --accept-legacy: {}", r.stderr);
}

/// `.commit-hash` is there when the first S3 request arrives: the store is a listener that
/// accepts a connection and never answers, and the marker is checked the moment it accepts,
/// while `check` still waits for its answer. A run that fails still leaves it.
#[test]
fn commit_hash_is_written_before_any_s3_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut env = unreachable_env();
    env.insert(
        "AWS_ENDPOINT_URL".into(),
        format!("http://{}", listener.local_addr().unwrap()),
    );
    env.insert("S3AM_TIMEOUT".into(), "5".into());
    let t = task(env.clone());
    let mut child = std::process::Command::new(common::CLI)
        .arg("check")
        .current_dir(&t.root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &t.root)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(&env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (_held, _) = listener.accept().unwrap();
    let marker = t.marker(".commit-hash");
    let still_waiting = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_waiting, "check ended before the store answered");
    assert_eq!(
        marker.as_deref(),
        Some(t.repo.head().as_str()),
        "no .commit-hash when the first request arrived"
    );

    let t = task(unreachable_env());
    let r = t.run(&["check"]);
    assert_ne!(r.code, 0);
    assert_eq!(t.marker(".commit-hash").unwrap(), t.repo.head());
}

#[test]
fn upload_does_nothing_when_found_exists() {
    let (env, dir) = file_env();
    let t = task(env);
    build(&t, &[(".found", ""), ("fn.zip", "x")]);
    t.run(&["upload"]).ok();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn detached_head_works() {
    let (env, _dir) = file_env();
    let t = task(env);
    let first = t.repo.head();
    t.repo.write("b", "b");
    t.repo.commit("second");
    git(&t.repo.dir, &["checkout", "-q", "--detach", &first]);
    t.run(&["check"]).ok();
    assert_eq!(t.marker(".commit-hash").unwrap(), first);
}

fn unreachable_env() -> Env {
    let mut env = Env::new();
    env.insert("PACKAGE_ASSETS_BUCKET".into(), "assets".into());
    env.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into());
    env.insert("AWS_REGION".into(), "us-east-1".into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "unreachable-secret".into());
    env.insert("S3AM_PATH_STYLE".into(), "1".into());
    env
}

#[test]
fn bad_input_gives_one_line_and_a_documented_exit_code() {
    let (env, _dir) = file_env();
    let t = task(env.clone());

    // A missing bucket setting.
    cli(&["check"], &t.root, &Env::new()).fails(2, "PACKAGE_ASSETS_BUCKET is not set");
    // Repository problems.
    let mut e = env.clone();
    e.insert("GIT_REPO_PATH".into(), "./nope".into());
    cli(&["check"], &t.root, &e).fails(3, "does not exist");
    std::fs::create_dir_all(t.root.join("plain")).unwrap();
    e.insert("GIT_REPO_PATH".into(), "./plain".into());
    cli(&["check"], &t.root, &e).fails(3, "not a git repository");
    git(&t.root, &["init", "-q", "--bare", "bare.git"]);
    e.insert("GIT_REPO_PATH".into(), "./bare.git".into());
    cli(&["check"], &t.root, &e).fails(3, "bare repository");
    // Upload problems.
    t.run(&["upload"]).fails(3, ".commit-hash");
    t.run(&["check"]).ok();
    t.run(&["upload"]).fails(3, "no files to upload");
    std::fs::write(t.packages().join(".commit-hash"), "not-a-commit").unwrap();
    build(&t, &[("fn.zip", "x")]);
    t.run(&["upload"]).fails(3, "does not hold a commit id");
    // A filter that matches nothing.
    let mut e = env.clone();
    e.insert("CODE_HASH_FIND_FILTER".into(), "nothing/**".into());
    cli(&["check"], &t.root, &e).fails(3, "match no file");
    // Bad flags and values.
    t.run(&["check", "--bogus"]).fails(2, "--bogus");
    let mut e = env.clone();
    e.insert("S3AM_CACHE".into(), "sometimes".into());
    cli(&["check"], &t.root, &e).fails(2, "invalid value \"sometimes\" for S3AM_CACHE (--cache)");
    let mut e = env.clone();
    e.insert("PACKAGE_ASSETS_BUCKET".into(), "file://relative".into());
    cli(&["check"], &t.root, &e).fails(2, "absolute path");
}

#[test]
fn store_failures_are_clear_and_keep_secrets() {
    let g = S3Server::get();
    let (env, _bucket) = garage_env(&g, "fail");
    let t = task(env.clone());

    let mut e = env.clone();
    let secret = "wrong-secret-9f8e7d6c5b4a";
    e.insert("AWS_SECRET_ACCESS_KEY".into(), secret.into());
    let r = cli(&["check"], &t.root, &e);
    r.fails(4, "rejected the credentials");
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));

    let mut e = env.clone();
    e.insert("PACKAGE_ASSETS_BUCKET".into(), "no-such-bucket-s3am".into());
    cli(&["check"], &t.root, &e).fails(4, "does not exist");

    let started = Instant::now();
    let r = cli(&["check"], &t.root, &unreachable_env());
    r.fails(1, "cannot reach");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(!r.stderr.contains("unreachable-secret"));

    let mut e = unreachable_env();
    e.remove("AWS_ACCESS_KEY_ID");
    e.remove("AWS_SECRET_ACCESS_KEY");
    cli(&["check"], &t.root, &e).fails(2, "no AWS credentials found");
}

#[test]
fn the_image_task_entrypoints_use_the_original_defaults() {
    let (env, dir) = file_env();
    let t = task(env);
    let bin = common::image_root().join("usr/local/bin");
    let mut env = t.env.clone();
    env.insert(
        "PATH".into(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    let check = bin.join("check");
    let upload = bin.join("upload");
    common::run_bin(check.to_str().unwrap(), &[], &t.root, &env).ok();
    assert_eq!(t.marker(".commit-hash").unwrap(), t.repo.head());
    assert!(t.marker(".code-hash").is_some());
    build(&t, &[("fn.zip", "zip")]);
    common::run_bin(upload.to_str().unwrap(), &[], &t.root, &env).ok();
    let c = t.repo.head();
    assert!(dir
        .path()
        .join(format!("artifacts/{c}/.manifest.json"))
        .exists());
}

/// The summary line of a run: the last line starting with "==> summary:".
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary line: {stderr}"))
}

#[test]
fn summary_lines_fit_the_outcome() {
    let (env, _dir) = file_env();
    let t = task(env);
    let c = t.repo.head();
    let miss = t.run(&["check"]);
    miss.ok();
    let line = summary(&miss.stderr);
    assert!(
        line.contains(&format!("summary: missing for commit {c}: build needed (")),
        "{line}"
    );
    assert!(!line.contains("MB/s") && !line.contains("files"), "{line}");

    build(&t, &[("fn.zip", "zip"), ("site/index.html", "<html>")]);
    let up = t.run(&["upload"]);
    up.ok();
    let line = summary(&up.stderr);
    assert!(line.contains("summary: uploaded for commit"), "{line}");
    // 9 bytes: no rate, which would only measure round trips.
    assert!(line.contains("2 files") && !line.contains("MB/s"), "{line}");

    t.reset_packages();
    let found = t.run(&["check"]);
    found.ok();
    let line = summary(&found.stderr);
    assert!(
        line.contains(&format!(
            "summary: found for commit {c}: 2 files, 9 B already complete: skip the build ("
        )),
        "{line}"
    );
    assert!(
        !line.contains("MB/s"),
        "no rate where nothing moved: {line}"
    );

    let again = t.run(&["upload"]);
    again.ok();
    let line = summary(&again.stderr);
    assert!(line.contains("summary: skipped for commit"), "{line}");
    assert!(!line.contains("MB/s"), "{line}");

    let dest = t.root.join("out");
    let fetched = t.run(&["fetch", "--dest", dest.to_str().unwrap()]);
    fetched.ok();
    let line = summary(&fetched.stderr);
    assert!(
        line.contains("2 files, 9 B downloaded and verified in") && !line.contains("MB/s"),
        "{line}"
    );
}

#[test]
fn no_command_gives_one_error_line_and_the_usage() {
    let (env, _dir) = file_env();
    let t = task(env);
    let r = t.run(&[]);
    r.fails(2, "no command given: use one of check, upload, hash, fetch");
    assert!(
        r.stderr.contains("Usage: s3-asset-manager <COMMAND>"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// A symlink to a file in the package directory is published as that file, under the link's
/// name; a symlinked directory is not entered, so nothing outside the package directory is
/// published through it.
#[test]
fn a_symlinked_file_is_published_and_a_symlinked_directory_is_not_entered() {
    let (env, dir) = file_env();
    let t = task(env);
    t.run(&["check"]).ok();
    let outside = t.root.join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("a.txt"), "outside bytes").unwrap();
    std::fs::write(outside.join("sub/b.txt"), "deeper").unwrap();
    build(&t, &[("fn.zip", "zip")]);
    std::os::unix::fs::symlink("../outside/a.txt", t.packages().join("link.zip")).unwrap();
    std::os::unix::fs::symlink("../outside/", t.packages().join("linkdir")).unwrap();
    t.run(&["upload"]).ok();

    let c = t.repo.head();
    let set = dir.path().join(format!("artifacts/{c}"));
    assert_eq!(
        std::fs::read_to_string(set.join("link.zip")).unwrap(),
        "outside bytes",
        "the link is published with its target's bytes"
    );
    let keys: Vec<String> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir.path()).unwrap();
            rel.to_string_lossy().into_owned()
        })
        .collect();
    let linkdir = format!("artifacts/{c}/linkdir");
    assert!(
        !keys.iter().any(|k| k.starts_with(&linkdir)),
        "the symlinked directory was entered: {keys:?}"
    );
    assert!(keys.contains(&format!("artifacts/{c}/fn.zip")), "{keys:?}");

    // Fetched back, the link is a plain file with the target's bytes.
    let dest = t.root.join("fetched");
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_to_string(dest.join("link.zip")).unwrap(),
        "outside bytes"
    );
    assert!(!dest.join("linkdir").exists());
}

/// `CODE_HASH_SALT` starts a fresh cache: after a publish with the unsalted code hash, the
/// next commit (same code) checked with `CODE_HASH_SALT=v2` finds no cache entry, and the
/// `.code-hash` it writes is what `hash --salt v2` prints; a set published under that salt is
/// restored for the commit after it.
#[test]
fn the_code_hash_salt_starts_a_fresh_cache() {
    let (mut env, _dir) = file_env();
    env.insert("CODE_HASH_FIND_FILTER".into(), "src package.json".into());
    let t = task(env.clone());
    t.run(&["check"]).ok();
    let unsalted = t.marker(".code-hash").unwrap();
    build(&t, &[("fn.zip", "zip")]);
    t.run(&["upload"]).ok();

    let salted_hash = t.run(&["hash", "--salt", "v2"]);
    salted_hash.ok();
    let salted = salted_hash.stdout.trim().to_string();
    assert_eq!(salted.len(), 64, "{}", salted_hash.stdout);
    assert_ne!(salted, unsalted, "the salt changes the code hash");

    let mut salted_env = env.clone();
    salted_env.insert("CODE_HASH_SALT".into(), "v2".into());
    t.reset_packages();
    t.repo.write("README.md", "more docs\n");
    t.repo.commit("docs");
    let r = cli(&["check"], &t.root, &salted_env);
    r.ok();
    assert!(
        !t.found(),
        "the salted check used the unsalted cache entry:\n{}",
        r.stderr
    );
    assert_eq!(t.marker(".code-hash").unwrap(), salted);

    build(&t, &[("fn.zip", "zip v2")]);
    cli(&["upload"], &t.root, &salted_env).ok();
    t.reset_packages();
    t.repo.write("README.md", "even more docs\n");
    t.repo.commit("docs 2");
    let r = cli(&["check"], &t.root, &salted_env);
    r.ok();
    assert!(t.found(), "restored from the salted entry: {}", r.stderr);
    assert_eq!(t.marker(".code-hash").unwrap(), salted);
    let dest = t.root.join("fetched");
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_to_string(dest.join("fn.zip")).unwrap(),
        "zip v2"
    );
}

/// `-q` keeps only warnings and errors (here the warning that the trace cannot be written),
/// and stderr that is not a terminal gets no colour, `NO_COLOR` or not.
#[test]
fn quiet_keeps_only_warnings_and_errors_and_a_pipe_gets_no_colour() {
    let (mut env, _dir) = file_env();
    env.insert("S3AM_TRACE".into(), "/nonexistent/s3am/t.json".into());
    let t = task(env);
    let loud = t.run(&["check"]);
    loud.ok();
    let colourless = |r: &common::Run| {
        assert!(
            !r.stderr.contains('\x1b'),
            "colour on a pipe: {:?}",
            r.stderr
        );
    };
    colourless(&loud);
    assert!(loud.stderr.contains("==> "), "{}", loud.stderr);
    build(&t, &[("fn.zip", "zip")]);
    let dest = t.root.join("dest");
    let missing = "0".repeat(40);
    let runs = [
        t.run(&["upload", "-q"]),
        t.run(&["fetch", "-q", "--dest", dest.to_str().unwrap()]),
        t.run(&["fetch", "-q", "--commit", &missing, "--dest", "elsewhere"]),
    ];
    assert_eq!(runs.each_ref().map(|r| r.code), [0, 0, 3]);
    for r in &runs {
        colourless(r);
        let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            lines.iter().any(|l| l.starts_with("warning: ")),
            "the warning stays: {}",
            r.stderr
        );
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("warning: ") || l.starts_with("error: ")),
            "-q printed more than warnings and errors:\n{}",
            r.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(dest.join("fn.zip")).unwrap(), "zip");
}

/// A package directory used again, as on a workstation: `check` of the next commit removes the
/// `.found` and `.code-hash` the last one left. Otherwise `upload` would skip the new commit
/// ("found"), or, with caching since turned off, fill the old code's cache entry with the new
/// build.
#[test]
fn check_clears_the_markers_an_earlier_check_left() {
    let (mut env, bucket) = file_env();
    env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    let mut t = task(env);
    t.run(&["check"]).ok();
    build(&t, &[("fn.zip", "one")]);
    t.run(&["upload"]).ok();
    t.run(&["check"]).ok();
    assert!(t.found());
    let old_hash = t.marker(".code-hash").expect("caching on: the code hash");

    // The next commit, new code, checked with caching off in the same directory.
    t.repo.write("src/handler.py", "def handler(): return 2\n");
    let two = t.repo.commit("two");
    t.env.remove("CODE_HASH_FIND_FILTER");
    t.run(&["check"]).ok();
    assert!(!t.found(), "the last commit's .found was left");
    assert_eq!(
        t.marker(".code-hash"),
        None,
        "the last commit's .code-hash was left"
    );
    assert_eq!(t.marker(".commit-hash").as_deref(), Some(two.as_str()));
    build(&t, &[("fn.zip", "two")]);
    let r = t.run(&["upload"]);
    r.ok();
    assert!(!r.stderr.contains("nothing to upload"), "{}", r.stderr);
    let dest = t.root.join("dest");
    t.run(&["fetch", "--commit", &two, "--dest", dest.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(dest.join("fn.zip")).unwrap(), "two");
    let cached = bucket.path().join(format!("cache/{old_hash}/fn.zip"));
    assert_eq!(std::fs::read_to_string(cached).unwrap(), "one");
}

/// A partial clone (`git clone --filter=blob:none`, which CI systems use to fetch less) is a
/// repository like any other, with `extensions.partialclone` set or not: `check` resolves its
/// HEAD and hashes its files.
#[test]
fn a_partial_clone_is_checked_like_any_checkout() {
    let (mut env, _bucket) = file_env();
    env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    let t = task(env.clone());
    git(&t.repo.dir, &["config", "uploadpack.allowFilter", "true"]);
    let partial = t.root.join("partial");
    let url = format!("file://{}", t.repo.dir.display());
    git(
        &t.root,
        &[
            "clone",
            "-q",
            "--filter=blob:none",
            &url,
            partial.to_str().unwrap(),
        ],
    );
    let promisor = git(&partial, &["config", "remote.origin.promisor"]);
    assert_eq!(promisor.trim(), "true", "a real partial clone");
    // This git marks it by the remote's promisor setting alone; other versions also write
    // the extension, which libgit2 refuses unless told of it.
    git(&partial, &["config", "extensions.partialclone", "origin"]);
    let whole = t.run(&["check"]);
    whole.ok();
    let full_hash = t.marker(".code-hash");
    t.reset_packages();
    let r = t.run(&["check", "--repo", partial.to_str().unwrap()]);
    r.ok();
    assert_eq!(
        t.marker(".commit-hash"),
        Some(t.repo.head()),
        "{}",
        r.stderr
    );
    assert_eq!(
        t.marker(".code-hash"),
        full_hash,
        "the same files, the same hash"
    );
}
