//! A bucket writer without the signing key gains nothing: each attack of the security review,
//! performed the way a writer with `artifacts/`, `cache/` and `index/` access would (objects
//! first, then the manifest and its signature), against the built binaries, and the refusal
//! docs/security.md documents. Every test runs on a `file://` bucket and on the S3 server the test
//! script started (Garage or SeaweedFS).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::bucket::{Bucket, Place};
use common::proxy::{Faults, Proxy};
use common::{resource, Key, Repo, Run};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A repository with three commits (A, B, and C at HEAD), the `main` pipeline's key, and a
/// trusted keys file holding its public key.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    a: String,
    b: String,
    c: String,
    main: Key,
    trusted: String,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = Repo::init(&root.join("repo"));
        let mut commits = Vec::new();
        for v in ["v1", "v2", "v3"] {
            repo.write("src/app.py", &format!("print('{v}')\n"));
            commits.push(repo.commit(v));
        }
        let keys = root.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let main = Key::new(&keys, "main");
        let trusted = root.join("trusted");
        std::fs::write(&trusted, format!("{}\n", main.public_line)).unwrap();
        World {
            a: commits[0].clone(),
            b: commits[1].clone(),
            c: commits[2].clone(),
            _tmp: tmp,
            root,
            main,
            trusted: trusted.to_string_lossy().into_owned(),
        }
    }

    fn unique(&self, tag: &str) -> PathBuf {
        self.root.join(common::unique_name(tag))
    }

    /// The CLI against `b`, with `extra` variables.
    fn run(&self, b: &Bucket, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = b.env();
        env.insert("GIT_REPO_PATH".into(), "repo".into());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        common::cli(args, &self.root, &env)
    }

    fn signing(&self) -> (&'static str, String) {
        (
            "S3AM_SIGNING_KEY",
            self.main.private.to_string_lossy().into_owned(),
        )
    }

    /// `upload` of `content` as fn.zip for `commit` (with a `.code-hash` when given), by the
    /// main pipeline (`signed`) or by a writer without its key.
    fn publish(
        &self,
        b: &Bucket,
        commit: &str,
        content: &str,
        signed: bool,
        code_hash: Option<&str>,
    ) {
        let key = self.signing();
        let mut vars = vec![];
        if signed {
            vars.push((key.0, key.1.as_str()));
        }
        self.upload(b, commit, content, code_hash, &vars).ok();
    }

    /// `upload` of `content` as fn.zip for `commit` (with a `.code-hash` when given), with
    /// `extra` variables.
    fn upload(
        &self,
        b: &Bucket,
        commit: &str,
        content: &str,
        code_hash: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Run {
        let pkg = self.unique("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join(".commit-hash"), commit).unwrap();
        if let Some(h) = code_hash {
            std::fs::write(pkg.join(".code-hash"), h).unwrap();
        }
        std::fs::write(pkg.join("fn.zip"), content).unwrap();
        let pkg_s = pkg.to_string_lossy().into_owned();
        let mut vars = extra.to_vec();
        vars.push(("PACKAGE_DIRECTORY", pkg_s.as_str()));
        self.run(b, &["upload"], &vars)
    }

    /// `fetch --commit` into a fresh directory, as a trusted deploy (with the trusted keys) or
    /// as a reader without keys.
    fn fetch(&self, b: &Bucket, commit: &str, trusted: bool) -> (Run, PathBuf) {
        let mut vars = vec![];
        if trusted {
            vars.push(("S3AM_TRUSTED_KEYS", self.trusted.as_str()));
        }
        self.fetch_with(b, commit, &vars)
    }

    /// `fetch --commit` into a fresh directory, with `extra` variables.
    fn fetch_with(&self, b: &Bucket, commit: &str, extra: &[(&str, &str)]) -> (Run, PathBuf) {
        let dest = self.unique("dest");
        let d = dest.to_string_lossy().into_owned();
        let r = self.run(b, &["fetch", "--commit", commit, "--dest", &d], extra);
        (r, dest)
    }

    /// `check` at HEAD (C) in a fresh package directory, with `extra` variables.
    fn check(&self, b: &Bucket, extra: &[(&str, &str)]) -> (Run, PathBuf) {
        let pkg = self.unique("pkg");
        let p = pkg.to_string_lossy().into_owned();
        let mut vars = extra.to_vec();
        vars.push(("PACKAGE_DIRECTORY", &p));
        let r = self.run(b, &["check"], &vars);
        (r, pkg)
    }

    /// The code hash of HEAD over `src`.
    fn code_hash(&self) -> String {
        let r = common::cli(
            &["hash", "--repo", "repo", "--filter", "src"],
            &self.root,
            &BTreeMap::new(),
        );
        r.ok();
        r.stdout.trim().to_string()
    }

    /// The resource's `in` of `commit` into a fresh directory.
    fn get(&self, commit: &str, source: Value, params: Value) -> (Run, PathBuf) {
        let dest = self.unique("get");
        let req = json!({"source": source, "version": {"commit": commit}, "params": params});
        (resource("in", &dest, &req), dest)
    }

    fn trusted_source(&self, b: &Bucket) -> Value {
        b.source(json!({ "trusted_keys": [self.main.public_line] }))
    }
}

/// The key of the signature of `manifest` in the set at `root`.
fn signature_key(root: &str, manifest: &[u8]) -> String {
    format!(
        "{root}.manifest.json.{}.sig",
        hex::encode(Sha256::digest(manifest))
    )
}

/// Asserts that `dest` holds no asset and no `.found`: a refused read wrote nothing.
fn wrote_nothing(dest: &Path, what: &str) {
    let names = common::entries(dest);
    assert!(
        names.iter().all(|n| n == ".commit-hash"),
        "{what} wrote {names:?}"
    );
}

/// No log line of `run` carries a character that could hide or forge text.
fn printable(run: &Run) {
    let raw = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    };
    assert!(
        !run.stderr.chars().any(raw),
        "a raw character in the log: {:?}",
        run.stderr
    );
}

