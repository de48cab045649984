//! Access log lines (issue 20): Host, User-Agent, the upstream address and
//! the request id in both formats; hostile header values escaped so that
//! a field never ends early; the request id reaching the backend, taken
//! from a trusted proxy and generated for anyone else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use common::*;

/// One worker, one backend `s0`, the access log at `path` in `format`;
/// `listener` adds keys to the listener.
fn logging_config(
    path: &std::path::Path,
    format: &str,
    listener: &str,
    backend: std::net::SocketAddr,
) -> String {
    format!(
        "[workers]\ncount = 1\n\n[[listeners]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\naccess_log = {:?}\naccess_log_format = \"{format}\"\n{listener}\n\n[[groups.web.servers]]\nname = \"s0\"\naddress = \"{backend}\"\n",
        path.display().to_string(),
    )
}

/// limpet with one backend and an access log in `format`; `listener` adds
/// keys to the listener. Returns the log's text after `requests` ran.
fn logged(
    format: &str,
    listener: &str,
    requests: &[&[u8]],
) -> (String, Vec<Received>, std::net::SocketAddr) {
    let received = log();
    let backend = Backend::named("a", received.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let limpet = Limpet::start(&logging_config(&path, format, listener, backend.addr));
    for request in requests {
        let mut client = limpet.client();
        client.send(request);
        let response = client.read_response(false).unwrap();
        assert_eq!(response.status, 200);
    }
    drop(limpet); // stops: every buffered line is written
    let text = std::fs::read_to_string(&path).unwrap();
    let received = received.lock().unwrap().clone();
    (text, received, backend.addr)
}

/// `"`, `\`, a tab and bytes past ASCII: what a header value may hold.
const HOSTILE: &[u8] =
    b"GET /a?q=\\x HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: evil\" ua=\"forged\\ \tx\xc3\xa9\r\n\r\n";

#[test]
fn text_lines_carry_host_agent_upstream_and_id_escaped() {
    let (text, received, backend) = logged("text", "", &[HOSTILE]);
    let line = text.lines().next().unwrap();
    let id = received[0].header("x-request-id").unwrap().to_owned();
    let wanted = "\"GET /a?q=\\\\x\" 200 ";
    assert!(line.contains(wanted), "{line}");
    let tail = format!(
        " server=s0 session=none host=\"shop.test\" ua=\"evil\\\" ua=\\\"forged\\\\ \\x09xé\" upstream={backend} id=\"{id}\""
    );
    assert!(line.ends_with(&tail), "{line}\n{tail}");
    // The forged `ua="forged` never appears as a field of its own.
    assert_eq!(line.matches(" ua=\"").count(), 1, "{line}");
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn json_lines_carry_host_agent_upstream_and_id_escaped() {
    let (text, received, backend) = logged("json", "", &[HOSTILE]);
    let line = text.lines().next().unwrap();
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["request"], "GET /a?q=\\x");
    assert_eq!(value["host"], "shop.test");
    assert_eq!(value["user_agent"], "evil\" ua=\"forged\\ \txé");
    assert_eq!(value["upstream"], backend.to_string());
    assert_eq!(
        value["request_id"],
        received[0].header("x-request-id").unwrap()
    );
    let (text, _, _) = logged("json", "", &[b"GET / HTTP/1.0\r\n\r\n"]);
    let value: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(value["host"], serde_json::Value::Null);
    assert_eq!(value["user_agent"], serde_json::Value::Null);
}

#[test]
fn the_request_id_is_generated_unless_a_trusted_proxy_sent_one() {
    let forged: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: from-client\r\n\r\n";
    let plain: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    // Untrusted: replaced, one id per request, each in the log.
    let (text, received, _) = logged("text", "", &[forged, plain, plain]);
    let ids: Vec<&str> = received
        .iter()
        .map(|r| {
            assert_eq!(r.headers_named("x-request-id").len(), 1);
            r.header("x-request-id").unwrap()
        })
        .collect();
    assert!(!ids.contains(&"from-client"), "{ids:?}");
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    for (line, id) in text.lines().zip(&ids) {
        assert!(line.ends_with(&format!(" id=\"{id}\"")), "{line}");
        // <start>-<worker>-<n>, in hex.
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert!(
            parts.iter().all(|p| u64::from_str_radix(p, 16).is_ok()),
            "{id}"
        );
    }
    // Trusted: kept, and logged as sent.
    let trusted = "trusted_proxies = [\"127.0.0.1\"]";
    let (text, received, _) = logged("text", trusted, &[forged, plain]);
    assert_eq!(received[0].header("x-request-id"), Some("from-client"));
    assert!(text
        .lines()
        .next()
        .unwrap()
        .ends_with(" id=\"from-client\""));
    assert_ne!(received[1].header("x-request-id"), Some("from-client"));
    // A trusted peer's id that could break a line is replaced.
    let bad: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: a b\r\n\r\n";
    let (_, received, _) = logged("text", trusted, &[bad]);
    assert_ne!(received[0].header("x-request-id"), Some("a b"));
}

/// Body bytes read with the backend's head are written to the client
/// behind its head: copied into the head's write when few, by a write of
/// their own when many. Either way the client gets the body whole and the
/// log counts every byte it was sent.
#[test]
fn bodies_read_with_the_head_reach_the_client_whole_and_are_counted() {
    for size in [100usize, 4096, 4097, 10_000, 15_000] {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let answer = [
            format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes(),
            body.clone(),
        ]
        .concat();
        let backend = Backend::respond(move |_| Some(answer.clone()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let limpet = Limpet::start(&logging_config(&path, "json", "", backend.addr));
        let mut client = limpet.client();
        let mut sent = 0;
        for round in 0..2 {
            client.send(b"GET /big HTTP/1.1\r\nHost: a.example\r\n\r\n");
            let response = client.read_response(false).unwrap();
            assert_eq!(response.status, 200, "{size} B, request {round}");
            assert!(response.body == body, "{size} B body, request {round}");
            sent += response.head.len() + size;
        }
        drop(limpet);
        let text = std::fs::read_to_string(&path).unwrap();
        let logged: usize = text
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["bytes"]
                    .as_u64()
                    .unwrap() as usize
            })
            .sum();
        assert_eq!(
            logged, sent,
            "{size} B: logged bytes against bytes received\n{text}"
        );
    }
}
