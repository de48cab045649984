//! What a client connection runs over, as the proxy sees it: plain TCP or
//! TLS (`crate::net::TlsStream`), with what each says about itself (SNI,
//! scheme) and how it closes and tunnels.

use std::future::Future;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::net::{Stream, TlsStream, Upstream};
use crate::worker::Worker;

/// What a client connection runs over: TCP, or TLS on an HTTPS listener.
pub trait ClientStream: Stream + Sized {
    /// The server name the client asked for in its TLS handshake.
    fn sni(&self) -> Option<&str>;

    /// Whether requests arrived over TLS (`X-Forwarded-Proto: https`).
    fn is_tls(&self) -> bool;

    /// Whether the client chose HTTP/2 in its TLS handshake (ALPN `h2`).
    fn alpn_h2(&self) -> bool;

    /// The TCP socket itself when nothing sits between it and the bytes
    /// (plain HTTP), for `splice(2)`; `None` over TLS.
    fn as_tcp(&mut self) -> Option<&mut TcpStream>;

    /// Before limpet closes the connection: TLS says `close_notify` (within
    /// a second); plain TCP has nothing to say.
    fn finish(&mut self) -> impl Future<Output = ()>;

    /// Relays bytes both ways with `backend` after a protocol switch.
    fn tunnel(self, worker: &Worker, backend: Upstream, idle: Duration)
        -> impl Future<Output = ()>;

    /// Serves the connection as HTTP/2, `read` (the preface, perhaps more)
    /// first.
    fn http2(
        self,
        worker: &Worker,
        conn: super::h2::H2Conn,
        read: Vec<u8>,
    ) -> impl Future<Output = ()>;
}

impl ClientStream for TcpStream {
    fn sni(&self) -> Option<&str> {
        None
    }

    fn is_tls(&self) -> bool {
        false
    }

    fn alpn_h2(&self) -> bool {
        false
    }

    fn as_tcp(&mut self) -> Option<&mut TcpStream> {
        Some(self)
    }

    async fn finish(&mut self) {}

    async fn http2(self, worker: &Worker, conn: super::h2::H2Conn, read: Vec<u8>) {
        use monoio::io::IntoPollIo as _;
        match self.into_poll_io() {
            Ok(io) => super::h2::serve(worker, conn, super::h2::Replay::new(io, read)).await,
            Err(err) => log::debug!("{}: no poll-based socket for HTTP/2: {err}", conn.peer),
        }
    }

    async fn tunnel(self, worker: &Worker, backend: Upstream, idle: Duration) {
        match backend {
            Upstream::Plain(backend) => super::h1::tunnel_plain(worker, self, backend, idle).await,
            tls => super::h1::tunnel_any(worker, self, tls, idle).await,
        }
    }
}

impl ClientStream for TlsStream {
    fn sni(&self) -> Option<&str> {
        TlsStream::sni(self)
    }

    fn is_tls(&self) -> bool {
        true
    }

    /// Boxed: the close's state is the largest a TLS connection's loop
    /// would otherwise carry for as long as the connection lives.
    fn finish(&mut self) -> impl Future<Output = ()> {
        Box::pin(async move {
            let _ =
                crate::worker::deadline::timeout(Duration::from_secs(1), self.close_notify()).await;
        })
    }

    async fn tunnel(self, worker: &Worker, backend: Upstream, idle: Duration) {
        super::h1::tunnel_any(worker, self, backend, idle).await;
    }

    fn alpn_h2(&self) -> bool {
        TlsStream::alpn_h2(self)
    }

    fn as_tcp(&mut self) -> Option<&mut TcpStream> {
        None
    }

    /// Over TLS, HTTP/2 is chosen by ALPN: `read` is empty, and the
    /// preface is the first thing rustls decrypts (or already has).
    async fn http2(self, worker: &Worker, conn: super::h2::H2Conn, read: Vec<u8>) {
        match self.into_poll_io() {
            Ok(io) => super::h2::serve(worker, conn, super::h2::Replay::new(io, read)).await,
            Err(err) => log::debug!("{}: no poll-based socket for HTTP/2: {err}", conn.peer),
        }
    }
}
