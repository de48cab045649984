//! The effective authority of a request (RFC 9110 §7.2, RFC 9112 §3.2.2),
//! validated once for every protocol: HTTP/1's `Host` or absolute-form
//! target, HTTP/2's `:authority`. What passes here is what routing, the SNI
//! check, `X-Forwarded-Host` and the backend's `Host` see.
//!
//! The grammar is RFC 3986 §3.2.2 and §3.2.3, narrowed where a proxy must
//! not be lenient:
//! - `host` is an IP literal in brackets (IPv6, or `v` IPvFuture) or a
//!   reg-name: unreserved, `%HH`, sub-delims except `,` (a comma is how two
//!   `Host` values folded into one look). An IPv4 address is a reg-name.
//! - `port` is 1 to 5 digits and at most 65535; a colon with no port, or a
//!   port with letters, is refused, as is any userinfo (`@`), path (`/`),
//!   whitespace or control byte.
//! - An empty host is refused: an `http` or `https` URI must name one
//!   (RFC 9110 §4.2.1, §4.2.2).
//!
//! Never allocates, never panics on input.

use std::net::Ipv6Addr;

use thiserror::Error;

/// Why an authority was refused. Every one is a 400 for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthorityError {
    #[error("the authority names no host")]
    EmptyHost,
    #[error("invalid byte in the authority's host")]
    BadHost,
    #[error("malformed IP literal in the authority")]
    BadIpLiteral,
    #[error("the authority's port is not 1 to 5 digits up to 65535")]
    BadPort,
}

/// Checks `host [":" port]`.
pub fn check(authority: &[u8]) -> Result<(), AuthorityError> {
    // Fast path, every request: a reg-name of plain bytes (no `%`, no
    // brackets), then at most a port. One table lookup per byte.
    let plain = authority
        .iter()
        .position(|&b| !is_plain(b))
        .unwrap_or(authority.len());
    match authority.get(plain) {
        None if plain > 0 => return Ok(()),
        Some(b':') if plain > 0 => {
            return check_port(authority.get(plain + 1..).unwrap_or_default())
        }
        _ => {}
    }
    let (host, port) = split_port(authority)?;
    if let Some(port) = port {
        check_port(port)?;
    }
    match host {
        [] => Err(AuthorityError::EmptyHost),
        [b'[', inner @ .., b']'] => check_ip_literal(inner),
        _ => check_reg_name(host),
    }
}

/// Bytes of a reg-name that need no further look: unreserved and
/// sub-delims but `,` (not `%`, which starts an escape).
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

#[inline]
fn is_plain(b: u8) -> bool {
    PLAIN.get(usize::from(b)).copied().unwrap_or(false)
}

/// The host part, without the port; `[::1]:80` gives `[::1]`. Only for an
/// authority [`check`] accepted.
pub fn host_of(authority: &[u8]) -> &[u8] {
    split_port(authority).map_or(authority, |(host, _)| host)
}

/// An absolute-form target (`http://authority/path?query`) split into its
/// authority and the rest, which is the path and query the backend gets in
/// origin-form (empty or starting with `?` when the target had no path: the
/// writer then puts a `/` before it, RFC 9112 §3.2.1). `None` for any other
/// form. The scheme is matched ignoring case; only `http` and `https` are
/// absolute-form to limpet (the parser refuses others).
pub fn split_absolute(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = strip_scheme(target, b"http://").or_else(|| strip_scheme(target, b"https://"))?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(rest.split_at(end))
}

fn strip_scheme<'t>(target: &'t [u8], scheme: &[u8]) -> Option<&'t [u8]> {
    let prefix = target.get(..scheme.len())?;
    prefix
        .eq_ignore_ascii_case(scheme)
        .then(|| &target[scheme.len()..])
}

/// Splits at the port's colon: the last `:` after any closing bracket.
fn split_port(authority: &[u8]) -> Result<(&[u8], Option<&[u8]>), AuthorityError> {
    let after_literal = match authority.first() {
        Some(b'[') => memchr::memchr(b']', authority).ok_or(AuthorityError::BadIpLiteral)? + 1,
        _ => 0,
    };
    let tail = &authority[after_literal..];
    match memchr::memrchr(b':', tail) {
        Some(i) => {
            let colon = after_literal + i;
            Ok((&authority[..colon], Some(&authority[colon + 1..])))
        }
        None if tail.is_empty() || after_literal == 0 => Ok((authority, None)),
        // `[::1]x`: bytes after the literal that are not a port.
        None => Err(AuthorityError::BadIpLiteral),
    }
}

