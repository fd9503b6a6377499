//! Unit tests of the engine over a local store.

use super::*;
use crate::store::{local::LocalStore, Body, PutOptions};

/// Publishes `pkg` as the set of `commit`, caching off.
async fn publish_uncached(engine: &Engine, pkg: std::path::PathBuf, commit: &str) {
    engine
        .publish(&PublishOptions {
            package_dir: pkg,
            commit: Some(commit.into()),
            code_hash: None,
            compute_code_hash: None,
            cache: CacheMode::Off,
            accept_legacy: false,
        })
        .await
        .unwrap();
}

/// A set of 2,345 objects in a local store, half of them known: the slices listed at once
/// return every object of the set exactly once, in order, however the unknown ones push
/// each slice past a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_known_keys_in_slices_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path()).unwrap());
    let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
    let loc = engine.layout().artifacts(&"a".repeat(40));
    let rels: Vec<String> = (0..2345).map(|i| format!("d{}/f{i:05}", i % 7)).collect();
    for r in &rels {
        store
            .put(
                &loc.key(r),
                Body::Bytes(b"x".to_vec()),
                &PutOptions::default(),
            )
            .await
            .unwrap();
    }
    // Another set beside it, whose keys sort after ours.
    let other = engine.layout().artifacts(&"b".repeat(40));
    store
        .put(
            &other.key("f"),
            Body::Bytes(b"y".to_vec()),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let mut want: Vec<String> = rels.iter().map(|r| loc.key(r)).collect();
    want.sort();
    for known in [
        rels.iter().collect::<Vec<_>>(),
        rels.iter().step_by(2).collect(),
    ] {
        let got: Vec<String> = engine
            .list_known(&loc, known.iter().map(|r| r.as_str()))
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(got, want, "{} keys known", known.len());
    }
    // Without a manifest (a legacy set, counted here), a read of the set lists all of it page
    // after page, past its first page.
    let (state, listing) = engine.read_state_listed(&loc, true).await.unwrap();
    assert_eq!(listing.len(), 2345);
    match state {
        SetState::Legacy { objects } => assert_eq!(objects.len(), 2345),
        other => panic!("{other:?}"),
    }
}

/// A set of 2,345 objects checked against its manifest page by page, with the manifest's
/// entries out of order: every missing, resized and rewritten object is counted, however the
/// slices of the listing fall, and an untouched set is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_sets_damage_is_counted_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path()).unwrap());
    let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
    let commit = "c".repeat(40);
    let loc = engine.layout().artifacts(&commit);
    let mut files = Vec::new();
    for i in (0..2345).rev() {
        let path = format!("d{}/f{i:05}", i % 7);
        let etag = store
            .put(
                &loc.key(&path),
                Body::Bytes(b"xy".to_vec()),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        files.push(crate::manifest::FileEntry {
            path,
            size: 2,
            sha256: [0; 32].into(),
            etag,
            pieces: None,
        });
    }
    // Manifest::new sorts; the check must not rely on it.
    let mut m = Manifest::new(&loc, &commit, None, files.clone());
    m.files = files;
    assert_eq!(engine.damage(&loc, &m).await.unwrap(), None);
    for i in [0, 901, 1802, 2344] {
        let key = loc.key(&format!("d{}/f{i:05}", i % 7));
        store.delete(&[key]).await.unwrap();
    }
    for i in [5, 1500] {
        let key = loc.key(&format!("d{}/f{i:05}", i % 7));
        store
            .put(&key, Body::Bytes(b"xyz".to_vec()), &PutOptions::default())
            .await
            .unwrap();
    }
    let key = loc.key(&format!("d{}/f{:05}", 2000 % 7, 2000));
    store
        .put(&key, Body::Bytes(b"ab".to_vec()), &PutOptions::default())
        .await
        .unwrap();
    let why = engine.damage(&loc, &m).await.unwrap().expect("damaged");
    assert!(why.contains("4 of 2345 objects missing"), "{why}");
    assert!(why.contains("2 of 2345 objects of another size"), "{why}");
    assert!(
        why.contains("1 of 2345 objects rewritten after the manifest was written: d5/f02000"),
        "{why}"
    );
    // The same verdict from a listing already read.
    let listing = store.list(loc.root()).await.unwrap();
    assert_eq!(engine.damage_in(&loc, &m, &listing), Some(why));
}

