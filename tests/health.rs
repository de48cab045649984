//! Health checks, server states, failover and draining (SPEC §6, issue 5),
//! with real backends that can fail their checks, refuse connections, or
//! flap.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use limpet::balance::ServerIdx;
use limpet::control::AdminState;
use limpet::sticky::{TokenKey, TokenTable};

fn token(i: u32) -> String {
    let table =
        TokenTable::build(&TokenKey::from_secret(None), "web", &["s0", "s1"], None).unwrap();
    String::from_utf8(table.token(ServerIdx(i)).to_vec()).unwrap()
}

/// Answers `/healthz` with 200 while `healthy` (else 503), counting probes;
/// every other path with `<name> <target>`.
fn checked(name: &'static str, healthy: Arc<AtomicBool>, probes: Arc<AtomicUsize>) -> Backend {
    Backend::respond(move |req| {
        if req.target == "/healthz" {
            probes.fetch_add(1, Ordering::SeqCst);
            return Some(if healthy.load(Ordering::SeqCst) {
                ok("up")
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_vec()
            });
        }
        Some(ok(&format!("{name} {}", req.target)))
    })
}

fn config(addrs: &[SocketAddr], health: &str, workers: usize) -> String {
    config_with(
        addrs,
        "balance = \"round_robin\"",
        &format!("[groups.web.persistence]\nmode = \"insert\"\n\n[groups.web.health]\n{health}"),
    )
    .replace("count = 1", &format!("count = {workers}"))
}

const CHECKS: &str = "path = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";

fn get(limpet: &Limpet, cookie: Option<&str>) -> Response {
    let mut client = limpet.client();
    let cookie = cookie
        .map(|c| format!("Cookie: SERVERID={c}\r\n"))
        .unwrap_or_default();
    client.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{cookie}\r\n").as_bytes());
    client.read_response(false).unwrap()
}

fn set_cookie(response: &Response) -> Option<&str> {
    response.header("set-cookie")
}

#[test]
fn failing_checks_move_sessions_and_passing_ones_bring_the_server_back() {
    let (up0, up1) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let b0 = checked("s0", up0.clone(), Default::default());
    let b1 = checked("s1", up1, Default::default());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], CHECKS, 1));
    let (t0, t1) = (token(0), token(1));
    assert_eq!(get(&limpet, Some(&t0)).body_text(), "s0 /");

    up0.store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), || get(&limpet, Some(&t0))
            .body_text()
            == "s1 /"),
        "the session fails over once s0 fails its checks"
    );
    let moved = get(&limpet, Some(&t0));
    assert_eq!(
        set_cookie(&moved),
        Some(format!("SERVERID={t1}; Path=/; HttpOnly").as_str())
    );
    for _ in 0..5 {
        let response = get(&limpet, None);
        assert_eq!(
            response.body_text(),
            "s1 /",
            "no new session goes to a down server"
        );
    }

    up0.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), || get(&limpet, None).body_text()
            == "s0 /"),
        "s0 takes new sessions again once its checks pass"
    );
    let stays = get(&limpet, Some(&t1));
    assert_eq!(
        stays.body_text(),
        "s1 /",
        "the moved session stays where it is"
    );
    assert_eq!(set_cookie(&stays), None);
}

#[test]
fn a_flapping_server_does_not_bounce_sessions() {
    let probes = Arc::new(AtomicUsize::new(0));
    let counted = probes.clone();
    // Passes and fails its checks in turn: never two failures in a row.
    let b0 = Backend::respond(move |req| {
        if req.target == "/healthz" {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            return Some(if n % 2 == 0 {
                ok("up")
            } else {
                b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n".to_vec()
            });
        }
        Some(ok("s0 /"))
    });
    let b1 = checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], CHECKS, 1));
    let t0 = token(0);
    for _ in 0..15 {
        let response = get(&limpet, Some(&t0));
        assert_eq!(response.body_text(), "s0 /");
        assert_eq!(set_cookie(&response), None);
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        probes.load(Ordering::SeqCst) >= 8,
        "it was checked all along"
    );
}

