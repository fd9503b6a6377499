//! The Concourse resource, run as Concourse runs it: the binaries at their paths in the staged
//! image layout, JSON on stdin, the directory as argv[1] and cwd, `BUILD_*` set; against Garage.

use crate::common;

use std::path::{Path, PathBuf};

use common::proxy::{Faults, Proxy};
use common::{meta, resource, response, Repo, Run, S3Server};
use serde_json::{json, Value};

struct Fixture {
    g: S3Server,
    bucket: String,
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: Repo,
}

impl Fixture {
    fn new(tag: &str) -> Option<Fixture> {
        let s = common::Start::new(tag, "put/repo")?;
        Some(Fixture {
            g: s.g,
            bucket: s.bucket,
            _tmp: s.tmp,
            root: s.root,
            repo: s.repo,
        })
    }

    fn source(&self) -> Value {
        self.g
            .source(&self.bucket, json!({"code_hash_filter": ["src"]}))
    }

    fn source_with(&self, extra: Value) -> Value {
        let mut s = self.source();
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    fn put_dir(&self) -> PathBuf {
        self.root.join("put")
    }

    fn build(&self, files: &[(&str, &str)]) {
        let pkg = self.put_dir().join("packages");
        let _ = std::fs::remove_dir_all(&pkg);
        for (rel, content) in files {
            let p = pkg.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
    }

    fn publish(&self, source: &Value) -> Run {
        resource(
            "out",
            &self.put_dir(),
            &json!({"source": source, "params": {"repo": "repo", "path": "packages"}}),
        )
    }

    fn lookup(&self, source: &Value) -> Run {
        resource(
            "out",
            &self.put_dir(),
            &json!({"source": source, "params": {"repo": "repo"}}),
        )
    }

    fn check(&self, version: Option<&str>) -> Vec<String> {
        let mut req = json!({"source": self.source()});
        if let Some(v) = version {
            req["version"] = json!({"commit": v});
        }
        let r = resource("check", &self.root.join("check"), &req);
        r.ok();
        let versions: Vec<Value> = serde_json::from_str(&r.stdout).expect("check prints JSON");
        versions
            .iter()
            .map(|v| v["commit"].as_str().unwrap().to_string())
            .collect()
    }

    fn get(&self, dir: &str, commit: &str, params: Value) -> Run {
        resource(
            "in",
            &self.root.join(dir),
            &json!({"source": self.source(), "version": {"commit": commit}, "params": params}),
        )
    }

    /// Publishes a new commit whose code differs, returning the commit.
    fn publish_new(&self, n: usize) -> String {
        self.repo.write("src/handler.py", &format!("v{n}\n"));
        let c = self.repo.commit(&format!("v{n}"));
        self.build(&[("fn.zip", &format!("zip {n}"))]);
        self.publish(&self.source()).ok();
        c
    }
}

#[test]
fn check_discovers_complete_sets_in_order() {
    let Some(f) = Fixture::new("chk") else { return };
    assert!(f.check(None).is_empty(), "an empty bucket gives []");
    let c1 = f.publish_new(1);
    assert_eq!(f.check(None), std::slice::from_ref(&c1));
    let c2 = f.publish_new(2);
    let c3 = f.publish_new(3);
    assert_eq!(
        f.check(None),
        std::slice::from_ref(&c3),
        "the first run returns the latest only"
    );
    assert_eq!(f.check(Some(&c1)), [c1.clone(), c2.clone(), c3.clone()]);
    assert_eq!(f.check(Some(&c2)), [c2.clone(), c3.clone()]);
    assert_eq!(f.check(Some(&c3)), std::slice::from_ref(&c3));
    // A lookup that restores from the cache completes a set too.
    f.repo.write("README.md", "docs\n");
    let c4 = f.repo.commit("docs");
    let r = response(&f.lookup(&f.source()));
    assert_eq!(meta(&r, "outcome"), "restored");
    assert_eq!(f.check(Some(&c3)), [c3.clone(), c4.clone()]);
    // A deleted version: the latest is reported.
    let c = f.g.client();
    common::rt().block_on(async {
        c.delete_object()
            .bucket(&f.bucket)
            .key(format!("artifacts/{c4}/.manifest.json"))
            .send()
            .await
            .unwrap();
    });
    assert_eq!(f.check(Some(&c4)), std::slice::from_ref(&c3));
    assert_eq!(f.check(None), [c3]);
}

/// What `check` reports after a lookup `put` of a commit that has no set. Concourse saves
/// the put's version, so the next `check` is given a version that names no set: it reports
/// the latest set, and only that, so sets completed in between are no versions of their own.
/// A job that must see every built set takes them with `passed: [build]` (the build job's
/// publishing put emits each), as the examples' deploy jobs do (`tests/it/pipelines.rs` holds a
/// triggering get to that).
#[test]
fn check_after_a_lookup_of_an_unbuilt_commit_reports_the_latest_set() {
    let Some(f) = Fixture::new("chk-lookup") else {
        return;
    };
    let c1 = f.publish_new(1);
    f.repo.write("src/handler.py", "not built yet\n");
    let unbuilt = f.repo.commit("unbuilt");
    let r = response(&f.lookup(&f.source()));
    assert_eq!(meta(&r, "outcome"), "missing");
    assert_eq!(r["version"]["commit"], unbuilt.as_str());
    assert_eq!(f.check(Some(&unbuilt)), std::slice::from_ref(&c1));
    f.publish_new(2);
    let c3 = f.publish_new(3);
    assert_eq!(
        f.check(Some(&unbuilt)),
        std::slice::from_ref(&c3),
        "the latest only: the set completed in between is not reported"
    );
}

#[test]
fn check_cost_does_not_grow_with_history() {
    let Some(f) = Fixture::new("many") else {
        return;
    };
    let old = f.publish_new(1);
    // 10,000 older sets in the index (their entries are what check would have to wade through).
    let client = f.g.client();
    common::rt().block_on(async {
        use futures::StreamExt;
        futures::stream::iter(0..10_000u64)
            .for_each_concurrent(64, |i| {
                let client = client.clone();
                let bucket = f.bucket.clone();
                async move {
                    let key = format!("index/{:013}-{:040x}", 9_000_000_000_000u64 + i, i);
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(Vec::new().into())
                        .send()
                        .await
                        .unwrap();
                }
            })
            .await;
    });
    let latest = f.publish_new(2);
    for (version, want) in [
        (Some(latest.as_str()), vec![latest.clone()]),
        (None, vec![latest.clone()]),
    ] {
        // Counted where the requests pass, not by the tool: a proxy in front of the store.
        let p = Proxy::start(f.g.addr(), Faults::default());
        let mut req = json!({"source": f.source()});
        req["source"]["endpoint"] = json!(p.url());
        if let Some(v) = version {
            req["version"] = json!({"commit": v});
        }
        let started = std::time::Instant::now();
        let r = resource("check", &f.root.join("check"), &req);
        r.ok();
        let got: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(got.len(), want.len());
        assert_eq!(got[0]["commit"], want[0].as_str());
        let requests = p.stats.requests.load(std::sync::atomic::Ordering::SeqCst);
        eprintln!(
            "check {version:?}: {requests} S3 requests, {:?}",
            started.elapsed()
        );
        assert!(
            requests == 2,
            "{requests} requests with 10,000 sets (docs/bucket-layout.md: 2 when nothing is new): {}",
            r.stderr
        );
        // What the tool says of itself is what passed.
        assert!(
            r.stderr.contains(&format!("({requests} S3 requests")),
            "the tool's count is not the {requests} requests the proxy saw: {}",
            r.stderr
        );
    }
    assert_eq!(f.check(Some(&old)).last(), Some(&latest));
}

#[test]
fn get_downloads_verifies_and_writes_markers() {
    let Some(f) = Fixture::new("get") else { return };
    f.build(&[("fn.zip", "zip"), ("nested/dir/site.tgz", "tgz")]);
    let c = f.repo.head();
    let out = response(&f.publish(&f.source()));
    assert_eq!(meta(&out, "outcome"), "uploaded");
    assert_eq!(meta(&out, "files"), "2");
    assert_eq!(out["version"]["commit"], c.as_str());

    let r = response(&f.get("get1", &c, json!({})));
    assert_eq!(
        r["version"],
        json!({"commit": c}),
        "in answers the version it was given"
    );
    let dir = f.root.join("get1");
    assert_eq!(
        std::fs::read_to_string(dir.join("nested/dir/site.tgz")).unwrap(),
        "tgz"
    );
    assert!(dir.join(".found").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join(".commit-hash")).unwrap(),
        c
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".code-hash")).unwrap(),
        meta(&r, "code_hash")
    );
    assert_eq!(meta(&r, "files"), "2");
    assert_eq!(meta(&r, "bytes"), "6");
    // The metadata describes the set: where it is, when and by which build it was made.
    let url = format!("s3://{}/artifacts/{c}/", f.bucket);
    assert_eq!(meta(&r, "url"), url);
    assert_eq!(meta(&out, "url"), url);
    assert!(meta(&r, "created").ends_with('Z'), "{r}");
    assert_eq!(
        meta(&r, "build"),
        "https://ci.example.com/teams/main/pipelines/app/jobs/build/builds/42"
    );

    // skip_download: markers only.
    response(&f.get("get2", &c, json!({"skip_download": true})));
    let dir = f.root.join("get2");
    assert!(dir.join(".found").exists() && !dir.join("fn.zip").exists());

    // The manifest records the build.
    let m =
        f.g.get_string(&f.bucket, &format!("artifacts/{c}/.manifest.json"));
    let m: Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["build"]["pipeline"], "app");
    assert_eq!(m["build"]["job"], "build");
    assert_eq!(m["build"]["name"], "42");
    assert_eq!(m["build"]["url"], "https://ci.example.com");

    // A missing set: .commit-hash only, or an error with require.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let r = response(&f.get("get3", missing, json!({})));
    assert_eq!(meta(&r, "outcome"), "missing");
    let dir = f.root.join("get3");
    assert!(dir.join(".commit-hash").exists() && !dir.join(".found").exists());
    let r = f.get("get4", missing, json!({"require": true}));
    r.fails(1, "no complete asset set");
    assert!(r.stdout.is_empty());

    // A tampered object of the same size is found by the listing too (its entity tag is not
    // the manifest's): the set is damaged, so the get writes .commit-hash only, as for a set
    // never published, and the build runs. (One whose bytes change on the way fails on its
    // SHA-256: faults::a_download_corrupted_in_flight_never_lands.)
    f.g.put(&f.bucket, &format!("artifacts/{c}/fn.zip"), b"zap");
    let r = f.get("get6", &c, json!({}));
    assert_eq!(meta(&response(&r), "outcome"), "missing");
    assert!(
        r.stderr.contains(
            "is damaged: 1 of 2 objects rewritten after the manifest was written: fn.zip"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        common::entries(&f.root.join("get6")),
        [".commit-hash"],
        "nothing but the commit"
    );

    // One of another size, with the set required: the get fails, and leaves no file.
    f.g.put(&f.bucket, &format!("artifacts/{c}/fn.zip"), b"evil");
    let r = f.get("get5", &c, json!({"require": true}));
    r.fails(
        1,
        "is damaged: 1 of 2 objects of another size than the manifest says: fn.zip",
    );
    assert!(r.stdout.is_empty());
    assert!(!f.root.join("get5/fn.zip").exists());
    assert!(!f.root.join("get5/.fn.zip.s3am-partial").exists());
    assert!(!f.root.join("get5/.found").exists());
}

