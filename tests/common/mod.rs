//! Test harness: limpet started in-process on 127.0.0.1 with OS-assigned
//! ports, backends as plain threads over std sockets, and a small HTTP/1.1
//! client that reads responses byte for byte. The client and backends parse
//! HTTP themselves, independently of limpet's parser, so a bug there cannot
//! hide itself.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single read in a test may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// limpet running in this process.
pub struct Limpet {
    pub running: Option<limpet::server::Running>,
    pub addr: SocketAddr,
}

impl Limpet {
    /// Starts limpet with `toml` (listen addresses should use port 0).
    pub fn start(toml: &str) -> Limpet {
        let config = limpet::config::parse(toml, "test.toml").expect("test config is valid");
        let running = limpet::server::start(config).expect("limpet starts");
        let addr = running.listen_addrs()[0];
        Limpet {
            running: Some(running),
            addr,
        }
    }

    /// Calls the admin listener (the config must have `[admin]`).
    pub fn admin(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> Response {
        let addr = self.running().admin_addr().expect("an admin listener");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let mut client = Client::connect(addr);
        client.send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        client.read_response(false).expect("an admin answer")
    }

    /// Waits (at most 2 s) until every worker routes with snapshot
    /// `generation` or a later one; false if they do not.
    pub fn snapshot_reached(&self, generation: u64) -> bool {
        eventually(Duration::from_secs(2), || {
            self.running()
                .reports()
                .iter()
                .all(|r| r.snapshot_generation >= generation)
        })
    }

    pub fn running(&self) -> &limpet::server::Running {
        self.running.as_ref().unwrap()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Limpet {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop();
        }
    }
}

/// A config with one worker and one listener on port 0 in front of
/// `backends` (group `web`, servers `s0`, `s1`, …); `extra` is appended.
pub fn config_for(backends: &[SocketAddr], extra: &str) -> String {
    config_with(backends, "", extra)
}

/// Like [`config_for`], with `group_keys` written in `[groups.web]`.
pub fn config_with(backends: &[SocketAddr], group_keys: &str, extra: &str) -> String {
    let mut toml = format!(
        "[workers]\ncount = 1\n\n[[listeners]]\nname = \"test\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n[groups.web]\n{group_keys}\n",
    );
    for (i, addr) in backends.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[groups.web.servers]]\nname = \"s{i}\"\naddress = \"{addr}\"\n"
        ));
    }
    toml.push('\n');
    toml.push_str(extra);
    toml
}

/// A request as a backend received it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Every byte of the message as it arrived (head and framed body).
    pub raw: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A buffered reader over a std stream that keeps unread bytes.
