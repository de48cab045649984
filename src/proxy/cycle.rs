//! The proxy's synchronous work for one exchange, without sockets: parse
//! and route a request head (persistence lookup, balancer choice, forwarded
//! head), then parse a response head and write the client's (cookies
//! included). What a request costs in user space apart from I/O; the
//! `cycle` criterion bench measures it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::context::{RequestCtx, Times};
use super::decide::Conn;
use super::h1::{self, H1Heads};
use super::upstream::{self, Ends, Head, Reading};
use crate::config::Config;
use crate::control::{BuildError, Control};
use crate::error::ProxyError;
use crate::net::ListenerId;
use crate::worker::{CoreView, Worker};

/// A worker's context for running [`InMemory::cycle`] outside a runtime.
pub struct InMemory {
    worker: Worker,
    view: Rc<CoreView>,
    peer: SocketAddr,
    /// Where access log batches go, when the listener keeps a log.
    _log_batches: Option<std::sync::mpsc::Receiver<crate::access_log::ToWriter>>,
}

impl InMemory {
    /// A one-worker context for `config` (its first listener is used).
    pub fn new(config: Config) -> Result<Self, BuildError> {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
        let control = Control::new(Arc::new(config), vec![peer])?;
        let mut worker = Worker::new(0, control.snapshot(), 16 * 1024, 16);
        // The lines a listener's access log would get are written as on a
        // worker; the batches are dropped unread.
        let logs = config_logs(&worker);
        let mut batches = None;
        if logs {
            let (tx, rx) = std::sync::mpsc::channel();
            worker.access = crate::access_log::Buffers::new(Some(tx));
            batches = Some(rx);
        }
        let view = worker.view();
        Ok(InMemory {
            worker,
            view,
            peer,
            _log_batches: batches,
        })
    }

    /// Runs `request` and `response` heads through the proxy; the forwarded
    /// request head is left in `to_backend` and the client's response head in
    /// `to_client`. Returns the chosen server's index.
    pub fn cycle(
        &self,
        request: &[u8],
        response: &[u8],
        to_backend: &mut Vec<u8>,
        to_client: &mut Vec<u8>,
    ) -> Result<usize, ProxyError> {
        let conn = Conn {
            listener: 0,
            peer: self.peer,
            https: false,
            sni: None,
        };
        let Some((mut request, decision)) =
            h1::prepare(&self.worker, &self.view, &conn, request, to_backend)?
        else {
            return Err(ProxyError::HeadTooLarge);
        };
        let chosen = decision.pick(&self.view, &[]).ok_or(ProxyError::NoServer)?;
        let now = crate::worker::now();
        let mut ctx = RequestCtx::new(
            request.version.into(),
            ListenerId(0),
            self.peer,
            false,
            Times::new(now, now),
            decision,
        );
        ctx.log_request = request.log_request.take();
        ctx.request_id = Some(request.request_id);
        let mut heads = H1Heads {
            request: &request,
            sent_continue: false,
        };
        let reading = Reading {
            server: chosen,
            is_head: request.is_head,
            upgrade: request.upgrade,
            ends: Ends {
                request_complete: true,
                stopping: false,
            },
        };
        let head = upstream::read_head(&self.view, &ctx, &mut heads, response, reading, to_client)?;
        let Head::Final(head) = head else {
            return Err(ProxyError::ResponseHeadTooLarge);
        };
        ctx.server = Some(chosen);
        ctx.status = head.status;
        ctx.outcome = ctx.decision.session.outcome(chosen, head.cookie_sent);
        ctx.times.first_byte = Some(now);
        ctx.times.done = Some(now);
        ctx.bytes_out = to_client.len() as u64;
        self.worker.record(&self.view, &ctx);
        h1::write_log(&self.worker, &self.view, &mut ctx);
        Ok(chosen.get())
    }
}

/// Whether the first listener, the one [`InMemory::cycle`] serves, keeps
/// an access log.
fn config_logs(worker: &Worker) -> bool {
    worker
        .view()
        .snapshot
        .config
        .listeners
        .first()
        .is_some_and(|l| l.access_log.is_some())
}
