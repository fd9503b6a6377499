//! `list`, `delete` and `prune`, run as the built binary on `file://` and on the S3 server:
//! what each shows and removes, the order that keeps readers safe, the last use of cache
//! entries, bad input, and prunes racing publishers.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::bucket::{Bucket, Place};
use common::proxy::{Faults, Proxy};
use common::{git, Env, Run, Task};
use serde_json::Value;

/// A prune that takes everything a second old: sets, cache entries and unfinished uploads.
const PRUNE_ALL: [&str; 7] = [
    "prune",
    "--max-age",
    "1s",
    "--cache-max-unused",
    "1s",
    "--incomplete-max-age",
    "1s",
];

/// A task on `b` with caching on (`src` is hashed).
fn task(b: &Bucket) -> Task {
    let mut env: Env = b.env();
    env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    Task::new(env, &[("src/main.py", "print(1)\n")])
}

/// Commits `src/main.py` with `src` and `note` (a file outside the hash), then checks and,
/// unless found or restored, builds and uploads. The commit.
fn publish(t: &Task, src: &str, note: &str) -> String {
    t.repo.write("src/main.py", src).write("NOTE", note);
    let commit = t.repo.commit(note);
    t.reset_packages();
    t.run(&["check"]).ok();
    if !t.found() {
        t.build(&[("fn.zip", src.as_bytes()), ("lib/x.txt", b"x")]);
        t.run(&["upload"]).ok();
    }
    commit
}

/// `list --json`, parsed.
fn list(t: &Task, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(extra);
    let r = t.run(&args);
    r.ok();
    serde_json::from_str::<Vec<Value>>(&r.stdout)
        .unwrap_or_else(|e| panic!("list --json printed no JSON array ({e}): {}", r.stdout))
}

/// The listed set with this id.
fn entry<'a>(sets: &'a [Value], id: &str) -> &'a Value {
    sets.iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed: {sets:?}"))
}

/// Keys under `prefix`.
fn under(b: &Bucket, prefix: &str) -> Vec<String> {
    b.keys()
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// The code hash `check` wrote last.
fn code_hash(t: &Task) -> String {
    t.marker(".code-hash").unwrap().trim().to_string()
}

/// Stores give times to the second: a pause that puts two writes in different seconds.
fn tick() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Every set is listed with its kind, state, size and times, newest first; filters by kind
/// and state work; `--verify` (and `--state damaged`) tell a damaged set from a complete one;
/// the table has a header and a line a set.
#[test]
fn list_shows_every_set_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "list") {
        let store = b.name();
        let t = task(&b);
        let old = publish(&t, "print(1)\n", "one");
        let old_hash = code_hash(&t);
        tick();
        let new = publish(&t, "print(2)\n", "two");
        // An upload that never finished, and junk that is not a set.
        let pending = "c".repeat(40);
        b.put_interrupted(&format!("artifacts/{pending}/half.zip"), b"half");
        b.put("artifacts/not-a-commit/x", b"x");
        b.put("cache/short/x", b"x");

        let sets = list(&t, &[]);
        assert_eq!(sets.len(), 5, "{store}: {sets:#?}");
        let a = entry(&sets, &old);
        assert_eq!(a["kind"], "artifacts", "{store}");
        // Without --verify no manifest is read: a set with one is unverified, never complete.
        assert_eq!(a["state"], "unverified", "{store}");
        assert_eq!(a["files"], 2, "{store}");
        assert_eq!(a["bytes"], 10, "{store}");
        assert!(
            a["created"].as_str().unwrap().ends_with('Z'),
            "{store}: {a}"
        );
        assert!(
            a["last_used"].is_null(),
            "{store}: only cache entries have one"
        );
        let c = entry(&sets, &old_hash);
        assert_eq!(c["kind"], "cache", "{store}");
        assert_eq!(c["files"], 2, "{store}");
        assert!(c["last_used"].is_string(), "{store}: {c}");
        assert_eq!(entry(&sets, &pending)["state"], "incomplete", "{store}");
        // Newest first: the second commit's set before the first's.
        let pos = |id: &str| sets.iter().position(|s| s["id"] == id).unwrap();
        assert!(pos(&new) < pos(&old), "{store}: {sets:#?}");

        let cache = list(&t, &["--kind", "cache"]);
        assert_eq!(cache.len(), 2, "{store}");
        assert!(cache.iter().all(|s| s["kind"] == "cache"));
        let incomplete = list(&t, &["--state", "incomplete"]);
        assert_eq!(incomplete.len(), 1, "{store}");

        // A lost object shows only where manifests are read; `list` without them never
        // calls the set complete, as `check` would not.
        let verified = list(&t, &["--verify"]);
        assert_eq!(entry(&verified, &old)["state"], "complete", "{store}");
        let complete = list(&t, &["--state", "complete"]);
        assert_eq!(complete.len(), 4, "{store}: reads manifests: {complete:#?}");
        b.delete(&format!("artifacts/{old}/lib/x.txt"));
        assert_eq!(
            entry(&list(&t, &[]), &old)["state"],
            "unverified",
            "{store}"
        );
        let verified = list(&t, &["--verify"]);
        let d = entry(&verified, &old);
        assert_eq!(d["state"], "damaged", "{store}");
        assert!(
            d["why"]
                .as_str()
                .unwrap()
                .contains("1 of 2 objects missing: lib/x.txt"),
            "{store}: {d}"
        );
        let damaged = list(&t, &["--state", "damaged"]);
        assert_eq!(damaged.len(), 1, "{store}: {damaged:#?}");

        let r = t.run(&["list"]);
        r.ok();
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[0].starts_with("KIND"), "{store}: {}", r.stdout);
        assert_eq!(lines.len(), 6, "{store}: {}", r.stdout);
        assert!(
            r.stderr.contains("listed 5 of 5 sets"),
            "{store}: {}",
            r.stderr
        );
    }
}

