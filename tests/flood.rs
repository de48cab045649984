//! Floods and slow clients (issue 17, items 4–7), with real sockets and one
//! worker: a good client that opens a new connection per request after the
//! flood started is still served; each limit closes what it should and
//! counts it.

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect_from, eventually, loopback_source, Backend, Client, Limpet, Received};

const CAP: usize = 64;

fn config(backend: SocketAddr, limits: &str) -> String {
    format!(
        "[workers]\ncount = 1\n\n[limits]\nmax_connections = {CAP}\n{limits}\n\n\
         [[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n\
         [[groups.web.servers]]\nname = \"s0\"\naddress = \"{backend}\"\n"
    )
}

fn shed(limpet: &Limpet, reason: usize) -> u64 {
    limpet.running().reports()[0].shed[reason]
}

/// Slow-header clients, `count` at a time from `sources`, each sending one
/// byte of a head every 2 s, reconnecting whenever limpet closes them, until
/// stopped. Bounded: it stops with the test.
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flood {
    fn start(addr: SocketAddr, count: usize, sources: fn(usize) -> IpAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (stopping, counting) = (stop.clone(), opened.clone());
        let thread = thread::spawn(move || {
            let open = |i: usize| {
                let stream = connect_from(sources(i), addr).ok()?;
                stream.set_nonblocking(true).ok()?;
                counting.fetch_add(1, Ordering::SeqCst);
                Some(stream)
            };
            let mut streams: Vec<Option<TcpStream>> = (0..count).map(open).collect();
            let mut next_byte = Instant::now();
            let head = b"GET / HTTP/1.1\r\nHost: flood\r\nX-Slow: ";
            let mut sent = vec![0usize; count];
            while !stopping.load(Ordering::SeqCst) {
                let due = Instant::now() >= next_byte;
                for (i, slot) in streams.iter_mut().enumerate() {
                    let alive = match slot {
                        Some(stream) => {
                            let mut probe = [0u8; 256];
                            match stream.read(&mut probe) {
                                Ok(0) => false,
                                Ok(_) => false, // an answer (408): it is over
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    !due || stream.write_all(&[head[sent[i] % head.len()]]).is_ok()
                                }
                                Err(_) => false,
                            }
                        }
                        None => false,
                    };
                    if due && alive {
                        sent[i] += 1;
                    }
                    if !alive {
                        sent[i] = 0;
                        *slot = open(i);
                    }
                }
                if due {
                    next_byte = Instant::now() + Duration::from_secs(2);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        Flood {
            stop,
            opened,
            thread: Some(thread),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// 200 requests from 127.0.0.1, each on a new connection; how many were
/// answered 200 within 2 s.
fn good_client(addr: SocketAddr) -> usize {
    (0..200)
        .filter(|i| {
            let started = Instant::now();
            let Ok(stream) = connect_from(IpAddr::from([127, 0, 0, 1]), addr) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut client = Client::from_stream(stream);
            client.send(format!("GET /good/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            let answered = client.read_response(false).is_some_and(|r| r.status == 200);
            answered && started.elapsed() < Duration::from_secs(2)
        })
        .count()
}

fn flooded_good_client_is_served(sources: fn(usize) -> IpAddr) {
    let backend = Backend::named("s0", Default::default());
    let limpet = Limpet::start(&config(backend.addr, ""));
    let flood = Flood::start(limpet.addr, 2 * CAP, sources);
    // The flood is on: the cap is full of slow heads before the good
    // client's first connection.
    assert!(eventually(Duration::from_secs(5), || {
        limpet.running().reports()[0].active_connections >= CAP as u64
    }));
    let served = good_client(limpet.addr);
    let opened = flood.opened.load(Ordering::SeqCst);
    drop(flood);
    assert!(served >= 198, "{served} of 200 served within 2 s");
    assert!(
        opened >= 2 * CAP,
        "the flood kept {opened} connections coming"
    );
    assert!(
        shed(&limpet, 1) + shed(&limpet, 3) > 0,
        "slow heads were shed or timed out"
    );
}

#[test]
fn a_slow_header_flood_from_one_address_does_not_shut_out_a_new_client() {
    flooded_good_client_is_served(|_| IpAddr::from([127, 0, 0, 2]));
}

#[test]
fn a_slow_header_flood_from_many_addresses_does_not_shut_out_a_new_client() {
    flooded_good_client_is_served(loopback_source);
}

#[test]
fn an_idle_connection_is_shed_before_a_slow_head_and_a_busy_one_never() {
    let release = Arc::new(AtomicBool::new(false));
    let released = release.clone();
    let backend = Backend::respond(move |req: &Received| {
        while req.target == "/hold" && !released.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        Some(common::ok(&req.target))
    });
    // Three slots and no head-rate limit, so only the cap decides.
    let limpet = Limpet::start(
        &config(backend.addr, "min_head_rate = 0")
            .replace(&format!("max_connections = {CAP}"), "max_connections = 3"),
    );
    let mut busy = limpet.client();
    busy.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut slow = limpet.client();
    slow.send(b"GET /slow HTTP/1.1\r\nHo");
    let mut idle = limpet.client();
    assert_eq!(idle.get("/idle").status, 200);
    assert!(eventually(Duration::from_secs(2), || {
        limpet.running().reports()[0].active_connections == 3
    }));
    // A fourth: the idle one goes, though the slow head is older.
    let mut fourth = limpet.client();
    assert_eq!(fourth.get("/4").status, 200);
    assert!(idle.conn.is_closed(Duration::from_secs(2)));
    assert_eq!(shed(&limpet, 0), 1, "one idle shed");
    // A fifth: now the fourth is idle again and goes (the youngest idle
    // is still the only idle one).
    let mut fifth = limpet.client();
    assert_eq!(fifth.get("/5").status, 200);
    assert!(fourth.conn.is_closed(Duration::from_secs(2)));
    // Make the fifth busy; a sixth must take the slow head's place.
    fifth.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(eventually(Duration::from_secs(2), || {
        limpet.running().reports()[0].in_flight == 2
    }));
    let mut sixth = limpet.client();
    assert_eq!(sixth.get("/6").status, 200);
    assert!(slow.conn.is_closed(Duration::from_secs(2)));
    assert_eq!(shed(&limpet, 1), 1, "one first-head shed");
    // The busy ones were never touched.
    release.store(true, Ordering::SeqCst);
    assert_eq!(busy.read_response(false).unwrap().body_text(), "/hold");
    assert_eq!(fifth.read_response(false).unwrap().body_text(), "/hold");
}

#[test]
fn one_address_gets_429_past_its_connection_limit() {
    let backend = Backend::named("s0", Default::default());
    let limpet = Limpet::start(&config(backend.addr, "max_connections_per_client = 4"));
    let source = IpAddr::from([127, 0, 0, 7]);
    let mut open: Vec<TcpStream> = (0..4)
        .map(|_| connect_from(source, limpet.addr).unwrap())
        .collect();
    assert!(eventually(Duration::from_secs(2), || {
        limpet.running().reports()[0].active_connections == 4
    }));
    let fifth = connect_from(source, limpet.addr).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut answer = String::new();
    let mut fifth = fifth;
    let _ = fifth.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 429 Too Many Requests"),
        "{answer:?}"
    );
    assert_eq!(shed(&limpet, 2), 1);
    // Another address is not affected; one closed slot lets this one in.
    let other = connect_from(IpAddr::from([127, 0, 0, 8]), limpet.addr).unwrap();
    assert_eq!(Client::from_stream(other).get("/other").status, 200);
    drop(open.pop());
    assert!(eventually(Duration::from_secs(2), || {
        limpet.running().reports()[0].active_connections <= 3
    }));
    let again = connect_from(source, limpet.addr).unwrap();
    assert_eq!(Client::from_stream(again).get("/again").status, 200);
}

#[test]
fn a_head_slower_than_min_head_rate_gets_408_after_its_first_second() {
    let backend = Backend::named("s0", Default::default());
    let limpet = Limpet::start(&config(backend.addr, "min_head_rate = 256"));
    let mut stream = TcpStream::connect(limpet.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    // A byte every 100 ms: 10 B/s, far under 256.
    let head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut answer = Vec::new();
    for &b in head.iter() {
        if stream.write_all(&[b]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100)); // the trickle itself
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = stream.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || !answer.is_empty() {
                break;
            }
        }
        stream.set_nonblocking(false).unwrap();
    }
    stream.set_nonblocking(false).unwrap();
    let _ = stream.read_to_end(&mut answer);
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(shed(&limpet, 3), 1);
}

#[test]
fn a_body_slower_than_min_body_rate_gets_408_and_its_backend_connection_closes() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let backend = Backend::named("s0", log.clone());
    let limpet = Limpet::start(&config(backend.addr, "min_body_rate = 1024"));
    let mut stream = TcpStream::connect(limpet.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    // 10 bytes every 100 ms: 100 B/s, a tenth of the minimum.
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        if stream.write_all(&[b'x'; 10]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100)); // the trickle itself
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let read = stream.read(&mut buf);
        stream.set_nonblocking(false).unwrap();
        match read {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(shed(&limpet, 4), 1);
    // The backend got the head and part of the body, never a whole request.
    thread::sleep(Duration::from_millis(200)); // checks that nothing more arrives
    assert!(
        log.lock().unwrap().is_empty(),
        "no complete request reached the backend"
    );
}
