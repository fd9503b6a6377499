//! Sets written by the original Python tool: plain PUTs carrying its metadata (`commit-hash`,
//! `package-hash`, `code-hash`) and no manifest. `fetch` and the resource's `in` download them
//! only with `accept_legacy`, verified against each object's `package-hash`.

use crate::common;

use base64::Engine as _;
use common::{cli, resource, Repo, S3Server};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The files of a legacy set, by path under `artifacts/<commit>/`.
const FILES: [(&str, &[u8]); 2] = [
    ("fn.zip", b"zip bytes of the handler"),
    ("layers/deps.zip", b"the dependency layer"),
];

/// Writes `files` under `artifacts/<commit>/` the way the original tool did. `tamper` names a
/// file whose bytes are replaced after its `package-hash` was computed.
fn legacy_set(
    g: &S3Server,
    bucket: &str,
    commit: &str,
    files: &[(&str, &[u8])],
    tamper: Option<&str>,
) {
    for (rel, body) in files {
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        let sent: Vec<u8> = match tamper {
            Some(t) if t == *rel => body.iter().map(|b| b ^ 1).collect(),
            _ => body.to_vec(),
        };
        g.put_with_metadata(
            bucket,
            &format!("artifacts/{commit}/{rel}"),
            &sent,
            &[
                ("commit-hash", commit),
                ("package-hash", &sha),
                ("code-hash", "d41d8cd98f00b204e9800998ecf8427e"),
            ],
        );
    }
}

fn setup(tag: &str) -> Option<(S3Server, String, tempfile::TempDir, String)> {
    let g = S3Server::get();
    let bucket = g.new_bucket(tag);
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("repo"));
    repo.write("src/handler.py", "def handler(): pass\n");
    let commit = repo.commit("first");
    Some((g, bucket, tmp, commit))
}

#[test]
fn fetch_refuses_a_legacy_set_without_accept_legacy() {
    let Some((g, bucket, tmp, commit)) = setup("legacy-off") else {
        return;
    };
    legacy_set(&g, &bucket, &commit, &FILES, None);
    let dest = tmp.path().join("out");
    let r = cli(
        &["fetch", "--dest", dest.to_str().unwrap()],
        tmp.path(),
        &g.env(&bucket),
    );
    r.fails(3, &format!("no complete asset set for commit {commit}"));
    assert!(r.stderr.contains("no manifest"), "{}", r.stderr);
    assert!(
        r.stderr.contains("S3AM_ACCEPT_LEGACY=true"),
        "says how to accept it: {}",
        r.stderr
    );
    assert!(!dest.join("fn.zip").exists(), "nothing downloaded");
}

#[test]
fn fetch_downloads_a_legacy_set_with_accept_legacy_verified_by_package_hash() {
    let Some((g, bucket, tmp, commit)) = setup("legacy-on") else {
        return;
    };
    legacy_set(&g, &bucket, &commit, &FILES, None);
    let mut env = g.env(&bucket);
    env.insert("S3AM_ACCEPT_LEGACY".into(), "true".into());
    for (how, args, env) in [
        ("variable", vec!["fetch"], env.clone()),
        ("flag", vec!["fetch", "--accept-legacy"], g.env(&bucket)),
    ] {
        let dest = tmp.path().join(format!("out-{how}"));
        let mut args = args.clone();
        args.extend(["--dest", dest.to_str().unwrap()]);
        let r = cli(&args, tmp.path(), &env);
        r.ok();
        for (rel, body) in FILES {
            assert_eq!(std::fs::read(dest.join(rel)).unwrap(), body, "{how}: {rel}");
        }
        assert!(
            r.stderr.contains(
                "verified 2 files against their package-hash metadata (size and SHA-256)"
            ),
            "{how}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("turn on accept_legacy"),
            "{how}: no advice to turn on what is on: {}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains(&format!("summary: found for commit {commit}: 2 files")),
            "{how}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("downloaded and verified"), "{}", r.stderr);
    }
}

#[test]
fn fetch_refuses_a_legacy_object_that_does_not_match_its_package_hash() {
    let Some((g, bucket, tmp, commit)) = setup("legacy-bad") else {
        return;
    };
    legacy_set(&g, &bucket, &commit, &FILES, Some("layers/deps.zip"));
    let dest = tmp.path().join("out");
    let r = cli(
        &["fetch", "--accept-legacy", "--dest", dest.to_str().unwrap()],
        tmp.path(),
        &g.env(&bucket),
    );
    r.fails(1, "does not match");
    assert!(
        !dest.join("layers/deps.zip").exists(),
        "never renamed into place"
    );
    let leftovers: Vec<_> = walkdir::WalkDir::new(&dest)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".s3am-partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial file left: {leftovers:?}");
}

#[test]
fn fetch_checks_a_legacy_object_without_package_hash_by_size_and_says_so() {
    let Some((g, bucket, tmp, commit)) = setup("legacy-nohash") else {
        return;
    };
    legacy_set(&g, &bucket, &commit, &FILES[..1], None);
    g.put(
        &bucket,
        &format!("artifacts/{commit}/extra.txt"),
        b"no metadata",
    );
    let dest = tmp.path().join("out");
    let r = cli(
        &["fetch", "--accept-legacy", "--dest", dest.to_str().unwrap()],
        tmp.path(),
        &g.env(&bucket),
    );
    r.ok();
    assert_eq!(
        std::fs::read(dest.join("extra.txt")).unwrap(),
        b"no metadata"
    );
    assert!(
        r.stderr.contains("1 of 2 objects of artifacts/"),
        "warns about the unverifiable object: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("SHA-256 for the 1 with package-hash metadata"),
        "{}",
        r.stderr
    );
}

#[test]
fn resource_in_downloads_a_legacy_set_only_with_accept_legacy() {
    let Some((g, bucket, tmp, commit)) = setup("legacy-in") else {
        return;
    };
    legacy_set(&g, &bucket, &commit, &FILES, None);
    let source = |legacy: bool| g.source(&bucket, json!({"accept_legacy": legacy}));
    let off = tmp.path().join("in-off");
    let r = resource(
        "in",
        &off,
        &json!({"source": source(false), "version": {"commit": commit}}),
    );
    r.ok();
    assert!(!off.join(".found").exists(), "{}", r.stderr);
    assert!(!off.join("fn.zip").exists());

    let on = tmp.path().join("in-on");
    let r = resource(
        "in",
        &on,
        &json!({"source": source(true), "version": {"commit": commit}}),
    );
    r.ok();
    assert!(on.join(".found").exists(), "{}", r.stderr);
    for (rel, body) in FILES {
        assert_eq!(std::fs::read(on.join(rel)).unwrap(), body, "{rel}");
    }
}
