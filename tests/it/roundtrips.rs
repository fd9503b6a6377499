//! Round trips: what each operation asks the store, and which requests wait for which.
//!
//! The built binary talks to the store through the test proxy, which holds every request
//! back 100 ms (a distant store). The proxy records when each request arrived and when its
//! answer went back; a request sent before any other was answered is in round trip 1, and
//! any other is one round trip after the latest one answered before it was sent (the
//! probe's answers aside: it runs on a side path of its own). Each test
//! asserts the whole sequence, so a request added, or made to wait for another, fails it.
//! On a store that enforces `If-None-Match` (SeaweedFS) a publish skips the check of its
//! objects after the manifest; on one that ignores it (Garage) it keeps it: one round trip
//! more. The last two read the client's own trace (`S3AM_TRACE`) instead: how many files it
//! had in flight at once, against the limit set and the window's start.

use crate::common;
use crate::common::proxy;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{S3Server, Store, Task};
use proxy::{Faults, Proxy};

use crate::network::Tls;

/// What a request was, in a few words.
fn kind(e: &proxy::Exchange) -> String {
    let mut words = e.request.split(' ');
    let method = words.next().unwrap_or("");
    let target = words.next().unwrap_or("");
    if target.contains("list-type=2") {
        return "LIST".into();
    }
    if method == "GET" && target.contains("?uploads") {
        return "LIST uploads".into();
    }
    if method == "POST" && target.contains("?delete") {
        return "DELETE objects".into();
    }
    match (
        method,
        target.contains("uploadId="),
        target.contains("?uploads"),
    ) {
        ("POST", false, true) => return "CREATE upload".into(),
        ("PUT", true, _) if !e.copy => return "PUT part".into(),
        ("POST", true, _) => return "COMPLETE upload".into(),
        ("DELETE", true, _) => return "ABORT upload".into(),
        _ => {}
    }
    let what = if target.contains(".conditional-write-probe") {
        "probe"
    } else if target.contains(".last-used") {
        "last-used"
    } else if target.contains(".manifest.json") && target.ends_with(".sig") {
        "signature"
    } else if target.contains(".manifest.json") {
        "manifest"
    } else if target.contains("/index/") {
        "index"
    } else if target.contains("/cache/") {
        "cache file"
    } else {
        "file"
    };
    let method = if e.copy { "COPY" } else { method };
    format!("{method} {what}")
}

