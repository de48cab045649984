//! HTTP/2 messages as the HTTP/1.1 backends see them (RFC 9113 §8): a
//! request's pseudo-headers and field list checked and turned into an
//! HTTP/1.1 head, and a backend's HTTP/1.1 response head turned into the
//! field list of an HTTP/2 response.
//!
//! The `h2` crate has already refused, as stream errors, what its decoder
//! sees: connection-specific fields, `te` other than `trailers`, upper-case
//! or empty names, CR, LF or NUL in a name or value, repeated, unknown or
//! late pseudo-headers, a missing `:method`, `:scheme` or `:path`, spaces in
//! `:method` or `:path`. What it lets through and RFC 9113 forbids is
//! checked here: `:authority` and `host` (validated by [`super::authority`],
//! as HTTP/1's `Host`), values with leading or trailing whitespace, and
//! `content-length` values. Pure code: no I/O, no panics on input.

use thiserror::Error;

use super::authority::{self, AuthorityError};
use super::head::{is_hop_by_hop, write_ip, ConnectionNames, Forwarding};
use super::response::{Response, ResponseFraming};
use super::{BodyFraming, Fields, Withheld};

/// Why an HTTP/2 request is malformed (RFC 9113 §8.1.1): its stream is
/// reset with PROTOCOL_ERROR and nothing of it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    #[error("invalid :authority: {0}")]
    BadAuthority(AuthorityError),
    #[error("invalid host field: {0}")]
    BadHost(AuthorityError),
    #[error("more than one host field")]
    RepeatedHost,
    #[error("host differs from :authority")]
    HostMismatch,
    #[error("neither :authority nor host")]
    NoAuthority,
    #[error(":path neither origin-form nor * (OPTIONS)")]
    BadPath,
    #[error("CONNECT is not supported")]
    Connect,
    #[error("a field value with leading or trailing whitespace")]
    ValueWhitespace,
    #[error("invalid content-length")]
    BadContentLength,
    #[error("content-length values differ")]
    ConflictingContentLength,
    #[error("content-length above 0 on a request without DATA")]
    MissingBody,
    #[error("a body on a GET or HEAD request")]
    BodyOnGetOrHead,
    #[error("a framing field in disguise (content_length, transfer---encoding, …)")]
    DisguisedFraming,
}

/// A checked HTTP/2 request, borrowing its parts.
#[derive(Debug, Clone, Copy)]
pub struct H2Request<'a> {
    pub method: &'a str,
    /// The effective authority: `:authority`, else `host`.
    pub authority: &'a [u8],
    /// The path and query (`*` for `OPTIONS *`).
    pub path: &'a [u8],
    pub headers: &'a ::http::HeaderMap,
    /// By `content-length` when the client gave one; chunked when DATA
    /// may follow without one; none when the HEADERS frame ended the stream.
    pub body: BodyFraming,
}

impl H2Request<'_> {
    /// A HEAD request: its response has no body whatever its fields say.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

impl Fields for ::http::HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).into_iter().map(|v| v.as_bytes())
    }
}

