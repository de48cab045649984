//! Backends that misbehave (SPEC §7, issue 9): each gets a defined outcome.
//! 502 while nothing has reached the client; once a response has started,
//! the client connection is closed, so a truncated response never looks
//! complete; a request with a body is never sent twice.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

/// Closes `conn` with a TCP reset (SO_LINGER 0) rather than a FIN.
fn reset(conn: Conn) {
    socket2::SockRef::from(&conn.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(conn);
}

fn one_request(raw: &'static [u8], then_reset: bool) -> Backend {
    Backend::spawn(move |mut conn| {
        conn.read_request().unwrap();
        conn.stream.write_all(raw).unwrap();
        if then_reset {
            // A sleep on purpose: the response is on its way before the
            // reset, which would otherwise discard what is still unsent.
            thread::sleep(Duration::from_millis(20));
            reset(conn);
        }
    })
}

fn limpet_for(backend: &Backend) -> Limpet {
    Limpet::start(&config_for(
        &[backend.addr],
        "[timeouts]\nbackend_response = \"2s\"\n",
    ))
}

#[test]
fn reset_before_the_response_is_502() {
    let backend = Backend::spawn(|mut conn| {
        conn.read_request().unwrap();
        reset(conn);
    });
    let limpet = limpet_for(&backend);
    let mut client = limpet.client();
    assert_eq!(client.get("/").status, 502);
    assert!(client.conn.is_closed(Duration::from_secs(2)));
}

#[test]
fn reset_in_the_middle_of_the_body_closes_the_client() {
    let backend = one_request(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly forty bytes of the hundred promised",
        true,
    );
    let limpet = limpet_for(&backend);
    let mut client = limpet.client();
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.conn.read_head().unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let rest = client.conn.read_to_end();
    assert!(
        rest.len() < 100,
        "the client saw {} of 100 bytes and then the close",
        rest.len()
    );
}

#[test]
fn a_body_shorter_than_its_length_closes_the_client() {
    let backend = Backend::spawn(|mut conn| {
        conn.read_request().unwrap();
        conn.stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort")
            .unwrap();
        // A FIN, not a reset: the backend just stops.
    });
    let limpet = limpet_for(&backend);
    let mut client = limpet.client();
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    client.conn.read_head().unwrap();
    assert_eq!(
        client.conn.read_to_end(),
        b"short",
        "then closed: 5 of 50 bytes cannot look complete"
    );
}

#[test]
fn garbage_and_ambiguous_response_heads_are_502() {
    let heads: [&'static [u8]; 5] = [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    ];
    for head in heads {
        let backend = one_request(head, false);
        let limpet = limpet_for(&backend);
        let mut client = limpet.client();
        assert_eq!(
            client.get("/").status,
            502,
            "{}",
            String::from_utf8_lossy(head)
        );
        assert!(client.conn.is_closed(Duration::from_secs(2)));
    }
}

#[test]
fn extra_bytes_after_a_response_are_dropped_and_the_connection_not_reused() {
    let backend = Backend::respond(|req| {
        let mut answer = ok(&format!("ok {}", req.target));
        answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled");
        Some(answer)
    });
    let limpet = limpet_for(&backend);
    let mut client = limpet.client();
    assert_eq!(client.get("/1").body_text(), "ok /1");
    assert_eq!(
        client.get("/2").body_text(),
        "ok /2",
        "not the smuggled response"
    );
    assert_eq!(
        backend.connection_count(),
        2,
        "the tainted connection was not pooled"
    );
}

#[test]
fn an_early_response_is_relayed_and_the_body_never_replayed() {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let backend = Backend::spawn(move |mut conn| {
        conn.read_head().unwrap();
        seen.fetch_add(1, Ordering::SeqCst);
        conn.stream
            .write_all(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
            .unwrap();
        // A sleep on purpose: the answer reaches limpet first, the reset
        // then lands while limpet is still sending the body.
        thread::sleep(Duration::from_millis(50));
        reset(conn);
    });
    let limpet = limpet_for(&backend);
    let mut client = limpet.client();
    // Far more than loopback socket buffers hold, so the backend's reset
    // lands while limpet is still sending the body.
    client.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 67108864\r\n\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..1024 {
        if client.conn.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let response = client.read_response(false).unwrap();
    assert_eq!(
        (response.status, response.body_text().as_str()),
        (413, "too large")
    );
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "the request was cut short"
    );
    assert!(client.conn.is_closed(Duration::from_secs(2)));
    // A sleep on purpose: what is checked is that no second attempt comes.
    thread::sleep(Duration::from_millis(100));
    assert_eq!(requests.load(Ordering::SeqCst), 1, "never sent twice");
}

#[test]
fn a_silent_backend_is_504() {
    let backend = Backend::spawn(|mut conn| {
        conn.read_request().unwrap();
        let _ = conn.read_to_end();
    });
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[timeouts]\nbackend_response = \"200ms\"\n",
    ));
    assert_eq!(limpet.client().get("/").status, 504);
}

#[test]
fn a_client_that_stalls_its_body_is_cut_off() {
    let backend = Backend::spawn(|mut conn| {
        let _ = conn.read_request();
    });
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[timeouts]\nclient_body = \"300ms\"\n",
    ));
    let mut client = limpet.client();
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 408);
    assert!(client.conn.is_closed(Duration::from_secs(2)));
}

#[test]
fn an_idle_keep_alive_client_is_closed_after_client_idle() {
    let backend = Backend::named("a", Default::default());
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[timeouts]\nclient_idle = \"300ms\"\n",
    ));
    let mut client = limpet.client();
    assert_eq!(client.get("/").status, 200);
    let started = std::time::Instant::now();
    assert!(client.conn.is_closed(Duration::from_secs(3)));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}