/// Attack 1: A signed set copied onto another commit (a complete one, and one not built yet), and
/// onto another prefix, is refused by every reader: a trusted fetch, a trusted check, the
/// resource's `in` with `require`, and readers without keys. The main pipeline's next publish
/// of that commit replaces it.
#[test]
fn a_signed_set_replayed_onto_another_commit_or_prefix_is_refused() {
    let w = World::new();
    for b in Bucket::all(&w.root, "replay") {
        let store = b.name();
        w.publish(&b, &w.a, "old vulnerable build", true, None);
        w.publish(&b, &w.b, "good build", true, None);
        // The legitimate flow first: a trusted deploy takes B.
        let (r, dest) = w.fetch(&b, &w.b, true);
        r.ok();
        assert_eq!(
            std::fs::read_to_string(dest.join("fn.zip")).unwrap(),
            "good build",
            "{store}"
        );

        let (a, bb, c) = (
            format!("artifacts/{}/", w.a),
            format!("artifacts/{}/", w.b),
            format!("artifacts/{}/", w.c),
        );
        b.copy_set(&a, &bb);
        b.copy_set(&a, &c);
        let before = b.keys();
        for trusted in [true, false] {
            let (r, dest) = w.fetch(&b, &w.b, trusted);
            r.fails(1, &format!("names commit {}", w.a));
            assert!(
                r.stderr
                    .contains(&format!("{bb}.manifest.json names commit")),
                "{store}: {}",
                r.stderr
            );
            wrote_nothing(&dest, "a refused fetch");
        }
        let (r, pkg) = w.check(&b, &[("S3AM_TRUSTED_KEYS", &w.trusted)]);
        r.ok();
        assert!(
            !pkg.join(".found").exists(),
            "{store}: a replayed set was found"
        );
        assert!(
            r.stderr.contains(&format!("names commit {}", w.a)),
            "{store}: {}",
            r.stderr
        );
        let (r, dest) = w.get(&w.b, w.trusted_source(&b), json!({"require": true}));
        r.fails(1, &format!("names commit {}", w.a));
        wrote_nothing(&dest, "a refused get");
        let (r, dest) = w.get(&w.c, w.trusted_source(&b), json!({}));
        r.ok();
        wrote_nothing(&dest, "a get of a replayed set");
        assert_eq!(
            b.keys(),
            before,
            "{store}: a refused read wrote to the bucket"
        );

        // Another prefix, the same commit: a monorepo's other package.
        b.copy_set(&a, &format!("other/{a}"));
        let (r, _) = w.run_prefixed(&b, "other", &w.a);
        r.fails(1, &format!("was written under \"{a}\""));

        // The main pipeline publishes B again: the copy is replaced by a signed set of B's.
        w.publish(&b, &w.b, "good build", true, None);
        let (r, dest) = w.fetch(&b, &w.b, true);
        r.ok();
        assert_eq!(
            std::fs::read_to_string(dest.join("fn.zip")).unwrap(),
            "good build",
            "{store}"
        );
    }
}

impl World {
    /// A trusted `fetch` of `commit` under `prefix`.
    fn run_prefixed(&self, b: &Bucket, prefix: &str, commit: &str) -> (Run, PathBuf) {
        let dest = self.unique("dest");
        let d = dest.to_string_lossy().into_owned();
        let vars = [
            ("S3AM_TRUSTED_KEYS", self.trusted.as_str()),
            ("S3AM_PREFIX", prefix),
        ];
        let r = self.run(b, &["fetch", "--commit", commit, "--dest", &d], &vars);
        (r, dest)
    }
}

/// Attack 2: A signed cache entry copied under the code hash the next build computes is not
/// restored, and the log names the code hash the manifest was written for. Nothing is written.
#[test]
fn a_cache_entry_replayed_under_another_code_hash_is_not_restored() {
    let w = World::new();
    let hash = w.code_hash();
    let old = "1".repeat(64);
    for b in Bucket::all(&w.root, "cachereplay") {
        let store = b.name();
        w.publish(&b, &w.a, "old vulnerable build", true, Some(&old));
        b.copy_set(&format!("cache/{old}/"), &format!("cache/{hash}/"));
        let before = b.keys();
        let signing = w.signing();
        for extra in [
            vec![("S3AM_TRUSTED_KEYS", w.trusted.as_str())],
            vec![(signing.0, signing.1.as_str())],
            vec![],
        ] {
            let mut vars = extra.clone();
            vars.push(("CODE_HASH_FIND_FILTER", "src"));
            let (r, pkg) = w.check(&b, &vars);
            r.ok();
            assert!(
                !pkg.join(".found").exists(),
                "{store}: restored a replayed entry"
            );
            assert!(
                r.stderr.contains(&format!("names code hash {old}")),
                "{store}: {}",
                r.stderr
            );
            assert_eq!(
                b.keys(),
                before,
                "{store}: a refused restore wrote to the bucket"
            );
        }
    }
}

