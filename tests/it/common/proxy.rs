//! A fault-injecting HTTP/1.1 proxy between the tool and Garage, on 127.0.0.1 only.
//!
//! It understands just enough HTTP to count requests and to fail chosen ones: answer with a
//! 503 SlowDown or a 500, reset the connection partway through a request or response body,
//! add latency, shed load (503 SlowDown to a share of requests while too many are in flight),
//! hold chosen PUTs, flip a byte of chosen GET bodies, or accept connections and never answer
//! (a blackhole). Every connection thread ends when either side closes, and the listener
//! thread ends when the proxy is dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to each request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fraction of requests answered with 503 SlowDown (half) or 500 InternalError (half).
    pub error_rate: f64,
    /// Fraction of requests whose connection is reset partway through a body.
    pub reset_rate: f64,
    /// Delay before forwarding each request.
    pub latency: Duration,
    /// Accept connections and never answer.
    pub blackhole: bool,
    /// With more than this many requests in flight (0: never), answer a share of the
    /// requests, `throttle_rate`, with 503 SlowDown: a store shedding load.
    pub throttle_above: u64,
    /// The share of requests answered 503 SlowDown while over `throttle_above`.
    pub throttle_rate: f64,
    /// How many part uploads (`PUT ...partNumber=` with a body) get one byte of their body
    /// flipped on the way to the store, the first ones seen.
    pub corrupt_parts: u32,
    /// Answer a CreateMultipartUpload that asks for CRC64NVME with 400 InvalidRequest, as a
    /// store without that algorithm does.
    pub refuse_crc64_multipart: bool,
    /// Answer chosen PUTs with an error of the store's.
    pub fail_puts: Option<PutFailure>,
    /// Hold chosen PUTs this long before passing them on (or failing them): a slow store for
    /// one key. Their bodies wait in the connection meanwhile.
    pub delay_puts: Option<(String, Duration)>,
    /// Flip one byte in the middle of chosen GET responses' bodies, on the way to the tool.
    pub corrupt_gets: Option<GetCorruption>,
    /// How many CompleteMultipartUpload requests (`POST ...uploadId=`) reach the store and
    /// have their answer lost (the connection reset once the store has answered), the first
    /// ones seen: the store completed the upload, the tool cannot know.
    pub lose_completions: u32,
    /// DeleteObjects requests (`POST ...?delete`) passed on before the store starts refusing
    /// every key of the next ones, each with a per-key `AccessDenied` in a 200 answer, as S3
    /// does for keys a policy protects (`None`: all are passed on).
    pub refuse_deletes_after: Option<u64>,
}

/// GET responses to corrupt: one byte, halfway through the body, as a faulty middlebox might.
#[derive(Debug, Clone)]
pub struct GetCorruption {
    /// Only GETs whose request line contains this (a key).
    pub path_contains: String,
    /// How many more to corrupt, the next ones seen (`u32::MAX`: all of them).
    pub count: u32,
}

/// PUTs to answer with an error instead of passing them on.
#[derive(Debug, Clone)]
pub struct PutFailure {
    /// Only PUTs whose request line contains this (a key).
    pub path_contains: String,
    /// The status and S3 error code to answer, e.g. 400 `InvalidArgument`.
    pub status: u16,
    pub code: &'static str,
    /// How many to answer so (the first ones seen); 0: all of them.
    pub count: u64,
}

/// Counters of what happened.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub errors_injected: AtomicU64,
    pub resets_injected: AtomicU64,
    /// Part bodies corrupted (see [`Faults::corrupt_parts`]).
    pub corrupted: AtomicU64,
    /// GET response bodies corrupted (see [`Faults::corrupt_gets`]).
    pub gets_corrupted: AtomicU64,
    /// The start line and headers of every request, for tests that check how it was signed.
    pub heads: Mutex<Vec<String>>,
    /// The body of every answer to a `POST /` (the Query API: STS), for tests that check
    /// which credentials STS handed out.
    pub query_answers: Mutex<Vec<String>>,
    /// Requests received and not yet answered, and the most at once.
    pub in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
    /// Requests answered 503 SlowDown because too many were in flight.
    pub throttled: AtomicU64,
    /// PUTs answered with [`Faults::fail_puts`]'s error.
    pub puts_failed: AtomicU64,
    /// DeleteObjects requests seen, and the keys refused in them
    /// ([`Faults::refuse_deletes_after`]).
    pub deletes: AtomicU64,
    pub keys_refused: AtomicU64,
    /// The number in flight as each request arrived, in order.
    pub in_flight_samples: Mutex<Vec<u64>>,
    /// Every request forwarded to the store: its start line, when it arrived and when its
    /// response had been passed back whole.
    pub exchanges: Mutex<Vec<Exchange>>,
}

