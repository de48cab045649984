//! HTTP/2 over TLS, chosen by ALPN (issue 16): an HTTPS listener offers
//! `h2, http/1.1`; a client that picks `h2` gets HTTP/2 from the first
//! byte after its handshake, one that offers only `http/1.1` (or nothing)
//! sees no difference, and `http2 = false` offers `http/1.1` alone. The
//! client is the `h2` crate's over tokio-rustls (tests only); certificates
//! come from rcgen at test time.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;

use common::h2client::{self, Options, Req};
use common::tls::*;
use common::*;

const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

fn get(path: &str, authority: &str) -> Req {
    Req {
        scheme: "https",
        authority: Some(authority.into()),
        ..Req::get(path)
    }
}

#[test]
fn h2_by_alpn_serves_streams_and_http1_clients_see_no_difference() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let log = log();
    let backend = Backend::named("s0", log.clone());
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    let (addr, client) = (limpet.addr, pki.client(BOTH));
    h2client::run(async move {
        let (chosen, conn) =
            h2client::connect_tls(addr, "a.test", client, &[H2, HTTP1], Options::default()).await;
        assert_eq!(chosen.as_deref(), Some(H2), "limpet prefers h2");
        let (mut send, _conn) = conn.unwrap();
        let response = h2client::request(&mut send, get("/a?b=1", "a.test"))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), "s0 /a?b=1");
        // Streams at once on the one TLS connection.
        let pending: Vec<_> = (0..8)
            .map(|i| {
                let mut send = send.clone();
                tokio::spawn(async move {
                    h2client::request(&mut send, get(&format!("/n{i}"), "a.test"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        for (i, task) in pending.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().body_text(), format!("s0 /n{i}"));
        }
    });
    {
        let received = log.lock().unwrap();
        assert_eq!(received.len(), 9);
        assert_eq!(received[0].version, "HTTP/1.1");
        assert_eq!(received[0].header("host"), Some("a.test"));
        assert_eq!(received[0].header("x-forwarded-proto"), Some("https"));
    }
    // HTTP/1.1 by ALPN, and no ALPN at all, on the same port.
    let mut http1 = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
    assert_eq!(http1.tls().alpn_protocol(), Some(HTTP1));
    assert_eq!(http1.get_host("/h1", "a.test", "").body_text(), "s0 /h1");
    let mut bare = (*pki.client(BOTH)).clone();
    bare.alpn_protocols.clear();
    let mut none = Tls::open(limpet.addr, Some("a.test"), std::sync::Arc::new(bare));
    assert_eq!(none.tls().alpn_protocol(), None);
    assert_eq!(none.get_host("/none", "a.test", "").body_text(), "s0 /none");
}

#[test]
fn http2_off_offers_only_http1_in_alpn() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::named("s0", log());
    let config = https_config(&[backend.addr], &[&leaf], "", "").replacen(
        "default_group = \"web\"\n",
        "default_group = \"web\"\nhttp2 = false\n",
        1,
    );
    let limpet = Limpet::start(&config);
    let (addr, client) = (limpet.addr, pki.client(BOTH));
    h2client::run(async move {
        let (chosen, conn) =
            h2client::connect_tls(addr, "a.test", client, &[H2, HTTP1], Options::default()).await;
        assert_eq!(chosen.as_deref(), Some(HTTP1));
        assert!(conn.is_none());
    });
}

/// Sticky over h2 on TLS: cookies are `Secure`, and a stream with one
/// server's cookie lands there whichever stream came before it.
#[test]
fn persistence_over_h2_on_tls_gets_secure_cookies() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backends = [Backend::named("s0", log()), Backend::named("s1", log())];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let group = "balance = \"round_robin\"\n[groups.web.persistence]\nmode = \"insert\"\ntoken_secret = \"0123456789abcdef0123\"\n";
    let limpet = Limpet::start(&https_config(&addrs, &[&leaf], group, ""));
    let (addr, client) = (limpet.addr, pki.client(BOTH));
    h2client::run(async move {
        let (_, conn) =
            h2client::connect_tls(addr, "a.test", client, &[H2], Options::default()).await;
        let (mut send, _conn) = conn.unwrap();
        let first = h2client::request(&mut send, get("/", "a.test"))
            .await
            .unwrap();
        let server = first.body_text()[..2].to_string();
        let cookies = first.set_cookies();
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        assert!(
            cookies.iter().all(|c| c.contains("; Secure")),
            "{cookies:?}"
        );
        let pair = cookies[0].split(';').next().unwrap().to_owned();
        for _ in 0..6 {
            let again = h2client::request(&mut send, get("/", "a.test").header("cookie", &pair))
                .await
                .unwrap();
            assert_eq!(&again.body_text()[..2], server, "stuck to {server}");
            assert!(again.set_cookies().is_empty());
        }
    });
}

