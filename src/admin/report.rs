//! What `/stats` (JSON) and `/metrics` (Prometheus text) say: the control
//! thread's view of every server, plus every worker's counters gathered at
//! the moment of asking.

use serde_json::{json, Value};

use super::metrics::{Family, Kind, Value as Metric};
use crate::control::{AdminState, DrainWatch, Health, ServerView, Snapshot};
use crate::control::{ServerReport, WorkerReport};
use crate::sticky::Outcome;
use crate::worker::{RetryReason, Shed};

/// The names of `WorkerReport::sticky_refused`'s slots.
pub const REFUSALS: [&str; 5] = ["garbled", "unknown", "bad_signature", "expired", "idle"];
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn admin_name(state: AdminState) -> &'static str {
    match state {
        AdminState::Enabled => "enabled",
        AdminState::Draining => "draining",
        AdminState::Disabled => "disabled",
    }
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Up => "up",
        Health::Down => "down",
        Health::Ejected => "ejected",
    }
}

/// What the drain watch and the workers' reports say of one server now.
pub struct Watch {
    /// Requests in flight and open tunnels, on every core.
    pub in_flight: u64,
    pub tunnels: u32,
    /// Persistent requests (a session named the server) per second over
    /// the last minute.
    pub per_second: f64,
    /// Draining, and safe to remove (SPEC §6).
    pub drained: bool,
    /// How long no persistent request arrived, as of the last sample.
    pub quiet: Option<std::time::Duration>,
}

impl Watch {
    /// `drained` holds when the control thread's samples say so and these
    /// reports agree: nothing in flight on any core, and no persistent
    /// request since the last sample.
    pub fn of(
        drains: &DrainWatch,
        group: &str,
        server: &str,
        state: &ServerView,
        total: &ServerReport,
    ) -> Watch {
        let now = std::time::Instant::now();
        let watched = drains.find(group, server);
        let in_flight = u64::from(total.in_flight) + u64::from(total.tunnels);
        let drained = state.admin == AdminState::Draining
            && in_flight == 0
            && watched.is_some_and(|w| w.drained(now) && w.hits() == Some(total.sticky_hits));
        Watch {
            in_flight,
            tunnels: total.tunnels,
            per_second: watched.map_or(0.0, |w| w.per_second()),
            drained,
            quiet: watched.map(|w| w.quiet_for(now)),
        }
    }

    /// The `drain` object of `/stats` and of the drain call's answer:
    /// `null` unless the server is draining.
    pub fn drain_json(&self, state: &ServerView) -> Value {
        let Some(since) = state
            .drain_since
            .filter(|_| state.admin == AdminState::Draining)
        else {
            return Value::Null;
        };
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        json!({
            "state": if self.drained { "drained" } else { "draining" },
            "since": unix_now.saturating_sub(since.elapsed().as_secs()),
            "timeout_s": state.drain_timeout.map(|t| t.as_secs_f64()),
            "expired": state.drain_expired,
            "in_flight": self.in_flight,
            "persistent_per_second": self.per_second,
            "quiet_s": self.quiet.map(|q| q.as_secs()),
        })
    }
}

/// Milliseconds, for JSON readers.
fn ms(us: Option<u64>) -> Value {
    us.map_or(Value::Null, |us| json!(us as f64 / 1000.0))
}