/// The requests of one run by round trip: "1: GET manifest, LIST | 2: PUT file x5 | ...".
fn sequence(p: &Proxy) -> String {
    let mut rounds: BTreeMap<usize, BTreeMap<String, usize>> = BTreeMap::new();
    // The probe runs in the background beside the uploads; it gates only the decision after
    // the manifest, answered long before that, so its answers are not what others wait for.
    let all = p.stats.round_trips(|e| kind(e).ends_with("probe"));
    if let Some(t0) = all.first().map(|(e, _)| e.sent) {
        for (e, d) in &all {
            eprintln!(
                "  {d} {:>5} {:>5} {}",
                (e.sent - t0).as_millis(),
                (e.answered - t0).as_millis(),
                kind(e)
            );
        }
    }
    for (e, depth) in all {
        *rounds
            .entry(depth)
            .or_default()
            .entry(kind(&e))
            .or_default() += 1;
    }
    rounds
        .into_iter()
        .map(|(depth, kinds)| {
            let kinds: Vec<String> = kinds
                .into_iter()
                .map(|(k, n)| if n == 1 { k } else { format!("{k} x{n}") })
                .collect();
            format!("{depth}: {}", kinds.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs the binary in `t` with `args` through `p`, from a clean record; the sequence.
fn trips(p: &Proxy, t: &Task, args: &[&str]) -> String {
    p.stats.exchanges.lock().unwrap().clear();
    t.run(args).ok();
    let s = sequence(p);
    eprintln!("{args:?}: {s}");
    s
}

fn proxy_for(g: &S3Server) -> Proxy {
    Proxy::start(
        g.addr(),
        Faults {
            latency: Duration::from_millis(100),
            ..Faults::default()
        },
    )
}

/// The store the tests started, a fresh bucket on it, the 100 ms proxy in front, and a task
/// reaching the store through it (with caching on when `caching`); `None` without a store.
fn rig(tag: &str, caching: bool) -> Option<(S3Server, Proxy, Task)> {
    let g = S3Server::get();
    let bucket = g.new_bucket(tag);
    let p = proxy_for(&g);
    let mut env = g.env(&bucket);
    env.insert("AWS_ENDPOINT_URL".into(), p.url());
    if caching {
        env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    }
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    Some((g, p, t))
}

/// Asserts a publish's sequence: `arbitrated` where the store enforces `If-None-Match`
/// (SeaweedFS), followed by `unchecked` where it ignores it (Garage), which must list the set
/// again after its manifest.
fn assert_by_store(g: &S3Server, got: &str, arbitrated: &str, unchecked: &str) {
    match g.store {
        Store::SeaweedFs => assert_eq!(got, arbitrated),
        _ => assert_eq!(got, format!("{arbitrated}{unchecked}")),
    }
}

fn build_five(t: &Task) {
    for i in 0..5 {
        t.build(&[(&format!("f{i}.zip"), format!("asset {i}\n").as_bytes())]);
    }
}

/// A small publish sends its files beside its read of the set: their requests go at once,
/// their bodies kept back until the read has said to write the set (the test proxy answers
/// each 100 ms after its head arrived, so they count in the read's round trip; a store far
/// away answers a write a round trip after its body, once the read is in: see bench/).
#[test]
fn a_small_publish_with_caching_off_sends_its_files_beside_its_read() {
    let Some((g, p, t)) = rig("rt-off", false) else {
        return;
    };
    // The manifest and the listing at once: found means fetchable, and a missing set is said.
    assert_eq!(trips(&p, &t, &["check"]), "1: GET manifest, LIST");
    build_five(&t);
    let publish = trips(&p, &t, &["upload"]);
    // Read the set and list it at once, beside the writes of the files, held (and ask the
    // store, once per process, whether it enforces If-None-Match); write the manifest and
    // the index entry. Before: "1: GET manifest, LIST | 2: PUT file x5, PUT probe | 3: ...".
    let common =
        "1: GET manifest, LIST, PUT file x5, PUT probe | 2: PUT index, PUT manifest, PUT probe";
    // Where the store arbitrates, nothing is checked after the manifest; where it does not,
    // the files are listed again.
    assert_by_store(&g, &publish, common, " | 3: LIST");
    // Found: one round trip, the objects checked against the manifest.
    t.reset_packages();
    assert_eq!(trips(&p, &t, &["check"]), "1: GET manifest, LIST");
    assert!(t.found());
}

#[test]
fn a_small_publish_with_caching_on_writes_the_cache_beside_the_artifacts() {
    let Some((g, p, t)) = rig("rt-on", true) else {
        return;
    };
    // Missing: the set, and beside it the cache entry (once the code hash is known), each
    // read and listed at once. Before: "1: GET manifest, LIST | 2: GET manifest, LIST".
    assert_eq!(trips(&p, &t, &["check"]), "1: GET manifest x2, LIST x2");
    build_five(&t);
    let publish = trips(&p, &t, &["upload"]);
    // Both sets read at once, beside the files' writes to both, held (a small set's bytes
    // cost less than a round trip of copying); both manifests.
    let common = "1: GET manifest x2, LIST x2, PUT cache file x5, PUT file x5, PUT probe | 2: PUT index, PUT manifest x2, PUT probe";
    assert_by_store(&g, &publish, common, " | 3: LIST x2");
    // Download: the manifest, then every file and the set's listing at once.
    let dest = t.root.join("dest");
    let fetch = trips(&p, &t, &["fetch", "--dest", dest.to_str().unwrap()]);
    assert_eq!(fetch, "1: GET manifest | 2: GET file x5, LIST");
    // Another commit of the same code restores from the cache (read beside the set), and
    // records the entry's use beside the copies. Before: "1: GET manifest, LIST | 2: GET
    // manifest, LIST | 3: COPY file x5, ...".
    t.repo.write("README", "docs\n");
    t.repo.commit("docs only");
    t.reset_packages();
    let restore = trips(&p, &t, &["check"]);
    assert!(t.found());
    let common = "1: GET manifest x2, LIST x2 | 2: COPY file x5, PUT last-used, PUT probe | 3: PUT index, PUT manifest";
    // Where the store arbitrates, the probe object is there since the upload: refused at once.
    assert_by_store(&g, &restore, common, ", PUT probe | 4: LIST");
}

/// A set of more keys than a listing page: its manifest names them, so once its first page
/// is in, the rest of its listing goes in slices at once (one round trip however many
/// pages), not page after page: for a check that finds it, and for a restore, which reads
/// the cache entry so before its copies.
#[test]
fn a_large_sets_listing_takes_one_round_trip_after_its_first_page() {
    let Some((_g, p, mut t)) = rig("rt-pages", true) else {
        return;
    };
    t.run(&["check"]).ok();
    let names: Vec<String> = (0..2500)
        .map(|i| format!("d{}/f{i:04}.txt", i % 5))
        .collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"x".as_slice()))
        .collect();
    t.build(&files);
    t.run(&["upload"]).ok();
    // Found, caching off (with it on, the cache entry's read goes beside, and is dropped):
    // 2,500 keys and the manifest, in slices of 900 after the first page. Before: "1: GET
    // manifest, LIST | 2: LIST | 3: LIST".
    t.reset_packages();
    let filter = t.env.remove("CODE_HASH_FIND_FILTER").unwrap();
    assert_eq!(
        trips(&p, &t, &["check"]),
        "1: GET manifest, LIST | 2: LIST x3"
    );
    assert!(t.found());
    // Another commit of the same code: the set's listing (empty) and the cache entry's first
    // page, then the entry's other slices, then the copies. Before: "1: GET manifest x2,
    // LIST x2 | 2: LIST | 3: LIST | 4: COPY ...".
    t.env.insert("CODE_HASH_FIND_FILTER".into(), filter);
    t.repo.write("README", "docs\n");
    t.repo.commit("docs only");
    t.reset_packages();
    let restore = trips(&p, &t, &["check"]);
    assert!(t.found(), "the set was not restored");
    assert!(
        restore.starts_with("1: GET manifest x2, LIST x2 | 2: LIST x3 | 3: COPY file x"),
        "{restore}"
    );
}

/// A check that finds its set says nothing of the cache entry it read beside it: what that
/// read logs is kept back until the set's read has decided, and dropped when the set is
/// found. Here the set (2,500 files) takes a round trip more to read than the entry (one
/// stray object and no manifest), whose warning would otherwise come first.
#[test]
fn a_found_check_says_nothing_of_the_cache_entry_it_read_beside() {
    let Some((g, p, mut t)) = rig("rt-quiet", true) else {
        return;
    };
    t.run(&["check"]).ok();
    let names: Vec<String> = (0..2500).map(|i| format!("f{i:04}.txt")).collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"x".as_slice()))
        .collect();
    t.build(&files);
    t.run(&["upload"]).ok();
    // Another salt, another code hash: its entry holds a stray object and no manifest.
    t.env.insert("CODE_HASH_SALT".into(), "another".into());
    let hash = t.run(&["hash"]).ok().stdout.trim().to_string();
    assert_eq!(hash.len(), 64, "{hash}");
    let bucket = t.env["PACKAGE_ASSETS_BUCKET"].clone();
    g.put(&bucket, &format!("cache/{hash}/stray.bin"), b"stray");
    t.reset_packages();
    let found = trips(&p, &t, &["check"]);
    assert!(
        found.starts_with("1: GET manifest x2, LIST x2 | 2: LIST x3"),
        "{found}"
    );
    assert!(t.found());
    let r = t.run(&["check"]);
    r.ok();
    assert!(
        !r.stderr.contains("stray") && !r.stderr.contains("no manifest"),
        "a found check spoke of the cache entry it did not use:\n{}",
        r.stderr
    );
    // Missing (another commit of the same code), the same entry's read is said.
    t.repo.write("README", "docs\n");
    t.repo.commit("docs only");
    t.reset_packages();
    let r = t.run(&["check"]);
    r.ok();
    assert!(!t.found());
    assert!(r.stderr.contains("no manifest"), "{}", r.stderr);
}

