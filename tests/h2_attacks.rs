//! HTTP/2 requests no validating client would send, and the floods of
//! issue 16 (items 5 and 6), written frame by frame (tests/common/frames.rs)
//! against limpet's h2c listener with one worker and real HTTP/1.1
//! backends on 127.0.0.1.
//!
//! What is asserted is what was on the wire and what the backend received:
//! a malformed request is a stream error (RST_STREAM PROTOCOL_ERROR) and
//! the connection's next stream is answered, except where h2 0.4's HPACK
//! decoder refuses the whole block, which is a connection error (GOAWAY
//! PROTOCOL_ERROR, RFC 9113 §4.3: the decoder's state cannot be trusted);
//! no malformed request reaches a backend complete. Each flood is bounded
//! in count and time, ends the connection where it is abuse, and another
//! client is served while it runs.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;
#[path = "common/frames.rs"]
mod frames;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{config_for, log, process::Process, Backend, Client, Limpet, Log};
use frames::*;

/// `[limits] h2_max_streams`, by default.
const H2_MAX_STREAMS: usize = 100;

fn limpet_before(backend: &Backend) -> Limpet {
    Limpet::start(&config_for(&[backend.addr], ""))
}

/// The targets of the requests `log` holds, in order.
fn targets(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|r| r.target.clone())
        .collect()
}

/// One normal client, served: a GET over a new h2c connection and one over
/// HTTP/1.1, each answered 200 within 5 s.
fn served(addr: SocketAddr, tag: &str) -> Result<(), String> {
    let mut h2 = H2::handshake(addr);
    match h2.get(1, &format!("/good/h2/{tag}")) {
        Outcome::Response(200, _) => {}
        other => return Err(format!("h2 client: {other:?}")),
    }
    let mut h1 = Client::connect(addr);
    let response = h1.get(&format!("/good/h1/{tag}"));
    if response.status != 200 {
        return Err(format!("HTTP/1.1 client: {}", response.status));
    }
    Ok(())
}

/// Runs `attack` on a thread of its own and, until it returns (and at least
/// once), checks that a normal client is served; returns what the attack
/// returned.
fn while_served<T: Send + 'static>(
    addr: SocketAddr,
    attack: impl FnOnce() -> T + Send + 'static,
) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let attacker = thread::spawn(move || {
        let result = attack();
        finished.store(true, Ordering::SeqCst);
        result
    });
    // Let the attack start before the first check.
    thread::sleep(Duration::from_millis(50));
    let mut round = 0;
    loop {
        if let Err(e) = served(addr, &format!("during-{round}")) {
            panic!("a normal client was not served during the attack: {e}");
        }
        round += 1;
        if done.load(Ordering::SeqCst) {
            break;
        }
    }
    attacker.join().expect("the attack thread")
}

/// What a malformed request must cause.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// RST_STREAM (PROTOCOL_ERROR); the connection's next stream answered.
    StreamError,
    /// GOAWAY (PROTOCOL_ERROR) and the connection closed: h2 0.4's HPACK
    /// decoder fails the whole block (an invalid name or value, an unknown
    /// pseudo-header, an empty name, a method that is not a token), and a
    /// decoding error is a connection error (RFC 9113 §4.3).
    ConnectionError,
}

struct Case {
    name: &'static str,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// DATA sent after the HEADERS (which then do not end the stream).
    body: Option<Vec<u8>>,
    expect: Expect,
}

fn field(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// The four pseudo-headers of a request for `path`, then `extra`.
fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields = vec![
        field(":method", method),
        field(":scheme", "http"),
        field(":path", path),
        field(":authority", "a.example"),
    ];
    fields.extend(extra.iter().map(|(n, v)| field(n, v)));
    fields
}

fn without(mut fields: Vec<(Vec<u8>, Vec<u8>)>, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    fields.retain(|(n, _)| n != name.as_bytes());
    fields
}

fn raw(name: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (name.to_vec(), value.to_vec())
}

