//! Unit tests of `local`.

use super::*;

/// `o` with `mode`.
fn with_mode(o: &PutOptions, mode: PutMode) -> PutOptions {
    PutOptions { mode, ..o.clone() }
}

/// A FIFO at a key is refused at once, not read (which would wait for a writer forever);
/// a directory is no object.
#[tokio::test]
async fn non_regular_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("a/dir")).unwrap();
    let fifo = dir.path().join("a/.manifest.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.get_bytes("a/.manifest.json", 100),
    )
    .await
    .expect("reading a FIFO must not block");
    let e = read.expect_err("a FIFO is refused").to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(store.get("a/dir", None).await.unwrap().is_none());
    assert!(store.head("a/.manifest.json").await.unwrap().is_none());
}

/// A bucket with `outside` beside it holding one file, and the store.
fn planted() -> (tempfile::TempDir, PathBuf, PathBuf, LocalStore) {
    let tmp = tempfile::tempdir().unwrap();
    let (root, outside) = (tmp.path().join("bucket"), tmp.path().join("outside"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("fn.zip"), "precious").unwrap();
    let store = LocalStore::open(&root).unwrap();
    (tmp, root, outside, store)
}

fn untouched(outside: &Path) {
    let names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["fn.zip"], "something was written outside");
    assert_eq!(
        std::fs::read_to_string(outside.join("fn.zip")).unwrap(),
        "precious"
    );
}

