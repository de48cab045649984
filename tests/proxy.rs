//! The proxy core over real loopback sockets (issue 2, SPEC §7): keep-alive
//! on both sides, framing, pipelining, upgrades, errors and retries.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use limpet::control::AdminState;

#[test]
fn keep_alive_is_reused_on_both_sides() {
    let requests = log();
    let backend = Backend::named("a", requests.clone());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    for path in ["/1", "/2", "/3"] {
        let response = client.get(path);
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), format!("a {path}"));
        assert_eq!(
            response.header("connection"),
            None,
            "keep-alive is the HTTP/1.1 default"
        );
    }
    let mut second = limpet.client();
    assert_eq!(second.get("/4").body_text(), "a /4");
    assert_eq!(
        backend.connection_count(),
        1,
        "one pooled backend connection served all"
    );
    assert_eq!(requests.lock().unwrap().len(), 4);
    assert!(!client.conn.is_closed(Duration::from_millis(100)));
}

#[test]
fn http10_client_without_keep_alive_is_closed_after_the_response() {
    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(b"GET /old HTTP/1.0\r\n\r\n");
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "a /old");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.conn.is_closed(Duration::from_secs(2)));
}

#[test]
fn chunked_bodies_stream_both_ways() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::spawn(move |mut conn| {
        let request = conn.read_request().unwrap();
        tx.send(request.clone()).unwrap();
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in request.body.chunks(7) {
            answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            answer.extend_from_slice(part);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        conn.stream.write_all(&answer).unwrap();
        conn.read_request();
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(b"POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunks: [&[u8]; 3] = [
        b"5\r\nhello\r\n",
        b"6;ext=1\r\n world\r\n",
        b"0\r\nTrailer-A: 1\r\n\r\n",
    ];
    for chunk in chunks {
        // A sleep on purpose: each chunk arrives on its own.
        thread::sleep(Duration::from_millis(30));
        client.send(chunk);
    }
    let received = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(received.body, b"hello world");
    assert_eq!(received.header("transfer-encoding"), Some("chunked"));
    let head_end = find(&received.raw, b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        &received.raw[head_end..],
        chunks.concat().as_slice(),
        "chunked framing passes through byte for byte"
    );
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.body, b"hello world");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(
        b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nPOST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    for path in ["/1", "/2", "/3"] {
        let response = client.read_response(false).unwrap();
        assert_eq!(response.body_text(), format!("a {path}"));
    }
}

#[test]
fn bodiless_responses_do_not_swallow_the_next_one() {
    let backend = Backend::respond(|req| {
        Some(match req.target.as_str() {
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n".to_vec(),
            other => ok(other),
        })
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(b"HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.read_response(true).unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("100"))
    );
    assert_eq!(client.get("/204").status, 204);
    let not_modified = client.get("/304");
    assert_eq!(not_modified.status, 304);
    let after = client.get("/after");
    assert_eq!((after.status, after.body_text().as_str()), (200, "/after"));
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let backend = Backend::respond(|req| Some(ok(&String::from_utf8_lossy(&req.body))));
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client
        .send(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = client.read_response(false).unwrap();
    assert_eq!(interim.status, 100);
    client.send(b"12345");
    let response = client.read_response(false).unwrap();
    assert_eq!(
        (response.status, response.body_text().as_str()),
        (200, "12345")
    );
}

#[test]
fn a_backend_100_continue_is_not_relayed_twice_but_other_1xx_are() {
    let backend = Backend::spawn(|mut conn| {
        let request = conn.read_request().unwrap();
        let body = String::from_utf8_lossy(&request.body).to_string();
        let answer = format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n{}",
            String::from_utf8(ok(&body)).unwrap()
        );
        conn.stream.write_all(answer.as_bytes()).unwrap();
        conn.read_request();
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client
        .send(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().status, 100);
    client.send(b"hi");
    let hints = client.read_response(false).unwrap();
    assert_eq!(
        hints.status, 103,
        "the backend's own 100 is swallowed, 103 relayed"
    );
    assert_eq!(hints.header("link"), Some("</a.css>; rel=preload"));
    let response = client.read_response(false).unwrap();
    assert_eq!(
        (response.status, response.body_text().as_str()),
        (200, "hi")
    );
}

#[test]
fn upgrade_is_tunnelled_both_ways_after_101() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::spawn(move |mut conn| {
        let request = conn.read_request().unwrap();
        tx.send(request).unwrap();
        conn.stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
            .unwrap();
        let ping = conn.read_exact(5).unwrap();
        conn.stream
            .write_all(&[b"echo:".as_slice(), &ping].concat())
            .unwrap();
        let rest = conn.read_to_end();
        conn.stream.write_all(&rest).ok();
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n");
    let switched = client.read_response(true).unwrap();
    assert_eq!(switched.status, 101);
    assert_eq!(switched.header("upgrade"), Some("websocket"));
    let request = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(request.header("upgrade"), Some("websocket"));
    assert!(request
        .header("connection")
        .unwrap()
        .eq_ignore_ascii_case("upgrade"));
    assert_eq!(client.conn.read_exact(5).unwrap(), b"hello");
    client.send(b"ping!");
    assert_eq!(client.conn.read_exact(10).unwrap(), b"echo:ping!");
}

#[test]
fn forwarding_headers_and_hop_by_hop() {
    let requests = log();
    let backend = Backend::named("a", requests.clone());
    let plain = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = plain.client();
    client.send(
        b"GET /h HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n",
    );
    assert_eq!(client.read_response(false).unwrap().status, 200);
    let trusted = Limpet::start(&config_for(&[backend.addr], "").replace(
        "default_group = \"web\"",
        "default_group = \"web\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
    ));
    let mut client = trusted.client();
    client.send(b"GET /t HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().status, 200);

    let requests = requests.lock().unwrap();
    let untrusted = &requests[0];
    assert_eq!(
        untrusted.headers_named("x-forwarded-for"),
        ["127.0.0.1"],
        "replaced for an untrusted peer"
    );
    assert_eq!(untrusted.header("x-forwarded-proto"), Some("http"));
    assert_eq!(untrusted.header("x-forwarded-host"), Some("shop.example"));
    assert_eq!(untrusted.header("x-kept"), Some("yes"));
    for dropped in ["connection", "x-secret", "keep-alive", "te"] {
        assert_eq!(untrusted.header(dropped), None, "{dropped} is hop-by-hop");
    }
    assert_eq!(
        requests[1].headers_named("x-forwarded-for"),
        ["6.6.6.6, 127.0.0.1"],
        "appended for a trusted peer"
    );
}

#[test]
fn backend_down_is_502_and_no_usable_server_is_503() {
    let limpet = Limpet::start(&config_for(&[dead_address()], ""));
    let mut client = limpet.client();
    let response = client.get("/");
    assert_eq!(response.status, 502);
    assert!(client.conn.is_closed(Duration::from_secs(2)));

    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let control = limpet.running().control().clone();
    futures_executor::block_on(control.set_admin("web", "s0", AdminState::Disabled)).unwrap();
    assert!(limpet.snapshot_reached(2));
    let started = Instant::now();
    let response = limpet.client().get("/");
    assert_eq!(response.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "503 at once, never a hang"
    );
    assert_eq!(backend.connection_count(), 0);
}

#[test]
fn connect_failure_goes_to_another_server() {
    let requests = log();
    let backend = Backend::named("live", requests.clone());
    let config = config_with(
        &[dead_address(), backend.addr],
        "balance = \"round_robin\"",
        "",
    );
    let limpet = Limpet::start(&config);
    let mut client = limpet.client();
    for _ in 0..4 {
        let response = client.get("/x");
        assert_eq!(
            (response.status, response.body_text().as_str()),
            (200, "live /x")
        );
    }
    assert!(limpet.total(|r| r.backend_connect_errors) >= 1);
}

#[test]
fn slow_backend_is_504_and_sees_the_fin_at_once() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::spawn(move |mut conn| {
        conn.read_request().unwrap();
        // Wait for limpet to give up: read returns 0 when its FIN arrives.
        let mut byte = [0u8; 1];
        let _ = conn.stream.read(&mut byte);
        tx.send(Instant::now()).unwrap();
    });
    let config = config_for(
        &[backend.addr],
        "[timeouts]\nbackend_response = \"300ms\"\n",
    );
    let limpet = Limpet::start(&config);
    let mut client = limpet.client();
    let sent = Instant::now();
    let response = client.get("/slow");
    let answered = Instant::now();
    assert_eq!(response.status, 504);
    assert!(answered - sent >= Duration::from_millis(290));
    let fin = rx.recv_timeout(IO_TIMEOUT).unwrap();
    let gap = if fin > answered {
        fin - answered
    } else {
        answered - fin
    };
    assert!(
        gap < Duration::from_millis(100),
        "the backend saw the FIN {gap:?} from the 504"
    );
}

#[test]
fn malformed_requests_are_400_and_closed() {
    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ];
    for case in cases {
        let mut client = limpet.client();
        client.send(case);
        let response = client.read_response(false).unwrap();
        assert_eq!(response.status, 400, "{}", String::from_utf8_lossy(case));
        assert_eq!(response.header("connection"), Some("close"));
        assert!(client.conn.is_closed(Duration::from_secs(2)));
    }
    assert_eq!(
        backend.connection_count(),
        0,
        "nothing malformed reached the backend"
    );
}

#[test]
fn oversized_heads_are_431_and_long_request_lines_414() {
    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    client.send(big.as_bytes());
    assert_eq!(client.read_response(false).unwrap().status, 431);
    let mut client = limpet.client();
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "p".repeat(9000));
    client.send(long.as_bytes());
    assert_eq!(client.read_response(false).unwrap().status, 414);
    let mut client = limpet.client();
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    client.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes());
    assert_eq!(client.read_response(false).unwrap().status, 431);
}

/// A backend that answers one request per connection as keep-alive, then
/// closes: its pooled connection in limpet goes stale.
fn one_shot_backend() -> Backend {
    Backend::spawn(|mut conn| {
        if let Some(req) = conn.read_request() {
            conn.stream
                .write_all(&ok(&format!("ok {}", req.target)))
                .unwrap();
        }
    })
}

#[test]
fn stale_pooled_connection_retries_get_but_not_post() {
    let backend = one_shot_backend();
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    assert_eq!(client.get("/1").status, 200);
    assert!(eventually(Duration::from_secs(10), || backend
        .closed_count()
        == 1));
    let retried = client.get("/2");
    assert_eq!(
        (retried.status, retried.body_text().as_str()),
        (200, "ok /2")
    );
    assert_eq!(backend.connection_count(), 2);

    assert!(eventually(Duration::from_secs(10), || backend
        .closed_count()
        == 2));
    let mut client = limpet.client();
    client.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let response = client.read_response(false).unwrap();
    assert_eq!(
        response.status, 502,
        "a request with a body is never replayed"
    );
    assert_eq!(backend.connection_count(), 2);
}

#[test]
fn two_workers_share_one_listener() {
    let backend = Backend::named("a", log());
    let config = config_for(&[backend.addr], "").replace("count = 1", "count = 2");
    let limpet = Limpet::start(&config);
    for i in 0..64 {
        let mut client = limpet.client();
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    let reports = limpet.running().reports();
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert!(
            report.accepted > 0,
            "worker {} accepted nothing: {reports:?}",
            report.id
        );
    }
    assert_eq!(reports.iter().map(|r| r.accepted).sum::<u64>(), 64);
}

#[test]
fn a_second_limpet_on_a_taken_port_fails() {
    let backend = Backend::named("a", log());
    let first = Limpet::start(&config_for(&[backend.addr], ""));
    let taken = config_for(&[backend.addr], "").replace("127.0.0.1:0", &first.addr.to_string());
    let config = limpet::config::parse(&taken, "second.toml").unwrap();
    let err = limpet::server::start(config).unwrap_err().to_string();
    assert!(
        err.contains(&first.addr.to_string()) && err.contains("already in use"),
        "{err}"
    );
    assert_eq!(
        first.client().get("/").status,
        200,
        "the first one is untouched"
    );
}

#[test]
fn close_delimited_response_is_relayed_and_the_client_closed() {
    let backend = Backend::spawn(|mut conn| {
        conn.read_request().unwrap();
        conn.stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            .unwrap();
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    let response = client.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.body_text(), "until the end");
}

#[test]
fn a_client_that_trickles_its_head_is_cut_off() {
    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[timeouts]\nclient_head = \"300ms\"\n",
    ));
    let mut client = limpet.client();
    let started = Instant::now();
    client.send(b"GET / HTTP/1.1\r\n");
    // A sleep on purpose: the head trickles in.
    thread::sleep(Duration::from_millis(150));
    client.send(b"Host: t\r\n");
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 408);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(client.conn.is_closed(Duration::from_secs(2)));
}

#[test]
fn max_connections_sheds_the_oldest_idle_connection_for_the_next() {
    let backend = Backend::named("a", log());
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[limits]\nmax_connections = 2\n",
    ));
    let mut first = limpet.client();
    let mut second = limpet.client();
    assert_eq!(first.get("/1").status, 200);
    assert_eq!(second.get("/2").status, 200);
    // Both idle, the cap reached: the newcomer is served at once and the
    // connection idle the longest is closed to make room.
    let mut third = limpet.client();
    let response = third.get("/3");
    assert_eq!(response.body_text(), "a /3", "served at once");
    assert!(
        first.conn.is_closed(Duration::from_secs(2)),
        "the oldest idle one went"
    );
    assert_eq!(second.get("/4").status, 200, "the younger one stays");
    let stats = limpet.running().reports();
    assert_eq!(stats[0].shed[0], 1, "counted as an idle shed");
}
