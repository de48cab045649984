//! Addresses as the file writes them: `ip:port` socket addresses, trusted
//! proxy ranges, and host names (for routes and cookie domains). Parsing
//! only; it never resolves a name (DNS is the control thread's job, later).

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

/// `ip:port`, IPv6 in brackets. Host names get their own message because
/// they are the likely mistake and are not supported yet.
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
                "{text:?} names a host; only an IP address and port such as \
                 \"127.0.0.1:8080\" is supported for now"
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
