//! One conformance suite for every store backend: the local directory and real S3 (Garage or
//! SeaweedFS, whichever `scripts/test` started).

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use s3_asset_manager::store::{
    self, Body, Bucket, Hold, PutMode, PutOptions, Store, StoreConfig, Tuning,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

fn small_tuning() -> Tuning {
    Tuning {
        concurrency: 8,
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        copy_multipart_threshold: 6 << 20,
        copy_part_size: 5 << 20,
        timeout: Duration::from_secs(30),
    }
}

fn opts(k: &str, v: &str) -> PutOptions {
    let mut metadata = BTreeMap::new();
    metadata.insert(k.to_string(), v.to_string());
    PutOptions {
        metadata,
        ..PutOptions::default()
    }
}

async fn read_all(s: &dyn Store, key: &str, range: Option<(u64, u64)>) -> Option<Vec<u8>> {
    let mut r = s.get(key, range).await.unwrap()?;
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.unwrap();
    Some(v)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 * 31 + seed as u32) as u8)
        .collect()
}

/// Writes `body` to `key` from memory with `o`; the new entity tag, or `None` where a
/// condition in `o` did not hold.
async fn put_bytes(s: &dyn Store, key: &str, body: &[u8], o: &PutOptions) -> Option<String> {
    s.put(key, Body::Bytes(body.to_vec()), o)
        .await
        .unwrap_or_else(|e| panic!("put of {key}: {e}"))
}

/// The ways a write can send its body, each tried under every [`PutMode`].
#[derive(Clone, Copy, Debug)]
enum Sent {
    Bytes,
    Small,
    Stream,
    File,
}

/// Writes `body` to `key` in `mode`, sent as `how` (a file's bodies through a file in `dir`).
async fn put_as(
    s: &dyn Store,
    how: Sent,
    dir: &std::path::Path,
    key: &str,
    body: &[u8],
    mode: PutMode,
) -> Option<String> {
    use sha2::Digest;
    let path = dir.join(common::unique_name("body"));
    std::fs::write(&path, body).unwrap();
    let o = PutOptions {
        sha256: Some(sha2::Sha256::digest(body).into()),
        mode,
        ..PutOptions::default()
    };
    let size = body.len() as u64;
    let sent = match how {
        Sent::Bytes => Body::Bytes(body.to_vec()),
        Sent::Small => Body::Small { path: &path, size },
        Sent::Stream => Body::Stream(&path),
        Sent::File => Body::File { path: &path, size },
    };
    s.put(key, sent, &o)
        .await
        .unwrap_or_else(|e| panic!("{how:?} put of {key}: {e}"))
}

/// Conditional writes, under every mode and with every kind of body: enforced by `file://`
/// and SeaweedFS, ignored by Garage 2.5 (which writes anyway). `enforced` says which, so a
/// Garage that starts enforcing them fails here and the notes in docs/stores.md get updated.
async fn conditional_puts(s: &dyn Store, enforced: bool) {
    let dir = tempfile::tempdir().unwrap();
    for how in [Sent::Bytes, Sent::Small, Sent::Stream, Sent::File] {
        // Fresh keys: the S3 suite runs twice on one bucket.
        let key = &format!("cond/{}", common::unique_name("m"));
        let missing_key = &format!("cond/{}", common::unique_name("missing"));
        let put = |body: &'static [u8], mode| put_as(s, how, dir.path(), key, body, mode);
        let first = put(b"first", PutMode::Create).await;
        let first = first.expect("If-None-Match on a missing key writes");
        assert_eq!(read_all(s, key, None).await.unwrap(), b"first", "{how:?}");
        let again = put(b"second", PutMode::Create).await;
        let wrong = put(b"third", PutMode::Update("0123456789abcdef".into())).await;
        if enforced {
            assert_eq!(
                again, None,
                "{how:?}: a second If-None-Match put must be refused"
            );
            assert_eq!(
                wrong, None,
                "{how:?}: If-Match with another entity tag must be refused"
            );
            assert_eq!(read_all(s, key, None).await.unwrap(), b"first", "{how:?}");
            let replaced = put(b"fourth", PutMode::Update(first.clone())).await;
            let replaced = replaced.expect("If-Match with the current entity tag writes");
            assert_eq!(read_all(s, key, None).await.unwrap(), b"fourth", "{how:?}");
            // Matching a key that does not exist is refused too (AWS: 404, SeaweedFS: 412).
            let update = PutMode::Update(first.clone());
            let missing = put_as(s, how, dir.path(), missing_key, b"x", update).await;
            assert_eq!(missing, None, "{how:?}");
            assert!(s.head(missing_key).await.unwrap().is_none(), "{how:?}");
            let overwritten = put(b"fifth", PutMode::Overwrite).await;
            assert_ne!(overwritten, Some(replaced), "{how:?}: a new entity tag");
        } else {
            assert!(
                again.is_some() && wrong.is_some(),
                "{how:?}: Garage ignores conditions"
            );
            assert_eq!(read_all(s, key, None).await.unwrap(), b"third", "{how:?}");
            let overwritten = put(b"fifth", PutMode::Overwrite).await;
            assert!(overwritten.is_some(), "{how:?}");
        }
        assert_eq!(read_all(s, key, None).await.unwrap(), b"fifth", "{how:?}");
    }
}

