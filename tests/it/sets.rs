//! Found means fetchable: a set that lost objects after its manifest was written (an expiry
//! rule, `aws s3 rm`) is damaged, never found. On `file://` and on the S3 server.

use crate::common;
use crate::common::proxy;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::bucket::Bucket;
use common::{resource, Env, Run, Task};
use proxy::{Faults, Proxy, PutFailure};
use serde_json::json;

/// A task on `b` with three assets built into ./packages.
fn task(b: &Bucket) -> Task {
    let env: Env = b.env();
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    t.run(&["check"]).ok();
    t.build(&[("a.zip", b"a"), ("b.zip", b"bb"), ("c/d.tgz", b"ddd")]);
    t
}

/// A task on `b` that uploads files past 6 MiB in parts of 5 MiB, its environment, and its
/// first `check` run.
fn in_parts(b: &Bucket) -> (Env, Task) {
    let mut env: Env = b.env();
    env.insert("S3AM_MULTIPART_THRESHOLD".into(), "6M".into());
    env.insert("S3AM_PART_SIZE".into(), "5M".into());
    let t = Task::new(env.clone(), &[("src/main.py", "print(1)\n")]);
    t.run(&["check"]).ok();
    (env, t)
}

/// `fetch` into a fresh directory.
fn fetch(t: &Task) -> (Run, PathBuf) {
    let dest = t.root.join(common::unique_name("dest"));
    let r = t.run(&["fetch", "--dest", dest.to_str().unwrap()]);
    (r, dest)
}

/// One object of a complete set is deleted: `check` builds instead of writing `.found`,
/// `fetch` and a required `get` fail with the same line naming what is missing, a plain `get`
/// writes `.commit-hash` only, and the next upload repairs the set.
#[test]
fn a_set_with_a_missing_object_is_damaged_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "damaged") {
        let store = b.name();
        let t = task(&b);
        t.run(&["upload"]).ok();
        let commit = t.repo.head();
        b.delete(&format!("artifacts/{commit}/b.zip"));
        let damage = "is damaged: 1 of 3 objects missing: b.zip";

        t.reset_packages();
        let r = t.run(&["check"]);
        r.ok();
        assert!(
            !t.found(),
            "{store}: a damaged set was found:\n{}",
            r.stderr
        );
        assert!(r.stderr.contains(damage), "{store}: {}", r.stderr);

        let (r, dest) = fetch(&t);
        r.fails(1, damage);
        assert!(
            !dest.join("a.zip").exists(),
            "{store}: a refused fetch wrote files"
        );

        let source = b.source(json!({}));
        let get = |params: serde_json::Value| {
            let dest = t.root.join(common::unique_name("get"));
            let req = json!({"source": source, "version": {"commit": commit}, "params": params});
            (resource("in", &dest, &req), dest)
        };
        let (r, dest) = get(json!({"require": true}));
        r.fails(1, damage);
        assert!(!dest.join(".found").exists(), "{store}");
        // A downloading get writes .commit-hash only, as for a missing set, and no file:
        // the build runs, and its upload repairs the set.
        let (r, dest) = get(json!({}));
        r.ok();
        assert!(r.stderr.contains(damage), "{store}: {}", r.stderr);
        assert_eq!(common::entries(&dest), [".commit-hash"], "{store}");
        let (r, dest) = get(json!({"skip_download": true}));
        r.ok();
        assert!(
            !dest.join(".found").exists(),
            "{store}: the lookup's get found it"
        );
        assert!(dest.join(".commit-hash").exists(), "{store}");

        // The build runs again, and its upload repairs the set.
        t.build(&[("a.zip", b"a"), ("b.zip", b"bb"), ("c/d.tgz", b"ddd")]);
        let r = t.run(&["upload"]);
        r.ok();
        assert!(
            r.stderr.contains("publishing it again"),
            "{store}: {}",
            r.stderr
        );
        t.reset_packages();
        t.run(&["check"]).ok();
        assert!(t.found(), "{store}: the repaired set is not found");
        let (r, dest) = fetch(&t);
        r.ok();
        assert_eq!(std::fs::read(dest.join("b.zip")).unwrap(), b"bb", "{store}");
    }
}

/// An object of another size than its manifest says is damage too, named as such.
#[test]
fn an_object_of_another_size_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "resized") {
        let store = b.name();
        let t = task(&b);
        t.run(&["upload"]).ok();
        let commit = t.repo.head();
        b.put(
            &format!("artifacts/{commit}/c/d.tgz"),
            b"longer than before",
        );
        t.reset_packages();
        let r = t.run(&["check"]);
        r.ok();
        assert!(!t.found(), "{store}");
        assert!(
            r.stderr
                .contains("1 of 3 objects of another size than the manifest says: c/d.tgz"),
            "{store}: {}",
            r.stderr
        );
        fetch(&t).0.fails(1, "of another size");
    }
}

