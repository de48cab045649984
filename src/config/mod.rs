//! Configuration: one TOML file turned into a validated, typed `Config`.
//!
//! `raw` mirrors the file's shape with serde (unknown keys refused); the
//! other files each validate one part into the types the rest of limpet
//! uses, so nothing downstream ever re-checks a value or meets a zero
//! weight, an unknown group or a malformed cookie name. Every refusal is a
//! `ConfigError` naming the file, the line and the key path. `parse` and
//! `load` read the text they are given and the certificate files it names
//! (relative to its directory) and nothing else: they never resolve names,
//! bind sockets or look at the machine (`crate::dns::load_resolved` adds
//! name resolution on top, so that a name that does not resolve is refused
//! like any other mistake).

mod admin;
mod cookie_name;
mod dns;
mod duration;
mod error;
mod group;
mod health;
mod limits;
mod listener;
mod net;
mod persistence;
mod raw;
mod source;
mod timeouts;
mod tls;
mod workers;

#[cfg(test)]
mod keys;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use self::admin::Admin;
pub use self::cookie_name::CookieName;
pub use self::dns::Dns;
pub use self::error::ConfigError;
pub use self::group::{Balance, Group, HashKey, Server};
pub use self::health::{ActiveCheck, Health, Passive};
pub use self::limits::Limits;
pub use self::listener::{AccessLog, HostMatch, Listener, LogFormat, Route};
pub use self::net::Address;
pub use self::persistence::{
    CookieAttrs, HeaderConfig, InsertConfig, OnServerDown, Persistence, RewriteConfig, SameSite,
    TokenConfig,
};
pub use self::timeouts::Timeouts;
pub use self::tls::{BackendTls, CertFiles, ListenerTls, ALPN_H2, ALPN_HTTP1};
pub use self::workers::{Driver, Workers};

/// A duration as a timeout key of the file takes it (`"30s"`, `"1m30s"`,
/// `"500ms"`; at least 1 ms, at most a year), or why not: for the admin
/// API's `?timeout=`, which must read like the file.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    duration::parse(text, duration::MIN_TIMEOUT)
}

use self::source::{KeyPath, Source};

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub workers: Workers,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub dns: Dns,
    /// `[log] format`: how the process log (stderr) is written.
    pub log_format: LogFormat,
    /// Never empty; names and addresses are unique.
    pub listeners: Vec<Listener>,
    /// Never empty, sorted by name (TOML tables have no order), so a
    /// `GroupIdx` is a position in this list.
    pub groups: Vec<Group>,
    pub admin: Option<Admin>,
}

/// A position in `Config::groups`; valid for the `Config` it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupIdx(pub u32);

impl GroupIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl Config {
    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<GroupIdx> {
        group::find(&self.groups, name)
            .and_then(|index| u32::try_from(index).ok())
            .map(GroupIdx)
    }
}

/// Validates `text`; `origin` names it in messages (usually the file name).
/// Relative file paths in it (certificates) are taken from the working
/// directory.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_in(text, origin, Path::new(""))
}

/// Validates `text`, resolving relative file paths against `base`.
pub fn parse_in(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
    let src = Source::new(origin, text, base);
    let raw: raw::Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|err| src.toml_error(err))?;
    // Cannot fail once the first pass succeeded; if it somehow did, only
    // the line numbers of group-level messages would be lost.
    let group_keys: raw::GroupKeys = toml::from_str(text).unwrap_or_default();
    build(&src, &raw, &group_keys)
}

/// Reads and validates the file at `path`, named as given in messages;
/// relative file paths in it are taken from its directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse_in(&read(path)?, &path.display().to_string(), base_of(path))
}

/// The directory relative paths in the file at `path` are taken from.
pub fn base_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// Reads a configuration file's text.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A problem with the address of server `server` of group `group` in
/// `text` (a name that does not resolve), as an error at the line that
/// wrote the address; `path` is its key path.
pub fn server_address_error(
    text: &str,
    origin: &str,
    group: &str,
    server: usize,
    path: &str,
    problem: String,
) -> ConfigError {
    let src = Source::new(origin, text, Path::new(""));
    // The text parsed once already; if it somehow did not, only the line is lost.
    let raw: Option<raw::Config> = toml::from_str(text).ok();
    let span = raw
        .as_ref()
        .and_then(|raw| raw.groups.get(group))
        .and_then(|group| group.servers.get(server))
        .map(|server| server.address.span());
    src.invalid(span, path, problem)
}

fn build(
    src: &Source<'_>,
    raw: &raw::Config,
    group_keys: &raw::GroupKeys,
) -> Result<Config, ConfigError> {
    let workers = Workers::build(src, &raw.workers)?;
    let limits = Limits::build(src, &raw.limits, &workers, &raw.workers)?;
    let timeouts = Timeouts::build(src, &raw.timeouts)?;
    let dns = Dns::build(src, &raw.dns)?;
    let log_format = LogFormat::build(
        src,
        raw.log.format.as_ref(),
        &KeyPath::root("log").key("format"),
    )?;
    if raw.groups.is_empty() {
        return Err(src.invalid(
            None,
            "groups",
            "must define at least one group ([groups.NAME])",
        ));
    }
    // BTreeMap iteration is by name: the order `Config::groups` promises.
    let groups = raw
        .groups
        .iter()
        .map(|(name, group)| Group::build(src, name, group_keys.span(name), group))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.listeners.is_empty() {
        return Err(src.invalid(
            None,
            "listeners",
            "must define at least one listener ([[listeners]])",
        ));
    }
    let mut listeners: Vec<Listener> = Vec::with_capacity(raw.listeners.len());
    for (i, raw_listener) in raw.listeners.iter().enumerate() {
        let at = KeyPath::root("listeners").index(i);
        let listener = Listener::build(src, raw_listener, &groups, &at)?;
        if let Some(j) = listeners.iter().position(|l| l.name == listener.name) {
            let problem = format!("{:?} is already used by listeners[{j}]", listener.name);
            return Err(src.at(&raw_listener.name, at.key("name"), problem));
        }
        if let Some(j) = listeners
            .iter()
            .position(|l| same_socket(l.addr, listener.addr))
        {
            let problem = format!("{} is already used by listeners[{j}]", listener.addr);
            return Err(src.at(&raw_listener.listen, at.key("listen"), problem));
        }
        listeners.push(listener);
    }
    let admin = match &raw.admin {
        Some(raw_admin) => {
            let admin = Admin::build(src, raw_admin)?;
            if let Some(j) = listeners
                .iter()
                .position(|l| same_socket(l.addr, admin.addr))
            {
                let problem = format!("{} is already used by listeners[{j}]", admin.addr);
                return Err(src.at(&raw_admin.listen, "admin.listen", problem));
            }
            Some(admin)
        }
        None => None,
    };
    Ok(Config {
        workers,
        limits,
        timeouts,
        dns,
        log_format,
        listeners,
        groups,
        admin,
    })
}

/// Two sockets that would collide. Port 0 is left out: each gets its own
/// port from the OS.
fn same_socket(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a == b && a.port() != 0
}
