//! The immutable picture of the servers that the control thread sends to
//! every worker: validated configuration, server states, and the structures
//! built from them once per change (token tables, rings), so that no worker
//! ever builds them on the request path.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::balance::{Ring, RingError};
use crate::config::{self, Config};
use crate::net::{ListenerId, ListenerView};
use crate::sticky::{
    self, ByScheme, CookieError, CookieFinder, HeaderMode, InsertCookie, InsertFinders, InsertMode,
    Persistence, RewriteCookie, RewriteMode, Signing, TokenError, TokenKey, TokenTable,
};

/// A stable per-process number for a backend address. The control thread
/// keeps it across reloads, so that a worker's pool of idle connections,
/// indexed by it, survives a reload for every server that stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub u32);

impl BackendId {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// What the operator wants of a server (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    Enabled,
    Draining,
    Disabled,
}

/// What the health checks say of a server (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    Ejected,
}

/// One server as workers see it.
#[derive(Debug, Clone)]
pub struct ServerView {
    pub backend: BackendId,
    /// Where it is reached now: its address, or what its name resolves to.
    pub addr: SocketAddr,
    pub admin: AdminState,
    pub health: Health,
    /// Draining for longer than the group's `drain_timeout`: its sessions
    /// move at their next request.
    pub drain_expired: bool,
    /// While draining: when it began, and the timeout that applies (the
    /// drain call's own, else the group's `drain_timeout`).
    pub drain_since: Option<std::time::Instant>,
    pub drain_timeout: Option<std::time::Duration>,
    /// When its ejection ends, while ejected (a strict session's
    /// `Retry-After`).
    pub ejected_until: Option<std::time::Instant>,
}

impl ServerView {
    /// May the balancer give this server a request with no session?
    pub fn takes_new(&self) -> bool {
        self.admin == AdminState::Enabled && self.health == Health::Up
    }

    /// May a request whose session names this server go there (SPEC §6)?
    pub fn takes_stuck(&self) -> bool {
        let admitted = match self.admin {
            AdminState::Enabled => true,
            AdminState::Draining => !self.drain_expired,
            AdminState::Disabled => false,
        };
        admitted && self.health == Health::Up
    }

    /// The `Retry-After` seconds of a strict session refused on this
    /// server (SPEC §3.8): what is left of its ejection, else 5.
    pub fn retry_after_secs(&self, now: std::time::Instant) -> u64 {
        const DEFAULT_SECS: u64 = 5;
        match self.ejected_until {
            Some(until) if self.health == Health::Ejected => {
                let left = until.saturating_duration_since(now);
                // Rounded up, and never 0: "now" would invite a hot loop.
                (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
            }
            _ => DEFAULT_SECS,
        }
    }
}

/// One server group as workers see it, index for index with
/// `config.groups[g].servers`.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub servers: Vec<ServerView>,
    /// The group's session persistence, built once per snapshot (shared
    /// read-only: a config change builds a new one).
    pub persistence: Arc<Persistence>,
    /// The consistent-hash ring over the group's servers (weights applied):
    /// hash balancing and rewrite-mode failover walk it.
    pub ring: Arc<Ring>,
}

/// A group whose persistence or ring cannot be built (configuration
/// validation is meant to catch every cause first).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("group {group}: tokens: {source}")]
    Tokens {
        group: String,
        #[source]
        source: TokenError,
    },
    #[error("group {group}: cookie: {source}")]
    Cookie {
        group: String,
        #[source]
        source: CookieError,
    },
    #[error("group {group}: ring: {source}")]
    Ring {
        group: String,
        #[source]
        source: RingError,
    },
    #[error(transparent)]
    Resolve(#[from] crate::dns::ResolveError),
    #[error("group {group}: server {server}: no address (its name was not resolved)")]
    Unresolved { group: String, server: String },
}

fn token_table(
    group: &config::Group,
    tokens: &config::TokenConfig,
    timeout: Option<std::time::Duration>,
) -> Result<TokenTable, TokenError> {
    let key = TokenKey::from_secret(tokens.secret.as_deref());
    let signing = if tokens.keys.is_empty() {
        None
    } else {
        let keys: Vec<&str> = tokens.keys.iter().map(String::as_str).collect();
        Some(
            Signing::new(
                &keys,
                tokens.max_age.map(|d| d.as_secs()),
                tokens.max_idle.map(|d| d.as_secs()),
            )?
            .with_timeout(timeout.map(|d| d.as_secs()))?,
        )
    };
    let names: Vec<&str> = group.servers.iter().map(|s| s.name.as_str()).collect();
    TokenTable::build(&key, &group.name, &names, signing)
}