/// A set larger than one slice of the listing (1,000 files: `fetch` lists it in slices beside
/// its downloads, each page checked as it arrives) with objects deleted and rewritten at
/// another size in different slices: `fetch` counts every one, and writes no file.
#[test]
fn a_large_sets_damage_is_found_in_every_slice_of_its_listing() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "largedamage") {
        let store = b.name();
        let t = Task::new(b.env(), &[("src/main.py", "print(1)\n")]);
        t.run(&["check"]).ok();
        let names: Vec<String> = (0..1000)
            .map(|i| format!("d{}/f{i:04}.bin", i % 3))
            .collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        t.build(&files);
        t.run(&["upload"]).ok();
        let commit = t.repo.head();
        for i in [3, 950] {
            b.delete(&format!("artifacts/{commit}/d{}/f{i:04}.bin", i % 3));
        }
        b.put(&format!("artifacts/{commit}/d1/f0301.bin"), b"longer");
        let (r, dest) = fetch(&t);
        r.fails(1, "2 of 1000 objects missing: d0/f0003.bin, d2/f0950.bin");
        assert!(
            r.stderr
                .contains("1 of 1000 objects of another size than the manifest says: d1/f0301.bin"),
            "{store}: {}",
            r.stderr
        );
        let left: Vec<_> = std::fs::read_dir(&dest)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let written: Vec<_> = left
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .collect();
        assert!(
            written.is_empty(),
            "{store}: a refused fetch left {} files",
            written.len()
        );
    }
}

/// An object a writer added to a complete set (a file its manifest does not name) stays in the
/// bucket, but the set is still found and no reader ever downloads it.
#[test]
fn an_object_added_to_a_set_is_never_downloaded() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "added") {
        let store = b.name();
        let t = task(&b);
        t.run(&["upload"]).ok();
        let commit = t.repo.head();
        b.put(
            &format!("artifacts/{commit}/evil.sh"),
            b"#!/bin/sh\nrm -rf /\n",
        );
        t.reset_packages();
        t.run(&["check"]).ok();
        assert!(
            t.found(),
            "{store}: an added object made the set incomplete"
        );
        let (r, dest) = fetch(&t);
        r.ok();
        assert!(dest.join("a.zip").exists(), "{store}");
        assert!(
            !dest.join("evil.sh").exists(),
            "{store}: an added object was downloaded"
        );
    }
}

/// A large file downloads in ranges, each checked as it arrives against the SHA-256 its
/// manifest lists for that piece: a reader with another part size follows the manifest's
/// pieces; a wrong piece digest is refused with the bytes named and leaves no file; a manifest
/// of an earlier version (no pieces) is checked against the whole file's SHA-256.
#[test]
fn a_large_file_is_checked_piece_by_piece() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "pieces") {
        let store = b.name();
        let (env, t) = in_parts(&b);
        let big: Vec<u8> = (0..13u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        t.build(&[("big.bin", &big), ("small.txt", b"s")]);
        t.run(&["upload"]).ok();
        let key = format!("artifacts/{}/.manifest.json", t.repo.head());
        let original: serde_json::Value = serde_json::from_slice(&b.get(&key).unwrap()).unwrap();
        let entry = |m: &serde_json::Value, path: &str| {
            let files = m["files"].as_array().unwrap();
            files.iter().position(|f| f["path"] == path).unwrap()
        };
        let (i_big, i_small) = (entry(&original, "big.bin"), entry(&original, "small.txt"));
        let pieces = &original["files"][i_big]["pieces"];
        assert_eq!(pieces["size"], 5 << 20, "{store}: {pieces}");
        assert_eq!(pieces["sha256"].as_array().unwrap().len(), 3, "{store}");
        assert!(
            original["files"][i_small].get("pieces").is_none(),
            "{store}"
        );

        // Another reader's part size: the ranges follow the manifest's pieces.
        let fetch_with = |part: &str| {
            let dest = t.root.join(common::unique_name("dest"));
            let mut env = env.clone();
            env.insert("S3AM_PART_SIZE".into(), part.into());
            let r = common::cli(&["fetch", "--dest", dest.to_str().unwrap()], &t.root, &env);
            (r, dest)
        };
        for part in ["5M", "8M"] {
            let (r, dest) = fetch_with(part);
            r.ok();
            assert!(
                std::fs::read(dest.join("big.bin")).unwrap() == big,
                "{store}"
            );
        }

        // One piece's digest is wrong: refused, bytes named, nothing left behind.
        let mut m = original.clone();
        m["files"][i_big]["pieces"]["sha256"][1] = json!("ab".repeat(32));
        b.put(&key, &serde_json::to_vec(&m).unwrap());
        let (r, dest) = fetch_with("5M");
        r.fails(1, "bytes 5242880-10485759 have SHA-256");
        let left: Vec<_> = std::fs::read_dir(&dest).unwrap().flatten().collect();
        assert!(
            left.iter().all(|e| e.file_name() != "big.bin"
                && !e.file_name().to_string_lossy().contains("partial")),
            "{store}: a refused download left {left:?}"
        );

        // A manifest of an earlier version: the whole file is hashed, and checked.
        let mut m = original.clone();
        m["files"][i_big].as_object_mut().unwrap().remove("pieces");
        b.put(&key, &serde_json::to_vec(&m).unwrap());
        let (r, dest) = fetch_with("5M");
        r.ok();
        assert!(
            std::fs::read(dest.join("big.bin")).unwrap() == big,
            "{store}"
        );
        m["files"][i_big]["sha256"] = json!("cd".repeat(32));
        b.put(&key, &serde_json::to_vec(&m).unwrap());
        fetch_with("5M").0.fails(1, "does not match its manifest");
    }
}

