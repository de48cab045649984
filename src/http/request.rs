//! Parses a client's request head into a borrowed [`Request`] and applies
//! RFC 9112's framing rules strictly, so that limpet and the server behind
//! it can never disagree about where a request ends (request smuggling).
//!
//! It owns the request-side limits (414 / 431) and every refusal a client
//! can earn with its head, each a [`RequestError`] that knows its status. It
//! never does I/O, never allocates and never panics on input.
//!
//! Who enforces what:
//! - httparse (default config): the method is a token followed by exactly
//!   one SP; the target is one run of `!`..`~` / obs-text bytes followed by
//!   exactly one SP; the version is exactly `HTTP/1.0` or `HTTP/1.1`; CR is
//!   always followed by LF; field names are tokens directly followed by `:`
//!   (no whitespace before the colon); a line starting with SP/HTAB
//!   (obs-fold) is an invalid name; a line without a colon is an invalid
//!   name; values hold only HTAB, SP, visible ASCII and obs-text (no NUL, no
//!   other controls, no DEL); the header count.
//! - here: bare LF (httparse accepts LF alone as a line end), the 414 and 431
//!   byte limits, the target form, CONNECT, `Host` (presence, count,
//!   characters), `Content-Length` values, `Transfer-Encoding`, and the
//!   framing and connection facts derived from them. When httparse refuses,
//!   a cold-path diagnosis names the rule that was broken.

use std::mem::MaybeUninit;

use httparse::Header;
use thiserror::Error;

use super::authority::{self, AuthorityError};
use super::field::{self, FieldFault, HeadFacts, TransferCoding};
use super::{BodyFraming, Version};

/// Byte and count limits for a head. The response parser uses the same
/// struct and ignores `max_request_line_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request line including its CRLF (leading empty lines, which
    /// RFC 9112 §2.2 lets a server skip, are not counted).
    pub max_request_line_bytes: usize,
    /// The whole head including the final CRLFCRLF.
    pub max_head_bytes: usize,
    /// Field lines; the caller's header storage caps it further.
    pub max_headers: usize,
}

impl Default for Limits {
    /// nginx's and HAProxy's orders of magnitude: a browser with a few large
    /// cookies fits, a header flood does not.
    fn default() -> Self {
        Limits {
            max_request_line_bytes: 8 * 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// Why a request head was refused; [`RequestError::status`] is the answer
/// to send before closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("request line longer than the limit")]
    RequestLineTooLong,
    #[error("request head larger than the limit")]
    HeadTooLarge,
    #[error("more header fields than the limit")]
    TooManyHeaders,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("stray whitespace in the request line")]
    RequestLineWhitespace,
    #[error("HTTP version other than 1.0 or 1.1")]
    BadVersion,
    #[error("request target neither origin-form, absolute-form nor OPTIONS *")]
    BadTarget,
    #[error("CONNECT is not supported")]
    Connect,
    #[error("bare LF in the head")]
    BareLf,
    #[error("obsolete line folding")]
    ObsFold,
    #[error("whitespace between a field name and its colon")]
    SpaceBeforeColon,
    #[error("header line without a colon")]
    MissingColon,
    #[error("invalid byte in a field name")]
    BadHeaderName,
    #[error("invalid byte in a field value")]
    BadHeaderValue,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("Content-Length values differ")]
    ConflictingContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("Transfer-Encoding other than a lone chunked")]
    UnsupportedTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("more than one Host field")]
    RepeatedHost,
    #[error("invalid Host value")]
    BadHost,
    #[error("invalid authority in the request target: {0}")]
    BadAuthority(AuthorityError),
    #[error("a framing field in disguise (Content_Length, Transfer---Encoding, …)")]
    DisguisedFraming,
    #[error("a body on a GET or HEAD request")]
    BodyOnGetOrHead,
}

impl RequestError {
    /// The status code of the answer. CONNECT gets 400 rather than 405:
    /// limpet is no forward proxy, and 405 would oblige an `Allow` field.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::RequestLineTooLong => 414,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            _ => 400,
        }
    }
}

