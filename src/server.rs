//! Starting limpet: CPUs, listening sockets, workers and the control thread,
//! in that order, and the main thread's wait for a signal or a dying worker.
//!
//! Every step that can fail runs before any traffic is taken, so a mistake
//! is an error at start naming the address or CPU, never half a server.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::Config;
use crate::control::{self, Control, ControlHandle, WorkerInbox, WorkerMsg};
use crate::net::{self, ListenError};
use crate::worker::{self, DriverChoice, WorkerEvent, WorkerSpec};

/// How long start-up waits for every worker to report in.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than `timeouts.shutdown` stopping waits for workers.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// Why limpet could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Build(#[from] control::BuildError),
    #[error(transparent)]
    AccessLog(crate::access_log::OpenError),
    #[error("workers.cpus: CPU {cpu} is not one this process may run on (allowed: {allowed:?})")]
    CpuNotAllowed { cpu: usize, allowed: Vec<usize> },
    #[error("cannot tell which CPUs this process may run on")]
    NoCpus,
    #[error("{0}")]
    Worker(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot watch signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("worker {0} died; stopping so that a supervisor restarts limpet")]
    WorkerDied(usize),
}

/// A started limpet: its workers, control thread and the addresses it
/// listens on.
pub struct Running {
    control: ControlHandle,
    control_thread: Option<JoinHandle<()>>,
    inboxes: Vec<WorkerInbox>,
    threads: Vec<JoinHandle<()>>,
    events: mpsc::Receiver<WorkerEvent>,
    events_tx: mpsc::Sender<WorkerEvent>,
    signals: Option<signal_hook::iterator::Handle>,
    /// The configuration limpet started with (for the start-up log).
    control_config: Arc<Config>,
    /// Where the admin listener listens (port 0 resolved).
    admin_addr: Option<SocketAddr>,
    /// The access log writer, ended and joined once the workers are gone.
    access_writer: Option<crate::access_log::Writer>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("workers", &self.threads.len())
            .finish()
    }
}

/// The CPUs workers run on: `workers.cpus`, else every CPU this process may
/// run on (its `sched_getaffinity` mask).
fn worker_cpus(config: &Config) -> Result<Vec<usize>, StartError> {
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .ok_or(StartError::NoCpus)?
        .into_iter()
        .map(|core| core.id)
        .collect();
    if allowed.is_empty() {
        return Err(StartError::NoCpus);
    }
    match &config.workers.cpus {
        None => Ok(allowed),
        Some(cpus) => {
            if let Some(&cpu) = cpus.iter().find(|cpu| !allowed.contains(cpu)) {
                return Err(StartError::CpuNotAllowed { cpu, allowed });
            }
            Ok(cpus.clone())
        }
    }
}

/// Starts limpet with `config` and returns once every worker accepts.
/// Server names are resolved with the system resolver.
pub fn start(config: Config) -> Result<Running, StartError> {
    start_with(config, Arc::new(crate::dns::SystemResolver), None)
}

