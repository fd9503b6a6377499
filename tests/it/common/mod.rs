//! Test support: real git repositories, the built binary, and the S3 server (Garage or
//! SeaweedFS) that `scripts/test` starts (its address and key arrive in `S3AM_TEST_*`
//! variables, its name in `S3AM_TEST_STORE`).

pub mod bucket;
pub mod proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A child process's environment variables, by name.
pub type Env = BTreeMap<String, String>;

/// The S3 store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Garage: ignores conditional writes (`If-None-Match`, `If-Match` on PUT).
    Garage,
    /// SeaweedFS: enforces conditional writes.
    SeaweedFs,
    /// moto's server (tests/it/aws.rs only): AWS's STS and encryption headers, no data integrity.
    Moto,
}

/// The S3 server the test script started.
#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Which server it is (`S3AM_TEST_STORE`; Garage when unset).
    pub store: Store,
}

impl S3Server {
    /// The running server. Fails the test with a clear message when the tests were not
    /// started by `scripts/test`: no test passes without the server it is there to test.
    pub fn get() -> S3Server {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var("S3AM_TEST_ENDPOINT") else {
            panic!(
                "S3AM_TEST_ENDPOINT is not set: run the tests with ./scripts/test, which starts Garage and SeaweedFS (the suites that need no server, such as codehash and pipelines, run alone with cargo test --test it -- codehash:: pipelines::)"
            )
        };
        S3Server {
            endpoint,
            store: match var("S3AM_TEST_STORE").as_deref() {
                None | Some("garage") => Store::Garage,
                Some("seaweedfs") => Store::SeaweedFs,
                Some(other) => panic!("S3AM_TEST_STORE={other}: want garage or seaweedfs"),
            },
            region: var("S3AM_TEST_REGION").unwrap_or_else(|| "garage".into()),
            access_key: var("S3AM_TEST_ACCESS_KEY").expect("S3AM_TEST_ACCESS_KEY"),
            secret_key: var("S3AM_TEST_SECRET_KEY").expect("S3AM_TEST_SECRET_KEY"),
        }
    }

