//! Faults against the real Garage server: injected 503/500s, connection resets mid-body, a
//! blackholed endpoint, SIGKILL at random points, four concurrent publishers of one commit,
//! and a cache entry modified after its manifest. Each test bounds its own time.

use crate::common;
use crate::common::proxy;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, Run, S3Server, Task};
use proxy::{Faults, GetCorruption, Proxy};

/// What a test needs of the S3 store beyond what every store under test does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Plain S3: every store.
    S3,
    /// `If-None-Match: *` enforced on PUT: SeaweedFS (Garage ignores it).
    ConditionalWrites,
}

/// The server, when it has what the test needs. A test that needs conditional writes does
/// not run on Garage, which ignores them; there it checks that premise instead (a second PUT
/// with `If-None-Match: *` to a key that exists succeeds), so the day Garage enforces them the
/// test fails and asks to run there too, instead of passing having checked nothing.
fn server(needs: Needs) -> Option<S3Server> {
    let g = S3Server::get();
    if needs == Needs::ConditionalWrites && g.store != common::Store::SeaweedFs {
        let bucket = g.new_bucket("premise");
        let put = || {
            common::rt()
                .block_on(
                    g.client()
                        .put_object()
                        .bucket(&bucket)
                        .key("k")
                        .if_none_match("*")
                        .body(b"x".to_vec().into())
                        .send(),
                )
                .map(drop)
                .map_err(|e| e.to_string())
        };
        put().expect("the first conditional write");
        assert!(
            put().is_ok(),
            "{:?} now refuses a conditional write to a key that exists: run the conditional-write tests on it too",
            g.store
        );
        return None;
    }
    Some(g)
}

/// A task directory whose repo has one source file, with small multipart thresholds and an
/// environment that reaches `g` through `endpoint`.
fn task(g: &S3Server, bucket: &str, endpoint: &str) -> Task {
    let mut env = g.env(bucket);
    env.insert("AWS_ENDPOINT_URL".into(), endpoint.into());
    for (k, v) in common::SMALL_PARTS
        .into_iter()
        .chain([("CODE_HASH_FIND_FILTER", "src"), ("S3AM_TIMEOUT", "60")])
    {
        env.insert(k.into(), v.into());
    }
    Task::new(env, &[("src/main.py", "print(1)\n")])
}

/// Writes `n` assets of varied sizes, `big` of them over the multipart threshold; returns
/// their contents by relative path.
fn build(t: &Task, n: usize, big: usize, tag: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let len = if i < big {
            (7 << 20) + i * 4099
        } else {
            1 + (i * 7919) % 65_536
        };
        let body: Vec<u8> = (0..len)
            .map(|j| {
                (j as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(i as u32) as u8
            })
            .chain(tag.bytes())
            .collect();
        let rel = format!("d{}/f{i}.bin", i % 5);
        t.build(&[(&rel, &body)]);
        files.insert(rel, body);
    }
    files
}

/// Fetches the set of HEAD into a fresh directory and compares it byte for byte.
fn fetch_and_compare(t: &Task, files: &BTreeMap<String, Vec<u8>>) {
    let dest = t.root.join(format!("fetched-{}", common::unique_name("f")));
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
    for (rel, body) in files {
        let got = std::fs::read(dest.join(rel)).unwrap();
        assert!(got == *body, "{rel} differs after a verified download");
    }
}

