//! Head parse and head rewrite for a typical browser request: the two steps
//! every proxied request pays for. Inputs are built outside the timed loop.

// Bench set-up: a failed expect is a broken bench, not a runtime path.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use limpet::http::{parse_request, parse_response, write_request_head, Forwarding, Limits};
use limpet::proxy::RequestId;

/// About 400 bytes, the shape Firefox sends for a page.
const BROWSER_REQUEST: &[u8] = b"GET /shop/cart?item=42 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: lb=Q2FmZUJhYmU; session=8f14e45fceea167a\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
\r\n";

/// What nginx answers a small `return 200`.
const ORIGIN_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Tue, 08 Dec 2026 01:00:00 GMT\r\n\
Content-Type: text/plain\r\n\
Content-Length: 28\r\n\
Connection: keep-alive\r\n\
\r\n";

const LIMITS: Limits = Limits {
    max_request_line_bytes: 8192,
    max_head_bytes: 16384,
    max_headers: 100,
};

fn head(c: &mut Criterion) {
    let mut group = c.benchmark_group("head");
    group.bench_function("parse_request", |b| {
        b.iter(|| {
            let mut headers = [std::mem::MaybeUninit::uninit(); 100];
            let req = parse_request(black_box(BROWSER_REQUEST), &mut headers, &LIMITS, &[]);
            black_box(req.map(|r| r.map(|r| r.head_len))).ok();
        })
    });

    group.bench_function("parse_response", |b| {
        b.iter(|| {
            let mut headers = [std::mem::MaybeUninit::uninit(); 100];
            let resp = parse_response(black_box(ORIGIN_RESPONSE), &mut headers, &LIMITS, false);
            black_box(resp.map(|r| r.map(|r| r.head_len))).ok();
        })
    });
    group.bench_function("request_id", |b| {
        b.iter(|| black_box(RequestId::generate(black_box(1))))
    });

    let mut headers = [std::mem::MaybeUninit::uninit(); 100];
    let Ok(Some(req)) = parse_request(BROWSER_REQUEST, &mut headers, &LIMITS, &[]) else {
        return;
    };
    let fwd = Forwarding {
        client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        trusted_peer: false,
        proto: "https",
        request_id: b"6934a1b2-0-1f",
    };
    let mut out = Vec::with_capacity(1024);
    group.bench_function("write_request_head", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(black_box(&req), &fwd, &mut out, |value, out| {
                out.extend_from_slice(value)
            });
            black_box(out.len());
        })
    });
    group.finish();
}

criterion_group!(benches, head);
criterion_main!(benches);
