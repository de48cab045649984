//! A stream's DATA to the backend, as the backend's framing says: as is
//! under `Content-Length`, else as chunks with the client's trailers as
//! chunked trailers. Flow-control capacity goes back to the client as the
//! bytes reach the backend, so a slow backend slows its client, and each
//! wait for the client is bounded by `client_body`.
//!
//! `h2` checks DATA against `content-length` (longer, or shorter at the
//! end of the stream): it resets the stream with PROTOCOL_ERROR and this
//! returns an error before the backend has the whole request; the caller
//! then closes that backend connection.

use std::time::Duration;

use h2::RecvStream;

use crate::error::ProxyError;
use crate::http::{BodyFraming, RequestError};
use crate::net::Upstream;
use crate::proxy::io;
use crate::proxy::upstream::SendError;
use crate::worker::deadline::timeout;

/// Each side's deadline for one wait.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub client: Duration,
    pub backend: Duration,
}

/// Streams the request body of `body` to `backend`.
pub async fn send(
    body: &mut RecvStream,
    backend: &mut Upstream,
    framing: BodyFraming,
    limits: Limits,
) -> Result<(), SendError> {
    // `h2` holds DATA to the client's `content-length`; this holds it to
    // the length the backend was told, which limpet may have stated
    // itself (0 for a GET or HEAD without one, `check_request`).
    let (chunked, mut left) = match framing {
        BodyFraming::None => return Ok(()),
        BodyFraming::Length(n) => (false, Some(n)),
        BodyFraming::Chunked => (true, None),
    };
    loop {
        let data = timeout(limits.client, std::future::poll_fn(|cx| body.poll_data(cx))).await;
        let data = match data {
            Err(_) => return Err(SendError::Client(ProxyError::ClientTimeout)),
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                log::debug!("HTTP/2 request body ended early: {err}");
                return Err(SendError::Client(ProxyError::ClientClosed));
            }
            Ok(Some(Ok(data))) => data,
        };
        let len = data.len();
        if len == 0 {
            continue;
        }
        if let Some(left) = &mut left {
            // Past a length `h2` checked already, so only a GET or HEAD.
            let refused = ProxyError::BadRequest(RequestError::BodyOnGetOrHead);
            *left = left
                .checked_sub(len as u64)
                .ok_or(SendError::Client(refused))?;
        }
        if chunked {
            let mut piece = Vec::with_capacity(len + 20);
            push_hex(&mut piece, len);
            piece.extend_from_slice(b"\r\n");
            piece.extend_from_slice(&data);
            piece.extend_from_slice(b"\r\n");
            write(backend, piece, limits.backend).await?;
        } else {
            write(backend, data, limits.backend).await?;
        }
        // Only now may the client send as much again.
        let _ = body.flow_control().release_capacity(len);
    }
    if !chunked {
        return Ok(());
    }
    let trailers = timeout(
        limits.client,
        std::future::poll_fn(|cx| body.poll_trailers(cx)),
    )
    .await;
    let mut last = Vec::with_capacity(64);
    match trailers {
        Err(_) => return Err(SendError::Client(ProxyError::ClientTimeout)),
        Ok(Err(err)) => {
            log::debug!("HTTP/2 request trailers failed: {err}");
            return Err(SendError::Client(ProxyError::ClientClosed));
        }
        Ok(Ok(Some(trailers))) => crate::http::h2::write_trailers(&trailers, &mut last),
        Ok(Ok(None)) => last.extend_from_slice(b"0\r\n\r\n"),
    }
    write(backend, last, limits.backend).await
}

async fn write<B>(backend: &mut Upstream, buf: B, limit: Duration) -> Result<(), SendError>
where
    B: monoio::buf::IoBuf + AsRef<[u8]>,
{
    match io::write_all(backend, buf, limit).await {
        (Ok(()), _) => Ok(()),
        (Err(failure), _) => Err(SendError::Backend(failure)),
    }
}

/// `n` in lower-case hex, as a chunk size line wants it.
fn push_hex(out: &mut Vec<u8>, n: usize) {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        let nibble = (n >> (i * 4)) & 0xf;
        out.push(b"0123456789abcdef".get(nibble).copied().unwrap_or(b'0'));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunk_sizes_in_hex() {
        for n in [0usize, 1, 15, 16, 255, 4096, 16_384, 1 << 20] {
            let mut out = Vec::new();
            super::push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").as_bytes());
        }
    }
}
