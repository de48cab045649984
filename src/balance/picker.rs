//! `Picker`: the one balancer a core holds per server group, whatever the
//! group's algorithm. The worker owns it (`&mut self`, no lock) and rebuilds
//! it from each new configuration snapshot; the ring inside `Hash` is the
//! snapshot's, shared read-only by every core through an `Arc`.
//!
//! The caller decides what "usable" means (SPEC §6) and supplies this core's
//! in-flight counts; the picker only chooses. It must never return a server
//! for which `usable` was false, and `None` means "no usable server" (503).

use std::num::NonZeroU32;
use std::sync::Arc;

use super::{
    BalanceFactor, LeastOutstanding, Load, RandomTwo, Ring, RingError, RoundRobin, ServerIdx,
};

/// A group's balancing algorithm with its per-core state.
#[derive(Clone, Debug)]
pub enum Picker {
    LeastOutstanding(LeastOutstanding),
    RoundRobin(RoundRobin),
    RandomTwo(RandomTwo),
    Hash(HashPick),
}

impl Picker {
    /// Least outstanding requests, ties by smooth weighted round robin.
    pub fn least_outstanding(weights: &[NonZeroU32]) -> Self {
        Self::LeastOutstanding(LeastOutstanding::new(weights))
    }

    /// Smooth weighted round robin.
    pub fn round_robin(weights: &[NonZeroU32]) -> Self {
        Self::RoundRobin(RoundRobin::new(weights))
    }

    /// Weighted power of two choices; `seed` should differ per core.
    pub fn random_two(weights: &[NonZeroU32], seed: u64) -> Self {
        Self::RandomTwo(RandomTwo::new(weights, seed))
    }

    /// Consistent hashing on the request key over `ring`, which must have
    /// been built from the same servers as `weights`.
    pub fn hash(
        ring: Arc<Ring>,
        weights: &[NonZeroU32],
        balance_factor: Option<BalanceFactor>,
    ) -> Result<Self, RingError> {
        HashPick::new(ring, weights, balance_factor).map(Self::Hash)
    }

    /// Takes over the per-core position of `old`, this group's picker before
    /// a change, by server identity: `old_index` gives a server's index in
    /// `old` (`None` for a new server). A changed algorithm starts fresh.
    pub fn carry_from(&mut self, old: &Picker, old_index: impl Fn(ServerIdx) -> Option<ServerIdx>) {
        match (self, old) {
            (Self::LeastOutstanding(new), Self::LeastOutstanding(old)) => {
                new.carry_from(old, old_index)
            }
            (Self::RoundRobin(new), Self::RoundRobin(old)) => new.carry_from(old, old_index),
            (Self::RandomTwo(new), Self::RandomTwo(old)) => new.carry_from(old),
            (Self::Hash(new), Self::Hash(old)) => new.keyless.carry_from(&old.keyless, old_index),
            (
                Self::LeastOutstanding(_)
                | Self::RoundRobin(_)
                | Self::RandomTwo(_)
                | Self::Hash(_),
                _,
            ) => {}
        }
    }

    /// Chooses a usable server for a request. `key_hash` is
    /// [`hash_key`] of the request's hash key and matters only to `Hash`
    /// (hashed by the caller while the request head is at hand, so nothing
    /// is copied); `outstanding[i]` is this core's in-flight count for
    /// `ServerIdx(i)`.
    pub fn pick(
        &mut self,
        key_hash: Option<u64>,
        usable: impl Fn(ServerIdx) -> bool,
        outstanding: &(impl Load + ?Sized),
    ) -> Option<ServerIdx> {
        match self {
            Self::LeastOutstanding(p) => p.pick(usable, outstanding),
            Self::RoundRobin(p) => p.pick(usable),
            Self::RandomTwo(p) => p.pick(usable, outstanding),
            Self::Hash(p) => p.pick(key_hash, usable, outstanding),
        }
    }
}

/// Consistent hashing for one group on one core.
#[derive(Clone, Debug)]
pub struct HashPick {
    ring: Arc<Ring>,
    balance_factor: Option<BalanceFactor>,
    /// For requests without a key (no cookie, no header): hashing nothing
    /// would send them all to one server.
    keyless: LeastOutstanding,
}

impl HashPick {
    /// See [`Picker::hash`].
    pub fn new(
        ring: Arc<Ring>,
        weights: &[NonZeroU32],
        balance_factor: Option<BalanceFactor>,
    ) -> Result<Self, RingError> {
        if ring.server_count() != weights.len() {
            return Err(RingError::ServerCount {
                ring: ring.server_count(),
                group: weights.len(),
            });
        }
        Ok(Self {
            ring,
            balance_factor,
            keyless: LeastOutstanding::new(weights),
        })
    }