/// `start` with `resolver` for server names, at start and on every
/// re-resolution; `resolved` when the caller has resolved them already
/// (`dns::load_resolved`), else they are resolved here.
pub fn start_with(
    config: Config,
    resolver: Arc<dyn crate::dns::Resolve>,
    resolved: Option<crate::dns::Resolved>,
) -> Result<Running, StartError> {
    match net::raise_open_files_limit() {
        Ok(limit) => log::debug!("open files limit: {limit}"),
        Err(err) => log::warn!("cannot raise the open files limit: {err}"),
    }
    let config = Arc::new(config);
    let cpus = worker_cpus(&config)?;
    let count = config.workers.count.map_or(cpus.len(), |n| n.get());
    let listen_addrs = config
        .listeners
        .iter()
        .map(|l| net::probe(l.addr))
        .collect::<Result<Vec<_>, _>>()?;

    let control = match resolved {
        Some(resolved) => {
            Control::resolved(config.clone(), listen_addrs.clone(), resolver, &resolved)?
        }
        None => Control::with_resolver(config.clone(), listen_addrs.clone(), resolver)?,
    };
    let (handle, control_inbox) = control::channel();
    let (events_tx, events) = mpsc::channel();
    let mut inboxes = Vec::with_capacity(count);
    let mut threads = Vec::with_capacity(count);
    let driver = match config.workers.driver {
        crate::config::Driver::Auto => DriverChoice::Auto,
        crate::config::Driver::Epoll => DriverChoice::Legacy,
    };
    let snapshot = control.snapshot();
    let files =
        crate::access_log::open_all(&config, &snapshot.listeners).map_err(StartError::AccessLog)?;
    let access_writer = crate::access_log::start(files).map_err(StartError::AccessLog)?;
    let access_log = access_writer.0.clone();
    for id in 0..count {
        let listeners = config
            .listeners
            .iter()
            .zip(&snapshot.listeners)
            .map(|(l, view)| Ok((view.id, net::bind_shared(view.addr, l.backlog)?)))
            .collect::<Result<Vec<_>, ListenError>>()?;
        let (tx, inbox) = futures_channel::mpsc::unbounded();
        inboxes.push(tx);
        let spec = WorkerSpec {
            id,
            cpu: Some(cpus[id % cpus.len()]),
            driver,
            uring_entries: config.workers.uring_entries,
            buffer_bytes: config.workers.buffer_bytes,
            keep_buffers: config.workers.pool_buffers,
            listeners,
            snapshot: snapshot.clone(),
            inbox,
            control: handle.clone(),
            access_log: Some(access_log.clone()),
        };
        threads.push(worker::spawn(spec, events_tx.clone()).map_err(StartError::Thread)?);
    }
    // The admin listener is never shared (no SO_REUSEPORT): a second
    // limpet on the same admin port fails here.
    let admin = match &config.admin {
        Some(admin) => Some((net::bind_exclusive(admin.addr, 64)?, admin.token.clone())),
        None => None,
    };
    let admin_addr = admin.as_ref().and_then(|(l, _)| l.local_addr().ok());
    // The admin listener runs on the control thread's event loop: off the
    // workers, next to the state its calls read and change.
    let services: Vec<control::Service> = admin
        .into_iter()
        .map(|(listener, token)| -> control::Service {
            Box::new(move |shared| {
                monoio::spawn(crate::admin::serve(listener, token, shared));
            })
        })
        .collect();
    let control_thread = control::spawn(
        control,
        inboxes.clone(),
        control_inbox,
        services,
        access_log,
    )
    .map_err(StartError::Thread)?;
    let mut running = Running {
        control: handle,
        control_thread: Some(control_thread),
        inboxes,
        threads,
        events,
        events_tx,
        signals: None,
        control_config: config.clone(),
        admin_addr,
        access_writer: Some(access_writer),
    };
    let mut started = 0;
    while started < count {
        match running.events.recv_timeout(START_TIMEOUT) {
            Ok(WorkerEvent::Started {
                id,
                result: Ok(kind),
            }) => {
                log::info!("worker {id} on CPU {}: {kind}", cpus[id % cpus.len()]);
                started += 1;
            }
            Ok(WorkerEvent::Started {
                result: Err(why), ..
            }) => {
                running.stop();
                return Err(StartError::Worker(why));
            }
            Ok(WorkerEvent::Exited { id, .. }) => {
                running.stop();
                return Err(StartError::WorkerDied(id));
            }
            Ok(WorkerEvent::Signal(_)) => {}
            Err(_) => {
                running.stop();
                return Err(StartError::Worker("workers did not start in time".into()));
            }
        }
    }
    Ok(running)
}