#[test]
fn one_prober_per_process_whatever_the_worker_count() {
    let mut counts = Vec::new();
    for workers in [1, 2] {
        // Count only this limpet's probes (by their Host): a port freed by
        // another test and reused here must not add its prober's checks.
        let host = format!("probe-{workers}.test");
        let probes = Arc::new(AtomicUsize::new(0));
        let (counted, expected) = (probes.clone(), host.clone());
        let backend = Backend::respond(move |req| {
            if req.target == "/healthz" && req.header("host") == Some(expected.as_str()) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Some(ok("up"))
        });
        let health = format!(
            "path = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhost = \"{host}\"\n"
        );
        let limpet = Limpet::start(&config(&[backend.addr], &health, workers));
        // Probing starts with the control thread, before start() returns
        // (which can take a while on a loaded machine): count a window.
        let before = probes.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(1000));
        counts.push(probes.load(Ordering::SeqCst) - before);
        drop(limpet);
    }
    assert!(
        counts.iter().all(|c| (9..=11).contains(c)),
        "10 intervals: {counts:?}"
    );
    assert!(
        counts[0].abs_diff(counts[1]) <= 1,
        "1 worker vs 2: {counts:?}"
    );
}

#[test]
fn a_server_refusing_connections_fails_over_at_once_and_is_ejected() {
    let b1 = checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let passive = "max_fails = 2\nfail_window = \"10s\"\neject_time = \"1s\"\n";
    let limpet = Limpet::start(&config(&[dead_address(), b1.addr], passive, 1));
    let t0 = token(0);
    let errors = || {
        limpet
            .running()
            .reports()
            .iter()
            .map(|r| r.backend_connect_errors)
            .sum::<u64>()
    };
    for _ in 0..6 {
        let response = get(&limpet, Some(&t0));
        assert_eq!(
            response.body_text(),
            "s1 /",
            "a connect failure fails over at once"
        );
        assert!(set_cookie(&response).is_some());
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(errors(), 2, "ejected after max_fails: no more attempts");
    thread::sleep(Duration::from_millis(1300));
    assert_eq!(get(&limpet, Some(&t0)).body_text(), "s1 /");
    assert_eq!(errors(), 3, "tried again after eject_time");
}

#[test]
fn draining_keeps_sessions_until_the_drain_timeout_then_moves_them() {
    let b0 = checked("s0", Arc::new(AtomicBool::new(true)), Default::default());
    let b1 = checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let limpet = Limpet::start(&config(
        &[b0.addr, b1.addr],
        "drain_timeout = \"500ms\"\n",
        1,
    ));
    let control = limpet.running().control().clone();
    futures_executor::block_on(control.set_admin("web", "s0", AdminState::Draining)).unwrap();
    let (t0, t1) = (token(0), token(1));
    assert!(eventually(Duration::from_secs(1), || get(&limpet, None)
        .body_text()
        == "s1 /"));
    let stuck = get(&limpet, Some(&t0));
    assert_eq!(
        stuck.body_text(),
        "s0 /",
        "draining: stuck sessions still arrive"
    );
    assert_eq!(set_cookie(&stuck), None);
    let hits: u64 = limpet
        .running()
        .reports()
        .iter()
        .map(|r| r.servers[0][0].1)
        .sum();
    assert!(
        hits >= 1,
        "the operator sees sticky requests still reaching s0"
    );

    thread::sleep(Duration::from_millis(700));
    let moved = get(&limpet, Some(&t0));
    assert_eq!(
        moved.body_text(),
        "s1 /",
        "after drain_timeout the session moves"
    );
    assert_eq!(
        set_cookie(&moved),
        Some(format!("SERVERID={t1}; Path=/; HttpOnly").as_str())
    );
}
