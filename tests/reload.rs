//! Live reload (SPEC §8): a bad file changes nothing; a good one switches
//! every worker between requests, keeping open connections, admin states
//! and every sticky session on its server.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use limpet::control::{AdminState, ReloadError};

#[test]
fn reload_keeps_connections_admin_states_and_sessions() {
    let (b0, b1, b2) = (
        Backend::named("s0", log()),
        Backend::named("s1", log()),
        Backend::named("s2", log()),
    );
    let limpet = Limpet::start(&insert_config(&[b0.addr, b1.addr], ""));
    let running = limpet.running();
    futures_executor::block_on(
        running
            .control()
            .set_admin("web", "s0", AdminState::Draining),
    )
    .unwrap();
    let mut client = limpet.client();
    let t0 = token("web", 2, 0);
    assert_eq!(client.get_token(Some(&t0)).body_text(), "s0 /");
    assert_eq!(client.get_token(None).body_text(), "s1 /");
    let s1_connections = b1.connection_count();

    let generation = running
        .reload(
            limpet::config::parse(&insert_config(&[b0.addr, b1.addr, b2.addr], ""), "new.toml")
                .unwrap(),
        )
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    // The same client connection, after the reload.
    let stuck = client.get_token(Some(&t0));
    assert_eq!(
        stuck.body_text(),
        "s0 /",
        "s0 is still draining and keeps its session"
    );
    assert_eq!(stuck.header("set-cookie"), None, "the token did not change");
    let mut new_sessions = std::collections::BTreeSet::new();
    for _ in 0..4 {
        new_sessions.insert(client.get_token(None).body_text());
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
fn a_reload_that_changes_workers_changes_nothing() {
    let backend = Backend::named("s0", Default::default());
    let limpet = Limpet::start(&insert_config(&[backend.addr], ""));
    let threads = insert_config(&[backend.addr], "").replace("count = 1", "count = 2");
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

fn listener_addr(limpet: &Limpet, name: &str) -> Option<SocketAddr> {
    limpet
        .running()
        .listeners()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, addr)| addr)
}

#[test]
fn a_reload_opens_added_listeners_and_closes_removed_ones() {
    let backend = Backend::named("s0", Default::default());
    let base = insert_config(&[backend.addr], "");
    let limpet = Limpet::start(&base);
    let first = limpet.running().listen_addrs()[0];
    let mut before = limpet.client();
    assert_eq!(before.get_token(None).status, 200);

    // Added: bound on every worker, serving as soon as the reload returns.
    let added = with_listener(&base, "second", "127.0.0.1:0");
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&added, "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    let second = listener_addr(&limpet, "second").expect("the new listener is reported");
    assert_ne!(second.port(), 0);
    assert_ne!(second, first);
    let mut on_second = Client::connect(second);
    assert_eq!(on_second.get_token(None).body_text(), "s0 /");
    // The first listener's connection and port are untouched.
    assert_eq!(before.get_token(None).status, 200);
    assert_eq!(Client::connect(first).get("/").status, 200);

    // Removed: the port stops accepting; a connection accepted on it ends at
    // its next request boundary. The other listener carries on.
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&base, "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_eq!(listener_addr(&limpet, "second"), None);
    assert!(
        eventually(Duration::from_secs(2), || {
            std::net::TcpStream::connect(second).is_err()
        }),
        "nothing listens on {second} any more"
    );
    on_second.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        on_second.read_response(false).is_none(),
        "closed, not answered, at the request boundary"
    );
    assert_eq!(before.get_token(None).status, 200);
}

