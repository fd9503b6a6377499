//! The built binary end to end against moto's server, which stands in for AWS's control plane
//! (`scripts/test` starts two, see [`moto`] and [`moto_auth`]): `AWS_ROLE` through STS
//! AssumeRole, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`) through
//! AssumeRoleWithWebIdentity, and server-side encryption (`AES256`, `aws:kms` with a key id)
//! read back from every stored object. The assumed roles run against the moto that checks
//! signatures, so a request signed with anything but the role session's own secret and token
//! is refused; a recording proxy in front of moto shows which key signed each request, and
//! STS's answers to the tool which role's session each key is.

use crate::common;
use crate::common::proxy;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use common::{S3Server, Task};
use proxy::{Faults, Proxy};

/// The account moto puts every user and role in.
const ACCOUNT: &str = "123456789012";
/// The base key the tool starts from on the moto that checks no signature; it accepts any
/// key, so only the signatures tell which credentials a request used.
const BASE_KEY: &str = "AKIAS3AMBASEKEY00001";

/// moto's server that checks no signature (`S3AM_TEST_MOTO_ENDPOINT`): web identity, whose
/// unsigned AssumeRoleWithWebIdentity moto's access control cannot take (it answers 500 for
/// want of an `Authorization` header), and the encryption headers.
fn moto() -> S3Server {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("S3AM_TEST_MOTO_ENDPOINT") else {
        panic!(
            "S3AM_TEST_MOTO_ENDPOINT is not set: run the tests with ./scripts/test, which starts moto's server"
        )
    };
    S3Server {
        endpoint,
        region: "us-east-1".into(),
        access_key: BASE_KEY.into(),
        secret_key: "s3am-base-secret".into(),
        store: common::Store::Moto,
    }
}

/// moto's server that checks every request as IAM would (`S3AM_TEST_MOTO_AUTH_ENDPOINT`):
/// the SigV4 signature against the secret of the key it issued, a temporary key's session
/// token, and the policies of the user or role the key belongs to. Its key is that of an IAM
/// user allowed everything (`S3AM_TEST_MOTO_AUTH_ACCESS_KEY`), which makes and reads the
/// buckets and sets up each test's [`Principals`].
fn moto_auth() -> S3Server {
    let var = |k: &str| {
        std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            panic!(
                "{k} is not set: run the tests with ./scripts/test, which starts moto's server that checks signatures"
            )
        })
    };
    S3Server {
        endpoint: var("S3AM_TEST_MOTO_AUTH_ENDPOINT"),
        region: "us-east-1".into(),
        access_key: var("S3AM_TEST_MOTO_AUTH_ACCESS_KEY"),
        secret_key: var("S3AM_TEST_MOTO_AUTH_SECRET_KEY"),
        store: common::Store::Moto,
    }
}

/// One HTTP/1.1 exchange with `s` (`request` says `Connection: close`): the answer's status
/// and body.
fn exchange(s: &S3Server, request: &str) -> (u16, String) {
    let mut c = TcpStream::connect(s.addr()).expect("connect to moto");
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    (
        status.unwrap_or_else(|| panic!("not HTTP: {out}")),
        body.to_string(),
    )
}

/// An access key: an IAM user's, or a role session's with its token.
#[derive(Clone)]
struct Keys {
    id: String,
    secret: String,
    token: Option<String>,
}

impl Keys {
    /// The variables the tool reads them from.
    fn env(&self) -> Vec<(&'static str, &str)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
        ];
        env.extend(self.token.as_deref().map(|t| ("AWS_SESSION_TOKEN", t)));
        env
    }
}

/// The text of the first `<tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let rest = xml.split(&format!("<{tag}>")).nth(1)?;
    rest.split(&format!("</{tag}>")).next()
}

/// `params` as an `application/x-www-form-urlencoded` body.
fn form(params: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let pairs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    pairs.join("&")
}