impl From<FieldFault> for RequestError {
    fn from(fault: FieldFault) -> Self {
        match fault {
            FieldFault::BareLf => RequestError::BareLf,
            FieldFault::ObsFold => RequestError::ObsFold,
            FieldFault::SpaceBeforeColon => RequestError::SpaceBeforeColon,
            FieldFault::MissingColon => RequestError::MissingColon,
            FieldFault::BadName => RequestError::BadHeaderName,
            FieldFault::BadValue => RequestError::BadHeaderValue,
            FieldFault::BadContentLength => RequestError::BadContentLength,
            FieldFault::ConflictingContentLength => RequestError::ConflictingContentLength,
            FieldFault::DisguisedFraming => RequestError::DisguisedFraming,
        }
    }
}

/// A parsed request head: views into the caller's buffer and header storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'b, 'h> {
    /// Bytes of the head, including leading empty lines and the final CRLFCRLF.
    pub head_len: usize,
    /// The head's bytes (`buf[..head_len]`); the writers copy unchanged
    /// field lines from it in runs.
    pub head: &'b [u8],
    pub method: &'b str,
    pub target: &'b [u8],
    pub version: Version,
    pub headers: &'h [Header<'b>],
    pub body: BodyFraming,
    /// The client lets the connection be reused after this exchange.
    pub keep_alive: bool,
    /// HTTP/1.1 with `Expect: 100-continue` (ignored on 1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// HTTP/1.1, `Connection` holds `upgrade`, and an `Upgrade` field
    /// offers a protocol of the allow-list given to [`parse_request`]: the
    /// first such offer. Offers of other protocols are not forwarded.
    pub upgrade: Option<Upgrade<'b>>,
    /// The single `Host` value (required on 1.1, optional on 1.0).
    pub host: Option<&'b [u8]>,
    /// The effective authority (RFC 9112 §3.2.2): an absolute-form
    /// target's, else a non-empty `Host`; checked by [`authority::check`].
    /// Routing, the SNI check, `X-Forwarded-Host` and the backend's `Host`
    /// use it.
    pub authority: Option<&'b [u8]>,
    /// An absolute-form target's path and query, to forward in origin-form
    /// (empty or starting with `?` when it had no path); `None` for every
    /// other form, which goes out as received.
    pub origin: Option<&'b [u8]>,
}

/// The protocol a request may switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade<'b> {
    /// The offer as the client wrote it (`websocket`, `WebSocket/13`).
    pub token: &'b [u8],
    /// Its entry in the allow-list.
    pub allowed: usize,
}

impl Request<'_, '_> {
    /// Methods whose repetition has the same effect (RFC 9110 §9.2.2):
    /// the ones a failed pooled connection may retry.
    pub fn is_idempotent(&self) -> bool {
        is_idempotent(self.method)
    }