/// `delete` removes the set, its signature and index entries, and nothing else: the next
/// `check` builds; a second delete says there is nothing; a cache entry goes by code hash.
#[test]
fn delete_removes_a_set_and_its_index_entries() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "delete") {
        let store = b.name();
        let t = task(&b);
        let keep = publish(&t, "print(1)\n", "one");
        let gone = publish(&t, "print(2)\n", "two");
        let hash = code_hash(&t);
        assert!(b
            .keys()
            .iter()
            .any(|k| k.starts_with("index/") && k.ends_with(&gone)));

        let r = t.run(&["delete", "--commit", &gone]);
        r.ok();
        assert!(
            under(&b, &format!("artifacts/{gone}/")).is_empty(),
            "{store}"
        );
        assert!(
            !b.keys()
                .iter()
                .any(|k| k.starts_with("index/") && k.ends_with(&gone)),
            "{store}: its index entry stays"
        );
        assert!(
            !under(&b, &format!("artifacts/{keep}/")).is_empty(),
            "{store}"
        );
        assert!(!under(&b, &format!("cache/{hash}/")).is_empty(), "{store}");
        t.run(&["delete", "--commit", &gone])
            .fails(1, "nothing to delete");

        // The cache entry goes too; then the build runs again.
        t.run(&["delete", "--code-hash", &hash.to_uppercase()]).ok();
        assert!(under(&b, &format!("cache/{hash}/")).is_empty(), "{store}");
        t.reset_packages();
        let r = t.run(&["check"]);
        r.ok();
        assert!(!t.found(), "{store}: a deleted set was found: {}", r.stderr);
        assert!(r.stderr.contains("build needed"), "{store}: {}", r.stderr);
    }
}

/// Age, count and leftovers: a dry run deletes nothing and says why each set goes or stays;
/// `--keep-last` protects the newest; `--max-age` removes the rest with their index entries;
/// an incomplete set goes only once older than `--incomplete-max-age`.
#[test]
fn prune_by_age_keeps_the_newest_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "prune") {
        let store = b.name();
        let t = task(&b);
        let c1 = publish(&t, "print(1)\n", "one");
        let c2 = publish(&t, "print(2)\n", "two");
        // c1 and c2 over 4 s old, c3 new: `--max-age 3s` tells them apart with a second on
        // each side, which 2 shared cores running the prunes leave (it was 2s against 2.2 s).
        for _ in 0..4 {
            tick();
        }
        let c3 = publish(&t, "print(3)\n", "three");
        let pending = "d".repeat(40);
        b.put_interrupted(&format!("artifacts/{pending}/half.zip"), b"half");
        let before = b.keys();

        let r = t.run(&["prune", "--max-age", "3s", "--dry-run"]);
        r.ok();
        assert_eq!(b.keys(), before, "{store}: a dry run deleted");
        for c in [&c1, &c2] {
            assert!(
                r.stdout.contains(&format!(
                    "would delete artifacts {c} (2 files, 10 B): completed"
                )),
                "{store}: {}",
                r.stdout
            );
        }
        assert!(
            r.stdout
                .contains(&format!("keep artifacts {c3} (2 files, 10 B): completed")),
            "{store}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains(&format!(
                "keep artifacts {pending} (1 file, 4 B): no manifest"
            )),
            "{store}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains("would delete index entry index/"),
            "{store}"
        );
        assert!(
            r.stderr.contains("dry run: would delete 2 sets"),
            "{store}: {}",
            r.stderr
        );

        // The three newest are all there are: nothing goes.
        t.run(&["prune", "--max-age", "3s", "--keep-last", "3"])
            .ok();
        assert_eq!(b.keys(), before, "{store}: --keep-last 3 deleted");

        let r = t.run(&["prune", "--max-age", "3s", "--keep-last", "1"]);
        r.ok();
        for c in [&c1, &c2] {
            assert!(
                under(&b, &format!("artifacts/{c}/")).is_empty(),
                "{store}: {c} stays"
            );
            assert!(
                !b.keys()
                    .iter()
                    .any(|k| k.starts_with("index/") && k.ends_with(c.as_str())),
                "{store}"
            );
        }
        assert_eq!(under(&b, &format!("artifacts/{c3}/")).len(), 3, "{store}");
        assert_eq!(
            under(&b, &format!("artifacts/{pending}/")).len(),
            1,
            "{store}: a young upload went"
        );
        // The cache entries were not asked about.
        assert_eq!(list(&t, &["--kind", "cache"]).len(), 3, "{store}");

        tick();
        tick();
        let r = t.run(&["prune", "--incomplete-max-age", "1s"]);
        r.ok();
        assert!(r.stderr.contains("under an hour"), "{store}: {}", r.stderr);
        assert!(
            under(&b, &format!("artifacts/{pending}/")).is_empty(),
            "{store}"
        );
        assert_eq!(under(&b, &format!("artifacts/{c3}/")).len(), 3, "{store}");

        // A pruned commit is restored from its cache entry, which the prune left; the
        // resource's check reports that set, the newest now.
        git(&t.repo.dir, &["checkout", "-q", "--detach", &c1]);
        t.reset_packages();
        let r = t.run(&["check"]);
        r.ok();
        assert!(r.stderr.contains("restoring"), "{store}: {}", r.stderr);
        let r = common::resource(
            "check",
            &t.root.join("rc"),
            &serde_json::json!({"source": b.source(serde_json::json!({}))}),
        );
        r.ok();
        assert!(r.stdout.contains(&c1), "{store}: {}", r.stdout);
        assert!(
            !r.stderr.contains("skipped"),
            "{store}: index entries left behind: {}",
            r.stderr
        );
    }
}

/// A read-write restore records the entry's use (a read-only one records nothing), and a
/// prune by size removes the least recently used entry; one by unused time, every entry
/// unused for longer.
#[test]
fn cache_entries_go_least_recently_used_first() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "lru") {
        let store = b.name();
        let t = task(&b);
        publish(&t, "print(1)\n", "one");
        let h1 = code_hash(&t);
        tick();
        publish(&t, "print(2)\n", "two");
        let h2 = code_hash(&t);
        tick();
        // Back to the first sources: restored from h1, which is now the most recently used.
        publish(&t, "print(1)\n", "three");
        assert!(t.found(), "{store}: not restored");
        assert_eq!(code_hash(&t), h1);
        assert!(
            b.keys().contains(&format!("cache/{h1}/.last-used")),
            "{store}: no use recorded"
        );
        // A read-only pipeline restores h2 and records nothing.
        let mut ro = t.env.clone();
        ro.insert("S3AM_CACHE".into(), "read-only".into());
        t.repo
            .write("src/main.py", "print(2)\n")
            .write("NOTE", "four");
        t.repo.commit("four");
        t.reset_packages();
        common::cli(&["check"], &t.root, &ro).ok();
        assert!(t.found(), "{store}: read-only did not restore");
        assert!(
            !b.keys().contains(&format!("cache/{h2}/.last-used")),
            "{store}: read-only recorded a use"
        );

        let sets = list(&t, &["--kind", "cache"]);
        let used = |h: &str| entry(&sets, h)["last_used"].as_str().unwrap().to_string();
        assert!(used(&h1) > used(&h2), "{store}: {sets:#?}");
        // Room for one entry (each holds 10 bytes of assets): h2 goes.
        let r = t.run(&["prune", "--cache-max-size", "15"]);
        r.ok();
        assert!(
            r.stdout.contains(&format!("delete cache {h2}")),
            "{store}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains("least recently used"),
            "{store}: {}",
            r.stdout
        );
        assert!(under(&b, &format!("cache/{h2}/")).is_empty(), "{store}");
        assert!(!under(&b, &format!("cache/{h1}/")).is_empty(), "{store}");

        tick();
        tick();
        t.run(&["prune", "--cache-max-unused", "1s"]).ok();
        assert!(
            under(&b, "cache/").is_empty(),
            "{store}: {:?}",
            under(&b, "cache/")
        );
        // Artifacts sets are not touched by cache limits.
        assert_eq!(list(&t, &["--kind", "artifacts"]).len(), 4, "{store}");
    }
}