/// One Query API action of `service` (`iam` or `sts`) at `s`, signed with SigV4 by `keys`, as
/// the SDKs send it: the answer's XML, or `Err` with its status and body when it is not 200.
fn action(
    s: &S3Server,
    service: &str,
    keys: &Keys,
    params: &[(&str, &str)],
) -> Result<String, String> {
    let body = form(params);
    let host = s.addr().to_string();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity: Identity =
        Credentials::new(&keys.id, &keys.secret, keys.token.clone(), None, "test").into();
    let signing = v4::SigningParams::builder()
        .identity(&identity)
        .region(&s.region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        "POST",
        format!("{}/", s.endpoint),
        [("host", host.as_str()), ("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (signed, _) = sign(request, &signing).unwrap().into_parts();
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in signed.headers() {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match exchange(s, &format!("{head}\r\n{body}")) {
        (200, xml) => Ok(xml),
        (status, answer) => Err(format!("HTTP {status}: {answer}")),
    }
}

/// One test's IAM on [`moto_auth`]: a user with an access key of its own (`base`), and a role
/// that trusts the user and may do anything in S3 to one bucket and its objects, nothing else.
struct Principals {
    base: Keys,
    role: String,
}

impl Principals {
    /// Makes them on `s`, named after `tag`, the role's S3 permission on `bucket`. The user may
    /// call sts:AssumeRole on the role only if `may_assume`; it has no other permission.
    fn new(s: &S3Server, tag: &str, bucket: &str, may_assume: bool) -> Principals {
        let admin = Keys {
            id: s.access_key.clone(),
            secret: s.secret_key.clone(),
            token: None,
        };
        let iam = |params: &[(&str, &str)]| {
            let params = [&[("Version", "2010-05-08")], params].concat();
            action(s, "iam", &admin, &params).unwrap_or_else(|e| panic!("IAM {params:?}: {e}"))
        };
        let policy = |action: &str, resource: serde_json::Value| {
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
            })
            .to_string()
        };
        let name = common::unique_name(tag);
        let user = format!("arn:aws:iam::{ACCOUNT}:user/{name}");
        let role = format!("arn:aws:iam::{ACCOUNT}:role/{name}");
        iam(&[("Action", "CreateUser"), ("UserName", &name)]);
        let key = iam(&[("Action", "CreateAccessKey"), ("UserName", &name)]);
        let base = Keys {
            id: xml_text(&key, "AccessKeyId").unwrap().to_string(),
            secret: xml_text(&key, "SecretAccessKey").unwrap().to_string(),
            token: None,
        };
        if may_assume {
            let assume = policy("sts:AssumeRole", role.clone().into());
            iam(&[
                ("Action", "PutUserPolicy"),
                ("UserName", &name),
                ("PolicyName", "assume"),
                ("PolicyDocument", &assume),
            ]);
        }
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": user}, "Action": "sts:AssumeRole"}],
        })
        .to_string();
        iam(&[
            ("Action", "CreateRole"),
            ("RoleName", &name),
            ("AssumeRolePolicyDocument", &trust),
        ]);
        let s3 = policy(
            "s3:*",
            serde_json::json!([
                format!("arn:aws:s3:::{bucket}"),
                format!("arn:aws:s3:::{bucket}/*")
            ]),
        );
        iam(&[
            ("Action", "PutRolePolicy"),
            ("RoleName", &name),
            ("PolicyName", "s3"),
            ("PolicyDocument", &s3),
        ]);
        Principals { base, role }
    }

    /// A session of the role, from STS AssumeRole signed by the user's key.
    fn assume(&self, s: &S3Server, session: &str) -> Keys {
        let params = [
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", self.role.as_str()),
            ("RoleSessionName", session),
        ];
        let xml = action(s, "sts", &self.base, &params)
            .unwrap_or_else(|e| panic!("AssumeRole {}: {e}", self.role));
        let text = |tag| xml_text(&xml, tag).unwrap().to_string();
        Keys {
            id: text("AccessKeyId"),
            secret: text("SecretAccessKey"),
            token: Some(text("SessionToken")),
        }
    }
}

