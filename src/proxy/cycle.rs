//! The proxy's synchronous work for one exchange, without sockets: parse
//! and route a request head (persistence lookup, balancer choice, forwarded
//! head), then parse a response head and write the client's (cookies
//! included). What a request costs in user space apart from I/O; the
//! `cycle` criterion bench measures it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::forward::{self, Parsed};
use super::route;
use crate::config::Config;
use crate::control::{BuildError, Control};
use crate::error::ProxyError;
use crate::worker::{CoreView, Worker};

/// A worker's context for running [`InMemory::cycle`] outside a runtime.
pub struct InMemory {
    worker: Worker,
    view: Rc<CoreView>,
    peer: SocketAddr,
}

impl InMemory {
    /// A one-worker context for `config` (its first listener is used).
    pub fn new(config: Config) -> Result<Self, BuildError> {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
        let control = Control::new(Arc::new(config), vec![peer])?;
        let worker = Worker::new(0, control.snapshot(), 16 * 1024, 16);
        let view = worker.view();
        Ok(InMemory { worker, view, peer })
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
        let Some(request) = route::prepare(
            &self.worker,
            &self.view,
            &route::Conn {
                listener: 0,
                peer: self.peer,
                https: false,
                sni: None,
            },
            request,
            to_backend,
        )?
        else {
            return Err(ProxyError::HeadTooLarge);
        };
        let chosen = forward::choose(&self.view, &request, &[]).ok_or(ProxyError::NoServer)?;
        match forward::parse_head(
            &self.view, &request, chosen, true, false, response, to_client,
        )? {
            Parsed::Final(_) => Ok(chosen.get()),
            _ => Err(ProxyError::ResponseHeadTooLarge),
        }
    }
}