/// Arguments, variables, and what the one error line says.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Bad values get one line naming the flag and its variable, and exit 2, before anything
/// is read or deleted.
#[test]
fn bad_prune_and_delete_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Bucket::all(tmp.path(), "bad").remove(0);
    let t = task(&b);
    publish(&t, "print(1)\n", "one");
    let before = b.keys();
    let cases: [Case; 8] = [
        (&["prune", "--max-age", "7"], &[], "invalid value \"7\" for --max-age (S3AM_PRUNE_MAX_AGE): not a duration"),
        (&["prune", "--max-age", "1.5d"], &[], "--max-age (S3AM_PRUNE_MAX_AGE)"),
        (&["prune"], &[("S3AM_PRUNE_CACHE_MAX_UNUSED", "soon")], "S3AM_PRUNE_CACHE_MAX_UNUSED (--cache-max-unused)"),
        (&["prune", "--keep-last", "-1"], &[], "invalid value \"-1\" for --keep-last (S3AM_PRUNE_KEEP_LAST): must be a whole number, 0 or more"),
        (&["prune", "--cache-max-size", "10X"], &[], "--cache-max-size (S3AM_PRUNE_CACHE_MAX_SIZE): not a size"),
        (&["prune"], &[("S3AM_PRUNE_INCOMPLETE_MAX_AGE", "0s")], "S3AM_PRUNE_INCOMPLETE_MAX_AGE (--incomplete-max-age): the duration must be positive"),
        (&["delete", "--commit", "HEAD"], &[], "invalid value \"HEAD\" for --commit: not a full commit id"),
        (&["delete", "--code-hash", "abc"], &[], "invalid value \"abc\" for --code-hash: not a code hash"),
    ];
    for (args, vars, needle) in cases {
        let mut env = t.env.clone();
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        common::cli(args, &t.root, &env).fails(2, needle);
    }
    common::cli(&["delete"], &t.root, &t.env).fails(2, "--commit");
    assert_eq!(b.keys(), before);
}

/// Publishers, restores and prunes at once: afterwards, every set that `check` finds,
/// `fetch` downloads and verifies. Never a found set with objects missing.
#[test]
fn prunes_racing_publishers_never_leave_a_found_set_that_cannot_be_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "race") {
        let store = b.name();
        let t = task(&b);
        let mut commits = Vec::new();
        for i in 0..6 {
            commits.push(publish(
                &t,
                &format!("print({})\n", i % 3),
                &format!("n{i}"),
            ));
        }
        tick();
        tick();
        // Every set is older than the prunes' --max-age; each publisher writes its set
        // again from a package directory of its own, while the prunes delete.
        let mut children = Vec::new();
        for (i, c) in commits.iter().enumerate() {
            let dir = t.root.join(format!("pkg{i}"));
            std::fs::create_dir_all(dir.join("lib")).unwrap();
            std::fs::write(dir.join(".commit-hash"), c).unwrap();
            std::fs::write(dir.join("fn.zip"), format!("print({})\n", i % 3)).unwrap();
            std::fs::write(dir.join("lib/x.txt"), "x").unwrap();
            let mut env: BTreeMap<String, String> = t.env.clone();
            env.insert("PACKAGE_DIRECTORY".into(), dir.to_str().unwrap().into());
            env.remove("CODE_HASH_FIND_FILTER");
            children.push(spawn(&t, &["upload"], &env));
            if i % 2 == 0 {
                children.push(spawn(&t, &PRUNE_ALL, &t.env));
            }
        }
        for c in children {
            let out = c.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !stderr.contains("panicked"),
                "{store}: a racing upload or prune failed ({}): {stderr}",
                out.status
            );
        }
        // Whatever the race left: each set `check` finds, `fetch` downloads and verifies.
        let found_and_fetched = |c: &str| {
            git(&t.repo.dir, &["checkout", "-q", "--detach", c]);
            t.reset_packages();
            let r = t.run(&["check"]);
            r.ok();
            if !t.found() {
                return false;
            }
            let dest = t.root.join(common::unique_name("dest"));
            let f: Run = t.run(&["fetch", "--dest", dest.to_str().unwrap()]);
            assert_eq!(
                f.code, 0,
                "{store}: {c} was found but does not fetch: {}\ncheck said: {}",
                f.stderr, r.stderr
            );
            assert_eq!(std::fs::read(dest.join("lib/x.txt")).unwrap(), b"x");
            true
        };
        let found = commits.iter().filter(|c| found_and_fetched(c)).count();
        eprintln!(
            "{store}: {found} of {} sets found after the race",
            commits.len()
        );
        // And nothing the race left keeps a set from being published again: with no prune
        // running, each upload completes its set, which is then found and fetched.
        for (i, c) in commits.iter().enumerate() {
            let mut env: BTreeMap<String, String> = t.env.clone();
            let dir = t.root.join(format!("pkg{i}"));
            env.insert("PACKAGE_DIRECTORY".into(), dir.to_str().unwrap().into());
            env.remove("CODE_HASH_FIND_FILTER");
            common::cli(&["upload"], &t.root, &env).ok();
            assert!(
                found_and_fetched(c),
                "{store}: {c} not found after it was published again"
            );
        }
    }
}

