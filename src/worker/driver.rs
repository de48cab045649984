//! Building a worker's event loop: io_uring set up for a single issuer with
//! deferred task work, else plain io_uring, else monoio's epoll driver.
//!
//! With default flags the kernel runs io_uring completion work in interrupt
//! context on whatever process is on the CPU, which cost 25–30 % more CPU per
//! request here (BENCH.md). `SINGLE_ISSUER` + `DEFER_TASKRUN` makes the kernel
//! run that work only when this thread enters the ring. The ring must be
//! created on the thread that uses it, so this runs on the worker thread.

use std::fmt;
use std::future::Future;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, Runtime, RuntimeBuilder};

/// Which driver a worker ended up with; logged at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// io_uring with `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`.
    UringDeferred,
    /// io_uring with default setup flags (kernel older than 6.1).
    Uring,
    /// epoll (io_uring refused by the kernel or by a seccomp policy).
    Legacy,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::UringDeferred => "io_uring (single issuer, deferred task run)",
            DriverKind::Uring => "io_uring (default flags)",
            DriverKind::Legacy => "epoll (legacy driver)",
        })
    }
}

/// Which drivers a worker may try, from `workers.driver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring with the best flags the kernel takes, else epoll.
    Auto,
    /// Only epoll: for tools that cannot follow io_uring (valgrind).
    Legacy,
}

/// A worker's event loop, whichever driver it runs on.
pub enum WorkerRuntime {
    Uring(Runtime<TimeDriver<IoUringDriver>>),
    Legacy(Runtime<TimeDriver<LegacyDriver>>),
}

impl WorkerRuntime {
    /// Builds the best event loop the kernel allows, trying in order.
    pub fn build(choice: DriverChoice, entries: u32) -> std::io::Result<(Self, DriverKind)> {
        if choice == DriverChoice::Auto {
            let mut deferred = io_uring::IoUring::builder();
            deferred.setup_single_issuer().setup_defer_taskrun();
            let attempt = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(entries)
                .uring_builder(deferred)
                .enable_timer()
                .build();
            match attempt {
                Ok(rt) => return Ok((WorkerRuntime::Uring(rt), DriverKind::UringDeferred)),
                Err(err) => log::debug!("io_uring with deferred task run refused: {err}"),
            }
            let attempt = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(entries)
                .enable_timer()
                .build();
            match attempt {
                Ok(rt) => return Ok((WorkerRuntime::Uring(rt), DriverKind::Uring)),
                Err(err) => log::warn!("io_uring refused ({err}); falling back to epoll"),
            }
        }
        let rt = RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?;
        Ok((WorkerRuntime::Legacy(rt), DriverKind::Legacy))
    }

    /// Runs `future` to completion on this thread.
    pub fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        match self {
            WorkerRuntime::Uring(rt) => rt.block_on(future),
            WorkerRuntime::Legacy(rt) => rt.block_on(future),
        }
    }
}
