//! The HTTP/1 front end: one client connection's requests, in order.
//!
//! The loop waits for a request head without holding a buffer, reads it
//! under the head deadline ([`request`]: parse, decide, write the backend's
//! head), hands it to [`exchange`] (the shared upstream step, then the
//! client's response head and body), and goes on while both sides keep the
//! connection alive. Pipelined bytes wait in the client buffer for the next
//! turn; an upgraded connection becomes a [`tunnel`]. [`body`] streams
//! HTTP/1 bodies by their framing.

mod body;
mod exchange;
mod request;
mod tunnel;

pub use body::Relayed;
pub use exchange::{write_log, Busy, H1Heads};
pub use request::prepare;
pub(super) use tunnel::{run as tunnel_plain, run_any as tunnel_any};

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};

use super::context::{RequestCtx, Times};
use super::io::{self, IoFailure};
use super::stream::ClientStream;
use crate::error::ProxyError;
use crate::http;
use crate::net::{ListenerId, Upstream};
use crate::worker::{CoreView, Phase, Shed, Slot, Stats, Tick, Worker};

/// A client connection and the bytes received from it but not yet used
/// (the rest of a head, a body, or pipelined requests).
pub struct Client<S> {
    pub stream: S,
    pub peer: SocketAddr,
    /// Its place in the worker's connection table (see `worker::Conns`).
    pub slot: Slot,
    /// The listener it came in on; its settings are looked up per request.
    pub listener: ListenerId,
    /// When the connection was accepted.
    pub accepted: Tick,
    /// Received bytes start at 0. Capacity 0 while the connection is idle.
    pub buf: Vec<u8>,
    /// Its first bytes may still turn out to be the HTTP/2 preface (a
    /// plain listener with `http2 = true`, before the first head).
    pub h2c: bool,
    /// A readiness wait has just seen bytes (or the end) on the socket and
    /// nothing has read since: the next read returns at once.
    pub readable: bool,
}

/// What the client connection does after an exchange.
pub enum Flow {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
    /// The backend switched protocols: relay bytes both ways, counted on
    /// the server as an open tunnel.
    Tunnel(Upstream, Option<crate::worker::TunnelOpen>),
    /// The client sent the HTTP/2 preface: the connection is HTTP/2's.
    Http2,
}

enum Stop {
    /// Close without a word: the client left, or idled out between requests.
    Quiet,
    /// Answer with this error's status, then close.
    Refuse(ProxyError),
    /// The HTTP/2 preface: hand the connection over.
    Http2,
}

/// Serves requests on one client connection until it closes.
///
/// Between requests the connection holds no buffer and none of a request's
/// state: it waits for readability, and everything a request needs lives
/// in one boxed future that ends when the connection goes quiet. An idle
/// connection costs this loop's few hundred bytes (loadtest/idle.sh
/// measures it); requests back to back share one allocation for the box.
///
/// Not an `async fn`: the [`Client`] is built first and the loop's state
/// holds it alone, where an `async fn` would also keep the arguments it was
/// made of for as long as the connection lives.
pub fn run<S: ClientStream>(
    worker: Rc<Worker>,
    listener: ListenerId,
    stream: S,
    peer: SocketAddr,
    slot: Slot,
) -> impl std::future::Future<Output = ()> {
    let h2c = !stream.is_tls() && {
        let view = worker.view();
        view.snapshot
            .listener(listener)
            .and_then(|i| view.snapshot.config.listeners.get(i))
            .is_some_and(|l| l.http2)
    };
    let mut client = Client {
        stream,
        peer,
        slot,
        listener,
        accepted: crate::worker::now(),
        buf: Vec::new(),
        h2c,
        readable: false,
    };
    async move {
        let worker = &*worker;
        if client.stream.alpn_h2() {
            // HTTP/2 by ALPN: the connection is HTTP/2's from its first byte.
            let (listener, peer, slot) = (client.listener, client.peer, client.slot);
            http2_by_alpn(worker, listener, client.stream, peer, slot).await;
            return;
        }
        match serve_connection(worker, &mut client).await {
            Flow::Tunnel(backend, open) => {
                worker.buffers.give(std::mem::take(&mut client.buf));
                // Tunnels have their own idle limit (SPEC §7): a WebSocket
                // may stay quiet far longer than a keep-alive connection.
                let idle = worker.view().snapshot.config.timeouts.tunnel;
                Box::pin(client.stream.tunnel(worker, backend, idle)).await;
                drop(open);
            }
            Flow::Http2 => {
                // No `let` for the arguments: a moved-from local would still
                // take room in this future's state for as long as it idles.
                Box::pin(client.stream.http2(
                    worker,
                    super::h2::H2Conn {
                        listener: client.listener,
                        peer: client.peer,
                        slot: client.slot,
                        accepted: client.accepted,
                        https: false,
                        sni: None,
                    },
                    std::mem::take(&mut client.buf),
                ))
                .await;
            }
            Flow::KeepAlive | Flow::Close => {
                worker.buffers.give(std::mem::take(&mut client.buf));
                client.stream.finish().await;
            }
        }
    }
}