/// Checks the request of `parts`; `end_stream`: its HEADERS frame ended
/// the stream (no DATA follows).
pub fn check_request(
    parts: &::http::request::Parts,
    end_stream: bool,
) -> Result<H2Request<'_>, Malformed> {
    let method = parts.method.as_str();
    if parts.method == ::http::Method::CONNECT {
        return Err(Malformed::Connect);
    }
    let headers = &parts.headers;
    let mut hosts = headers.get_all(::http::header::HOST).into_iter();
    let host = hosts.next().map(|v| v.as_bytes());
    if hosts.next().is_some() {
        return Err(Malformed::RepeatedHost);
    }
    let authority = match (parts.uri.authority(), host) {
        (Some(a), host) => {
            let a = a.as_str().as_bytes();
            authority::check(a).map_err(Malformed::BadAuthority)?;
            if host.is_some_and(|h| !h.eq_ignore_ascii_case(a)) {
                return Err(Malformed::HostMismatch);
            }
            a
        }
        (None, Some(h)) => {
            authority::check(h).map_err(Malformed::BadHost)?;
            h
        }
        (None, None) => return Err(Malformed::NoAuthority),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(&b""[..], |p| p.as_str().as_bytes());
    let path_ok = match path {
        [b'/', ..] => true,
        b"*" => parts.method == ::http::Method::OPTIONS,
        _ => false,
    };
    if !path_ok {
        return Err(Malformed::BadPath);
    }
    let mut content_length = None;
    for (name, value) in headers {
        let value = value.as_bytes();
        if value
            .first()
            .zip(value.last())
            .is_some_and(|(&a, &b)| is_ows(a) || is_ows(b))
        {
            return Err(Malformed::ValueWhitespace);
        }
        if name == ::http::header::CONTENT_LENGTH {
            let n = parse_length(value).ok_or(Malformed::BadContentLength)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(Malformed::ConflictingContentLength);
            }
            content_length = Some(n);
        } else if is_disguised(name.as_str().as_bytes()) {
            // Forwarded as it is, some backends would take it for framing
            // (refused on HTTP/1 too).
            return Err(Malformed::DisguisedFraming);
        }
    }
    // A body on GET or HEAD is refused as on HTTP/1: some servers ignore
    // it and others read it, and a body the backend skips is read as the
    // next request on that pooled connection. A stream that may still
    // send DATA without a length (an empty DATA frame ending it is common)
    // goes out with `Content-Length: 0`; `request_body::send` refuses any
    // DATA byte beyond it before the backend sees one.
    let bodiless = matches!(method, "GET" | "HEAD");
    let body = match (content_length, end_stream) {
        (Some(n), true) if n > 0 => return Err(Malformed::MissingBody),
        (Some(n), false) if n > 0 && bodiless => return Err(Malformed::BodyOnGetOrHead),
        (_, true) => BodyFraming::None,
        (Some(n), false) => BodyFraming::Length(n),
        (None, false) if bodiless => BodyFraming::Length(0),
        (None, false) => BodyFraming::Chunked,
    };
    Ok(H2Request {
        method,
        authority,
        path,
        headers,
        body,
    })
}

