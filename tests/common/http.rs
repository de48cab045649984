//! The test's own HTTP/1.1 side: a buffered connection that reads heads,
//! bodies and requests byte for byte, and a client to limpet. It parses
//! HTTP itself, independently of limpet's parser, so that a bug there cannot
//! hide itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::IO_TIMEOUT;

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
        named(&self.headers, name).first().copied()
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        named(&self.headers, name)
    }
}

/// The values of the fields called `name` (any case), in order.
fn named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A byte stream a test reads and writes: TCP, or TLS over TCP.
pub trait Socket: Read + Write {
    /// The TCP connection underneath, for read timeouts.
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// A buffered reader over a stream that keeps unread bytes.
pub struct Conn<S = TcpStream> {
    pub stream: S,
    pub pending: Vec<u8>,
}

impl<S: Socket> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        stream.tcp().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
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
        self.stream.tcp().set_read_timeout(Some(within)).unwrap();
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
        self.stream
            .tcp()
            .set_read_timeout(Some(IO_TIMEOUT))
            .unwrap();
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
        named(&self.headers, name).first().copied()
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        named(&self.headers, name)
    }

    /// Every `Set-Cookie` value, in order.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers_named("set-cookie")
    }

    /// The `name=value` of the first `Set-Cookie`, as a client sends it
    /// back; panics if there is none.
    pub fn cookie_pair(&self) -> String {
        let line = self.header("set-cookie").expect("a Set-Cookie");
        line.split(';').next().unwrap_or(line).to_string()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The body as JSON, after checking the status is 200.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "{}", self.body_text());
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A client connection to limpet, over TCP unless said otherwise.
pub struct Client<S = TcpStream> {
    pub conn: Conn<S>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to limpet");
        Client::from_stream(stream)
    }

    /// A client over a connection made elsewhere (`connect_from`).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            conn: Conn::new(stream),
        }
    }
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

impl<S: Socket> Client<S> {
    pub fn send(&mut self, bytes: &[u8]) {
        self.conn.stream.write_all(bytes).expect("send to limpet");
        self.conn.stream.flush().expect("send to limpet");
    }

    /// Sends a GET for `path` with `Host: test`.
    pub fn get(&mut self, path: &str) -> Response {
        self.get_host(path, "test", "")
    }

    /// Sends a GET for `path` with `Host: host` and the `extra` header
    /// lines (each ending in CRLF).
    pub fn get_host(&mut self, path: &str, host: &str, extra: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes());
        self.read_response(false).expect("a response")
    }

    /// Sends a GET for `path` with `Host: t` and, if given, `Cookie: cookie`.
    pub fn get_with(&mut self, path: &str, cookie: Option<&str>) -> Response {
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        self.get_host(path, "t", &cookie)
    }

    /// `GET /` carrying the session `token` in `SERVERID`, if given.
    pub fn get_token(&mut self, token: Option<&str>) -> Response {
        let cookie = token.map(|t| format!("SERVERID={t}"));
        self.get_with("/", cookie.as_deref())
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
