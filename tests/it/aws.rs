//! The built binary end to end against moto's server, which stands in for AWS's control plane
//! (`scripts/test` starts it and exports `S3AM_TEST_MOTO_ENDPOINT`): `AWS_ROLE` through STS
//! AssumeRole, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`) through
//! AssumeRoleWithWebIdentity, and server-side encryption (`AES256`, `aws:kms` with a key id)
//! read back from every stored object. A recording proxy in front of moto shows which key
//! signed each request, and moto's STS (GetCallerIdentity) which role that key belongs to.

use crate::common;
use crate::common::proxy;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use common::{S3Server, Task};
use proxy::{Faults, Proxy};

/// The account moto puts every role in.
const ACCOUNT: &str = "123456789012";
/// The base key the tool starts from; moto accepts any key, so only the signatures tell
/// which credentials a request used.
const BASE_KEY: &str = "AKIAS3AMBASEKEY00001";

/// moto's server, or `None` when S3 tests are skipped.
fn moto() -> Option<S3Server> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match var("S3AM_TEST_MOTO_ENDPOINT") {
        Some(endpoint) => Some(S3Server {
            endpoint,
            region: "us-east-1".into(),
            access_key: BASE_KEY.into(),
            secret_key: "s3am-base-secret".into(),
            store: common::Store::Moto,
        }),
        None => panic!(
            "S3AM_TEST_MOTO_ENDPOINT is not set: run the tests with ./scripts/test, which starts moto's server"
        ),
    }
}

/// The identity moto's STS gives the caller whose requests carry `key`: an unsigned-but-
/// well-formed GetCallerIdentity (moto reads the key id and does not check signatures).
fn caller_arn(s: &S3Server, key: &str) -> String {
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let mut c = TcpStream::connect(s.addr()).expect("connect to moto");
    write!(
        c,
        "POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: {len}\r\n\r\n{body}",
        host = s.addr(),
        len = body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let arn = out
        .split("<Arn>")
        .nth(1)
        .and_then(|r| r.split("</Arn>").next())
        .unwrap_or_else(|| panic!("GetCallerIdentity for {key}: {out}"));
    arn.to_string()
}

/// `arn:aws:iam::<account>:role/<name>` as the session `session` of it.
fn assumed(role_arn: &str, session: &str) -> String {
    let name = role_arn.rsplit('/').next().unwrap();
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}")
}

/// The access key in a request's SigV4 `Authorization` header, and the service it signed for.
fn signer(head: &str) -> Option<(String, String)> {
    let auth = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))?;
    let cred = auth.split("Credential=").nth(1)?;
    let mut parts = cred.split('/');
    let key = parts.next()?.to_string();
    let service = parts.nth(2)?.to_string();
    Some((key, service))
}

/// Publishes an asset set (one multipart file, cache on), restores it for a docs-only
/// commit, and fetches it back verified, all through a recording proxy to moto.
fn round_trip(s: &S3Server, extra: &[(&str, &str)], drop: &[&str]) -> (String, Proxy) {
    let bucket = s.new_bucket("aws");
    let p = Proxy::start(s.addr(), Faults::default());
    let mut env = s.env(&bucket);
    env.insert("AWS_ENDPOINT_URL".into(), p.url());
    env.insert("CODE_HASH_FIND_FILTER".into(), "src".into());
    for (k, v) in common::SMALL_PARTS.into_iter().chain(extra.iter().copied()) {
        env.insert(k.into(), v.into());
    }
    for k in drop {
        env.remove(*k);
    }
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    t.run(&["check"]).ok();
    assert!(!t.found());
    let big: Vec<u8> = (0..(7u32 << 20)).map(|i| (i % 251) as u8).collect();
    let files: BTreeMap<&str, &[u8]> = [
        ("fn.zip", b"zip".as_slice()),
        ("site/index.html", b"<p>hi</p>".as_slice()),
        ("big.bin", big.as_slice()),
    ]
    .into();
    t.build(&files.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
    t.run(&["upload"]).ok();
    // A docs-only commit: restored from the cache by server-side copy.
    t.reset_packages();
    t.repo.write("README.md", "docs\n");
    t.repo.commit("docs");
    let r = t.run(&["check"]);
    r.ok();
    assert!(t.found(), "restored from the cache: {}", r.stderr);
    let dest = t.root.join("fetched");
    t.run(&["fetch", "--dest", dest.to_str().unwrap()]).ok();
    for (rel, body) in &files {
        assert!(std::fs::read(dest.join(rel)).unwrap() == *body, "{rel}");
    }
    (bucket, p)
}

/// The keys that signed the S3 requests (one per process: each run assumes the role anew),
/// each a temporary key with its session token; and how many requests there were.
fn s3_signers(p: &Proxy) -> (std::collections::BTreeSet<String>, usize) {
    let heads = p.stats.heads.lock().unwrap();
    let s3: Vec<&String> = heads
        .iter()
        .filter(|h| signer(h).is_some_and(|(_, svc)| svc == "s3"))
        .collect();
    assert!(!s3.is_empty(), "no S3 request went through the proxy");
    let mut keys = std::collections::BTreeSet::new();
    for h in &s3 {
        let (k, _) = signer(h).unwrap();
        assert!(k.starts_with("ASIA"), "not a temporary key:\n{h}");
        assert!(
            h.to_ascii_lowercase().contains("x-amz-security-token:"),
            "a temporary key comes with its session token:\n{h}"
        );
        keys.insert(k);
    }
    (keys, s3.len())
}

#[test]
fn aws_role_is_assumed_through_sts() {
    let Some(s) = moto() else { return };
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", common::unique_name("ci"));
    let (_, p) = round_trip(&s, &[("AWS_ROLE", &role)], &[]);
    let (keys, n) = s3_signers(&p);
    for key in &keys {
        assert_eq!(caller_arn(&s, key), assumed(&role, "s3-asset-manager"));
    }
    // The base key signed the AssumeRole calls, and nothing else.
    let heads = p.stats.heads.lock().unwrap();
    let by_base: Vec<String> = heads
        .iter()
        .filter_map(|h| signer(h))
        .filter(|(k, _)| k == BASE_KEY)
        .map(|(_, svc)| svc)
        .collect();
    assert!(!by_base.is_empty(), "the base key called STS");
    assert!(by_base.iter().all(|svc| svc == "sts"), "{by_base:?}");
    eprintln!("{n} S3 requests signed by the assumed role's keys {keys:?}");
}

#[test]
fn web_identity_is_exchanged_through_sts() {
    let Some(s) = moto() else { return };
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", common::unique_name("web"));
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    // A JWT's shape; moto does not check its signature.
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJl").unwrap();
    let (_, p) = round_trip(
        &s,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_ROLE_ARN", &role),
            ("AWS_ROLE_SESSION_NAME", "s3am-test"),
        ],
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    );
    let (keys, n) = s3_signers(&p);
    for key in &keys {
        assert_eq!(caller_arn(&s, key), assumed(&role, "s3am-test"));
    }
    let heads = p.stats.heads.lock().unwrap();
    assert!(
        heads.iter().all(|h| !h.contains(BASE_KEY)),
        "no static key was used"
    );
    eprintln!("{n} S3 requests signed by the web identity role's keys {keys:?}");
}

