//! What a worker tells the control thread about itself when asked: plain
//! numbers, gathered off the request path (`WorkerMsg::Report`), which the
//! admin listener and `Running::reports` read.

/// One worker's counters at the moment it was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub id: usize,
    pub snapshot_generation: u64,
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
    /// Per group, per server of the snapshot this worker routes with:
    /// (responses, sticky hits, requests in flight).
    pub servers: Vec<Vec<(u64, u64, u32)>>,
}
