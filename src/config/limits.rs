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
    /// Most open client connections per worker.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line_bytes: raw::MAX_REQUEST_LINE_BYTES,
            max_head_bytes: raw::MAX_HEAD_BYTES,
            max_headers: raw::MAX_HEADERS,
            max_connections: raw::MAX_CONNECTIONS,
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
