//! Serving client connections: every protocol's requests go through the
//! same steps, and only what is specific to a protocol has its own folder.
//!
//! - [`decide`]: a protocol-neutral view of a request to a group, a
//!   session and a server (no I/O).
//! - [`context`]: the request's context from head to log line.
//! - [`upstream`]: pick, pool or connect, send, read the response head,
//!   retry; shared by every front end through its [`upstream::Front`].
//! - `h1/`: the HTTP/1 front end (connection loop, head to decision,
//!   bodies, tunnels).
//! - [`framing`]: where an HTTP/1 message body ends (backends speak HTTP/1).
//!
//! Nothing here takes a lock or touches another core's data.

mod context;
mod cycle;
mod decide;
mod framing;
mod h1;
mod h2;
mod io;
pub(crate) mod splice;
mod stream;
mod tls;
mod upstream;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use monoio::net::TcpStream;

pub use context::{Protocol, RequestCtx, RequestId, Times};
pub use cycle::InMemory;
pub use framing::Remaining;
pub use splice::Splicer;
pub use upstream::{RetryBudget, UpstreamPool};

use crate::worker::{Slot, Stats, Worker};

/// Serves one accepted client connection to its end. A panic while serving
/// closes this connection only; it is counted and logged, and the worker
/// goes on serving the others.
pub fn serve(
    worker: Rc<Worker>,
    listener: crate::net::ListenerId,
    stream: TcpStream,
    peer: SocketAddr,
) -> Isolated<impl Future<Output = ()>> {
    let slot = worker.conns.register(peer.ip());
    Isolated::new(
        worker.clone(),
        slot,
        h1::run(worker, listener, stream, peer, slot),
    )
}

/// Serves one connection accepted on an HTTPS listener: the handshake
/// under `timeout`, then requests as on any connection. A failed handshake
/// (plain HTTP on this port, garbage, a timeout) is counted and closes the
/// connection; it is logged at debug level only.
pub fn serve_tls(
    worker: Rc<Worker>,
    listener: crate::net::ListenerId,
    stream: TcpStream,
    peer: SocketAddr,
    config: std::sync::Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Isolated<impl Future<Output = ()>> {
    let slot = worker.conns.register(peer.ip());
    // The handshake and the connection in sequence (`then`), so that the
    // connection's state does not also hold the handshake's moved-from
    // locals for as long as it lives.
    let handshake_worker = worker.clone();
    let run_worker = worker.clone();
    let work = async move { tls::accept(&handshake_worker, stream, peer, config, timeout).await }
        .then(move |stream| {
            futures_util::future::OptionFuture::from(
                stream.map(|stream| h1::run(run_worker, listener, stream, peer, slot)),
            )
        })
        .map(drop);
    Isolated::new(worker, slot, work)
}

/// Answers a connection limpet will not serve with `status` (when it can
/// answer at all: not before a TLS handshake), within a second, and closes.
pub async fn refuse_connection(mut stream: TcpStream, status: Option<u16>) {
    if let Some(status) = status {
        let _ = io::write_all(
            &mut stream,
            crate::http::error_response(status),
            Duration::from_secs(1),
        )
        .await;
    }
}

pin_project_lite::pin_project! {
    /// One connection's work, counted as an active connection for as long
    /// as it lives, with a panic inside ending that work only.
    ///
    /// Written by hand rather than as an `async fn` wrapping the work: rustc
    /// would keep both the moved argument and the running future in the
    /// wrapper's state, doubling what every idle connection holds.
    pub struct Isolated<F> {
        worker: Rc<Worker>,
        // Its place in the worker's connection table.
        slot: Slot,
        #[pin]
        work: futures_util::future::CatchUnwind<AssertUnwindSafe<F>>,
    }

    impl<F> PinnedDrop for Isolated<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let worker = this.worker;
            worker.conns.remove(*this.slot);
            let stats = &worker.stats;
            stats.active_connections.set(stats.active_connections.get().saturating_sub(1));
            worker.conn_closed.notify_all();
        }
    }
}