/// Starts one `upload` per package directory at once, each a separate process with the task's
/// environment; stderr is piped for the caller to read.
fn spawn_uploads(t: &Task, dirs: &[std::path::PathBuf]) -> Vec<std::process::Child> {
    dirs.iter()
        .map(|d| {
            let mut env = t.env.clone();
            env.insert("PACKAGE_DIRECTORY".into(), d.to_str().unwrap().into());
            Command::new(common::CLI)
                .arg("upload")
                .current_dir(&t.root)
                .env_clear()
                .envs(&env)
                .env("PATH", std::env::var("PATH").unwrap())
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn assert_clean_failure(r: &Run) {
    assert_ne!(r.code, 0);
    let errors = r.stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one error line: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn transfers_survive_30_percent_server_errors() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("err");
    let p = Proxy::start(
        g.addr(),
        Faults {
            error_rate: 0.3,
            ..Faults::default()
        },
    );
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    let files = build(&t, 200, 3, "a");
    let up = t.run(&["upload"]);
    up.ok();
    fetch_and_compare(&t, &files);
    // A new commit with the same code: restored by (multipart) server-side copy through faults.
    std::fs::remove_dir_all(t.packages()).unwrap();
    t.repo.write("README.md", "docs\n");
    t.repo.commit("docs");
    let r = t.run(&["check"]);
    r.ok();
    assert!(t.found(), "{}", r.stderr);
    fetch_and_compare(&t, &files);
    let injected = p
        .stats
        .errors_injected
        .load(std::sync::atomic::Ordering::Relaxed);
    let total = p.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("30% errors: {injected} injected over {total} requests");
    assert!(
        injected >= 100,
        "only {injected} faults injected of {total}"
    );
}

#[test]
fn transfers_survive_or_fail_cleanly_on_connection_resets() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("reset");
    let p = Proxy::start(
        g.addr(),
        Faults {
            reset_rate: 0.05,
            ..Faults::default()
        },
    );
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    let files = build(&t, 120, 2, "r");
    let up = t.run(&["upload"]);
    let resets = p
        .stats
        .resets_injected
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(resets > 0, "no reset was injected during the upload");
    // One request in twenty reset. A request the SDK retries; a body cut on the way is sent
    // or read again from the start, 4 times in all (`BODY_ATTEMPTS`): at one in ten, one
    // file of 120 once lost all 4 (one run of the suite in about ten); halving the rate makes
    // that 16 times rarer, so a fetch that fails here has stopped retrying.
    assert_eq!(
        up.code, 0,
        "the upload gave up through resets: {}",
        up.stderr
    );
    // Downloads through resets: retried from the start of the file.
    let dest = t.root.join("fetched");
    let r = t.run(&["fetch", "--dest", dest.to_str().unwrap()]);
    let during_fetch = p
        .stats
        .resets_injected
        .load(std::sync::atomic::Ordering::Relaxed)
        - resets;
    assert!(during_fetch > 0, "no reset was injected during the fetch");
    assert_eq!(r.code, 0, "the fetch gave up through resets: {}", r.stderr);
    for (rel, body) in &files {
        assert!(std::fs::read(dest.join(rel)).unwrap() == *body, "{rel}");
    }
    // Without faults the same set verifies.
    p.set(Faults::default());
    fetch_and_compare(&t, &files);
}

/// A multipart upload whose completion the store carried out but whose answer was lost (the
/// connection reset once the store had answered): the SDK sends the completion again, the
/// store answers `NoSuchUpload` (the upload is now the object), and the upload still succeeds,
/// since the object carries exactly this upload's metadata. It once failed the whole upload.
#[test]
fn a_completion_whose_answer_was_lost_still_completes_the_upload() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("lost");
    let p = Proxy::start(
        g.addr(),
        Faults {
            lose_completions: 1,
            ..Faults::default()
        },
    );
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    // One file over the (small) multipart threshold, a few small ones.
    let files = build(&t, 6, 1, "lost");
    let up = t.run(&["upload"]);
    assert_eq!(
        p.stats
            .resets_injected
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "no completion answer was lost: {}",
        up.stderr
    );
    assert_eq!(up.code, 0, "the upload failed: {}", up.stderr);
    t.reset_packages();
    t.run(&["check"]).ok();
    assert!(t.found(), "the set is not complete");
    fetch_and_compare(&t, &files);
}

#[test]
fn a_blackholed_endpoint_fails_within_the_timeout() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("hole");
    let p = Proxy::start(
        g.addr(),
        Faults {
            blackhole: true,
            ..Faults::default()
        },
    );
    let mut t = task(&g, &bucket, &p.url());
    t.env.insert("S3AM_TIMEOUT".into(), "8".into());
    for args in [&["check"][..], &["upload"][..]] {
        if args[0] == "upload" {
            build(&t, 3, 0, "h");
            std::fs::write(t.packages().join(".commit-hash"), t.repo.head()).unwrap();
        }
        let started = Instant::now();
        let r = t.run(args);
        let took = started.elapsed();
        assert_clean_failure(&r);
        assert!(r.stderr.contains("timed out after 8 s"), "{}", r.stderr);
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
    }
    assert!(g
        .keys(&bucket)
        .iter()
        .all(|k| !k.ends_with(".manifest.json")));
}