/// The SNI rule per stream: a stream whose `:authority` routes elsewhere
/// than the handshake's name gets 421; the connection's others go on.
#[test]
fn a_misdirected_stream_gets_421_and_the_connection_goes_on() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test", "b.test"]);
    let web = Backend::named("web", log());
    let api = Backend::named("api", log());
    let config = https_config(&[web.addr], &[&leaf], "", "");
    let (listener, groups) = config.split_once("[groups.web]").unwrap();
    let config = format!(
        "{listener}[[listeners.routes]]\nhost = \"a.test\"\ngroup = \"api\"\n\n[groups.web]{groups}\n\
         [[groups.api.servers]]\nname = \"api\"\naddress = \"{}\"\n",
        api.addr
    );
    let limpet = Limpet::start(&config);
    let (addr, client) = (limpet.addr, pki.client(BOTH));
    h2client::run(async move {
        let (_, conn) =
            h2client::connect_tls(addr, "b.test", client, &[H2], Options::default()).await;
        let (mut send, _conn) = conn.unwrap();
        let wrong = h2client::request(&mut send, get("/", "a.test"))
            .await
            .unwrap();
        assert_eq!(
            wrong.status, 421,
            "SNI b.test routes to web, :authority a.test to api"
        );
        let right = h2client::request(&mut send, get("/", "b.test"))
            .await
            .unwrap();
        assert_eq!(right.body_text(), "web /");
    });
}

/// A mebibyte both ways through TLS records and a small client window:
/// the poll-based TLS writer waits for the socket and loses nothing.
#[test]
fn a_mebibyte_both_ways_over_h2_on_tls() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let body = big.clone();
    let backend = Backend::respond(move |request| {
        if request.target == "/down" {
            {
                let mut answer =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                        .into_bytes();
                answer.extend_from_slice(&body);
                Some(answer)
            }
        } else {
            Some(ok(&format!("got {}", request.body.len())))
        }
    });
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    let (addr, client) = (limpet.addr, pki.client(BOTH));
    h2client::run(async move {
        let (_, conn) =
            h2client::connect_tls(addr, "a.test", client, &[H2], Options { window: 4096 }).await;
        let (mut send, _conn) = conn.unwrap();
        let down = h2client::request(&mut send, get("/down", "a.test"))
            .await
            .unwrap();
        assert_eq!(down.status, 200);
        assert!(down.body == big, "the download arrived whole and in order");
        let up = Req {
            method: "POST",
            body: Some(big.clone()),
            ..get("/up", "a.test")
        };
        let answer = h2client::request(&mut send, up).await.unwrap();
        assert_eq!(answer.body_text(), "got 1048576");
    });
}

/// Shutdown over TLS: GOAWAY, the stream in flight completes, and the
/// connection ends cleanly through `TlsPoll`'s shutdown (`close_notify`).
#[test]
fn goaway_on_shutdown_over_tls_lets_the_stream_in_flight_complete() {
    use std::sync::{Arc, Mutex};
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let started = Arc::new(Mutex::new(false));
    let flag = started.clone();
    let backend = Backend::respond(move |req| {
        if req.target == "/slow" {
            *flag.lock().unwrap() = true;
            std::thread::sleep(std::time::Duration::from_millis(700));
        }
        Some(ok("done"))
    });
    let mut limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    let (addr, client) = (limpet.addr, pki.client(BOTH));
    let running = Arc::new(Mutex::new(limpet.running.take()));
    h2client::run(async move {
        let (_, conn) =
            h2client::connect_tls(addr, "a.test", client, &[H2], Options::default()).await;
        let (mut send, conn) = conn.unwrap();
        let mut slow = h2client::start(&mut send, &get("/slow", "a.test"))
            .await
            .unwrap();
        for _ in 0..500 {
            if *started.lock().unwrap() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            *started.lock().unwrap(),
            "the slow request reached the backend"
        );
        let stopper = running.clone();
        let stopping = std::thread::spawn(move || stopper.lock().unwrap().take().unwrap().stop());
        let response = h2client::read(&mut slow).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), "done");
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        assert!(h2client::request(&mut send, get("/late", "a.test"))
            .await
            .is_err());
        stopping.join().unwrap();
    });
}
