//! The control thread: the one place that owns the truth about servers.
//!
//! It holds the validated configuration and every server's admin state and
//! health, builds an immutable [`Snapshot`] once per change, and sends it to
//! each worker's inbox (a channel whose sender wakes the worker's event loop).
//! Workers swap a new snapshot in between requests. Health probes, the admin
//! listener and reloads run here, off the request path; nothing here is ever
//! awaited by a request.

mod snapshot;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

pub use snapshot::{
    AdminState, BackendId, BuildError, GroupView, Health, ServerView, Snapshot, Sticky,
};

use crate::config::Config;

/// A message to one worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Route with this from the next request on.
    Snapshot(Arc<Snapshot>),
    /// Send this worker's counters; gathered only when asked, so counting
    /// costs the request path no shared write.
    Report(std::sync::mpsc::Sender<crate::worker::WorkerReport>),
    /// Stop accepting, finish what is in flight, and return.
    Shutdown,
}

/// The sending side of a worker's inbox.
pub type WorkerInbox = mpsc::UnboundedSender<WorkerMsg>;

/// A request that the control thread could not carry out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no server group named `{0}`")]
    UnknownGroup(String),
    #[error("group `{group}` has no server named `{server}`")]
    UnknownServer { group: String, server: String },
    #[error("the control thread has stopped")]
    Stopped,
}

enum Command {
    SetAdmin {
        group: String,
        server: String,
        state: AdminState,
        reply: oneshot::Sender<Result<u64, ControlError>>,
    },
    Current(oneshot::Sender<Arc<Snapshot>>),
    Shutdown,
}

/// A cloneable, `Send` handle to the control thread.
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for ControlHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlHandle")
    }
}

impl ControlHandle {
    /// Sets a server's admin state; returns the generation of the snapshot
    /// that carries the change to the workers.
    pub async fn set_admin(
        &self,
        group: &str,
        server: &str,
        state: AdminState,
    ) -> Result<u64, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Command::SetAdmin {
                group: group.to_owned(),
                server: server.to_owned(),
                state,
                reply,
            })
            .map_err(|_| ControlError::Stopped)?;
        rx.await.map_err(|_| ControlError::Stopped)?
    }

    /// The snapshot the workers were last sent.
    pub async fn current(&self) -> Result<Arc<Snapshot>, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Command::Current(reply))
            .map_err(|_| ControlError::Stopped)?;
        rx.await.map_err(|_| ControlError::Stopped)
    }

    /// Asks the control thread to stop.
    pub fn shutdown(&self) {
        let _ = self.tx.unbounded_send(Command::Shutdown);
    }
}

/// The server states and the rules that turn them into snapshots.
pub struct Control {
    config: Arc<Config>,
    /// Per group, what only changes with the configuration.
    built: Vec<(Sticky, Arc<crate::balance::Ring>)>,
    listen_addrs: Vec<SocketAddr>,
    /// Admin states by (group, server) name: they survive reloads (SPEC §6).
    admin: HashMap<(String, String), AdminState>,
    backends: HashMap<SocketAddr, BackendId>,
    generation: u64,
    current: Arc<Snapshot>,
}

impl Control {
    /// Builds the first snapshot from `config`.
    pub fn new(config: Arc<Config>, listen_addrs: Vec<SocketAddr>) -> Result<Self, BuildError> {
        let built = config
            .groups
            .iter()
            .map(|group| {
                Ok((
                    Sticky::build(group)?,
                    Arc::new(snapshot::build_ring(group)?),
                ))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let mut backends = HashMap::new();
        for group in &config.groups {
            for server in &group.servers {
                let next = BackendId(u32::try_from(backends.len()).unwrap_or(u32::MAX));
                backends.entry(server.addr).or_insert(next);
            }
        }
        let mut control = Control {
            current: Arc::new(Snapshot {
                generation: 0,
                config: config.clone(),
                groups: Vec::new(),
                listen_addrs: listen_addrs.clone(),
                backend_count: 0,
            }),
            config,
            built,
            listen_addrs,
            admin: HashMap::new(),
            backends,
            generation: 0,
        };
        control.rebuild();
        Ok(control)
    }

    /// The snapshot workers route with now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.clone()
    }

    fn rebuild(&mut self) {
        self.generation += 1;
        let groups = self
            .config
            .groups
            .iter()
            .zip(&self.built)
            .map(|(group, (sticky, ring))| GroupView {
                sticky: sticky.clone(),
                ring: ring.clone(),
                servers: group
                    .servers
                    .iter()
                    .map(|server| ServerView {
                        backend: self.backends[&server.addr],
                        addr: server.addr,
                        admin: self
                            .admin
                            .get(&(group.name.clone(), server.name.clone()))
                            .copied()
                            .unwrap_or(AdminState::Enabled),
                        health: Health::Up,
                    })
                    .collect(),
            })
            .collect();
        self.current = Arc::new(Snapshot {
            generation: self.generation,
            config: self.config.clone(),
            groups,
            listen_addrs: self.listen_addrs.clone(),
            backend_count: self.backends.len(),
        });
    }

    fn set_admin(
        &mut self,
        group: &str,
        server: &str,
        state: AdminState,
    ) -> Result<u64, ControlError> {
        let g = self
            .config
            .groups
            .iter()
            .find(|g| g.name == group)
            .ok_or_else(|| ControlError::UnknownGroup(group.to_owned()))?;
        if !g.servers.iter().any(|s| s.name == server) {
            return Err(ControlError::UnknownServer {
                group: group.to_owned(),
                server: server.to_owned(),
            });
        }
        self.admin
            .insert((group.to_owned(), server.to_owned()), state);
        self.rebuild();
        log::info!(
            "server {group}/{server} is now {state:?} (snapshot {})",
            self.generation
        );
        Ok(self.generation)
    }
}

/// Starts the control thread; it sends every new snapshot to `workers`.
pub fn spawn(
    control: Control,
    workers: Vec<WorkerInbox>,
) -> std::io::Result<(ControlHandle, JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded();
    let thread = std::thread::Builder::new()
        .name("limpet-control".into())
        .spawn(move || run(control, workers, rx))?;
    Ok((ControlHandle { tx }, thread))
}

fn run(mut control: Control, workers: Vec<WorkerInbox>, mut rx: mpsc::UnboundedReceiver<Command>) {
    // The control thread is not on the request path: the portable driver is
    // plenty, and it leaves io_uring instances to the workers.
    let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            log::error!("control thread: cannot build its event loop: {err}");
            return;
        }
    };
    runtime.block_on(async move {
        while let Some(command) = rx.next().await {
            match command {
                Command::SetAdmin {
                    group,
                    server,
                    state,
                    reply,
                } => {
                    let result = control.set_admin(&group, &server, state);
                    if result.is_ok() {
                        broadcast(&workers, &control.snapshot());
                    }
                    let _ = reply.send(result);
                }
                Command::Current(reply) => {
                    let _ = reply.send(control.snapshot());
                }
                Command::Shutdown => break,
            }
        }
    });
}

fn broadcast(workers: &[WorkerInbox], snapshot: &Arc<Snapshot>) {
    for inbox in workers {
        // A worker that has stopped has dropped its inbox; nothing to do.
        let _ = inbox.unbounded_send(WorkerMsg::Snapshot(snapshot.clone()));
    }
}
