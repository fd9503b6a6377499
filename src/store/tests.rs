//! Unit tests of `store`.

use super::*;

#[test]
fn debug_never_shows_credentials() {
    let cfg = StoreConfig {
        secret_access_key: Some("SECRETKEY".into()),
        session_token: Some("SESSIONTOKEN".into()),
        ..StoreConfig::default()
    };
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("SECRETKEY") && !shown.contains("SESSIONTOKEN"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn parses_buckets() {
    assert_eq!(
        Bucket::parse("my-assets").unwrap(),
        (Bucket::S3("my-assets".into()), String::new())
    );
    assert_eq!(
        Bucket::parse("s3://my-assets/team/a").unwrap(),
        (Bucket::S3("my-assets".into()), "team/a".into())
    );
    assert_eq!(
        Bucket::parse("file:///tmp/b").unwrap(),
        (Bucket::Local("/tmp/b".into()), String::new())
    );
    for bad in ["", "file://rel", "My_Bucket!", "ab"] {
        assert!(matches!(Bucket::parse(bad), Err(Error::Config(_))), "{bad}");
    }
}
