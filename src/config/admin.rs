//! `Admin`: where the admin API listens and the bearer token it wants.
//! Validation only. It refuses to expose the API beyond loopback without a
//! token, since the API can disable servers.

use std::net::SocketAddr;

use super::error::ConfigError;
use super::net::{self, Port};
use super::raw;
use super::source::{KeyPath, Source};

#[derive(Clone, PartialEq, Eq)]
pub struct Admin {
    pub addr: SocketAddr,
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

impl Admin {
    pub(super) fn build(src: &Source<'_>, raw: &raw::Admin) -> Result<Self, ConfigError> {
        let at = KeyPath::root("admin");
        let addr = net::socket_addr(src, &raw.listen, Port::AnyAllowed, &at.key("listen"))?;
        let token = match &raw.token {
            Some(token) => {
                let path = at.key("token");
                // It is compared with a header value: visible ASCII, no spaces.
                if !token.get_ref().bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(src.at(token, path, "may contain only visible ASCII characters"));
                }
                Some(src.secret(token, &path)?)
            }
            None => None,
        };
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(src.at(
                &raw.listen,
                at.key("listen"),
                format_args!("{addr} is not a loopback address; set admin.token to listen there"),
            ));
        }
        Ok(Self { addr, token })
    }
}

/// The bearer token never reaches a log line or `GET /config`.
impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