    /// A HEAD request: its response has no body whatever its fields say.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Methods whose repetition has the same effect (RFC 9110 §9.2.2), in any
/// protocol: the ones a failed request may be sent again with (SPEC §7).
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)`: the head is incomplete and still within `limits`, read more
/// and call again with the longer buffer. `headers` is the caller's storage;
/// at most `limits.max_headers` of it is used. `upgrades` lists the
/// protocols a request may switch to (lower case; an entry without
/// `/version` allows every version).
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
    limits: &Limits,
    upgrades: &[String],
) -> Result<Option<Request<'b, 'h>>, RequestError> {
    // The request-line limit is checked first so that a long line earns 414
    // even when the buffer is also past the head limit.
    check_request_line(buf, limits)?;
    // httparse never sees bytes past the head limit: a head that does not
    // end inside the window is too large, whatever follows.
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let slots = limits.max_headers.min(headers.len());
    let (storage, _) = headers.split_at_mut(slots);
    // Uninitialised storage: httparse writes only the headers there are,
    // and nothing zeroes 256 slots per request.
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(window, storage) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => {
            return Err(RequestError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(diagnose(window, e)),
    };
    let head = window.get(..head_len).unwrap_or(window);
    if field::has_bare_lf(head) {
        return Err(RequestError::BareLf);
    }
    let (Some(method), Some(path), Some(version)) = (
        parsed.method,
        parsed.path,
        parsed.version.and_then(Version::from_minor),
    ) else {
        // httparse sets all three on a complete parse.
        return Err(RequestError::BadRequestLine);
    };
    let headers: &'h [Header<'b>] = parsed.headers;
    let target = path.as_bytes();
    check_target(method, target)?;
    let facts = HeadFacts::collect(headers)?;
    let host = check_host(&facts, version)?;
    let (authority, origin) = match authority::split_absolute(target) {
        Some((authority, origin)) => {
            authority::check(authority).map_err(RequestError::BadAuthority)?;
            (Some(authority), Some(origin))
        }
        None => (host.filter(|h| !h.is_empty()), None),
    };
    let body = framing(&facts, version)?;
    // A body on GET or HEAD is ignored by some servers and read by others:
    // a classic way to smuggle a second request (desync-guardian: Ambiguous).
    if matches!(method, "GET" | "HEAD")
        && !matches!(body, BodyFraming::None | BodyFraming::Length(0))
    {
        return Err(RequestError::BodyOnGetOrHead);
    }
    let is_11 = version == Version::Http11;
    Ok(Some(Request {
        head_len,
        head,
        method,
        target,
        version,
        headers,
        body,
        keep_alive: if is_11 {
            !facts.close
        } else {
            facts.keep_alive && !facts.close
        },
        expect_continue: is_11 && facts.expect_continue,
        // RFC 9110 §7.8: a server must ignore Upgrade in an HTTP/1.0 request.
        upgrade: if is_11 && facts.connection_upgrade && facts.has_upgrade {
            allowed_upgrade(headers, upgrades)
        } else {
            None
        },
        host,
        authority,
        origin,
    }))
}

/// The first offer of the `Upgrade` fields that `upgrades` allows.
fn allowed_upgrade<'b>(headers: &[Header<'b>], upgrades: &[String]) -> Option<Upgrade<'b>> {
    field::headers_named(headers, "upgrade")
        .flat_map(field::tokens)
        .find_map(|token| {
            let allowed = upgrades
                .iter()
                .position(|entry| upgrade_matches(entry.as_bytes(), token))?;
            Some(Upgrade { token, allowed })
        })
}

/// Whether the `Upgrade` token `offer` (`name[/version]`) is the allowed
/// `entry`: the same name, and the same version when `entry` has one;
/// ignoring case.
pub fn upgrade_matches(entry: &[u8], offer: &[u8]) -> bool {
    if memchr::memchr(b'/', entry).is_some() {
        return entry.eq_ignore_ascii_case(offer);
    }
    let name = memchr::memchr(b'/', offer).map_or(offer, |slash| &offer[..slash]);
    entry.eq_ignore_ascii_case(name)
}

/// 414 when no complete request line fits in `max_request_line_bytes`.
fn check_request_line(buf: &[u8], limits: &Limits) -> Result<(), RequestError> {
    let limit = limits.max_request_line_bytes;
    // Skip the empty lines httparse skips, but only within the head limit so
    // that a flood of CRLFs is bounded work (and a 431 later).
    let scan = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let start = scan
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(scan.len());
    let line = buf.get(start..).unwrap_or_default();
    let first = line.get(..limit).unwrap_or(line);
    if memchr::memchr(b'\n', first).is_none() && line.len() >= limit {
        return Err(RequestError::RequestLineTooLong);
    }
    Ok(())
}

/// Origin-form (`/path`), absolute-form (`http://` or `https://`, forwarded
/// in origin-form with its authority as `Host`) or `OPTIONS *`. CONNECT and authority-form are refused.
fn check_target(method: &str, target: &[u8]) -> Result<(), RequestError> {
    if method == "CONNECT" {
        return Err(RequestError::Connect);
    }
    let has_scheme = |scheme: &[u8]| {
        target
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    let ok = match target {
        [b'/', ..] => true,
        b"*" => method == "OPTIONS",
        _ => has_scheme(b"http://") || has_scheme(b"https://"),
    };
    if ok {
        Ok(())
    } else {
        Err(RequestError::BadTarget)
    }
}

/// RFC 9112 §3.2: exactly one Host on 1.1, at most one on 1.0. Its value is
/// an authority that [`authority::check`] accepts (even when an
/// absolute-form target overrides it: a malformed one is refused, not
/// ignored); an empty value is allowed, as the RFC allows it.
fn check_host<'b>(
    facts: &HeadFacts<'b>,
    version: Version,
) -> Result<Option<&'b [u8]>, RequestError> {
    match (facts.host_count, facts.host, version) {
        (0, _, Version::Http11) => Err(RequestError::MissingHost),
        (0, _, Version::Http10) => Ok(None),
        (1, Some(host), _) if host.is_empty() || authority::check(host).is_ok() => Ok(Some(host)),
        (1, _, _) => Err(RequestError::BadHost),
        _ => Err(RequestError::RepeatedHost),
    }
}