/// Starts the CLI in the task directory, its output captured.
fn spawn(t: &Task, args: &[&str], env: &Env) -> std::process::Child {
    std::process::Command::new(common::CLI)
        .args(args)
        .current_dir(&t.root)
        .env_clear()
        .envs(env)
        .env("HOME", &t.root)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The image's `prune` entrypoint is on PATH and reads the variables, as `check` and
/// `upload` do: a dry run through it prints the plan and deletes nothing.
#[test]
fn the_image_prune_entrypoint_reads_the_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Bucket::all(tmp.path(), "image").remove(0);
    let t = task(&b);
    let c = publish(&t, "print(1)\n", "one");
    tick();
    tick();
    let bin = common::image_root().join("usr/local/bin");
    let mut env = t.env.clone();
    env.insert(
        "PATH".into(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    env.insert("S3AM_PRUNE_MAX_AGE".into(), "1s".into());
    env.insert("S3AM_PRUNE_DRY_RUN".into(), "true".into());
    let before = b.keys();
    let r = common::run_bin(bin.join("prune").to_str().unwrap(), &[], &t.root, &env);
    r.ok();
    assert!(
        r.stdout.contains(&format!("would delete artifacts {c}")),
        "{}",
        r.stdout
    );
    assert_eq!(b.keys(), before);
}

/// The original tool's sets have no manifest: with `--accept-legacy` a prune ages them like
/// complete sets (by `--max-age`), never as incomplete uploads; without it they are kept, as
/// anything this tool did not write (its objects carry no `publisher-id`).
#[test]
fn legacy_sets_are_aged_as_sets_when_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "legacy") {
        let store = b.name();
        let t = task(&b);
        let legacy = "e".repeat(40);
        b.put(&format!("artifacts/{legacy}/fn.zip"), b"old tool");
        tick();
        tick();
        let args = ["prune", "--incomplete-max-age", "1s", "--accept-legacy"];
        let r = t.run(&args);
        r.ok();
        assert_eq!(
            under(&b, &format!("artifacts/{legacy}/")).len(),
            1,
            "{store}: {}",
            r.stdout
        );
        let r = t.run(&[
            "prune",
            "--incomplete-max-age",
            "1s",
            "--accept-legacy",
            "--dry-run",
        ]);
        assert!(
            r.stdout.contains(&format!(
                "keep artifacts {legacy} (1 file, 8 B): legacy set"
            )),
            "{store}: {}",
            r.stdout
        );
        let listed = list(&t, &["--accept-legacy"]);
        assert_eq!(entry(&listed, &legacy)["state"], "legacy", "{store}");
        t.run(&["prune", "--max-age", "1s", "--accept-legacy"]).ok();
        assert!(
            under(&b, &format!("artifacts/{legacy}/")).is_empty(),
            "{store}"
        );
        // Without --accept-legacy the same objects stay: this tool did not write them (no
        // publisher-id), so they are no interrupted upload of its own, and deploys may still
        // point at them. One that this tool wrote goes.
        b.put(&format!("artifacts/{legacy}/fn.zip"), b"old tool");
        let ours = "9".repeat(40);
        b.put_interrupted(&format!("artifacts/{ours}/fn.zip"), b"interrupted");
        tick();
        tick();
        let plain = ["prune", "--incomplete-max-age", "1s"];
        let r = t.run(&[&plain[..], &["--dry-run"]].concat());
        r.ok();
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("keep artifacts {legacy}"))
                    && l.contains("not all written by this tool")),
            "{store}: {}",
            r.stdout
        );
        t.run(&plain).ok();
        assert_eq!(
            under(&b, &format!("artifacts/{legacy}/")).len(),
            1,
            "{store}"
        );
        assert!(
            under(&b, &format!("artifacts/{ours}/")).is_empty(),
            "{store}"
        );
    }
}

/// A plain `prune` (no limits) touches no set, only leftovers older than a day; the leftovers
/// it knows: index entries whose set is gone, and unfinished multipart uploads, each once
/// older than `--incomplete-max-age`.
#[test]
fn leftovers_go_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "leftovers") {
        let store = b.name();
        let t = task(&b);
        let c = publish(&t, "print(1)\n", "one");
        let young = "f".repeat(40);
        b.put_interrupted(&format!("artifacts/{young}/half.zip"), b"half");
        // An entry of 2023 whose set is gone (expired by a lifecycle rule, say).
        let orphan = format!("index/8300000000000-{}", "a".repeat(40));
        b.put(&orphan, b"");
        let upload = b.start_upload(&format!("artifacts/{young}/big.zip"));
        let mut before = b.keys();
        let r = t.run(&["prune", "--dry-run"]);
        assert!(
            r.stdout
                .contains(&format!("would delete index entry {orphan}")),
            "{store}: {}",
            r.stdout
        );
        // The 2023 entry is older than a day; everything else is younger, or a set.
        let r = t.run(&["prune"]);
        r.ok();
        before.retain(|k| *k != orphan);
        assert_eq!(
            b.keys(),
            before,
            "{store}: a plain prune deleted more: {}",
            r.stdout
        );

        tick();
        tick();
        t.run(&["prune", "--incomplete-max-age", "1s"]).ok();
        let keys = b.keys();
        assert!(
            under(&b, &format!("artifacts/{young}/")).is_empty(),
            "{store}"
        );
        assert_eq!(
            under(&b, &format!("artifacts/{c}/")).len(),
            3,
            "{store}: a complete set went"
        );
        assert!(
            keys.iter()
                .any(|k| k.starts_with("index/") && k.ends_with(&c)),
            "{store}: a set's own entry went"
        );
        if let (Some(up), common::bucket::Place::S3(g, name)) = (upload, &b.place) {
            let left = common::rt().block_on(async {
                g.client()
                    .list_multipart_uploads()
                    .bucket(name)
                    .send()
                    .await
                    .unwrap()
            });
            assert!(
                !left
                    .uploads()
                    .iter()
                    .any(|u| u.upload_id() == up.upload_id()),
                "{store}: the unfinished upload was not aborted"
            );
        }
    }
}

