//! The control thread: the one place that owns the truth about servers.
//!
//! It holds the validated configuration and every server's admin state and
//! health, builds an immutable [`Snapshot`] once per change, and sends it to
//! each worker's inbox (a channel whose sender wakes the worker's event loop).
//! Workers swap a new snapshot in between requests. Health probes, the admin
//! listener and reloads run here, off the request path; nothing here is ever
//! awaited by a request. Server names are resolved on a thread of their own
//! (`limpet-dns`: resolving blocks), at reload and every `[dns] interval`.

mod audit;
mod drain;
mod probe;
mod report;
mod snapshot;
mod state;
mod track;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

pub use snapshot::{AdminState, BackendId, BuildError, GroupView, Health, ServerView, Snapshot};

pub use audit::{ReloadCounts, Trigger};
pub use drain::{DrainWatch, Watched, DRAINED_AFTER};
pub use report::{HistogramReport, ServerReport, WorkerReport, BUCKETS, BUCKET_BOUNDS_US};
pub use state::{Control, ListenerPlan, ReloadError};

use crate::config::Config;
use crate::dns::{self, Resolve, Resolved};
use crate::net::ListenerId;

/// Work for the resolver thread.
type DnsJob = Box<dyn FnOnce(&dyn Resolve) + Send>;

/// One round of re-resolution: each name's addresses or why it failed.
type Answers = HashMap<(String, u16), Result<Vec<SocketAddr>, String>>;

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
    /// Accept on this new listener (this worker's own `SO_REUSEPORT`
    /// socket). Sent after the snapshot that names it.
    Listen(ListenerId, std::net::TcpListener),
    /// Stop accepting on this listener and close its socket. Connections
    /// accepted on it close at their next request boundary.
    Unlisten(ListenerId),
    /// Stop accepting, finish what is in flight, and return.
    Shutdown,
}

/// Where a worker sends its report: a thread that blocks, or an event loop
/// that must not.
#[derive(Debug)]
pub enum ReportTo {
    Blocking(std::sync::mpsc::Sender<WorkerReport>),
    Async(mpsc::UnboundedSender<WorkerReport>),
}

impl ReportTo {
    pub fn send(self, report: WorkerReport) {
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
    ReloadFile(Trigger, std::sync::mpsc::Sender<Result<u64, String>>),
    Reload {
        config: Arc<crate::config::Config>,
        reply: std::sync::mpsc::Sender<Result<u64, ReloadError>>,
    },
    ConfigPath(std::path::PathBuf),
    PassiveFailure(PassiveFailure),
    Snapshot(std::sync::mpsc::Sender<Arc<Snapshot>>),
    Shutdown,
}

/// A worker's report of real traffic failing on a server: a connect
/// failure, a reset or a timeout before the response.
#[derive(Debug, Clone, Copy)]
pub struct PassiveFailure {
    /// Identifies the configuration the indices refer to (its address).
    pub config: usize,
    pub group: crate::config::GroupIdx,
    pub server: crate::balance::ServerIdx,
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
            .unbounded_send(Command::ReloadFile(Trigger::Signal, reply))
            .map_err(|_| ControlError::Stopped.to_string())?;
        answer
            .recv()
            .map_err(|_| ControlError::Stopped.to_string())?
    }

