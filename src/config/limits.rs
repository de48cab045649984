//! `Limits`: the sizes and counts a client may not exceed. Validation only;
//! enforcing them is the HTTP layer's job.

use toml::Spanned;

use super::error::ConfigError;
use super::raw;
use super::source::{KeyPath, Source};
use super::workers::Workers;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (beyond: 414). At most `max_head_bytes`.
    pub max_request_line_bytes: usize,
    /// Largest request head (beyond: 431). At most `workers.buffer_bytes`,
    /// because a head is parsed from one buffer.
    pub max_head_bytes: usize,
    /// Most header fields in one head (beyond: 431).
    pub max_headers: usize,
    /// Most open client connections per worker. At the limit, an idle
    /// keep-alive connection (oldest first), else one still sending its
    /// first head, is closed to admit the new one.
    pub max_connections: usize,
    /// Most open connections from one client address per worker; 0: no limit.
    pub max_connections_per_client: u32,
    /// Bytes per second a request head must average after its first
    /// second; 0: no minimum.
    pub min_head_rate: u32,
    /// Bytes per second a request body must average after its first
    /// second; 0: no minimum.
    pub min_body_rate: u32,
    /// Retries a core may make in a 10 s window, in thousandths of the
    /// requests it saw in that window (`retry_budget = 0.2` is 200), on top
    /// of a floor of 10 per second.
    pub retry_budget_permille: u32,
    /// HTTP/2: most streams a client may have open at once
    /// (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub h2_max_streams: u32,
    /// HTTP/2: each stream's receive window, in bytes.
    pub h2_stream_window: u32,
    /// HTTP/2: the connection's receive window, in bytes.
    pub h2_connection_window: u32,
    /// HTTP/2: the largest frame payload limpet accepts (SETTINGS_MAX_FRAME_SIZE).
    pub h2_max_frame: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line_bytes: raw::MAX_REQUEST_LINE_BYTES,
            max_head_bytes: raw::MAX_HEAD_BYTES,
            max_headers: raw::MAX_HEADERS,
            max_connections: raw::MAX_CONNECTIONS,
            max_connections_per_client: raw::MAX_CONNECTIONS_PER_CLIENT,
            min_head_rate: raw::MIN_HEAD_RATE,
            min_body_rate: raw::MIN_BODY_RATE,
            retry_budget_permille: raw::RETRY_BUDGET_PERMILLE,
            h2_max_streams: raw::H2_MAX_STREAMS,
            h2_stream_window: raw::H2_STREAM_WINDOW,
            h2_connection_window: raw::H2_CONNECTION_WINDOW,
            h2_max_frame: raw::H2_MAX_FRAME,
        }
    }
}

impl Limits {
    pub(super) fn build(
        src: &Source<'_>,
        raw: &raw::Limits,
        workers: &Workers,
        raw_workers: &raw::Workers,
    ) -> Result<Self, ConfigError> {
        let at = KeyPath::root("limits");
        let limits = Self {
            max_request_line_bytes: src.int(
                raw.max_request_line_bytes.as_ref(),
                raw::MAX_REQUEST_LINE_BYTES,
                64..=1024 * 1024,
                &at.key("max_request_line_bytes"),
            )?,
            max_head_bytes: src.int(
                raw.max_head_bytes.as_ref(),
                raw::MAX_HEAD_BYTES,
                1024..=1024 * 1024,
                &at.key("max_head_bytes"),
            )?,
            max_headers: src.int(
                raw.max_headers.as_ref(),
                raw::MAX_HEADERS,
                1..=256,
                &at.key("max_headers"),
            )?,
            max_connections: src.int(
                raw.max_connections.as_ref(),
                raw::MAX_CONNECTIONS,
                1..=1_000_000,
                &at.key("max_connections"),
            )?,
            max_connections_per_client: src.int(
                raw.max_connections_per_client.as_ref(),
                raw::MAX_CONNECTIONS_PER_CLIENT,
                0..=1_000_000,
                &at.key("max_connections_per_client"),
            )?,
            min_head_rate: src.int(
                raw.min_head_rate.as_ref(),
                raw::MIN_HEAD_RATE,
                0..=1 << 30,
                &at.key("min_head_rate"),
            )?,
            min_body_rate: src.int(
                raw.min_body_rate.as_ref(),
                raw::MIN_BODY_RATE,
                0..=1 << 30,
                &at.key("min_body_rate"),
            )?,
            retry_budget_permille: match &raw.retry_budget {
                None => raw::RETRY_BUDGET_PERMILLE,
                Some(share)
                    if share.get_ref().is_finite() && (0.0..=1.0).contains(share.get_ref()) =>
                {
                    (share.get_ref() * 1000.0).round() as u32
                }
                Some(share) => {
                    return Err(src.at(
                        share,
                        at.key("retry_budget"),
                        "must be a share of the requests between 0.0 and 1.0, such as 0.2",
                    ))
                }
            },
            h2_max_streams: src.int(
                raw.h2_max_streams.as_ref(),
                raw::H2_MAX_STREAMS,
                1..=10_000,
                &at.key("h2_max_streams"),
            )?,
            // RFC 9113 §6.5.2 and §6.9.1: windows up to 2^31-1.
            h2_stream_window: src.int(
                raw.h2_stream_window.as_ref(),
                raw::H2_STREAM_WINDOW,
                1024..=(1 << 31) - 1,
                &at.key("h2_stream_window"),
            )?,
            h2_connection_window: src.int(
                raw.h2_connection_window.as_ref(),
                raw::H2_CONNECTION_WINDOW,
                65_535..=(1 << 31) - 1,
                &at.key("h2_connection_window"),
            )?,
            // RFC 9113 §6.5.2: 2^14 to 2^24-1.
            h2_max_frame: src.int(
                raw.h2_max_frame.as_ref(),
                raw::H2_MAX_FRAME,
                16_384..=16_777_215,
                &at.key("h2_max_frame"),
            )?,
        };
        at_most(
            src,
            Bound {
                path: at.key("max_request_line_bytes"),
                value: limits.max_request_line_bytes,
                written: raw.max_request_line_bytes.as_ref(),
            },
            Bound {
                path: at.key("max_head_bytes"),
                value: limits.max_head_bytes,
                written: raw.max_head_bytes.as_ref(),
            },
        )?;
        at_most(
            src,
            Bound {
                path: at.key("max_head_bytes"),
                value: limits.max_head_bytes,
                written: raw.max_head_bytes.as_ref(),
            },
            Bound {
                path: KeyPath::root("workers").key("buffer_bytes"),
                value: workers.buffer_bytes,
                written: raw_workers.buffer_bytes.as_ref(),
            },
        )?;
        Ok(limits)
    }
}

/// One side of a `small <= big` rule between two keys.
struct Bound<'a> {
    path: KeyPath,
    value: usize,
    written: Option<&'a Spanned<i64>>,
}

/// Checks `small <= big`, blaming the key the operator wrote (the small one
/// when both were written; defaults always satisfy the rule).
fn at_most(src: &Source<'_>, small: Bound<'_>, big: Bound<'_>) -> Result<(), ConfigError> {
    if small.value <= big.value {
        return Ok(());
    }
    match (small.written, big.written) {
        (None, Some(written)) => Err(src.at(
            written,
            &big.path,
            format_args!("must be at least {} ({})", small.path, small.value),
        )),
        (written, _) => Err(src.invalid(
            written.map(Spanned::span),
            &small.path,
            format_args!("must be at most {} ({})", big.path, big.value),
        )),
    }
}
