//! The upstream step, shared by every front end: choose the server, take a
//! pooled connection or open one, send the request, read the response head,
//! and retry by the rules of SPEC §7:
//! - connecting fails (nothing was sent): the request goes to another
//!   server of the group;
//! - a reused pooled connection fails before any response byte: a request
//!   the front end calls retryable is sent once more, on a fresh connection;
//! - otherwise 502, or 504 for a backend too slow.
//!
//! What differs between protocols stays with the front end behind
//! [`Front`]: how the request body reaches the backend, how informational
//! and final response heads reach the client. A front end calls
//! [`forward`] with the request's [`RequestCtx`] and gets the backend
//! connection back with the response head parsed and the client's head
//! written; it relays the body, then hands the connection back through
//! [`release`]. This module never writes to the client itself.

mod budget;
mod pool;

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

pub use budget::RetryBudget;
pub use pool::UpstreamPool;

use super::context::RequestCtx;
use super::io::{self, IoFailure};
use crate::balance::ServerIdx;
use crate::control::BackendId;
use crate::error::ProxyError;
use crate::http::{self, ResponseFraming};
use crate::net::{TlsStream, Upstream};
use crate::sticky::{Outcome, ResponseCookies, Sent};
use crate::worker::{CoreView, InFlight, RetryReason, Stats, Worker};

/// A request head at most this long fits an empty socket send buffer (the
/// kernel's minimum is 4 KiB, the default 16 KiB), so writing it never waits.
const SMALL_HEAD_BYTES: usize = 4096;

/// The most headers a message may have, whatever the configuration says
/// (`limits.max_headers` is validated against it).
pub const MAX_HEADERS: usize = 256;

/// Why a request body did not reach the backend whole.
#[derive(Debug)]
pub enum SendError {
    /// The client failed: closed, too slow, or bad framing.
    Client(ProxyError),
    /// Writing to the backend failed (it may have answered early).
    Backend(IoFailure),
}

/// What the request that goes to the backend is, besides its head.
#[derive(Debug)]
pub struct Outbound {
    /// The request head as the backend gets it (HTTP/1.1).
    pub head: Vec<u8>,
    /// A HEAD request: the response has no body whatever its fields say.
    pub is_head: bool,
    /// The client asked to switch to this entry of its listener's
    /// `upgrade_protocols`: a `101` to that protocol may answer it.
    pub upgrade: Option<usize>,
}

/// What reading the response head must know of the request.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The server asked.
    pub server: ServerIdx,
    pub is_head: bool,
    pub upgrade: Option<usize>,
    pub ends: Ends,
}

/// When a front end's response ends the client connection (for its
/// `Connection` field).
#[derive(Debug, Clone, Copy)]
pub struct Ends {
    /// The whole request reached the backend.
    pub request_complete: bool,
    /// This worker is shutting down.
    pub stopping: bool,
}

/// How a front end turns the backend's response heads into its client's;
/// synchronous, while the backend's head is parsed.
pub trait Heads {
    /// What the front end keeps of the client's response head it wrote.
    type Head;

    /// An informational response (a 1xx other than 101): writes what the
    /// client gets of it into `out`; false when nothing is relayed.
    fn informational(&mut self, response: &http::Response<'_, '_>, out: &mut Vec<u8>) -> bool;

    /// Writes the client's head of the final response into `out`: its
    /// `Set-Cookie` values pass through `cookies`, and the fields `cookies`
    /// adds are appended. Returns what it keeps of the head and whether
    /// `cookies` set a cookie.
    fn final_head(
        &mut self,
        response: &http::Response<'_, '_>,
        cookies: &mut ResponseCookies<'_>,
        ends: Ends,
        out: &mut Vec<u8>,
    ) -> (Self::Head, bool);
}

/// The client side of one request, as the upstream step needs it.
pub trait Front: Heads {
    /// Whether a request that failed before any response byte may be sent
    /// again (SPEC §7: idempotent, and its body, if any, still in hand).
    fn retryable(&self) -> bool;

    /// Streams the request body to `backend` after its head; nothing when
    /// the request has none.
    async fn send_body(&mut self, worker: &Worker, backend: &mut Upstream)
        -> Result<(), SendError>;

    /// Sends what [`Heads::informational`] wrote; the buffer comes back
    /// unless the client's deadline passed.
    async fn send_informational(&mut self, out: Vec<u8>) -> (Result<(), ()>, Option<Vec<u8>>);
}

