//! One request's trip to a backend and back, with the retry rules of
//! SPEC §7:
//! - connecting fails (nothing was sent): the request goes to another
//!   server of the group;
//! - a reused pooled connection fails before any response byte: an
//!   idempotent request without a body is sent once more, on a fresh
//!   connection;
//! - otherwise 502, or 504 for a backend too slow; and once a response has
//!   started, a failure closes the client connection instead of letting a
//!   truncated response look complete.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use super::body::{self, Relayed, Remaining, SendError};
use super::client::Client;
use super::io::{self, IoFailure};
use super::route::{Outcome, Request, Session, MAX_HEADERS};
use super::stream::ClientStream;
use crate::balance::{hash_key, ServerIdx};
use crate::control::BackendId;
use crate::control::Sticky;
use crate::error::ProxyError;
use crate::http::{self, BodyFraming, ResponseFraming};
use crate::net::TlsStream;
use crate::net::Upstream;
use crate::sticky::{policy, rewrite, set_cookie};
use crate::worker::{CoreView, Stats, Worker};

/// A request head at most this long fits an empty socket send buffer (the
/// kernel's minimum is 4 KiB, the default 16 KiB), so writing it never waits.
const SMALL_HEAD_BYTES: usize = 4096;

/// What the client connection does after an exchange.
pub enum Flow {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
    /// The backend switched protocols: relay bytes both ways.
    Tunnel(Upstream),
}

/// Counts a request in flight on this core for as long as it lives.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.in_flight.set(stats.in_flight.get() + 1);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// Counts a request outstanding on one server, for least-outstanding
/// balancing, for as long as it lives.
struct Outstanding<'a> {
    counts: &'a RefCell<Vec<u32>>,
    server: usize,
}