/// Whether a publish to `b` writes its objects before it reads the set: on `file://`, and on
/// SeaweedFS, which enforces `If-None-Match` and is said to (Garage ignores the header, so its
/// publishes read first). Sets the setting on `t` where it applies.
fn writes_first(b: &Bucket, t: &mut Task) -> bool {
    use common::bucket::Place;
    match &b.place {
        Place::File(_) => true,
        Place::S3(g, _) if g.store == common::Store::SeaweedFs => {
            t.env
                .insert("S3AM_CONDITIONAL_WRITES_ENFORCED".into(), "true".into());
            true
        }
        Place::S3(..) => false,
    }
}

/// A late publisher of a commit, whose build is not byte-identical, finds the set complete: its
/// writes never replace the winner's objects (a publish that writes first sends each with
/// `If-None-Match: *`, and the store refuses those whose keys exist), so the winner's readers
/// still verify the set. A file the winner's set does not name may stay beside it, unread.
#[test]
fn a_late_publisher_never_replaces_a_complete_sets_objects() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "late") {
        let store = b.name();
        let mut t = task(&b);
        let first = writes_first(&b, &mut t);
        t.run(&["upload"]).ok();
        let commit = t.repo.head();
        // The late build: its check ran before the set completed.
        t.reset_packages();
        t.build(&[
            (".commit-hash", commit.as_bytes()),
            ("a.zip", b"A, built again, not byte-identical"),
            ("b.zip", b"bb"),
            ("c/d.tgz", b"DDD"),
            ("e.zip", b"a file the winner's set does not have"),
        ]);
        let r = t.run(&["upload"]);
        r.ok();
        assert!(
            r.stderr.contains("is already complete"),
            "{store}: {}",
            r.stderr
        );
        assert_eq!(
            b.get(&format!("artifacts/{commit}/a.zip")).as_deref(),
            Some(b"a".as_slice()),
            "{store}: the late publisher replaced an object of the complete set"
        );
        let (r, dest) = fetch(&t);
        r.ok();
        assert_eq!(std::fs::read(dest.join("a.zip")).unwrap(), b"a", "{store}");
        assert_eq!(std::fs::read(dest.join("c/d.tgz")).unwrap(), b"ddd");
        assert!(
            !dest.join("e.zip").exists(),
            "{store}: e.zip was downloaded"
        );
        // Written first, a file under a new name was accepted; read first, nothing was.
        assert_eq!(
            b.get(&format!("artifacts/{commit}/e.zip")).is_some(),
            first,
            "{store}: writes first: {first}"
        );
        // The resource's publish put, told the same through `source`, leaves it as well.
        let late = t.root.join("late");
        std::fs::create_dir_all(&late).unwrap();
        std::fs::write(late.join("a.zip"), b"A, built a third time").unwrap();
        std::fs::write(late.join("f.zip"), b"another new file").unwrap();
        let enforced = t.env.contains_key("S3AM_CONDITIONAL_WRITES_ENFORCED");
        let source = b.source(json!({ "conditional_writes_enforced": enforced }));
        let req = json!({"source": source, "params": {"repo": "repo", "path": "late"}});
        let r = resource("out", &t.root, &req);
        r.ok();
        assert!(r.stdout.contains("skipped"), "{store}: {}", r.stdout);
        assert_eq!(
            b.get(&format!("artifacts/{commit}/a.zip")).as_deref(),
            Some(b"a".as_slice()),
            "{store}: the put replaced an object of the complete set"
        );
        assert_eq!(
            b.get(&format!("artifacts/{commit}/f.zip")).is_some(),
            first,
            "{store}: the put writes first: {first}"
        );
        fetch(&t).0.ok();
    }
}