impl<F: Future<Output = ()>> Isolated<F> {
    fn new(worker: Rc<Worker>, slot: Slot, work: F) -> Self {
        let stats = &worker.stats;
        stats
            .active_connections
            .set(stats.active_connections.get() + 1);
        Isolated {
            worker,
            slot,
            work: AssertUnwindSafe(work).catch_unwind(),
        }
    }
}

impl<F: Future<Output = ()>> Future for Isolated<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // One clock reading serves everything this wake-up does.
        let _clock = crate::worker::PollScope::enter();
        let this = self.project();
        match this.work.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Ready(Err(_)) => {
                Stats::bump(&this.worker.stats.panics);
                log::error!(
                    "worker {}: serving {} panicked; that connection was closed",
                    this.worker.id,
                    this.worker
                        .conns
                        .peer(*this.slot)
                        .map_or("a client".into(), |ip| ip.to_string())
                );
                Poll::Ready(())
            }
        }
    }
}

/// Closes idle backend connections that have outlived `timeouts.backend_idle`,
/// every second, so that an idle pool does not hold descriptors forever.
pub async fn sweep_idle_upstreams(worker: Rc<Worker>) {
    while !worker.stopping.get() {
        monoio::time::sleep(Duration::from_secs(1)).await;
        let max_idle = worker.view().snapshot.config.timeouts.backend_idle;
        worker.upstreams.sweep(max_idle);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::Control;

    /// A worker for a one-server config, and an epoll event loop to run on.
    fn worker_and_runtime() -> (
        Rc<Worker>,
        monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>,
    ) {
        let text = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"g\"\n[[groups.g.servers]]\nname = \"s\"\naddress = \"127.0.0.1:9\"\n";
        let config = crate::config::parse(text, "t.toml").unwrap();
        let control = Control::new(Arc::new(config), vec!["127.0.0.1:1".parse().unwrap()]).unwrap();
        let worker = Rc::new(Worker::new(0, control.snapshot(), 4096, 4));
        let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        (worker, runtime)
    }

    #[test]
    fn a_panic_ends_one_connection_and_the_worker_goes_on() {
        let (worker, mut runtime) = worker_and_runtime();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        runtime.block_on(async {
            let slot = worker.conns.register(peer.ip());
            Isolated::new(worker.clone(), slot, async {
                panic!("a bug reached by one connection")
            })
            .await;
            assert_eq!(worker.stats.panics.get(), 1);
            assert_eq!(worker.stats.active_connections.get(), 0);
            let slot = worker.conns.register(peer.ip());
            Isolated::new(worker.clone(), slot, async {}).await;
            assert_eq!(worker.conns.from_client(peer.ip()), 0, "both removed");
            assert_eq!(worker.stats.panics.get(), 1);
            assert_eq!(
                monoio::spawn(async { 7 }).await,
                7,
                "the event loop still runs tasks"
            );
        });
    }

    /// What an idle keep-alive connection holds is this future (the boxed
    /// per-request state is gone between requests): keep it small.
    #[test]
    fn an_idle_connection_holds_under_a_kibibyte_of_state() {
        let (worker, mut runtime) = worker_and_runtime();
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let served = serve(worker.clone(), crate::net::ListenerId(0), stream, addr);
            let size = std::mem::size_of_val(&served);
            assert!(size <= 1024, "a connection's task state is {size} bytes");
        });
    }

    /// The same for an HTTPS connection: the rustls connection is boxed,
    /// the handshake and the closing alert (each with a large timer) are
    /// boxed for the moment they run, and no I/O buffer is held.
    #[test]
    fn an_idle_tls_connection_holds_little_task_state() {
        let (worker, mut runtime) = worker_and_runtime();
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(std::sync::Arc::new(
                rustls::server::ResolvesServerCertUsingSni::new(),
            ));
            let served = serve_tls(
                worker.clone(),
                crate::net::ListenerId(0),
                stream,
                addr,
                std::sync::Arc::new(config),
                Duration::from_secs(1),
            );
            let size = std::mem::size_of_val(&served);
            assert!(
                size <= 1024,
                "a TLS connection's task state is {size} bytes"
            );
        });
    }
}
