//! Tests of `parse`/`load`: the example files, the typed result of a few
//! small files, and the exact message (with its line) of every mistake an
//! operator can make.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use super::*;

/// A valid listener and group; error cases put their own keys first so
/// their line numbers read straight from the case.
const BASE: &str = r#"
[[listeners]]
name = "main"
listen = "127.0.0.1:8080"
default_group = "web"

[[groups.web.servers]]
name = "a"
address = "127.0.0.1:9001"
"#;

/// Drops the newline after `r#"` so that line 1 is the first written line.
fn text(case: &str) -> &str {
    case.strip_prefix('\n').unwrap_or(case)
}

fn ok(case: &str) -> Config {
    match parse(text(case), "limpet.toml") {
        Ok(config) => config,
        Err(err) => panic!("{err}\n--- in ---\n{case}"),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Parses each case and compares the whole error message; reports every
/// mismatch at once.
fn assert_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (case, expected) in cases {
        match parse(text(case), "limpet.toml") {
            Ok(_) => failures.push(format!("accepted:\n{case}\n  expected: {expected}")),
            Err(err) if err.to_string() != *expected => {
                failures.push(format!("{case}\n  expected: {expected}\n  got:      {err}"));
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// `prefix` (starting at line 1) followed by `BASE`.
fn with_base(prefix: &str) -> String {
    format!("{}{BASE}", text(prefix))
}

fn assert_prefixed_errors(cases: &[(&str, &str)]) {
    let owned: Vec<(String, &str)> = cases
        .iter()
        .map(|(case, msg)| (with_base(case), *msg))
        .collect();
    let borrowed: Vec<(&str, &str)> = owned
        .iter()
        .map(|(case, msg)| (case.as_str(), *msg))
        .collect();
    assert_errors(&borrowed);
}

#[test]
fn every_example_file_parses() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            if let Err(err) = load(&path) {
                panic!("{err}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} example files");
}

#[test]
fn minimal_file_gets_every_default() {
    let config = ok(BASE);
    let expected = Config {
        log_format: LogFormat::Text,
        workers: Workers {
            count: None,
            cpus: None,
            uring_entries: 1024,
            buffer_bytes: 16384,
            pool_buffers: 1024,
            splice_min_bytes: 65536,
            driver: Driver::Auto,
        },
        limits: Limits {
            max_request_line_bytes: 8192,
            max_head_bytes: 16384,
            max_headers: 100,
            max_connections: 10_000,
            max_connections_per_client: 256,
            min_head_rate: 256,
            min_body_rate: 1024,
            retry_budget_permille: 200,
            h2_max_streams: 100,
            h2_stream_window: 65_535,
            h2_connection_window: 1 << 20,
            h2_max_frame: 16_384,
        },
        timeouts: Timeouts {
            client_head: Duration::from_secs(10),
            client_idle: Duration::from_secs(60),
            client_body: Duration::from_secs(30),
            backend_connect: Duration::from_secs(3),
            backend_response: Duration::from_secs(30),
            backend_idle: Duration::from_secs(30),
            shutdown: Duration::from_secs(10),
            tunnel: Duration::from_secs(3600),
        },
        dns: Dns {
            interval: Duration::from_secs(30),
        },
        listeners: vec![Listener {
            name: "main".into(),
            addr: addr("127.0.0.1:8080"),
            backlog: 1024,
            default_group: Some(GroupIdx(0)),
            routes: vec![],
            trusted_proxies: vec![],
            access_log: None,
            upgrade_protocols: vec!["websocket".into()],
            tls: None,
            http2: true,
        }],
        groups: vec![Group {
            name: "web".into(),
            servers: vec![Server {
                name: "a".into(),
                address: Address::Ip(addr("127.0.0.1:9001")),
                weight: NonZeroU32::MIN,
            }],
            balance: Balance::LeastOutstanding,
            persistence: Persistence::None,
            pool_max_idle_per_server: 1024,
            health: Health::default(),
            tls: None,
        }],
        admin: None,
    };
    assert_eq!(config, expected);
    assert_eq!(config.workers, Workers::default());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.timeouts, Timeouts::default());
}

#[test]
fn full_example_reads_as_documented() {
    let config = load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/full.toml"
    )))
    .unwrap();
    let names: Vec<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["api", "legacy", "web"], "groups are sorted by name");
    assert_eq!(config.group("api"), Some(GroupIdx(0)));
    assert_eq!(config.group("web").map(GroupIdx::index), Some(2));
    assert_eq!(config.group("nope"), None);

    let listener = &config.listeners[0];
    assert_eq!(listener.default_group, config.group("web"));
    assert_eq!(
        listener.routes,
        [
            Route {
                host: Some(HostMatch::Suffix(".example.com".into())),
                path_prefix: Some("/api".into()),
                group: GroupIdx(0),
            },
            Route {
                host: Some(HostMatch::Exact("legacy.example.org".into())),
                path_prefix: None,
                group: GroupIdx(1),
            },
        ]
    );
    let proxies: Vec<String> = listener
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);

    assert_eq!(
        config.groups[0].balance,
        Balance::Hash {
            key: HashKey::Header("x-tenant".into()),
            balance_factor: Some(1.25),
        }
    );
    assert_eq!(
        config.groups[0].servers[1].address,
        Address::Ip(addr("[::1]:9102"))
    );
    let Persistence::Header(header) = &config.groups[0].persistence else {
        panic!("api is header mode");
    };
    assert_eq!(header.header, "X-Session");
    assert_eq!(header.query, None);
    assert_eq!(header.timeout, None);
    assert_eq!(header.tokens, TokenConfig::default());
    let Persistence::Insert(insert) = &config.groups[2].persistence else {
        panic!("web is insert mode");
    };
    assert_eq!(insert.cookie.as_str(), "SERVERID");
    assert_eq!(
        insert.cors_cookie.as_ref().map(CookieName::as_str),
        Some("SERVERCORSID")
    );
    assert_eq!(insert.timeout, Some(Duration::from_secs(30 * 60)));
    assert_eq!(insert.cookie_attrs, CookieAttrs::default());
    assert_eq!(
        insert.tokens,
        TokenConfig {
            secret: Some("a-secret-of-at-least-16-bytes".into()),
            keys: vec![
                "current-signing-key-0001".into(),
                "previous-signing-key-0001".into()
            ],
            max_age: Some(Duration::from_secs(7 * 86_400)),
            max_idle: Some(Duration::from_secs(86_400)),
        }
    );
    assert_eq!(
        config.groups[2].servers[1].weight,
        NonZeroU32::new(2).unwrap()
    );
    let Persistence::Rewrite(rewrite) = &config.groups[1].persistence else {
        panic!("legacy is rewrite mode");
    };
    assert_eq!(rewrite.cookie.as_str(), "JSESSIONID");
    assert_eq!(rewrite.tokens, TokenConfig::default());
    assert_eq!(
        config.admin,
        Some(Admin {
            addr: addr("127.0.0.1:9901"),
            token: None
        })
    );
}

