//! The admin listener: operators' HTTP API on loopback, served by the
//! control thread, never by a worker and never on the data path.
//!
//! | request | does |
//! |---|---|
//! | `GET /stats` | JSON: per group and server (state, health, responses, sticky hits), sticky outcomes, per worker counters |
//! | `GET /metrics` | the same in the Prometheus text format (`limpet_` prefix) |
//! | `POST /servers/{group}/{server}/drain` \| `disable` \| `enable` | change a server's admin state |
//! | `PUT /servers/{group}/{server}/weight` | body: the new weight (1–256) |
//! | `POST /reload` | reload the configuration file |
//! | `GET /config` | the running configuration, secrets redacted, and what server names resolve to |
//! | `GET /sticky/{group}/{server}` | the cookie that pins a client to that server |
//! | `GET /sticky/{group}?token=T` | which server a token names, and whether it is valid |
//!
//! With `[admin] token`, every request needs `Authorization: Bearer <token>`.
//! One request per connection; answers always carry `Connection: close`.

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
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Internal Server Error",
    }
}

/// The parts of a request the routes need, owned.
struct Call {
    method: String,
    path: String,
    query: String,
    authorized: bool,
    body: Vec<u8>,
}

async fn handle(mut stream: TcpStream, token: std::rc::Rc<Option<String>>, shared: Shared) {
    let answer = match monoio::time::timeout(
        REQUEST_TIMEOUT,
        read_call(&mut stream, token.as_deref()),
    )
    .await
    {
        Ok(Ok(call)) if !call.authorized => Answer::error(401, "missing or wrong bearer token"),
        Ok(Ok(call)) => route(call, &shared).await,
        Ok(Err(answer)) => answer,
        Err(_) => return,
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(answer.body.as_bytes());
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
        let authorized = match token {
            None => true,
            Some(token) => http::headers_named(request.headers, "authorization")
                .any(|value| value.strip_prefix(b"Bearer ") == Some(token.as_bytes())),
        };
        let target = String::from_utf8_lossy(request.target).into_owned();
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (target, String::new()),
        };
        return Ok(Call {
            method: request.method.to_owned(),
            path,
            query,
            authorized,
            body: buf[request.head_len..request.head_len + body_len].to_vec(),
        });
    }
}

async fn route(call: Call, shared: &Shared) -> Answer {
    let parts: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    match (call.method.as_str(), parts.as_slice()) {
        ("GET", ["stats"]) => {
            let reports = shared.reports().await;
            Answer::json(200, report::stats_json(&shared.snapshot(), &reports))
        }
        ("GET", ["metrics"]) => {
            let reports = shared.reports().await;
            match report::metrics_text(&shared.snapshot(), &reports) {
                Ok(body) => Answer {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    body,
                },
                Err(err) => Answer::error(500, err),
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
            match shared.set_admin(group, server, state) {
                Ok(generation) => Answer::json(
                    200,
                    json!({ "group": group, "server": server, "admin": report::admin_name(state), "snapshot": generation }),
                ),
                Err(err) => Answer::error(404, err),
            }
        }
        ("PUT", ["servers", group, server, "weight"]) => {
            let text = String::from_utf8_lossy(&call.body);
            let weight = text
                .trim()
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
        ("GET", ["config"]) => Answer {
            status: 200,
            content_type: "text/plain",
            body: report::config_text(&shared.snapshot()),
        },
        ("GET", ["sticky", group, server]) => sticky_cookie(shared, group, server),
        ("GET", ["sticky", group]) => {
            let token = call
                .query
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .unwrap_or("");
            sticky_lookup(shared, group, token)
        }
        (_, ["stats" | "metrics" | "reload" | "config" | "servers" | "sticky", ..]) => {
            Answer::error(
                405,
                format!("{} is not allowed on {}", call.method, call.path),
            )
        }
        _ => Answer::error(404, format!("no admin endpoint {}", call.path)),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /sticky/{group}/{server}`: the cookie a client needs to reach it.
fn sticky_cookie(shared: &Shared, group: &str, server: &str) -> Answer {
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
    let now = unix_now();
    let idx = ServerIdx(u32::try_from(s).unwrap_or(u32::MAX));
    let persistence = &snapshot.groups[g].persistence;
    let Some(tokens) = persistence.tokens() else {
        return Answer::error(404, format!("group `{group}` has no session persistence"));
    };
    let token = tokens.encode(idx, u32::try_from(now).unwrap_or(u32::MAX), now);
    let token = String::from_utf8_lossy(token.as_bytes()).into_owned();
    let cookie = match &snapshot.config.groups[g].persistence {
        crate::config::Persistence::Insert(insert) => format!("{}={token}", insert.cookie.as_str()),
        crate::config::Persistence::Rewrite(rewrite) => {
            format!("{}={token}.<application value>", rewrite.cookie.as_str())
        }
        crate::config::Persistence::None => {
            return Answer::error(404, format!("group `{group}` has no session persistence"))
        }
    };
    Answer::json(
        200,
        json!({ "group": group, "server": server, "token": token, "cookie": cookie }),
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