/// Racing publishers, on a local store that lets a test write between a publisher's steps.
mod racing;

/// `n` complete sets of two small files each in `store`; their commits.
async fn old_sets(store: &LocalStore, layout: &Layout, n: u32) -> Vec<String> {
    let mut commits = Vec::new();
    for i in 0..n {
        let commit = format!("{i:040x}");
        let loc = layout.artifacts(&commit);
        for (p, body) in [("a.txt", &b"a"[..]), ("b.txt", b"bb")] {
            let body = Body::Bytes(body.to_vec());
            store
                .put(&loc.key(p), body, &PutOptions::default())
                .await
                .unwrap();
        }
        let files = ["a.txt", "b.txt"].map(|p| crate::manifest::FileEntry {
            path: p.into(),
            size: if p == "a.txt" { 1 } else { 2 },
            sha256: [0; 32].into(),
            etag: None,
            pieces: None,
        });
        let m = Manifest::new(&loc, &commit, None, files.to_vec());
        let body = Body::Bytes(m.to_bytes());
        store
            .put(&loc.manifest_key(), body, &PutOptions::default())
            .await
            .unwrap();
        commits.push(commit);
    }
    commits
}

/// A prune cut off part-way (the store refuses every delete after the first `allowed`)
/// leaves each set complete (manifest and every object) or without its manifest: never a
/// manifest whose objects are gone. 1,200 small sets, so the manifests alone take two
/// delete requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_cut_off_part_way_leaves_every_set_complete_or_without_its_manifest() {
    use racing::Racing;
    for allowed in 0..=5 {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Racing::new(dir.path(), allowed));
        let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
        let commits = old_sets(&store.inner, engine.layout(), 1200).await;
        let opts = crate::engine::PruneOptions {
            max_age: Some(std::time::Duration::from_secs(1)),
            keep_last: 0,
            cache_max_unused: None,
            cache_max_size: None,
            incomplete_max_age: std::time::Duration::from_secs(86400),
            accept_legacy: false,
        };
        let later = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 60_000;
        let plan = engine.plan_prune(&opts, later).await.unwrap();
        assert_eq!(plan.remove.len(), 1200);
        let result = engine.prune(&plan).await;
        // 1,200 manifests take two requests, 2,400 objects three more; the error says what
        // a second run does with what is left.
        assert_eq!(result.is_ok(), allowed >= 5, "allowed {allowed}");
        if let Err(e) = result {
            let advice = match allowed {
                0 | 1 => "no set lost an object; run it again",
                _ => "no reader counts what is left; a prune removes it once it is older than --incomplete-max-age",
            };
            assert!(e.to_string().contains(advice), "allowed {allowed}: {e}");
        }
        let (mut complete, mut gone) = (0, 0);
        for c in &commits {
            let loc = engine.layout().artifacts(c);
            let keys: Vec<String> = store
                .inner
                .list(loc.root())
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
            if keys.contains(&loc.manifest_key()) {
                assert_eq!(
                    keys.len(),
                    3,
                    "allowed {allowed}: {c} has its manifest but lost objects: {keys:?}"
                );
                complete += 1;
            } else {
                gone += 1;
            }
        }
        match allowed {
            0 => assert_eq!((complete, gone), (1200, 0)),
            // One of the two manifest requests (1,000 keys and 200, at once) went through:
            // those sets lost their manifest, and no set lost an object.
            1 => assert!(
                (complete, gone) == (200, 1000) || (complete, gone) == (1000, 200),
                "allowed 1: {complete} complete, {gone} without a manifest"
            ),
            _ => assert_eq!(gone, 1200, "allowed {allowed}"),
        }
    }
}