/// What `list`, `prune` and `delete` read from the bucket is hostile input: a manifest
/// replayed from another commit, a malformed one and (on `file://`) one over 64 MiB are each
/// shown as invalid, with why, and read no further; keys that name no set are never listed or
/// deleted; a key with terminal escapes never reaches the output unescaped; and listing or
/// planning writes nothing.
#[test]
fn hostile_objects_are_shown_as_what_they_are_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "hostile") {
        let store = b.name();
        let t = task(&b);
        let real = publish(&t, "print(1)\n", "one");
        let hash = code_hash(&t);
        let (replayed, malformed, huge, escaped) = (
            "1".repeat(40),
            "2".repeat(40),
            "3".repeat(40),
            "4".repeat(40),
        );
        b.copy_set(
            &format!("artifacts/{real}/"),
            &format!("artifacts/{replayed}/"),
        );
        b.put(
            &format!("artifacts/{malformed}/.manifest.json"),
            b"{not json",
        );
        b.put(&format!("artifacts/{malformed}/fn.zip"), b"zip");
        if let common::bucket::Place::File(dir) = &b.place {
            // Sparse: 65 MiB on paper, nothing on disk.
            let p = dir.join(format!("artifacts/{huge}/.manifest.json"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::File::create(&p)
                .unwrap()
                .set_len(65 << 20)
                .unwrap();
        }
        // S3 cannot list a key with a control character at all (its XML cannot carry
        // one): that is left to file://, where the key is a file name like any other.
        let file = matches!(b.place, common::bucket::Place::File(_));
        let evil = if file {
            "evil\u{1b}[2J.zip"
        } else {
            "evil.zip"
        };
        b.put(&format!("artifacts/{escaped}/{evil}"), b"x");
        let junk = [
            if file {
                "artifacts/\u{1b}[2J/x"
            } else {
                "artifacts/zz/x"
            },
            "artifacts/not-a-commit/.manifest.json",
            "cache/zz/x",
        ];
        for k in junk {
            b.put(k, b"junk");
        }
        let before = b.keys();

        let sets = list(&t, &["--verify"]);
        let why = |id: &str| {
            let e = entry(&sets, id);
            assert_eq!(e["state"], "invalid", "{store}: {id}: {e}");
            e["why"].as_str().unwrap().to_string()
        };
        assert!(
            why(&replayed).contains(&format!("names commit {real}")),
            "{store}"
        );
        assert!(why(&malformed).contains("not valid JSON"), "{store}");
        if matches!(b.place, common::bucket::Place::File(_)) {
            assert!(why(&huge).contains("over 64 MiB"), "{store}");
        }
        assert_eq!(entry(&sets, &real)["state"], "complete", "{store}");
        assert_eq!(entry(&sets, &escaped)["state"], "incomplete", "{store}");
        for r in [
            t.run(&["list", "--verify"]),
            t.run(&["list", "--verify", "--json"]),
            t.run(&[
                "prune",
                "--max-age",
                "1s",
                "--incomplete-max-age",
                "1s",
                "--dry-run",
            ]),
        ] {
            r.ok();
            assert!(
                !r.stdout.contains('\u{1b}') && !r.stderr.contains('\u{1b}'),
                "{store}: an escape got out"
            );
            assert!(
                !r.stdout.contains("not-a-commit") && !r.stdout.contains("cache zz"),
                "{store}: {}",
                r.stdout
            );
        }
        assert_eq!(
            b.keys(),
            before,
            "{store}: listing or planning wrote or deleted"
        );

        // A prune takes the artifacts sets (the forged ones as refused sets, older than
        // --incomplete-max-age) and never the junk (nor the cache entry: no cache limit was
        // given), nor a planted set of objects this tool did not write, with a manifest
        // (malformed) or without: no upload of its own left them.
        tick();
        tick();
        t.run(&["prune", "--max-age", "1s", "--incomplete-max-age", "1s"])
            .ok();
        let kept = |k: &String| {
            k.starts_with("index/")
                || k.starts_with(&format!("cache/{hash}/"))
                || k.ends_with(".conditional-write-probe")
        };
        let left: Vec<String> = b.keys().into_iter().filter(|k| !kept(k)).collect();
        let planted = format!("artifacts/{escaped}/{evil}");
        let mut junk: Vec<String> = junk.iter().map(|k| k.to_string()).collect();
        junk.push(planted);
        junk.push(format!("artifacts/{malformed}/.manifest.json"));
        junk.push(format!("artifacts/{malformed}/fn.zip"));
        junk.sort();
        assert_eq!(left, junk, "{store}");
    }
}

/// The task environment for `prefix` in `b`: `S3AM_PREFIX`, or on S3 with `url` the
/// `s3://bucket/prefix` form of `PACKAGE_ASSETS_BUCKET` (`file://` has no such form).
fn under_prefix(t: &Task, b: &Bucket, prefix: &str, url: bool) -> Env {
    let mut env = t.env.clone();
    match (&b.place, url) {
        (common::bucket::Place::S3(_, name), true) => {
            env.insert(
                "PACKAGE_ASSETS_BUCKET".into(),
                format!("s3://{name}/{prefix}"),
            );
        }
        _ => {
            env.insert("S3AM_PREFIX".into(), prefix.into());
        }
    }
    env
}

/// Checks HEAD under `env` and, unless found, builds and uploads; whether it was found.
fn publish_under(t: &Task, env: &Env, content: &str) -> bool {
    t.reset_packages();
    common::cli(&["check"], &t.root, env).ok();
    let found = t.found();
    if !found {
        t.build(&[("fn.zip", content.as_bytes()), ("lib/x.txt", b"x")]);
        common::cli(&["upload"], &t.root, env).ok();
    }
    found
}

/// Keys not under the `artifacts/`, `cache/` or `index/` of `prefix` (`""`: the bucket root).
fn outside(b: &Bucket, prefix: &str) -> Vec<String> {
    let own = |k: &String| {
        ["artifacts/", "cache/", "index/"]
            .iter()
            .any(|d| k.starts_with(&format!("{prefix}{d}")))
    };
    b.keys().into_iter().filter(|k| !own(k)).collect()
}

/// The unfinished multipart uploads' keys (none on `file://`).
fn pending_uploads(b: &Bucket) -> Vec<String> {
    match &b.place {
        common::bucket::Place::S3(g, name) => common::rt().block_on(async {
            let page = g
                .client()
                .list_multipart_uploads()
                .bucket(name)
                .send()
                .await
                .unwrap();
            page.uploads()
                .iter()
                .map(|u| u.key().unwrap().to_string())
                .collect()
        }),
        common::bucket::Place::File(_) => Vec::new(),
    }
}

/// Teams sharing a bucket under prefixes (`S3AM_PREFIX`, `s3://bucket/prefix`,
/// `source.prefix`) never see or touch each other's keys: the same commit published under
/// `team-a`, `team-b` and `team` (a string prefix of both) lands under each prefix's
/// `artifacts/`, `cache/` and `index/`, and nowhere else; the cache of one is not another's,
/// nor the bucket root's;
/// the resource's check and `list` see their prefix only; `delete` and `prune` under `team`,
/// under `team-a` and at the bucket root remove only their own sets and leftovers (not another
/// prefix's unfinished upload); and `team-b`'s set still fetches afterwards.
#[test]
fn prefixes_keep_teams_apart() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "prefix") {
        let store = b.name();
        let t = task(&b);
        let a = under_prefix(&t, &b, "team-a", false);
        let tb = under_prefix(&t, &b, "team-b", true);
        let team = under_prefix(&t, &b, "team", false);
        let c = t.repo.head();
        assert!(!publish_under(&t, &a, "print(1)\n"), "{store}");
        let hash = code_hash(&t);
        // team-a's cache entry is not team-b's: the same code builds again there.
        assert!(
            !publish_under(&t, &tb, "print(1)\n"),
            "{store}: team-b found team-a's set or cache"
        );
        assert!(!publish_under(&t, &team, "print(1)\n"), "{store}");
        // team-b alone has a second commit, an interrupted upload and an unfinished multipart
        // upload.
        t.repo.write("src/main.py", "print(2)\n");
        let c2 = t.repo.commit("two");
        assert!(!publish_under(&t, &tb, "print(2)\n"), "{store}");
        let half = "d".repeat(40);
        b.put_interrupted(&format!("team-b/artifacts/{half}/half.zip"), b"half");
        b.start_upload(&format!("team-b/artifacts/{half}/big.zip"));

        // Every key is under a prefix's artifacts/, cache/ or index/.
        for k in b.keys() {
            let (p, rest) = k.split_once('/').unwrap();
            assert!(["team-a", "team-b", "team"].contains(&p), "{store}: {k}");
            let top = rest.split('/').next().unwrap();
            assert!(
                ["artifacts", "cache", "index"].contains(&top),
                "{store}: {k}"
            );
        }
        for p in ["team-a", "team-b", "team"] {
            let keys = b.keys();
            for want in [
                format!("{p}/artifacts/{c}/.manifest.json"),
                format!("{p}/cache/{hash}/.manifest.json"),
            ] {
                assert!(keys.contains(&want), "{store}: no {want}: {keys:#?}");
            }
            assert!(
                keys.iter()
                    .any(|k| k.starts_with(&format!("{p}/index/")) && k.ends_with(&c)),
                "{store}: {p} has no index entry for {c}"
            );
        }

        // The second commit at the bucket root too: what is under a prefix is not the root's,
        // nor the root's under a prefix.
        assert!(!publish_under(&t, &t.env, "print(2)\n"), "{store}");
        let hash2 = code_hash(&t);

        // The resource's check and `list` see their own prefix only.
        let check = |prefix: &str| {
            let r = common::resource(
                "check",
                &t.root.join("rc"),
                &serde_json::json!({"source": b.source(serde_json::json!({"prefix": prefix}))}),
            );
            r.ok();
            serde_json::from_str::<Vec<Value>>(&r.stdout).unwrap()
        };
        assert_eq!(
            check("team-a"),
            [serde_json::json!({"commit": c})],
            "{store}"
        );
        assert_eq!(
            check("team-b"),
            [serde_json::json!({"commit": c2})],
            "{store}"
        );
        assert!(check("team-c").is_empty(), "{store}");
        assert_eq!(check(""), [serde_json::json!({"commit": c2})], "{store}");
        let listed = |env: &Env| {
            let r = common::cli(&["list", "--json"], &t.root, env);
            r.ok();
            let sets: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
            let mut ids: Vec<String> = sets
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        };
        let mut own = vec![c.clone(), hash.clone()];
        own.sort();
        assert_eq!(
            listed(&a),
            own,
            "{store}: team-a lists another prefix's sets"
        );
        assert_eq!(
            listed(&team),
            own,
            "{store}: team lists another prefix's sets"
        );

        // A delete under a prefix with nothing under it fails and touches nothing; one under
        // `team` takes team's set and index entry only.
        let before = b.keys();
        let empty = under_prefix(&t, &b, "team-c", false);
        common::cli(&["delete", "--commit", &c], &t.root, &empty).fails(1, "nothing to delete");
        assert_eq!(b.keys(), before, "{store}: a failed delete deleted");
        let others = outside(&b, "team/");
        common::cli(&["delete", "--commit", &c], &t.root, &team).ok();
        assert_eq!(outside(&b, "team/"), others, "{store}: delete under team");
        assert!(
            !b.keys()
                .iter()
                .any(|k| k.starts_with("team/") && k.contains(&c)),
            "{store}: {:#?}",
            b.keys()
        );

        // Prunes that would take everything of their own: under `team`, `team-a`, the root.
        tick();
        tick();
        let uploads = pending_uploads(&b);
        common::cli(&PRUNE_ALL, &t.root, &team).ok();
        assert_eq!(outside(&b, "team/"), others, "{store}: prune under team");
        assert!(
            !b.keys()
                .iter()
                .any(|k| k.starts_with(&format!("team/cache/{hash}/"))),
            "{store}: team's cache entry stays"
        );
        let others = outside(&b, "team-a/");
        common::cli(&PRUNE_ALL, &t.root, &a).ok();
        assert_eq!(
            outside(&b, "team-a/"),
            others,
            "{store}: prune under team-a"
        );
        assert!(
            !b.keys()
                .iter()
                .any(|k| k.starts_with("team-a/") && (k.contains(&c) || k.contains(&hash))),
            "{store}: {:#?}",
            b.keys()
        );
        let others = outside(&b, "");
        common::cli(&PRUNE_ALL, &t.root, &t.env).ok();
        assert_eq!(outside(&b, ""), others, "{store}: prune at the root");
        assert!(
            !b.keys()
                .iter()
                .any(|k| !k.starts_with("team") && (k.contains(&c2) || k.contains(&hash2))),
            "{store}: {:#?}",
            b.keys()
        );
        assert_eq!(
            pending_uploads(&b),
            uploads,
            "{store}: a prune aborted another prefix's upload"
        );

        // team-b's sets are whole: the first commit is found and fetches.
        assert_eq!(
            check("team-b"),
            [serde_json::json!({"commit": c2})],
            "{store}"
        );
        git(&t.repo.dir, &["checkout", "-q", "--detach", &c]);
        t.reset_packages();
        let r = common::cli(&["check"], &t.root, &tb);
        r.ok();
        assert!(t.found(), "{store}: team-b's set is gone: {}", r.stderr);
        let dest = t.root.join("dest");
        common::cli(&["fetch", "--dest", dest.to_str().unwrap()], &t.root, &tb).ok();
        assert_eq!(std::fs::read(dest.join("fn.zip")).unwrap(), b"print(1)\n");
    }
}

