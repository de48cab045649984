//! The immutable picture of the servers that the control thread sends to
//! every worker: validated configuration, server states, and the structures
//! built from them once per change (token tables, rings), so that no worker
//! ever builds them on the request path.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;

/// A stable per-process number for a backend address. The control thread
/// keeps it across reloads, so that a worker's pool of idle connections,
/// indexed by it, survives a reload for every server that stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub u32);

impl BackendId {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// What the operator wants of a server (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    Enabled,
    Draining,
    Disabled,
}

/// What the health checks say of a server (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    Ejected,
}

/// One server as workers see it.
#[derive(Debug, Clone)]
pub struct ServerView {
    pub backend: BackendId,
    pub addr: SocketAddr,
    pub admin: AdminState,
    pub health: Health,
}

impl ServerView {
    /// May the balancer give this server a request with no session?
    pub fn takes_new(&self) -> bool {
        self.admin == AdminState::Enabled && self.health == Health::Up
    }

    /// May a request whose session names this server go there (SPEC §6)?
    pub fn takes_stuck(&self) -> bool {
        self.admin != AdminState::Disabled && self.health == Health::Up
    }
}

/// One server group as workers see it, index for index with
/// `config.groups[g].servers`.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub servers: Vec<ServerView>,
}

/// Everything a worker needs to route, in one immutable value.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot the control thread builds.
    pub generation: u64,
    pub config: Arc<Config>,
    /// Index for index with `config.groups`.
    pub groups: Vec<GroupView>,
    /// The address each listener is bound to (port 0 resolved), index for
    /// index with `config.listeners`.
    pub listen_addrs: Vec<SocketAddr>,
    /// One more than the largest [`BackendId`] in use.
    pub backend_count: usize,
}
