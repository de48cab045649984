//! Streaming message bodies by their framing, a buffer at a time: nothing
//! ever holds a whole body. Chunked bodies pass through verbatim; the
//! decoder only validates them and finds where the message ends, so that
//! the bytes after it (a pipelined request, or a backend's stray bytes) are
//! never forwarded as part of it.

use std::time::Duration;

use super::Client;
use crate::error::ProxyError;
use crate::http::BodyFraming;
use crate::net::{Stream, Upstream};
use crate::proxy::framing::Remaining;
use crate::proxy::io::{self, IoFailure};
use crate::proxy::upstream::SendError;
use crate::worker::{Shed, Stats, Worker};

/// Streams the request body from the client (bytes already buffered first)
/// to the backend. On return `client.buf` holds only bytes after the body.
/// `client_limit` bounds each wait for the client; after its first second
/// the body must also average `min_rate` bytes per second (0: no minimum),
/// so a body trickled a byte per wait cannot hold a backend connection.
pub async fn send_request_body<S: Stream>(
    worker: &Worker,
    client: &mut Client<S>,
    backend: &mut Upstream,
    framing: BodyFraming,
    client_limit: Duration,
    backend_limit: Duration,
    min_rate: u32,
) -> Result<(), SendError> {
    let mut remaining = Remaining::of_request(framing);
    let started = crate::worker::now();
    let mut received: u64 = 0;
    loop {
        if !client.buf.is_empty() {
            received += client.buf.len() as u64;
            let n = remaining
                .advance(&client.buf)
                .map_err(|err| SendError::Client(ProxyError::BadRequestBody(err)))?;
            let buf = std::mem::take(&mut client.buf);
            let (result, buf) = io::write_range(backend, buf, 0..n, backend_limit).await;
            client.buf = buf.unwrap_or_default();
            result.map_err(SendError::Backend)?;
            io::consume(&mut client.buf, n);
        }
        if remaining.is_done() {
            return Ok(());
        }
        if client.buf.capacity() == 0 {
            client.buf = worker.buffers.take();
        }
        // The bytes so far buy this much time at `min_rate`.
        let rated = (min_rate > 0).then(|| {
            let earned_ms = received.saturating_mul(1000) / u64::from(min_rate);
            let until = started + Duration::from_millis(earned_ms.max(1000));
            until.saturating_duration_since(crate::worker::now())
        });
        let limit = rated.map_or(client_limit, |rated| rated.min(client_limit));
        let buf = std::mem::take(&mut client.buf);
        let (result, buf) = io::read_more(&mut client.stream, buf, limit).await;
        client.buf = buf.unwrap_or_default();
        match result {
            Ok(0) => return Err(SendError::Client(ProxyError::ClientClosed)),
            Ok(_) => {}
            Err(IoFailure::TimedOut) if rated.is_some_and(|rated| rated < client_limit) => {
                worker.stats.shed(Shed::SlowBody);
                if worker
                    .conns
                    .should_log(client.peer.ip(), crate::worker::now())
                {
                    log::info!(
                        "{}: request body slower than limits.min_body_rate ({min_rate} B/s); closed",
                        client.peer
                    );
                }
                return Err(SendError::Client(ProxyError::ClientTimeout));
            }
            Err(IoFailure::TimedOut) => return Err(SendError::Client(ProxyError::ClientTimeout)),
            Err(IoFailure::Failed(err)) => {
                return Err(SendError::Client(ProxyError::ClientIo(err)))
            }
        }
    }
}

/// How relaying a response body ended.
#[derive(Debug)]
pub enum Relayed {
    /// The whole message reached the client; `extra` says the backend sent
    /// bytes after it (its connection must not be reused).
    Complete { extra: bool },
    /// The body ended early or a side failed: the client connection must be
    /// closed so that the response does not look complete.
    Broken,
}

/// Where a response body relay starts, and each side's deadline.
#[derive(Debug)]
pub struct Relay {
    pub remaining: Remaining,
    pub client_limit: Duration,
    pub backend_limit: Duration,
}

/// Relays the rest of a response body from the backend to the client,
/// adding what reaches the client to `sent`. `buf` is an empty buffer to
/// read into; it is given back to the pool.
pub async fn relay_response_body<S: Stream>(
    worker: &Worker,
    backend: &mut Upstream,
    client: &mut S,
    mut buf: Vec<u8>,
    relay: Relay,
    sent: &mut u64,
) -> Relayed {
    let Relay {
        mut remaining,
        client_limit,
        backend_limit,
    } = relay;
    let outcome = loop {
        if remaining.is_done() {
            break Relayed::Complete { extra: false };
        }
        buf.clear();
        let (result, back) = io::read_more(backend, buf, backend_limit).await;
        let Some(back) = back else {
            Stats::bump(&worker.stats.backend_timeouts);
            return Relayed::Broken;
        };
        buf = back;
        match result {
            Ok(0) if matches!(remaining, Remaining::UntilClose) => {
                break Relayed::Complete { extra: false };
            }
            Ok(0) | Err(_) => break Relayed::Broken,
            Ok(_) => {}
        }
        let Ok(n) = remaining.advance(&buf) else {
            break Relayed::Broken;
        };
        let extra = n < buf.len();
        let (result, back) = io::write_range(client, buf, 0..n, client_limit).await;
        let Some(back) = back else {
            return Relayed::Broken;
        };
        buf = back;
        if result.is_err() {
            break Relayed::Broken;
        }
        *sent += n as u64;
        if extra {
            break Relayed::Complete { extra: true };
        }
    };
    worker.buffers.give(buf);
    outcome
}