// Attacks on prune and delete by a pipeline that can PUT any object in the bucket and holds
// no signing key (issue 33). Each test failed before its fix.

/// A task on `b` whose pipeline signs with `key` and trusts only it: a trusted pipeline.
fn signed_task(b: &Bucket, keys: &std::path::Path) -> Task {
    let key = common::Key::new(keys, "main");
    let trusted = keys.join("trusted");
    std::fs::write(&trusted, format!("{}\n", key.public_line)).unwrap();
    let mut t = task(b);
    t.env.insert(
        "S3AM_SIGNING_KEY".into(),
        key.private.to_string_lossy().into(),
    );
    t.env
        .insert("S3AM_TRUSTED_KEYS".into(), trusted.to_string_lossy().into());
    t
}

/// The lines of a dry run's plan that start with `start`.
fn plan_lines<'a>(r: &'a Run, start: &str) -> Vec<&'a str> {
    r.stdout.lines().filter(|l| l.starts_with(start)).collect()
}

/// Attacks 1 and 2: with trusted keys, `--keep-last` counts only verified, trusted sets, in
/// the order their signed `completed_ms` gives. Two planted manifests newer than every set
/// once took the two places of `--keep-last 2` (and A and B were deleted); A's manifest PUT
/// again with the same bytes (its signature still valid) once made A "the newest" by the
/// store's time, and `--keep-last 1` deleted the newer B.
#[test]
fn keep_last_counts_only_trusted_sets_by_their_signed_time() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "keeplast") {
        let store = b.name();
        let keys = tmp
            .path()
            .join(format!("keys-{}", common::unique_name("k")));
        std::fs::create_dir_all(&keys).unwrap();
        let t = signed_task(&b, &keys);
        let a = publish(&t, "print(1)\n", "one");
        tick();
        let newer = publish(&t, "print(2)\n", "two");
        tick();
        let manifest = format!("artifacts/{a}/.manifest.json");
        let bytes = b.get(&manifest).unwrap();
        b.put(&manifest, &bytes);
        let junk = [
            format!("{}1", "e".repeat(39)),
            format!("{}2", "e".repeat(39)),
        ];
        for j in &junk {
            b.put(&format!("artifacts/{j}/.manifest.json"), b"{}");
        }
        tick();
        tick();
        let r = t.run(&["prune", "--keep-last", "2", "--max-age", "2s", "--dry-run"]);
        r.ok();
        for id in [&a, &newer] {
            let kept = plan_lines(&r, &format!("keep artifacts {id}"));
            assert!(
                kept.len() == 1 && kept[0].contains("one of the 2 newest"),
                "{store}: {id}: {}",
                r.stdout
            );
        }
        for j in &junk {
            let kept = plan_lines(&r, &format!("keep artifacts {j}"));
            assert!(
                kept.len() == 1 && kept[0].contains("untrusted"),
                "{store}: {j}: {}",
                r.stdout
            );
        }
        t.run(&["prune", "--keep-last", "1", "--max-age", "2s"])
            .ok();
        assert!(
            under(&b, &format!("artifacts/{a}/")).is_empty(),
            "{store}: A is the older by its signed time: {:?}",
            b.keys()
        );
        assert!(
            b.get(&format!("artifacts/{newer}/.manifest.json"))
                .is_some(),
            "{store}: the newer signed set was pruned: {:?}",
            b.keys()
        );
        let dest = t.root.join(common::unique_name("out"));
        t.run(&[
            "fetch",
            "--commit",
            &newer,
            "--dest",
            dest.to_str().unwrap(),
        ])
        .ok();
        assert!(dest.join("fn.zip").exists(), "{store}");
        for j in &junk {
            assert!(
                b.get(&format!("artifacts/{j}/.manifest.json")).is_some(),
                "{store}: a refused set goes only by --incomplete-max-age (a day)"
            );
        }
    }
}