#[test]
fn an_unchanged_listener_keeps_its_sockets_and_their_queued_connections() {
    // `/hold` waits until released: a request in flight, which is never
    // closed to make room.
    let release = Arc::new(AtomicBool::new(false));
    let released = release.clone();
    let backend = Backend::respond(move |req| {
        while req.target == "/hold" && !released.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5)); // held until the test releases it
        }
        Some(common::ok(&format!("s0 {}", req.target)))
    });
    // One connection at a time, that one busy: the second waits in the
    // listen queue, where closing the socket would reset it.
    let base = insert_config(&[backend.addr], "") + "\n[limits]\nmax_connections = 1\n";
    let limpet = Limpet::start(&base);
    let addr = limpet.running().listen_addrs()[0];
    let mut holding = Client::connect(addr);
    holding.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(common::eventually(Duration::from_secs(5), || {
        limpet.running().reports()[0].in_flight == 1
    }));
    let mut queued = Client::connect(addr);
    queued.send(b"GET /queued HTTP/1.1\r\nHost: t\r\n\r\n");

    // Renamed, given its bound port instead of 0, with another listener
    // added: still the same listener.
    let renamed = with_listener(
        &base
            .replace("name = \"test\"", "name = \"renamed\"")
            .replace("127.0.0.1:0", &addr.to_string()),
        "extra",
        "127.0.0.1:0",
    );
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&renamed, "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_eq!(listener_addr(&limpet, "renamed"), Some(addr));
    release.store(true, Ordering::SeqCst);
    assert_eq!(
        holding.read_response(false).unwrap().body_text(),
        "s0 /hold"
    );
    drop(holding);
    let response = queued
        .read_response(false)
        .expect("the queued connection is served");
    assert_eq!(response.body_text(), "s0 /queued");
}

#[test]
fn a_reload_whose_new_listener_cannot_bind_changes_nothing() {
    let backend = Backend::named("s0", Default::default());
    let base = insert_config(&[backend.addr], "");
    let limpet = Limpet::start(&base);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let clash = with_listener(&base, "clash", &busy.to_string())
        .replace("balance = \"round_robin\"", "balance = \"random_two\"");
    let err = limpet
        .running()
        .reload(limpet::config::parse(&clash, "x.toml").unwrap())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("listener clash") && message.contains(&busy.to_string()),
        "the error names the listener and its address: {message}"
    );
    assert_eq!(limpet.running().listeners().len(), 1);
    assert_eq!(limpet.running().reports()[0].snapshot_generation, 1);
    assert_eq!(limpet.client().get("/").status, 200);

    // An access log that cannot be opened is refused the same way.
    let unwritable = with_listener(&base, "logged", "127.0.0.1:0")
        + "access_log = \"/nonexistent-dir/limpet/access.log\"\n";
    let err = limpet
        .running()
        .reload(limpet::config::parse(&unwritable, "x.toml").unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent-dir/limpet/access.log"),
        "{err}"
    );
    assert_eq!(limpet.running().listeners().len(), 1);
}

/// The insert-mode group with these servers (named s0, s1, …) and weights.
fn weighted(addrs: &[SocketAddr], weights: &[u32]) -> String {
    let mut toml = insert_config(&[] as &[SocketAddr], "");
    for (i, (addr, weight)) in addrs.iter().zip(weights).enumerate() {
        toml.push_str(&format!(
            "\n[[groups.web.servers]]\nname = \"s{i}\"\naddress = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    toml
}

#[test]
fn sticky_traffic_goes_on_through_five_reloads() {
    let backends: Vec<Backend> = ["s0", "s1", "s2", "s3"]
        .into_iter()
        .map(|name| Backend::named(name, log()))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let limpet = Limpet::start(&weighted(&addrs[..2], &[1, 1]));
    let sessions = [token("web", 2, 0), token("web", 2, 1)];

    // One keep-alive client, alternating between two sessions, all along.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = Arc::new(AtomicU32::new(0));
    let mut client = limpet.client();
    let traffic = {
        let (stop, sessions, progress) = (stop.clone(), sessions.clone(), progress.clone());
        std::thread::spawn(move || {
            let (mut sent, mut failures) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = (sent % 2) as usize;
                let response = client.get_token(Some(&sessions[i]));
                let expected = format!("s{i} /");
                if response.status != 200
                    || response.body_text() != expected
                    || response.header("set-cookie").is_some()
                {
                    failures.push(format!(
                        "request {sent}: {} {:?} set-cookie {:?}",
                        response.status,
                        response.body_text(),
                        response.header("set-cookie")
                    ));
                }
                sent += 1;
                progress.store(sent, Ordering::SeqCst);
            }
            (sent, failures)
        })
    };

    // Each reload changes a weight or adds a server.
    let steps: [(usize, &[u32]); 5] = [
        (2, &[2, 1]),
        (3, &[2, 1, 1]),
        (3, &[2, 3, 1]),
        (4, &[2, 3, 1, 1]),
        (4, &[2, 3, 2, 1]),
    ];
    // Ten requests at least before each reload and after the last.
    let flowed = |since: &mut u32| {
        let more = eventually(Duration::from_secs(10), || {
            progress.load(Ordering::SeqCst) >= *since + 10
        });
        *since = progress.load(Ordering::SeqCst);
        more
    };
    let mut since = 0;
    for (servers, weights) in steps {
        assert!(flowed(&mut since), "traffic goes on");
        let config = limpet::config::parse(&weighted(&addrs[..servers], weights), "x.toml");
        let generation = limpet.running().reload(config.unwrap()).unwrap();
        assert!(limpet.snapshot_reached(generation));
    }
    assert!(flowed(&mut since), "traffic goes on");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failures) = traffic.join().unwrap();
    assert!(sent >= 50, "the client kept sending ({sent} requests)");
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );

    // New sessions reach the servers the reloads added.
    let mut client = limpet.client();
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let response = client.get_token(None);
        assert_eq!(response.status, 200);
        reached.insert(response.body_text());
    }
    assert!(
        reached.contains("s2 /") && reached.contains("s3 /"),
        "new sessions went to {reached:?}"
    );
}

