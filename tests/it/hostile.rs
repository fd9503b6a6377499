//! Hostile bucket contents: objects and manifests placed directly in the bucket (with the SDK,
//! bypassing the tool) under keys that try to escape the destination. Resource `in` and CLI
//! `fetch` must refuse them and write nothing outside the destination.

use crate::common;

use std::path::{Path, PathBuf};

use common::{cli, resource, S3Server};
use serde_json::json;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        // The destination sits two levels down, so an escape has somewhere to land.
        std::fs::create_dir_all(root.join("outer/inner")).unwrap();
        Sandbox { _tmp: tmp, root }
    }

    fn dest(&self) -> PathBuf {
        self.root.join("outer/inner/dest")
    }

    /// Every file under the sandbox that is not inside the destination.
    fn outside_files(&self) -> Vec<PathBuf> {
        let dest = self.dest();
        walkdir::WalkDir::new(&self.root)
            .follow_links(false)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| !e.file_type().is_dir())
            .map(|e| e.path().to_path_buf())
            .filter(|p| !p.starts_with(&dest))
            .collect()
    }
}

fn manifest(paths: &[&str]) -> Vec<u8> {
    let files: Vec<_> = paths
        .iter()
        .map(|p| json!({"path": p, "size": 4, "sha256": "b5c1fb2efc6d6b4674c2fdcc48ce01b43a3b7c03763c0c3355de0099ee0f8c73"}))
        .collect();
    serde_json::to_vec(&json!({
        "format": 1,
        "commit": COMMIT,
        "tool_version": "0.0.0",
        "created": "2026-01-01T00:00:00Z",
        "files": files,
    }))
    .unwrap()
}

fn source(g: &S3Server, bucket: &str, legacy: bool) -> serde_json::Value {
    g.source(bucket, json!({"accept_legacy": legacy}))
}

fn fetch_cli(g: &S3Server, bucket: &str, dest: &Path, cwd: &Path) -> common::Run {
    cli(
        &[
            "fetch",
            "--commit",
            COMMIT,
            "--dest",
            dest.to_str().unwrap(),
        ],
        cwd,
        &g.env(bucket),
    )
}