/// `git args` in `repo`, as a test author.
fn git(repo: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository at `dir/repo` with one commit (of `src/main.py`), and the code-hash
/// definition of its `src`.
fn repo_with_a_commit(dir: &std::path::Path) -> (std::path::PathBuf, CodeHashSpec) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("src/main.py"), "print(1)\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let spec = CodeHashSpec {
        patterns: crate::codehash::Patterns::from_spaced("src").unwrap(),
        salt: String::new(),
    };
    (repo, spec)
}

/// A package directory at `dir/pkg` of one file.
fn one_file_package(dir: &std::path::Path) -> std::path::PathBuf {
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("fn.zip"), "zip").unwrap();
    pkg
}

/// A restore whose cache entry a prune removes while it copies falls back to the build: the
/// lookup says missing (never an error), and the set is not found afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_entry_goes_while_it_copies_falls_back_to_the_build() {
    use racing::Racing;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store = Arc::new(Racing::new(&bucket, usize::MAX));
    let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
    let (repo, spec) = repo_with_a_commit(dir.path());
    let pkg = one_file_package(dir.path());
    std::fs::write(
        pkg.join(".commit-hash"),
        crate::commit::resolve_head(&repo).unwrap(),
    )
    .unwrap();
    let publish = PublishOptions {
        package_dir: pkg,
        commit: None,
        code_hash: None,
        compute_code_hash: Some((repo.clone(), spec.clone())),
        cache: CacheMode::ReadWrite,
        accept_legacy: false,
    };
    engine.publish(&publish).await.unwrap();
    // A commit of the same code: its set is missing, the cache entry is complete.
    std::fs::write(repo.join("README"), "docs\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "docs"]);
    *store.vanish_on_copy.lock().unwrap() = true;
    let opts = LookupOptions {
        repo: repo.clone(),
        markers: None,
        code_hash: Some(spec),
        cache: CacheMode::ReadWrite,
        accept_legacy: false,
    };
    let report = engine
        .lookup(&opts)
        .await
        .expect("a vanished entry is a build, not an error");
    assert_eq!(report.outcome, Outcome::Missing);
    assert!(
        store.copies.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the restore never tried a copy: the entry never went while it copied"
    );
    *store.vanish_on_copy.lock().unwrap() = false;
    let again = engine.lookup(&opts).await.unwrap();
    assert_eq!(
        again.outcome,
        Outcome::Missing,
        "nothing half-restored reads as found"
    );
}

/// A set found needs no code hash: the hash computed beside its read (so that a set not
/// found costs no round trip more to look for in the cache) is stopped once the set is
/// found, and the process ends without waiting for it, however large the tree it hashes.
#[test]
fn a_found_set_stops_the_code_hash_computed_beside_its_read() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store = Arc::new(LocalStore::open(&bucket).unwrap());
    let engine = Engine::new(store, Layout::new("").unwrap(), Tuning::default());
    let (repo, spec) = repo_with_a_commit(dir.path());
    // A tree whose hash takes a while (the hash covers the working tree, committed or not).
    let body: Vec<u8> = (0..32u32 << 10).map(|i| (i % 251) as u8).collect();
    for i in 0..2000 {
        std::fs::write(repo.join(format!("src/f{i:04}.py")), &body).unwrap();
    }
    let pkg = one_file_package(dir.path());
    let commit = crate::commit::resolve_head(&repo).unwrap();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    runtime().block_on(publish_uncached(&engine, pkg, &commit));
    let t = std::time::Instant::now();
    crate::codehash::compute(&repo, &spec.patterns, &spec.salt).unwrap();
    let hashing = t.elapsed();
    let opts = LookupOptions {
        repo: repo.clone(),
        markers: None,
        code_hash: Some(spec),
        cache: CacheMode::ReadWrite,
        accept_legacy: false,
    };
    // As the command line runs it: the runtime dropped once the lookup returns, which waits
    // for whatever still runs on its blocking pool.
    let t = std::time::Instant::now();
    let rt = runtime();
    let report = rt.block_on(engine.lookup(&opts)).unwrap();
    drop(rt);
    let found = t.elapsed();
    assert_eq!(report.outcome, Outcome::Found);
    assert!(
        found * 4 < hashing,
        "found in {found:?}, against {hashing:?} to hash the tree: the lookup waited for the hash"
    );
}

