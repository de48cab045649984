//! Ring properties over 1,000,000 fixed keys. Key-to-server assignments are
//! computed as runs over the sorted keys, one binary search per ring point
//! (checked against `Ring::pick` on every key), so the 84 rings of the
//! removal test stay fast in debug builds too.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::*;

const KEYS: usize = 1_000_000;

fn w(weight: u32) -> NonZeroU32 {
    NonZeroU32::new(weight).unwrap()
}

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:8080", i / 256, i % 256))
        .collect()
}

fn build(names: &[String]) -> Ring {
    let servers: Vec<(&str, NonZeroU32)> = names.iter().map(|n| (n.as_str(), w(1))).collect();
    Ring::build(&servers).unwrap()
}

/// Ring positions of `KEYS` request keys, sorted; computed once per run.
fn sorted_key_positions() -> &'static [u32] {
    static KEY_POSITIONS: OnceLock<Vec<u32>> = OnceLock::new();
    KEY_POSITIONS.get_or_init(|| {
        let mut keys: Vec<u32> = (0..KEYS as u64)
            .map(|i| ring_position(hash_key(&i.to_le_bytes())))
            .collect();
        keys.sort_unstable();
        keys
    })
}

/// Runs of sorted keys per server: entry `(end, id)` says keys from the
/// previous entry's `end` up to `end` land on `ids[ServerIdx]` (all servers
/// usable). Ids let rings built from different lists be compared.
fn runs(ring: &Ring, ids: &[u32], keys: &[u32]) -> Vec<(usize, u32)> {
    let id = |p: &Point| ids[p.server().get()];
    let mut runs: Vec<(usize, u32)> = ring
        .points
        .iter()
        .map(|p| (keys.partition_point(|&k| k <= p.position()), id(p)))
        .collect();
    // Keys past the last point wrap around to the first.
    runs.push((keys.len(), id(&ring.points[0])));
    runs
}

/// Calls `f(id before, id after, keys)` for each stretch of keys on which
/// both assignments are constant.
fn diff(before: &[(usize, u32)], after: &[(usize, u32)], mut f: impl FnMut(u32, u32, usize)) {
    let (mut i, mut j, mut at) = (0, 0, 0);
    while i < before.len() && j < after.len() {
        let end = before[i].0.min(after[j].0);
        if end > at {
            f(before[i].1, after[j].1, end - at);
            at = end;
        }
        i += usize::from(before[i].0 == end);
        j += usize::from(after[j].0 == end);
    }
    assert_eq!(at, KEYS);
}