/// Every malformed request of item 5, each with a path of its own.
fn malformed_cases() -> Vec<Case> {
    use Expect::*;
    let bad = |name: &'static str, fields, expect| Case {
        name,
        fields,
        body: None,
        expect,
    };
    let p = |name: &str| format!("/bad/{name}");
    let mut cases = vec![
        bad(
            "connection",
            request("GET", &p("connection"), &[("connection", "keep-alive")]),
            StreamError,
        ),
        bad(
            "keep-alive",
            request("GET", &p("keep-alive"), &[("keep-alive", "300")]),
            StreamError,
        ),
        bad(
            "proxy-connection",
            request(
                "GET",
                &p("proxy-connection"),
                &[("proxy-connection", "keep-alive")],
            ),
            StreamError,
        ),
        bad(
            "transfer-encoding",
            request(
                "GET",
                &p("transfer-encoding"),
                &[("transfer-encoding", "chunked")],
            ),
            StreamError,
        ),
        bad(
            "upgrade",
            request("GET", &p("upgrade"), &[("upgrade", "websocket")]),
            StreamError,
        ),
        bad(
            "te-gzip",
            request("GET", &p("te-gzip"), &[("te", "gzip")]),
            StreamError,
        ),
        bad(
            "upper-case-name",
            request("GET", &p("upper-case-name"), &[("X-Upper", "1")]),
            ConnectionError,
        ),
        bad(
            "empty-name",
            request("GET", &p("empty-name"), &[("", "x")]),
            ConnectionError,
        ),
        bad(
            "missing-method",
            without(request("GET", &p("missing-method"), &[]), ":method"),
            StreamError,
        ),
        bad(
            "missing-scheme",
            without(request("GET", &p("missing-scheme"), &[]), ":scheme"),
            StreamError,
        ),
        bad(
            "missing-path",
            without(request("GET", &p("missing-path"), &[]), ":path"),
            StreamError,
        ),
        bad("empty-path", request("GET", "", &[]), StreamError),
        bad(
            "unknown-pseudo",
            request("GET", &p("unknown-pseudo"), &[(":foo", "bar")]),
            ConnectionError,
        ),
        bad(
            "status-in-request",
            request("GET", &p("status-in-request"), &[(":status", "200")]),
            StreamError,
        ),
        bad(
            "repeated-path",
            request("GET", &p("repeated-path"), &[(":path", "/other")]),
            StreamError,
        ),
        bad(
            "repeated-method",
            request("GET", &p("repeated-method"), &[(":method", "GET")]),
            StreamError,
        ),
        bad(
            "late-pseudo",
            {
                let mut f = without(request("GET", &p("late-pseudo"), &[]), ":authority");
                f.push(field("accept", "*/*"));
                f.push(field(":authority", "a.example"));
                f
            },
            StreamError,
        ),
        bad(
            "space-in-method",
            request("GE T", &p("space-in-method"), &[]),
            ConnectionError,
        ),
        bad(
            "space-in-path",
            request("GET", "/bad/space in path", &[]),
            StreamError,
        ),
        bad(
            "authority-and-host-differ",
            request(
                "GET",
                &p("authority-and-host-differ"),
                &[("host", "b.example")],
            ),
            StreamError,
        ),
        bad(
            "authority-bad-port",
            {
                let mut f = without(request("GET", &p("authority-bad-port"), &[]), ":authority");
                f.push(field(":authority", "a.example:99999"));
                f
            },
            StreamError,
        ),
    ];
    for (what, byte) in [("cr", b'\r'), ("lf", b'\n'), ("nul", 0u8)] {
        let mut value = request("GET", &format!("/bad/{what}-in-value"), &[]);
        value.push(raw(b"x-value", &[b'a', byte, b'b']));
        let mut name = request("GET", &format!("/bad/{what}-in-name"), &[]);
        name.push(raw(&[b'x', byte, b'n'], b"v"));
        let (value_name, name_name) = match what {
            "cr" => ("cr-in-value", "cr-in-name"),
            "lf" => ("lf-in-value", "lf-in-name"),
            _ => ("nul-in-value", "nul-in-name"),
        };
        cases.push(bad(value_name, value, ConnectionError));
        cases.push(bad(name_name, name, ConnectionError));
    }
    let post = |name: &'static str, body: Option<Vec<u8>>| Case {
        name,
        fields: request("POST", &format!("/bad/{name}"), &[("content-length", "10")]),
        body,
        expect: StreamError,
    };
    cases.push(post(
        "body-longer-than-content-length",
        Some(vec![b'x'; 20]),
    ));
    cases.push(post(
        "body-shorter-than-content-length",
        Some(vec![b'x'; 5]),
    ));
    cases.push(post("content-length-and-no-data", None));
    cases
}

