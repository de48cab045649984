//! One stream's request: prepared ([`super::request`]), forwarded by the
//! shared upstream step with this front end's side of it ([`H2Front`]:
//! the body from DATA, `100 Continue`, informational and final heads as
//! HTTP/2 responses), then the response body relayed, the access log line
//! written. A stream the client resets while it is in flight ends here and
//! its backend connection is closed.

use std::cell::RefCell;

use bytes::Bytes;
use futures_util::future::{select, Either};
use h2::server::SendResponse;
use h2::{Reason, RecvStream};

use super::request::{self, H2Request, Refusal};
use super::{request_body, response, H2Conn, Shared};
use crate::error::ProxyError;
use crate::http::{self, BodyFraming};
use crate::net::Upstream;
use crate::proxy::context::{Protocol, RequestCtx, Times};
use crate::proxy::decide::Conn;
use crate::proxy::h1::{write_log, Busy};
use crate::proxy::upstream::{self, Ends, Front, Heads, Outbound, SendError};
use crate::sticky::{set_cookie, ResponseCookies};
use crate::worker::{Stats, Worker};

/// The HTTP/2 stream's side of the upstream step.
struct H2Front<'a> {
    request: &'a H2Request,
    body: RecvStream,
    respond: &'a RefCell<SendResponse<Bytes>>,
    limits: request_body::Limits,
    sent_continue: bool,
    /// An informational response to send (by `send_informational`).
    informational: Option<::http::Response<()>>,
}

impl Heads for H2Front<'_> {
    /// The client's response head; `None` when the backend's cannot be
    /// said in HTTP/2 (a 502 then).
    type Head = Option<::http::Response<()>>;

    fn informational(&mut self, response: &http::Response<'_, '_>, _out: &mut Vec<u8>) -> bool {
        if response.status == 100 {
            // limpet says `100 Continue` itself, when the client asked.
            return false;
        }
        let mut scratch = Vec::new();
        match http::h2::response_head(
            response,
            &mut scratch,
            |v, o| o.extend_from_slice(v),
            |_| {},
        ) {
            Ok(head) => {
                self.informational = Some(head);
                true
            }
            Err(_) => false,
        }
    }

    fn final_head(
        &mut self,
        response: &http::Response<'_, '_>,
        cookies: &mut ResponseCookies<'_>,
        _ends: Ends,
        out: &mut Vec<u8>,
    ) -> (Self::Head, bool) {
        // The converter calls both hooks, one after the other.
        let cookies = RefCell::new(cookies);
        let mut sent = false;
        let no_cache =
            || set_cookie::needs_no_cache(http::headers_named(response.headers, "cache-control"));
        // The head goes out as HEADERS: the HTTP/1 output buffer is only
        // working space here.
        out.clear();
        let head = http::h2::response_head(
            response,
            out,
            |value, out| cookies.borrow_mut().set_cookie(value, out),
            |out| sent = cookies.borrow_mut().finish(no_cache, out),
        );
        match head {
            Ok(head) => (Some(head), sent),
            Err(err) => {
                log::debug!("backend response not relayable over HTTP/2: {err}");
                (None, sent)
            }
        }
    }
}

impl Front for H2Front<'_> {
    fn retryable(&self) -> bool {
        self.request.idempotent && self.request.body == BodyFraming::None
    }

    async fn send_body(
        &mut self,
        _worker: &Worker,
        backend: &mut Upstream,
    ) -> Result<(), SendError> {
        if self.request.body == BodyFraming::None {
            return Ok(());
        }
        if self.request.expect_continue && !self.sent_continue {
            let continue_100 = ::http::Response::builder()
                .status(100)
                .body(())
                .unwrap_or_default();
            if self
                .respond
                .borrow_mut()
                .send_informational(continue_100)
                .is_err()
            {
                return Err(SendError::Client(ProxyError::ClientClosed));
            }
            self.sent_continue = true;
        }
        request_body::send(&mut self.body, backend, self.request.body, self.limits).await
    }

    async fn send_informational(&mut self, out: Vec<u8>) -> (Result<(), ()>, Option<Vec<u8>>) {
        let result = match self.informational.take() {
            Some(head) => self
                .respond
                .borrow_mut()
                .send_informational(head)
                .map_err(|_| ()),
            None => Ok(()),
        };
        (result, Some(out))
    }
}

