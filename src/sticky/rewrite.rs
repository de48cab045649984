//! Rewrite mode (SPEC §4): the backend owns its session cookie and limpet
//! prefixes the value with the server's token. This file owns reading a
//! response `Set-Cookie` (RFC 6265 §5.2, tolerant), writing it back as
//! `NAME=<token>.<value>` with every attribute verbatim, and, on the request
//! side, splitting `<token>.<value>` and forwarding the `Cookie` header with
//! the application's original value. It must never alter a cookie it does
//! not own, nor panic or allocate per call on what either side sends.

use std::ops::Range;

use super::cookie::{trim_ows, CookieFinder};

/// One parsed `Set-Cookie` value, borrowing from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetCookie<'a> {
    pub name: &'a [u8],
    /// The value without surrounding spaces, and inside the DQUOTEs when
    /// `quoted`.
    pub value: &'a [u8],
    pub quoted: bool,
    /// Everything from the first `;` on (empty when there is none), as given.
    pub attributes: &'a [u8],
    /// Offset of `value` in the header value: where the token goes.
    value_at: usize,
}

/// Parses a `Set-Cookie` header value as RFC 6265 §5.2 does: the pair ends
/// at the first `;`; name and value are trimmed of spaces and tabs; a pair
/// without `=` or with an empty name is ignored (`None`).
pub fn parse_set_cookie(value: &[u8]) -> Option<SetCookie<'_>> {
    let pair_end = memchr::memchr(b';', value).unwrap_or(value.len());
    let (pair, attributes) = value.split_at_checked(pair_end)?;
    let eq = memchr::memchr(b'=', pair)?;
    let (raw_name, raw_value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
    let name = trim_ows(raw_name);
    if name.is_empty() {
        return None;
    }
    let lead = raw_value
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let trimmed = trim_ows(raw_value);
    let (value_range, quoted) = match trimmed {
        [b'"', .., b'"'] => (1..trimmed.len() - 1, true),
        _ => (0..trimmed.len(), false),
    };
    Some(SetCookie {
        name,
        value: trimmed.get(value_range.clone())?,
        quoted,
        attributes,
        value_at: eq + 1 + lead + value_range.start,
    })
}

/// What `rewrite_into` did with one `Set-Cookie`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteOutcome {
    /// Our cookie with a value: now `NAME=<token>.<value>`.
    Rewritten,
    /// Our cookie, being deleted (empty value, or `Max-Age` ≤ 0): passed
    /// through unchanged; the client is no longer sticky (§4.3).
    Deleted,
    /// Another cookie, or not parsable: passed through unchanged.
    Other,
}

impl RewriteOutcome {
    /// Whether the response handles our cookie itself, so a failover must
    /// not re-issue it (§4.4).
    pub fn sets_our_cookie(self) -> bool {
        matches!(self, RewriteOutcome::Rewritten | RewriteOutcome::Deleted)
    }
}

/// Appends one `Set-Cookie` header value to `out`: when it sets
/// `cookie_name` to a non-empty value, with `<token>.` inserted before the
/// value (inside the quotes if quoted) and every other byte as given;
/// otherwise unchanged.
pub fn rewrite_into(
    value: &[u8],
    cookie_name: &[u8],
    token: &[u8],
    out: &mut Vec<u8>,
) -> RewriteOutcome {
    let outcome = match parse_set_cookie(value) {
        Some(cookie) if cookie.name == cookie_name => {
            if cookie.value.is_empty() || deletes(cookie.attributes) {
                RewriteOutcome::Deleted
            } else {
                let (before, after) = value
                    .split_at_checked(cookie.value_at)
                    .unwrap_or((value, &[]));
                out.extend_from_slice(before);
                out.extend_from_slice(token);
                out.push(b'.');
                out.extend_from_slice(after);
                return RewriteOutcome::Rewritten;
            }
        }
        _ => RewriteOutcome::Other,
    };
    out.extend_from_slice(value);
    outcome
}

/// Whether the attributes carry `Max-Age` of zero or less (RFC 6265
/// §5.2.2: the cookie expires at once). An `Expires` in the past deletes
/// too, but rewriting it is harmless: the browser drops it all the same.
fn deletes(attributes: &[u8]) -> bool {
    attributes.split(|&b| b == b';').any(|attr| {
        let Some(eq) = memchr::memchr(b'=', attr) else {
            return false;
        };
        let (name, value) = (attr.get(..eq).unwrap_or_default(), attr.get(eq + 1..));
        if !trim_ows(name).eq_ignore_ascii_case(b"max-age") {
            return false;
        }
        match trim_ows(value.unwrap_or_default()) {
            [b'-', digit, ..] => digit.is_ascii_digit(),
            digits @ [_, ..] => digits.iter().all(|&b| b == b'0'),
            [] => false,
        }
    })
}

/// Splits a rewritten cookie value `<token>.<value>` on its first `.`
/// (tokens are base64url and never contain one). `None` when it is not
/// rewritten: no `.`, or an empty token or value.
pub fn split_rewritten(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = memchr::memchr(b'.', value)?;
    let (token, app) = (value.get(..dot)?, value.get(dot + 1..)?);
    (!token.is_empty() && !app.is_empty()).then_some((token, app))
}

/// Appends one request `Cookie` header value to `out` with each rewritten
/// pair named by `finder` restored to the application's value
/// (`NAME=<token>.<v>` becomes `NAME=<v>`, quotes kept); every other byte is
/// copied as is. Returns how many pairs were restored.
pub fn restore_into(value: &[u8], finder: &CookieFinder, out: &mut Vec<u8>) -> usize {
    let mut restored = 0;
    let mut copied = 0;
    let mut from = 0;
    while let Some(pair) = finder.find_span(value, from) {
        if let Some(cut) = token_span(value, pair.value) {
            out.extend_from_slice(value.get(copied..cut.start).unwrap_or_default());
            copied = cut.end;
            restored += 1;
        }
        from = pair.end;
    }
    out.extend_from_slice(value.get(copied..).unwrap_or_default());
    restored
}

/// The span of `<token>.` at the start of a rewritten value.
fn token_span(header: &[u8], value: Range<usize>) -> Option<Range<usize>> {
    let (token, _) = split_rewritten(header.get(value.clone())?)?;
    Some(value.start..value.start + token.len() + 1)
}

#[cfg(test)]
mod tests;
