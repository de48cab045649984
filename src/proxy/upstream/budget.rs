//! The retry budget of one core (SPEC §7): retries in the last 10 seconds
//! may not exceed a share of the requests seen in that window plus a floor
//! of 10 per second, so that a fleet in trouble is not hit twice as hard.
//! A request over budget gets its error instead of a retry.

use crate::worker::Tick;
use std::cell::RefCell;

/// The window, in one-second slots.
const WINDOW_SECONDS: usize = 10;
/// Retries a quiet core may always make, per second of the window.
const FLOOR_PER_SECOND: u64 = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The second (since the budget's start) these counts belong to.
    second: u64,
    requests: u64,
    retries: u64,
}

/// Requests and retries per second over the last [`WINDOW_SECONDS`].
#[derive(Debug)]
pub struct RetryBudget {
    start: Tick,
    slots: RefCell<[Slot; WINDOW_SECONDS]>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            start: Tick::read(),
            slots: RefCell::new([Slot::default(); WINDOW_SECONDS]),
        }
    }
}

impl RetryBudget {
    fn second(&self, now: Tick) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    /// The current second's slot, emptied if it held an older second.
    fn slot(slots: &mut [Slot; WINDOW_SECONDS], second: u64) -> &mut Slot {
        let slot = &mut slots[(second % WINDOW_SECONDS as u64) as usize];
        if slot.second != second {
            *slot = Slot {
                second,
                ..Slot::default()
            };
        }
        slot
    }

    /// Counts a request forwarded at `now`.
    pub fn request(&self, now: Tick) {
        let second = self.second(now);
        Self::slot(&mut self.slots.borrow_mut(), second).requests += 1;
    }

    /// Whether a retry at `now` fits the budget of `permille` thousandths
    /// of the window's requests; counts it when it does.
    pub fn try_retry(&self, now: Tick, permille: u32) -> bool {
        let second = self.second(now);
        let mut slots = self.slots.borrow_mut();
        let oldest = second.saturating_sub(WINDOW_SECONDS as u64 - 1);
        let (requests, retries) = slots
            .iter()
            .filter(|s| s.second >= oldest && s.second <= second)
            .fold((0, 0), |(q, r), s| (q + s.requests, r + s.retries));
        let allowed =
            requests * u64::from(permille) / 1000 + FLOOR_PER_SECOND * WINDOW_SECONDS as u64;
        if retries >= allowed {
            return false;
        }
        Self::slot(&mut slots, second).retries += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_quiet_core_may_retry_up_to_the_floor() {
        let budget = RetryBudget::default();
        let now = budget.start;
        let granted = (0..500).filter(|_| budget.try_retry(now, 200)).count();
        assert_eq!(granted, 100, "10 per second over 10 seconds");
    }

    #[test]
    fn a_busy_core_may_retry_a_share_of_its_requests_more() {
        let budget = RetryBudget::default();
        let now = budget.start + Duration::from_millis(1500);
        for _ in 0..1000 {
            budget.request(now);
        }
        let granted = (0..1000).filter(|_| budget.try_retry(now, 200)).count();
        assert_eq!(granted, 200 + 100);
    }

    #[test]
    fn the_window_moves_on() {
        let budget = RetryBudget::default();
        let start = budget.start;
        assert_eq!((0..200).filter(|_| budget.try_retry(start, 0)).count(), 100);
        // Nine seconds later the old retries still count.
        assert!(!budget.try_retry(start + Duration::from_secs(9), 0));
        // Ten seconds later they have left the window.
        let later = start + Duration::from_secs(10);
        assert_eq!((0..200).filter(|_| budget.try_retry(later, 0)).count(), 100);
    }
}
