//! `Listener`: an address limpet accepts on and its routes from `Host` and
//! path to a group. Validation only; matching requests is the router's job.
//! Routes keep their file order.

use std::net::{Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use toml::Spanned;

use super::error::ConfigError;
use super::group::{self, Group};
use super::net::{self, is_host_name, Port};
use super::raw;
use super::source::{KeyPath, Source};
use super::GroupIdx;

#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    /// Port 0: the OS picks one, once, for every worker.
    pub addr: SocketAddr,
    pub backlog: u32,
    /// Where requests that no route matches go; `None`: only routed
    /// requests are served.
    pub default_group: Option<GroupIdx>,
    pub routes: Vec<Route>,
    /// Peers whose `X-Forwarded-For` is extended rather than replaced.
    pub trusted_proxies: Vec<IpNet>,
    /// One line per request, appended to this file.
    pub access_log: Option<AccessLog>,
    /// The `Upgrade` protocols passed to backends, lower-case (default
    /// `["websocket"]`); any other is removed from the request (SPEC §7).
    pub upgrade_protocols: Vec<String>,
    /// `tls = { certs = [..] }`: an HTTPS listener.
    pub tls: Option<super::tls::ListenerTls>,
    /// `http2 = true` (the default): HTTP/2 by ALPN on TLS, by its preface
    /// (h2c with prior knowledge) on plain ports.
    pub http2: bool,
}

/// `access_log = "/var/log/limpet/access.log"`, `access_log_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    pub path: std::path::PathBuf,
    pub format: LogFormat,
}

/// How an access log line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-21T05:10:00.123Z 10.0.0.7 "GET /cart" 200 512B 830us server=ECS01 session=stuck`
    #[default]
    Text,
    /// One JSON object per line, the same fields.
    Json,
}

impl LogFormat {
    /// `"text"` (the default when absent) or `"json"`.
    pub(super) fn build(
        src: &Source<'_>,
        value: Option<&Spanned<String>>,
        path: &KeyPath,
    ) -> Result<Self, ConfigError> {
        let Some(value) = value else {
            return Ok(LogFormat::Text);
        };
        match value.get_ref().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => {
                let problem = format!("is `{other}`; expected \"text\" or \"json\"");
                Err(src.at(value, path, problem))
            }
        }
    }
}

/// Matches when every condition it has matches; at least one is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub host: Option<HostMatch>,
    /// Starts with `/`; visible ASCII without `?` or `#`.
    pub path_prefix: Option<String>,
    pub group: GroupIdx,
}

/// How a route matches the request's host (compared without its port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// The whole host, lowercased, port stripped (`[::1]` keeps its brackets).
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: any host ending with it.
    /// It does not match `example.com` itself.
    Suffix(String),
}

/// `upgrade_protocols = ["websocket"]`: protocol names as `Upgrade` lists
/// them (RFC 9110 §7.8: a token, optionally `/version`), compared ignoring
/// case. `h2c` is refused: RFC 9113 §3.1 deprecates it, and this listener
/// serves HTTP/2 with prior knowledge instead.
fn upgrade_protocols(
    src: &Source<'_>,
    list: &[Spanned<String>],
    at: &KeyPath,
) -> Result<Vec<String>, ConfigError> {
    let mut protocols: Vec<String> = Vec::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        let value = name.get_ref();
        let is_token = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b))
        };
        let (protocol, version) = value.split_once('/').unwrap_or((value, "x"));
        if !is_token(protocol) || !is_token(version) {
            let problem = format!("\"{value}\" is not a protocol name such as \"websocket\"");
            return Err(src.at(name, at.index(i), problem));
        }
        let lower = value.to_ascii_lowercase();
        if lower == "h2c" {
            return Err(src.at(
                name,
                at.index(i),
                "\"h2c\" cannot be allowed: HTTP/2 is served with prior knowledge, and RFC 9113 deprecates the h2c upgrade",
            ));
        }
        if protocols.contains(&lower) {
            return Err(src.at(name, at.index(i), format!("repeats \"{value}\"")));
        }
        protocols.push(lower);
    }
    Ok(protocols)
}