#[test]
fn sigkill_at_random_points_never_leaves_a_complete_looking_set() {
    let Some(g) = server(Needs::S3) else { return };
    // A little latency stretches the upload so the kills land in every phase.
    let p = Proxy::start(
        g.addr(),
        Faults {
            latency: Duration::from_millis(3),
            ..Faults::default()
        },
    );
    let trials = 12;
    let mut outcomes = Vec::new();
    let mut full = Duration::from_secs(3);
    for trial in 0..trials {
        let bucket = g.new_bucket("kill");
        let t = task(&g, &bucket, &p.url());
        t.run(&["check"]).ok();
        let files = build(&t, 150, 1, &format!("k{trial}"));
        let mut env = t.env.clone();
        env.insert("PATH".into(), std::env::var("PATH").unwrap());
        if trial == 0 {
            // Measure a whole upload first to spread the kill points over it.
            let started = Instant::now();
            let status = spawn_upload(&t.root, &env).wait().unwrap();
            full = started.elapsed();
            assert!(
                status.success(),
                "the uninterrupted upload failed: {status}"
            );
            std::fs::remove_file(t.packages().join(".found")).ok();
            t.run(&["check"]).ok();
            assert!(t.found(), "the uninterrupted upload left no complete set");
            fetch_and_compare(&t, &files);
            continue;
        }
        let delay = full.mul_f64(trial as f64 / trials as f64);
        let mut child = spawn_upload(&t.root, &env);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        // What the next check sees must be true: found only if a verified download succeeds.
        std::fs::remove_file(t.packages().join(".found")).ok();
        t.run(&["check"]).ok();
        let found = t.found();
        outcomes.push((delay, status.success(), found));
        if !found {
            std::fs::remove_file(t.packages().join(".found")).ok();
            // The rerun completes the set.
            std::fs::write(t.packages().join(".commit-hash"), t.repo.head()).unwrap();
            t.run(&["upload"]).ok();
            std::fs::remove_file(t.packages().join(".found")).ok();
            t.run(&["check"]).ok();
            assert!(t.found(), "trial {trial}: the rerun must complete the set");
        }
        fetch_and_compare(&t, &files);
    }
    eprintln!("kill trials (delay, finished before the kill, found after): {outcomes:?}");
    assert!(
        outcomes.iter().any(|o| !o.2),
        "no kill landed before the manifest"
    );
}