impl<'a> Outstanding<'a> {
    fn new(counts: &'a RefCell<Vec<u32>>, server: ServerIdx) -> Self {
        if let Some(count) = counts.borrow_mut().get_mut(server.get()) {
            *count += 1;
        }
        Outstanding {
            counts,
            server: server.get(),
        }
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.counts.borrow_mut().get_mut(self.server) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Chooses the server for `request`, skipping those in `tried` (connect
/// failures): the server its session names while that server takes stuck
/// sessions (SPEC §6); else, in rewrite mode, the ring on the application's
/// session value, so every core and node fail over alike (SPEC §4.4); else
/// the group's balancer.
pub(super) fn choose(view: &CoreView, request: &Request, tried: &[ServerIdx]) -> Option<ServerIdx> {
    let group = &view.snapshot.groups[request.group];
    let servers = &group.servers;
    let fresh = |s: ServerIdx| !tried.contains(&s);
    if let Some(stuck) = request.session.server() {
        if servers.get(stuck.get()).is_some_and(|v| v.takes_stuck()) && fresh(stuck) {
            return Some(stuck);
        }
    }
    let takes_new = |s: ServerIdx| servers.get(s.get()).is_some_and(|v| v.takes_new()) && fresh(s);
    if let Some(value) = request.session.app_value() {
        if let Some(server) = group.ring.pick(hash_key(value), takes_new) {
            return Some(server);
        }
    }
    let core = &view.groups[request.group];
    let outstanding = core.outstanding.borrow();
    core.picker
        .borrow_mut()
        .pick(request.key_hash, takes_new, &outstanding)
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
        let conn = rustls::ClientConnection::new(tls.client.clone(), tls.server_name(addr))
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

/// Forwards `request` (its head rewritten in `out`) and relays the answer.
pub async fn forward<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client<S>,
    mut request: Request,
    out: Vec<u8>,
) -> Flow {
    let log = request.log.take();
    let flow = forward_to_backend(worker, view, client, &request, out).await;
    if let Some(mut entry) = log {
        let listener = view
            .snapshot
            .listener(client.listener)
            .map(|i| &view.snapshot.config.listeners[i]);
        if let Some(access_log) = listener.and_then(|l| l.access_log.as_ref()) {
            let outcome = &request.outcome;
            entry.status = outcome.status.get();
            entry.bytes = outcome.bytes.get();
            entry.session = outcome.session.get();
            entry.server = outcome.server.get().and_then(|s| {
                let group = &view.snapshot.config.groups[request.group];
                group
                    .servers
                    .get(s.get())
                    .map(|server| server.name.as_str().into())
            });
            worker
                .access
                .write(client.listener, access_log.format, &entry);
        }
    }
    flow
}

async fn forward_to_backend<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client<S>,
    request: &Request,
    out: Vec<u8>,
) -> Flow {
    io::consume(&mut client.buf, request.head_len);
    let _in_flight = InFlight::new(&worker.stats);
    let config = &view.snapshot.config;
    let timeouts = &config.timeouts;
    let group = &view.snapshot.groups[request.group];
    let mut out = out;
    // Allocates only when a connection fails.
    let mut tried: Vec<ServerIdx> = Vec::new();
    let mut last_error = None;
    let mut fresh_only = false;
    let mut server = choose(view, request, &tried);
    loop {
        let Some(chosen) = server else {
            let err = last_error.map_or(ProxyError::NoServer, ProxyError::Connect);
            return answer_error(
                worker,
                client,
                &request.outcome,
                &err,
                out,
                timeouts.client_body,
            )
            .await;
        };
        let target = &group.servers[chosen.get()];
        let wants_tls = config.groups[request.group].tls.is_some();
        let pooled = if fresh_only {
            None
        } else {
            // A reload may have switched the group to or from TLS.
            worker
                .upstreams
                .take(target.backend, timeouts.backend_idle)
                .filter(|conn| matches!(conn, Upstream::Tls(_)) == wants_tls)
        };
        let reused = pooled.is_some();
        let conn = match pooled {
            Some(conn) => conn,
            None => match connect(
                target.addr,
                config.groups[request.group].tls.as_ref(),
                timeouts.backend_connect,
            )
            .await
            {
                Ok(conn) => conn,
                Err(err) => {
                    log::debug!("connect to {} failed: {err}", target.addr);
                    Stats::bump(&worker.stats.backend_connect_errors);
                    worker.report_failure(view, request.group, chosen);
                    tried.push(chosen);
                    last_error = Some(err);
                    server = choose(view, request, &tried);
                    if server.is_some() {
                        Stats::bump(&worker.stats.retries);
                    }
                    continue;
                }
            },
        };
        let load = Outstanding::new(&view.groups[request.group].outstanding, chosen);
        match exchange(
            worker,
            view,
            client,
            request,
            out,
            conn,
            reused,
            target.backend,
            chosen,
            load,
        )
        .await
        {
            Exchanged::Done(flow) => return flow,
            Exchanged::Stale(back) => {
                out = back;
                if request.retryable && !fresh_only {
                    fresh_only = true;
                    Stats::bump(&worker.stats.retries);
                    continue;
                }
                return answer_error(
                    worker,
                    client,
                    &request.outcome,
                    &ProxyError::BackendClosed,
                    out,
                    timeouts.client_body,
                )
                .await;
            }
        }
    }
}

/// Answers the client with the error's status and closes (the request's
/// body may not have been read, so the connection cannot be reused).
async fn answer_error<S: ClientStream>(
    worker: &Worker,
    client: &mut Client<S>,
    outcome: &Outcome,
    err: &ProxyError,
    out: Vec<u8>,
    limit: Duration,
) -> Flow {
    worker.buffers.give(out);
    if let Some(status) = err.status() {
        log::debug!("answering {status} to {}: {err}", client.peer);
        worker.stats.response(status);
        outcome.status.set(status);
        let _ = io::write_all(&mut client.stream, http::error_response(status), limit).await;
    }
    Flow::Close
}

enum Exchanged {
    Done(Flow),
    /// A reused connection failed before any response byte; the request
    /// head comes back for a retry on a fresh connection.
    Stale(Vec<u8>),
}

/// What the response head said, kept after the head's borrow ends.
pub(super) struct Head {
    len: usize,
    status: u16,
    framing: ResponseFraming,
    backend_keep_alive: bool,
    switching: bool,
    client_keep_alive: bool,
    /// limpet set (or re-issued) a persistence cookie on this response.
    cookie_sent: bool,
}

/// Counts and logs what happened to the request's session.
fn count_session(
    worker: &Worker,
    view: &CoreView,
    request: &Request,
    chosen: ServerIdx,
    cookie_sent: bool,
) {
    let stats = &worker.stats;
    let server = view.groups[request.group].servers.get(chosen.get());
    if let Some(server) = server {
        Stats::bump(&server.responses);
    }
    match request.session.server() {
        Some(named) if named == chosen => {
            request.outcome.session.set("stuck");
            Stats::bump(&stats.sticky_hits);
            if let Some(server) = server {
                Stats::bump(&server.sticky_hits);
            }
        }
        Some(named) => {
            request.outcome.session.set("moved");
            Stats::bump(&stats.sticky_moved);
            log::debug!(
                "session moved from server {} to {} (group {})",
                named.0,
                chosen.0,
                request.group
            );
        }
        None if cookie_sent => {
            // A refused token keeps its word: the log says why it is new.
            if request.outcome.session.get() == "none" {
                request.outcome.session.set("new");
            }
            Stats::bump(&stats.sticky_new);
            log::debug!(
                "new session on server {} (group {})",
                chosen.0,
                request.group
            );
        }
        None => {}
    }
}

pub(super) enum Parsed {
    Final(Head),
    /// A 1xx other than 101: its head length and status.
    Informational(usize, u16),
    Incomplete,
}

#[allow(clippy::too_many_arguments)]
async fn exchange<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client<S>,
    request: &Request,
    out: Vec<u8>,
    mut conn: Upstream,
    reused: bool,
    backend: BackendId,
    chosen: ServerIdx,
    load: Outstanding<'_>,
) -> Exchanged {
    let config = &view.snapshot.config;
    let timeouts = &config.timeouts;
    let client_limit = timeouts.client_body;
    let backend_limit = timeouts.backend_response;

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
        return Exchanged::Done(
            answer_error(
                worker,
                client,
                &request.outcome,
                &ProxyError::BackendTimeout,
                Vec::new(),
                client_limit,
            )
            .await,
        );
    };
    if let Err(IoFailure::Failed(err)) = result {
        if reused {
            return Exchanged::Stale(out);
        }
        return Exchanged::Done(
            answer_error(
                worker,
                client,
                &request.outcome,
                &ProxyError::BackendIo(err),
                out,
                client_limit,
            )
            .await,
        );
    }

