//! What can go wrong while serving one request, and what to answer. Which
//! failures may be retried is decided where the failure happens (see
//! `proxy::forward`), since it depends on what was sent already.

use std::io;

/// A failure while serving one request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request: {0}")]
    BadRequest(#[from] crate::http::RequestError),
    #[error("the request head does not fit in the buffer")]
    HeadTooLarge,
    #[error("bad chunked request body: {0}")]
    BadRequestBody(#[source] crate::http::ChunkError),
    #[error("no route for this request")]
    NoRoute,
    #[error("the Host header names a host served elsewhere than the TLS server name")]
    Misdirected,
    #[error("the client closed the connection")]
    ClientClosed,
    #[error("the client was too slow")]
    ClientTimeout,
    #[error("client I/O: {0}")]
    ClientIo(#[source] io::Error),
    #[error("no usable server")]
    NoServer,
    /// Strict persistence (`on_server_down = "refuse"`): the session's
    /// server cannot take it, and no other may (SPEC §3.8).
    #[error("the session's server is unavailable (retry after {retry_after_secs} s)")]
    SessionUnavailable { retry_after_secs: u64 },
    #[error("cannot connect to the backend: {0}")]
    Connect(#[source] io::Error),
    #[error("the backend closed the connection before answering")]
    BackendClosed,
    #[error("backend I/O: {0}")]
    BackendIo(#[source] io::Error),
    #[error("the backend did not answer in time")]
    BackendTimeout,
    #[error("the backend sent a bad response: {0}")]
    BadResponse(#[from] crate::http::ResponseError),
    #[error("bad chunked response body: {0}")]
    BadResponseBody(#[source] crate::http::ChunkError),
    #[error("the backend's response head is larger than the buffer")]
    ResponseHeadTooLarge,
}

impl ProxyError {
    /// The status limpet answers with, if the client can still be answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProxyError::BadRequest(err) => Some(err.status()),
            ProxyError::HeadTooLarge => Some(431),
            ProxyError::BadRequestBody(_) => Some(400),
            ProxyError::NoRoute => Some(404),
            ProxyError::Misdirected => Some(421),
            ProxyError::ClientTimeout => Some(408),
            ProxyError::ClientClosed | ProxyError::ClientIo(_) => None,
            ProxyError::NoServer | ProxyError::SessionUnavailable { .. } => Some(503),
            ProxyError::Connect(_)
            | ProxyError::BackendClosed
            | ProxyError::BackendIo(_)
            | ProxyError::BadResponse(_)
            | ProxyError::BadResponseBody(_)
            | ProxyError::ResponseHeadTooLarge => Some(502),
            ProxyError::BackendTimeout => Some(504),
        }
    }

    /// The `Retry-After` seconds the answer carries, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ProxyError::SessionUnavailable { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}
