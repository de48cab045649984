//! What `/stats` (JSON) and `/metrics` (Prometheus text) say: the control
//! thread's view of every server, plus every worker's counters gathered at
//! the moment of asking.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

use crate::control::WorkerReport;
use crate::control::{AdminState, Health, Snapshot};
use crate::sticky::Outcome;
use crate::worker::{RetryReason, Shed};

/// The names of `WorkerReport::sticky_refused`'s slots.
pub const REFUSALS: [&str; 5] = ["garbled", "unknown", "bad_signature", "expired", "idle"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

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

/// A per-server counter summed over the workers that run this snapshot's
/// configuration (a worker mid-reload may still report the old one).
fn server_sum(
    reports: &[WorkerReport],
    group: usize,
    server: usize,
    pick: fn(&(u64, u64, u32)) -> u64,
) -> u64 {
    reports
        .iter()
        .filter_map(|r| r.servers.get(group).and_then(|g| g.get(server)))
        .map(pick)
        .sum()
}

/// `GET /config`: the configuration, then the address each server that is
/// written as a host name resolves to now.
pub fn config_text(snapshot: &Snapshot) -> String {
    let mut text = format!("{:#?}\n", snapshot.config);
    let mut first = true;
    for (group, view) in snapshot.config.groups.iter().zip(&snapshot.groups) {
        for (server, state) in group.servers.iter().zip(&view.servers) {
            if server.address.ip().is_some() {
                continue;
            }
            if first {
                text.push_str("\n# server names resolve to\n");
                first = false;
            }
            text.push_str(&format!(
                "{}/{}: {} -> {}\n",
                group.name, server.name, server.address, state.addr
            ));
        }
    }
    text
}

/// `GET /stats`.
pub fn stats_json(snapshot: &Snapshot, reports: &[WorkerReport]) -> Value {
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
                        "responses": server_sum(reports, g, s, |c| c.0),
                        "sticky_hits": server_sum(reports, g, s, |c| c.1),
                        "in_flight": server_sum(reports, g, s, |c| u64::from(c.2)),
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
            })
        })
        .collect();
    json!({
        "snapshot": snapshot.generation,
        "reloads_refused": snapshot.reloads.refused(),
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

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `GET /metrics`, in the Prometheus text format.
pub fn metrics_text(
    snapshot: &Snapshot,
    reports: &[WorkerReport],
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("limpet");
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Labels, Counter>::default();
        registry.register(name, help, family.clone());
        family
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Labels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let requests = counter(&mut registry, "requests", "Requests received, per worker");
    let responses = counter(
        &mut registry,
        "responses",
        "Responses sent to clients, per worker and class",
    );
    let connections = gauge(
        &mut registry,
        "active_connections",
        "Open client connections, per worker",
    );
    let accepted = counter(
        &mut registry,
        "accepted_connections",
        "Client connections accepted, per worker",
    );
    let errors = counter(
        &mut registry,
        "backend_errors",
        "Backend failures, per worker and kind",
    );
    let retries = counter(
        &mut registry,
        "retries",
        "Requests sent again after a failure (SPEC 7), per worker and reason",
    );
    let shed = counter(
        &mut registry,
        "shed_connections",
        "Client connections limpet closed to admit others or for being too slow, per worker and reason",
    );
    let panics = counter(
        &mut registry,
        "panics",
        "Connections closed by a panic, per worker",
    );
    let tls = counter(
        &mut registry,
        "tls_handshakes",
        "TLS handshakes on HTTPS listeners, per worker and outcome (full, resumed, failed)",
    );
    let sticky = counter(
        &mut registry,
        "sticky_requests",
        "Requests by what their session did",
    );
    let refused = counter(
        &mut registry,
        "sticky_refused",
        "Persistence tokens treated as absent, by reason",
    );
    let server_responses = counter(
        &mut registry,
        "server_responses",
        "Responses relayed, per server",
    );
    let server_sticky = counter(
        &mut registry,
        "server_sticky_hits",
        "Requests that reached a server because their session named it",
    );
    let server_up = gauge(
        &mut registry,
        "server_usable",
        "1 when the server takes new sessions",
    );
    let server_state = gauge(
        &mut registry,
        "server_state",
        "The server's admin state and health (value 1)",
    );
    let reloads_refused = Counter::<u64>::default();
    reloads_refused.inc_by(snapshot.reloads.refused());
    registry.register(
        "reloads_refused",
        "Reloads refused (by signal or API); nothing changed",
        reloads_refused,
    );
    for r in reports {
        let worker = r.id.to_string();
        let w = labels(&[("worker", &worker)]);
        requests.get_or_create(&w).inc_by(r.requests);
        accepted.get_or_create(&w).inc_by(r.accepted);
        connections
            .get_or_create(&w)
            .set(i64::try_from(r.active_connections).unwrap_or(i64::MAX));
        panics.get_or_create(&w).inc_by(r.panics);
        for (outcome, n) in [
            ("full", r.tls_handshakes.saturating_sub(r.tls_resumed)),
            ("resumed", r.tls_resumed),
            ("failed", r.tls_handshake_failures),
        ] {
            tls.get_or_create(&labels(&[("worker", &worker), ("outcome", outcome)]))
                .inc_by(n);
        }
        for (class, n) in CLASSES.iter().zip(r.responses) {
            responses
                .get_or_create(&labels(&[("worker", &worker), ("class", class)]))
                .inc_by(n);
        }
        for (reason, n) in RetryReason::ALL.iter().zip(r.retries) {
            retries
                .get_or_create(&labels(&[("worker", &worker), ("reason", reason.label())]))
                .inc_by(n);
        }
        for (reason, n) in Shed::ALL.iter().zip(r.shed) {
            shed.get_or_create(&labels(&[("worker", &worker), ("reason", reason.label())]))
                .inc_by(n);
        }
        for (kind, n) in [
            ("connect", r.backend_connect_errors),
            ("timeout", r.backend_timeouts),
        ] {
            errors
                .get_or_create(&labels(&[("worker", &worker), ("kind", kind)]))
                .inc_by(n);
        }
        // The labels are the outcome's own (sticky::Outcome::metric_label).
        for (outcome, n) in [
            (Outcome::Stuck, r.sticky_hits),
            (Outcome::New, r.sticky_new),
            (Outcome::Moved, r.sticky_moved),
        ] {
            if let Some(label) = outcome.metric_label() {
                sticky
                    .get_or_create(&labels(&[("outcome", label)]))
                    .inc_by(n);
            }
        }
        for (reason, n) in REFUSALS.iter().zip(r.sticky_refused) {
            refused
                .get_or_create(&labels(&[("reason", reason)]))
                .inc_by(n);
        }
    }
    for (g, (group, view)) in snapshot
        .config
        .groups
        .iter()
        .zip(&snapshot.groups)
        .enumerate()
    {
        for (s, (server, state)) in group.servers.iter().zip(&view.servers).enumerate() {
            let id = labels(&[("group", &group.name), ("server", &server.name)]);
            server_responses
                .get_or_create(&id)
                .inc_by(server_sum(reports, g, s, |c| c.0));
            server_sticky
                .get_or_create(&id)
                .inc_by(server_sum(reports, g, s, |c| c.1));
            server_up
                .get_or_create(&id)
                .set(i64::from(state.takes_new()));
            let state_labels = labels(&[
                ("group", &group.name),
                ("server", &server.name),
                ("admin", admin_name(state.admin)),
                ("health", health_name(state.health)),
            ]);
            server_state.get_or_create(&state_labels).set(1);
        }
    }
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}