/// The summary line counts in words ("1 file") and shows a rate only where it means
/// something: not for a few bytes, whose time is round trips.
#[test]
fn summaries_say_one_file_and_no_rate_for_tiny_transfers() {
    let mut r = Report::new("c", Outcome::Found);
    r.files = 1;
    r.bytes = 358;
    r.moved = 358;
    r.seconds = 0.7;
    let line = r.summary(3);
    assert_eq!(
        line,
        "1 file, 358 B downloaded and verified in 0.70 s (3 S3 requests)"
    );
    r.bytes = 4 << 20;
    r.moved = 4 << 20;
    r.files = 2;
    let line = r.summary(1);
    assert!(
        line.contains("2 files, 4.2 MB") && line.contains("MB/s, 1 S3 request)"),
        "{line}"
    );
    r.moved = 0;
    assert!(r
        .summary(0)
        .ends_with("already complete: skip the build (0.70 s)"));
}

/// Files downloaded and checked before the set's listing is known wait under their temporary
/// names, outside the window, and are renamed once the gate opens; a gate dropped closed (the
/// listing found damage, or failed) leaves neither file nor temporary file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_checked_before_the_listing_wait_for_it_and_vanish_without_it() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path()).unwrap());
    let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
    let loc = engine.layout().artifacts(&"c".repeat(40));
    let mut files = Vec::new();
    for (i, rel) in ["a.bin", "sub/b.bin", "c.bin"].into_iter().enumerate() {
        let body = vec![i as u8; 1000 + i];
        store
            .put(
                &loc.key(rel),
                Body::Bytes(body.clone()),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        files.push(crate::manifest::FileEntry {
            path: rel.into(),
            size: body.len() as u64,
            sha256: <[u8; 32]>::from(Sha256::digest(&body)).into(),
            etag: None,
            pieces: None,
        });
    }
    let names = |dest: &Path| -> Vec<String> {
        walkdir::WalkDir::new(dest)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(dest).unwrap().display().to_string())
            .collect()
    };
    for open in [true, false] {
        let dest = dir.path().join(format!("dest-{open}"));
        std::fs::create_dir_all(&dest).unwrap();
        let (gate, rx) = tokio::sync::watch::channel(false);
        let root =
            crate::beneath::Dir::open_root(&dest, crate::beneath::Tree::Destination).unwrap();
        let downloads =
            engine.download_files(&loc, &files, root, rx, crate::sink::Tracker::new().token());
        let listing = async {
            // Every file checked: three temporary files (waited for, up to 10 s).
            let start = std::time::Instant::now();
            while names(&dest).len() < 3 && start.elapsed().as_secs() < 10 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut waiting = names(&dest);
            waiting.sort();
            assert_eq!(waiting.len(), 3, "{waiting:?}");
            assert!(
                waiting.iter().all(|n| n.ends_with(".s3am-partial")),
                "renamed before the listing: {waiting:?}"
            );
            if open {
                gate.send(true).unwrap();
            }
            drop(gate);
        };
        let (result, ()) = tokio::join!(downloads, listing);
        let mut got = names(&dest);
        got.sort();
        if open {
            result.unwrap();
            assert_eq!(got, ["a.bin", "c.bin", "sub/b.bin"]);
        } else {
            assert!(result.is_err());
            assert!(got.is_empty(), "left behind: {got:?}");
        }
    }
}

