//! Workers: one OS thread per core, pinned, each running its own event loop
//! with its own listening sockets, buffers, backend pool, balancer state and
//! counters. Workers share nothing on the request path; they learn of
//! changes through their inbox, between requests.

mod buffers;
mod clock;
mod conns;
pub mod deadline;
mod driver;
mod event;
mod stats;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::StreamExt;

pub use buffers::BufferPool;
pub use clock::{now, PollScope, Tick};
pub use conns::{Conns, Phase, Slot};
pub use driver::{DriverChoice, DriverKind, WorkerRuntime};
pub use event::LocalEvent;
pub use stats::{Histogram, HistogramReport, RetryReason, Shed, Stats, BUCKETS, BUCKET_BOUNDS_US};

use crate::balance::{BalanceFactor, Load, Picker, ServerIdx};
use crate::config::{Balance, GroupIdx, HashKey};
use crate::control::{
    ControlHandle, PassiveFailure, ServerReport, Snapshot, WorkerMsg, WorkerReport,
};
use crate::http;
use crate::net::ListenerId;
use crate::proxy::{self, RetryBudget, UpstreamPool};
use crate::sticky::CookieFinder;

/// One server's state on this core that outlives snapshots: a server keeps
/// it, keyed by its identity (group name, server name), through health and
/// admin changes, weight changes and reloads, and through a change of the
/// address its name resolves to. Requests hold it while they run, so one
/// that started under an older snapshot still counts on the live state.
#[derive(Default, Debug)]
pub struct ServerLive {
    /// Requests this core has in flight on the server (least-outstanding
    /// balancing reads it).
    pub in_flight: Cell<u32>,
    /// Upgraded connections (WebSocket) this core has open through the
    /// server: they count as in flight for a drain, not for balancing.
    pub tunnels: Cell<u32>,
    /// Responses relayed from this server.
    pub responses: Cell<u64>,
    /// Requests that reached this server because their session named it
    /// (what still arrives at a draining server).
    pub sticky_hits: Cell<u64>,
    /// Relayed responses by class: index 0 for 1xx … 4 for 5xx.
    pub classes: [Cell<u64>; 5],
    /// Request bytes received for this server (heads, and bodies with a
    /// `Content-Length`) and response bytes sent to clients from it.
    pub bytes_in: Cell<u64>,
    pub bytes_out: Cell<u64>,
    /// From the request head's arrival to the response's last byte.
    pub duration: Histogram,
    /// Opening a new backend connection (TCP, and TLS where configured).
    pub connect: Histogram,
    /// From the request head's arrival to the backend's response head.
    pub first_byte: Histogram,
}

impl ServerLive {
    /// Its counters at the moment of asking.
    fn report(&self) -> ServerReport {
        ServerReport {
            responses: self.responses.get(),
            sticky_hits: self.sticky_hits.get(),
            in_flight: self.in_flight.get(),
            tunnels: self.tunnels.get(),
            classes: std::array::from_fn(|i| self.classes[i].get()),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            duration: self.duration.report(),
            connect: self.connect.report(),
            first_byte: self.first_byte.report(),
        }
    }
}

/// Counts a request in flight on one server for as long as it lives.
pub struct InFlight(Rc<ServerLive>);

impl InFlight {
    pub fn new(server: &Rc<ServerLive>) -> Self {
        server.in_flight.set(server.in_flight.get() + 1);
        InFlight(server.clone())
    }
}

impl InFlight {
    /// The request became a tunnel (a `101`): it stops counting as a
    /// request in flight and counts as an open tunnel until dropped.
    pub fn into_tunnel(self) -> TunnelOpen {
        let server = self.0.clone();
        drop(self);
        server.tunnels.set(server.tunnels.get() + 1);
        TunnelOpen(server)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let count = &self.0.in_flight;
        count.set(count.get().saturating_sub(1));
    }
}

/// Counts an open tunnel on one server for as long as it lives.
pub struct TunnelOpen(Rc<ServerLive>);

impl Drop for TunnelOpen {
    fn drop(&mut self) {
        let count = &self.0.tunnels;
        count.set(count.get().saturating_sub(1));
    }
}

/// The balancers read this core's in-flight counts from the live states.
impl Load for [Rc<ServerLive>] {
    fn in_flight(&self, server: ServerIdx) -> u32 {
        self.get(server.get()).map_or(0, |s| s.in_flight.get())
    }
}

/// A group's balancing state on one core.
pub struct CoreGroup {
    /// For `balance = "hash"` on a cookie: its finder.
    pub hash_cookie: Option<Box<CookieFinder>>,
    pub picker: RefCell<Picker>,
    /// The live state of each server (index = `ServerIdx`).
    pub servers: Vec<Rc<ServerLive>>,
}

