//! The time as one wake-up of a connection sees it.
//!
//! Reading the monotonic clock costs a vDSO call of some tens of
//! instructions, and one wake-up of a connection task reads it for each
//! deadline it arms, for the backend pool's idle checks and for the
//! request's timestamps. Within one poll of a connection task nothing
//! waits, so the first reading is kept and reused until that poll returns
//! ([`PollScope`], entered by the connection's wrapper future). Outside
//! such a poll — other tasks, other threads — every call reads the clock.
//!
//! A reused reading is earlier than the true time by the work done since in
//! that poll (microseconds), far inside the deadline wheel's 10 ms tick.
//!
//! A reading is a [`Tick`]: `CLOCK_MONOTONIC` (the clock `Instant` reads)
//! in nanoseconds, one integer, so the request's timestamps, the deadline
//! wheel and the pool's idle checks subtract with one instruction where
//! `Instant`'s subtraction is an out-of-line call of some thirty.

use std::cell::Cell;
use std::ops::Add;
use std::time::Duration;

/// A reading of the monotonic clock, in nanoseconds since an unspecified
/// origin (the boot): comparable and subtractable within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tick(u64);

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl Tick {
    /// Reads the clock (the vDSO, no system call).
    #[inline]
    pub fn read() -> Tick {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        Tick(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos))
    }

    /// Nanoseconds from `earlier` to this reading; 0 if `earlier` is later.
    #[inline]
    pub fn nanos_since(self, earlier: Tick) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The time from `earlier` to this reading; zero if `earlier` is later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: Tick) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }

    /// The time since this reading, by a fresh one.
    pub fn elapsed(self) -> Duration {
        Tick::read().saturating_duration_since(self)
    }
}

impl Add<Duration> for Tick {
    type Output = Tick;

    /// Saturates rather than overflows (a limit of `u64::MAX` seconds).
    #[inline]
    fn add(self, limit: Duration) -> Tick {
        let nanos = limit
            .as_secs()
            .saturating_mul(NANOS_PER_SEC)
            .saturating_add(u64::from(limit.subsec_nanos()));
        Tick(self.0.saturating_add(nanos))
    }
}

struct Clock {
    in_poll: Cell<bool>,
    cached: Cell<Option<Tick>>,
}

thread_local! {
    static CLOCK: Clock = const {
        Clock {
            in_poll: Cell::new(false),
            cached: Cell::new(None),
        }
    };
}

/// Now: the reading of the current connection poll, if one was taken.
#[inline]
pub fn now() -> Tick {
    CLOCK.with(|clock| {
        if !clock.in_poll.get() {
            return Tick::read();
        }
        match clock.cached.get() {
            Some(now) => now,
            None => {
                let now = Tick::read();
                clock.cached.set(Some(now));
                now
            }
        }
    })
}

/// While alive, [`now`] on this thread reads the clock once and reuses it.
/// Restores the previous state when dropped (scopes may nest).
pub struct PollScope {
    outer: (bool, Option<Tick>),
}

impl PollScope {
    #[inline]
    pub fn enter() -> PollScope {
        CLOCK.with(|clock| {
            let outer = (clock.in_poll.replace(true), clock.cached.replace(None));
            PollScope { outer }
        })
    }
}

impl Drop for PollScope {
    #[inline]
    fn drop(&mut self) {
        let (in_poll, cached) = self.outer;
        CLOCK.with(|clock| {
            clock.in_poll.set(in_poll);
            clock.cached.set(cached);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_reading_per_scope_and_fresh_readings_outside() {
        let outside = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            now() > outside,
            "outside a scope every call reads the clock"
        );
        {
            let _scope = PollScope::enter();
            let first = now();
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(now(), first, "inside a scope the first reading is kept");
            {
                let _inner = PollScope::enter();
                let inner = now();
                assert!(inner > first, "a nested scope takes its own reading");
            }
            assert_eq!(now(), first, "the outer scope's reading is back");
        }
        let after = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > after);
    }
}