#[test]
fn workers_and_durations_read_as_written() {
    let config = ok(&with_base(
        r#"
[workers]
count = 2
cpus = [3, 1]
[timeouts]
client_head = "1m30s"
backend_idle = "1year"
"#,
    ));
    assert_eq!(config.workers.count, NonZeroUsize::new(2));
    assert_eq!(config.workers.cpus, Some(vec![3, 1]));
    assert_eq!(config.timeouts.client_head, Duration::from_secs(90));
    assert_eq!(config.timeouts.backend_idle, duration::MAX);
}

#[test]
fn insert_defaults_and_cors_off() {
    let group = |persistence: &str| {
        let config = ok(&format!("{BASE}[groups.web.persistence]\n{persistence}"));
        config.groups[0].persistence.clone()
    };
    let Persistence::Insert(insert) = group("mode = \"insert\"\n") else {
        panic!()
    };
    assert_eq!(insert.cookie.as_str(), "SERVERID");
    assert_eq!(
        insert.cors_cookie.as_ref().map(CookieName::as_str),
        Some("SERVERCORSID")
    );
    assert_eq!(insert.timeout, None);
    assert_eq!(insert.tokens, TokenConfig::default());

    let Persistence::Insert(insert) = group("mode = \"insert\"\ncors = false\ncookie = \"SID\"\nsecure = false\ndomain = \".Example.com\"\n") else {
        panic!()
    };
    assert_eq!(insert.cookie.as_str(), "SID");
    assert_eq!(insert.cors_cookie, None);
    assert_eq!(insert.cookie_attrs.secure, Some(false));
    assert_eq!(insert.cookie_attrs.domain.as_deref(), Some(".Example.com"));

    assert_eq!(group("mode = \"none\"\n"), Persistence::None);
    assert_eq!(insert.on_server_down, OnServerDown::Move);

    let Persistence::Insert(insert) = group("mode = \"insert\"\nsecure = true\nsame_site = \"None\"\npartitioned = true\non_server_down = \"refuse\"\n") else {
        panic!()
    };
    assert_eq!(insert.cookie_attrs.same_site, Some(SameSite::None));
    assert!(insert.cookie_attrs.partitioned);
    assert_eq!(insert.on_server_down, OnServerDown::Refuse);
    assert!(Persistence::Insert(insert).refuses_moves());
    let Persistence::Insert(insert) = group("mode = \"insert\"\nsame_site = \"Lax\"\n") else {
        panic!()
    };
    assert_eq!(insert.cookie_attrs.same_site, Some(SameSite::Lax));
}

#[test]
fn header_mode_keys() {
    let group = |persistence: &str| {
        let config = ok(&format!("{BASE}[groups.web.persistence]\n{persistence}"));
        config.groups[0].persistence.clone()
    };
    let Persistence::Header(header) = group("mode = \"header\"\nheader = \"X-Session\"\n") else {
        panic!()
    };
    assert_eq!(header.header, "X-Session");
    assert_eq!(header.query, None);
    assert_eq!(header.timeout, None);
    assert_eq!(header.tokens, TokenConfig::default());
    assert_eq!(header.on_server_down, OnServerDown::Move);

    let Persistence::Header(header) = group(
        "mode = \"header\"\nheader = \"x-api-affinity\"\nquery = \"lb_session\"\nkeys = [\"a-signing-key-of-16b\"]\ntimeout = \"10m\"\nmax_idle = \"1h\"\non_server_down = \"refuse\"\ntoken_secret = \"a-token-secret-16by\"\n",
    ) else {
        panic!()
    };
    assert_eq!(header.header, "x-api-affinity");
    assert_eq!(header.query.as_deref(), Some("lb_session"));
    assert_eq!(header.timeout, Some(Duration::from_secs(600)));
    assert_eq!(header.tokens.keys.len(), 1);
    assert_eq!(header.tokens.max_idle, Some(Duration::from_secs(3600)));
    assert!(Persistence::Header(header).refuses_moves());
}