/// A small file's upload sends what was hashed, or nothing: a file rewritten since (at its
/// size or another) is refused, whether the store checks the digest or the body does.
async fn small_files(s: &dyn Store, enforced: bool) {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.bin");
    let body = pattern(70_000, 9);
    std::fs::write(&path, &body).unwrap();
    let sha: [u8; 32] = sha2::Sha256::digest(&body).into();
    let with_sha = PutOptions {
        sha256: Some(sha),
        ..opts("commit-hash", "c9")
    };
    let key = &format!("small/{}", common::unique_name("f"));
    let size = body.len() as u64;
    let put = |key: &str, cond| {
        let (path, with_sha) = (path.clone(), with_sha.clone());
        let key = key.to_string();
        let o = PutOptions {
            mode: cond,
            ..with_sha
        };
        async move { s.put(&key, Body::Small { path: &path, size }, &o).await }
    };
    let etag = put(key, PutMode::Overwrite)
        .await
        .unwrap()
        .expect("an unconditional write");
    assert!(!etag.is_empty());
    assert_eq!(read_all(s, key, None).await.unwrap(), body);
    let head = s.head(key).await.unwrap().unwrap();
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(
        head.metadata.get("commit-hash").map(String::as_str),
        Some("c9")
    );
    let again = put(key, PutMode::Create).await.unwrap();
    assert_eq!(
        again.is_none(),
        enforced,
        "If-None-Match on a key that exists"
    );
    // Rewritten after it was hashed: same size, other bytes; then another size.
    for rewritten in [pattern(70_000, 10), pattern(123, 10)] {
        std::fs::write(&path, &rewritten).unwrap();
        let other = &format!("small/{}", common::unique_name("changed"));
        let refused = put(other, PutMode::Overwrite)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("changed while it was being uploaded"),
            "a rewritten file must not be stored, and the error says why: {refused}"
        );
        assert!(
            s.head(other).await.unwrap().is_none(),
            "nothing is left under {other}"
        );
    }
}