/// A late publisher of a large set (a file in parts) starts uploading it beside its read of
/// the set; the read finds the set complete, and the upload is withdrawn before it completes:
/// no object of the winner's is replaced, and no unfinished upload is left behind.
#[test]
fn a_late_publisher_of_a_large_set_withdraws_its_upload() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "late-big") {
        let store = b.name();
        let (_, t) = in_parts(&b);
        let bytes = |seed: u32| -> Vec<u8> {
            (0..9u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
                .collect()
        };
        let big = bytes(1);
        t.build(&[("big.bin", &big), ("a.zip", b"a")]);
        t.run(&["upload"]).ok();
        let commit = t.repo.head();
        // The late build: not byte-identical, and its check ran before the set completed.
        t.reset_packages();
        t.build(&[
            (".commit-hash", commit.as_bytes()),
            ("big.bin", &bytes(2)),
            ("a.zip", b"A, built again"),
        ]);
        let r = t.run(&["upload"]);
        r.ok();
        assert!(
            r.stderr.contains("is already complete"),
            "{store}: {}",
            r.stderr
        );
        let key = |name: &str| format!("artifacts/{commit}/{name}");
        assert!(
            b.get(&key("big.bin")).unwrap() == big,
            "{store}: the late publisher replaced the complete set's large object"
        );
        assert_eq!(b.get(&key("a.zip")).as_deref(), Some(b"a".as_slice()));
        let prefix = format!("artifacts/{commit}/");
        assert_eq!(
            b.pending(&prefix),
            0,
            "{store}: an unfinished upload was left"
        );
        let (r, dest) = fetch(&t);
        r.ok();
        assert!(
            std::fs::read(dest.join("big.bin")).unwrap() == big,
            "{store}"
        );
    }
}

/// Objects an interrupted upload left (no manifest) are written over: a publish that writes
/// first finds their keys taken, reads the set, and writes them again before its manifest.
#[test]
fn an_interrupted_uploads_objects_are_written_over() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "leftover") {
        let store = b.name();
        let mut t = task(&b);
        let first = writes_first(&b, &mut t);
        let commit = t.repo.head();
        b.put(
            &format!("artifacts/{commit}/a.zip"),
            b"half of a stale build",
        );
        b.put(&format!("artifacts/{commit}/c/d.tgz"), b"stale");
        let r = t.run(&["upload"]);
        r.ok();
        if first {
            assert!(
                r.stderr.contains("2 files of artifacts/")
                    && r.stderr.contains("already had an object"),
                "{store}: {}",
                r.stderr
            );
        }
        t.reset_packages();
        t.run(&["check"]).ok();
        assert!(t.found(), "{store}");
        let (r, dest) = fetch(&t);
        r.ok();
        assert_eq!(std::fs::read(dest.join("a.zip")).unwrap(), b"a", "{store}");
        assert_eq!(
            std::fs::read(dest.join("c/d.tgz")).unwrap(),
            b"ddd",
            "{store}"
        );
    }
}

/// Watches `dir` until `stop`, keeping the permission bits and the last bytes read of each
/// file seen in it.
fn watch(dir: &Path, stop: &AtomicBool) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut seen = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if let (Ok(meta), Ok(bytes)) = (std::fs::metadata(&p), std::fs::read(&p)) {
                seen.insert(p, (meta.permissions().mode() & 0o777, bytes));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

/// `upload`, with `dir` watched while it runs.
fn upload_watching(t: &Task, dir: &Path) -> (Run, BTreeMap<PathBuf, (u32, Vec<u8>)>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(dir, &stop));
        let r = t.run(&["upload"]);
        stop.store(true, Ordering::Relaxed);
        (r, watcher.join().unwrap())
    })
}

