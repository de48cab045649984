//! The admin listener against other web sites in the operator's browser
//! (issue 19): a cross-site POST is refused, a foreign `Host` (DNS
//! rebinding) gets 421, and the admin basics: `HEAD`, `/ready`, `/live`,
//! `/config` as JSON with secrets redacted, 404 listing the endpoints, the
//! status page's files.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn config(addrs: &[SocketAddr], admin: &str) -> String {
    insert_config(
        addrs,
        &format!("token_secret = \"signing-key-0123456789abcdef\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n"),
    )
}

fn pair() -> (Backend, Backend) {
    (
        Backend::named("s0", Default::default()),
        Backend::named("s1", Default::default()),
    )
}

/// Sends `head` (without the final CRLF) and `body` to the admin listener.
fn raw(limpet: &Limpet, head: &str, body: &str) -> Response {
    let addr = limpet.running().admin_addr().unwrap();
    let mut client = Client::connect(addr);
    let head = head.replace("{addr}", &addr.to_string());
    client.send(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let is_head = head.starts_with("HEAD ");
    client.read_response(is_head).unwrap()
}

fn admin_state(limpet: &Limpet, server: &str) -> String {
    limpet.server_stats(server)["admin"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_cross_site_post_is_refused_and_changes_nothing() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], ""));
    // What a form on evil.example submits: a simple request, no preflight.
    let evil = raw(
        &limpet,
        "POST /servers/web/s0/drain HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\n\
         Content-Type: text/plain\r\n",
        "x",
    );
    assert_eq!(evil.status, 403, "{}", evil.body_text());
    assert_eq!(admin_state(&limpet, "s0"), "enabled");
    // No Origin at all (curl without the header) is refused the same way.
    let plain = raw(
        &limpet,
        "POST /servers/web/s0/disable HTTP/1.1\r\nHost: {addr}\r\n",
        "",
    );
    assert_eq!(plain.status, 403);
    // A preflight gets no CORS permission.
    let preflight = raw(
        &limpet,
        "OPTIONS /servers/web/s0/drain HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-limpet-admin\r\n",
        "",
    );
    assert!(preflight.status >= 400, "{}", preflight.status);
    assert!(preflight.header("access-control-allow-origin").is_none());
    assert_eq!(admin_state(&limpet, "s0"), "enabled");

    // Each of the deliberate ways works.
    let header = raw(
        &limpet,
        "POST /servers/web/s0/drain HTTP/1.1\r\nHost: {addr}\r\nX-Limpet-Admin: 1\r\n",
        "",
    );
    assert_eq!(header.status, 200);
    assert_eq!(admin_state(&limpet, "s0"), "draining");
    let json = raw(
        &limpet,
        "POST /servers/web/s0/disable HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n",
        "{}",
    );
    assert_eq!(json.status, 200);
    assert_eq!(admin_state(&limpet, "s0"), "disabled");
    let same_origin = raw(
        &limpet,
        "POST /servers/web/s0/enable HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
         Content-Type: text/plain\r\n",
        "",
    );
    assert_eq!(same_origin.status, 200);
    assert_eq!(admin_state(&limpet, "s0"), "enabled");
    let weight = raw(
        &limpet,
        "PUT /servers/web/s1/weight HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n",
        "{\"weight\": 7}",
    );
    assert_eq!(weight.status, 200, "{}", weight.body_text());
    assert_eq!(limpet.server_stats("s1")["weight"], 7);
}

#[test]
fn a_valid_token_is_enough_and_a_wrong_one_never() {
    let (b0, b1) = pair();
    let token = "admin-secret-0123456789";
    let limpet = Limpet::start(&config(
        &[b0.addr, b1.addr],
        &format!("token = \"{token}\""),
    ));
    let bearer = raw(
        &limpet,
        &format!("POST /servers/web/s0/drain HTTP/1.1\r\nHost: {{addr}}\r\nAuthorization: Bearer {token}\r\n"),
        "",
    );
    assert_eq!(bearer.status, 200);
    let wrong = raw(
        &limpet,
        "POST /servers/web/s0/enable HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer nope\r\nX-Limpet-Admin: 1\r\n",
        "",
    );
    assert_eq!(wrong.status, 401);
    // The page and the probes need no token; the page holds none.
    let page = raw(&limpet, "GET / HTTP/1.1\r\nHost: {addr}\r\n", "");
    assert_eq!(page.status, 200);
    assert!(!page.body_text().contains(token));
    assert_eq!(
        raw(&limpet, "GET /live HTTP/1.1\r\nHost: {addr}\r\n", "").status,
        200
    );
    assert_eq!(
        raw(&limpet, "GET /stats HTTP/1.1\r\nHost: {addr}\r\n", "").status,
        401
    );
}

