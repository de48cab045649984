//! HTTP/2 to clients end to end (issue 16): h2c with prior knowledge on a
//! plain listener beside HTTP/1.1, each stream a request like any other
//! (routing, persistence, the backend's HTTP/1.1 head), bodies and trailers
//! both ways, and GOAWAY on shutdown. The client is the `h2` crate's; the
//! backends are the plain HTTP/1.1 threads of tests/common.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::h2client::{self, Options, Req};
use common::*;

/// One backend answering `<name> <target>` behind a fresh limpet.
fn single() -> (Limpet, Log, Backend) {
    let log = log();
    let backend = Backend::named("s0", log.clone());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    (limpet, log, backend)
}

#[test]
fn h2c_with_prior_knowledge_and_http1_on_the_same_port() {
    let (limpet, log, _backend) = single();
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let response = h2client::request(&mut send, Req::get("/a?b=1"))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), "s0 /a?b=1");
        assert_eq!(response.header("content-length"), Some("9"));
        assert!(response.header("connection").is_none());
        // Several streams on the one connection, at once.
        let pending: Vec<_> = (0..5)
            .map(|i| {
                let mut send = send.clone();
                tokio::spawn(async move {
                    h2client::request(&mut send, Req::get(&format!("/n{i}")))
                        .await
                        .unwrap()
                })
            })
            .collect();
        for (i, task) in pending.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().body_text(), format!("s0 /n{i}"));
        }
    });
    let received = log.lock().unwrap()[0].clone();
    assert_eq!(received.version, "HTTP/1.1");
    assert_eq!(received.header("host"), Some("example.com"));
    assert_eq!(received.header("x-forwarded-host"), Some("example.com"));
    assert_eq!(received.header("x-forwarded-proto"), Some("http"));
    assert_eq!(received.header("x-forwarded-for"), Some("127.0.0.1"));
    // HTTP/1.1 on the same port sees no difference.
    let response = limpet.client().get("/h1");
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "s0 /h1");
}

#[test]
fn http2_off_leaves_the_preface_a_400() {
    let backend = Backend::named("s0", log());
    let toml = config_for(&[backend.addr], "").replace(
        "default_group = \"web\"\n",
        "default_group = \"web\"\nhttp2 = false\n",
    );
    let limpet = Limpet::start(&toml);
    let mut client = limpet.client();
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 400);
}

#[test]
fn a_preface_arriving_a_byte_at_a_time_is_still_http2() {
    let (limpet, _log, _backend) = single();
    let addr = limpet.addr;
    h2client::run(async move {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r" {
            tcp.write_all(&[*b]).unwrap();
            thread::sleep(Duration::from_millis(2));
        }
        // The last preface byte, then an empty SETTINGS frame.
        tcp.write_all(b"\n\0\0\0\x04\0\0\0\0\0").unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut head = [0u8; 9];
        std::io::Read::read_exact(&mut tcp, &mut head).unwrap();
        assert_eq!(head[3], 0x4, "limpet's SETTINGS frame comes first");
    });
}

/// Two servers, insert-mode persistence: the streams of one connection
/// follow each stream's own cookie.
#[test]
fn persistence_per_stream_across_one_connection() {
    let logs = [log(), log()];
    let backends = [
        Backend::named("s0", logs[0].clone()),
        Backend::named("s1", logs[1].clone()),
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let limpet = Limpet::start(&insert_config(&addrs, ""));
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let first = h2client::request(&mut send, Req::get("/")).await.unwrap();
        let server = first.body_text()[..2].to_string();
        let cookies = first.set_cookies();
        let ours = cookies.iter().find(|c| c.starts_with("SERVERID="));
        let pair = ours
            .expect("the persistence cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        for i in 0..6 {
            // The cookie among other crumbs, as HTTP/2 clients split them.
            let response = h2client::request(
                &mut send,
                Req::get(&format!("/again{i}"))
                    .header("cookie", "theme=dark")
                    .header("cookie", &pair),
            )
            .await
            .unwrap();
            assert_eq!(&response.body_text()[..2], server, "stream {i}");
            assert!(response.set_cookies().is_empty(), "no new cookie");
        }
        // The other server's cookie, on the same connection, goes there.
        let other = if server == "s0" { 1 } else { 0 };
        let other_pair = pair.replace(&token("web", 2, 1 - other), &token("web", 2, other));
        assert_ne!(other_pair, pair);
        let response =
            h2client::request(&mut send, Req::get("/other").header("cookie", &other_pair))
                .await
                .unwrap();
        assert_eq!(response.body_text(), format!("s{other} /other"));
    });
    // The crumbs reached the backend as one Cookie field, without the
    // persistence cookie.
    let all: Vec<_> = logs
        .iter()
        .flat_map(|l| l.lock().unwrap().clone())
        .collect();
    let again = all.iter().find(|r| r.target == "/again0").unwrap();
    assert_eq!(again.headers_named("cookie"), ["theme=dark"]);
}