/// Attack 3: a planted cache entry never counts in `--cache-max-size`. A junk manifest
/// beside a 20 B object, the most recently written entry, once filled the cap and evicted a
/// signed 10 B entry.
#[test]
fn planted_cache_entries_never_take_the_place_of_signed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "cachecap") {
        let store = b.name();
        let keys = tmp
            .path()
            .join(format!("keys-{}", common::unique_name("k")));
        std::fs::create_dir_all(&keys).unwrap();
        let t = signed_task(&b, &keys);
        publish(&t, "print(1)\n", "one");
        let hash = code_hash(&t);
        tick();
        let junk = "e".repeat(64);
        b.put(&format!("cache/{junk}/.manifest.json"), b"{}");
        b.put_interrupted(&format!("cache/{junk}/big.zip"), &[b'x'; 20]);
        let r = t.run(&["prune", "--cache-max-size", "25", "--dry-run"]);
        r.ok();
        assert!(
            plan_lines(&r, &format!("keep cache {hash}"))
                .first()
                .is_some_and(|l| l.contains("last used")),
            "{store}: {}",
            r.stdout
        );
        t.run(&["prune", "--cache-max-size", "25"]).ok();
        assert!(
            b.get(&format!("cache/{hash}/.manifest.json")).is_some(),
            "{store}: the signed entry was evicted: {:?}",
            b.keys()
        );
        // Signed entries still go by their size: a cap below the entry evicts it.
        t.run(&["prune", "--cache-max-size", "5"]).ok();
        assert!(
            under(&b, &format!("cache/{hash}/")).is_empty(),
            "{store}: {:?}",
            b.keys()
        );
    }
}

/// Attack 4: a set the original tool wrote (objects, no manifest) stays a legacy set when
/// objects carrying this tool's `publisher-id` are planted beside it. Prune once looked at
/// the first asset in sorted order only, and deleted the whole set.
#[test]
fn a_legacy_set_is_kept_with_objects_planted_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "legacyplant") {
        let store = b.name();
        let t = task(&b);
        let legacy = "d".repeat(40);
        b.put(&format!("artifacts/{legacy}/fn.zip"), b"old tool");
        b.put(&format!("artifacts/{legacy}/lib/x.txt"), b"x");
        b.put_interrupted(&format!("artifacts/{legacy}/000-planted.zip"), b"planted");
        tick();
        tick();
        let plain = ["prune", "--incomplete-max-age", "1s"];
        let r = t.run(&[&plain[..], &["--dry-run"]].concat());
        r.ok();
        assert!(
            plan_lines(&r, &format!("keep artifacts {legacy}"))
                .first()
                .is_some_and(|l| l.contains("not all written by this tool")),
            "{store}: {}",
            r.stdout
        );
        t.run(&plain).ok();
        assert_eq!(
            under(&b, &format!("artifacts/{legacy}/")).len(),
            3,
            "{store}: {:?}",
            b.keys()
        );
        // A planted manifest makes it no less the original tool's.
        b.put(&format!("artifacts/{legacy}/.manifest.json"), b"{}");
        tick();
        tick();
        t.run(&plain).ok();
        assert!(
            b.get(&format!("artifacts/{legacy}/fn.zip")).is_some(),
            "{store}: {:?}",
            b.keys()
        );
    }
}