/// Attack 3: A writer plants an unsigned cache entry under the code hash the main pipeline computes.
/// The main pipeline, holding its signing key but no trusted keys, neither restores it nor
/// signs it: it builds, publishes its own set, and replaces the entry with a signed one.
#[test]
fn a_signing_publisher_never_launders_an_unsigned_cache_entry() {
    let w = World::new();
    let hash = w.code_hash();
    for b in Bucket::all(&w.root, "launder") {
        let store = b.name();
        // The writer's publish of its own commit fills cache/<hash>/ without a signature.
        w.publish(&b, &w.a, "planted", false, Some(&hash));
        let before = b.keys();
        let signing = w.signing();
        let (r, pkg) = w.check(
            &b,
            &[(signing.0, &signing.1), ("CODE_HASH_FIND_FILTER", "src")],
        );
        r.ok();
        assert!(
            !pkg.join(".found").exists(),
            "{store}: restored an unsigned entry"
        );
        assert!(r.stderr.contains("it is unsigned"), "{store}: {}", r.stderr);
        assert_eq!(
            b.keys(),
            before,
            "{store}: a refused restore wrote to the bucket"
        );

        w.publish(&b, &w.c, "real", true, Some(&hash));
        let (r, dest) = w.fetch(&b, &w.c, true);
        r.ok();
        assert_eq!(
            std::fs::read_to_string(dest.join("fn.zip")).unwrap(),
            "real",
            "{store}"
        );
        // The entry is the main pipeline's now, signed.
        let root = format!("cache/{hash}/");
        let manifest = b.get(&format!("{root}.manifest.json")).unwrap();
        assert!(
            b.get(&signature_key(&root, &manifest)).is_some(),
            "{store}: the entry is unsigned"
        );
        let m: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m["commit"], json!(w.c), "{store}");
    }
}

/// Attack 4: Forged index entries: an old set's commit at a newer time (a rollback), a name that is
/// not a commit, `..`, and more forged entries than a check looks at. Each is skipped with one
/// warning, never reported, never an error, and the work spent on them is bounded.
#[test]
fn forged_index_entries_are_skipped_and_bounded() {
    let w = World::new();
    for b in Bucket::all(&w.root, "index") {
        let store = b.name();
        w.publish(&b, &w.a, "a", false, None);
        w.publish(&b, &w.b, "b", false, None);
        // The checks' requests are counted where they pass: a proxy in front of the store.
        let proxy = match &b.place {
            Place::File(_) => None,
            Place::S3(g, _) => Some(Proxy::start(g.addr(), Faults::default())),
        };
        let passed = || {
            proxy.as_ref().map_or(0, |p| {
                p.stats.requests.load(std::sync::atomic::Ordering::SeqCst)
            })
        };
        let check = |version: Option<&str>| {
            let mut req = json!({ "source": b.source(json!({})) });
            if let Some(p) = &proxy {
                req["source"]["endpoint"] = json!(p.url());
            }
            if let Some(v) = version {
                req["version"] = json!({ "commit": v });
            }
            let r = resource("check", &w.root, &req);
            r.ok();
            let versions: Vec<String> = serde_json::from_str::<Vec<Value>>(&r.stdout)
                .unwrap()
                .iter()
                .map(|v| v["commit"].as_str().unwrap().to_string())
                .collect();
            (r, versions)
        };
        b.put(&format!("index/0000000000001-{}", w.a), b"");
        b.put("index/0000000000000-not-a-commit", b"");
        b.put("index/0000000000000-..", b"");
        let (r, v) = check(None);
        assert_eq!(v, vec![w.b.clone()], "{store}: {}", r.stderr);
        assert!(
            r.stderr.contains("skipped 3 index entries"),
            "{store}: {}",
            r.stderr
        );
        let (_, v) = check(Some(&w.b));
        assert_eq!(v, vec![w.b.clone()], "{store}: a rollback");
        let (_, v) = check(Some(&w.a));
        assert_eq!(v, vec![w.a.clone(), w.b.clone()], "{store}");

        // More forged entries than one check looks at: it stops, and says so.
        for i in 0..1001u32 {
            b.put(&format!("index/0000000000000-{:040x}", i), b"");
        }
        let before = passed();
        let (r, v) = check(None);
        assert!(v.is_empty(), "{store}: {v:?}");
        assert!(
            r.stderr.contains("stopped looking"),
            "{store}: {}",
            r.stderr
        );
        if proxy.is_some() {
            let n = passed() - before;
            // Two listings and one manifest read per entry, up to 31 of them still in flight.
            eprintln!("{store}: {n} requests for 1,001 forged entries");
            assert!(
                (1001..=1040).contains(&n),
                "{store}: {n} requests for 1,001 forged entries"
            );
        }
    }
}

/// Runs the CLI and returns its run and its peak resident memory in KiB, read from
/// `/proc/<pid>/status` (`VmHWM`, the peak of the image after `exec`) while it runs: the
/// rusage of a child counts the memory of the test process it was forked from.
fn run_measured(w: &World, b: &Bucket, args: &[&str], timeout: std::time::Duration) -> (Run, u64) {
    let mut cmd = Command::new(common::CLI);
    cmd.args(args)
        .current_dir(&w.root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &w.root)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(b.env());
    measured(cmd, None, timeout)
}

