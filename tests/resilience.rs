//! Resilience (issue 17) with real processes: a backend killed with SIGKILL
//! while requests are in flight on it, on fresh and on pooled connections,
//! sticky and not; the retry budget when every server fails.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{dead_address, eventually, Backend, Limpet, Received, Response};

/// A backend in a process of its own (so that it can be killed): `/quick`
/// answers at once, `/hold` (any method, its body read) never answers.
const HOLDING_BACKEND: &str = r#"
import http.server, socketserver, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/hold":
            while True:
                time.sleep(1)
        body = b"A"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = serve
    do_POST = serve
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 128
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The holding backend, running; killed with SIGKILL when dropped.
struct Holding {
    child: Child,
    addr: SocketAddr,
}

impl Holding {
    fn start() -> Holding {
        let mut child = Command::new("python3")
            .args(["-c", HOLDING_BACKEND])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the backend says its port");
        Holding {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A and B, both usable throughout. Without persistence, requests are
/// balanced on the hash of their `X-Key` header, so a test can put them all
/// on A without taking B out of the group.
fn config(a: SocketAddr, b: SocketAddr, sticky: bool) -> String {
    let group = if sticky {
        "[groups.web.persistence]\nmode = \"insert\"\ncors = false\n"
    } else {
        "balance = \"hash\"\nhash_key = \"header:X-Key\"\n"
    };
    format!(
        "[workers]\ncount = 1\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n\
         [groups.web]\npool_max_idle_per_server = 64\n{group}\n\
         [[groups.web.servers]]\nname = \"A\"\naddress = \"{a}\"\n\n\
         [[groups.web.servers]]\nname = \"B\"\naddress = \"{b}\"\n"
    )
}

fn stats(limpet: &Limpet) -> serde_json::Value {
    serde_json::from_str(&limpet.admin("GET", "/stats", "", None).body_text()).unwrap()
}

fn in_flight_on(limpet: &Limpet, server: &str) -> u64 {
    stats(limpet)["groups"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == server)
        .unwrap()["in_flight"]
        .as_u64()
        .unwrap()
}

fn retries(limpet: &Limpet, reason: &str) -> u64 {
    stats(limpet)["workers"][0]["retries"][reason]
        .as_u64()
        .unwrap()
}

/// A cookie jar line for server `name`: the `SERVERID=...` of a response
/// `name` answered.
fn cookie_of(response: &Response) -> Option<String> {
    response
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Sends `count` requests at once, each on its own client connection, and
/// returns the connections (their responses are still to come).
fn send_all(limpet: &Limpet, count: usize, request: &str) -> Vec<common::Client> {
    (0..count)
        .map(|_| {
            let mut client = limpet.client();
            client.send(request.as_bytes());
            client
        })
        .collect()
}

/// The header that puts a request on A: `X-Key` (hash balancing) or the
/// session cookie of A (persistence), found by asking.
fn header_for_a(limpet: &Limpet, sticky: bool) -> String {
    for k in 0..64 {
        let mut client = limpet.client();
        let key = format!("X-Key: k{k}\r\n");
        let extra = if sticky { "" } else { key.as_str() };
        client.send(format!("GET /quick HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
        let response = client.read_response(false).unwrap();
        if response.body_text() == "A" {
            return match cookie_of(&response) {
                Some(cookie) if sticky => format!("Cookie: {cookie}\r\n"),
                _ => key,
            };
        }
    }
    panic!("no request reached A");
}

/// Kills A (SIGKILL) while `HELD` GETs are in flight on it and checks that
/// every one is answered by B. `pooled`: limpet's pool holds connections to
/// A first, so the GETs go out on reused connections.
fn a_dies_with_gets_in_flight(pooled: bool, sticky: bool) {
    const HELD: usize = 32;
    let mut a = Holding::start();
    let log = Arc::new(Mutex::new(Vec::<Received>::new()));
    let b = Backend::named("B", log.clone());
    let limpet = Limpet::start(&config(a.addr, b.addr, sticky));
    let to_a = header_for_a(&limpet, sticky);
    if pooled {
        // Quick requests at once leave idle connections to A in the pool.
        let warm = send_all(
            &limpet,
            HELD,
            &format!("GET /quick HTTP/1.1\r\nHost: t\r\n{to_a}\r\n"),
        );
        for mut client in warm {
            assert_eq!(client.read_response(false).unwrap().body_text(), "A");
        }
    }
    // Finding A's header left at most one idle connection to A.
    let idle = stats(&limpet)["workers"][0]["idle_backend_connections"]
        .as_u64()
        .unwrap();
    let held = send_all(
        &limpet,
        HELD,
        &format!("GET /hold HTTP/1.1\r\nHost: t\r\n{to_a}\r\n"),
    );
    assert!(
        eventually(Duration::from_secs(10), || in_flight_on(&limpet, "A")
            == HELD as u64),
        "all {HELD} GETs in flight on A"
    );
    a.kill();
    for mut client in held {
        let response = client.read_response(false).expect("an answer");
        assert_eq!(response.status, 200, "{}", response.body_text());
        assert!(
            response.body_text().starts_with("B /hold"),
            "{}",
            response.body_text()
        );
        if sticky {
            assert!(
                cookie_of(&response).is_some(),
                "the session moved: a cookie names B"
            );
        }
    }
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|r| r.target == "/hold")
            .count(),
        HELD,
        "B got each GET once"
    );
    let (stale, died) = (
        retries(&limpet, "pooled_stale"),
        retries(&limpet, "backend_died"),
    );
    // Each GET was sent again: on a fresh connection when its pooled one
    // was dead (then refused, it moved), else straight to B. A fresh
    // connection opened while A's process was still being torn down may
    // die too, and that GET then moves to B (a second retry, counted as
    // died): never more than one `died` per GET.
    assert!(
        stale + died >= HELD as u64 && died <= HELD as u64,
        "stale {stale}, died {died}"
    );
    assert!(stale <= idle, "stale {stale}, idle before {idle}");
    if pooled {
        assert!(stale > 1, "pooled connections are retried fresh first");
    } else {
        assert!(
            idle <= 1 && died >= HELD as u64 - 1,
            "fresh connections: died {died}"
        );
    }
}

#[test]
fn a_backend_killed_with_gets_in_flight_on_fresh_connections_loses_none() {
    a_dies_with_gets_in_flight(false, false);
}

#[test]
fn a_backend_killed_with_gets_in_flight_on_pooled_connections_loses_none() {
    a_dies_with_gets_in_flight(true, false);
}

#[test]
fn sticky_sessions_on_a_killed_backend_move_and_lose_no_request() {
    a_dies_with_gets_in_flight(false, true);
}

#[test]
fn sticky_sessions_on_pooled_connections_to_a_killed_backend_move_too() {
    a_dies_with_gets_in_flight(true, true);
}

#[test]
fn a_post_in_flight_on_a_killed_backend_is_502_and_never_replayed() {
    let mut a = Holding::start();
    let log = Arc::new(Mutex::new(Vec::<Received>::new()));
    let b = Backend::named("B", log.clone());
    let limpet = Limpet::start(&config(a.addr, b.addr, false));
    let to_a = header_for_a(&limpet, false);
    let held = send_all(
        &limpet,
        4,
        &format!("POST /hold HTTP/1.1\r\nHost: t\r\n{to_a}Content-Length: 5\r\n\r\nhello"),
    );
    assert!(eventually(Duration::from_secs(10), || in_flight_on(
        &limpet, "A"
    ) == 4));
    a.kill();
    for mut client in held {
        assert_eq!(client.read_response(false).unwrap().status, 502);
    }
    // A GET still reaches B, and B never saw a POST.
    assert_eq!(limpet.client().get("/after").status, 200);
    let seen = log.lock().unwrap();
    assert!(seen.iter().all(|r| r.method != "POST"), "{seen:?}");
    assert_eq!(retries(&limpet, "backend_died"), 0);
}

#[test]
fn retries_stop_at_the_budget_when_every_server_fails() {
    // Two servers that refuse every connection: each request could retry
    // once on the other; the budget (0.1 of the requests plus 10/s over
    // 10 s) stops that.
    let limpet = Limpet::start(&format!(
        "[workers]\ncount = 1\n\n[limits]\nretry_budget = 0.1\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n\
         [groups.web.health]\nmax_fails = 0\n\n\
         [[groups.web.servers]]\nname = \"A\"\naddress = \"{}\"\n\n\
         [[groups.web.servers]]\nname = \"B\"\naddress = \"{}\"\n",
        dead_address(),
        dead_address()
    ));
    const REQUESTS: u64 = 400;
    let mut client = limpet.client();
    for _ in 0..REQUESTS {
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let response = client.read_response(false).unwrap();
        assert_eq!(response.status, 502);
        client = limpet.client();
    }
    let made = retries(&limpet, "connect_failed");
    assert_eq!(made, REQUESTS / 10 + 100, "the budget, spent exactly");
}