/// A held write ([`Hold`]) appears only once its hold is released, and a withdrawn one leaves
/// nothing: neither the object nor an unfinished upload. A file in parts (past the 6 MiB
/// threshold) uploads its parts while held, and one request's body waits to be sent.
async fn held_puts(s: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    let big = pattern((7 << 20) + 5, 9);
    let path = dir.path().join("big");
    std::fs::write(&path, &big).unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, b"small").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    for (release, body) in [
        (true, "parts"),
        (false, "parts"),
        (true, "bytes"),
        (false, "bytes"),
        // A small file's write (S3: its request on the wire, its body kept back).
        (true, "file"),
        (false, "file"),
        (true, "empty"),
        (false, "empty"),
    ] {
        let key = format!("held/{body}-{release}");
        let (decide, hold) = Hold::new();
        // A small file's write carries its digest, as a publish's does.
        let sha256 = match body {
            "file" => Some(Sha256::digest(b"small").into()),
            "empty" => Some(Sha256::digest(b"").into()),
            _ => None,
        };
        let o = PutOptions {
            hold: Some(hold),
            sha256,
            ..PutOptions::default()
        };
        let put = async {
            match body {
                "parts" => {
                    let b = Body::File {
                        path: &path,
                        size: big.len() as u64,
                    };
                    s.put(&key, b, &o).await
                }
                "file" => {
                    let b = Body::Small {
                        path: &small,
                        size: 5,
                    };
                    s.put(&key, b, &o).await
                }
                "empty" => {
                    let b = Body::Small {
                        path: &empty,
                        size: 0,
                    };
                    s.put(&key, b, &o).await
                }
                _ => s.put(&key, Body::Bytes(b"small".to_vec()), &o).await,
            }
        };
        let decided = async {
            // Long enough for a multipart upload's parts to be in: still nothing to see.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(
                s.head(&key).await.unwrap().is_none(),
                "{key} appeared while held"
            );
            decide.decide(release);
        };
        let (put, ()) = tokio::join!(put, decided);
        match release {
            true => {
                put.unwrap_or_else(|e| panic!("{key}: {e}"));
                let want = match body {
                    "parts" => big.clone(),
                    "empty" => Vec::new(),
                    _ => b"small".to_vec(),
                };
                assert!(read_all(s, &key, None).await.unwrap() == want, "{key}");
            }
            false => {
                let e = put.expect_err("a withdrawn write");
                assert!(e.to_string().contains("withdrawn"), "{key}: {e}");
                assert!(s.head(&key).await.unwrap().is_none(), "{key} appeared");
                let pending = s.pending_uploads(&key).await.unwrap();
                assert!(pending.is_empty(), "{key}: left {pending:?}");
            }
        }
    }
    // A withdrawn write over an object leaves it as it was (a late publisher's write over a
    // complete set's file): held on the wire a while, then withdrawn.
    put_bytes(s, "held/kept", b"first", &PutOptions::default()).await;
    std::fs::write(&small, b"later").unwrap();
    let (decide, hold) = Hold::new();
    let o = PutOptions {
        hold: Some(hold),
        sha256: Some(Sha256::digest(b"later").into()),
        ..PutOptions::default()
    };
    let late = s.put(
        "held/kept",
        Body::Small {
            path: &small,
            size: 5,
        },
        &o,
    );
    let withdraw = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        decide.decide(false);
    };
    let (late, ()) = tokio::join!(late, withdraw);
    assert!(late.is_err(), "a withdrawn write: {late:?}");
    // The store has had time to act on the cut-off request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read_all(s, "held/kept", None).await.unwrap(), b"first");
    // Withdrawn by dropping what decides it, as a publish whose read failed does.
    let (decide, hold) = Hold::new();
    drop(decide);
    let o = PutOptions {
        hold: Some(hold),
        ..PutOptions::default()
    };
    assert!(s
        .put("held/dropped", Body::Bytes(b"x".to_vec()), &o)
        .await
        .is_err());
    assert!(s.head("held/dropped").await.unwrap().is_none());
    // The suite runs twice on one bucket: nothing may be there when it starts again.
    let keys: Vec<String> = s
        .list("held/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    s.delete(&keys).await.unwrap();
}

