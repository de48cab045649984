//! HTTPS listeners and TLS to backends, end to end: certificates generated
//! at test time with rcgen, limpet in-process, real rustls clients and
//! backends over 127.0.0.1 sockets.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{config_with, eventually, find, ok, Backend, Limpet, Received, IO_TIMEOUT};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A test CA and the leaf certificates it signs, written under a
/// temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A leaf certificate's files and DER.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "limpet test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A leaf for `names` (DNS names or IP addresses), valid until 2060,
    /// written as `<file>.pem` and `<file>.key`.
    fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        self.leaf_until(file, names, 2060)
    }

    /// A leaf valid until January 1st of `year`.
    fn leaf_until(&self, file: &str, names: &[&str], year: i32) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let leaf = Leaf {
            cert: self.path(&format!("{file}.pem")),
            key: self.path(&format!("{file}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// A client trusting this CA, for `versions`, with its own session
    /// cache (tickets).
    fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// An HTTPS client connection to limpet.
struct Tls {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    pending: Vec<u8>,
}

/// A response as the TLS client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Tls {
    /// Connects and completes the handshake, sending `sni` (None: an IP
    /// address, so no SNI).
    fn connect(addr: SocketAddr, sni: Option<&str>, config: Arc<rustls::ClientConfig>) -> Tls {
        Self::try_connect(addr, sni, config).expect("TLS handshake with limpet")
    }

    fn try_connect(
        addr: SocketAddr,
        sni: Option<&str>,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Tls, std::io::Error> {
        let name = match sni {
            Some(name) => ServerName::try_from(name.to_owned()).unwrap(),
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Tls {
            stream,
            pending: Vec::new(),
        })
    }

    fn version(&self) -> rustls::ProtocolVersion {
        self.stream.conn.protocol_version().unwrap()
    }

    fn resumed(&self) -> bool {
        self.stream.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    fn peer_cert(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    fn get(&mut self, path: &str, host: &str, extra: &str) -> Answer {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes());
        self.read_answer().expect("a response over TLS")
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    fn read_answer(&mut self) -> Option<Answer> {
        let end = loop {
            if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.pending[..end]).to_string();
        self.pending.drain(..end);
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.pending.len() < len {
            if !self.fill() {
                return None;
            }
        }
        let body = String::from_utf8_lossy(&self.pending[..len]).to_string();
        self.pending.drain(..len);
        Some(Answer {
            status,
            headers,
            body,
        })
    }
}

/// `[[listeners]]` TLS keys for these leaves, first one the default.
fn tls_keys(leaves: &[&Leaf], extra: &str) -> String {
    let certs: Vec<String> = leaves
        .iter()
        .map(|l| format!("{{ cert = {:?}, key = {:?} }}", l.cert, l.key))
        .collect();
    format!("tls = {{ certs = [{}]{extra} }}\n", certs.join(", "))
}

/// A one-group config whose listener serves HTTPS with `leaves`.
fn https_config(
    backends: &[SocketAddr],
    leaves: &[&Leaf],
    group_keys: &str,
    extra: &str,
) -> String {
    config_with(backends, group_keys, extra).replacen(
        "default_group = \"web\"\n",
        &format!("default_group = \"web\"\n{}", tls_keys(leaves, "")),
        1,
    )
}

fn recording_backend(name: &'static str) -> (Backend, Arc<Mutex<Vec<Received>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
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
        let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(versions));
        assert_eq!(client.version(), expected);
        assert_eq!(client.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        for i in 0..3 {
            let answer = client.get(&format!("/{i}"), "a.test", "");
            assert_eq!(answer.status, 200);
            assert_eq!(answer.body, format!("s0 /{i}"), "keep-alive over TLS");
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
        assert_eq!(client.read_answer().unwrap().status, 200);
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
    let cert_for = |sni: Option<&str>| Tls::connect(limpet.addr, sni, client.clone()).peer_cert();
    assert_eq!(cert_for(Some("a.test")), a.der);
    assert_eq!(cert_for(Some("b.test")), b.der);
    assert_eq!(cert_for(Some("www.B.test")), b.der, "wildcard, any case");
    // An unknown name gets the default certificate, which the client
    // then refuses; no SNI at all (an IP address) gets it too.
    let unknown = Tls::try_connect(limpet.addr, Some("c.test"), client.clone());
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
        Tls::connect(limpet.addr, None, no_verify.clone()).peer_cert(),
        a.der
    );
    assert_eq!(
        Tls::connect(limpet.addr, Some("c.test"), no_verify).peer_cert(),
        a.der
    );
}

/// A verifier that accepts any server certificate (to see which one the
/// server chose without SNI).
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[test]
fn sticky_sessions_over_https_get_secure_cookies() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let (b0, _) = recording_backend("s0");
    let (b1, _) = recording_backend("s1");
    let group = "balance = \"round_robin\"\n[groups.web.persistence]\nmode = \"insert\"\ntoken_secret = \"0123456789abcdef0123\"\n";
    let limpet = Limpet::start(&https_config(&[b0.addr, b1.addr], &[&leaf], group, ""));
    let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH));
    let first = client.get("/", "a.test", "");
    let cookies = first.headers_named("set-cookie");
    assert_eq!(cookies.len(), 2, "both cookies: {cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    let server = first.body.split(' ').next().unwrap().to_owned();
    let pair: Vec<&str> = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect();
    let jar = format!("Cookie: {}\r\n", pair.join("; "));
    for i in 0..6 {
        // A new connection each time: the cookie alone keeps the server.
        let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH));
        let answer = client.get(&format!("/{i}"), "a.test", &jar);
        assert_eq!(answer.body.split(' ').next(), Some(server.as_str()));
        assert!(answer.headers_named("set-cookie").is_empty());
    }
    // Only the CORS twin once `secure = false` is written.
    let written = format!("{group}secure = false\n");
    let limpet = Limpet::start(&https_config(&[b0.addr, b1.addr], &[&leaf], &written, ""));
    let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH));
    let cookies = client
        .get("/", "a.test", "")
        .headers_named("set-cookie")
        .join("\n");
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
    let names = ["s0", "s1"];
    let table = limpet::sticky::TokenTable::build(
        &limpet::sticky::TokenKey::from_secret(None),
        "web",
        &names,
        None,
    )
    .unwrap();
    let token = |i| String::from_utf8(table.token(limpet::balance::ServerIdx(i)).to_vec()).unwrap();
    let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH));
    let moved = client.get("/", "a.test", &format!("Cookie: APP={}.v1\r\n", token(0)));
    assert_eq!(moved.status, 200);
    assert_eq!(
        moved.headers_named("set-cookie"),
        [format!("APP={}.v1; Path=/; HttpOnly; Secure", token(1))]
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
    let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH));
    assert_eq!(client.get("/", "a.test", "").status, 200, "still serving");
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