/// A snapshot plus what this core derives from it; requests keep the view
/// they started with, so a swap never changes a request half-way.
pub struct CoreView {
    pub snapshot: Arc<Snapshot>,
    pub groups: Vec<CoreGroup>,
    pub limits: http::Limits,
}

impl CoreView {
    /// Builds this core's view of `snapshot`. With `old` (the view it
    /// replaces), every server that stays keeps its live state and its
    /// place in the balancer's rotation; new servers start fresh.
    fn build(snapshot: Arc<Snapshot>, seed: u64, old: Option<&CoreView>) -> Self {
        let config = &snapshot.config;
        let groups = config
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let weights: Vec<_> = group.servers.iter().map(|s| s.weight).collect();
                let ring = &snapshot.groups[g].ring;
                let mut picker = match &group.balance {
                    Balance::RoundRobin => Picker::round_robin(&weights),
                    Balance::RandomTwo => Picker::random_two(&weights, seed ^ g as u64),
                    Balance::LeastOutstanding => Picker::least_outstanding(&weights),
                    Balance::Hash { balance_factor, .. } => {
                        let hashed = balance_factor
                            .map(BalanceFactor::new)
                            .transpose()
                            .and_then(|factor| Picker::hash(ring.clone(), &weights, factor));
                        hashed.unwrap_or_else(|err| {
                            // Validated with the configuration; cannot happen.
                            log::error!("group {}: hash balancing unusable ({err}); least outstanding instead", group.name);
                            Picker::least_outstanding(&weights)
                        })
                    }
                };
                let hash_cookie = match &group.balance {
                    Balance::Hash {
                        key: HashKey::Cookie(name),
                        ..
                    } => CookieFinder::new(name).ok().map(Box::new),
                    _ => None,
                };
                // The same group in the old view, and each server's index there.
                let before = old.and_then(|old| {
                    let (i, _) = old
                        .snapshot
                        .config
                        .groups
                        .iter()
                        .enumerate()
                        .find(|(_, o)| o.name == group.name)?;
                    Some((&old.snapshot.config.groups[i], &old.groups[i]))
                });
                let old_index = |s: ServerIdx| {
                    let (old_group, _) = before?;
                    let name = &group.servers.get(s.get())?.name;
                    let i = old_group.servers.iter().position(|o| &o.name == name)?;
                    Some(ServerIdx(u32::try_from(i).ok()?))
                };
                if let Some((_, old_core)) = before {
                    picker.carry_from(&old_core.picker.borrow(), old_index);
                }
                let servers = (0..group.servers.len())
                    .map(|s| {
                        let kept = old_index(ServerIdx(s as u32)).and_then(|o| {
                            before.and_then(|(_, core)| core.servers.get(o.get()).cloned())
                        });
                        kept.unwrap_or_default()
                    })
                    .collect();
                CoreGroup {
                    hash_cookie,
                    picker: RefCell::new(picker),
                    servers,
                }
            })
            .collect();
        let limits = http::Limits {
            max_request_line_bytes: config.limits.max_request_line_bytes,
            max_head_bytes: config.limits.max_head_bytes,
            max_headers: config.limits.max_headers,
        };
        CoreView {
            snapshot,
            groups,
            limits,
        }
    }
}