/// A backend connection with the final response head read.
pub struct Answer<H> {
    pub conn: Upstream,
    pub backend: BackendId,
    /// Bytes read from the backend: the response head (`..head_len`), then
    /// the first body bytes.
    pub buf: Vec<u8>,
    pub head_len: usize,
    /// The client's response head, as [`Front::final_head`] wrote it.
    pub out: Vec<u8>,
    pub head: H,
    pub framing: ResponseFraming,
    /// The backend lets its connection be reused.
    pub backend_keep_alive: bool,
    /// A `101` to an upgrade: the connection now carries another protocol.
    pub switching: bool,
    /// The whole request reached the backend.
    pub request_complete: bool,
    /// The request counts as in flight on its server until this is
    /// dropped: when the backend has sent all it will send.
    pub load: Option<InFlight>,
}

/// One try on one server.
struct Attempt {
    conn: Upstream,
    backend: BackendId,
    server: ServerIdx,
    load: InFlight,
}

enum Exchanged<H> {
    Answered(Answer<H>),
    Failed(ProxyError),
    /// The connection failed (reset or closed) before any response byte;
    /// the request head comes back in case the request may be sent again.
    Died {
        out: Vec<u8>,
        err: ProxyError,
    },
}

/// Sends the request of `ctx` to a server of its group and reads the
/// response head. Counts the response and the session's outcome; on an
/// error the caller answers the client (`ProxyError::status`).
pub async fn forward<F: Front>(
    worker: &Worker,
    view: &CoreView,
    ctx: &mut RequestCtx,
    front: &mut F,
    outbound: Outbound,
) -> Result<Answer<F::Head>, ProxyError> {
    let config = &view.snapshot.config;
    let timeouts = &config.timeouts;
    let g = ctx.decision.group.index();
    let group = &view.snapshot.groups[g];
    let backend_tls = config.groups[g].tls.as_ref();
    let (is_head, upgrade) = (outbound.is_head, outbound.upgrade);
    let mut out = outbound.head;
    if let Sent::Refused(reason) = ctx.decision.session.sent {
        Stats::bump(&worker.stats.sticky_refused[Stats::refusal_index(reason)]);
        log::debug!(
            "session token from {} refused ({})",
            ctx.peer,
            reason.label()
        );
    }
    let permille = config.limits.retry_budget_permille;
    worker.retry_budget.request(crate::worker::now());
    // May `reason` send the request once more? Counts the retry if so.
    let retry = |ctx: &mut RequestCtx, reason: RetryReason| {
        if !worker
            .retry_budget
            .try_retry(crate::worker::now(), permille)
        {
            log::debug!("retry budget spent: {} gets its error", ctx.peer);
            return false;
        }
        worker.stats.retry(reason);
        ctx.retries += 1;
        true
    };
    // Allocates only when a connection fails.
    let mut tried: Vec<ServerIdx> = Vec::new();
    let mut last_error = None;
    // The next try must open a fresh connection (after a stale pooled one).
    let mut fresh_only = false;
    // A connection that died before answering moves the request once.
    let mut moved_after_death = false;
    // Strict persistence: the session's server or a 503, never another.
    let pinned = ctx.decision.pinned(view);
    if let Some(pinned) = pinned {
        if !group
            .servers
            .get(pinned.get())
            .is_some_and(|v| v.takes_stuck())
        {
            worker.buffers.give(out);
            return Err(refuse_move(worker, view, ctx, pinned));
        }
    }
    let mut server = ctx.decision.pick(view, &tried);
    loop {
        let Some(chosen) = server else {
            worker.buffers.give(out);
            return Err(last_error.map_or(ProxyError::NoServer, ProxyError::Connect));
        };
        ctx.server = Some(chosen);
        let target = &group.servers[chosen.get()];
        let pooled = if fresh_only {
            None
        } else {
            // A reload may have switched the group to or from TLS.
            worker
                .upstreams
                .take(target.backend, timeouts.backend_idle)
                .filter(|conn| matches!(conn, Upstream::Tls(_)) == backend_tls.is_some())
        };
        fresh_only = false;
        let reused = pooled.is_some();
        // When a new connection is opened, for the connect-time histogram.
        let started = pooled.is_none().then(crate::worker::now);
        let conn = match pooled {
            Some(conn) => conn,
            None => match connect(target.addr, backend_tls, timeouts.backend_connect).await {
                Ok(conn) => conn,
                Err(err) => {
                    // Nothing was sent: another server may take it (SPEC §7).
                    log::debug!("connect to {} failed: {err}", target.addr);
                    Stats::bump(&worker.stats.backend_connect_errors);
                    worker.report_failure(view, ctx.decision.group, chosen);
                    if pinned.is_some() {
                        worker.buffers.give(out);
                        return Err(refuse_move(worker, view, ctx, chosen));
                    }
                    tried.push(chosen);
                    last_error = Some(err);
                    server = ctx.decision.pick(view, &tried);
                    if server.is_some() && !retry(ctx, RetryReason::ConnectFailed) {
                        server = None;
                    }
                    continue;
                }
            },
        };
        let connected = crate::worker::now();
        ctx.times.connected = Some(connected);
        if let Some(started) = started {
            let live = &view.groups[g].servers[chosen.get()];
            live.connect
                .observe_us(connected.nanos_since(started) / 1000);
        }
        let attempt = Attempt {
            conn,
            backend: target.backend,
            server: chosen,
            load: InFlight::new(&view.groups[g].servers[chosen.get()]),
        };
        match exchange(worker, view, ctx, front, out, (is_head, upgrade), attempt).await {
            Exchanged::Answered(answer) => return Ok(answer),
            Exchanged::Failed(err) => return Err(err),
            Exchanged::Died { out: back, err } => {
                // The connection failed before any response byte.
                out = back;
                let again = if !front.retryable() {
                    // POST, PATCH or a body already streamed: never replayed.
                    false
                } else if reused {
                    // A keep-alive race: the same server, on a fresh
                    // connection, so that no session moves for it.
                    fresh_only = true;
                    retry(ctx, RetryReason::PooledStale)
                } else if moved_after_death {
                    false
                } else if pinned.is_some() {
                    // Another server would move a strict session: 503.
                    worker.report_failure(view, ctx.decision.group, chosen);
                    worker.buffers.give(out);
                    return Err(refuse_move(worker, view, ctx, chosen));
                } else {
                    worker.report_failure(view, ctx.decision.group, chosen);
                    moved_after_death = true;
                    tried.push(chosen);
                    server = ctx.decision.pick(view, &tried);
                    server.is_some() && retry(ctx, RetryReason::BackendDied)
                };
                if again {
                    continue;
                }
                if !reused {
                    worker.report_failure(view, ctx.decision.group, chosen);
                }
                worker.buffers.give(out);
                return Err(err);
            }
        }
    }
}

