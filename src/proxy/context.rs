//! One request from its head to its log line, whatever the protocol: what
//! the decision step chose, when each step happened, and how it ended.
//! Every front end builds one per request (an HTTP/1 request, an HTTP/2
//! stream) and hands it to the shared steps; the access log, the metrics
//! and the counters read it at the end, so a new field is filled in one
//! place and read in another without reopening any signature in between.
//!
//! Timestamps come from `worker::now()`, the reading the connection's
//! current wake-up has already taken, so they cost no extra clock read.

use std::net::SocketAddr;
use std::time::Instant;

use super::decide::Decision;
use crate::balance::ServerIdx;
use crate::http::Version;
use crate::net::ListenerId;
use crate::sticky::Outcome;

/// The protocol a request arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http10,
    Http11,
    Http2,
}

impl Protocol {
    /// As the access log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http10 => "HTTP/1.0",
            Protocol::Http11 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2.0",
        }
    }
}

impl From<Version> for Protocol {
    fn from(version: Version) -> Self {
        match version {
            Version::Http10 => Protocol::Http10,
            Version::Http11 => Protocol::Http11,
        }
    }
}

/// When each step of a request happened; later steps are `None` until
/// they happen (a request refused before a backend has no `connected`).
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// The connection was accepted.
    pub accepted: Instant,
    /// The request head started to arrive (for a kept-alive connection:
    /// the wake-up that found its first bytes).
    pub head: Instant,
    /// A backend connection was in hand (pooled or new).
    pub connected: Option<Instant>,
    /// The backend's response head was complete.
    pub first_byte: Option<Instant>,
    /// The last response byte reached the client (or the request failed).
    pub done: Option<Instant>,
}

impl Times {
    pub fn new(accepted: Instant, head: Instant) -> Self {
        Times {
            accepted,
            head,
            connected: None,
            first_byte: None,
            done: None,
        }
    }
}

/// A request id, once one is assigned (the access log and the backend see
/// the same one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub Box<str>);

/// One request's context, carried through every step.
#[derive(Debug)]
pub struct RequestCtx {
    pub protocol: Protocol,
    pub listener: ListenerId,
    pub peer: SocketAddr,
    /// Arrived over TLS.
    pub https: bool,
    pub times: Times,
    /// What the decision step chose for it.
    pub decision: Decision,
    pub request_id: Option<RequestId>,
    /// The status answered (0 until there is one).
    pub status: u16,
    /// Response bytes sent to the client (head and body).
    pub bytes_out: u64,
    /// The server that answered, or was tried last.
    pub server: Option<ServerIdx>,
    /// What happened to the session.
    pub outcome: Outcome,
    /// How many times the request was sent again (SPEC §7).
    pub retries: u32,
    /// `METHOD target`, when the listener keeps an access log (a buffer
    /// of the worker's access log, given back with the line).
    pub log_request: Option<Vec<u8>>,
}

impl RequestCtx {
    /// A request's context once its head has been decided on.
    pub fn new(
        protocol: Protocol,
        listener: ListenerId,
        peer: SocketAddr,
        https: bool,
        times: Times,
        decision: Decision,
    ) -> Self {
        let outcome = match decision.session.sent {
            crate::sticky::Sent::Refused(reason) => Outcome::Refused(reason),
            _ => Outcome::None,
        };
        RequestCtx {
            protocol,
            listener,
            peer,
            https,
            times,
            decision,
            request_id: None,
            status: 0,
            bytes_out: 0,
            server: None,
            outcome,
            retries: 0,
            log_request: None,
        }
    }
}
