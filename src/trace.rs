//! `S3AM_TRACE=FILE`: every S3 request of a run, written to `FILE` when the run ends as a
//! Chrome trace-event JSON file, which Perfetto (ui.perfetto.dev) and `chrome://tracing` open.
//!
//! Each request attempt (a retry is one more) is a span from the moment it is sent to the
//! moment its response has been read, or, for a download, its headers have arrived (its body
//! streams after). Its arguments hold the request line (method and path; never a header, so
//! never a credential), the status, the bytes sent and announced back, and how many requests
//! were in flight when it went out. Spans sit on numbered lanes, the lowest free one, so
//! requests in flight together stack up; a counter track shows the number in flight.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::log;

/// The variable that names the trace file.
pub(crate) const VARIABLE: &str = "S3AM_TRACE";

struct Span {
    operation: String,
    request: String,
    lane: usize,
    start_us: u64,
    end_us: u64,
    status: Option<u16>,
    sent: Option<u64>,
    received: Option<u64>,
    in_flight: usize,
}

#[derive(Default)]
struct State {
    spans: Vec<Span>,
    /// Which lanes hold a request now.
    lanes: Vec<bool>,
    /// (time, number in flight) at every change.
    counts: Vec<(u64, usize)>,
    in_flight: usize,
}

struct Tracer {
    path: PathBuf,
    epoch: Instant,
    state: Mutex<State>,
}

static TRACER: OnceLock<Option<Tracer>> = OnceLock::new();

fn tracer() -> Option<&'static Tracer> {
    TRACER
        .get_or_init(|| {
            let path = std::env::var_os(VARIABLE).filter(|p| !p.is_empty())?;
            Some(Tracer {
                path: PathBuf::from(path),
                epoch: Instant::now(),
                state: Mutex::new(State::default()),
            })
        })
        .as_ref()
}

/// Whether `S3AM_TRACE` is set: the S3 client then traces its requests.
pub(crate) fn enabled() -> bool {
    tracer().is_some()
}

/// A request in flight, from [`begin`] to [`end`].
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    operation: String,
    request: String,
    lane: usize,
    start_us: u64,
    sent: Option<u64>,
    in_flight: usize,
}

fn now_us(t: &Tracer) -> u64 {
    t.epoch.elapsed().as_micros() as u64
}

/// A request attempt goes out: its operation (`PutObject`), its request line and body size.
pub(crate) fn begin(operation: &str, request: String, sent: Option<u64>) -> Option<Pending> {
    let t = tracer()?;
    let mut s = t.state.lock().unwrap_or_else(|e| e.into_inner());
    let lane = match s.lanes.iter().position(|busy| !busy) {
        Some(free) => free,
        None => {
            s.lanes.push(false);
            s.lanes.len() - 1
        }
    };
    s.lanes[lane] = true;
    s.in_flight += 1;
    let (start_us, in_flight) = (now_us(t), s.in_flight);
    s.counts.push((start_us, in_flight));
    Some(Pending {
        operation: operation.to_string(),
        request,
        lane,
        start_us,
        sent,
        in_flight,
    })
}

/// The attempt `p` ended: with `status` when a response came, and the bytes it announced.
pub(crate) fn end(p: Pending, status: Option<u16>, received: Option<u64>) {
    let Some(t) = tracer() else { return };
    let mut s = t.state.lock().unwrap_or_else(|e| e.into_inner());
    let end_us = now_us(t);
    if let Some(lane) = s.lanes.get_mut(p.lane) {
        *lane = false;
    }
    s.in_flight = s.in_flight.saturating_sub(1);
    let n = s.in_flight;
    s.counts.push((end_us, n));
    s.spans.push(Span {
        operation: p.operation,
        request: p.request,
        lane: p.lane,
        start_us: p.start_us,
        end_us,
        status,
        sent: p.sent,
        received,
        in_flight: p.in_flight,
    });
}

