//! Header persistence end to end (issue 18 item 1, SPEC §3.9): clients
//! that keep no cookies stay with their server through a token in a
//! request header (or a query parameter) that limpet answers in the same
//! response header when a session starts or moves; the backend never sees
//! the token, and the access log shows the parameter redacted. HTTP/1.1
//! and HTTP/2 streams alike, with real backends on 127.0.0.1.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;

use common::h2client::{self, Options, Req};
use common::*;

/// Two backends `s0` and `s1` answering `<name> <target>` behind a
/// round-robin, header-mode limpet (`X-Session`) with `persistence` keys
/// and `listener` keys.
struct Pair {
    logs: [Log; 2],
    backends: Vec<Option<Backend>>,
    limpet: Limpet,
}

fn header_pair(persistence: &str, listener: &str) -> Pair {
    let logs = [log(), log()];
    let backends = vec![
        Some(Backend::named("s0", logs[0].clone())),
        Some(Backend::named("s1", logs[1].clone())),
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.as_ref().unwrap().addr).collect();
    let toml = config_with(
        &addrs,
        "balance = \"round_robin\"",
        &format!(
            "[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\n{persistence}"
        ),
    )
    .replace(
        "default_group = \"web\"\n",
        &format!("default_group = \"web\"\n{listener}"),
    );
    Pair {
        logs,
        backends,
        limpet: Limpet::start(&toml),
    }
}

fn server_of(response: &Response) -> &str {
    std::str::from_utf8(&response.body[..2]).unwrap()
}

/// `GET path` with `X-Session: token` when given.
fn get(client: &mut Client, path: &str, token: Option<&str>) -> Response {
    let extra = token
        .map(|t| format!("X-Session: {t}\r\n"))
        .unwrap_or_default();
    client.get_host(path, "api.test", &extra)
}

/// Every request either backend received.
fn received(pair: &Pair) -> Vec<Received> {
    let mut all = pair.logs[0].lock().unwrap().clone();
    all.extend(pair.logs[1].lock().unwrap().iter().cloned());
    all
}

#[test]
fn a_cookie_less_client_sticks_by_header_over_20_requests_and_the_backend_never_sees_it() {
    let pair = header_pair("", "");
    let mut client = pair.limpet.client();
    let first = get(&mut client, "/start", None);
    assert_eq!(first.status, 200);
    let server = server_of(&first).to_owned();
    let index: u32 = server[1..].parse().unwrap();
    let token = token("web", 2, index);
    // The new session's token, in the configured spelling, and no cookie.
    assert_eq!(first.headers_named("X-Session"), [token.as_str()]);
    assert!(first.head.contains("\r\nX-Session: "), "{}", first.head);
    assert!(first.set_cookies().is_empty());
    assert_eq!(first.header("cache-control"), None);

    // Round robin would alternate; the header keeps every request on one
    // server, on this connection and on fresh ones, in any case spelling.
    for i in 0..20 {
        let response = if i % 2 == 0 {
            get(&mut client, &format!("/n{i}"), Some(&token))
        } else {
            let mut fresh = pair.limpet.client();
            fresh.get_host(
                &format!("/n{i}"),
                "api.test",
                &format!("x-session: {token}\r\n"),
            )
        };
        assert_eq!(response.status, 200);
        assert_eq!(server_of(&response), server, "request {i}");
        assert_eq!(response.header("x-session"), None, "stuck: nothing sent");
    }
    let all = received(&pair);
    assert_eq!(all.len(), 21);
    for request in &all {
        assert_eq!(request.header("x-session"), None, "{:?}", request.headers);
        assert!(
            !String::from_utf8_lossy(&request.raw).contains(&token),
            "the token reached the backend: {:?}",
            String::from_utf8_lossy(&request.raw)
        );
    }
    // Other fields still pass.
    assert_eq!(all[1].header("host"), Some("api.test"));
    assert!(pair.limpet.total(|r| r.sticky_hits) >= 20);
}