/// The HTTP/1 loop of [`run`]: returns when the connection is to close
/// (`Close`) or to carry something else (`Tunnel`, `Http2`).
async fn serve_connection<S: ClientStream>(worker: &Worker, client: &mut Client<S>) -> Flow {
    let slot = client.slot;
    let mut first = true;
    loop {
        if client.buf.is_empty() {
            worker.buffers.give(std::mem::take(&mut client.buf));
            // No view is held while the connection waits: a reload's old
            // snapshot must not live on in idle connections.
            let idle = if first {
                worker.view().snapshot.config.timeouts.client_head
            } else {
                // Idle: the first to go when the worker is full. The
                // linger inside the last request's future counts too.
                worker.conns.set(slot, Phase::Idle);
                let client_idle = worker.view().snapshot.config.timeouts.client_idle;
                client_idle.saturating_sub(LINGER)
            };
            if !wait_readable(worker, client, idle).await {
                break;
            }
            if !first {
                worker.conns.set(slot, Phase::Busy);
            }
        }
        let head_clock = if first {
            client.accepted
        } else {
            crate::worker::now()
        };
        first = false;
        match Box::pin(serve_busy(worker, client, head_clock)).await {
            Flow::KeepAlive if !worker.stopping.get() => {}
            Flow::KeepAlive | Flow::Close => return Flow::Close,
            other => return other,
        }
    }
    Flow::Close
}

/// Serves a TLS connection that chose HTTP/2 in its handshake. Not an
/// `async fn`: the arguments are moved into the boxed future, so none of
/// them also takes room in the connection loop's state.
fn http2_by_alpn<'w, S: ClientStream + 'w>(
    worker: &'w Worker,
    listener: ListenerId,
    stream: S,
    peer: SocketAddr,
    slot: Slot,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'w>> {
    let conn = super::h2::H2Conn {
        listener,
        peer,
        slot,
        accepted: crate::worker::now(),
        https: true,
        sni: stream.sni().map(Into::into),
    };
    Box::pin(stream.http2(worker, conn, Vec::new()))
}

/// How long a connection that has just been answered waits for its next
/// request inside the request's boxed future before it goes idle for real
/// (giving the box back). A client that sends its next request at once,
/// as a busy keep-alive connection does, costs no allocation and no move
/// of that future per request; one that pauses longer pays a cancelled
/// readiness wait once per pause.
const LINGER: Duration = crate::worker::deadline::TICK;

/// Waits until the client has sent something (or rustls holds decrypted
/// bytes), for at most `limit`; false when the client left, the wait ran
/// out, or the worker sheds this connection.
async fn wait_readable<S: ClientStream>(
    worker: &Worker,
    client: &mut Client<S>,
    limit: Duration,
) -> bool {
    let readable = std::pin::pin!(client.stream.readable());
    let deadline = crate::worker::deadline::after(limit);
    let shed = worker.conns.shed(client.slot);
    client.readable = matches!(
        select(readable, select(deadline, shed)).await,
        Either::Left((Ok(()), _))
    );
    client.readable
}

