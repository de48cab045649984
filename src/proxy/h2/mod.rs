//! The HTTP/2 front end: one client connection's streams, each a request
//! like any other (RFC 9113 §8), forwarded to HTTP/1.1 backends by the
//! same decision and upstream steps as HTTP/1's.
//!
//! Framing, HPACK and flow control are the `h2` crate's, over monoio's
//! poll-based form of the socket (`IntoPollIo`). Its limits are all set
//! from `[limits]`. One task serves the connection: `h2`'s connection and
//! every stream in flight (a `FuturesUnordered`) are polled inside it, so
//! nothing is `Send` and no other task is spawned. Streams of one
//! connection may go to different servers, each by its own cookie.
//!
//! - [`request`]: a stream's head to a decision and the backend's head.
//! - [`request_body`]: DATA to the backend; [`response`]: the backend's
//!   body to DATA and trailers.
//! - [`exchange`]: one stream from head to log line.
//! - [`flood`]: the SETTINGS / PING counter; [`replay`]: the preface bytes
//!   read while telling the protocols apart.
//!
//! It never reads the socket itself, and never lets a connection outlive
//! `timeouts.shutdown` after it has been told to go away.

mod exchange;
mod flood;
mod replay;
mod request;
mod request_body;
mod response;

use std::cell::Cell;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::Reason;
use monoio::io::poll_io::{AsyncRead, AsyncWrite};

pub use replay::Replay;

use crate::config::Limits;
use crate::net::ListenerId;
use crate::worker::deadline::{self, Deadline};
use crate::worker::{Phase, Slot, Worker};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may have reset while they were in flight, per
/// connection, before it is told to calm down (CVE-2023-44487: at most
/// `h2_max_streams` + this many backend requests for a reset flood).
const MAX_CANCELLED_STREAMS: u32 = 10;

/// How long a connection told to go away abruptly has to flush its GOAWAY.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// What every stream of a connection knows of it.
#[derive(Debug)]
pub struct H2Conn {
    pub listener: ListenerId,
    pub peer: SocketAddr,
    pub slot: Slot,
    pub accepted: crate::worker::Tick,
    pub https: bool,
    pub sni: Option<Box<str>>,
}

/// What the streams tell the connection.
#[derive(Debug, Default)]
pub struct Shared {
    cancelled: Cell<u32>,
}

impl Shared {
    /// A stream in flight ended by the client (`Some`) or by the
    /// connection failing (`None`).
    fn cancelled(&self, by_client: Option<Reason>) {
        if by_client.is_some() {
            self.cancelled.set(self.cancelled.get().saturating_add(1));
        }
    }
}

/// `SETTINGS_MAX_HEADER_LIST_SIZE` as RFC 9113 counts it (each field's
/// name and value plus 32): what `max_head_bytes` and `max_headers` allow
/// an HTTP/1 head.
fn max_header_list_bytes(limits: &Limits) -> u32 {
    let bytes = limits.max_head_bytes + 32 * limits.max_headers;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

fn builder(limits: &Limits, buffer_bytes: usize) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.h2_max_streams)
        .initial_window_size(limits.h2_stream_window)
        .initial_connection_window_size(limits.h2_connection_window)
        .max_frame_size(limits.h2_max_frame)
        .max_header_list_size(max_header_list_bytes(limits))
        // Streams reset before limpet accepted them (rapid reset): h2
        // answers past this with GOAWAY (ENHANCE_YOUR_CALM).
        .max_pending_accept_reset_streams(20)
        // Streams h2 reset for the client's errors, per connection.
        .max_local_error_reset_streams(Some(1024))
        .max_concurrent_reset_streams(50)
        // What one stream may queue for a client that does not read.
        .max_send_buffer_size(buffer_bytes.max(16 * 1024));
    builder
}

/// Serves an HTTP/2 connection over `io` (the client preface first) until
/// it closes.
pub async fn serve<T>(worker: &Worker, conn: H2Conn, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let view = worker.view();
    let config = &view.snapshot.config;
    let (limits, timeouts) = (&config.limits, config.timeouts.clone());
    let counter = Rc::new(flood::Counter::default());
    let io = flood::Flood::new(io, PREFACE.len() as u64, counter.clone());
    let handshake = builder(limits, config.workers.buffer_bytes).handshake::<_, Bytes>(io);
    let mut h2 = match deadline::timeout(timeouts.client_head, handshake).await {
        Ok(Ok(h2)) => h2,
        Ok(Err(err)) => {
            log::debug!("HTTP/2 handshake with {} failed: {err}", conn.peer);
            return;
        }
        Err(_) => return,
    };
    drop(view);
    worker.conns.set(conn.slot, Phase::Idle);
    let shared = Shared::default();
    let mut streams = FuturesUnordered::new();
    let mut idle: Option<Deadline> = Some(deadline::after(timeouts.client_idle));
    let mut shed = std::pin::pin!(worker.conns.shed(conn.slot));
    // Polled once: that leaves this task's waker with the event, which
    // `notify_all` drains after setting `worker.stopping` (checked on every
    // pass). Polling it on every pass would scan (and, where `will_wake`
    // cannot tell the task's wakers apart, grow) the worker's waiter list
    // on every wake-up.
    let mut stop = Some(worker.stop.wait());
    // Told to go away: when it must be closed whatever is in flight.
    let mut going: Option<Deadline> = None;
    let mut calmed = false;
    std::future::poll_fn(|cx| loop {
        if !calmed && (counter.tripped() || shared.cancelled.get() > MAX_CANCELLED_STREAMS) {
            log::info!(
                "{}: HTTP/2 flood (SETTINGS/PING or resets); GOAWAY and closed",
                conn.peer
            );
            h2.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            calmed = true;
            streams.clear();
            going = Some(deadline::after(GOAWAY_FLUSH));
        }
        // The streams first, then `h2`: what they queued this pass goes out
        // in the flush that ends `poll_accept`, not in another pass.
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {
            if streams.is_empty() {
                worker.conns.set(conn.slot, Phase::Idle);
                if going.is_none() {
                    idle = Some(deadline::after(timeouts.client_idle));
                }
            }
        }
        match h2.poll_accept(cx) {
            Poll::Ready(Some(Ok((request, respond)))) => {
                if streams.is_empty() {
                    worker.conns.set(conn.slot, Phase::Busy);
                    idle = None;
                }
                // Boxed: `FuturesUnordered` keeps a stub task sized for its
                // future for as long as the connection lives (5 KiB of
                // every idle connection for the exchange's state inline).
                streams.push(Box::pin(exchange::serve(
                    worker, &conn, &shared, request, respond,
                )));
                continue;
            }
            Poll::Ready(Some(Err(err))) => {
                log::debug!("HTTP/2 connection from {} failed: {err}", conn.peer);
                return Poll::Ready(());
            }
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => {}
        }
        if going.is_none() {
            let idled = idle
                .as_mut()
                .is_some_and(|d| Pin::new(d).poll(cx).is_ready());
            let told = shed.as_mut().poll(cx).is_ready()
                || stop
                    .take()
                    .is_some_and(|mut stop| Pin::new(&mut stop).poll(cx).is_ready());
            if idled || told || worker.stopping.get() {
                // GOAWAY: the streams in flight finish, no new one starts.
                h2.graceful_shutdown();
                idle = None;
                going = Some(deadline::after(timeouts.shutdown));
                continue;
            }
        }
        if let Some(going) = going.as_mut() {
            if Pin::new(going).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        return Poll::Pending;
    })
    .await;
}