#[test]
fn a_larger_publish_copies_to_the_cache_server_side_after_the_artifacts() {
    let Some((g, p, t)) = rig("rt-big", true) else {
        return;
    };
    t.run(&["check"]).ok();
    // Over 8 MiB: its bytes are sent once, and the cache entry is copied server-side.
    let body: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    t.build(&[("site.tgz", &body)]);
    let publish = trips(&p, &t, &["upload"]);
    // The probe goes once the file is hashed, on a side path: hashing 9 MiB in the test build
    // takes about as long as the read's round trip here, so its round is left out (in a
    // fresh clone's CI run it went a round early, 225 ms against the read's 233 ms).
    let publish = publish.replace(", PUT probe", "");
    let common = "1: GET manifest x2, LIST x2 | 2: PUT file | 3: COPY cache file | 4: PUT index, PUT manifest x2";
    assert_by_store(&g, &publish, common, " | 5: LIST x2");
}

/// A set with a file in parts starts that file's upload beside its read of the set: the
/// multipart upload is created, and its parts sent, while the read is on its way, and it
/// completes once the read has said to write the set (nothing is visible before). Through a
/// proxy a second away, so that hashing the file takes less than the read's round trip.
#[test]
fn a_large_file_starts_uploading_beside_the_read_of_its_set() {
    let g = S3Server::get();
    let bucket = g.new_bucket("rt-held");
    let p = Proxy::start(
        g.addr(),
        Faults {
            latency: Duration::from_secs(1),
            ..Faults::default()
        },
    );
    let mut env = g.env(&bucket);
    env.insert("AWS_ENDPOINT_URL".into(), p.url());
    env.insert("S3AM_MULTIPART_THRESHOLD".into(), "6M".into());
    env.insert("S3AM_PART_SIZE".into(), "5M".into());
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    t.run(&["check"]).ok();
    let big: Vec<u8> = (0..9u32 << 20).map(|i| (i % 251) as u8).collect();
    t.build(&[("big.bin", &big)]);
    let publish = trips(&p, &t, &["upload"]);
    // Before: "1: GET manifest, LIST | 2: CREATE upload | 3: PUT part x2 | 4: COMPLETE ...".
    let common = "1: CREATE upload, GET manifest, LIST, PUT probe | 2: PUT part x2, PUT probe | 3: COMPLETE upload | 4: PUT index, PUT manifest";
    assert_by_store(&g, &publish, common, " | 5: LIST");
    t.reset_packages();
    assert_eq!(trips(&p, &t, &["check"]), "1: GET manifest, LIST");
    assert!(t.found());
}