fn assert_refused(r: &common::Run, sandbox: &Sandbox, what: &str) {
    assert_ne!(r.code, 0, "{what}: must fail; stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "{what}: stdout must stay empty");
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
    let outside = sandbox.outside_files();
    assert!(
        outside.is_empty(),
        "{what}: wrote outside the destination: {outside:?}"
    );
}

#[test]
fn manifests_naming_unsafe_paths_are_refused() {
    let g = S3Server::get();
    let unsafe_paths = [
        "../escape.txt",
        "../../escape.txt",
        "/tmp/s3am-absolute-escape.txt",
        "a/../../escape.txt",
        "./a.txt",
        "a/./b.txt",
        "a//b.txt",
        "ctl\u{1}char.txt",
        "nul\u{0}byte.txt",
        "new\nline.txt",
        "back\\..\\slash.txt",
        ".hidden",
        "..",
        ".",
        "",
    ];
    for path in unsafe_paths {
        let bucket = g.new_bucket("hostile");
        g.put(
            &bucket,
            &format!("artifacts/{COMMIT}/.manifest.json"),
            &manifest(&[path]),
        );
        // The object too, where the store takes such a key: Garage takes every one of them,
        // so there the refusal is shown with the object in place (a failed plant fails the
        // test); SeaweedFS refuses keys with `.` or `..` segments, a NUL or a backslash.
        let planted = std::panic::catch_unwind(|| {
            g.put(&bucket, &format!("artifacts/{COMMIT}/{path}"), b"evil")
        });
        assert!(
            planted.is_ok() || g.store != common::Store::Garage,
            "Garage refused the key of {path:?}"
        );
        // Such a set is not complete: `in` writes .commit-hash only (the build runs), and
        // fails with `require`.
        let sandbox = Sandbox::new();
        let r = resource(
            "in",
            &sandbox.dest(),
            &json!({"source": source(&g, &bucket, false), "version": {"commit": COMMIT}}),
        );
        assert_eq!(r.code, 0, "in {path:?}: {}", r.stderr);
        assert!(r.stderr.contains("is unsafe"), "{path:?}: {}", r.stderr);
        assert!(!sandbox.dest().join(".found").exists());
        assert!(sandbox.outside_files().is_empty());
        let sandbox = Sandbox::new();
        let r = resource(
            "in",
            &sandbox.dest(),
            &json!({"source": source(&g, &bucket, false), "version": {"commit": COMMIT},
                    "params": {"require": true}}),
        );
        assert_refused(&r, &sandbox, &format!("in {path:?}"));
        assert!(r.stderr.contains("is unsafe"), "{path:?}: {}", r.stderr);
        assert!(!sandbox.dest().join(".found").exists());

        let sandbox = Sandbox::new();
        let r = fetch_cli(&g, &bucket, &sandbox.dest(), &sandbox.root);
        assert_refused(&r, &sandbox, &format!("fetch {path:?}"));
    }
    assert!(!Path::new("/tmp/s3am-absolute-escape.txt").exists());
}

#[test]
fn legacy_sets_with_hostile_keys_are_refused() {
    let g = S3Server::get();
    for key in [
        "../escape.txt",
        "../../../escape.txt",
        "a/../../escape.txt",
        "/abs.txt",
        "./x.txt",
        "ctl\u{1}.txt",
        ".hidden",
    ] {
        let bucket = g.new_bucket("legacyh");
        g.put(&bucket, &format!("artifacts/{COMMIT}/{key}"), b"evil");
        let sandbox = Sandbox::new();
        let r = resource(
            "in",
            &sandbox.dest(),
            &json!({"source": source(&g, &bucket, true), "version": {"commit": COMMIT}}),
        );
        assert_refused(&r, &sandbox, &format!("legacy in {key:?}"));
        // A control character cannot even travel in the listing's XML: that fails earlier.
        let why = if key.contains('\u{1}') {
            "listing"
        } else {
            "unsafe path"
        };
        assert!(r.stderr.contains(why), "{key:?}: {}", r.stderr);
    }
}

#[test]
fn keys_clashing_with_a_directory_fail_cleanly() {
    let g = S3Server::get();
    for order in [["a", "a/b.txt"], ["a/b.txt", "a"]] {
        let bucket = g.new_bucket("clash");
        g.put(
            &bucket,
            &format!("artifacts/{COMMIT}/.manifest.json"),
            &manifest(&order),
        );
        for p in order {
            g.put(&bucket, &format!("artifacts/{COMMIT}/{p}"), b"evil");
        }
        let sandbox = Sandbox::new();
        let r = fetch_cli(&g, &bucket, &sandbox.dest(), &sandbox.root);
        assert_refused(&r, &sandbox, &format!("clash {order:?}"));
    }
}

#[test]
fn a_symlink_in_the_destination_is_never_followed() {
    let g = S3Server::get();
    let bucket = g.new_bucket("symlink");
    let evil_sha = "b5c1fb2efc6d6b4674c2fdcc48ce01b43a3b7c03763c0c3355de0099ee0f8c73";
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"evil")),
        evil_sha
    );
    g.put(
        &bucket,
        &format!("artifacts/{COMMIT}/.manifest.json"),
        &manifest(&["sub/x.txt", "top.txt"]),
    );
    g.put(&bucket, &format!("artifacts/{COMMIT}/sub/x.txt"), b"evil");
    g.put(&bucket, &format!("artifacts/{COMMIT}/top.txt"), b"evil");
    let sandbox = Sandbox::new();
    let outside = sandbox.root.join("outer/target");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(sandbox.dest()).unwrap();
    std::os::unix::fs::symlink(&outside, sandbox.dest().join("sub")).unwrap();
    // A planted temporary name is replaced, not followed.
    std::os::unix::fs::symlink(
        sandbox.root.join("outer/planted"),
        sandbox.dest().join(".top.txt.s3am-partial"),
    )
    .unwrap();
    let r = fetch_cli(&g, &bucket, &sandbox.dest(), &sandbox.root);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("sub is a symbolic link inside the download destination"),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote through the symlink"
    );
    assert!(
        !sandbox.root.join("outer/planted").exists(),
        "followed the planted temporary"
    );
}
