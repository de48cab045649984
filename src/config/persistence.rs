//! `Persistence`: a group's sticky-session policy (none, insert, rewrite,
//! header), its cookie attributes or token field, and token settings.
//! Validation only; it never builds a cookie or a token. A key that does
//! not apply to the chosen mode is refused rather than ignored, so a
//! typo'd mode cannot go unnoticed.

use std::time::Duration;

use toml::Spanned;

use super::cookie_name::{is_tchar, CookieName, COOKIE_NAME_RULE};
use super::duration::{self, MIN_SECONDS};
use super::error::ConfigError;
use super::net::is_host_name;
use super::raw::{self, Mode};
use super::source::{KeyPath, Source};
pub use crate::sticky::set_cookie::SameSite;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    #[default]
    None,
    Insert(InsertConfig),
    Rewrite(RewriteConfig),
    Header(HeaderConfig),
}

/// limpet sets its own cookies naming the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsertConfig {
    pub cookie: CookieName,
    /// The `SameSite=None; Secure` twin; `None` when `cors = false`.
    pub cors_cookie: Option<CookieName>,
    /// `Max-Age`/`Expires` of the cookies; `None`: browser-session cookies.
    pub timeout: Option<Duration>,
    pub cookie_attrs: CookieAttrs,
    pub tokens: TokenConfig,
    pub on_server_down: OnServerDown,
}

/// The backend sets `cookie`; limpet prefixes its value with a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteConfig {
    pub cookie: CookieName,
    /// Used only when limpet re-issues the cookie after a failover.
    pub cookie_attrs: CookieAttrs,
    pub tokens: TokenConfig,
    pub on_server_down: OnServerDown,
}

/// The token travels in a request and response header field, for clients
/// that keep no cookies (SPEC §3.9), and optionally in a query parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderConfig {
    /// The field name as written: responses carry it in this spelling
    /// (HTTP/2 in lower case); requests match it ignoring case.
    pub header: String,
    /// A query parameter also read for the token, removed from the target
    /// the backend gets and redacted in the access log.
    pub query: Option<String>,
    /// Signed tokens only: a token is refused once this long has passed
    /// since limpet last sent it, as a cookie's `Max-Age` would expire.
    pub timeout: Option<Duration>,
    pub tokens: TokenConfig,
    pub on_server_down: OnServerDown,
}

/// Keys only a cookie carries: refused in header mode.
const COOKIE_ONLY: [&str; 9] = [
    "cookie",
    "cors_cookie",
    "cors",
    "path",
    "domain",
    "http_only",
    "secure",
    "same_site",
    "partitioned",
];

/// Fields that limpet reads, writes or drops itself, that describe the
/// connection, or that frame or describe the body: a token there would be
/// lost or break the message.
const RESERVED_FIELDS: [&str; 19] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "cookie",
    "set-cookie",
    "content-length",
    "content-type",
    "expect",
    "cache-control",
    "http2-settings",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// What a valid query parameter name looks like, for error messages.
const QUERY_NAME_RULE: &str = "1 to 64 of A-Z a-z 0-9 - . _ ~";

/// What a request whose session names a server that cannot take it gets
/// (SPEC §3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnServerDown {
    /// Balanced afresh; the response moves the session (failover).
    #[default]
    Move,
    /// `503` with `Retry-After`: no failover or retry moves the session.
    Refuse,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieAttrs {
    /// Starts with `/`; no `;` or control characters.
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    /// `None`: on for HTTPS listeners (always on for the CORS twin).
    pub secure: Option<bool>,
    /// The main cookie's `SameSite`; `None`: not sent.
    pub same_site: Option<SameSite>,
    /// `Partitioned` (CHIPS).
    pub partitioned: bool,
}

impl Default for CookieAttrs {
    fn default() -> Self {
        Self {
            path: raw::COOKIE_PATH.to_owned(),
            domain: None,
            http_only: raw::HTTP_ONLY,
            secure: None,
            same_site: None,
            partitioned: false,
        }
    }
}

