//! `Timeouts`: how long limpet waits for each side. Validation only; the
//! proxy turns them into cancellations.

use std::time::Duration;

use super::duration::{self, MIN_TIMEOUT};
use super::error::ConfigError;
use super::raw;
use super::source::{KeyPath, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From accepting (or the previous response) to a complete request head.
    pub client_head: Duration,
    /// A keep-alive client connection with no request in flight is closed after this.
    pub client_idle: Duration,
    /// Longest wait between two reads of a request body.
    pub client_body: Duration,
    /// Opening a backend connection.
    pub backend_connect: Duration,
    /// From the request sent to the response head received.
    pub backend_response: Duration,
    /// Pooled backend connections idle longer than this are closed.
    pub backend_idle: Duration,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    pub shutdown: Duration,
    /// An upgraded connection (a WebSocket tunnel) with no byte either way
    /// for this long is closed.
    pub tunnel: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            client_head: raw::CLIENT_HEAD,
            client_idle: raw::CLIENT_IDLE,
            client_body: raw::CLIENT_BODY,
            backend_connect: raw::BACKEND_CONNECT,
            backend_response: raw::BACKEND_RESPONSE,
            backend_idle: raw::BACKEND_IDLE,
            shutdown: raw::SHUTDOWN,
            tunnel: raw::TUNNEL,
        }
    }
}

impl Timeouts {
    pub(super) fn build(src: &Source<'_>, raw: &raw::Timeouts) -> Result<Self, ConfigError> {
        let at = KeyPath::root("timeouts");
        let timeout = |value: &raw::Value<String>, default, min, key: &str| {
            duration::optional(src, value.as_ref(), default, min, &at.key(key))
        };
        Ok(Self {
            client_head: timeout(
                &raw.client_head,
                raw::CLIENT_HEAD,
                MIN_TIMEOUT,
                "client_head",
            )?,
            client_idle: timeout(
                &raw.client_idle,
                raw::CLIENT_IDLE,
                MIN_TIMEOUT,
                "client_idle",
            )?,
            client_body: timeout(
                &raw.client_body,
                raw::CLIENT_BODY,
                MIN_TIMEOUT,
                "client_body",
            )?,
            backend_connect: timeout(
                &raw.backend_connect,
                raw::BACKEND_CONNECT,
                MIN_TIMEOUT,
                "backend_connect",
            )?,
            backend_response: timeout(
                &raw.backend_response,
                raw::BACKEND_RESPONSE,
                MIN_TIMEOUT,
                "backend_response",
            )?,
            backend_idle: timeout(
                &raw.backend_idle,
                raw::BACKEND_IDLE,
                MIN_TIMEOUT,
                "backend_idle",
            )?,
            shutdown: timeout(&raw.shutdown, raw::SHUTDOWN, MIN_TIMEOUT, "shutdown")?,
            tunnel: timeout(&raw.tunnel, raw::TUNNEL, MIN_TIMEOUT, "tunnel")?,
        })
    }
}
