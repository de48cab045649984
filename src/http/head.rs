//! Writes the edited heads limpet forwards: the request to the backend and
//! the response to the client. It owns which fields cross the proxy (no
//! hop-by-hop field, nothing named in `Connection`, no client-supplied
//! `X-Forwarded-*`), the framing fields limpet re-states itself, and the
//! cookie hooks through which the persistence layer edits `Cookie` and
//! `Set-Cookie` values.
//!
//! It never allocates (only the caller's `out` grows), never uses `format!`
//! on the path, and never re-validates: it trusts heads that the parsers in
//! this module accepted.
//!
//! Decisions:
//! - The request line goes out as received, version included: a 1.0 client
//!   cannot read a chunked answer, and a backend told 1.0 will not send one.
//! - The response status line always says `HTTP/1.1`: RFC 9110 §2.5 has an
//!   intermediary send its own version; the reason phrase is kept.
//! - `Content-Length` is written once from the validated value (a received
//!   `5, 5` goes out as `5`); `Transfer-Encoding: chunked` is written when
//!   the body is chunked.
//! - `Host` is kept even when a client names it in `Connection`.
//! - A field that passes unchanged is copied byte for byte from the received
//!   head, adjacent lines in one copy; only edited or added lines are built.

use std::io::Write as _;
use std::net::IpAddr;

use httparse::Header;

pub use super::field::{header_has_token, headers_named};

use super::field::{name_is, tokens, trim_ows};
use super::request::Request;
use super::response::{Response, ResponseFraming};
use super::{BodyFraming, Version, Withheld};

/// How the client reached limpet, for the `X-Forwarded-*` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding<'a> {
    pub client_ip: IpAddr,
    /// The peer is one of `trusted_proxies`: its `X-Forwarded-For` is kept
    /// and the peer appended; otherwise the field is replaced.
    pub trusted_peer: bool,
    /// `http` or `https`.
    pub proto: &'a str,
    /// Sent as `X-Request-Id` (any received one is dropped).
    pub request_id: &'a [u8],
}

/// Fields that describe one connection and never cross a proxy
/// (RFC 9110 §7.6.1), plus `Proxy-Connection` and `Keep-Alive`.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name_is(name, b"te"),
        7 => name_is(name, b"upgrade") || name_is(name, b"trailer"),
        10 => name_is(name, b"connection") || name_is(name, b"keep-alive"),
        16 => name_is(name, b"proxy-connection"),
        17 => name_is(name, b"transfer-encoding"),
        _ => false,
    }
}

/// Whether `name` is listed in any `Connection` field of `headers`, which
/// makes it hop-by-hop for this message (RFC 9110 §7.6.1).
pub fn is_named_in_connection(headers: &[Header<'_>], name: &[u8]) -> bool {
    headers_named(headers, "connection").any(|v| header_has_token(v, name))
}

/// The `Connection` fields of one head that name other fields, found once
/// so that checking every field against them stays cheap. A field listing
/// only `keep-alive` / `upgrade` (the common case) names nothing that is not
/// dropped as hop-by-hop anyway, so it is not even looked at again.
pub(crate) struct ConnectionNames<'a, 'b> {
    headers: &'a [Header<'b>],
    first: Option<&'b [u8]>,
    count: usize,
}

impl<'a, 'b> ConnectionNames<'a, 'b> {
    pub(crate) fn new(headers: &'a [Header<'b>]) -> Self {
        let mut names = ConnectionNames {
            headers,
            first: None,
            count: 0,
        };
        for value in headers_named(headers, "connection").filter(|v| names_others(v)) {
            names.first = names.first.or(Some(value));
            names.count += 1;
        }
        names
    }

    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        match (self.count, self.first) {
            (1, Some(value)) => header_has_token(value, name),
            (0, _) | (_, None) => false,
            _ => headers_named(self.headers, "connection")
                .any(|v| names_others(v) && header_has_token(v, name)),
        }
    }
}

fn names_others(connection: &[u8]) -> bool {
    // The usual value, without splitting it into tokens.
    if connection.eq_ignore_ascii_case(b"keep-alive") {
        return false;
    }
    tokens(connection)
        .any(|t| !t.eq_ignore_ascii_case(b"keep-alive") && !t.eq_ignore_ascii_case(b"upgrade"))
}

/// What the writers do with one received field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Forward,
    Drop,
    /// `Cookie` / `Set-Cookie`: forward what the cookie hook appends.
    Cookie,
}

