//! The request `Cookie` header: finding one cookie's value (`CookieFinder`,
//! built once per core, a SIMD substring search) and writing the header back
//! without the persistence cookies (`strip_into`). This file reads bytes the
//! client sent: it must never panic, allocate per call (beyond growing the
//! caller's output buffer), or change a byte of a cookie it does not own.
//!
//! Parsing follows what browsers send (RFC 6265 §4.2): pairs separated by
//! `;` and optional spaces or tabs, names matched exactly and
//! case-sensitively. When a name occurs more than once, the first occurrence
//! wins: browsers put the cookie with the longest matching `Path` first
//! (RFC 6265 §5.4), which is the most specific one.

use std::ops::Range;

use memchr::memmem::Finder;

/// Errors in cookie configuration values (config time only).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CookieError {
    #[error("cookie name {0:?} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)")]
    BadName(String),
    #[error("cookie attribute {attr} = {value:?} must be non-empty text without ';' or control characters")]
    BadAttribute { attr: &'static str, value: String },
}

/// Whether `name` is a valid cookie name: a non-empty RFC 9110 token.
pub fn is_cookie_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Where one `NAME=value` pair sits in a header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairSpan {
    /// The value without surrounding OWS and DQUOTEs.
    pub value: Range<usize>,
    pub quoted: bool,
    /// Index of the `;` ending the pair, or the header length.
    pub end: usize,
}

/// Finds one cookie by name in `Cookie` header values. Build it once per
/// core (it owns its needle `NAME=`) and use it for every request.
#[derive(Clone, Debug)]
pub struct CookieFinder {
    finder: Finder<'static>,
}

impl CookieFinder {
    pub fn new(name: &str) -> Result<CookieFinder, CookieError> {
        if !is_cookie_name(name.as_bytes()) {
            return Err(CookieError::BadName(name.to_owned()));
        }
        let mut needle = Vec::with_capacity(name.len() + 1);
        needle.extend_from_slice(name.as_bytes());
        needle.push(b'=');
        Ok(CookieFinder {
            finder: Finder::new(&needle).into_owned(),
        })
    }

    /// The cookie name this finder looks for.
    pub fn name(&self) -> &[u8] {
        let needle = self.finder.needle();
        needle
            .get(..needle.len().saturating_sub(1))
            .unwrap_or_default()
    }

    /// The value of the first `NAME=value` pair in one `Cookie` header
    /// value, without surrounding spaces or DQUOTEs. Call it for each
    /// `Cookie` header of a request; the first hit wins. `XNAME=` or
    /// `a="NAME=..."` never match: `NAME=` must start a pair.
    pub fn find<'a>(&self, cookie_header_value: &'a [u8]) -> Option<&'a [u8]> {
        let span = self.find_span(cookie_header_value, 0)?;
        cookie_header_value.get(span.value)
    }

    /// The first pair named by this finder starting at or after `from`.
    pub(crate) fn find_span(&self, header: &[u8], from: usize) -> Option<PairSpan> {
        let needle_len = self.finder.needle().len();
        let mut from = from;
        while let Some(hit) = self.finder.find(header.get(from..)?) {
            let at = from + hit;
            if starts_pair(header, at) {
                let value_at = at + needle_len;
                let tail = header.get(value_at..).unwrap_or_default();
                // A plain loop, not memchr: the value is usually a short
                // token, too short for SIMD set-up to pay off.
                let end = tail
                    .iter()
                    .position(|&b| b == b';')
                    .map_or(header.len(), |i| value_at + i);
                let (value, quoted) = value_range(header, value_at..end);
                return Some(PairSpan { value, quoted, end });
            }
            // A false hit inside another pair: keep looking after it.
            from = at + 1;
        }
        None
    }

    /// Whether `pair` (already trimmed of OWS) is named by this finder.
    fn names(&self, pair: &[u8]) -> bool {
        pair.starts_with(self.finder.needle())
    }
}

/// Whether position `at` starts a pair: only spaces or tabs between it and
/// the start of the header or the previous `;`.
fn starts_pair(header: &[u8], at: usize) -> bool {
    let before = header.get(..at).unwrap_or_default();
    match before.iter().rposition(|&b| !is_ows(b)) {
        None => true,
        Some(i) => before.get(i) == Some(&b';'),
    }
}

/// The value inside `raw` without OWS, and without DQUOTEs when it is
/// quoted (RFC 6265: `cookie-value = *cookie-octet / DQUOTE *cookie-octet DQUOTE`).
fn value_range(header: &[u8], raw: Range<usize>) -> (Range<usize>, bool) {
    let text = header.get(raw.clone()).unwrap_or_default();
    let lead = text.iter().take_while(|&&b| is_ows(b)).count();
    let trimmed = trim_ows(text);
    let start = raw.start + lead;
    let end = start + trimmed.len();
    match trimmed {
        [b'"', .., b'"'] => (start + 1..end - 1, true),
        _ => (start..end, false),
    }
}

/// The pairs of a `Cookie` header value, trimmed of OWS, empty ones skipped.
pub(crate) fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header
        .split(|&b| b == b';')
        .map(trim_ows)
        .filter(|pair| !pair.is_empty())
}

/// Appends `value` (one `Cookie` header value) to `out` without the pairs
/// named by `finders`; other pairs are copied byte for byte, joined by
/// `"; "`. Returns how many pairs were removed. When none is, the value is
/// copied verbatim. Nothing is appended when nothing is left: the caller
/// then drops the header (SPEC §3.6).
pub fn strip_into(value: &[u8], finders: &[&CookieFinder], out: &mut Vec<u8>) -> usize {
    if finders.iter().all(|f| f.find_span(value, 0).is_none()) {
        out.extend_from_slice(value);
        return 0;
    }
    let mut removed = 0;
    let mut first = true;
    for pair in pairs(value) {
        if finders.iter().any(|f| f.names(pair)) {
            removed += 1;
            continue;
        }
        if !first {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
        first = false;
    }
    removed
}

#[cfg(test)]
mod tests;
