//! Strict persistence end to end (SPEC §3.8, §7): with
//! `on_server_down = "refuse"` a session whose server is down, ejected,
//! disabled or refusing connections, or whose fresh connection dies before
//! answering, gets `503` with `Retry-After` and no cookie, while clients
//! without a session are still balanced to the healthy servers; a draining
//! server still serves its sessions.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use limpet::control::AdminState;

const STRICT: &str = "on_server_down = \"refuse\"\n";

/// Insert mode, strict, round robin over `addrs` (`s0`, `s1`, …), with
/// `health` keys in `[groups.web.health]` and an admin listener.
fn strict_config(addrs: &[SocketAddr], health: &str) -> String {
    insert_config(
        addrs,
        &format!("{STRICT}\n[groups.web.health]\n{health}\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
    )
}

/// Asserts `response` is the strict refusal: 503, `Retry-After` within
/// `retry_after`, no cookie.
fn assert_refused(response: &Response, retry_after: std::ops::RangeInclusive<u64>) {
    assert_eq!(response.status, 503, "{}", response.body_text());
    let secs: u64 = response
        .header("retry-after")
        .expect("a Retry-After")
        .parse()
        .unwrap();
    assert!(retry_after.contains(&secs), "Retry-After: {secs}");
    assert!(response.set_cookies().is_empty(), "no new cookie");
}

/// A client without a session is balanced to `s1`, the healthy server.
fn assert_new_clients_go_to_s1(limpet: &Limpet) {
    let t1 = token("web", 2, 1);
    for _ in 0..4 {
        let new = limpet.get_token(None);
        assert_eq!((new.status, new.body_text().as_str()), (200, "s1 /"));
        assert!(new.set_cookies()[0].starts_with(&format!("SERVERID={t1};")));
    }
}

#[test]
fn a_down_server_refuses_its_sessions_and_comes_back_with_them() {
    let up0 = Arc::new(AtomicBool::new(true));
    let b0 = Backend::checked("s0", up0.clone(), Default::default());
    let b1 = Backend::checked("s1", Arc::new(AtomicBool::new(true)), Default::default());
    let checks = "path = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n";
    let limpet = Limpet::start(&strict_config(&[b0.addr, b1.addr], checks));
    let t0 = token("web", 2, 0);
    assert_eq!(limpet.get_token(Some(&t0)).body_text(), "s0 /");

    up0.store(false, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(10), || {
        limpet.server_stats("s0")["health"] == "down"
    }));
    assert!(eventually(Duration::from_secs(10), || {
        limpet.get_token(Some(&t0)).status == 503
    }));
    assert_refused(&limpet.get_token(Some(&t0)), 5..=5);
    assert_new_clients_go_to_s1(&limpet);
    assert!(limpet.stats()["sticky"]["unavailable"].as_u64().unwrap() >= 1);

    // Back up: the session is still s0's (it never moved).
    up0.store(true, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(10), || {
        limpet.get_token(Some(&t0)).status == 200
    }));
    let back = limpet.get_token(Some(&t0));
    assert_eq!(back.body_text(), "s0 /");
    assert!(back.set_cookies().is_empty());
}

#[test]
fn a_server_refusing_connections_then_ejected_gives_503_with_the_ejection_left() {
    let b1 = Backend::named("s1", log());
    let passive = "max_fails = 1\nfail_window = \"10s\"\neject_time = \"30s\"\n";
    let limpet = Limpet::start(&strict_config(&[dead_address(), b1.addr], passive));
    let t0 = token("web", 2, 0);
    // The connect fails: no retry on s1, a 503 with the default 5 s.
    assert_refused(&limpet.get_token(Some(&t0)), 5..=5);
    assert_eq!(limpet.total(|r| r.backend_connect_errors), 1);
    assert_eq!(limpet.total(|r| r.retries.iter().sum()), 0, "no retry");
    // Ejected: what is left of the 30 s.
    assert!(eventually(Duration::from_secs(10), || {
        limpet.server_stats("s0")["health"] == "ejected"
    }));
    assert!(eventually(Duration::from_secs(10), || {
        let response = limpet.get_token(Some(&t0));
        response.status == 503 && response.header("retry-after") != Some("5")
    }));
    assert_refused(&limpet.get_token(Some(&t0)), 20..=30);
    assert_eq!(
        limpet.total(|r| r.backend_connect_errors),
        1,
        "an ejected server is not tried"
    );
    assert_new_clients_go_to_s1(&limpet);
}

#[test]
fn disabled_refuses_and_draining_still_serves_its_sessions() {
    let (b0, b1) = (Backend::named("s0", log()), Backend::named("s1", log()));
    let limpet = Limpet::start(&strict_config(&[b0.addr, b1.addr], ""));
    let t0 = token("web", 2, 0);
    let control = limpet.running().control().clone();

    let generation =
        futures_executor::block_on(control.set_admin("web", "s0", AdminState::Draining)).unwrap();
    assert!(limpet.snapshot_reached(generation));
    let stuck = limpet.get_token(Some(&t0));
    assert_eq!((stuck.status, stuck.body_text().as_str()), (200, "s0 /"));
    assert!(stuck.set_cookies().is_empty());
    assert_new_clients_go_to_s1(&limpet);

    let generation =
        futures_executor::block_on(control.set_admin("web", "s0", AdminState::Disabled)).unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_refused(&limpet.get_token(Some(&t0)), 5..=5);
    assert_new_clients_go_to_s1(&limpet);
}

#[test]
fn a_connection_dying_before_the_answer_is_not_retried_elsewhere() {
    // s0 closes every connection without answering.
    let b0 = Backend::respond(|_| None);
    let log1 = log();
    let b1 = Backend::named("s1", log1.clone());
    let limpet = Limpet::start(&strict_config(&[b0.addr, b1.addr], ""));
    let t0 = token("web", 2, 0);
    assert_refused(&limpet.get_token(Some(&t0)), 5..=5);
    assert!(log1.lock().unwrap().is_empty(), "s1 never saw the request");

    // The same group moving sessions retries on s1: the rule is the key's.
    let moving = Limpet::start(&insert_config(&[b0.addr, b1.addr], ""));
    let moved = moving.get_token(Some(&t0));
    assert_eq!((moved.status, moved.body_text().as_str()), (200, "s1 /"));
}

#[test]
fn on_server_down_is_checked() {
    let base = insert_config(&["127.0.0.1:1"], "");
    let err = limpet::config::parse(&format!("{base}on_server_down = \"stay\"\n"), "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("on_server_down") && err.contains("unknown variant `stay`"),
        "{err}"
    );
    let strict = limpet::config::parse(&format!("{base}{STRICT}"), "t.toml").unwrap();
    assert!(strict.groups[0].persistence.refuses_moves());
}