    /// The snapshot workers route with now (configuration, bound
    /// listeners); `None` if the control thread does not answer within a
    /// second. For callers outside an event loop.
    pub fn snapshot_blocking(&self) -> Option<Arc<Snapshot>> {
        let (reply, rx) = std::sync::mpsc::channel();
        self.tx.unbounded_send(Command::Snapshot(reply)).ok()?;
        rx.recv_timeout(Duration::from_secs(1)).ok()
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

/// Work that runs on the control thread's event loop beside its own tasks,
/// started once that loop runs (the admin listener, wired by `server.rs`).
/// It gets the [`Shared`] state through which every change must go.
pub type Service = Box<dyn FnOnce(Shared) + Send>;

/// Starts the control thread; it sends every new snapshot to `workers`.
/// `services` start on its event loop; `access_log` is the access log
/// writer, told of every reload's files.
pub fn spawn(
    control: Control,
    workers: Vec<WorkerInbox>,
    inbox: ControlInbox,
    services: Vec<Service>,
    access_log: AccessLogTx,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("limpet-control".into())
        .spawn(move || run(control, workers, inbox.0, services, access_log))
}

/// Weights set over the API: (group, server) to the server's entry as the
/// file wrote it and the weight set.
type ApiWeights = HashMap<(String, String), (crate::config::Server, NonZeroU32)>;

/// The access log writer's inbox.
pub type AccessLogTx = std::sync::mpsc::Sender<crate::access_log::ToWriter>;

/// The control thread's state and the workers' inboxes, shared by its
/// tasks (command loop, probers, ticker, admin listener). Every change goes
/// through here, so that every change reaches the workers.
#[derive(Clone)]
pub struct Shared {
    control: Rc<RefCell<Control>>,
    workers: Rc<Vec<WorkerInbox>>,
    /// The file `POST /reload` and SIGHUP read.
    config_path: Rc<RefCell<Option<std::path::PathBuf>>>,
    access_log: AccessLogTx,
    /// The resolver thread's queue.
    dns: std::sync::mpsc::Sender<DnsJob>,
    /// Weights set over the API, by (group, server), with the server's
    /// entry as the file wrote it: a reload keeps the weight while the
    /// file's entry stays the same.
    weights: Rc<RefCell<ApiWeights>>,
    /// Servers with active checks whose first check has not finished yet
    /// (`GET /ready` waits for none).
    unchecked: Rc<std::cell::Cell<usize>>,
    /// Persistent request rates and drained servers.
    drains: Rc<RefCell<DrainWatch>>,
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
        self.set_admin_with(group, server, state, None)
    }

    /// [`Shared::set_admin`]; a drain with `drain_timeout` uses it in place
    /// of the group's `health.drain_timeout`.
    pub fn set_admin_with(
        &self,
        group: &str,
        server: &str,
        state: AdminState,
        drain_timeout: Option<Duration>,
    ) -> Result<u64, ControlError> {
        let generation =
            self.control
                .borrow_mut()
                .set_admin_with(group, server, state, drain_timeout)?;
        self.publish();
        Ok(generation)
    }

    /// What the drain watch knows of every server (persistent request
    /// rates, drained or not).
    pub fn drains(&self) -> std::cell::Ref<'_, DrainWatch> {
        self.drains.borrow()
    }

    /// Samples every server's persistent requests and in-flight count for
    /// the drain watch: only from a full set of reports, all of the
    /// configuration the control thread runs, so indices mean the same.
    async fn sample(&self) {
        let reports = self.reports().await;
        let snapshot = self.snapshot();
        let config = Arc::as_ptr(&snapshot.config) as usize;
        if reports.len() < self.workers.len() || reports.iter().any(|r| r.config != config) {
            return;
        }
        self.drains
            .borrow_mut()
            .record(&snapshot, &reports, Instant::now());
    }

