//! Coarse per-core deadlines for idle keep-alive connections.
//!
//! A monoio `Sleep` is 640 bytes, and an idle connection does nothing but
//! wait for its next request or its idle deadline: with thousands of idle
//! connections per core that timer would be most of their memory. Here a
//! waiter is three words: it parks its waker in the bucket of its deadline
//! tick, and one ticker task per worker wakes each bucket when it falls due.
//! Deadlines are late by at most one tick ([`TICK`]), which is fine for
//! idle timeouts of seconds; timeouts on requests in flight use exact timers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The resolution of idle deadlines.
pub const TICK: Duration = Duration::from_millis(50);

/// The deadlines of one worker.
pub struct IdleClock {
    epoch: Instant,
    /// The last tick the ticker has passed; waiters due at or before it
    /// have been woken.
    passed: Cell<u64>,
    buckets: RefCell<BTreeMap<u64, Vec<Waker>>>,
}

impl Default for IdleClock {
    fn default() -> Self {
        IdleClock {
            epoch: Instant::now(),
            passed: Cell::new(0),
            buckets: RefCell::new(BTreeMap::new()),
        }
    }
}

impl IdleClock {
    fn tick_of(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once `limit` has passed (rounded up to the next tick).
    pub fn after(&self, limit: Duration) -> IdleDeadline<'_> {
        let due = self.tick_of(Instant::now() + limit).saturating_add(1);
        IdleDeadline {
            clock: self,
            due,
            registered: false,
        }
    }

    /// Wakes every waiter due by now; the worker's ticker calls it every
    /// [`TICK`].
    pub fn advance(&self) {
        let now = self.tick_of(Instant::now());
        self.passed.set(now);
        let mut buckets = self.buckets.borrow_mut();
        let later = buckets.split_off(&(now + 1));
        let due = std::mem::replace(&mut *buckets, later);
        drop(buckets);
        for waker in due.into_values().flatten() {
            waker.wake();
        }
    }

    /// Waiters parked now (stale ones included until their tick passes).
    pub fn parked(&self) -> usize {
        self.buckets.borrow().values().map(Vec::len).sum()
    }
}

/// The future returned by [`IdleClock::after`].
pub struct IdleDeadline<'a> {
    clock: &'a IdleClock,
    due: u64,
    registered: bool,
}

impl Future for IdleDeadline<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.passed.get() >= self.due {
            return Poll::Ready(());
        }
        if !self.registered {
            // A waker left behind by a waiter that finished early only
            // causes one spurious wake-up when its tick passes.
            self.clock
                .buckets
                .borrow_mut()
                .entry(self.due)
                .or_default()
                .push(cx.waker().clone());
            self.registered = true;
        }
        Poll::Pending
    }
}

/// Advances `clock` every tick until `stop` says so.
pub async fn run_ticker(clock: &IdleClock, stop: impl Fn() -> bool) {
    while !stop() {
        monoio::time::sleep(TICK).await;
        clock.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fire_after_their_limit_and_not_before() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = std::rc::Rc::new(IdleClock::default());
            let ticker = clock.clone();
            let stop = std::rc::Rc::new(Cell::new(false));
            let stopped = stop.clone();
            monoio::spawn(async move { run_ticker(&ticker, || stopped.get()).await });
            let start = Instant::now();
            clock.after(Duration::from_millis(120)).await;
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(120), "{waited:?}");
            assert!(waited < Duration::from_millis(120) + 3 * TICK, "{waited:?}");
            assert_eq!(clock.parked(), 0);
            stop.set(true);
        });
        assert!(std::mem::size_of::<IdleDeadline<'_>>() <= 24);
    }
}
