//! The admin listener (issue 6): stats, metrics, server states, weights,
//! token lookups, the bearer token, and redaction.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;

use common::*;

/// Two or three servers behind an insert-mode group, with `persistence`
/// keys and an admin listener with `admin` keys.
fn config(addrs: &[SocketAddr], admin: &str, persistence: &str) -> String {
    insert_config(
        addrs,
        &format!("{persistence}\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n"),
    )
}

fn pair() -> (Backend, Backend) {
    (
        Backend::named("s0", Default::default()),
        Backend::named("s1", Default::default()),
    )
}

/// `GET /` on a fresh connection, with `Cookie: cookie` if given.
fn get(limpet: &Limpet, cookie: Option<&str>) -> Response {
    limpet.client().get_with("/", cookie)
}

#[test]
fn stats_and_metrics_count_what_happened() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    let first = get(&limpet, None);
    let cookie = first.cookie_pair();
    for _ in 0..3 {
        get(&limpet, Some(&cookie));
    }
    get(&limpet, Some("SERVERID=garbage"));

    let stats = limpet.stats();
    let servers = &stats["groups"][0]["servers"];
    assert_eq!(stats["groups"][0]["name"], "web");
    assert_eq!(stats["listeners"][0]["name"], "test");
    assert_eq!(stats["listeners"][0]["address"], limpet.addr.to_string());
    assert_eq!(stats["listeners"][0]["https"], false);
    assert_eq!(servers[0]["admin"], "enabled");
    assert_eq!(servers[0]["health"], "up");
    let responses: u64 = (0..2)
        .map(|i| servers[i]["responses"].as_u64().unwrap())
        .sum();
    assert_eq!(responses, 5);
    assert_eq!(stats["sticky"]["hits"], 3);
    assert_eq!(stats["sticky"]["new"], 2);
    assert_eq!(stats["sticky"]["refused"]["garbled"], 1);
    assert_eq!(stats["workers"][0]["requests"], 5);

    let metrics = limpet.admin("GET", "/metrics", "", None);
    assert_eq!(metrics.status, 200);
    let text = metrics.body_text();
    assert!(
        text.contains("limpet_requests_total{worker=\"0\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("limpet_sticky_requests_total{outcome=\"hit\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("limpet_sticky_refused_total{reason=\"garbled\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "limpet_server_state{group=\"web\",server=\"s0\",admin=\"enabled\",health=\"up\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn drain_disable_and_enable_over_http() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    let t0 = limpet.admin("GET", "/sticky/web/s0", "", None).json()["cookie"]
        .as_str()
        .unwrap()
        .to_string();
    let drained = limpet
        .admin("POST", "/servers/web/s0/drain", "", None)
        .json();
    assert_eq!(drained["admin"], "draining");
    let generation = drained["snapshot"].as_u64().unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_eq!(
        get(&limpet, Some(&t0)).body_text(),
        "s0 /",
        "stuck sessions stay while draining"
    );
    for _ in 0..3 {
        assert_eq!(
            get(&limpet, None).body_text(),
            "s1 /",
            "no new session on a draining server"
        );
    }
    let stats = limpet.stats();
    assert_eq!(stats["groups"][0]["servers"][0]["admin"], "draining");
    assert!(
        stats["groups"][0]["servers"][0]["sticky_hits"]
            .as_u64()
            .unwrap()
            >= 1
    );

    assert_eq!(
        limpet
            .admin("POST", "/servers/web/nope/drain", "", None)
            .status,
        404
    );
    assert_eq!(
        limpet
            .admin("POST", "/servers/web/s0/explode", "", None)
            .status,
        404
    );
    assert_eq!(
        limpet
            .admin("GET", "/servers/web/s0/drain", "", None)
            .status,
        405
    );
    assert_eq!(limpet.admin("GET", "/nothing", "", None).status, 404);
    limpet
        .admin("POST", "/servers/web/s0/enable", "", None)
        .json();
}

#[test]
fn weights_change_without_a_restart() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    let answer = limpet
        .admin("PUT", "/servers/web/s1/weight", "3", None)
        .json();
    let generation = answer["snapshot"].as_u64().unwrap();
    assert!(limpet.snapshot_reached(generation));
    let order: String = (0..8)
        .map(|_| get(&limpet, None).body_text()[1..2].to_string())
        .collect();
    assert_eq!(order, "10111011", "smooth weighted round robin, 1:3");
    assert_eq!(
        limpet
            .admin("PUT", "/servers/web/s1/weight", "0", None)
            .status,
        400
    );
    assert_eq!(
        limpet
            .admin("PUT", "/servers/web/zz/weight", "2", None)
            .status,
        404
    );
}

#[test]
fn token_lookup_says_which_server_and_why_not() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    let pinned = limpet.admin("GET", "/sticky/web/s1", "", None).json();
    let token = pinned["token"].as_str().unwrap();
    assert_eq!(pinned["cookie"], format!("SERVERID={token}"));
    let found = limpet
        .admin("GET", &format!("/sticky/web?token={token}"), "", None)
        .json();
    assert_eq!(
        (found["status"].as_str(), found["server"].as_str()),
        (Some("valid"), Some("s1"))
    );
    let garbled = limpet.admin("GET", "/sticky/web?token=%%", "", None).json();
    assert_eq!(garbled["status"], "garbled");
    let unknown = limpet
        .admin("GET", "/sticky/web?token=AAAAAAAAAAA", "", None)
        .json();
    assert_eq!(unknown["status"], "unknown");
    assert_eq!(
        get(&limpet, Some(&format!("SERVERID={token}"))).body_text(),
        "s1 /"
    );
}

#[test]
fn the_bearer_token_guards_everything_and_secrets_stay_secret() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(
        &[b0.addr, b1.addr],
        "token = \"admin-secret-0123456789\"",
        "keys = [\"signing-key-0123456789\"]\ntoken_secret = \"hash-secret-0123456789\"\n",
    ));
    assert_eq!(limpet.admin("GET", "/stats", "", None).status, 401);
    assert_eq!(limpet.admin("GET", "/stats", "", Some("wrong")).status, 401);
    assert_eq!(
        limpet
            .admin("POST", "/servers/web/s0/drain", "", None)
            .status,
        401
    );
    let config = limpet.admin("GET", "/config", "", Some("admin-secret-0123456789"));
    assert_eq!(config.status, 200);
    let text = config.body_text();
    assert!(text.contains("groups") && text.contains("s0"), "{text}");
    for secret in ["admin-secret", "signing-key", "hash-secret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("<redacted>"));
}

#[test]
fn reload_without_a_file_is_refused_and_changes_nothing() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    let refused = limpet.admin("POST", "/reload", "", None);
    assert_eq!(refused.status, 409);
    assert!(refused.body_text().contains("nothing changed"));
}

