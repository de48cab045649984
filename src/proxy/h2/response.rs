//! The backend's response body to the stream, by its HTTP/1 framing: a
//! length or the connection's end as DATA, chunked de-chunked with its
//! trailers as a trailing HEADERS frame. DATA goes out only as the
//! client's window opens (`poll_capacity`), each wait bounded by
//! `client_body`, so a client that never opens its window holds one
//! buffer until then, never more.

use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;

use crate::http::{ChunkedDecoder, ResponseFraming};
use crate::net::Upstream;
use crate::proxy::io;
use crate::worker::deadline::timeout;
use crate::worker::{Stats, Worker};

/// How relaying a response body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// The whole body reached the client; `extra`: the backend sent bytes
    /// after it (its connection must not be reused).
    Complete { extra: bool },
    /// A side failed: the stream is reset so that it does not look complete.
    Broken,
}

/// Where the body's end is.
enum Body {
    Length(u64),
    Chunked(ChunkedDecoder, Vec<u8>),
    UntilClose,
    Done,
}

/// Each side's deadline for one wait.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub client: Duration,
    pub backend: Duration,
}

/// Relays the body whose first bytes are `buf[start..]`, then reads the
/// rest from `backend`; adds what reaches the client to `sent`. `on_done`
/// runs once the backend has sent all it will send.
#[allow(clippy::too_many_arguments)]
pub async fn relay(
    worker: &Worker,
    backend: &mut Upstream,
    send: &mut SendStream<Bytes>,
    framing: ResponseFraming,
    mut buf: Vec<u8>,
    mut start: usize,
    limits: Limits,
    sent: &mut u64,
    mut on_done: impl FnMut(),
) -> Relayed {
    let mut body = match framing {
        ResponseFraming::None | ResponseFraming::Length(0) => Body::Done,
        ResponseFraming::Length(n) => Body::Length(n),
        ResponseFraming::Chunked => Body::Chunked(ChunkedDecoder::new(), Vec::new()),
        ResponseFraming::UntilClose => Body::UntilClose,
    };
    let mut ranges = Vec::new();
    let outcome = loop {
        let bytes = buf.get(start..).unwrap_or_default();
        ranges.clear();
        let mut taken = bytes.len();
        // One piece (a length or until close) needs no list.
        let mut whole = None;
        match &mut body {
            Body::Done => taken = 0,
            Body::Length(left) => {
                let n = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                whole = Some(0..n);
                *left -= n as u64;
                taken = n;
            }
            Body::Chunked(decoder, trailers) => {
                let fed =
                    decoder.feed_parts(bytes, |range| ranges.push(range), |b| trailers.push(b));
                match fed {
                    Ok(progress) => taken = progress.consumed,
                    Err(err) => {
                        log::debug!("backend's chunked body is malformed: {err}");
                        break Relayed::Broken;
                    }
                }
            }
            Body::UntilClose => whole = Some(0..bytes.len()),
        }
        // The last bytes of a length-delimited body end the stream in
        // their own DATA frame, not in an empty one after it.
        let last = ranges.len() + usize::from(whole.is_some());
        let ends = matches!(body, Body::Length(0));
        for (i, range) in whole.into_iter().chain(ranges.drain(..)).enumerate() {
            let piece = bytes.get(range).unwrap_or_default();
            let end = ends && i + 1 == last;
            if send_data(send, piece, end, limits.client).await.is_err() {
                worker.buffers.give(buf);
                return Relayed::Broken;
            }
            *sent += piece.len() as u64;
        }
        let finished = match &body {
            Body::Done => true,
            Body::Length(left) => *left == 0,
            Body::Chunked(decoder, _) => decoder.is_done(),
            Body::UntilClose => false,
        };
        if finished {
            on_done();
            break Relayed::Complete {
                extra: taken < bytes.len(),
            };
        }
        buf.clear();
        start = 0;
        let (result, back) = io::read_more(backend, buf, limits.backend).await;
        let Some(back) = back else {
            Stats::bump(&worker.stats.backend_timeouts);
            return Relayed::Broken;
        };
        buf = back;
        match result {
            Ok(0) if matches!(body, Body::UntilClose) => {
                on_done();
                break Relayed::Complete { extra: false };
            }
            Ok(0) | Err(_) => break Relayed::Broken,
            Ok(_) => {}
        }
    };
    worker.buffers.give(buf);
    if outcome == Relayed::Broken {
        send.send_reset(h2::Reason::INTERNAL_ERROR);
        return outcome;
    }
    let ended = match body {
        Body::Length(0) => Ok(()),
        Body::Chunked(_, trailers) if trailers.iter().any(|&b| b != b'\r') => {
            let map = crate::http::h2::parse_trailers(&trailers);
            if map.is_empty() {
                send.send_data(Bytes::new(), true)
            } else {
                send.send_trailers(map)
            }
        }
        _ => send.send_data(Bytes::new(), true),
    };
    match ended {
        Ok(()) => outcome,
        Err(_) => Relayed::Broken,
    }
}

/// Sends `data` as the client's window allows, each wait bounded by
/// `limit`; `end`: its last frame ends the stream.
pub async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: &[u8],
    end: bool,
    limit: Duration,
) -> Result<(), ()> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let capacity = timeout(limit, std::future::poll_fn(|cx| send.poll_capacity(cx))).await;
        let n = match capacity {
            Ok(Some(Ok(n))) => n.min(data.len()),
            Ok(Some(Err(_)) | None) | Err(_) => return Err(()),
        };
        if n == 0 {
            continue;
        }
        let (now, rest) = data.split_at(n);
        send.send_data(Bytes::copy_from_slice(now), end && rest.is_empty())
            .map_err(|_| ())?;
        data = rest;
    }
    Ok(())
}