async fn conformance(s: Arc<dyn Store>, conditions_enforced: bool) {
    let s = s.as_ref();
    conditional_puts(s, conditions_enforced).await;
    small_files(s, conditions_enforced).await;
    held_puts(s).await;
    // Missing objects.
    assert!(s.head("nope/x").await.unwrap().is_none());
    assert!(s.get("nope/x", None).await.unwrap().is_none());
    assert!(s.get_bytes("nope/x", 100).await.unwrap().is_none());
    assert!(s.list("nope/").await.unwrap().is_empty());

    // A put of bytes, head with metadata, get, ranges.
    put_bytes(s, "a/b/one.txt", b"hello world", &opts("commit-hash", "c1")).await;
    let h = s.head("a/b/one.txt").await.unwrap().unwrap();
    assert_eq!(h.size, 11);
    // A bounded read stops one byte past its limit, so a caller sees "too large".
    assert_eq!(
        s.get_bytes("a/b/one.txt", 4).await.unwrap().unwrap(),
        b"hello"
    );
    assert_eq!(
        s.get_bytes("a/b/one.txt", 11).await.unwrap().unwrap(),
        b"hello world"
    );
    assert_eq!(
        h.metadata.get("commit-hash").map(String::as_str),
        Some("c1")
    );
    assert_eq!(
        read_all(s, "a/b/one.txt", None).await.unwrap(),
        b"hello world"
    );
    assert_eq!(
        read_all(s, "a/b/one.txt", Some((6, 10))).await.unwrap(),
        b"world"
    );
    // Overwrite replaces content and metadata.
    put_bytes(s, "a/b/one.txt", b"bye", &opts("commit-hash", "c2")).await;
    let h = s.head("a/b/one.txt").await.unwrap().unwrap();
    assert_eq!((h.size, h.metadata["commit-hash"].as_str()), (3, "c2"));

    // Listing is by key prefix, not by directory, and sorted.
    put_bytes(s, "a/b2", b"x", &PutOptions::default()).await;
    put_bytes(s, "a/b/z", b"zz", &PutOptions::default()).await;
    let keys: Vec<String> = s
        .list("a/b")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["a/b/one.txt", "a/b/z", "a/b2"]);
    let listed = s.list("a/b/").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].size, 2);

    // Small and multipart file uploads, with checksums.
    let dir = tempfile::tempdir().unwrap();
    let small = pattern(1000, 1);
    let big = pattern((13 << 20) + 123, 2);
    std::fs::write(dir.path().join("small"), &small).unwrap();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    for (name, body) in [("small", &small), ("big", &big)] {
        let sha: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(body).into()
        };
        let o = PutOptions {
            sha256: Some(sha),
            ..opts("package-hash", name)
        };
        s.put(
            &format!("f/{name}"),
            Body::File {
                path: &dir.path().join(name),
                size: body.len() as u64,
            },
            &o,
        )
        .await
        .unwrap();
        assert_eq!(
            &read_all(s, &format!("f/{name}"), None).await.unwrap(),
            body
        );
        let h = s.head(&format!("f/{name}")).await.unwrap().unwrap();
        assert_eq!(h.size, body.len() as u64);
        assert_eq!(h.metadata["package-hash"], name);
    }
    // Part CRCs computed by the caller are sent as they are: right ones store the file, and a
    // wrong one is refused where the store checks part checksums.
    if let Some(part) = s.checksum_parts(big.len() as u64) {
        use sha2::Digest;
        let crc = |b: &[u8]| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b);
        let mut o = PutOptions {
            sha256: Some(sha2::Sha256::digest(&big).into()),
            part_crc64: big.chunks(part as usize).map(crc).collect(),
            ..opts("package-hash", "parts")
        };
        assert_eq!(o.part_crc64.len(), 3);
        let path = dir.path().join("big");
        let size = big.len() as u64;
        s.put("f/parts", Body::File { path: &path, size }, &o)
            .await
            .unwrap();
        assert_eq!(read_all(s, "f/parts", None).await.unwrap(), big);
        o.part_crc64[1] ^= 1;
        s.put("f/parts-wrong", Body::File { path: &path, size }, &o)
            .await
            .expect_err("a wrong part checksum is refused");
        assert!(s.head("f/parts-wrong").await.unwrap().is_none());
    }
    // A range inside the second part of the multipart object.
    let (a, b) = (6u64 << 20, (6u64 << 20) + 99);
    assert_eq!(
        read_all(s, "f/big", Some((a, b))).await.unwrap(),
        &big[a as usize..=b as usize]
    );

    // Entity tags: what a write returns is what a listing shows.
    let listed = |key: &'static str| async move {
        s.list(key)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.key == key)
            .and_then(|o| o.etag)
            .expect("listed with an etag")
    };
    let small_tag = listed("f/small").await;
    let big_tag = listed("f/big").await;

    // Server-side copy, single and multipart, replacing metadata, guarded by the source's tag.
    let copied = s
        .copy(
            "f/small",
            "g/small",
            small.len() as u64,
            &opts("commit-hash", "new"),
            Some(&small_tag),
        )
        .await
        .unwrap();
    assert_eq!(copied, listed("g/small").await);
    let copied = s
        .copy(
            "f/big",
            "g/dir/big",
            big.len() as u64,
            &opts("commit-hash", "new"),
            Some(&big_tag),
        )
        .await
        .unwrap();
    assert_eq!(copied, listed("g/dir/big").await);
    assert_eq!(read_all(s, "g/small", None).await.unwrap(), small);
    assert_eq!(read_all(s, "g/dir/big", None).await.unwrap(), big);
    let h = s.head("g/dir/big").await.unwrap().unwrap();
    assert_eq!(
        h.metadata.get("commit-hash").map(String::as_str),
        Some("new")
    );
    assert!(
        !h.metadata.contains_key("package-hash"),
        "metadata is replaced"
    );
    assert!(s
        .copy("f/missing", "g/x", 1, &PutOptions::default(), None)
        .await
        .is_err());
    // A rewritten source has a new tag, and a copy guarded by the old one is refused.
    let rewritten = s
        .put(
            "f/small",
            Body::Bytes(b"rewritten".to_vec()),
            &PutOptions::default(),
        )
        .await
        .unwrap()
        .expect("written");
    assert_ne!(rewritten, small_tag);
    assert_eq!(rewritten, listed("f/small").await);
    for (src, size, tag) in [
        ("f/small", 9, &small_tag),
        ("f/big", big.len() as u64, &"0".repeat(32)),
    ] {
        let e = s
            .copy(src, "g/refused", size, &PutOptions::default(), Some(tag))
            .await
            .unwrap_err();
        assert!(
            matches!(e, s3_asset_manager::Error::Precondition(_)),
            "{src}: {e}"
        );
    }
    assert!(s.head("g/refused").await.unwrap().is_none());

    // Listings paginate past 1,000 keys.
    futures_lite_for_each(s, 1100).await;
    let many = s.list("many/").await.unwrap();
    assert_eq!(many.len(), 1100);
    assert!(many.windows(2).all(|w| w[0].key < w[1].key));

    // Odd but legal key characters survive a round trip and a copy.
    let odd = "odd/sp ace+plus%pct&amp=é.zip";
    put_bytes(s, odd, b"odd", &PutOptions::default()).await;
    s.copy(odd, "odd/copy of é", 3, &PutOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(read_all(s, "odd/copy of é", None).await.unwrap(), b"odd");
    assert_eq!(s.list("odd/").await.unwrap().len(), 2);

    // A listing's first page, and whether it goes on past it.
    let (first, more) = s.list_first("many/").await.unwrap();
    assert_eq!((first.len(), more), (1000, true));
    let keys = |l: &[store::ObjectInfo]| l.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&many[..1000]));
    let (odd, more) = s.list_first("odd/").await.unwrap();
    assert_eq!((odd.len(), more), (2, false));

    deletes(s).await;
}

