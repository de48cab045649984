//! Per-core counters: plain cells written by one thread only. The admin
//! listener gathers them from every worker when asked, so no atomic shared
//! between cores is written per request.

use std::cell::Cell;

use crate::sticky::Refusal;

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
    /// Requests sent again after a failure (SPEC §7), by [`RetryReason`].
    pub retries: [Cell<u64>; 3],
    /// Connections closed to admit others or for being too slow, by
    /// [`Shed`].
    pub shed: [Cell<u64>; 5],
    /// Connections whose task panicked and was closed.
    pub panics: Cell<u64>,
    /// TLS handshakes completed on HTTPS listeners, of which `tls_resumed`
    /// resumed a session.
    pub tls_handshakes: Cell<u64>,
    pub tls_resumed: Cell<u64>,
    /// TLS handshakes that failed or timed out (plain HTTP on an HTTPS
    /// port, garbage, no shared protocol): counted, logged at debug only.
    pub tls_handshake_failures: Cell<u64>,
    /// Requests that went to the server their session names.
    pub sticky_hits: Cell<u64>,
    /// Sessions started: the response set a new persistence cookie.
    pub sticky_new: Cell<u64>,
    /// Sessions moved to another server (failover, drain, disable).
    pub sticky_moved: Cell<u64>,
    /// Strict sessions answered 503: their server was unavailable and
    /// `on_server_down = "refuse"` forbids a move.
    pub sticky_unavailable: Cell<u64>,
    /// Persistence cookies treated as absent, by [`Refusal`] (see
    /// [`Stats::refusal_index`]).
    pub sticky_refused: [Cell<u64>; 5],
}

/// Why a request was sent again (SPEC §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// A pooled connection the backend had closed: once more on a fresh one.
    PooledStale,
    /// A connection died before any response byte: another server.
    BackendDied,
    /// Connecting failed (nothing was sent): another server.
    ConnectFailed,
}

impl RetryReason {
    pub const ALL: [RetryReason; 3] = [
        RetryReason::PooledStale,
        RetryReason::BackendDied,
        RetryReason::ConnectFailed,
    ];

    /// The `reason` label of `limpet_retries_total`.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::PooledStale => "pooled_stale",
            RetryReason::BackendDied => "backend_died",
            RetryReason::ConnectFailed => "connect_failed",
        }
    }
}

/// Why limpet closed a client connection on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// An idle keep-alive connection, closed to admit a new one at the cap.
    Idle,
    /// A connection still sending its first head, closed to admit a new one.
    FirstHead,
    /// One more connection from an address already at its limit.
    PerClient,
    /// A request head slower than `min_head_rate`.
    SlowHead,
    /// A request body slower than `min_body_rate`.
    SlowBody,
}

impl Shed {
    pub const ALL: [Shed; 5] = [
        Shed::Idle,
        Shed::FirstHead,
        Shed::PerClient,
        Shed::SlowHead,
        Shed::SlowBody,
    ];

    /// The `reason` label of `limpet_shed_connections_total`.
    pub fn label(self) -> &'static str {
        match self {
            Shed::Idle => "idle",
            Shed::FirstHead => "first_head",
            Shed::PerClient => "per_client",
            Shed::SlowHead => "slow_head",
            Shed::SlowBody => "slow_body",
        }
    }
}

impl Stats {
    /// Counts a retry.
    pub fn retry(&self, reason: RetryReason) {
        Self::bump(&self.retries[reason as usize]);
    }

    /// Counts a connection limpet closed on its own.
    pub fn shed(&self, reason: Shed) {
        Self::bump(&self.shed[reason as usize]);
    }

    /// The slot of `sticky_refused` counting `reason`.
    pub fn refusal_index(reason: Refusal) -> usize {
        match reason {
            Refusal::Garbled => 0,
            Refusal::Unknown => 1,
            Refusal::BadSignature => 2,
            Refusal::Expired => 3,
            Refusal::Idle => 4,
        }
    }

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
