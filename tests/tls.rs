//! HTTPS listeners and TLS to backends, end to end: certificates generated
//! at test time with rcgen, limpet in-process, real rustls clients and
//! backends over 127.0.0.1 sockets.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::Process;
use common::tls::*;
use common::*;

fn recording_backend(name: &'static str) -> (Backend, Log) {
    let log = log();
    (Backend::named(name, log.clone()), log)
}

#[test]
fn https_with_tls12_and_tls13_forwards_with_x_forwarded_proto() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let (backend, log) = recording_backend("s0");
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    for (versions, expected) in [
        (TLS12, rustls::ProtocolVersion::TLSv1_2),
        (TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(versions));
        assert_eq!(client.version(), expected);
        assert_eq!(client.tls().alpn_protocol(), Some(&b"http/1.1"[..]));
        for i in 0..3 {
            let answer = client.get_host(&format!("/{i}"), "a.test", "");
            assert_eq!(answer.status, 200);
            assert_eq!(
                answer.body_text(),
                format!("s0 /{i}"),
                "keep-alive over TLS"
            );
        }
        // A body larger than a TLS record, both ways.
        let body = "x".repeat(70_000);
        client.send(
            format!(
                "POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(client.read_response(false).unwrap().status, 200);
    }
    let received = log.lock().unwrap();
    assert_eq!(received.len(), 8);
    for request in received.iter() {
        assert_eq!(request.header("x-forwarded-proto"), Some("https"));
    }
    assert_eq!(received[7].body.len(), 70_000);
    let reports = limpet.running().reports();
    assert_eq!(reports.iter().map(|r| r.tls_handshakes).sum::<u64>(), 2);
}

#[test]
fn sni_picks_the_certificate_and_the_first_is_the_default() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["*.b.test", "b.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&a, &b], "", ""));
    let client = pki.client(BOTH);
    let cert_for = |sni: Option<&str>| Tls::open(limpet.addr, sni, client.clone()).peer_cert();
    assert_eq!(cert_for(Some("a.test")), a.der);
    assert_eq!(cert_for(Some("b.test")), b.der);
    assert_eq!(cert_for(Some("www.B.test")), b.der, "wildcard, any case");
    // An unknown name gets the default certificate, which the client
    // then refuses; no SNI at all (an IP address) gets it too.
    let unknown = Tls::try_open(limpet.addr, Some("c.test"), client.clone());
    assert!(
        unknown.is_err(),
        "the default certificate does not name c.test"
    );
    let mut no_verify = (*client).clone();
    no_verify
        .dangerous()
        .set_certificate_verifier(Arc::new(AcceptAnything(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))));
    let no_verify = Arc::new(no_verify);
    assert_eq!(
        Tls::open(limpet.addr, None, no_verify.clone()).peer_cert(),
        a.der
    );
    assert_eq!(
        Tls::open(limpet.addr, Some("c.test"), no_verify).peer_cert(),
        a.der
    );
}

#[test]
fn sticky_sessions_over_https_get_secure_cookies() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let (b0, _) = recording_backend("s0");
    let (b1, _) = recording_backend("s1");
    let group = "balance = \"round_robin\"\n[groups.web.persistence]\nmode = \"insert\"\ntoken_secret = \"0123456789abcdef0123\"\n";
    let limpet = Limpet::start(&https_config(&[b0.addr, b1.addr], &[&leaf], group, ""));
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
    let first = client.get_host("/", "a.test", "");
    let cookies = first.set_cookies();
    assert_eq!(cookies.len(), 2, "both cookies: {cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    let server = first.body_text().split(' ').next().unwrap().to_owned();
    let pair: Vec<&str> = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect();
    let jar = format!("Cookie: {}\r\n", pair.join("; "));
    for i in 0..6 {
        // A new connection each time: the cookie alone keeps the server.
        let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
        let answer = client.get_host(&format!("/{i}"), "a.test", &jar);
        assert_eq!(answer.body_text().split(' ').next(), Some(server.as_str()));
        assert!(answer.set_cookies().is_empty());
    }
    // Only the CORS twin once `secure = false` is written.
    let written = format!("{group}secure = false\n");
    let limpet = Limpet::start(&https_config(&[b0.addr, b1.addr], &[&leaf], &written, ""));
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
    let cookies = client.get_host("/", "a.test", "").set_cookies().join("\n");
    assert_eq!(cookies.matches("; Secure").count(), 1, "{cookies}");
}

