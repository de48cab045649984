//! `RoundRobin`: nginx's smooth weighted round robin (SWRR) over the usable
//! servers of one group, owned by one core. It is also the tie-breaker of
//! least outstanding, through [`RoundRobin::pick_among`].
//!
//! Each pick adds every candidate's weight to its `current`, takes the
//! largest `current` (the first one on equal values, so sequences are
//! reproducible) and subtracts the candidates' total weight from it. Over
//! any window a server gets its weight's share and picks are interleaved
//! (5:1:1 gives `a a b a c a a`, not `a a a a a b c`). A pick allocates
//! nothing and never touches a server that is not a candidate, so a server
//! that comes back keeps its place. It must never panic on a short or empty
//! server list: no candidate means `None`.

use std::num::NonZeroU32;

use super::ServerIdx;

/// Smooth weighted round robin state; index = [`ServerIdx`].
#[derive(Clone, Debug)]
pub struct RoundRobin {
    /// Configured weights, widened once so the sums below cannot overflow.
    weights: Box<[i64]>,
    /// SWRR counters. They stay within ±(sum of weights), far from `i64`
    /// limits even for 2^20 servers of weight `u32::MAX`.
    current: Box<[i64]>,
}

impl RoundRobin {
    /// Builds the state for a group; `weights[i]` is the weight of `ServerIdx(i)`.
    pub fn new(weights: &[NonZeroU32]) -> Self {
        Self {
            weights: weights.iter().map(|w| i64::from(w.get())).collect(),
            current: vec![0; weights.len()].into_boxed_slice(),
        }
    }

    /// Number of servers in the group.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// True when the group has no server.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Takes over the position of `old`, the same group's state before a
    /// change (a reload, a weight set over the API): each server keeps its
    /// counter, found by `old_index` (its index in `old`, `None` for a new
    /// server, which starts at zero). Without this a change would restart
    /// the rotation and favour the first servers.
    pub fn carry_from(
        &mut self,
        old: &RoundRobin,
        old_index: impl Fn(ServerIdx) -> Option<ServerIdx>,
    ) {
        for (i, current) in self.current.iter_mut().enumerate() {
            if let Some(before) = old_index(idx(i)).and_then(|o| old.current.get(o.get())) {
                *current = *before;
            }
        }
    }

    /// Next usable server in smooth weighted round robin order.
    pub fn pick(&mut self, usable: impl Fn(ServerIdx) -> bool) -> Option<ServerIdx> {
        self.pick_among(usable)
    }

    /// One SWRR step over the servers for which `candidate` holds.
    pub(crate) fn pick_among(
        &mut self,
        candidate: impl Fn(ServerIdx) -> bool,
    ) -> Option<ServerIdx> {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for (i, (current, weight)) in self.current.iter_mut().zip(self.weights.iter()).enumerate() {
            if !candidate(idx(i)) {
                continue;
            }
            *current += weight;
            total += weight;
            // Strictly greater: the first of equal counters wins, as in nginx.
            if best.is_none_or(|(_, c)| *current > c) {
                best = Some((i, *current));
            }
        }
        let (i, _) = best?;
        if let Some(current) = self.current.get_mut(i) {
            *current -= total;
        }
        Some(idx(i))
    }
}

/// A position in a server list as a [`ServerIdx`]. Groups are far smaller
/// than `u32::MAX` (the config refuses more); saturating keeps this total.
pub(super) fn idx(i: usize) -> ServerIdx {
    ServerIdx(u32::try_from(i).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(ws: &[u32]) -> Vec<NonZeroU32> {
        ws.iter().map(|&w| NonZeroU32::new(w).unwrap()).collect()
    }

    fn names(seq: &[Option<ServerIdx>]) -> String {
        seq.iter()
            .map(|s| match s {
                Some(s) => char::from(b'a' + s.0 as u8),
                None => '-',
            })
            .collect()
    }

    fn run(rr: &mut RoundRobin, n: usize, usable: impl Fn(ServerIdx) -> bool + Copy) -> String {
        let seq: Vec<_> = (0..n).map(|_| rr.pick(usable)).collect();
        names(&seq)
    }

    #[test]
    fn classic_five_one_one() {
        let mut rr = RoundRobin::new(&weights(&[5, 1, 1]));
        assert_eq!(run(&mut rr, 14, |_| true), "aabacaaaabacaa");
    }

    #[test]
    fn equal_weights_rotate_in_list_order() {
        let mut rr = RoundRobin::new(&weights(&[1, 1, 1]));
        assert_eq!(run(&mut rr, 6, |_| true), "abcabc");
    }

    #[test]
    fn skips_unusable_servers() {
        let mut rr = RoundRobin::new(&weights(&[5, 1, 1]));
        // `a` is down: `b` and `c` alternate, their counters untouched by `a`.
        assert_eq!(run(&mut rr, 4, |s| s.0 != 0), "bcbc");
        // `a` comes back with a counter of zero and takes its share again.
        assert_eq!(run(&mut rr, 7, |_| true), "aabacaa");
    }

    #[test]
    fn all_unusable_is_none() {
        let mut rr = RoundRobin::new(&weights(&[2, 3]));
        assert_eq!(rr.pick(|_| false), None);
        // A failed pick leaves no trace.
        assert_eq!(run(&mut rr, 5, |_| true), "babab");
    }

    #[test]
    fn empty_group_is_none() {
        let mut rr = RoundRobin::new(&[]);
        assert!(rr.is_empty());
        assert_eq!(rr.pick(|_| true), None);
    }

    #[test]
    fn shares_follow_weights_over_a_cycle() {
        let ws = [3, 7, 1, 9];
        let mut rr = RoundRobin::new(&weights(&ws));
        let mut counts = [0u32; 4];
        for _ in 0..20 {
            counts[rr.pick(|_| true).unwrap().get()] += 1;
        }
        assert_eq!(counts, ws);
    }

    #[test]
    fn a_weight_change_keeps_the_rotation() {
        let mut rr = RoundRobin::new(&weights(&[1, 1, 1]));
        assert_eq!(run(&mut rr, 2, |_| true), "ab");
        // b's weight goes from 1 to 2: c is still next (a fresh state would
        // give b).
        let mut changed = RoundRobin::new(&weights(&[1, 2, 1]));
        changed.carry_from(&rr, Some);
        assert_eq!(run(&mut changed, 1, |_| true), "c");
        let mut fresh = RoundRobin::new(&weights(&[1, 2, 1]));
        assert_eq!(run(&mut fresh, 1, |_| true), "b");
    }

    #[test]
    fn carried_counters_follow_the_server_not_the_index() {
        let mut rr = RoundRobin::new(&weights(&[1, 1, 1]));
        assert_eq!(run(&mut rr, 2, |_| true), "ab");
        // a is removed: the new list is [b, c]; c keeps its lead.
        let mut changed = RoundRobin::new(&weights(&[1, 1]));
        changed.carry_from(&rr, |s| Some(ServerIdx(s.0 + 1)));
        assert_eq!(run(&mut changed, 1, |_| true), "b", "index 1 is c");
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let mut rr = RoundRobin::new(&weights(&[u32::MAX, u32::MAX, 1]));
        for _ in 0..1000 {
            assert!(rr.pick(|_| true).is_some());
        }
    }
}