/// Writes the trace file, if `S3AM_TRACE` is set; a failure is a warning, never the run's
/// outcome. `command` names the process in the trace.
pub(crate) fn finish(command: &str) {
    let Some(t) = tracer() else { return };
    let s = t.state.lock().unwrap_or_else(|e| e.into_inner());
    match write(&t.path, command, &s) {
        Ok(()) => log::phase(format!(
            "wrote a trace of {} to {} (open it in ui.perfetto.dev)",
            log::count(s.spans.len() as u64, "request"),
            t.path.display()
        )),
        Err(e) => log::warn(format!(
            "could not write the trace {} ({e}): {VARIABLE} names a file in a directory that exists",
            t.path.display()
        )),
    }
}

/// Writes the events one at a time through a buffer: a document built whole first took
/// about 2.5 KB an event, which for a 50,000-file upload (50,000 spans and twice as many
/// counter events) took its peak RSS to 563 MB; streamed, 70 MB (58 MB untraced).
fn write(path: &std::path::Path, command: &str, s: &State) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::fs::File::create(path)?);
    let process = serde_json::json!({
        "name": "process_name", "ph": "M", "pid": 1,
        "args": {"name": format!("s3-asset-manager {command}")},
    });
    out.write_all(b"{\"traceEvents\":[")?;
    serde_json::to_writer(&mut out, &process)?;
    for sp in &s.spans {
        out.write_all(b",")?;
        let event = serde_json::json!({
            "name": sp.operation,
            "cat": "s3",
            "ph": "X",
            "ts": sp.start_us,
            "dur": sp.end_us.saturating_sub(sp.start_us),
            "pid": 1,
            "tid": sp.lane + 1,
            "args": {
                "request": sp.request,
                "status": sp.status,
                "bytes_sent": sp.sent,
                "bytes_received": sp.received,
                "in_flight": sp.in_flight,
            },
        });
        serde_json::to_writer(&mut out, &event)?;
    }
    for (ts, n) in &s.counts {
        write!(
            out,
            ",{{\"name\":\"requests in flight\",\"ph\":\"C\",\"ts\":{ts},\"pid\":1,\"args\":{{\"in flight\":{n}}}}}"
        )?;
    }
    out.write_all(b"],\"displayTimeUnit\":\"ms\"}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_trace_is_one_json_document_with_every_event() {
        let mut s = State::default();
        for i in 0..3u64 {
            s.spans.push(Span {
                operation: "PutObject".into(),
                request: format!("PUT /b/artifacts/c/f{i}.zip \"quoted\\"),
                lane: i as usize,
                start_us: 10 * i,
                end_us: 10 * i + 5,
                status: (i != 1).then_some(200),
                sent: Some(i),
                received: None,
                in_flight: i as usize + 1,
            });
            s.counts.push((10 * i, i as usize + 1));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        write(&path, "upload", &s).unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["displayTimeUnit"], "ms");
        let events = doc["traceEvents"].as_array().unwrap();
        assert_eq!(events.len(), 1 + 3 + 3, "{doc}");
        assert_eq!(events[0]["args"]["name"], "s3-asset-manager upload");
        let spans: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(spans[2]["dur"], 5);
        assert_eq!(spans[2]["tid"], 3);
        assert_eq!(
            spans[2]["args"]["request"],
            "PUT /b/artifacts/c/f2.zip \"quoted\\"
        );
        assert_eq!(spans[1]["args"]["status"], serde_json::Value::Null);
        let counts: Vec<_> = events.iter().filter(|e| e["ph"] == "C").collect();
        assert_eq!(counts[2]["ts"], 20);
        assert_eq!(counts[2]["args"]["in flight"], 3);
        assert_eq!(counts[2]["name"], "requests in flight");
    }

    #[test]
    fn a_trace_that_cannot_be_written_is_an_error_to_warn_of() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(
            &dir.path().join("no/such/dir/t.json"),
            "upload",
            &State::default(),
        );
        assert!(e.is_err());
    }
}
