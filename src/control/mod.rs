//! The control thread: the one place that owns the truth about servers.
//!
//! It holds the validated configuration and every server's admin state and
//! health, builds an immutable [`Snapshot`] once per change, and sends it to
//! each worker's inbox (a channel whose sender wakes the worker's event loop).
//! Workers swap a new snapshot in between requests. Health probes, the admin
//! listener and reloads run here, off the request path; nothing here is ever
//! awaited by a request.

mod probe;
mod snapshot;
mod state;
mod track;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

pub use snapshot::{
    AdminState, BackendId, BuildError, GroupView, Health, ServerView, Snapshot, Sticky,
};

pub use state::{Control, ReloadError};

use crate::config::Config;

/// How often the control thread ends ejections and drains whose time is up.
const TICK: Duration = Duration::from_millis(100);

/// A message to one worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Route with this from the next request on.
    Snapshot(Arc<Snapshot>),
    /// Send this worker's counters; gathered only when asked, so counting
    /// costs the request path no shared write.
    Report(ReportTo),
    /// Stop accepting, finish what is in flight, and return.
    Shutdown,
}

/// Where a worker sends its report: a thread that blocks, or an event loop
/// that must not.
#[derive(Debug)]
pub enum ReportTo {
    Blocking(std::sync::mpsc::Sender<crate::worker::WorkerReport>),
    Async(mpsc::UnboundedSender<crate::worker::WorkerReport>),
}

impl ReportTo {
    pub fn send(self, report: crate::worker::WorkerReport) {
        match self {
            ReportTo::Blocking(tx) => {
                let _ = tx.send(report);
            }
            ReportTo::Async(tx) => {
                let _ = tx.unbounded_send(report);
            }
        }
    }
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
    ReloadFile(std::sync::mpsc::Sender<Result<u64, String>>),
    Reload {
        config: Arc<crate::config::Config>,
        reply: std::sync::mpsc::Sender<Result<u64, ReloadError>>,
    },
    ConfigPath(std::path::PathBuf),
    PassiveFailure(PassiveFailure),
    Shutdown,
}

/// A worker's report of real traffic failing on a server: a connect
/// failure, a reset or a timeout before the response.
#[derive(Debug, Clone, Copy)]
pub struct PassiveFailure {
    /// Identifies the configuration the indices refer to (its address).
    pub config: usize,
    pub group: usize,
    pub server: usize,
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

    /// Reloads the configuration file (as `POST /reload` does) and waits
    /// for the answer; for SIGHUP on the main thread.
    pub fn reload_file_blocking(&self) -> Result<u64, String> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.tx
            .unbounded_send(Command::ReloadFile(reply))
            .map_err(|_| ControlError::Stopped.to_string())?;
        answer
            .recv()
            .map_err(|_| ControlError::Stopped.to_string())?
    }

    /// Switches to `config` (already validated) and waits for the answer;
    /// for callers outside an event loop (the main thread, tests).
    pub fn reload_blocking(&self, config: crate::config::Config) -> Result<u64, ReloadError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.tx
            .unbounded_send(Command::Reload {
                config: Arc::new(config),
                reply,
            })
            .map_err(|_| ReloadError::Stopped)?;
        answer.recv().map_err(|_| ReloadError::Stopped)?
    }

    /// Tells the control thread which file `POST /reload` reads.
    pub fn set_config_path(&self, path: std::path::PathBuf) {
        let _ = self.tx.unbounded_send(Command::ConfigPath(path));
    }

    /// Reports a failure of real traffic (never awaited: the request path
    /// does not wait for the control thread).
    pub fn passive_failure(&self, failure: PassiveFailure) {
        let _ = self.tx.unbounded_send(Command::PassiveFailure(failure));
    }

    /// Asks the control thread to stop.
    pub fn shutdown(&self) {
        let _ = self.tx.unbounded_send(Command::Shutdown);
    }
}

/// A new command channel: the handle for workers and callers, the receiver
/// for [`spawn`].
pub fn channel() -> (ControlHandle, ControlInbox) {
    let (tx, rx) = mpsc::unbounded();
    (ControlHandle { tx }, ControlInbox(rx))
}

/// The receiving end of the control thread's commands.
pub struct ControlInbox(mpsc::UnboundedReceiver<Command>);

/// Starts the control thread; it sends every new snapshot to `workers`.
/// `admin` is the admin listener, already bound, with its bearer token.
pub fn spawn(
    control: Control,
    workers: Vec<WorkerInbox>,
    inbox: ControlInbox,
    admin: Option<(std::net::TcpListener, Option<String>)>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("limpet-control".into())
        .spawn(move || run(control, workers, inbox.0, admin))
}

/// The control thread's state and the workers' inboxes, shared by its
/// tasks (command loop, probers, ticker, admin listener). Every change goes
/// through here, so that every change reaches the workers.
#[derive(Clone)]
pub struct Shared {
    control: Rc<RefCell<Control>>,
    workers: Rc<Vec<WorkerInbox>>,
    /// The file `POST /reload` and SIGHUP read.
    config_path: Rc<RefCell<Option<std::path::PathBuf>>>,
}

impl Shared {
    fn publish(&self) {
        broadcast(&self.workers, &self.control.borrow().snapshot());
    }

