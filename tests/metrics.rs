//! `/metrics` after a known sequence of requests (issue 19): histogram
//! counts equal the requests made, bytes match what went over the wire,
//! responses by class per server and per listener, in-flight, retries,
//! build information; in both formats. The `#[ignore]` tests run the real
//! parsers (`promtool check metrics`, Python's `prometheus_client`) and need
//! them installed: `.ci/run` installs them and runs `cargo test -- --ignored`,
//! where a missing tool fails the test.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::*;

/// A backend answering `/ok/N` with N bytes, `/missing` with 404 and
/// anything else with 503.
fn sized() -> Backend {
    Backend::respond(|req| {
        let answer = if let Some(n) = req.target.strip_prefix("/ok/") {
            let body = "x".repeat(n.parse().unwrap_or(0));
            ok(&body)
        } else if req.target == "/missing" {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone".to_vec()
        } else {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()
        };
        Some(answer)
    })
}

fn config(addrs: &[SocketAddr]) -> String {
    config_with(
        addrs,
        "balance = \"round_robin\"",
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
}

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a Prometheus 0.0.4 text.
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap();
                let labels = rest
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").unwrap();
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        out.push((name, labels, value));
    }
    out
}

/// The sum of the samples named `name` whose labels include `with`.
fn value(text: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// Sends the known sequence on one connection: 6 `GET /ok/10`, 2
/// `GET /missing`, 1 `POST /ok/3` with a 100-byte body, 1 `GET /fail`.
/// Returns (request bytes sent, response bytes received).
fn known_sequence(limpet: &Limpet) -> (usize, usize) {
    let mut client = limpet.client();
    let (mut sent, mut received) = (0, 0);
    let mut one = |request: String| {
        client.send(request.as_bytes());
        sent += request.len();
        let response = client.read_response(false).unwrap();
        received += response.head.len() + response.body.len();
        response.status
    };
    for _ in 0..6 {
        assert_eq!(one("GET /ok/10 HTTP/1.1\r\nHost: t\r\n\r\n".into()), 200);
    }
    for _ in 0..2 {
        assert_eq!(one("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n".into()), 404);
    }
    let body = "b".repeat(100);
    let post = format!("POST /ok/3 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{body}");
    assert_eq!(one(post), 200);
    assert_eq!(one("GET /fail HTTP/1.1\r\nHost: t\r\n\r\n".into()), 503);
    (sent, received)
}

const REQUESTS: f64 = 10.0;

/// `GET /metrics` with `accept`.
fn scrape(limpet: &Limpet, accept: &str) -> Response {
    let addr = limpet.running().admin_addr().unwrap();
    let mut client = Client::connect(addr);
    client.send(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n").as_bytes(),
    );
    client.read_response(false).unwrap()
}

#[test]
fn histograms_bytes_and_classes_match_a_known_sequence() {
    let (b0, b1) = (sized(), sized());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr]));
    let (sent, received) = known_sequence(&limpet);
    let answer = scrape(&limpet, "text/plain");
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = answer.body_text();

    // Every request is one sample of each per-server latency histogram.
    for histogram in [
        "limpet_request_duration_seconds",
        "limpet_response_head_seconds",
    ] {
        let count = value(&text, &format!("{histogram}_count"), &[]);
        assert_eq!(count, REQUESTS, "{histogram}: {text}");
        let inf = value(&text, &format!("{histogram}_bucket"), &[("le", "+Inf")]);
        assert_eq!(inf, REQUESTS, "{histogram}");
        let sum = value(&text, &format!("{histogram}_sum"), &[]);
        assert!(sum > 0.0 && sum < 10.0, "{histogram} sum {sum}");
        // Round robin: half on each server.
        for server in ["s0", "s1"] {
            let n = value(&text, &format!("{histogram}_count"), &[("server", server)]);
            assert_eq!(n, REQUESTS / 2.0, "{histogram} {server}");
        }
    }
    // One keep-alive backend connection per server: two connects.
    assert_eq!(
        value(&text, "limpet_backend_connect_seconds_count", &[]),
        2.0
    );
    // The bucket bounds run from 0.5 ms to 30 s, cumulative.
    assert!(text.contains("le=\"0.0005\""), "{text}");
    assert!(text.contains("le=\"30\""), "{text}");
    let buckets: Vec<f64> = samples(&text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == "limpet_request_duration_seconds_bucket" && l.iter().any(|(_, v)| v == "s0")
        })
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(buckets.len(), 16);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");

    // Bytes: every request byte (heads and the Content-Length body) and
    // every response byte the client read.
    assert_eq!(
        value(&text, "limpet_server_received_bytes_total", &[]),
        sent as f64
    );
    assert_eq!(
        value(&text, "limpet_server_sent_bytes_total", &[]),
        received as f64
    );

    // Responses by class, per server and per listener.
    let class = |name: &str, class: &str| value(&text, name, &[("class", class)]);
    assert_eq!(class("limpet_server_responses_total", "2xx"), 7.0);
    assert_eq!(class("limpet_server_responses_total", "4xx"), 2.0);
    assert_eq!(class("limpet_server_responses_total", "5xx"), 1.0);
    assert_eq!(
        value(
            &text,
            "limpet_listener_responses_total",
            &[("listener", "test"), ("class", "2xx")]
        ),
        7.0
    );
    assert_eq!(class("limpet_listener_responses_total", "4xx"), 2.0);
    assert_eq!(value(&text, "limpet_requests_total", &[]), REQUESTS);
    assert_eq!(value(&text, "limpet_server_in_flight_requests", &[]), 0.0);
    assert_eq!(value(&text, "limpet_retries_total", &[]), 0.0);

    // Build and process.
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    let build = text
        .lines()
        .find(|l| l.starts_with("limpet_build_info{"))
        .unwrap();
    assert!(
        build.contains(&version) && build.contains("commit=\""),
        "{build}"
    );
    assert!(value(&text, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&text, "process_open_fds", &[]) > 3.0);
    let start = value(&text, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start > now - 3600.0 && start <= now + 1.0,
        "{start} vs {now}"
    );

    // Counters are named with `_total` in HELP and TYPE, as the format wants.
    assert!(text.contains("# TYPE limpet_requests_total counter\n"));
    assert!(text.contains("# HELP limpet_requests_total "));
    assert!(!text.contains("# TYPE limpet_requests counter"));

    // /stats says the same.
    let s0 = limpet.server_stats("s0");
    assert_eq!(s0["latency"]["request"]["count"], 5);
    assert!(s0["latency"]["request"]["p50_ms"].as_f64().unwrap() > 0.0);
    let stats = limpet.stats();
    assert_eq!(stats["requests"], 10);
    assert_eq!(stats["listeners"][0]["responses"]["4xx"], 2);
}

