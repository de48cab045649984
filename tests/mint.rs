//! The admin mint call (`GET /sticky/{group}/{server}`, issue 18 item 4):
//! its `Set-Cookie` lines are byte for byte what a browser gets from a
//! response, for each mode and cookie attribute, and sending the minted
//! cookie to the proxy reaches that server.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use common::*;

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

/// Two named backends behind insert mode with `persistence` keys.
fn insert(addrs: &[SocketAddr], persistence: &str) -> Limpet {
    Limpet::start(&insert_config(addrs, &format!("{persistence}\n{ADMIN}")))
}

fn pair() -> (Backend, Backend) {
    (Backend::named("s0", log()), Backend::named("s1", log()))
}

/// `GET /sticky/web/{server}{query}` as JSON (asserting 200).
fn mint(limpet: &Limpet, server: &str, query: &str) -> serde_json::Value {
    let answer = limpet.admin("GET", &format!("/sticky/web/{server}{query}"), "", None);
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    answer.json()
}

fn lines(minted: &serde_json::Value) -> Vec<String> {
    minted["set_cookie"]
        .as_array()
        .unwrap_or_else(|| panic!("no set_cookie in {minted}"))
        .iter()
        .map(|line| line.as_str().unwrap().to_owned())
        .collect()
}

/// The `Set-Cookie` field lines a new session on the first server gets
/// from a response (round robin starts with `s0`).
fn from_a_response(limpet: &Limpet) -> Vec<String> {
    let response = limpet.get_token(None);
    assert_eq!(response.body_text(), "s0 /");
    response
        .set_cookies()
        .iter()
        .map(|value| format!("Set-Cookie: {value}"))
        .collect()
}

/// The `Cookie` header a browser holding the minted cookies sends.
fn cookie_header(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| {
            let value = line.strip_prefix("Set-Cookie: ").unwrap();
            value.split(';').next().unwrap().to_owned()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn insert_lines_are_what_a_response_sets_and_pin_to_the_server() {
    let (b0, b1) = pair();
    let limpet = insert(&[b0.addr, b1.addr], "");
    let t0 = token("web", 2, 0);
    let minted = mint(&limpet, "s0", "");
    // The fields the call had before stay as they were.
    assert_eq!(minted["group"], "web");
    assert_eq!(minted["server"], "s0");
    assert_eq!(minted["token"], t0.as_str());
    assert_eq!(minted["cookie"], format!("SERVERID={t0}"));
    assert_eq!(minted["https"], false, "a plain-HTTP listener only");
    assert_eq!(
        lines(&minted),
        [
            format!("Set-Cookie: SERVERID={t0}; Path=/; HttpOnly"),
            format!("Set-Cookie: SERVERCORSID={t0}; Path=/; HttpOnly; Secure; SameSite=None"),
        ]
    );
    assert_eq!(minted["max_age"], serde_json::Value::Null);
    assert_eq!(minted["expires"], serde_json::Value::Null);
    assert_eq!(lines(&minted), from_a_response(&limpet));

    // A browser given these cookies reaches s1, however often it asks.
    let s1 = lines(&mint(&limpet, "s1", ""));
    let cookie = cookie_header(&s1);
    for _ in 0..4 {
        let response = limpet.client().get_with("/", Some(&cookie));
        assert_eq!(response.body_text(), "s1 /");
        assert!(response.set_cookies().is_empty(), "no new cookie: stuck");
    }
    // Either cookie alone does too.
    let twin = cookie.split("; ").nth(1).unwrap().to_owned();
    assert!(twin.starts_with("SERVERCORSID="), "{twin}");
    assert_eq!(
        limpet.client().get_with("/", Some(&twin)).body_text(),
        "s1 /"
    );
}

#[test]
fn a_timeout_gives_max_age_and_expires() {
    let (b0, b1) = pair();
    let limpet = insert(&[b0.addr, b1.addr], "timeout = \"10m\"\ncors = false");
    let t1 = token("web", 2, 1);
    let minted = mint(&limpet, "s1", "");
    assert_eq!(minted["max_age"], 600);
    let expires = minted["expires"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 590..=now + 600).contains(&expires),
        "{expires} vs {now}"
    );
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(expires));
    assert_eq!(
        lines(&minted),
        [format!(
            "Set-Cookie: SERVERID={t1}; Path=/; Max-Age=600; Expires={date}; HttpOnly"
        )],
        "cors = false: no twin"
    );
    let cookie = cookie_header(&lines(&minted));
    assert_eq!(
        limpet.client().get_with("/", Some(&cookie)).body_text(),
        "s1 /"
    );
}

