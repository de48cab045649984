//! The admin listener: operators' HTTP API on loopback, served by the
//! control thread, never by a worker and never on the data path.
//!
//! | request | does |
//! |---|---|
//! | `GET /` | the status page (HTML, CSS and JavaScript built in: `page/`) |
//! | `GET /stats` | JSON: per group and server (state, health, responses, latency, bytes, in flight, persistent requests per second, the drain), sticky outcomes, per worker counters |
//! | `GET /metrics` | Prometheus text 0.0.4, or OpenMetrics 1.0 for `Accept: application/openmetrics-text` |
//! | `GET /ready`, `GET /live` | 200 or 503: workers listening and first health checks done; the control thread answering |
//! | `POST /servers/{group}/{server}/drain` \| `disable` \| `enable` | change a server's admin state; `drain?timeout=30s` overrides `health.drain_timeout`; the answer says what the server still serves |
//! | `PUT /servers/{group}/{server}/weight` | body: the new weight (1–256), or `{"weight": N}` |
//! | `POST /reload` | reload the configuration file |
//! | `GET /config` | the running configuration as JSON, secrets redacted, and what server names resolve to |
//! | `GET /sticky/{group}/{server}` | the cookie and `Set-Cookie` lines that pin a client to that server |
//! | `GET /sticky/{group}?token=T` | which server a token names, and whether it is valid |
//!
//! `HEAD` works wherever `GET` does. With `[admin] token`, every request but
//! the page's own files, `/ready` and `/live` needs
//! `Authorization: Bearer <token>`. Against other web sites in the
//! operator's browser: a state-changing call without a valid token needs
//! `Content-Type: application/json`, `X-Limpet-Admin: 1` or a same-origin
//! `Origin` (none of which a cross-site form can send without a preflight,
//! which is refused); against DNS rebinding, any request whose `Host` is not
//! the listener's address or `localhost:PORT` gets 421.
//! One request per connection; answers always carry `Connection: close`.

mod config_json;
mod metrics;
mod page;
mod report;

use std::num::NonZeroU32;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use serde_json::json;

use crate::balance::ServerIdx;
use crate::control::{AdminState, Shared};
use crate::http;
use crate::sticky::Decoded;

