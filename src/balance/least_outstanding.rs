//! `LeastOutstanding`: the default algorithm (SPEC §2). The usable server
//! with the fewest requests in flight from this core wins; servers tied on
//! that count are ordered by smooth weighted round robin, so an idle group
//! is spread by weight instead of piling onto the first server.
//!
//! Two passes over the group (find the minimum, then one SWRR step over the
//! servers at the minimum) and no allocation. The in-flight counts are this
//! core's own: nothing is shared between cores, so each core balances its
//! own load and they agree only statistically, which is the point.

use std::num::NonZeroU32;

use super::round_robin::{idx, RoundRobin};
use super::{Load, ServerIdx};

/// Least-outstanding state for one group on one core; index = [`ServerIdx`].
#[derive(Clone, Debug)]
pub struct LeastOutstanding {
    ties: RoundRobin,
}

impl LeastOutstanding {
    /// Builds the state for a group; `weights[i]` is the weight of `ServerIdx(i)`.
    pub fn new(weights: &[NonZeroU32]) -> Self {
        Self {
            ties: RoundRobin::new(weights),
        }
    }

    /// Takes over the tie-breaking position of `old`; see
    /// [`RoundRobin::carry_from`].
    pub fn carry_from(
        &mut self,
        old: &LeastOutstanding,
        old_index: impl Fn(ServerIdx) -> Option<ServerIdx>,
    ) {
        self.ties.carry_from(&old.ties, old_index);
    }

    /// The usable server with the fewest in-flight requests in
    /// `outstanding` (index = [`ServerIdx`]; a missing entry counts as 0).
    pub fn pick(
        &mut self,
        usable: impl Fn(ServerIdx) -> bool,
        outstanding: &(impl Load + ?Sized),
    ) -> Option<ServerIdx> {
        let min = (0..self.ties.len())
            .filter(|&i| usable(idx(i)))
            .map(|i| outstanding.in_flight(idx(i)))
            .min()?;
        self.ties
            .pick_among(|s| outstanding.in_flight(s) == min && usable(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(ws: &[u32]) -> Vec<NonZeroU32> {
        ws.iter().map(|&w| NonZeroU32::new(w).unwrap()).collect()
    }

    #[test]
    fn fewest_in_flight_wins_whatever_the_weight() {
        let mut lo = LeastOutstanding::new(&weights(&[10, 1, 1]));
        assert_eq!(lo.pick(|_| true, &[3, 2, 1]), Some(ServerIdx(2)));
        assert_eq!(lo.pick(|_| true, &[0, 2, 1]), Some(ServerIdx(0)));
    }

    #[test]
    fn ties_follow_smooth_weighted_round_robin() {
        let mut lo = LeastOutstanding::new(&weights(&[5, 1, 1]));
        let seq: String = (0..7)
            .map(|_| char::from(b'a' + lo.pick(|_| true, &[0, 0, 0]).unwrap().0 as u8))
            .collect();
        assert_eq!(seq, "aabacaa");
    }

    #[test]
    fn only_tied_servers_advance_their_counters() {
        let mut lo = LeastOutstanding::new(&weights(&[1, 1, 1]));
        // `a` is busier: `b` and `c` share the ties; `a` keeps a zero counter.
        assert_eq!(lo.pick(|_| true, &[1, 0, 0]), Some(ServerIdx(1)));
        assert_eq!(lo.pick(|_| true, &[1, 0, 0]), Some(ServerIdx(2)));
        assert_eq!(lo.pick(|_| true, &[1, 0, 0]), Some(ServerIdx(1)));
        // All tie now: `a` 0 + 1, `b` -1 + 1, `c` 1 + 1: `c` wins.
        assert_eq!(lo.pick(|_| true, &[0, 0, 0]), Some(ServerIdx(2)));
    }

    #[test]
    fn skips_unusable_even_when_idlest() {
        let mut lo = LeastOutstanding::new(&weights(&[1, 1, 1]));
        assert_eq!(lo.pick(|s| s.0 != 2, &[5, 4, 0]), Some(ServerIdx(1)));
    }

    #[test]
    fn all_unusable_or_empty_is_none() {
        let mut lo = LeastOutstanding::new(&weights(&[1, 2]));
        assert_eq!(lo.pick(|_| false, &[0, 0]), None);
        assert_eq!(LeastOutstanding::new(&[]).pick(|_| true, &[]), None);
    }

    #[test]
    fn short_outstanding_slice_reads_as_idle() {
        let mut lo = LeastOutstanding::new(&weights(&[1, 1, 1]));
        assert_eq!(lo.pick(|_| true, &[2, 1]), Some(ServerIdx(2)));
    }
}