#[test]
fn same_site_partitioned_and_the_scheme() {
    let (b0, b1) = pair();
    let t0 = token("web", 2, 0);
    let cases: [(&str, &str, Vec<String>); 4] = [
        (
            "same_site = \"Lax\"\ndomain = \"example.com\"\npath = \"/app\"",
            "",
            vec![
                format!("Set-Cookie: SERVERID={t0}; Path=/app; Domain=example.com; HttpOnly; SameSite=Lax"),
                format!("Set-Cookie: SERVERCORSID={t0}; Path=/app; Domain=example.com; HttpOnly; Secure; SameSite=None"),
            ],
        ),
        (
            "secure = true\nsame_site = \"Strict\"\npartitioned = true\nhttp_only = false",
            "",
            vec![
                format!("Set-Cookie: SERVERID={t0}; Path=/; Secure; SameSite=Strict; Partitioned"),
                format!("Set-Cookie: SERVERCORSID={t0}; Path=/; Secure; SameSite=None; Partitioned"),
            ],
        ),
        (
            "secure = true\nsame_site = \"None\"",
            "",
            vec![format!(
                "Set-Cookie: SERVERID={t0}; Path=/; HttpOnly; Secure; SameSite=None"
            )],
        ),
        (
            // Not written: Secure follows the scheme asked for.
            "same_site = \"Lax\"",
            "?https=true",
            vec![
                format!("Set-Cookie: SERVERID={t0}; Path=/; HttpOnly; Secure; SameSite=Lax"),
                format!("Set-Cookie: SERVERCORSID={t0}; Path=/; HttpOnly; Secure; SameSite=None"),
            ],
        ),
    ];
    for (persistence, query, expected) in cases {
        let limpet = insert(&[b0.addr, b1.addr], persistence);
        let minted = mint(&limpet, "s0", query);
        assert_eq!(lines(&minted), expected, "{persistence} {query}");
        assert_eq!(minted["https"], !query.is_empty());
        if query.is_empty() {
            assert_eq!(
                lines(&minted),
                from_a_response(&limpet),
                "{persistence}: as a response sets them"
            );
        }
    }
    let limpet = insert(&[b0.addr, b1.addr], "");
    let plain = mint(&limpet, "s0", "?https=false");
    assert_eq!(
        lines(&plain)[0],
        format!("Set-Cookie: SERVERID={t0}; Path=/; HttpOnly")
    );
    let bad = limpet.admin("GET", "/sticky/web/s0?https=maybe", "", None);
    assert_eq!(bad.status, 400);
    assert!(bad.body_text().contains("https"), "{}", bad.body_text());
    assert_eq!(limpet.admin("GET", "/sticky/web/s9", "", None).status, 404);
}

#[test]
fn rewrite_lines_carry_the_application_value_placeholder() {
    let backend = |name: &'static str| {
        Backend::respond(move |req| {
            let body = format!("{name} {}", req.target);
            Some(
                format!(
                    "HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=abc; Path=/\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        })
    };
    let (b0, b1) = (backend("s0"), backend("s1"));
    let limpet = Limpet::start(&config_with(
        &[b0.addr, b1.addr],
        "balance = \"round_robin\"",
        &format!(
            "[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"JSESSIONID\"\ndomain = \"example.com\"\n{ADMIN}"
        ),
    ));
    let t1 = token("web", 2, 1);
    let minted = mint(&limpet, "s1", "");
    assert_eq!(
        minted["cookie"],
        format!("JSESSIONID={t1}.<application value>")
    );
    assert_eq!(
        lines(&minted),
        [format!(
            "Set-Cookie: JSESSIONID={t1}.<application value>; Path=/; Domain=example.com; HttpOnly"
        )]
    );
    assert_eq!(minted["max_age"], serde_json::Value::Null);
    // The token in front of any value the application knows reaches s1.
    let response = limpet
        .client()
        .get_with("/", Some(&format!("JSESSIONID={t1}.abc")));
    assert_eq!(response.body_text(), "s1 /");
}

#[test]
fn behind_https_listeners_only_the_lines_are_https_ones() {
    let pki = tls::Pki::new();
    let leaf = pki.leaf("site", &["localhost"]);
    let (b0, b1) = pair();
    let t0 = token("web", 2, 0);
    let https = tls::https_config(
        &[b0.addr, b1.addr],
        &[&leaf],
        "",
        &format!("[groups.web.persistence]\nmode = \"insert\"\n{ADMIN}"),
    );
    let secure = [
        format!("Set-Cookie: SERVERID={t0}; Path=/; HttpOnly; Secure"),
        format!("Set-Cookie: SERVERCORSID={t0}; Path=/; HttpOnly; Secure; SameSite=None"),
    ];
    let limpet = Limpet::start(&https);
    let minted = mint(&limpet, "s0", "");
    assert_eq!(minted["https"], true);
    assert_eq!(lines(&minted), secure);
    let plain = mint(&limpet, "s0", "?https=false");
    assert_eq!(
        lines(&plain)[0],
        format!("Set-Cookie: SERVERID={t0}; Path=/; HttpOnly")
    );
    drop(limpet);

    // A plain listener reaches the group too: plain HTTP unless asked.
    let limpet = Limpet::start(&with_listener(&https, "plain", "127.0.0.1:0"));
    let minted = mint(&limpet, "s0", "");
    assert_eq!(minted["https"], false);
    assert_eq!(
        lines(&minted)[0],
        format!("Set-Cookie: SERVERID={t0}; Path=/; HttpOnly")
    );
    assert_eq!(lines(&mint(&limpet, "s0", "?https=true")), secure);
}
