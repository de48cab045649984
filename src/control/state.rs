//! The control thread's state: the configuration, every server's admin
//! state and health, and the snapshot built from them. Only the control
//! thread touches it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::snapshot::{self, AdminState, BackendId, BuildError, GroupView, ServerView, Snapshot};
use super::track::Track;
use super::{ControlError, PassiveFailure};
use crate::balance::Ring;
use crate::config::{Address, Config};
use crate::dns::{self, Resolve, Resolved, SystemResolver};
use crate::net::{ListenerId, ListenerView};
use crate::sticky::Persistence;

/// What a group needs that only changes with the configuration: its
/// persistence (token table, cookie writers, finders) and its ring.
type Built = (Arc<Persistence>, Arc<Ring>);

fn build_groups(config: &Config) -> Result<Vec<Built>, BuildError> {
    config
        .groups
        .iter()
        .map(|group| {
            Ok((
                Arc::new(snapshot::build_persistence(group)?),
                Arc::new(snapshot::build_ring(group)?),
            ))
        })
        .collect()
}

/// Gives every server address not seen before the next backend id; ids of
/// known addresses never change, so worker pools indexed by them survive,
/// and a server whose name moves to a new address gets a new id, so no
/// worker reuses a pooled connection to the old one.
fn assign_backend_ids(endpoints: &[Vec<Endpoint>], backends: &mut HashMap<SocketAddr, BackendId>) {
    for endpoint in endpoints.iter().flatten() {
        let next = BackendId(u32::try_from(backends.len()).unwrap_or(u32::MAX));
        backends.entry(endpoint.addr).or_insert(next);
    }
}

/// Where a server is now: its address as written, or what its name
/// resolved to last.
#[derive(Clone, Copy, Debug)]
struct Endpoint {
    addr: SocketAddr,
    /// The last re-resolution of its name failed (warned once per streak).
    failing: bool,
}

/// The first candidate of every server.
fn first_endpoints(config: &Config, resolved: &Resolved) -> Result<Vec<Vec<Endpoint>>, BuildError> {
    config
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            (0..group.servers.len())
                .map(|s| endpoint(config, resolved, g, s, None))
                .collect()
        })
        .collect()
}

/// Server `s` of group `g` at `current` if the name still has it, else at
/// its first candidate.
fn endpoint(
    config: &Config,
    resolved: &Resolved,
    g: usize,
    s: usize,
    current: Option<SocketAddr>,
) -> Result<Endpoint, BuildError> {
    let addr = dns::choose(current, resolved.server(g, s)).ok_or_else(|| {
        let group = &config.groups[g];
        BuildError::Unresolved {
            group: group.name.clone(),
            server: group.servers[s].name.clone(),
        }
    })?;
    Ok(Endpoint {
        addr,
        failing: false,
    })
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("listener {name}: {source}")]
    Listen {
        name: String,
        #[source]
        source: crate::net::ListenError,
    },
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::OpenError),
    #[error("[workers] changed: threads, CPUs and buffers are set at start; that needs a restart")]
    Workers,
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Resolve(#[from] dns::ResolveError),
    #[error("the control thread has stopped")]
    Stopped,
}

/// What a reload does to the open listeners. A listener is the same one
/// when its address is: then it keeps its id and its sockets (closing a
/// `SO_REUSEPORT` socket would reset the connections queued on it), whatever
/// else about it changed, its name included.
#[derive(Debug, Default)]
pub struct ListenerPlan {
    /// Index for index with the new `config.listeners`. A listener to open
    /// has a new id and its configured address until it is bound.
    pub listeners: Vec<ListenerView>,
    /// Indices in `listeners` of those to bind.
    pub opened: Vec<usize>,
    /// Open listeners the new configuration no longer has, with their names.
    pub closed: Vec<(ListenerView, String)>,
}

