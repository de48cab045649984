//! What the control thread knows of one server's health, and the rules that
//! change it: consecutive-result thresholds for active checks (so a
//! flapping server does not bounce sessions), a sliding window of passive
//! failures for ejection, and the drain clock.

use std::collections::VecDeque;
use std::time::Instant;

use super::snapshot::{AdminState, Health};
use crate::config;

/// One server's health history.
#[derive(Debug)]
pub struct Track {
    pub health: Health,
    pub admin: AdminState,
    /// Consecutive passing checks while down, failing checks while up.
    streak: u32,
    /// When an ejection ends.
    ejected_until: Option<Instant>,
    /// Recent passive failures, oldest first, within the window.
    failures: VecDeque<Instant>,
    /// When draining began.
    drain_since: Option<Instant>,
    /// This drain's timeout when the drain call gave one (`?timeout=`),
    /// in place of the group's `drain_timeout`.
    drain_timeout: Option<std::time::Duration>,
}

impl Track {
    pub fn new(admin: AdminState) -> Self {
        Track {
            health: Health::Up,
            admin,
            streak: 0,
            ejected_until: None,
            failures: VecDeque::new(),
            drain_since: (admin == AdminState::Draining).then(Instant::now),
            drain_timeout: None,
        }
    }

    /// Records an active check; returns the new health if it changed.
    /// An ejected server keeps its ejection; checks resume after it.
    pub fn check(&mut self, passed: bool, rules: &config::ActiveCheck) -> Option<Health> {
        let leaving = match self.health {
            Health::Up => !passed,
            Health::Down => passed,
            Health::Ejected => return None,
        };
        if !leaving {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let threshold = match self.health {
            Health::Up => rules.unhealthy_threshold,
            _ => rules.healthy_threshold,
        };
        if self.streak < threshold {
            return None;
        }
        self.streak = 0;
        self.health = if passed { Health::Up } else { Health::Down };
        Some(self.health)
    }

    /// Records a failure of real traffic; returns true when it ejects.
    pub fn passive_failure(&mut self, now: Instant, rules: &config::Passive) -> bool {
        if rules.max_fails == 0 || self.health != Health::Up {
            return false;
        }
        while self
            .failures
            .front()
            .is_some_and(|&at| now.duration_since(at) > rules.fail_window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() < rules.max_fails as usize {
            return false;
        }
        self.failures.clear();
        self.health = Health::Ejected;
        self.ejected_until = Some(now + rules.eject_time);
        true
    }

    /// When the current ejection ends.
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }

    /// Ends an ejection whose time is up; returns true if it did.
    pub fn expire(&mut self, now: Instant) -> bool {
        match self.ejected_until {
            Some(until) if now >= until => {
                self.ejected_until = None;
                self.health = Health::Up;
                self.streak = 0;
                true
            }
            _ => false,
        }
    }

    /// Sets the admin state; `drain_timeout` is a drain's own timeout
    /// (ignored for other states). A drain of a server already draining
    /// keeps its start and takes the new timeout.
    pub fn set_admin(
        &mut self,
        admin: AdminState,
        drain_timeout: Option<std::time::Duration>,
        now: Instant,
    ) {
        if admin == AdminState::Draining && self.admin != AdminState::Draining {
            self.drain_since = Some(now);
        } else if admin != AdminState::Draining {
            self.drain_since = None;
        }
        self.drain_timeout = drain_timeout.filter(|_| admin == AdminState::Draining);
        self.admin = admin;
    }

    /// When draining began, while draining.
    pub fn drain_since(&self) -> Option<Instant> {
        self.drain_since
    }

    /// The timeout of the current drain: its own, else `default` (the
    /// group's `drain_timeout`).
    pub fn drain_timeout(
        &self,
        default: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        self.drain_timeout.or(default)
    }

    /// Draining for longer than its timeout (`default` unless the drain
    /// call gave its own).
    pub fn drain_expired(&self, default: Option<std::time::Duration>, now: Instant) -> bool {
        match (self.drain_since, self.drain_timeout(default)) {
            (Some(since), Some(timeout)) => now.duration_since(since) >= timeout,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rules() -> config::ActiveCheck {
        config::ActiveCheck {
            path: "/".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expect: vec![(200, 399)],
            host: None,
        }
    }

    #[test]
    fn health_changes_only_after_consecutive_results() {
        let mut track = Track::new(AdminState::Enabled);
        let rules = rules();
        assert_eq!(track.check(false, &rules), None);
        assert_eq!(track.check(false, &rules), None);
        assert_eq!(track.check(true, &rules), None, "a pass resets the streak");
        assert_eq!(track.check(false, &rules), None);
        assert_eq!(track.check(false, &rules), None);
        assert_eq!(track.check(false, &rules), Some(Health::Down));
        assert_eq!(track.check(true, &rules), None);
        assert_eq!(track.check(true, &rules), Some(Health::Up));
    }

    #[test]
    fn a_flapping_server_never_changes_state() {
        let mut track = Track::new(AdminState::Enabled);
        let rules = rules();
        for i in 0..100 {
            assert_eq!(track.check(i % 2 == 0, &rules), None);
        }
        assert_eq!(track.health, Health::Up);
    }

    #[test]
    fn passive_failures_within_the_window_eject_for_a_while() {
        let rules = config::Passive {
            max_fails: 3,
            fail_window: Duration::from_secs(10),
            eject_time: Duration::from_secs(30),
        };
        let mut track = Track::new(AdminState::Enabled);
        let t0 = Instant::now();
        assert!(!track.passive_failure(t0, &rules));
        assert!(
            !track.passive_failure(t0 + Duration::from_secs(11), &rules),
            "the first fell out of the window"
        );
        assert!(!track.passive_failure(t0 + Duration::from_secs(12), &rules));
        assert!(track.passive_failure(t0 + Duration::from_secs(13), &rules));
        assert_eq!(track.health, Health::Ejected);
        assert!(!track.expire(t0 + Duration::from_secs(40)));
        assert!(track.expire(t0 + Duration::from_secs(43)));
        assert_eq!(track.health, Health::Up);
    }

    #[test]
    fn drain_expires_after_its_timeout() {
        let mut track = Track::new(AdminState::Enabled);
        let t0 = Instant::now();
        track.set_admin(AdminState::Draining, None, t0);
        let timeout = Some(Duration::from_secs(5));
        assert!(!track.drain_expired(timeout, t0 + Duration::from_secs(4)));
        assert!(track.drain_expired(timeout, t0 + Duration::from_secs(5)));
        assert!(!track.drain_expired(None, t0 + Duration::from_secs(500)));
        track.set_admin(AdminState::Enabled, None, t0);
        assert!(!track.drain_expired(timeout, t0 + Duration::from_secs(50)));
    }

    #[test]
    fn a_drain_call_timeout_overrides_the_groups() {
        let mut track = Track::new(AdminState::Enabled);
        let t0 = Instant::now();
        let group = Some(Duration::from_secs(300));
        track.set_admin(AdminState::Draining, Some(Duration::from_secs(2)), t0);
        assert!(!track.drain_expired(group, t0 + Duration::from_secs(1)));
        assert!(track.drain_expired(group, t0 + Duration::from_secs(2)));
        assert!(track.drain_expired(None, t0 + Duration::from_secs(2)));
        // Draining again without one: the group's again, from the same start.
        track.set_admin(AdminState::Draining, None, t0 + Duration::from_secs(3));
        assert_eq!(track.drain_since(), Some(t0));
        assert!(!track.drain_expired(group, t0 + Duration::from_secs(4)));
        // Enabled and drained again: the old override is gone.
        track.set_admin(AdminState::Enabled, Some(Duration::from_secs(1)), t0);
        assert_eq!(track.drain_timeout(group), group);
    }
}
