//! Request-side cost of session persistence: find the cookie in a `Cookie`
//! header, decode its token and map it to a server.
//!
//! - `find_decode_map/{unsigned,signed}/{40B,1KiB}`: one `CookieFinder` and
//!   `TokenTable::decode`, the per-request minimum (target: unsigned 1 KiB
//!   under 50 ns). The short header is 40 bytes with an unsigned token; the
//!   signed one is 27 bytes longer, its token being 38 characters, not 11.
//! - `lookup_insert/{unsigned,signed}/{40B,1KiB}`: `policy::lookup_insert`,
//!   which also looks for the CORS twin (a second search of the header).
//!
//! In the 1 KiB header the persistence cookies sit near the end, after
//! typical analytics and preference cookies. Inputs are built outside the
//! timed loop.

// Bench set-up: a failed expect is a broken bench, not a runtime path.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use limpet::balance::ServerIdx;
use limpet::sticky::{policy, CookieFinder, InsertFinders, Signing, TokenKey, TokenTable};

const NOW: u64 = 1_795_237_200;
const SERVERS: [&str; 8] = [
    "ECS01", "ECS02", "ECS03", "ECS04", "ECS05", "ECS06", "ECS07", "ECS08",
];

fn tables() -> [(&'static str, TokenTable); 2] {
    let signing = Signing::new(&["k2", "k1"], Some(86_400), Some(3_600)).unwrap();
    [
        (
            "unsigned",
            TokenTable::build(&TokenKey::DEFAULT, "web", &SERVERS, None).unwrap(),
        ),
        (
            "signed",
            TokenTable::build(&TokenKey::DEFAULT, "web", &SERVERS, Some(signing)).unwrap(),
        ),
    ]
}

fn short_header(token: &[u8]) -> Vec<u8> {
    let mut header = b"lang=en; SERVERID=".to_vec();
    header.extend_from_slice(token);
    header.extend_from_slice(b"; theme=red");
    header
}

fn long_header(token: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(1024);
    let mut i = 0;
    while header.len() < 1024 - 80 - 2 * token.len() {
        header.extend_from_slice(
            format!("_ga_{i}=GA1.2.{}.1700000000; ", 1_000_000 + i * 7919).as_bytes(),
        );
        i += 1;
    }
    header.extend_from_slice(b"SERVERCORSID=");
    header.extend_from_slice(token);
    header.extend_from_slice(b"; SERVERID=");
    header.extend_from_slice(token);
    header.extend_from_slice(b"; consent=yes; ");
    while header.len() < 1024 {
        header.push(b'x');
    }
    header.truncate(1024);
    header
}

fn sticky(c: &mut Criterion) {
    let finder = CookieFinder::new("SERVERID").unwrap();
    let finders = InsertFinders::new("SERVERID", Some("SERVERCORSID")).unwrap();
    let mut group = c.benchmark_group("sticky");
    for (mode, table) in tables() {
        let token = table.encode(ServerIdx(5), NOW as u32, NOW);
        let short = short_header(token.as_bytes());
        let long = long_header(token.as_bytes());
        assert_eq!(long.len(), 1024);
        if !table.is_signed() {
            assert_eq!(short.len(), 40);
        }
        for (size, header) in [("40B", &short), ("1KiB", &long)] {
            assert_eq!(finder.find(header), Some(token.as_bytes()));
            group.bench_function(format!("find_decode_map/{mode}/{size}"), |b| {
                b.iter(|| {
                    let token = finder.find(black_box(header.as_slice()));
                    token.map(|t| table.decode(t, black_box(NOW)))
                })
            });
            let lookup = policy::lookup_insert(&finders, &table, [header.as_slice()], NOW);
            assert_eq!(lookup.server, Some(ServerIdx(5)));
            group.bench_function(format!("lookup_insert/{mode}/{size}"), |b| {
                b.iter(|| {
                    let headers = [black_box(header.as_slice())];
                    policy::lookup_insert(&finders, &table, headers, black_box(NOW))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, sticky);
criterion_main!(benches);