#[test]
fn put_lookup_and_publish() {
    let Some(f) = Fixture::new("put") else { return };
    let c1 = f.repo.head();
    let r = response(&f.lookup(&f.source()));
    assert_eq!(meta(&r, "outcome"), "missing");
    assert_eq!(r["version"]["commit"], c1.as_str());

    f.build(&[("a/b/c.zip", "deep"), ("top.zip", "top"), (".hidden", "no")]);
    let r = response(&f.publish(&f.source()));
    assert_eq!(meta(&r, "outcome"), "uploaded");
    let keys = f.g.keys(&f.bucket);
    assert!(
        keys.contains(&format!("artifacts/{c1}/a/b/c.zip")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.ends_with(".hidden")));

    let r = response(&f.lookup(&f.source()));
    assert_eq!(meta(&r, "outcome"), "found");
    // Publishing a complete set again uploads nothing.
    let r = response(&f.publish(&f.source()));
    assert_eq!(meta(&r, "outcome"), "skipped");
    // A .found in the path skips too.
    f.repo.write("src/handler.py", "v2\n");
    let c2 = f.repo.commit("v2");
    f.build(&[(".found", ""), ("x.zip", "x")]);
    let r = response(&f.publish(&f.source()));
    assert_eq!(meta(&r, "outcome"), "skipped");
    assert_eq!(r["version"]["commit"], c2.as_str());
    assert!(!f.g.keys(&f.bucket).iter().any(|k| k.contains(&c2)));

    // A new commit with the same code: the lookup restores from the cache.
    f.repo.write("src/handler.py", "def handler(): pass\n");
    let c3 = f.repo.commit("back");
    let r = response(&f.lookup(&f.source()));
    assert_eq!(meta(&r, "outcome"), "restored");
    assert!(f
        .g
        .keys(&f.bucket)
        .contains(&format!("artifacts/{c3}/.manifest.json")));
}

