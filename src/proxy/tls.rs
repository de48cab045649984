//! The server side of an HTTPS listener's handshake, counted per worker.

use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::net::TlsStream;
use crate::worker::{Stats, Worker};

/// Runs the server handshake of an accepted connection under `timeout`;
/// `None` (counted, logged at debug) when it fails.
pub async fn accept(
    worker: &Worker,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Option<TlsStream> {
    let stats = &worker.stats;
    let conn = match rustls::server::UnbufferedServerConnection::new(config) {
        Ok(conn) => conn,
        Err(err) => {
            Stats::bump(&stats.tls_handshake_failures);
            log::debug!("TLS from {peer}: {err}");
            return None;
        }
    };
    let mut stream = TlsStream::server(tcp, conn);
    // Boxed: the handshake's state is freed with it rather than sized into
    // every connection's task for its whole life.
    match Box::pin(crate::worker::deadline::timeout(
        timeout,
        stream.handshake(),
    ))
    .await
    {
        Ok(Ok(())) => {
            Stats::bump(&stats.tls_handshakes);
            if stream.resumed() {
                Stats::bump(&stats.tls_resumed);
            }
            Some(stream)
        }
        Ok(Err(err)) => {
            Stats::bump(&stats.tls_handshake_failures);
            log::debug!("TLS handshake from {peer} failed: {err}");
            None
        }
        Err(_) => {
            Stats::bump(&stats.tls_handshake_failures);
            log::debug!("TLS handshake from {peer} timed out");
            None
        }
    }
}