/// `content_length`, `transfer--encoding`, …; not the names themselves
/// (`transfer-encoding` is dropped as hop-by-hop).
fn is_disguised(name: &[u8]) -> bool {
    (13..=32).contains(&name.len())
        && name != b"content-length"
        && name != b"transfer-encoding"
        && super::field::is_disguised_framing(name)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// 1 to 19 digits, no sign, no whitespace.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Fields a request never forwards: hop-by-hop (already refused by `h2`,
/// but `te: trailers` passes), the framing limpet re-states, the
/// `X-Forwarded-*` it writes itself, `host` (written first), `cookie`
/// (joined and edited), `expect` (limpet answers `100-continue` itself).
fn dropped_in_request(name: &str) -> bool {
    is_hop_by_hop(name.as_bytes())
        || matches!(
            name,
            "host"
                | "cookie"
                | "expect"
                | "content-length"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "x-forwarded-proto"
                | "x-request-id"
        )
}

/// Writes the HTTP/1.1 head the backend gets for `req`, without what
/// `withheld` names (a header-mode token). The cookie crumbs
/// are joined with `; ` into one value (RFC 9113 §8.2.3) that `cookie`
/// edits (appending nothing drops the `Cookie` line); `scratch` holds the
/// joined value.
pub fn write_request_head(
    req: &H2Request<'_>,
    fwd: &Forwarding<'_>,
    withheld: &Withheld<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    cookie: impl FnOnce(&[u8], &mut Vec<u8>),
) {
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    withheld.write_target(req.path, out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_field(out, b"Host", req.authority);
    for (name, value) in req.headers {
        // Names are lower case in HTTP/2, as `withheld.field` is.
        if dropped_in_request(name.as_str()) || withheld.field == Some(name.as_str()) {
            continue;
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    scratch.clear();
    for crumb in req.headers.get_all(::http::header::COOKIE) {
        if !scratch.is_empty() {
            scratch.extend_from_slice(b"; ");
        }
        scratch.extend_from_slice(crumb.as_bytes());
    }
    if !scratch.is_empty() {
        let line_start = out.len();
        out.extend_from_slice(b"Cookie: ");
        let value_start = out.len();
        cookie(scratch, out);
        if out.len() == value_start {
            out.truncate(line_start);
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    if fwd.trusted_peer {
        for value in req.headers.get_all("x-forwarded-for") {
            let value = super::field::trim_ows(value.as_bytes());
            if !value.is_empty() {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
    }
    write_ip(out, fwd.client_ip);
    out.extend_from_slice(b"\r\n");
    write_field(out, b"X-Forwarded-Proto", fwd.proto.as_bytes());
    if !fwd.request_id.is_empty() {
        write_field(out, b"X-Request-Id", fwd.request_id);
    }
    write_field(out, b"X-Forwarded-Host", req.authority);
    match req.body {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Why a backend's response head cannot go out as HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResponseFault {
    #[error("a response field not valid in HTTP/2")]
    BadField,
}

/// The HTTP/2 response for a backend's HTTP/1.1 head: its status and
/// fields without the connection-specific ones (hop-by-hop and those its
/// `Connection` names); `Set-Cookie` values through `set_cookie` (each one
/// field), then the whole field lines (`Name: value\r\n`) `extra` writes.
/// `scratch` is working space.
pub fn response_head(
    resp: &Response<'_, '_>,
    scratch: &mut Vec<u8>,
    mut set_cookie: impl FnMut(&[u8], &mut Vec<u8>),
    extra: impl FnOnce(&mut Vec<u8>),
) -> Result<::http::Response<()>, ResponseFault> {
    let status = ::http::StatusCode::from_u16(resp.status).map_err(|_| ResponseFault::BadField)?;
    let mut map = ::http::HeaderMap::with_capacity(resp.headers.len());
    let connection = ConnectionNames::new(resp.headers);
    for h in resp.headers {
        let name = h.name.as_bytes();
        if is_hop_by_hop(name) || connection.contains(name) {
            continue;
        }
        // The framing is HTTP/2's: a length stays as information (and is
        // checked by the client), never on a chunked or 204 body.
        if name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        let Ok(header) = ::http::HeaderName::from_bytes(name) else {
            return Err(ResponseFault::BadField);
        };
        if header == ::http::header::SET_COOKIE {
            scratch.clear();
            set_cookie(h.value, scratch);
            if scratch.is_empty() {
                continue;
            }
            append(&mut map, header, scratch)?;
        } else {
            append(&mut map, header, h.value)?;
        }
    }
    let may_have_length = resp.status >= 200 && resp.status != 204;
    if let Some(n) = resp.content_length.filter(|_| may_have_length) {
        if resp.body != ResponseFraming::Chunked {
            map.append(::http::header::CONTENT_LENGTH, ::http::HeaderValue::from(n));
        }
    }
    scratch.clear();
    extra(scratch);
    for line in scratch.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((name, value)) = split_field(line) else {
            continue;
        };
        let Ok(header) = ::http::HeaderName::from_bytes(name) else {
            return Err(ResponseFault::BadField);
        };
        append(&mut map, header, value)?;
    }
    let mut response = ::http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = map;
    Ok(response)
}

/// `name: value` (without its CRLF) into the name and the trimmed value.
fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let (name, rest) = line.split_at(colon);
    Some((name, super::field::trim_ows(rest.get(1..)?)))
}

fn append(
    map: &mut ::http::HeaderMap,
    name: ::http::HeaderName,
    value: &[u8],
) -> Result<(), ResponseFault> {
    let value = ::http::HeaderValue::from_bytes(value).map_err(|_| ResponseFault::BadField)?;
    map.append(name, value);
    Ok(())
}

/// A backend's chunked trailer section (`name: value\r\n` lines, as the
/// chunked decoder accepted them) as HTTP/2 trailers; hop-by-hop and
/// framing fields dropped, as are lines HTTP/2 cannot carry.
pub fn parse_trailers(section: &[u8]) -> ::http::HeaderMap {
    let mut map = ::http::HeaderMap::new();
    for line in section.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((name, value)) = split_field(line) else {
            continue;
        };
        if is_hop_by_hop(name) || name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            ::http::HeaderName::from_bytes(name),
            ::http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

/// Writes a client's HTTP/2 trailers as a chunked body's last chunk and
/// trailer section.
pub fn write_trailers(trailers: &::http::HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        if is_hop_by_hop(name.as_str().as_bytes())
            || *name == ::http::header::CONTENT_LENGTH
            || *name == ::http::header::HOST
        {
            continue;
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