fn request_disposition(name: &[u8]) -> Disposition {
    if is_hop_by_hop(name) {
        return Disposition::Drop;
    }
    let drop = match name.len() {
        6 if name_is(name, b"cookie") => return Disposition::Cookie,
        12 => name_is(name, b"x-request-id"),
        // `HTTP2-Settings` belongs to the h2c upgrade, which is never
        // forwarded (SPEC §7).
        14 => name_is(name, b"content-length") || name_is(name, b"http2-settings"),
        15 => name_is(name, b"x-forwarded-for"),
        16 => name_is(name, b"x-forwarded-host"),
        17 => name_is(name, b"x-forwarded-proto"),
        _ => false,
    };
    if drop {
        Disposition::Drop
    } else {
        Disposition::Forward
    }
}

fn response_disposition(name: &[u8]) -> Disposition {
    if is_hop_by_hop(name) {
        return Disposition::Drop;
    }
    match name.len() {
        10 if name_is(name, b"set-cookie") => Disposition::Cookie,
        14 if name_is(name, b"content-length") => Disposition::Drop,
        _ => Disposition::Forward,
    }
}

/// Writes the head to send to the backend. `cookie` gets each `Cookie`
/// value and appends what to forward in its place; appending nothing drops
/// that `Cookie` line.
pub fn write_request_head(
    req: &Request<'_, '_>,
    fwd: &Forwarding<'_>,
    out: &mut Vec<u8>,
    cookie: impl FnMut(&[u8], &mut Vec<u8>),
) {
    write_request_head_withholding(req, fwd, &Withheld::NONE, out, cookie);
}

