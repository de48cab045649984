//! Servers named by DNS name (issue 6): resolved at load, resolved again on
//! a timer, followed when they move, with sessions kept on the server name.
//! DNS answers come from a test double (no DNS server is reachable from
//! tests), except for `localhost`, which the system resolver answers from
//! `/etc/hosts`.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use limpet::balance::ServerIdx;
use limpet::control::ReloadError;
use limpet::dns::Resolve;
use limpet::sticky::{TokenKey, TokenTable};

/// DNS as the test says: each name's addresses (whatever the port asked)
/// or an error; a name it does not know does not resolve.
#[derive(Clone, Default)]
struct FakeDns {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    lookups: Arc<AtomicUsize>,
}

type Answer = Result<Vec<SocketAddr>, String>;

impl FakeDns {
    fn set(&self, host: &str, addrs: &[SocketAddr]) {
        let answer = Ok(addrs.to_vec());
        self.answers.lock().unwrap().insert(host.into(), answer);
    }

    fn fail(&self, host: &str) {
        let answer = Err("server failure".to_owned());
        self.answers.lock().unwrap().insert(host.into(), answer);
    }
}

impl Resolve for FakeDns {
    fn resolve(&self, host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        match self.answers.lock().unwrap().get(host) {
            Some(Ok(addrs)) => Ok(addrs.clone()),
            Some(Err(why)) => Err(io::Error::other(why.clone())),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "Name or service not known",
            )),
        }
    }
}

/// One worker, an admin listener, insert-mode persistence, names resolved
/// again every 100 ms; `servers` are addresses as written (`s0`, `s1`, …).
fn config(servers: &[&str], extra: &str) -> String {
    let mut toml = String::from(
        "[workers]\ncount = 1\n\n[dns]\ninterval = \"100ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"test\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n\
         [groups.web]\nbalance = \"round_robin\"\n\n[groups.web.persistence]\nmode = \"insert\"\n",
    );
    for (i, address) in servers.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[groups.web.servers]]\nname = \"s{i}\"\naddress = \"{address}\"\n"
        ));
    }
    toml.push('\n');
    toml.push_str(extra);
    toml
}

fn start(toml: &str, dns: &FakeDns) -> Limpet {
    let config = limpet::config::parse(toml, "test.toml").unwrap();
    let running = limpet::server::start_with(config, Arc::new(dns.clone()), None).unwrap();
    let addr = running.listen_addrs()[0];
    Limpet {
        running: Some(running),
        addr,
    }
}

fn token(names: &[&str], i: u32) -> String {
    let table = TokenTable::build(&TokenKey::from_secret(None), "web", names, None).unwrap();
    String::from_utf8(table.token(ServerIdx(i)).to_vec()).unwrap()
}

/// `GET /` on a fresh connection, with a session cookie if given.
fn get(limpet: &Limpet, cookie: Option<&str>) -> Response {
    let mut client = limpet.client();
    let cookie = cookie
        .map(|c| format!("Cookie: SERVERID={c}\r\n"))
        .unwrap_or_default();
    client.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{cookie}\r\n").as_bytes());
    client.read_response(false).unwrap()
}

fn stats_server(limpet: &Limpet, s: usize) -> serde_json::Value {
    let stats = limpet.admin("GET", "/stats", "", None);
    let stats: serde_json::Value = serde_json::from_str(&stats.body_text()).unwrap();
    stats["groups"][0]["servers"][s].clone()
}

/// Waits until `server` of `web` is reached at `addr`, and every worker
/// routes with the snapshot that says so.
fn moved_to(limpet: &Limpet, s: usize, addr: SocketAddr) -> bool {
    let moved = eventually(Duration::from_secs(3), || {
        stats_server(limpet, s)["address"] == addr.to_string()
    });
    let stats = limpet.admin("GET", "/stats", "", None);
    let stats: serde_json::Value = serde_json::from_str(&stats.body_text()).unwrap();
    moved && limpet.snapshot_reached(stats["snapshot"].as_u64().unwrap())
}

fn log() -> Arc<Mutex<Vec<Received>>> {
    Arc::new(Mutex::new(Vec::new()))
}

