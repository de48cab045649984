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

/// How often the control thread ends ejections and drains whose time is up.
const TICK: Duration = Duration::from_millis(100);

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
    Reload {
        config: Arc<crate::config::Config>,
        reply: std::sync::mpsc::Sender<Result<u64, ReloadError>>,
    },
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

    /// The snapshot the workers were last sent.
    pub async fn current(&self) -> Result<Arc<Snapshot>, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Command::Current(reply))
            .map_err(|_| ControlError::Stopped)?;
        rx.await.map_err(|_| ControlError::Stopped)
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
pub fn spawn(
    control: Control,
    workers: Vec<WorkerInbox>,
    inbox: ControlInbox,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("limpet-control".into())
        .spawn(move || run(control, workers, inbox.0))
}

fn run(control: Control, workers: Vec<WorkerInbox>, mut rx: mpsc::UnboundedReceiver<Command>) {
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
    let control = Rc::new(RefCell::new(control));
    let workers = Rc::new(workers);
    runtime.block_on(async move {
        start_probes(&control, &workers);
        let (ticking, ticked) = (control.clone(), workers.clone());
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(TICK).await;
                let changed = ticking.borrow_mut().expire(Instant::now());
                if changed {
                    broadcast(&ticked, &ticking.borrow().snapshot());
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
                    let result = control.borrow_mut().set_admin(&group, &server, state);
                    if result.is_ok() {
                        broadcast(&workers, &control.borrow().snapshot());
                    }
                    let _ = reply.send(result);
                }
                Command::Current(reply) => {
                    let _ = reply.send(control.borrow().snapshot());
                }
                Command::Reload { config, reply } => {
                    let result = control.borrow_mut().reload(config);
                    if result.is_ok() {
                        broadcast(&workers, &control.borrow().snapshot());
                        start_probes(&control, &workers);
                    }
                    let _ = reply.send(result);
                }
                Command::PassiveFailure(failure) => {
                    let ejected = control.borrow_mut().record_failure(failure);
                    if ejected {
                        broadcast(&workers, &control.borrow().snapshot());
                    }
                }
                Command::Shutdown => break,
            }
        }
    });
}

/// One prober task per server of every group with active checks: one per
/// limpet process, however many workers.
fn start_probes(control: &Rc<RefCell<Control>>, workers: &Rc<Vec<WorkerInbox>>) {
    let config = control.borrow().config.clone();
    for (g, group) in config.groups.iter().enumerate() {
        let Some(rules) = group.health.active.clone() else {
            continue;
        };
        for (s, server) in group.servers.iter().enumerate() {
            let (control, workers, rules, addr) =
                (control.clone(), workers.clone(), rules.clone(), server.addr);
            let config = config.clone();
            monoio::spawn(async move {
                loop {
                    monoio::time::sleep(rules.interval).await;
                    if !Arc::ptr_eq(&control.borrow().config, &config) {
                        return; // reloaded: the new configuration's probers took over
                    }
                    let result = probe::check(addr, &rules).await;
                    if !Arc::ptr_eq(&control.borrow().config, &config) {
                        return;
                    }
                    let changed = control.borrow_mut().record_check(g, s, &result);
                    if changed {
                        broadcast(&workers, &control.borrow().snapshot());
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
