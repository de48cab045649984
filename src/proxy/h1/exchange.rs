//! One HTTP/1 request's exchange: the shared upstream step with this front
//! end's side of it ([`H1Front`]: the request body from the client buffer
//! and stream, `100 Continue`, the client's response heads), then the
//! response body relayed as it arrives, the access log line, and what the
//! connection does next. Once a response has started, a failure closes the
//! client connection instead of letting a truncated response look complete.

use std::cell::RefCell;

use super::body::{self, Relayed};
use super::request::H1Request;
use super::{Client, Flow};
use crate::error::ProxyError;
use crate::http::{self, BodyFraming, ResponseFraming, Version};
use crate::net::Upstream;
use crate::proxy::context::RequestCtx;
use crate::proxy::framing::Remaining;
use crate::proxy::io;
use crate::proxy::stream::ClientStream;
use crate::proxy::upstream::{self, Answer, Ends, Front, Heads, Outbound, SendError};
use crate::sticky::{set_cookie, ResponseCookies};
use crate::worker::{CoreView, Stats, Worker};

/// Counts a request in flight on this core for as long as it lives (the
/// shutdown waits for these).
pub struct Busy<'a>(&'a Stats);

impl<'a> Busy<'a> {
    pub fn new(stats: &'a Stats) -> Self {
        stats.in_flight.set(stats.in_flight.get() + 1);
        Busy(stats)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// How an HTTP/1 client gets the backend's response heads.
pub struct H1Heads<'a> {
    pub request: &'a H1Request,
    /// limpet already answered `Expect: 100-continue` itself.
    pub sent_continue: bool,
}

/// The HTTP/1 client's side of the upstream step.
struct H1Front<'a, S> {
    client: &'a mut Client<S>,
    heads: H1Heads<'a>,
    limits: Limits,
    /// The whole body is at the start of the client buffer (this many
    /// bytes): it is sent from there, kept until the exchange is over, so
    /// that the request can be sent again.
    buffered: Option<usize>,
}

/// How many bytes of `buf` hold the whole body of `request`, when they do
/// and the client sent it without waiting for `100 Continue`.
fn buffered_body(request: &H1Request, buf: &[u8]) -> Option<usize> {
    if request.body == BodyFraming::None || request.expect_continue {
        return None;
    }
    let mut remaining = Remaining::of_request(request.body);
    let n = remaining.advance(buf).ok()?;
    remaining.is_done().then_some(n)
}

#[derive(Clone, Copy)]
struct Limits {
    client: std::time::Duration,
    backend: std::time::Duration,
    min_body_rate: u32,
}

/// What the client's response head said.
pub struct H1Head {
    pub client_keep_alive: bool,
}

impl<S> Heads for H1Front<'_, S> {
    type Head = H1Head;

    fn informational(&mut self, response: &http::Response<'_, '_>, out: &mut Vec<u8>) -> bool {
        self.heads.informational(response, out)
    }

    fn final_head(
        &mut self,
        response: &http::Response<'_, '_>,
        cookies: &mut ResponseCookies<'_>,
        ends: Ends,
        out: &mut Vec<u8>,
    ) -> (H1Head, bool) {
        self.heads.final_head(response, cookies, ends, out)
    }
}

impl<S: ClientStream> Front for H1Front<'_, S> {
    fn retryable(&self) -> bool {
        let request = self.heads.request;
        request.idempotent && (request.body == BodyFraming::None || self.buffered.is_some())
    }

    async fn send_body(
        &mut self,
        worker: &Worker,
        backend: &mut Upstream,
    ) -> Result<(), SendError> {
        let request = self.heads.request;
        if request.body == BodyFraming::None {
            return Ok(());
        }
        if let Some(n) = self.buffered {
            let buf = std::mem::take(&mut self.client.buf);
            let (result, buf) = io::write_range(backend, buf, 0..n, self.limits.backend).await;
            self.client.buf = buf.unwrap_or_default();
            return result.map_err(SendError::Backend);
        }
        // limpet answers `Expect: 100-continue` itself once the backend is
        // connected, then streams the body.
        if request.expect_continue && self.client.buf.is_empty() {
            let (result, _) = io::write_all(
                &mut self.client.stream,
                http::CONTINUE_100,
                self.limits.client,
            )
            .await;
            if result.is_err() {
                return Err(SendError::Client(ProxyError::ClientClosed));
            }
            self.heads.sent_continue = true;
        }
        body::send_request_body(
            worker,
            self.client,
            backend,
            request.body,
            self.limits.client,
            self.limits.backend,
            self.limits.min_body_rate,
        )
        .await
    }

    async fn send_informational(&mut self, out: Vec<u8>) -> (Result<(), ()>, Option<Vec<u8>>) {
        let (result, back) = io::write_all(&mut self.client.stream, out, self.limits.client).await;
        (result.map_err(|_| ()), back)
    }
}