/// Runs `cmd` with `stdin` (or none) and returns its run and its peak resident memory in KiB
/// (see [`run_measured`]).
fn measured(mut cmd: Command, stdin: Option<String>, timeout: std::time::Duration) -> (Run, u64) {
    use std::io::{Read, Write};
    cmd.stdin(match stdin {
        Some(_) => Stdio::piped(),
        None => Stdio::null(),
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let status_file = format!("/proc/{}/status", child.id());
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let readers = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut peak_kib = 0;
    let status = loop {
        let hwm = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        peak_kib = peak_kib.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} still running after {timeout:?}: it blocked");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let (stdout, stderr) = readers.join().unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    (run, peak_kib)
}

/// Attack 5: A manifest over the limit is refused without reading past it (1 GiB on `file://`, sparse;
/// 400 MiB on S3), a signature over its limit too, and on `file://` a FIFO in the manifest's
/// place is refused at once instead of hanging the reader.
#[test]
fn oversized_and_non_regular_manifests_are_refused_without_reading_them() {
    let w = World::new();
    let secs = std::time::Duration::from_secs(60);
    for b in Bucket::all(&w.root, "bounded") {
        let store = b.name();
        let key = format!("artifacts/{}/.manifest.json", w.a);
        match &b.place {
            Place::File(dir) => {
                std::fs::create_dir_all(dir.join(&key).parent().unwrap()).unwrap();
                let f = std::fs::File::create(dir.join(&key)).unwrap();
                f.set_len(1 << 30).unwrap();
            }
            Place::S3(..) => b.put(&key, &vec![b' '; 400 << 20]),
        }
        let dest = w.unique("dest");
        let d = dest.to_string_lossy().into_owned();
        let (r, rss_kib) = run_measured(&w, &b, &["fetch", "--commit", &w.a, "--dest", &d], secs);
        r.fails(1, "over 64 MiB, the most a manifest may hold");
        // Reading the whole object would take at least its size (400 MiB or 1 GiB); the
        // first 64 MiB, and the buffer they grow into, take far less.
        assert!(rss_kib < 256 * 1024, "{store}: peak RSS {rss_kib} KiB");
        wrote_nothing(&dest, "a refused fetch");

        // A signature of 1 MiB beside a real signed manifest.
        w.publish(&b, &w.b, "b", true, None);
        let root = format!("artifacts/{}/", w.b);
        let manifest = b.get(&format!("{root}.manifest.json")).unwrap();
        b.put(&signature_key(&root, &manifest), &vec![b'x'; 1 << 20]);
        let (r, dest) = w.fetch(&b, &w.b, true);
        r.fails(1, "over 16 KiB");
        wrote_nothing(&dest, "a refused fetch");

        if let Place::File(dir) = &b.place {
            let fifo = dir.join(format!("artifacts/{}/.manifest.json", w.c));
            std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let (r, _) = run_measured(&w, &b, &["fetch", "--commit", &w.c, "--dest", &d], secs);
            r.fails(1, "not a regular file");
        }
    }
}

/// A hand-written manifest of `commit` naming `files` (path, size), with `fields` on top.
fn forged_manifest(commit: &str, files: &[(&str, u64)], fields: Value) -> Vec<u8> {
    let sha = hex::encode(Sha256::digest(b"abc"));
    let mut m = json!({
        "format": 1,
        "commit": commit,
        "prefix": format!("artifacts/{commit}/"),
        "tool_version": "0.1.0",
        "created": "2026-11-30T00:00:00Z",
        "files": files.iter().map(|(p, s)| json!({"path": p, "size": s, "sha256": sha})).collect::<Vec<_>>(),
    });
    for (k, v) in fields.as_object().into_iter().flatten() {
        m[k] = v.clone();
    }
    serde_json::to_vec_pretty(&m).unwrap()
}

/// Attack 6: Manifests that break a field's rule: a path listed twice, a size of 2^63, a code hash
/// that is not hex (which would land in `.code-hash` and the resource's metadata), paths with
/// control, bidirectional and separator characters. Each is refused with one line naming the
/// field, no reader writes a file or a marker, and no log line prints the characters raw.
#[test]
fn manifests_breaking_a_field_rule_are_refused_naming_the_field() {
    let w = World::new();
    let c = w.c.clone();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "`files[1].path` \"fn.zip\" is listed twice",
            forged_manifest(&c, &[("fn.zip", 3), ("fn.zip", 3)], json!({})),
        ),
        (
            "`files[0].size` 9223372036854775808 is over 5 TiB",
            forged_manifest(&c, &[("fn.zip", 1 << 63)], json!({})),
        ),
        (
            "`code_hash` \"../../etc\\nINJECT\" is not 64",
            forged_manifest(
                &c,
                &[("fn.zip", 3)],
                json!({"code_hash": "../../etc\nINJECT"}),
            ),
        ),
        (
            "`files[0].path` \"fn\\u{202e}piz.exe\"",
            forged_manifest(&c, &[("fn\u{202e}piz.exe", 3)], json!({})),
        ),
        (
            "`files[0].path` \"fn\\u{1b}[2Kx.zip\"",
            forged_manifest(&c, &[("fn\u{1b}[2Kx.zip", 3)], json!({})),
        ),
        (
            "`files[0].path` \"a\\u{2028}b\"",
            forged_manifest(&c, &[("a\u{2028}b", 3)], json!({})),
        ),
    ];
    for b in Bucket::all(&w.root, "fields") {
        let store = b.name();
        for (needle, manifest) in &cases {
            b.put(&format!("artifacts/{c}/fn.zip"), b"abc");
            b.put(&format!("artifacts/{c}/.manifest.json"), manifest);
            let before = b.keys();
            let (r, dest) = w.fetch(&b, &c, false);
            r.fails(1, needle);
            printable(&r);
            wrote_nothing(&dest, "a refused fetch");
            let (r, pkg) = w.check(&b, &[]);
            r.ok();
            printable(&r);
            assert!(r.stderr.contains(needle), "{store}: {}", r.stderr);
            assert!(!pkg.join(".found").exists(), "{store}: {needle}");
            assert!(!pkg.join(".code-hash").exists(), "{store}: {needle}");
            let (r, dest) = w.get(&c, b.source(json!({})), json!({"require": true}));
            r.fails(1, needle);
            printable(&r);
            wrote_nothing(&dest, "a refused get");
            assert_eq!(
                b.keys(),
                before,
                "{store}: a refused read wrote to the bucket"
            );
        }
    }
}

