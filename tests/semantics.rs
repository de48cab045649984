//! Request semantics every front end shares (issue 15, SPEC §7): which
//! upgrades reach a backend, the tunnel's own idle limit, the effective
//! authority of an absolute-form target, a validated `Host`, and
//! informational responses written like final ones. Real sockets: limpet
//! and its backends on 127.0.0.1.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// A backend that switches protocols whenever a request asks for any
/// upgrade (as a careless h2c-capable server would), and otherwise answers
/// `200` with `<target>`; every request it receives goes to `seen`.
fn switching_backend(seen: mpsc::Sender<Received>) -> Backend {
    Backend::spawn(move |mut conn| {
        while let Some(request) = conn.read_request() {
            let upgrade = request.header("upgrade").map(str::to_owned);
            seen.send(request.clone()).unwrap();
            if let Some(protocol) = upgrade {
                let head = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
                );
                conn.stream.write_all(head.as_bytes()).unwrap();
                // Whatever comes next would be raw bytes past limpet.
                let rest = conn.read_to_end();
                seen.send(Received {
                    raw: rest,
                    ..Received::default()
                })
                .ok();
                return;
            }
            if conn.stream.write_all(&ok(&request.target)).is_err() {
                return;
            }
        }
    })
}

#[test]
fn an_h2c_upgrade_never_reaches_the_backend_and_the_connection_stays_http1() {
    let (tx, rx) = mpsc::channel();
    let backend = switching_backend(tx);
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(
        b"GET /first HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 200, "served as plain HTTP/1.1");
    assert_eq!(response.body_text(), "/first");
    let first = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(first.header("upgrade"), None);
    assert_eq!(first.header("http2-settings"), None);
    assert!(first
        .header("connection")
        .is_none_or(|c| !c.to_ascii_lowercase().contains("upgrade")));
    // The next request on the same connection is parsed, routed and
    // answered by limpet, not tunnelled.
    let second = client.get("/second");
    assert_eq!(second.status, 200);
    assert_eq!(second.body_text(), "/second");
    assert_eq!(rx.recv_timeout(IO_TIMEOUT).unwrap().target, "/second");
}

#[test]
fn a_101_nobody_asked_for_is_a_502_and_the_backend_connection_is_closed() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::spawn(move |mut conn| {
        let Some(_request) = conn.read_request() else {
            return;
        };
        conn.stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw")
            .unwrap();
        // limpet must close this connection rather than tunnel it.
        tx.send(conn.is_closed(Duration::from_secs(5))).unwrap();
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    let response = client.get("/plain");
    assert_eq!(response.status, 502);
    assert!(
        rx.recv_timeout(IO_TIMEOUT).unwrap(),
        "backend connection closed"
    );
}

#[test]
fn a_101_to_another_protocol_than_asked_is_a_502() {
    let backend = Backend::spawn(move |mut conn| {
        let Some(_request) = conn.read_request() else {
            return;
        };
        conn.stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            )
            .unwrap();
        conn.read_to_end();
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().status, 502);
}

#[test]
fn only_listed_upgrade_protocols_pass() {
    let (tx, rx) = mpsc::channel();
    let backend = switching_backend(tx);
    let toml = config_for(&[backend.addr], "").replace(
        "default_group = \"web\"",
        "default_group = \"web\"\nupgrade_protocols = [\"chat\"]",
    );
    let limpet = Limpet::start(&toml);
    // websocket is not in this listener's list: a plain request.
    let mut client = limpet.client();
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().status, 200);
    assert_eq!(rx.recv_timeout(IO_TIMEOUT).unwrap().header("upgrade"), None);
    // chat is, and of two offers only it is forwarded.
    let mut client = limpet.client();
    client.send(
        b"GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket, chat\r\n\r\n",
    );
    let switched = client.read_response(true).unwrap();
    assert_eq!(switched.status, 101);
    assert_eq!(
        rx.recv_timeout(IO_TIMEOUT).unwrap().header("upgrade"),
        Some("chat")
    );
}

#[test]
fn h2c_cannot_be_allowed() {
    let toml = config_for(&["127.0.0.1:9"], "").replace(
        "default_group = \"web\"",
        "default_group = \"web\"\nupgrade_protocols = [\"websocket\", \"h2c\"]",
    );
    let err = limpet::config::parse(&toml, "limpet.toml").expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("listeners[0].upgrade_protocols[1]") && text.contains("h2c"),
        "{text}"
    );
}