/// Serves one stream to its end.
pub async fn serve(
    worker: &Worker,
    conn: &H2Conn,
    shared: &Shared,
    request: ::http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let head_clock = crate::worker::now();
    let view = worker.view();
    let respond = RefCell::new(respond);
    let Some(listener) = view.snapshot.listener(conn.listener) else {
        // A reload closed the listener this connection came in on.
        respond.borrow_mut().send_reset(Reason::REFUSED_STREAM);
        return;
    };
    Stats::bump(&worker.stats.requests);
    let (parts, body) = request.into_parts();
    let decide_conn = Conn {
        listener,
        peer: conn.peer,
        https: conn.https,
        sni: conn.sni.as_deref(),
    };
    let mut out = worker.buffers.take();
    let prepared = request::prepare(
        worker,
        &view,
        &decide_conn,
        &parts,
        body.is_end_stream(),
        &mut out,
    );
    drop(parts);
    let (mut request, decision) = match prepared {
        Ok(prepared) => prepared,
        Err(Refusal::Malformed(why)) => {
            worker.buffers.give(out);
            log::debug!("malformed HTTP/2 request from {}: {why}", conn.peer);
            Stats::bump(&worker.stats.refused);
            respond.borrow_mut().send_reset(Reason::PROTOCOL_ERROR);
            return;
        }
        Err(Refusal::Error(err)) => {
            worker.buffers.give(out);
            log::debug!("refused an HTTP/2 request from {}: {err}", conn.peer);
            Stats::bump(&worker.stats.refused);
            if let Some(status) = err.status() {
                worker.stats.response(status);
                answer_status(&respond, status);
            }
            return;
        }
    };
    let mut ctx = RequestCtx::new(
        Protocol::Http2,
        conn.listener,
        conn.peer,
        conn.https,
        Times::new(conn.accepted, head_clock),
        decision,
    );
    ctx.log_request = request.log_request.take();
    ctx.request_id = Some(request.request_id);
    let _busy = Busy::new(&worker.stats);
    let timeouts = &view.snapshot.config.timeouts;
    let limits = request_body::Limits {
        client: timeouts.client_body,
        backend: timeouts.backend_response,
    };
    let mut front = H2Front {
        request: &request,
        body,
        respond: &respond,
        limits,
        sent_continue: false,
        informational: None,
    };
    let outbound = Outbound {
        head: out,
        is_head: request.is_head,
        upgrade: None,
    };
    // Until its head is sent, a stream the client resets (or whose
    // connection fails) ends here: dropping the exchange closes its
    // backend connection. After it, sending DATA finds out.
    let forwarded = {
        let forwarding = std::pin::pin!(upstream::forward(
            worker, &view, &mut ctx, &mut front, outbound
        ));
        let reset = std::pin::pin!(std::future::poll_fn(|cx| respond
            .borrow_mut()
            .poll_reset(cx)));
        match select(forwarding, reset).await {
            Either::Left((forwarded, _)) => forwarded,
            Either::Right((reason, _)) => {
                shared.cancelled(reason.ok());
                return;
            }
        }
    };
    match forwarded {
        Ok(answer) => respond_with(worker, &view, &mut ctx, &respond, &request, answer).await,
        Err(err) => {
            if let Some(status) = err.status() {
                log::debug!("answering {status} to {}: {err}", ctx.peer);
                worker.stats.response(status);
                ctx.status = status;
                answer_status(&respond, status);
            }
        }
    }
    ctx.times.done = Some(crate::worker::now());
    write_log(worker, &view, &mut ctx);
}

/// A response with no body and this status (an error limpet answers).
fn answer_status(respond: &RefCell<SendResponse<Bytes>>, status: u16) {
    let head = ::http::Response::builder()
        .status(status)
        .header(::http::header::CONTENT_LENGTH, 0)
        .body(())
        .unwrap_or_default();
    let _ = respond.borrow_mut().send_response(head, true);
}

/// Sends the client's response head, relays the body, and gives the
/// backend connection back.
async fn respond_with(
    worker: &Worker,
    view: &crate::worker::CoreView,
    ctx: &mut RequestCtx,
    respond: &RefCell<SendResponse<Bytes>>,
    request: &H2Request,
    mut answer: upstream::Answer<Option<::http::Response<()>>>,
) {
    let Some(head) = answer.head.take() else {
        worker.buffers.give(std::mem::take(&mut answer.buf));
        worker.buffers.give(std::mem::take(&mut answer.out));
        ctx.status = 502;
        worker.stats.response(502);
        answer_status(respond, 502);
        return;
    };
    worker.buffers.give(std::mem::take(&mut answer.out));
    let status = head.status().as_u16();
    let no_body = request.is_head || status == 204 || status == 304;
    let framing = if no_body {
        http::ResponseFraming::None
    } else {
        answer.framing
    };
    let end_now = matches!(
        framing,
        http::ResponseFraming::None | http::ResponseFraming::Length(0)
    );
    let sent = respond.borrow_mut().send_response(head, end_now);
    let mut send = match sent {
        Ok(send) => send,
        Err(_) => {
            worker.buffers.give(std::mem::take(&mut answer.buf));
            return;
        }
    };
    let buf = std::mem::take(&mut answer.buf);
    if end_now {
        // Bytes after the head of a bodiless response: not reusable.
        let extra = buf.len() > answer.head_len;
        worker.buffers.give(buf);
        answer.load = None;
        upstream::release(worker, view, ctx, answer, !extra);
        return;
    }
    let timeouts = &view.snapshot.config.timeouts;
    let limits = response::Limits {
        client: timeouts.client_body,
        backend: timeouts.backend_response,
    };
    let mut load = answer.load.take();
    let relayed = response::relay(
        worker,
        &mut answer.conn,
        &mut send,
        framing,
        buf,
        answer.head_len,
        limits,
        &mut ctx.bytes_out,
        || load = None,
    )
    .await;
    if let response::Relayed::Complete { extra } = relayed {
        upstream::release(worker, view, ctx, answer, !extra);
    }
}