/// Listings carry each object's time; a delete takes up to 1,000 keys in one request, a
/// missing key among them included, and leaves the rest.
async fn deletes(s: &dyn Store) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let listed = s.list("many/").await.unwrap();
    for o in &listed {
        let t = o.modified_ms.expect("a listing gives each object's time");
        // Within ten minutes of this machine's clock (a store's clock may be a little off).
        assert!(
            t.abs_diff(now_ms) < 600_000,
            "{} at {t}, now {now_ms}",
            o.key
        );
    }
    let mut keys: Vec<String> = listed.iter().map(|o| o.key.clone()).take(999).collect();
    keys.push("many/never-written".into());
    assert_eq!(keys.len(), store::DELETE_BATCH);
    s.delete(&keys).await.unwrap();
    let left = s.list("many/").await.unwrap();
    assert_eq!(left.len(), 1100 - 999, "the rest stay");
    assert!(left.iter().all(|o| !keys.contains(&o.key)));
    // A nested key's directories (on file://) go with it; a sibling stays.
    put_bytes(s, "del/x/y/z", b"z", &PutOptions::default()).await;
    put_bytes(s, "del/x/w", b"w", &PutOptions::default()).await;
    s.delete(&["del/x/y/z".to_string()]).await.unwrap();
    assert_eq!(
        s.list("del/")
            .await
            .unwrap()
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["del/x/w"]
    );
    // A key written again after its directory was emptied is stored (file:// removes
    // emptied directories, and a write makes them again).
    put_bytes(s, "del/x/y/z", b"z2", &PutOptions::default()).await;
    assert_eq!(read_all(s, "del/x/y/z", None).await.unwrap(), b"z2");
    s.delete(&[]).await.unwrap();
    // Nothing pending in a store whose writes all finished; the list answers.
    assert!(s.pending_uploads("del/").await.unwrap().is_empty());
}

