//! Backends as plain threads over std sockets on 127.0.0.1, and the canned
//! answers they give.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::{Conn, Received};

/// A backend on 127.0.0.1: every accepted connection runs the handler on a
/// thread of its own. Counts connections accepted and closed; when dropped,
/// its port is closed before `drop` returns.
pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Connections whose handler has returned and that the backend closed.
    closed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
    /// Every accepted connection, to shut down when the backend stops.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Backend {
    /// The big-body backend: a POST's body of `size` bytes is counted
    /// without being kept (then `200 received`); anything else gets a
    /// `size`-byte body of `x`, written `chunk` bytes at a time.
    pub fn big_bodies(size: usize, chunk: usize) -> Backend {
        Backend::spawn(move |mut conn| {
            while let Some(head) = conn.read_head() {
                let head = String::from_utf8_lossy(&head).to_lowercase();
                if head.starts_with("post") {
                    let mut left = size - conn.pending.len();
                    conn.pending.clear();
                    let mut buf = vec![0u8; chunk];
                    while left > 0 {
                        let n = std::io::Read::read(&mut conn.stream, &mut buf).unwrap();
                        assert!(n > 0);
                        left -= n.min(left);
                    }
                    conn.stream.write_all(&ok("received")).unwrap();
                } else {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                    conn.stream.write_all(head.as_bytes()).unwrap();
                    let piece = vec![b'x'; chunk];
                    for _ in 0..size / chunk {
                        conn.stream.write_all(&piece).unwrap();
                    }
                }
            }
        })
    }

    pub fn spawn<F>(handler: F) -> Backend
    where
        F: Fn(Conn) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Backend::on(listener, handler)
    }

    /// Serves on an already bound listener (to restart on the same port).
    pub fn on<F>(listener: TcpListener, handler: F) -> Backend
    where
        F: Fn(Conn) + Send + Sync + 'static,
    {
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let open = Arc::new(Mutex::new(Vec::new()));
        let (count, stopping, tracked) = (connections.clone(), stop.clone(), open.clone());
        let ended = closed.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    tracked.lock().unwrap().push(clone);
                }
                count.fetch_add(1, Ordering::SeqCst);
                let (handler, ended) = (handler.clone(), ended.clone());
                thread::spawn(move || {
                    // The tracked clone keeps the socket open: close it
                    // when the handler is done, as a real server would.
                    let closer = stream.try_clone();
                    handler(Conn::new(stream));
                    if let Ok(closer) = closer {
                        let _ = closer.shutdown(Shutdown::Both);
                    }
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Backend {
            addr,
            connections,
            closed,
            stop,
            accept: Some(accept),
            open,
        }
    }

    /// A keep-alive backend answering each request with `respond(request)`
    /// (raw response bytes); it closes when `respond` returns None.
    pub fn respond<F>(respond: F) -> Backend
    where
        F: Fn(&Received) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Backend::respond_on(TcpListener::bind("127.0.0.1:0").unwrap(), respond)
    }

    /// [`Backend::respond`] on an already bound listener.
    pub fn respond_on<F>(listener: TcpListener, respond: F) -> Backend
    where
        F: Fn(&Received) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Backend::on(listener, move |mut conn| {
            while let Some(request) = conn.read_request() {
                let Some(answer) = respond(&request) else {
                    break;
                };
                if conn.stream.write_all(&answer).is_err() {
                    break;
                }
            }
        })
    }

    /// A keep-alive backend answering `200` with body `<name> <target>`,
    /// recording every request it receives.
    pub fn named(name: &'static str, log: Log) -> Backend {
        Backend::named_on(TcpListener::bind("127.0.0.1:0").unwrap(), name, log)
    }

    /// [`Backend::named`] on an already bound listener.
    pub fn named_on(listener: TcpListener, name: &'static str, log: Log) -> Backend {
        Backend::respond_on(listener, move |req| {
            log.lock().unwrap().push(req.clone());
            Some(ok(&format!("{name} {}", req.target)))
        })
    }

    /// A backend with active checks: answers `/healthz` with 200 while
    /// `healthy` (else 503), counting them in `probes`; every other path
    /// with `<name> <target>`.
    pub fn checked(
        name: &'static str,
        healthy: Arc<AtomicBool>,
        probes: Arc<AtomicUsize>,
    ) -> Backend {
        Backend::respond(move |req| {
            if req.target == "/healthz" {
                probes.fetch_add(1, Ordering::SeqCst);
                return Some(if healthy.load(Ordering::SeqCst) {
                    ok("up")
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_vec()
                });
            }
            Some(ok(&format!("{name} {}", req.target)))
        })
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many connections the backend has closed after its handler.
    pub fn closed_count(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    /// Stops like a killed server: the port closes and every open
    /// connection is shut down, both done when `drop` returns.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag, and wait for it
        // to end: the listener closes with it.
        let woken = TcpStream::connect(self.addr).map(|s| s.shutdown(Shutdown::Both));
        if let (Ok(_), Some(accept)) = (woken, self.accept.take()) {
            let _ = accept.join();
        }
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// What a backend writes down: every request it received.
pub type Log = Arc<Mutex<Vec<Received>>>;

/// An empty [`Log`].
pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// A `200 OK` with a Content-Length body.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An address on which nothing listens: a socket bound and never
/// listening, so a connect is refused (RST). The socket is kept open for
/// the rest of the test run, so no other socket of the run (tests bind
/// port 0 in parallel) can be handed the port and answer on it.
pub fn dead_address() -> SocketAddr {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    std::mem::forget(socket);
    addr
}
