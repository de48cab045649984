//! The serde mirror of the TOML file, and the defaults of every key.
//!
//! It owns the *shape* only: which keys exist (`deny_unknown_fields`
//! everywhere), which are required, and their TOML types. It never judges a
//! value; the validating modules do, pointing at the line through the
//! `Spanned` wrappers. Optional keys are `Option<Spanned<_>>` rather than a
//! serde default, so that a rule can tell "absent" from "written" and point
//! only at what the operator wrote.
//!
//! Only leaf values are `Spanned`, never tables: toml 0.8 cannot give a span
//! to a table that exists only through a sub-table (`[[groups.web.servers]]`
//! without `[groups.web]`) and fails on it. Integers are read as `i64`
//! (TOML's own integer) so that a negative number gets the same range
//! message as any other out-of-range value.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;
use toml::Spanned;

pub(super) const URING_ENTRIES: u32 = 1024;
pub(super) const BUFFER_BYTES: usize = 16 * 1024;
pub(super) const POOL_BUFFERS: usize = 1024;
pub(super) const SPLICE_MIN_BYTES: u64 = 64 * 1024;

pub(super) const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
pub(super) const MAX_HEAD_BYTES: usize = 16 * 1024;
pub(super) const MAX_HEADERS: usize = 100;
pub(super) const MAX_CONNECTIONS: usize = 10_000;
pub(super) const MAX_CONNECTIONS_PER_CLIENT: u32 = 256;
pub(super) const MIN_HEAD_RATE: u32 = 256;
pub(super) const MIN_BODY_RATE: u32 = 1024;
/// Retries a core may make, in thousandths of its requests (0.2).
pub(super) const RETRY_BUDGET_PERMILLE: u32 = 200;
pub(super) const H2_MAX_STREAMS: u32 = 100;
/// RFC 9113's initial window: a client that sets nothing gets what it expects.
pub(super) const H2_STREAM_WINDOW: u32 = 65_535;
pub(super) const H2_CONNECTION_WINDOW: u32 = 1 << 20;
pub(super) const H2_MAX_FRAME: u32 = 16_384;

pub(super) const CLIENT_HEAD: Duration = Duration::from_secs(10);
pub(super) const CLIENT_IDLE: Duration = Duration::from_secs(60);
pub(super) const CLIENT_BODY: Duration = Duration::from_secs(30);
pub(super) const BACKEND_CONNECT: Duration = Duration::from_secs(3);
pub(super) const BACKEND_RESPONSE: Duration = Duration::from_secs(30);
pub(super) const BACKEND_IDLE: Duration = Duration::from_secs(30);
pub(super) const SHUTDOWN: Duration = Duration::from_secs(10);
pub(super) const TUNNEL: Duration = Duration::from_secs(3600);

pub(super) const DNS_INTERVAL: Duration = Duration::from_secs(30);

pub(super) const BACKLOG: u32 = 1024;
pub(super) const WEIGHT: u32 = 1;
pub(super) const POOL_MAX_IDLE_PER_SERVER: usize = 1024;

pub(super) const INSERT_COOKIE: &str = "SERVERID";
pub(super) const INSERT_CORS_COOKIE: &str = "SERVERCORSID";
pub(super) const COOKIE_PATH: &str = "/";
pub(super) const HTTP_ONLY: bool = true;

/// An optional leaf value and where it was written.
pub(super) type Value<T> = Option<Spanned<T>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    #[serde(default)]
    pub(super) workers: Workers,
    #[serde(default)]
    pub(super) limits: Limits,
    #[serde(default)]
    pub(super) timeouts: Timeouts,
    #[serde(default)]
    pub(super) dns: Dns,
    #[serde(default)]
    pub(super) log: Log,
    pub(super) admin: Option<Admin>,
    #[serde(default)]
    pub(super) listeners: Vec<Listener>,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, Group>,
}

/// `[log]`: the process log (stderr), not the access logs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Log {
    pub(super) format: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dns {
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) interval: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Workers {
    pub(super) count: Value<i64>,
    pub(super) cpus: Value<Vec<Spanned<i64>>>,
    pub(super) uring_entries: Value<i64>,
    pub(super) buffer_bytes: Value<i64>,
    pub(super) pool_buffers: Value<i64>,
    pub(super) splice_min_bytes: Value<i64>,
    pub(super) driver: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limits {
    pub(super) max_request_line_bytes: Value<i64>,
    pub(super) max_head_bytes: Value<i64>,
    pub(super) max_headers: Value<i64>,
    pub(super) max_connections: Value<i64>,
    pub(super) max_connections_per_client: Value<i64>,
    pub(super) min_head_rate: Value<i64>,
    pub(super) min_body_rate: Value<i64>,
    pub(super) retry_budget: Value<f64>,
    pub(super) h2_max_streams: Value<i64>,
    pub(super) h2_stream_window: Value<i64>,
    pub(super) h2_connection_window: Value<i64>,
    pub(super) h2_max_frame: Value<i64>,
}

/// Durations are strings in humantime syntax ("10s", "1m30s", "500ms").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Timeouts {
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) client_head: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) client_idle: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) client_body: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) backend_connect: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) backend_response: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) backend_idle: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) shutdown: Value<String>,
    pub(super) tunnel: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Admin {
    pub(super) listen: Spanned<String>,
    pub(super) token: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Listener {
    pub(super) name: Spanned<String>,
    pub(super) listen: Spanned<String>,
    pub(super) backlog: Value<i64>,
    pub(super) default_group: Value<String>,
    #[serde(default)]
    pub(super) routes: Vec<Route>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<Spanned<String>>,
    pub(super) access_log: Value<String>,
    pub(super) access_log_format: Value<String>,
    pub(super) upgrade_protocols: Option<Vec<Spanned<String>>>,
    pub(super) tls: Option<ListenerTls>,
    pub(super) http2: Value<bool>,
}

/// `tls = { certs = [{ cert = "..", key = ".." }, ..], handshake_timeout = "10s" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenerTls {
    #[serde(default)]
    pub(super) certs: Vec<CertPair>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) handshake_timeout: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertPair {
    pub(super) cert: Spanned<String>,
    pub(super) key: Spanned<String>,
}

