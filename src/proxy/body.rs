//! Streaming message bodies by their framing, a buffer at a time: nothing
//! ever holds a whole body. Chunked bodies pass through verbatim; the
//! decoder only validates them and finds where the message ends, so that
//! the bytes after it (a pipelined request, or a backend's stray bytes) are
//! never forwarded as part of it.

use std::time::Duration;

use super::client::Client;
use super::io::{self, IoFailure};
use crate::error::ProxyError;
use crate::http::{BodyFraming, ChunkedDecoder, ResponseFraming};
use crate::net::{Stream, Upstream};
use crate::worker::{Stats, Worker};

/// Why a request body did not reach the backend whole.
#[derive(Debug)]
pub enum SendError {
    /// The client failed: closed, too slow, or bad chunked framing.
    Client(ProxyError),
    /// Writing to the backend failed (it may have answered early).
    Backend(IoFailure),
}

/// Where the end of a message is, as bytes arrive.
#[derive(Debug)]
pub enum Remaining {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

impl Remaining {
    /// The state at the start of a request body.
    pub fn of_request(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => Remaining::Done,
            BodyFraming::Length(n) => Remaining::Length(n),
            BodyFraming::Chunked => Remaining::Chunked(ChunkedDecoder::new()),
        }
    }

    /// The state at the start of a response body.
    pub fn of_response(framing: ResponseFraming) -> Self {
        match framing {
            ResponseFraming::None | ResponseFraming::Length(0) => Remaining::Done,
            ResponseFraming::Length(n) => Remaining::Length(n),
            ResponseFraming::Chunked => Remaining::Chunked(ChunkedDecoder::new()),
            ResponseFraming::UntilClose => Remaining::UntilClose,
        }
    }

    /// How many of `bytes` belong to the message; moves the state on.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<usize, crate::http::ChunkError> {
        let taken = match self {
            Remaining::Done => 0,
            Remaining::Length(left) => {
                let n = usize::try_from(*left).map_or(bytes.len(), |left| left.min(bytes.len()));
                *left -= n as u64;
                if *left == 0 {
                    *self = Remaining::Done;
                }
                n
            }
            Remaining::Chunked(decoder) => {
                let progress = decoder.feed(bytes)?;
                if progress.done {
                    *self = Remaining::Done;
                }
                progress.consumed
            }
            Remaining::UntilClose => bytes.len(),
        };
        Ok(taken)
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Remaining::Done)
    }
}

/// Streams the request body from the client (bytes already buffered first)
/// to the backend. On return `client.buf` holds only bytes after the body.
pub async fn send_request_body<S: Stream>(
    worker: &Worker,
    client: &mut Client<S>,
    backend: &mut Upstream,
    framing: BodyFraming,
    client_limit: Duration,
    backend_limit: Duration,
) -> Result<(), SendError> {
    let mut remaining = Remaining::of_request(framing);
    loop {
        if !client.buf.is_empty() {
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
        let buf = std::mem::take(&mut client.buf);
        let (result, buf) = io::read_more(&mut client.stream, buf, client_limit).await;
        client.buf = buf.unwrap_or_default();
        match result {
            Ok(0) => return Err(SendError::Client(ProxyError::ClientClosed)),
            Ok(_) => {}
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

/// Relays the rest of a response body from the backend to the client,
/// adding what reaches the client to `sent`.
#[allow(clippy::too_many_arguments)] // each side's stream and deadline, the state, the count
/// `buf` is an empty buffer to read into; it is given back to the pool.
pub async fn relay_response_body<S: Stream>(
    worker: &Worker,
    backend: &mut Upstream,
    client: &mut S,
    mut buf: Vec<u8>,
    mut remaining: Remaining,
    client_limit: Duration,
    backend_limit: Duration,
    sent: &std::cell::Cell<u64>,
) -> Relayed {
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
        sent.set(sent.get() + n as u64);
        if extra {
            break Relayed::Complete { extra: true };
        }
    };
    worker.buffers.give(buf);
    outcome
}