/// A download refused (an object of the set is missing) while another file's task is still
/// running on another thread returns its error only once that task has ended, and leaves no
/// file, temporary or not: the resource's `get` cleans up after the error, and nothing of
/// the refused set may appear after that (a flaky CI run saw a directory come back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_download_returns_once_every_task_of_it_has_ended() {
    use racing::Racing;
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store = Arc::new(Racing::new(&bucket, usize::MAX));
    let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(pkg.join("sub")).unwrap();
    for (rel, body) in [("a.zip", "a"), ("b.zip", "bb"), ("sub/slow.zip", "ccc")] {
        std::fs::write(pkg.join(rel), body).unwrap();
    }
    let commit = "0123456789abcdef0123456789abcdef01234567";
    publish_uncached(&engine, pkg, commit).await;
    let loc = engine.layout().artifacts(commit);
    store.inner.delete(&[loc.key("b.zip")]).await.unwrap();
    *store.slow_get.lock().unwrap() = Some(loc.key("sub/slow.zip"));

    let dest = dir.path().join("dest");
    let started = std::time::Instant::now();
    let err = engine.fetch(commit, &dest, false).await.unwrap_err();
    assert!(err.to_string().contains("b.zip"), "{err}");
    assert!(
        store.slow_done.load(Ordering::SeqCst),
        "the error came back after {:?}, while a task of the download still ran",
        started.elapsed()
    );
    let left: Vec<_> = walkdir::WalkDir::new(&dest)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A small file streams into its temporary file a slice at a time: one of several slices, or
/// of exactly one, lands whole; an object longer than its entry says is refused as soon as
/// it has sent more, and one shorter at the end; neither leaves a file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_download_lands_whole_or_not_at_all() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path()).unwrap());
    let engine = Engine::new(store.clone(), Layout::new("").unwrap(), Tuning::default());
    let loc = engine.layout().artifacts(&"d".repeat(40));
    let entry = |rel: &str, body: &[u8]| crate::manifest::FileEntry {
        path: rel.into(),
        size: body.len() as u64,
        sha256: <[u8; 32]>::from(Sha256::digest(body)).into(),
        etag: None,
        pieces: None,
    };
    let fetch = |files: Vec<crate::manifest::FileEntry>, name: &str| {
        let dest = dir.path().join(name);
        std::fs::create_dir_all(&dest).unwrap();
        let root =
            crate::beneath::Dir::open_root(&dest, crate::beneath::Tree::Destination).unwrap();
        let (_gate, rx) = tokio::sync::watch::channel(true);
        let engine = engine.clone();
        let loc = loc.clone();
        async move {
            let got = engine
                .download_files(&loc, &files, root, rx, crate::sink::Tracker::new().token())
                .await;
            let left: Vec<String> = walkdir::WalkDir::new(&dest)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            (got, left)
        }
    };
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "slices.bin",
            (0..40_000u32).map(|i| (i % 251) as u8).collect(),
        ),
        ("one-slice.bin", vec![7u8; 16 << 10]),
        ("empty.bin", Vec::new()),
    ];
    for (rel, body) in &bodies {
        let opts = PutOptions::default();
        store
            .put(&loc.key(rel), Body::Bytes(body.clone()), &opts)
            .await
            .unwrap();
    }
    let files = bodies.iter().map(|(rel, body)| entry(rel, body)).collect();
    let (got, mut left) = fetch(files, "whole").await;
    got.unwrap();
    left.sort();
    assert_eq!(left, ["empty.bin", "one-slice.bin", "slices.bin"]);
    for (rel, body) in &bodies {
        assert_eq!(
            &std::fs::read(dir.path().join("whole").join(rel)).unwrap(),
            body
        );
    }
    // The entries of the first two, cut short: their objects send more than they say.
    let (longer, shorter) = (&bodies[0].1, &bodies[1].1);
    let (got, left) = fetch(vec![entry("slices.bin", &longer[..20_000])], "longer").await;
    let err = got.unwrap_err().to_string();
    assert!(err.contains("sent more than the 20000 bytes"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
    let (got, left) = fetch(vec![entry("one-slice.bin", &shorter[..100])], "one more").await;
    let err = got.unwrap_err().to_string();
    assert!(err.contains("sent more than the 100 bytes"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
    // An entry longer than its object: the download ends short and is refused.
    let mut more = longer.clone();
    more.push(1);
    let (got, left) = fetch(vec![entry("slices.bin", &more)], "shorter").await;
    let err = got.unwrap_err().to_string();
    assert!(err.contains("does not match its manifest"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}