/// Attack 7: Symlinks planted at the markers' names, pointing outside: `in` and `check` replace the
/// links and leave what they point to alone.
#[test]
fn markers_replace_a_planted_symlink_instead_of_following_it() {
    let w = World::new();
    let hash = "2".repeat(64);
    for b in Bucket::all(&w.root, "markers") {
        let store = b.name();
        w.publish(&b, &w.c, "c", false, Some(&hash));
        let plant = |dir: &Path| {
            std::fs::create_dir_all(dir).unwrap();
            let mut victims = Vec::new();
            for name in [".commit-hash", ".found", ".code-hash"] {
                let victim = w.unique("victim");
                std::fs::write(&victim, "precious").unwrap();
                std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
                victims.push((name, victim));
            }
            victims
        };
        let dest = w.unique("get");
        let victims = plant(&dest);
        let req = json!({"source": b.source(json!({})), "version": {"commit": w.c}});
        resource("in", &dest, &req).ok();
        let pkg = w.unique("pkg");
        let more = plant(&pkg);
        let p = pkg.to_string_lossy().into_owned();
        w.run(&b, &["check"], &[("PACKAGE_DIRECTORY", &p)]).ok();
        for (dir, victims) in [(&dest, victims), (&pkg, more)] {
            for (name, victim) in victims {
                assert_eq!(
                    std::fs::read_to_string(&victim).unwrap(),
                    "precious",
                    "{store}: {name}"
                );
                let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
                assert!(meta.is_file(), "{store}: {name} is still a link");
            }
        }
        assert_eq!(
            std::fs::read_to_string(dest.join(".code-hash")).unwrap(),
            hash
        );
        assert_eq!(
            std::fs::read_to_string(pkg.join(".commit-hash")).unwrap(),
            w.c
        );
    }
}

/// Attack 8: A secret given with the wrong type: the error names the field and the type it wants,
/// never the value.
#[test]
fn a_secret_of_the_wrong_type_is_named_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("file://{}", dir.path().display());
    for (field, value) in [
        ("secret_access_key", json!(12345678901234567890u64)),
        ("secret_access_key", json!(1.2345678901234567)),
        ("session_token", json!({"token": "SECRETSECRET"})),
        ("signing_key", json!(["SECRETSECRET"])),
        ("signing_key", json!(true)),
    ] {
        let req = json!({"source": {"bucket": bucket, field: value}});
        let r = resource("check", dir.path(), &req);
        r.fails(1, &format!("`source.{field}`: expected a string"));
        for secret in [
            "12345678901234567890",
            "SECRETSECRET",
            "1.2345678901234567",
            "true",
        ] {
            assert!(!r.stderr.contains(secret), "{field}: {}", r.stderr);
        }
    }
}

/// The asset a fetch of `dest` wrote, if any.
fn fetched(dest: &Path) -> Option<String> {
    std::fs::read_to_string(dest.join("fn.zip")).ok()
}

/// Attack 9: A set without a manifest planted where readers accept the original tool's sets
/// (`accept_legacy`): no signature can vouch for it, so with trusted keys no reader takes it
/// (a trusted fetch finds nothing, a trusted check builds, the resource's `in` writes no
/// `.found` and fails with `require`), and a signing publisher publishes its own signed set
/// over it instead of accepting it. Without keys, `accept_legacy` takes the same set.
#[test]
fn a_planted_legacy_set_is_never_trusted_even_with_accept_legacy() {
    let w = World::new();
    let c = w.c.clone();
    let legacy = ("S3AM_ACCEPT_LEGACY", "true");
    let trust = ("S3AM_TRUSTED_KEYS", w.trusted.as_str());
    let why = "a legacy set, which is unsigned: not counted as found because trusted keys are set";
    for b in Bucket::all(&w.root, "legacy") {
        let store = b.name();
        b.put(&format!("artifacts/{c}/fn.zip"), b"planted");
        // Without keys, accept_legacy is what takes it.
        let (r, dest) = w.fetch_with(&b, &c, &[legacy]);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("planted"), "{store}");
        let (r, pkg) = w.check(&b, &[legacy]);
        r.ok();
        assert!(pkg.join(".found").exists(), "{store}: {}", r.stderr);

        let before = b.keys();
        let (r, dest) = w.fetch_with(&b, &c, &[legacy, trust]);
        r.fails(3, &format!("no complete asset set for commit {c}"));
        assert!(r.stderr.contains(why), "{store}: {}", r.stderr);
        wrote_nothing(&dest, "a trusted fetch of a legacy set");
        let (r, pkg) = w.check(&b, &[legacy, trust]);
        r.ok();
        assert!(
            !pkg.join(".found").exists(),
            "{store}: a trusted check found a legacy set"
        );
        assert!(r.stderr.contains(why), "{store}: {}", r.stderr);
        let source = b.source(json!({
            "trusted_keys": [w.main.public_line],
            "accept_legacy": true,
        }));
        let (r, dest) = w.get(&c, source.clone(), json!({}));
        r.ok();
        assert!(r.stderr.contains(why), "{store}: {}", r.stderr);
        wrote_nothing(&dest, "a trusted get of a legacy set");
        let (r, dest) = w.get(&c, source, json!({"require": true}));
        r.fails(1, &format!("no complete asset set for commit {c}"));
        wrote_nothing(&dest, "a trusted get of a legacy set");
        assert_eq!(
            b.keys(),
            before,
            "{store}: a refused read wrote to the bucket"
        );

        // A publisher without the key takes it for the original tool's set; the main
        // pipeline publishes its own signed set over it.
        let r = w.upload(&b, &c, "real", None, &[legacy]);
        r.ok();
        assert!(
            r.stderr
                .contains("holds a legacy set, accepted as complete: uploading nothing"),
            "{store}: {}",
            r.stderr
        );
        let signing = w.signing();
        let r = w.upload(&b, &c, "real", None, &[legacy, (signing.0, &signing.1)]);
        r.ok();
        assert!(
            !r.stderr.contains("accepted as complete"),
            "{store}: a signing publisher accepted a legacy set: {}",
            r.stderr
        );
        let root = format!("artifacts/{c}/");
        let manifest = b.get(&format!("{root}.manifest.json")).expect("a manifest");
        assert!(
            b.get(&signature_key(&root, &manifest)).is_some(),
            "{store}: the set is unsigned"
        );
        let (r, dest) = w.fetch_with(&b, &c, &[legacy, trust]);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("real"), "{store}");
    }
}