#[test]
fn a_query_parameter_token_is_removed_from_the_target_and_redacted_in_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let listener = format!("access_log = {:?}\n", path.display().to_string());
    let pair = header_pair("query = \"lb_session\"\n", &listener);
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let mut client = pair.limpet.client();
    let targets = [
        (format!("/a?x=1&lb_session={t1}&y=2"), "/a?x=1&y=2"),
        (format!("/b?lb_session={t1}"), "/b"),
        (format!("/c?lb_session={t1}&z=%20"), "/c?z=%20"),
        (format!("/d?z=3&lb_session={t1}"), "/d?z=3"),
    ];
    for (target, _) in &targets {
        let response = get(&mut client, target, None);
        assert_eq!(server_of(&response), "s1", "{target}");
        assert_eq!(response.header("x-session"), None);
    }
    // The header wins over a disagreeing parameter, and is sent again.
    let both = get(&mut client, &format!("/e?lb_session={t1}"), Some(&t0));
    assert_eq!(server_of(&both), "s0");
    assert_eq!(both.header("x-session"), Some(t0.as_str()));
    // A parameter of another name is not a token, nor removed.
    let other = get(&mut client, &format!("/f?session={t1}"), Some(&t0));
    assert_eq!(server_of(&other), "s0");
    assert_eq!(other.body_text(), format!("s0 /f?session={t1}"));

    let s1 = pair.logs[1].lock().unwrap().clone();
    let got: Vec<&str> = s1.iter().map(|r| r.target.as_str()).collect();
    let wanted: Vec<&str> = targets.iter().map(|(_, want)| *want).collect();
    assert_eq!(got, wanted);
    let s0 = pair.logs[0].lock().unwrap().clone();
    assert_eq!(s0[0].target, "/e");

    drop(pair); // stops limpet: every buffered line is written
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    // Only the line of the parameter that is not a token shows it.
    let with_token: Vec<&str> = text.lines().filter(|l| l.contains(&t1)).collect();
    assert_eq!(
        with_token.len(),
        1,
        "the token is in the access log:\n{text}"
    );
    assert!(with_token[0].contains("/f?session="), "{text}");
    assert!(
        text.contains("\"GET /a?x=1&lb_session=REDACTED&y=2\""),
        "{text}"
    );
    assert!(text.contains("\"GET /b?lb_session=REDACTED\""), "{text}");
    assert!(text.contains(&format!("\"GET /f?session={t1}\"")), "{text}");
}

#[test]
fn a_session_whose_server_is_down_moves_with_a_new_token_in_the_header() {
    let mut pair = header_pair("", "");
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let mut client = pair.limpet.client();
    let stuck = get(&mut client, "/", Some(&t0));
    assert_eq!(server_of(&stuck), "s0");
    assert_eq!(stuck.header("x-session"), None);
    // s0 stops: its port is closed and its connections shut.
    pair.backends[0] = None;
    let moved = get(&mut client, "/", Some(&t0));
    assert_eq!(moved.status, 200);
    assert_eq!(server_of(&moved), "s1");
    assert_eq!(moved.headers_named("x-session"), [t1.as_str()]);
    // The new token sticks, and is not sent again.
    for _ in 0..3 {
        let again = get(&mut client, "/", Some(&t1));
        assert_eq!(server_of(&again), "s1");
        assert_eq!(again.header("x-session"), None);
    }
    assert!(pair.limpet.total(|r| r.sticky_moved) >= 1);
}

#[test]
fn unknown_garbled_and_foreign_tokens_are_balanced_and_get_a_fresh_token() {
    let pair = header_pair("", "");
    let foreign = token("other", 2, 0);
    for bad in ["AAAAAAAAAAA", "not-a-token!", "", foreign.as_str()] {
        let mut client = pair.limpet.client();
        let response = get(&mut client, "/", Some(bad));
        assert_eq!(response.status, 200, "{bad:?}");
        let index: u32 = server_of(&response)[1..].parse().unwrap();
        assert_eq!(
            response.headers_named("x-session"),
            [token("web", 2, index).as_str()],
            "{bad:?}"
        );
    }
    assert!(pair.limpet.total(|r| r.sticky_refused.iter().sum()) >= 3);
    for request in received(&pair) {
        assert_eq!(request.header("x-session"), None);
    }
}