/// Every object in `bucket` carries the encryption `want` (and the KMS key id `key`).
fn assert_encrypted(s: &S3Server, bucket: &str, want: &str, key: Option<&str>) {
    let keys = s.keys(bucket);
    assert!(keys.iter().any(|k| k.ends_with("big.bin")));
    assert!(
        keys.iter().any(|k| k.contains("/.")),
        "the manifests: {keys:?}"
    );
    common::rt().block_on(async {
        let c = s.client();
        for k in &keys {
            let h = c.head_object().bucket(bucket).key(k).send().await.unwrap();
            assert_eq!(
                h.server_side_encryption().map(|e| e.as_str()),
                Some(want),
                "{k}"
            );
            if let Some(id) = key {
                let got = h.ssekms_key_id().unwrap_or_default();
                assert!(got.ends_with(id), "{k}: KMS key {got:?}, want {id}");
            }
        }
    });
    eprintln!("{} objects encrypted with {want}", keys.len());
}

#[test]
fn sse_aes256_is_on_every_object() {
    let Some(s) = moto() else { return };
    let (bucket, _) = round_trip(&s, &[("S3AM_SSE", "AES256")], &[]);
    assert_encrypted(&s, &bucket, "AES256", None);
}

#[test]
fn sse_kms_with_a_key_id_is_on_every_object() {
    let Some(s) = moto() else { return };
    let kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (bucket, _) = round_trip(
        &s,
        &[("S3AM_SSE", "aws:kms"), ("S3AM_SSE_KMS_KEY_ID", kms)],
        &[],
    );
    assert_encrypted(&s, &bucket, "aws:kms", Some(kms));
}

/// The resource's `aws_role_arn`, `server_side_encryption` and `sse_kms_key_id` reach the
/// store as the task's variables do: a publish through `out` assumes the role for every S3
/// request and encrypts every object it writes with the KMS key.
#[test]
fn the_resource_assumes_its_role_and_encrypts_with_its_key() {
    let Some(s) = moto() else { return };
    let bucket = s.new_bucket("awsres");
    let p = Proxy::start(s.addr(), Faults::default());
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", common::unique_name("res"));
    let kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let t = Task::new(common::Env::new(), &[("src/main.py", "print(1)\n")]);
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    t.build(&[("fn.zip", b"zip".as_slice()), ("big.bin", big.as_slice())]);
    let source = s.source(
        &bucket,
        serde_json::json!({
            "endpoint": p.url(),
            "code_hash_filter": ["src"],
            "aws_role_arn": role,
            "server_side_encryption": "aws:kms",
            "sse_kms_key_id": kms,
        }),
    );
    let r = common::resource(
        "out",
        &t.root,
        &serde_json::json!({"source": source, "params": {"repo": "repo", "path": "packages"}}),
    );
    r.ok();
    assert!(r.stdout.contains("\"uploaded\""), "{}", r.stdout);
    assert_encrypted(&s, &bucket, "aws:kms", Some(kms));
    let (keys, n) = s3_signers(&p);
    let name = role.rsplit('/').next().unwrap();
    for key in &keys {
        let arn = caller_arn(&s, key);
        assert!(
            arn.starts_with(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/{name}/")),
            "{key} is {arn}, not the role"
        );
    }
    eprintln!("{n} S3 requests signed by the role's keys {keys:?}");
}