#[test]
fn a_rewrite_cookie_reissued_over_https_is_secure() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let (up, _) = recording_backend("s1");
    // s0 refuses connections: its session fails over to s1, and limpet
    // re-issues the application's cookie itself (SPEC §4).
    let group = "balance = \"round_robin\"\n[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"APP\"\npath = \"/\"\n";
    let limpet = Limpet::start(&https_config(
        &[common::dead_address(), up.addr],
        &[&leaf],
        group,
        "",
    ));
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
    let moved = client.get_host(
        "/",
        "a.test",
        &format!("Cookie: APP={}.v1\r\n", token("web", 2, 0)),
    );
    assert_eq!(moved.status, 200);
    assert_eq!(
        moved.set_cookies(),
        [format!(
            "APP={}.v1; Path=/; HttpOnly; Secure",
            token("web", 2, 1)
        )]
    );
}

#[test]
fn plain_http_and_garbage_on_an_https_port_are_closed_and_counted() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", admin));
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..],
        &[0xff; 3000][..],
    ] {
        let mut tcp = TcpStream::connect(limpet.addr).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.write_all(garbage).unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer);
        assert!(
            find(&answer, b"HTTP/1.1").is_none(),
            "no HTTP answer on an HTTPS port"
        );
    }
    let failures = || -> u64 {
        limpet
            .running()
            .reports()
            .iter()
            .map(|r| r.tls_handshake_failures)
            .sum()
    };
    assert!(
        eventually(Duration::from_secs(2), || failures() == 3),
        "{}",
        failures()
    );
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
    assert_eq!(
        client.get_host("/", "a.test", "").status,
        200,
        "still serving"
    );
    let metrics = limpet.admin("GET", "/metrics", "", None).body_text();
    assert!(
        metrics.contains("limpet_tls_handshakes_total{worker=\"0\",outcome=\"failed\"} 3"),
        "{metrics}"
    );
    let stats = limpet.admin("GET", "/stats", "", None).body_text();
    assert!(stats.contains("\"tls_handshake_failures\": 3"), "{stats}");
}