#[test]
fn signed_tokens_expire_timeout_after_they_were_sent_and_are_replaced() {
    const KEY: &str = "a-signing-key-of-16-bytes";
    let pair = header_pair(&format!("keys = [{KEY:?}]\ntimeout = \"10m\"\n"), "");
    let mut client = pair.limpet.client();
    let first = get(&mut client, "/", None);
    let token = first.header("x-session").unwrap().to_owned();
    assert_eq!(token.len(), 38, "a signed token");
    let server = server_of(&first).to_owned();
    for _ in 0..3 {
        let again = get(&mut client, "/", Some(&token));
        assert_eq!(server_of(&again), server);
        assert_eq!(again.header("x-session"), None, "never refreshed");
    }
    // The same token signed 601 s ago has expired (timeout = 10m); one
    // signed 500 s ago has not.
    use limpet::balance::ServerIdx;
    use limpet::sticky::{Signing, TokenKey, TokenTable};
    let signing = Signing::new(&[KEY], None, None)
        .unwrap()
        .with_timeout(Some(600))
        .unwrap();
    let table = TokenTable::build(
        &TokenKey::from_secret(None),
        "web",
        &["s0", "s1"],
        Some(signing),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |ago: u64| {
        let at = now - ago;
        let token = table.encode(ServerIdx(0), u32::try_from(at).unwrap(), at);
        String::from_utf8(token.as_bytes().to_vec()).unwrap()
    };
    let fresh = get(&mut client, "/", Some(&signed(500)));
    assert_eq!(server_of(&fresh), "s0");
    assert_eq!(fresh.header("x-session"), None);
    let refused_before = pair.limpet.total(|r| r.sticky_refused.iter().sum());
    let stale = get(&mut client, "/", Some(&signed(601)));
    assert_eq!(stale.status, 200);
    let renewed = stale.header("x-session").expect("a fresh token");
    assert_eq!(renewed.len(), 38);
    assert!(pair.limpet.total(|r| r.sticky_refused.iter().sum()) > refused_before);
}

#[test]
fn an_http2_stream_sticks_by_header_and_the_backend_never_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let listener = format!("access_log = {:?}\n", path.display().to_string());
    let pair = header_pair("query = \"sid\"\n", &listener);
    let addr = pair.limpet.addr;
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let first_token = seen.clone();
    h2client::run(async move {
        let (mut send, _conn) = h2client::connect(addr, Options::default()).await;
        let first = h2client::request(&mut send, Req::get("/h2")).await.unwrap();
        assert_eq!(first.status, 200);
        let token = first.header("x-session").unwrap().to_owned();
        let server = first.body_text()[..2].to_owned();
        let index: u32 = server[1..].parse().unwrap();
        assert_eq!(token, if index == 0 { t0.clone() } else { t1.clone() });
        assert!(first.set_cookies().is_empty());
        // Streams on the same connection and at once all stick.
        let pending: Vec<_> = (0..10)
            .map(|i| {
                let mut send = send.clone();
                let req = Req::get(&format!("/n{i}")).header("x-session", &token);
                tokio::spawn(async move { h2client::request(&mut send, req).await.unwrap() })
            })
            .collect();
        for task in pending {
            let response = task.await.unwrap();
            assert_eq!(&response.body_text()[..2], server);
            assert_eq!(response.header("x-session"), None);
        }
        // The query parameter, on a stream of its own.
        let other = if index == 0 { &t1 } else { &t0 };
        let by_query = h2client::request(&mut send, Req::get(&format!("/q?sid={other}&k=v")))
            .await
            .unwrap();
        assert_ne!(&by_query.body_text()[..2], server);
        assert!(
            by_query.body_text().ends_with(" /q?k=v"),
            "{}",
            by_query.body_text()
        );
        // A garbled token starts a new session: a fresh token comes back.
        let moved = h2client::request(&mut send, Req::get("/m").header("x-session", "garbage"))
            .await
            .unwrap();
        assert!(moved.header("x-session").is_some());
        *first_token.lock().unwrap() = token;
    });
    let first_token = seen.lock().unwrap().clone();
    assert_eq!(first_token.len(), 11);
    let all = received(&pair);
    assert_eq!(all.len(), 13);
    for request in &all {
        assert_eq!(request.header("x-session"), None, "{:?}", request.headers);
        assert!(!String::from_utf8_lossy(&request.raw).contains(&first_token));
        assert!(!request.target.contains("sid="), "{}", request.target);
    }
    drop(pair); // stops limpet: every buffered line is written
    let text = std::fs::read_to_string(&path).unwrap();
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    assert!(
        text.contains("\"GET /q?sid=REDACTED&k=v HTTP/2.0\""),
        "{text}"
    );
    assert!(!text.contains(&t0) && !text.contains(&t1), "{text}");
}

