//! The client side of a connection: wait for a request head without holding
//! a buffer, read it under the head deadline, hand it to [`super::forward`],
//! and loop while both sides keep the connection alive.

use std::net::SocketAddr;
use std::time::Instant;

use monoio::net::TcpStream;

use super::forward::{self, Flow};
use super::io::{self, IoFailure};
use super::route::{self, Request};
use crate::error::ProxyError;
use crate::http;
use crate::worker::{CoreView, Stats, Worker};

/// A client connection and the bytes received from it but not yet used
/// (the rest of a head, a body, or pipelined requests).
pub struct Client {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub listener: usize,
    /// Received bytes start at 0. Capacity 0 while the connection is idle.
    pub buf: Vec<u8>,
}

enum Stop {
    /// Close without a word: the client left, or idled out between requests.
    Quiet,
    /// Answer with this error's status, then close.
    Refuse(ProxyError),
}

/// Serves requests on one client connection until it closes.
pub async fn run(worker: &Worker, listener: usize, stream: TcpStream, peer: SocketAddr) {
    let mut client = Client {
        stream,
        peer,
        listener,
        buf: Vec::new(),
    };
    let mut first = true;
    loop {
        let view = worker.view();
        let mut out = worker.buffers.take();
        let request = next_request(worker, &view, &mut client, &mut out, first).await;
        first = false;
        let request = match request {
            Ok(request) => request,
            Err(Stop::Quiet) => {
                worker.buffers.give(out);
                break;
            }
            Err(Stop::Refuse(err)) => {
                worker.buffers.give(out);
                refuse(worker, &view, &mut client, &err).await;
                break;
            }
        };
        Stats::bump(&worker.stats.requests);
        match forward::forward(worker, &view, &mut client, request, out).await {
            Flow::KeepAlive if !worker.stopping.get() => {}
            Flow::KeepAlive | Flow::Close => break,
            Flow::Tunnel(backend) => {
                worker.buffers.give(std::mem::take(&mut client.buf));
                let idle = view.snapshot.config.timeouts.client_idle;
                super::tunnel::run(worker, client.stream, backend, idle).await;
                return;
            }
        }
    }
    worker.buffers.give(std::mem::take(&mut client.buf));
}

/// Waits for and reads the next request head. Between requests the
/// connection holds no buffer: it waits for readability first, and takes a
/// buffer from the pool only when bytes are there to read.
async fn next_request(
    worker: &Worker,
    view: &CoreView,
    client: &mut Client,
    out: &mut Vec<u8>,
    first: bool,
) -> Result<Request, Stop> {
    let timeouts = &view.snapshot.config.timeouts;
    let started = Instant::now();
    if client.buf.is_empty() {
        if client.buf.capacity() != 0 {
            worker.buffers.give(std::mem::take(&mut client.buf));
        }
        let idle = if first {
            timeouts.client_head
        } else {
            timeouts.client_idle
        };
        match monoio::time::timeout(idle, client.stream.readable(false)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(Stop::Quiet),
        }
        client.buf = worker.buffers.take();
    }
    // The head deadline runs from the first byte of a later request, and
    // from the connection's start for the first one.
    let deadline = if first { started } else { Instant::now() } + timeouts.client_head;
    loop {
        if !client.buf.is_empty() {
            match route::prepare(view, client.listener, client.peer, &client.buf, out) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) => {}
                Err(err) => return Err(Stop::Refuse(err)),
            }
            if client.buf.len() == client.buf.capacity() {
                return Err(Stop::Refuse(ProxyError::HeadTooLarge));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let buf = std::mem::take(&mut client.buf);
        let (result, buf) = io::read_more(&mut client.stream, buf, left).await;
        client.buf = buf.unwrap_or_default();
        match result {
            Ok(0) | Err(IoFailure::Failed(_)) => return Err(Stop::Quiet),
            Ok(_) => {}
            Err(IoFailure::TimedOut) => return Err(Stop::Refuse(ProxyError::ClientTimeout)),
        }
    }
}

/// Answers a request limpet will not forward, then the caller closes.
async fn refuse(worker: &Worker, view: &CoreView, client: &mut Client, err: &ProxyError) {
    let Some(status) = err.status() else {
        return;
    };
    log::debug!("refused a request from {}: {err}", client.peer);
    Stats::bump(&worker.stats.refused);
    worker.stats.response(status);
    let limit = view.snapshot.config.timeouts.client_body;
    let _ = io::write_all(&mut client.stream, http::error_response(status), limit).await;
}