/// The server states and the rules that turn them into snapshots.
pub struct Control {
    pub(super) config: Arc<Config>,
    /// Per group, what only changes with the configuration.
    built: Vec<Built>,
    /// Index for index with `config.listeners`.
    listeners: Vec<ListenerView>,
    next_listener: u32,
    /// Per group, per server: admin state and health.
    tracks: Vec<Vec<Track>>,
    /// Per group, per server: the address in use.
    endpoints: Vec<Vec<Endpoint>>,
    /// Resolves server names (on the control thread's resolver thread).
    pub(super) resolver: Arc<dyn Resolve>,
    backends: HashMap<SocketAddr, BackendId>,
    generation: u64,
    current: Arc<Snapshot>,
    /// Reloads applied and refused since start, shown in every snapshot.
    pub(super) reloads: Arc<super::ReloadCounts>,
}

impl Control {
    /// Builds the first snapshot from `config`, resolving its server names
    /// with the system resolver (blocking).
    pub fn new(config: Arc<Config>, listen_addrs: Vec<SocketAddr>) -> Result<Self, BuildError> {
        Self::with_resolver(config, listen_addrs, Arc::new(SystemResolver))
    }

    /// `new` with `resolver` for server names, now and on every
    /// re-resolution.
    pub fn with_resolver(
        config: Arc<Config>,
        listen_addrs: Vec<SocketAddr>,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, BuildError> {
        let resolved = dns::resolve(&config, &*resolver)?;
        Self::resolved(config, listen_addrs, resolver, &resolved)
    }

    /// `with_resolver` with the names of `config` already resolved.
    pub fn resolved(
        config: Arc<Config>,
        listen_addrs: Vec<SocketAddr>,
        resolver: Arc<dyn Resolve>,
        resolved: &Resolved,
    ) -> Result<Self, BuildError> {
        let built = build_groups(&config)?;
        let endpoints = first_endpoints(&config, resolved)?;
        let mut backends = HashMap::new();
        assign_backend_ids(&endpoints, &mut backends);
        let tracks = config
            .groups
            .iter()
            .map(|g| {
                g.servers
                    .iter()
                    .map(|_| Track::new(AdminState::Enabled))
                    .collect()
            })
            .collect();
        let mut control = Control {
            current: Arc::new(Snapshot {
                generation: 0,
                config: config.clone(),
                groups: Vec::new(),
                listeners: Vec::new(),
                listener_index: Vec::new(),
                backend_count: 0,
                reloads: Arc::default(),
            }),
            reloads: Arc::default(),
            config,
            built,
            next_listener: u32::try_from(listen_addrs.len()).unwrap_or(u32::MAX),
            listeners: listen_addrs
                .into_iter()
                .zip(0..)
                .map(|(addr, id)| ListenerView {
                    id: ListenerId(id),
                    addr,
                })
                .collect(),
            tracks,
            endpoints,
            resolver,
            backends,
            generation: 0,
        };
        control.rebuild();
        Ok(control)
    }

    /// Which open listeners `config` keeps and which it closes (see
    /// [`ListenerPlan`]). A listener written with port 0 is kept when the
    /// new file names it the same way or names the port it was given; among
    /// several candidates, one of the same name wins.
    pub fn plan_listeners(&self, config: &Config) -> Result<ListenerPlan, ReloadError> {
        if self.config.workers != config.workers {
            return Err(ReloadError::Workers);
        }
        let old = &self.config.listeners;
        let mut taken = vec![false; old.len()];
        let mut plan = ListenerPlan::default();
        let mut next = self.next_listener;
        for (index, new) in config.listeners.iter().enumerate() {
            let matches = |i: &usize| {
                !taken[*i] && (old[*i].addr == new.addr || self.listeners[*i].addr == new.addr)
            };
            let found = (0..old.len())
                .filter(matches)
                .find(|&i| old[i].name == new.name)
                .or_else(|| (0..old.len()).find(matches));
            let view = match found {
                Some(i) => {
                    taken[i] = true;
                    self.listeners[i]
                }
                None => {
                    plan.opened.push(index);
                    next = next.saturating_add(1);
                    ListenerView {
                        id: ListenerId(next - 1),
                        addr: new.addr,
                    }
                }
            };
            plan.listeners.push(view);
        }
        plan.closed = (0..old.len())
            .filter(|&i| !taken[i])
            .map(|i| (self.listeners[i], old[i].name.clone()))
            .collect();
        Ok(plan)
    }

    /// Switches to `config`, carrying every server's admin state and health
    /// over by (group, server) name (SPEC §6, §8): sessions stay on their
    /// servers, since tokens depend only on those names. `resolved` gives
    /// the new configuration's addresses; a server whose name still
    /// resolves to the address in use stays there. `listeners` comes from
    /// [`Control::plan_listeners`] for this `config`, with the new ones
    /// bound. Nothing changes when it fails.
    pub fn reload(
        &mut self,
        config: Arc<Config>,
        resolved: &Resolved,
        listeners: Vec<ListenerView>,
    ) -> Result<u64, ReloadError> {
        let old = &self.config;
        let built = build_groups(&config)?;
        // Where each server was, by (group, server) name.
        let mut was: HashMap<(&str, &str), (&Address, SocketAddr)> = HashMap::new();
        for (group, endpoints) in old.groups.iter().zip(&self.endpoints) {
            for (server, endpoint) in group.servers.iter().zip(endpoints) {
                was.insert(
                    (&group.name, &server.name),
                    (&server.address, endpoint.addr),
                );
            }
        }
        // Addresses first: this can fail, and nothing has changed yet.
        let new_endpoints = config
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                (0..group.servers.len())
                    .map(|s| {
                        let server = &group.servers[s];
                        // The same name keeps its address while it still resolves to it.
                        let current = was
                            .get(&(group.name.as_str(), server.name.as_str()))
                            .filter(|(written, _)| **written == server.address)
                            .map(|&(_, addr)| addr);
                        endpoint(&config, resolved, g, s, current)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut previous: HashMap<(&str, &str), &mut Track> = HashMap::new();
        let mut tracks = std::mem::take(&mut self.tracks);
        for (group, group_tracks) in old.groups.iter().zip(tracks.iter_mut()) {
            for (server, track) in group.servers.iter().zip(group_tracks.iter_mut()) {
                previous.insert((&group.name, &server.name), track);
            }
        }
        let new_tracks: Vec<Vec<Track>> = config
            .groups
            .iter()
            .zip(&new_endpoints)
            .map(|(group, endpoints)| {
                group
                    .servers
                    .iter()
                    .zip(endpoints)
                    .map(|(server, endpoint)| {
                        let key = (group.name.as_str(), server.name.as_str());
                        let same = was.get(&key).is_some_and(|&(written, addr)| {
                            *written == server.address || addr == endpoint.addr
                        });
                        match previous.remove(&key) {
                            // Same server: its state and health go on.
                            Some(track) if same => {
                                std::mem::replace(track, Track::new(AdminState::Enabled))
                            }
                            // Moved to a new address: the operator's word stands,
                            // health starts afresh.
                            Some(track) => Track::new(track.admin),
                            None => Track::new(AdminState::Enabled),
                        }
                    })
                    .collect()
            })
            .collect();
        drop(previous);
        drop(was);
        assign_backend_ids(&new_endpoints, &mut self.backends);
        if let Some(last) = listeners.iter().map(|v| v.id.0).max() {
            self.next_listener = self.next_listener.max(last.saturating_add(1));
        }
        self.listeners = listeners;
        self.tracks = new_tracks;
        self.endpoints = new_endpoints;
        self.built = built;
        self.config = config;
        self.rebuild();
        Ok(self.generation)
    }

    /// The snapshot workers route with now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.clone()
    }

    fn rebuild(&mut self) {
        self.generation += 1;
        let now = Instant::now();
        let groups = self
            .config
            .groups
            .iter()
            .zip(&self.built)
            .zip(&self.tracks)
            .zip(&self.endpoints)
            .map(
                |(((group, (persistence, ring)), tracks), endpoints)| GroupView {
                    persistence: persistence.clone(),
                    ring: ring.clone(),
                    servers: group
                        .servers
                        .iter()
                        .zip(tracks)
                        .zip(endpoints)
                        .map(|((_, track), endpoint)| ServerView {
                            backend: self
                                .backends
                                .get(&endpoint.addr)
                                .copied()
                                .unwrap_or(BackendId(0)),
                            addr: endpoint.addr,
                            admin: track.admin,
                            health: track.health,
                            drain_expired: track.drain_expired(group.health.drain_timeout, now),
                            drain_since: track.drain_since(),
                            drain_timeout: track
                                .drain_since()
                                .and(track.drain_timeout(group.health.drain_timeout)),
                            ejected_until: track.ejected_until(),
                        })
                        .collect(),
                },
            )
            .collect();
        self.current = Arc::new(Snapshot {
            generation: self.generation,
            config: self.config.clone(),
            groups,
            listeners: self.listeners.clone(),
            listener_index: self.listener_index(),
            backend_count: self.backends.len(),
            reloads: self.reloads.clone(),
        });
    }

    /// The address server `server` of group `group` is reached at now.
    pub fn server_addr(&self, group: usize, server: usize) -> Option<SocketAddr> {
        let endpoint = self.endpoints.get(group)?.get(server)?;
        Some(endpoint.addr)
    }

    /// The addresses in use, as a resolution of the current configuration
    /// (for a reload that changes no address).
    pub fn current_resolved(&self) -> Resolved {
        let addrs: Vec<Vec<SocketAddr>> = self
            .endpoints
            .iter()
            .map(|group| group.iter().map(|e| e.addr).collect())
            .collect();
        Resolved::from_addrs(&addrs)
    }

    /// Applies a re-resolution of server names: `answers` maps
    /// `(host, port)` to its addresses or why it failed. A server whose
    /// address is no longer among its name's moves to the first; one whose
    /// name failed keeps its address. True when an address changed (the
    /// snapshot is then rebuilt).
    pub fn re_resolved(
        &mut self,
        answers: &HashMap<(String, u16), Result<Vec<SocketAddr>, String>>,
    ) -> bool {
        let mut changed = false;
        for (g, group) in self.config.groups.iter().enumerate() {
            for (s, server) in group.servers.iter().enumerate() {
                let Address::Name { host, port } = &server.address else {
                    continue;
                };
                let Some(answer) = answers.get(&(host.clone(), *port)) else {
                    continue;
                };
                let Some(endpoint) = self.endpoints.get_mut(g).and_then(|e| e.get_mut(s)) else {
                    continue;
                };
                let name = format!("{}/{}", group.name, server.name);
                match answer {
                    Err(why) => {
                        if !endpoint.failing {
                            log::warn!(
                                "server {name}: cannot resolve {host}:{port} ({why}); \
                                 keeping {} until it resolves",
                                endpoint.addr
                            );
                        }
                        endpoint.failing = true;
                    }
                    Ok(candidates) => {
                        if endpoint.failing {
                            log::info!("server {name}: {host}:{port} resolves again");
                            endpoint.failing = false;
                        }
                        let Some(addr) = dns::choose(Some(endpoint.addr), candidates) else {
                            continue;
                        };
                        if addr != endpoint.addr {
                            log::info!(
                                "server {name}: {host}:{port} moved from {} to {addr}",
                                endpoint.addr
                            );
                            endpoint.addr = addr;
                            changed = true;
                        }
                    }
                }
            }
        }
        if changed {
            assign_backend_ids(&self.endpoints, &mut self.backends);
            self.rebuild();
        }
        changed
    }

    fn listener_index(&self) -> Vec<Option<u32>> {
        let mut index = vec![None; self.next_listener as usize];
        for (i, view) in self.listeners.iter().enumerate() {
            index[view.id.0 as usize] = u32::try_from(i).ok();
        }
        index
    }

    fn server_name(&self, group: usize, server: usize) -> String {
        let g = &self.config.groups[group];
        format!("{}/{}", g.name, g.servers[server].name)
    }

    /// Sets a server's admin state; returns the new snapshot's generation.
    pub fn set_admin(
        &mut self,
        group: &str,
        server: &str,
        state: AdminState,
    ) -> Result<u64, ControlError> {
        self.set_admin_with(group, server, state, None)
    }

    /// [`Control::set_admin`]; a drain with `drain_timeout` uses it in
    /// place of the group's `health.drain_timeout`.
    pub fn set_admin_with(
        &mut self,
        group: &str,
        server: &str,
        state: AdminState,
        drain_timeout: Option<std::time::Duration>,
    ) -> Result<u64, ControlError> {
        let g = self
            .config
            .groups
            .iter()
            .position(|g| g.name == group)
            .ok_or_else(|| ControlError::UnknownGroup(group.to_owned()))?;
        let s = self.config.groups[g]
            .servers
            .iter()
            .position(|s| s.name == server)
            .ok_or_else(|| ControlError::UnknownServer {
                group: group.to_owned(),
                server: server.to_owned(),
            })?;
        self.tracks[g][s].set_admin(state, drain_timeout, Instant::now());
        self.rebuild();
        let timeout = match drain_timeout.filter(|_| state == AdminState::Draining) {
            Some(timeout) => format!(", drain timeout {}", humantime::format_duration(timeout)),
            None => String::new(),
        };
        log::info!(
            "server {group}/{server} is now {state:?}{timeout} (snapshot {})",
            self.generation
        );
        Ok(self.generation)
    }

    /// Records an active check; true when the server's health changed.
    pub fn record_check(
        &mut self,
        group: usize,
        server: usize,
        result: &Result<u16, String>,
    ) -> bool {
        let Some(rules) = &self.config.groups[group].health.active else {
            return false;
        };
        let Some(health) = self.tracks[group][server].check(result.is_ok(), rules) else {
            return false;
        };
        match result {
            Ok(status) => log::info!(
                "server {} is {health:?}: checks pass (status {status})",
                self.server_name(group, server)
            ),
            Err(why) => log::warn!(
                "server {} is {health:?}: checks fail ({why})",
                self.server_name(group, server)
            ),
        }
        self.rebuild();
        true
    }

    /// Records a passive failure; true when it ejected the server.
    pub fn record_failure(&mut self, failure: PassiveFailure) -> bool {
        if failure.config != Arc::as_ptr(&self.config) as usize {
            return false; // about a configuration that has been replaced
        }
        let Some(rules) = self
            .config
            .groups
            .get(failure.group.index())
            .map(|g| g.health.passive.clone())
        else {
            return false;
        };
        let Some(track) = self
            .tracks
            .get_mut(failure.group.index())
            .and_then(|t| t.get_mut(failure.server.get()))
        else {
            return false;
        };
        if !track.passive_failure(Instant::now(), &rules) {
            return false;
        }
        log::warn!(
            "server {} ejected for {:?}: {} failures of real traffic within {:?}",
            self.server_name(failure.group.index(), failure.server.get()),
            rules.eject_time,
            rules.max_fails,
            rules.fail_window
        );
        self.rebuild();
        true
    }

    /// Ends ejections and drains whose time is up; true when any did.
    pub fn expire(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for (g, group) in self.config.groups.iter().enumerate() {
            for (s, track) in self.tracks[g].iter_mut().enumerate() {
                let server = &group.servers[s].name;
                if track.expire(now) {
                    log::info!("server {}/{server}: ejection over, tried again", group.name);
                    changed = true;
                }
                let expired = track.drain_expired(group.health.drain_timeout, now);
                let was = self.current.groups[g].servers[s].drain_expired;
                if expired && !was {
                    log::info!(
                        "server {}/{server}: drain timeout passed, its sessions move",
                        group.name
                    );
                }
                changed |= expired != was;
            }
        }
        if changed {
            self.rebuild();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every name with these addresses.
    struct Fixed(Vec<SocketAddr>);

    impl Resolve for Fixed {
        fn resolve(&self, _: &str, _: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.clone())
        }
    }

    const TEXT: &str =
        "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"g\"\n\
        [[groups.g.servers]]\nname = \"a\"\naddress = \"app.test:80\"\n\
        [[groups.g.servers]]\nname = \"b\"\naddress = \"127.0.0.1:9\"\n";

    type Answers = HashMap<(String, u16), Result<Vec<SocketAddr>, String>>;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn addrs(texts: &[&str]) -> Vec<SocketAddr> {
        texts.iter().map(|a| addr(a)).collect()
    }

    fn config() -> Arc<Config> {
        Arc::new(crate::config::parse(TEXT, "t.toml").unwrap())
    }

    fn control(first: &[&str]) -> Control {
        let resolver = Arc::new(Fixed(addrs(first)));
        Control::with_resolver(config(), vec![addr("127.0.0.1:1")], resolver).unwrap()
    }

    fn answer(result: Result<Vec<SocketAddr>, String>) -> Answers {
        HashMap::from([(("app.test".to_owned(), 80), result)])
    }

    fn view(control: &Control) -> (SocketAddr, BackendId) {
        let server = &control.snapshot().groups[0].servers[0];
        (server.addr, server.backend)
    }

    #[test]
    fn a_moved_name_gets_a_new_backend_and_keeps_its_state() {
        let mut control = control(&["10.0.0.1:80", "10.0.0.2:80"]);
        let (was, old_id) = view(&control);
        assert_eq!(was, addr("10.0.0.1:80"));
        control.set_admin("g", "a", AdminState::Draining).unwrap();
        let generation = control.snapshot().generation;

        // The current address among others, in any order: nothing moves.
        let both = addrs(&["10.0.0.2:80", "10.0.0.1:80"]);
        assert!(!control.re_resolved(&answer(Ok(both))));
        assert_eq!(control.snapshot().generation, generation);

        // Moved: a new backend id, a new snapshot, same admin state.
        assert!(control.re_resolved(&answer(Ok(addrs(&["10.0.0.3:80", "10.0.0.4:80"])))));
        let (now, new_id) = view(&control);
        assert_eq!(now, addr("10.0.0.3:80"));
        assert_ne!(new_id, old_id);
        assert_eq!(control.snapshot().generation, generation + 1);
        let server = &control.snapshot().groups[0].servers[0];
        assert_eq!(server.admin, AdminState::Draining);
        // The IP-addressed server is where it was.
        assert_eq!(control.server_addr(0, 1), Some(addr("127.0.0.1:9")));

        // Failures keep the last address; the streak is remembered (one warning).
        assert!(!control.re_resolved(&answer(Err("timeout".into()))));
        assert!(control.endpoints[0][0].failing);
        assert!(!control.re_resolved(&answer(Err("timeout".into()))));
        assert_eq!(view(&control).0, addr("10.0.0.3:80"));
        assert!(!control.re_resolved(&answer(Ok(addrs(&["10.0.0.3:80"])))));
        assert!(!control.endpoints[0][0].failing);

        // Back to an address seen before: its id again.
        assert!(control.re_resolved(&answer(Ok(addrs(&["10.0.0.1:80"])))));
        assert_eq!(view(&control), (addr("10.0.0.1:80"), old_id));
    }

    #[test]
    fn reload_keeps_the_current_address_while_the_name_has_it() {
        let mut control = control(&["10.0.0.1:80"]);
        let reordered = dns::resolve(&config(), &Fixed(addrs(&["10.0.0.2:80", "10.0.0.1:80"])));
        let listeners = control.plan_listeners(&config()).unwrap().listeners;
        control
            .reload(config(), &reordered.unwrap(), listeners)
            .unwrap();
        assert_eq!(view(&control).0, addr("10.0.0.1:80"));
        let moved = dns::resolve(&config(), &Fixed(addrs(&["10.0.0.2:80", "10.0.0.3:80"])));
        let listeners = control.plan_listeners(&config()).unwrap().listeners;
        control
            .reload(config(), &moved.unwrap(), listeners)
            .unwrap();
        assert_eq!(view(&control).0, addr("10.0.0.2:80"));
        // Health and admin state stay with the name across the move.
        assert_eq!(
            control.snapshot().groups[0].servers[0].admin,
            AdminState::Enabled
        );
    }
}
