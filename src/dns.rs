//! Server names to addresses. A server written as `host:port` is resolved
//! when a configuration is loaded (a name that does not resolve makes the
//! configuration invalid) and again every `[dns] interval` on a thread of
//! its own, never on a worker and never blocking the control thread.
//!
//! One server is one backend whatever its name resolves to: among the
//! addresses a name has, the one in use is kept while it stays in the
//! answer, otherwise the first in the resolver's order (IPv4 and IPv6 as
//! the resolver sorts them) is taken. Its server name, and so its sessions'
//! tokens, never change with its address.
//!
//! Resolution goes through [`Resolve`], so that tests can answer for DNS.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use std::path::Path;

use crate::config::{self, Address, Config, ConfigError};

/// Something that turns a host name into addresses. Called only off the
/// request path and off the control thread's event loop: it may block.
pub trait Resolve: Send + Sync {
    /// Every address `host` has, with `port`, in the resolver's order.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS as
/// `/etc/nsswitch.conf` says).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// Resolves `host`: the addresses in the resolver's order without
/// repeats (getaddrinfo gives one per socket type); an empty answer is an
/// error.
pub fn lookup(resolver: &dyn Resolve, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolver.resolve(host, port)? {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(addrs)
}

/// The address a server uses among `candidates`: `current` while it is one
/// of them (no move while the name still has it), else the first.
pub fn choose(current: Option<SocketAddr>, candidates: &[SocketAddr]) -> Option<SocketAddr> {
    match current {
        Some(addr) if candidates.contains(&addr) => Some(addr),
        _ => candidates.first().copied(),
    }
}

/// Every server's candidate addresses, index for index with
/// `config.groups[g].servers`; never an empty list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved(Vec<Vec<Vec<SocketAddr>>>);

impl Resolved {
    /// One address per server, as given.
    pub(crate) fn from_addrs(addrs: &[Vec<SocketAddr>]) -> Resolved {
        Resolved(
            addrs
                .iter()
                .map(|group| group.iter().map(|&addr| vec![addr]).collect())
                .collect(),
        )
    }

    /// The candidates of server `s` of group `g` (empty if out of range).
    pub fn server(&self, g: usize, s: usize) -> &[SocketAddr] {
        self.0
            .get(g)
            .and_then(|group| group.get(s))
            .map_or(&[], Vec::as_slice)
    }
}

/// A server name that does not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{path} {address:?} does not resolve: {source}")]
pub struct ResolveError {
    /// The group's name and the server's index in it.
    pub group: String,
    pub server: usize,
    /// `groups.NAME.servers[I].address`.
    pub path: String,
    /// As written (`host:port`).
    pub address: String,
    #[source]
    pub source: io::Error,
}

/// Resolves every server name of `config`, each distinct name once.
pub fn resolve(config: &Config, resolver: &dyn Resolve) -> Result<Resolved, ResolveError> {
    let mut answers: HashMap<(&str, u16), Vec<SocketAddr>> = HashMap::new();
    let mut groups = Vec::with_capacity(config.groups.len());
    for group in &config.groups {
        let mut servers = Vec::with_capacity(group.servers.len());
        for (s, server) in group.servers.iter().enumerate() {
            let candidates = match &server.address {
                Address::Ip(addr) => vec![*addr],
                Address::Name { host, port } => match answers.get(&(host.as_str(), *port)) {
                    Some(known) => known.clone(),
                    None => {
                        let found =
                            lookup(resolver, host, *port).map_err(|source| ResolveError {
                                group: group.name.clone(),
                                server: s,
                                path: format!("groups.{}.servers[{s}].address", group.name),
                                address: server.address.to_string(),
                                source,
                            })?;
                        answers.insert((host, *port), found.clone());
                        found
                    }
                },
            };
            servers.push(candidates);
        }
        groups.push(servers);
    }
    Ok(Resolved(groups))
}

/// Validates `text` and resolves its server names; a name that does not
/// resolve is an error at the line that wrote it. Blocks while resolving.
pub fn parse_resolved(
    text: &str,
    origin: &str,
    resolver: &dyn Resolve,
) -> Result<(Config, Resolved), ConfigError> {
    parse_resolved_in(text, origin, Path::new(""), resolver)
}

/// `config::load`, then resolves the server names as `parse_resolved` does.
pub fn load_resolved(
    path: &Path,
    resolver: &dyn Resolve,
) -> Result<(Config, Resolved), ConfigError> {
    let text = config::read(path)?;
    parse_resolved_in(
        &text,
        &path.display().to_string(),
        config::base_of(path),
        resolver,
    )
}

fn parse_resolved_in(
    text: &str,
    origin: &str,
    base: &Path,
    resolver: &dyn Resolve,
) -> Result<(Config, Resolved), ConfigError> {
    let config = config::parse_in(text, origin, base)?;
    match resolve(&config, resolver) {
        Ok(resolved) => Ok((config, resolved)),
        Err(err) => {
            let problem = format!("{:?} does not resolve: {}", err.address, err.source);
            Err(config::server_address_error(
                text, origin, &err.group, err.server, &err.path, problem,
            ))
        }
    }
}

/// Every distinct `(host, port)` that `config`'s servers name.
pub fn names(config: &Config) -> Vec<(String, u16)> {
    let mut names: Vec<(String, u16)> = Vec::new();
    for server in config.groups.iter().flat_map(|g| &g.servers) {
        if let Address::Name { host, port } = &server.address {
            if !names.iter().any(|(h, p)| h == host && p == port) {
                names.push((host.clone(), *port));
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<SocketAddr>);

    impl Resolve for Fixed {
        fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            if host.ends_with(".invalid") {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such name"));
            }
            Ok(self
                .0
                .iter()
                .map(|a| SocketAddr::new(a.ip(), port))
                .collect())
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn choose_keeps_the_current_address_while_the_name_has_it() {
        let set = [addr("10.0.0.1:80"), addr("10.0.0.2:80")];
        assert_eq!(choose(None, &set), Some(set[0]));
        assert_eq!(choose(Some(set[1]), &set), Some(set[1]));
        assert_eq!(choose(Some(addr("10.0.0.9:80")), &set), Some(set[0]));
        assert_eq!(choose(Some(set[0]), &[]), None);
    }

    #[test]
    fn lookup_drops_repeats_and_refuses_an_empty_answer() {
        let a = addr("10.0.0.1:1");
        let twice = Fixed(vec![a, addr("[::1]:1"), a]);
        assert_eq!(
            lookup(&twice, "x", 80).unwrap(),
            [addr("10.0.0.1:80"), addr("[::1]:80")]
        );
        let err = lookup(&Fixed(Vec::new()), "x", 80).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    const CONFIG: &str =
        "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"g\"\n\
        [[groups.g.servers]]\nname = \"a\"\naddress = \"Backend.Example:8080\"\n\
        [[groups.g.servers]]\nname = \"b\"\naddress = \"127.0.0.1:9\"\n\
        [[groups.h.servers]]\nname = \"c\"\naddress = \"backend.example:8080\"\n";

    #[test]
    fn resolve_gives_every_server_its_candidates() {
        let config = crate::config::parse(CONFIG, "t.toml").unwrap();
        assert_eq!(names(&config), [("backend.example".to_owned(), 8080)]);
        let resolved = resolve(&config, &Fixed(vec![addr("10.1.1.1:0")])).unwrap();
        assert_eq!(resolved.server(0, 0), [addr("10.1.1.1:8080")]);
        assert_eq!(resolved.server(0, 1), [addr("127.0.0.1:9")]);
        assert_eq!(resolved.server(1, 0), [addr("10.1.1.1:8080")]);
        assert_eq!(resolved.server(5, 0), []);
    }

    #[test]
    fn a_name_that_does_not_resolve_is_named() {
        let text = CONFIG.replace("backend.example:8080\"\n", "gone.invalid:81\"\n");
        let config = crate::config::parse(&text, "t.toml").unwrap();
        let err = resolve(&config, &Fixed(vec![addr("10.1.1.1:0")])).unwrap_err();
        assert_eq!(err.group, "h");
        assert_eq!(err.server, 0);
        assert_eq!(
            err.to_string(),
            "groups.h.servers[0].address \"gone.invalid:81\" does not resolve: no such name"
        );
    }

    #[test]
    fn the_system_resolver_knows_localhost() {
        let found = lookup(&SystemResolver, "localhost", 8080).unwrap();
        assert!(found
            .iter()
            .all(|a| a.port() == 8080 && a.ip().is_loopback()));
    }
}
