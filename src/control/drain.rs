//! Watching drains (SPEC §6): once a second the control thread sums every
//! server's persistent requests (requests that reached it because their
//! session named it) and its requests in flight, open tunnels included,
//! over every worker's report. It keeps a minute of samples for the rate
//! and remembers when the count last rose, so that a draining server with
//! nothing in flight on any core and no persistent request for
//! [`DRAINED_AFTER`] reads `drained`: safe to remove.
//!
//! Workers only count in their own cells, as for every other counter; the
//! sums are made here, off the request path, and nothing here is sent back
//! to the workers (no worker routes by it).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::report::{ServerReport, WorkerReport};
use super::snapshot::{AdminState, Snapshot};

/// How often the servers are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How far back the persistent request rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// How long a draining server must see no persistent request (and have
/// nothing in flight) to read `drained`.
pub const DRAINED_AFTER: Duration = Duration::from_secs(10);

/// What the samples say of one server.
#[derive(Debug, Clone)]
pub struct Watched {
    /// (when, persistent requests summed over every worker), oldest first,
    /// no older than [`RATE_WINDOW`] before the newest.
    samples: VecDeque<(Instant, u64)>,
    /// When this server was first sampled: the quiet time of a server
    /// that has had no persistent request runs from then.
    first_seen: Instant,
    /// The sample at which the persistent requests last rose.
    last_arrival: Option<Instant>,
    /// Requests in flight and open tunnels on every core, at the last
    /// sample.
    in_flight: u64,
    /// Draining at the last sample.
    draining: bool,
}

impl Watched {
    fn new(now: Instant) -> Self {
        Watched {
            samples: VecDeque::new(),
            first_seen: now,
            last_arrival: None,
            in_flight: 0,
            draining: false,
        }
    }

    fn record(&mut self, now: Instant, hits: u64, in_flight: u64, draining: bool) {
        match self.samples.back() {
            Some(&(_, last)) if hits > last => self.last_arrival = Some(now),
            // The count started again (the server was removed and added
            // back by reloads): a new baseline, not an arrival.
            Some(&(_, last)) if hits < last => self.samples.clear(),
            _ => {}
        }
        self.samples.push_back((now, hits));
        while self
            .samples
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        self.in_flight = in_flight;
        self.draining = draining;
    }

    /// Persistent requests per second over the samples of the last minute
    /// (fewer just after start); 0 with fewer than two samples.
    pub fn per_second(&self) -> f64 {
        let (Some(&(first_at, first)), Some(&(last_at, last))) =
            (self.samples.front(), self.samples.back())
        else {
            return 0.0;
        };
        let span = last_at.duration_since(first_at).as_secs_f64();
        if span <= 0.0 {
            return 0.0;
        }
        last.saturating_sub(first) as f64 / span
    }

    /// The persistent requests counted at the last sample.
    pub fn hits(&self) -> Option<u64> {
        self.samples.back().map(|&(_, hits)| hits)
    }

    /// How long no persistent request has arrived, as of `now`.
    pub fn quiet_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_arrival.unwrap_or(self.first_seen))
    }

    /// Draining, nothing in flight on any core, and no persistent request
    /// for [`DRAINED_AFTER`], as of the last sample.
    pub fn drained(&self, now: Instant) -> bool {
        self.draining && self.in_flight == 0 && self.quiet_for(now) >= DRAINED_AFTER
    }
}

/// Every server's [`Watched`], by (group name, server name): a server
/// keeps it through reloads as it keeps its counters.
#[derive(Debug, Default)]
pub struct DrainWatch {
    servers: HashMap<(String, String), Watched>,
}

impl DrainWatch {
    /// Adds one sample of every server of `snapshot` from `reports` (every
    /// worker's, all routing with `snapshot`'s configuration); servers the
    /// configuration no longer has are forgotten.
    pub fn record(&mut self, snapshot: &Snapshot, reports: &[WorkerReport], now: Instant) {
        let mut was = std::mem::take(&mut self.servers);
        for (g, (group, view)) in snapshot
            .config
            .groups
            .iter()
            .zip(&snapshot.groups)
            .enumerate()
        {
            for (s, (server, state)) in group.servers.iter().zip(&view.servers).enumerate() {
                let key = (group.name.clone(), server.name.clone());
                let mut watched = was.remove(&key).unwrap_or_else(|| Watched::new(now));
                let total = ServerReport::total(reports, g, s);
                let in_flight = u64::from(total.in_flight) + u64::from(total.tunnels);
                let draining = state.admin == AdminState::Draining;
                watched.record(now, total.sticky_hits, in_flight, draining);
                self.servers.insert(key, watched);
            }
        }
    }

    /// What the samples say of `server` of `group`.
    pub fn find(&self, group: &str, server: &str) -> Option<&Watched> {
        self.servers.get(&(group.to_owned(), server.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn the_rate_covers_the_last_minute() {
        let t0 = Instant::now();
        let mut w = Watched::new(t0);
        assert_eq!(w.per_second(), 0.0);
        w.record(t0, 0, 0, false);
        assert_eq!(w.per_second(), 0.0, "one sample is no rate");
        for s in 1..=30 {
            w.record(at(t0, s), s * 4, 0, false);
        }
        assert_eq!(w.per_second(), 4.0);
        // A quiet minute and a half: the rate falls to nothing.
        for s in 31..=120 {
            w.record(at(t0, s), 120, 0, false);
        }
        assert_eq!(w.per_second(), 0.0);
        assert_eq!(w.hits(), Some(120));
    }

    #[test]
    fn drained_needs_a_drain_nothing_in_flight_and_ten_quiet_seconds() {
        let t0 = Instant::now();
        let mut w = Watched::new(t0);
        w.record(t0, 5, 0, true);
        w.record(at(t0, 1), 6, 0, true);
        w.record(at(t0, 10), 6, 0, true);
        assert!(
            !w.drained(at(t0, 10)),
            "9 s since the last persistent request"
        );
        w.record(at(t0, 11), 6, 1, true);
        assert!(!w.drained(at(t0, 11)), "a request or tunnel in flight");
        w.record(at(t0, 12), 6, 0, true);
        assert!(w.drained(at(t0, 12)));
        w.record(at(t0, 13), 6, 0, false);
        assert!(!w.drained(at(t0, 13)), "enabled again");
        w.record(at(t0, 14), 7, 0, true);
        assert!(!w.drained(at(t0, 20)));
        assert!(w.drained(at(t0, 24)));
    }

    #[test]
    fn a_count_that_starts_again_is_no_arrival() {
        let t0 = Instant::now();
        let mut w = Watched::new(t0);
        w.record(t0, 50, 0, true);
        w.record(at(t0, 11), 3, 0, true);
        assert!(w.drained(at(t0, 11)));
        assert_eq!(w.per_second(), 0.0);
    }
}