/// The error for a strict session whose server `pinned` cannot take it
/// (SPEC §3.8), counted; the caller answers `503` with `Retry-After` and no
/// cookie.
fn refuse_move(
    worker: &Worker,
    view: &CoreView,
    ctx: &RequestCtx,
    pinned: ServerIdx,
) -> ProxyError {
    Stats::bump(&worker.stats.sticky_unavailable);
    log::debug!(
        "strict session of {} on server {} (group {}) refused: the server is unavailable",
        ctx.peer,
        pinned.0,
        ctx.decision.group.0
    );
    ctx.decision.unavailable(view, pinned)
}

/// Gives a backend connection whose exchange is over back to the pool when
/// it can carry another request.
pub fn release<H>(
    worker: &Worker,
    view: &CoreView,
    ctx: &RequestCtx,
    answer: Answer<H>,
    reusable: bool,
) {
    if reusable && answer.backend_keep_alive && answer.request_complete {
        let max_idle =
            view.snapshot.config.groups[ctx.decision.group.index()].pool_max_idle_per_server;
        worker.upstreams.put(answer.backend, answer.conn, max_idle);
    }
}

/// Connects to a backend, with a TLS handshake when its group asks for
/// one, all within `limit`.
async fn connect(
    addr: SocketAddr,
    tls: Option<&crate::config::BackendTls>,
    limit: Duration,
) -> std::io::Result<Upstream> {
    let connecting = async {
        let stream = TcpStream::connect_addr(addr).await?;
        stream.set_nodelay(true)?;
        let Some(tls) = tls else {
            return Ok(Upstream::Plain(stream));
        };
        let conn = rustls::client::UnbufferedClientConnection::new(
            tls.client.clone(),
            tls.server_name(addr),
        )
        .map_err(std::io::Error::other)?;
        let mut stream = TlsStream::client(stream, conn);
        stream.handshake().await?;
        Ok(Upstream::Tls(Box::new(stream)))
    };
    match crate::worker::deadline::timeout(limit, connecting).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

/// One try: the head, the body, then the response head after any
/// informational responses.
async fn exchange<F: Front>(
    worker: &Worker,
    view: &CoreView,
    ctx: &mut RequestCtx,
    front: &mut F,
    out: Vec<u8>,
    (is_head, upgrade): (bool, Option<usize>),
    attempt: Attempt,
) -> Exchanged<F::Head> {
    let Attempt {
        mut conn,
        backend,
        server: chosen,
        load,
    } = attempt;
    let backend_limit = view.snapshot.config.timeouts.backend_response;

    // The head. At the start of an exchange the backend socket's send
    // buffer is empty (a fresh connection, or a pooled one whose last
    // exchange completed), so a head this small goes out at once: no timer.
    // A larger head keeps the deadline.
    let (result, back) = if out.len() <= SMALL_HEAD_BYTES {
        io::write_all_at_once(&mut conn, out).await
    } else {
        io::write_all(&mut conn, out, backend_limit).await
    };
    let Some(mut out) = back else {
        Stats::bump(&worker.stats.backend_timeouts);
        return Exchanged::Failed(ProxyError::BackendTimeout);
    };
    if let Err(IoFailure::Failed(err)) = result {
        return Exchanged::Died {
            out,
            err: ProxyError::BackendIo(err),
        };
    }

    let mut request_complete = true;
    match front.send_body(worker, &mut conn).await {
        Ok(()) => {}
        Err(SendError::Client(err)) => {
            // The backend has half a request: that connection is done.
            worker.buffers.give(out);
            return Exchanged::Failed(err);
        }
        Err(SendError::Backend(failure)) => {
            // It may have answered early (e.g. 413); read what it said.
            log::debug!("sending a request body failed: {failure:?}");
            request_complete = false;
        }
    }

    // The response head, after any informational (1xx) responses.
    let mut buf = worker.buffers.take();
    // Some response byte arrived (an informational response may have been
    // relayed already): from then on the request is never sent again.
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            let reading = Reading {
                server: chosen,
                is_head,
                upgrade,
                ends: Ends {
                    request_complete,
                    stopping: worker.stopping.get(),
                },
            };
            match read_head(view, ctx, front, &buf, reading, &mut out) {
                Ok(Head::Final(head)) => {
                    ctx.times.first_byte = Some(crate::worker::now());
                    count_response(worker, view, ctx, head.status, head.cookie_sent);
                    return Exchanged::Answered(Answer {
                        conn,
                        backend,
                        buf,
                        head_len: head.len,
                        out,
                        head: head.front,
                        framing: head.framing,
                        backend_keep_alive: head.backend_keep_alive,
                        switching: head.switching,
                        request_complete,
                        load: Some(load),
                    });
                }
                Ok(Head::Informational { len, relay }) => {
                    if relay {
                        let (result, back) = front.send_informational(out).await;
                        let Some(back) = back else {
                            worker.buffers.give(buf);
                            return Exchanged::Failed(ProxyError::ClientTimeout);
                        };
                        out = back;
                        if result.is_err() {
                            worker.buffers.give(buf);
                            worker.buffers.give(out);
                            return Exchanged::Failed(ProxyError::ClientClosed);
                        }
                    }
                    io::consume(&mut buf, len);
                    continue;
                }
                Ok(Head::Incomplete) if buf.len() < buf.capacity() => {}
                Ok(Head::Incomplete) => {
                    worker.buffers.give(buf);
                    worker.buffers.give(out);
                    return Exchanged::Failed(ProxyError::ResponseHeadTooLarge);
                }
                Err(err) => {
                    worker.buffers.give(buf);
                    worker.buffers.give(out);
                    return Exchanged::Failed(err);
                }
            }
        }
        let (result, back) = io::read_more(&mut conn, buf, backend_limit).await;
        let Some(back) = back else {
            // A backend too slow: 504, and dropping `conn` closes it, so the
            // backend sees a FIN now rather than whenever it answers.
            Stats::bump(&worker.stats.backend_timeouts);
            worker.report_failure(view, ctx.decision.group, chosen);
            drop(conn);
            worker.buffers.give(out);
            return Exchanged::Failed(ProxyError::BackendTimeout);
        };
        buf = back;
        match result {
            Ok(n) if n > 0 => answered = true,
            Ok(_) | Err(_) => {
                worker.buffers.give(buf);
                let err = match result {
                    Err(IoFailure::Failed(err)) => ProxyError::BackendIo(err),
                    _ => ProxyError::BackendClosed,
                };
                if !answered {
                    return Exchanged::Died { out, err };
                }
                worker.report_failure(view, ctx.decision.group, chosen);
                worker.buffers.give(out);
                return Exchanged::Failed(err);
            }
        }
    }
}