/// One request and its response, as the proxy saw them.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request's start line, e.g. `PUT /bucket/key HTTP/1.1`.
    pub request: String,
    /// Whether it is a server-side copy (a PUT with `x-amz-copy-source`).
    pub copy: bool,
    pub sent: Instant,
    pub answered: Instant,
}

impl Stats {
    /// The requests in the order they arrived, each with its round trip: 1 for a request sent
    /// before any other was answered; otherwise one more than that of the request answered
    /// last before it was sent, the answer it waited for (a client sends at once what an
    /// answer unblocks; a store that is slow to answer one request does not make a request
    /// sent after it wait for another, faster one). Requests for which `aside` is true run on
    /// a side path of their own: their answers are only ever waited for by each other, so one
    /// that happens to be answered just before a main request goes out is not taken for its
    /// cause. The largest is how many round trips the client waited through.
    pub fn round_trips(&self, aside: impl Fn(&Exchange) -> bool) -> Vec<(Exchange, usize)> {
        // A client may exit as soon as its last answer arrives, before the thread that passed
        // it back has recorded the exchange: wait for those (a few ms at most).
        let until = Instant::now() + Duration::from_secs(10);
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut all = self.exchanges.lock().unwrap().clone();
        all.sort_by_key(|e| e.sent);
        let mut depth: Vec<usize> = Vec::with_capacity(all.len());
        for (i, e) in all.iter().enumerate() {
            let waited_for = (0..i)
                .filter(|&j| all[j].answered <= e.sent && (aside(e) || !aside(&all[j])))
                .max_by_key(|&j| all[j].answered);
            depth.push(waited_for.map_or(1, |j| depth[j] + 1));
        }
        all.into_iter().zip(depth).collect()
    }
}

/// Counts one request in flight until it is answered (or its connection ends).
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn start(stats: &'a Stats) -> (Self, u64) {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        stats.in_flight_samples.lock().unwrap().push(now);
        (InFlight(stats), now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    pub faults: Arc<Mutex<Faults>>,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (e.g. `127.0.0.1:3900`).
    pub fn start(upstream: SocketAddr, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let faults = Arc::new(Mutex::new(faults));
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, st) = (faults.clone(), stats.clone(), stop.clone());
        std::thread::spawn(move || {
            let seed = AtomicU64::new(0x2545_f491_4f6c_dd1d);
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (f, s, st) = (f.clone(), s.clone(), st.clone());
                        let conn_seed = seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
                        std::thread::spawn(move || {
                            let _ = serve(client, upstream, &f, &s, &st, conn_seed);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            faults,
            stats,
            stop,
        }
    }

    /// The endpoint URL to hand the tool.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the faults from now on.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An HTTP message head: the start line and headers, raw, plus what framing it declares.
struct Head {
    raw: Vec<u8>,
    start: String,
    content_length: Option<u64>,
    chunked: bool,
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut start = String::new();
    let (mut content_length, mut chunked) = (None, false);
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if start.is_empty() {
            start = text;
            continue;
        }
        if text.is_empty() {
            return Ok(Some(Head {
                raw,
                start,
                content_length,
                chunked,
            }));
        }
        if let Some((k, v)) = text.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                content_length = v.parse().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
}

/// Copies a body framed as `head` declares, stopping after `limit` bytes when given (then
/// returns false: the body was cut).
fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    head: &Head,
    limit: Option<u64>,
) -> std::io::Result<bool> {
    let mut budget = limit.unwrap_or(u64::MAX);
    let copy_n = |r: &mut dyn BufRead, w: &mut dyn Write, n: u64, budget: &mut u64| {
        let take = n.min(*budget);
        let copied = std::io::copy(&mut r.take(take), w)?;
        *budget -= copied;
        Ok::<bool, std::io::Error>(copied == n)
    };
    if head.chunked {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            w.write_all(size_line.as_bytes())?;
            let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if !copy_n(r, w, size, &mut budget)? {
                return Ok(false);
            }
            if size == 0 {
                // Trailers, then the final empty line.
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line)?;
                    w.write_all(line.as_bytes())?;
                    if line.trim().is_empty() {
                        return Ok(true);
                    }
                }
            }
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
            w.write_all(&crlf)?;
        }
    }
    match head.content_length {
        Some(n) => copy_n(r, w, n, &mut budget),
        None => Ok(true),
    }
}