#[test]
fn read_only_and_off_caches_never_write_cache() {
    let Some(f) = Fixture::new("ro") else { return };
    for mode in ["read-only", "off"] {
        f.repo.write("src/handler.py", &format!("{mode}\n"));
        f.repo.commit(mode);
        f.build(&[("fn.zip", mode)]);
        let src = f.source_with(json!({"cache": mode}));
        response(&f.lookup(&src));
        let r = response(&f.publish(&src));
        assert_eq!(meta(&r, "outcome"), "uploaded");
        let keys = f.g.keys(&f.bucket);
        assert!(
            !keys.iter().any(|k| k.starts_with("cache/")),
            "{mode}: {keys:?}"
        );
        if mode == "off" {
            assert_eq!(
                common::meta_opt(&r, "code_hash"),
                None,
                "cache off computes no code hash"
            );
        }
    }
    // A read-only cache still restores what a trusted pipeline cached.
    f.repo.write("src/handler.py", "trusted\n");
    f.repo.commit("trusted");
    f.build(&[("fn.zip", "trusted")]);
    response(&f.publish(&f.source()));
    f.repo.write("README.md", "pr\n");
    f.repo.commit("pr");
    let r = response(&f.lookup(&f.source_with(json!({"cache": "read-only"}))));
    assert_eq!(meta(&r, "outcome"), "restored");
}