/// The role session STS issued the temporary key `key` to, as STS's answer to the tool said
/// (AssumeRole's or AssumeRoleWithWebIdentity's, kept by the proxy): what GetCallerIdentity
/// would say, which takes a request signed with the session's secret, known only to the tool.
fn session_of(p: &Proxy, key: &str) -> String {
    let answers = p.stats.query_answers.lock().unwrap();
    let credentials = format!("<AccessKeyId>{key}</AccessKeyId>");
    let answer = answers.iter().find(|a| a.contains(&credentials));
    let arn = answer.and_then(|a| xml_text(a.split_once(&credentials)?.1, "Arn"));
    arn.unwrap_or_else(|| panic!("no answer of STS's through the proxy issued the key {key}"))
        .to_string()
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

/// Publishes an asset set (one multipart file, cache on) to `bucket`, restores it for a
/// docs-only commit, and fetches it back verified, all through a recording proxy to moto.
fn round_trip(s: &S3Server, bucket: &str, extra: &[(&str, &str)], drop: &[&str]) -> Proxy {
    let p = Proxy::start(s.addr(), Faults::default());
    let mut env = s.env(bucket);
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
    p
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

/// `AWS_ROLE` on top of a user's key: every S3 request is signed by a session of the role
/// (moto checks each signature against the session's secret and token, and the role's
/// policy), and the user's key signed the AssumeRole calls and nothing else.
#[test]
fn aws_role_is_assumed_through_sts() {
    let s = moto_auth();
    let bucket = s.new_bucket("aws");
    let who = Principals::new(&s, "ci", &bucket, true);
    let mut env = who.base.env();
    env.push(("AWS_ROLE", &who.role));
    let p = round_trip(&s, &bucket, &env, &[]);
    let (keys, n) = s3_signers(&p);
    for key in &keys {
        assert_eq!(session_of(&p, key), assumed(&who.role, "s3-asset-manager"));
    }
    let heads = p.stats.heads.lock().unwrap();
    let by_base: Vec<String> = heads
        .iter()
        .filter_map(|h| signer(h))
        .filter(|(k, _)| *k == who.base.id)
        .map(|(_, svc)| svc)
        .collect();
    assert!(!by_base.is_empty(), "the base key called STS");
    assert!(by_base.iter().all(|svc| svc == "sts"), "{by_base:?}");
    eprintln!("{n} S3 requests signed by the assumed role's keys {keys:?}");
}

/// A role the user may not assume (no policy of its grants sts:AssumeRole on it, though the
/// role trusts it): STS refuses, and the task stops with one error line.
#[test]
fn a_role_the_user_may_not_assume_is_refused() {
    let s = moto_auth();
    let bucket = s.new_bucket("awsdeny");
    let who = Principals::new(&s, "deny", &bucket, false);
    let mut env = s.env(&bucket);
    for (k, v) in who
        .base
        .env()
        .into_iter()
        .chain([("AWS_ROLE", who.role.as_str())])
    {
        env.insert(k.into(), v.into());
    }
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    let r = t.run(&["check"]);
    r.fails(
        4,
        "STS refused to let the credentials assume the role (AWS_ROLE / --role)",
    );
    // moto's refusal has no code the SDK reads (AWS's says AccessDenied): its status, then.
    assert!(r.stderr.contains("(HTTP 403)"), "{}", r.stderr);
}

/// What a regression in signing would send, refused by moto: the role session's key id with
/// the user's secret, with a secret of nobody's, or without its session token. The same
/// `check` with the session's own secret and token passes, so each refusal is the signature's.
#[test]
fn a_role_key_signed_with_another_secret_or_without_its_token_is_refused() {
    let s = moto_auth();
    let bucket = s.new_bucket("awssig");
    let who = Principals::new(&s, "sig", &bucket, true);
    let session = who.assume(&s, "s3am-sig");
    let check = |keys: &Keys| {
        let mut env = s.env(&bucket);
        for (k, v) in keys.env() {
            env.insert(k.into(), v.into());
        }
        Task::new(env, &[("src/main.py", "print(1)\n")]).run(&["check"])
    };
    check(&session).ok();
    let wrong = [
        (
            "the user's secret",
            who.base.secret.clone(),
            session.token.clone(),
        ),
        (
            "a made-up secret",
            "s3am-made-up-secret".into(),
            session.token.clone(),
        ),
        ("no session token", session.secret.clone(), None),
    ];
    for (what, secret, token) in wrong {
        let keys = Keys {
            secret,
            token,
            ..session.clone()
        };
        eprintln!("{what}:");
        check(&keys).fails(4, "rejected the credentials");
    }
}

/// Web identity runs on [`moto`], which checks no signature: moto's access control cannot
/// take the unsigned AssumeRoleWithWebIdentity, so only the key ids tell which credentials
/// signed each request.
#[test]
fn web_identity_is_exchanged_through_sts() {
    let s = moto();
    let bucket = s.new_bucket("aws");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", common::unique_name("web"));
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    // A JWT's shape; moto does not check its signature.
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJl").unwrap();
    let p = round_trip(
        &s,
        &bucket,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_ROLE_ARN", &role),
            ("AWS_ROLE_SESSION_NAME", "s3am-test"),
        ],
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    );
    let (keys, n) = s3_signers(&p);
    for key in &keys {
        assert_eq!(session_of(&p, key), assumed(&role, "s3am-test"));
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
    let s = moto();
    let bucket = s.new_bucket("aws");
    round_trip(&s, &bucket, &[("S3AM_SSE", "AES256")], &[]);
    assert_encrypted(&s, &bucket, "AES256", None);
}

#[test]
fn sse_kms_with_a_key_id_is_on_every_object() {
    let s = moto();
    let bucket = s.new_bucket("aws");
    let kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    round_trip(
        &s,
        &bucket,
        &[("S3AM_SSE", "aws:kms"), ("S3AM_SSE_KMS_KEY_ID", kms)],
        &[],
    );
    assert_encrypted(&s, &bucket, "aws:kms", Some(kms));
}

/// The resource's `aws_role_arn`, `server_side_encryption` and `sse_kms_key_id` reach the
/// store as the task's variables do: a publish through `out` assumes the role for every S3
/// request (signed by a session of the role, as moto checks) and encrypts every object it
/// writes with the KMS key.
#[test]
fn the_resource_assumes_its_role_and_encrypts_with_its_key() {
    let s = moto_auth();
    let bucket = s.new_bucket("awsres");
    let who = Principals::new(&s, "res", &bucket, true);
    let p = Proxy::start(s.addr(), Faults::default());
    let kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let t = Task::new(common::Env::new(), &[("src/main.py", "print(1)\n")]);
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    t.build(&[("fn.zip", b"zip".as_slice()), ("big.bin", big.as_slice())]);
    let source = s.source(
        &bucket,
        serde_json::json!({
            "endpoint": p.url(),
            "code_hash_filter": ["src"],
            "access_key_id": who.base.id,
            "secret_access_key": who.base.secret,
            "aws_role_arn": who.role,
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
    let name = who.role.rsplit('/').next().unwrap();
    for key in &keys {
        let arn = session_of(&p, key);
        assert!(
            arn.starts_with(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/{name}/")),
            "{key} is {arn}, not the role"
        );
    }
    eprintln!("{n} S3 requests signed by the role's keys {keys:?}");
}