#[test]
fn a_silent_client_is_closed_at_the_handshake_timeout() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let config = https_config(&[backend.addr], &[&leaf], "", "").replace(
        "tls = { certs = [",
        "tls = { handshake_timeout = \"300ms\", certs = [",
    );
    let limpet = Limpet::start(&config);
    let mut tcp = TcpStream::connect(limpet.addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(tcp.read(&mut buf).unwrap_or(0), 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn a_session_ticket_from_one_worker_resumes_on_another() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let config = https_config(&[backend.addr], &[&leaf], "", "").replace("count = 1", "count = 2");
    let limpet = Limpet::start(&config);
    let landed = |before: &[u64]| -> usize {
        let after = limpet.per_worker(|r| r.accepted);
        after
            .iter()
            .zip(before)
            .position(|(a, b)| a > b)
            .expect("a worker accepted it")
    };
    for versions in [TLS13, TLS12] {
        let mut crossed = false;
        for _ in 0..64 {
            // A fresh client cache: its one ticket comes from `first`.
            let client = pki.client(versions);
            let before = limpet.per_worker(|r| r.accepted);
            let mut issuer = Tls::open(limpet.addr, Some("a.test"), client.clone());
            assert_eq!(issuer.get_host("/", "a.test", "").status, 200);
            let first = landed(&before);
            drop(issuer);
            let before = limpet.per_worker(|r| r.accepted);
            let resumed_before: Vec<u64> = limpet.per_worker(|r| r.tls_resumed);
            let mut again = Tls::open(limpet.addr, Some("a.test"), client);
            assert_eq!(again.get_host("/", "a.test", "").status, 200);
            let second = landed(&before);
            assert!(
                again.resumed(),
                "every second connection resumes ({versions:?})"
            );
            assert_eq!(
                limpet.per_worker(|r| r.tls_resumed)[second],
                resumed_before[second] + 1,
                "the worker it landed on counts a resumed handshake"
            );
            if first != second {
                crossed = true;
                break;
            }
        }
        assert!(crossed, "no pair of connections landed on two workers");
    }
}

#[test]
fn misdirected_requests_get_421_only_when_routing_differs() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test", "b.test", "c.test", "d.test"]);
    let (web, _) = recording_backend("web");
    let (api, _) = recording_backend("api");
    let extra = format!(
        "[[listeners.routes]]\nhost = \"a.test\"\ngroup = \"api\"\n\n[[groups.api.servers]]\nname = \"api\"\naddress = \"{}\"\n",
        api.addr
    );
    let config = https_config(&[web.addr], &[&leaf], "", "");
    // The route belongs to the listener: put it right after the tls line.
    let (listener, groups) = config.split_once("[groups.web]").unwrap();
    let (route, api_group) = extra.split_once("\n\n").unwrap();
    let config = format!("{listener}{route}\n\n[groups.web]{groups}\n{api_group}");
    let limpet = Limpet::start(&config);
    let client = pki.client(BOTH);
    let mut b = Tls::open(limpet.addr, Some("b.test"), client.clone());
    let answer = b.get_host("/", "a.test", "");
    assert_eq!(
        answer.status, 421,
        "SNI b.test routes to web, Host a.test to api"
    );
    let mut a = Tls::open(limpet.addr, Some("a.test"), client.clone());
    assert_eq!(a.get_host("/", "A.test:443", "").body_text(), "api /");
    let mut c = Tls::open(limpet.addr, Some("c.test"), client);
    let answer = c.get_host("/", "d.test", "");
    assert_eq!(
        answer.body_text(),
        "web /",
        "both names route to web: served"
    );
}

#[test]
fn a_reload_swaps_certificates_and_keeps_open_connections_and_tickets() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    // Relative paths: resolved against the configuration file's directory.
    let config_path = pki.write_config(&[backend.addr], &leaf);
    let config = limpet::config::load(&config_path).unwrap();
    let limpet = Limpet::from_running(limpet::server::start(config).unwrap());
    let client = pki.client(TLS13);
    let mut open = Tls::open(limpet.addr, Some("a.test"), client.clone());
    assert_eq!(open.get_host("/", "a.test", "").status, 200);
    assert_eq!(open.peer_cert(), leaf.der);

    let renewed = pki.leaf("a", &["a.test"]);
    assert_ne!(renewed.der, leaf.der);
    let generation = limpet
        .running()
        .reload(limpet::config::load(&config_path).unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));

    assert_eq!(
        open.get_host("/again", "a.test", "").status,
        200,
        "the open connection goes on"
    );
    // The ticket issued before the reload still resumes.
    let mut resumed = Tls::open(limpet.addr, Some("a.test"), client);
    assert!(resumed.resumed());
    assert_eq!(resumed.get_host("/", "a.test", "").status, 200);
    let fresh = Tls::open(limpet.addr, Some("a.test"), pki.client(TLS13));
    assert_eq!(
        fresh.peer_cert(),
        renewed.der,
        "new handshakes get the new certificate"
    );
}