/// Sends one case on stream 1 of a new connection; Err says how limpet's
/// answer differed from the expectation.
fn try_case(addr: SocketAddr, case: &Case, index: usize) -> Result<(), String> {
    let mut h2 = H2::handshake(addr);
    let fields: Vec<(&[u8], &[u8])> = case
        .fields
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    h2.request(1, &fields, case.body.is_none());
    if let Some(body) = &case.body {
        h2.send(&data(1, body, true));
    }
    let outcome = h2.outcome(1, Duration::from_secs(5));
    let good = format!("/good/after/{index}");
    match case.expect {
        Expect::StreamError => {
            if outcome != Outcome::Reset(PROTOCOL_ERROR) {
                return Err(format!(
                    "expected RST_STREAM(PROTOCOL_ERROR), got {outcome:?}"
                ));
            }
            match h2.get(3, &good) {
                Outcome::Response(200, _) => Ok(()),
                other => Err(format!(
                    "reset as expected, but the next stream got {other:?}"
                )),
            }
        }
        Expect::ConnectionError => {
            if outcome != Outcome::GoAway(PROTOCOL_ERROR) {
                return Err(format!("expected GOAWAY(PROTOCOL_ERROR), got {outcome:?}"));
            }
            if !h2.closes_within(Duration::from_secs(5)) {
                return Err("GOAWAY, but the connection stayed open".into());
            }
            match H2::handshake(addr).get(1, &good) {
                Outcome::Response(200, _) => Ok(()),
                other => Err(format!("a new connection afterwards got {other:?}")),
            }
        }
    }
}

#[test]
fn malformed_requests_are_stream_errors_and_never_reach_the_backend() {
    let received = log();
    let backend = Backend::named("s0", received.clone());
    let limpet = limpet_before(&backend);
    let cases = malformed_cases();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if let Err(e) = try_case(limpet.addr, case, i) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    // Anything forwarded would have reached the backend by the time the
    // good stream after it did; wait a little for a late one all the same.
    thread::sleep(Duration::from_millis(200));
    let leaked: Vec<String> = targets(&received)
        .into_iter()
        .filter(|t| !t.starts_with("/good/"))
        .collect();
    assert!(
        failures.is_empty() && leaked.is_empty(),
        "{} of {} cases failed:\n  {}\nthe backend received complete requests: {leaked:?}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
    // Every good stream after a bad one was answered by the backend.
    assert_eq!(targets(&received).len(), cases.len());
}

/// Opens a stream with HEADERS and resets it at once, as fast as the socket
/// takes it, up to `streams` streams or until limpet stops reading; returns
/// the connection and how many streams were opened.
fn rapid_reset(addr: SocketAddr, streams: u32) -> (H2, u32) {
    let mut h2 = H2::handshake(addr);
    let mut opened = 0;
    'flood: for batch in 0..streams / 50 {
        let mut bytes = Vec::new();
        for i in 0..50 {
            let id = 2 * (batch * 50 + i) + 1;
            let path = format!("/rr/{id}");
            bytes.extend(headers(
                id,
                &block(&get_fields(&path, "a.example")),
                true,
                true,
            ));
            bytes.extend(rst_stream(id, CANCEL));
        }
        if !h2.try_send(&bytes) {
            break 'flood;
        }
        opened += 50;
        h2.drain();
        if h2.goaway.is_some() || h2.is_closed() {
            break;
        }
    }
    (h2, opened)
}

#[test]
fn rapid_reset_is_bounded_and_answered_with_enhance_your_calm() {
    let received = log();
    let backend = Backend::named("s0", received.clone());
    let limpet = limpet_before(&backend);
    let addr = limpet.addr;
    let (mut h2, opened) = while_served(addr, move || rapid_reset(addr, 20_000));
    let closed = h2.closes_within(Duration::from_secs(5));
    thread::sleep(Duration::from_millis(500));
    let reached = targets(&received)
        .iter()
        .filter(|t| t.starts_with("/rr/"))
        .count();
    eprintln!("rapid reset: {opened} streams opened, {reached} reached the backend");
    assert!(
        reached <= H2_MAX_STREAMS + 10,
        "{reached} of {opened} reset streams reached the backend"
    );
    assert_eq!(
        h2.goaway_code(),
        Some(ENHANCE_YOUR_CALM),
        "after {opened} streams opened and reset"
    );
    assert!(closed, "GOAWAY, but the connection stayed open");
    assert!(
        opened < 20_000,
        "limpet read all {opened} streams before its GOAWAY"
    );
}