impl Heads for H1Heads<'_> {
    type Head = H1Head;

    fn informational(&mut self, response: &http::Response<'_, '_>, out: &mut Vec<u8>) -> bool {
        if response.status == 100 && self.sent_continue {
            // limpet already said `100 Continue`; one is enough.
            return false;
        }
        if self.request.version == Version::Http10 {
            // RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client.
            return false;
        }
        // Through the same writer as a final head: no framing or
        // hop-by-hop field crosses (SPEC §7); `Link` of a 103 does.
        http::write_response_head(
            response,
            out,
            true,
            Version::Http11,
            |value, out| out.extend_from_slice(value),
            |_| {},
        );
        true
    }

    fn final_head(
        &mut self,
        response: &http::Response<'_, '_>,
        cookies: &mut ResponseCookies<'_>,
        ends: Ends,
        out: &mut Vec<u8>,
    ) -> (H1Head, bool) {
        let request = self.request;
        let switching = response.is_switching_protocols() && request.upgrade.is_some();
        let client_keep_alive = request.keep_alive
            && ends.request_complete
            && !ends.stopping
            && !switching
            && !matches!(response.body, ResponseFraming::UntilClose);
        // The writer calls both hooks, one after the other.
        let cookies = RefCell::new(cookies);
        let mut sent = false;
        let no_cache =
            || set_cookie::needs_no_cache(http::headers_named(response.headers, "cache-control"));
        http::write_response_head(
            response,
            out,
            client_keep_alive,
            request.version,
            |value, out| cookies.borrow_mut().set_cookie(value, out),
            |out| sent = cookies.borrow_mut().finish(no_cache, out),
        );
        (H1Head { client_keep_alive }, sent)
    }
}

/// Forwards `request` (its head rewritten in `out`), relays the answer and
/// writes its access log line.
pub async fn forward<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client<S>,
    request: &H1Request,
    ctx: &mut RequestCtx,
    out: Vec<u8>,
) -> Flow {
    io::consume(&mut client.buf, request.head_len);
    ctx.bytes_in = request.head_len as u64
        + match request.body {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
    let _busy = Busy::new(&worker.stats);
    let buffered = buffered_body(request, &client.buf);
    let timeouts = &view.snapshot.config.timeouts;
    let mut front = H1Front {
        client,
        heads: H1Heads {
            request,
            sent_continue: false,
        },
        limits: Limits {
            client: timeouts.client_body,
            backend: timeouts.backend_response,
            min_body_rate: view.snapshot.config.limits.min_body_rate,
        },
        buffered,
    };
    let outbound = Outbound {
        head: out,
        is_head: request.is_head,
        upgrade: request.upgrade,
    };
    let forwarded = upstream::forward(worker, view, ctx, &mut front, outbound).await;
    if let Some(n) = buffered {
        // The body was sent from the buffer and kept for a retry.
        io::consume(&mut front.client.buf, n);
    }
    let flow = match forwarded {
        Ok(answer) => respond(worker, view, ctx, front.client, answer).await,
        Err(err) => answer_error(worker, view, ctx, front.client, &err).await,
    };
    ctx.times.done = Some(crate::worker::now());
    worker.record(view, ctx);
    write_log(worker, view, ctx);
    flow
}

/// Up to this many body bytes read with the response head are copied behind
/// the client's head and sent with it; more are sent by a write of their own.
const COPY_BEHIND_HEAD_BYTES: usize = 4096;

/// Sends the client's response head with the first body bytes (in one write
/// when they are few), relays the rest of the body, and gives the backend
/// connection back.
async fn respond<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    ctx: &mut RequestCtx,
    client: &mut Client<S>,
    mut answer: Answer<H1Head>,
) -> Flow {
    let timeouts = &view.snapshot.config.timeouts;
    let (client_limit, backend_limit) = (timeouts.client_body, timeouts.backend_response);
    let mut buf = std::mem::take(&mut answer.buf);
    let mut out = std::mem::take(&mut answer.out);
    let mut remaining = Remaining::of_response(answer.framing);
    let available = &buf[answer.head_len..];
    let taken = match remaining.advance(available) {
        Ok(n) => n,
        Err(err) => {
            worker.buffers.give(buf);
            worker.buffers.give(out);
            let err = ProxyError::BadResponseBody(err);
            return answer_error(worker, view, ctx, client, &err).await;
        }
    };
    if remaining.is_done() && !answer.switching {
        // The backend's part is over: it counts as idle for the balancer
        // while the response is still being written to the client.
        answer.load = None;
    }
    let mut extra = taken < available.len();
    // Body bytes that came with the head go out with it in one write when
    // few; many are written from where they were read instead of being
    // copied behind the head (16 KiB of copy cost more than a second write).
    let apart = !answer.switching && taken > COPY_BEHIND_HEAD_BYTES;
    if answer.switching {
        // Bytes after a 101 head already belong to the new protocol.
        out.extend_from_slice(available);
        extra = false;
    } else if !apart {
        out.extend_from_slice(&available[..taken]);
    }
    ctx.bytes_out = out.len() as u64;
    let (result, back) = io::write_all(&mut client.stream, out, client_limit).await;
    if let Some(back) = back {
        worker.buffers.give(back);
    }
    if result.is_err() {
        worker.buffers.give(buf);
        return Flow::Close;
    }
    if apart {
        let body = answer.head_len..answer.head_len + taken;
        let (result, back) = io::write_range(&mut client.stream, buf, body, client_limit).await;
        match (result, back) {
            (Ok(()), Some(back)) => buf = back,
            (_, back) => {
                worker.buffers.give(back.unwrap_or_default());
                return Flow::Close;
            }
        }
        ctx.bytes_out += taken as u64;
    }

    if answer.switching {
        worker.buffers.give(buf);
        if !client.buf.is_empty() {
            let pending = std::mem::take(&mut client.buf);
            let (result, _) = io::write_all(&mut answer.conn, pending, backend_limit).await;
            if result.is_err() {
                return Flow::Close;
            }
        }
        // Open for as long as the tunnel: a drain waits for it.
        let open = answer.load.take().map(crate::worker::InFlight::into_tunnel);
        return Flow::Tunnel(answer.conn, open);
    }

    // The rest of the body: spliced when large and plain on both sides
    // (`workers.splice_min_bytes`), else through the buffer.
    let relayed = if remaining.is_done() || extra {
        worker.buffers.give(buf);
        Relayed::Complete { extra }
    } else {
        let min = view.snapshot.config.workers.splice_min_bytes;
        let spliced = match (&remaining, &mut answer.conn, client.stream.as_tcp()) {
            (&Remaining::Length(left), Upstream::Plain(backend), Some(tcp))
                if worker.splicer.wants(left, min) =>
            {
                worker.buffers.give(std::mem::take(&mut buf));
                let limits = (client_limit, backend_limit);
                crate::proxy::splice::relay(worker, backend, tcp, left, limits, &mut ctx.bytes_out)
                    .await
            }
            _ => None,
        };
        match spliced {
            Some(relayed) => relayed,
            None => {
                if buf.capacity() == 0 {
                    buf = worker.buffers.take();
                }
                buf.clear();
                let relay = body::Relay {
                    remaining,
                    client_limit,
                    backend_limit,
                };
                body::relay_response_body(
                    worker,
                    &mut answer.conn,
                    &mut client.stream,
                    buf,
                    relay,
                    &mut ctx.bytes_out,
                )
                .await
            }
        }
    };
    match relayed {
        Relayed::Complete { extra } => {
            let keep_alive = answer.head.client_keep_alive;
            upstream::release(worker, view, ctx, answer, !extra);
            if keep_alive {
                Flow::KeepAlive
            } else {
                Flow::Close
            }
        }
        Relayed::Broken => Flow::Close,
    }
}