/// Puts a set at `root` (a key prefix ending in `/`) as a writer holding `key` would: its one
/// asset, fn.zip ("abc"), then `manifest`'s signature by `key`, then `manifest`.
fn plant_signed(b: &Bucket, root: &str, manifest: &[u8], key: &Key) {
    b.put(&format!("{root}fn.zip"), b"abc");
    b.put(&signature_key(root, manifest), &key.sign(manifest));
    b.put(&format!("{root}.manifest.json"), manifest);
}

/// Attack 10: A manifest the trusted key signed before manifests named their prefix (no
/// `prefix` field), at its own place and copied under another prefix: nothing binds its
/// signature to a place, so with trusted keys every reader refuses it, at its own place as
/// under the other prefix ("names no key prefix"), and the main pipeline's next publish
/// replaces it. A reader without keys still reads it at its own place.
#[test]
fn a_signed_manifest_without_a_prefix_is_refused_with_trusted_keys() {
    let w = World::new();
    let c = w.c.clone();
    let trust = ("S3AM_TRUSTED_KEYS", w.trusted.as_str());
    let why = "names no key prefix";
    let mut m: Value =
        serde_json::from_slice(&forged_manifest(&c, &[("fn.zip", 3)], json!({}))).unwrap();
    m.as_object_mut().unwrap().remove("prefix");
    let old = serde_json::to_vec_pretty(&m).unwrap();
    for b in Bucket::all(&w.root, "noprefix") {
        let store = b.name();
        // The same hand-written manifest with its prefix, signed the same way, is trusted.
        let bb = format!("artifacts/{}/", w.b);
        let current = forged_manifest(&w.b, &[("fn.zip", 3)], json!({}));
        plant_signed(&b, &bb, &current, &w.main);
        let (r, dest) = w.fetch(&b, &w.b, true);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("abc"), "{store}");

        let root = format!("artifacts/{c}/");
        plant_signed(&b, &root, &old, &w.main);
        plant_signed(&b, &format!("other/{root}"), &old, &w.main);
        let before = b.keys();
        let (r, dest) = w.fetch(&b, &c, true);
        r.fails(1, why);
        wrote_nothing(&dest, "a trusted fetch");
        let (r, dest) = w.run_prefixed(&b, "other", &c);
        r.fails(1, why);
        wrote_nothing(&dest, "a trusted fetch under the other prefix");
        let (r, pkg) = w.check(&b, &[trust]);
        r.ok();
        assert!(!pkg.join(".found").exists(), "{store}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{store}: {}", r.stderr);
        let (r, dest) = w.get(&c, w.trusted_source(&b), json!({"require": true}));
        r.fails(1, why);
        wrote_nothing(&dest, "a trusted get");
        assert_eq!(
            b.keys(),
            before,
            "{store}: a refused read wrote to the bucket"
        );

        // An earlier version's set still reads without keys, at its own place.
        let (r, dest) = w.fetch(&b, &c, false);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("abc"), "{store}");

        // The main pipeline publishes C again: its manifest names its prefix.
        w.publish(&b, &c, "real", true, None);
        let (r, dest) = w.fetch(&b, &c, true);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("real"), "{store}");
    }
}

