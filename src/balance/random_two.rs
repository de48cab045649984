//! `RandomTwo`: weighted power of two choices for one group on one core.
//! Two distinct usable servers are drawn with probability proportional to
//! weight and the one with fewer in-flight requests per unit of weight wins.
//! It avoids the herd that pure least-outstanding can cause when many
//! cores see the same stale minimum, at the cost of a little randomness.
//!
//! The generator is wyrand, seeded once at build (e.g. from the core
//! number) so runs and tests are reproducible; it decides nothing that other
//! cores or nodes must agree on. Draws first try the whole group by binary
//! search over prefix sums and reject unusable servers; after a few misses
//! (most servers down) they fall back to an exact walk over the usable ones.
//! Both are exactly proportional to weight among the candidates. Nothing is
//! allocated per pick.

use std::num::NonZeroU32;

use super::round_robin::idx;
use super::{Load, ServerIdx};

/// Draws tried against the whole group before walking only the candidates.
/// With half the weight unusable, 4 misses in a row happen 1 time in 16.
const REJECTION_TRIES: usize = 4;

/// Power-of-two-choices state; index = [`ServerIdx`].
#[derive(Clone, Debug)]
pub struct RandomTwo {
    weights: Box<[u64]>,
    /// `prefix[i]` = sum of `weights[..=i]`, for binary-search sampling.
    prefix: Box<[u64]>,
    rng: WyRand,
}

impl RandomTwo {
    /// Builds the state for a group; `seed` should differ per core so cores
    /// do not draw in lockstep.
    pub fn new(weights: &[NonZeroU32], seed: u64) -> Self {
        let weights: Box<[u64]> = weights.iter().map(|w| u64::from(w.get())).collect();
        let prefix = weights
            .iter()
            .scan(0u64, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        Self {
            weights,
            prefix,
            rng: WyRand::new(seed),
        }
    }

    /// Goes on drawing where `old` left off (the generator is this core's;
    /// restarting it would repeat the draws made since start).
    pub fn carry_from(&mut self, old: &RandomTwo) {
        self.rng = old.rng.clone();
    }

    /// Two weighted draws among usable servers; the less loaded per unit of
    /// weight wins (ties keep the first draw). `outstanding` is indexed by
    /// [`ServerIdx`]; a missing entry counts as 0.
    pub fn pick(
        &mut self,
        usable: impl Fn(ServerIdx) -> bool,
        outstanding: &(impl Load + ?Sized),
    ) -> Option<ServerIdx> {
        let first = self.draw(&usable)?;
        let Some(second) = self.draw(|s| s != first && usable(s)) else {
            return Some(first);
        };
        // o1 / w1 <= o2 / w2 without division; u32 * u32 fits in u64.
        let load = |s: ServerIdx| u64::from(outstanding.in_flight(s));
        let lhs = load(first) * self.weight(second);
        let rhs = load(second) * self.weight(first);
        Some(if lhs <= rhs { first } else { second })
    }

    fn weight(&self, s: ServerIdx) -> u64 {
        self.weights.get(s.get()).copied().unwrap_or(0)
    }

    /// One server drawn with probability ∝ weight among `candidate`s.
    fn draw(&mut self, candidate: impl Fn(ServerIdx) -> bool) -> Option<ServerIdx> {
        let total = self.prefix.last().copied()?;
        for _ in 0..REJECTION_TRIES {
            let r = self.rng.below(total);
            let i = self.prefix.partition_point(|&sum| sum <= r);
            if i < self.weights.len() && candidate(idx(i)) {
                return Some(idx(i));
            }
        }
        let usable_total: u64 = (0..self.weights.len())
            .filter(|&i| candidate(idx(i)))
            .map(|i| self.weights.get(i).copied().unwrap_or(0))
            .sum();
        if usable_total == 0 {
            return None;
        }
        let mut r = self.rng.below(usable_total);
        for (i, &w) in self.weights.iter().enumerate() {
            if !candidate(idx(i)) {
                continue;
            }
            if r < w {
                return Some(idx(i));
            }
            r -= w;
        }
        None
    }
}

/// wyrand (Wang Yi): 64-bit state, one multiply per draw, passes
/// BigCrush/PractRand; plenty for choosing between servers.
#[derive(Clone, Debug)]
struct WyRand {
    state: u64,
}

impl WyRand {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        // Truncations intended: wyrand folds the 128-bit product's halves.
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias, n / 2^64, is
    /// far below anything a balancer could notice). `n` must be non-zero.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(ws: &[u32]) -> Vec<NonZeroU32> {
        ws.iter().map(|&w| NonZeroU32::new(w).unwrap()).collect()
    }

    #[test]
    fn same_seed_same_choices() {
        let ws = weights(&[1, 2, 3, 4]);
        let mut a = RandomTwo::new(&ws, 7);
        let mut b = RandomTwo::new(&ws, 7);
        let load = [3, 1, 4, 1];
        for _ in 0..1000 {
            assert_eq!(a.pick(|_| true, &load), b.pick(|_| true, &load));
        }
    }

    #[test]
    fn idle_group_is_spread_by_weight() {
        let mut rt = RandomTwo::new(&weights(&[1, 3]), 1);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[rt.pick(|_| true, &[0, 0]).unwrap().get()] += 1;
        }
        // Expect 10,000 : 30,000; 5 standard deviations is about ±450.
        assert!((9_500..10_500).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn a_loaded_server_loses_every_duel() {
        let mut rt = RandomTwo::new(&weights(&[1, 1, 1, 1]), 2);
        for _ in 0..1000 {
            assert_ne!(rt.pick(|_| true, &[9, 0, 0, 0]), Some(ServerIdx(0)));
        }
    }

    #[test]
    fn load_is_compared_per_unit_of_weight() {
        // 4 in flight on weight 4 beats 2 in flight on weight 1.
        let mut rt = RandomTwo::new(&weights(&[4, 1]), 3);
        for _ in 0..100 {
            assert_eq!(rt.pick(|_| true, &[4, 2]), Some(ServerIdx(0)));
        }
    }

    #[test]
    fn rare_usable_server_is_found_by_the_exact_walk() {
        let mut rt = RandomTwo::new(&weights(&[u32::MAX, u32::MAX, 1]), 4);
        for _ in 0..100 {
            assert_eq!(rt.pick(|s| s.0 == 2, &[0, 0, 0]), Some(ServerIdx(2)));
        }
    }

    #[test]
    fn none_usable_or_empty_is_none() {
        let mut rt = RandomTwo::new(&weights(&[1, 1]), 5);
        assert_eq!(rt.pick(|_| false, &[]), None);
        assert_eq!(RandomTwo::new(&[], 5).pick(|_| true, &[]), None);
    }
}