#[test]
fn openmetrics_on_request_with_the_same_numbers() {
    let (b0, b1) = (sized(), sized());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr]));
    known_sequence(&limpet);
    let answer = scrape(
        &limpet,
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = answer.body_text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE limpet_requests counter\n"), "{text}");
    assert!(text.contains("# TYPE limpet_build info\n"), "{text}");
    let om = text.replace("# EOF\n", "");
    assert_eq!(value(&om, "limpet_requests_total", &[]), REQUESTS);
    assert_eq!(
        value(&om, "limpet_request_duration_seconds_count", &[]),
        REQUESTS
    );
}

#[test]
fn in_flight_per_server_counts_a_request_still_waiting() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let slow = Backend::respond(move |_| {
        let _ = rx.lock().unwrap().recv();
        Some(ok("late"))
    });
    let limpet = Limpet::start(&config(&[slow.addr]));
    let mut client = limpet.client();
    client.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    let waiting = eventually(std::time::Duration::from_secs(5), || {
        let text = scrape(&limpet, "text/plain").body_text();
        value(
            &text,
            "limpet_server_in_flight_requests",
            &[("server", "s0")],
        ) == 1.0
    });
    assert!(waiting);
    tx.send(()).unwrap();
    assert_eq!(client.read_response(false).unwrap().status, 200);
    let text = scrape(&limpet, "text/plain").body_text();
    assert_eq!(value(&text, "limpet_server_in_flight_requests", &[]), 0.0);
    assert_eq!(
        value(&text, "limpet_request_duration_seconds_count", &[]),
        1.0
    );
}

/// Runs `program` with `args`, `input` on stdin; its status and output.
/// A missing program is a failure, never a skip.
fn run(program: &str, args: &[&str], input: &str, install: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{program} is needed ({install}): {err}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "needs promtool (apt-get install prometheus); .ci/run runs it"]
fn promtool_check_metrics_passes() {
    let (b0, b1) = (sized(), sized());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr]));
    known_sequence(&limpet);
    let text = scrape(&limpet, "text/plain").body_text();
    let (ok, said) = run(
        "promtool",
        &["check", "metrics"],
        &text,
        "apt-get install prometheus",
    );
    assert!(ok, "promtool check metrics: {said}\n{text}");
    assert!(said.trim().is_empty(), "promtool has remarks: {said}");
}

/// Parses stdin with one of Python's prometheus_client parsers and prints
/// every sample as JSON: [name, labels, value].
const PY_PARSE: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
"#;

fn python_samples(format: &str, text: &str) -> Vec<serde_json::Value> {
    let (ok, said) = run(
        "python3",
        &["-c", PY_PARSE, format],
        text,
        "python3 -m pip install prometheus_client",
    );
    assert!(
        ok,
        "prometheus_client ({format}) refused it: {said}\n{text}"
    );
    serde_json::from_str::<Vec<serde_json::Value>>(&said).unwrap()
}

fn python_value(samples: &[serde_json::Value], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s[0] == name)
        .map(|s| s[2].as_f64().unwrap())
        .sum()
}

#[test]
#[ignore = "needs Python's prometheus_client (pip install prometheus_client); .ci/run runs it"]
fn python_parsers_read_both_formats() {
    let (b0, b1) = (sized(), sized());
    let limpet = Limpet::start(&config(&[b0.addr, b1.addr]));
    known_sequence(&limpet);
    let text = python_samples("text", &scrape(&limpet, "text/plain").body_text());
    let open = python_samples(
        "openmetrics",
        &scrape(&limpet, "application/openmetrics-text").body_text(),
    );
    for samples in [&text, &open] {
        assert_eq!(python_value(samples, "limpet_requests_total"), REQUESTS);
        assert_eq!(
            python_value(samples, "limpet_request_duration_seconds_count"),
            REQUESTS
        );
        assert_eq!(
            python_value(samples, "limpet_server_sent_bytes_total")
                + python_value(samples, "limpet_server_received_bytes_total"),
            python_value(&text, "limpet_server_sent_bytes_total")
                + python_value(&text, "limpet_server_received_bytes_total"),
        );
        let types: Vec<&str> = samples
            .iter()
            .filter(|s| s[0] == "limpet_requests_total")
            .map(|s| s[3].as_str().unwrap())
            .collect();
        assert!(types.iter().all(|t| *t == "counter"), "{types:?}");
        let histogram = samples
            .iter()
            .find(|s| s[0] == "limpet_request_duration_seconds_bucket")
            .unwrap();
        assert_eq!(histogram[3], "histogram");
    }
    assert!(open
        .iter()
        .any(|s| s[0] == "limpet_build_info" && s[3] == "info"));
}