async fn futures_lite_for_each(s: &dyn Store, n: usize) {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .for_each_concurrent(32, |i| async move {
            s.put(
                &format!("many/{i:05}"),
                Body::Bytes(vec![b'x']),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        bucket: Some(Bucket::Local(dir.path().to_path_buf())),
        ..StoreConfig::default()
    };
    let s = store::open(&cfg, &small_tuning()).await.unwrap();
    conformance(s.clone(), true).await;
    // A temporary file a killed write left is an unfinished upload, and aborting removes it.
    let tmp = dir.path().join(".s3am/tmp/12345-0-0");
    std::fs::write(&tmp, b"half").unwrap();
    let pending = s.pending_uploads("").await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(pending[0].started_ms.is_some());
    s.abort_upload(&pending[0]).await.unwrap();
    assert!(!tmp.exists());
    // The store's own bookkeeping never shows up as keys.
    assert!(s
        .list("")
        .await
        .unwrap()
        .iter()
        .all(|o| !o.key.starts_with(".s3am")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms() {
    let g = common::S3Server::get();
    let bucket = tokio::task::spawn_blocking({
        let g = g.clone();
        move || g.new_bucket("conf")
    })
    .await
    .unwrap();
    for skip_checksums in [false, true] {
        let cfg = StoreConfig {
            bucket: Some(Bucket::S3(bucket.clone())),
            endpoint: Some(g.endpoint.clone()),
            region: Some(g.region.clone()),
            path_style: true,
            access_key_id: Some(g.access_key.clone()),
            secret_access_key: Some(g.secret_key.clone()),
            skip_checksums,
            ..StoreConfig::default()
        };
        let s = store::open(&cfg, &small_tuning()).await.unwrap();
        conformance(s.clone(), g.store == common::Store::SeaweedFs).await;
        // An unfinished multipart upload is listed, with its time, and aborted.
        let key = format!("pending/{skip_checksums}");
        let up = g
            .client()
            .create_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let pending = s.pending_uploads(&key).await.unwrap();
        assert_eq!(pending.len(), 1, "{:?}: {pending:?}", g.store);
        assert_eq!(pending[0].key, key);
        assert_eq!(Some(pending[0].id.as_str()), up.upload_id());
        assert!(pending[0].started_ms.is_some(), "{:?}", g.store);
        s.abort_upload(&pending[0]).await.unwrap();
        assert!(s.pending_uploads(&key).await.unwrap().is_empty());
        // With checksums on, a multipart upload carries the whole object's CRC64/NVME, which
        // the store keeps (and checked: a wrong part is refused above).
        if !skip_checksums {
            let big = pattern((13 << 20) + 123, 2);
            let h = g
                .client()
                .head_object()
                .bucket(&bucket)
                .key("f/big")
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            let want = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &big);
            use base64::Engine as _;
            assert_eq!(
                h.checksum_crc64_nvme(),
                Some(
                    base64::engine::general_purpose::STANDARD
                        .encode(want.to_be_bytes())
                        .as_str()
                ),
                "{:?}: the multipart object's full CRC64NVME",
                g.store
            );
        }
    }
}

#[tokio::test]
async fn a_missing_local_bucket_is_refused() {
    let cfg = StoreConfig {
        bucket: Some(Bucket::Local("/nonexistent/s3am-bucket".into())),
        ..StoreConfig::default()
    };
    let e = match store::open(&cfg, &small_tuning()).await {
        Err(e) => e,
        Ok(_) => panic!("opened a missing directory"),
    };
    assert_eq!(e.exit_code(), s3_asset_manager::error::exit::STORE_REFUSED);
    assert!(e.to_string().contains("mkdir -p"), "{e}");
}
