//! The balancer's state lives per server identity, outside the snapshot
//! that a health change, an admin change, an API weight change or a reload
//! replaces: requests in flight keep counting on the live state, so
//! least-outstanding still sees them, and the smooth round robin keeps its
//! place (issue 14, item 7). One worker, so that one core's view is seen.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{eventually, ok, Backend, Client, Limpet};

/// A backend answering `<name>` to everything, `/health` with 200 while
/// `healthy`; `/hold` waits until `release` is set. Counts the requests it
/// got other than health checks.
fn backend(
    name: &'static str,
    healthy: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
) -> Backend {
    Backend::respond(move |req| {
        if req.target == "/health" {
            let status = if healthy.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            return Some(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").into_bytes());
        }
        seen.fetch_add(1, Ordering::SeqCst);
        if req.target == "/hold" {
            // Held until the test releases it, however long that takes:
            // a backend that is slow on purpose.
            while !release.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(5));
            }
        }
        Some(ok(name))
    })
}

struct Server {
    backend: Backend,
    healthy: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
}

fn servers(release: &Arc<AtomicBool>) -> Vec<Server> {
    ["A", "B", "C"]
        .into_iter()
        .map(|name| {
            let healthy = Arc::new(AtomicBool::new(true));
            let seen = Arc::new(AtomicUsize::new(0));
            let backend = backend(name, healthy.clone(), release.clone(), seen.clone());
            Server {
                backend,
                healthy,
                seen,
            }
        })
        .collect()
}

fn config(addrs: &[SocketAddr], balance: &str, extra: &str) -> String {
    let mut text = format!(
        "[workers]\ncount = 1\n\n[timeouts]\nbackend_response = \"20s\"\n{extra}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n\
         [groups.web]\nbalance = \"{balance}\"\n\n[groups.web.persistence]\nmode = \"insert\"\n\n\
         [groups.web.health]\npath = \"/health\"\ninterval = \"50ms\"\ntimeout = \"50ms\"\n\
         healthy_threshold = 1\nunhealthy_threshold = 1\n"
    );
    for (name, addr) in ["A", "B", "C"].iter().zip(addrs) {
        text.push_str(&format!(
            "\n[[groups.web.servers]]\nname = \"{name}\"\naddress = \"{addr}\"\n"
        ));
    }
    text
}

fn in_flight(limpet: &Limpet, name: &str) -> u64 {
    limpet.server_stats(name)["in_flight"].as_u64().unwrap()
}

/// Sends `n` requests without a cookie, each on a new connection, and
/// returns which server answered each.
fn cookieless(limpet: &Limpet, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut client = limpet.client();
            let response = client.get("/who");
            assert_eq!(response.status, 200);
            response.body_text()
        })
        .collect()
}

#[test]
fn requests_in_flight_keep_counting_across_health_weight_and_reload_changes() {
    let release = Arc::new(AtomicBool::new(false));
    let servers = servers(&release);
    let addrs: Vec<_> = servers.iter().map(|s| s.backend.addr).collect();
    let limpet = Limpet::start(&config(&addrs, "least_outstanding", ""));
    assert!(eventually(Duration::from_secs(5), || {
        limpet.server_stats("C")["health"] == "up"
    }));

    // A session on A: an idle group's first pick is A (ties go in order).
    let mut client = limpet.client();
    let first = client.get("/who");
    assert_eq!(first.body_text(), "A");
    let cookie = first.cookie_pair();

    // Three requests held open on A by its session cookie.
    const HELD: u64 = 3;
    let held: Vec<_> = (0..HELD)
        .map(|_| {
            let mut client = limpet.client();
            client.send(
                format!("GET /hold HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
            );
            client
        })
        .collect();
    let a_seen = &servers[0].seen;
    assert!(eventually(Duration::from_secs(5), || a_seen
        .load(Ordering::SeqCst)
        == 1 + HELD as usize));
    assert_eq!(in_flight(&limpet, "A"), HELD);

    // A health change of C.
    servers[2].healthy.store(false, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(5), || {
        limpet.server_stats("C")["health"] == "down"
    }));
    assert_eq!(in_flight(&limpet, "A"), HELD, "after a health change");
    assert!(
        cookieless(&limpet, 4).iter().all(|s| s == "B"),
        "A is busy, C down"
    );

    // An API weight change.
    let answer = limpet.admin("PUT", "/servers/web/B/weight", "2", None);
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    assert_eq!(in_flight(&limpet, "A"), HELD, "after a weight change");
    assert!(cookieless(&limpet, 4).iter().all(|s| s == "B"));

    // A reload of a changed file.
    let changed = config(&addrs, "least_outstanding", "client_idle = \"61s\"");
    limpet
        .running()
        .reload(limpet::config::parse(&changed, "t.toml").unwrap())
        .unwrap();
    assert_eq!(in_flight(&limpet, "A"), HELD, "after a reload");
    assert!(cookieless(&limpet, 4).iter().all(|s| s == "B"));
    assert_eq!(
        a_seen.load(Ordering::SeqCst),
        1 + HELD as usize,
        "no new pick went to A"
    );

    // Released, the held requests complete and the count drains to zero.
    release.store(true, Ordering::SeqCst);
    for mut client in held {
        let response = client.read_response(false).unwrap();
        assert_eq!(response.body_text(), "A");
    }
    assert!(eventually(Duration::from_secs(2), || in_flight(
        &limpet, "A"
    ) == 0));
    drop(client);
}

#[test]
fn round_robin_keeps_its_place_when_a_weight_changes() {
    let release = Arc::new(AtomicBool::new(true));
    let servers = servers(&release);
    let addrs: Vec<_> = servers.iter().map(|s| s.backend.addr).collect();
    let limpet = Limpet::start(&config(&addrs, "round_robin", ""));
    assert_eq!(cookieless(&limpet, 2), ["A", "B"]);
    let answer = limpet.admin("PUT", "/servers/web/B/weight", "2", None);
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    // With the rotation kept, C is next; a fresh state would pick B.
    assert_eq!(cookieless(&limpet, 1), ["C"]);
    // And the counters survived the change too.
    let responses = |name| limpet.server_stats(name)["responses"].as_u64().unwrap();
    assert_eq!((responses("A"), responses("B"), responses("C")), (1, 1, 1));
}

#[test]
fn per_server_counters_survive_a_reload() {
    let release = Arc::new(AtomicBool::new(true));
    let servers = servers(&release);
    let addrs: Vec<_> = servers.iter().map(|s| s.backend.addr).collect();
    let limpet = Limpet::start(&config(&addrs, "round_robin", ""));
    assert_eq!(cookieless(&limpet, 3), ["A", "B", "C"]);
    // Reload without C: A and B keep their counts.
    let mut text = config(&addrs[..2], "round_robin", "client_idle = \"61s\"");
    text.push('\n');
    limpet
        .running()
        .reload(limpet::config::parse(&text, "t.toml").unwrap())
        .unwrap();
    let responses = |name| limpet.server_stats(name)["responses"].as_u64().unwrap();
    assert_eq!((responses("A"), responses("B")), (1, 1));
    let mut client = Client::connect(limpet.addr);
    client.send(b"GET /who HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response(false).unwrap().status, 200);
}