/// Attack 10: a team publishing under `S3AM_PREFIX=artifacts/<40 hex>` writes keys below
/// what the root's layout takes for a set's place. A root-level `list` once showed that
/// team's tree as one incomplete set, and `prune` deleted the team's signed set and its
/// index entry; `delete --commit <40 hex>` at the root would have too.
#[test]
fn another_prefixs_tree_is_never_a_set_of_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "nested") {
        let store = b.name();
        let t = task(&b);
        let outer = "f".repeat(40);
        let team = under_prefix(&t, &b, &format!("artifacts/{outer}"), false);
        assert!(!publish_under(&t, &team, "team"), "{store}");
        let before = b.keys();
        assert!(
            before
                .iter()
                .any(|k| k.starts_with(&format!("artifacts/{outer}/index/"))),
            "{store}: {before:?}"
        );
        let listed = list(&t, &[]);
        assert!(
            listed.iter().all(|s| s["id"] != outer.as_str()),
            "{store}: {listed:#?}"
        );
        tick();
        tick();
        t.run(&PRUNE_ALL).ok();
        t.run(&["delete", "--commit", &outer])
            .fails(1, "nothing to delete");
        assert_eq!(b.keys(), before, "{store}");
        assert!(
            publish_under(&t, &team, "team"),
            "{store}: the team's set is found"
        );
    }
}

/// Attack 9: sizes whose sum does not fit in 64 bits (three sparse objects of 2^63 - 1
/// bytes, on `file://` in tmpfs) are shown as overflowing, never as a wrapped number; `list`
/// and `prune --dry-run` once exited 101 with "attempt to add with overflow".
#[test]
fn sizes_too_large_to_add_are_shown_as_such() {
    let shm = std::path::Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "this test needs tmpfs at /dev/shm (sparse 8 EiB files)"
    );
    let tmp = tempfile::tempdir_in(shm).unwrap();
    let bucket = tmp.path().join("bucket");
    let set = bucket.join(format!("artifacts/{}", "7".repeat(40)));
    std::fs::create_dir_all(&set).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::File::create(set.join(name))
            .unwrap()
            .set_len(i64::MAX as u64)
            .unwrap();
    }
    let mut env = Env::new();
    env.insert(
        "PACKAGE_ASSETS_BUCKET".into(),
        format!("file://{}", bucket.display()),
    );
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    let sets = list(&t, &[]);
    assert_eq!(sets[0]["bytes"], u64::MAX, "{sets:#?}");
    let r = t.run(&["list"]);
    r.ok();
    assert!(r.stdout.contains("the sizes overflow"), "{}", r.stdout);
    let r = t.run(&["prune", "--incomplete-max-age", "1s", "--dry-run"]);
    r.ok();
    assert!(r.stdout.contains("the sizes overflow"), "{}", r.stdout);
}

/// A prune the store refuses part-way, key by key as S3 does (DeleteObjects answered 200 with an
/// `AccessDenied` for each key), fails with one line that says what a second run does with what is
/// left, and leaves each set complete (its manifest and every object it names) or without its
/// manifest: never a manifest whose objects are gone. Run again, it finishes.
#[test]
fn a_prune_the_store_refuses_part_way_leaves_no_set_half_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for allowed in 0..3u64 {
        for b in Bucket::all(tmp.path(), &format!("cut{allowed}")) {
            // The local store's refusals are the engine's unit test's.
            let Place::S3(g, _) = &b.place else { continue };
            let store = b.name();
            let t = task(&b);
            let commits: Vec<String> = (0..3)
                .map(|i| publish(&t, &format!("print({i})\n"), &format!("n{i}")))
                .collect();
            tick();
            tick();
            let p = Proxy::start(
                g.addr(),
                Faults {
                    refuse_deletes_after: Some(allowed),
                    ..Faults::default()
                },
            );
            let mut env = t.env.clone();
            env.insert("AWS_ENDPOINT_URL".into(), p.url());
            let r = common::cli(&PRUNE_ALL, &t.root, &env);
            let refused = p.stats.keys_refused.load(Ordering::SeqCst);
            let keys = b.keys();
            let mut kept = 0;
            for c in &commits {
                let root = format!("artifacts/{c}/");
                let Some(m) = b.get(&format!("{root}.manifest.json")) else {
                    continue;
                };
                kept += 1;
                let m: Value = serde_json::from_slice(&m).unwrap();
                for f in m["files"].as_array().unwrap() {
                    let key = format!("{root}{}", f["path"].as_str().unwrap());
                    assert!(
                        keys.contains(&key),
                        "{store}, {allowed} deletes allowed: {c}'s manifest is there, {key} is gone"
                    );
                }
            }
            eprintln!(
                "{store}: {allowed} delete requests allowed: {refused} keys refused, {kept} of 3 sets whole"
            );
            // What a second run does with what is left: everything while no manifest went,
            // the rest once it is older than --incomplete-max-age after.
            let advice = match kept {
                3 => "no set lost an object; run it again",
                _ => "no reader counts what is left; a prune removes it once it is older than --incomplete-max-age",
            };
            if refused > 0 {
                r.fails(1, "could not be deleted");
                assert!(r.stderr.contains(advice), "{store}: {}", r.stderr);
            } else {
                r.ok();
            }
            if allowed == 0 {
                assert!(refused > 0 && kept == 3, "{store}: nothing was refused");
            }
            // Run again, with the store taking every delete, it finishes.
            // (Objects left without their manifest are an unfinished set's, older than
            // `--incomplete-max-age`.)
            common::cli(&PRUNE_ALL, &t.root, &t.env).ok();
            for c in &commits {
                let left = under(&b, &format!("artifacts/{c}/"));
                assert!(left.is_empty(), "{store}: {left:?}");
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 3,
        "an S3 bucket to refuse deletes in, for each cut"
    );
}
