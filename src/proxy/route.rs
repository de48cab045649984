//! From a request head to a routing decision and the head to forward, in one
//! synchronous step: the parsed head borrows the client's buffer, so
//! everything that needs it happens here, before the first await.

use std::net::SocketAddr;

use crate::balance::ServerIdx;
use crate::control::Sticky;
use crate::error::ProxyError;
use crate::http::{self, BodyFraming, Forwarding, Version};
use crate::sticky::{policy, rewrite, RewriteLookup, Sent};
use crate::worker::{CoreView, Finders, Stats, Worker};

/// What a request's persistence cookie said, kept past the head's borrow.
#[derive(Debug, Clone)]
pub enum Session {
    /// The group has no persistence.
    None,
    Insert(policy::Lookup),
    Rewrite(RewriteSession),
}

/// Rewrite mode's lookup with the application's cookie value copied out of
/// the client buffer: failover hashes it, and a re-issued cookie carries it.
#[derive(Debug, Clone)]
pub struct RewriteSession {
    pub server: Option<ServerIdx>,
    pub sent: Sent,
    pub app_value: Option<Vec<u8>>,
    pub quoted: bool,
}

impl RewriteSession {
    /// The policy's view of it, for `must_reissue` and `issued`.
    pub fn lookup(&self) -> RewriteLookup<'_> {
        RewriteLookup {
            server: self.server,
            sent: self.sent,
            app_value: self.app_value.as_deref(),
            quoted: self.quoted,
        }
    }
}

impl Session {
    /// The server the client's session names, if its token was valid.
    pub fn server(&self) -> Option<ServerIdx> {
        match self {
            Session::None => None,
            Session::Insert(lookup) => lookup.server,
            Session::Rewrite(rewrite) => rewrite.server,
        }
    }

    /// The application's session value, hashed on the ring when its
    /// server cannot take it (SPEC §4.4), so every core and node agree.
    pub fn app_value(&self) -> Option<&[u8]> {
        match self {
            Session::Rewrite(rewrite) => rewrite.app_value.as_deref(),
            _ => None,
        }
    }

    fn sent(&self) -> Sent {
        match self {
            Session::None => Sent::Absent,
            Session::Insert(lookup) => lookup.sent,
            Session::Rewrite(rewrite) => rewrite.sent,
        }
    }
}

/// Seconds since the Unix epoch: cookie expiry and signed-token ages.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The most headers a request may have, whatever the configuration says
/// (`limits.max_headers` is validated against it).
pub const MAX_HEADERS: usize = 256;

/// What the rest of the pipeline needs to know of a request once its head
/// has been parsed and rewritten.
#[derive(Debug, Clone)]
pub struct Request {
    /// Bytes of the head in the client buffer.
    pub head_len: usize,
    pub body: BodyFraming,
    pub version: Version,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// Idempotent and without a body: safe to send twice (SPEC §7).
    pub retryable: bool,
    pub is_head: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
    /// Index into the snapshot's groups.
    pub group: usize,
    /// What the persistence cookie said.
    pub session: Session,
    /// Unix seconds when the head arrived (cookie expiry, token ages).
    pub now: u64,
}

/// Parses the head at the start of `buf`; `Ok(None)` when it is not complete
/// yet. On success the head to send to the backend is in `out`.
pub fn prepare(
    worker: &Worker,
    view: &CoreView,
    listener: usize,
    peer: SocketAddr,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<Request>, ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let limit = view.limits.max_headers.min(MAX_HEADERS);
    let Some(req) = http::parse_request(buf, &mut headers[..limit], &view.limits)? else {
        return Ok(None);
    };
    let config = &view.snapshot.config;
    let listener_cfg = &config.listeners[listener];
    let group = listener_cfg.default_group.ok_or(ProxyError::NoRoute)?;
    let client_ip = peer.ip();
    let forwarding = Forwarding {
        client_ip,
        trusted_peer: listener_cfg
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&client_ip)),
        proto: "http",
    };
    let group_idx = group.index();
    let finders = &view.groups[group_idx].finders;
    let sticky = &view.snapshot.groups[group_idx].sticky;
    let now = if matches!(sticky, Sticky::None) {
        0
    } else {
        unix_now()
    };
    let cookies = || http::headers_named(req.headers, "cookie");
    out.clear();
    // The persistence cookies never reach the backend as the client sent
    // them: insert mode removes them (SPEC §3.6), rewrite mode gives the
    // application back its own value (SPEC §4.2).
    let session = match (sticky, finders) {
        (Sticky::Insert { tokens, .. }, Finders::Insert(finders)) => {
            let lookup = policy::lookup_insert(finders, tokens, cookies(), now);
            http::write_request_head(&req, &forwarding, out, |value, out| {
                finders.strip_into(value, out);
            });
            Session::Insert(lookup)
        }
        (Sticky::Rewrite { tokens, .. }, Finders::Rewrite(finder)) => {
            let lookup = policy::lookup_rewrite(finder, tokens, cookies(), now);
            http::write_request_head(&req, &forwarding, out, |value, out| {
                rewrite::restore_into(value, finder, out);
            });
            Session::Rewrite(RewriteSession {
                server: lookup.server,
                sent: lookup.sent,
                app_value: lookup.app_value.map(<[u8]>::to_vec),
                quoted: lookup.quoted,
            })
        }
        _ => {
            http::write_request_head(&req, &forwarding, out, |value, out| {
                out.extend_from_slice(value)
            });
            Session::None
        }
    };
    if let Sent::Refused(reason) = session.sent() {
        Stats::bump(&worker.stats.sticky_refused[Stats::refusal_index(reason)]);
        log::debug!("session cookie from {peer} refused ({})", reason.label());
    }
    Ok(Some(Request {
        head_len: req.head_len,
        body: req.body,
        version: req.version,
        keep_alive: req.keep_alive,
        retryable: req.is_idempotent() && req.body == BodyFraming::None,
        is_head: req.is_head(),
        expect_continue: req.expect_continue,
        upgrade: req.upgrade,
        group: group_idx,
        session,
        now,
    }))
}