#[test]
fn localhost_resolves_with_the_system_resolver_and_serves() {
    let backend = Backend::named("b", log());
    let address = format!("localhost:{}", backend.addr.port());
    let limpet = Limpet::start(&config(&[&address], ""));
    assert_eq!(get(&limpet, None).body_text(), "b /");
    let server = stats_server(&limpet, 0);
    assert_eq!(server["configured"], address.as_str());
    assert_eq!(server["address"], backend.addr.to_string());
}

#[test]
fn a_name_that_moves_takes_its_server_and_sessions_along() {
    let (a, b, c) = (
        Backend::named("a", log()),
        Backend::named("b", log()),
        Backend::named("c", log()),
    );
    let dns = FakeDns::default();
    dns.set("app.test", &[a.addr]);
    let limpet = start(&config(&["app.test:80", &c.addr.to_string()], ""), &dns);
    let pinned = token(&["s0", "s1"], 0);
    assert_eq!(get(&limpet, Some(&pinned)).body_text(), "a /");
    let before = stats_server(&limpet, 0);
    assert_eq!(before["configured"], "app.test:80");
    assert_eq!(before["address"], a.addr.to_string());

    // The name moves: the server (and its sessions, keyed by its name) go
    // along, with no Set-Cookie: the token still names the same server.
    dns.set("app.test", &[b.addr]);
    assert!(moved_to(&limpet, 0, b.addr));
    let moved = get(&limpet, Some(&pinned));
    assert_eq!(moved.body_text(), "b /");
    assert_eq!(moved.header("set-cookie"), None);
    assert_eq!(stats_server(&limpet, 0)["health"], "up");

    // Several addresses, the current one among them: it stays.
    dns.set("app.test", &[a.addr, b.addr]);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(get(&limpet, Some(&pinned)).body_text(), "b /");

    // A failing name keeps its last address.
    dns.fail("app.test");
    let lookups = dns.lookups.load(Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(3), || {
        dns.lookups.load(Ordering::SeqCst) >= lookups + 3
    }));
    assert_eq!(get(&limpet, Some(&pinned)).body_text(), "b /");
    assert_eq!(stats_server(&limpet, 0)["address"], b.addr.to_string());

    // And follows it again once it resolves elsewhere.
    dns.set("app.test", &[a.addr]);
    assert!(eventually(Duration::from_secs(3), || {
        get(&limpet, Some(&pinned)).body_text() == "a /"
    }));
    // The other server was never touched by any of it.
    let other = token(&["s0", "s1"], 1);
    assert_eq!(get(&limpet, Some(&other)).body_text(), "c /");
}

#[test]
fn admin_config_shows_what_names_resolve_to() {
    let a = Backend::named("a", log());
    let dns = FakeDns::default();
    dns.set("app.test", &[a.addr]);
    let limpet = start(&config(&["app.test:80"], ""), &dns);
    let text = limpet.admin("GET", "/config", "", None).body_text();
    assert!(
        text.contains(&format!("web/s0: app.test:80 -> {}", a.addr)),
        "{text}"
    );
}

#[test]
fn a_name_that_does_not_resolve_refuses_start_and_reload() {
    let a = Backend::named("a", log());
    let dns = FakeDns::default();
    let bad = config(&["gone.invalid:80"], "");
    let parsed = limpet::config::parse(&bad, "test.toml").unwrap();
    let err = limpet::server::start_with(parsed, Arc::new(dns.clone()), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "groups.web.servers[0].address \"gone.invalid:80\" does not resolve: Name or service not known"
    );

    dns.set("app.test", &[a.addr]);
    let limpet = start(&config(&["app.test:80"], ""), &dns);
    let both = limpet::config::parse(&config(&["app.test:80", "gone.invalid:80"], ""), "t.toml");
    match limpet.running().reload(both.unwrap()) {
        Err(ReloadError::Resolve(err)) => {
            assert_eq!(err.path, "groups.web.servers[1].address");
        }
        other => panic!("reload: {other:?}"),
    }
    assert_eq!(get(&limpet, None).body_text(), "a /");
}