#[test]
fn reload_over_http_reads_the_file_and_keeps_a_drain() {
    let (b0, b1) = pair();
    let b2 = Backend::named("s2", Default::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limpet.toml");
    std::fs::write(&path, config(&[b0.addr, b1.addr], "", "")).unwrap();
    let mut limpet = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    limpet.running = limpet.running.take().map(|r| r.reload_from(path.clone()));
    let t0 = limpet.admin("GET", "/sticky/web/s0", "", None).json()["cookie"]
        .as_str()
        .unwrap()
        .to_string();
    limpet
        .admin("POST", "/servers/web/s0/drain", "", None)
        .json();

    std::fs::write(&path, config(&[b0.addr, b1.addr, b2.addr], "", "")).unwrap();
    let reloaded = limpet.admin("POST", "/reload", "", None).json();
    assert_eq!(reloaded["reloaded"], true);
    assert!(limpet.snapshot_reached(reloaded["snapshot"].as_u64().unwrap()));
    let stats = limpet.stats();
    let servers = &stats["groups"][0]["servers"];
    assert_eq!(
        servers[0]["admin"], "draining",
        "the drain survived: {stats}"
    );
    assert_eq!(servers.as_array().unwrap().len(), 3);
    assert_eq!(get(&limpet, Some(&t0)).body_text(), "s0 /");
    let fresh: std::collections::BTreeSet<String> =
        (0..4).map(|_| get(&limpet, None).body_text()).collect();
    assert_eq!(fresh, ["s1 /".to_string(), "s2 /".to_string()].into());

    // A bad file: 409 naming the mistake, and the running config stays.
    std::fs::write(&path, "[[listeners]]\nname = 7\n").unwrap();
    let refused = limpet.admin("POST", "/reload", "", None);
    assert_eq!(refused.status, 409);
    let why = refused.body_text();
    assert!(
        why.contains("limpet.toml:2") && why.contains("name"),
        "the answer names file, line and key: {why}"
    );
    let stats = limpet.stats();
    assert_eq!(stats["groups"][0]["servers"].as_array().unwrap().len(), 3);
}

#[test]
fn the_admin_port_is_never_shared() {
    let (b0, b1) = pair();
    let first = Limpet::start(&config(&[b0.addr, b1.addr], "", ""));
    let admin = first.running().admin_addr().unwrap();
    let second = config(&[b0.addr, b1.addr], "", "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"{admin}\""),
    );
    let err = limpet::server::start(limpet::config::parse(&second, "second.toml").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already in use") && err.contains(&admin.to_string()),
        "{err}"
    );
    assert_eq!(first.admin("GET", "/stats", "", None).status, 200);
}
