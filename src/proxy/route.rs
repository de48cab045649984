//! From a request head to a routing decision and the head to forward, in one
//! synchronous step: the parsed head borrows the client's buffer, so
//! everything that needs it happens here, before the first await.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};

use crate::balance::{hash_key, ServerIdx};
use crate::config::{self, Balance, GroupIdx, HashKey, HostMatch};
use crate::control::Sticky;
use crate::error::ProxyError;
use crate::http::{self, BodyFraming, Forwarding, Version};
use crate::sticky::{policy, rewrite, RewriteLookup, Sent};
use crate::worker::{CoreGroup, CoreView, Finders, Stats, Worker};

/// How a request ended, recorded as it goes, for the access log.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: Cell<u16>,
    /// Response bytes sent to the client (head and body).
    pub bytes: Cell<u64>,
    pub server: Cell<Option<ServerIdx>>,
    /// What happened to the session, in words.
    pub session: Cell<&'static str>,
}

/// The access-log words for a refused token.
pub fn refusal_words(reason: crate::sticky::Refusal) -> &'static str {
    use crate::sticky::Refusal;
    match reason {
        Refusal::Garbled => "refused-garbled",
        Refusal::Unknown => "refused-unknown",
        Refusal::BadSignature => "refused-bad-signature",
        Refusal::Expired => "refused-expired",
        Refusal::Idle => "refused-idle",
    }
}

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

/// The group for a request: the listener's first route whose host and path
/// prefix match, else its default group (SPEC §1).
fn route_group(listener: &config::Listener, host: Option<&[u8]>, path: &[u8]) -> Option<GroupIdx> {
    let host = host.map(without_port);
    listener
        .routes
        .iter()
        .find(|route| {
            let host_ok = match (&route.host, host) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(HostMatch::Exact(name)), Some(host)) => {
                    host.eq_ignore_ascii_case(name.as_bytes())
                }
                (Some(HostMatch::Suffix(suffix)), Some(host)) => {
                    host.len() > suffix.len()
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
                }
            };
            host_ok
                && route
                    .path_prefix
                    .as_ref()
                    .is_none_or(|prefix| path.starts_with(prefix.as_bytes()))
        })
        .map(|route| route.group)
        .or(listener.default_group)
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
fn without_port(host: &[u8]) -> &[u8] {
    let end = if host.first() == Some(&b'[') {
        memchr::memchr(b']', host).map_or(host.len(), |i| i + 1)
    } else {
        memchr::memchr(b':', host).unwrap_or(host.len())
    };
    &host[..end]
}

/// The path of a request target: origin-form as is; absolute-form
/// (`http://host/path`) from the first `/` after the authority.
fn path_of(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') {
        return target;
    }
    let Some(scheme_end) = memchr::memmem::find(target, b"://") else {
        return target;
    };
    let authority = &target[scheme_end + 3..];
    memchr::memchr(b'/', authority).map_or(b"/", |i| &authority[i..])
}

/// The hash of the request's key for `balance = "hash"` (None: no key in
/// this request, or another algorithm).
fn hash_key_of(
    group: &config::Group,
    core: &CoreGroup,
    req: &http::Request<'_, '_>,
    client_ip: IpAddr,
    path: &[u8],
) -> Option<u64> {
    let Balance::Hash { key, .. } = &group.balance else {
        return None;
    };
    match key {
        HashKey::Cookie(_) => {
            let finder = core.hash_cookie.as_ref()?;
            http::headers_named(req.headers, "cookie")
                .find_map(|value| finder.find(value))
                .map(hash_key)
        }
        HashKey::Header(name) => http::headers_named(req.headers, name).next().map(hash_key),
        HashKey::ClientIp => Some(match client_ip {
            IpAddr::V4(ip) => hash_key(&ip.octets()),
            IpAddr::V6(ip) => hash_key(&ip.octets()),
        }),
        HashKey::Path => Some(hash_key(path)),
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
#[derive(Debug)]
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
    /// The hash of the request's key, for `balance = "hash"`.
    pub key_hash: Option<u64>,
    /// What the persistence cookie said.
    pub session: Session,
    /// Unix seconds when the head arrived (cookie expiry, token ages).
    pub now: u64,
    /// How it ended, as it goes.
    pub outcome: Outcome,
    /// The access log line's start, when the listener logs.
    pub log: Option<Box<crate::access_log::Entry>>,
    /// Arrived over TLS: cookies get `Secure` unless configured otherwise.
    pub https: bool,
}

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'a> {
    /// Index into the snapshot's listeners.
    pub listener: usize,
    pub peer: SocketAddr,
    /// Arrived over TLS.
    pub https: bool,
    /// The server name of the TLS handshake.
    pub sni: Option<&'a str>,
}

/// Whether a request for `host` on a connection whose TLS handshake named
/// `sni` must be refused with 421: the names differ and routing by the
/// handshake's name would pick another group (RFC 9110 §15.5.20; the
/// certificate presented was for the other name).
fn misdirected(
    listener: &config::Listener,
    sni: Option<&str>,
    host: Option<&[u8]>,
    path: &[u8],
    group: Option<GroupIdx>,
) -> bool {
    let (Some(sni), Some(host)) = (sni, host) else {
        return false;
    };
    if without_port(host).eq_ignore_ascii_case(sni.as_bytes()) {
        return false;
    }
    route_group(listener, Some(sni.as_bytes()), path) != group
}

/// Parses the head at the start of `buf`; `Ok(None)` when it is not complete
/// yet. On success the head to send to the backend is in `out`.
pub fn prepare(
    worker: &Worker,
    view: &CoreView,
    conn: &Conn<'_>,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<Request>, ProxyError> {
    let (listener, peer) = (conn.listener, conn.peer);
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let limit = view.limits.max_headers.min(MAX_HEADERS);
    let Some(req) = http::parse_request(buf, &mut headers[..limit], &view.limits)? else {
        return Ok(None);
    };
    let config = &view.snapshot.config;
    let listener_cfg = &config.listeners[listener];
    let path = path_of(req.target);
    let group = route_group(listener_cfg, req.host, path);
    if conn.sni.is_some() && misdirected(listener_cfg, conn.sni, req.host, path, group) {
        return Err(ProxyError::Misdirected);
    }
    let group = group.ok_or(ProxyError::NoRoute)?;
    let client_ip = peer.ip();
    let forwarding = Forwarding {
        client_ip,
        trusted_peer: listener_cfg
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&client_ip)),
        proto: if conn.https { "https" } else { "http" },
    };
    let group_idx = group.index();
    let finders = &view.groups[group_idx].finders;
    let key_hash = hash_key_of(
        &config.groups[group_idx],
        &view.groups[group_idx],
        &req,
        client_ip,
        path,
    );
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
    let outcome = Outcome::default();
    outcome.session.set("none");
    if let Sent::Refused(reason) = session.sent() {
        Stats::bump(&worker.stats.sticky_refused[Stats::refusal_index(reason)]);
        log::debug!("session cookie from {peer} refused ({})", reason.label());
        outcome.session.set(refusal_words(reason));
    }
    let log = (worker.access.enabled() && listener_cfg.access_log.is_some()).then(|| {
        Box::new(crate::access_log::Entry {
            started: std::time::Instant::now(),
            client: client_ip,
            request: format!("{} {}", req.method, String::from_utf8_lossy(req.target)).into(),
            status: 0,
            bytes: 0,
            server: None,
            session: "none",
        })
    });
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
        key_hash,
        session,
        now,
        outcome,
        log,
        https: conn.https,
    }))
}