impl Running {
    /// The address each listener is bound to, in the order of the
    /// configuration running now (reloads add and remove listeners).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners().into_iter().map(|(_, addr)| addr).collect()
    }

    /// Each listener's name and bound address, as [`Running::listen_addrs`].
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let Some(snapshot) = self.control.snapshot_blocking() else {
            return Vec::new();
        };
        snapshot
            .bound_listeners()
            .map(|(listener, addr)| (listener.name.clone(), addr))
            .collect()
    }

    /// A handle to the control thread (admin states, snapshots).
    pub fn control(&self) -> &ControlHandle {
        &self.control
    }

    /// Makes SIGHUP and `POST /reload` reload `path`.
    pub fn reload_from(self, path: std::path::PathBuf) -> Self {
        self.control.set_config_path(path);
        self
    }

    /// Where the admin listener listens, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Switches every worker to `config` between requests: open
    /// connections stay, admin states and sessions stay on their servers.
    /// Nothing changes when it fails.
    pub fn reload(&self, config: Config) -> Result<u64, control::ReloadError> {
        self.control.reload_blocking(config)
    }

    /// SIGHUP: the control thread validates the file first, as for
    /// `POST /reload`; a bad file changes nothing and the log says why.
    fn reload_file(&self) {
        // The control thread logs the outcome: one audit line per reload.
        let _ = self.control.reload_file_blocking();
    }

    /// Every worker's counters, gathered by asking each worker's inbox.
    pub fn reports(&self) -> Vec<control::WorkerReport> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for inbox in &self.inboxes {
            if inbox
                .unbounded_send(WorkerMsg::Report(control::ReportTo::Blocking(tx.clone())))
                .is_ok()
            {
                asked += 1;
            }
        }
        let mut reports: Vec<_> = (0..asked)
            .filter_map(|_| rx.recv_timeout(Duration::from_secs(2)).ok())
            .collect();
        reports.sort_by_key(|r| r.id);
        reports
    }

    /// Takes over SIGINT, SIGTERM and SIGHUP for this process, then logs
    /// the listening addresses: a supervisor (or test) that waits for them
    /// can signal limpet from then on without killing it.
    pub fn watch_signals(mut self) -> Result<Self, StartError> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(StartError::Signals)?;
        self.signals = Some(signals.handle());
        let tx = self.events_tx.clone();
        std::thread::Builder::new()
            .name("limpet-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if tx.send(WorkerEvent::Signal(signal)).is_err() {
                        return;
                    }
                }
            })
            .map_err(StartError::Thread)?;
        for (name, addr) in self.listeners() {
            log::info!("listener {name} listening on {addr}");
        }
        if let Some(addr) = self.admin_addr {
            log::info!("admin listening on {addr}");
        }
        Ok(self)
    }

    /// Blocks until SIGINT or SIGTERM (then stops and returns `Ok`) or until
    /// a worker dies (then returns the error, for a non-zero exit). Call
    /// [`Running::watch_signals`] first.
    pub fn wait(mut self) -> Result<(), StartError> {
        loop {
            match self.events.recv() {
                Ok(WorkerEvent::Signal(SIGHUP)) => self.reload_file(),
                Ok(WorkerEvent::Signal(signal)) => {
                    log::info!("signal {signal}: stopping");
                    self.stop();
                    return Ok(());
                }
                Ok(WorkerEvent::Exited { id, .. }) => {
                    log::error!("worker {id} died");
                    self.stop();
                    return Err(StartError::WorkerDied(id));
                }
                Ok(WorkerEvent::Started { .. }) => {}
                Err(_) => return Ok(()),
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and joins
    /// every thread.
    pub fn stop(&mut self) {
        for inbox in &self.inboxes {
            let _ = inbox.unbounded_send(WorkerMsg::Shutdown);
        }
        // The shutdown timeout the workers use: the running configuration's,
        // which a reload may have changed since start.
        let shutdown = self
            .control
            .snapshot_blocking()
            .map_or(self.control_config.timeouts.shutdown, |s| {
                s.config.timeouts.shutdown
            });
        let mut left = self.threads.len();
        let deadline = std::time::Instant::now() + shutdown + STOP_MARGIN;
        while left > 0 {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(wait) {
                Ok(WorkerEvent::Exited { .. }) => left -= 1,
                Ok(_) => {}
                Err(_) => {
                    log::warn!("{left} worker(s) did not stop in time");
                    break;
                }
            }
        }
        if left == 0 {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
            // Every worker has handed over its last lines: end the writer.
            if let Some((tx, writer)) = self.access_writer.take() {
                let _ = tx.send(crate::access_log::ToWriter::End);
                let _ = writer.join();
            }
        }
        self.control.shutdown();
        if let Some(thread) = self.control_thread.take() {
            let _ = thread.join();
        }
        if let Some(signals) = self.signals.take() {
            signals.close();
        }
    }
}
