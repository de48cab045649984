//! The per-core pool of idle keep-alive connections to backends, indexed by
//! [`BackendId`] (no hashing per request). Newest first: a connection used
//! recently is the least likely to have been closed by the backend.

use std::cell::RefCell;
use std::time::Duration;

use crate::worker::Tick;

use crate::net::Upstream;

use crate::control::BackendId;

struct Idle {
    stream: Upstream,
    since: Tick,
}

/// Idle backend connections of one worker.
#[derive(Default)]
pub struct UpstreamPool {
    /// Per backend, oldest first.
    idle: RefCell<Vec<Vec<Idle>>>,
}

impl UpstreamPool {
    /// A pool for `backends` backend addresses.
    pub fn new(backends: usize) -> Self {
        let pool = UpstreamPool::default();
        pool.resize(backends);
        pool
    }

    /// Makes room for backends added by a reload (ids only ever grow).
    pub fn resize(&self, backends: usize) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < backends {
            idle.resize_with(backends, Vec::new);
        }
    }

    /// The most recently used idle connection to `backend`, unless it has
    /// been idle for `max_idle` or longer (then the list is stale and cleared).
    pub fn take(&self, backend: BackendId, max_idle: Duration) -> Option<Upstream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(backend.get())?;
        let newest = list.pop()?;
        if crate::worker::now().saturating_duration_since(newest.since) < max_idle {
            Some(newest.stream)
        } else {
            list.clear();
            None
        }
    }

    /// Keeps `stream` for reuse, unless `backend` already has `max` idle.
    pub fn put(&self, backend: BackendId, stream: Upstream, max: usize) {
        let mut idle = self.idle.borrow_mut();
        if let Some(list) = idle.get_mut(backend.get()) {
            if list.len() < max {
                list.push(Idle {
                    stream,
                    since: crate::worker::now(),
                });
            }
        }
    }

    /// Closes connections idle for `max_idle` or longer; returns how many.
    pub fn sweep(&self, max_idle: Duration) -> usize {
        let mut closed = 0;
        let now = crate::worker::now();
        for list in self.idle.borrow_mut().iter_mut() {
            let stale = list
                .iter()
                .position(|c| now.saturating_duration_since(c.since) < max_idle)
                .unwrap_or(list.len());
            closed += stale;
            list.drain(..stale);
        }
        closed
    }

    /// How many idle connections the pool holds.
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().map(Vec::len).sum()
    }
}
