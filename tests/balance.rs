//! Routing rules and balancing algorithms over real sockets (issue 4).

// Test code: a failed unwrap is a failed test, and a Mutex here is not on
// any request path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

/// A GET on a fresh connection to `addr`.
fn get(addr: std::net::SocketAddr, host: &str, path: &str, extra: &str) -> Response {
    Client::connect(addr).get_host(path, host, extra)
}

#[test]
fn routes_by_host_wildcard_and_path_prefix_first_match_wins() {
    let (a, b, c, d) = (
        Backend::named("api", log()),
        Backend::named("shop", log()),
        Backend::named("static", log()),
        Backend::named("web", log()),
    );
    let config = format!(
        r#"[workers]
count = 1

[[listeners]]
name = "edge"
listen = "127.0.0.1:0"
default_group = "web"

[[listeners.routes]]
host = "api.example.com"
group = "api"

[[listeners.routes]]
host = "*.shop.example"
path_prefix = "/cart"
group = "shop"

[[listeners.routes]]
path_prefix = "/static/"
group = "static"

[[groups.api.servers]]
name = "a"
address = "{}"

[[groups.shop.servers]]
name = "b"
address = "{}"

[[groups.static.servers]]
name = "c"
address = "{}"

[[groups.web.servers]]
name = "d"
address = "{}"
"#,
        a.addr, b.addr, c.addr, d.addr
    );
    let limpet = Limpet::start(&config);
    let addr = limpet.addr;
    let cases = [
        ("api.example.com", "/x", "api /x"),
        ("API.Example.COM:8443", "/static/a.css", "api /static/a.css"),
        ("eu.shop.example", "/cart/1", "shop /cart/1"),
        ("eu.shop.example", "/about", "web /about"),
        ("shop.example", "/cart/1", "web /cart/1"),
        ("other.test", "/static/logo.png", "static /static/logo.png"),
        ("other.test", "/staticky", "web /staticky"),
        ("other.test", "/", "web /"),
    ];
    for (host, path, expected) in cases {
        assert_eq!(
            get(addr, host, path, "").body_text(),
            expected,
            "Host: {host}, path {path}"
        );
    }
    // Absolute-form targets route by their path too, and by their own
    // authority; the backend gets origin-form (RFC 9112 §3.2.2).
    assert_eq!(
        get(addr, "other.test", "http://other.test/static/x", "").body_text(),
        "static /static/x"
    );
    assert_eq!(
        get(addr, "other.test", "http://api.example.com/x", "").body_text(),
        "api /x"
    );
}

#[test]
fn no_matching_route_and_no_default_is_404() {
    let api = Backend::named("api", log());
    let config = format!(
        "[workers]\ncount = 1\n[[listeners]]\nname = \"edge\"\nlisten = \"127.0.0.1:0\"\n\
         [[listeners.routes]]\nhost = \"api.example.com\"\ngroup = \"api\"\n\
         [[groups.api.servers]]\nname = \"a\"\naddress = \"{}\"\n",
        api.addr
    );
    let limpet = Limpet::start(&config);
    assert_eq!(get(limpet.addr, "api.example.com", "/", "").status, 200);
    let refused = get(limpet.addr, "www.example.com", "/", "");
    assert_eq!(refused.status, 404);
    assert_eq!(refused.header("connection"), Some("close"));
}

/// One backend answering after 200 ms and one at once; 200 requests from
/// 20 concurrent clients, which take the next request from a shared count
/// (a client held by the slow server does not hold back requests the others
/// could send). Returns how many the fast one served.
fn fast_share(balance: &str) -> usize {
    let fast_count = Arc::new(AtomicUsize::new(0));
    let counted = fast_count.clone();
    let fast = Backend::respond(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Some(ok("fast"))
    });
    let slow = Backend::respond(|_| {
        // A sleep on purpose: this is the slow server.
        thread::sleep(Duration::from_millis(200));
        Some(ok("slow"))
    });
    let config = config_with(
        &[slow.addr, fast.addr],
        &format!("balance = \"{balance}\""),
        "",
    );
    let limpet = Limpet::start(&config);
    let addr = limpet.addr;
    let issued = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let issued = issued.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                loop {
                    let i = issued.fetch_add(1, Ordering::SeqCst);
                    if i >= 200 {
                        return;
                    }
                    assert_eq!(client.get(&format!("/{i}")).status, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    fast_count.load(Ordering::SeqCst)
}

#[test]
fn least_outstanding_steers_around_a_slow_server() {
    let fast = fast_share("least_outstanding");
    assert!(fast >= 180, "the fast server took {fast} of 200");
}

#[test]
fn random_two_steers_around_a_slow_server() {
    let fast = fast_share("random_two");
    assert!(fast >= 180, "the fast server took {fast} of 200");
}

#[test]
fn round_robin_follows_weights() {
    let served = Arc::new(Mutex::new(HashMap::<&'static str, usize>::new()));
    let backend = |name: &'static str| {
        let served = served.clone();
        Backend::respond(move |_| {
            *served.lock().unwrap().entry(name).or_default() += 1;
            Some(ok(name))
        })
    };
    let (a, b) = (backend("a"), backend("b"));
    let config = config_with(&[a.addr, b.addr], "balance = \"round_robin\"", "")
        .replace("name = \"s1\"", "name = \"s1\"\nweight = 3");
    let limpet = Limpet::start(&config);
    let mut client = limpet.client();
    let order: String = (0..8).map(|_| client.get("/").body_text()).collect();
    assert_eq!(order, "babbbabb", "smooth weighted round robin, 1:3");
    let served = served.lock().unwrap();
    assert_eq!((served["a"], served["b"]), (2, 6));
}

#[test]
fn hash_balancing_keeps_a_key_on_one_server() {
    let backends: Vec<Backend> = ["s0", "s1", "s2", "s3"]
        .iter()
        .map(|n| Backend::named(n, log()))
        .collect();
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    for (key, extra) in [
        (
            "hash_key = \"cookie:session\"",
            "Cookie: a=1; session=user-",
        ),
        ("hash_key = \"header:x-user\"", "X-User: user-"),
    ] {
        let config = config_with(
            &addrs,
            &format!("balance = \"hash\"\n{key}\nbalance_factor = 1.5"),
            "",
        );
        let limpet = Limpet::start(&config);
        let mut owners = std::collections::BTreeSet::new();
        for user in 0..40 {
            let header = format!("{extra}{user}\r\n");
            let first = get(limpet.addr, "t", "/", &header).body_text();
            for _ in 0..3 {
                assert_eq!(
                    get(limpet.addr, "t", "/", &header).body_text(),
                    first,
                    "{key}: user {user}"
                );
            }
            owners.insert(first);
        }
        assert!(owners.len() >= 3, "{key}: 40 keys spread over {owners:?}");
    }
    let config = config_with(&addrs, "balance = \"hash\"\nhash_key = \"path\"", "");
    let limpet = Limpet::start(&config);
    for path in ["/a", "/b/c", "/d"] {
        let first = get(limpet.addr, "t", path, "").body_text();
        assert_eq!(get(limpet.addr, "other", path, "").body_text(), first);
    }
}
