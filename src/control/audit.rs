//! The audit line of a reload: what the new configuration changes against
//! the one in force, in words, for the one log line every reload writes.
//! It only compares; it never decides whether a reload may happen.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Config;

/// Who asked for a reload, as the audit line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP (`systemctl reload`).
    Signal,
    /// `POST /reload` on the admin listener.
    Api,
    /// `PUT /servers/.../weight` on the admin listener.
    Weight,
    /// `Running::reload` from the embedding program (tests).
    Call,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Api => "API",
            Trigger::Weight => "API weight",
            Trigger::Call => "reload",
        }
    }
}

/// Reloads since start, shared by every snapshot so that the admin
/// listener can report them (a refused reload builds no snapshot).
#[derive(Debug, Default)]
pub struct ReloadCounts {
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    /// Refused reloads asked for over the admin API.
    pub refused_api: AtomicU64,
}

impl ReloadCounts {
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// What `new` changes against `old`, e.g. `servers added web/s3; weights
/// web/s0 1->3; persistence web; routes front`; `nothing changed` when the
/// two are equal where it matters.
pub fn describe(old: &Config, new: &Config) -> String {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut moved = Vec::new();
    let mut weights = Vec::new();
    let mut persistence = Vec::new();
    let mut balance = Vec::new();
    let mut health = Vec::new();
    let mut backend_tls = Vec::new();
    for group in &new.groups {
        let Some(before) = old.groups.iter().find(|g| g.name == group.name) else {
            added.push(format!("group {}", group.name));
            continue;
        };
        for server in &group.servers {
            let name = format!("{}/{}", group.name, server.name);
            match before.servers.iter().find(|s| s.name == server.name) {
                None => added.push(name),
                Some(was) => {
                    if was.address != server.address {
                        moved.push(format!("{name} to {}", server.address));
                    }
                    if was.weight != server.weight {
                        weights.push(format!("{name} {}->{}", was.weight, server.weight));
                    }
                }
            }
        }
        for was in &before.servers {
            if !group.servers.iter().any(|s| s.name == was.name) {
                removed.push(format!("{}/{}", group.name, was.name));
            }
        }
        let name = || group.name.clone();
        if before.persistence != group.persistence {
            persistence.push(name());
        }
        if before.balance != group.balance
            || before.pool_max_idle_per_server != group.pool_max_idle_per_server
        {
            balance.push(name());
        }
        if before.health != group.health {
            health.push(name());
        }
        if before.tls != group.tls {
            backend_tls.push(format!("group {}", group.name));
        }
    }
    for group in &old.groups {
        if !new.groups.iter().any(|g| g.name == group.name) {
            removed.push(format!("group {}", group.name));
        }
    }
    let mut listeners_added = Vec::new();
    let mut listeners_removed = Vec::new();
    let mut routes = Vec::new();
    let mut tls = backend_tls;
    let mut logs = Vec::new();
    let mut listener_other = Vec::new();
    for listener in &new.listeners {
        let Some(before) = old.listeners.iter().find(|l| l.addr == listener.addr) else {
            listeners_added.push(format!("{} on {}", listener.name, listener.addr));
            continue;
        };
        let name = || listener.name.clone();
        if before.routes != listener.routes || before.default_group != listener.default_group {
            // Group indices shift when groups come and go: compare by name.
            let names = |c: &Config, l: &crate::config::Listener| {
                let group = |g: crate::config::GroupIdx| c.groups[g.index()].name.clone();
                (
                    l.default_group.map(group),
                    l.routes
                        .iter()
                        .map(|r| (r.host.clone(), r.path_prefix.clone(), group(r.group)))
                        .collect::<Vec<_>>(),
                )
            };
            if names(old, before) != names(new, listener) {
                routes.push(name());
            }
        }
        if before.tls != listener.tls {
            tls.push(format!("listener {}", listener.name));
        }
        if before.access_log != listener.access_log {
            logs.push(name());
        }
        if before.name != listener.name
            || before.trusted_proxies != listener.trusted_proxies
            || before.backlog != listener.backlog
        {
            listener_other.push(name());
        }
    }
    for listener in &old.listeners {
        if !new.listeners.iter().any(|l| l.addr == listener.addr) {
            listeners_removed.push(format!("{} on {}", listener.name, listener.addr));
        }
    }
    let mut line = String::new();
    let mut part = |label: &str, items: &[String]| {
        if !items.is_empty() {
            if !line.is_empty() {
                line.push_str("; ");
            }
            let _ = write!(line, "{label} {}", items.join(", "));
        }
    };
    part("servers added", &added);
    part("servers removed", &removed);
    part("servers moved", &moved);
    part("weights", &weights);
    part("persistence", &persistence);
    part("balance", &balance);
    part("health checks", &health);
    part("listeners added", &listeners_added);
    part("listeners removed", &listeners_removed);
    part("routes", &routes);
    part("TLS", &tls);
    part("access logs", &logs);
    part("listener settings", &listener_other);
    let whole = [
        ("limits", old.limits != new.limits),
        ("timeouts", old.timeouts != new.timeouts),
        ("dns", old.dns != new.dns),
        ("admin", old.admin != new.admin),
        ("log format", old.log_format != new.log_format),
    ];
    let whole: Vec<String> = whole
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    part("changed", &whole);
    if line.is_empty() {
        line.push_str("nothing changed");
    }
    line
}