/// `GET /stats`.
pub fn stats_json(snapshot: &Snapshot, reports: &[WorkerReport], drains: &DrainWatch) -> Value {
    let config = &snapshot.config;
    let groups: Vec<Value> = config
        .groups
        .iter()
        .zip(&snapshot.groups)
        .enumerate()
        .map(|(g, (group, view))| {
            let servers: Vec<Value> = group
                .servers
                .iter()
                .zip(&view.servers)
                .enumerate()
                .map(|(s, (server, state))| {
                    let total = ServerReport::total(reports, g, s);
                    let watch = Watch::of(drains, &group.name, &server.name, state, &total);
                    let classes: serde_json::Map<String, Value> = CLASSES
                        .iter()
                        .zip(total.classes)
                        .map(|(c, n)| (c.to_string(), json!(n)))
                        .collect();
                    let latency = |h: &crate::worker::HistogramReport| {
                        json!({
                            "count": h.count(),
                            "p50_ms": ms(h.quantile_us(0.5)),
                            "p90_ms": ms(h.quantile_us(0.9)),
                            "p99_ms": ms(h.quantile_us(0.99)),
                        })
                    };
                    json!({
                        "name": server.name,
                        // Where it is reached now; `configured` as written
                        // (a host name is resolved again every `[dns] interval`).
                        "address": state.addr.to_string(),
                        "configured": server.address.to_string(),
                        "weight": server.weight.get(),
                        "admin": admin_name(state.admin),
                        "health": health_name(state.health),
                        "drain_expired": state.drain_expired,
                        "drain": watch.drain_json(state),
                        "usable": state.takes_new(),
                        "responses": total.responses,
                        "classes": classes,
                        "sticky_hits": total.sticky_hits,
                        "persistent_per_second": watch.per_second,
                        // Open tunnels included.
                        "in_flight": watch.in_flight,
                        "tunnels": watch.tunnels,
                        "bytes_in": total.bytes_in,
                        "bytes_out": total.bytes_out,
                        // Upper bounds of the buckets the percentiles fall in.
                        "latency": {
                            "request": latency(&total.duration),
                            "connect": latency(&total.connect),
                            "first_byte": latency(&total.first_byte),
                        },
                    })
                })
                .collect();
            json!({ "name": group.name, "servers": servers })
        })
        .collect();
    let sum = |f: fn(&WorkerReport) -> u64| reports.iter().map(f).sum::<u64>();
    let refused: serde_json::Map<String, Value> = REFUSALS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                name.to_string(),
                json!(reports.iter().map(|r| r.sticky_refused[i]).sum::<u64>()),
            )
        })
        .collect();
    let workers: Vec<Value> = reports
        .iter()
        .map(|r| {
            let responses: serde_json::Map<String, Value> = CLASSES
                .iter()
                .zip(r.responses)
                .map(|(c, n)| (c.to_string(), json!(n)))
                .collect();
            json!({
                "id": r.id,
                "snapshot": r.snapshot_generation,
                "accepted": r.accepted,
                "active_connections": r.active_connections,
                "requests": r.requests,
                "in_flight": r.in_flight,
                "responses": responses,
                "refused": r.refused,
                "backend_connect_errors": r.backend_connect_errors,
                "backend_timeouts": r.backend_timeouts,
                "retries": RetryReason::ALL
                    .iter()
                    .zip(r.retries)
                    .map(|(reason, n)| (reason.label().to_string(), json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "shed_connections": Shed::ALL
                    .iter()
                    .zip(r.shed)
                    .map(|(reason, n)| (reason.label().to_string(), json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "panics": r.panics,
                "tls_handshakes": r.tls_handshakes,
                "tls_resumed": r.tls_resumed,
                "tls_handshake_failures": r.tls_handshake_failures,
                "spliced_bodies": r.spliced_bodies,
                "spliced_bytes": r.spliced_bytes,
                "idle_backend_connections": r.idle_upstreams,
                "free_buffers": r.free_buffers,
            })
        })
        .collect();
    // What listens now: reloads add and remove listeners, and port 0 is
    // only known once bound.
    let listeners: Vec<Value> = snapshot
        .bound_listeners()
        .map(|(listener, addr)| {
            json!({
                "name": listener.name,
                "address": addr.to_string(),
                "https": listener.tls.is_some(),
                "responses": listener_classes(snapshot, reports, &listener.name),
            })
        })
        .collect();
    let classes: serde_json::Map<String, Value> = CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.to_string(),
                json!(reports.iter().map(|r| r.responses[i]).sum::<u64>()),
            )
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("LIMPET_COMMIT"),
        "snapshot": snapshot.generation,
        "reloads_refused": snapshot.reloads.refused(),
        "requests": sum(|r| r.requests),
        "responses": classes,
        "listeners": listeners,
        "groups": groups,
        "sticky": {
            "hits": sum(|r| r.sticky_hits),
            "new": sum(|r| r.sticky_new),
            "moved": sum(|r| r.sticky_moved),
            "unavailable": sum(|r| r.sticky_unavailable),
            "refused": refused,
        },
        "workers": workers,
    })
}