/// Attack 8: manifests in flight are held to a memory budget, whatever the number of index
/// entries or sets that name large ones. Forty index entries naming commits whose manifest is
/// 64 MiB (sparse, on `file://`; an S3 bucket would need 2.5 GB uploaded) once made the
/// resource's `check` peak at 1.9 GB (32 read at once, before any was parsed), and `list
/// --verify` at 1.5 GB. Now each is read whole one at a time: under 400 MB, in under a minute.
#[test]
fn forty_large_manifests_are_read_within_a_memory_budget() {
    let w = World::new();
    let b = Bucket::all(&w.root, "budget").remove(0);
    let common::bucket::Place::File(dir) = &b.place else {
        panic!("Bucket::all yields the file:// bucket first");
    };
    for i in 0..40u64 {
        let commit = format!("{:040x}", 0x000b_0d9e_7000 + i);
        b.put(&format!("index/{i:013}-{commit}"), b"");
        let p = dir.join(format!("artifacts/{commit}/.manifest.json"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
    }
    let limit = 400 * 1024;
    let minute = std::time::Duration::from_secs(60);
    let mut cmd = Command::new(common::resource_bin("check"));
    cmd.current_dir(&w.root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &w.root);
    let request = json!({ "source": b.source(json!({})) }).to_string();
    let started = std::time::Instant::now();
    let (r, kib) = measured(cmd, Some(request), minute);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "[]", "{}", r.stderr);
    assert!(
        kib < limit,
        "the resource's check peaked at {} MB over 40 manifests of 64 MiB (in {:?})",
        kib / 1024,
        started.elapsed()
    );
    for args in [&["list", "--verify"][..], &["prune", "--dry-run"]] {
        let (r, kib) = run_measured(&w, &b, args, minute);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            kib < limit,
            "{args:?} peaked at {} MB over 40 manifests of 64 MiB",
            kib / 1024
        );
    }
}

/// A `file://` bucket of its own under the world's root, and its directory: the attacks on
/// the directory itself (links planted in it) apply to no other store, so these tests run
/// whether or not an S3 server is up.
fn file_bucket(w: &World) -> (Bucket, PathBuf) {
    let dir = w.unique("bucket");
    std::fs::create_dir_all(&dir).unwrap();
    let b = Bucket {
        place: Place::File(dir.clone()),
    };
    (b, dir)
}

