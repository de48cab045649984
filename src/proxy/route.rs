//! From a request head to a routing decision and the head to forward, in one
//! synchronous step: the parsed head borrows the client's buffer, so
//! everything that needs it happens here, before the first await.

use std::net::SocketAddr;

use crate::error::ProxyError;
use crate::http::{self, BodyFraming, Forwarding, Version};
use crate::worker::CoreView;

/// The most headers a request may have, whatever the configuration says
/// (`limits.max_headers` is validated against it).
pub const MAX_HEADERS: usize = 256;

/// What the rest of the pipeline needs to know of a request once its head
/// has been parsed and rewritten.
#[derive(Debug, Clone)]
pub struct Request {
    /// Bytes of the head in the client buffer.
    pub head_len: usize,
    pub body: BodyFraming,
    pub version: Version,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// Idempotent and without a body: safe to send twice (SPEC §7).
    pub retryable: bool,
    pub is_head: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
    /// Index into the snapshot's groups.
    pub group: usize,
}

/// Parses the head at the start of `buf`; `Ok(None)` when it is not complete
/// yet. On success the head to send to the backend is in `out`.
pub fn prepare(
    view: &CoreView,
    listener: usize,
    peer: SocketAddr,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<Request>, ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let limit = view.limits.max_headers.min(MAX_HEADERS);
    let Some(req) = http::parse_request(buf, &mut headers[..limit], &view.limits)? else {
        return Ok(None);
    };
    let config = &view.snapshot.config;
    let listener_cfg = &config.listeners[listener];
    let group = listener_cfg.default_group.ok_or(ProxyError::NoRoute)?;
    let client_ip = peer.ip();
    let forwarding = Forwarding {
        client_ip,
        trusted_peer: listener_cfg
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&client_ip)),
        proto: "http",
    };
    out.clear();
    http::write_request_head(&req, &forwarding, out, |value, out| {
        out.extend_from_slice(value)
    });
    Ok(Some(Request {
        head_len: req.head_len,
        body: req.body,
        version: req.version,
        keep_alive: req.keep_alive,
        retryable: req.is_idempotent() && req.body == BodyFraming::None,
        is_head: req.is_head(),
        expect_continue: req.expect_continue,
        upgrade: req.upgrade,
        group: group.0 as usize,
    }))
}
