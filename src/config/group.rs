//! `Group`: a pool of backend servers, how requests are balanced over them
//! and how sessions stick to them. Validation only; it never builds a
//! balancer or a token.

use std::num::NonZeroU32;
use std::ops::Range;

use super::cookie_name::{is_tchar, CookieName, COOKIE_NAME_RULE};
use super::error::ConfigError;
use super::health::Health;
use super::net::{self, Address};
use super::persistence::Persistence;
use super::raw;
use super::source::{KeyPath, Source};

/// Highest server weight (HAProxy's limit too); the hash ring gives each
/// server a number of points proportional to its weight.
const MAX_WEIGHT: i64 = 256;

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    /// File order, never empty; names and addresses (as written) are unique.
    pub servers: Vec<Server>,
    pub balance: Balance,
    pub persistence: Persistence,
    /// Idle pooled connections each worker keeps per server (0: no pooling).
    pub pool_max_idle_per_server: usize,
    pub health: Health,
    /// `[groups.NAME.tls]`: connect to the servers over TLS.
    pub tls: Option<super::tls::BackendTls>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    /// As written. A name is resolved by `crate::dns` at load and again
    /// every `[dns] interval`; the server's name (which its sessions'
    /// tokens depend on) stays whatever address it resolves to.
    pub address: Address,
    pub weight: NonZeroU32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Balance {
    /// Fewest requests in flight on this core, ties by smooth weighted round robin.
    #[default]
    LeastOutstanding,
    RoundRobin,
    /// The less loaded of two servers picked at random.
    RandomTwo,
    /// Consistent hashing of a request key through a ring. With
    /// `balance_factor`, a server with more than that times the average
    /// load is skipped (bounded loads).
    Hash {
        key: HashKey,
        balance_factor: Option<f64>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The value of this cookie (a valid cookie name).
    Cookie(String),
    /// The value of this header; the name is stored lowercase.
    Header(String),
    ClientIp,
    Path,
}

impl Group {
    /// `name_span` is where the group's name was written, when known.
    pub(super) fn build(
        src: &Source<'_>,
        name: &str,
        name_span: Option<Range<usize>>,
        raw: &raw::Group,
    ) -> Result<Self, ConfigError> {
        let at = KeyPath::root("groups").key(name);
        let name = src.name(name, name_span.clone(), &KeyPath::root("groups"))?;
        if raw.servers.is_empty() {
            let problem = format!("needs at least one server ([[{at}.servers]])");
            return Err(src.invalid(name_span, &at, problem));
        }
        let mut servers: Vec<Server> = Vec::with_capacity(raw.servers.len());
        for (i, raw_server) in raw.servers.iter().enumerate() {
            let server = Server::build(src, raw_server, &at.key("servers").index(i))?;
            if let Some(j) = servers.iter().position(|s| s.name == server.name) {
                let problem = format!("{:?} is already used by {at}.servers[{j}]", server.name);
                return Err(src.at(
                    &raw_server.name,
                    at.key("servers").index(i).key("name"),
                    problem,
                ));
            }
            if let Some(j) = servers.iter().position(|s| s.address == server.address) {
                let problem = format!("{} is already used by {at}.servers[{j}]", server.address);
                let path = at.key("servers").index(i).key("address");
                return Err(src.at(&raw_server.address, path, problem));
            }
            servers.push(server);
        }
        Ok(Self {
            balance: build_balance(src, raw, &at)?,
            persistence: Persistence::build(src, raw.persistence.as_ref(), &at.key("persistence"))?,
            health: Health::build(src, raw.health.as_ref(), &at.key("health"))?,
            tls: match &raw.tls {
                Some(tls) => Some(super::tls::BackendTls::build(src, tls, &at.key("tls"))?),
                None => None,
            },
            pool_max_idle_per_server: src.int(
                raw.pool_max_idle_per_server.as_ref(),
                raw::POOL_MAX_IDLE_PER_SERVER,
                0..=65_536,
                &at.key("pool_max_idle_per_server"),
            )?,
            name,
            servers,
        })
    }
}

impl Server {
    fn build(src: &Source<'_>, raw: &raw::Server, at: &KeyPath) -> Result<Self, ConfigError> {
        let name = src.name(raw.name.get_ref(), Some(raw.name.span()), &at.key("name"))?;
        let address = net::server_address(src, &raw.address, &at.key("address"))?;
        let weight: u32 = src.int(
            raw.weight.as_ref(),
            raw::WEIGHT,
            1..=MAX_WEIGHT,
            &at.key("weight"),
        )?;
        // Cannot fail (the range starts at 1); kept as an error, not a panic.
        let weight = NonZeroU32::new(weight).ok_or_else(|| {
            src.invalid(
                raw.weight.as_ref().map(|w| w.span()),
                at.key("weight"),
                "must be at least 1",
            )
        })?;
        Ok(Self {
            name,
            address,
            weight,
        })
    }
}

fn build_balance(src: &Source<'_>, raw: &raw::Group, at: &KeyPath) -> Result<Balance, ConfigError> {
    let is_hash = raw
        .balance
        .as_ref()
        .is_some_and(|b| *b.get_ref() == raw::Balance::Hash);
    if !is_hash {
        // Say "only with hash" rather than silently ignoring a key.
        for (key, value) in [
            ("hash_key", raw.hash_key.as_ref().map(|v| v.span())),
            (
                "balance_factor",
                raw.balance_factor.as_ref().map(|v| v.span()),
            ),
        ] {
            if let Some(span) = value {
                return Err(src.invalid(
                    Some(span),
                    at.key(key),
                    "applies only to balance = \"hash\"",
                ));
            }
        }
    }
    let Some(balance) = &raw.balance else {
        return Ok(Balance::default());
    };
    Ok(match balance.get_ref() {
        raw::Balance::LeastOutstanding => Balance::LeastOutstanding,
        raw::Balance::RoundRobin => Balance::RoundRobin,
        raw::Balance::RandomTwo => Balance::RandomTwo,
        raw::Balance::Hash => {
            let Some(hash_key) = &raw.hash_key else {
                return Err(src.at(
                    balance,
                    at.key("hash_key"),
                    "is required with balance = \"hash\"",
                ));
            };
            let key = parse_hash_key(hash_key.get_ref()).ok_or_else(|| {
                src.at(
                    hash_key,
                    at.key("hash_key"),
                    format_args!(
                        "{:?} must be \"client_ip\", \"path\", \"cookie:NAME\" or \"header:NAME\" \
                         (NAME: {COOKIE_NAME_RULE})",
                        hash_key.get_ref()
                    ),
                )
            })?;
            let balance_factor = match &raw.balance_factor {
                Some(factor) if !(factor.get_ref().is_finite() && *factor.get_ref() >= 1.0) => {
                    return Err(src.at(
                        factor,
                        at.key("balance_factor"),
                        "must be a number of at least 1.0",
                    ));
                }
                Some(factor) => Some(*factor.get_ref()),
                None => None,
            };
            Balance::Hash {
                key,
                balance_factor,
            }
        }
    })
}

fn parse_hash_key(text: &str) -> Option<HashKey> {
    match text {
        "client_ip" => return Some(HashKey::ClientIp),
        "path" => return Some(HashKey::Path),
        _ => {}
    }
    if let Some(name) = text.strip_prefix("cookie:") {
        return CookieName::new(name).map(|name| HashKey::Cookie(name.as_str().to_owned()));
    }
    let name = text.strip_prefix("header:")?;
    let valid =
        !name.is_empty() && name.len() <= CookieName::MAX_BYTES && name.bytes().all(is_tchar);
    valid.then(|| HashKey::Header(name.to_ascii_lowercase()))
}

/// The index of the group called `name` in `groups`, sorted by name.
pub(super) fn find(groups: &[Group], name: &str) -> Option<usize> {
    groups
        .binary_search_by(|group| group.name.as_str().cmp(name))
        .ok()
}