#[test]
fn header_mode_rules() {
    // `[groups.web.persistence]` is line 5, `mode` line 6, `header` line 7.
    let persistence = |keys: &str| format!("[groups.web.persistence]\n{keys}\n{SERVER}");
    let header = |keys: &str| {
        persistence(&format!(
            "mode = \"header\"\nheader = \"X-Session\"\n{keys}"
        ))
    };
    let mut cases = Vec::new();
    for (key, value) in [
        ("cookie", "\"SID\""),
        ("cors_cookie", "\"SIDC\""),
        ("cors", "false"),
        ("path", "\"/\""),
        ("domain", "\"example.com\""),
        ("http_only", "true"),
        ("secure", "true"),
        ("same_site", "\"Lax\""),
        ("partitioned", "false"),
    ] {
        cases.push((
            header(&format!("{key} = {value}")),
            format!("limpet.toml:8: groups.web.persistence.{key} applies only to the cookie modes (insert, rewrite), not mode = \"header\""),
        ));
    }
    let fixed = [
        (persistence("mode = \"header\""), "limpet.toml:6: groups.web.persistence.header is required with mode = \"header\""),
        (persistence("mode = \"header\"\nquery = \"sid\""), "limpet.toml:6: groups.web.persistence.header is required with mode = \"header\""),
        (header("timeout = \"10m\""), "limpet.toml:8: groups.web.persistence.timeout needs signed tokens in mode = \"header\": set groups.web.persistence.keys"),
        (header("max_age = \"10m\""), "limpet.toml:8: groups.web.persistence.max_age needs signed tokens: set groups.web.persistence.keys"),
        (header("keys = [\"a-signing-key-of-16b\"]\ntimeout = \"0s\""), "limpet.toml:9: groups.web.persistence.timeout must be at least 1s"),
        (persistence("mode = \"header\"\nheader = \"X Session\""), "limpet.toml:7: groups.web.persistence.header \"X Session\" is not a valid header name (1 to 64 of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~)"),
        (persistence("mode = \"header\"\nheader = \"\""), "limpet.toml:7: groups.web.persistence.header \"\" is not a valid header name (1 to 64 of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~)"),
        (persistence("mode = \"header\"\nheader = \"Cookie\""), "limpet.toml:7: groups.web.persistence.header \"Cookie\" cannot carry the token: limpet handles cookie itself"),
        (persistence("mode = \"header\"\nheader = \"connection\""), "limpet.toml:7: groups.web.persistence.header \"connection\" cannot carry the token: limpet handles connection itself"),
        (header("query = \"a&b\""), "limpet.toml:8: groups.web.persistence.query \"a&b\" is not a valid query parameter name (1 to 64 of A-Z a-z 0-9 - . _ ~)"),
        (header("query = \"\""), "limpet.toml:8: groups.web.persistence.query \"\" is not a valid query parameter name (1 to 64 of A-Z a-z 0-9 - . _ ~)"),
        (persistence("mode = \"insert\"\nheader = \"X-Session\""), "limpet.toml:7: groups.web.persistence.header applies only to mode = \"header\", not \"insert\""),
        (persistence("mode = \"rewrite\"\ncookie = \"A\"\nquery = \"sid\""), "limpet.toml:8: groups.web.persistence.query applies only to mode = \"header\", not \"rewrite\""),
        (persistence("mode = \"none\"\nheader = \"X-Session\""), "limpet.toml:7: groups.web.persistence.header is not allowed with mode = \"none\""),
    ];
    cases.extend(fixed.into_iter().map(|(case, msg)| (case, msg.to_owned())));
    let borrowed: Vec<(&str, &str)> = cases
        .iter()
        .map(|(case, msg)| (case.as_str(), msg.as_str()))
        .collect();
    assert_group_errors(&borrowed);
}

#[test]
fn hosts_and_hash_keys_are_normalized() {
    let route_host = |host: &str| {
        let config = ok(&format!(
            "{BASE}[[listeners.routes]]\nhost = {host:?}\ngroup = \"web\"\n"
        ));
        config.listeners[0].routes[0].host.clone()
    };
    assert_eq!(
        route_host("Example.COM"),
        Some(HostMatch::Exact("example.com".into()))
    );
    assert_eq!(
        route_host("example.com:8080"),
        Some(HostMatch::Exact("example.com".into()))
    );
    assert_eq!(
        route_host("*.Example.com:443"),
        Some(HostMatch::Suffix(".example.com".into()))
    );
    assert_eq!(
        route_host("[::1]:8080"),
        Some(HostMatch::Exact("[::1]".into()))
    );
    assert_eq!(
        route_host("10.0.0.1"),
        Some(HostMatch::Exact("10.0.0.1".into()))
    );

    let hash_key = |key: &str| {
        let config = ok(&format!(
            "{BASE}[groups.web]\nbalance = \"hash\"\nhash_key = {key:?}\nbalance_factor = 2\n"
        ));
        config.groups[0].balance.clone()
    };
    let hash = |key| Balance::Hash {
        key,
        balance_factor: Some(2.0),
    };
    assert_eq!(hash_key("client_ip"), hash(HashKey::ClientIp));
    assert_eq!(hash_key("path"), hash(HashKey::Path));
    assert_eq!(
        hash_key("cookie:Sess"),
        hash(HashKey::Cookie("Sess".into()))
    );
    assert_eq!(
        hash_key("header:X-User"),
        hash(HashKey::Header("x-user".into()))
    );
}

#[test]
fn other_accepted_corners() {
    // Two listeners on port 0 get different ports from the OS.
    let config = ok(r#"
[[listeners]]
name = "a"
listen = "127.0.0.1:0"
default_group = "web"
[[listeners]]
name = "b"
listen = "127.0.0.1:0"
default_group = "web"
[admin]
listen = "0.0.0.0:9901"
token = "0123456789abcdef"
[groups.web]
servers = [{ name = "a", address = "127.0.0.1:9001" }]
balance = "round_robin"
"#);
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.groups[0].balance, Balance::RoundRobin);
    assert_eq!(
        config.admin.map(|a| a.token),
        Some(Some("0123456789abcdef".into()))
    );
}

#[test]
fn load_names_the_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = load(&missing).unwrap_err();
    assert_eq!(err.line(), None);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot read {}: ", missing.display())),
        "{message}"
    );

    let file = dir.path().join("limpet.toml");
    std::fs::write(&file, format!("[workers]\nbuffer_bytes = 0\n{BASE}")).unwrap();
    let message = load(&file).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}:2: workers.buffer_bytes must be at least 4096",
            file.display()
        )
    );
}