/// A response head read from the start of a buffer.
pub enum Head<H> {
    Final(FinalHead<H>),
    /// A 1xx other than 101: its length, and whether it goes to the client.
    Informational {
        len: usize,
        relay: bool,
    },
    Incomplete,
}

/// What the final response head said, kept after its borrow ends.
pub struct FinalHead<H> {
    pub len: usize,
    pub status: u16,
    pub framing: ResponseFraming,
    pub backend_keep_alive: bool,
    pub switching: bool,
    pub cookie_sent: bool,
    pub front: H,
}

/// Parses the response head at the start of `buf`; for a final response,
/// the front end writes the client's head into `out`,
/// with the persistence edits of the group.
pub fn read_head<F: Heads>(
    view: &CoreView,
    ctx: &RequestCtx,
    front: &mut F,
    buf: &[u8],
    reading: Reading,
    out: &mut Vec<u8>,
) -> Result<Head<F::Head>, ProxyError> {
    let Reading {
        server: chosen,
        is_head,
        upgrade,
        ends,
    } = reading;
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let limit = view.limits.max_headers.min(MAX_HEADERS);
    let Some(response) = http::parse_response(buf, &mut headers[..limit], &view.limits, is_head)?
    else {
        return Ok(Head::Incomplete);
    };
    if response.is_informational() {
        out.clear();
        let relay = front.informational(&response, out);
        return Ok(Head::Informational {
            len: response.head_len,
            relay,
        });
    }
    let switching = response.is_switching_protocols();
    if switching && !switches_as_asked(view, ctx, upgrade, &response) {
        // A tunnel the client did not ask for, or to a protocol the
        // listener does not allow: 502, and the connection is closed
        // (SPEC §7).
        return Err(ProxyError::BadResponse(http::ResponseError::UnaskedSwitch));
    }
    let decision = &ctx.decision;
    let mut cookies =
        decision
            .persistence(view)
            .response(&decision.session, chosen, ctx.https, decision.now);
    out.clear();
    let (head, cookie_sent) = front.final_head(&response, &mut cookies, ends, out);
    Ok(Head::Final(FinalHead {
        len: response.head_len,
        status: response.status,
        framing: response.body,
        backend_keep_alive: response.keep_alive,
        switching,
        cookie_sent,
        front: head,
    }))
}

