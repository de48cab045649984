//! The decision step, shared by every front end: from a protocol-neutral
//! view of a request to the group, the session its token names and the
//! server that answers it. No I/O, no protocol bytes: HTTP/1's parsed head
//! and an HTTP/2 stream's fields reach it through [`crate::http::Fields`].
//!
//! It owns routing (SPEC §1: host and path prefix to a group, the 421 rule
//! for a TLS name that routes elsewhere), the persistence lookup (the
//! group's [`Persistence`]), the hash key for `balance = "hash"`, and the
//! choice of server (SPEC §6: the session's server while it takes stuck
//! sessions, else the ring on rewrite mode's application value, else the
//! group's balancer). It never counts, logs or waits: callers do.

use std::net::{IpAddr, SocketAddr};

use crate::balance::{hash_key, ServerIdx};
use crate::config::{self, Balance, GroupIdx, HashKey, HostMatch};
use crate::error::ProxyError;
use crate::http::Fields;
use crate::proxy::context::RequestId;
use crate::sticky::{Persistence, Session};
use crate::worker::{CoreGroup, CoreView};

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

/// What the decision step reads of a request.
#[derive(Debug)]
pub struct RequestView<'a, F: ?Sized> {
    pub method: &'a str,
    /// The effective authority (`host[:port]`), validated by the front end.
    pub authority: Option<&'a [u8]>,
    /// The path and query.
    pub path: &'a [u8],
    pub fields: &'a F,
}

/// What the decision step chose for a request; owned, so it outlives the
/// request's head.
#[derive(Debug, Clone)]
pub struct Decision {
    pub group: GroupIdx,
    /// What the client's persistence token said.
    pub session: Session,
    /// The hash of the request's key, for `balance = "hash"`.
    pub key_hash: Option<u64>,
    /// Unix seconds when the head arrived (cookie expiry, token ages); 0
    /// in groups without persistence, which never read it.
    pub now: u64,
    /// The method's repetition has the same effect (RFC 9110 §9.2.2): the
    /// request may be sent again after a failure (SPEC §7).
    pub idempotent: bool,
}

/// Routes and looks up the session of one request.
pub fn decide<F: Fields + ?Sized>(
    view: &CoreView,
    conn: &Conn<'_>,
    request: &RequestView<'_, F>,
) -> Result<Decision, ProxyError> {
    let config = &view.snapshot.config;
    let listener = &config.listeners[conn.listener];
    let group = route_group(listener, request.authority, request.path);
    if conn.sni.is_some() && misdirected(listener, conn.sni, request.authority, request.path, group)
    {
        return Err(ProxyError::Misdirected);
    }
    let group = group.ok_or(ProxyError::NoRoute)?;
    let g = group.index();
    let persistence = &view.snapshot.groups[g].persistence;
    let now = if persistence.is_none() { 0 } else { unix_now() };
    let key_hash = hash_key_of(&config.groups[g], &view.groups[g], request, conn.peer.ip());
    Ok(Decision {
        group,
        session: persistence.lookup(request.fields, request.path, now),
        key_hash,
        now,
        idempotent: crate::http::is_idempotent(request.method),
    })
}

impl Conn<'_> {
    /// How this connection reached limpet, for the `X-Forwarded-*` fields
    /// the backend gets (SPEC §7), in every protocol.
    /// The peer is one of the listener's `trusted_proxies`.
    pub fn trusted_peer(&self, listener: &config::Listener) -> bool {
        let client_ip = self.peer.ip();
        listener
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&client_ip))
    }

    /// The request's id: the one a trusted proxy sent (`received`), so that
    /// one id follows the request through every hop, else a new one.
    pub fn request_id(
        &self,
        worker: &crate::worker::Worker,
        listener: &config::Listener,
        received: Option<&[u8]>,
    ) -> RequestId {
        received
            .filter(|_| self.trusted_peer(listener))
            .and_then(RequestId::from_trusted)
            .unwrap_or_else(|| RequestId::generate(worker.id))
    }

    /// How the client reached limpet, for the `X-Forwarded-*` fields.
    pub fn forwarding<'a>(
        &self,
        listener: &config::Listener,
        request_id: &'a [u8],
    ) -> crate::http::Forwarding<'a> {
        crate::http::Forwarding {
            client_ip: self.peer.ip(),
            trusted_peer: self.trusted_peer(listener),
            proto: if self.https { "https" } else { "http" },
            request_id,
        }
    }
}

