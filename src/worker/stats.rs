//! Per-core counters: plain cells written by one thread only. The admin
//! listener gathers them from every worker when asked, so no atomic shared
//! between cores is written per request.

use std::cell::Cell;

/// Counters of one worker.
#[derive(Default, Debug)]
pub struct Stats {
    pub accepted: Cell<u64>,
    pub active_connections: Cell<u64>,
    pub requests: Cell<u64>,
    /// Requests forwarded to a backend and not yet answered.
    pub in_flight: Cell<u64>,
    /// Responses sent to clients, by class: index 0 for 1xx … 4 for 5xx.
    pub responses: [Cell<u64>; 5],
    /// Requests refused before reaching a backend (4xx from limpet).
    pub refused: Cell<u64>,
    pub backend_connect_errors: Cell<u64>,
    pub backend_timeouts: Cell<u64>,
    /// Requests sent again after a failure (SPEC §7).
    pub retries: Cell<u64>,
    /// Connections whose task panicked and was closed.
    pub panics: Cell<u64>,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(cell: &Cell<u64>) {
        cell.set(cell.get().wrapping_add(1));
    }

    /// Counts a response with `status` sent to a client.
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        Self::bump(&self.responses[class]);
    }
}