#[test]
fn a_reload_adds_an_https_listener_and_turns_tls_on_for_a_kept_one() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let plain = config_with(&[backend.addr], "", "");
    let limpet = Limpet::start(&plain);
    let kept = limpet.addr;
    assert_eq!(common::Client::connect(kept).get("/").status, 200);

    // The kept listener (same address) gets TLS; a second one is added.
    let kept_https =
        https_config(&[backend.addr], &[&leaf], "", "").replace("127.0.0.1:0", &kept.to_string());
    let https = with_listener(&kept_https, "added", "127.0.0.1:0") + &tls_keys(&[&leaf], "");
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&https, "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    let listeners = limpet.running().listeners();
    assert_eq!(listeners[0].1, kept, "the first listener kept its address");
    let added = listeners[1].1;
    for addr in [kept, added] {
        let mut tls = Tls::open(addr, Some("a.test"), pki.client(TLS13));
        assert_eq!(tls.peer_cert(), leaf.der);
        assert_eq!(tls.get_host("/", "a.test", "").status, 200, "{addr}");
    }
}

#[test]
fn tls_to_backends_verifies_against_the_ca_and_sends_the_sni_name() {
    let pki = Pki::new();
    let (addr, names) = tls_backend(&pki, &["api.internal"]);
    let ca = pki.path("ca.pem");
    let group = format!("[groups.web.tls]\nca = {ca:?}\nsni = \"api.internal\"\n");
    let limpet = Limpet::start(&config_with(&[addr], "", &group));
    let mut client = limpet.client();
    for i in 0..3 {
        let answer = client.get(&format!("/{i}"));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body_text(), format!("tls /{i}"));
    }
    assert_eq!(names.lock().unwrap().len(), 3);
    assert!(names
        .lock()
        .unwrap()
        .iter()
        .all(|n| n.as_deref() == Some("api.internal")));

    // A name the backend's certificate does not carry: no connection, 502.
    let group = format!("[groups.web.tls]\nca = {ca:?}\nsni = \"other.internal\"\n");
    let limpet = Limpet::start(&config_with(&[addr], "", &group));
    assert_eq!(limpet.client().get("/").status, 502);
    // Another CA: refused too.
    let other = Pki::new();
    let other_ca = other.path("ca.pem");
    let group = format!("[groups.web.tls]\nca = {other_ca:?}\nsni = \"api.internal\"\n");
    let limpet = Limpet::start(&config_with(&[addr], "", &group));
    assert_eq!(limpet.client().get("/").status, 502);
}

/// The error text limpet gives for `config` (parsed as `test.toml`).
fn config_error(config: &str) -> String {
    limpet::config::parse(config, "test.toml")
        .expect_err("the configuration is refused")
        .to_string()
}

#[test]
fn bad_certificate_files_are_clear_config_errors() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let backend = "127.0.0.1:9";
    let with = |cert: &Path, key: &Path| {
        let leaf = Leaf {
            cert: cert.to_owned(),
            key: key.to_owned(),
            der: a.der.clone(),
        };
        https_config(&[backend.parse().unwrap()], &[&leaf], "", "")
    };
    let at = "test.toml:8: listeners[0].tls.certs[0]";

    let missing = pki.path("missing.pem");
    let err = config_error(&with(&missing, &a.key));
    assert!(
        err.starts_with(&format!("{at}.cert {}: cannot be read", missing.display())),
        "{err}"
    );

    let err = config_error(&with(pki.dir.path(), &a.key));
    assert!(
        err.starts_with(&format!("{at}.cert ")) && err.contains("cannot be read"),
        "{err}"
    );

    let err = config_error(&with(&a.key, &a.key));
    assert_eq!(
        err,
        format!("{at}.cert {}: no CERTIFICATE in the file", a.key.display())
    );

    let err = config_error(&with(&a.cert, &a.cert));
    assert_eq!(
        err,
        format!("{at}.key {}: no PRIVATE KEY in the file", a.cert.display())
    );

    let err = config_error(&with(&a.cert, &b.key));
    assert_eq!(
        err,
        format!(
            "{at}.key {} does not match the certificate in {}",
            b.key.display(),
            a.cert.display()
        )
    );

    let old = pki.leaf_until("old", &["a.test"], 2020);
    let err = config_error(&with(&old.cert, &old.key));
    assert!(
        err.starts_with(&format!(
            "{at}.cert {}: the certificate expired on Wed, 01 Jan 2020",
            old.cert.display()
        )),
        "{err}"
    );

    let err = config_error(&config_with(
        &[backend],
        "",
        &format!("[groups.web.tls]\nca = {:?}\n", a.key),
    ));
    assert!(
        err.contains("groups.web.tls.ca") && err.contains("no CERTIFICATE"),
        "{err}"
    );

    let err = config_error(&https_config(&[backend.parse().unwrap()], &[], "", ""));
    assert!(
        err.contains("listeners[0].tls.certs must list at least one"),
        "{err}"
    );
}