pub struct Conn {
    pub stream: TcpStream,
    pub pending: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    /// Reads more bytes into `pending`; false at end of stream or error.
    pub fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.pending.split_off(n);
        std::mem::replace(&mut self.pending, rest)
    }

    /// The next head (through CRLFCRLF), or None if the stream ended first.
    pub fn read_head(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                return Some(self.take(i + 4));
            }
            if !self.fill() {
                return None;
            }
        }
    }

    pub fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.pending.len() < n {
            if !self.fill() {
                return None;
            }
        }
        Some(self.take(n))
    }

    fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.pending, b"\r\n") {
                return Some(self.take(i + 2));
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// A chunked body: (decoded body, raw bytes).
    pub fn read_chunked(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut body = Vec::new();
        let mut raw = Vec::new();
        loop {
            let line = self.read_line()?;
            raw.extend_from_slice(&line);
            let text = std::str::from_utf8(&line).ok()?.trim_end();
            let size = usize::from_str_radix(text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                loop {
                    let trailer = self.read_line()?;
                    raw.extend_from_slice(&trailer);
                    if trailer == b"\r\n" {
                        return Some((body, raw));
                    }
                }
            }
            let data = self.read_exact(size + 2)?;
            raw.extend_from_slice(&data);
            body.extend_from_slice(&data[..size]);
        }
    }

    /// Reads until the peer closes (or the read timeout).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.pending)
    }

    /// True when the peer has closed: a read returns end of stream (or a
    /// reset) within the timeout, with no bytes.
    pub fn is_closed(&mut self, within: Duration) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => {
                self.pending.push(byte[0]);
                false
            }
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        closed
    }

    /// Reads one request as a server would.
    pub fn read_request(&mut self) -> Option<Received> {
        let head = self.read_head()?;
        let text = String::from_utf8_lossy(&head).to_string();
        let mut lines = text.split("\r\n");
        let mut start = lines.next()?.split(' ');
        let mut received = Received {
            method: start.next()?.to_string(),
            target: start.next()?.to_string(),
            version: start.next()?.to_string(),
            raw: head.clone(),
            ..Received::default()
        };
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            received
                .headers
                .push((name.to_string(), value.trim().to_string()));
        }
        if received
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            let (body, raw) = self.read_chunked()?;
            received.body = body;
            received.raw.extend_from_slice(&raw);
        } else if let Some(len) = received.header("content-length") {
            let len: usize = len.parse().ok()?;
            let body = self.read_exact(len)?;
            received.raw.extend_from_slice(&body);
            received.body = body;
        }
        Some(received)
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response as the client received it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// A client connection to limpet.
pub struct Client {
    pub conn: Conn,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to limpet");
        stream.set_nodelay(true).unwrap();
        Client {
            conn: Conn::new(stream),
        }
    }

    /// A client over a connection made elsewhere (`connect_from`).
    pub fn from_stream(stream: TcpStream) -> Client {
        let _ = stream.set_nodelay(true);
        Client {
            conn: Conn::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.conn.stream.write_all(bytes).expect("send to limpet");
    }

    /// Sends a GET for `path` with `Host: test`.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.read_response(false).expect("a response")
    }

    /// Reads one response; `head_request` for responses to HEAD.
    pub fn read_response(&mut self, head_request: bool) -> Option<Response> {
        let head = self.conn.read_head()?;
        let text = String::from_utf8_lossy(&head).to_string();
        let mut lines = text.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let mut response = Response {
            status,
            head: text.clone(),
            ..Response::default()
        };
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            response
                .headers
                .push((name.to_string(), value.trim().to_string()));
        }
        if head_request || status / 100 == 1 || status == 204 || status == 304 {
            return Some(response);
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.conn.read_chunked()?.0;
        } else if let Some(len) = response.header("content-length") {
            response.body = self.conn.read_exact(len.parse().ok()?)?;
        } else {
            response.body = self.conn.read_to_end();
        }
        Some(response)
    }
}

/// A backend on 127.0.0.1: every accepted connection runs the handler on a
/// thread of its own. Counts connections; stops accepting when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Every accepted connection, to shut down when the backend stops.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Backend {
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
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let open = Arc::new(Mutex::new(Vec::new()));
        let (count, stopping, tracked) = (connections.clone(), stop.clone(), open.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    tracked.lock().unwrap().push(clone);
                }
                count.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                thread::spawn(move || {
                    // The tracked clone keeps the socket open: close it
                    // when the handler is done, as a real server would.
                    let closer = stream.try_clone();
                    handler(Conn::new(stream));
                    if let Ok(closer) = closer {
                        let _ = closer.shutdown(Shutdown::Both);
                    }
                });
            }
        });
        Backend {
            addr,
            connections,
            stop,
            open,
        }
    }

    /// A keep-alive backend answering each request with `respond(request)`
    /// (raw response bytes); it closes when `respond` returns None.
    pub fn respond<F>(respond: F) -> Backend
    where
        F: Fn(&Received) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Backend::spawn(move |mut conn| {
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
    pub fn named(name: &'static str, log: Arc<Mutex<Vec<Received>>>) -> Backend {
        Backend::respond(move |req| {
            log.lock().unwrap().push(req.clone());
            Some(ok(&format!("{name} {}", req.target)))
        })
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    /// Stops like a killed server: the port closes and every open
    /// connection is shut down.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr).map(|s| s.shutdown(Shutdown::Both));
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// A `200 OK` with a Content-Length body.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An address on which nothing listens.
pub fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Waits until `check` holds, up to `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    check()
}

/// A connection to `addr` from the loopback address `source` (Linux routes
/// all of 127/8 to lo), so that tests can open many connections without
/// being one client to limpet's per-address limits.
pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// The `i`th of 253 loopback sources, 127.0.0.2 to 127.0.0.254.
pub fn loopback_source(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 2 + (i % 253) as u8])
}
