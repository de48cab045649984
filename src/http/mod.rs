//! HTTP/1.x as pure bytes: request and response heads parsed into borrowed
//! views of the caller's buffer, the framing rules of RFC 9112 that decide
//! where a message body ends, a chunked decoder that finds that end, the head
//! writers that edit a message on its way through the proxy, and the canned
//! error responses.
//!
//! This module never does I/O, never allocates per message (the writers only
//! grow the caller's output `Vec`) and never panics on input: every malformed
//! or oversized head is a typed error that knows its status code. Syntax is
//! checked by `httparse`; what `httparse` lets through and RFC 9112 forbids
//! (bare LF, conflicting framing, a bad `Host`, ...) is checked here, and each
//! check says in a comment which layer owns it.

pub mod authority;
pub mod canned;
pub mod chunked;
mod field;
pub mod h2;
pub mod head;
pub mod query;
pub mod request;
pub mod response;

pub use authority::AuthorityError;
pub use canned::{error_response, unavailable_response, CONTINUE_100};
pub use chunked::{ChunkError, ChunkLimits, ChunkedDecoder, Progress};
pub use h2::Malformed;
pub use head::{
    header_has_token, headers_named, is_hop_by_hop, is_named_in_connection, write_request_head,
    write_request_head_withholding, write_response_head, Forwarding,
};
pub use request::{
    is_idempotent, parse_request, upgrade_matches, Limits, Request, RequestError, Upgrade,
};
pub use response::{parse_response, Response, ResponseError, ResponseFraming};

/// A request's header fields, whatever the protocol that carried them:
/// HTTP/1's parsed head or an HTTP/2 stream's field list. Names are matched
/// ignoring ASCII case. What the protocol-neutral steps (routing,
/// persistence, hashing) read of a request goes through this.
pub trait Fields {
    /// The values of every field named `name`, in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

impl Fields for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        headers_named(self, name)
    }
}

/// What a request's persistence token travels in that the backend must
/// not see (header mode, SPEC §3.9): a field and a query parameter. Both
/// `None` in every other group, where the writers only test that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Withheld<'a> {
    /// A field name in lower case, matched ignoring case.
    pub field: Option<&'a str>,
    /// A query parameter name, matched exactly.
    pub query: Option<&'a [u8]>,
}

impl Withheld<'_> {
    /// Nothing withheld.
    pub const NONE: Withheld<'static> = Withheld {
        field: None,
        query: None,
    };

    /// Whether the field called `name` (any case) is withheld.
    pub fn hides_field(&self, name: &[u8]) -> bool {
        self.field.is_some_and(|field| {
            field.len() == name.len() && name.eq_ignore_ascii_case(field.as_bytes())
        })
    }

    /// Appends the request target the backend gets: `target` without the
    /// withheld query parameter.
    pub fn write_target(&self, target: &[u8], out: &mut Vec<u8>) {
        match self.query {
            None => out.extend_from_slice(target),
            Some(name) => query::write_without(target, name, out),
        }
    }

    /// Appends the target as the access log shows it: the withheld
    /// parameter's value redacted.
    pub fn write_logged_target(&self, target: &[u8], out: &mut Vec<u8>) {
        match self.query {
            None => out.extend_from_slice(target),
            Some(name) => query::write_redacted(target, name, out),
        }
    }
}

/// The protocol versions limpet speaks on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version token as it appears on the wire.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    /// httparse reports the minor version; it only accepts `HTTP/1.0` and
    /// `HTTP/1.1`, so anything else cannot reach here, but stay total.
    pub(crate) const fn from_minor(minor: u8) -> Option<Version> {
        match minor {
            0 => Some(Version::Http10),
            1 => Some(Version::Http11),
            _ => None,
        }
    }
}

/// How the body of a request is delimited (RFC 9112 §6.3). A request is
/// never delimited by the connection closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`.
    None,
    /// Exactly this many bytes follow the head (may be 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`; use [`ChunkedDecoder`] to find the end.
    Chunked,
}
