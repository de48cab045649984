//! `Health`: how a group's servers are checked (SPEC §6). Active HTTP
//! checks run when `path` is written; passive ejection of servers that
//! fail real traffic is on by default; `drain_timeout` bounds how long a
//! draining server keeps its sessions. Validation only.

use std::time::Duration;

use super::duration::{self, MIN_TIMEOUT};
use super::error::ConfigError;
use super::raw;
use super::source::{KeyPath, Source};

const INTERVAL: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(1);
const HEALTHY_THRESHOLD: u32 = 2;
const UNHEALTHY_THRESHOLD: u32 = 3;
const MAX_FAILS: u32 = 5;
const FAIL_WINDOW: Duration = Duration::from_secs(10);
const EJECT_TIME: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// `None`: no active checks (no `path`).
    pub active: Option<ActiveCheck>,
    pub passive: Passive,
    /// How long a draining server keeps its stuck sessions; `None`: until
    /// the operator changes its state.
    pub drain_timeout: Option<Duration>,
}

/// An HTTP GET to each server, by the control thread, once per `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveCheck {
    /// Starts with `/`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that bring a down server up.
    pub healthy_threshold: u32,
    /// Consecutive failures that take an up server down.
    pub unhealthy_threshold: u32,
    /// Status ranges that pass, e.g. `200-399` or `200,204`.
    pub expect: Vec<(u16, u16)>,
    /// `Host` header of the check; default: the server's address.
    pub host: Option<String>,
}

impl ActiveCheck {
    /// Does a response with `status` pass the check?
    pub fn passes(&self, status: u16) -> bool {
        self.expect
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }
}

/// Passive ejection: `max_fails` failures of real traffic (connect
/// failures, resets, timeouts) within `fail_window` eject the server on
/// every core for `eject_time`, after which it is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passive {
    /// 0 turns passive ejection off.
    pub max_fails: u32,
    pub fail_window: Duration,
    pub eject_time: Duration,
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            max_fails: MAX_FAILS,
            fail_window: FAIL_WINDOW,
            eject_time: EJECT_TIME,
        }
    }
}

/// `"200-399"`, `"200"`, `"200,204,300-399"` to inclusive ranges.
fn parse_expect(text: &str) -> Option<Vec<(u16, u16)>> {
    let status = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };
    text.split(',')
        .map(|part| match part.split_once('-') {
            Some((low, high)) => Some((status(low)?, status(high)?)).filter(|(l, h)| l <= h),
            None => status(part).map(|c| (c, c)),
        })
        .collect()
}

impl Health {
    pub(super) fn build(
        src: &Source<'_>,
        raw: Option<&raw::Health>,
        at: &KeyPath,
    ) -> Result<Self, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Health::default());
        };
        let time = |value: &raw::Value<String>, default, key: &str| {
            duration::optional(src, value.as_ref(), default, MIN_TIMEOUT, &at.key(key))
        };
        let threshold = |value: &raw::Value<i64>, default: u32, key: &str| {
            src.int(value.as_ref(), default, 1..=100, &at.key(key))
        };
        let active = match &raw.path {
            None => {
                let active_only = [
                    ("interval", raw.interval.as_ref().map(|v| v.span())),
                    ("timeout", raw.timeout.as_ref().map(|v| v.span())),
                    ("expect", raw.expect.as_ref().map(|v| v.span())),
                    ("host", raw.host.as_ref().map(|v| v.span())),
                    (
                        "healthy_threshold",
                        raw.healthy_threshold.as_ref().map(|v| v.span()),
                    ),
                    (
                        "unhealthy_threshold",
                        raw.unhealthy_threshold.as_ref().map(|v| v.span()),
                    ),
                ];
                if let Some((key, span)) =
                    active_only.into_iter().find_map(|(k, s)| s.map(|s| (k, s)))
                {
                    return Err(src.invalid(
                        Some(span),
                        at.key(key),
                        "applies only to active checks (set `path`)",
                    ));
                }
                None
            }
            Some(path) => {
                let text = path.get_ref();
                if !text.starts_with('/') || text.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
                    return Err(src.at(
                        path,
                        at.key("path"),
                        "must start with `/` and be visible ASCII",
                    ));
                }
                let expect = match &raw.expect {
                    None => vec![(200, 399)],
                    Some(expect) => parse_expect(expect.get_ref()).ok_or_else(|| {
                        src.at(
                            expect,
                            at.key("expect"),
                            "must be status codes or ranges like \"200-399\" or \"200,204\"",
                        )
                    })?,
                };
                let interval = time(&raw.interval, INTERVAL, "interval")?;
                let timeout = time(&raw.timeout, TIMEOUT, "timeout")?;
                if timeout > interval {
                    let written = raw.timeout.as_ref().map(|v| v.span());
                    return Err(src.invalid(
                        written,
                        at.key("timeout"),
                        "must not exceed the interval",
                    ));
                }
                Some(ActiveCheck {
                    path: text.clone(),
                    interval,
                    timeout,
                    healthy_threshold: threshold(
                        &raw.healthy_threshold,
                        HEALTHY_THRESHOLD,
                        "healthy_threshold",
                    )?,
                    unhealthy_threshold: threshold(
                        &raw.unhealthy_threshold,
                        UNHEALTHY_THRESHOLD,
                        "unhealthy_threshold",
                    )?,
                    expect,
                    host: raw.host.as_ref().map(|h| h.get_ref().clone()),
                })
            }
        };
        Ok(Health {
            active,
            passive: Passive {
                max_fails: src.int(
                    raw.max_fails.as_ref(),
                    MAX_FAILS,
                    0..=10_000,
                    &at.key("max_fails"),
                )?,
                fail_window: time(&raw.fail_window, FAIL_WINDOW, "fail_window")?,
                eject_time: time(&raw.eject_time, EJECT_TIME, "eject_time")?,
            },
            drain_timeout: raw
                .drain_timeout
                .as_ref()
                .map(|value| duration::required(src, value, MIN_TIMEOUT, &at.key("drain_timeout")))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_ranges() {
        assert_eq!(parse_expect("200-399"), Some(vec![(200, 399)]));
        assert_eq!(
            parse_expect("200, 204,300-302"),
            Some(vec![(200, 200), (204, 204), (300, 302)])
        );
        assert_eq!(parse_expect("399-200"), None);
        assert_eq!(parse_expect("2xx"), None);
        assert_eq!(parse_expect("600"), None);
    }
}
