//! Large response bodies relayed with splice(2) (issue 21, item 3): the
//! same real-socket checks for the spliced path and for the buffered one
//! (`workers.splice_min_bytes = 0`), and the fallback when the kernel
//! refuses splice.

// Test code: a failed unwrap is a failed test, and the harness's Mutex is
// on no request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::process::Process;
use common::*;

const MIB: usize = 1024 * 1024;

/// Byte `i` of every test body: a pattern that shows a lost, repeated or
/// shifted run of bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// A keep-alive backend answering `GET /<n>` with an n-byte body of
/// [`pattern`], with a `Content-Length`.
fn sized_backend() -> Backend {
    Backend::respond(|req| {
        let len: usize = req.target.trim_start_matches('/').parse().unwrap_or(0);
        let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        answer.extend_from_slice(&pattern(len));
        Some(answer)
    })
}

/// limpet in front of `backend`, splicing bodies of 64 KiB and more when
/// `splice`, never otherwise; `extra` is appended.
fn limpet(backend: SocketAddr, splice: bool, extra: &str) -> Limpet {
    let min = if splice { 65536 } else { 0 };
    let toml = config_for(&[backend], extra).replacen(
        "[workers]\n",
        &format!("[workers]\nsplice_min_bytes = {min}\n"),
        1,
    );
    Limpet::start(&toml)
}

fn spliced(limpet: &Limpet) -> (u64, u64) {
    (
        limpet.total(|r| r.spliced_bodies),
        limpet.total(|r| r.spliced_bytes),
    )
}

fn assert_body(response: &Response, len: usize) {
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), len);
    // Not assert_eq!: a mismatch would print megabytes.
    let first_bad = response
        .body
        .iter()
        .zip(pattern(len))
        .position(|(a, b)| *a != b);
    assert_eq!(first_bad, None, "the first byte that differs");
}

fn relays_byte_exact(splice: bool, len: usize) {
    let backend = sized_backend();
    let limpet = limpet(backend.addr, splice, "");
    let response = limpet.client().get(&format!("/{len}"));
    assert_body(&response, len);
    let (bodies, bytes) = spliced(&limpet);
    if splice {
        assert_eq!(bodies, 1);
        // All but what came with the head in limpet's first read.
        assert!(
            bytes > (len - 64 * 1024) as u64 && bytes <= len as u64,
            "{bytes}"
        );
    } else {
        assert_eq!((bodies, bytes), (0, 0));
    }
    assert_eq!(
        limpet.running().reports()[0].in_flight,
        0,
        "the request is over"
    );
}

#[test]
fn a_1_mib_body_is_spliced_byte_exact() {
    relays_byte_exact(true, MIB);
}

#[test]
fn a_16_mib_body_is_spliced_byte_exact() {
    relays_byte_exact(true, 16 * MIB);
}

#[test]
fn a_1_mib_body_is_buffered_byte_exact_with_splice_off() {
    relays_byte_exact(false, MIB);
}

#[test]
fn a_16_mib_body_is_buffered_byte_exact_with_splice_off() {
    relays_byte_exact(false, 16 * MIB);
}

fn keeps_the_connection_alive(splice: bool) {
    let backend = sized_backend();
    let limpet = limpet(backend.addr, splice, "");
    let mut client = limpet.client();
    for len in [MIB, 10, 3 * MIB, 200 * 1024, 5] {
        assert_body(&client.get(&format!("/{len}")), len);
    }
    assert_eq!(
        backend.connection_count(),
        1,
        "one backend connection, reused"
    );
    let expected = if splice { 3 } else { 0 };
    assert_eq!(spliced(&limpet).0, expected);
    assert!(!client.conn.is_closed(Duration::from_millis(100)));
}

#[test]
fn bodies_are_spliced_on_the_epoll_driver_too() {
    let backend = sized_backend();
    let toml = config_for(&[backend.addr], "").replacen(
        "[workers]\n",
        "[workers]\ndriver = \"epoll\"\n",
        1,
    );
    let limpet = Limpet::start(&toml);
    let mut client = limpet.client();
    for len in [MIB, 4 * MIB, 7] {
        assert_body(&client.get(&format!("/{len}")), len);
    }
    assert_eq!(spliced(&limpet).0, 2);
}

#[test]
fn the_connection_stays_alive_after_a_spliced_body() {
    keeps_the_connection_alive(true);
}

#[test]
fn the_connection_stays_alive_after_a_buffered_body() {
    keeps_the_connection_alive(false);
}