/// A listener's responses by class, summed over the workers.
fn listener_classes(snapshot: &Snapshot, reports: &[WorkerReport], name: &str) -> Value {
    let mut total = [0u64; 5];
    for (id, index) in snapshot.listener_index.iter().enumerate() {
        let named = index
            .and_then(|i| snapshot.config.listeners.get(i as usize))
            .is_some_and(|l| l.name == name);
        if !named {
            continue;
        }
        for r in reports {
            if let Some(counts) = r.listeners.get(id) {
                for (t, n) in total.iter_mut().zip(counts) {
                    *t = t.wrapping_add(*n);
                }
            }
        }
    }
    CLASSES
        .iter()
        .zip(total)
        .map(|(c, n)| (c.to_string(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Every family `/metrics` serves, in both formats.
pub fn metric_families(
    snapshot: &Snapshot,
    reports: &[WorkerReport],
    drains: &DrainWatch,
) -> Vec<Family> {
    use Kind::{Counter, Gauge, Histogram};
    let mut build = Family::new(
        "limpet_build",
        Kind::Info,
        "The version and commit limpet was built from",
    );
    build.add(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("LIMPET_COMMIT")),
        ],
        Metric::Info,
    );
    let mut requests = Family::new("limpet_requests", Counter, "Requests received, per worker");
    let mut responses = Family::new(
        "limpet_responses",
        Counter,
        "Responses sent to clients, per worker and class",
    );
    let mut connections = Family::new(
        "limpet_active_connections",
        Gauge,
        "Open client connections, per worker",
    );
    let mut accepted = Family::new(
        "limpet_accepted_connections",
        Counter,
        "Client connections accepted, per worker",
    );
    let mut errors = Family::new(
        "limpet_backend_errors",
        Counter,
        "Backend failures, per worker and kind (connect, timeout)",
    );
    let mut refused_requests = Family::new(
        "limpet_refused_requests",
        Counter,
        "Requests limpet answered itself with a 4xx before any backend, per worker",
    );
    let mut retries = Family::new(
        "limpet_retries",
        Counter,
        "Requests sent again after a failure (SPEC 7), per worker and reason",
    );
    let mut shed = Family::new(
        "limpet_shed_connections",
        Counter,
        "Client connections limpet closed to admit others or for being too slow, per worker and reason",
    );
    let mut panics = Family::new(
        "limpet_panics",
        Counter,
        "Connections closed by a panic, per worker",
    );
    let mut spliced = Family::new(
        "limpet_spliced_bodies",
        Counter,
        "Response bodies relayed with splice(2), per worker",
    );
    let mut spliced_bytes = Family::new(
        "limpet_spliced_bytes",
        Counter,
        "Response body bytes relayed with splice(2), per worker",
    );
    let mut tls = Family::new(
        "limpet_tls_handshakes",
        Counter,
        "TLS handshakes on HTTPS listeners, per worker and outcome (full, resumed, failed)",
    );
    let mut sticky = Family::new(
        "limpet_sticky_requests",
        Counter,
        "Requests by what their session did",
    );
    let mut refused = Family::new(
        "limpet_sticky_refused",
        Counter,
        "Persistence tokens treated as absent, by reason",
    );
    let mut reloads_refused = Family::new(
        "limpet_reloads_refused",
        Counter,
        "Reloads refused (by signal or API); nothing changed",
    );
    reloads_refused.count(&[], snapshot.reloads.refused());
    for r in reports {
        let worker = r.id.to_string();
        let worker = worker.as_str();
        let w = [("worker", worker)];
        requests.count(&w, r.requests);
        accepted.count(&w, r.accepted);
        connections.gauge(&w, r.active_connections as f64);
        panics.count(&w, r.panics);
        spliced.count(&w, r.spliced_bodies);
        spliced_bytes.count(&w, r.spliced_bytes);
        refused_requests.count(&w, r.refused);
        for (outcome, n) in [
            ("full", r.tls_handshakes.saturating_sub(r.tls_resumed)),
            ("resumed", r.tls_resumed),
            ("failed", r.tls_handshake_failures),
        ] {
            tls.count(&[("worker", worker), ("outcome", outcome)], n);
        }
        for (class, n) in CLASSES.iter().zip(r.responses) {
            responses.count(&[("worker", worker), ("class", class)], n);
        }
        for (reason, n) in RetryReason::ALL.iter().zip(r.retries) {
            retries.count(&[("worker", worker), ("reason", reason.label())], n);
        }
        for (reason, n) in Shed::ALL.iter().zip(r.shed) {
            shed.count(&[("worker", worker), ("reason", reason.label())], n);
        }
        for (kind, n) in [
            ("connect", r.backend_connect_errors),
            ("timeout", r.backend_timeouts),
        ] {
            errors.count(&[("worker", worker), ("kind", kind)], n);
        }
    }
    // The labels are the outcome's own (sticky::Outcome::metric_label).
    for (outcome, f) in [
        (
            Outcome::Stuck,
            (|r| r.sticky_hits) as fn(&WorkerReport) -> u64,
        ),
        (Outcome::New, |r| r.sticky_new),
        (Outcome::Moved, |r| r.sticky_moved),
    ] {
        if let Some(label) = outcome.metric_label() {
            sticky.count(&[("outcome", label)], reports.iter().map(f).sum());
        }
    }
    for (i, reason) in REFUSALS.iter().enumerate() {
        let n = reports.iter().map(|r| r.sticky_refused[i]).sum();
        refused.count(&[("reason", reason)], n);
    }

    let mut listener_responses = Family::new(
        "limpet_listener_responses",
        Counter,
        "Responses sent to clients, per listener and class",
    );
    for (listener, _) in snapshot.bound_listeners() {
        if let serde_json::Value::Object(classes) =
            listener_classes(snapshot, reports, &listener.name)
        {
            for (class, n) in classes {
                let n = n.as_u64().unwrap_or(0);
                listener_responses.count(&[("listener", &listener.name), ("class", &class)], n);
            }
        }
    }

    let mut server_responses = Family::new(
        "limpet_server_responses",
        Counter,
        "Responses relayed from a server, per class",
    );
    let mut server_sticky = Family::new(
        "limpet_server_sticky_hits",
        Counter,
        "Requests that reached a server because their session named it",
    );
    let mut in_flight = Family::new(
        "limpet_server_in_flight_requests",
        Gauge,
        "Requests forwarded to a server and not yet answered, open tunnels included",
    );
    let mut tunnels = Family::new(
        "limpet_server_open_tunnels",
        Gauge,
        "Upgraded connections (WebSocket) open through a server",
    );
    let mut persistent = Family::new(
        "limpet_server_persistent_requests_per_second",
        Gauge,
        "Requests that reached a server because their session named it, per second over the last minute",
    );
    let mut drained = Family::new(
        "limpet_server_drained",
        Gauge,
        "1 when a draining server has nothing in flight and has had no persistent request for 10 s",
    );
    let mut bytes_in = Family::new(
        "limpet_server_received_bytes",
        Counter,
        "Request bytes received from clients for a server (heads, and bodies with a Content-Length)",
    );
    let mut bytes_out = Family::new(
        "limpet_server_sent_bytes",
        Counter,
        "Response bytes sent to clients from a server",
    );
    let mut duration = Family::new(
        "limpet_request_duration_seconds",
        Histogram,
        "From the request head's arrival to the response's last byte, per server",
    );
    let mut connect = Family::new(
        "limpet_backend_connect_seconds",
        Histogram,
        "Opening a new backend connection (TCP and TLS), per server",
    );
    let mut first_byte = Family::new(
        "limpet_response_head_seconds",
        Histogram,
        "From the request head's arrival to the backend's response head, per server",
    );
    let mut server_up = Family::new(
        "limpet_server_usable",
        Gauge,
        "1 when the server takes new sessions",
    );
    let mut server_state = Family::new(
        "limpet_server_state",
        Gauge,
        "The server's admin state and health (value 1)",
    );
    for (g, (group, view)) in snapshot
        .config
        .groups
        .iter()
        .zip(&snapshot.groups)
        .enumerate()
    {
        for (s, (server, state)) in group.servers.iter().zip(&view.servers).enumerate() {
            let total = ServerReport::total(reports, g, s);
            let watch = Watch::of(drains, &group.name, &server.name, state, &total);
            let id = [
                ("group", group.name.as_str()),
                ("server", server.name.as_str()),
            ];
            for (class, n) in CLASSES.iter().zip(total.classes) {
                server_responses.count(&[id[0], id[1], ("class", class)], n);
            }
            server_sticky.count(&id, total.sticky_hits);
            in_flight.gauge(&id, watch.in_flight as f64);
            tunnels.gauge(&id, f64::from(watch.tunnels));
            persistent.gauge(&id, watch.per_second);
            drained.gauge(&id, f64::from(u8::from(watch.drained)));
            bytes_in.count(&id, total.bytes_in);
            bytes_out.count(&id, total.bytes_out);
            duration.add(&id, Metric::Histogram(total.duration));
            connect.add(&id, Metric::Histogram(total.connect));
            first_byte.add(&id, Metric::Histogram(total.first_byte));
            server_up.gauge(&id, f64::from(u8::from(state.takes_new())));
            server_state.gauge(
                &[
                    id[0],
                    id[1],
                    ("admin", admin_name(state.admin)),
                    ("health", health_name(state.health)),
                ],
                1.0,
            );
        }
    }
    let mut families = vec![
        build,
        requests,
        responses,
        listener_responses,
        connections,
        accepted,
        errors,
        refused_requests,
        retries,
        shed,
        panics,
        spliced,
        spliced_bytes,
        tls,
        sticky,
        refused,
        server_responses,
        server_sticky,
        in_flight,
        tunnels,
        persistent,
        drained,
        bytes_in,
        bytes_out,
        duration,
        connect,
        first_byte,
        server_up,
        server_state,
        reloads_refused,
    ];
    families.extend(super::metrics::process_families());
    families
}