/// Serves requests while they come back to back: the next one is already
/// buffered (pipelined) or arrives within [`LINGER`]. Returns when the
/// connection closes, switches protocols, or goes quiet (`KeepAlive` with
/// an empty buffer: the caller waits for it without this future).
async fn serve_busy<S: ClientStream>(
    worker: &Worker,
    client: &mut Client<S>,
    mut head_clock: Tick,
) -> Flow {
    loop {
        let flow = serve_one(worker, client, head_clock).await;
        if !matches!(flow, Flow::KeepAlive) || worker.stopping.get() {
            return flow;
        }
        if client.buf.is_empty() {
            worker.buffers.give(std::mem::take(&mut client.buf));
            worker.conns.set(client.slot, Phase::Idle);
            if !wait_readable(worker, client, LINGER).await {
                // Quiet (or gone, or shed: the caller's own wait sees that
                // at once and closes).
                return Flow::KeepAlive;
            }
            worker.conns.set(client.slot, Phase::Busy);
        }
        head_clock = crate::worker::now();
    }
}

/// Reads one request head (its deadline running from `head_clock`),
/// forwards the request, and relays the response.
async fn serve_one<S: ClientStream>(
    worker: &Worker,
    client: &mut Client<S>,
    head_clock: Tick,
) -> Flow {
    let view = worker.view();
    let Some(listener) = view.snapshot.listener(client.listener) else {
        // A reload closed the listener this connection came in on.
        return Flow::Close;
    };
    // Taken once a head has arrived: an idle connection holds no buffer.
    let mut out = Vec::new();
    match read_request(worker, &view, client, listener, &mut out, head_clock).await {
        Ok((request, mut ctx)) => {
            // A request in flight is never shed.
            worker.conns.set(client.slot, Phase::Busy);
            Stats::bump(&worker.stats.requests);
            // By reference: the exchange's future does not carry (and
            // move) a second copy of them.
            exchange::forward(worker, &view, client, &request, &mut ctx, out).await
        }
        Err(Stop::Quiet) => {
            worker.buffers.give(out);
            Flow::Close
        }
        Err(Stop::Http2) => {
            worker.buffers.give(out);
            Flow::Http2
        }
        Err(Stop::Refuse(err)) => {
            worker.buffers.give(out);
            refuse(worker, &view, client, &err).await;
            Flow::Close
        }
    }
}