    // The body. limpet answers `Expect: 100-continue` itself once the
    // backend is connected, then streams the body.
    let mut request_complete = true;
    let mut sent_continue = false;
    if request.body != BodyFraming::None {
        if request.expect_continue && client.buf.is_empty() {
            let (result, _) =
                io::write_all(&mut client.stream, http::CONTINUE_100, client_limit).await;
            if result.is_err() {
                return Exchanged::Done(Flow::Close);
            }
            sent_continue = true;
        }
        match body::send_request_body(
            worker,
            client,
            &mut conn,
            request.body,
            client_limit,
            backend_limit,
        )
        .await
        {
            Ok(()) => {}
            Err(SendError::Client(err)) => {
                // The backend has half a request: that connection is done.
                return Exchanged::Done(
                    answer_error(worker, client, &request.outcome, &err, out, client_limit).await,
                );
            }
            Err(SendError::Backend(failure)) => {
                // It may have answered early (e.g. 413); read what it said.
                log::debug!("sending a request body failed: {failure:?}");
                request_complete = false;
            }
        }
    }

    // The response head, after any informational (1xx) responses.
    let mut buf = worker.buffers.take();
    let head = loop {
        if !buf.is_empty() {
            let parsed = parse_head(
                view,
                request,
                chosen,
                request_complete,
                worker.stopping.get(),
                &buf,
                &mut out,
            );
            match parsed {
                Ok(Parsed::Final(head)) => break head,
                Ok(Parsed::Informational(len, 100)) if sent_continue => {
                    // limpet already said `100 Continue`; one is enough.
                    io::consume(&mut buf, len);
                    continue;
                }
                Ok(Parsed::Informational(len, _)) => {
                    let (result, back) =
                        io::write_range(&mut client.stream, buf, 0..len, client_limit).await;
                    let Some(back) = back else {
                        return Exchanged::Done(Flow::Close);
                    };
                    buf = back;
                    if result.is_err() {
                        worker.buffers.give(buf);
                        return Exchanged::Done(Flow::Close);
                    }
                    io::consume(&mut buf, len);
                    continue;
                }
                Ok(Parsed::Incomplete) if buf.len() < buf.capacity() => {}
                Ok(Parsed::Incomplete) => {
                    worker.buffers.give(buf);
                    let err = ProxyError::ResponseHeadTooLarge;
                    return Exchanged::Done(
                        answer_error(worker, client, &request.outcome, &err, out, client_limit)
                            .await,
                    );
                }
                Err(err) => {
                    worker.buffers.give(buf);
                    return Exchanged::Done(
                        answer_error(worker, client, &request.outcome, &err, out, client_limit)
                            .await,
                    );
                }
            }
        }
        let nothing_yet = buf.is_empty();
        let (result, back) = io::read_more(&mut conn, buf, backend_limit).await;
        let Some(back) = back else {
            // A backend too slow: 504, and dropping `conn` closes it, so the
            // backend sees a FIN now rather than whenever it answers.
            Stats::bump(&worker.stats.backend_timeouts);
            worker.report_failure(view, request.group, chosen);
            drop(conn);
            return Exchanged::Done(
                answer_error(
                    worker,
                    client,
                    &request.outcome,
                    &ProxyError::BackendTimeout,
                    out,
                    client_limit,
                )
                .await,
            );
        };
        buf = back;
        match result {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(_) => {
                worker.buffers.give(buf);
                if nothing_yet && reused && request.retryable {
                    return Exchanged::Stale(out);
                }
                let err = match result {
                    Err(IoFailure::Failed(err)) => ProxyError::BackendIo(err),
                    _ => ProxyError::BackendClosed,
                };
                worker.report_failure(view, request.group, chosen);
                return Exchanged::Done(
                    answer_error(worker, client, &request.outcome, &err, out, client_limit).await,
                );
            }
        }
    };