/// [`write_request_head`], leaving out the field and the query parameter
/// that `withheld` names (a header-mode token, SPEC §3.9).
pub fn write_request_head_withholding(
    req: &Request<'_, '_>,
    fwd: &Forwarding<'_>,
    withheld: &Withheld<'_>,
    out: &mut Vec<u8>,
    mut cookie: impl FnMut(&[u8], &mut Vec<u8>),
) {
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    match req.origin {
        // Absolute-form goes out in origin-form, its authority as the only
        // `Host` (RFC 9112 §3.2.2).
        Some(origin) => {
            if origin.first() != Some(&b'/') {
                out.push(b'/');
            }
            withheld.write_target(origin, out);
        }
        None => withheld.write_target(req.target, out),
    }
    out.push(b' ');
    out.extend_from_slice(req.version.as_bytes());
    out.extend_from_slice(b"\r\n");
    let replace_host = match (req.origin, req.authority) {
        (Some(_), Some(authority)) => {
            write_field(out, b"Host", authority);
            true
        }
        _ => false,
    };

    let connection = ConnectionNames::new(req.headers);
    let mut lines = LineRuns::new(req.head, req.headers);
    for (i, h) in req.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        let disposition = request_disposition(name);
        let is_host = name_is(name, b"host");
        if disposition == Disposition::Drop
            || (connection.contains(name) && !is_host)
            || (replace_host && is_host)
            || withheld.hides_field(name)
        {
            continue;
        }
        match disposition {
            Disposition::Cookie => {
                lines.flush(out);
                write_edited(out, h, &mut cookie);
            }
            _ => lines.forward(out, i),
        }
    }
    lines.flush(out);

    out.extend_from_slice(b"X-Forwarded-For: ");
    if fwd.trusted_peer {
        for value in headers_named(req.headers, "x-forwarded-for").map(trim_ows) {
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
    if let Some(authority) = req.authority {
        write_field(out, b"X-Forwarded-Host", authority);
    }
    match req.body {
        BodyFraming::None => {}
        BodyFraming::Length(n) => write_content_length(out, n),
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    if let Some(upgrade) = req.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        write_field(out, b"Upgrade", upgrade.token);
    } else if req.version == Version::Http10 {
        // A 1.0 backend closes after each response unless asked not to.
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head to send to the client. `set_cookie` edits each
/// `Set-Cookie` value (append nothing to drop it); `extra` appends whole
/// field lines (`Name: value\r\n`) after the received ones.
///
/// `Connection: close` goes out when the client connection will not be
/// reused, which includes every close-delimited body whatever
/// `client_keep_alive` says; a kept-alive 1.0 client gets
/// `Connection: keep-alive`. A 101 gets `Connection: upgrade` and the
/// received `Upgrade`; an interim 1xx gets no `Connection` field. The caller
/// must not forward a chunked body to a 1.0 client (a backend asked in 1.0
/// must not send one, RFC 9112 §6.1).
pub fn write_response_head(
    resp: &Response<'_, '_>,
    out: &mut Vec<u8>,
    client_keep_alive: bool,
    client_version: Version,
    mut set_cookie: impl FnMut(&[u8], &mut Vec<u8>),
    extra: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(resp.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.as_bytes());
    out.extend_from_slice(b"\r\n");

    let connection = ConnectionNames::new(resp.headers);
    let mut lines = LineRuns::new(resp.head, resp.headers);
    for (i, h) in resp.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        match response_disposition(name) {
            Disposition::Drop => {}
            _ if connection.contains(name) => {}
            Disposition::Cookie => {
                lines.flush(out);
                write_edited(out, h, &mut set_cookie);
            }
            Disposition::Forward => lines.forward(out, i),
        }
    }
    lines.flush(out);
    if resp.body == ResponseFraming::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    // RFC 9110 §8.6: never a Content-Length on a 1xx or a 204.
    let may_have_length = resp.status >= 200 && resp.status != 204;
    if let Some(n) = resp.content_length.filter(|_| may_have_length) {
        write_content_length(out, n);
    }
    extra(out);
    if resp.is_switching_protocols() {
        write_upgrade(out, resp.headers);
    } else if !resp.is_informational() {
        let keep_alive = client_keep_alive && resp.body != ResponseFraming::UntilClose;
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if client_version == Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Copies forwarded field lines straight from the received head, merging
/// adjacent lines into one copy: a browser request is then a handful of
/// copies instead of four per field. The lines of a parsed head are
/// back to back (httparse skips nothing between them, obs-fold is refused)
/// and each ends in CRLF (bare LF is refused), so line `i` runs from the
/// start of name `i` to the start of name `i + 1`, and the last one to the
/// final CRLF. A field whose name does not lie in `head` (a hand-built
/// head) is written from its parts instead.
struct LineRuns<'a, 'b> {
    head: &'b [u8],
    headers: &'a [Header<'b>],
    /// The pending run, as a range of `head`.
    run: Option<(usize, usize)>,
}

impl<'a, 'b> LineRuns<'a, 'b> {
    fn new(head: &'b [u8], headers: &'a [Header<'b>]) -> Self {
        LineRuns {
            head,
            headers,
            run: None,
        }
    }

    /// Where field `i`'s name starts in `head`. Pointer addresses are only
    /// compared, never dereferenced; the range is checked by `get` on use.
    fn offset(&self, i: usize) -> Option<usize> {
        let name = self.headers.get(i)?.name.as_ptr() as usize;
        name.checked_sub(self.head.as_ptr() as usize)
            .filter(|&at| at < self.head.len())
    }

    fn line(&self, i: usize) -> Option<(usize, usize)> {
        let start = self.offset(i)?;
        let end = match self.headers.get(i + 1) {
            Some(_) => self.offset(i + 1)?,
            None => self.head.len().checked_sub(2)?,
        };
        let line = self.head.get(start..end)?;
        line.ends_with(b"\r\n").then_some((start, end))
    }

    fn forward(&mut self, out: &mut Vec<u8>, i: usize) {
        match (self.line(i), self.run) {
            (Some((start, end)), Some((run_start, run_end))) if run_end == start => {
                self.run = Some((run_start, end));
            }
            (Some(line), _) => {
                self.flush(out);
                self.run = Some(line);
            }
            (None, _) => {
                self.flush(out);
                if let Some(h) = self.headers.get(i) {
                    write_field(out, h.name.as_bytes(), h.value);
                }
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        if let Some(run) = self.run.take().and_then(|(s, e)| self.head.get(s..e)) {
            out.extend_from_slice(run);
        }
    }
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes `name: ` and lets `edit` append the value; takes the line back
/// out when it appended nothing.
fn write_edited(out: &mut Vec<u8>, h: &Header<'_>, edit: &mut impl FnMut(&[u8], &mut Vec<u8>)) {
    let line_start = out.len();
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    let value_start = out.len();
    edit(h.value, out);
    if out.len() == value_start {
        out.truncate(line_start);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

fn write_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `Connection: upgrade` and the `Upgrade` fields as received.
fn write_upgrade(out: &mut Vec<u8>, headers: &[Header<'_>]) {
    out.extend_from_slice(b"Connection: upgrade\r\n");
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
    {
        write_field(out, h.name.as_bytes(), h.value);
    }
}

/// The client address as `X-Forwarded-For` wants it: dotted IPv4, IPv6
/// without brackets, and an IPv4-mapped IPv6 peer (a dual-stack socket) as
/// the IPv4 address it is.
pub(crate) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            // Rendered on the stack, then one copy: at most 15 bytes.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            // std's Display gives the RFC 5952 form; writing into a Vec
            // cannot fail, so there is no error to handle.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests;