/// RFC 9112 §6.1 and §6.3 for requests, without the leniencies a proxy must
/// not take: both framings, or a coding other than a lone `chunked`, would
/// make limpet and the server find different ends.
fn framing(facts: &HeadFacts<'_>, version: Version) -> Result<BodyFraming, RequestError> {
    match (facts.transfer, facts.content_length, version) {
        (TransferCoding::Absent, None, _) => Ok(BodyFraming::None),
        (TransferCoding::Absent, Some(n), _) => Ok(BodyFraming::Length(n)),
        (_, _, Version::Http10) => Err(RequestError::TransferEncodingOnHttp10),
        (_, Some(_), _) => Err(RequestError::LengthAndTransferEncoding),
        (TransferCoding::Chunked, None, _) => Ok(BodyFraming::Chunked),
        (TransferCoding::Other, None, _) => Err(RequestError::UnsupportedTransferEncoding),
    }
}

/// Cold path: turn httparse's coarse error into the rule that was broken.
fn diagnose(window: &[u8], err: httparse::Error) -> RequestError {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let rest = window.get(start..).unwrap_or_default();
    let line_end = memchr::memchr(b'\n', rest);
    let line = rest
        .get(..line_end.unwrap_or(rest.len()))
        .unwrap_or_default();
    if let httparse::Error::TooManyHeaders = err {
        return RequestError::TooManyHeaders;
    }
    // If the request line alone parses, the fault is in the fields.
    if let Some(end) = line_end {
        let mut none: [Header<'_>; 0] = [];
        let request_line = rest.get(..=end).unwrap_or_default();
        if let Ok(httparse::Status::Partial) = httparse::Request::new(&mut none).parse(request_line)
        {
            if line.last() != Some(&b'\r') {
                return RequestError::BareLf;
            }
            let fallback = match err {
                httparse::Error::HeaderValue => FieldFault::BadValue,
                _ => FieldFault::BadName,
            };
            let fields = rest.get(end + 1..).unwrap_or_default();
            return field::diagnose_fields(fields, fallback).into();
        }
    }
    diagnose_request_line(line.strip_suffix(b"\r").unwrap_or(line))
}

fn diagnose_request_line(line: &[u8]) -> RequestError {
    let parts = line.split(|&b| b == b' ');
    if line.contains(&b'\t') || parts.clone().count() > 3 || parts.clone().any(<[u8]>::is_empty) {
        return RequestError::RequestLineWhitespace;
    }
    match parts.clone().nth(2) {
        // The version is fine or still arriving: the method or target is not.
        None => RequestError::BadRequestLine,
        Some(v) if b"HTTP/1.1".starts_with(v) || v == b"HTTP/1.0" => RequestError::BadRequestLine,
        Some(_) => RequestError::BadVersion,
    }
}

#[cfg(test)]
mod tests;
