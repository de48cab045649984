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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use limpet::control::ReloadError;
use limpet::dns::Resolve;

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
    let dns = "[dns]\ninterval = \"100ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    insert_config(servers, &format!("\n{dns}\n{extra}"))
}

fn start(toml: &str, dns: &FakeDns) -> Limpet {
    let config = limpet::config::parse(toml, "test.toml").unwrap();
    Limpet::from_running(limpet::server::start_with(config, Arc::new(dns.clone()), None).unwrap())
}

/// Waits until `server` of `web` is reached at `addr`, and every worker
/// routes with the snapshot that says so.
fn moved_to(limpet: &Limpet, server: &str, addr: SocketAddr) -> bool {
    let moved = eventually(Duration::from_secs(3), || {
        limpet.server_stats(server)["address"] == addr.to_string()
    });
    moved && limpet.snapshot_reached(limpet.stats()["snapshot"].as_u64().unwrap())
}

#[test]
fn localhost_resolves_with_the_system_resolver_and_serves() {
    let backend = Backend::named("b", log());
    let address = format!("localhost:{}", backend.addr.port());
    let limpet = Limpet::start(&config(&[&address], ""));
    assert_eq!(limpet.get_token(None).body_text(), "b /");
    let server = limpet.server_stats("s0");
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
    let pinned = token("web", 2, 0);
    assert_eq!(limpet.get_token(Some(&pinned)).body_text(), "a /");
    let before = limpet.server_stats("s0");
    assert_eq!(before["configured"], "app.test:80");
    assert_eq!(before["address"], a.addr.to_string());

    // The name moves: the server (and its sessions, keyed by its name) go
    // along, with no Set-Cookie: the token still names the same server.
    dns.set("app.test", &[b.addr]);
    assert!(moved_to(&limpet, "s0", b.addr));
    let moved = limpet.get_token(Some(&pinned));
    assert_eq!(moved.body_text(), "b /");
    assert_eq!(moved.header("set-cookie"), None);
    assert_eq!(limpet.server_stats("s0")["health"], "up");

    // Several addresses, the current one among them: it stays, through
    // lookups that could have moved it.
    dns.set("app.test", &[a.addr, b.addr]);
    let lookups = dns.lookups.load(Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(10), || {
        dns.lookups.load(Ordering::SeqCst) >= lookups + 3
    }));
    assert_eq!(limpet.get_token(Some(&pinned)).body_text(), "b /");

    // A failing name keeps its last address.
    dns.fail("app.test");
    let lookups = dns.lookups.load(Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(3), || {
        dns.lookups.load(Ordering::SeqCst) >= lookups + 3
    }));
    assert_eq!(limpet.get_token(Some(&pinned)).body_text(), "b /");
    assert_eq!(limpet.server_stats("s0")["address"], b.addr.to_string());

    // And follows it again once it resolves elsewhere.
    dns.set("app.test", &[a.addr]);
    assert!(eventually(Duration::from_secs(3), || {
        limpet.get_token(Some(&pinned)).body_text() == "a /"
    }));
    // The other server was never touched by any of it.
    let other = token("web", 2, 1);
    assert_eq!(limpet.get_token(Some(&other)).body_text(), "c /");
}

#[test]
fn admin_config_shows_what_names_resolve_to() {
    let a = Backend::named("a", log());
    let dns = FakeDns::default();
    dns.set("app.test", &[a.addr]);
    let limpet = start(&config(&["app.test:80"], ""), &dns);
    let config = limpet.admin("GET", "/config", "", None).json();
    let resolved = &config["resolved"]["web/s0"];
    assert_eq!(resolved["configured"], "app.test:80", "{config}");
    assert_eq!(resolved["now"], a.addr.to_string(), "{config}");
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
    assert_eq!(limpet.get_token(None).body_text(), "a /");
}

#[test]
fn reload_keeps_a_name_on_its_address_while_it_has_it() {
    let (a, b) = (Backend::named("a", log()), Backend::named("b", log()));
    let dns = FakeDns::default();
    dns.set("app.test", &[a.addr, b.addr]);
    let limpet = start(&config(&["app.test:80"], ""), &dns);
    assert_eq!(limpet.get_token(None).body_text(), "a /");
    // The resolver's order changes; a reload does not move the server.
    dns.set("app.test", &[b.addr, a.addr]);
    let reloaded = config(&["app.test:80"], "")
        .replace("mode = \"insert\"", "mode = \"insert\"\ncookie = \"SID\"");
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&reloaded, "t.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    // And neither do the lookups on the timer that follow it.
    let lookups = dns.lookups.load(Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(10), || {
        dns.lookups.load(Ordering::SeqCst) >= lookups + 3
    }));
    assert_eq!(limpet.get_token(None).body_text(), "a /");
    // A reload that names another host goes where that name points.
    dns.set("other.test", &[b.addr]);
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&config(&["other.test:80"], ""), "t.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_eq!(limpet.get_token(None).body_text(), "b /");
}

#[test]
fn health_checks_probe_where_the_name_points_now() {
    let sick = Backend::checked("a", Arc::new(AtomicBool::new(false)), Default::default());
    let probes = Arc::new(AtomicUsize::new(0));
    let well = Backend::checked("b", Arc::new(AtomicBool::new(true)), probes.clone());
    let dns = FakeDns::default();
    dns.set("app.test", &[well.addr]);
    let checks = "[groups.web.health]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";
    let limpet = start(&config(&["app.test:80"], checks), &dns);
    // Up after checks: the second one's answer is in once the third goes.
    assert!(eventually(Duration::from_secs(10), || probes
        .load(Ordering::SeqCst)
        >= 3));
    assert_eq!(limpet.server_stats("s0")["health"], "up");
    dns.set("app.test", &[sick.addr]);
    assert!(eventually(Duration::from_secs(3), || {
        limpet.server_stats("s0")["health"] == "down"
    }));
    dns.set("app.test", &[well.addr]);
    assert!(eventually(Duration::from_secs(3), || {
        limpet.server_stats("s0")["health"] == "up"
    }));
    assert_eq!(limpet.get_token(None).body_text(), "b /");
}

/// `limpet check` on `text`: whether it passed, and its stderr.
fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limpet.toml");
    std::fs::write(&path, text).unwrap();
    let output = common::process::cli("check", &path);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
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
    let backend_a = Backend::named_on(first, "a", a.clone());
    let backend_b = Backend::named_on(second, "b", b.clone());
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
    assert!(moved_to(&limpet, "s0", backend_b.addr));
    assert_eq!(get_on(&mut client), "b /");
    assert_eq!(backend_b.connection_count(), 1);
    assert_eq!(a.lock().unwrap().len(), 2);
    assert_eq!(b.lock().unwrap().len(), 1);
}
