//! The image built from the Dockerfile (scripts/image, run by scripts/test, which exports its
//! tag as S3AM_TEST_IMAGE), run as Concourse runs it: `/opt/resource/{check,in,out}` with JSON on
//! stdin and only the build's variables in the environment, and the `check`, `upload` and
//! `prune` task entrypoints by name from PATH with the task's variables. Each runs in a fresh
//! container on the host's network (the S3 server listens on 127.0.0.1), with the work
//! directories, and a `file://` bucket, mounted at the same paths.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::bucket::{Bucket, Place};
use common::{meta, response, Env, Key, Repo, Run, Task};
use serde_json::{json, Value};

/// The image under test.
struct Image {
    name: String,
}

impl Image {
    /// The image scripts/test built. Panics when there is none: `S3AM_SKIP_IMAGE=1` makes
    /// scripts/test leave these tests out by name (`--skip image::`), so that none of them
    /// reports a pass it did not earn.
    fn get() -> Option<Image> {
        match std::env::var("S3AM_TEST_IMAGE").ok().filter(|v| !v.is_empty()) {
            Some(name) => Some(Image { name }),
            None => panic!(
                "S3AM_TEST_IMAGE is not set: run the tests with ./scripts/test, which builds the image with scripts/image (or leaves these tests out with S3AM_SKIP_IMAGE=1)"
            ),
        }
    }

    /// Runs `argv` in a fresh container: `mounts` bind-mounted at their own paths, `cwd` as
    /// the working directory, `env` the only variables beyond the image's own, `stdin` fed.
    /// The values reach podman through its environment (`--env NAME`), not its argv.
    fn run(&self, mounts: &[&Path], cwd: &Path, env: &Env, argv: &[&str], stdin: &str) -> Run {
        let mut cmd = Command::new("podman");
        cmd.args(["run", "-i", "--rm", "--pull=never", "--network", "host"]);
        for m in mounts {
            cmd.arg("-v")
                .arg(format!("{}:{}", m.display(), m.display()));
        }
        cmd.arg("-w").arg(cwd);
        for (k, v) in env {
            cmd.arg("--env").arg(k).env(k, v);
        }
        cmd.arg(&self.name).args(argv);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run podman (scripts/image installs it)");
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.as_bytes().to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for podman");
        writer.join().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Concourse build of the resource: a work root mounted into every container, holding
/// put/repo (the checkout), put/packages (the build's output) and the get and check dirs.
struct Pipeline<'a> {
    image: &'a Image,
    bucket: &'a Bucket,
    root: &'a Path,
    mounts: Vec<&'a Path>,
    repo: Repo,
    /// What the publishing pipeline's `source` adds: code hash patterns, its signing key.
    publisher: Value,
    /// What a reading pipeline's `source` adds: the trusted public keys when signed.
    reader: Value,
}

impl Pipeline<'_> {
    /// Runs `/opt/resource/NAME` as Concourse does: `dir` as argv[1] (not for check) and cwd.
    fn resource(&self, name: &str, dir: &Path, request: Value) -> Run {
        std::fs::create_dir_all(dir).unwrap();
        let exe = format!("/opt/resource/{name}");
        let mut argv = vec![exe.as_str()];
        let arg = dir.to_string_lossy();
        if name != "check" {
            argv.push(&arg);
        }
        let r = self.image.run(
            &self.mounts,
            dir,
            &common::build_env(),
            &argv,
            &request.to_string(),
        );
        assert!(
            !r.stderr.contains("panicked"),
            "{} on {}: {}",
            name,
            self.bucket.name(),
            r.stderr
        );
        r
    }

    fn put_dir(&self) -> PathBuf {
        self.root.join("put")
    }

    /// `put` with `params`, as the publishing pipeline.
    fn put(&self, params: Value) -> Value {
        let source = self.bucket.source(self.publisher.clone());
        response(&self.resource(
            "out",
            &self.put_dir(),
            json!({"source": source, "params": params}),
        ))
    }

    /// `get` of `commit` into a fresh directory `dir`, as a reading pipeline.
    fn get(&self, dir: &str, commit: &str, reader: &Value) -> Value {
        let source = self.bucket.source(reader.clone());
        response(&self.resource(
            "in",
            &self.root.join(dir),
            json!({"source": source, "version": {"commit": commit}, "params": {}}),
        ))
    }

