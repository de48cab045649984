//! limpet as a process: the command line, start-up errors, signals, and
//! memory while large bodies stream through.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use nix::sys::signal::Signal;

fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_names_the_file_line_and_key_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_for(&[dead_address(), dead_address()], "")
        .replace("name = \"s1\"", "name = \"s1\"\nweight = 0");
    let line = text.lines().position(|l| l == "weight = 0").unwrap() + 1;
    let path = write_config(&dir, "bad.toml", &text);
    let output = cli("check", &path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("bad.toml:{line}: groups.web.servers[1].weight must be at least 1");
    assert!(stderr.contains(&expected), "{stderr}");

    let good = write_config(&dir, "good.toml", &config_for(&[dead_address()], ""));
    let output = cli("check", &good);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_example_config_passes_check() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let output = cli("check", &path);
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3);
}

#[test]
fn the_systemd_unit_runs_commands_limpet_understands() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/limpet.service"
    ))
    .unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("the unit sets {key}"))
            .to_owned()
    };
    for key in ["ExecStartPre", "ExecStart"] {
        let line = value(key);
        let mut words = line.split_whitespace().map(str::to_owned);
        assert_eq!(words.next().as_deref(), Some("/usr/bin/limpet"));
        let command = limpet::cli::parse(words).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            matches!(
                command,
                limpet::cli::Command::Run { .. } | limpet::cli::Command::Check { .. }
            ),
            "{key}: {command:?}"
        );
    }
    assert_eq!(
        value("ExecReload"),
        "/bin/kill -HUP $MAINPID",
        "reload is SIGHUP"
    );
    assert_eq!(
        value("KillSignal"),
        "SIGTERM",
        "stop is the graceful SIGTERM"
    );
    let nofile: u64 = value("LimitNOFILE").parse().unwrap();
    assert!(nofile >= 20_000, "LimitNOFILE={nofile}");
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    assert!(
        stop > 12,
        "TimeoutStopSec={stop} leaves timeouts.shutdown (10 s) and its margin time"
    );
}

#[test]
fn a_second_process_on_a_taken_port_fails_clearly() {
    let backend = Backend::named("a", Default::default());
    let first = Process::start(&config_for(&[backend.addr], ""));
    let dir = tempfile::tempdir().unwrap();
    let taken = config_for(&[backend.addr], "").replace("127.0.0.1:0", &first.addr.to_string());
    let path = write_config(&dir, "second.toml", &taken);
    let output = cli("run", &path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already in use") && stderr.contains(&first.addr.to_string()),
        "{stderr}"
    );
    assert_eq!(Client::connect(first.addr).get("/").status, 200);
}

#[test]
fn sigterm_stops_with_exit_code_zero() {
    let backend = Backend::named("a", Default::default());
    let mut process = Process::start(&config_for(&[backend.addr], ""));
    assert_eq!(Client::connect(process.addr).get("/").status, 200);
    process.signal(Signal::SIGTERM);
    exits_cleanly(&mut process.child);
}

const BIG: usize = 256 << 20;
const CHUNK: usize = 64 << 10;

#[test]
fn big_bodies_stream_through_with_bounded_memory() {
    let backend = Backend::big_bodies(BIG, CHUNK);
    let process = Process::start(&config_for(&[backend.addr], ""));
    assert_eq!(Client::connect(process.addr).get("/warm").status, 200);
    let before = process.status_kib("VmHWM:");

    // Download.
    let mut stream = TcpStream::connect(process.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut chunk = vec![0u8; CHUNK];
    let mut received = 0usize;
    let mut head_done = false;
    let mut head = Vec::new();
    while received < BIG {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "download ended after {received} bytes");
        if head_done {
            received += n;
        } else {
            head.extend_from_slice(&chunk[..n]);
            if let Some(i) = find(&head, b"\r\n\r\n") {
                head_done = true;
                received += head.len() - i - 4;
            }
        }
    }
    assert_eq!(received, BIG);

    // Upload.
    let mut stream = TcpStream::connect(process.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {BIG}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let data = vec![b'u'; CHUNK];
    for _ in 0..BIG / CHUNK {
        stream.write_all(&data).unwrap();
    }
    let mut conn = Conn::new(stream);
    let head = conn.read_head().unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    let after = process.status_kib("VmHWM:");
    let growth = after.saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "peak RSS grew by {growth} KiB moving 2 x 256 MiB"
    );
}

