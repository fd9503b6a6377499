//! The network around the store: a real HTTP proxy (tinyproxy) honoured through
//! HTTP_PROXY/HTTPS_PROXY (or in lower case) and bypassed by NO_PROXY (or no_proxy), and a
//! TLS endpoint with a private CA (stunnel in front of Garage) trusted through AWS_CA_BUNDLE
//! or `source.ca_bundle`.
//! scripts/test installs both packages; every server here listens on 127.0.0.1 only.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, resource, Repo, S3Server};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// A child process killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(names: &[&str]) -> String {
    for n in names {
        for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
            let p = Path::new(dir).join(n);
            if p.exists() {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    panic!("none of {names:?} is installed: run ./scripts/test, which installs the test tools");
}

struct Tinyproxy {
    _server: Server,
    port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    fn start(dir: &Path) -> Tinyproxy {
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Info\nMaxClients 20\nAllow 127.0.0.1\nDisableViaHeader Yes\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new(which(&["tinyproxy"]))
            .args(["-d", "-c", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        wait_for_port(port);
        Tinyproxy {
            _server: Server(child),
            port,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests (or CONNECT tunnels) the proxy has logged.
    fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Request (file descriptor"))
            .count()
    }
}

/// A private CA, and stunnel serving TLS with a certificate it signed, in front of Garage
/// (or of the test proxy, in `roundtrips`).
pub(crate) struct Tls {
    _server: Server,
    port: u16,
    pub(crate) ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tls {
    /// Serves TLS on a port of its own, in front of `upstream` (`host:port`), with its
    /// certificates in `dir`.
    pub(crate) fn start(dir: &Path, upstream: &str) -> Tls {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=s3am test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.pem",
            ],
        );
        let port = free_port();
        let conf = dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\nconnect = {upstream}\ncert = {}\nkey = {}\n",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ),
        )
        .unwrap();
        let child = Command::new(which(&["stunnel4", "stunnel"]))
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start stunnel");
        wait_for_port(port);
        Tls {
            _server: Server(child),
            port,
            ca: dir.join("ca.pem"),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

fn task(g: &S3Server, tag: &str) -> (tempfile::TempDir, BTreeMap<String, String>) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("repo"));
    repo.write("src/a.py", "a\n");
    repo.commit("first");
    let bucket = g.new_bucket(tag);
    (tmp, g.env(&bucket))
}

#[test]
fn http_proxy_is_used_and_no_proxy_bypasses_it() {
    let g = S3Server::get();
    let (tmp, mut env) = task(&g, "proxy");
    let proxy = Tinyproxy::start(tmp.path());
    for var in ["HTTP_PROXY", "http_proxy"] {
        let mut e = env.clone();
        e.insert(var.into(), proxy.url());
        let before = proxy.requests();
        cli(&["check"], tmp.path(), &e).ok();
        assert!(
            proxy.requests() > before,
            "{var}: no request went through the proxy"
        );
    }
    // NO_PROXY (or no_proxy) bypasses it.
    env.insert("HTTP_PROXY".into(), proxy.url());
    for var in ["NO_PROXY", "no_proxy"] {
        let mut e = env.clone();
        e.insert(var.into(), "127.0.0.1".into());
        let before = proxy.requests();
        cli(&["check"], tmp.path(), &e).ok();
        assert_eq!(proxy.requests(), before, "{var} must bypass the proxy");
    }
    // A proxy that is down is a clear failure, which proves it is really used.
    env.insert(
        "HTTP_PROXY".into(),
        format!("http://127.0.0.1:{}", free_port()),
    );
    cli(&["check"], tmp.path(), &env).fails(1, "cannot reach");
}

#[test]
fn https_through_a_proxy_to_a_private_ca_endpoint() {
    let g = S3Server::get();
    let (tmp, mut env) = task(&g, "tls");
    let tls = Tls::start(tmp.path(), g.endpoint.trim_start_matches("http://"));
    env.insert("AWS_ENDPOINT_URL".into(), tls.url());

    // Without the CA: refused, with a line that says why.
    let r = cli(&["check"], tmp.path(), &env);
    r.fails(1, "cannot reach");
    assert!(
        r.stderr.to_ascii_lowercase().contains("certificate"),
        "the error names the certificate problem: {}",
        r.stderr
    );
    // With AWS_CA_BUNDLE: works.
    env.insert("AWS_CA_BUNDLE".into(), tls.ca.to_str().unwrap().into());
    cli(&["check"], tmp.path(), &env).ok();
    // And through an HTTPS proxy (a CONNECT tunnel), named either way.
    let proxy = Tinyproxy::start(tmp.path());
    for var in ["https_proxy", "HTTPS_PROXY"] {
        let mut e = env.clone();
        e.insert(var.into(), proxy.url());
        let before = proxy.requests();
        cli(&["check"], tmp.path(), &e).ok();
        assert!(
            proxy.requests() > before,
            "{var}: no CONNECT went through the proxy"
        );
    }
    env.insert("HTTPS_PROXY".into(), proxy.url());
    // A CA bundle that does not exist is a configuration error.
    env.insert("AWS_CA_BUNDLE".into(), "/nonexistent/ca.pem".into());
    cli(&["check"], tmp.path(), &env).fails(2, "AWS_CA_BUNDLE");

    // The resource takes the CA as source.ca_bundle.
    let bucket = env["PACKAGE_ASSETS_BUCKET"].clone();
    let mut source = json!({
        "bucket": bucket,
        "endpoint": tls.url(),
        "region_name": g.region,
        "use_path_style": true,
        "access_key_id": g.access_key,
        "secret_access_key": g.secret_key,
    });
    resource("check", &tmp.path().join("c1"), &json!({"source": source})).fails(1, "cannot reach");
    source["ca_bundle"] = json!(std::fs::read_to_string(&tls.ca).unwrap());
    resource("check", &tmp.path().join("c2"), &json!({"source": source})).ok();
    source["ca_bundle"] = json!("not a certificate");
    resource("check", &tmp.path().join("c3"), &json!({"source": source}))
        .fails(1, "holds no PEM certificate");
}