fn spawn_upload(root: &Path, env: &Env) -> std::process::Child {
    Command::new(common::CLI)
        .arg("upload")
        .current_dir(root)
        .env_clear()
        .envs(env)
        .env("HOME", root)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn four_concurrent_publishers_leave_one_consistent_set() {
    let Some(g) = server(Needs::S3) else { return };
    for round in 0..3 {
        let bucket = g.new_bucket("race");
        let p = Proxy::start(
            g.addr(),
            Faults {
                latency: Duration::from_millis(1),
                ..Faults::default()
            },
        );
        let t = task(&g, &bucket, &p.url());
        t.run(&["check"]).ok();
        let commit = t.repo.head();
        let code_hash = std::fs::read_to_string(t.packages().join(".code-hash")).unwrap();
        // Four package directories with different content for the same commit.
        let mut dirs = Vec::new();
        let mut contents = Vec::new();
        for i in 0..4 {
            let dir = t.root.join(format!("pkg{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(".commit-hash"), &commit).unwrap();
            std::fs::write(dir.join(".code-hash"), &code_hash).unwrap();
            let mut files = BTreeMap::new();
            for f in 0..40 {
                let body = format!("publisher {i} file {f} {}", "x".repeat(f * 100));
                let rel = format!("f{f:02}.txt");
                std::fs::write(dir.join(&rel), &body).unwrap();
                files.insert(rel, body.into_bytes());
            }
            dirs.push(dir);
            contents.push(files);
        }
        let children = spawn_uploads(&t, &dirs);
        let mut codes = Vec::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if !out.status.success() {
                eprintln!("a publisher failed:\n{stderr}");
                assert!(
                    stderr.contains("conflict"),
                    "a failure must be a reported conflict: {stderr}"
                );
            } else if std::env::var_os("S3AM_TEST_VERBOSE").is_some() {
                eprintln!("a publisher succeeded:\n{stderr}");
            }
            assert!(!stderr.contains("panicked"));
            codes.push(out.status.code().unwrap_or(-1));
        }
        assert!(
            codes.contains(&0),
            "at least one publisher succeeds: {codes:?}"
        );
        // The set verifies, and it is one publisher's, never a mix.
        let dest = t.root.join("fetched");
        t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
        let got: BTreeMap<String, Vec<u8>> = contents[0]
            .keys()
            .map(|rel| (rel.clone(), std::fs::read(dest.join(rel)).unwrap()))
            .collect();
        let winner = contents.iter().position(|c| *c == got);
        assert!(winner.is_some(), "round {round}: the set mixes publishers");
        eprintln!("round {round}: exit codes {codes:?}, publisher {winner:?}'s set won");
        // The cache entry, if filled, verifies as well.
        std::fs::remove_dir_all(t.packages()).unwrap();
        t.repo.write("README.md", format!("{round}\n").as_str());
        t.repo.commit("docs");
        let r = t.run(&["check"]);
        r.ok();
        if t.found() {
            let dest = t.root.join("fetched2");
            t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
        }
    }
}

#[test]
fn a_cache_entry_modified_after_its_manifest_is_not_restored() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("tamper");
    let t = task(&g, &bucket, &g.endpoint.clone());
    t.run(&["check"]).ok();
    let files = build(&t, 5, 0, "t");
    t.run(&["upload"]).ok();
    let code_hash = std::fs::read_to_string(t.packages().join(".code-hash")).unwrap();
    // Same size, other content: only the entity tag gives it away.
    let (rel, body) = files.iter().next().unwrap();
    let mut evil = body.clone();
    evil[0] ^= 0xff;
    g.put(&bucket, &format!("cache/{code_hash}/{rel}"), &evil);

    std::fs::remove_dir_all(t.packages()).unwrap();
    t.repo.write("README.md", "docs\n");
    let c2 = t.repo.commit("docs");
    let r = t.run(&["check"]);
    r.ok();
    assert!(!t.found(), "a tampered entry must not be restored");
    assert!(
        r.stderr
            .contains("1 of 5 objects rewritten after the manifest was written"),
        "{}",
        r.stderr
    );
    assert!(!g
        .keys(&bucket)
        .iter()
        .any(|k| k.starts_with(&format!("artifacts/{c2}/"))));
    // The build runs, and its upload rewrites the damaged entry.
    let files = build(&t, 5, 0, "t");
    let r = t.run(&["upload"]);
    r.ok();
    assert!(r.stderr.contains("rewriting it"), "{}", r.stderr);
    std::fs::remove_dir_all(t.packages()).unwrap();
    t.repo.write("README.md", "more docs\n");
    t.repo.commit("docs 2");
    t.run(&["check"]).ok();
    assert!(t.found(), "the rewritten entry restores");
    fetch_and_compare(&t, &files);
}

#[test]
fn a_publish_repairs_a_complete_set_whose_objects_changed() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("repair");
    let t = task(&g, &bucket, &g.endpoint.clone());
    t.run(&["check"]).ok();
    let files = build(&t, 4, 0, "r");
    t.run(&["upload"]).ok();
    let c = t.repo.head();
    let rel = files.keys().next().unwrap();
    g.put(
        &bucket,
        &format!("artifacts/{c}/{rel}"),
        b"overwritten by hand",
    );
    let dest = t.root.join("bad");
    // Refused from the listing, before a byte is downloaded.
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).fails(
        1,
        "is damaged: 1 of 4 objects of another size than the manifest says",
    );
    let r = t.run(&["upload"]);
    r.ok();
    assert!(r.stderr.contains("publishing it again"), "{}", r.stderr);
    fetch_and_compare(&t, &files);
}