#[test]
fn syntax_and_shape_errors_keep_path_and_line() {
    // The key path comes from serde_path_to_error and the line from toml's
    // span; both survive `Spanned` values and `[[array]]` tables.
    assert_errors(&[
        ("[workers\ncount = 1\n", "limpet.toml:1: invalid table header: expected `.`, `]`"),
        ("[workers]\ncount = 1\ncount = 2\n", "limpet.toml:3: duplicate key `count` in table `workers`"),
        (
            "[workers]\ncount = 1\ncont = 2\n",
            "limpet.toml:3: workers.cont: unknown field `cont`, expected one of `count`, `cpus`, `uring_entries`, `buffer_bytes`, `pool_buffers`, `splice_min_bytes`, `driver`",
        ),
        (
            "# a comment\n[worker]\ncount = 1\n",
            "limpet.toml:2: worker: unknown field `worker`, expected one of `workers`, `limits`, `timeouts`, `dns`, `log`, `admin`, `listeners`, `groups`",
        ),
        ("[workers]\ncount = \"4\"\n", "limpet.toml:2: workers.count: invalid type: string \"4\", expected an integer"),
        ("[workers]\ncpus = [1, \"2\"]\n", "limpet.toml:2: workers.cpus[1]: invalid type: string \"2\", expected an integer"),
        ("[timeouts]\nclient_head = 10\n", "limpet.toml:2: timeouts.client_head: invalid type: integer `10`, expected a duration such as \"10s\""),
        ("# a comment\n[[listeners]]\nlisten = \"127.0.0.1:80\"\n", "limpet.toml:2: listeners[0]: missing field `name`"),
        (
            "[groups.web]\nbalance = \"fastest\"\n",
            "limpet.toml:2: groups.web.balance: unknown variant `fastest`, expected one of `least_outstanding`, `round_robin`, `random_two`, `hash`",
        ),
        (
            "[[groups.web.servers]]\nname = \"a\"\nadress = \"127.0.0.1:1\"\n",
            "limpet.toml:3: groups.web.servers[0].adress: unknown field `adress`, expected one of `name`, `address`, `weight`",
        ),
        ("[[groups.web.servers]]\nname = \"a\"\nweight = 1.5\n", "limpet.toml:3: groups.web.servers[0].weight: invalid type: floating point `1.5`, expected an integer"),
        (
            "[groups.web.persistence]\nmode = \"sticky\"\n",
            "limpet.toml:2: groups.web.persistence.mode: unknown variant `sticky`, expected one of `none`, `insert`, `rewrite`, `header`",
        ),
        ("[groups.web.persistence]\ncookie = \"A\"\n", "limpet.toml:1: groups.web.persistence: missing field `mode`"),
        ("[groups.web]\nservers = { name = \"a\" }\n", "limpet.toml:2: groups.web.servers: invalid type: map, expected a sequence"),
    ]);
}

#[test]
fn file_level_rules() {
    assert_errors(&[
        (
            "[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n",
            "limpet.toml: listeners must define at least one listener ([[listeners]])",
        ),
        (
            "[[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:80\"\n",
            "limpet.toml: groups must define at least one group ([groups.NAME])",
        ),
    ]);
}

#[test]
fn worker_rules() {
    assert_prefixed_errors(&[
        (
            "[workers]\ncount = 0\n",
            "limpet.toml:2: workers.count must be at least 1",
        ),
        (
            "[workers]\ncount = 2000\n",
            "limpet.toml:2: workers.count must be at most 1024",
        ),
        (
            "[workers]\ncpus = []\n",
            "limpet.toml:2: workers.cpus must list at least one CPU",
        ),
        (
            "[workers]\ncpus = [0,\n  -1]\n",
            "limpet.toml:3: workers.cpus[1] must be at least 0",
        ),
        (
            "[workers]\ncpus = [1024]\n",
            "limpet.toml:2: workers.cpus[0] must be at most 1023",
        ),
        (
            "[workers]\ncpus = [0, 1,\n  0]\n",
            "limpet.toml:3: workers.cpus[2] repeats CPU 0",
        ),
        (
            "[workers]\ncpus = [0, 1]\ncount = 4\n",
            "limpet.toml:3: workers.count is 4 but workers.cpus lists 2 CPUs",
        ),
        (
            "[workers]\nuring_entries = 100\n",
            "limpet.toml:2: workers.uring_entries must be at least 256",
        ),
        (
            "[workers]\nuring_entries = 65536\n",
            "limpet.toml:2: workers.uring_entries must be at most 32768",
        ),
        (
            "[workers]\nbuffer_bytes = 1024\n",
            "limpet.toml:2: workers.buffer_bytes must be at least 4096",
        ),
        (
            "[workers]\nbuffer_bytes = 2097152\n",
            "limpet.toml:2: workers.buffer_bytes must be at most 1048576",
        ),
        (
            "[workers]\npool_buffers = -1\n",
            "limpet.toml:2: workers.pool_buffers must be at least 0",
        ),
    ]);
}

#[test]
fn limit_rules() {
    assert_prefixed_errors(&[
        ("[limits]\nmax_request_line_bytes = 10\n", "limpet.toml:2: limits.max_request_line_bytes must be at least 64"),
        ("[limits]\nmax_head_bytes = 100\n", "limpet.toml:2: limits.max_head_bytes must be at least 1024"),
        ("[limits]\nmax_headers = 0\n", "limpet.toml:2: limits.max_headers must be at least 1"),
        ("[limits]\nmax_headers = 257\n", "limpet.toml:2: limits.max_headers must be at most 256"),
        ("[limits]\nmax_connections = 0\n", "limpet.toml:2: limits.max_connections must be at least 1"),
        (
            "[limits]\nmax_request_line_bytes = 20000\n",
            "limpet.toml:2: limits.max_request_line_bytes must be at most limits.max_head_bytes (16384)",
        ),
        (
            "[limits]\nmax_head_bytes = 4096\nmax_request_line_bytes = 8192\n",
            "limpet.toml:3: limits.max_request_line_bytes must be at most limits.max_head_bytes (4096)",
        ),
        (
            "[limits]\nmax_head_bytes = 4096\n",
            "limpet.toml:2: limits.max_head_bytes must be at least limits.max_request_line_bytes (8192)",
        ),
        (
            "[workers]\nbuffer_bytes = 8192\n[limits]\nmax_head_bytes = 32768\n",
            "limpet.toml:4: limits.max_head_bytes must be at most workers.buffer_bytes (8192)",
        ),
        (
            "[workers]\nbuffer_bytes = 8192\n",
            "limpet.toml:2: workers.buffer_bytes must be at least limits.max_head_bytes (16384)",
        ),
    ]);
}