/// A link where a key's directory should be: no read, write, delete or listing goes
/// through it, each refused with the line naming it.
#[tokio::test]
async fn a_link_at_a_keys_directory_is_refused() {
    let (_tmp, root, outside, store) = planted();
    std::fs::create_dir_all(root.join("artifacts")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("artifacts/c")).unwrap();
    let refused = |e: Error| {
        let e = e.to_string();
        assert!(
            e.contains("artifacts/c is a symbolic link inside the bucket directory")
                && e.ends_with("remove the link"),
            "{e}"
        );
    };
    let opts = PutOptions::default();
    refused(
        store
            .delete(&["artifacts/c/fn.zip".into()])
            .await
            .unwrap_err(),
    );
    refused(
        store
            .put("artifacts/c/new", Body::Bytes(b"x".to_vec()), &opts)
            .await
            .unwrap_err(),
    );
    let cond = PutMode::Create;
    let e = store
        .put(
            "artifacts/c/new",
            Body::Bytes(b"x".to_vec()),
            &with_mode(&opts, cond),
        )
        .await;
    refused(e.unwrap_err());
    refused(store.get("artifacts/c/fn.zip", None).await.err().unwrap());
    refused(store.head("artifacts/c/fn.zip").await.unwrap_err());
    refused(store.list("artifacts/c/").await.unwrap_err());
    store
        .put("artifacts/a/fn.zip", Body::Bytes(b"a".to_vec()), &opts)
        .await
        .unwrap();
    let e = store
        .copy("artifacts/a/fn.zip", "artifacts/c/fn.zip", 1, &opts, None)
        .await;
    refused(e.unwrap_err());
    // A listing above it skips it: a link is never an object.
    let keys: Vec<String> = store
        .list("artifacts/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, vec!["artifacts/a/fn.zip"]);
    untouched(&outside);
    // A link at a key's own name is refused too.
    std::os::unix::fs::symlink(outside.join("fn.zip"), root.join("artifacts/a/link")).unwrap();
    let e = store
        .get("artifacts/a/link", None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("a/link is a symbolic link"), "{e}");
    let e = store
        .delete(&["artifacts/a/link".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a/link is a symbolic link"), "{e}");
    untouched(&outside);
}

/// Links at `.s3am`'s directories and lock: no temporary file, sidecar or lock is
/// written through them, and no pending upload is listed or removed through them.
#[tokio::test]
async fn links_at_the_internal_directories_are_refused() {
    let opts = PutOptions::default();
    for (at, needle) in [
        (".s3am", ".s3am is a symbolic link"),
        (".s3am/tmp", ".s3am/tmp is a symbolic link"),
        (".s3am/meta", ".s3am/meta is a symbolic link"),
    ] {
        let (_tmp, root, outside, store) = planted();
        if at != ".s3am" {
            std::fs::create_dir_all(root.join(".s3am")).unwrap();
        }
        std::os::unix::fs::symlink(&outside, root.join(at)).unwrap();
        let e = store
            .put("a/b", Body::Bytes(b"x".to_vec()), &opts)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(needle), "{at}: {e}");
        if at != ".s3am/meta" {
            let e = store.pending_uploads("").await.unwrap_err();
            assert!(e.to_string().contains(needle), "{at}: {e}");
            let upload = PendingUpload {
                key: ".s3am/tmp/fn.zip".into(),
                id: "fn.zip".into(),
                started_ms: None,
            };
            let e = store.abort_upload(&upload).await.unwrap_err();
            assert!(e.to_string().contains(needle), "{at}: {e}");
        }
        untouched(&outside);
    }
    let (_tmp, root, outside, store) = planted();
    std::fs::create_dir_all(root.join(".s3am")).unwrap();
    std::os::unix::fs::symlink(outside.join("fn.zip"), root.join(".s3am/lock")).unwrap();
    let cond = PutMode::Create;
    let e = store
        .put("a/b", Body::Bytes(b"x".to_vec()), &with_mode(&opts, cond))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(".s3am/lock is a symbolic link"),
        "{e}"
    );
    untouched(&outside);
}

/// A write, read, conditional write and delete still work through a bucket directory
/// that is itself a link, and a delete removes the directories it empties.
#[tokio::test]
async fn the_root_may_be_a_link() {
    let (tmp, root, _outside, _) = planted();
    let via = tmp.path().join("via");
    std::os::unix::fs::symlink(&root, &via).unwrap();
    let store = LocalStore::open(&via).unwrap();
    let opts = PutOptions::default();
    let tag = store
        .put("a/b/c", Body::Bytes(b"x".to_vec()), &opts)
        .await
        .unwrap();
    let cond = PutMode::Update(tag.expect("written"));
    let e = store
        .put("a/b/c", Body::Bytes(b"y".to_vec()), &with_mode(&opts, cond))
        .await;
    assert!(e.unwrap().is_some());
    let cond = PutMode::Create;
    let e = store
        .put("a/b/c", Body::Bytes(b"z".to_vec()), &with_mode(&opts, cond))
        .await;
    assert!(e.unwrap().is_none());
    assert_eq!(store.get_bytes("a/b/c", 10).await.unwrap().unwrap(), b"y");
    assert_eq!(store.list("a/").await.unwrap().len(), 1);
    store.delete(&["a/b/c".into()]).await.unwrap();
    assert!(!root.join("a").exists() && !root.join(".s3am/meta/a").exists());
    assert!(store.pending_uploads("").await.unwrap().is_empty());
}

/// Sets deleted while a list walks the bucket (a prune beside an upload) are left out,
/// never an error: S3 answers such a list with or without them.
#[test]
fn a_list_racing_deletes_never_fails() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path()).unwrap();
    let rounds = std::sync::Arc::new(AtomicU32::new(0));
    let churn = {
        let (root, rounds) = (tmp.path().to_path_buf(), rounds.clone());
        std::thread::spawn(move || {
            while rounds.load(Ordering::Relaxed) < 100 {
                for i in 0..20 {
                    let d = root.join(format!("artifacts/{i:040}/a/b"));
                    std::fs::create_dir_all(&d).unwrap();
                    for f in 0..5 {
                        std::fs::write(d.join(format!("f{f}")), b"x").unwrap();
                    }
                }
                std::fs::remove_dir_all(root.join("artifacts")).unwrap();
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut lists, mut listed) = (0, 0);
    while rounds.load(Ordering::Relaxed) < 100 {
        listed += store.list_sync("artifacts/").expect("a racing list").len();
        listed += store.list_sync("artifacts/0").expect("a racing list").len();
        lists += 2;
    }
    churn.join().unwrap();
    // Lists ran while the tree existed, not only before or after it.
    assert!(lists > 100 && listed > 0, "{lists} lists, {listed} keys");
}

/// Writes beside deletes that remove the directories they empty all land: a directory
/// removed on the way is made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_deletes_never_fail() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LocalStore::open(tmp.path()).unwrap());
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let deleter = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut deletes = 0u32;
            while !done.load(Ordering::Relaxed) {
                for i in 0..4 {
                    store.delete_sync(&format!("a/b/c/d/k{i}")).unwrap();
                }
                deletes += 1;
            }
            deletes
        })
    };
    let opts = PutOptions::default();
    for n in 0..1500 {
        let key = format!("a/b/c/d/k{}", n % 4);
        store
            .put(&key, Body::Bytes(b"x".to_vec()), &opts)
            .await
            .unwrap_or_else(|e| panic!("write {n} beside deletes: {e}"));
    }
    done.store(true, Ordering::Relaxed);
    assert!(deleter.join().unwrap() > 100);
}
