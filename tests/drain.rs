//! A drain you can watch (issue 18 item 6, SPEC §6): per server, requests
//! in flight (open tunnels included) and persistent requests per second in
//! `/stats`, `/metrics` and the drain call's answer; the state turning
//! `drained` once nothing is in flight on any core and no persistent
//! request arrived for 10 s; the drain call's `?timeout=`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

/// Backend `s0`: upgrades a request asking for it and echoes the tunnel's
/// bytes until the client closes; holds `/slow` until `release` is set;
/// answers anything else with `s0 <target>`.
fn backend(release: Arc<AtomicBool>) -> Backend {
    Backend::spawn(move |mut conn| {
        while let Some(request) = conn.read_request() {
            if request.header("upgrade").is_some() {
                conn.stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .unwrap();
                // A tunnel may stay quiet for longer than a read timeout.
                conn.stream.set_read_timeout(None).unwrap();
                loop {
                    let pending = std::mem::take(&mut conn.pending);
                    if !pending.is_empty() && conn.stream.write_all(&pending).is_err() {
                        return;
                    }
                    if !conn.fill() && conn.pending.is_empty() {
                        return;
                    }
                }
            }
            if request.target == "/slow" {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            if conn
                .stream
                .write_all(&ok(&format!("s0 {}", request.target)))
                .is_err()
            {
                return;
            }
        }
    })
}

fn s0_cookie() -> String {
    format!("SERVERID={}", token("web", 2, 0))
}

/// The metrics line of `family` for server `server`, its value.
fn metric(limpet: &Limpet, family: &str, server: &str) -> f64 {
    let text = limpet.admin("GET", "/metrics", "", None).body_text();
    let prefix = format!("{family}{{group=\"web\",server=\"{server}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .parse()
        .unwrap()
}

fn drain_state(limpet: &Limpet) -> serde_json::Value {
    limpet.server_stats("s0")["drain"]["state"].clone()
}

#[test]
fn a_drain_reads_drained_once_requests_tunnels_and_sessions_have_stopped() {
    let release = Arc::new(AtomicBool::new(false));
    let b0 = backend(release.clone());
    let b1 = Backend::named("s1", log());
    let limpet = Limpet::start(&insert_config(&[b0.addr, b1.addr], ADMIN));
    let cookie = s0_cookie();

    // A WebSocket tunnel through s0, opened with its session.
    let mut tunnel = limpet.client();
    tunnel.send(
        format!("GET /ws HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(tunnel.read_response(true).unwrap().status, 101);
    tunnel.send(b"ping");
    assert_eq!(tunnel.conn.read_exact(4).unwrap(), b"ping");
    // And a request that s0 holds.
    let slow_addr = limpet.addr;
    let slow_cookie = cookie.clone();
    let slow = thread::spawn(move || {
        Client::connect(slow_addr)
            .get_with("/slow", Some(&slow_cookie))
            .body_text()
    });
    assert!(
        eventually(Duration::from_secs(5), || {
            limpet.server_stats("s0")["in_flight"] == 2
        }),
        "the held request and the tunnel: {}",
        limpet.server_stats("s0")
    );
    let s0 = limpet.server_stats("s0");
    assert_eq!(s0["tunnels"], 1);
    assert_eq!(s0["drain"], serde_json::Value::Null, "not draining yet");

    let drained = limpet.admin("POST", "/servers/web/s0/drain", "", None);
    assert_eq!(drained.status, 200);
    let drained = drained.json();
    assert_eq!(drained["admin"], "draining");
    assert_eq!(drained["in_flight"], 2, "{drained}");
    assert_eq!(drained["tunnels"], 1);
    assert_eq!(drained["drain"]["state"], "draining");
    assert_eq!(drained["drain"]["in_flight"], 2);
    assert!(drained["persistent_per_second"].is_number());
    assert!(limpet.snapshot_reached(drained["snapshot"].as_u64().unwrap()));

    // Sessions keep arriving: counted, shown as a rate, still draining.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let response = limpet.client().get_with("/", Some(&cookie));
        assert_eq!(
            response.body_text(),
            "s0 /",
            "a draining server keeps its sessions"
        );
        // Pacing, not waiting for anything: about 10 persistent requests a second.
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            limpet.server_stats("s0")["persistent_per_second"]
                .as_f64()
                .unwrap()
                > 1.0
        }),
        "{}",
        limpet.server_stats("s0")
    );
    let s0 = limpet.server_stats("s0");
    assert_eq!(s0["drain"]["state"], "draining");
    assert!(s0["drain"]["persistent_per_second"].as_f64().unwrap() > 1.0);
    assert!(
        metric(
            &limpet,
            "limpet_server_persistent_requests_per_second",
            "s0"
        ) > 1.0
    );
    assert_eq!(
        metric(&limpet, "limpet_server_in_flight_requests", "s0"),
        2.0
    );
    assert_eq!(metric(&limpet, "limpet_server_open_tunnels", "s0"), 1.0);
    assert_eq!(metric(&limpet, "limpet_server_drained", "s0"), 0.0);
    assert_eq!(
        limpet.server_stats("s1")["drain"],
        serde_json::Value::Null,
        "only s0 drains"
    );

    // The held request ends: only the tunnel is left in flight.
    release.store(true, Ordering::SeqCst);
    assert_eq!(slow.join().unwrap(), "s0 /slow");
    assert!(eventually(Duration::from_secs(5), || {
        limpet.server_stats("s0")["in_flight"] == 1
    }));
    // Ten quiet seconds pass with the tunnel open: not drained.
    assert!(
        eventually(Duration::from_secs(20), || {
            limpet.server_stats("s0")["drain"]["quiet_s"]
                .as_u64()
                .is_some_and(|q| q >= 11)
        }),
        "{}",
        limpet.server_stats("s0")
    );
    let s0 = limpet.server_stats("s0");
    assert_eq!(s0["drain"]["state"], "draining", "the tunnel is open: {s0}");
    assert_eq!(s0["in_flight"], 1);
    tunnel.send(b"still here");
    assert_eq!(tunnel.conn.read_exact(10).unwrap(), b"still here");

    // The tunnel closes: drained on every core's word.
    tunnel.conn.stream.shutdown(Shutdown::Both).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || drain_state(&limpet) == "drained"),
        "{}",
        limpet.server_stats("s0")
    );
    let s0 = limpet.server_stats("s0");
    assert_eq!(
        (s0["in_flight"].as_u64(), s0["tunnels"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(s0["admin"], "draining", "the admin state is the operator's");
    assert_eq!(metric(&limpet, "limpet_server_drained", "s0"), 1.0);
    assert_eq!(
        metric(&limpet, "limpet_server_in_flight_requests", "s0"),
        0.0
    );
    let again = limpet
        .admin("POST", "/servers/web/s0/drain", "", None)
        .json();
    assert_eq!(again["drain"]["state"], "drained", "{again}");

    // A persistent request makes it draining again.
    assert_eq!(
        limpet.client().get_with("/", Some(&cookie)).body_text(),
        "s0 /"
    );
    assert!(eventually(Duration::from_secs(5), || drain_state(&limpet)
        == "draining"));
    // Enabled: no drain to show.
    limpet.admin("POST", "/servers/web/s0/enable", "", None);
    assert_eq!(limpet.server_stats("s0")["drain"], serde_json::Value::Null);
    assert_eq!(metric(&limpet, "limpet_server_drained", "s0"), 0.0);
}

#[test]
fn the_drain_call_timeout_overrides_the_groups() {
    let (b0, b1) = (Backend::named("s0", log()), Backend::named("s1", log()));
    let limpet = Limpet::start(&insert_config(
        &[b0.addr, b1.addr],
        &format!("{ADMIN}\n[groups.web.health]\ndrain_timeout = \"5m\"\n"),
    ));
    let cookie = s0_cookie();

    for (query, why) in [
        ("?timeout=soon", "soon"),
        ("?timeout=0s", "at least"),
        ("?timeout=", "duration"),
    ] {
        let refused = limpet.admin("POST", &format!("/servers/web/s0/drain{query}"), "", None);
        assert_eq!(refused.status, 400, "{query}");
        let text = refused.body_text();
        assert!(
            text.contains("timeout") && text.contains(why),
            "{query}: {text}"
        );
    }
    let refused = limpet.admin("POST", "/servers/web/s0/disable?timeout=1s", "", None);
    assert_eq!(refused.status, 400);
    assert_eq!(
        limpet.server_stats("s0")["admin"],
        "enabled",
        "a refused call changes nothing"
    );

    // The group's timeout without one.
    let drained = limpet
        .admin("POST", "/servers/web/s1/drain", "", None)
        .json();
    assert_eq!(drained["drain"]["timeout_s"], 300.0);
    limpet.admin("POST", "/servers/web/s1/enable", "", None);

    let drained = limpet.admin("POST", "/servers/web/s0/drain?timeout=1s", "", None);
    assert_eq!(drained.status, 200, "{}", drained.body_text());
    let drained = drained.json();
    assert_eq!(drained["drain"]["timeout_s"], 1.0);
    assert_eq!(drained["drain"]["expired"], false);
    assert!(limpet.snapshot_reached(drained["snapshot"].as_u64().unwrap()));
    // After the second, the session moves (long before the group's 5 m).
    assert!(
        eventually(Duration::from_secs(10), || {
            limpet.client().get_with("/", Some(&cookie)).body_text() == "s1 /"
        }),
        "the session moved after the drain's own timeout"
    );
    let moved = limpet.client().get_with("/", Some(&cookie));
    assert_eq!(moved.body_text(), "s1 /");
    assert!(
        moved
            .set_cookies()
            .iter()
            .any(|c| c.starts_with(&format!("SERVERID={}", token("web", 2, 1)))),
        "a cookie for the new server: {:?}",
        moved.set_cookies()
    );
    let s0 = limpet.server_stats("s0");
    assert_eq!(s0["drain"]["expired"], true, "{s0}");
    assert_eq!(s0["drain_expired"], true);
}
