//! Balancer costs: ring lookup and build, and one pick of each algorithm.
//! Inputs (rings, key hashes, in-flight counts) are built outside the timed
//! closures; keys cycle through 4,096 precomputed hashes so the branch
//! predictor cannot learn one path through the binary search.

// Bench set-up: a failed expect is a broken bench, not a runtime path.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;

// The allocator limpet runs with: ring builds allocate 160k points.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use limpet::balance::{hash_key, BalanceFactor, Picker, Ring, ServerIdx};

const KEY_COUNT: usize = 4096;

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:8080", i / 256, i % 256))
        .collect()
}

fn servers(names: &[String]) -> Vec<(&str, NonZeroU32)> {
    names
        .iter()
        .map(|n| (n.as_str(), NonZeroU32::MIN))
        .collect()
}

fn key_hashes() -> Vec<u64> {
    (0..KEY_COUNT as u64)
        .map(|i| hash_key(&i.to_le_bytes()))
        .collect()
}

/// In-flight counts that vary per server, as under real load.
fn outstanding(n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 7)
        .collect()
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    let keys = key_hashes();

    for n in [4, 64, 1000] {
        let names = names(n);
        let ring = Ring::build(&servers(&names)).expect("ring");
        let mut i = 0;
        group.bench_function(BenchmarkId::new("pick", n), |b| {
            b.iter(|| {
                i = (i + 1) % KEY_COUNT;
                ring.pick(black_box(keys[i]), |_| true)
            })
        });
    }

    // The usual failover: the key's home is down, the next server takes it.
    let names64 = names(64);
    let ring64 = Ring::build(&servers(&names64)).expect("ring");
    let mut i = 0;
    group.bench_function("pick_home_down/64", |b| {
        b.iter(|| {
            i = (i + 1) % KEY_COUNT;
            let home = ring64.pick(keys[i], |_| true);
            ring64.pick(black_box(keys[i]), |s| Some(s) != home)
        })
    });

    let load = outstanding(64);
    let factor = BalanceFactor::new(1.25).expect("factor");
    let mut i = 0;
    group.bench_function("pick_bounded/64", |b| {
        b.iter(|| {
            i = (i + 1) % KEY_COUNT;
            ring64.pick_bounded(black_box(keys[i]), |_| true, &load, factor)
        })
    });

    let cookie = [b'a'; 32];
    group.bench_function("hash_key/32B", |b| b.iter(|| hash_key(black_box(&cookie))));

    let names1000 = names(1000);
    let servers1000 = servers(&names1000);
    // Rings are dropped outside the timing: freeing is the old snapshot's
    // cost, paid whenever the control thread lets it go.
    group.bench_function("build/1000", |b| {
        b.iter_batched(
            || (),
            |()| Ring::build(black_box(&servers1000)),
            BatchSize::NumIterations(16),
        )
    });

    for n in [4, 64] {
        let weights: Vec<NonZeroU32> = (0..n as u32)
            .map(|i| NonZeroU32::new(1 + i % 3).expect("weight"))
            .collect();
        let names = names(n);
        let ring = Arc::new(Ring::build(&servers(&names)).expect("ring"));
        let load = outstanding(n);
        let usable = |s: ServerIdx| s.0 % 8 != 5;
        let pickers = [
            ("least_outstanding", Picker::least_outstanding(&weights)),
            ("round_robin", Picker::round_robin(&weights)),
            ("random_two", Picker::random_two(&weights, 1)),
            ("hash", Picker::hash(ring, &weights, None).expect("picker")),
        ];
        for (name, mut picker) in pickers {
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    picker.pick(
                        Some(hash_key(black_box(b"session-0123456789"))),
                        usable,
                        &load,
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