    /// The server's address, for a proxy to stand in front of it.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("the test server listens on an IP:port")
    }

    /// An SDK client for arranging and inspecting buckets directly.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "test",
        );
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates a fresh bucket with a unique name and returns the name.
    pub fn new_bucket(&self, tag: &str) -> String {
        let name = unique_name(tag);
        // S3AM_TEST_TOUCH_LOG=FILE: a line per bucket made, naming the store and the test,
        // for counting which tests each store's run really exercises (CONTRIBUTING, Stores).
        if let Some(log) = std::env::var_os("S3AM_TEST_TOUCH_LOG") {
            use std::io::Write;
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let line = format!("{:?}\t{test}\n", self.store);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap();
            f.write_all(line.as_bytes()).unwrap();
        }
        rt().block_on(async {
            self.client()
                .create_bucket()
                .bucket(&name)
                .send()
                .await
                .expect("create bucket");
        });
        name
    }

    /// The resource's `source` for `bucket` on this server, with `extra` fields on top.
    pub fn source(&self, bucket: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut s = serde_json::json!({
            "bucket": bucket,
            "endpoint": self.endpoint,
            "region_name": self.region,
            "use_path_style": true,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            s[k] = v.clone();
        }
        s
    }

    /// The environment a task process needs to reach this server.
    pub fn env(&self, bucket: &str) -> Env {
        let mut e = Env::new();
        e.insert("PACKAGE_ASSETS_BUCKET".into(), bucket.into());
        e.insert("AWS_ENDPOINT_URL".into(), self.endpoint.clone());
        e.insert("AWS_REGION".into(), self.region.clone());
        e.insert("AWS_ACCESS_KEY_ID".into(), self.access_key.clone());
        e.insert("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone());
        e.insert("S3AM_PATH_STYLE".into(), "true".into());
        e
    }

    /// Every key in a bucket.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        rt().block_on(async {
            let c = self.client();
            let mut out = Vec::new();
            let mut pages = c.list_objects_v2().bucket(bucket).into_paginator().send();
            while let Some(p) = pages.next().await {
                for o in p.expect("list").contents() {
                    out.push(o.key().unwrap().to_string());
                }
            }
            out
        })
    }

    /// Puts an object directly, bypassing the tool.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.put_with_metadata(bucket, key, body, &[]);
    }

    /// Puts an object with user metadata in one plain PUT, as the original tool did.
    pub fn put_with_metadata(&self, bucket: &str, key: &str, body: &[u8], meta: &[(&str, &str)]) {
        let body = body.to_vec();
        rt().block_on(async {
            let mut put = self.client().put_object().bucket(bucket).key(key);
            for (k, v) in meta {
                put = put.metadata(*k, *v);
            }
            put.body(body.into()).send().await.expect("put object");
        });
    }

    /// Reads an object as text.
    pub fn get_string(&self, bucket: &str, key: &str) -> String {
        String::from_utf8(self.get_bytes(bucket, key)).unwrap()
    }

    /// Reads an object's bytes.
    pub fn get_bytes(&self, bucket: &str, key: &str) -> Vec<u8> {
        rt().block_on(async {
            let o = self
                .client()
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("get object");
            o.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    /// Reads an object's user metadata.
    pub fn metadata(&self, bucket: &str, key: &str) -> BTreeMap<String, String> {
        rt().block_on(async {
            let o = self
                .client()
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("head object");
            o.metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        })
    }
}

/// A current-thread runtime for the SDK calls the tests make themselves.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The names in `dir` (not recursive), sorted; none when `dir` does not exist.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A name unique to this process and call, usable as a bucket name.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t-{tag}-{}-{n}-{nanos:x}", std::process::id())
}

/// A real git repository in a temporary directory.
pub struct Repo {
    pub dir: PathBuf,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Where the resource and signing suites start: a bucket of their own on the test server, a
/// scratch directory, and in it (at `repo_at`) a repository with one commit of a handler and
/// a README. `None` without a server.
pub struct Start {
    pub g: S3Server,
    pub bucket: String,
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub repo: Repo,
    pub commit: String,
}

impl Start {
    pub fn new(tag: &str, repo_at: &str) -> Option<Start> {
        let g = S3Server::get();
        let bucket = g.new_bucket(tag);
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = Repo::init(&root.join(repo_at));
        repo.write("src/handler.py", "def handler(): pass\n")
            .write("README.md", "r\n");
        let commit = repo.commit("first");
        Some(Start {
            g,
            bucket,
            tmp,
            root,
            repo,
            commit,
        })
    }
}

impl Repo {
    /// `git init` in `dir`.
    pub fn init(dir: &Path) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        Repo {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a file (creating parents).
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// Commits everything and returns the new HEAD.
    pub fn commit(&self, msg: &str) -> String {
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.dir, &["rev-parse", "HEAD"])
    }
}

/// Multipart settings small enough that assets of a few MiB take the multipart upload, ranged
/// download and multipart copy paths.
pub const SMALL_PARTS: [(&str, &str); 4] = [
    ("S3AM_MULTIPART_THRESHOLD", "6M"),
    ("S3AM_PART_SIZE", "5M"),
    ("S3AM_COPY_MULTIPART_THRESHOLD", "6M"),
    ("S3AM_COPY_PART_SIZE", "5M"),
];

/// A work directory laid out like a Concourse task: ./repo, one commit of `files`, and
/// ./packages, with the environment the task runs in.
pub struct Task {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub repo: Repo,
    pub env: Env,
}

impl Task {
    pub fn new(env: Env, files: &[(&str, &str)]) -> Task {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = Repo::init(&root.join("repo"));
        for (rel, content) in files {
            repo.write(rel, content);
        }
        repo.commit("first");
        Task {
            _tmp: tmp,
            root,
            repo,
            env,
        }
    }

    /// Runs the binary in the task directory.
    pub fn run(&self, args: &[&str]) -> Run {
        cli(args, &self.root, &self.env)
    }

    pub fn packages(&self) -> PathBuf {
        self.root.join("packages")
    }

    /// The content of a marker file in ./packages, if it is there.
    pub fn marker(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.packages().join(name)).ok()
    }

    pub fn found(&self) -> bool {
        self.packages().join(".found").exists()
    }

    /// A fresh package directory, as a new build would have.
    pub fn reset_packages(&self) {
        let _ = std::fs::remove_dir_all(self.packages());
    }

    /// "Builds" the assets into ./packages.
    pub fn build(&self, files: &[(&str, &[u8])]) {
        for (rel, content) in files {
            let p = self.packages().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
    }
}

/// What a process printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success; stderr:\n{}", self.stderr);
        self
    }

    /// Asserts a failure with `code`, one error line naming `needle`, no panic or backtrace.
    pub fn fails(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}; stderr:\n{}",
            self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "want one error line; stderr:\n{}",
            self.stderr
        );
        assert!(
            errors[0].contains(needle),
            "error line lacks {needle:?}: {}",
            errors[0]
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "{}", self.stderr);
        self
    }
}

/// Runs a built binary with a clean environment plus `env`, in `cwd`.
pub fn run_bin(bin: &str, args: &[&str], cwd: &Path, env: &Env) -> Run {
    run_bin_stdin(bin, args, cwd, env, "")
}