/// A directory outside every bucket and destination, holding two files, and what it holds.
fn outside_with_files(w: &World) -> (PathBuf, Vec<String>) {
    let outside = w.unique("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
    for name in ["precious", "fn.zip"] {
        let p = outside.join(name);
        std::fs::write(&p, "precious").unwrap();
        // Older than any age `prune` waits for.
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let names = common::entries(&outside);
    (outside, names)
}

/// Asserts that `outside` still holds exactly `names`, each unchanged.
fn intact(outside: &Path, names: &[String], what: &str) {
    assert_eq!(&common::entries(outside), names, "{what}");
    for n in names {
        let body = std::fs::read_to_string(outside.join(n)).unwrap();
        assert_eq!(body, "precious", "{what}: {n}");
    }
}

/// The one line that refuses a link at `rel` inside the bucket.
fn bucket_link(rel: &str) -> String {
    format!("{rel} is a symbolic link inside the bucket directory: refusing to read, write or delete through it; remove the link")
}

/// Attack 11 (issue 33, item 5): `artifacts/<C>` of a `file://` bucket made a link to a
/// directory outside the bucket, then to set A's directory. `delete --commit C` fails with the
/// line naming the link and deletes nothing through it; a publish of C through it is refused
/// and writes nothing through it. The files outside, and A's signed set, stay as they were.
#[test]
fn a_link_at_a_sets_directory_in_a_file_bucket_is_never_deleted_or_written_through() {
    let w = World::new();
    let (b, dir) = file_bucket(&w);
    let (outside, names) = outside_with_files(&w);
    w.publish(&b, &w.a, "a build", true, None);
    let a_keys = b.keys();
    let c_dir = dir.join(format!("artifacts/{}", w.c));
    let signing = w.signing();
    for (target, what) in [
        (outside.clone(), "outside"),
        (dir.join(format!("artifacts/{}", w.a)), "A's set"),
    ] {
        std::os::unix::fs::symlink(&target, &c_dir).unwrap();
        let link = bucket_link(&format!("artifacts/{}", w.c));
        w.run(&b, &["delete", "--commit", &w.c], &[])
            .fails(1, &link);
        w.upload(&b, &w.c, "c build", None, &[(signing.0, &signing.1)])
            .fails(1, &link);
        intact(&outside, &names, what);
        assert!(
            std::fs::symlink_metadata(&c_dir).unwrap().is_symlink(),
            "{what}: the link itself was replaced"
        );
        // Listings never report the link's files as objects.
        assert_eq!(b.keys(), a_keys, "{what}");
        let (r, dest) = w.fetch(&b, &w.a, true);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("a build"), "{what}");
        std::fs::remove_file(&c_dir).unwrap();
    }
    // With the link gone, C publishes and deletes as usual.
    w.upload(&b, &w.c, "c build", None, &[(signing.0, &signing.1)])
        .ok();
    w.run(&b, &["delete", "--commit", &w.c], &[]).ok();
    assert_eq!(b.keys(), a_keys);
    intact(&outside, &names, "after the link went");
}

/// Attack 12 (issue 33, item 5): `.s3am/tmp` of a `file://` bucket made a link to a directory
/// of old files outside: `prune` fails with the line naming the link (it does not skip it:
/// the bucket needs the link removed) and deletes none of them as "unfinished uploads". A
/// link at `.s3am/meta` or `.s3am/lock` fails a publish the same way, writing nothing outside.
#[test]
fn links_at_a_file_buckets_internal_directories_are_never_followed() {
    let w = World::new();
    let signing = w.signing();
    let sign = [(signing.0, signing.1.as_str())];
    for at in ["tmp", "meta", "lock"] {
        let (b, dir) = file_bucket(&w);
        let (outside, names) = outside_with_files(&w);
        w.upload(&b, &w.a, "a build", None, &sign).ok();
        let internal = dir.join(".s3am").join(at);
        match at {
            "lock" => {
                let _ = std::fs::remove_file(&internal);
                std::os::unix::fs::symlink(outside.join("precious"), &internal).unwrap();
            }
            _ => {
                std::fs::remove_dir_all(&internal).unwrap();
                std::os::unix::fs::symlink(&outside, &internal).unwrap();
            }
        }
        let link = bucket_link(&format!(".s3am/{at}"));
        if at == "tmp" {
            w.run(&b, &["prune"], &[]).fails(1, &link);
            w.run(&b, &["prune", "--incomplete-max-age", "1s"], &[])
                .fails(1, &link);
        }
        w.upload(&b, &w.b, "b build", None, &sign).fails(1, &link);
        intact(&outside, &names, at);
        let (r, dest) = w.fetch(&b, &w.a, true);
        r.ok();
        assert_eq!(fetched(&dest).as_deref(), Some("a build"), "{at}");
    }
}

/// Publishes a set of `commit` holding `sub/a-file` and `files` more files in `sub/`, unsigned.
fn publish_sub(w: &World, b: &Bucket, commit: &str, files: usize) {
    let pkg = w.unique("pkg");
    std::fs::create_dir_all(pkg.join("sub")).unwrap();
    std::fs::write(pkg.join(".commit-hash"), commit).unwrap();
    std::fs::write(pkg.join("sub/a-file"), "ssh-ed25519 AAAA verified\n").unwrap();
    for i in 0..files {
        std::fs::write(pkg.join(format!("sub/f{i:03}")), format!("{i}")).unwrap();
    }
    let p = pkg.to_string_lossy().into_owned();
    w.run(b, &["upload"], &[("PACKAGE_DIRECTORY", &p)]).ok();
}

/// Everything under `dir`, recursively, as paths relative to it (links not followed).
fn tree(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// Attack 13 (issue 33, item 6): while a fetch runs, another process swaps `dest/sub` for a
/// link to an outside directory (`renameat2` with `RENAME_EXCHANGE`) as soon as it appears,
/// and keeps swapping it back and forth (every millisecond) until the fetch exits (10 s at
/// most). Over several fetches, whether each succeeds or fails, nothing lands in the outside
/// directory: no asset and no `.s3am-partial` temporary file. A failure names the link.
#[cfg(target_os = "linux")]
#[test]
fn a_destination_directory_swapped_for_a_link_during_a_fetch_redirects_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let w = World::new();
    let (b, _) = file_bucket(&w);
    publish_sub(&w, &b, &w.c, 40);
    let outside = w.unique("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let (mut swapped, mut refusals) = (0, Vec::new());
    for _ in 0..12 {
        let dest = w.unique("dest");
        let link = w.unique("swap");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (done, sub) = (done.clone(), dest.join("sub"));
            std::thread::spawn(move || {
                let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
                let (sub, link) = (c(&sub), c(&link));
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                let mut swaps = 0;
                while !done.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    let r = unsafe {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            sub.as_ptr(),
                            libc::AT_FDCWD,
                            link.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                    if r == 0 {
                        // Each state held a moment, for writes to go through it.
                        swaps += 1;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    } else {
                        std::thread::yield_now();
                    }
                }
                swaps
            })
        };
        let d = dest.to_string_lossy().into_owned();
        let r = w.run(&b, &["fetch", "--commit", &w.c, "--dest", &d], &[]);
        done.store(true, Ordering::Relaxed);
        swapped += (swapper.join().unwrap() > 0) as u32;
        assert_eq!(tree(&outside), Vec::<String>::new(), "written outside");
        if r.code != 0 {
            refusals.push(r.stderr);
        }
    }
    assert!(swapped > 0, "the swapper never found dest/sub to swap");
    for stderr in &refusals {
        let needle = "sub is a symbolic link inside the download destination";
        assert!(stderr.contains(needle), "{stderr}");
    }
    eprintln!(
        "{swapped} of 12 fetches raced, {} refused a link",
        refusals.len()
    );
}

/// Attack 13, deterministic: `dest/sub` is a link to an outside directory before the fetch
/// (and before the resource's `in`): each fails naming it, and writes nothing outside.
#[test]
fn a_link_in_the_destination_fails_a_fetch_naming_it() {
    let w = World::new();
    let (b, _) = file_bucket(&w);
    publish_sub(&w, &b, &w.c, 3);
    let (outside, names) = outside_with_files(&w);
    let plant = |dest: &Path| {
        std::fs::create_dir_all(dest).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("sub")).unwrap();
    };
    let needle = "sub is a symbolic link inside the download destination";
    let dest = w.unique("dest");
    plant(&dest);
    let d = dest.to_string_lossy().into_owned();
    w.run(&b, &["fetch", "--commit", &w.c, "--dest", &d], &[])
        .fails(3, needle);
    intact(&outside, &names, "fetch");
    let dest = w.unique("get");
    plant(&dest);
    let req = json!({"source": b.source(json!({})), "version": {"commit": w.c}});
    let r = resource("in", &dest, &req);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(needle), "{}", r.stderr);
    intact(&outside, &names, "in");
    // The destination itself may be a link: the user named it.
    let real = w.unique("real");
    std::fs::create_dir_all(&real).unwrap();
    let via = w.unique("via");
    std::os::unix::fs::symlink(&real, &via).unwrap();
    let v = via.to_string_lossy().into_owned();
    w.run(&b, &["fetch", "--commit", &w.c, "--dest", &v], &[])
        .ok();
    assert!(real.join("sub/a-file").is_file());
}