/// Whether a `101` switches to the protocol the request asked for, which
/// its listener allows.
fn switches_as_asked(
    view: &CoreView,
    ctx: &RequestCtx,
    upgrade: Option<usize>,
    response: &http::Response<'_, '_>,
) -> bool {
    let Some(allowed) = upgrade else {
        return false;
    };
    let protocol = view
        .snapshot
        .listener(ctx.listener)
        .and_then(|i| view.snapshot.config.listeners.get(i))
        .and_then(|listener| listener.upgrade_protocols.get(allowed));
    let Some(protocol) = protocol else {
        return false;
    };
    let mut offers = http::headers_named(response.headers, "upgrade").flat_map(|value| {
        value
            .split(|&b| b == b',')
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty())
    });
    // RFC 9110 §7.8: the server names the protocol it switches to; exactly
    // one, the one asked for.
    match (offers.next(), offers.next()) {
        (Some(offer), None) => http::upgrade_matches(protocol.as_bytes(), offer),
        _ => false,
    }
}

/// Counts a response from `ctx.server` and what happened to its session.
fn count_response(
    worker: &Worker,
    view: &CoreView,
    ctx: &mut RequestCtx,
    status: u16,
    cookie_sent: bool,
) {
    let Some(chosen) = ctx.server else {
        return;
    };
    let stats = &worker.stats;
    stats.response(status);
    let group = ctx.decision.group;
    let server = &view.groups[group.index()].servers[chosen.get()];
    Stats::bump(&server.responses);
    let outcome = ctx.decision.session.outcome(chosen, cookie_sent);
    match outcome {
        Outcome::Stuck => {
            Stats::bump(&stats.sticky_hits);
            Stats::bump(&server.sticky_hits);
        }
        Outcome::Moved => {
            Stats::bump(&stats.sticky_moved);
            log::debug!(
                "session moved from server {:?} to {} (group {})",
                ctx.decision.session.server,
                chosen.0,
                group.0
            );
        }
        Outcome::New | Outcome::Refused(_) if cookie_sent => {
            Stats::bump(&stats.sticky_new);
            log::debug!("new session on server {} (group {})", chosen.0, group.0);
        }
        Outcome::New | Outcome::Refused(_) | Outcome::None => {}
    }
    ctx.outcome = outcome;
    ctx.status = status;
}
