//! Live reload (SPEC §8): a bad file changes nothing; a good one switches
//! every worker between requests, keeping open connections, admin states
//! and every sticky session on its server.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use limpet::balance::ServerIdx;
use limpet::control::{AdminState, ReloadError};
use limpet::sticky::{TokenKey, TokenTable};

fn token(names: &[&str], i: u32) -> String {
    let table = TokenTable::build(&TokenKey::from_secret(None), "web", names, None).unwrap();
    String::from_utf8(table.token(ServerIdx(i)).to_vec()).unwrap()
}

fn insert(addrs: &[SocketAddr]) -> String {
    config_with(
        addrs,
        "balance = \"round_robin\"",
        "[groups.web.persistence]\nmode = \"insert\"\n",
    )
}

fn get(client: &mut Client, cookie: Option<&str>) -> Response {
    let cookie = cookie
        .map(|c| format!("Cookie: SERVERID={c}\r\n"))
        .unwrap_or_default();
    client.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{cookie}\r\n").as_bytes());
    client.read_response(false).unwrap()
}

#[test]
fn reload_keeps_connections_admin_states_and_sessions() {
    let log = || Arc::new(Mutex::new(Vec::new()));
    let (b0, b1, b2) = (
        Backend::named("s0", log()),
        Backend::named("s1", log()),
        Backend::named("s2", log()),
    );
    let limpet = Limpet::start(&insert(&[b0.addr, b1.addr]));
    let running = limpet.running();
    futures_executor::block_on(
        running
            .control()
            .set_admin("web", "s0", AdminState::Draining),
    )
    .unwrap();
    let mut client = limpet.client();
    let t0 = token(&["s0", "s1"], 0);
    assert_eq!(get(&mut client, Some(&t0)).body_text(), "s0 /");
    assert_eq!(get(&mut client, None).body_text(), "s1 /");
    let s1_connections = b1.connection_count();

    let generation = running
        .reload(limpet::config::parse(&insert(&[b0.addr, b1.addr, b2.addr]), "new.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    // The same client connection, after the reload.
    let stuck = get(&mut client, Some(&t0));
    assert_eq!(
        stuck.body_text(),
        "s0 /",
        "s0 is still draining and keeps its session"
    );
    assert_eq!(stuck.header("set-cookie"), None, "the token did not change");
    let mut new_sessions = std::collections::BTreeSet::new();
    for _ in 0..4 {
        new_sessions.insert(get(&mut client, None).body_text());
    }
    assert_eq!(
        new_sessions,
        ["s1 /".to_string(), "s2 /".to_string()].into(),
        "the new server takes sessions, s0 none"
    );
    assert_eq!(
        b1.connection_count(),
        s1_connections,
        "pooled connections to an unchanged server are kept"
    );
}

#[test]
fn a_reload_that_moves_listeners_or_workers_changes_nothing() {
    let backend = Backend::named("s0", Default::default());
    let limpet = Limpet::start(&insert(&[backend.addr]));
    let moved = insert(&[backend.addr]).replace("name = \"test\"", "name = \"other\"");
    let err = limpet
        .running()
        .reload(limpet::config::parse(&moved, "x.toml").unwrap())
        .unwrap_err();
    assert!(matches!(err, ReloadError::Listeners), "{err}");
    let threads = insert(&[backend.addr]).replace("count = 1", "count = 2");
    let err = limpet
        .running()
        .reload(limpet::config::parse(&threads, "x.toml").unwrap())
        .unwrap_err();
    assert!(matches!(err, ReloadError::Workers), "{err}");
    assert_eq!(limpet.client().get("/").status, 200);
    assert_eq!(
        limpet.running().reports()[0].snapshot_generation,
        1,
        "no snapshot was sent"
    );
}
