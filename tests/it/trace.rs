//! `S3AM_TRACE=FILE`: a Chrome trace-event file of every S3 request a run made, one span per
//! attempt, as many as passed a proxy in front of the store (and as the run's summary
//! counts); no credential in it; a trace that cannot be written is a warning, never the run's
//! failure.

use crate::common;

use std::sync::atomic::Ordering;

use common::bucket::{Bucket, Place};
use common::proxy::{Faults, Proxy};
use common::{Env, Task};
use serde_json::Value;

/// The request count in a summary line: "... (12 S3 requests)".
fn requests(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let before = line.rsplit_once(" S3 request").expect("a request count").0;
    before.rsplit(['(', ' ']).next().unwrap().parse().unwrap()
}

#[test]
fn a_trace_holds_every_request_of_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    for b in Bucket::all(tmp.path(), "trace") {
        let store = b.name();
        let mut env: Env = b.env();
        let trace = tmp.path().join(common::unique_name("trace.json"));
        env.insert("S3AM_TRACE".into(), trace.to_str().unwrap().into());
        // The requests are counted where they pass, by a proxy in front of the store, not by
        // the tool that writes the trace.
        let proxy = match &b.place {
            Place::File(_) => None,
            Place::S3(g, _) => {
                let p = Proxy::start(g.addr(), Faults::default());
                env.insert("AWS_ENDPOINT_URL".into(), p.url());
                Some(p)
            }
        };
        let passed = || {
            proxy
                .as_ref()
                .map_or(0, |p| p.stats.requests.load(Ordering::SeqCst))
        };
        let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
        t.run(&["check"]).ok();
        let files: Vec<(String, Vec<u8>)> = (0..20)
            .map(|i| (format!("f{i}.zip"), vec![b'x'; 1000 + i]))
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        t.build(&refs);
        let before = passed();
        let r = t.run(&["upload"]);
        r.ok();
        let sent = passed() - before;
        assert!(
            r.stderr.contains("wrote a trace of"),
            "{store}: {}",
            r.stderr
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
        let events = doc["traceEvents"].as_array().unwrap();
        let spans: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        if matches!(b.place, Place::File(_)) {
            assert!(spans.is_empty(), "file:// makes no requests");
            continue;
        }
        assert_eq!(spans.len() as u64, sent, "{store}: one span per request");
        assert_eq!(
            requests(&r.stderr),
            sent,
            "{store}: the summary counts the requests sent"
        );
        let puts = spans.iter().filter(|s| s["name"] == "PutObject").count();
        // Twenty assets, the manifest, the index entry, the probe.
        assert!(puts > 20, "{store}: {puts} PutObject spans");
        for s in &spans {
            assert!(
                s["ts"].as_u64().is_some() && s["dur"].as_u64().is_some(),
                "{s}"
            );
            assert!(s["tid"].as_u64().unwrap() >= 1);
            let line = s["args"]["request"].as_str().unwrap();
            assert!(
                line.starts_with("PUT /")
                    || line.starts_with("GET /")
                    || line.starts_with("HEAD /"),
                "{line}"
            );
            assert!(s["args"]["status"].as_u64().is_some(), "{s}");
        }
        // Twenty files at once: the spans overlap, on lanes of their own.
        let most = spans
            .iter()
            .map(|s| s["args"]["in_flight"].as_u64().unwrap())
            .max()
            .unwrap();
        assert!(most > 1, "{store}: the uploads never overlapped");
        let counters: Vec<&Value> = events.iter().filter(|e| e["ph"] == "C").collect();
        assert_eq!(counters.last().unwrap()["args"]["in flight"], 0, "{store}");
        let text = std::fs::read_to_string(&trace).unwrap();
        for secret in t
            .env
            .iter()
            .filter(|(k, _)| k.contains("SECRET"))
            .map(|(_, v)| v)
        {
            assert!(
                !text.contains(secret.as_str()),
                "{store}: a secret in the trace"
            );
        }
    }
}

#[test]
fn a_trace_that_cannot_be_written_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Bucket::all(tmp.path(), "trace-bad").remove(0);
    let mut env: Env = b.env();
    env.insert("S3AM_TRACE".into(), "/nonexistent-dir/trace.json".into());
    let t = Task::new(env, &[("src/main.py", "print(1)\n")]);
    let r = t.run(&["check"]);
    r.ok();
    assert!(
        r.stderr
            .contains("warning: could not write the trace /nonexistent-dir/trace.json"),
        "{}",
        r.stderr
    );
}

/// The request count in the last line that counts them: "... (12 S3 requests)", a summary's
/// or the resource check's.
fn counted(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.contains(" S3 request"))
        .unwrap_or_else(|| panic!("no request count: {stderr}"));
    let before = line.rsplit_once(" S3 request").unwrap().0;
    before.rsplit(['(', ' ']).next().unwrap().parse().unwrap()
}

/// The resource honours `S3AM_TRACE` too: `out` (a publish) and `check` each write a trace with
/// one span per request they counted, and stdout stays the JSON Concourse reads. A trace that
/// cannot be written is a warning: exit 0, stdout still JSON.
#[test]
fn the_resource_writes_a_trace_and_an_unwritable_one_is_a_warning() {
    let g = common::S3Server::get();
    let tmp = tempfile::tempdir().unwrap();
    let bucket = g.new_bucket("trace-resource");
    let source = g.source(&bucket, serde_json::json!({"code_hash_filter": ["src"]}));
    let put = tmp.path().join("put");
    let repo = common::Repo::init(&put.join("repo"));
    repo.write("src/main.py", "print(1)\n");
    let commit = repo.commit("first");
    for i in 0..5 {
        let p = put.join(format!("packages/f{i}.zip"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![b'x'; 100 + i]).unwrap();
    }
    let out_req =
        serde_json::json!({"source": source, "params": {"repo": "repo", "path": "packages"}});
    let check_req = serde_json::json!({"source": source});
    let json = |r: &common::Run| -> Value {
        serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", r.stdout))
    };

    for (name, dir, req) in [
        ("out", put.clone(), &out_req),
        ("check", tmp.path().join("check"), &check_req),
    ] {
        let trace = tmp.path().join(format!("{name}.json"));
        let mut env = Env::new();
        env.insert("S3AM_TRACE".into(), trace.to_str().unwrap().into());
        let r = common::resource_with_env(name, &dir, req, &env);
        r.ok();
        let stdout = json(&r);
        if name == "out" {
            assert_eq!(stdout["version"]["commit"], commit.as_str(), "{stdout}");
        } else {
            assert_eq!(stdout[0]["commit"], commit.as_str(), "{stdout}");
        }
        assert!(
            r.stderr.contains("wrote a trace of"),
            "{name}: {}",
            r.stderr
        );
        let doc: Value = serde_json::from_slice(
            &std::fs::read(&trace).unwrap_or_else(|e| panic!("{name}: no trace ({e})")),
        )
        .unwrap();
        let spans = doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .count() as u64;
        assert!(spans > 0, "{name}: no spans");
        assert_eq!(spans, counted(&r.stderr), "{name}: one span per request");

        let mut env = Env::new();
        env.insert("S3AM_TRACE".into(), "/nonexistent/t.json".into());
        let r = common::resource_with_env(name, &dir, req, &env);
        r.ok();
        json(&r);
        assert!(
            r.stderr
                .contains("warning: could not write the trace /nonexistent/t.json"),
            "{name}: {}",
            r.stderr
        );
    }
}