    // The response head and whatever body bytes came with it, in one write.
    let mut remaining = Remaining::of_response(head.framing);
    let available = &buf[head.len..];
    let taken = match remaining.advance(available) {
        Ok(n) => n,
        Err(err) => {
            worker.buffers.give(buf);
            let err = ProxyError::BadResponseBody(err);
            return Exchanged::Done(
                answer_error(worker, client, &request.outcome, &err, out, client_limit).await,
            );
        }
    };
    if remaining.is_done() {
        // The backend's part is over: it counts as idle for the balancer
        // while the response is still being written to the client.
        drop(load);
    }
    let mut extra = taken < available.len();
    if head.switching {
        // Bytes after a 101 head already belong to the new protocol.
        out.extend_from_slice(available);
        extra = false;
    } else {
        out.extend_from_slice(&available[..taken]);
    }
    worker.stats.response(head.status);
    count_session(worker, view, request, chosen, head.cookie_sent);
    request.outcome.status.set(head.status);
    request.outcome.server.set(Some(chosen));
    request.outcome.bytes.set(out.len() as u64);
    let (result, back) = io::write_all(&mut client.stream, out, client_limit).await;
    if let Some(back) = back {
        worker.buffers.give(back);
    }
    if result.is_err() {
        worker.buffers.give(buf);
        return Exchanged::Done(Flow::Close);
    }

    if head.switching {
        worker.buffers.give(buf);
        if !client.buf.is_empty() {
            let pending = std::mem::take(&mut client.buf);
            let (result, _) = io::write_all(&mut conn, pending, backend_limit).await;
            if result.is_err() {
                return Exchanged::Done(Flow::Close);
            }
        }
        return Exchanged::Done(Flow::Tunnel(conn));
    }

    // The rest of the body.
    let relayed = if remaining.is_done() || extra {
        worker.buffers.give(buf);
        Relayed::Complete { extra }
    } else {
        buf.clear();
        body::relay_response_body(
            worker,
            &mut conn,
            &mut client.stream,
            buf,
            remaining,
            client_limit,
            backend_limit,
            &request.outcome.bytes,
        )
        .await
    };
    match relayed {
        Relayed::Complete { extra } => {
            if head.backend_keep_alive && request_complete && !extra {
                let max_idle = config.groups[request.group].pool_max_idle_per_server;
                worker.upstreams.put(backend, conn, max_idle);
            }
            Exchanged::Done(if head.client_keep_alive {
                Flow::KeepAlive
            } else {
                Flow::Close
            })
        }
        Relayed::Broken => Exchanged::Done(Flow::Close),
    }
}