#[test]
fn a_foreign_host_gets_421_even_for_a_get() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr], ""));
    let port = limpet.running().admin_addr().unwrap().port();
    for host in [
        "evil.example:9901".to_string(),
        format!("evil.example:{port}"),
        "127.0.0.1:1".into(),
    ] {
        let answer = raw(
            &limpet,
            &format!("GET /stats HTTP/1.1\r\nHost: {host}\r\n"),
            "",
        );
        assert_eq!(answer.status, 421, "Host {host}");
        let drain = raw(
            &limpet,
            &format!(
                "POST /servers/web/s0/drain HTTP/1.1\r\nHost: {host}\r\nX-Limpet-Admin: 1\r\n"
            ),
            "",
        );
        assert_eq!(drain.status, 421, "Host {host}");
    }
    assert_eq!(admin_state(&limpet, "s0"), "enabled");
    for host in [
        "{addr}".to_string(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        let answer = raw(
            &limpet,
            &format!("GET /stats HTTP/1.1\r\nHost: {host}\r\n"),
            "",
        );
        assert_eq!(answer.status, 200, "Host {host}");
    }
}

#[test]
fn head_ready_live_config_and_unknown_paths() {
    let (b0, b1) = pair();
    let limpet = Limpet::start(&config(
        &[b0.addr, b1.addr],
        "token = \"admin-secret-0123456789\"",
    ));
    let auth = "Authorization: Bearer admin-secret-0123456789\r\n";
    let get = raw(
        &limpet,
        &format!("GET /stats HTTP/1.1\r\nHost: {{addr}}\r\n{auth}"),
        "",
    );
    let head = raw(
        &limpet,
        &format!("HEAD /stats HTTP/1.1\r\nHost: {{addr}}\r\n{auth}"),
        "",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(
        length > 100 && length.abs_diff(get.body.len()) < 64,
        "{length} vs {}",
        get.body.len()
    );
    for path in [
        "/",
        "/metrics",
        "/config",
        "/ready",
        "/live",
        "/status.js",
        "/status.css",
    ] {
        let answer = raw(
            &limpet,
            &format!("HEAD {path} HTTP/1.1\r\nHost: {{addr}}\r\n{auth}"),
            "",
        );
        assert_eq!(answer.status, 200, "HEAD {path}");
    }

    let ready = raw(&limpet, "GET /ready HTTP/1.1\r\nHost: {addr}\r\n", "");
    assert_eq!(ready.status, 200, "{}", ready.body_text());
    assert_eq!(ready.json()["ready"], true);
    assert_eq!(
        raw(&limpet, "GET /live HTTP/1.1\r\nHost: {addr}\r\n", "").json()["live"],
        true
    );

    let config = raw(
        &limpet,
        &format!("GET /config HTTP/1.1\r\nHost: {{addr}}\r\n{auth}"),
        "",
    );
    assert_eq!(config.header("content-type"), Some("application/json"));
    let text = config.body_text();
    let json = config.json();
    assert!(
        !text.contains("admin-secret") && !text.contains("signing-key"),
        "{text}"
    );
    assert!(text.contains("<redacted>"), "{text}");
    let groups = json["config"]["groups"].as_array().unwrap();
    assert_eq!(groups[0]["name"], "web");
    assert_eq!(groups[0]["servers"][1]["name"], "s1");
    assert_eq!(groups[0]["servers"][1]["address"], b1.addr.to_string());
    assert_eq!(json["config"]["admin"]["token"], "<redacted>");

    let unknown = raw(
        &limpet,
        &format!("GET /nope HTTP/1.1\r\nHost: {{addr}}\r\n{auth}"),
        "",
    );
    assert_eq!(unknown.status, 404);
    let unknown: serde_json::Value = serde_json::from_slice(&unknown.body).unwrap();
    let endpoints = unknown["endpoints"].as_array().unwrap().clone();
    for endpoint in ["GET /stats", "GET /metrics", "GET /ready", "POST /reload"] {
        assert!(
            endpoints.iter().any(|e| e == endpoint),
            "{endpoint} in {endpoints:?}"
        );
    }
    let page = raw(&limpet, "GET / HTTP/1.1\r\nHost: {addr}\r\n", "");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    assert!(page.body_text().contains("/status.js"));
    // Nothing fetched from elsewhere.
    for file in ["/", "/status.js", "/status.css"] {
        let body = raw(
            &limpet,
            &format!("GET {file} HTTP/1.1\r\nHost: {{addr}}\r\n"),
            "",
        )
        .body_text();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{file}"
        );
    }
}

#[test]
fn ready_waits_for_the_first_health_checks() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b0 = Backend::checked("s0", healthy, probes.clone());
    let toml = config_with(
        &[b0.addr],
        "[groups.web.health]\npath = \"/healthz\"\ninterval = \"300ms\"\ntimeout = \"100ms\"\n",
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let limpet = Limpet::start(&toml);
    let early = raw(&limpet, "GET /ready HTTP/1.1\r\nHost: {addr}\r\n", "");
    assert_eq!(early.status, 503, "{}", early.body_text());
    assert!(eventually(Duration::from_secs(5), || {
        raw(&limpet, "GET /ready HTTP/1.1\r\nHost: {addr}\r\n", "").status == 200
    }));
    assert!(probes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}
