//! Unit tests of `complete`.

use super::write::Spilled;
use super::*;
use crate::layout::Layout;
use crate::manifest::FileEntry;

#[test]
fn a_spilled_manifest_holds_its_bytes_and_is_removed_when_dropped() {
    let loc = Layout::new("team").unwrap().artifacts(&"c".repeat(40));
    let files = (0..3000)
        .map(|i| FileEntry {
            path: format!("d{}/f{i:05}.zip", i % 7),
            size: i,
            sha256: [i as u8; 32].into(),
            etag: Some(format!("e{i}")),
            pieces: None,
        })
        .collect();
    let m = Manifest::new(&loc, &"c".repeat(40), Some(&"a".repeat(64)), files);
    let spilled = Spilled::write(&m).unwrap();
    let bytes = std::fs::read(&spilled.path).unwrap();
    assert_eq!(bytes, m.to_bytes());
    assert_eq!(spilled.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&spilled.path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "readable by this user only");
    let path = spilled.path.clone();
    drop(spilled);
    assert!(!path.exists(), "{} left behind", path.display());
}