impl Decision {
    /// The group's persistence in `view`.
    pub fn persistence<'v>(&self, view: &'v CoreView) -> &'v Persistence {
        &view.snapshot.groups[self.group.index()].persistence
    }

    /// The server a strict session (`on_server_down = "refuse"`) is pinned
    /// to: no failover or retry may move it elsewhere (SPEC §3.8). `None`
    /// without a valid token or in a group that moves sessions.
    pub fn pinned(&self, view: &CoreView) -> Option<ServerIdx> {
        let server = self.session.server?;
        let group = &view.snapshot.config.groups[self.group.index()];
        group.persistence.refuses_moves().then_some(server)
    }

    /// The answer to a strict session whose server cannot take it: `503`
    /// with the `Retry-After` of that server (SPEC §3.8).
    pub fn unavailable(&self, view: &CoreView, server: ServerIdx) -> ProxyError {
        let retry_after_secs = view.snapshot.groups[self.group.index()]
            .servers
            .get(server.get())
            .map_or(5, |s| s.retry_after_secs(std::time::Instant::now()));
        ProxyError::SessionUnavailable { retry_after_secs }
    }

    /// Chooses the server, skipping those in `tried` (connect failures):
    /// the server the session names while it takes stuck sessions (SPEC
    /// §6); else, in rewrite mode, the ring on the application's session
    /// value, so every core and node fail over alike (SPEC §4.4); else the
    /// group's balancer over this core's in-flight counts.
    pub fn pick(&self, view: &CoreView, tried: &[ServerIdx]) -> Option<ServerIdx> {
        let g = self.group.index();
        let group = &view.snapshot.groups[g];
        let servers = &group.servers;
        let fresh = |s: ServerIdx| !tried.contains(&s);
        if let Some(stuck) = self.session.server {
            if servers.get(stuck.get()).is_some_and(|v| v.takes_stuck()) && fresh(stuck) {
                return Some(stuck);
            }
        }
        let takes_new =
            |s: ServerIdx| servers.get(s.get()).is_some_and(|v| v.takes_new()) && fresh(s);
        if let Some(value) = &self.session.app_value {
            if let Some(server) = group.ring.pick(hash_key(value), takes_new) {
                return Some(server);
            }
        }
        let core = &view.groups[g];
        core.picker
            .borrow_mut()
            .pick(self.key_hash, takes_new, &core.servers[..])
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

/// The hash of the request's key for `balance = "hash"` (None: no key in
/// this request, or another algorithm).
fn hash_key_of<F: Fields + ?Sized>(
    group: &config::Group,
    core: &CoreGroup,
    request: &RequestView<'_, F>,
    client_ip: IpAddr,
) -> Option<u64> {
    let Balance::Hash { key, .. } = &group.balance else {
        return None;
    };
    match key {
        HashKey::Cookie(_) => {
            let finder = core.hash_cookie.as_ref()?;
            request
                .fields
                .values("cookie")
                .find_map(|value| finder.find(value))
                .map(hash_key)
        }
        HashKey::Header(name) => request.fields.values(name).next().map(hash_key),
        HashKey::ClientIp => Some(match client_ip {
            IpAddr::V4(ip) => hash_key(&ip.octets()),
            IpAddr::V6(ip) => hash_key(&ip.octets()),
        }),
        HashKey::Path => Some(hash_key(request.path)),
    }
}

/// Seconds since the Unix epoch: cookie expiry and signed-token ages.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