#[test]
fn timeout_rules() {
    assert_prefixed_errors(&[
        (
            "[timeouts]\nclient_head = \"10 parsecs\"\n",
            "limpet.toml:2: timeouts.client_head \"10 parsecs\" is not a duration such as \"10s\", \"1m30s\" or \"500ms\" (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations))",
        ),
        (
            "[timeouts]\nclient_idle = \"30\"\n",
            "limpet.toml:2: timeouts.client_idle \"30\" is not a duration such as \"10s\", \"1m30s\" or \"500ms\" (time unit needed, for example 30sec or 30ms)",
        ),
        ("[timeouts]\nbackend_connect = \"0s\"\n", "limpet.toml:2: timeouts.backend_connect must be at least 1ms"),
        ("[dns]\ninterval = \"50ms\"\n", "limpet.toml:2: dns.interval must be at least 100ms"),
        ("[dns]\ninterval = \"2years\"\n", "limpet.toml:2: dns.interval must be at most 1year"),
        ("[dns]\nevery = \"1s\"\n", "limpet.toml:2: dns.every: unknown field `every`, expected `interval`"),
        ("[timeouts]\nbackend_response = \"2years\"\n", "limpet.toml:2: timeouts.backend_response must be at most 1year"),
        ("[timeouts]\nclient_idle = \"-1s\"\n", "limpet.toml:2: timeouts.client_idle \"-1s\" is not a duration such as \"10s\", \"1m30s\" or \"500ms\" (expected number at 0)"),
    ]);
}

#[test]
fn admin_rules() {
    assert_prefixed_errors(&[
        ("[admin]\nlisten = \"localhost:9901\"\n", "limpet.toml:2: admin.listen \"localhost:9901\" names a host; a listening address must be an IP address and port such as \"127.0.0.1:8080\" (only server addresses may be names)"),
        ("[admin]\nlisten = \"9901\"\n", "limpet.toml:2: admin.listen \"9901\" is not an IP address and port such as \"127.0.0.1:8080\" or \"[::1]:8080\""),
        ("[admin]\nlisten = \"0.0.0.0:9901\"\n", "limpet.toml:2: admin.listen 0.0.0.0:9901 is not a loopback address; set admin.token to listen there"),
        ("[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"short\"\n", "limpet.toml:3: admin.token must be at least 16 bytes long"),
        ("[admin]\nlisten = \"127.0.0.1:9901\"\ntoken = \"with a space in it!\"\n", "limpet.toml:3: admin.token may contain only visible ASCII characters"),
        ("[admin]\nlisten = \"127.0.0.1:8080\"\n", "limpet.toml:2: admin.listen 127.0.0.1:8080 is already used by listeners[0]"),
    ]);
}

#[test]
fn listener_rules() {
    let listener = |body: &str| {
        format!("[[listeners]]\n{body}\n[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n")
    };
    let cases = [
        (listener("name = \"main\"\nlisten = \"127.0.0.1:80\""), "limpet.toml:2: listeners[0] needs a default_group or at least one [[listeners.routes]]"),
        (listener("name = \"my listener\"\nlisten = \"127.0.0.1:80\""), "limpet.toml:2: listeners[0].name \"my listener\" is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)"),
        (listener("name = \"main\"\nlisten = \"example.com:80\""), "limpet.toml:3: listeners[0].listen \"example.com:80\" names a host; a listening address must be an IP address and port such as \"127.0.0.1:8080\" (only server addresses may be names)"),
        (listener("name = \"main\"\nlisten = \"::1:80\""), "limpet.toml:3: listeners[0].listen \"::1:80\" is not an IP address and port such as \"127.0.0.1:8080\" or \"[::1]:8080\""),
        (listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\nbacklog = 0"), "limpet.toml:4: listeners[0].backlog must be at least 1"),
        (listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"wbe\""), "limpet.toml:4: listeners[0].default_group \"wbe\" is not a group; groups: web"),
        (
            listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"web\"\ntrusted_proxies = [\"10.0.0.0/8\", \"ten\"]"),
            "limpet.toml:5: listeners[0].trusted_proxies[1] \"ten\" is not an IP address or a range such as \"10.0.0.0/8\"",
        ),
        (
            listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"web\"\ntrusted_proxies = [\"10.1.2.3/8\"]"),
            "limpet.toml:5: listeners[0].trusted_proxies[0] \"10.1.2.3/8\" has bits set after the prefix; write \"10.0.0.0/8\"",
        ),
        (
            listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\n[[listeners]]\nname = \"m\"\nlisten = \"127.0.0.1:81\"\ndefault_group = \"web\""),
            "limpet.toml:2: listeners[0] needs a default_group or at least one [[listeners.routes]]",
        ),
        (
            listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"web\"\n[[listeners]]\nname = \"m\"\nlisten = \"127.0.0.1:81\"\ndefault_group = \"web\""),
            "limpet.toml:6: listeners[1].name \"m\" is already used by listeners[0]",
        ),
        (
            listener("name = \"m\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"web\"\n[[listeners]]\nname = \"n\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"web\""),
            "limpet.toml:7: listeners[1].listen 127.0.0.1:80 is already used by listeners[0]",
        ),
    ];
    let borrowed: Vec<(&str, &str)> = cases
        .iter()
        .map(|(case, msg)| (case.as_str(), *msg))
        .collect();
    assert_errors(&borrowed);
}