    /// The snapshot workers route with now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.control.borrow().snapshot()
    }

    /// Sets a server's admin state; returns the new snapshot's generation.
    pub fn set_admin(
        &self,
        group: &str,
        server: &str,
        state: AdminState,
    ) -> Result<u64, ControlError> {
        let generation = self.control.borrow_mut().set_admin(group, server, state)?;
        self.publish();
        Ok(generation)
    }

    /// Switches to `config`; nothing changes when it fails.
    pub fn reload(&self, config: Arc<Config>) -> Result<u64, ReloadError> {
        let generation = self.control.borrow_mut().reload(config)?;
        self.publish();
        start_probes(self);
        Ok(generation)
    }

    /// Reloads the file limpet was started from.
    pub fn reload_file(&self) -> Result<u64, String> {
        let path = self.config_path.borrow().clone();
        let path = path.ok_or("limpet was not started from a file")?;
        let config = crate::config::load(&path).map_err(|e| e.to_string())?;
        self.reload(Arc::new(config)).map_err(|e| e.to_string())
    }

    /// Changes a server's weight: a reload of the same configuration with
    /// that one number changed.
    pub fn set_weight(
        &self,
        group: &str,
        server: &str,
        weight: std::num::NonZeroU32,
    ) -> Result<u64, String> {
        let mut config = Config::clone(&self.control.borrow().config);
        let g = config
            .groups
            .iter_mut()
            .find(|g| g.name == group)
            .ok_or_else(|| ControlError::UnknownGroup(group.to_owned()).to_string())?;
        let s = g
            .servers
            .iter_mut()
            .find(|s| s.name == server)
            .ok_or_else(|| {
                ControlError::UnknownServer {
                    group: group.to_owned(),
                    server: server.to_owned(),
                }
                .to_string()
            })?;
        s.weight = weight;
        self.reload(Arc::new(config)).map_err(|e| e.to_string())
    }

    /// Every worker's counters, gathered without blocking this thread.
    pub async fn reports(&self) -> Vec<crate::worker::WorkerReport> {
        let (tx, mut rx) = mpsc::unbounded();
        let asked = self
            .workers
            .iter()
            .filter(|inbox| {
                inbox
                    .unbounded_send(WorkerMsg::Report(ReportTo::Async(tx.clone())))
                    .is_ok()
            })
            .count();
        drop(tx);
        let mut reports = Vec::with_capacity(asked);
        let gather = async {
            while reports.len() < asked {
                match rx.next().await {
                    Some(report) => reports.push(report),
                    None => break,
                }
            }
        };
        // A worker busy for a second is reported missing rather than waited for.
        let _ = monoio::time::timeout(Duration::from_secs(1), gather).await;
        reports.sort_by_key(|r| r.id);
        reports
    }
}

fn run(
    control: Control,
    workers: Vec<WorkerInbox>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    admin: Option<(std::net::TcpListener, Option<String>)>,
) {
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
    let shared = Shared {
        control: Rc::new(RefCell::new(control)),
        workers: Rc::new(workers),
        config_path: Rc::new(RefCell::new(None)),
    };
    runtime.block_on(async move {
        start_probes(&shared);
        if let Some((listener, token)) = admin {
            monoio::spawn(crate::admin::serve(listener, token, shared.clone()));
        }
        let ticking = shared.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(TICK).await;
                let changed = ticking.control.borrow_mut().expire(Instant::now());
                if changed {
                    ticking.publish();
                }
            }
        });
        while let Some(command) = rx.next().await {
            match command {
                Command::SetAdmin {
                    group,
                    server,
                    state,
                    reply,
                } => {
                    let _ = reply.send(shared.set_admin(&group, &server, state));
                }
                Command::ReloadFile(reply) => {
                    let _ = reply.send(shared.reload_file());
                }
                Command::Reload { config, reply } => {
                    let _ = reply.send(shared.reload(config));
                }
                Command::ConfigPath(path) => {
                    *shared.config_path.borrow_mut() = Some(path);
                }
                Command::PassiveFailure(failure) => {
                    let ejected = shared.control.borrow_mut().record_failure(failure);
                    if ejected {
                        shared.publish();
                    }
                }
                Command::Shutdown => break,
            }
        }
    });
}

/// One prober task per server of every group with active checks: one per
/// limpet process, however many workers. A prober ends when a reload
/// replaces the configuration it was started for.
fn start_probes(shared: &Shared) {
    let config = shared.control.borrow().config.clone();
    for (g, group) in config.groups.iter().enumerate() {
        let Some(rules) = group.health.active.clone() else {
            continue;
        };
        for (s, server) in group.servers.iter().enumerate() {
            let (shared, rules, addr, config) =
                (shared.clone(), rules.clone(), server.addr, config.clone());
            monoio::spawn(async move {
                let current =
                    |shared: &Shared| Arc::ptr_eq(&shared.control.borrow().config, &config);
                loop {
                    monoio::time::sleep(rules.interval).await;
                    if !current(&shared) {
                        return;
                    }
                    let tls = config.groups[g].tls.as_ref();
                    let result = probe::check(addr, &rules, tls).await;
                    if !current(&shared) {
                        return;
                    }
                    let changed = shared.control.borrow_mut().record_check(g, s, &result);
                    if changed {
                        shared.publish();
                    }
                }
            });
        }
    }
}

fn broadcast(workers: &[WorkerInbox], snapshot: &Arc<Snapshot>) {
    for inbox in workers {
        // A worker that has stopped has dropped its inbox; nothing to do.
        let _ = inbox.unbounded_send(WorkerMsg::Snapshot(snapshot.clone()));
    }
}