#[test]
fn admin_mint_and_lookup_answer_for_header_mode() {
    let backends = [Backend::named("s0", log()), Backend::named("s1", log())];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let toml = config_with(
        &addrs,
        "",
        "[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let limpet = Limpet::start(&toml);
    let minted = limpet.admin("GET", "/sticky/web/s1", "", None).json();
    let token = token("web", 2, 1);
    assert_eq!(minted["token"], token.as_str());
    assert_eq!(minted["cookie"], format!("X-Session: {token}"));
    // The line a response would carry, and no expiry for unsigned tokens.
    assert_eq!(
        minted["set_cookie"],
        serde_json::json!([format!("X-Session: {token}")])
    );
    assert_eq!(minted["expires"], serde_json::Value::Null);
    let looked = limpet
        .admin("GET", &format!("/sticky/web?token={token}"), "", None)
        .json();
    assert_eq!(looked["status"], "valid");
    assert_eq!(looked["server"], "s1");
    // The minted token routes.
    let mut client = limpet.client();
    assert_eq!(server_of(&get(&mut client, "/", Some(&token))), "s1");
    // GET /config shows the mode's keys.
    let config = limpet.admin("GET", "/config", "", None).json();
    let text = config.to_string();
    assert!(text.contains("X-Session"), "{text}");
}

/// Signed header tokens: mint's expiry is the token's own lifetime (the
/// smaller of `max_age` and `timeout`), the field having none.
#[test]
fn admin_mint_gives_a_signed_header_token_its_lifetime() {
    let backends = [Backend::named("s0", log())];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let toml = config_with(
        &addrs,
        "",
        "[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\nkeys = [\"0123456789abcdef0123\"]\nmax_age = \"2h\"\ntimeout = \"1h\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let limpet = Limpet::start(&toml);
    let minted = limpet.admin("GET", "/sticky/web/s0", "", None).json();
    assert_eq!(minted["max_age"], 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires = minted["expires"].as_u64().unwrap();
    assert!(
        (now + 3590..=now + 3610).contains(&expires),
        "{expires} vs {now}"
    );
    let token = minted["token"].as_str().unwrap();
    assert_eq!(
        minted["set_cookie"],
        serde_json::json!([format!("X-Session: {token}")])
    );
}

#[test]
fn limpet_check_refuses_cookie_keys_and_unsigned_timeout_in_header_mode_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limpet.toml");
    let base = config_with(&[dead_address()], "", "");
    for (keys, wanted) in [
        (
            "secure = true",
            "groups.web.persistence.secure applies only to the cookie modes (insert, rewrite), not mode = \"header\"",
        ),
        (
            "cookie = \"SID\"",
            "groups.web.persistence.cookie applies only to the cookie modes (insert, rewrite), not mode = \"header\"",
        ),
        (
            "timeout = \"10m\"",
            "groups.web.persistence.timeout needs signed tokens in mode = \"header\": set groups.web.persistence.keys",
        ),
    ] {
        let toml = format!(
            "{base}\n[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\n{keys}\n"
        );
        std::fs::write(&path, &toml).unwrap();
        let line_of_key = toml.lines().position(|line| line == keys).unwrap() + 1;
        let output = common::process::cli("check", &path);
        assert!(!output.status.success(), "check accepted {keys}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let located = format!("limpet.toml:{line_of_key}: {wanted}");
        assert!(stderr.contains(&located), "{stderr}\nwanted: {located}");
    }
    // The same keys without the offending one pass.
    let toml = format!(
        "{base}\n[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\nquery = \"sid\"\nkeys = [\"a-signing-key-of-16-bytes\"]\ntimeout = \"10m\"\n"
    );
    std::fs::write(&path, &toml).unwrap();
    let output = common::process::cli("check", &path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn with_on_server_down_refuse_a_pinned_header_session_gets_503_and_no_token() {
    let pair = header_pair("on_server_down = \"refuse\"\n", "");
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let control = pair.limpet.running().control().clone();
    let generation = futures_executor::block_on(control.set_admin(
        "web",
        "s0",
        limpet::control::AdminState::Disabled,
    ))
    .unwrap();
    assert!(pair.limpet.snapshot_reached(generation));
    let mut client = pair.limpet.client();
    let refused = get(&mut client, "/", Some(&t0));
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("x-session"), None);
    // Other sessions and new clients are served.
    let stuck = pair
        .limpet
        .client()
        .get_host("/", "api.test", &format!("X-Session: {t1}\r\n"));
    assert_eq!(server_of(&stuck), "s1");
    let fresh = get(&mut pair.limpet.client(), "/", None);
    assert_eq!(server_of(&fresh), "s1");
    assert_eq!(fresh.header("x-session"), Some(t1.as_str()));
    assert!(pair.logs[0].lock().unwrap().is_empty());
}