#[test]
fn route_rules() {
    // BASE is 8 lines; each case's route starts on line 9.
    let route = |body: &str| format!("{}[[listeners.routes]]\n{body}\n", text(BASE));
    let cases = [
        (route("group = \"web\""), "limpet.toml:10: listeners[0].routes[0] needs a host or a path_prefix (default_group takes the rest)"),
        (route("host = \"a.com\"\ngroup = \"api\""), "limpet.toml:11: listeners[0].routes[0].group \"api\" is not a group; groups: web"),
        (route("host = \"a b.com\"\ngroup = \"web\""), "limpet.toml:10: listeners[0].routes[0].host \"a b.com\" is not a host such as \"example.com\" or \"*.example.com\""),
        (route("host = \"*example.com\"\ngroup = \"web\""), "limpet.toml:10: listeners[0].routes[0].host \"*example.com\" is not a host such as \"example.com\" or \"*.example.com\""),
        (route("host = \"a.com:http\"\ngroup = \"web\""), "limpet.toml:10: listeners[0].routes[0].host \"a.com:http\" is not a host such as \"example.com\" or \"*.example.com\""),
        (route("host = \"[::1\"\ngroup = \"web\""), "limpet.toml:10: listeners[0].routes[0].host \"[::1\" is not a host such as \"example.com\" or \"*.example.com\""),
        (route("path_prefix = \"api\"\ngroup = \"web\""), "limpet.toml:10: listeners[0].routes[0].path_prefix \"api\" must start with /"),
        (
            route("path_prefix = \"/a?b\"\ngroup = \"web\""),
            "limpet.toml:10: listeners[0].routes[0].path_prefix \"/a?b\" may contain only visible ASCII characters other than ? and #",
        ),
        (
            route("host = \"A.com\"\ngroup = \"web\"\n[[listeners.routes]]\nhost = \"a.com:80\"\ngroup = \"web\""),
            "limpet.toml:14: listeners[0].routes[1] repeats the host and path_prefix of listeners[0].routes[0], which always wins",
        ),
    ];
    let borrowed: Vec<(&str, &str)> = cases
        .iter()
        .map(|(case, msg)| (case.as_str(), *msg))
        .collect();
    assert_errors(&borrowed);
}

/// A listener for group `web`, then `group` starting on line 5.
fn with_listener(group: &str) -> String {
    format!("[[listeners]]\nname = \"m\"\nlisten = \"127.0.0.1:80\"\ndefault_group = \"web\"\n{group}\n")
}

fn assert_group_errors(cases: &[(&str, &str)]) {
    let owned: Vec<(String, &str)> = cases
        .iter()
        .map(|(case, msg)| (with_listener(case), *msg))
        .collect();
    let borrowed: Vec<(&str, &str)> = owned
        .iter()
        .map(|(case, msg)| (case.as_str(), *msg))
        .collect();
    assert_errors(&borrowed);
}

const SERVER: &str = "[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"";

#[test]
fn group_and_server_rules() {
    assert_group_errors(&[
        ("[groups.web]\nbalance = \"round_robin\"", "limpet.toml:5: groups.web needs at least one server ([[groups.web.servers]])"),
        ("[groups.web]", "limpet.toml:5: groups.web needs at least one server ([[groups.web.servers]])"),
        (
            "[[groups.\"my web\".servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"",
            "limpet.toml:5: groups \"my web\" is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)",
        ),
        ("[[groups.web.servers]]\nname = \"\"\naddress = \"127.0.0.1:9001\"", "limpet.toml:6: groups.web.servers[0].name \"\" is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)"),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:0\"", "limpet.toml:7: groups.web.servers[0].address \"127.0.0.1:0\" needs a port other than 0"),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"backend.internal:0\"", "limpet.toml:7: groups.web.servers[0].address \"backend.internal:0\" needs a port other than 0"),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"backend.internal:65536\"", "limpet.toml:7: groups.web.servers[0].address \"backend.internal:65536\" has a port above 65535"),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"backend.internal\"", "limpet.toml:7: groups.web.servers[0].address \"backend.internal\" is not an IP address and port such as \"127.0.0.1:8080\" or \"[::1]:8080\""),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"bad host:80\"", "limpet.toml:7: groups.web.servers[0].address \"bad host:80\" is not an IP address and port such as \"127.0.0.1:8080\" or \"[::1]:8080\""),
        (
            "[groups.web]\nservers = [\n  { name = \"a\", address = \"api.internal:80\" },\n  { name = \"b\", address = \"API.internal:80\" },\n]",
            "limpet.toml:8: groups.web.servers[1].address api.internal:80 is already used by groups.web.servers[0]",
        ),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1\"", "limpet.toml:7: groups.web.servers[0].address \"127.0.0.1\" is not an IP address and port such as \"127.0.0.1:8080\" or \"[::1]:8080\""),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\nweight = 0", "limpet.toml:8: groups.web.servers[0].weight must be at least 1"),
        ("[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\nweight = 257", "limpet.toml:8: groups.web.servers[0].weight must be at most 256"),
        (
            "[groups.web]\nservers = [\n  { name = \"a\", address = \"127.0.0.1:9001\" },\n  { name = \"a\", address = \"127.0.0.1:9002\" },\n]",
            "limpet.toml:8: groups.web.servers[1].name \"a\" is already used by groups.web.servers[0]",
        ),
        (
            "[groups.web]\nservers = [\n  { name = \"a\", address = \"127.0.0.1:9001\" },\n  { name = \"b\", address = \"127.0.0.1:9001\" },\n]",
            "limpet.toml:8: groups.web.servers[1].address 127.0.0.1:9001 is already used by groups.web.servers[0]",
        ),
        (
            "[groups.web]\npool_max_idle_per_server = -1\n[[groups.web.servers]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"",
            "limpet.toml:6: groups.web.pool_max_idle_per_server must be at least 0",
        ),
    ]);
}