/// Eight publishers of one commit at once, on a store that enforces `If-None-Match: *`
/// (SeaweedFS; Garage ignores the header, and the test above covers convergence there). Each
/// publisher's assets have their own names, so none replaces another's objects and every one
/// reaches the manifest write at about the same moment (100 ms per request through the proxy
/// keeps them in step): the store alone picks the winner. Exactly one manifest write succeeds;
/// every other publisher that reached it is refused with a 412, keeps the winner's set after
/// verifying it, and exits 0.
#[test]
fn eight_publishers_and_the_store_refuses_all_but_one_manifest() {
    let Some(g) = server(Needs::ConditionalWrites) else {
        return;
    };
    const PUBLISHERS: usize = 8;
    let bucket = g.new_bucket("cond");
    let p = Proxy::start(
        g.addr(),
        Faults {
            latency: Duration::from_millis(100),
            ..Faults::default()
        },
    );
    let mut t = task(&g, &bucket, &p.url());
    // No cache: only the artifacts manifest is written, once per publisher.
    t.env.remove("CODE_HASH_FIND_FILTER");
    t.run(&["check"]).ok();
    let commit = t.repo.head();
    let mut dirs = Vec::new();
    let mut contents = Vec::new();
    for i in 0..PUBLISHERS {
        let dir = t.root.join(format!("pkg{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".commit-hash"), &commit).unwrap();
        let mut files = BTreeMap::new();
        for f in 0..6 {
            let body = format!("publisher {i} file {f} {}", "y".repeat(f * 5000));
            let rel = format!("p{i}/f{f}.txt");
            std::fs::create_dir_all(dir.join(format!("p{i}"))).unwrap();
            std::fs::write(dir.join(&rel), &body).unwrap();
            files.insert(rel, body.into_bytes());
        }
        dirs.push(dir);
        contents.push(files);
    }
    let children = spawn_uploads(&t, &dirs);
    let (mut wrote, mut refused, mut skipped) = (0, 0, 0);
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "every publisher exits 0:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let count = |needle: &str| stderr.lines().filter(|l| l.contains(needle)).count();
        let (w, r, s) = (
            count("wrote manifest"),
            count("the store refused our manifest"),
            count("already complete (another pipeline published it)"),
        );
        assert_eq!(w + r + s, 1, "one outcome per publisher:\n{stderr}");
        if r == 1 {
            assert_eq!(
                count("was completed by another publisher and verifies"),
                1,
                "a refused publisher verifies the winner's set:\n{stderr}"
            );
        }
        (wrote, refused, skipped) = (wrote + w, refused + r, skipped + s);
    }
    eprintln!(
        "{PUBLISHERS} publishers: {wrote} manifest write succeeded, {refused} refused with 412, {skipped} found the set complete before uploading"
    );
    assert_eq!(wrote, 1, "exactly one manifest write succeeds");
    assert_eq!(refused + skipped, PUBLISHERS - 1);
    assert!(
        refused >= PUBLISHERS / 2,
        "the publishers ran in step, so most reach the manifest write: {refused} refused"
    );
    // The set verifies and is exactly one publisher's.
    let dest = t.root.join("fetched");
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
    let got: Vec<String> = walk(&dest);
    let winner = contents
        .iter()
        .position(|c| c.keys().cloned().collect::<Vec<_>>() == got)
        .expect("the fetched set is one publisher's");
    for (rel, body) in &contents[winner] {
        assert!(std::fs::read(dest.join(rel)).unwrap() == *body, "{rel}");
    }
}

/// The relative paths of the regular files under `dir`, sorted.
fn walk(dir: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if !rel.starts_with('.') {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// Every download is verified: one byte of a GET's body flipped on the way to the tool (past
/// any check of the store's) never lands, whether in a small file downloaded whole or in a
/// range of a large one. The fetch fails with one line naming the file, and leaves neither it
/// nor a temporary file behind; once the proxy stops, the set fetches byte for byte.
#[test]
fn a_download_corrupted_in_flight_never_lands() {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("corruptget");
    let p = Proxy::start(g.addr(), Faults::default());
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    // f0.bin is over the multipart threshold (read in ranges), f1.bin and f2.bin are small.
    let files = build(&t, 3, 1, "corruptget");
    t.run(&["upload"]).ok();
    for name in ["f1.bin", "f0.bin"] {
        p.faults.lock().unwrap().corrupt_gets = Some(GetCorruption {
            path_contains: format!("/{name}"),
            count: 1,
        });
        let before = p.stats.gets_corrupted.load(Relaxed);
        let dest = t.root.join(format!("corrupt-{name}"));
        let r = t.run(&["fetch", "--dest", dest.to_str().unwrap()]);
        assert_eq!(p.stats.gets_corrupted.load(Relaxed) - before, 1, "{name}");
        r.fails(1, &format!("{name} does not match its manifest"));
        assert_clean_failure(&r);
        let left: Vec<String> = walk(&dest)
            .into_iter()
            .filter(|f| f.contains(name) || f.contains("s3am-partial"))
            .collect();
        assert!(left.is_empty(), "{name}: left behind {left:?}");
    }
    p.faults.lock().unwrap().corrupt_gets = None;
    fetch_and_compare(&t, &files);
}

/// One byte of a part's body flipped on the way to the store: the store refuses the part,
/// whose CRC64/NVME (sent in the part's header) no longer matches, the tool writes the file
/// again, and the set verifies byte for byte.
#[test]
fn a_part_corrupted_in_flight_is_refused_and_sent_again() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("corrupt");
    let p = Proxy::start(
        g.addr(),
        Faults {
            corrupt_parts: 1,
            ..Faults::default()
        },
    );
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    let files = build(&t, 3, 1, "corrupt");
    let r = t.run(&["upload"]);
    r.ok();
    assert_eq!(
        p.stats.corrupted.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one part was corrupted"
    );
    let refused: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("again (1 of"))
        .collect();
    assert_eq!(refused.len(), 1, "the store refused it once:\n{}", r.stderr);
    eprintln!("{:?}: {}", g.store, refused[0]);
    fetch_and_compare(&t, &files);
}

/// `S3AM_SKIP_CHECKSUMS`, for a store that refuses them: no upload request carries a checksum,
/// neither a single PUT nor a multipart upload's parts, and the set still verifies on download
/// (against the manifest). Without it, a single PUT carries its SHA-256 and a part its
/// CRC64NVME.
#[test]
fn skip_checksums_sends_none_and_the_set_still_verifies() {
    let Some(g) = server(Needs::S3) else { return };
    for skip in [false, true] {
        let bucket = g.new_bucket(if skip { "skipsum" } else { "withsum" });
        let p = Proxy::start(g.addr(), Faults::default());
        let mut t = task(&g, &bucket, &p.url());
        if skip {
            t.env.insert("S3AM_SKIP_CHECKSUMS".into(), "true".into());
        }
        t.run(&["check"]).ok();
        let files = build(&t, 3, 1, "skipsum");
        t.run(&["upload"]).ok();
        let heads = p.stats.heads.lock().unwrap().clone();
        // Every write of the upload (DeleteObjects, which S3 requires a checksum of, is none).
        let writes: Vec<String> = heads
            .iter()
            .filter(|h| h.starts_with("PUT ") || h.starts_with("POST "))
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let carrying = |needle: &str| writes.iter().filter(|h| h.contains(needle)).count();
        if skip {
            let with: Vec<&String> = writes
                .iter()
                .filter(|h| {
                    h.contains("\r\nx-amz-checksum-") || h.contains("x-amz-sdk-checksum-algorithm")
                })
                .collect();
            assert!(
                with.is_empty(),
                "checksums sent with S3AM_SKIP_CHECKSUMS: {with:#?}"
            );
        } else {
            assert!(
                carrying("\r\nx-amz-checksum-sha256:") >= 2,
                "the small files' PUTs: {writes:#?}"
            );
            assert!(
                carrying("\r\nx-amz-checksum-crc64nvme:") >= 2,
                "the large file's parts: {writes:#?}"
            );
        }
        fetch_and_compare(&t, &files);
    }
}

/// A store that refuses CRC64NVME multipart uploads (the proxy answers 400 for it, as older
/// stores do) gets SHA-256 part checksums instead, after one warning; the set verifies.
#[test]
fn a_store_without_crc64nvme_gets_sha256_parts() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("nocrc");
    let p = Proxy::start(
        g.addr(),
        Faults {
            refuse_crc64_multipart: true,
            ..Faults::default()
        },
    );
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    let files = build(&t, 4, 2, "nocrc");
    let r = t.run(&["upload"]);
    r.ok();
    let warned = r
        .stderr
        .lines()
        .filter(|l| l.contains("refused a CRC64NVME multipart upload"))
        .count();
    assert_eq!(warned, 1, "one warning, then SHA-256 parts:\n{}", r.stderr);
    let big = files.keys().find(|k| k.ends_with("f0.bin")).unwrap();
    let key = format!("artifacts/{}/{big}", t.repo.head());
    let sha256 = common::rt().block_on(async {
        let h = g
            .client()
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert!(h.checksum_crc64_nvme().is_none(), "{:?}", h);
        h.checksum_sha256().map(str::to_string)
    });
    assert!(
        sha256.is_some_and(|c| c.ends_with("-2")),
        "a composite SHA-256 of 2 parts"
    );
    fetch_and_compare(&t, &files);
}

