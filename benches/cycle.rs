//! One request/response exchange through the proxy's synchronous path
//! (no sockets): request head parsed, routed, persistence cookie looked up,
//! server chosen, forwarded head written; response head parsed, client head
//! written with cookies. Inputs are built outside the timed loop.

// Bench set-up: a failed expect is a broken bench, not a runtime path.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use limpet::proxy::InMemory;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = r#"
[[listeners]]
name = "bench"
listen = "127.0.0.1:0"
default_group = "web"

[groups.web.persistence]
mode = "insert"

[[groups.web.servers]]
name = "ECS01"
address = "127.0.0.1:9001"

[[groups.web.servers]]
name = "ECS02"
address = "127.0.0.1:9002"
"#;

const REQUEST_HEAD: &str = "GET /product/42?ref=home HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: lang=en; cart=8c1f2e; {cookie}\r\nUpgrade-Insecure-Requests: 1\r\n\r\n";

const RESPONSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: origin\r\nDate: Sat, 21 Nov 2026 05:10:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 34\r\nCache-Control: max-age=60\r\n\r\n";

fn bench(c: &mut Criterion) {
    let config = limpet::config::parse(CONFIG, "bench.toml").expect("config");
    let path = InMemory::new(config).expect("in-memory proxy");
    let (mut to_backend, mut to_client) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    let new_session = REQUEST_HEAD.replace("{cookie}", "theme=dark").into_bytes();
    path.cycle(&new_session, RESPONSE_HEAD, &mut to_backend, &mut to_client)
        .expect("a cycle");
    let cookie = String::from_utf8_lossy(&to_client)
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a new session gets a cookie")
        .to_string();
    let sticky = REQUEST_HEAD.replace("{cookie}", &cookie).into_bytes();

    let mut group = c.benchmark_group("cycle");
    group.bench_function("sticky_hit", |b| {
        b.iter(|| {
            path.cycle(
                black_box(&sticky),
                black_box(RESPONSE_HEAD),
                &mut to_backend,
                &mut to_client,
            )
        })
    });
    group.bench_function("new_session", |b| {
        b.iter(|| {
            path.cycle(
                black_box(&new_session),
                black_box(RESPONSE_HEAD),
                &mut to_backend,
                &mut to_client,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