/// Writes `frame_bytes` again and again, paced (1 ms every 16 KiB) so that
/// what is written is what the server has read, up to `limit` bytes or
/// until the connection goes away; returns the bytes written by then.
fn flood(h2: &mut H2, frame_bytes: &[u8], limit: usize) -> usize {
    let per_write = (16 * 1024 / frame_bytes.len()).max(1);
    let chunk: Vec<u8> = frame_bytes.repeat(per_write);
    let mut written = 0;
    while written < limit {
        if !h2.try_send(&chunk) {
            break;
        }
        written += chunk.len();
        h2.drain();
        if h2.goaway.is_some() || h2.is_closed() {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    written
}

const MIB: usize = 1024 * 1024;

/// A header block of 16,000 bytes of small distinct literal fields.
fn filler_block(round: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < 16_000 {
        out.extend(literal(
            format!("x-f{round}-{i}").as_bytes(),
            b"0123456789abcdef",
        ));
        i += 1;
    }
    out
}

#[test]
fn continuation_floods_end_before_a_mebibyte_is_read() {
    let received = log();
    let backend = Backend::named("s0", received.clone());
    let limpet = limpet_before(&backend);
    let addr = limpet.addr;
    let (full, empty) = while_served(addr, move || {
        // CONTINUATION frames full of fields, never ending the block.
        let mut h2 = H2::handshake(addr);
        h2.send(&headers(
            1,
            &block(&get_fields("/cf/full", "a.example")),
            true,
            false,
        ));
        let full = flood(&mut h2, &continuation(1, &filler_block(0), false), 4 * MIB);
        let full = (
            full,
            h2.closes_within(Duration::from_secs(5)),
            h2.goaway_code(),
        );
        // Empty CONTINUATION frames: nothing to decode, only frames.
        let mut h2 = H2::handshake(addr);
        h2.send(&headers(
            1,
            &block(&get_fields("/cf/empty", "a.example")),
            true,
            false,
        ));
        let empty = flood(&mut h2, &continuation(1, &[], false), 4 * MIB);
        let empty = (
            empty,
            h2.closes_within(Duration::from_secs(5)),
            h2.goaway_code(),
        );
        (full, empty)
    });
    for (what, (written, closed, goaway)) in [("full", full), ("empty", empty)] {
        eprintln!("{what} CONTINUATION flood: {written} bytes, closed {closed}, GOAWAY {goaway:?}");
        assert!(
            closed,
            "{what} CONTINUATION flood: still open after {written} bytes"
        );
        assert!(
            written < MIB,
            "{what} CONTINUATION flood: {written} bytes read before the end (GOAWAY {goaway:?})"
        );
    }
    assert!(
        targets(&received).iter().all(|t| !t.starts_with("/cf/")),
        "{:?}",
        targets(&received)
    );
}

/// A header block that puts one `value_len`-byte field in the server's
/// dynamic table and refers to it `refs` times with one byte each.
fn bomb(path: &str, value_len: usize, refs: usize) -> Vec<u8> {
    let mut out = block(&get_fields(path, "a.example"));
    out.extend(literal_indexed(b"x-bomb", &vec![b'a'; value_len]));
    for _ in 0..refs {
        out.extend(indexed(62));
    }
    out
}

#[test]
fn hpack_bombs_are_refused_and_nothing_reaches_the_backend() {
    let received = log();
    let backend = Backend::named("s0", received.clone());
    let limpet = limpet_before(&backend);
    let addr = limpet.addr;
    let outcomes = while_served(addr, move || {
        let mut outcomes = Vec::new();
        // Just past the header-list limit (16 KiB of head by default):
        // 40 KiB decoded from a 2 KiB block.
        // Far past it: 12 MB decoded from a 7 KiB block.
        for (path, value_len, refs) in [("/bomb/small", 1000, 40), ("/bomb/big", 4000, 3000)] {
            let mut h2 = H2::handshake(addr);
            let block = bomb(path, value_len, refs);
            assert!(block.len() < 16_384, "the bomb fits in one frame");
            h2.send(&headers(1, &block, true, true));
            let outcome = h2.outcome(1, Duration::from_secs(5));
            // If the connection survived the refusal, its next stream works.
            let next = match outcome {
                Outcome::GoAway(_) | Outcome::Closed => None,
                _ => Some(h2.get(3, "/good/after-bomb")),
            };
            outcomes.push((path, outcome, next));
        }
        outcomes
    });
    for (path, outcome, next) in outcomes {
        eprintln!("{path}: {outcome:?}, next stream {next:?}");
        let refused = match &outcome {
            Outcome::Response(status, _) => *status == 431,
            Outcome::Reset(_) | Outcome::GoAway(_) | Outcome::Closed => true,
            Outcome::TimedOut => false,
        };
        assert!(refused, "{path}: {outcome:?}");
        if let Some(next) = next {
            assert!(
                matches!(next, Outcome::Response(200, _)),
                "{path}: refused ({outcome:?}) but the next stream got {next:?}"
            );
        }
    }
    assert!(
        targets(&received).iter().all(|t| !t.starts_with("/bomb/")),
        "{:?}",
        targets(&received)
    );
}

#[test]
fn an_empty_data_flood_ends_the_connection() {
    let received = log();
    let backend = Backend::named("s0", received.clone());
    let limpet = limpet_before(&backend);
    let addr = limpet.addr;
    let (written, closed, goaway) = while_served(addr, move || {
        let mut h2 = H2::handshake(addr);
        let mut fields = get_fields("/empty-data", "a.example");
        fields[0] = (b":method", b"POST");
        h2.request(1, &fields, false);
        // 9 bytes a frame: 4 MiB is over 450,000 empty DATA frames.
        let written = flood(&mut h2, &data(1, &[], false), 4 * MIB);
        (
            written,
            h2.closes_within(Duration::from_secs(5)),
            h2.goaway_code(),
        )
    });
    eprintln!(
        "empty DATA flood: {} frames, GOAWAY {goaway:?}",
        written / 9
    );
    assert!(
        closed && written < 4 * MIB,
        "{} empty DATA frames written, connection {} (GOAWAY {goaway:?})",
        written / 9,
        if closed { "closed" } else { "open" }
    );
    // The POST never ended: the backend never saw it complete.
    assert!(
        !targets(&received).contains(&"/empty-data".to_string()),
        "{:?}",
        targets(&received)
    );
}

/// Sends `count` copies of `frame_bytes` in writes of 100, reading what
/// comes back between writes; returns the connection.
fn burst(addr: SocketAddr, frame_bytes: &[u8], count: usize) -> H2 {
    let mut h2 = H2::handshake(addr);
    let mut sent = 0;
    while sent < count {
        let n = (count - sent).min(100);
        if !h2.try_send(&frame_bytes.repeat(n)) {
            break;
        }
        sent += n;
        h2.drain();
    }
    h2
}

fn control_flood(kind: &str, frame_bytes: Vec<u8>) {
    let received = log();
    let backend = Backend::named("s0", received.clone());
    let limpet = limpet_before(&backend);
    let addr = limpet.addr;

    // Below the limit (900 in a few ms, well within 10 s): a client that
    // pings or re-settles a lot is not abuse, and its streams are served.
    let mut calm = burst(addr, &frame_bytes, 900);
    assert_eq!(calm.goaway_code(), None, "{kind}: 900 frames drew a GOAWAY");
    assert!(
        matches!(calm.get(1, "/good/after-900"), Outcome::Response(200, _)),
        "{kind}: no answer after 900 frames"
    );

    let bytes = frame_bytes.clone();
    let mut h2 = while_served(addr, move || burst(addr, &bytes, 3000));
    let closed = h2.closes_within(Duration::from_secs(5));
    eprintln!(
        "{kind} flood: GOAWAY {:?} after {} PING / {} SETTINGS acks",
        h2.goaway_code(),
        h2.ping_acks,
        h2.settings_acks
    );
    assert_eq!(
        h2.goaway_code(),
        Some(ENHANCE_YOUR_CALM),
        "{kind}: 3,000 frames (acks seen: {} PING, {} SETTINGS)",
        h2.ping_acks,
        h2.settings_acks
    );
    assert!(closed, "{kind}: GOAWAY, but the connection stayed open");
}

#[test]
fn a_settings_flood_gets_enhance_your_calm() {
    control_flood("SETTINGS", settings(&[]));
}

#[test]
fn a_ping_flood_gets_enhance_your_calm() {
    control_flood("PING", ping(*b"floodpng", false));
}

/// A backend answering every request with `BIG` bytes of body, written in
/// 64 KiB pieces of one shared buffer (so the test process holds one copy).
fn big_backend() -> Backend {
    const BIG: usize = 8 * MIB;
    let piece: Arc<Vec<u8>> = Arc::new(vec![b'z'; 64 * 1024]);
    Backend::spawn(move |mut conn| {
        while let Some(request) = conn.read_request() {
            let body = if request.target.starts_with("/big") {
                BIG
            } else {
                piece.len()
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\n\r\n");
            if conn.stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut left = body;
            while left > 0 {
                let n = left.min(piece.len());
                if conn.stream.write_all(&piece[..n]).is_err() {
                    return;
                }
                left -= n;
            }
        }
    })
}

#[test]
fn a_client_that_never_opens_its_window_costs_bounded_memory() {
    let backend = big_backend();
    let limpet = Process::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    // Warm up: buffers allocated once, the backend connection pooled.
    served(addr, "warm-up").unwrap();
    let before = limpet.status_kib("VmRSS:");

    // 4 connections × 50 streams × 8 MiB offered: 1.6 GB if limpet
    // buffered what the client never takes. The client reads (and so
    // never blocks limpet's writes at TCP) but sends no WINDOW_UPDATE.
    let stalled: Vec<H2> = (0..4)
        .map(|c| {
            let mut h2 = H2::handshake(addr);
            for s in 0..50u32 {
                let path = format!("/big/{c}/{s}");
                h2.request(2 * s + 1, &get_fields(&path, "a.example"), true);
            }
            h2
        })
        .collect();
    let stalled = Arc::new(std::sync::Mutex::new(stalled));
    let readers = stalled.clone();
    let started = Instant::now();
    while_served(addr, move || {
        while started.elapsed() < Duration::from_secs(3) {
            for h2 in readers.lock().unwrap().iter_mut() {
                h2.drain();
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let after = limpet.status_kib("VmRSS:");
    let received: usize = stalled.lock().unwrap().iter().map(|h| h.data_bytes).sum();
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("stalled windows: {before} KiB -> {after} KiB, {received} bytes of DATA");
    assert!(
        grown_mib < 64,
        "limpet grew by {grown_mib} MiB ({before} KiB -> {after} KiB) for 200 stalled streams"
    );
    // What arrived is what the windows allowed: 64 KiB per connection.
    assert!(
        received <= 4 * 65_535,
        "{received} bytes of DATA past the windows"
    );
}

/// A user's load test opens and closes HTTP/2 connections by the thousand
/// (h2load's default mode): each one used to leave its waker in the
/// worker's shutdown event, and with it its task (about 850 bytes), until
/// limpet stopped. Memory now stays flat however many have come and gone.
#[test]
fn closed_http2_connections_leave_no_memory_behind() {
    let backend = Backend::named("s0", log());
    let limpet = Process::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    let churn = |n: usize| {
        for i in 0..n {
            let mut h2 = H2::handshake(addr);
            match h2.get(1, &format!("/churn/{i}")) {
                Outcome::Response(200, _) => {}
                other => panic!("connection {i}: {other:?}"),
            }
        }
    };
    // Warm up: the worker's tables, pools and allocator pages exist.
    churn(1000);
    let before = limpet.status_kib("RssAnon:");
    churn(4000);
    let after = limpet.status_kib("RssAnon:");
    let grown = after.saturating_sub(before);
    eprintln!("4,000 closed HTTP/2 connections: RssAnon {before} KiB -> {after} KiB");
    // Leaking a task each: about 3,300 KiB.
    assert!(
        grown < 1024,
        "RssAnon grew by {grown} KiB over 4,000 closed HTTP/2 connections"
    );
}
