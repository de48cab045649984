//! Addresses as the file writes them: `ip:port` socket addresses, server
//! addresses (`ip:port` or `host:port`), trusted proxy ranges, and host
//! names (for routes and cookie domains). Parsing only; it never resolves a
//! name (`crate::dns` does, at load and on the control thread's timer).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use toml::Spanned;

use super::error::ConfigError;
use super::source::{KeyPath, Source};

/// Whether port 0 ("let the OS pick") makes sense for this address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Port {
    AnyAllowed,
    Required,
}

/// A server's address as written: an IP address, or a host name resolved
/// at load and again on a timer (`[dns] interval`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    Ip(SocketAddr),
    /// `host` is stored lowercase (DNS names are case-insensitive).
    Name {
        host: String,
        port: u16,
    },
}

impl Address {
    /// The address itself when no name needs resolving.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Address::Ip(addr) => Some(*addr),
            Address::Name { .. } => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(addr) => addr.fmt(f),
            Address::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A server's `ip:port` or `host:port`; the port must not be 0.
pub(super) fn server_address(
    src: &Source<'_>,
    value: &Spanned<String>,
    path: &KeyPath,
) -> Result<Address, ConfigError> {
    let text = value.get_ref();
    if text.parse::<SocketAddr>().is_ok() || !looks_like_host_and_port(text) {
        return socket_addr(src, value, Port::Required, path).map(Address::Ip);
    }
    let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
    match port.parse::<u16>() {
        Ok(0) => Err(src.at(
            value,
            path,
            format_args!("{text:?} needs a port other than 0"),
        )),
        Ok(port) => Ok(Address::Name {
            host: host.to_ascii_lowercase(),
            port,
        }),
        Err(_) => Err(src.at(value, path, format_args!("{text:?} has a port above 65535"))),
    }
}

/// `ip:port`, IPv6 in brackets. Host names get their own message because
/// they are the likely mistake (listening addresses are never resolved).
pub(super) fn socket_addr(
    src: &Source<'_>,
    value: &Spanned<String>,
    port: Port,
    path: &KeyPath,
) -> Result<SocketAddr, ConfigError> {
    let text = value.get_ref();
    let Ok(addr) = text.parse::<SocketAddr>() else {
        let problem = if looks_like_host_and_port(text) {
            format!(
                "{text:?} names a host; a listening address must be an IP address \
                 and port such as \"127.0.0.1:8080\" (only server addresses may be names)"
            )
        } else {
            format!(
                "{text:?} is not an IP address and port such as \"127.0.0.1:8080\" or \"[::1]:8080\""
            )
        };
        return Err(src.at(value, path, problem));
    };
    if port == Port::Required && addr.port() == 0 {
        return Err(src.at(
            value,
            path,
            format_args!("{text:?} needs a port other than 0"),
        ));
    }
    Ok(addr)
}

fn looks_like_host_and_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && is_host_name(host)
            && host.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

/// A trusted proxy: a CIDR range or a single address (a /32 or /128).
pub(super) fn proxy(
    src: &Source<'_>,
    value: &Spanned<String>,
    path: &KeyPath,
) -> Result<IpNet, ConfigError> {
    let text = value.get_ref();
    let net = match (text.parse::<IpNet>(), text.parse::<IpAddr>()) {
        (Ok(net), _) => net,
        (Err(_), Ok(addr)) => IpNet::from(addr),
        (Err(_), Err(_)) => {
            return Err(src.at(
                value,
                path,
                format_args!("{text:?} is not an IP address or a range such as \"10.0.0.0/8\""),
            ))
        }
    };
    // "10.0.0.1/8" is most likely a slip for one of two different things.
    if net.trunc() != net {
        return Err(src.at(
            value,
            path,
            format_args!(
                "{text:?} has bits set after the prefix; write {:?}",
                net.trunc().to_string()
            ),
        ));
    }
    Ok(net)
}

/// Letters, digits, `-` and `_` in non-empty dot-separated labels; no
/// trailing dot. ASCII only: internationalized names arrive as punycode.
pub(super) fn is_host_name(text: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    };
    !text.is_empty() && text.len() <= 253 && text.split('.').all(label_ok)
}