/// A WebSocket-like backend: answers the upgrade, then echoes every byte.
fn echo_tunnel_backend() -> Backend {
    Backend::spawn(move |mut conn| {
        let Some(_request) = conn.read_request() else {
            return;
        };
        conn.stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 256];
        loop {
            match std::io::Read::read(&mut conn.stream, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if conn.stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

fn open_tunnel(limpet: &Limpet) -> Client {
    let mut client = limpet.client();
    client.send(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n",
    );
    assert_eq!(client.read_response(true).unwrap().status, 101);
    client.send(b"ping");
    assert_eq!(client.conn.read_exact(4).unwrap(), b"ping");
    client
}

#[test]
fn a_tunnel_outlives_client_idle_and_ends_at_timeouts_tunnel() {
    let backend = echo_tunnel_backend();
    // client_idle would close the tunnel after 300 ms; tunnel says 1.5 s.
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[timeouts]\nclient_idle = \"300ms\"\ntunnel = \"1500ms\"\n",
    ));
    let mut client = open_tunnel(&limpet);
    std::thread::sleep(Duration::from_millis(900));
    client.send(b"still");
    assert_eq!(
        client.conn.read_exact(5).unwrap(),
        b"still",
        "quiet for 3x client_idle, the tunnel is open"
    );
    let quiet = Instant::now();
    assert!(client.conn.is_closed(Duration::from_secs(5)));
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(1300) && after < Duration::from_secs(4),
        "closed {after:?} after the last byte; tunnel = 1.5 s"
    );
}

#[test]
fn an_absolute_form_target_routes_by_its_authority_and_goes_out_in_origin_form() {
    let a_log = log();
    let b_log = log();
    let a = Backend::named("a", a_log.clone());
    let b = Backend::named("b", b_log.clone());
    let toml = format!(
        "[workers]\ncount = 1\n\n[[listeners]]\nname = \"test\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"a\"\n\
         [[listeners.routes]]\nhost = \"other.example\"\ngroup = \"b\"\n\n\
         [groups.a]\n[[groups.a.servers]]\nname = \"a0\"\naddress = \"{}\"\n\n\
         [groups.b]\n[[groups.b.servers]]\nname = \"b0\"\naddress = \"{}\"\n",
        a.addr, b.addr
    );
    let limpet = Limpet::start(&toml);
    let mut client = limpet.client();
    client.send(b"GET http://other.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body_text(),
        "b /x?y=1",
        "routed by the target's authority"
    );
    let seen = b_log.lock().unwrap()[0].clone();
    assert_eq!(seen.target, "/x?y=1");
    assert_eq!(seen.headers_named("host"), vec!["other.example"]);
    assert_eq!(seen.header("x-forwarded-host"), Some("other.example"));
    // No path: the backend gets `/`.
    client.send(b"GET http://OTHER.example:8080?q HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().body_text(), "b /?q");
    assert_eq!(
        b_log.lock().unwrap()[1].headers_named("host"),
        vec!["OTHER.example:8080"]
    );
    assert!(a_log.lock().unwrap().is_empty());
}

#[test]
fn a_bad_authority_is_400_and_the_backend_sees_nothing() {
    let requests = log();
    let backend = Backend::named("a", requests.clone());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    for request in [
        "GET / HTTP/1.1\r\nHost: a.example:99999x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:123456\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n",
        "GET http://a.example:99999/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        "GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        "GET http:///x HTTP/1.1\r\nHost: a.example\r\n\r\n",
    ] {
        let mut client = limpet.client();
        client.send(request.as_bytes());
        let response = client.read_response(false).unwrap();
        assert_eq!(response.status, 400, "{request:?}");
        assert!(client.conn.is_closed(Duration::from_secs(2)), "{request:?}");
    }
    // A good port still works, and only it reached the backend.
    let mut client = limpet.client();
    assert_eq!(client.get_host("/ok", "a.example:65535", "").status, 200);
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, "/ok");
}

#[test]
fn informational_responses_lose_framing_and_hop_by_hop_fields() {
    let backend = Backend::spawn(move |mut conn| {
        while conn.read_request().is_some() {
            let answer = b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n\
                HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nContent-Length: 7\r\nX-Hop: 2\r\nKeep-Alive: timeout=5\r\nConnection: X-Hop\r\n\r\n\
                HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if conn.stream.write_all(answer).is_err() {
                return;
            }
        }
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let mut client = limpet.client();
    client.send(b"GET /hints HTTP/1.1\r\nHost: t\r\n\r\n");
    let continued = client.read_response(false).unwrap();
    assert_eq!(continued.status, 100);
    let early = client.read_response(false).unwrap();
    assert_eq!(early.status, 103);
    for interim in [&continued, &early] {
        for name in [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "x-hop",
        ] {
            assert_eq!(interim.header(name), None, "{name} in {}", interim.head);
        }
    }
    assert_eq!(
        early.header("link"),
        Some("</style.css>; rel=preload; as=style")
    );
    let last = client.read_response(false).unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(last.body_text(), "ok");
    // The connection is still in step: a second exchange works.
    client.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().status, 100);
    assert_eq!(client.read_response(false).unwrap().status, 103);
    assert_eq!(client.read_response(false).unwrap().body_text(), "ok");
}
