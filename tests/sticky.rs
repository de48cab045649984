//! Session persistence end to end (SPEC §3 insert, §4 rewrite, §5 tokens),
//! byte-exact on the `Set-Cookie` lines, with real backends on 127.0.0.1.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use limpet::control::AdminState;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Two backends `s0` and `s1` answering `<name> <target>` behind a
/// round-robin, insert-mode limpet with `persistence` keys.
struct Pair {
    logs: [Log; 2],
    backends: Vec<Option<Backend>>,
    limpet: Limpet,
}

fn insert_pair(persistence: &str) -> Pair {
    let logs = [log(), log()];
    let backends = vec![
        Some(Backend::named("s0", logs[0].clone())),
        Some(Backend::named("s1", logs[1].clone())),
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.as_ref().unwrap().addr).collect();
    Pair {
        logs,
        backends,
        limpet: Limpet::start(&insert_config(&addrs, persistence)),
    }
}

fn server_of(response: &Response) -> &str {
    std::str::from_utf8(&response.body[..2]).unwrap()
}

#[test]
fn insert_new_session_gets_both_cookies_in_the_golden_form() {
    let pair = insert_pair("timeout = \"10m\"\n");
    let mut client = pair.limpet.client();
    let before = unix_now();
    let first = client.get_with("/", None);
    let server = server_of(&first).to_string();
    let index: u32 = server[1..].parse().unwrap();
    let token = token("web", 2, index);
    let cookies = first.set_cookies();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let expires = |line: &str| -> u64 {
        let date = line
            .split("Expires=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        httpdate::parse_http_date(date)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let at = expires(cookies[0]);
    assert!(
        (before + 600..=unix_now() + 600).contains(&at),
        "Expires is now + timeout"
    );
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at));
    assert_eq!(
        cookies[0],
        format!("SERVERID={token}; Path=/; Max-Age=600; Expires={date}; HttpOnly")
    );
    assert_eq!(
        cookies[1],
        format!("SERVERCORSID={token}; Path=/; Max-Age=600; Expires={date}; HttpOnly; Secure; SameSite=None")
    );
    assert_eq!(
        first.header("cache-control"),
        Some("no-cache=\"Set-Cookie\"")
    );

    // §3.3/§3.4: the cookie sticks, and is not sent again.
    for _ in 0..4 {
        let again = client.get_with("/", Some(&format!("SERVERID={token}")));
        assert_eq!(server_of(&again), server);
        assert!(again.set_cookies().is_empty());
        assert_eq!(again.header("cache-control"), None);
    }
    // The CORS twin alone works too.
    let twin = client.get_with("/", Some(&format!("SERVERCORSID={token}")));
    assert_eq!(server_of(&twin), server);
    assert!(twin.set_cookies().is_empty());
}

#[test]
fn insert_without_timeout_sends_session_cookies_and_names_are_configurable() {
    let pair = insert_pair("cookie = \"LB\"\ncors = false\npath = \"/shop\"\ndomain = \"example.com\"\nhttp_only = false\nsecure = true\n");
    let first = pair.limpet.client().get_with("/", None);
    let index: u32 = server_of(&first)[1..].parse().unwrap();
    assert_eq!(
        first.set_cookies(),
        [format!(
            "LB={}; Path=/shop; Domain=example.com; Secure",
            token("web", 2, index)
        )]
    );
}

#[test]
fn insert_disagreeing_cookies_serverid_wins_and_both_are_resent() {
    let pair = insert_pair("");
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let response = pair
        .limpet
        .client()
        .get_with("/", Some(&format!("SERVERCORSID={t1}; SERVERID={t0}")));
    assert_eq!(server_of(&response), "s0");
    assert_eq!(
        response.set_cookies(),
        [
            format!("SERVERID={t0}; Path=/; HttpOnly"),
            format!("SERVERCORSID={t0}; Path=/; HttpOnly; Secure; SameSite=None"),
        ]
    );
}