/// Answers the client with the error's status and closes (the request's
/// body may not have been read, so the connection cannot be reused).
async fn answer_error<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    ctx: &mut RequestCtx,
    client: &mut Client<S>,
    err: &ProxyError,
) -> Flow {
    if let Some(status) = err.status() {
        log::debug!("answering {status} to {}: {err}", client.peer);
        worker.stats.response(status);
        ctx.status = status;
        let limit = view.snapshot.config.timeouts.client_body;
        match err.retry_after_secs() {
            Some(secs) => {
                let answer = http::unavailable_response(secs);
                let _ = io::write_all(&mut client.stream, answer, limit).await;
            }
            None => {
                let _ =
                    io::write_all(&mut client.stream, http::error_response(status), limit).await;
            }
        }
    }
    Flow::Close
}

/// The request's access log line, when its listener keeps one.
pub fn write_log(worker: &Worker, view: &CoreView, ctx: &mut RequestCtx) {
    let Some(request) = ctx.log_request.take() else {
        return;
    };
    let listener = view
        .snapshot
        .listener(ctx.listener)
        .map(|i| &view.snapshot.config.listeners[i]);
    if let Some(access_log) = listener.and_then(|l| l.access_log.as_ref()) {
        // The server that answered; none when the request failed before.
        let answered = ctx.server.filter(|_| ctx.times.first_byte.is_some());
        let g = ctx.decision.group.index();
        let server = answered.and_then(|s| {
            let group = &view.snapshot.config.groups[g];
            group
                .servers
                .get(s.get())
                .map(|server| server.name.as_str())
        });
        let upstream = answered.and_then(|s| {
            let group = view.snapshot.groups.get(g)?;
            group.servers.get(s.get()).map(|server| server.addr)
        });
        let request_id = ctx.request_id.as_ref().map_or(&b""[..], |id| id.as_bytes());
        let done = ctx.times.done.unwrap_or(ctx.times.head);
        let entry = crate::access_log::Entry {
            duration: done.saturating_duration_since(ctx.times.head),
            client: ctx.peer.ip(),
            request: request.request(),
            status: ctx.status,
            bytes: ctx.bytes_out,
            server: server.unwrap_or("-"),
            session: ctx.outcome.log_word(),
            retries: ctx.retries,
            host: request.host(),
            user_agent: request.user_agent(),
            upstream,
            request_id,
        };
        worker.access.write(ctx.listener, access_log.format, &entry);
    }
    worker.access.recycle(request.into_buffer());
}