impl Listener {
    pub(super) fn build(
        src: &Source<'_>,
        raw: &raw::Listener,
        groups: &[Group],
        at: &KeyPath,
    ) -> Result<Self, ConfigError> {
        let name = src.name(raw.name.get_ref(), Some(raw.name.span()), &at.key("name"))?;
        let addr = net::socket_addr(src, &raw.listen, Port::AnyAllowed, &at.key("listen"))?;
        let backlog = src.int(
            raw.backlog.as_ref(),
            raw::BACKLOG,
            1..=65_535,
            &at.key("backlog"),
        )?;
        let default_group = match &raw.default_group {
            Some(group) => Some(resolve(src, group, groups, &at.key("default_group"))?),
            None => None,
        };
        if default_group.is_none() && raw.routes.is_empty() {
            return Err(src.at(
                &raw.name,
                at,
                "needs a default_group or at least one [[listeners.routes]]",
            ));
        }
        let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
        for (i, raw_route) in raw.routes.iter().enumerate() {
            let route_at = at.key("routes").index(i);
            let route = Route::build(src, raw_route, groups, &route_at)?;
            let same = |r: &Route| r.host == route.host && r.path_prefix == route.path_prefix;
            if let Some(j) = routes.iter().position(same) {
                let problem = format!(
                    "repeats the host and path_prefix of {at}.routes[{j}], which always wins"
                );
                return Err(src.at(&raw_route.group, route_at, problem));
            }
            routes.push(route);
        }
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, proxy)| net::proxy(src, proxy, &at.key("trusted_proxies").index(i)))
            .collect::<Result<_, _>>()?;
        let format = LogFormat::build(
            src,
            raw.access_log_format.as_ref(),
            &at.key("access_log_format"),
        )?;
        let access_log = match &raw.access_log {
            Some(path) if path.get_ref().is_empty() => {
                return Err(src.at(path, at.key("access_log"), "must be a file path"));
            }
            Some(path) => Some(AccessLog {
                path: path.get_ref().into(),
                format,
            }),
            None => {
                if let Some(format) = &raw.access_log_format {
                    return Err(src.at(
                        format,
                        at.key("access_log_format"),
                        "applies only with access_log",
                    ));
                }
                None
            }
        };
        let upgrade_protocols = match &raw.upgrade_protocols {
            None => vec!["websocket".to_owned()],
            Some(list) => upgrade_protocols(src, list, &at.key("upgrade_protocols"))?,
        };
        let http2 = raw.http2.as_ref().is_none_or(|on| *on.get_ref());
        let tls = match &raw.tls {
            Some(tls) => Some(super::tls::ListenerTls::build(src, tls, at, http2)?),
            None => None,
        };
        Ok(Self {
            name,
            addr,
            backlog,
            default_group,
            routes,
            trusted_proxies,
            access_log,
            upgrade_protocols,
            tls,
            http2,
        })
    }
}

impl Route {
    fn build(
        src: &Source<'_>,
        raw: &raw::Route,
        groups: &[Group],
        at: &KeyPath,
    ) -> Result<Self, ConfigError> {
        let host = match &raw.host {
            Some(host) => Some(parse_host(host.get_ref()).ok_or_else(|| {
                let problem = format!(
                    "{:?} is not a host such as \"example.com\" or \"*.example.com\"",
                    host.get_ref()
                );
                src.at(host, at.key("host"), problem)
            })?),
            None => None,
        };
        let path_prefix = match &raw.path_prefix {
            Some(prefix) => Some(check_path_prefix(src, prefix, &at.key("path_prefix"))?),
            None => None,
        };
        if host.is_none() && path_prefix.is_none() {
            return Err(src.at(
                &raw.group,
                at,
                "needs a host or a path_prefix (default_group takes the rest)",
            ));
        }
        let group = resolve(src, &raw.group, groups, &at.key("group"))?;
        Ok(Self {
            host,
            path_prefix,
            group,
        })
    }
}

fn check_path_prefix(
    src: &Source<'_>,
    prefix: &Spanned<String>,
    path: &KeyPath,
) -> Result<String, ConfigError> {
    let text = prefix.get_ref();
    if !text.starts_with('/') {
        return Err(src.at(prefix, path, format_args!("{text:?} must start with /")));
    }
    // A request target is visible ASCII; `?` and `#` end the path.
    if !text
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(src.at(
            prefix,
            path,
            format_args!("{text:?} may contain only visible ASCII characters other than ? and #"),
        ));
    }
    Ok(text.clone())
}

fn resolve(
    src: &Source<'_>,
    name: &Spanned<String>,
    groups: &[Group],
    path: &KeyPath,
) -> Result<GroupIdx, ConfigError> {
    group::find(groups, name.get_ref())
        .and_then(|index| u32::try_from(index).ok())
        .map(GroupIdx)
        .ok_or_else(|| {
            let known: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
            let problem = format!(
                "{:?} is not a group; groups: {}",
                name.get_ref(),
                known.join(", ")
            );
            src.at(name, path, problem)
        })
}

/// `example.com`, `Example.COM:8080`, `*.example.com`, `[::1]:8080`.
fn parse_host(text: &str) -> Option<HostMatch> {
    let lower = text.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("*.") {
        let name = strip_port(rest)?;
        return is_host_name(name).then(|| HostMatch::Suffix(format!(".{name}")));
    }
    if let Some(rest) = lower.strip_prefix('[') {
        let (literal, port) = rest.split_once(']')?;
        literal.parse::<Ipv6Addr>().ok()?;
        let port_ok = port.is_empty() || strip_port(port).is_some_and(str::is_empty);
        return port_ok.then(|| HostMatch::Exact(format!("[{literal}]")));
    }
    let name = strip_port(&lower)?;
    is_host_name(name).then(|| HostMatch::Exact(name.to_owned()))
}

/// The host without a `:port` suffix; `None` when the port is not digits.
fn strip_port(text: &str) -> Option<&str> {
    match text.split_once(':') {
        None => Some(text),
        Some((host, port)) => {
            (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(host)
        }
    }
}