#[test]
fn cookie_crumbs_are_joined_into_one_field() {
    let (limpet, log, _backend) = single();
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let req = Req::get("/c")
            .header("cookie", "a=1")
            .header("x-other", "y")
            .header("cookie", "b=2")
            .header("cookie", "c=3");
        assert_eq!(h2client::request(&mut send, req).await.unwrap().status, 200);
    });
    let received = log.lock().unwrap()[0].clone();
    assert_eq!(received.headers_named("cookie"), ["a=1; b=2; c=3"]);
    assert_eq!(received.header("x-other"), Some("y"));
}

#[test]
fn every_set_cookie_goes_out_as_its_own_field_and_connection_fields_do_not() {
    let backend = Backend::respond(|_| {
        Some(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nConnection: x-secret\r\nX-Secret: 1\r\n\
              Keep-Alive: timeout=5\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3; HttpOnly\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let response = h2client::request(&mut send, Req::get("/")).await.unwrap();
        assert_eq!(
            response.set_cookies(),
            ["a=1; Path=/", "b=2", "c=3; HttpOnly"]
        );
        assert!(response.header("x-secret").is_none());
        assert!(response.header("keep-alive").is_none());
        assert_eq!(response.body_text(), "ok");
    });
}

/// A backend answering with the size and a digest of what it received,
/// and the request's framing.
fn echo_backend(log: Log) -> Backend {
    Backend::respond(move |req| {
        log.lock().unwrap().push(req.clone());
        let sum: u64 = req.body.iter().map(|&b| u64::from(b)).sum();
        Some(ok(&format!("{} {sum}", req.body.len())))
    })
}

fn mib() -> Vec<u8> {
    (0..1 << 20).map(|i: u32| (i % 251) as u8).collect()
}

#[test]
fn a_mebibyte_upload_with_and_without_content_length() {
    let log = log();
    let backend = echo_backend(log.clone());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    let body = mib();
    let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let with_length = Req {
            method: "POST",
            body: Some(body.clone()),
            chunk: 10_000,
            ..Req::get("/up")
        }
        .header("content-length", &body.len().to_string());
        let response = h2client::request(&mut send, with_length).await.unwrap();
        assert_eq!(response.body_text(), format!("{} {sum}", 1 << 20));
        let without = Req {
            method: "POST",
            body: Some(body.clone()),
            chunk: 16_384,
            ..Req::get("/up2")
        };
        let response = h2client::request(&mut send, without).await.unwrap();
        assert_eq!(response.body_text(), format!("{} {sum}", 1 << 20));
    });
    let received = log.lock().unwrap().clone();
    assert_eq!(received[0].header("content-length"), Some("1048576"));
    assert!(received[0].header("transfer-encoding").is_none());
    assert_eq!(received[1].header("transfer-encoding"), Some("chunked"));
    assert!(received[1].header("content-length").is_none());
}

/// A GET or HEAD carries no body to the backend (a backend that skips it
/// would read it as the next request): an empty DATA frame ending the
/// stream is served, DATA with bytes is refused before any reaches it.
#[test]
fn a_get_with_data_is_refused_and_no_byte_of_it_is_forwarded() {
    let log = log();
    let backend = echo_backend(log.clone());
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let empty = Req {
            body: Some(Vec::new()),
            ..Req::get("/empty")
        };
        let response = h2client::request(&mut send, empty).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), "0 0");
        let smuggling = Req {
            body: Some(b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec()),
            ..Req::get("/with-data")
        };
        // A 400, or the stream reset; never the backend's answer.
        if let Ok(response) = h2client::request(&mut send, smuggling).await {
            assert_eq!(response.status, 400, "{}", response.body_text());
        }
    });
    let received = log.lock().unwrap().clone();
    assert_eq!(received[0].header("content-length"), Some("0"));
    assert!(received[0].header("transfer-encoding").is_none());
    assert!(received.iter().all(|r| r.body.is_empty()), "{received:?}");
    assert!(
        received.iter().all(|r| r.target != "/smuggled"),
        "{received:?}"
    );
}

