//! From an HTTP/1 request head to a decision and the head to forward, in
//! one synchronous step: the parsed head borrows the client's buffer, so
//! everything that needs it happens here, before the first await.

use crate::error::ProxyError;
use crate::http::{self, BodyFraming, Version};
use crate::proxy::context::RequestId;
use crate::proxy::decide::{self, Conn, Decision, RequestView};
use crate::proxy::upstream::MAX_HEADERS;
use crate::worker::{CoreView, Worker};

/// What the rest of the HTTP/1 pipeline needs to know of a request once
/// its head has been parsed and rewritten.
#[derive(Debug)]
pub struct H1Request {
    /// Bytes of the head in the client buffer.
    pub head_len: usize,
    pub body: BodyFraming,
    pub version: Version,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// Its method may be repeated (SPEC §7): it may be sent again when its
    /// body, if any, is still in hand.
    pub idempotent: bool,
    pub is_head: bool,
    pub expect_continue: bool,
    /// The entry of the listener's `upgrade_protocols` the client asked
    /// to switch to.
    pub upgrade: Option<usize>,
    /// The request's fields for its access log line, when the listener
    /// keeps one.
    pub log_request: Option<crate::access_log::LogText>,
    /// Sent to the backend and written in the access log.
    pub request_id: RequestId,
}

/// The path routing sees: origin-form as is; absolute-form from its path
/// (`/` when it has none, as the backend will get it).
fn path_of<'b>(req: &http::Request<'b, '_>) -> &'b [u8] {
    match req.origin {
        Some(origin) if origin.first() == Some(&b'/') => origin,
        Some(_) => b"/",
        None => req.target,
    }
}

/// Parses the head at the start of `buf`; `Ok(None)` when it is not complete
/// yet. On success the head to send to the backend is in `out`.
pub fn prepare(
    worker: &Worker,
    view: &CoreView,
    conn: &Conn<'_>,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<(H1Request, Decision)>, ProxyError> {
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let limit = view.limits.max_headers.min(MAX_HEADERS);
    let listener = &view.snapshot.config.listeners[conn.listener];
    let upgrades = &listener.upgrade_protocols;
    let Some(req) = http::parse_request(buf, &mut headers[..limit], &view.limits, upgrades)? else {
        return Ok(None);
    };
    let decision = decide::decide(
        view,
        conn,
        &RequestView {
            method: req.method,
            authority: req.authority,
            path: path_of(&req),
            fields: req.headers,
        },
    )?;
    let trusted_id = http::headers_named(req.headers, "x-request-id").next();
    let request_id = conn.request_id(worker, listener, trusted_id);
    let forwarding = conn.forwarding(listener, request_id.as_bytes());
    out.clear();
    // The persistence cookies never reach the backend as the client sent
    // them (SPEC §3.6, §4.2), nor does a header-mode token (§3.9).
    let persistence = decision.persistence(view);
    let withheld = persistence.withheld();
    http::write_request_head_withholding(&req, &forwarding, &withheld, out, |value, out| {
        persistence.edit_cookie(value, out);
    });
    let log_request = (worker.access.enabled() && listener.access_log.is_some()).then(|| {
        let agent = http::headers_named(req.headers, "user-agent").next();
        crate::access_log::LogText::new(
            worker.access.text(),
            req.method.as_bytes(),
            req.target,
            &withheld,
            b"",
            req.authority.unwrap_or_default(),
            agent.unwrap_or_default(),
        )
    });
    let request = H1Request {
        head_len: req.head_len,
        body: req.body,
        version: req.version,
        keep_alive: req.keep_alive,
        idempotent: decision.idempotent,
        is_head: req.is_head(),
        expect_continue: req.expect_continue,
        upgrade: req.upgrade.map(|u| u.allowed),
        log_request,
        request_id,
    };
    Ok(Some((request, decision)))
}
