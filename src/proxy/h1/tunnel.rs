//! Relaying an upgraded connection (WebSocket after `101 Switching
//! Protocols`) byte for byte in both directions until both ends close.

use std::cell::Cell;
use std::time::Duration;

use crate::worker::Tick;

use futures_util::future::{select, Either};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;

use crate::net::Stream;
use crate::proxy::io;
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
    let last_activity = Cell::new(Tick::read());
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
    last_activity: &Cell<Tick>,
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
        last_activity.set(Tick::read());
        let (result, back) = to.write_all(buf).await;
        buf = back;
        if result.is_err() {
            break End::Failed;
        }
    };
    worker.buffers.give(buf);
    end
}

/// Relays `client` <-> `backend` when either is TLS: one loop waits for
/// whichever side is readable (a wait that loses nothing when dropped),
/// reads it and writes to the other, until both directions have closed or
/// nothing moved for `idle`.
pub async fn run_any<C: Stream, B: Stream>(
    worker: &Worker,
    mut client: C,
    mut backend: B,
    idle: Duration,
) {
    let mut up_open = true;
    let mut down_open = true;
    let mut buf = worker.buffers.take();
    while up_open || down_open {
        let from_client = {
            let up = std::pin::pin!(ready(&mut client, up_open));
            let down = std::pin::pin!(ready(&mut backend, down_open));
            match crate::worker::deadline::timeout(idle, select(up, down)).await {
                Ok(Either::Left((Ok(()), _))) => true,
                Ok(Either::Right((Ok(()), _))) => false,
                Ok(_) | Err(_) => break,
            }
        };
        buf.clear();
        let (result, back) = if from_client {
            io::read_more(&mut client, buf, idle).await
        } else {
            io::read_more(&mut backend, buf, idle).await
        };
        let Some(back) = back else {
            return;
        };
        buf = back;
        let n = match result {
            Ok(0) => {
                let _ = if from_client {
                    up_open = false;
                    backend.shutdown().await
                } else {
                    down_open = false;
                    client.shutdown().await
                };
                continue;
            }
            Ok(n) => n,
            Err(_) => break,
        };
        let (result, back) = if from_client {
            io::write_range(&mut backend, buf, 0..n, idle).await
        } else {
            io::write_range(&mut client, buf, 0..n, idle).await
        };
        let Some(back) = back else {
            return;
        };
        buf = back;
        if result.is_err() {
            break;
        }
    }
    worker.buffers.give(buf);
}

/// Readiness of one side, or never once that side has closed.
async fn ready<S: Stream>(stream: &mut S, open: bool) -> std::io::Result<()> {
    if open {
        stream.readable().await
    } else {
        std::future::pending().await
    }
}