/// Reads the next request head into `client.buf` until it parses, the
/// head deadline passes, or the client leaves.
async fn read_request<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client<S>,
    listener: usize,
    out: &mut Vec<u8>,
    head_clock: Tick,
) -> Result<(request::H1Request, RequestCtx), Stop> {
    if client.buf.capacity() == 0 {
        client.buf = worker.buffers.take();
    }
    let deadline = head_clock + view.snapshot.config.timeouts.client_head;
    let min_rate = view.snapshot.config.limits.min_head_rate;
    loop {
        if client.h2c && !client.buf.is_empty() {
            // The preface or HTTP/1: a compare on bytes already read.
            let seen = client
                .buf
                .get(..super::h2::PREFACE.len())
                .unwrap_or(&client.buf);
            if seen == super::h2::PREFACE {
                return Err(Stop::Http2);
            }
            client.h2c = super::h2::PREFACE.starts_with(seen);
        }
        if !client.buf.is_empty() && !client.h2c {
            if out.capacity() == 0 {
                *out = worker.buffers.take();
            }
            let conn = super::decide::Conn {
                listener,
                peer: client.peer,
                https: client.stream.is_tls(),
                sni: client.stream.sni(),
            };
            match request::prepare(worker, view, &conn, &client.buf, out) {
                Ok(Some((mut request, decision))) => {
                    let mut ctx = RequestCtx::new(
                        request.version.into(),
                        client.listener,
                        client.peer,
                        conn.https,
                        Times::new(client.accepted, head_clock),
                        decision,
                    );
                    ctx.log_request = request.log_request.take();
                    ctx.request_id = Some(request.request_id);
                    return Ok((request, ctx));
                }
                Ok(None) => {}
                Err(err) => return Err(Stop::Refuse(err)),
            }
            if client.buf.len() == client.buf.capacity() {
                return Err(Stop::Refuse(ProxyError::HeadTooLarge));
            }
        }
        // After its first second a head must average `min_head_rate`: the
        // bytes so far buy this much time (issue 17, slow-header floods).
        let rate_deadline = (min_rate > 0).then(|| {
            let earned_ms = client.buf.len() as u64 * 1000 / u64::from(min_rate);
            head_clock + Duration::from_millis(earned_ms.max(1000))
        });
        let until = rate_deadline.map_or(deadline, |rated| rated.min(deadline));
        let left = until.saturating_duration_since(crate::worker::now());
        let buf = std::mem::take(&mut client.buf);
        // Plain TCP just seen readable: the read cannot wait, so it needs
        // no deadline of its own (TLS may need more bytes for a record).
        let at_once = std::mem::take(&mut client.readable) && !client.stream.is_tls();
        let (result, buf) = if at_once {
            // Nor a shed signal: nothing waits to be interrupted.
            io::read_more_at_once(&mut client.stream, buf).await
        } else {
            let read = std::pin::pin!(io::read_more(&mut client.stream, buf, left));
            match select(read, worker.conns.shed(client.slot)).await {
                Either::Left((read, _)) => read,
                // The worker is full and this connection is worth least.
                Either::Right(_) => return Err(Stop::Quiet),
            }
        };
        client.buf = buf.unwrap_or_default();
        match result {
            Ok(0) | Err(IoFailure::Failed(_)) => return Err(Stop::Quiet),
            Ok(_) => {}
            Err(IoFailure::TimedOut) if rate_deadline.is_some_and(|rated| rated < deadline) => {
                worker.stats.shed(Shed::SlowHead);
                if worker
                    .conns
                    .should_log(client.peer.ip(), crate::worker::now())
                {
                    log::info!(
                        "{}: request head slower than limits.min_head_rate ({min_rate} B/s); closed",
                        client.peer
                    );
                }
                return Err(Stop::Refuse(ProxyError::ClientTimeout));
            }
            Err(IoFailure::TimedOut) => return Err(Stop::Refuse(ProxyError::ClientTimeout)),
        }
    }
}

/// Answers a request limpet will not forward, then the caller closes.
async fn refuse<S: ClientStream>(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client<S>,
    err: &ProxyError,
) {
    let Some(status) = err.status() else {
        return;
    };
    let listener = view
        .snapshot
        .listener(client.listener)
        .map(|i| &view.snapshot.config.listeners[i]);
    if let (true, Some(access_log)) = (
        worker.access.enabled(),
        listener.and_then(|l| l.access_log.as_ref()),
    ) {
        let entry = crate::access_log::Entry {
            duration: std::time::Duration::ZERO,
            client: client.peer.ip(),
            request: b"-",
            status,
            bytes: http::error_response(status).len() as u64,
            server: "-",
            session: crate::sticky::Outcome::None.log_word(),
            retries: 0,
            host: b"",
            user_agent: b"",
            upstream: None,
            request_id: b"",
        };
        worker
            .access
            .write(client.listener, access_log.format, &entry);
    }
    log::debug!("refused a request from {}: {err}", client.peer);
    Stats::bump(&worker.stats.refused);
    worker.stats.response(status);
    let limit = view.snapshot.config.timeouts.client_body;
    let _ = io::write_all(&mut client.stream, http::error_response(status), limit).await;
}
