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

/// An HTTPS endpoint, or AWS's own (none set), says so: the transfer loops count each small
/// download's TLS state against their memory budget (80 MB peak over HTTPS when they did not).
#[tokio::test]
async fn a_store_over_https_says_so() {
    let cases = [
        (Some("https://s3.example.com"), true),
        (Some("http://127.0.0.1:9000"), false),
        (None, true),
    ];
    for (endpoint, tls) in cases {
        let cfg = StoreConfig {
            bucket: Some(Bucket::S3("assets".into())),
            endpoint: endpoint.map(Into::into),
            region: Some("eu-west-1".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..StoreConfig::default()
        };
        let s = open(&cfg, &Tuning::default()).await.unwrap();
        assert_eq!(s.tls(), tls, "{endpoint:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let local = StoreConfig {
        bucket: Some(Bucket::Local(dir.path().to_path_buf())),
        ..StoreConfig::default()
    };
    assert!(!open(&local, &Tuning::default()).await.unwrap().tls());
}