/// The longest an admin request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest admin request (head and body).
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Accepts admin connections until the control thread stops.
pub async fn serve(listener: std::net::TcpListener, token: Option<String>, shared: Shared) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            log::error!("admin listener unusable: {err}");
            return;
        }
    };
    let token = std::rc::Rc::new(token);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(handle(stream, token.clone(), shared.clone()));
            }
            Err(err) => {
                log::warn!("admin accept failed: {err}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// An answer: status, content type and body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

/// Every endpoint, for the 404 that lists them.
const ENDPOINTS: [&str; 12] = [
    "GET /",
    "GET /stats",
    "GET /metrics",
    "GET /ready",
    "GET /live",
    "GET /config",
    "GET /sticky/{group}/{server}",
    "GET /sticky/{group}?token=T",
    "POST /servers/{group}/{server}/drain|disable|enable",
    "PUT /servers/{group}/{server}/weight",
    "POST /reload",
    "HEAD wherever GET works",
];

impl Answer {
    fn json(status: u16, value: serde_json::Value) -> Self {
        let mut body = serde_json::to_string_pretty(&value).unwrap_or_default();
        body.push('\n');
        Answer {
            status,
            content_type: "application/json",
            body,
        }
    }

    fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Answer::json(status, json!({ "error": message.to_string() }))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        421 => "Misdirected Request",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// The parts of a request the routes need, owned.
struct Call {
    method: String,
    path: String,
    query: String,
    /// A token is configured and the request carries it.
    token_valid: bool,
    /// No token is configured, or the request carries it.
    authorized: bool,
    host: Option<String>,
    origin: Option<String>,
    /// `Content-Type: application/json` or `X-Limpet-Admin: 1`: headers a
    /// cross-site page cannot send without a preflight.
    deliberate: bool,
    accept: String,
    body: Vec<u8>,
}

impl Call {
    /// HEAD is answered as GET, without the body.
    fn is_get(&self) -> bool {
        self.method == "GET" || self.method == "HEAD"
    }
}

/// The `Host` values a request may carry: the listener's own address and
/// `localhost:PORT` (anything else is a DNS rebinding or a mistake).
fn host_allowed(host: &str, local: std::net::SocketAddr) -> bool {
    let host = host.to_ascii_lowercase();
    host == local.to_string() || host == format!("localhost:{}", local.port())
}

/// What the admin API refuses before routing, if anything.
fn refusal(call: &Call, local: Option<std::net::SocketAddr>) -> Option<Answer> {
    if let (Some(host), Some(local)) = (&call.host, local) {
        if !host_allowed(host, local) {
            return Some(Answer::error(
                421,
                format!(
                    "Host {host:?} is not this admin listener ({local} or localhost:{})",
                    local.port()
                ),
            ));
        }
    }
    let public = call.is_get() && matches!(call.path.as_str(), "/" | "/ready" | "/live")
        || call.is_get() && page::asset(&call.path).is_some();
    if !call.authorized && !public {
        return Some(Answer::error(401, "missing or wrong bearer token"));
    }
    let changes_state = !call.is_get();
    if changes_state && !call.token_valid && !call.deliberate {
        let same_origin = match (&call.origin, &call.host) {
            (Some(origin), Some(host)) => *origin == format!("http://{host}"),
            _ => false,
        };
        if !same_origin {
            return Some(Answer::error(
                403,
                "a state-changing admin call needs Content-Type: application/json, \
                 X-Limpet-Admin: 1, a same-origin Origin, or the bearer token",
            ));
        }
    }
    None
}

async fn handle(mut stream: TcpStream, token: std::rc::Rc<Option<String>>, shared: Shared) {
    let local = stream.local_addr().ok();
    let mut head_only = false;
    let answer = match monoio::time::timeout(
        REQUEST_TIMEOUT,
        read_call(&mut stream, token.as_deref()),
    )
    .await
    {
        Ok(Ok(call)) => {
            head_only = call.method == "HEAD";
            match refusal(&call, local) {
                Some(answer) => answer,
                None => route(call, &shared).await,
            }
        }
        Ok(Err(answer)) => answer,
        Err(_) => return,
    };
    // The page is never framed (no clickjacking of its buttons) and runs
    // only its own script.
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         X-Frame-Options: DENY\r\nContent-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n\
         Connection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(answer.body.as_bytes());
    }
    let _ = stream.write_all(bytes).await;
}

async fn read_call(stream: &mut TcpStream, token: Option<&str>) -> Result<Call, Answer> {
    let limits = http::Limits::default();
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_REQUEST_BYTES);
    loop {
        let (len, cap) = (buf.len(), buf.capacity());
        if len == cap {
            return Err(Answer::error(400, "request too large"));
        }
        let (read, slice) = stream.read(buf.slice_mut(len..cap)).await;
        buf = slice.into_inner();
        if !matches!(read, Ok(n) if n > 0) {
            return Err(Answer::error(400, "closed before a full request"));
        }
        let mut headers = [std::mem::MaybeUninit::uninit(); 64];
        let request = match http::parse_request(&buf, &mut headers, &limits, &[]) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(err) => return Err(Answer::error(err.status(), err)),
        };
        let body_len = match request.body {
            http::BodyFraming::None => 0,
            http::BodyFraming::Length(n) if n <= 1024 => usize::try_from(n).unwrap_or(0),
            _ => {
                return Err(Answer::error(
                    400,
                    "admin request bodies are at most 1 KiB, with Content-Length",
                ))
            }
        };
        if buf.len() < request.head_len + body_len {
            continue;
        }
        let token_valid = token.is_some_and(|token| {
            http::headers_named(request.headers, "authorization")
                .any(|value| value.strip_prefix(b"Bearer ") == Some(token.as_bytes()))
        });
        let header = |name: &str| {
            http::headers_named(request.headers, name)
                .next()
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        };
        let json = header("content-type").is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        let deliberate = json || header("x-limpet-admin").as_deref() == Some("1");
        let target = String::from_utf8_lossy(request.target).into_owned();
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (target, String::new()),
        };
        return Ok(Call {
            method: request.method.to_owned(),
            path,
            query,
            token_valid,
            authorized: token.is_none() || token_valid,
            host: header("host"),
            origin: header("origin"),
            deliberate,
            accept: header("accept").unwrap_or_default(),
            body: buf[request.head_len..request.head_len + body_len].to_vec(),
        });
    }
}