/// A refusal is sent once; a failure that may pass is retried. A store answers every PUT of
/// an asset with 400 InvalidArgument: the upload fails at once with one line, having sent
/// that PUT once. It answers the first PUTs with 503: the upload retries them and succeeds.
#[test]
fn a_permanent_refusal_is_sent_once_and_a_503_is_retried() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("refused");
    let p = Proxy::start(g.addr(), Faults::default());
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    t.build(&[("fn.zip", b"zip")]);
    let key = format!("artifacts/{}/fn.zip", t.repo.head());
    let puts = || {
        p.stats
            .heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.starts_with("PUT ") && h.lines().next().unwrap().contains(&key))
            .count()
    };
    p.set(Faults {
        fail_puts: Some(proxy::PutFailure {
            path_contains: key.clone(),
            status: 400,
            code: "InvalidArgument",
            count: 0,
        }),
        ..Faults::default()
    });
    let r = t.run(&["upload"]);
    assert_clean_failure(&r);
    assert!(
        r.stderr.contains("HTTP 400 InvalidArgument"),
        "{}",
        r.stderr
    );
    assert_eq!(puts(), 1, "a 400 was sent again:\n{}", r.stderr);
    assert!(
        !r.stderr.contains("again ("),
        "retried a refusal:\n{}",
        r.stderr
    );

    p.stats.heads.lock().unwrap().clear();
    p.stats
        .puts_failed
        .store(0, std::sync::atomic::Ordering::Relaxed);
    p.set(Faults {
        fail_puts: Some(proxy::PutFailure {
            path_contains: key.clone(),
            status: 503,
            code: "ServiceUnavailable",
            count: 3,
        }),
        ..Faults::default()
    });
    t.run(&["upload"]).ok();
    assert_eq!(puts(), 4, "three 503s, then the PUT that went through");
    let out = t.root.join("out");
    t.run(&["fetch", "--dest", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(out.join("fn.zip")).unwrap(), b"zip");
}

