//! The control thread's state: the configuration, every server's admin
//! state and health, and the snapshot built from them. Only the control
//! thread touches it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::snapshot::{
    self, AdminState, BackendId, BuildError, GroupView, ListenerId, ListenerView, ServerView,
    Snapshot, Sticky,
};
use super::track::Track;
use super::{ControlError, PassiveFailure};
use crate::balance::Ring;
use crate::config::Config;

/// What each group needs that only changes with the configuration: its
/// persistence (token table, cookie writer) and its ring.
fn build_groups(config: &Config) -> Result<Vec<(Sticky, Arc<Ring>)>, BuildError> {
    config
        .groups
        .iter()
        .map(|group| {
            Ok((
                Sticky::build(group)?,
                Arc::new(snapshot::build_ring(group)?),
            ))
        })
        .collect()
}

/// Gives every server address not seen before the next backend id; ids of
/// known addresses never change, so worker pools indexed by them survive.
fn assign_backend_ids(config: &Config, backends: &mut HashMap<SocketAddr, BackendId>) {
    for server in config.groups.iter().flat_map(|g| &g.servers) {
        let next = BackendId(u32::try_from(backends.len()).unwrap_or(u32::MAX));
        backends.entry(server.addr).or_insert(next);
    }
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
    built: Vec<(Sticky, Arc<Ring>)>,
    /// Index for index with `config.listeners`.
    listeners: Vec<ListenerView>,
    next_listener: u32,
    /// Per group, per server: admin state and health.
    tracks: Vec<Vec<Track>>,
    backends: HashMap<SocketAddr, BackendId>,
    generation: u64,
    current: Arc<Snapshot>,
}

impl Control {
    /// Builds the first snapshot from `config`, whose listeners are bound
    /// to `listen_addrs` (index for index).
    pub fn new(config: Arc<Config>, listen_addrs: Vec<SocketAddr>) -> Result<Self, BuildError> {
        let built = build_groups(&config)?;
        let mut backends = HashMap::new();
        assign_backend_ids(&config, &mut backends);
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
            }),
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
    /// servers, since tokens depend only on those names. `plan` comes from
    /// [`Control::plan_listeners`] for this `config`, and `bound` gives the
    /// address of each listener it left to bind (by index in
    /// `config.listeners`). Returns the new generation and the listeners
    /// opened. Nothing changes when it fails.
    pub fn reload(
        &mut self,
        config: Arc<Config>,
        listeners: Vec<ListenerView>,
    ) -> Result<u64, ReloadError> {
        let old = &self.config;
        let built = build_groups(&config)?;
        let mut previous: HashMap<(&str, &str), (SocketAddr, &mut Track)> = HashMap::new();
        let mut tracks = std::mem::take(&mut self.tracks);
        for (group, group_tracks) in old.groups.iter().zip(tracks.iter_mut()) {
            for (server, track) in group.servers.iter().zip(group_tracks.iter_mut()) {
                previous.insert((&group.name, &server.name), (server.addr, track));
            }
        }
        let new_tracks: Vec<Vec<Track>> = config
            .groups
            .iter()
            .map(|group| {
                group
                    .servers
                    .iter()
                    .map(|server| {
                        match previous.remove(&(group.name.as_str(), server.name.as_str())) {
                            // Same server: its state and health go on.
                            Some((addr, track)) if addr == server.addr => {
                                std::mem::replace(track, Track::new(AdminState::Enabled))
                            }
                            // Moved to a new address: the operator's word stands,
                            // health starts afresh.
                            Some((_, track)) => Track::new(track.admin),
                            None => Track::new(AdminState::Enabled),
                        }
                    })
                    .collect()
            })
            .collect();
        assign_backend_ids(&config, &mut self.backends);
        if let Some(last) = listeners.iter().map(|v| v.id.0).max() {
            self.next_listener = self.next_listener.max(last.saturating_add(1));
        }
        self.listeners = listeners;
        self.tracks = new_tracks;
        self.built = built;
        self.config = config;
        self.rebuild();
        log::info!("configuration reloaded (snapshot {})", self.generation);
        Ok(self.generation)
    }

    /// The open listeners, index for index with `config.listeners`.
    pub fn listeners(&self) -> &[ListenerView] {
        &self.listeners
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
            .map(|((group, (sticky, ring)), tracks)| GroupView {
                sticky: sticky.clone(),
                ring: ring.clone(),
                servers: group
                    .servers
                    .iter()
                    .zip(tracks)
                    .map(|(server, track)| ServerView {
                        backend: self
                            .backends
                            .get(&server.addr)
                            .copied()
                            .unwrap_or(BackendId(0)),
                        addr: server.addr,
                        admin: track.admin,
                        health: track.health,
                        drain_expired: track.drain_expired(group.health.drain_timeout, now),
                    })
                    .collect(),
            })
            .collect();
        self.current = Arc::new(Snapshot {
            generation: self.generation,
            config: self.config.clone(),
            groups,
            listeners: self.listeners.clone(),
            listener_index: self.listener_index(),
            backend_count: self.backends.len(),
        });
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
        self.tracks[g][s].set_admin(state, Instant::now());
        self.rebuild();
        log::info!(
            "server {group}/{server} is now {state:?} (snapshot {})",
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
            .get(failure.group)
            .map(|g| g.health.passive.clone())
        else {
            return false;
        };
        let Some(track) = self
            .tracks
            .get_mut(failure.group)
            .and_then(|t| t.get_mut(failure.server))
        else {
            return false;
        };
        if !track.passive_failure(Instant::now(), &rules) {
            return false;
        }
        log::warn!(
            "server {} ejected for {:?}: {} failures of real traffic within {:?}",
            self.server_name(failure.group, failure.server),
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