/// One counter of every worker's report, in worker order.
fn per_worker(limpet: &Limpet, counter: fn(&limpet::control::WorkerReport) -> u64) -> Vec<u64> {
    limpet.running().reports().iter().map(counter).collect()
}

fn accepted(limpet: &Limpet) -> Vec<u64> {
    per_worker(limpet, |r| r.accepted)
}

fn resumed(limpet: &Limpet) -> Vec<u64> {
    per_worker(limpet, |r| r.tls_resumed)
}

#[test]
fn a_session_ticket_from_one_worker_resumes_on_another() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let config = https_config(&[backend.addr], &[&leaf], "", "").replace("count = 1", "count = 2");
    let limpet = Limpet::start(&config);
    let landed = |before: &[u64]| -> usize {
        let after = accepted(&limpet);
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
            let before = accepted(&limpet);
            let mut issuer = Tls::connect(limpet.addr, Some("a.test"), client.clone());
            assert_eq!(issuer.get("/", "a.test", "").status, 200);
            let first = landed(&before);
            drop(issuer);
            let before = accepted(&limpet);
            let resumed_before: Vec<u64> = resumed(&limpet);
            let mut again = Tls::connect(limpet.addr, Some("a.test"), client);
            assert_eq!(again.get("/", "a.test", "").status, 200);
            let second = landed(&before);
            assert!(
                again.resumed(),
                "every second connection resumes ({versions:?})"
            );
            assert_eq!(
                resumed(&limpet)[second],
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
    let mut b = Tls::connect(limpet.addr, Some("b.test"), client.clone());
    let answer = b.get("/", "a.test", "");
    assert_eq!(
        answer.status, 421,
        "SNI b.test routes to web, Host a.test to api"
    );
    let mut a = Tls::connect(limpet.addr, Some("a.test"), client.clone());
    assert_eq!(a.get("/", "A.test:443", "").body, "api /");
    let mut c = Tls::connect(limpet.addr, Some("c.test"), client);
    let answer = c.get("/", "d.test", "");
    assert_eq!(answer.body, "web /", "both names route to web: served");
}

#[test]
fn a_reload_swaps_certificates_and_keeps_open_connections_and_tickets() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let config_path = pki.path("limpet.toml");
    // Relative paths: resolved against the configuration file's directory.
    let text = https_config(&[backend.addr], &[&leaf], "", "")
        .replace(&format!("{:?}", leaf.cert), "\"a.pem\"")
        .replace(&format!("{:?}", leaf.key), "\"a.key\"");
    std::fs::write(&config_path, &text).unwrap();
    let config = limpet::config::load(&config_path).unwrap();
    let running = limpet::server::start(config).unwrap();
    let limpet = Limpet {
        addr: running.listen_addrs()[0],
        running: Some(running),
    };
    let client = pki.client(TLS13);
    let mut open = Tls::connect(limpet.addr, Some("a.test"), client.clone());
    assert_eq!(open.get("/", "a.test", "").status, 200);
    assert_eq!(open.peer_cert(), leaf.der);

    let renewed = pki.leaf("a", &["a.test"]);
    assert_ne!(renewed.der, leaf.der);
    let generation = limpet
        .running()
        .reload(limpet::config::load(&config_path).unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));

    assert_eq!(
        open.get("/again", "a.test", "").status,
        200,
        "the open connection goes on"
    );
    // The ticket issued before the reload still resumes.
    let mut resumed = Tls::connect(limpet.addr, Some("a.test"), client);
    assert!(resumed.resumed());
    assert_eq!(resumed.get("/", "a.test", "").status, 200);
    let fresh = Tls::connect(limpet.addr, Some("a.test"), pki.client(TLS13));
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
    let https = https_config(&[backend.addr], &[&leaf], "", "")
        .replace("127.0.0.1:0", &kept.to_string())
        + &format!(
            "\n[[listeners]]\nname = \"added\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n{}",
            tls_keys(&[&leaf], "")
        );
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&https, "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    let listeners = limpet.running().listeners();
    assert_eq!(listeners[0].1, kept, "the first listener kept its address");
    let added = listeners[1].1;
    for addr in [kept, added] {
        let mut tls = Tls::connect(addr, Some("a.test"), pki.client(TLS13));
        assert_eq!(tls.peer_cert(), leaf.der);
        assert_eq!(tls.get("/", "a.test", "").status, 200, "{addr}");
    }
}