    /// `check` from `version`, as a reading pipeline; the commits it lists.
    fn check(&self, version: Option<&str>) -> Vec<String> {
        let mut req = json!({"source": self.bucket.source(self.reader.clone())});
        if let Some(v) = version {
            req["version"] = json!({"commit": v});
        }
        let resp = response(&self.resource("check", &self.root.join("check"), req));
        resp.as_array()
            .unwrap_or_else(|| panic!("check printed no list: {resp}"))
            .iter()
            .map(|v| v["commit"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The resource in the image against `bucket`, signed by a key given as text in `source` or
/// unsigned: a publish, a lookup that finds it, a restore from the cache for a new commit with
/// the same code, a get that downloads and verifies, and check listing the versions.
fn resource_flow(image: &Image, bucket: &Bucket, root: &Path, signed: bool) {
    let store = bucket.name();
    let repo = Repo::init(&root.join("put/repo"));
    repo.write("src/handler.py", "def handler(): pass\n")
        .write("README.md", "r\n");
    let c1 = repo.commit("first");
    let key = Key::new(root, "publisher");
    let (publisher, reader) = if signed {
        (
            json!({"code_hash_filter": ["src"], "signing_key": key.private_text()}),
            json!({"trusted_keys": [key.public_line]}),
        )
    } else {
        (json!({"code_hash_filter": ["src"]}), json!({}))
    };
    let p = Pipeline {
        image,
        bucket,
        root,
        mounts: mounts(root, bucket),
        repo,
        publisher,
        reader,
    };
    assert!(
        p.check(None).is_empty(),
        "{store}: an empty bucket gives []"
    );

    // put with path: the build's output is published.
    let pkg = p.put_dir().join("packages");
    std::fs::create_dir_all(pkg.join("web")).unwrap();
    std::fs::write(pkg.join("fn.zip"), "zip-1").unwrap();
    std::fs::write(pkg.join("web/site.tgz"), "tgz").unwrap();
    let r = p.put(json!({"repo": "repo", "path": "packages"}));
    assert_eq!(r["version"], json!({"commit": c1}), "{store}");
    assert_eq!(meta(&r, "outcome"), "uploaded", "{store}: {r}");
    assert_eq!(meta(&r, "files"), "2", "{store}: {r}");
    let code_hash = meta(&r, "code_hash");
    assert_eq!(code_hash.len(), 64, "{store}: {r}");
    let keys = bucket.keys();
    for k in [
        format!("artifacts/{c1}/fn.zip"),
        format!("artifacts/{c1}/web/site.tgz"),
        format!("artifacts/{c1}/.manifest.json"),
        format!("cache/{code_hash}/.manifest.json"),
    ] {
        assert!(keys.contains(&k), "{store}: no {k} in {keys:?}");
    }
    let sig = |c: &str| {
        let prefix = format!("artifacts/{c}/.manifest.json.");
        keys.iter()
            .any(|k| k.starts_with(&prefix) && k.ends_with(".sig"))
    };
    assert_eq!(sig(&c1), signed, "{store}: signature objects: {keys:?}");
    let manifest = bucket
        .get(&format!("artifacts/{c1}/.manifest.json"))
        .unwrap();
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["build"]["pipeline"], "app",
        "{store}: Concourse's BUILD_* variables reach the resource: {manifest}"
    );

    // put without path: the lookup finds the set.
    let r = p.put(json!({"repo": "repo"}));
    assert_eq!(meta(&r, "outcome"), "found", "{store}: {r}");
    assert_eq!(r["version"], json!({"commit": c1}), "{store}");

    // A new commit that leaves src/ alone: the lookup restores it from the cache.
    p.repo.write("README.md", "docs\n");
    let c2 = p.repo.commit("docs");
    let r = p.put(json!({"repo": "repo"}));
    assert_eq!(meta(&r, "outcome"), "restored", "{store}: {r}");
    assert_eq!(r["version"], json!({"commit": c2}), "{store}");
    assert!(
        bucket
            .keys()
            .contains(&format!("artifacts/{c2}/.manifest.json")),
        "{store}"
    );

    // get: downloaded, verified, and the markers written.
    let r = p.get("get", &c2, &p.reader);
    assert_eq!(r["version"], json!({"commit": c2}), "{store}");
    assert_eq!(meta(&r, "files"), "2", "{store}: {r}");
    let dir = root.join("get");
    assert_eq!(read(&dir.join("fn.zip")), "zip-1", "{store}");
    assert_eq!(read(&dir.join("web/site.tgz")), "tgz", "{store}");
    assert!(dir.join(".found").exists(), "{store}");
    assert_eq!(read(&dir.join(".commit-hash")), c2, "{store}");
    assert_eq!(read(&dir.join(".code-hash")), code_hash, "{store}");
    if signed {
        // A reader trusting another key does not find the set: the image verifies signatures.
        let other = Key::new(root, "other");
        let r = p.get(
            "get-other",
            &c2,
            &json!({"trusted_keys": [other.public_line]}),
        );
        assert_eq!(meta(&r, "outcome"), "missing", "{store}: {r}");
        let dir = root.join("get-other");
        assert!(
            !dir.join(".found").exists() && !dir.join("fn.zip").exists(),
            "{store}"
        );
    }

    // A set that is not there, with `require`: exit 1, one error line, nothing on stdout.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let r = p.resource(
        "in",
        &root.join("get-missing"),
        json!({
            "source": bucket.source(p.reader.clone()),
            "version": {"commit": missing},
            "params": {"require": true},
        }),
    );
    r.fails(1, "no complete asset set");
    assert!(r.stdout.is_empty(), "{store}: {}", r.stdout);

    assert_eq!(p.check(Some(&c1)), [c1.clone(), c2.clone()], "{store}");
    assert_eq!(p.check(None), [c2], "{store}");
}

/// What a container for `root`'s work needs mounted: `root`, and a `file://` bucket at the
/// path its URL names.
fn mounts<'a>(root: &'a Path, bucket: &'a Bucket) -> Vec<&'a Path> {
    let mut mounts = vec![root];
    if let Place::File(dir) = &bucket.place {
        mounts.push(dir);
    }
    mounts
}

/// Runs `flow` for each bucket (a `file://` directory and one on the S3 server), each with a
/// fresh work root.
fn each_bucket(tag: &str, flow: impl Fn(&Bucket, &Path)) {
    let buckets = tempfile::tempdir().unwrap();
    for bucket in Bucket::all(buckets.path(), tag) {
        let work = tempfile::tempdir().unwrap();
        flow(&bucket, work.path());
    }
}

#[test]
fn the_resource_in_the_image_publishes_finds_restores_gets_and_checks() {
    let Some(image) = Image::get() else { return };
    each_bucket("img-res", |b, root| resource_flow(&image, b, root, false));
}

#[test]
fn the_resource_in_the_image_signs_and_verifies_with_a_key_given_in_source() {
    let Some(image) = Image::get() else { return };
    each_bucket("img-sig", |b, root| resource_flow(&image, b, root, true));
}

/// The task entrypoints as a Concourse task runs them: by name from PATH, in the task's work
/// directory, with ./repo and ./packages left to the image's defaults.
#[test]
fn the_task_entrypoints_in_the_image_check_upload_check_and_prune() {
    let Some(image) = Image::get() else { return };
    each_bucket("img-task", |bucket, _| {
        let store = bucket.name();
        let mut env = bucket.env();
        env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
        let t = Task::new(env, &[("src/handler.py", "def handler(): pass\n")]);
        let mounts = mounts(&t.root, bucket);
        let run = |argv: &[&str]| {
            let r = image.run(&mounts, &t.root, &t.env, argv, "");
            assert!(
                !r.stderr.contains("panicked"),
                "{store}: {argv:?}: {}",
                r.stderr
            );
            r
        };
        let c1 = t.repo.head();

        let r = run(&["check"]);
        r.ok();
        assert_eq!(
            t.marker(".commit-hash").as_deref(),
            Some(c1.as_str()),
            "{store}"
        );
        assert_eq!(t.marker(".code-hash").map(|h| h.len()), Some(64), "{store}");
        assert!(
            !t.found(),
            "{store}: a miss must not write .found: {}",
            r.stderr
        );

        t.build(&[("fn.zip", b"zip"), ("web/site.tgz", b"tgz")]);
        let r = run(&["upload"]);
        r.ok();
        assert!(
            bucket
                .keys()
                .contains(&format!("artifacts/{c1}/.manifest.json")),
            "{store}: {}",
            r.stderr
        );

        t.reset_packages();
        run(&["check"]).ok();
        assert!(t.found(), "{store}: the published set is found");

        // A new commit with the same src/: restored from the cache.
        t.repo.write("README.md", "docs\n");
        let c2 = t.repo.commit("docs");
        t.reset_packages();
        run(&["check"]).ok();
        assert!(t.found(), "{store}: restored from the cache");
        assert_eq!(
            t.marker(".commit-hash").as_deref(),
            Some(c2.as_str()),
            "{store}"
        );

        let before = bucket.keys();
        let r = run(&["prune", "--dry-run"]);
        r.ok();
        for c in [&c1, &c2] {
            assert!(
                r.stdout
                    .contains(&format!("keep artifacts {c} (2 files, 6 B)")),
                "{store}: {}",
                r.stdout
            );
        }
        assert!(
            r.stderr.contains("nothing was deleted"),
            "{store}: {}",
            r.stderr
        );
        assert_eq!(bucket.keys(), before, "{store}: a dry run deleted");
    });
}
