//! Durations written as humantime strings ("10s", "1m30s", "500ms"), checked
//! against a lower bound per key and one upper bound for all. It never
//! accepts a bare number: "30" could mean seconds or milliseconds.

use std::time::Duration;

use toml::Spanned;

use super::error::ConfigError;
use super::source::{KeyPath, Source};

/// Longest duration anywhere in the file (humantime's year, 365.25 days).
/// Cookie lifetimes are the longest thing configured; anything beyond this
/// is a typo, and it keeps `Instant + duration` far from overflowing.
pub(super) const MAX: Duration = Duration::from_secs(31_557_600);

/// Lower bound for timeouts where zero would mean "fail at once".
pub(super) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Lower bound for anything that ends up in whole seconds (cookie
/// `Max-Age`, token ages): less than a second would round to zero.
pub(super) const MIN_SECONDS: Duration = Duration::from_secs(1);

/// An optional duration key: `default` when absent, else the parsed value
/// if it lies in `min..=MAX`.
pub(super) fn optional(
    src: &Source<'_>,
    value: Option<&Spanned<String>>,
    default: Duration,
    min: Duration,
    path: &KeyPath,
) -> Result<Duration, ConfigError> {
    match value {
        Some(value) => required(src, value, min, path),
        None => Ok(default),
    }
}

/// A written duration, parsed and checked to lie in `min..=MAX`.
pub(super) fn required(
    src: &Source<'_>,
    value: &Spanned<String>,
    min: Duration,
    path: &KeyPath,
) -> Result<Duration, ConfigError> {
    parse(value.get_ref(), min).map_err(|why| src.at(value, path, format_args!("{why}")))
}

/// `text` as a duration in `min..=MAX`, or why not, in the words of
/// `limpet check`.
pub(super) fn parse(text: &str, min: Duration) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|err| {
        format!("{text:?} is not a duration such as \"10s\", \"1m30s\" or \"500ms\" ({err})")
    })?;
    if duration < min {
        let min = humantime::format_duration(min);
        return Err(format!("must be at least {min}"));
    }
    if duration > MAX {
        let max = humantime::format_duration(MAX);
        return Err(format!("must be at most {max}"));
    }
    Ok(duration)
}