#[test]
fn a_large_download_through_a_small_client_window() {
    let body = Arc::new(mib());
    let (chunked_body, length_body) = (body.clone(), body.clone());
    let backend = Backend::respond(move |req| {
        let mut out = Vec::new();
        if req.target == "/chunked" {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for piece in chunked_body.chunks(7_000) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    length_body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&length_body);
        }
        Some(out)
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options { window: 1024 }).await;
        for path in ["/length", "/chunked"] {
            let response = h2client::request(&mut send, Req::get(path)).await.unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(response.body.len(), body.len(), "{path}");
            assert!(response.body == *body, "{path}: the bytes arrive intact");
        }
    });
}

#[test]
fn trailers_both_ways() {
    let log = log();
    let seen = log.clone();
    let backend = Backend::respond(move |req| {
        seen.lock().unwrap().push(req.clone());
        Some(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
              5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n"
                .to_vec(),
        )
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let req = Req {
            method: "POST",
            body: Some(b"payload".to_vec()),
            trailers: vec![("x-client-sum".into(), "42".into())],
            ..Req::get("/t")
        };
        let response = h2client::request(&mut send, req).await.unwrap();
        assert_eq!(response.body_text(), "hello");
        let trailers = response
            .trailers
            .expect("trailers as a trailing HEADERS frame");
        assert_eq!(trailers.get("x-checksum").unwrap(), "abc123");
    });
    let received = log.lock().unwrap()[0].clone();
    assert_eq!(received.body, b"payload");
    let raw = String::from_utf8_lossy(&received.raw).to_string();
    assert!(
        raw.ends_with("0\r\nx-client-sum: 42\r\n\r\n"),
        "the client's trailers as chunked trailers: {raw:?}"
    );
}

#[test]
fn goaway_on_shutdown_lets_the_stream_in_flight_complete() {
    let started = Arc::new(Mutex::new(false));
    let flag = started.clone();
    let backend = Backend::respond(move |req| {
        if req.target == "/slow" {
            *flag.lock().unwrap() = true;
            thread::sleep(Duration::from_millis(700));
        }
        Some(ok("done"))
    });
    let mut limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    let running = limpet.running.take().unwrap();
    let running = Arc::new(Mutex::new(Some(running)));
    h2client::run(async move {
        let (mut send, conn) = h2client::connect(addr, Options::default()).await;
        let mut slow = h2client::start(&mut send, &Req::get("/slow"))
            .await
            .unwrap();
        // The runtime's one thread also runs the client connection: wait
        // without blocking it.
        for _ in 0..500 {
            if *started.lock().unwrap() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            *started.lock().unwrap(),
            "the slow request reached the backend"
        );
        let stopper = running.clone();
        let stopping = thread::spawn(move || stopper.lock().unwrap().take().unwrap().stop());
        let response = h2client::read(&mut slow).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), "done");
        // GOAWAY came: the connection ends cleanly, and no new stream starts.
        let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert!(h2client::request(&mut send, Req::get("/late"))
            .await
            .is_err());
        stopping.join().unwrap();
    });
}

/// h2load's way (`-c 10 -m 10`): 100 streams in flight at once, all to one
/// server. Each worker keeps up to `pool_max_idle_per_server` idle backend
/// connections (default 1024); a cap below the streams in flight closed
/// connections that the next round opened again (with 64, every tenth
/// request opened one). Later rounds open no connection the earlier ones
/// did not.
#[test]
fn many_streams_in_flight_reuse_their_backend_connections() {
    let backend = Backend::respond(|req| {
        // Slow enough that the hundred streams of a round overlap.
        thread::sleep(Duration::from_millis(30));
        Some(ok(&format!("s0 {}", req.target)))
    });
    let limpet = Limpet::start(&config_for(&[backend.addr], ""));
    let addr = limpet.addr;
    let mut after_round = Vec::new();
    h2client::run(async {
        let mut connections = Vec::new();
        for _ in 0..10 {
            connections.push(h2client::connect(addr, Options::default()).await.0);
        }
        for round in 0..5 {
            let streams: Vec<_> = connections
                .iter()
                .flat_map(|send| (0..10).map(move |s| (send.clone(), s)))
                .map(|(mut send, s)| {
                    tokio::spawn(async move {
                        let path = format!("/r{round}/s{s}");
                        let response = h2client::request(&mut send, Req::get(&path)).await;
                        response.unwrap().body_text()
                    })
                })
                .collect();
            for stream in streams {
                assert!(stream.await.unwrap().starts_with(&format!("s0 /r{round}/")));
            }
            after_round.push(backend.connection_count());
        }
    });
    // The first rounds open what the streams in flight need (at most one
    // connection per stream); after that nothing new is opened.
    assert!(after_round.iter().all(|&n| n <= 100), "{after_round:?}");
    assert_eq!(
        after_round[2..],
        [after_round[1]; 3],
        "backend connections opened by the end of each round: {after_round:?}"
    );
}