#[test]
fn a_set_of_over_a_thousand_files_is_listed_again_in_one_round_trip() {
    let Some((g, p, t)) = rig("rt-many", false) else {
        return;
    };
    t.run(&["check"]).ok();
    for i in 0..1200 {
        t.build(&[(&format!("d{}/f{i:04}.txt", i % 3), b"x".as_slice())]);
    }
    let publish = trips(&p, &t, &["upload"]);
    // What went out once the manifest was written: with 1,200 uploads, some slow, the deepest
    // round trip may hold a straggling upload rather than the manifest.
    let trips = p.stats.round_trips(|e| kind(e).ends_with("probe"));
    let written = trips
        .iter()
        .find(|(e, _)| kind(e) == "PUT manifest")
        .map(|(e, _)| e.answered)
        .expect("a manifest was written");
    let after: Vec<(String, usize)> = trips
        .iter()
        .filter(|(e, _)| e.sent >= written)
        .map(|(e, d)| (kind(e), *d))
        .collect();
    match g.store {
        // Nothing is listed after the manifest.
        Store::SeaweedFs => assert!(after.is_empty(), "{after:?} after the manifest: {publish}"),
        // Its 1,200 keys are known, so both pages of the listing go at once.
        _ => {
            assert_eq!(after.len(), 2, "{after:?} after the manifest: {publish}");
            assert!(
                after.iter().all(|(k, d)| k == "LIST" && *d == after[0].1),
                "{after:?}"
            );
        }
    }
}