#[test]
fn small_and_chunked_bodies_are_never_spliced() {
    let backend = Backend::respond(|req| {
        if req.target == "/small" {
            return Some(ok(&"s".repeat(60 * 1024)));
        }
        let body = pattern(MIB);
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for chunk in body.chunks(100_000) {
            answer.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            answer.extend_from_slice(chunk);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        Some(answer)
    });
    let limpet = limpet(backend.addr, true, "");
    let mut client = limpet.client();
    assert_eq!(client.get("/small").body.len(), 60 * 1024);
    assert_body(&client.get("/chunked"), MIB);
    assert_eq!(spliced(&limpet), (0, 0));
}

/// A backend that promises 1 MiB, sends the first `sent` bytes, then
/// closes, or when `stall` waits for limpet to close.
fn partial_backend(sent: usize, stall: bool) -> Backend {
    Backend::spawn(move |mut conn| {
        conn.read_request().unwrap();
        let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {MIB}\r\n\r\n").into_bytes();
        answer.extend_from_slice(&pattern(sent));
        conn.stream.write_all(&answer).unwrap();
        if stall {
            let _ = conn.read_to_end();
        }
    })
}

fn a_backend_closing_mid_body_closes_the_client(splice: bool) {
    // A FIN 300 KiB into a 1 MiB body.
    let backend = partial_backend(300 * 1024, false);
    let limpet = limpet(backend.addr, splice, "");
    let mut client = limpet.client();
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.conn.read_head().unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let rest = client.conn.read_to_end();
    assert_eq!(
        rest.len(),
        300 * 1024,
        "what the backend sent, then the close"
    );
    assert_eq!(rest, pattern(300 * 1024));
    assert_eq!(spliced(&limpet).0, u64::from(splice));
}

#[test]
fn a_backend_closing_mid_body_closes_the_client_spliced() {
    a_backend_closing_mid_body_closes_the_client(true);
}

#[test]
fn a_backend_closing_mid_body_closes_the_client_buffered() {
    a_backend_closing_mid_body_closes_the_client(false);
}

fn a_silent_backend_mid_body_times_out(splice: bool) {
    // Then nothing, until limpet gives up and closes.
    let backend = partial_backend(200 * 1024, true);
    let limpet = limpet(
        backend.addr,
        splice,
        "[timeouts]\nbackend_response = \"300ms\"\n",
    );
    let mut client = limpet.client();
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    client.conn.read_head().unwrap();
    let started = std::time::Instant::now();
    let rest = client.conn.read_to_end();
    assert_eq!(rest.len(), 200 * 1024);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed by backend_response, not the test's read timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(limpet.total(|r| r.backend_timeouts), 1);
}

#[test]
fn a_backend_stalling_mid_body_is_cut_off_by_backend_response_spliced() {
    a_silent_backend_mid_body_times_out(true);
}

#[test]
fn a_backend_stalling_mid_body_is_cut_off_by_backend_response_buffered() {
    a_silent_backend_mid_body_times_out(false);
}

fn a_slow_client_is_cut_off(splice: bool) {
    const BIG: usize = 16 * MIB;
    let backend = sized_backend();
    let limpet = limpet(
        backend.addr,
        splice,
        "[timeouts]\nclient_body = \"300ms\"\n",
    );
    // A small receive buffer (no autotuning), so the kernel cannot hold
    // the body for a client that does not read.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&limpet.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(format!("GET /{BIG} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    // A sleep on purpose: the client reads nothing for longer than
    // client_body.
    thread::sleep(Duration::from_millis(1500));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut received = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(
        received < BIG / 2,
        "limpet gave up on the client: {received} bytes reached it"
    );
    assert_eq!(spliced(&limpet).0, u64::from(splice));
    // The worker is fine: the next client gets its body.
    assert_body(&limpet.client().get(&format!("/{MIB}")), MIB);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_by_client_body_spliced() {
    a_slow_client_is_cut_off(true);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_by_client_body_buffered() {
    a_slow_client_is_cut_off(false);
}

/// limpet as a child whose first splice of each body fails with `errno`,
/// as from a kernel without it.
fn refusing(errno: &str, backend: SocketAddr) -> Process {
    Process::start_env(
        &config_for(&[backend], ""),
        &[("LIMPET_TEST_SPLICE_ERRNO", errno)],
    )
}

#[test]
fn a_kernel_refusing_splice_falls_back_to_the_buffered_relay_once_and_for_all() {
    for errno in ["22", "38", "95"] {
        // EINVAL, ENOSYS, EOPNOTSUPP.
        let backend = sized_backend();
        let process = refusing(errno, backend.addr);
        let mut client = Client::connect(process.addr);
        for len in [MIB, 2 * MIB, 100] {
            assert_body(&client.get(&format!("/{len}")), len);
        }
        let refusals = || {
            process
                .lines()
                .iter()
                .filter(|l| l.contains("the kernel refuses splice"))
                .count()
        };
        // The log reaches the test through a pipe and a thread.
        assert!(eventually(Duration::from_secs(5), || refusals() > 0));
        let refusals = refusals();
        assert_eq!(
            refusals,
            1,
            "errno {errno}: logged once: {:?}",
            process.lines()
        );
        assert_eq!(backend.connection_count(), 1, "keep-alive on both sides");
    }
}

#[test]
fn a_splice_failing_otherwise_closes_the_client() {
    // ECONNRESET on the first splice: the body is broken, not refused.
    let backend = sized_backend();
    let process = refusing("104", backend.addr);
    let mut client = Client::connect(process.addr);
    client.send(format!("GET /{MIB} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let head = client.conn.read_head().unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let rest = client.conn.read_to_end();
    assert!(rest.len() < MIB, "{} bytes and then the close", rest.len());
    assert!(!process.logged("the kernel refuses splice"));
}