#[test]
fn throttling_shrinks_the_transfers_in_flight_and_says_so_once() {
    let Some(g) = server(Needs::S3) else { return };
    let bucket = g.new_bucket("throttle");
    // A distant store (20 ms per request) that sheds half the requests over 24 in flight.
    let p = Proxy::start(
        g.addr(),
        Faults {
            latency: Duration::from_millis(20),
            throttle_above: 24,
            throttle_rate: 0.5,
            ..Faults::default()
        },
    );
    let t = task(&g, &bucket, &p.url());
    t.run(&["check"]).ok();
    let mut files = BTreeMap::new();
    for i in 0..600 {
        let rel = format!("d{}/f{i}.txt", i % 7);
        let body = format!("asset {i}\n").repeat(50).into_bytes();
        t.build(&[(&rel, &body)]);
        files.insert(rel, body);
    }
    let started = Instant::now();
    let up = t.run(&["upload"]);
    up.ok();
    let told: Vec<&str> = up
        .stderr
        .lines()
        .filter(|l| l.contains("the store is throttling"))
        .collect();
    assert_eq!(told.len(), 1, "said once, not per request: {}", up.stderr);
    assert!(told[0].contains("down from"), "{}", told[0]);
    let throttled = p.stats.throttled.load(std::sync::atomic::Ordering::Relaxed);
    let peak = p
        .stats
        .peak_in_flight
        .load(std::sync::atomic::Ordering::Relaxed);
    let samples = p.stats.in_flight_samples.lock().unwrap().clone();
    let tail = &samples[samples.len() * 2 / 3..];
    let tail_mean = tail.iter().sum::<u64>() as f64 / tail.len() as f64;
    eprintln!(
        "throttling: {throttled} answered 503 over {} requests; peak {peak} in flight, {tail_mean:.1} on average in the last third; upload took {:.1} s",
        samples.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(throttled > 0, "the proxy shed some requests");
    assert!(
        peak > 24,
        "more than the store's limit were in flight first: {peak}"
    );
    assert!(
        tail_mean < peak as f64 * 0.75,
        "fewer in flight once the store throttled: peak {peak}, later {tail_mean:.1}"
    );
    fetch_and_compare(&t, &files);
}