/// A task that takes the store to enforce `If-None-Match` (as it does for AWS S3).
fn taken_to_arbitrate(t: &mut Task) {
    t.env
        .insert("S3AM_CONDITIONAL_WRITES_ENFORCED".into(), "true".into());
}

#[test]
fn a_small_publish_writes_first_where_the_store_is_known_to_arbitrate() {
    let Some((g, p, mut t)) = rig("rt-first", false) else {
        return;
    };
    taken_to_arbitrate(&mut t);
    t.run(&["check"]).ok();
    build_five(&t);
    let publish = trips(&p, &t, &["upload"]);
    // Each file goes out with If-None-Match: * beside the read of the set: a key that
    // exists is refused, so a set completed meanwhile keeps its objects. Then the manifest.
    let common =
        "1: GET manifest, LIST, PUT file x5, PUT probe | 2: PUT index, PUT manifest, PUT probe";
    // Garage ignores the header: the probe says so, and the set is listed after the manifest
    // as usual (with a warning that the setting is wrong for this store).
    assert_by_store(&g, &publish, common, " | 3: LIST");
    t.reset_packages();
    assert_eq!(trips(&p, &t, &["check"]), "1: GET manifest, LIST");
    assert!(t.found());
    // The probe tells a store that ignores the header, and the log says the setting is wrong.
    t.repo.write("README", "docs\n");
    t.repo.commit("docs");
    t.reset_packages();
    t.run(&["check"]).ok();
    build_five(&t);
    let r = t.run(&["upload"]);
    r.ok();
    let warned = r
        .stderr
        .contains("ignores conditional writes, yet it was taken to enforce them");
    assert_eq!(warned, g.store != Store::SeaweedFs, "{}", r.stderr);
}

#[test]
fn a_small_publish_with_caching_on_writes_both_sets_first() {
    let Some((g, p, mut t)) = rig("rt-first-on", true) else {
        return;
    };
    taken_to_arbitrate(&mut t);
    t.run(&["check"]).ok();
    build_five(&t);
    let publish = trips(&p, &t, &["upload"]);
    let common = "1: GET manifest x2, LIST x2, PUT cache file x5, PUT file x5, PUT probe | 2: PUT index, PUT manifest x2, PUT probe";
    assert_by_store(&g, &publish, common, " | 3: LIST x2");
    let dest = t.root.join("dest");
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
}

/// The spans of the `S3AM_TRACE` file at `trace` whose operation is `op` and whose key is an
/// asset's (no manifest, index entry or probe): (start, end) in µs.
fn asset_spans(trace: &std::path::Path, op: &str) -> Vec<(u64, u64)> {
    asset_attempts(trace, op)
        .into_iter()
        .map(|(start, end, _)| (start, end))
        .collect()
}

/// [`asset_spans`], each with its status (`None`: no answer, a failed attempt).
fn asset_attempts(trace: &std::path::Path, op: &str) -> Vec<(u64, u64, Option<u64>)> {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(trace).unwrap()).unwrap();
    doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == op)
        .filter(|e| {
            let line = e["args"]["request"].as_str().unwrap_or("");
            !(line.contains(".manifest.json")
                || line.contains(".conditional-write-probe")
                || line.contains("/index/"))
        })
        .map(|e| {
            let ts = e["ts"].as_u64().unwrap();
            (
                ts,
                ts + e["dur"].as_u64().unwrap(),
                e["args"]["status"].as_u64(),
            )
        })
        .collect()
}

/// The first answer the store gave to `attempts` (a failed attempt, which a loaded machine
/// may see among hundreds of connections opened at once, ends without one), and how many
/// were sent before it.
fn sent_before_the_first_answer(attempts: &[(u64, u64, Option<u64>)]) -> usize {
    let first_answer = attempts
        .iter()
        .filter(|(_, _, status)| status.is_some_and(|s| (200..300).contains(&s)))
        .map(|(_, end, _)| *end)
        .min()
        .expect("an attempt was answered");
    attempts
        .iter()
        .filter(|(start, _, _)| *start < first_answer)
        .count()
}