    /// The ring's choice for the key hashed to `key_hash`, bounded by load
    /// when a balance factor is set; least outstanding when the request has
    /// no key.
    pub fn pick(
        &mut self,
        key_hash: Option<u64>,
        usable: impl Fn(ServerIdx) -> bool,
        outstanding: &(impl Load + ?Sized),
    ) -> Option<ServerIdx> {
        let Some(key_hash) = key_hash else {
            return self.keyless.pick(usable, outstanding);
        };
        match self.balance_factor {
            Some(factor) => self
                .ring
                .pick_bounded(key_hash, usable, outstanding, factor),
            None => self.ring.pick(key_hash, usable),
        }
    }

    /// The ring this picker routes on.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash_key;

    fn group(n: u32) -> (Vec<String>, Vec<NonZeroU32>) {
        let names = (1..=n).map(|i| format!("s{i}")).collect();
        (names, vec![NonZeroU32::MIN; n as usize])
    }

    fn hash_picker(n: u32, factor: Option<f64>) -> Picker {
        let (names, weights) = group(n);
        let servers: Vec<(&str, NonZeroU32)> = names
            .iter()
            .map(String::as_str)
            .zip(weights.iter().copied())
            .collect();
        let ring = Arc::new(Ring::build(&servers).unwrap());
        let factor = factor.map(|f| BalanceFactor::new(f).unwrap());
        Picker::hash(ring, &weights, factor).unwrap()
    }

    #[test]
    fn every_algorithm_respects_usable_and_reports_none() {
        let (_, weights) = group(4);
        let mut pickers = [
            Picker::least_outstanding(&weights),
            Picker::round_robin(&weights),
            Picker::random_two(&weights, 9),
            hash_picker(4, None),
            hash_picker(4, Some(1.25)),
        ];
        for picker in &mut pickers {
            for k in 0..200u32 {
                let key = k.to_le_bytes();
                let got = picker.pick(Some(hash_key(&key)), |s| s.0 % 2 == 1, &[0; 4]);
                assert!(
                    matches!(got, Some(ServerIdx(1 | 3))),
                    "{picker:?} gave {got:?}"
                );
                assert_eq!(picker.pick(Some(hash_key(&key)), |_| false, &[0; 4]), None);
            }
        }
    }

    #[test]
    fn picks_are_usable_and_none_means_none_usable() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

        let config = Config {
            cases: 256,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let group = (1usize..24).prop_flat_map(|n| {
            (
                prop::collection::vec(1u32..10, n),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(0u32..5, n),
            )
        });
        runner
            .run(&(group, any::<u64>()), |((ws, up, load), key)| {
                let weights: Vec<NonZeroU32> =
                    ws.iter().map(|&w| NonZeroU32::new(w).unwrap()).collect();
                let names: Vec<String> = (0..ws.len()).map(|i| format!("s{i}")).collect();
                let servers: Vec<(&str, NonZeroU32)> = names
                    .iter()
                    .map(String::as_str)
                    .zip(weights.iter().copied())
                    .collect();
                let ring = Arc::new(Ring::build(&servers).unwrap());
                let factor = BalanceFactor::new(1.25).unwrap();
                let mut pickers = [
                    Picker::least_outstanding(&weights),
                    Picker::round_robin(&weights),
                    Picker::random_two(&weights, key),
                    Picker::hash(ring.clone(), &weights, None).unwrap(),
                    Picker::hash(ring, &weights, Some(factor)).unwrap(),
                ];
                let usable = |s: ServerIdx| up[s.get()];
                let min_load = (0..ws.len()).filter(|&i| up[i]).map(|i| load[i]).min();
                for picker in &mut pickers {
                    for k in [Some(hash_key(&key.to_le_bytes())), None] {
                        let got = picker.pick(k, usable, &load);
                        prop_assert_eq!(got.is_some(), up.contains(&true));
                        if let Some(s) = got {
                            prop_assert!(up[s.get()]);
                        }
                    }
                }
                if let Some(s) = pickers[0].pick(None, usable, &load) {
                    prop_assert_eq!(Some(load[s.get()]), min_load);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn hash_is_sticky_per_key() {
        let mut picker = hash_picker(8, None);
        let first = picker.pick(Some(hash_key(b"user-42")), |_| true, &[0; 8]);
        for _ in 0..10 {
            assert_eq!(
                picker.pick(Some(hash_key(b"user-42")), |_| true, &[5; 8]),
                first
            );
        }
    }

    #[test]
    fn hash_without_key_falls_back_to_least_outstanding() {
        let mut picker = hash_picker(4, None);
        assert_eq!(
            picker.pick(None, |_| true, &[3, 2, 0, 1]),
            Some(ServerIdx(2))
        );
    }

    #[test]
    fn hash_refuses_a_ring_of_another_group() {
        let (names, _) = group(3);
        let servers: Vec<(&str, NonZeroU32)> = names
            .iter()
            .map(|n| (n.as_str(), NonZeroU32::MIN))
            .collect();
        let ring = Arc::new(Ring::build(&servers).unwrap());
        let err = Picker::hash(ring, &[NonZeroU32::MIN; 4], None).unwrap_err();
        assert_eq!(err, RingError::ServerCount { ring: 3, group: 4 });
    }
}
