//! Unit tests of `sink`.

use super::*;

fn sha(data: &[u8]) -> Option<[u8; 32]> {
    Some(Sha256::digest(data).into())
}

fn data() -> Vec<u8> {
    (0..3 * WRITE_SLICE + 12_345)
        .map(|i| (i * 31 % 251) as u8)
        .collect()
}

fn mismatch(size: u64, got: &str) -> Error {
    Error::Corrupt(format!("mismatch: {size} {got}"))
}

/// The target `f` in `dir`, its temporary file's path and its own.
fn target(dir: &std::path::Path) -> (Target, PathBuf, PathBuf) {
    let root = Dir::open_root(dir, crate::beneath::Tree::Destination).unwrap();
    let t = Target::new(root, "f");
    (t, dir.join(".f.s3am-partial"), dir.join("f"))
}

/// The directory a download writes into is swapped for a link to another directory once
/// its handle is open: the temporary file and the renamed file still land in the
/// directory that was opened, and nothing is written where the link points, whether the
/// download succeeds or is dropped. A link planted at the temporary name is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_link_redirects_nothing() {
    let top = tempfile::tempdir().unwrap();
    let (sub, moved, outside) = (
        top.path().join("sub"),
        top.path().join("moved"),
        top.path().join("outside"),
    );
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let (t, _, _) = target(&sub);
    std::fs::rename(&sub, &moved).unwrap();
    std::os::unix::fs::symlink(&outside, &sub).unwrap();
    std::os::unix::fs::symlink(outside.join("planted"), moved.join(".f.s3am-partial")).unwrap();
    let body = data();
    let sink = Sink::new(t.clone(), Tracker::new().token());
    let kept = sink
        .finish(body.clone(), body.len() as u64, sha(&body), mismatch)
        .await
        .unwrap();
    kept.rename().unwrap();
    assert_eq!(std::fs::read(moved.join("f")).unwrap(), body);
    let file = Ranged::create(t, Tracker::new().token()).unwrap();
    file.writer().write_at(&body[..10], 0).unwrap();
    drop(file);
    let mut names = std::fs::read_dir(&moved)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names, vec!["f"]);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_written_out_of_order_land_whole_and_are_hashed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (t, tmp, target) = target(dir.path());
    let body = data();
    let cut = [0, 100_000, WRITE_SLICE + 7, body.len()];
    let file = Ranged::create(t, Tracker::new().token()).unwrap();
    // The last range arrives first, then the others; completion is reported in order.
    for i in [2, 0, 1] {
        let (a, b) = (cut[i], cut[i + 1]);
        file.writer().write_at(&body[a..b], a as u64).unwrap();
    }
    for end in &cut[1..] {
        file.complete_to(*end as u64);
    }
    let kept = file
        .finish(body.len() as u64, sha(&body), mismatch)
        .await
        .unwrap();
    assert!(!target.exists(), "renamed only by its owner");
    kept.rename().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), body);
    assert!(!tmp.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_file_that_does_not_match_is_removed_and_never_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let (t, tmp, target) = target(dir.path());
    let body = data();
    let file = Ranged::create(t.clone(), Tracker::new().token()).unwrap();
    file.writer().write_at(&body, 0).unwrap();
    file.complete_to(body.len() as u64);
    let mut wrong = body.clone();
    wrong[5] ^= 1;
    let err = file
        .finish(body.len() as u64, sha(&wrong), mismatch)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&hex::encode(sha(&body).unwrap())),
        "{err}"
    );
    assert!(!tmp.exists() && !target.exists());

    // Dropped before `finish` (a failed range): the file goes too.
    let file = Ranged::create(t, Tracker::new().token()).unwrap();
    file.writer().write_at(&body[..10], 0).unwrap();
    drop(file);
    assert!(!tmp.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_ranged_file_fails_on_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let (t, tmp, target) = target(dir.path());
    let body = data();
    let file = Ranged::create(t, Tracker::new().token()).unwrap();
    file.writer().write_at(&body[..1000], 0).unwrap();
    file.complete_to(1000);
    let err = file
        .finish(body.len() as u64, None, mismatch)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("mismatch: 1000 "), "{err}");
    assert!(!tmp.exists() && !target.exists());
}
