//! Large HTTP/1 response bodies relayed with `splice(2)`: backend socket →
//! pipe → client socket, so the bytes never enter limpet's memory
//! (`workers.splice_min_bytes`). Only plain TCP on both sides and a
//! `Content-Length` body: the length says how much to move, so no byte
//! after the body is ever taken from the backend.
//!
//! Each worker keeps one empty pipe for the next body; a body that ends any
//! other way than complete drops the pipe it used (bytes may still be in
//! it, or a cancelled splice may still be filling it). A kernel that
//! refuses splice (no `IORING_OP_SPLICE`, a socket type without it) is
//! noticed on the first splice of a body, before any byte moved: that body
//! goes through the buffered relay, and so does every later one on this
//! worker.

use std::cell::{Cell, RefCell};
use std::io;
use std::time::Duration;

use monoio::io::splice::{SpliceDestination, SpliceSource};
use monoio::net::{Pipe, TcpStream};

use super::h1::Relayed;
use crate::worker::deadline::timeout;
use crate::worker::{Stats, Worker};

/// At most this many bytes per splice round: a pipe's default capacity.
const ROUND: u32 = 64 * 1024;

/// A test hook: the first splice of each body fails with this errno
/// instead of running (`22` for `EINVAL`), as a kernel that refuses it.
const FAULT_ENV: &str = "LIMPET_TEST_SPLICE_ERRNO";

/// One worker's splice state: a spare pipe, and whether the kernel refused.
pub struct Splicer {
    spare: RefCell<Option<PipePair>>,
    refused: Cell<bool>,
    fault: Option<i32>,
}

impl std::fmt::Debug for Splicer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splicer")
            .field("refused", &self.refused.get())
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

struct PipePair {
    read: Pipe,
    write: Pipe,
}

impl Default for Splicer {
    fn default() -> Self {
        Splicer {
            spare: RefCell::new(None),
            refused: Cell::new(false),
            fault: std::env::var(FAULT_ENV)
                .ok()
                .and_then(|errno| errno.parse().ok()),
        }
    }
}

/// Whether `err` says the kernel does not do this (rather than that this
/// connection failed).
fn unsupported(err: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(err),
        Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP)
    )
}

impl Splicer {
    /// Whether a body of `left` more bytes should be spliced, given the
    /// configured minimum (0: never).
    pub fn wants(&self, left: u64, min: u64) -> bool {
        min > 0 && left >= min && !self.refused.get()
    }

    fn refuse(&self, worker: usize, what: &str, err: &io::Error) {
        if !self.refused.replace(true) {
            log::info!(
                "worker {worker}: the kernel refuses {what} ({err}); response bodies are relayed through buffers"
            );
        }
    }

    fn take_pipe(&self, worker: usize) -> Option<PipePair> {
        if let Some(pipe) = self.spare.borrow_mut().take() {
            return Some(pipe);
        }
        match monoio::net::unix::new_pipe() {
            Ok((read, write)) => Some(PipePair { read, write }),
            Err(err) => {
                if unsupported(&err) {
                    self.refuse(worker, "a pipe for splice", &err);
                } else {
                    log::debug!("worker {worker}: no pipe for splice ({err}); buffered relay");
                }
                None
            }
        }
    }

    /// An empty pipe back for the next body (one is kept).
    fn put_back(&self, pipe: PipePair) {
        let mut spare = self.spare.borrow_mut();
        if spare.is_none() {
            *spare = Some(pipe);
        }
    }
}

/// Relays the last `left` bytes of a `Content-Length` body from `backend`
/// to `client` through a pipe, each splice under the same deadline as the
/// buffered relay's read or write; adds what reaches the client to `sent`.
/// `None`: nothing was moved and the body should take the buffered relay
/// (no pipe, or the kernel refused the first splice).
pub async fn relay(
    worker: &Worker,
    backend: &mut TcpStream,
    client: &mut TcpStream,
    mut left: u64,
    limits: (Duration, Duration),
    sent: &mut u64,
) -> Option<Relayed> {
    let (client_limit, backend_limit) = limits;
    let splicer = &worker.splicer;
    let mut pipe = splicer.take_pipe(worker.id)?;
    let mut first = true;
    let mut moved: u64 = 0;
    // Whether the pipe is known empty when the relay ends.
    let (outcome, empty) = loop {
        if left == 0 {
            break (Relayed::Complete { extra: false }, true);
        }
        let round = u32::try_from(left).map_or(ROUND, |left| left.min(ROUND));
        let read = match splicer.fault.filter(|_| first) {
            Some(errno) => Ok(Err(io::Error::from_raw_os_error(errno))),
            None => {
                timeout(
                    backend_limit,
                    backend.splice_to_pipe(&mut pipe.write, round),
                )
                .await
            }
        };
        let n = match read {
            Err(_) => {
                Stats::bump(&worker.stats.backend_timeouts);
                // The cancelled splice may still move bytes into the pipe.
                break (Relayed::Broken, false);
            }
            Ok(Err(err)) if first && unsupported(&err) => {
                splicer.refuse(worker.id, "splice", &err);
                return None;
            }
            // The backend closed before the end of the body, or failed.
            Ok(Ok(0)) | Ok(Err(_)) => break (Relayed::Broken, true),
            Ok(Ok(n)) => n,
        };
        first = false;
        let mut in_pipe = n;
        while in_pipe > 0 {
            match timeout(
                client_limit,
                client.splice_from_pipe(&mut pipe.read, in_pipe),
            )
            .await
            {
                Ok(Ok(m)) if m > 0 => {
                    in_pipe -= m.min(in_pipe);
                    *sent += u64::from(m);
                    moved += u64::from(m);
                }
                // The client is gone or too slow; bytes stay in the pipe.
                _ => break,
            }
        }
        if in_pipe > 0 {
            break (Relayed::Broken, false);
        }
        left -= u64::from(n);
    };
    if empty {
        splicer.put_back(pipe);
    }
    let stats = &worker.stats;
    Stats::bump(&stats.spliced_bodies);
    stats
        .spliced_bytes
        .set(stats.spliced_bytes.get().wrapping_add(moved));
    Some(outcome)
}