/// The cookie attributes on a plain-HTTP (`https` false) or an HTTPS
/// listener: `Secure` unless configured, is on exactly over HTTPS.
fn cookie_attrs(attrs: &config::CookieAttrs, https: bool) -> sticky::CookieAttrs<'_> {
    sticky::CookieAttrs {
        path: &attrs.path,
        domain: attrs.domain.as_deref(),
        http_only: attrs.http_only,
        secure: attrs.secure.unwrap_or(https),
        same_site: attrs.same_site,
        partitioned: attrs.partitioned,
    }
}

/// Builds a group's persistence from its configuration: token table,
/// cookie writers (plain HTTP and HTTPS) and cookie finders, once.
pub fn build_persistence(group: &config::Group) -> Result<Persistence, BuildError> {
    let tokens_err = |source| BuildError::Tokens {
        group: group.name.clone(),
        source,
    };
    let cookie_err = |source| BuildError::Cookie {
        group: group.name.clone(),
        source,
    };
    Ok(match &group.persistence {
        config::Persistence::None => Persistence::None,
        config::Persistence::Insert(insert) => {
            let build = |https| {
                InsertCookie::build(
                    insert.cookie.as_str(),
                    insert.cors_cookie.as_ref().map(|c| c.as_str()),
                    insert.timeout.map(|d| d.as_secs()),
                    &cookie_attrs(&insert.cookie_attrs, https),
                )
                .map_err(cookie_err)
            };
            let finders = InsertFinders::new(
                insert.cookie.as_str(),
                insert.cors_cookie.as_ref().map(|c| c.as_str()),
            )
            .map_err(cookie_err)?;
            Persistence::Insert(Box::new(InsertMode::new(
                token_table(group, &insert.tokens, None).map_err(tokens_err)?,
                ByScheme::build(build)?,
                finders,
            )))
        }
        config::Persistence::Rewrite(rewrite) => {
            let build = |https| {
                RewriteCookie::build(
                    rewrite.cookie.as_str(),
                    &cookie_attrs(&rewrite.cookie_attrs, https),
                )
                .map_err(cookie_err)
            };
            let finder = CookieFinder::new(rewrite.cookie.as_str()).map_err(cookie_err)?;
            Persistence::Rewrite(Box::new(RewriteMode::new(
                token_table(group, &rewrite.tokens, None).map_err(tokens_err)?,
                ByScheme::build(build)?,
                finder,
            )))
        }
        config::Persistence::Header(header) => Persistence::Header(Box::new(HeaderMode::new(
            token_table(group, &header.tokens, header.timeout).map_err(tokens_err)?,
            &header.header,
            header.query.as_deref(),
        ))),
    })
}

/// Builds a group's ring from its servers' names and weights.
pub fn build_ring(group: &config::Group) -> Result<Ring, BuildError> {
    let servers: Vec<(&str, _)> = group
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.weight))
        .collect();
    Ring::build(&servers).map_err(|source| BuildError::Ring {
        group: group.name.clone(),
        source,
    })
}

/// Everything a worker needs to route, in one immutable value.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot the control thread builds.
    pub generation: u64,
    pub config: Arc<Config>,
    /// Index for index with `config.groups`.
    pub groups: Vec<GroupView>,
    /// Each listener's id and bound address, index for index with
    /// `config.listeners`.
    pub listeners: Vec<ListenerView>,
    /// From a [`ListenerId`] to its index in `config.listeners`; `None` for
    /// a listener a reload closed.
    pub listener_index: Vec<Option<u32>>,
    /// One more than the largest [`BackendId`] in use.
    pub backend_count: usize,
    /// Reloads applied and refused since start (the same counts in every
    /// snapshot).
    pub reloads: Arc<super::ReloadCounts>,
}

impl Snapshot {
    /// Each listener's configuration and the address it is bound to, in
    /// configuration order.
    pub fn bound_listeners(&self) -> impl Iterator<Item = (&config::Listener, SocketAddr)> {
        self.config
            .listeners
            .iter()
            .zip(&self.listeners)
            .map(|(listener, view)| (listener, view.addr))
    }

    /// The index in `config.listeners` of listener `id`, or `None` once a
    /// reload has closed it (its connections close at their next request).
    #[inline]
    pub fn listener(&self, id: ListenerId) -> Option<usize> {
        self.listener_index
            .get(id.0 as usize)
            .copied()
            .flatten()
            .map(|i| i as usize)
    }
}