/// Everything one core owns. Connection tasks on this core share it through
/// an `Rc`; it never leaves the thread.
pub struct Worker {
    pub id: usize,
    view: RefCell<Rc<CoreView>>,
    pub buffers: BufferPool,
    /// The spare pipe for spliced bodies, and whether the kernel refused.
    pub splicer: proxy::Splicer,
    pub upstreams: UpstreamPool,
    /// The client connections, by what they are doing.
    pub conns: Conns,
    /// How many more retries this core may make (SPEC §7).
    pub retry_budget: RetryBudget,
    pub stats: Stats,
    /// Signalled when a connection closes (a slot under `max_connections`).
    pub conn_closed: LocalEvent,
    /// Access log lines not yet handed to the writer.
    pub access: crate::access_log::Buffers,
    /// Where failures of real traffic are reported (passive health).
    control: Option<ControlHandle>,
    /// Set once when the worker begins to stop.
    pub stopping: Cell<bool>,
    pub stop: LocalEvent,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        snapshot: Arc<Snapshot>,
        buffer_bytes: usize,
        keep_buffers: usize,
    ) -> Self {
        let upstreams = UpstreamPool::new(snapshot.backend_count);
        let stats = Stats::default();
        stats.track_listeners(snapshot.listener_index.len());
        Worker {
            id,
            view: RefCell::new(Rc::new(CoreView::build(snapshot, id as u64, None))),
            buffers: BufferPool::new(buffer_bytes, keep_buffers),
            splicer: proxy::Splicer::default(),
            upstreams,
            conns: Conns::default(),
            retry_budget: RetryBudget::default(),
            stats,
            conn_closed: LocalEvent::default(),
            access: crate::access_log::Buffers::new(None),
            control: None,
            stopping: Cell::new(false),
            stop: LocalEvent::default(),
        }
    }

    /// Tells the control thread that real traffic to `server` of `group`
    /// failed (a connect failure, a reset or a timeout before the response).
    pub fn report_failure(&self, view: &CoreView, group: GroupIdx, server: ServerIdx) {
        if let Some(control) = &self.control {
            control.passive_failure(PassiveFailure {
                config: Arc::as_ptr(&view.snapshot.config) as usize,
                group,
                server,
            });
        }
    }

    /// The view a new request routes with.
    pub fn view(&self) -> Rc<CoreView> {
        self.view.borrow().clone()
    }

    fn install(&self, snapshot: Arc<Snapshot>) {
        log::debug!(
            "worker {}: snapshot {} installed",
            self.id,
            snapshot.generation
        );
        self.upstreams.resize(snapshot.backend_count);
        self.stats.track_listeners(snapshot.listener_index.len());
        let view = CoreView::build(snapshot, self.id as u64, Some(&self.view()));
        *self.view.borrow_mut() = Rc::new(view);
    }
}

impl Worker {
    /// Counts a finished request in the metrics of its listener and of the
    /// server that answered it (nothing allocates here).
    pub fn record(&self, view: &CoreView, ctx: &crate::proxy::RequestCtx) {
        self.stats.listener_response(ctx.listener, ctx.status);
        let (Some(server), Some(first_byte)) = (ctx.server, ctx.times.first_byte) else {
            return;
        };
        let Some(live) = view
            .groups
            .get(ctx.decision.group.index())
            .and_then(|g| g.servers.get(server.get()))
        else {
            return;
        };
        let head = ctx.times.head;
        let done = ctx.times.done.unwrap_or(first_byte);
        live.duration.observe_us(done.nanos_since(head) / 1000);
        live.first_byte
            .observe_us(first_byte.nanos_since(head) / 1000);
        Stats::bump(&live.classes[Stats::class(ctx.status)]);
        live.bytes_in
            .set(live.bytes_in.get().wrapping_add(ctx.bytes_in));
        live.bytes_out
            .set(live.bytes_out.get().wrapping_add(ctx.bytes_out));
    }

    fn report(&self) -> WorkerReport {
        let s = &self.stats;
        WorkerReport {
            id: self.id,
            stopping: self.stopping.get(),
            snapshot_generation: self.view().snapshot.generation,
            config: Arc::as_ptr(&self.view().snapshot.config) as usize,
            accepted: s.accepted.get(),
            active_connections: s.active_connections.get(),
            requests: s.requests.get(),
            in_flight: s.in_flight.get(),
            responses: std::array::from_fn(|i| s.responses[i].get()),
            refused: s.refused.get(),
            backend_connect_errors: s.backend_connect_errors.get(),
            backend_timeouts: s.backend_timeouts.get(),
            retries: std::array::from_fn(|i| s.retries[i].get()),
            shed: std::array::from_fn(|i| s.shed[i].get()),
            panics: s.panics.get(),
            tls_handshakes: s.tls_handshakes.get(),
            tls_resumed: s.tls_resumed.get(),
            tls_handshake_failures: s.tls_handshake_failures.get(),
            spliced_bodies: s.spliced_bodies.get(),
            spliced_bytes: s.spliced_bytes.get(),
            sticky_hits: s.sticky_hits.get(),
            sticky_new: s.sticky_new.get(),
            sticky_moved: s.sticky_moved.get(),
            sticky_unavailable: s.sticky_unavailable.get(),
            sticky_refused: std::array::from_fn(|i| s.sticky_refused[i].get()),
            servers: self
                .view()
                .groups
                .iter()
                .map(|g| g.servers.iter().map(|s| s.report()).collect())
                .collect(),
            listeners: self.stats.listeners.borrow().clone(),
            idle_upstreams: self.upstreams.idle_count(),
            free_buffers: self.buffers.free_count(),
        }
    }
}

