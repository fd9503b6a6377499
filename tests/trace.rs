//! `S3AM_TRACE=FILE`: a Chrome trace-event file of every S3 request a run made, one span per
//! attempt, as many as the run's summary counts; no credential in it; a trace that cannot be
//! written is a warning, never the run's failure.

mod common;

use common::bucket::Bucket;
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
        let r = t.run(&["upload"]);
        r.ok();
        assert!(
            r.stderr.contains("wrote a trace of"),
            "{store}: {}",
            r.stderr
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
        let events = doc["traceEvents"].as_array().unwrap();
        let spans: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        if matches!(b.place, common::bucket::Place::File(_)) {
            assert!(spans.is_empty(), "file:// makes no requests");
            continue;
        }
        assert_eq!(
            spans.len() as u64,
            requests(&r.stderr),
            "{store}: one span per request"
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