#[test]
fn an_upgrade_over_https_is_tunnelled_both_ways() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::spawn(move |mut conn| {
        let request = conn.read_request().unwrap();
        assert_eq!(request.header("x-forwarded-proto"), Some("https"));
        conn.stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
            .unwrap();
        for _ in 0..3 {
            let ping = conn.read_exact(5).unwrap();
            conn.stream
                .write_all(&[b"echo:".as_slice(), &ping].concat())
                .unwrap();
        }
        // A large frame the other way, over several TLS records.
        conn.stream.write_all(&vec![b'z'; 50_000]).unwrap();
        let rest = conn.read_to_end();
        conn.stream.write_all(&rest).ok();
    });
    let limpet = Limpet::start(&https_config(&[backend.addr], &[&leaf], "", ""));
    let mut client = Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH));
    client.send(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n");
    let switched = client.read_response(false).unwrap();
    assert_eq!(switched.status, 101);
    let read_exact =
        |client: &mut Tls, n: usize| client.conn.read_exact(n).expect("tunnel closed early");
    assert_eq!(read_exact(&mut client, 5), b"hello");
    for ping in [b"ping1", b"ping2", b"ping3"] {
        client.send(ping);
        assert_eq!(
            read_exact(&mut client, 10),
            [b"echo:".as_slice(), ping].concat()
        );
    }
    assert_eq!(read_exact(&mut client, 50_000), vec![b'z'; 50_000]);
}

#[test]
fn health_checks_reach_tls_backends_over_tls() {
    let pki = Pki::new();
    let (addr, names) = tls_backend(&pki, &["api.internal"]);
    let ca = pki.path("ca.pem");
    let group = format!(
        "[groups.web.tls]\nca = {ca:?}\nsni = \"api.internal\"\n\n[groups.web.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n"
    );
    let _limpet = Limpet::start(&config_with(&[addr], "", &group));
    assert!(
        eventually(Duration::from_secs(5), || names.lock().unwrap().len() >= 2),
        "the checks arrive over TLS with the SNI name"
    );
    assert!(names
        .lock()
        .unwrap()
        .iter()
        .all(|n| n.as_deref() == Some("api.internal")));
}

#[test]
fn sighup_reloads_certificates_and_refuses_a_mismatched_key() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let config_path = pki.write_config(&[backend.addr], &leaf);
    let limpet = Process::run(&config_path);
    let client = pki.client(BOTH);
    let mut open = Tls::open(limpet.addr, Some("a.test"), client.clone());
    assert_eq!(open.get_host("/", "a.test", "").status, 200);
    let cert_now = || Tls::open(limpet.addr, Some("a.test"), pki.client(BOTH)).peer_cert();
    assert_eq!(cert_now(), leaf.der);

    let renewed = pki.leaf("a", &["a.test"]);
    limpet.hup();
    assert!(eventually(Duration::from_secs(5), || cert_now() == renewed.der));
    assert_eq!(
        open.get_host("/", "a.test", "").status,
        200,
        "open connections go on"
    );

    // A key that does not match: the reload is refused, nothing changes.
    let other = pki.leaf("other", &["a.test"]);
    std::fs::copy(&other.key, pki.path("a.key")).unwrap();
    limpet.hup();
    assert!(eventually(Duration::from_secs(10), || limpet
        .logged("SIGHUP: reload refused")));
    assert_eq!(cert_now(), renewed.der);
    assert_eq!(open.get_host("/", "a.test", "").status, 200);
}