fn check_port(port: &[u8]) -> Result<(), AuthorityError> {
    if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        return Err(AuthorityError::BadPort);
    }
    let value = port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    if value > u32::from(u16::MAX) {
        return Err(AuthorityError::BadPort);
    }
    Ok(())
}

fn check_reg_name(host: &[u8]) -> Result<(), AuthorityError> {
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        match b {
            b'%' => {
                let hex = host.get(i + 1..i + 3).ok_or(AuthorityError::BadHost)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(AuthorityError::BadHost);
                }
                i += 3;
            }
            _ if is_unreserved(b) || is_sub_delim(b) => i += 1,
            _ => return Err(AuthorityError::BadHost),
        }
    }
    Ok(())
}

/// `IPv6address / IPvFuture` (RFC 3986 §3.2.2); no zone identifiers.
fn check_ip_literal(inner: &[u8]) -> Result<(), AuthorityError> {
    if let [b'v' | b'V', rest @ ..] = inner {
        let dot = memchr::memchr(b'.', rest).ok_or(AuthorityError::BadIpLiteral)?;
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        let ok = !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
        return if ok {
            Ok(())
        } else {
            Err(AuthorityError::BadIpLiteral)
        };
    }
    std::str::from_utf8(inner)
        .ok()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .map(|_| ())
        .ok_or(AuthorityError::BadIpLiteral)
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 sub-delims without `,`.
const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_addresses_and_ports() {
        for ok in [
            &b"a.example"[..],
            b"a.example:8080",
            b"a.example:1",
            b"a.example:65535",
            b"a.example:00080",
            b"127.0.0.1",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:443",
            b"[2001:db8::7]:8443",
            b"[v1.fe80::a+en1]",
            b"xn--bcher-kva.example",
            b"a%2Db.example",
            b"under_score.example",
        ] {
            assert_eq!(check(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn refuses_bad_ports_hosts_and_literals() {
        use AuthorityError as E;
        for (bad, why) in [
            (&b"a.example:99999"[..], E::BadPort),
            (b"a.example:99999x", E::BadPort),
            (b"a.example:65536", E::BadPort),
            (b"a.example:123456", E::BadPort),
            (b"a.example:", E::BadPort),
            (b"a.example:-1", E::BadPort),
            (b"a.example:8080:80", E::BadPort),
            (b"", E::EmptyHost),
            (b":80", E::EmptyHost),
            (b"u@a.example", E::BadHost),
            (b"a.example/x", E::BadHost),
            (b"a,b", E::BadHost),
            (b"a b", E::BadHost),
            (b"a\tb", E::BadHost),
            (b"a%2", E::BadHost),
            (b"a%zz", E::BadHost),
            (b"a\x00b", E::BadHost),
            (b"[::1", E::BadIpLiteral),
            (b"[::1]x", E::BadIpLiteral),
            (b"[::g]", E::BadIpLiteral),
            (b"[fe80::1%25eth0]", E::BadIpLiteral),
            (b"[v1.]", E::BadIpLiteral),
            (b"[]", E::BadIpLiteral),
        ] {
            assert_eq!(check(bad), Err(why), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn host_of_drops_the_port() {
        assert_eq!(host_of(b"a.example:80"), b"a.example");
        assert_eq!(host_of(b"a.example"), b"a.example");
        assert_eq!(host_of(b"[::1]:80"), b"[::1]");
        assert_eq!(host_of(b"[::1]"), b"[::1]");
    }

    #[test]
    fn splits_absolute_form_targets() {
        assert_eq!(
            split_absolute(b"http://other.example/x?y"),
            Some((&b"other.example"[..], &b"/x?y"[..]))
        );
        assert_eq!(
            split_absolute(b"HTTPS://a.example:8443"),
            Some((&b"a.example:8443"[..], &b""[..]))
        );
        assert_eq!(
            split_absolute(b"http://a.example?q"),
            Some((&b"a.example"[..], &b"?q"[..]))
        );
        assert_eq!(
            split_absolute(b"http://u@a.example/"),
            Some((&b"u@a.example"[..], &b"/"[..]))
        );
        assert_eq!(split_absolute(b"/x"), None);
        assert_eq!(split_absolute(b"*"), None);
        assert_eq!(split_absolute(b"ftp://a/"), None);
    }
}
