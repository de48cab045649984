//! Relaying an upgraded connection (WebSocket after `101 Switching
//! Protocols`) byte for byte in both directions until both ends close.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;

use crate::worker::Worker;

/// How one direction ended.
enum End {
    /// The reading side closed cleanly; the other direction may go on.
    Closed,
    /// An error or the idle limit: the whole tunnel ends.
    Failed,
}

/// Relays `client` <-> `backend` until both directions close, or until no
/// byte has moved either way for `idle`.
pub async fn run(worker: &Worker, client: TcpStream, backend: TcpStream, idle: Duration) {
    let (client_read, client_write) = client.into_split();
    let (backend_read, backend_write) = backend.into_split();
    let last_activity = Cell::new(Instant::now());
    let up = std::pin::pin!(pump(
        worker,
        client_read,
        backend_write,
        idle,
        &last_activity
    ));
    let down = std::pin::pin!(pump(
        worker,
        backend_read,
        client_write,
        idle,
        &last_activity
    ));
    match select(up, down).await {
        Either::Left((End::Closed, down)) => {
            down.await;
        }
        Either::Right((End::Closed, up)) => {
            up.await;
        }
        _ => {}
    }
}

async fn pump(
    worker: &Worker,
    mut from: OwnedReadHalf<TcpStream>,
    mut to: OwnedWriteHalf<TcpStream>,
    idle: Duration,
    last_activity: &Cell<Instant>,
) -> End {
    let mut buf = worker.buffers.take();
    let end = loop {
        buf.clear();
        let read = crate::worker::deadline::timeout(idle, from.read(buf)).await;
        let (result, back) = match read {
            Ok(done) => done,
            Err(_) => {
                // Quiet this way; the tunnel lives while the other way talks.
                if last_activity.get().elapsed() < idle {
                    buf = worker.buffers.take();
                    continue;
                }
                return End::Failed;
            }
        };
        buf = back;
        match result {
            Ok(0) => {
                let _ = to.shutdown().await;
                break End::Closed;
            }
            Ok(_) => {}
            Err(_) => break End::Failed,
        }
        last_activity.set(Instant::now());
        let (result, back) = to.write_all(buf).await;
        buf = back;
        if result.is_err() {
            break End::Failed;
        }
    };
    worker.buffers.give(buf);
    end
}
