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

use std::cell::Cell;
use std::time::Instant;

struct Clock {
    in_poll: Cell<bool>,
    cached: Cell<Option<Instant>>,
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
pub fn now() -> Instant {
    CLOCK.with(|clock| {
        if !clock.in_poll.get() {
            return Instant::now();
        }
        match clock.cached.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                clock.cached.set(Some(now));
                now
            }
        }
    })
}

/// While alive, [`now`] on this thread reads the clock once and reuses it.
/// Restores the previous state when dropped (scopes may nest).
pub struct PollScope {
    outer: (bool, Option<Instant>),
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