#[test]
fn demo_serves_both_backends_and_stops_on_sigterm() {
    let mut child = Command::new(LIMPET)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the demo prints its listener");
        printed.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("listener on ") {
            break rest.split(' ').next().unwrap().parse().unwrap();
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let body = Client::connect(addr).get("/").body_text();
        assert!(body.starts_with("Hello World ! This is ECS0"), "{body}");
        seen.insert(body);
    }
    assert_eq!(seen.len(), 2, "both built-in backends answer: {seen:?}");
    let curl = rx
        .recv_timeout(Duration::from_secs(5))
        .into_iter()
        .chain(rx.try_iter())
        .collect::<Vec<_>>();
    assert!(
        curl.iter().chain(&printed).any(|l| l.contains("curl")),
        "{printed:?} {curl:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    exits_cleanly(&mut child);
}

#[test]
fn slow_clients_cannot_starve_a_well_behaved_one() {
    let backend = Backend::named("a", Default::default());
    let config = config_for(
        &[backend.addr],
        "[limits]\nmax_connections = 256\n[timeouts]\nclient_head = \"3s\"\n",
    );
    let process = Process::start(&config);
    assert_eq!(Client::connect(process.addr).get("/warm").status, 200);
    let before = process.status_kib("VmHWM:");

    // 500 slowloris connections from 253 addresses (each under the
    // per-client limit): half a request line, then nothing.
    let slow: Vec<TcpStream> = (0..500)
        .filter_map(|i| {
            let mut stream = common::connect_from(common::loopback_source(i), process.addr).ok()?;
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHo");
            Some(stream)
        })
        .collect();
    assert_eq!(slow.len(), 500);

    // The well-behaved client opens a new connection for each request.
    let mut fast_enough = 0;
    for i in 0..100 {
        let started = Instant::now();
        let response = Client::connect(process.addr).get(&format!("/{i}"));
        assert_eq!(response.status, 200);
        if started.elapsed() < Duration::from_secs(1) {
            fast_enough += 1;
        }
        // A sleep on purpose: the good requests spread over the slow
        // clients' 3 s head timeout.
        thread::sleep(Duration::from_millis(30));
    }
    assert!(
        fast_enough >= 99,
        "{fast_enough} of 100 answered within 1 s"
    );
    let growth = process.status_kib("VmHWM:").saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "peak RSS grew by {growth} KiB with 500 slow clients"
    );
    drop(slow);
}

#[test]
fn sighup_reloads_a_good_file_and_refuses_a_bad_one() {
    let (a, b) = (
        Backend::named("a", Default::default()),
        Backend::named("b", Default::default()),
    );
    let process = Process::start(&config_for(&[a.addr], ""));
    let path = &process.config;
    let listen = process.addr.to_string();

    std::fs::write(path, "this is [not toml").unwrap();
    process.hup();
    assert!(eventually(Duration::from_secs(10), || process
        .logged("SIGHUP: reload refused")));
    assert_eq!(
        Client::connect(process.addr).get("/x").body_text(),
        "a /x",
        "a bad file changes nothing"
    );

    let routed = config_for(&[a.addr], "").replace("127.0.0.1:0", &listen).replace(
        "default_group = \"web\"",
        &format!("default_group = \"web\"\n[[listeners.routes]]\npath_prefix = \"/b\"\ngroup = \"b\"\n\n[[groups.b.servers]]\nname = \"b\"\naddress = \"{}\"\n", b.addr),
    );
    std::fs::write(path, routed).unwrap();
    process.hup();
    assert!(eventually(Duration::from_secs(3), || Client::connect(
        process.addr
    )
    .get("/b/1")
    .body_text()
        == "b /b/1"));
    assert_eq!(Client::connect(process.addr).get("/x").body_text(), "a /x");
}