    /// Runs `job` on the resolver thread (it may block) and waits for its
    /// answer without blocking this thread; `None` if that thread is gone.
    async fn off_thread<T: Send + 'static>(
        &self,
        job: impl FnOnce(&dyn Resolve) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: DnsJob = Box::new(move |resolver| {
            let _ = tx.send(job(resolver));
        });
        self.dns.send(job).ok()?;
        rx.await.ok()
    }

    /// Switches to `config`, resolving its server names first (off this
    /// thread); nothing changes when it fails. Every reload goes through
    /// the resolver thread's queue, even one with nothing to resolve, so
    /// that reloads apply in the order they were asked for.
    pub async fn reload(&self, config: Arc<Config>, trigger: Trigger) -> Result<u64, ReloadError> {
        let names = config.clone();
        let resolved = self
            .off_thread(move |resolver| dns::resolve(&names, resolver))
            .await
            .ok_or(ReloadError::Stopped);
        let resolved = match resolved {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(err)) => return Err(self.refused(trigger, err.into())),
            Err(err) => return Err(self.refused(trigger, err)),
        };
        self.apply_file(config, &resolved, trigger)
            .map_err(|err| self.refused(trigger, err))
    }

    /// Logs and counts a refused reload; gives `err` back.
    fn refused<E: std::fmt::Display>(&self, trigger: Trigger, err: E) -> E {
        let counts = &self.control.borrow().reloads;
        counts.refused.fetch_add(1, Ordering::Relaxed);
        if trigger == Trigger::Api {
            counts.refused_api.fetch_add(1, Ordering::Relaxed);
        }
        log::error!(
            "{}: reload refused, nothing changed: {}",
            trigger.name(),
            err
        );
        err
    }

    /// A configuration from the file (or the embedding program): the
    /// weights set over the API stay for servers whose entry did not
    /// change; the others go back to the file's word.
    fn apply_file(
        &self,
        config: Arc<Config>,
        resolved: &Resolved,
        trigger: Trigger,
    ) -> Result<u64, ReloadError> {
        let mut config = Config::clone(&config);
        let mut kept = HashMap::new();
        for ((group, server), (entry, weight)) in self.weights.borrow().iter() {
            let found = config
                .groups
                .iter_mut()
                .find(|g| g.name == *group)
                .and_then(|g| g.servers.iter_mut().find(|s| s.name == *server));
            match found {
                Some(s) if *s == *entry => {
                    s.weight = *weight;
                    kept.insert((group.clone(), server.clone()), (entry.clone(), *weight));
                }
                _ => log::info!(
                    "{group}/{server}: the file changed its entry; the weight set over the API ({weight}) no longer applies"
                ),
            }
        }
        let generation = self.apply(Arc::new(config), resolved, trigger)?;
        *self.weights.borrow_mut() = kept;
        Ok(generation)
    }

    /// Switches to `config`, whose names resolve as `resolved` says.
    ///
    /// Listeners the new file adds are bound first (every worker gets its
    /// own socket), and access logs opened, so that a port in use or a log
    /// that cannot be opened refuses the reload. Workers get the snapshot,
    /// then their new sockets; listeners the file dropped are closed.
    fn apply(
        &self,
        config: Arc<Config>,
        resolved: &Resolved,
        trigger: Trigger,
    ) -> Result<u64, ReloadError> {
        let old = self.control.borrow().config.clone();
        let mut plan = self.control.borrow().plan_listeners(&config)?;
        let mut sockets = Vec::with_capacity(plan.opened.len());
        for &index in &plan.opened {
            let listener = &config.listeners[index];
            let (addr, bound) =
                crate::net::bind_listener(listener.addr, listener.backlog, self.workers.len())
                    .map_err(|source| ReloadError::Listen {
                        name: listener.name.clone(),
                        source,
                    })?;
            plan.listeners[index].addr = addr;
            sockets.push((index, bound));
        }
        let files = crate::access_log::open_all(&config, &plan.listeners)?;
        let generation =
            self.control
                .borrow_mut()
                .reload(config.clone(), resolved, plan.listeners.clone())?;
        let _ = self
            .access_log
            .send(crate::access_log::ToWriter::Files(files));
        crate::logging::set_format(config.log_format);
        self.control
            .borrow()
            .reloads
            .applied
            .fetch_add(1, Ordering::Relaxed);
        log::info!(
            "{}: reloaded (snapshot {generation}): {}",
            trigger.name(),
            audit::describe(&old, &config)
        );
        self.publish();
        for (view, name) in plan.closed {
            log::info!("listener {name} on {} closed", view.addr);
            for inbox in self.workers.iter() {
                let _ = inbox.unbounded_send(WorkerMsg::Unlisten(view.id));
            }
        }
        for (index, bound) in sockets {
            let view = plan.listeners[index];
            log::info!(
                "listener {} listening on {}",
                config.listeners[index].name,
                view.addr
            );
            for (inbox, socket) in self.workers.iter().zip(bound) {
                let _ = inbox.unbounded_send(WorkerMsg::Listen(view.id, socket));
            }
        }
        start_probes(self);
        Ok(generation)
    }

    /// Reloads the file limpet was started from; the file is read and its
    /// names resolved off this thread.
    pub async fn reload_file(&self, trigger: Trigger) -> Result<u64, String> {
        let path = self.config_path.borrow().clone();
        let Some(path) = path else {
            return Err(self.refused(trigger, "limpet was not started from a file".to_owned()));
        };
        let loaded = self
            .off_thread(move |resolver| crate::dns::load_resolved(&path, resolver))
            .await
            .ok_or_else(|| ControlError::Stopped.to_string())
            .and_then(|loaded| loaded.map_err(|e| e.to_string()));
        let (config, resolved) = loaded.map_err(|e| self.refused(trigger, e))?;
        self.apply_file(Arc::new(config), &resolved, trigger)
            .map_err(|e| self.refused(trigger, e.to_string()))
    }

    /// Resolves every server name again (off this thread) and moves the
    /// servers whose name no longer has their address; false once the
    /// resolver thread is gone.
    async fn re_resolve(&self) -> bool {
        let names = dns::names(&self.control.borrow().config);
        if names.is_empty() {
            return true;
        }
        let answers = self
            .off_thread(move |resolver| {
                names
                    .into_iter()
                    .map(|(host, port)| {
                        let answer = dns::lookup(resolver, &host, port).map_err(|e| e.to_string());
                        ((host, port), answer)
                    })
                    .collect::<Answers>()
            })
            .await;
        let Some(answers) = answers else {
            return false;
        };
        if self.control.borrow_mut().re_resolved(&answers) {
            self.publish();
        }
        true
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
        let key = (group.to_owned(), server.to_owned());
        // The entry as the file wrote it: the first override's starting point.
        let entry = match self.weights.borrow().get(&key) {
            Some((entry, _)) => entry.clone(),
            None => s.clone(),
        };
        s.weight = weight;
        // Same servers, same names: they stay where they are.
        let resolved = self.control.borrow().current_resolved();
        let generation = self
            .apply(Arc::new(config), &resolved, Trigger::Weight)
            .map_err(|e| self.refused(Trigger::Weight, e.to_string()))?;
        self.weights.borrow_mut().insert(key, (entry, weight));
        Ok(generation)
    }

    /// Whether every server with active checks has had its first check.
    pub fn first_checks_done(&self) -> bool {
        self.unchecked.get() == 0
    }

    /// How many workers there are.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Every worker's counters, gathered without blocking this thread.
    pub async fn reports(&self) -> Vec<WorkerReport> {
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
    services: Vec<Service>,
    access_log: AccessLogTx,
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
    let dns = match spawn_resolver(control.resolver.clone()) {
        Ok(dns) => dns,
        Err(err) => {
            log::error!("control thread: cannot start the resolver thread: {err}");
            return;
        }
    };
    let shared = Shared {
        control: Rc::new(RefCell::new(control)),
        workers: Rc::new(workers),
        config_path: Rc::new(RefCell::new(None)),
        access_log,
        dns,
        weights: Rc::default(),
        unchecked: Rc::default(),
        drains: Rc::default(),
    };
    runtime.block_on(async move {
        start_probes(&shared);
        for service in services {
            service(shared.clone());
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
        let sampling = shared.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(drain::SAMPLE_EVERY).await;
                sampling.sample().await;
            }
        });
        let resolving = shared.clone();
        monoio::spawn(async move {
            // The interval runs from the end of one round to the start of
            // the next, so a slow resolver never has two rounds queued.
            let mut last = Instant::now();
            loop {
                monoio::time::sleep(TICK).await;
                let interval = resolving.control.borrow().config.dns.interval;
                if last.elapsed() < interval {
                    continue;
                }
                if !resolving.re_resolve().await {
                    return;
                }
                last = Instant::now();
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
                Command::ReloadFile(trigger, reply) => {
                    let shared = shared.clone();
                    monoio::spawn(async move {
                        let _ = reply.send(shared.reload_file(trigger).await);
                    });
                }
                Command::Reload { config, reply } => {
                    let shared = shared.clone();
                    monoio::spawn(async move {
                        let _ = reply.send(shared.reload(config, Trigger::Call).await);
                    });
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
                Command::Snapshot(reply) => {
                    let _ = reply.send(shared.snapshot());
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
    // The probers of a replaced configuration stop before counting.
    shared.unchecked.set(0);
    for (g, group) in config.groups.iter().enumerate() {
        let Some(rules) = group.health.active.clone() else {
            continue;
        };
        for s in 0..group.servers.len() {
            let (shared, rules, config) = (shared.clone(), rules.clone(), config.clone());
            shared.unchecked.set(shared.unchecked.get() + 1);
            let mut first = true;
            monoio::spawn(async move {
                let current =
                    |shared: &Shared| Arc::ptr_eq(&shared.control.borrow().config, &config);
                loop {
                    monoio::time::sleep(rules.interval).await;
                    if !current(&shared) {
                        return;
                    }
                    // Where the server is now: its name may have moved.
                    let Some(addr) = shared.control.borrow().server_addr(g, s) else {
                        return;
                    };
                    let tls = config.groups[g].tls.as_ref();
                    let result = probe::check(addr, &rules, tls).await;
                    if !current(&shared) {
                        return;
                    }
                    let changed = shared.control.borrow_mut().record_check(g, s, &result);
                    if changed {
                        shared.publish();
                    }
                    if std::mem::take(&mut first) {
                        shared
                            .unchecked
                            .set(shared.unchecked.get().saturating_sub(1));
                    }
                }
            });
        }
    }
}

/// Starts the thread that runs resolutions (they block) for the control
/// thread; it ends when the control thread drops the queue.
fn spawn_resolver(resolver: Arc<dyn Resolve>) -> std::io::Result<std::sync::mpsc::Sender<DnsJob>> {
    let (tx, rx) = std::sync::mpsc::channel::<DnsJob>();
    std::thread::Builder::new()
        .name("limpet-dns".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job(&*resolver);
            }
        })?;
    Ok(tx)
}

fn broadcast(workers: &[WorkerInbox], snapshot: &Arc<Snapshot>) {
    for inbox in workers {
        // A worker that has stopped has dropped its inbox; nothing to do.
        let _ = inbox.unbounded_send(WorkerMsg::Snapshot(snapshot.clone()));
    }
}