/// Ids 0..n, the identity for a ring built from the full list.
fn ids(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

#[test]
fn runs_match_pick() {
    let ring = build(&names(16));
    let keys = sorted_key_positions();
    let mut from = 0;
    for (end, id) in runs(&ring, &ids(16), keys) {
        for &k in &keys[from..end] {
            assert_eq!(ring.pick(u64::from(k) << 32, |_| true), Some(ServerIdx(id)));
        }
        from = end;
    }
}

#[test]
fn removing_a_server_moves_only_its_keys() {
    let keys = sorted_key_positions();
    for n in [4, 16, 64] {
        let all = names(n);
        let before = runs(&build(&all), &ids(n), keys);
        let mut moved_total = 0;
        for gone in 0..n as u32 {
            let rest: Vec<String> = all
                .iter()
                .filter(|s| **s != all[gone as usize])
                .cloned()
                .collect();
            let rest_ids: Vec<u32> = (0..n as u32).filter(|&i| i != gone).collect();
            let after = runs(&build(&rest), &rest_ids, keys);
            diff(&before, &after, |b, a, count| {
                if b == gone {
                    moved_total += count;
                } else {
                    assert_eq!(b, a, "a key of a remaining server moved (n = {n})");
                }
            });
        }
        let mean = moved_total as f64 / KEYS as f64 / n as f64;
        assert!(mean <= 1.1 / n as f64, "n = {n}: mean moved {mean}");
    }
}

#[test]
fn adding_a_server_moves_keys_only_onto_it() {
    let keys = sorted_key_positions();
    for n in [4, 16, 64] {
        let grown = names(n + 1);
        let before = runs(&build(&grown[..n]), &ids(n), keys);
        let after = runs(&build(&grown), &ids(n + 1), keys);
        let mut moved = 0;
        diff(&before, &after, |b, a, count| {
            if b != a {
                assert_eq!(a, n as u32, "a key moved between old servers (n = {n})");
                moved += count;
            }
        });
        let share = moved as f64 / KEYS as f64;
        assert!(
            share > 0.5 / (n + 1) as f64 && share < 1.5 / (n + 1) as f64,
            "{share}"
        );
    }
}

/// With 160 points per weight a weight-1 server's share has a relative
/// spread of about 8 %, so whether one group of weights 1:2:3 lands within
/// 5 % depends on its names (about 4 groups in 10 do). This group does;
/// `shares_are_unbiased` below checks the weighting itself.
#[test]
fn shares_follow_weights() {
    let names: Vec<String> = ["web1", "web2", "web3"].map(String::from).to_vec();
    let servers = [
        (names[0].as_str(), w(1)),
        (names[1].as_str(), w(2)),
        (names[2].as_str(), w(3)),
    ];
    let ring = Ring::build(&servers).unwrap();
    let mut counts = [0usize; 3];
    let mut from = 0;
    for (end, id) in runs(&ring, &ids(3), sorted_key_positions()) {
        counts[id as usize] += end - from;
        from = end;
    }
    for (i, count) in counts.iter().enumerate() {
        let expected = (i + 1) as f64 / 6.0;
        let share = *count as f64 / KEYS as f64;
        assert!((share / expected - 1.0).abs() < 0.05, "{counts:?}");
    }
}

/// Exact share of the ring owned by each server (arc lengths).
fn arc_shares(ring: &Ring) -> Vec<f64> {
    let mut shares = vec![0.0; ring.server_count()];
    let mut prev = i64::from(ring.points.last().unwrap().position()) - (1i64 << 32);
    for (h, s) in ring.points() {
        shares[s.get()] += (i64::from(h) - prev) as f64 / (1u64 << 32) as f64;
        prev = i64::from(h);
    }
    shares
}

#[test]
fn shares_are_unbiased() {
    let groups = 200;
    let mut mean = [0.0; 3];
    for g in 0..groups {
        let names: Vec<String> = (1..=3).map(|i| format!("group{g}-server{i}")).collect();
        let servers: Vec<(&str, NonZeroU32)> = names
            .iter()
            .zip(1..)
            .map(|(n, weight)| (n.as_str(), w(weight)))
            .collect();
        let shares = arc_shares(&Ring::build(&servers).unwrap());
        for (m, share) in mean.iter_mut().zip(shares) {
            *m += share / f64::from(groups);
        }
    }
    for (i, m) in mean.iter().enumerate() {
        let expected = (i + 1) as f64 / 6.0;
        assert!((m / expected - 1.0).abs() < 0.015, "{mean:?}");
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A skewed workload: key 0 is 30 % of requests, the rest spread over
/// 10,000 keys with a Zipf-like tail. In-flight requests complete in FIFO
/// order with 200 outstanding.
#[test]
fn bounded_load_caps_every_server() {
    let names = names(8);
    let ring = build(&names);
    let factor = BalanceFactor::new(1.25).unwrap();
    let mut seed = 3u64;
    let mut outstanding = [0u32; 8];
    let mut in_flight = std::collections::VecDeque::new();
    let mut hot_home_overflows = 0;
    for _ in 0..200_000 {
        // A uniform draw in [0, 1) from splitmix64.
        let u = (splitmix64(&mut seed) >> 11) as f64 / (1u64 << 53) as f64;
        let key: u64 = if u < 0.3 {
            0
        } else {
            // 1/u' is Zipf-like (P(key > k) ~ 1/k), u' in (0.0001, 1].
            1 + (0.7 / (u - 0.3)).min(10_000.0) as u64
        };
        let key_hash = hash_key(&key.to_le_bytes());
        let total: u64 = outstanding.iter().map(|&o| u64::from(o)).sum();
        let bound = (1.25 * (total + 1) as f64 / 8.0).ceil() as u32;
        let s = ring
            .pick_bounded(key_hash, |_| true, &outstanding, factor)
            .unwrap();
        outstanding[s.get()] += 1;
        assert!(outstanding[s.get()] <= bound, "{outstanding:?} > {bound}");
        if key == 0 && Some(s) != ring.pick(key_hash, |_| true) {
            hot_home_overflows += 1;
        }
        in_flight.push_back(s);
        if in_flight.len() > 200 {
            let done = in_flight.pop_front().unwrap();
            outstanding[done.get()] -= 1;
        }
    }
    // The hot key alone exceeds one server's bound: it must have spilled.
    assert!(hot_home_overflows > 10_000, "{hot_home_overflows}");
}

#[test]
fn bounded_load_keeps_keys_home_when_balanced() {
    let names = names(4);
    let ring = build(&names);
    let factor = BalanceFactor::new(1.25).unwrap();
    for k in 0..1000u32 {
        let h = hash_key(&k.to_le_bytes());
        assert_eq!(
            ring.pick_bounded(h, |_| true, &[3; 4], factor),
            ring.pick(h, |_| true)
        );
    }
}

/// Changing the hash, its input layout or POINTS_PER_WEIGHT fails this
/// test, and would remap every user of every deployed group. Don't.
#[test]
fn golden_keys() {
    let names: Vec<String> = ["s1", "s2", "s3", "s4"].map(String::from).to_vec();
    let ring = build(&names);
    let got: Vec<&str> = (0..20)
        .map(|i| {
            let key = format!("key-{i}");
            names[ring.pick(hash_key(key.as_bytes()), |_| true).unwrap().get()].as_str()
        })
        .collect();
    let want = [
        "s2", "s3", "s2", "s3", "s2", "s3", "s2", "s1", "s3", "s1", // key-0..key-9
        "s1", "s1", "s3", "s4", "s4", "s2", "s4", "s4", "s2", "s4", // key-10..key-19
    ];
    assert_eq!(got, want);
}

/// XXH3-64 as the ring's spec pins it (see `golden_keys`).
#[test]
fn golden_hash() {
    // The XXH3 reference vector for empty input.
    assert_eq!(hash_key(b""), 0x2d06_8005_38d3_94c2);
    assert_eq!(hash_key(b"key-0"), 9_340_302_149_712_544_120);
    let first_points: Vec<(u32, u32)> = build(&["s1".to_owned()])
        .points()
        .take(3)
        .map(|(h, s)| (h, s.0))
        .collect();
    assert_eq!(
        first_points,
        [(22_319_460, 0), (32_437_954, 0), (36_628_448, 0)]
    );
    // Replica 0 is seed 0, the same hash as a key.
    let replica0 = ring_position(hash_key(b"s1"));
    assert!(build(&["s1".to_owned()])
        .points()
        .any(|(h, _)| h == replica0));
}

#[test]
fn same_input_same_ring_in_any_order() {
    let names = names(1000);
    let servers: Vec<(&str, NonZeroU32)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), w(1 + i as u32 % 3)))
        .collect();
    let ring = Ring::build(&servers).unwrap();
    assert_eq!(ring, Ring::build(&servers).unwrap());
    // 320k points in 2^32 positions: a few collide, and the dedupe must not
    // depend on order either.
    assert!(ring.len() < 320_000, "no collision exercised");

    let mut shuffled = servers.clone();
    shuffled.reverse();
    shuffled.rotate_left(337);
    let other = Ring::build(&shuffled).unwrap();
    let by_name = |ring: &Ring, list: &[(&str, NonZeroU32)]| -> Vec<(u32, String)> {
        ring.points()
            .map(|(h, s)| (h, list[s.get()].0.to_owned()))
            .collect()
    };
    assert_eq!(by_name(&ring, &servers), by_name(&other, &shuffled));
}

