//! What a worker tells the control thread about itself when asked: plain
//! numbers, gathered off the request path (`WorkerMsg::Report`), which the
//! admin listener and `Running::reports` read.

/// One server's counters on one worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerReport {
    pub responses: u64,
    pub sticky_hits: u64,
    /// Requests in flight, not counting open tunnels.
    pub in_flight: u32,
    /// Upgraded connections (WebSocket) open through the server.
    pub tunnels: u32,
    /// Relayed responses by class: index 0 for 1xx … 4 for 5xx.
    pub classes: [u64; 5],
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Request duration, connect time, time to the response head.
    pub duration: HistogramReport,
    pub connect: HistogramReport,
    pub first_byte: HistogramReport,
}

impl ServerReport {
    /// Server `server` of group `group` summed over `reports` (the caller
    /// passes the workers that run the configuration those indices are of).
    pub fn total(reports: &[WorkerReport], group: usize, server: usize) -> ServerReport {
        let mut total = ServerReport::default();
        for one in reports
            .iter()
            .filter_map(|r| r.servers.get(group).and_then(|g| g.get(server)))
        {
            total.add(one);
        }
        total
    }

    /// Adds another worker's numbers for the same server.
    pub fn add(&mut self, other: &ServerReport) {
        self.responses = self.responses.wrapping_add(other.responses);
        self.sticky_hits = self.sticky_hits.wrapping_add(other.sticky_hits);
        self.in_flight = self.in_flight.saturating_add(other.in_flight);
        self.tunnels = self.tunnels.saturating_add(other.tunnels);
        for (a, b) in self.classes.iter_mut().zip(other.classes) {
            *a = a.wrapping_add(b);
        }
        self.bytes_in = self.bytes_in.wrapping_add(other.bytes_in);
        self.bytes_out = self.bytes_out.wrapping_add(other.bytes_out);
        self.duration.add(&other.duration);
        self.connect.add(&other.connect);
        self.first_byte.add(&other.first_byte);
    }
}

/// One worker's counters at the moment it was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub id: usize,
    /// The worker has begun to stop (it answers no new connections).
    pub stopping: bool,
    pub snapshot_generation: u64,
    /// Identifies the configuration `servers` is indexed by (its address
    /// while the worker holds it).
    pub config: usize,
    pub accepted: u64,
    pub active_connections: u64,
    pub requests: u64,
    pub in_flight: u64,
    /// Responses by class: index 0 for 1xx … 4 for 5xx.
    pub responses: [u64; 5],
    pub refused: u64,
    pub backend_connect_errors: u64,
    pub backend_timeouts: u64,
    /// Retries by reason: pooled connection stale, backend died before
    /// answering, connect failed (`worker::RetryReason` order).
    pub retries: [u64; 3],
    /// Connections limpet closed itself, by reason: idle, first head, per
    /// client, slow head, slow body (`worker::Shed` order).
    pub shed: [u64; 5],
    pub panics: u64,
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    pub tls_handshake_failures: u64,
    /// Response bodies relayed with `splice(2)`, and their bytes so moved.
    pub spliced_bodies: u64,
    pub spliced_bytes: u64,
    pub sticky_hits: u64,
    pub sticky_new: u64,
    pub sticky_moved: u64,
    /// Strict sessions answered 503 (`on_server_down = "refuse"`).
    pub sticky_unavailable: u64,
    /// Refused persistence tokens by reason: garbled, unknown (another
    /// group or a removed server), bad signature, expired, idle.
    pub sticky_refused: [u64; 5],
    pub idle_upstreams: usize,
    pub free_buffers: usize,
    /// Responses by listener ([`crate::net::ListenerId`] order) and class.
    pub listeners: Vec<[u64; 5]>,
    /// Per group, per server of the snapshot this worker routes with.
    pub servers: Vec<Vec<ServerReport>>,
}

/// The upper bounds of the latency histograms' buckets, in microseconds
/// (0.5 ms to 30 s); one more bucket counts what is slower.
pub const BUCKET_BOUNDS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];
/// Buckets per histogram: one per bound, and the last for anything slower.
pub const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// A histogram's numbers at the moment of asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramReport {
    /// Samples per bucket of [`BUCKET_BOUNDS_US`], the last one unbounded.
    pub buckets: [u64; BUCKETS],
    pub sum_us: u64,
}

impl HistogramReport {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds another core's numbers.
    pub fn add(&mut self, other: &HistogramReport) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a = a.wrapping_add(b);
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
    }

    /// The bound below which a fraction `q` of the samples fall (the upper
    /// bound of that sample's bucket), in microseconds; `None` without
    /// samples or past the last bound.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // The rank of the sample asked for, 1-based, at least 1.
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return BUCKET_BOUNDS_US.get(i).copied();
            }
        }
        None
    }
}