/// A set of 5,000 files, past the 4,096 at which `upload` writes the manifest to a temporary
/// file and sends it from there instead of holding its bytes: found, fetched and verified
/// whole, and no temporary file left behind. Where the temporary directory does not exist
/// the manifest is held in memory instead, with the same outcome (on `file://`: the fallback
/// is the engine's).
///
/// On the S3 server the manifest's PUT is held for a while by a proxy, long enough to see the
/// temporary file: one file, readable by its owner only, holding the bytes the store ends up
/// with. First the store refuses that PUT: the upload fails, the file is seen all the same and
/// removed, and no manifest is written; the next upload goes through.
#[test]
fn a_large_sets_manifest_goes_through_a_temporary_file_left_behind_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "spill") {
        let store = b.name();
        // The fallback is the engine's, whatever the store: tried on file:// only.
        let file = matches!(b.place, common::bucket::Place::File(_));
        for (n, tmpdir_exists) in [(1, true), (2, false)].into_iter().take(1 + file as usize) {
            let tmpdir = tmp.path().join(common::unique_name("tmpdir"));
            if tmpdir_exists {
                std::fs::create_dir(&tmpdir).unwrap();
            }
            let mut env: Env = b.env();
            env.insert("TMPDIR".into(), tmpdir.to_str().unwrap().into());
            let proxy = match &b.place {
                common::bucket::Place::S3(g, _) => {
                    let upstream = g.addr();
                    let p = Proxy::start(upstream, Faults::default());
                    env.insert("AWS_ENDPOINT_URL".into(), p.url());
                    Some(p)
                }
                common::bucket::Place::File(_) => None,
            };
            let main = format!("print({n})\n");
            let t = Task::new(env, &[("src/main.py", main.as_str())]);
            t.run(&["check"]).ok();
            let names: Vec<String> = (0..5000)
                .map(|i| format!("d{}/f{i:04}.bin", i % 7))
                .collect();
            let files: Vec<(&str, &[u8])> =
                names.iter().map(|p| (p.as_str(), p.as_bytes())).collect();
            t.build(&files);
            let manifest = format!("artifacts/{}/.manifest.json", t.repo.head());
            if let Some(p) = &proxy {
                let hold = Some((manifest.clone(), Duration::from_millis(1500)));
                p.set(Faults {
                    delay_puts: hold.clone(),
                    fail_puts: Some(PutFailure {
                        path_contains: manifest.clone(),
                        status: 403,
                        code: "AccessDenied",
                        count: 0,
                    }),
                    ..Faults::default()
                });
                let (r, seen) = upload_watching(&t, &tmpdir);
                assert_ne!(
                    r.code, 0,
                    "{store}: the refused upload passed:\n{}",
                    r.stderr
                );
                assert!(r.stderr.contains("AccessDenied"), "{store}: {}", r.stderr);
                assert_eq!(seen.len(), 1, "{store}: no spilled manifest seen: {seen:?}");
                let left: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().flatten().collect();
                assert!(left.is_empty(), "{store}: the failed upload left {left:?}");
                assert_eq!(b.get(&manifest), None, "{store}: a manifest was written");

                p.set(Faults {
                    delay_puts: hold,
                    ..Faults::default()
                });
                let (r, seen) = upload_watching(&t, &tmpdir);
                r.ok();
                let spilled: Vec<&(u32, Vec<u8>)> = seen.values().collect();
                assert_eq!(spilled.len(), 1, "{store}: no spilled manifest seen");
                let (mode, bytes) = spilled[0];
                assert_eq!(
                    format!("{mode:o}"),
                    "600",
                    "{store}: the temporary file is not owner-only"
                );
                assert_eq!(
                    Some(bytes),
                    b.get(&manifest).as_ref(),
                    "{store}: the temporary file does not hold the manifest sent"
                );
            } else {
                t.run(&["upload"]).ok();
            }
            if tmpdir_exists {
                let left: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().flatten().collect();
                assert!(left.is_empty(), "{store}: upload left {left:?}");
            }
            t.reset_packages();
            let r = t.run(&["check"]);
            r.ok();
            assert!(t.found(), "{store}: {}", r.stderr);
            let (r, dest) = fetch(&t);
            r.ok();
            for p in [&names[0], &names[4999]] {
                assert_eq!(
                    std::fs::read(dest.join(p)).unwrap(),
                    p.as_bytes(),
                    "{store}"
                );
            }
            let fetched: usize = std::fs::read_dir(&dest)
                .unwrap()
                .flatten()
                .filter(|d| d.path().is_dir())
                .map(|d| std::fs::read_dir(d.path()).unwrap().count())
                .sum();
            assert_eq!(fetched, 5000, "{store}");
        }
    }
}