#[test]
fn iter_yields_every_server_once_in_ring_order() {
    let config = Config {
        cases: 64,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let strategy = (
        prop::collection::vec(1u32..4, 1..40),
        any::<u64>(),
        any::<u64>(),
    );
    runner
        .run(&strategy, |(weights, key_hash, down_mask)| {
            let names = names(weights.len());
            let servers: Vec<(&str, NonZeroU32)> = names
                .iter()
                .zip(&weights)
                .map(|(n, &x)| (n.as_str(), w(x)))
                .collect();
            let ring = Ring::build(&servers).unwrap();
            let order: Vec<ServerIdx> = ring.iter(key_hash).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            let all: Vec<ServerIdx> = (0..weights.len() as u32).map(ServerIdx).collect();
            prop_assert_eq!(sorted, all);
            // The naive walk: every point from the successor, first sightings.
            let position = ring_position(key_hash);
            let start = ring.points().position(|(h, _)| h >= position).unwrap_or(0);
            let mut naive = Vec::new();
            for j in (start..ring.len()).chain(0..start) {
                let server = ring.points[j].server();
                if !naive.contains(&server) {
                    naive.push(server);
                }
            }
            prop_assert_eq!(&order, &naive);
            let usable = |s: ServerIdx| down_mask >> (s.0 % 64) & 1 == 0;
            prop_assert_eq!(
                ring.pick(key_hash, usable),
                order.iter().copied().find(|&s| usable(s))
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn build_errors() {
    assert_eq!(Ring::build(&[]), Err(RingError::Empty));
    assert_eq!(
        Ring::build(&[("a", w(1)), ("b", w(1)), ("a", w(2))]),
        Err(RingError::DuplicateServer("a".to_owned()))
    );
    assert!(matches!(
        Ring::build(&[("a", w(u32::MAX))]),
        Err(RingError::TooManyPoints { .. })
    ));
    for bad in [0.99, f64::NAN, f64::INFINITY, -1.0] {
        assert!(BalanceFactor::new(bad).is_err());
    }
}

#[test]
fn a_lone_server_takes_everything() {
    let ring = Ring::build(&[("only", w(1))]).unwrap();
    assert_eq!(ring.iter(123).collect::<Vec<_>>(), [ServerIdx(0)]);
    assert_eq!(ring.pick(u64::MAX, |_| true), Some(ServerIdx(0)));
    assert_eq!(ring.pick(0, |_| false), None);
}

#[test]
fn successor_agrees_with_a_linear_scan_at_every_edge() {
    for n in [1, 3, 64] {
        let ring = build(&names(n));
        let naive = |position: u32| ring.points().position(|(h, _)| h >= position).unwrap_or(0);
        let mut probes = vec![0, 1, u32::MAX - 1, u32::MAX];
        // Every point of the small rings, every 31st of the large one.
        for (h, _) in ring.points().step_by(if n > 3 { 31 } else { 1 }) {
            probes.extend([h.wrapping_sub(1), h, h.wrapping_add(1)]);
        }
        for position in probes {
            assert_eq!(
                ring.successor(position),
                naive(position),
                "n = {n}, {position}"
            );
        }
    }
}