/// What one worker needs to start.
pub struct WorkerSpec {
    pub id: usize,
    /// The CPU to pin to; `None` leaves the thread unpinned.
    pub cpu: Option<usize>,
    pub driver: DriverChoice,
    pub uring_entries: u32,
    pub buffer_bytes: usize,
    pub keep_buffers: usize,
    /// This worker's own `SO_REUSEPORT` socket of each listener.
    pub listeners: Vec<(ListenerId, std::net::TcpListener)>,
    pub snapshot: Arc<Snapshot>,
    pub inbox: mpsc::UnboundedReceiver<WorkerMsg>,
    /// Where to report failures of real traffic.
    pub control: ControlHandle,
    /// The access log writer.
    pub access_log: Option<std::sync::mpsc::Sender<crate::access_log::ToWriter>>,
}

/// What a worker thread tells the main thread.
#[derive(Debug)]
pub enum WorkerEvent {
    /// Pinned and running on this driver (or why it could not start).
    Started {
        id: usize,
        result: Result<DriverKind, String>,
    },
    /// The thread ended; `panicked` means it died rather than stopped.
    Exited { id: usize, panicked: bool },
    /// A signal for the process, delivered on the same channel so that the
    /// main thread waits on one thing.
    Signal(i32),
}

struct ExitGuard {
    id: usize,
    events: std_mpsc::Sender<WorkerEvent>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = self.events.send(WorkerEvent::Exited {
            id: self.id,
            panicked: std::thread::panicking(),
        });
    }
}

/// Starts a worker thread. It reports `Started` once pinned and running (or
/// failed), and `Exited` when it ends, whether it stopped or died.
pub fn spawn(
    spec: WorkerSpec,
    events: std_mpsc::Sender<WorkerEvent>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("limpet-w{}", spec.id))
        .spawn(move || {
            let guard = ExitGuard {
                id: spec.id,
                events: events.clone(),
            };
            let started = |result| {
                let _ = events.send(WorkerEvent::Started {
                    id: spec.id,
                    result,
                });
            };
            if let Some(cpu) = spec.cpu {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                    started(Err(format!(
                        "worker {} cannot be pinned to CPU {cpu}",
                        spec.id
                    )));
                    return;
                }
            }
            let (mut runtime, kind) = match WorkerRuntime::build(spec.driver, spec.uring_entries) {
                Ok(built) => built,
                Err(err) => {
                    started(Err(format!("worker {}: no event loop: {err}", spec.id)));
                    return;
                }
            };
            started(Ok(kind));
            runtime.block_on(run(spec));
            drop(guard);
        })
}

/// One listener's accept loop on this worker, and how to end it.
struct Acceptor {
    id: ListenerId,
    closing: Rc<Closing>,
    task: monoio::task::JoinHandle<()>,
}

/// Set when a reload closes one listener.
#[derive(Default)]
struct Closing {
    closed: Cell<bool>,
    event: LocalEvent,
}

impl Acceptor {
    fn start(worker: &Rc<Worker>, id: ListenerId, socket: std::net::TcpListener) -> Option<Self> {
        match monoio::net::TcpListener::from_std(socket) {
            Ok(listener) => {
                let closing = Rc::new(Closing::default());
                let task =
                    monoio::spawn(accept_loop(worker.clone(), id, listener, closing.clone()));
                Some(Acceptor { id, closing, task })
            }
            Err(err) => {
                log::error!("worker {}: listener {} unusable: {err}", worker.id, id.0);
                None
            }
        }
    }

    /// Stops accepting; the socket closes once the loop has returned.
    fn close(self) -> monoio::task::JoinHandle<()> {
        self.closing.closed.set(true);
        self.closing.event.notify_all();
        self.task
    }
}