async fn route(call: Call, shared: &Shared) -> Answer {
    let parts: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    let method = if call.method == "HEAD" {
        "GET"
    } else {
        call.method.as_str()
    };
    if method == "GET" {
        if let Some((content_type, body)) = page::asset(&call.path) {
            return Answer {
                status: 200,
                content_type,
                body: body.to_owned(),
            };
        }
    }
    match (method, parts.as_slice()) {
        ("GET", ["live"]) => Answer::json(200, json!({ "live": true })),
        ("GET", ["ready"]) => ready(shared).await,
        ("GET", ["stats"]) => {
            let reports = shared.reports().await;
            Answer::json(
                200,
                report::stats_json(&shared.snapshot(), &reports, &shared.drains()),
            )
        }
        ("GET", ["metrics"]) => {
            let reports = shared.reports().await;
            let families = report::metric_families(&shared.snapshot(), &reports, &shared.drains());
            if call.accept.contains("application/openmetrics-text") {
                match metrics::encode_openmetrics(families) {
                    Ok(body) => Answer {
                        status: 200,
                        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        body,
                    },
                    Err(err) => Answer::error(500, err),
                }
            } else {
                Answer {
                    status: 200,
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: metrics::encode_text(&families),
                }
            }
        }
        ("POST", ["servers", group, server, action]) => {
            let state = match *action {
                "drain" => AdminState::Draining,
                "disable" => AdminState::Disabled,
                "enable" => AdminState::Enabled,
                _ => {
                    return Answer::error(
                        404,
                        format!("unknown action `{action}`: drain, disable or enable"),
                    )
                }
            };
            let timeout = match query_param(&call.query, "timeout") {
                None => None,
                Some(_) if state != AdminState::Draining => {
                    return Answer::error(400, "timeout applies to drain only");
                }
                Some(text) => match crate::config::parse_duration(text) {
                    Ok(timeout) => Some(timeout),
                    Err(why) => return Answer::error(400, format!("timeout: {why}")),
                },
            };
            match shared.set_admin_with(group, server, state, timeout) {
                Ok(generation) => server_answer(shared, group, server, generation).await,
                Err(err) => Answer::error(404, err),
            }
        }
        ("PUT", ["servers", group, server, "weight"]) => {
            let text = String::from_utf8_lossy(&call.body);
            // A bare number, or `{"weight": N}` from the page.
            let number = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("weight").and_then(|w| w.as_u64()))
                .map_or_else(|| text.trim().to_owned(), |w| w.to_string());
            let weight = number
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=256).contains(w))
                .and_then(NonZeroU32::new);
            let Some(weight) = weight else {
                return Answer::error(
                    400,
                    format!("the body must be a weight from 1 to 256, not {text:?}"),
                );
            };
            match shared.set_weight(group, server, weight) {
                Ok(generation) => Answer::json(
                    200,
                    json!({ "group": group, "server": server, "weight": weight.get(), "snapshot": generation }),
                ),
                Err(err) => Answer::error(404, err),
            }
        }
        ("POST", ["reload"]) => match shared.reload_file(crate::control::Trigger::Api).await {
            Ok(generation) => {
                Answer::json(200, json!({ "reloaded": true, "snapshot": generation }))
            }
            Err(err) => Answer::error(409, format!("nothing changed: {err}")),
        },
        ("GET", ["config"]) => Answer::json(200, config_json::config_json(&shared.snapshot())),
        ("GET", ["sticky", group, server]) => sticky_cookie(shared, group, server, &call.query),
        ("GET", ["sticky", group]) => {
            let token = call
                .query
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .unwrap_or("");
            sticky_lookup(shared, group, token)
        }
        (
            _,
            ["stats" | "metrics" | "reload" | "config" | "servers" | "sticky" | "ready" | "live", ..],
        ) => Answer::error(
            405,
            format!("{} is not allowed on {}", call.method, call.path),
        ),
        _ => Answer::json(
            404,
            json!({ "error": format!("no admin endpoint {}", call.path), "endpoints": ENDPOINTS }),
        ),
    }
}

