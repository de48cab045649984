//! From an HTTP/2 stream's request head to a decision and the HTTP/1.1
//! head the backend gets, in one synchronous step, as HTTP/1's `prepare`:
//! `http::h2` checks and writes the head, [`decide`] routes it.

use crate::error::ProxyError;
use crate::http::{self, BodyFraming, Malformed};
use crate::proxy::context::RequestId;
use crate::proxy::decide::{self, Conn, Decision, RequestView};
use crate::worker::{CoreView, Worker};

/// Looked up as a name, not a string parsed into one on every request.
const X_REQUEST_ID: ::http::HeaderName = ::http::HeaderName::from_static("x-request-id");

/// What the rest of a stream's exchange needs of its request.
#[derive(Debug)]
pub struct H2Request {
    pub body: BodyFraming,
    pub idempotent: bool,
    pub is_head: bool,
    /// The client waits for `100 Continue` before sending DATA.
    pub expect_continue: bool,
    /// `METHOD path HTTP/2.0` and the other fields of the access log line,
    /// when the listener keeps one.
    pub log_request: Option<crate::access_log::LogText>,
    /// Sent to the backend and written in the access log.
    pub request_id: RequestId,
}

/// Why a stream's request is not forwarded.
#[derive(Debug)]
pub enum Refusal {
    /// RST_STREAM (PROTOCOL_ERROR).
    Malformed(Malformed),
    /// Answered with this error's status.
    Error(ProxyError),
}

/// Checks and decides the request of `parts`, and writes the backend's
/// head into `out`. `end_stream`: no DATA follows its HEADERS.
pub fn prepare(
    worker: &Worker,
    view: &CoreView,
    conn: &Conn<'_>,
    parts: &::http::request::Parts,
    end_stream: bool,
    out: &mut Vec<u8>,
) -> Result<(H2Request, Decision), Refusal> {
    let req = http::h2::check_request(parts, end_stream).map_err(Refusal::Malformed)?;
    let decision = decide::decide(
        view,
        conn,
        &RequestView {
            method: req.method,
            authority: Some(req.authority),
            path: req.path,
            fields: req.headers,
        },
    )
    .map_err(Refusal::Error)?;
    let listener = &view.snapshot.config.listeners[conn.listener];
    let received_id = req.headers.get(&X_REQUEST_ID).map(|v| v.as_bytes());
    let request_id = conn.request_id(worker, listener, received_id);
    let forwarding = conn.forwarding(listener, request_id.as_bytes());
    out.clear();
    let persistence = decision.persistence(view);
    let mut scratch = Vec::new();
    let withheld = persistence.withheld();
    http::h2::write_request_head(
        &req,
        &forwarding,
        &withheld,
        out,
        &mut scratch,
        |value, out| {
            persistence.edit_cookie(value, out);
        },
    );
    let log_request = (worker.access.enabled() && listener.access_log.is_some()).then(|| {
        let agent = req.headers.get(::http::header::USER_AGENT);
        crate::access_log::LogText::new(
            worker.access.text(),
            req.method.as_bytes(),
            req.path,
            &withheld,
            b" HTTP/2.0",
            req.authority,
            agent.map_or(&b""[..], |v| v.as_bytes()),
        )
    });
    let expect_continue = req
        .headers
        .get_all(::http::header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let request = H2Request {
        body: req.body,
        idempotent: decision.idempotent,
        is_head: req.is_head(),
        expect_continue: expect_continue && req.body != BodyFraming::None,
        log_request,
        request_id,
    };
    Ok((request, decision))
}
