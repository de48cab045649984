//! An HTTP/2 client for the tests: the `h2` crate's (hyperium's, a kept
//! implementation independent of limpet's use of it as a server) on a
//! current-thread tokio runtime, which exists only in the tests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;

/// What came back on one stream.
#[derive(Debug)]
pub struct H2Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

impl H2Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs `test` on a fresh current-thread runtime, within 30 s.
pub fn run<F: std::future::Future<Output = ()>>(test: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), test)
            .await
            .expect("the HTTP/2 test finished within 30 s");
    });
}

/// Options of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The client's stream window (SETTINGS_INITIAL_WINDOW_SIZE).
    pub window: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { window: 65_535 }
    }
}

/// An h2c connection with prior knowledge to `addr`; its connection task
/// runs on the test's runtime. The handle resolves when the connection
/// ends (with its error, if any).
pub async fn connect(
    addr: SocketAddr,
    options: Options,
) -> (
    SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    handshake(tcp, options).await
}

/// HTTP/2 over TLS to `addr`, offering `alpn` (`h2` first, as browsers
/// do) with `config`'s trust: the protocol the server chose, and, when it
/// chose `h2`, the connection.
pub async fn connect_tls(
    addr: SocketAddr,
    sni: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    alpn: &[&[u8]],
    options: Options,
) -> (
    Option<Vec<u8>>,
    Option<(
        SendRequest<Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    )>,
) {
    let mut config = (*config).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let chosen = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if chosen.as_deref() != Some(b"h2") {
        return (chosen, None);
    }
    (chosen, Some(handshake(tls, options).await))
}

/// The HTTP/2 client handshake over any stream (TCP, TLS).
pub async fn handshake<T>(
    io: T,
    options: Options,
) -> (
    SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(options.window)
        .handshake::<_, Bytes>(io)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    (send.ready().await.unwrap(), task)
}

/// A request to send: method, path, fields, body (sent in `chunk`-byte
/// DATA frames) and trailers.
#[derive(Debug, Default, Clone)]
pub struct Req {
    pub method: &'static str,
    /// `:scheme`; empty: `http`.
    pub scheme: &'static str,
    pub path: String,
    pub authority: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub chunk: usize,
    pub trailers: Vec<(String, String)>,
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req {
            method: "GET",
            path: path.into(),
            authority: Some("example.com".into()),
            chunk: 16 * 1024,
            ..Req::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Sends `req` and reads the whole response.
pub async fn request(send: &mut SendRequest<Bytes>, req: Req) -> Result<H2Response, h2::Error> {
    let mut stream = start(send, &req).await?;
    read(&mut stream).await
}

/// Sends `req` (its body too) and returns the pending response.
pub async fn start(
    send: &mut SendRequest<Bytes>,
    req: &Req,
) -> Result<h2::client::ResponseFuture, h2::Error> {
    let uri = match &req.authority {
        Some(authority) => {
            let scheme = if req.scheme.is_empty() {
                "http"
            } else {
                req.scheme
            };
            format!("{scheme}://{authority}{}", req.path)
        }
        None => req.path.clone(),
    };
    let mut builder = http::Request::builder().method(req.method).uri(uri);
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(()).unwrap();
    let ends = req.body.is_none() && req.trailers.is_empty();
    let mut send = send.clone().ready().await?;
    let (response, mut body) = send.send_request(request, ends)?;
    if let Some(data) = &req.body {
        let pieces: Vec<&[u8]> = data.chunks(req.chunk.max(1)).collect();
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let last = i + 1 == count && req.trailers.is_empty();
            send_data(&mut body, Bytes::copy_from_slice(piece), last).await?;
        }
        if count == 0 && req.trailers.is_empty() {
            body.send_data(Bytes::new(), true)?;
        }
    }
    if !req.trailers.is_empty() {
        let mut map = http::HeaderMap::new();
        for (name, value) in &req.trailers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        body.send_trailers(map)?;
    }
    Ok(response)
}

/// Sends `data` as the stream's window allows.
pub async fn send_data(
    body: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    while !data.is_empty() {
        body.reserve_capacity(data.len());
        let n = std::future::poll_fn(|cx| body.poll_capacity(cx))
            .await
            .expect("the stream is open")?;
        let piece = data.split_to(n.min(data.len()));
        body.send_data(piece, false)?;
    }
    if end {
        body.send_data(Bytes::new(), true)?;
    }
    Ok(())
}

/// Reads a whole response, giving the window back as it goes.
pub async fn read(stream: &mut h2::client::ResponseFuture) -> Result<H2Response, h2::Error> {
    let response = stream.await?;
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(data) = body.data().await {
        let data = data?;
        let _ = body.flow_control().release_capacity(data.len());
        bytes.extend_from_slice(&data);
    }
    let trailers = body.trailers().await?;
    Ok(H2Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes,
        trailers,
    })
}