/// Like [`run_bin`], feeding `stdin`.
pub fn run_bin_stdin(bin: &str, args: &[&str], cwd: &Path, env: &Env, stdin: &str) -> Run {
    use std::io::Write;
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).env_clear();
    for k in ["PATH", "TMPDIR"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("HOME", cwd)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    cmd.envs(env);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run binary");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out: Output = child.wait_with_output().expect("wait for binary");
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The CLI binary.
pub const CLI: &str = env!("CARGO_BIN_EXE_s3-asset-manager");

/// Runs the CLI.
pub fn cli(args: &[&str], cwd: &Path, env: &Env) -> Run {
    run_bin(CLI, args, cwd, env)
}

/// The image's filesystem layout (scripts/image-layout), staged once per test process under
/// cargo's per-target scratch directory as `image-<pid>`. A test process cannot clean up after
/// itself at exit, so each one removes the layouts of processes that are gone: each holds the
/// debug binary, 250 MB where it cannot be a hard link (left in /tmp, they once filled the disk).
pub fn image_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(scratch).unwrap();
        for entry in std::fs::read_dir(scratch).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("image-") else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let root = scratch.join(format!("image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let bin_dir = Path::new(CLI).parent().unwrap();
        let out = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/image-layout"))
            .arg(&root)
            .arg(bin_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run scripts/image-layout");
        assert!(
            out.status.success(),
            "scripts/image-layout failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        root
    })
}

/// A resource binary at its path in the staged image: `check`, `in` or `out`.
pub fn resource_bin(name: &str) -> String {
    image_root()
        .join("opt/resource")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs a resource binary as Concourse does: request on stdin, `dir` as argv[1] and cwd
/// (`check` takes no argument), and the build's `BUILD_*` variables set.
pub fn resource(name: &str, dir: &Path, request: &serde_json::Value) -> Run {
    resource_with_env(name, dir, request, &Env::new())
}

/// The variables Concourse sets for a resource's process: the build's metadata.
pub fn build_env() -> Env {
    [
        ("BUILD_TEAM_NAME", "main"),
        ("BUILD_PIPELINE_NAME", "app"),
        ("BUILD_JOB_NAME", "build"),
        ("BUILD_NAME", "42"),
        ("BUILD_ID", "4242"),
        ("ATC_EXTERNAL_URL", "https://ci.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Like [`resource`], with `extra` variables on top of the build's (e.g. `S3AM_TRACE`).
pub fn resource_with_env(name: &str, dir: &Path, request: &serde_json::Value, extra: &Env) -> Run {
    let mut env = extra.clone();
    env.extend(build_env());
    std::fs::create_dir_all(dir).unwrap();
    let args: Vec<&str> = if name == "check" {
        vec![]
    } else {
        vec![dir.to_str().unwrap()]
    };
    run_bin_stdin(&resource_bin(name), &args, dir, &env, &request.to_string())
}

/// An Ed25519 key pair made by `ssh-keygen`, as a user makes one.
pub struct Key {
    pub private: PathBuf,
    pub public_line: String,
}

impl Key {
    pub fn new(dir: &Path, name: &str) -> Key {
        let private = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .output()
            .expect("ssh-keygen (openssh-client; scripts/test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_line = std::fs::read_to_string(private.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        Key {
            private,
            public_line,
        }
    }

    /// The fingerprint `ssh-keygen -l` prints, e.g. `SHA256:...`.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&self.private)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    pub fn private_text(&self) -> String {
        std::fs::read_to_string(&self.private).unwrap()
    }

    /// An SSHSIG of `data` by this key, made by `ssh-keygen -Y sign` in the tool's namespace,
    /// as a publisher holding the key could make one by hand.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signed");
        std::fs::write(&file, data).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "s3-asset-manager", "-f"])
            .arg(&self.private)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(file.with_extension("sig")).unwrap()
    }
}

/// The JSON a resource printed on success.
pub fn response(r: &Run) -> serde_json::Value {
    r.ok();
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", r.stdout))
}

/// One metadata value of a resource's response; the test fails when it is absent (an empty
/// default would let an assertion on it pass with the field gone).
pub fn meta(resp: &serde_json::Value, name: &str) -> String {
    meta_opt(resp, name)
        .unwrap_or_else(|| panic!("the response has no metadata field {name:?}: {resp}"))
}

/// One metadata value of a resource's response, if it has that field.
pub fn meta_opt(resp: &serde_json::Value, name: &str) -> Option<String> {
    resp["metadata"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_str())
        .map(str::to_string)
}
