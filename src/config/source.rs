//! `Source`: the text being validated and how to point into it. It turns
//! byte spans into line numbers and builds every `ConfigError`, so each rule
//! elsewhere states only its key and what is wrong. It never decides a rule
//! of its own beyond the generic checks below (integer ranges, names).

use std::fmt;
use std::ops::{Range, RangeInclusive};

use serde_path_to_error::Segment;
use toml::Spanned;

use super::error::ConfigError;

/// Map keys that `toml::Spanned` uses internally; serde_path_to_error records
/// them as path segments, the operator never wrote them.
const SPANNED_KEY_PREFIX: &str = "$__serde_spanned_private";

/// Longest listener, group or server name. Names show up in metrics labels,
/// admin URLs and logs, so they stay short and need no escaping.
pub(super) const MAX_NAME_BYTES: usize = 64;

pub(super) struct Source<'a> {
    origin: &'a str,
    text: &'a str,
    /// The directory relative file paths are resolved against (the
    /// configuration file's own); empty: the working directory.
    base: &'a std::path::Path,
}

impl<'a> Source<'a> {
    pub(super) fn new(origin: &'a str, text: &'a str, base: &'a std::path::Path) -> Self {
        Self { origin, text, base }
    }

    /// A file path written in the configuration, relative ones resolved
    /// against the configuration file's directory.
    pub(super) fn file(&self, value: &Spanned<String>) -> std::path::PathBuf {
        self.base.join(value.get_ref())
    }

    /// 1-based line of a byte offset. Counting bytes (not chars) cannot
    /// panic whatever offset the parser reports.
    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        let before = self.text.as_bytes().iter().take(span.start);
        before.filter(|&&b| b == b'\n').count() + 1
    }

    /// A rule broken by the value at `span`.
    pub(super) fn invalid(
        &self,
        span: Option<Range<usize>>,
        path: impl fmt::Display,
        problem: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line: span.map(|span| self.line(&span)),
            path: path.to_string(),
            problem: problem.to_string(),
        }
    }

    /// Same as `invalid`, pointing at a spanned value.
    pub(super) fn at<T>(
        &self,
        value: &Spanned<T>,
        path: impl fmt::Display,
        problem: impl fmt::Display,
    ) -> ConfigError {
        self.invalid(Some(value.span()), path, problem)
    }

    /// Turns a deserializer error into a message with the key path as the
    /// operator wrote it and the line the parser's span points at.
    pub(super) fn toml_error(
        &self,
        err: serde_path_to_error::Error<toml::de::Error>,
    ) -> ConfigError {
        let path = render_path(err.path());
        let err = err.into_inner();
        let line = err.span().map(|span| self.line(&span));
        // Syntax messages come on several lines ("invalid table header\nexpected ...").
        let message = in_words(&err.message().trim().replace('\n', ": "));
        let origin = self.origin.to_owned();
        if path.is_empty() {
            ConfigError::Syntax {
                origin,
                line,
                message,
            }
        } else {
            ConfigError::Shape {
                origin,
                line,
                path,
                message,
            }
        }
    }

    /// An optional integer key: its default when absent, else its value if
    /// it lies in `range` and fits `T`.
    pub(super) fn int<T: TryFrom<i64>>(
        &self,
        value: Option<&Spanned<i64>>,
        default: T,
        range: RangeInclusive<i64>,
        path: &KeyPath,
    ) -> Result<T, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let number = *value.get_ref();
        if number < *range.start() {
            return Err(self.at(
                value,
                path,
                format_args!("must be at least {}", range.start()),
            ));
        }
        if number > *range.end() {
            return Err(self.at(value, path, format_args!("must be at most {}", range.end())));
        }
        T::try_from(number).map_err(|_| self.at(value, path, "is out of range"))
    }

    /// A listener, group or server name: 1 to 64 bytes of `A-Z a-z 0-9 _ . -`.
    pub(super) fn name(
        &self,
        name: &str,
        span: Option<Range<usize>>,
        path: &KeyPath,
    ) -> Result<String, ConfigError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.bytes().all(allowed) {
            return Err(self.invalid(
                span,
                path,
                format_args!(
                    "{name:?} is not a valid name (1 to {MAX_NAME_BYTES} of A-Z a-z 0-9 _ . -)"
                ),
            ));
        }
        Ok(name.to_owned())
    }

    /// A byte string that must not be trivially guessable (signing keys,
    /// token secrets, the admin token).
    pub(super) fn secret(
        &self,
        value: &Spanned<String>,
        path: &KeyPath,
    ) -> Result<String, ConfigError> {
        if value.get_ref().len() < MIN_SECRET_BYTES {
            return Err(self.at(
                value,
                path,
                format_args!("must be at least {MIN_SECRET_BYTES} bytes long"),
            ));
        }
        Ok(value.get_ref().clone())
    }
}

/// Shortest accepted secret: 128 bits if the operator used random bytes.
pub(super) const MIN_SECRET_BYTES: usize = 16;

/// A key path as the operator reads it: `groups.web.servers[1].weight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeyPath(String);

impl KeyPath {
    pub(super) fn root(key: &str) -> Self {
        Self(key.to_owned())
    }

    pub(super) fn key(&self, key: &str) -> Self {
        Self(format!("{}.{key}", self.0))
    }

    pub(super) fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Renders a serde_path_to_error path like `KeyPath` does, leaving out the
/// segments that `Spanned` adds. An empty string means "no key" (syntax).
fn render_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } if key.starts_with(SPANNED_KEY_PREFIX) => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// serde names Rust types where the operator wrote TOML: `expected i64`
/// becomes `expected an integer`.
fn in_words(message: &str) -> String {
    message
        .replace("expected i64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
}