/// The most spans that were open at once (a span that ended as another started is not).
fn most_at_once(spans: &[(u64, u64)]) -> usize {
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The task of `rig`, writing a trace of each run to a file of its own; returns its path.
fn traced(t: &mut Task, name: &str) -> std::path::PathBuf {
    let trace = t.root.join(format!("{name}.trace.json"));
    t.env
        .insert("S3AM_TRACE".into(), trace.to_str().unwrap().into());
    trace
}

#[test]
fn the_concurrency_set_caps_the_files_in_flight() {
    let Some((_g, _p, mut t)) = rig("rt-cap", false) else {
        return;
    };
    t.env.insert("S3AM_CONCURRENCY".into(), "3".into());
    t.run(&["check"]).ok();
    for i in 0..12 {
        t.build(&[(&format!("f{i:02}.zip"), format!("asset {i}\n").as_bytes())]);
    }
    let up = traced(&mut t, "upload");
    t.run(&["upload"]).ok();
    let puts = asset_spans(&up, "PutObject");
    assert_eq!(puts.len(), 12);
    assert_eq!(most_at_once(&puts), 3, "uploads at once: {puts:?}");
    let down = traced(&mut t, "fetch");
    let out = t.root.join("out");
    t.run(&["fetch", "--dest", out.to_str().unwrap()]).ok();
    let gets = asset_spans(&down, "GetObject");
    assert_eq!(gets.len(), 12);
    // A download's span ends when its headers arrive (its body follows), so this is the least
    // the window held; never more than asked.
    assert_eq!(most_at_once(&gets), 3, "downloads at once: {gets:?}");
}

/// stunnel in front of `p`, with a private CA: `env` talks TLS to it, and trusts the CA
/// through `AWS_CA_BUNDLE`. The pair stops stunnel and removes its certificates when dropped.
fn over_tls(p: &Proxy, env: &mut BTreeMap<String, String>) -> (Tls, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let tls = Tls::start(certs.path(), p.url().trim_start_matches("http://"));
    env.insert("AWS_ENDPOINT_URL".into(), tls.url());
    env.insert("AWS_CA_BUNDLE".into(), tls.ca.to_str().unwrap().into());
    (tls, certs)
}

/// The number of uploads in flight before the store's first answer, and the most at once, of
/// 700 small files uploaded through a proxy that holds each request for `latency`.
fn first_window(name: &str, latency: Duration) -> (usize, usize) {
    let (up, _) = first_windows(name, latency, b"x", false);
    up
}

/// [`first_window`] of 700 files of `body`, and of their download (`fetch`): the number of
/// downloads sent before the first answer. With `https`, the tool talks TLS to stunnel in
/// front of the proxy (a private CA, trusted through `AWS_CA_BUNDLE`).
fn first_windows(
    name: &str,
    latency: Duration,
    body: &[u8],
    https: bool,
) -> ((usize, usize), usize) {
    let g = S3Server::get();
    let p = Proxy::start(
        g.addr(),
        Faults {
            latency,
            ..Faults::default()
        },
    );
    let bucket = g.new_bucket(name);
    let mut env = g.env(&bucket);
    env.insert("AWS_ENDPOINT_URL".into(), p.url());
    let _tls = https.then(|| over_tls(&p, &mut env));
    let mut t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    t.run(&["check"]).ok();
    for i in 0..700 {
        t.build(&[(&format!("d{}/f{i:03}.txt", i % 3), body)]);
    }
    let up = traced(&mut t, "upload");
    t.run(&["upload"]).ok();
    let attempts = asset_attempts(&up, "PutObject");
    // Each attempt is a span: on a loaded machine a few of 700 connections opened at once may
    // be retried, which adds attempts after the first answer, not before it.
    assert!(
        attempts.len() >= 700,
        "{} uploads traced of 700",
        attempts.len()
    );
    let first = sent_before_the_first_answer(&attempts);
    let puts = asset_spans(&up, "PutObject");
    let most = most_at_once(&puts);
    eprintln!("{name}: {first} uploads before the first answer, {most} at once at most");
    let down = traced(&mut t, "fetch");
    let out = t.root.join("out");
    t.run(&["fetch", "--dest", out.to_str().unwrap()]).ok();
    let gets = asset_attempts(&down, "GetObject");
    assert!(gets.len() >= 700, "{} downloads traced of 700", gets.len());
    let first_down = sent_before_the_first_answer(&gets);
    eprintln!("{name}: {first_down} downloads before the first answer");
    ((first, most), first_down)
}

/// Far from the store, the window holds as many uploads as the store's round trip holds at
/// 1,000 requests a second (the fastest answer so far, the read of the set's, tells it), up
/// to the memory budget: the uploads start held beside the read (up to 512, about 500 within
/// the budget), and once it has said to write the set the window stays there, before any
/// upload is answered. Nothing has to be set for a distant store.
#[test]
fn far_from_the_store_the_window_starts_with_what_its_round_trip_holds() {
    // All of a window's requests go out before the first answer, a second later.
    let (first, most) = first_window("rt-far", Duration::from_secs(1));
    assert!(
        first > 400,
        "{first} uploads before the first answer: a store a second away starts the window past 256, at the memory budget"
    );
    assert!(most <= 1024, "{most} uploads at once, past the limit");
}

/// Small downloads far from the store start with as many as the round trip holds, up to the
/// memory budget, as uploads do: each streams into its file as it arrives, so it counts its
/// request's buffers (64 KiB) against the budget, not its body too. Counted at 64 KiB + 64 KiB,
/// as when files were received whole, 700 files of 64 KiB would send 256 before the first
/// answer.
#[test]
fn far_from_the_store_small_downloads_start_with_what_its_round_trip_holds() {
    let body: Vec<u8> = (0..64u32 << 10).map(|i| (i % 253) as u8).collect();
    let (_, first) = first_windows("rt-far-get", Duration::from_secs(1), &body, false);
    assert!(
        first > 400,
        "{first} downloads of 64 KiB before the first answer: a store a second away starts past 256, at the memory budget"
    );
}

/// Over HTTPS each connection holds its TLS state too, and the memory budget counts it: a
/// small upload 16 KiB more (80 KiB in all: about 400 of 700 start before the first answer,
/// not 500), a small download 64 KiB more (128 KiB: about 250). Counted as over HTTP, the
/// 2,000-file upload over HTTPS 40 ms away peaked at 63 MB RSS with 512 in flight.
#[test]
fn over_https_far_from_the_store_each_transfer_counts_its_connections_tls_state() {
    let body: Vec<u8> = (0..64u32 << 10).map(|i| (i % 251) as u8).collect();
    let ((up, most), down) = first_windows("rt-far-tls", Duration::from_secs(1), &body, true);
    assert!(
        (350..=420).contains(&up),
        "{up} uploads of 64 KiB over HTTPS before the first answer: the budget (32 MiB at 80 KiB an upload) holds about 400"
    );
    assert!(most <= 512, "{most} uploads at once, past the held start");
    assert!(
        (200..=260).contains(&down),
        "{down} downloads of 64 KiB over HTTPS before the first answer: the budget (32 MiB at 128 KiB a download) holds about 250"
    );
}

/// A cache restore's server-side copies move no bytes through the tool, but each holds its
/// request's state (about 48 KB): far from the store, where the window would start at the
/// limit, the memory budget keeps them within it. 700 copies through a proxy a second away
/// start about 680 at once, not all 700 (before, copies counted nothing, and a restore of
/// 2,000 files peaked at 69 MB RSS with 1,024 in flight).
#[test]
fn a_restore_far_from_the_store_keeps_its_copies_within_the_memory_budget() {
    let most = restore_copies_at_once("rt-far-copy", false);
    assert!(
        (600..700).contains(&most),
        "{most} copies at once: the budget (32 MiB at 48 KiB a copy) should hold about 680"
    );
}

/// Over HTTPS each copy counts its connection's TLS state too (16 KiB): about 500 of 700
/// copies at once (counted as over HTTP, a restore of 2,000 files 40 ms away peaked at 61 MB
/// RSS with about 680 in flight).
#[test]
fn over_https_a_restore_counts_its_connections_tls_state() {
    let most = restore_copies_at_once("rt-far-copy-tls", true);
    assert!(
        (450..550).contains(&most),
        "{most} copies at once over HTTPS: the budget (32 MiB at 64 KiB a copy) should hold about 500"
    );
}

/// The most of 700 server-side copies at once in a cache restore through a proxy a second
/// away (with `https`, behind stunnel).
fn restore_copies_at_once(name: &str, https: bool) -> usize {
    let g = S3Server::get();
    let p = Proxy::start(
        g.addr(),
        Faults {
            latency: Duration::from_secs(1),
            ..Faults::default()
        },
    );
    let bucket = g.new_bucket(name);
    let mut env = g.env(&bucket);
    env.insert("AWS_ENDPOINT_URL".into(), p.url());
    let _tls = https.then(|| over_tls(&p, &mut env));
    env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    let mut t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    t.run(&["check"]).ok();
    for i in 0..700 {
        t.build(&[(&format!("d{}/f{i:03}.txt", i % 3), b"x".as_slice())]);
    }
    t.run(&["upload"]).ok();
    t.repo.write("README", "docs\n");
    t.repo.commit("docs only");
    t.reset_packages();
    let restore = traced(&mut t, "restore");
    t.run(&["check"]).ok();
    assert!(t.found(), "the set was not restored");
    let copies = asset_spans(&restore, "CopyObject");
    assert!(copies.len() >= 700, "{} copies traced of 700", copies.len());
    most_at_once(&copies)
}

/// Near the store, the window holds 256 uploads: more would only queue at a store that
/// answers within a quarter of a second. A publish's uploads start held beside its read, up
/// to 512 (they wait for the read anyway), and none start again until fewer than 256 are in
/// flight: the first answers come, and no more than 512 are in flight at once.
#[test]
fn near_the_store_the_window_holds_256() {
    let (first, most) = first_window("rt-near", Duration::from_millis(100));
    assert!(
        (257..=512).contains(&first),
        "{first} uploads before the first answer: a publish starts 512 held beside its read"
    );
    assert!(most <= 512, "{most} uploads at once, past the held start");
}

/// `list`, `delete` and `prune` of two sets (and their cache entries): the listings at once,
/// then one round trip for the manifests with their index entries, one for the objects.
/// (That the manifests go first is `engine::tests`' cut-off prune.)
#[test]
fn list_delete_and_prune_take_their_round_trips() {
    let Some((_g, p, t)) = rig("rt-manage", true) else {
        return;
    };
    let mut commits = Vec::new();
    for v in 0..2 {
        if v > 0 {
            t.repo.write("src/main.py", &format!("print({v})\n"));
            t.repo.commit("another build");
            t.reset_packages();
        }
        t.run(&["check"]).ok();
        build_five(&t);
        t.run(&["upload"]).ok();
        commits.push(t.repo.head());
    }
    // `artifacts/` and `cache/`, a page each: neither is full.
    assert_eq!(trips(&p, &t, &["list"]), "1: LIST x2");
    // The set and the index; its manifest and index entry; then its 5 objects.
    let delete = trips(&p, &t, &["delete", "--commit", &commits[0]]);
    assert_eq!(delete, "1: LIST x2 | 2: DELETE objects | 3: DELETE objects");
    std::thread::sleep(Duration::from_millis(1100));
    // Everything older than a second: the listings and the unfinished uploads at once; every
    // set's manifest, read and verified at once (a prune decides on verified sets); every
    // manifest and index entry (the set's and the cache entry's) in one request; the objects.
    let prune = trips(
        &p,
        &t,
        &["prune", "--max-age", "1s", "--cache-max-unused", "1s"],
    );
    assert_eq!(
        prune,
        "1: LIST x3, LIST uploads x2 | 2: GET manifest x2 | 3: DELETE objects | 4: DELETE objects"
    );
    let r = t.run(&["list", "--json"]);
    r.ok();
    assert_eq!(r.stdout.trim(), "[]", "the prune removed every set");
}