/// `[groups.NAME.tls]`: TLS to the group's servers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackendTls {
    pub(super) ca: Spanned<String>,
    pub(super) sni: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Route {
    pub(super) host: Value<String>,
    pub(super) path_prefix: Value<String>,
    pub(super) group: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Group {
    #[serde(default)]
    pub(super) servers: Vec<Server>,
    pub(super) balance: Value<Balance>,
    pub(super) hash_key: Value<String>,
    pub(super) balance_factor: Value<f64>,
    pub(super) pool_max_idle_per_server: Value<i64>,
    pub(super) persistence: Option<Persistence>,
    pub(super) health: Option<Health>,
    pub(super) tls: Option<BackendTls>,
}

/// `[groups.NAME.health]`: active checks (when `path` is written), passive
/// ejection, and the drain timeout.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Health {
    pub(super) path: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) interval: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) timeout: Value<String>,
    pub(super) healthy_threshold: Value<i64>,
    pub(super) unhealthy_threshold: Value<i64>,
    pub(super) expect: Value<String>,
    pub(super) host: Value<String>,
    pub(super) max_fails: Value<i64>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) fail_window: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) eject_time: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) drain_timeout: Value<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Balance {
    LeastOutstanding,
    RoundRobin,
    RandomTwo,
    Hash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Server {
    pub(super) name: Spanned<String>,
    pub(super) address: Spanned<String>,
    pub(super) weight: Value<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Persistence {
    pub(super) mode: Spanned<Mode>,
    pub(super) cookie: Value<String>,
    pub(super) cors_cookie: Value<String>,
    pub(super) cors: Value<bool>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) timeout: Value<String>,
    pub(super) path: Value<String>,
    pub(super) domain: Value<String>,
    pub(super) http_only: Value<bool>,
    pub(super) secure: Value<bool>,
    pub(super) token_secret: Value<String>,
    pub(super) keys: Value<Vec<Spanned<String>>>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) max_age: Value<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub(super) max_idle: Value<String>,
    pub(super) same_site: Value<SameSite>,
    pub(super) partitioned: Value<bool>,
    pub(super) on_server_down: Value<OnServerDown>,
    pub(super) header: Value<String>,
    pub(super) query: Value<String>,
}

impl Persistence {
    /// Every key written besides `mode`, in declaration order, with its span.
    pub(super) fn written_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        fn span<T>(value: &Value<T>) -> Option<Range<usize>> {
            value.as_ref().map(Spanned::span)
        }
        [
            ("cookie", span(&self.cookie)),
            ("cors_cookie", span(&self.cors_cookie)),
            ("cors", span(&self.cors)),
            ("timeout", span(&self.timeout)),
            ("path", span(&self.path)),
            ("domain", span(&self.domain)),
            ("http_only", span(&self.http_only)),
            ("secure", span(&self.secure)),
            ("token_secret", span(&self.token_secret)),
            ("keys", span(&self.keys)),
            ("max_age", span(&self.max_age)),
            ("max_idle", span(&self.max_idle)),
            ("same_site", span(&self.same_site)),
            ("partitioned", span(&self.partitioned)),
            ("on_server_down", span(&self.on_server_down)),
            ("header", span(&self.header)),
            ("query", span(&self.query)),
        ]
        .into_iter()
        .filter_map(|(key, span)| span.map(|span| (key, span)))
        .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Mode {
    None,
    Insert,
    Rewrite,
    Header,
}

/// `same_site`, spelt as the attribute is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(super) enum SameSite {
    Lax,
    Strict,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum OnServerDown {
    Move,
    Refuse,
}

/// Where each group's name was written. Read in a second pass over the
/// same text because a `Spanned` map key hides the key from
/// serde_path_to_error (the path would read `groups.?`); this pass reads
/// nothing else and runs only after the first one succeeded.
#[derive(Debug, Default, Deserialize)]
pub(super) struct GroupKeys {
    #[serde(default)]
    groups: BTreeMap<Spanned<String>, IgnoredAny>,
}

impl GroupKeys {
    pub(super) fn span(&self, name: &str) -> Option<Range<usize>> {
        self.groups.get_key_value(name).map(|(key, _)| key.span())
    }
}

/// A duration key's text. A value of another TOML type is refused in
/// words (`expected a duration such as "10s"`) rather than as `a string`;
/// the text itself is judged by `duration.rs`.
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"10s\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DurationText, E> {
                Ok(DurationText(text.to_owned()))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

fn duration_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Value<String>, D::Error> {
    let value = Option::<Spanned<DurationText>>::deserialize(deserializer)?;
    Ok(value.map(|v| {
        let span = v.span();
        Spanned::new(span, v.into_inner().0)
    }))
}