impl Persistence {
    /// Whether a session's server that cannot take it makes the request
    /// fail rather than move (`on_server_down = "refuse"`).
    pub fn refuses_moves(&self) -> bool {
        match self {
            Persistence::None => false,
            Persistence::Insert(insert) => insert.on_server_down == OnServerDown::Refuse,
            Persistence::Rewrite(rewrite) => rewrite.on_server_down == OnServerDown::Refuse,
            Persistence::Header(header) => header.on_server_down == OnServerDown::Refuse,
        }
    }
}

#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenConfig {
    /// Key of the hash that makes unsigned tokens; `None`: the built-in one.
    pub secret: Option<String>,
    /// Non-empty: signed tokens. The first key signs, all verify.
    pub keys: Vec<String>,
    /// Refuse signed tokens issued longer ago than this.
    pub max_age: Option<Duration>,
    /// Refuse signed tokens not re-signed for this long.
    pub max_idle: Option<Duration>,
}

impl Persistence {
    pub(super) fn build(
        src: &Source<'_>,
        raw: Option<&raw::Persistence>,
        at: &KeyPath,
    ) -> Result<Self, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Self::None);
        };
        let written = raw.written_keys();
        match raw.mode.get_ref() {
            Mode::None => match written.first() {
                Some((key, span)) => Err(src.invalid(
                    Some(span.clone()),
                    at.key(key),
                    "is not allowed with mode = \"none\"",
                )),
                None => Ok(Self::None),
            },
            Mode::Insert => {
                header_only(src, raw, at, "insert")?;
                build_insert(src, raw, at).map(Self::Insert)
            }
            Mode::Header => build_header(src, raw, at).map(Self::Header),
            Mode::Rewrite => {
                header_only(src, raw, at, "rewrite")?;
                let insert_only = ["timeout", "cors", "cors_cookie"];
                if let Some((key, span)) = written.iter().find(|(key, _)| insert_only.contains(key))
                {
                    return Err(src.invalid(
                        Some(span.clone()),
                        at.key(key),
                        "applies only to mode = \"insert\"",
                    ));
                }
                let Some(cookie) = &raw.cookie else {
                    return Err(src.at(
                        &raw.mode,
                        at.key("cookie"),
                        "is required with mode = \"rewrite\"",
                    ));
                };
                Ok(Self::Rewrite(RewriteConfig {
                    cookie: cookie_name(src, cookie, &at.key("cookie"))?,
                    cookie_attrs: build_attrs(src, raw, at)?,
                    tokens: build_tokens(src, raw, at)?,
                    on_server_down: on_server_down(raw),
                }))
            }
        }
    }
}

fn build_insert(
    src: &Source<'_>,
    raw: &raw::Persistence,
    at: &KeyPath,
) -> Result<InsertConfig, ConfigError> {
    let cookie = match &raw.cookie {
        Some(cookie) => cookie_name(src, cookie, &at.key("cookie"))?,
        None => CookieName::builtin(raw::INSERT_COOKIE),
    };
    let cors = raw.cors.as_ref().is_none_or(|cors| *cors.get_ref());
    let cors_cookie = match (&raw.cors_cookie, cors) {
        (Some(twin), false) => {
            return Err(src.at(twin, at.key("cors_cookie"), "is set but cors = false"));
        }
        (Some(twin), true) => Some(cookie_name(src, twin, &at.key("cors_cookie"))?),
        (None, true) => Some(CookieName::builtin(raw::INSERT_CORS_COOKIE)),
        (None, false) => None,
    };
    if cors_cookie.as_ref() == Some(&cookie) {
        // Blame the name the operator wrote.
        let (key, other, span) = match (&raw.cors_cookie, &raw.cookie) {
            (Some(twin), _) => ("cors_cookie", "cookie", twin.span()),
            (None, Some(written)) => ("cookie", "cors_cookie", written.span()),
            (None, None) => ("cors_cookie", "cookie", raw.mode.span()),
        };
        return Err(src.invalid(
            Some(span),
            at.key(key),
            format_args!(
                "must differ from {at}.{other} ({cookie:?})",
                cookie = cookie.as_str()
            ),
        ));
    }
    let timeout = match &raw.timeout {
        Some(timeout) => Some(duration::required(
            src,
            timeout,
            MIN_SECONDS,
            &at.key("timeout"),
        )?),
        None => None,
    };
    Ok(InsertConfig {
        cookie,
        cors_cookie,
        timeout,
        cookie_attrs: build_attrs(src, raw, at)?,
        tokens: build_tokens(src, raw, at)?,
        on_server_down: on_server_down(raw),
    })
}