fn response_has_body(method: &str, status: u16) -> bool {
    method != "HEAD" && status != 204 && status != 304 && !(100..200).contains(&status)
}

fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    faults: &Mutex<Faults>,
    stats: &Stats,
    stop: &AtomicBool,
    seed: u64,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut rng = Rng(seed | 1);
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client.try_clone()?;
    let mut server: Option<(BufReader<TcpStream>, TcpStream)> = None;
    loop {
        let f = faults.lock().unwrap().clone();
        if f.blackhole {
            // Hold the connection open, answer nothing, until the client gives up.
            let mut sink = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match from_client.get_mut().read(&mut sink) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(_) => return Ok(()),
                }
            }
            return Ok(());
        }
        let Some(req) = read_head(&mut from_client)? else {
            return Ok(());
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let (_counted, in_flight) = InFlight::start(stats);
        stats
            .heads
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&req.raw).into_owned());
        let method = req.start.split(' ').next().unwrap_or("").to_string();
        if !f.latency.is_zero() {
            std::thread::sleep(f.latency);
        }
        if let Some((_, delay)) = f
            .delay_puts
            .as_ref()
            .filter(|(path, _)| method == "PUT" && req.start.contains(path.as_str()))
        {
            std::thread::sleep(*delay);
        }
        if let Some(fail) = f.fail_puts.as_ref().filter(|p| {
            method == "PUT"
                && req.start.contains(&p.path_contains)
                && (p.count == 0 || stats.puts_failed.load(Ordering::Relaxed) < p.count)
        }) {
            copy_body(&mut from_client, &mut std::io::sink(), &req, None)?;
            stats.puts_failed.fetch_add(1, Ordering::Relaxed);
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>injected by the test proxy</Message></Error>",
                fail.code
            );
            write!(
                to_client,
                "HTTP/1.1 {} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                fail.status,
                body.len()
            )?;
            continue;
        }
        if method == "POST" && req.start.contains("?delete") {
            let seen = stats.deletes.fetch_add(1, Ordering::Relaxed);
            if f.refuse_deletes_after.is_some_and(|after| seen >= after) {
                let mut body = Vec::new();
                copy_body(&mut from_client, &mut body, &req, None)?;
                let body = String::from_utf8_lossy(&body);
                let errors: String = body
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|k| k.split("</Key>").next())
                    .map(|k| {
                        stats.keys_refused.fetch_add(1, Ordering::Relaxed);
                        format!("<Error><Key>{k}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")
                    })
                    .collect();
                let answer = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{errors}</DeleteResult>"
                );
                write!(
                    to_client,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                )?;
                continue;
            }
        }
        if f.throttle_above > 0 && in_flight > f.throttle_above && rng.next_f64() < f.throttle_rate
        {
            copy_body(&mut from_client, &mut std::io::sink(), &req, None)?;
            stats.throttled.fetch_add(1, Ordering::Relaxed);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            write!(
                to_client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        let raw = String::from_utf8_lossy(&req.raw).to_ascii_lowercase();
        if f.refuse_crc64_multipart
            && method == "POST"
            && req.start.contains("?uploads")
            && raw.contains("x-amz-checksum-algorithm: crc64nvme")
        {
            copy_body(&mut from_client, &mut std::io::sink(), &req, None)?;
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidRequest</Code><Message>Checksum algorithm CRC64NVME is not supported (the test proxy)</Message></Error>";
            write!(
                to_client,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        let roll = rng.next_f64();
        if roll < f.error_rate {
            copy_body(&mut from_client, &mut std::io::sink(), &req, None)?;
            stats.errors_injected.fetch_add(1, Ordering::Relaxed);
            let (status, code) = if rng.next_f64() < 0.5 {
                ("503 Slow Down", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            write!(
                to_client,
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        let reset = roll < f.error_rate + f.reset_rate;
        if server.is_none() {
            let s = TcpStream::connect(upstream)?;
            server = Some((BufReader::new(s.try_clone()?), s));
        }
        let (from_server, to_server) = server.as_mut().unwrap();
        to_server.write_all(&req.raw)?;
        let reset_in_request = reset && rng.next_f64() < 0.5 && req.content_length.unwrap_or(0) > 1;
        if reset_in_request {
            let cut = req.content_length.unwrap_or(2) / 2;
            copy_body(&mut from_client, to_server, &req, Some(cut))?;
            stats.resets_injected.fetch_add(1, Ordering::Relaxed);
            return abort(&client, to_server);
        }
        let has_body = req.chunked || req.content_length.unwrap_or(0) > 2000;
        let corrupt = method == "PUT"
            && req.start.contains("partNumber=")
            && has_body
            && take_one(&mut faults.lock().unwrap().corrupt_parts);
        if corrupt {
            stats.corrupted.fetch_add(1, Ordering::Relaxed);
            // Past any chunk header, inside the data.
            let mut flip = FlipOne {
                inner: &mut *to_server,
                at: 1000,
                seen: 0,
            };
            copy_body(&mut from_client, &mut flip, &req, None)?;
        } else {
            copy_body(&mut from_client, to_server, &req, None)?;
        }
        to_server.flush()?;
        let Some(resp) = read_head(from_server)? else {
            return Ok(());
        };
        if method == "POST"
            && req.start.contains("uploadId=")
            && take_one(&mut faults.lock().unwrap().lose_completions)
        {
            stats.resets_injected.fetch_add(1, Ordering::Relaxed);
            return abort(&client, to_server);
        }
        let status: u16 = resp
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // Answered from here: the client may read the answer and send its next request
        // before the body is through and this thread records it.
        let answered = Instant::now();
        to_client.write_all(&resp.raw)?;
        let corrupt_get = method == "GET"
            && matches!(status, 200 | 206)
            && (resp.chunked || resp.content_length.is_some_and(|n| n > 1))
            && f.corrupt_gets
                .as_ref()
                .is_some_and(|c| req.start.contains(&c.path_contains))
            && (faults.lock().unwrap().corrupt_gets.as_mut())
                .is_some_and(|c| take_one(&mut c.count));
        if corrupt_get {
            stats.gets_corrupted.fetch_add(1, Ordering::Relaxed);
            let mut flip = FlipOne {
                inner: &mut to_client,
                // Halfway, or (chunked) past the first chunk's header, inside its data.
                at: resp.content_length.map_or(1000, |n| n / 2),
                seen: 0,
            };
            copy_body(from_server, &mut flip, &resp, None)?;
        } else if response_has_body(&method, status) {
            if reset {
                let cut = resp.content_length.unwrap_or(2) / 2;
                copy_body(from_server, &mut to_client, &resp, Some(cut))?;
                stats.resets_injected.fetch_add(1, Ordering::Relaxed);
                return abort(&client, to_server);
            }
            if req.start.starts_with("POST / ") {
                let mut body = Vec::new();
                copy_body(from_server, &mut body, &resp, None)?;
                to_client.write_all(&body)?;
                let body = String::from_utf8_lossy(&body).into_owned();
                stats.query_answers.lock().unwrap().push(body);
            } else {
                copy_body(from_server, &mut to_client, &resp, None)?;
            }
        } else if reset {
            stats.resets_injected.fetch_add(1, Ordering::Relaxed);
            return abort(&client, to_server);
        }
        to_client.flush()?;
        stats.exchanges.lock().unwrap().push(Exchange {
            request: req.start.clone(),
            copy: raw.contains("\r\nx-amz-copy-source:"),
            sent,
            answered,
        });
    }
}

/// Whether `left` allows one more (counting it).
fn take_one(left: &mut u32) -> bool {
    let hit = *left > 0;
    *left = left.saturating_sub(1);
    hit
}

/// A writer that flips the bits of the byte at offset `at` of what passes through it.
struct FlipOne<W: Write> {
    inner: W,
    at: u64,
    seen: u64,
}

impl<W: Write> Write for FlipOne<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let start = self.seen;
        let end = start + buf.len() as u64;
        if (start..end).contains(&self.at) {
            let mut copy = buf.to_vec();
            copy[(self.at - start) as usize] ^= 0xff;
            self.inner.write_all(&copy)?;
        } else {
            self.inner.write_all(buf)?;
        }
        self.seen = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Drops both connections mid-message.
fn abort(client: &TcpStream, server: &TcpStream) -> std::io::Result<()> {
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    Ok(())
}