/// A TLS backend on its own thread: answers each request `200 tls <target>`
/// and records the server name the client sent.
fn tls_backend(pki: &Pki, names: &[&str]) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let leaf = pki.leaf("backend", names);
    let chain = vec![leaf.der.clone()];
    let key = PrivateKeyDer::from_pem_file_compat(&leaf.key);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, seen) = (config.clone(), seen.clone());
            thread::spawn(move || {
                tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = find(&pending, b"\r\n\r\n") else {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    seen.lock()
                        .unwrap()
                        .push(stream.conn.server_name().map(str::to_owned));
                    let head = String::from_utf8_lossy(&pending[..end + 4]).to_string();
                    pending.drain(..end + 4);
                    let target = head.split(' ').nth(1).unwrap_or("?").to_owned();
                    if stream.write_all(&ok(&format!("tls {target}"))).is_err() {
                        return;
                    }
                    let _ = stream.flush();
                }
            });
        }
    });
    (addr, names)
}

trait PemCompat {
    fn from_pem_file_compat(path: &Path) -> PrivateKeyDer<'static>;
}

impl PemCompat for PrivateKeyDer<'static> {
    fn from_pem_file_compat(path: &Path) -> PrivateKeyDer<'static> {
        use rustls::pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_file(path).unwrap()
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
        &[backend.parse().unwrap()],
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
    let mut client = Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH));
    client.send(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n");
    let switched = client.read_answer().unwrap();
    assert_eq!(switched.status, 101);
    let read_exact = |client: &mut Tls, n: usize| {
        while client.pending.len() < n {
            assert!(client.fill(), "tunnel closed early");
        }
        client.pending.drain(..n).collect::<Vec<u8>>()
    };
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

/// limpet as a child process reading `config`; killed when dropped.
struct Child {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Child {
    fn start(config: &Path) -> Child {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_limpet"))
            .args(["run", "--config"])
            .arg(config)
            .env("LIMPET_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        Child { child, addr }
    }

    fn hup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::SIGHUP).unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_certificates_and_refuses_a_mismatched_key() {
    let pki = Pki::new();
    let leaf = pki.leaf("a", &["a.test"]);
    let backend = Backend::respond(|_| Some(ok("hi")));
    let config_path = pki.path("limpet.toml");
    let text = https_config(&[backend.addr], &[&leaf], "", "")
        .replace(&format!("{:?}", leaf.cert), "\"a.pem\"")
        .replace(&format!("{:?}", leaf.key), "\"a.key\"");
    std::fs::write(&config_path, &text).unwrap();
    let limpet = Child::start(&config_path);
    let client = pki.client(BOTH);
    let mut open = Tls::connect(limpet.addr, Some("a.test"), client.clone());
    assert_eq!(open.get("/", "a.test", "").status, 200);
    let cert_now = || Tls::connect(limpet.addr, Some("a.test"), pki.client(BOTH)).peer_cert();
    assert_eq!(cert_now(), leaf.der);

    let renewed = pki.leaf("a", &["a.test"]);
    limpet.hup();
    assert!(eventually(Duration::from_secs(5), || cert_now() == renewed.der));
    assert_eq!(
        open.get("/", "a.test", "").status,
        200,
        "open connections go on"
    );

    // A key that does not match: the reload is refused, nothing changes.
    let other = pki.leaf("other", &["a.test"]);
    std::fs::copy(&other.key, pki.path("a.key")).unwrap();
    limpet.hup();
    thread::sleep(Duration::from_millis(500));
    assert_eq!(cert_now(), renewed.der);
    assert_eq!(open.get("/", "a.test", "").status, 200);
}