async fn run(spec: WorkerSpec) {
    let WorkerSpec {
        id,
        buffer_bytes,
        keep_buffers,
        listeners,
        snapshot,
        mut inbox,
        control,
        access_log,
        ..
    } = spec;
    let mut worker = Worker::new(id, snapshot, buffer_bytes, keep_buffers);
    worker.control = Some(control);
    worker.access = crate::access_log::Buffers::new(access_log);
    let worker = Rc::new(worker);
    let mut accepting: Vec<Acceptor> = listeners
        .into_iter()
        .filter_map(|(listener, socket)| Acceptor::start(&worker, listener, socket))
        .collect();
    monoio::spawn(proxy::sweep_idle_upstreams(worker.clone()));
    if worker.access.enabled() {
        let flusher = worker.clone();
        monoio::spawn(async move {
            while !flusher.stopping.get() {
                monoio::time::sleep(crate::access_log::FLUSH_EVERY).await;
                flusher.access.flush();
            }
        });
    }
    while let Some(message) = inbox.next().await {
        match message {
            WorkerMsg::Snapshot(snapshot) => worker.install(snapshot),
            WorkerMsg::Report(reply) => reply.send(worker.report()),
            WorkerMsg::Listen(listener, socket) => {
                if let Some(i) = accepting.iter().position(|a| a.id == listener) {
                    accepting.swap_remove(i).close().await;
                }
                accepting.extend(Acceptor::start(&worker, listener, socket));
            }
            WorkerMsg::Unlisten(listener) => {
                if let Some(i) = accepting.iter().position(|a| a.id == listener) {
                    accepting.swap_remove(i).close().await;
                }
            }
            WorkerMsg::Shutdown => break,
        }
    }
    worker.stopping.set(true);
    worker.stop.notify_all();
    for acceptor in accepting {
        acceptor.task.await;
    }
    let deadline = Instant::now() + worker.view().snapshot.config.timeouts.shutdown;
    while worker.stats.in_flight.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.access.flush();
    log::debug!("worker {id}: stopped");
}

/// Makes room for one more connection under `limits.max_connections`:
/// at the cap, the connection worth least is told to close (idle, oldest
/// first, then one still sending its first head); when every connection is
/// busy, waits until one closes or turns idle. False when stopping.
async fn admit(worker: &Worker, closing: &Closing) -> bool {
    let ended = || worker.stopping.get() || closing.closed.get();
    loop {
        let max = worker.view().snapshot.config.limits.max_connections as u64;
        // Connections told to close are on their way out: they do not count.
        let open = worker
            .stats
            .active_connections
            .get()
            .saturating_sub(worker.conns.shedding() as u64);
        if open < max {
            return true;
        }
        if ended() {
            return false;
        }
        if let Some(reason) = worker.conns.shed_one() {
            log::debug!(
                "worker {}: full; a {} connection closed to admit one",
                worker.id,
                reason.label()
            );
            worker.stats.shed(reason);
            return true;
        }
        let slot = std::pin::pin!(select(
            worker.conn_closed.wait(),
            worker.conns.sheddable.wait()
        ));
        let stop = std::pin::pin!(select(worker.stop.wait(), closing.event.wait()));
        select(slot, stop).await;
    }
}

async fn accept_loop(
    worker: Rc<Worker>,
    listener_id: ListenerId,
    listener: monoio::net::TcpListener,
    closing: Rc<Closing>,
) {
    let ended = || worker.stopping.get() || closing.closed.get();
    loop {
        if ended() {
            return;
        }
        let accept = std::pin::pin!(listener.accept());
        let stop = std::pin::pin!(select(worker.stop.wait(), closing.event.wait()));
        match select(accept, stop).await {
            Either::Left((Ok((stream, peer)), _)) => {
                Stats::bump(&worker.stats.accepted);
                let view = worker.view();
                let per_client = view.snapshot.config.limits.max_connections_per_client;
                if per_client > 0 && worker.conns.from_client(peer.ip()) >= per_client {
                    worker.stats.shed(Shed::PerClient);
                    if worker.conns.should_log(peer.ip(), now()) {
                        log::info!(
                            "worker {}: {} has {per_client} connections open (limits.max_connections_per_client); refusing more",
                            worker.id,
                            peer.ip()
                        );
                    }
                    let plain = view
                        .snapshot
                        .listener(listener_id)
                        .and_then(|i| view.snapshot.config.listeners.get(i))
                        .is_some_and(|l| l.tls.is_none());
                    monoio::spawn(proxy::refuse_connection(stream, plain.then_some(429)));
                    continue;
                }
                if !admit(&worker, &closing).await {
                    return;
                }
                // The listener's TLS configuration as of now: a reload
                // changes what new handshakes get, not open connections.
                let view = worker.view();
                let tls = view
                    .snapshot
                    .listener(listener_id)
                    .and_then(|i| view.snapshot.config.listeners.get(i))
                    .and_then(|l| l.tls.as_ref())
                    .map(|tls| (tls.server.clone(), tls.handshake_timeout));
                match tls {
                    None => {
                        monoio::spawn(proxy::serve(worker.clone(), listener_id, stream, peer));
                    }
                    Some((config, timeout)) => {
                        monoio::spawn(proxy::serve_tls(
                            worker.clone(),
                            listener_id,
                            stream,
                            peer,
                            config,
                            timeout,
                        ));
                    }
                }
            }
            Either::Left((Err(err), _)) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("worker {}: accept failed: {err}", worker.id);
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            Either::Right(_) => return,
        }
    }
}