#[test]
fn a_reload_reopens_access_logs_and_opens_those_of_added_listeners() {
    let backend = Backend::named("s0", Default::default());
    let dir = tempfile::tempdir().unwrap();
    let (log, rotated, added_log) = (
        dir.path().join("access.log"),
        dir.path().join("access.log.1"),
        dir.path().join("added.log"),
    );
    let base = insert_config(&[backend.addr], "").replace(
        "default_group = \"web\"\n",
        &format!(
            "default_group = \"web\"\naccess_log = \"{}\"\n",
            log.display()
        ),
    );
    let limpet = Limpet::start(&base);
    let lines = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(limpet.client().get("/before").status, 200);
    assert!(eventually(Duration::from_secs(3), || {
        lines(&log).len() == 1
    }));

    // logrotate's move, then the reload (SIGHUP) that follows it.
    std::fs::rename(&log, &rotated).unwrap();
    let with_added = with_listener(&base, "added", "127.0.0.1:0")
        + &format!("access_log = \"{}\"\n", added_log.display());
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&with_added, "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    assert_eq!(limpet.client().get("/after").status, 200);
    let added = listener_addr(&limpet, "added").unwrap();
    assert_eq!(Client::connect(added).get("/added").status, 200);
    assert!(
        eventually(Duration::from_secs(3), || {
            lines(&log).len() == 1 && lines(&added_log).len() == 1
        }),
        "new lines go to the reopened file and the added listener's: {:?} {:?}",
        lines(&log),
        lines(&added_log)
    );
    assert!(
        lines(&log)[0].contains("\"GET /after\""),
        "{:?}",
        lines(&log)
    );
    assert!(lines(&added_log)[0].contains("\"GET /added\""));
    assert_eq!(lines(&rotated).len(), 1, "the rotated file keeps its line");
}

#[test]
fn stopping_waits_for_the_shutdown_timeout_a_reload_set() {
    // Longer than the first file's timeout plus stop()'s 2 s margin.
    let arrived = Arc::new(AtomicU32::new(0));
    let counted = arrived.clone();
    let backend = Backend::respond(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        // A sleep on purpose: the request is in flight when stop() is called.
        std::thread::sleep(Duration::from_millis(3500));
        Some(ok("finished"))
    });
    let short = insert_config(&[backend.addr], "") + "\n[timeouts]\nshutdown = \"1s\"\n";
    let mut limpet = Limpet::start(&short);
    let generation = limpet
        .running()
        .reload(limpet::config::parse(&short.replace("\"1s\"", "\"10s\""), "x.toml").unwrap())
        .unwrap();
    assert!(limpet.snapshot_reached(generation));
    let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut client = limpet.client();
    let in_flight = {
        let answered = answered.clone();
        std::thread::spawn(move || {
            let response = client.get_token(None);
            answered.store(true, std::sync::atomic::Ordering::SeqCst);
            response.status
        })
    };
    assert!(eventually(Duration::from_secs(10), || arrived
        .load(Ordering::SeqCst)
        == 1));
    limpet.running.take().unwrap().stop();
    assert!(
        answered.load(std::sync::atomic::Ordering::SeqCst),
        "stop() returned only once the request in flight was answered"
    );
    assert_eq!(in_flight.join().unwrap(), 200);
}