#[test]
fn sigterm_lets_requests_in_flight_finish_and_refuses_new_ones() {
    let arrived = Arc::new(AtomicUsize::new(0));
    let counted = arrived.clone();
    let backend = Backend::respond(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        // A sleep on purpose: the request is still in flight at SIGTERM.
        thread::sleep(Duration::from_millis(800));
        Some(ok("finished"))
    });
    let mut process = Process::start(&config_for(
        &[backend.addr],
        "[timeouts]\nshutdown = \"5s\"\n",
    ));
    let addr = process.addr;
    let in_flight = thread::spawn(move || {
        let mut client = Client::connect(addr);
        let response = client.get("/slow");
        (
            response.status,
            response.body_text(),
            response.header("connection").map(str::to_owned),
        )
    });
    assert!(eventually(Duration::from_secs(10), || arrived
        .load(Ordering::SeqCst)
        == 1));
    process.signal(Signal::SIGTERM);
    let (status, body, connection) = in_flight.join().unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "finished"),
        "the request in flight completed"
    );
    assert_eq!(
        connection.as_deref(),
        Some("close"),
        "and its connection is closed after it"
    );
    exits_cleanly(&mut process.child);
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing accepts after the stop"
    );
}

#[test]
fn the_access_log_has_a_line_per_request() {
    let backend = Backend::named("a", Default::default());
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("access.log");
    let json = dir.path().join("access.json");
    let config = format!(
        "[workers]\ncount = 1\n\n[[listeners]]\nname = \"text\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\naccess_log = \"{}\"\n\n\
         [[listeners]]\nname = \"json\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\naccess_log = \"{}\"\naccess_log_format = \"json\"\n\n\
         [groups.web.persistence]\nmode = \"insert\"\n[[groups.web.servers]]\nname = \"s0\"\naddress = \"{}\"\n",
        text.display(),
        json.display(),
        backend.addr
    );
    let limpet = Limpet::start(&config);
    let json_addr = limpet.running().listen_addrs()[1];
    let first = limpet.client().get("/first");
    let cookie = first.cookie_pair();
    let mut client = limpet.client();
    client.send(format!("GET /again HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n").as_bytes());
    assert_eq!(client.read_response(false).unwrap().status, 200);
    let mut bad = limpet.client();
    bad.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(bad.read_response(false).unwrap().status, 400);
    assert_eq!(Client::connect(json_addr).get("/j").status, 200);
    drop(limpet); // stops: every buffered line is written

    let lines = std::fs::read_to_string(&text).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains(" 127.0.0.1 \"GET /first\" 200 ")
            && lines[0].contains(" server=s0 session=new "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /again\" 200 ") && lines[1].contains(" server=s0 session=stuck "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(" \"-\" 400 ")
            && lines[2].ends_with("server=- session=none host=- ua=- upstream=- id=-"),
        "{}",
        lines[2]
    );
    assert!(
        lines[0].starts_with("20")
            && lines[0].contains('T')
            && lines[0].contains("us retries=0 server=")
    );
    let json = std::fs::read_to_string(&json).unwrap();
    let entry: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(entry["request"], "GET /j");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["server"], "s0");
    assert_eq!(entry["session"], "new");
    assert!(entry["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn a_cookie_minted_by_one_process_is_honoured_by_another() {
    let (a, b) = (Backend::named("s0", log()), Backend::named("s1", log()));
    let config = insert_config(&[a.addr, b.addr], "");
    let first = Process::start(&config);
    let second = Process::start(&config);
    let minted = Client::connect(first.addr).get("/");
    let cookie = minted.cookie_pair();
    let server = minted.body_text()[..2].to_string();
    for _ in 0..4 {
        let mut client = Client::connect(second.addr);
        client.send(format!("GET / HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n").as_bytes());
        let response = client.read_response(false).unwrap();
        assert_eq!(
            &response.body_text()[..2],
            server,
            "the other process sends it to the same server"
        );
        assert_eq!(
            response.header("set-cookie"),
            None,
            "and sees a valid session"
        );
    }
}