/// Refuses `header` and `query` outside header mode.
fn header_only(
    src: &Source<'_>,
    raw: &raw::Persistence,
    at: &KeyPath,
    mode: &str,
) -> Result<(), ConfigError> {
    match raw
        .written_keys()
        .into_iter()
        .find(|(key, _)| matches!(*key, "header" | "query"))
    {
        Some((key, span)) => Err(src.invalid(
            Some(span),
            at.key(key),
            format_args!("applies only to mode = \"header\", not {mode:?}"),
        )),
        None => Ok(()),
    }
}

fn build_header(
    src: &Source<'_>,
    raw: &raw::Persistence,
    at: &KeyPath,
) -> Result<HeaderConfig, ConfigError> {
    if let Some((key, span)) = raw
        .written_keys()
        .into_iter()
        .find(|(key, _)| COOKIE_ONLY.contains(key))
    {
        return Err(src.invalid(
            Some(span),
            at.key(key),
            "applies only to the cookie modes (insert, rewrite), not mode = \"header\"",
        ));
    }
    let Some(header) = &raw.header else {
        return Err(src.at(
            &raw.mode,
            at.key("header"),
            "is required with mode = \"header\"",
        ));
    };
    let name = header.get_ref();
    let valid =
        !name.is_empty() && name.len() <= CookieName::MAX_BYTES && name.bytes().all(is_tchar);
    if !valid {
        return Err(src.at(
            header,
            at.key("header"),
            format_args!("{name:?} is not a valid header name ({COOKIE_NAME_RULE})"),
        ));
    }
    if let Some(reserved) = RESERVED_FIELDS
        .iter()
        .find(|reserved| name.eq_ignore_ascii_case(reserved))
    {
        return Err(src.at(
            header,
            at.key("header"),
            format_args!("{name:?} cannot carry the token: limpet handles {reserved} itself"),
        ));
    }
    let query = match &raw.query {
        Some(query) => {
            let text = query.get_ref();
            let valid = !text.is_empty()
                && text.len() <= CookieName::MAX_BYTES
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !valid {
                return Err(src.at(
                    query,
                    at.key("query"),
                    format_args!(
                        "{text:?} is not a valid query parameter name ({QUERY_NAME_RULE})"
                    ),
                ));
            }
            Some(text.clone())
        }
        None => None,
    };
    let tokens = build_tokens(src, raw, at)?;
    let timeout = match &raw.timeout {
        // Unsigned tokens carry no time: nothing could expire them.
        Some(timeout) if tokens.keys.is_empty() => {
            return Err(src.at(
                timeout,
                at.key("timeout"),
                format_args!("needs signed tokens in mode = \"header\": set {at}.keys"),
            ));
        }
        Some(timeout) => Some(duration::required(
            src,
            timeout,
            MIN_SECONDS,
            &at.key("timeout"),
        )?),
        None => None,
    };
    Ok(HeaderConfig {
        header: name.clone(),
        query,
        timeout,
        tokens,
        on_server_down: on_server_down(raw),
    })
}

fn on_server_down(raw: &raw::Persistence) -> OnServerDown {
    match raw.on_server_down.as_ref().map(|v| *v.get_ref()) {
        None | Some(raw::OnServerDown::Move) => OnServerDown::Move,
        Some(raw::OnServerDown::Refuse) => OnServerDown::Refuse,
    }
}

fn cookie_name(
    src: &Source<'_>,
    value: &Spanned<String>,
    path: &KeyPath,
) -> Result<CookieName, ConfigError> {
    CookieName::new(value.get_ref()).ok_or_else(|| {
        src.at(
            value,
            path,
            format_args!(
                "{:?} is not a valid cookie name ({COOKIE_NAME_RULE})",
                value.get_ref()
            ),
        )
    })
}

