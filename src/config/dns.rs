//! `Dns`: how often server addresses written as host names are resolved
//! again. Validation only; `crate::dns` resolves, the control thread times.

use std::time::Duration;

use super::duration;
use super::error::ConfigError;
use super::raw;
use super::source::{KeyPath, Source};

/// Shortest re-resolution interval: the control thread's tick.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    /// How often every server name is resolved again (not before the
    /// previous round has finished).
    pub interval: Duration,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            interval: raw::DNS_INTERVAL,
        }
    }
}

impl Dns {
    pub(super) fn build(src: &Source<'_>, raw: &raw::Dns) -> Result<Self, ConfigError> {
        Ok(Self {
            interval: duration::optional(
                src,
                raw.interval.as_ref(),
                raw::DNS_INTERVAL,
                MIN_INTERVAL,
                &KeyPath::root("dns").key("interval"),
            )?,
        })
    }
}
