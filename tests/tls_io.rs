//! HTTPS through limpet's unbuffered TLS driver (`net::TlsStream`), over
//! real sockets: buffers are freed while a connection is idle and taken
//! again for the next request, so keep-alive after idle, pipelining, large
//! bodies both ways, `close_notify`, and 256 MiB each way with the process's
//! peak memory bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::process::Process;
use common::tls::*;
use common::*;

/// A backend that answers `GET /size/N` with N bytes of `x` and any
/// request with a body with `got N` (its length).
fn sizing_backend() -> Backend {
    Backend::respond(|request| {
        let target = request.target.clone();
        if let Some(n) = target.strip_prefix("/size/") {
            let n: usize = n.parse().unwrap();
            let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            answer.resize(answer.len() + n, b'x');
            Some(answer)
        } else {
            Some(ok(&format!("got {} {target}", request.body.len())))
        }
    })
}

fn start() -> (Pki, Backend, Limpet) {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = sizing_backend();
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    (pki, backend, limpet)
}

#[test]
fn keep_alive_goes_on_after_idle_periods() {
    let (pki, _backend, limpet) = start();
    for versions in [TLS13, TLS12] {
        let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(versions));
        for i in 0..4 {
            let answer = client.get_host(&format!("/idle{i}"), "a.test", "");
            assert_eq!(answer.status, 200);
            assert_eq!(answer.body_text(), format!("got 0 /idle{i}"));
            // Idle: the connection's TLS buffers are freed, and taken
            // again when the next request comes.
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

#[test]
fn pipelined_requests_over_tls_are_answered_in_order() {
    let (pki, _backend, limpet) = start();
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(TLS13));
    let mut burst = Vec::new();
    for i in 0..5 {
        burst.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes());
    }
    // One write: the requests share TLS records.
    client.send(&burst);
    for i in 0..5 {
        let answer = client.read_response(false).unwrap();
        assert_eq!(answer.body_text(), format!("got 0 /p{i}"));
    }
    // And a body and a request in one record, then a large response.
    client.send(
        b"POST /b HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabcGET /size/100000 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    );
    assert_eq!(client.read_response(false).unwrap().body_text(), "got 3 /b");
    let big = client.read_response(false).unwrap();
    assert_eq!(big.body.len(), 100_000);
}

#[test]
fn large_bodies_both_ways_over_tls() {
    let (pki, _backend, limpet) = start();
    for versions in [TLS13, TLS12] {
        let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(versions));
        for size in [1, 16_383, 16_384, 16_385, 1 << 20, (3 << 20) + 7] {
            let body = vec![b'u'; size];
            let mut request = format!(
                "POST /up{size} HTTP/1.1\r\nHost: a.test\r\nContent-Length: {size}\r\n\r\n"
            )
            .into_bytes();
            request.extend_from_slice(&body);
            client.send(&request);
            let answer = client.read_response(false).unwrap();
            assert_eq!(answer.body_text(), format!("got {size} /up{size}"));
            let answer = client.get_host(&format!("/size/{size}"), "a.test", "");
            assert_eq!(answer.body.len(), size);
            assert!(answer.body.iter().all(|&b| b == b'x'));
        }
    }
}

#[test]
fn close_notify_both_ways() {
    let (pki, _backend, limpet) = start();
    // The client's close_notify: limpet answers with its own and closes.
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(TLS13));
    assert_eq!(client.get_host("/", "a.test", "").status, 200);
    client.conn.stream.conn.send_close_notify();
    client.conn.stream.flush().unwrap();
    client
        .conn
        .stream
        .sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    // rustls reports a TCP close without close_notify as an error.
    client.conn.stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // `Connection: close`: the response, then limpet's close_notify.
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(TLS12));
    client.send(b"GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    assert_eq!(
        client.read_response(false).unwrap().body_text(),
        "got 0 /last"
    );
    client
        .conn
        .stream
        .sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    client.conn.stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

const BIG: usize = 256 << 20;
const CHUNK: usize = 64 << 10;

#[test]
fn big_bodies_stream_through_https_with_bounded_memory() {
    let backend = Backend::big_bodies(BIG, CHUNK);
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let process = Process::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    let open = || {
        let client = Tls::open(process.addr, Some("a.test"), pki.client(TLS13));
        client
            .conn
            .stream
            .sock
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        client
    };
    assert_eq!(open().get_host("/warm", "a.test", "").status, 200);
    let before = process.status_kib("VmHWM:");

    // Download.
    let mut client = open();
    client.send(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let head = client.conn.read_head().unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let mut received = std::mem::take(&mut client.conn.pending).len();
    let mut chunk = vec![0u8; CHUNK];
    while received < BIG {
        let n = client.conn.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "download ended after {received} bytes");
        received += n;
    }
    assert_eq!(received, BIG);

    // Upload.
    let mut client = open();
    client.send(
        format!("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {BIG}\r\n\r\n").as_bytes(),
    );
    let data = vec![b'u'; CHUNK];
    for _ in 0..BIG / CHUNK {
        client.conn.stream.write_all(&data).unwrap();
    }
    client.conn.stream.flush().unwrap();
    let answer = client.read_response(false).unwrap();
    assert_eq!(answer.status, 200);

    let after = process.status_kib("VmHWM:");
    let growth = after.saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "peak RSS grew by {growth} KiB moving 2 x 256 MiB over HTTPS"
    );
}