fn bad(name: &str, dir: &Path, request: &str, needle: &str, secret: &str) {
    let r = common::run_bin_stdin(
        &common::resource_bin(name),
        &[dir.to_str().unwrap()],
        dir,
        &Default::default(),
        request,
    );
    r.fails(1, needle);
    assert!(r.stdout.is_empty(), "stdout must stay empty: {}", r.stdout);
    assert!(
        !r.stderr.contains(secret) && !r.stdout.contains(secret),
        "the secret leaked: {}",
        r.stderr
    );
}

#[test]
fn bad_requests_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("notrepo")).unwrap();
    let secret = "SECRETxSECRETxSECRET";
    let src = format!(
        r#"{{"bucket":"file://{}","access_key_id":"AKID","secret_access_key":"{secret}"}}"#,
        dir.display()
    );
    for name in ["check", "in", "out"] {
        bad(name, dir, "{\"source\": {", "invalid payload", secret);
        bad(name, dir, "[]", "invalid payload", secret);
        bad(
            name,
            dir,
            r#"{"source": {}}"#,
            "missing field `bucket`",
            secret,
        );
        bad(
            name,
            dir,
            &format!(r#"{{"source": {}, "surprise": 1}}"#, src),
            "unknown field `surprise`",
            secret,
        );
    }
    bad(
        "check",
        dir,
        &format!(
            r#"{{"source":{{"bucket":"b","secret_access_key":"{secret}","use_path_style":"yes"}}}}"#
        ),
        "`source.use_path_style`: invalid type: string \"yes\", expected",
        secret,
    );
    bad(
        "check",
        dir,
        &format!(
            r#"{{"source":{{"bucket":"b","secret_access_key":"{secret}","bucket_name":"x"}}}}"#
        ),
        "unknown field `bucket_name`",
        secret,
    );
    bad(
        "out",
        dir,
        &format!(r#"{{"source":{src},"params":{{}}}}"#),
        "missing field `repo`",
        secret,
    );
    bad(
        "out",
        dir,
        &format!(r#"{{"source":{src},"params":{{"repo":"notrepo"}}}}"#),
        "not a git repository",
        secret,
    );
    bad(
        "out",
        dir,
        &format!(r#"{{"source":{src},"params":{{"repo":"../outside"}}}}"#),
        "must be a relative path inside",
        secret,
    );
    bad(
        "in",
        dir,
        &format!(r#"{{"source":{src},"version":{{"commit":"../../etc"}}}}"#),
        "not a full hex commit id",
        secret,
    );
    bad(
        "check",
        dir,
        &format!(
            r#"{{"source":{{"bucket":"b","secret_access_key":"{secret}","cache":"sometimes"}}}}"#
        ),
        "invalid cache mode",
        secret,
    );
}

#[test]
fn wrong_credentials_never_leak() {
    let Some(f) = Fixture::new("cred") else {
        return;
    };
    let secret = "wrongSECRETwrongSECRET";
    let token = "TOKENtokenTOKENtoken";
    let src = f.source_with(json!({"secret_access_key": secret, "session_token": token}));
    let runs = [
        resource("check", &f.root.join("c"), &json!({"source": src})),
        resource(
            "in",
            &f.root.join("i"),
            &json!({"source": src, "version": {"commit": f.repo.head()}}),
        ),
        f.lookup(&src),
    ];
    for r in runs {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stdout.is_empty());
        for s in [secret, token] {
            assert!(!r.stderr.contains(s), "leaked: {}", r.stderr);
        }
    }
}

/// A set whose index entry was lost (a publish killed between its manifest and its entry, or
/// an expiry rule on `index/`) is invisible to `check`, and the next publish of that commit
/// indexes it again, uploading nothing: the check lists it once more.
#[test]
fn a_lost_index_entry_is_written_again_by_the_next_publish() {
    let Some(f) = Fixture::new("reindex") else {
        return;
    };
    let c = f.publish_new(1);
    assert_eq!(f.check(None), std::slice::from_ref(&c));
    let entries: Vec<String> =
        f.g.keys(&f.bucket)
            .into_iter()
            .filter(|k| k.starts_with("index/"))
            .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let client = f.g.client();
    common::rt().block_on(async {
        client
            .delete_object()
            .bucket(&f.bucket)
            .key(&entries[0])
            .send()
            .await
            .unwrap();
    });
    assert!(
        f.check(None).is_empty(),
        "a set without an entry was listed"
    );

    let r = f.publish(&f.source());
    let out = response(&r);
    assert_eq!(meta(&out, "outcome"), "skipped");
    assert!(
        r.stderr
            .contains(&format!("indexing {c}, which was complete but not indexed")),
        "{}",
        r.stderr
    );
    let again: Vec<String> =
        f.g.keys(&f.bucket)
            .into_iter()
            .filter(|k| k.starts_with("index/"))
            .collect();
    assert_eq!(
        again, entries,
        "the entry written again names the same time"
    );
    assert_eq!(f.check(None), std::slice::from_ref(&c));
    assert_eq!(f.check(Some(&c)), std::slice::from_ref(&c));
}

/// `code_hash_salt` is mixed into the code hash: after a publish without it, a lookup of the
/// next commit (same code) with the salt misses the cache and reports the hash `hash --salt`
/// prints; the same lookup without the salt restores.
#[test]
fn the_code_hash_salt_starts_a_fresh_cache() {
    let Some(f) = Fixture::new("salt") else {
        return;
    };
    f.build(&[("fn.zip", "zip")]);
    let r = response(&f.publish(&f.source()));
    assert_eq!(meta(&r, "outcome"), "uploaded");
    let unsalted = meta(&r, "code_hash");

    let hash = common::cli(
        &["hash", "--repo", "repo", "--filter", "src", "--salt", "v2"],
        &f.put_dir(),
        &common::Env::new(),
    );
    hash.ok();
    let salted = hash.stdout.trim().to_string();
    assert_eq!(salted.len(), 64, "{}", hash.stdout);
    assert_ne!(salted, unsalted);

    f.repo.write("README.md", "docs\n");
    f.repo.commit("docs");
    let r = response(&f.lookup(&f.source_with(json!({"code_hash_salt": "v2"}))));
    assert_eq!(
        meta(&r, "outcome"),
        "missing",
        "the salted lookup used the unsalted cache entry"
    );
    assert_eq!(meta(&r, "code_hash"), salted);

    let r = response(&f.lookup(&f.source()));
    assert_eq!(meta(&r, "outcome"), "restored");
    assert_eq!(meta(&r, "code_hash"), unsalted);
}

/// `check` on `source`, in a fresh directory: the run.
fn check_with(source: Value) -> Run {
    let dir = tempfile::tempdir().unwrap();
    resource("check", dir.path(), &json!({ "source": source }))
}

/// One vocabulary: `source` takes each task variable's name (`S3AM_PATH_STYLE` is
/// `path_style`), concourse/s3-resource's names as aliases, the transfer settings (errors name
/// the key), `s3://name/prefix` in `bucket`, s3-resource's `enable_aws_creds_provider` and
/// `disable_ssl` (a bare endpoint host is https, or http with `disable_ssl`), and refuses
/// `skip_ssl_verification` pointing to `ca_bundle`.
#[test]
fn source_takes_the_task_variables_names_and_s3_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let file = format!("file://{}", bucket.display());
    let ok = |extra: Value| {
        let mut s = json!({ "bucket": file });
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        let r = check_with(s);
        r.ok();
        assert_eq!(r.stdout.trim(), "[]", "{extra}: {}", r.stderr);
    };
    let fails = |extra: Value, needle: &str| {
        let mut s = json!({ "bucket": file });
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        check_with(s).fails(1, needle);
    };
    ok(json!({"path_style": true, "skip_checksums": true, "sse": "AES256", "role": ""}));
    ok(
        json!({"use_path_style": true, "skip_s3_checksums": true, "server_side_encryption": "AES256",
              "region_name": "eu-west-1", "aws_role_arn": ""}),
    );
    ok(
        json!({"concurrency": 8, "multipart_threshold": "32M", "part_size": "8M",
              "copy_multipart_threshold": "2G", "copy_part_size": 536870912, "timeout": "30"}),
    );
    ok(
        json!({"enable_aws_creds_provider": true, "disable_ssl": false, "skip_ssl_verification": false}),
    );
    fails(
        json!({"path_style": true, "use_path_style": true}),
        "duplicate field",
    );
    fails(
        json!({"part_size": "lots"}),
        "invalid value \"lots\" for source.part_size",
    );
    fails(json!({"concurrency": "many"}), "for source.concurrency");
    fails(json!({"timeout": "soon"}), "for source.timeout");
    fails(
        json!({"copy_multipart_threshold": "6G"}),
        "for source.copy_multipart_threshold",
    );
    fails(json!({"sse": "rot13"}), "for source.sse");
    fails(json!({"skip_ssl_verification": true}), "source.ca_bundle");

    let g = S3Server::get();
    let name = g.new_bucket("vocab");
    let host = g.endpoint.strip_prefix("http://").unwrap().to_string();
    let base = json!({
        "region": g.region, "path_style": true,
        "access_key_id": g.access_key, "secret_access_key": g.secret_key,
    });
    let with = |extra: Value| {
        let mut s = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    // s3://name/prefix in `bucket`, and a bare host over plain http with `disable_ssl`.
    let r = check_with(with(
        json!({"bucket": format!("s3://{name}/team"), "endpoint": host, "disable_ssl": true}),
    ));
    r.ok();
    assert_eq!(r.stdout.trim(), "[]", "{}", r.stderr);
    let r = check_with(with(
        json!({"bucket": format!("s3://{name}/team"), "prefix": "team", "endpoint": host, "disable_ssl": true}),
    ));
    r.fails(1, "the prefix is given twice");
    // A bare host is https: this plain-http server cannot answer it.
    let r = check_with(with(json!({"bucket": name, "endpoint": host})));
    r.fails(1, &format!("https://{host}"));
}
