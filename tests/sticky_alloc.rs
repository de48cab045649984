//! Shows that the request path of `sticky` allocates nothing: cookie search,
//! token decoding and mapping to a server (unsigned and signed), and the
//! response writers once their output buffer has room. A counting global
//! allocator counts allocations made on the current thread, so tests running
//! in parallel do not disturb each other.
//!
//! This test crate holds the only `unsafe` of the part: implementing
//! `GlobalAlloc` requires it. The library itself forbids unsafe code.

#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use limpet::balance::ServerIdx;
use limpet::sticky::{
    policy, rewrite, set_cookie, CookieAttrs, CookieFinder, InsertCookie, InsertFinders,
    RewriteCookie, Signing, TokenKey, TokenTable,
};

thread_local! {
    // `const` and `Cell<usize>`: no lazy init and no destructor, so the
    // allocator can touch it at any time without allocating itself.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn count() {
    // `try_with`: the slot may already be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches no allocated memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` made on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const NOW: u64 = 1_795_237_200;

fn tables() -> [TokenTable; 2] {
    let servers = ["ECS01", "ECS02", "ECS03"];
    let signing = Signing::new(&["k2", "k1"], Some(86_400), Some(3_600)).unwrap();
    [
        TokenTable::build(&TokenKey::DEFAULT, "web", &servers, None).unwrap(),
        TokenTable::build(&TokenKey::DEFAULT, "web", &servers, Some(signing)).unwrap(),
    ]
}

fn header_for(table: &TokenTable) -> Vec<u8> {
    let mut header = b"lang=en; theme=dark; SERVERCORSID=".to_vec();
    table.encode_into(ServerIdx(2), NOW as u32, NOW, &mut header);
    header.extend_from_slice(b"; SERVERID=");
    table.encode_into(ServerIdx(2), NOW as u32, NOW, &mut header);
    header
}

#[test]
fn find_decode_and_map_allocate_nothing() {
    let finders = InsertFinders::new("SERVERID", Some("SERVERCORSID")).unwrap();
    let finder = CookieFinder::new("SERVERID").unwrap();
    for table in tables() {
        let header = header_for(&table);
        let n = allocations_in(|| {
            let token = finder.find(black_box(&header)).unwrap();
            black_box(table.decode(token, black_box(NOW)));
            let lookup = policy::lookup_insert(&finders, &table, [header.as_slice()], NOW);
            assert_eq!(lookup.server, Some(ServerIdx(2)));
            black_box(policy::must_send(&lookup, ServerIdx(2)));
            black_box(table.encode(ServerIdx(1), lookup.issued(NOW), NOW));
        });
        assert_eq!(n, 0, "signed: {}", table.is_signed());
    }
}

#[test]
fn rewrite_lookup_allocates_nothing() {
    let finder = CookieFinder::new("BACKEND_SERVER").unwrap();
    for table in tables() {
        let mut header = b"a=1; BACKEND_SERVER=".to_vec();
        table.encode_into(ServerIdx(0), NOW as u32, NOW, &mut header);
        header.extend_from_slice(b".s3ssion");
        let n = allocations_in(|| {
            let lookup = policy::lookup_rewrite(&finder, &table, [header.as_slice()], NOW);
            assert_eq!(lookup.app_value, Some(&b"s3ssion"[..]));
            black_box(policy::must_reissue(&lookup, ServerIdx(0)));
        });
        assert_eq!(n, 0, "signed: {}", table.is_signed());
    }
}

#[test]
fn writers_allocate_nothing_once_the_buffer_has_room() {
    let [table, _] = tables();
    let finders = InsertFinders::new("SERVERID", Some("SERVERCORSID")).unwrap();
    let finder = CookieFinder::new("BACKEND_SERVER").unwrap();
    let attrs = CookieAttrs::default();
    let insert = InsertCookie::build("SERVERID", Some("SERVERCORSID"), Some(600), &attrs).unwrap();
    let reissue = RewriteCookie::build("BACKEND_SERVER", &attrs).unwrap();
    let header = header_for(&table);
    let mut out = Vec::with_capacity(4096);
    let n = allocations_in(|| {
        let token = table.encode(ServerIdx(0), 0, NOW);
        insert.write_headers(token.as_bytes(), NOW, &mut out);
        finders.strip_into(&header, &mut out);
        reissue.write_reissue(token.as_bytes(), b"s3ssion", false, &mut out);
        rewrite::rewrite_into(
            b"BACKEND_SERVER=v; Path=/",
            b"BACKEND_SERVER",
            token.as_bytes(),
            &mut out,
        );
        rewrite::restore_into(b"BACKEND_SERVER=tok.v", &finder, &mut out);
        black_box(set_cookie::needs_no_cache([&b"max-age=0, private"[..]]));
    });
    assert_eq!(n, 0);
    assert!(out.len() > 200);
}

#[test]
fn the_counter_counts() {
    assert_eq!(allocations_in(|| drop(black_box(vec![1u8; 10]))), 1);
}

/// The proxy's whole synchronous path for one exchange (`proxy::InMemory`:
/// request head parsed and decided, forwarded head written, response head
/// parsed, client head written with cookies, access log line written) with
/// the listener's access log on.
mod whole_path {
    use super::*;
    use limpet::proxy::InMemory;

    fn config(persistence: &str) -> String {
        format!(
            "[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\
             access_log = \"/dev/null\"\n\n[groups.web]\n{persistence}\n\
             [[groups.web.servers]]\nname = \"ECS01\"\naddress = \"127.0.0.1:9001\"\n\
             [[groups.web.servers]]\nname = \"ECS02\"\naddress = \"127.0.0.1:9002\"\n"
        )
    }

    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 34\r\n\r\n";

    fn request(cookie: &str) -> Vec<u8> {
        format!(
            "GET /product/42 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test\r\nCookie: lang=en; {cookie}\r\n\r\n"
        )
        .into_bytes()
    }

    /// Allocations per cycle over 100 cycles, after one to warm up (the
    /// log buffer is reserved once per 64 KiB batch it hands over).
    fn per_cycle(path: &InMemory, request: &[u8]) -> usize {
        let (mut to_backend, mut to_client) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
        path.cycle(request, RESPONSE, &mut to_backend, &mut to_client)
            .unwrap();
        allocations_in(|| {
            for _ in 0..100 {
                black_box(
                    path.cycle(request, RESPONSE, &mut to_backend, &mut to_client)
                        .unwrap(),
                );
            }
        })
    }

    #[test]
    fn a_plain_request_allocates_nothing_with_the_access_log_on() {
        let path = InMemory::new(limpet::config::parse(&config(""), "t.toml").unwrap()).unwrap();
        assert_eq!(per_cycle(&path, &request("theme=dark")), 0);
    }

    #[test]
    fn a_sticky_hit_allocates_nothing_with_the_access_log_on() {
        let text = config("[groups.web.persistence]\nmode = \"insert\"");
        let path = InMemory::new(limpet::config::parse(&text, "t.toml").unwrap()).unwrap();
        // The cookie a new session gets, then requests carrying it.
        let (mut to_backend, mut to_client) = (Vec::new(), Vec::new());
        path.cycle(
            &request("theme=dark"),
            RESPONSE,
            &mut to_backend,
            &mut to_client,
        )
        .unwrap();
        let head = String::from_utf8(to_client).unwrap();
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("Set-Cookie: "))
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_string();
        assert_eq!(per_cycle(&path, &request(&cookie)), 0);
    }

    /// Header mode: the token in `X-Session` or in the `sid` parameter,
    /// withheld from the forwarded head and redacted in the log line.
    #[test]
    fn a_header_mode_hit_and_a_new_session_allocate_nothing() {
        let text = config(
            "[groups.web.persistence]\nmode = \"header\"\nheader = \"X-Session\"\nquery = \"sid\"",
        );
        let path = InMemory::new(limpet::config::parse(&text, "t.toml").unwrap()).unwrap();
        let plain =
            b"GET /product/42?a=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test\r\n\r\n";
        let (mut to_backend, mut to_client) = (Vec::new(), Vec::new());
        path.cycle(plain, RESPONSE, &mut to_backend, &mut to_client)
            .unwrap();
        let head = String::from_utf8(to_client).unwrap();
        let token = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Session: "))
            .unwrap()
            .to_string();
        assert_eq!(per_cycle(&path, plain), 0, "new sessions");
        let by_header =
            format!("GET /product/42 HTTP/1.1\r\nHost: shop.example\r\nX-Session: {token}\r\n\r\n");
        assert_eq!(per_cycle(&path, by_header.as_bytes()), 0, "by header");
        let by_query =
            format!("GET /product/42?a=1&sid={token}&b=2 HTTP/1.1\r\nHost: shop.example\r\n\r\n");
        assert_eq!(per_cycle(&path, by_query.as_bytes()), 0, "by query");
        let (mut to_backend, mut to_client) = (Vec::new(), Vec::new());
        path.cycle(
            by_query.as_bytes(),
            RESPONSE,
            &mut to_backend,
            &mut to_client,
        )
        .unwrap();
        let forwarded = String::from_utf8(to_backend).unwrap();
        assert!(
            forwarded.starts_with("GET /product/42?a=1&b=2 HTTP/1.1\r\n"),
            "{forwarded}"
        );
        assert!(!forwarded.contains(&token), "{forwarded}");
        assert!(!String::from_utf8(to_client).unwrap().contains("X-Session"));
    }

    #[test]
    fn a_new_session_allocates_nothing_either() {
        let text = config("[groups.web.persistence]\nmode = \"insert\"");
        let path = InMemory::new(limpet::config::parse(&text, "t.toml").unwrap()).unwrap();
        assert_eq!(per_cycle(&path, &request("theme=dark")), 0);
    }
}
