//! One request from its head to its log line, whatever the protocol: what
//! the decision step chose, when each step happened, and how it ended.
//! Every front end builds one per request (an HTTP/1 request, an HTTP/2
//! stream) and hands it to the shared steps; the access log, the metrics
//! and the counters read it at the end, so a new field is filled in one
//! place and read in another without reopening any signature in between.
//!
//! Timestamps come from `worker::now()`, the reading the connection's
//! current wake-up has already taken, so they cost no extra clock read.

use crate::worker::Tick;
use std::net::SocketAddr;

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
    pub accepted: Tick,
    /// The request head started to arrive (for a kept-alive connection:
    /// the wake-up that found its first bytes).
    pub head: Tick,
    /// A backend connection was in hand (pooled or new).
    pub connected: Option<Tick>,
    /// The backend's response head was complete.
    pub first_byte: Option<Tick>,
    /// The last response byte reached the client (or the request failed).
    pub done: Option<Tick>,
}

impl Times {
    pub fn new(accepted: Tick, head: Tick) -> Self {
        Times {
            accepted,
            head,
            connected: None,
            first_byte: None,
            done: None,
        }
    }
}

/// The longest request id limpet keeps from a trusted peer; a longer one
/// is replaced by a generated one.
pub const MAX_REQUEST_ID: usize = 64;

/// A request id (`X-Request-Id`): the access log and the backend see the
/// same one. Held inline, so that assigning one allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_REQUEST_ID],
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RequestId({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

/// This thread's generator: the `<start>-<worker>-` prefix rendered once
/// (for the worker it was rendered for) and the ids generated so far.
struct Generator {
    worker: usize,
    prefix: RequestId,
    count: u64,
}

thread_local! {
    /// One worker, one core, one generator.
    static GENERATOR: std::cell::RefCell<Option<Generator>> = const { std::cell::RefCell::new(None) };
}

/// The process's start, in Unix seconds, read once: with the worker id and
/// the per-core counter it makes generated ids unique across restarts.
static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

impl RequestId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A value a trusted peer sent, if it is 1 to [`MAX_REQUEST_ID`]
    /// visible ASCII characters (anything else could break a log line or
    /// a header).
    pub fn from_trusted(value: &[u8]) -> Option<Self> {
        if value.is_empty()
            || value.len() > MAX_REQUEST_ID
            || !value.iter().all(|b| b.is_ascii_graphic())
        {
            return None;
        }
        let mut id = RequestId {
            len: value.len() as u8,
            bytes: [0; MAX_REQUEST_ID],
        };
        id.bytes[..value.len()].copy_from_slice(value);
        Some(id)
    }

    /// A new id, `<start>-<worker>-<n>` in hex: the process's start time,
    /// the worker and this core's counter. No syscall, no lock, no
    /// allocation: the start is read once per process.
    pub fn generate(worker: usize) -> Self {
        GENERATOR.with(|generator| {
            let mut generator = generator.borrow_mut();
            let generator = match &mut *generator {
                Some(g) if g.worker == worker => g,
                slot => slot.insert(Generator {
                    worker,
                    prefix: RequestId::prefix(worker),
                    count: 0,
                }),
            };
            let mut id = generator.prefix;
            id.push_hex(generator.count);
            generator.count = generator.count.wrapping_add(1);
            id
        })
    }

    /// `<start>-<worker>-`, rendered once per thread.
    fn prefix(worker: usize) -> Self {
        let start = *START.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let mut id = RequestId {
            len: 0,
            bytes: [0; MAX_REQUEST_ID],
        };
        id.push_hex(start);
        id.bytes[usize::from(id.len)] = b'-';
        id.len += 1;
        id.push_hex(worker as u64);
        id.bytes[usize::from(id.len)] = b'-';
        id.len += 1;
        id
    }

    /// At most 16 digits: three of these and two dashes fit in 64 bytes.
    fn push_hex(&mut self, value: u64) {
        let digits = (16 - value.leading_zeros() as usize / 4).max(1);
        for i in (0..digits).rev() {
            let nibble = (value >> (i * 4)) & 0xf;
            self.bytes[usize::from(self.len)] = b"0123456789abcdef"[nibble as usize];
            self.len += 1;
        }
    }
}

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
    /// Request bytes received from the client: the head, and the body when
    /// it has a `Content-Length`.
    pub bytes_in: u64,
    /// Response bytes sent to the client (head and body).
    pub bytes_out: u64,
    /// The server that answered, or was tried last.
    pub server: Option<ServerIdx>,
    /// What happened to the session.
    pub outcome: Outcome,
    /// How many times the request was sent again (SPEC §7).
    pub retries: u32,
    /// `METHOD target`, `Host` and `User-Agent`, when the listener keeps
    /// an access log (a buffer of the worker's access log, given back
    /// with the line).
    pub log_request: Option<crate::access_log::LogText>,
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
            bytes_in: 0,
            bytes_out: 0,
            server: None,
            outcome,
            retries: 0,
            log_request: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_hex() {
        let a = RequestId::generate(3);
        let b = RequestId::generate(3);
        assert_ne!(a, b);
        let text = std::str::from_utf8(a.as_bytes()).unwrap();
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts.len(), 3, "{text}");
        assert_eq!(parts[1], "3");
        assert!(parts.iter().all(|p| u64::from_str_radix(p, 16).is_ok()));
        let big = RequestId::generate(usize::MAX);
        assert!(big.as_bytes().len() <= MAX_REQUEST_ID);
    }

    #[test]
    fn trusted_ids_are_visible_ascii_up_to_the_limit() {
        assert_eq!(
            RequestId::from_trusted(b"abc-1").unwrap().as_bytes(),
            b"abc-1"
        );
        assert!(RequestId::from_trusted(b"").is_none());
        assert!(RequestId::from_trusted(b"a b").is_none());
        assert!(RequestId::from_trusted(b"a\"\x01").is_none());
        assert!(RequestId::from_trusted(&[b'a'; MAX_REQUEST_ID + 1]).is_none());
        assert!(RequestId::from_trusted(&[b'a'; MAX_REQUEST_ID]).is_some());
    }
}