/// The answer to a state change: the server's admin state and, for a
/// drain, what it still serves (in flight, persistent requests per second)
/// and the drain's state, as `/stats` shows them.
async fn server_answer(shared: &Shared, group: &str, server: &str, generation: u64) -> Answer {
    let reports = shared.reports().await;
    let snapshot = shared.snapshot();
    let found = snapshot
        .config
        .groups
        .iter()
        .position(|g| g.name == group)
        .and_then(|g| {
            let s = snapshot.config.groups[g]
                .servers
                .iter()
                .position(|s| s.name == server)?;
            Some((g, s))
        });
    let Some((g, s)) = found else {
        return Answer::error(404, format!("no server {group}/{server}"));
    };
    let state = &snapshot.groups[g].servers[s];
    let total = crate::control::ServerReport::total(&reports, g, s);
    let watch = report::Watch::of(&shared.drains(), group, server, state, &total);
    Answer::json(
        200,
        json!({
            "group": group,
            "server": server,
            "admin": report::admin_name(state.admin),
            "snapshot": generation,
            "in_flight": watch.in_flight,
            "tunnels": watch.tunnels,
            "persistent_per_second": watch.per_second,
            "drain": watch.drain_json(state),
        }),
    )
}

/// `GET /ready`: every worker answers and listens, none is stopping, and
/// every server with active checks has had its first one.
async fn ready(shared: &Shared) -> Answer {
    let reports = shared.reports().await;
    let workers = shared.worker_count();
    let stopping = reports.iter().any(|r| r.stopping);
    let checked = shared.first_checks_done();
    let ready = !stopping && checked && reports.len() == workers;
    let why = if stopping {
        "shutting down"
    } else if !checked {
        "waiting for the first health checks"
    } else if reports.len() < workers {
        "a worker does not answer"
    } else {
        "ready"
    };
    Answer::json(
        if ready { 200 } else { 503 },
        json!({ "ready": ready, "status": why, "workers": reports.len() }),
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The value of query parameter `name`, if present.
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// Whether the clients of group `g` reach it over HTTPS only: every
/// listener that may route to it (by default group or by a route) is an
/// HTTPS one, and there is at least one.
fn reached_over_https_only(config: &crate::config::Config, g: usize) -> bool {
    let reaching: Vec<_> = config
        .listeners
        .iter()
        .filter(|l| {
            l.default_group.is_some_and(|d| d.index() == g)
                || l.routes.iter().any(|r| r.group.index() == g)
        })
        .collect();
    !reaching.is_empty() && reaching.iter().all(|l| l.tls.is_some())
}

/// The placeholder a rewrite-mode cookie carries for the application's own
/// value, which only the application knows.
const APP_VALUE: &[u8] = b"<application value>";

/// `GET /sticky/{group}/{server}[?https=true|false]`: the token and
/// cookie a client needs to reach it, and the `Set-Cookie` lines a browser
/// would get from a response, rendered by the request path's own writer.
/// `Secure` depends on the listener when `secure` is not written: `https`
/// says which, by default HTTPS when every listener reaching the group is.
fn sticky_cookie(shared: &Shared, group: &str, server: &str, query: &str) -> Answer {
    let snapshot = shared.snapshot();
    let Some(g) = snapshot.config.groups.iter().position(|g| g.name == group) else {
        return Answer::error(404, format!("no server group named `{group}`"));
    };
    let Some(s) = snapshot.config.groups[g]
        .servers
        .iter()
        .position(|s| s.name == server)
    else {
        return Answer::error(
            404,
            format!("group `{group}` has no server named `{server}`"),
        );
    };
    let https = match query_param(query, "https") {
        None => reached_over_https_only(&snapshot.config, g),
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Answer::error(400, format!("https must be true or false, not {other:?}"))
        }
    };
    let now = unix_now();
    let idx = ServerIdx(u32::try_from(s).unwrap_or(u32::MAX));
    let persistence = &snapshot.groups[g].persistence;
    let Some(tokens) = persistence.tokens() else {
        return Answer::error(404, format!("group `{group}` has no session persistence"));
    };
    let token = tokens.encode(idx, u32::try_from(now).unwrap_or(u32::MAX), now);
    let mut lines = Vec::new();
    let max_age = persistence.write_pinning(token.as_bytes(), https, now, APP_VALUE, &mut lines);
    let token = String::from_utf8_lossy(token.as_bytes()).into_owned();
    let app_value = String::from_utf8_lossy(APP_VALUE);
    let cookie = match &snapshot.config.groups[g].persistence {
        crate::config::Persistence::Insert(insert) => format!("{}={token}", insert.cookie.as_str()),
        crate::config::Persistence::Rewrite(rewrite) => {
            format!("{}={token}.{app_value}", rewrite.cookie.as_str())
        }
        crate::config::Persistence::Header(header) => format!("{}: {token}", header.header),
        crate::config::Persistence::None => {
            return Answer::error(404, format!("group `{group}` has no session persistence"))
        }
    };
    let set_cookie: Vec<String> = String::from_utf8_lossy(&lines)
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    Answer::json(
        200,
        json!({
            "group": group,
            "server": server,
            "token": token,
            "cookie": cookie,
            "https": https,
            "set_cookie": set_cookie,
            "max_age": max_age,
            "expires": max_age.map(|age| now.saturating_add(age)),
        }),
    )
}

/// `GET /sticky/{group}?token=T`: which server `T` names, and why not.
fn sticky_lookup(shared: &Shared, group: &str, token: &str) -> Answer {
    let snapshot = shared.snapshot();
    let Some(g) = snapshot.config.groups.iter().position(|g| g.name == group) else {
        return Answer::error(404, format!("no server group named `{group}`"));
    };
    let Some(tokens) = snapshot.groups[g].persistence.tokens() else {
        return Answer::error(404, format!("group `{group}` has no session persistence"));
    };
    // A rewrite-mode cookie value carries the application's value after a dot.
    let token = token.split('.').next().unwrap_or("");
    match tokens.decode(token.as_bytes(), unix_now()) {
        Decoded::Valid { server, resign, .. } => {
            let view = &snapshot.groups[g].servers[server.get()];
            let name = &snapshot.config.groups[g].servers[server.get()].name;
            Answer::json(
                200,
                json!({
                    "status": "valid",
                    "server": name,
                    "usable": view.takes_stuck(),
                    "admin": report::admin_name(view.admin),
                    "health": report::health_name(view.health),
                    "resign_due": resign,
                }),
            )
        }
        Decoded::Refused(reason) => {
            Answer::json(200, json!({ "status": reason.label(), "server": null }))
        }
    }
}