fn build_attrs(
    src: &Source<'_>,
    raw: &raw::Persistence,
    at: &KeyPath,
) -> Result<CookieAttrs, ConfigError> {
    let path = match &raw.path {
        Some(path) => {
            let text = path.get_ref();
            if !text.starts_with('/') {
                return Err(src.at(
                    path,
                    at.key("path"),
                    format_args!("{text:?} must start with /"),
                ));
            }
            // A `;` would end the attribute and start another one.
            if text.bytes().any(|b| b == b';' || b.is_ascii_control()) {
                return Err(src.at(
                    path,
                    at.key("path"),
                    format_args!("{text:?} must not contain ; or control characters"),
                ));
            }
            text.clone()
        }
        None => raw::COOKIE_PATH.to_owned(),
    };
    let domain = match &raw.domain {
        Some(domain) => {
            let text = domain.get_ref();
            // RFC 6265 ignores one leading dot; accept it as written.
            if !is_host_name(text.strip_prefix('.').unwrap_or(text)) {
                return Err(src.at(
                    domain,
                    at.key("domain"),
                    format_args!("{text:?} is not a valid domain"),
                ));
            }
            Some(text.clone())
        }
        None => None,
    };
    let secure_written = raw.secure.as_ref().is_some_and(|v| *v.get_ref());
    // A group may be reached over plain HTTP, where the HTTPS default does
    // not make the cookie Secure, and browsers drop these without it.
    let needs_secure = |key: &str, span: std::ops::Range<usize>, what: &str| {
        Err(src.invalid(
            Some(span),
            at.key(key),
            format_args!("{what} needs secure = true written in {at}"),
        ))
    };
    let same_site = match &raw.same_site {
        Some(value) => Some(match value.get_ref() {
            raw::SameSite::Lax => SameSite::Lax,
            raw::SameSite::Strict => SameSite::Strict,
            raw::SameSite::None if !secure_written => {
                return needs_secure("same_site", value.span(), "\"None\"");
            }
            raw::SameSite::None => SameSite::None,
        }),
        None => None,
    };
    let partitioned = match &raw.partitioned {
        Some(value) if *value.get_ref() && !secure_written => {
            return needs_secure("partitioned", value.span(), "true");
        }
        Some(value) => *value.get_ref(),
        None => false,
    };
    Ok(CookieAttrs {
        path,
        domain,
        http_only: raw
            .http_only
            .as_ref()
            .map_or(raw::HTTP_ONLY, |v| *v.get_ref()),
        secure: raw.secure.as_ref().map(|v| *v.get_ref()),
        same_site,
        partitioned,
    })
}

fn build_tokens(
    src: &Source<'_>,
    raw: &raw::Persistence,
    at: &KeyPath,
) -> Result<TokenConfig, ConfigError> {
    let secret = match &raw.token_secret {
        Some(secret) => Some(src.secret(secret, &at.key("token_secret"))?),
        None => None,
    };
    let mut keys = Vec::new();
    if let Some(written) = &raw.keys {
        for (i, key) in written.get_ref().iter().enumerate() {
            keys.push(src.secret(key, &at.key("keys").index(i))?);
        }
    }
    let age = |value: &raw::Value<String>, key: &str| match value {
        Some(_) if keys.is_empty() => Err(src.invalid(
            value.as_ref().map(Spanned::span),
            at.key(key),
            format_args!("needs signed tokens: set {at}.keys"),
        )),
        Some(value) => duration::required(src, value, MIN_SECONDS, &at.key(key)).map(Some),
        None => Ok(None),
    };
    let max_age = age(&raw.max_age, "max_age")?;
    let max_idle = age(&raw.max_idle, "max_idle")?;
    Ok(TokenConfig {
        secret,
        keys,
        max_age,
        max_idle,
    })
}

/// Secrets never reach a log line or `GET /config`.
impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("max_age", &self.max_age)
            .field("max_idle", &self.max_idle)
            .finish()
    }
}