#[test]
fn insert_strips_only_the_persistence_cookies() {
    let pair = insert_pair("");
    let t0 = token("web", 2, 0);
    let mut client = pair.limpet.client();
    client.get_with(
        "/a",
        Some(&format!(
            "a=1; SERVERID={t0};  b=\"x y\"; SERVERCORSID={t0}"
        )),
    );
    client.get_with("/b", Some(&format!("SERVERID={t0}")));
    let log = pair.logs[0].lock().unwrap();
    // The other cookies byte for byte; the separator left by a removed pair
    // is tidied.
    assert_eq!(log[0].headers_named("cookie"), ["a=1; b=\"x y\""]);
    assert!(
        log[1].headers_named("cookie").is_empty(),
        "a header left empty is dropped"
    );
}

#[test]
fn insert_cache_control_is_left_alone_when_already_private() {
    let backend = Backend::respond(|_| {
        Some(
            b"HTTP/1.1 200 OK\r\nCache-Control: private, max-age=0\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let config = config_for(
        &[backend.addr],
        "[groups.web.persistence]\nmode = \"insert\"\n",
    );
    let limpet = Limpet::start(&config);
    let response = limpet.client().get_with("/", None);
    assert_eq!(response.set_cookies().len(), 2);
    assert_eq!(response.header("cache-control"), Some("private, max-age=0"));
}

#[test]
fn insert_failover_when_the_server_stops_and_the_session_sticks_to_the_new_one() {
    let mut pair = insert_pair("");
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let mut client = pair.limpet.client();
    assert_eq!(
        server_of(&client.get_with("/", Some(&format!("SERVERID={t0}")))),
        "s0"
    );
    // s0 stops: its port is closed and its connections shut when the
    // drop returns.
    pair.backends[0] = None;
    let moved = client.get_with("/", Some(&format!("SERVERID={t0}")));
    assert_eq!(moved.status, 200);
    assert_eq!(server_of(&moved), "s1");
    assert_eq!(
        moved.set_cookies()[0],
        format!("SERVERID={t1}; Path=/; HttpOnly")
    );
    let stuck = client.get_with("/", Some(&format!("SERVERID={t1}")));
    assert_eq!(server_of(&stuck), "s1");
    assert!(stuck.set_cookies().is_empty());
    assert!(pair.limpet.total(|r| r.sticky_moved) >= 1);
}

#[test]
fn insert_disabled_server_fails_over_and_a_draining_one_keeps_its_sessions() {
    let pair = insert_pair("");
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let control = pair.limpet.running().control().clone();
    let generation =
        futures_executor::block_on(control.set_admin("web", "s0", AdminState::Draining)).unwrap();
    assert!(pair.limpet.snapshot_reached(generation));
    let mut client = pair.limpet.client();
    let stuck = client.get_with("/", Some(&format!("SERVERID={t0}")));
    assert_eq!(server_of(&stuck), "s0", "draining keeps stuck sessions");
    for _ in 0..3 {
        let new = client.get_with("/", None);
        assert_eq!(server_of(&new), "s1", "draining takes no new session");
        assert_eq!(
            new.set_cookies()[0],
            format!("SERVERID={t1}; Path=/; HttpOnly")
        );
    }
    let generation =
        futures_executor::block_on(control.set_admin("web", "s0", AdminState::Disabled)).unwrap();
    assert!(pair.limpet.snapshot_reached(generation));
    let moved = client.get_with("/", Some(&format!("SERVERID={t0}")));
    assert_eq!(server_of(&moved), "s1", "disabled: sessions fail over");
    assert_eq!(moved.set_cookies().len(), 2);
}

#[test]
fn insert_connect_failure_fails_over_with_a_new_cookie() {
    let requests = log();
    let live = Backend::named("s1", requests);
    let config = config_with(
        &[dead_address(), live.addr],
        "",
        "[groups.web.persistence]\nmode = \"insert\"\n",
    );
    let limpet = Limpet::start(&config);
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let response = limpet
        .client()
        .get_with("/", Some(&format!("SERVERID={t0}")));
    assert_eq!((response.status, server_of(&response)), (200, "s1"));
    assert_eq!(
        response.set_cookies()[0],
        format!("SERVERID={t1}; Path=/; HttpOnly")
    );
}

#[test]
fn insert_garbled_forged_and_foreign_tokens_are_treated_as_absent() {
    let pair = insert_pair("");
    let mut client = pair.limpet.client();
    for bad in [
        "SERVERID=%%%",
        "SERVERID=AAAAAAAAAAA",
        "SERVERID=short",
        &format!("SERVERID={}", token("api", 2, 0)),
    ] {
        let response = client.get_with("/", Some(bad));
        assert_eq!(response.status, 200, "{bad}");
        assert_eq!(response.set_cookies().len(), 2, "{bad}: a fresh session");
    }
    let refused = pair.limpet.total(|r| r.sticky_refused.iter().sum());
    assert_eq!(refused, 4);
}

#[test]
fn insert_upgrade_response_gets_the_cookies() {
    let backend = Backend::spawn(|mut conn| {
        conn.read_request().unwrap();
        use std::io::Write;
        conn.stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        let _ = conn.read_to_end();
    });
    let config = config_for(
        &[backend.addr],
        "[groups.web.persistence]\nmode = \"insert\"\n",
    );
    let limpet = Limpet::start(&config);
    let mut client = limpet.client();
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let switched = client.read_response(true).unwrap();
    assert_eq!(switched.status, 101);
    assert_eq!(switched.set_cookies().len(), 2);
}

#[test]
fn tokens_agree_across_processes_with_the_same_config() {
    let pair = insert_pair("");
    let addrs: Vec<SocketAddr> = pair
        .backends
        .iter()
        .map(|b| b.as_ref().unwrap().addr)
        .collect();
    let config = insert_config(&addrs, "");
    let other = Limpet::start(&config);
    let first = pair.limpet.client().get_with("/", None);
    let cookie = first.cookie_pair();
    for _ in 0..3 {
        let response = other.client().get_with("/", Some(&cookie));
        assert_eq!(server_of(&response), server_of(&first));
        assert!(response.set_cookies().is_empty());
    }
}

#[test]
fn a_cookie_from_another_group_is_ignored() {
    let (web, api) = (Backend::named("s0", log()), Backend::named("s0", log()));
    let config = format!(
        "[workers]\ncount = 1\n\n[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n\
         [[listeners]]\nname = \"api\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"api\"\n\n\
         [groups.web.persistence]\nmode = \"insert\"\n[[groups.web.servers]]\nname = \"s0\"\naddress = \"{}\"\n\n\
         [groups.api.persistence]\nmode = \"insert\"\n[[groups.api.servers]]\nname = \"s0\"\naddress = \"{}\"\n",
        web.addr, api.addr
    );
    let limpet = Limpet::start(&config);
    let api_addr = limpet.running().listen_addrs()[1];
    let web_token = token("web", 1, 0);
    assert_ne!(web_token, token("api", 1, 0), "tokens are per group");
    let response = Client::connect(api_addr).get_with("/", Some(&format!("SERVERID={web_token}")));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.set_cookies()[0],
        format!("SERVERID={}; Path=/; HttpOnly", token("api", 1, 0))
    );
}

fn signed_limpet(addrs: &[SocketAddr], keys: &str, limits: &str) -> Limpet {
    Limpet::start(&insert_config(addrs, &format!("keys = {keys}\n{limits}")))
}

#[test]
fn signed_tokens_survive_key_rotation_and_expire() {
    let (b0, b1) = (Backend::named("s0", log()), Backend::named("s1", log()));
    let addrs = [b0.addr, b1.addr];
    let old = signed_limpet(&addrs, "[\"first-key-0123456789\"]", "");
    let first = old.client().get_with("/", None);
    let cookie = first.cookie_pair();
    assert_eq!(cookie.len(), "SERVERID=".len() + 38, "{cookie}");

    let rotated = signed_limpet(
        &addrs,
        "[\"second-key-0123456789\", \"first-key-0123456789\"]",
        "",
    );
    let kept = rotated.client().get_with("/", Some(&cookie));
    assert_eq!(
        server_of(&kept),
        server_of(&first),
        "the old key still verifies"
    );
    assert!(kept.set_cookies().is_empty());

    let dropped = signed_limpet(&addrs, "[\"second-key-0123456789\"]", "");
    let refused = dropped.client().get_with("/", Some(&cookie));
    assert_eq!(
        refused.set_cookies().len(),
        2,
        "a key no longer listed signs nothing valid"
    );

    let expiring = signed_limpet(&addrs, "[\"first-key-0123456789\"]", "max_age = \"1s\"\n");
    let fresh = expiring.client().get_with("/", None);
    let cookie = fresh.cookie_pair();
    // A sleep on purpose: past max_age.
    thread::sleep(Duration::from_millis(2100));
    let expired = expiring.client().get_with("/", Some(&cookie));
    assert_eq!(
        expired.set_cookies().len(),
        2,
        "older than max_age: refused, a new session"
    );
    assert!(
        expiring.total(|r| r.sticky_refused[3]) >= 1,
        "counted as expired"
    );
}

#[test]
fn signed_tokens_are_resigned_after_half_of_max_idle() {
    let (b0, b1) = (Backend::named("s0", log()), Backend::named("s1", log()));
    // Token times are whole seconds: after 3.2 s the token is 3 or 4 s
    // old, past max_idle / 2 = 2 s and within max_idle = 4 s.
    let limpet = signed_limpet(
        &[b0.addr, b1.addr],
        "[\"first-key-0123456789\"]",
        "max_idle = \"4s\"\n",
    );
    let first = limpet.client().get_with("/", None);
    let cookie = first.cookie_pair();
    let soon = limpet.client().get_with("/", Some(&cookie));
    assert!(soon.set_cookies().is_empty(), "young token: nothing sent");
    // A sleep on purpose: past max_idle / 2 (see above).
    thread::sleep(Duration::from_millis(3200));
    let later = limpet.client().get_with("/", Some(&cookie));
    assert_eq!(server_of(&later), server_of(&first));
    let resigned = later.set_cookies();
    assert_eq!(resigned.len(), 2, "re-signed past max_idle / 2");
    assert_ne!(resigned[0].split(';').next().unwrap(), cookie);
}

/// Rewrite mode: `s0` and `s1` set `BACKEND_SERVER` on `/login` and echo the
/// cookie they received on other paths.
fn rewrite_backend(name: &'static str, requests: Log) -> Backend {
    Backend::respond(move |req| {
        requests.lock().unwrap().push(req.clone());
        let set = match req.target.as_str() {
            "/login" => {
                "Set-Cookie: BACKEND_SERVER=abc123; Path=/; HttpOnly\r\nSet-Cookie: other=1\r\n"
            }
            "/quoted" => "Set-Cookie:  BACKEND_SERVER = \"q1\" ;Path=/app;\r\n",
            "/logout" => "Set-Cookie: BACKEND_SERVER=; Max-Age=0; Path=/\r\n",
            _ => "",
        };
        let body = format!("{name} {}", req.header("cookie").unwrap_or("-"));
        Some(
            format!(
                "HTTP/1.1 200 OK\r\n{set}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    })
}

fn rewrite_config(addrs: &[SocketAddr]) -> String {
    config_with(
        addrs,
        "balance = \"round_robin\"",
        "[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"BACKEND_SERVER\"\npath = \"/\"\n",
    )
}

#[test]
fn rewrite_prefixes_the_token_and_gives_the_backend_its_own_value() {
    let (l0, l1) = (log(), log());
    let (b0, b1) = (rewrite_backend("s0", l0), rewrite_backend("s1", l1));
    let limpet = Limpet::start(&rewrite_config(&[b0.addr, b1.addr]));
    let mut client = limpet.client();
    let login = client.get_with("/login", None);
    let server = server_of(&login).to_string();
    let t = token("web", 2, server[1..].parse().unwrap());
    assert_eq!(
        login.set_cookies(),
        [
            format!("BACKEND_SERVER={t}.abc123; Path=/; HttpOnly"),
            "other=1".to_string()
        ]
    );
    for _ in 0..3 {
        let next = client.get_with("/page", Some(&format!("x=1; BACKEND_SERVER={t}.abc123")));
        assert_eq!(
            next.body_text(),
            format!("{server} x=1; BACKEND_SERVER=abc123")
        );
        assert!(next.set_cookies().is_empty());
    }
    let quoted = client.get_with("/quoted", Some(&format!("BACKEND_SERVER={t}.abc123")));
    // Inside the quotes; the application's own spacing and attributes kept.
    assert_eq!(
        quoted.set_cookies(),
        [format!("BACKEND_SERVER = \"{t}.q1\" ;Path=/app;")]
    );
    let logout = client.get_with("/logout", Some(&format!("BACKEND_SERVER={t}.abc123")));
    assert_eq!(
        logout.set_cookies(),
        ["BACKEND_SERVER=; Max-Age=0; Path=/"],
        "deletion passes through"
    );
}

#[test]
fn rewrite_failover_reissues_and_stays_after_recovery() {
    let (l0, l1) = (log(), log());
    let b1 = rewrite_backend("s1", l1);
    let b0 = rewrite_backend("s0", l0.clone());
    let addr0 = b0.addr;
    let limpet = Limpet::start(&rewrite_config(&[addr0, b1.addr]));
    let (t0, t1) = (token("web", 2, 0), token("web", 2, 1));
    let mut client = limpet.client();
    assert_eq!(
        server_of(&client.get_with("/page", Some(&format!("BACKEND_SERVER={t0}.abc123")))),
        "s0"
    );

    drop(b0); // returns once the port is closed and the connections shut
    let moved = client.get_with("/page", Some(&format!("BACKEND_SERVER={t0}.abc123")));
    assert_eq!(server_of(&moved), "s1");
    assert_eq!(moved.body_text(), "s1 BACKEND_SERVER=abc123");
    assert_eq!(
        moved.set_cookies(),
        [format!("BACKEND_SERVER={t1}.abc123; Path=/; HttpOnly")]
    );

    // A failover response that sets the cookie itself is only rewritten.
    let relogin = client.get_with("/login", Some(&format!("BACKEND_SERVER={t0}.abc123")));
    assert_eq!(
        relogin.set_cookies()[0],
        format!("BACKEND_SERVER={t1}.abc123; Path=/; HttpOnly")
    );
    assert_eq!(relogin.set_cookies().len(), 2);

    // s0 comes back on the same port; the session stays on s1.
    let mut listener = None;
    assert!(eventually(Duration::from_secs(10), || {
        listener = TcpListener::bind(addr0).ok();
        listener.is_some()
    }));
    let listener = listener.unwrap();
    let l0_back = log();
    let recovered = l0_back.clone();
    let _b0 = Backend::respond_on(listener, move |req| {
        recovered.lock().unwrap().push(req.clone());
        Some(ok("s0 back"))
    });
    for _ in 0..3 {
        let stays = client.get_with("/page", Some(&format!("BACKEND_SERVER={t1}.abc123")));
        assert_eq!(server_of(&stays), "s1");
        assert!(stays.set_cookies().is_empty());
    }
    assert!(
        l0_back.lock().unwrap().is_empty(),
        "nothing of the moved session went back to s0"
    );
}

#[test]
fn rewrite_failover_goes_where_the_ring_says_so_every_node_agrees() {
    use limpet::balance::{hash_key, Ring};
    let names = ["s0", "s1", "s2", "s3"];
    let backends: Vec<Backend> = names[1..]
        .iter()
        .map(|n| rewrite_backend(n, log()))
        .collect();
    let mut addrs = vec![dead_address()];
    addrs.extend(backends.iter().map(|b| b.addr));
    let limpet = Limpet::start(&rewrite_config(&addrs));
    let ring = Ring::build(&names.map(|n| (n, std::num::NonZeroU32::MIN))).unwrap();
    let t0 = token("web", 4, 0);
    for value in ["abc123", "user-7", "zz", "session-42"] {
        // The ring's first server for this value other than s0 (down).
        let expected = ring.pick(hash_key(value.as_bytes()), |s| s.0 != 0).unwrap();
        let response = limpet
            .client()
            .get_with("/page", Some(&format!("BACKEND_SERVER={t0}.{value}")));
        assert_eq!(server_of(&response), names[expected.get()], "value {value}");
        let reissued = token("web", 4, expected.0);
        assert_eq!(
            response.set_cookies(),
            [format!(
                "BACKEND_SERVER={reissued}.{value}; Path=/; HttpOnly"
            )]
        );
    }
}
