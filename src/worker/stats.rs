//! Per-core counters: plain cells written by one thread only. The admin
//! listener gathers them from every worker when asked, so no atomic shared
//! between cores is written per request.

use std::cell::{Cell, RefCell};

use crate::net::ListenerId;

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
    /// Response bodies relayed with `splice(2)` (`workers.splice_min_bytes`),
    /// and the bytes they moved that way.
    pub spliced_bodies: Cell<u64>,
    pub spliced_bytes: Cell<u64>,
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
    /// Responses sent to clients by listener ([`ListenerId`] order) and
    /// class; grown when a snapshot adds a listener, never on a request.
    pub listeners: RefCell<Vec<[u64; 5]>>,
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

    /// The class slot of `status`: 0 for 1xx … 4 for 5xx.
    pub fn class(status: u16) -> usize {
        usize::from(status / 100).clamp(1, 5) - 1
    }

    /// Counts a response with `status` sent to a client.
    pub fn response(&self, status: u16) {
        Self::bump(&self.responses[Self::class(status)]);
    }

    /// Counts a finished request's response on its listener (none when it
    /// ended without an answer).
    pub fn listener_response(&self, listener: ListenerId, status: u16) {
        if status == 0 {
            return;
        }
        if let Some(slots) = self.listeners.borrow_mut().get_mut(listener.0 as usize) {
            let slot = &mut slots[Self::class(status)];
            *slot = slot.wrapping_add(1);
        }
    }

    /// Makes room for the counters of `count` listener ids.
    pub fn track_listeners(&self, count: usize) {
        let mut listeners = self.listeners.borrow_mut();
        if listeners.len() < count {
            listeners.resize(count, [0; 5]);
        }
    }
}

pub use crate::control::{HistogramReport, BUCKETS, BUCKET_BOUNDS_US};

/// By bit length `b` of a sample in microseconds: the first bucket whose
/// bound is at least the smallest such number, `2^(b-1)`.
const FIRST_BUCKET: [u8; 65] = first_buckets();

const fn first_buckets() -> [u8; 65] {
    let mut table = [0u8; 65];
    let mut b = 1;
    while b < 65 {
        let smallest = 1u64 << (b - 1);
        let mut i = 0;
        while i < BUCKET_BOUNDS_US.len() && smallest > BUCKET_BOUNDS_US[i] {
            i += 1;
        }
        table[b] = i as u8;
        b += 1;
    }
    table
}

/// A latency histogram of one core: a fixed array of plain cells, found by
/// a short compare loop (most requests stop at the first bounds), so a
/// sample costs a few instructions and never allocates.
#[derive(Default, Debug)]
pub struct Histogram {
    /// Samples per bucket, not cumulative (the encoders add them up).
    buckets: [Cell<u64>; BUCKETS],
    sum_us: Cell<u64>,
}

impl Histogram {
    /// Counts one sample of `elapsed`.
    pub fn observe(&self, elapsed: std::time::Duration) {
        // No u128: seconds past u64::MAX / 10^6 saturate.
        let us = elapsed
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(elapsed.subsec_micros()));
        self.observe_us(us);
    }

    /// Counts one sample of `us` microseconds.
    #[inline]
    pub fn observe_us(&self, us: u64) {
        // The first bucket that may hold a number of this bit length, then
        // at most two steps: every bound is 2 to 3 times the one before.
        let mut i = usize::from(FIRST_BUCKET[(u64::BITS - us.leading_zeros()) as usize]);
        while i < BUCKET_BOUNDS_US.len() && us > BUCKET_BOUNDS_US[i] {
            i += 1;
        }
        Stats::bump(&self.buckets[i]);
        self.sum_us.set(self.sum_us.get().wrapping_add(us));
    }

    pub fn report(&self) -> HistogramReport {
        HistogramReport {
            buckets: std::array::from_fn(|i| self.buckets[i].get()),
            sum_us: self.sum_us.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn samples_land_in_the_bucket_of_their_upper_bound() {
        let h = Histogram::default();
        for us in [
            0,
            500,
            501,
            1_000,
            29_999_999,
            30_000_000,
            30_000_001,
            u64::MAX / 2,
        ] {
            h.observe(Duration::from_micros(us));
        }
        let r = h.report();
        assert_eq!(r.buckets[0], 2, "0 and 500 µs are at most 0.5 ms");
        assert_eq!(r.buckets[1], 2, "501 µs and 1 ms");
        assert_eq!(r.buckets[14], 2, "up to 30 s");
        assert_eq!(r.buckets[15], 2, "slower than 30 s");
        assert_eq!(r.count(), 8);
    }

    #[test]
    fn the_table_finds_the_same_bucket_as_a_linear_search() {
        let linear = |us: u64| BUCKET_BOUNDS_US.iter().take_while(|b| us > **b).count();
        let mut samples: Vec<u64> = (0..64)
            .flat_map(|b| [(1u64 << b) - 1, 1u64 << b, (1u64 << b) + 1])
            .collect();
        samples.extend(BUCKET_BOUNDS_US.iter().flat_map(|b| [b - 1, *b, b + 1]));
        samples.push(u64::MAX);
        for us in samples {
            let h = Histogram::default();
            h.observe(Duration::from_micros(us));
            let r = h.report();
            assert_eq!(r.buckets[linear(us)], 1, "{us} µs");
        }
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.observe(Duration::from_micros(300));
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(40));
        }
        let r = h.report();
        assert_eq!(r.quantile_us(0.5), Some(500));
        assert_eq!(r.quantile_us(0.9), Some(500));
        assert_eq!(r.quantile_us(0.99), Some(50_000));
        assert_eq!(HistogramReport::default().quantile_us(0.5), None);
    }
}
