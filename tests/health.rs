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
use limpet::control::AdminState;

fn config(addrs: &[SocketAddr], health: &str, workers: usize) -> String {
    insert_config(addrs, &format!("\n[groups.web.health]\n{health}"))
        .replace("count = 1", &format!("count = {workers}"))
}

const CHECKS: &str = "path = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";

#[test]
fn failing_checks_move_sessions_and_passing_ones_bring_the_server_back() {
    let (up0, up1) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let b0 = Backend::checked("s0", up0.clone(), Default::default());
    let b1 = Backend::checked("s1", up1, Default::default());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], CHECKS, 1));
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    assert_eq!(limpet.get_token(Some(&t0)).body_text(), "s0 /");

    up0.store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), || limpet
            .get_token(Some(&t0))
            .body_text()
            == "s1 /"),
        "the session fails over once s0 fails its checks"
    );
    let moved = limpet.get_token(Some(&t0));
    assert_eq!(
        moved.header("set-cookie"),
        Some(format!("SERVERID={t1}; Path=/; HttpOnly").as_str())
    );
    for _ in 0..5 {
        let response = limpet.get_token(None);
        assert_eq!(
            response.body_text(),
            "s1 /",
            "no new session goes to a down server"
        );
    }

    up0.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), || limpet
            .get_token(None)
            .body_text()
            == "s0 /"),
        "s0 takes new sessions again once its checks pass"
    );
    let stays = limpet.get_token(Some(&t1));
    assert_eq!(
        stays.body_text(),
        "s1 /",
        "the moved session stays where it is"
    );
    assert_eq!(stays.header("set-cookie"), None);
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
    let b1 = Backend::checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], CHECKS, 1));
    let t0 = token("web", 2, 0);
    for _ in 0..15 {
        let response = limpet.get_token(Some(&t0));
        assert_eq!(response.body_text(), "s0 /");
        assert_eq!(response.header("set-cookie"), None);
        // A sleep on purpose: the checks go on, and flap, between requests.
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
        // A sleep on purpose: the window is the measure.
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
    let b1 = Backend::checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let passive = "max_fails = 2\nfail_window = \"10s\"\neject_time = \"1s\"\n";
    let limpet = Limpet::start(&config(&[dead_address(), b1.addr], passive, 1));
    let t0 = token("web", 2, 0);
    let errors = || limpet.total(|r| r.backend_connect_errors);
    for _ in 0..6 {
        let response = limpet.get_token(Some(&t0));
        assert_eq!(
            response.body_text(),
            "s1 /",
            "a connect failure fails over at once"
        );
        assert!(response.header("set-cookie").is_some());
        if errors() == 2 {
            // The ejection reaches the worker as a new snapshot.
            assert!(limpet.snapshot_reached(2));
        }
    }
    assert_eq!(errors(), 2, "ejected after max_fails: no more attempts");
    // A sleep on purpose: past eject_time.
    thread::sleep(Duration::from_millis(1300));
    assert_eq!(limpet.get_token(Some(&t0)).body_text(), "s1 /");
    assert_eq!(errors(), 3, "tried again after eject_time");
}

#[test]
fn draining_keeps_sessions_until_the_drain_timeout_then_moves_them() {
    let b0 = Backend::checked("s0", Arc::new(AtomicBool::new(true)), Default::default());
    let b1 = Backend::checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let limpet = Limpet::start(&config(
        &[b0.addr, b1.addr],
        "drain_timeout = \"500ms\"\n",
        1,
    ));
    let control = limpet.running().control().clone();
    futures_executor::block_on(control.set_admin("web", "s0", AdminState::Draining)).unwrap();
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    assert!(eventually(Duration::from_secs(1), || limpet
        .get_token(None)
        .body_text()
        == "s1 /"));
    let stuck = limpet.get_token(Some(&t0));
    assert_eq!(
        stuck.body_text(),
        "s0 /",
        "draining: stuck sessions still arrive"
    );
    assert_eq!(stuck.header("set-cookie"), None);
    let hits = limpet.total(|r| r.servers[0][0].sticky_hits);
    assert!(
        hits >= 1,
        "the operator sees sticky requests still reaching s0"
    );

    // A sleep on purpose: past drain_timeout.
    thread::sleep(Duration::from_millis(700));
    let moved = limpet.get_token(Some(&t0));
    assert_eq!(
        moved.body_text(),
        "s1 /",
        "after drain_timeout the session moves"
    );
    assert_eq!(
        moved.header("set-cookie"),
        Some(format!("SERVERID={t1}; Path=/; HttpOnly").as_str())
    );
}