/// Parses the response head at the start of `buf`; for a final response,
/// writes the head to send to the client into `out`, with the persistence
/// cookies the group's policy calls for.
pub(super) fn parse_head(
    view: &CoreView,
    request: &Request,
    chosen: ServerIdx,
    request_complete: bool,
    stopping: bool,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Result<Parsed, ProxyError> {
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let limit = view.limits.max_headers.min(MAX_HEADERS);
    let Some(response) =
        http::parse_response(buf, &mut headers[..limit], &view.limits, request.is_head)?
    else {
        return Ok(Parsed::Incomplete);
    };
    if response.is_informational() {
        return Ok(Parsed::Informational(response.head_len, response.status));
    }
    let switching = response.is_switching_protocols() && request.upgrade;
    let client_keep_alive = request.keep_alive
        && request_complete
        && !stopping
        && !switching
        && !matches!(response.body, ResponseFraming::UntilClose);
    out.clear();
    let now = request.now;
    let no_cache =
        || set_cookie::needs_no_cache(http::headers_named(response.headers, "cache-control"));
    let cookie_sent = Cell::new(false);
    let group = &view.snapshot.groups[request.group];
    match (&group.sticky, &request.session) {
        (Sticky::Insert { tokens, cookie }, Session::Insert(lookup)) => {
            let cookie = cookie.get(request.https);
            // Sent only when new or naming another server than the client's
            // (SPEC §3.4); limpet never refreshes the expiry.
            let send = policy::must_send(lookup, chosen);
            let copy = |value: &[u8], out: &mut Vec<u8>| out.extend_from_slice(value);
            http::write_response_head(
                &response,
                out,
                client_keep_alive,
                request.version,
                copy,
                |out| {
                    if send {
                        let token = tokens.encode(chosen, lookup.issued(now), now);
                        cookie.write_headers(token.as_bytes(), now, out);
                        if no_cache() {
                            out.extend_from_slice(set_cookie::CACHE_CONTROL_LINE);
                        }
                        cookie_sent.set(true);
                    }
                },
            );
        }
        (Sticky::Rewrite { tokens, cookie }, Session::Rewrite(session)) => {
            let cookie = cookie.get(request.https);
            let lookup = session.lookup();
            let token = tokens.encode(chosen, lookup.issued(now), now);
            let name = cookie.name().as_bytes();
            let set_by_app = Cell::new(false);
            let rewrite = |value: &[u8], out: &mut Vec<u8>| {
                if rewrite::rewrite_into(value, name, token.as_bytes(), out).sets_our_cookie() {
                    set_by_app.set(true);
                }
            };
            http::write_response_head(
                &response,
                out,
                client_keep_alive,
                request.version,
                rewrite,
                |out| {
                    // On failover the cookie is re-issued for the new server,
                    // unless the application set it itself (SPEC §4.4).
                    if !set_by_app.get() && policy::must_reissue(&lookup, chosen) {
                        if let Some(value) = lookup.app_value {
                            cookie.write_reissue(token.as_bytes(), value, lookup.quoted, out);
                            if no_cache() {
                                out.extend_from_slice(set_cookie::CACHE_CONTROL_LINE);
                            }
                            cookie_sent.set(true);
                        }
                    }
                },
            );
        }
        _ => {
            let copy = |value: &[u8], out: &mut Vec<u8>| out.extend_from_slice(value);
            http::write_response_head(
                &response,
                out,
                client_keep_alive,
                request.version,
                copy,
                |_| {},
            );
        }
    }
    Ok(Parsed::Final(Head {
        len: response.head_len,
        status: response.status,
        framing: response.body,
        backend_keep_alive: response.keep_alive,
        switching,
        client_keep_alive,
        cookie_sent: cookie_sent.get(),
    }))
}