#[test]
fn balance_rules() {
    let group = |keys: &str| format!("[groups.web]\n{keys}\n{SERVER}");
    let cases = [
        (
            group("balance = \"hash\""),
            "limpet.toml:6: groups.web.hash_key is required with balance = \"hash\"",
        ),
        (
            group("hash_key = \"path\""),
            "limpet.toml:6: groups.web.hash_key applies only to balance = \"hash\"",
        ),
        (
            group("balance = \"random_two\"\nbalance_factor = 1.5"),
            "limpet.toml:7: groups.web.balance_factor applies only to balance = \"hash\"",
        ),
        (
            group("balance = \"hash\"\nhash_key = \"path\"\nbalance_factor = 0.5"),
            "limpet.toml:8: groups.web.balance_factor must be a number of at least 1.0",
        ),
        (
            group("balance = \"hash\"\nhash_key = \"path\"\nbalance_factor = inf"),
            "limpet.toml:8: groups.web.balance_factor must be a number of at least 1.0",
        ),
        (
            group("balance = \"hash\"\nhash_key = \"path\"\nbalance_factor = nan"),
            "limpet.toml:8: groups.web.balance_factor must be a number of at least 1.0",
        ),
    ];
    let hash_key_error = "must be \\\"client_ip\\\", \\\"path\\\", \\\"cookie:NAME\\\" or \\\"header:NAME\\\" (NAME: 1 to 64 of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~)";
    let hash_key_error = hash_key_error.replace("\\\"", "\"");
    let bad_keys = [
        "ip",
        "cookie:",
        "cookie:a b",
        "header:",
        "header:X:Y",
        "Path",
    ];
    let bad_key_cases: Vec<(String, String)> = bad_keys
        .iter()
        .map(|key| {
            (
                group(&format!("balance = \"hash\"\nhash_key = {key:?}")),
                format!("limpet.toml:7: groups.web.hash_key {key:?} {hash_key_error}"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = cases
        .iter()
        .map(|(case, msg)| (case.as_str(), *msg))
        .chain(
            bad_key_cases
                .iter()
                .map(|(case, msg)| (case.as_str(), msg.as_str())),
        )
        .collect();
    assert_group_errors(&borrowed);
}

#[test]
fn persistence_rules() {
    // `[groups.web.persistence]` is line 5, its first key line 6.
    let persistence = |keys: &str| format!("[groups.web.persistence]\n{keys}\n{SERVER}");
    let cases = [
        (persistence("mode = \"none\"\ncookie = \"A\""), "limpet.toml:7: groups.web.persistence.cookie is not allowed with mode = \"none\""),
        (persistence("mode = \"none\"\nkeys = []"), "limpet.toml:7: groups.web.persistence.keys is not allowed with mode = \"none\""),
        (persistence("mode = \"rewrite\""), "limpet.toml:6: groups.web.persistence.cookie is required with mode = \"rewrite\""),
        (persistence("mode = \"rewrite\"\ncookie = \"A\"\ntimeout = \"1h\""), "limpet.toml:8: groups.web.persistence.timeout applies only to mode = \"insert\""),
        (persistence("mode = \"rewrite\"\ncookie = \"A\"\ncors = false"), "limpet.toml:8: groups.web.persistence.cors applies only to mode = \"insert\""),
        (persistence("mode = \"rewrite\"\ncors_cookie = \"B\"\ncookie = \"A\""), "limpet.toml:7: groups.web.persistence.cors_cookie applies only to mode = \"insert\""),
        (
            persistence("mode = \"rewrite\"\ncookie = \"JSESSION ID\""),
            "limpet.toml:7: groups.web.persistence.cookie \"JSESSION ID\" is not a valid cookie name (1 to 64 of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~)",
        ),
        (
            persistence("mode = \"insert\"\ncors_cookie = \"a=b\""),
            "limpet.toml:7: groups.web.persistence.cors_cookie \"a=b\" is not a valid cookie name (1 to 64 of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~)",
        ),
        (persistence("mode = \"insert\"\ncookie = \"S\"\ncors_cookie = \"S\""), "limpet.toml:8: groups.web.persistence.cors_cookie must differ from groups.web.persistence.cookie (\"S\")"),
        (persistence("mode = \"insert\"\ncors_cookie = \"SERVERID\""), "limpet.toml:7: groups.web.persistence.cors_cookie must differ from groups.web.persistence.cookie (\"SERVERID\")"),
        (persistence("mode = \"insert\"\ncookie = \"SERVERCORSID\""), "limpet.toml:7: groups.web.persistence.cookie must differ from groups.web.persistence.cors_cookie (\"SERVERCORSID\")"),
        (persistence("mode = \"insert\"\ncors = false\ncors_cookie = \"B\""), "limpet.toml:8: groups.web.persistence.cors_cookie is set but cors = false"),
        (persistence("mode = \"insert\"\ntimeout = \"500ms\""), "limpet.toml:7: groups.web.persistence.timeout must be at least 1s"),
        (
            persistence("mode = \"insert\"\ntimeout = \"ten minutes\""),
            "limpet.toml:7: groups.web.persistence.timeout \"ten minutes\" is not a duration such as \"10s\", \"1m30s\" or \"500ms\" (expected number at 0)",
        ),
        (persistence("mode = \"insert\"\nmax_age = \"1h\""), "limpet.toml:7: groups.web.persistence.max_age needs signed tokens: set groups.web.persistence.keys"),
        (persistence("mode = \"insert\"\nkeys = []\nmax_idle = \"1h\""), "limpet.toml:8: groups.web.persistence.max_idle needs signed tokens: set groups.web.persistence.keys"),
        (persistence("mode = \"insert\"\nkeys = [\"0123456789abcdef\"]\nmax_idle = \"0s\""), "limpet.toml:8: groups.web.persistence.max_idle must be at least 1s"),
        (
            persistence("mode = \"insert\"\nkeys = [\n  \"0123456789abcdef\",\n  \"\",\n]"),
            "limpet.toml:9: groups.web.persistence.keys[1] must be at least 16 bytes long",
        ),
        (persistence("mode = \"rewrite\"\ncookie = \"A\"\ntoken_secret = \"secret\""), "limpet.toml:8: groups.web.persistence.token_secret must be at least 16 bytes long"),
        (persistence("mode = \"insert\"\npath = \"app\""), "limpet.toml:7: groups.web.persistence.path \"app\" must start with /"),
        (persistence("mode = \"insert\"\npath = \"/a;Secure\""), "limpet.toml:7: groups.web.persistence.path \"/a;Secure\" must not contain ; or control characters"),
        (persistence("mode = \"insert\"\ndomain = \"example..com\""), "limpet.toml:7: groups.web.persistence.domain \"example..com\" is not a valid domain"),
        (persistence("mode = \"insert\"\ndomain = \"\""), "limpet.toml:7: groups.web.persistence.domain \"\" is not a valid domain"),
        (persistence("mode = \"insert\"\nsame_site = \"None\""), "limpet.toml:7: groups.web.persistence.same_site \"None\" needs secure = true written in groups.web.persistence"),
        (persistence("mode = \"insert\"\nsecure = false\nsame_site = \"None\""), "limpet.toml:8: groups.web.persistence.same_site \"None\" needs secure = true written in groups.web.persistence"),
        (persistence("mode = \"insert\"\npartitioned = true"), "limpet.toml:7: groups.web.persistence.partitioned true needs secure = true written in groups.web.persistence"),
        (persistence("mode = \"rewrite\"\ncookie = \"A\"\npartitioned = true"), "limpet.toml:8: groups.web.persistence.partitioned true needs secure = true written in groups.web.persistence"),
        (persistence("mode = \"none\"\non_server_down = \"refuse\""), "limpet.toml:7: groups.web.persistence.on_server_down is not allowed with mode = \"none\""),
    ];
    let borrowed: Vec<(&str, &str)> = cases
        .iter()
        .map(|(case, msg)| (case.as_str(), *msg))
        .collect();
    assert_group_errors(&borrowed);
}

/// Answers for a few names; `.invalid` names never resolve (RFC 6761).
struct FakeDns;

impl crate::dns::Resolve for FakeDns {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match host {
            "api.internal" => Ok(vec![
                SocketAddr::new([10, 0, 0, 7].into(), port),
                SocketAddr::new([10, 0, 0, 8].into(), port),
            ]),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "Name or service not known",
            )),
        }
    }
}

#[test]
fn server_addresses_may_be_host_names() {
    let case = with_listener(
        "[dns]\ninterval = \"100ms\"\n[groups.web]\nservers = [\n  { name = \"a\", address = \"API.internal:8080\" },\n  { name = \"b\", address = \"10.0.0.7:8080\" },\n]",
    );
    let config = ok(&case);
    assert_eq!(config.dns.interval, Duration::from_millis(100));
    let a = &config.groups[0].servers[0].address;
    assert_eq!(
        *a,
        Address::Name {
            host: "api.internal".into(),
            port: 8080
        }
    );
    assert_eq!(a.to_string(), "api.internal:8080");
    assert_eq!(a.ip(), None);
    // A name and an IP address it resolves to are different servers as written.
    let (_, resolved) = crate::dns::parse_resolved(text(&case), "limpet.toml", &FakeDns).unwrap();
    assert_eq!(
        resolved.server(0, 0),
        [addr("10.0.0.7:8080"), addr("10.0.0.8:8080")]
    );
    assert_eq!(resolved.server(0, 1), [addr("10.0.0.7:8080")]);
}

#[test]
fn a_server_name_that_does_not_resolve_is_a_config_error() {
    let case = with_listener(
        "[[groups.web.servers]]\nname = \"a\"\naddress = \"api.internal:80\"\n[[groups.web.servers]]\nname = \"b\"\naddress = \"gone.invalid:80\"",
    );
    // Parsing alone never resolves.
    assert!(parse(text(&case), "limpet.toml").is_ok());
    let err = crate::dns::parse_resolved(text(&case), "limpet.toml", &FakeDns).unwrap_err();
    assert_eq!(
        err.to_string(),
        "limpet.toml:10: groups.web.servers[1].address \"gone.invalid:80\" does not resolve: Name or service not known"
    );
    assert_eq!(err.line(), Some(10));
}

#[test]
fn resilience_limits_have_defaults_knobs_and_ranges() {
    let case = with_listener(
        "[limits]\nretry_budget = 0.05\nmax_connections_per_client = 0\nmin_head_rate = 0\nmin_body_rate = 64\n[[groups.web.servers]]\nname = \"a\"\naddress = \"10.0.0.7:80\"",
    );
    let limits = ok(&case).limits;
    assert_eq!(limits.retry_budget_permille, 50);
    assert_eq!(limits.max_connections_per_client, 0);
    assert_eq!(limits.min_head_rate, 0);
    assert_eq!(limits.min_body_rate, 64);
    let bad = with_listener("[limits]\nretry_budget = 1.5\n[[groups.web.servers]]\nname = \"a\"\naddress = \"10.0.0.7:80\"");
    let err = parse(text(&bad), "limpet.toml").unwrap_err().to_string();
    assert!(
        err.contains("limits.retry_budget") && err.contains("between 0.0 and 1.0"),
        "{err}"
    );
}
