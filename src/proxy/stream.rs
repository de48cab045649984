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

    /// Before limpet closes the connection: TLS says `close_notify` (within
    /// a second); plain TCP has nothing to say.
    fn finish(&mut self) -> impl Future<Output = ()>;

    /// Relays bytes both ways with `backend` after a protocol switch.
    fn tunnel(self, worker: &Worker, backend: Upstream, idle: Duration)
        -> impl Future<Output = ()>;
}

impl ClientStream for TcpStream {
    fn sni(&self) -> Option<&str> {
        None
    }

    fn is_tls(&self) -> bool {
        false
    }

    async fn finish(&mut self) {}

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

    async fn finish(&mut self) {
        let _ = crate::worker::deadline::timeout(Duration::from_secs(1), self.close_notify()).await;
    }

    async fn tunnel(self, worker: &Worker, backend: Upstream, idle: Duration) {
        super::h1::tunnel_any(worker, self, backend, idle).await;
    }
}