#[test]
fn reload_keeps_a_name_on_its_address_while_it_has_it() {
    let (a, b) = (Backend::named("a", log()), Backend::named("b", log()));
    let dns = FakeDns::default();
    dns.set("app.test", &[a.addr, b.addr]);
    let limpet = start(&config(&["app.test:80"], ""), &dns);
    assert_eq!(get(&limpet, None).body_text(), "a /");
    // The resolver's order changes; a reload does not move the server.
    dns.set("app.test", &[b.addr, a.addr]);
    let reloaded = config(&["app.test:80"], "")
        .replace("mode = \"insert\"", "mode = \"insert\"\ncookie = \"SID\"");
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&reloaded, "t.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&limpet, None).body_text(), "a /");
    // A reload that names another host goes where that name points.
    dns.set("other.test", &[b.addr]);
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&config(&["other.test:80"], ""), "t.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_eq!(get(&limpet, None).body_text(), "b /");
}

/// Answers `/healthz` with 200 while `healthy`, else 503.
fn checked(name: &'static str, healthy: Arc<AtomicBool>) -> Backend {
    Backend::respond(move |req| {
        if req.target == "/healthz" {
            return Some(if healthy.load(Ordering::SeqCst) {
                ok("up")
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_vec()
            });
        }
        Some(ok(&format!("{name} {}", req.target)))
    })
}

#[test]
fn health_checks_probe_where_the_name_points_now() {
    let sick = checked("a", Arc::new(AtomicBool::new(false)));
    let well = checked("b", Arc::new(AtomicBool::new(true)));
    let dns = FakeDns::default();
    dns.set("app.test", &[well.addr]);
    let checks = "[groups.web.health]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";
    let limpet = start(&config(&["app.test:80"], checks), &dns);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(stats_server(&limpet, 0)["health"], "up");
    dns.set("app.test", &[sick.addr]);
    assert!(eventually(Duration::from_secs(3), || {
        stats_server(&limpet, 0)["health"] == "down"
    }));
    dns.set("app.test", &[well.addr]);
    assert!(eventually(Duration::from_secs(3), || {
        stats_server(&limpet, 0)["health"] == "up"
    }));
    assert_eq!(get(&limpet, None).body_text(), "b /");
}

/// `limpet check` on `text`, killed if it takes more than 30 s (a lookup
/// with no reachable DNS server can be slow; here it must not hang).
fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limpet.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_limpet"))
        .args(["check", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("limpet check did not finish in 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn check_resolves_server_names() {
    let (ok, stderr) = check(&config(&["localhost:8080"], ""));
    assert!(ok, "{stderr}");
    let text = config(&["localhost:8080", "gone.invalid:8080"], "");
    let line = text
        .lines()
        .position(|l| l.contains("gone.invalid"))
        .unwrap()
        + 1;
    let (ok, stderr) = check(&text);
    assert!(!ok);
    let expected = format!(
        "limpet.toml:{line}: groups.web.servers[1].address \"gone.invalid:8080\" does not resolve: "
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn a_move_to_another_ip_on_the_same_port_uses_fresh_connections() {
    // Linux routes all of 127/8 to loopback: two backends, one port.
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let second = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    let (a, b) = (log(), log());
    let respond = |name: &'static str, log: Arc<Mutex<Vec<Received>>>| {
        move |mut conn: Conn| {
            while let Some(request) = conn.read_request() {
                log.lock().unwrap().push(request.clone());
                let answer = ok(&format!("{name} {}", request.target));
                if std::io::Write::write_all(&mut conn.stream, &answer).is_err() {
                    break;
                }
            }
        }
    };
    let backend_a = Backend::on(first, respond("a", a.clone()));
    let backend_b = Backend::on(second, respond("b", b.clone()));
    let dns = FakeDns::default();
    dns.set("app.test", &[backend_a.addr]);
    let limpet = start(&config(&[&format!("app.test:{port}")], ""), &dns);
    // One client connection throughout; limpet pools its connection to a.
    let mut client = limpet.client();
    let get_on = |client: &mut Client| {
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        client.read_response(false).unwrap().body_text()
    };
    assert_eq!(get_on(&mut client), "a /");
    assert_eq!(get_on(&mut client), "a /");
    assert_eq!(backend_a.connection_count(), 1);
    dns.set("app.test", &[backend_b.addr]);
    assert!(moved_to(&limpet, 0, backend_b.addr));
    assert_eq!(get_on(&mut client), "b /");
    assert_eq!(backend_b.connection_count(), 1);
    assert_eq!(a.lock().unwrap().len(), 2);
    assert_eq!(b.lock().unwrap().len(), 1);
}
