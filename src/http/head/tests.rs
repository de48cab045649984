#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::http::request::{parse_request, Limits};
use crate::http::response::parse_response;

const LIMITS: Limits = Limits {
    max_request_line_bytes: 1024,
    max_head_bytes: 4096,
    max_headers: 32,
};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

/// Parses `input`, writes it with `fwd` and a cookie hook that drops the
/// `lb=...` pair, and returns the output as text for readable diffs.
fn forwarded(input: &[u8], fwd: &Forwarding<'_>) -> String {
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    let req = parse_request(input, &mut headers, &LIMITS, &["websocket".to_owned()])
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_request_head(&req, fwd, &mut out, strip_lb);
    String::from_utf8(out).unwrap()
}

/// Stand-in for the persistence layer: forwards every pair but `lb=...`.
fn strip_lb(value: &[u8], out: &mut Vec<u8>) {
    let mut first = true;
    for pair in value
        .split(|&b| b == b';')
        .map(crate::http::field::trim_ows)
    {
        if pair.is_empty() || pair.starts_with(b"lb=") {
            continue;
        }
        if !first {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
        first = false;
    }
}

fn untrusted() -> Forwarding<'static> {
    Forwarding {
        client_ip: CLIENT,
        trusted_peer: false,
        proto: "http",
        request_id: b"",
    }
}

#[test]
fn hop_by_hop_names() {
    for name in [
        "Connection",
        "keep-alive",
        "PROXY-CONNECTION",
        "te",
        "Transfer-Encoding",
        "Upgrade",
        "Trailer",
    ] {
        assert!(is_hop_by_hop(name.as_bytes()), "{name}");
    }
    for name in ["Host", "Trailers", "Cookie", "Content-Length", "tea"] {
        assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
    }
}

#[test]
fn plain_request_gets_forwarding_fields() {
    let out = forwarded(
        b"GET /a HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
        &untrusted(),
    );
    assert_eq!(
        out,
        "GET /a HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n"
    );
}

#[test]
fn untrusted_peer_replaces_x_forwarded_for() {
    let input =
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\n\
                  X-Forwarded-Host: evil\r\n\r\n";
    assert_eq!(
        forwarded(input, &untrusted()),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: a\r\n\r\n"
    );
}

#[test]
fn trusted_peer_appends_to_x_forwarded_for() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for: 3.3.3.3\r\n\r\n";
    let fwd = Forwarding {
        client_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        trusted_peer: true,
        proto: "https",
        request_id: b"",
    };
    assert_eq!(
        forwarded(input, &fwd),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 2001:db8::1\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\r\n"
    );
    // Trusted but nothing to append to: just the peer.
    let fwd = Forwarding {
        trusted_peer: true,
        ..untrusted()
    };
    assert!(forwarded(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &fwd)
        .contains("\r\nX-Forwarded-For: 203.0.113.7\r\n"));
}

#[test]
fn the_request_id_replaces_any_received_one() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: forged\r\nx-request-id: again\r\n\r\n";
    let fwd = Forwarding {
        request_id: b"abc-0-1",
        ..untrusted()
    };
    let out = forwarded(input, &fwd);
    assert!(!out.contains("forged") && !out.contains("again"), "{out}");
    assert_eq!(out.matches("X-Request-Id: abc-0-1\r\n").count(), 1, "{out}");
}

#[test]
fn ipv4_mapped_peer_is_written_as_ipv4() {
    let fwd = Forwarding {
        client_ip: IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        ..untrusted()
    };
    assert!(forwarded(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &fwd)
        .contains("X-Forwarded-For: 10.0.0.1\r\n"));
}

#[test]
fn cookie_values_go_through_the_hook_and_empty_lines_are_dropped() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: lb=abc\r\nAccept: */*\r\ncookie: a=1; lb=xyz; b=2\r\n\r\n";
    assert_eq!(
        forwarded(input, &untrusted()),
        "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\ncookie: a=1; b=2\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
    );
}

#[test]
fn hop_by_hop_and_connection_named_fields_are_removed() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, host\r\nKeep-Alive: 300\r\n\
                  X-Secret: 1\r\nTE: trailers\r\nTrailer: X\r\nProxy-Connection: keep-alive\r\nX-Kept: 2\r\n\r\n";
    assert_eq!(
        forwarded(input, &untrusted()),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: 2\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
    );
    // Names listed across several Connection fields count too.
    let two = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nX-A: 1\r\nX-B: 2\r\nConnection: X-B\r\n\r\n";
    let out = forwarded(two, &untrusted());
    assert!(!out.contains("X-A") && !out.contains("X-B"), "{out}");
    let mut headers = [std::mem::MaybeUninit::uninit(); 8];
    let req = parse_request(two, &mut headers, &LIMITS, &[])
        .unwrap()
        .unwrap();
    assert!(is_named_in_connection(req.headers, b"x-b"));
    assert!(!is_named_in_connection(req.headers, b"host"));
    let mut headers = [std::mem::MaybeUninit::uninit(); 8];
    let req = parse_request(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n",
        &mut headers,
        &LIMITS,
        &[],
    );
    assert!(is_named_in_connection(
        req.unwrap().unwrap().headers,
        b"keep-alive"
    ));
}

#[test]
fn framing_fields_are_restated() {
    let cl = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n";
    assert_eq!(
        forwarded(cl, &untrusted()),
        "POST /p HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: a\r\nContent-Length: 5\r\n\r\n"
    );
    let chunked = b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
    assert_eq!(
        forwarded(chunked, &untrusted()),
        "POST /p HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
}

#[test]
fn upgrade_and_http10_connection_fields() {
    let ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
    assert_eq!(
        forwarded(ws, &untrusted()),
        "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\
         Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    );
    // h2c is not allowed: the upgrade, the Connection tokens naming it and
    // HTTP2-Settings are all removed, and the request is plain HTTP/1.1.
    let h2c = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    assert_eq!(
        forwarded(h2c, &untrusted()),
        "GET / HTTP/1.1\r\nHost: a\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
    );
    // Only the allowed offer goes to the backend.
    let both =
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n";
    assert!(forwarded(both, &untrusted())
        .ends_with("Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
    let old = b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n";
    assert_eq!(
        forwarded(old, &untrusted()),
        "GET / HTTP/1.0\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nConnection: keep-alive\r\n\r\n"
    );
}

/// Parses a response and writes it with a hook that drops `Set-Cookie: lb=`
/// and an `extra` that adds one cookie line.
fn relayed(input: &[u8], head: bool, keep_alive: bool, version: Version) -> String {
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    let resp = parse_response(input, &mut headers, &LIMITS, head)
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_response_head(
        &resp,
        &mut out,
        keep_alive,
        version,
        |value, out| {
            if !value.starts_with(b"lb=") {
                out.extend_from_slice(value);
            }
        },
        |out| out.extend_from_slice(b"Set-Cookie: lb=tok; Path=/\r\n"),
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn response_head_golden() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: lb=old\r\nset-cookie: sid=1\r\n\
                  Connection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\nX-Internal: 1\r\nContent-Length: 12\r\n\r\n";
    assert_eq!(
        relayed(input, false, true, Version::Http11),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nset-cookie: sid=1\r\nContent-Length: 12\r\n\
         Set-Cookie: lb=tok; Path=/\r\n\r\n"
    );
    assert_eq!(
        relayed(input, false, false, Version::Http11),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nset-cookie: sid=1\r\nContent-Length: 12\r\n\
         Set-Cookie: lb=tok; Path=/\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        relayed(input, false, true, Version::Http10),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nset-cookie: sid=1\r\nContent-Length: 12\r\n\
         Set-Cookie: lb=tok; Path=/\r\nConnection: keep-alive\r\n\r\n"
    );
}

#[test]
fn response_framing_fields() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        relayed(chunked, false, true, Version::Http11),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: lb=tok; Path=/\r\n\r\n"
    );
    // A close-delimited body closes the client connection too.
    let until_close = b"HTTP/1.0 200 OK\r\n\r\n";
    assert_eq!(
        relayed(until_close, false, true, Version::Http11),
        "HTTP/1.1 200 OK\r\nSet-Cookie: lb=tok; Path=/\r\nConnection: close\r\n\r\n"
    );
    // HEAD keeps the representation's length; 204 may not carry one.
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    assert!(relayed(head, true, true, Version::Http11).contains("Content-Length: 99\r\n"));
    let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    assert!(!relayed(no_content, false, true, Version::Http11).contains("Content-Length"));
}

#[test]
fn switching_protocols_and_interim_responses() {
    let switch =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Accept: x\r\n\r\n";
    assert_eq!(
        relayed(switch, false, true, Version::Http11),
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\nSet-Cookie: lb=tok; Path=/\r\n\
         Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    );
    let mut headers = [std::mem::MaybeUninit::uninit(); 4];
    let interim = parse_response(
        b"HTTP/1.1 100 Continue\r\n\r\n",
        &mut headers,
        &LIMITS,
        false,
    )
    .unwrap()
    .unwrap();
    let mut out = Vec::new();
    write_response_head(
        &interim,
        &mut out,
        false,
        Version::Http11,
        |_, _| {},
        |_| {},
    );
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn kept_lines_are_copied_byte_exact() {
    let input =
        b"GET / HTTP/1.1\r\nHost:a\r\nX-A:  1  \r\nConnection: x-drop\r\nX-Drop: 1\r\nX-B:\t2\r\n\
                  Cookie: lb=1\r\nX-C: 3\r\n\r\n";
    assert_eq!(
        forwarded(input, &untrusted()),
        "GET / HTTP/1.1\r\nHost:a\r\nX-A:  1  \r\nX-B:\t2\r\nX-C: 3\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
    );
}

#[test]
fn hand_built_heads_are_written_from_their_parts() {
    let headers = [
        httparse::Header {
            name: "Host",
            value: b"a",
        },
        httparse::Header {
            name: "Cookie",
            value: b"x=1; lb=2",
        },
        httparse::Header {
            name: "X-A",
            value: b"1",
        },
    ];
    let req = Request {
        head_len: 0,
        head: b"",
        method: "GET",
        target: b"/",
        version: Version::Http11,
        headers: &headers,
        body: BodyFraming::None,
        keep_alive: true,
        expect_continue: false,
        upgrade: None,
        host: Some(b"a"),
        authority: Some(b"a"),
        origin: None,
    };
    let mut out = Vec::new();
    write_request_head(&req, &untrusted(), &mut out, strip_lb);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\nX-A: 1\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
    );
}

#[test]
fn absolute_form_goes_out_in_origin_form_with_its_authority_as_host() {
    let out = forwarded(
        b"GET http://other.example/x?y HTTP/1.1\r\nX-A: 1\r\nHost: a.example\r\nX-B: 2\r\n\r\n",
        &untrusted(),
    );
    assert_eq!(
        out,
        "GET /x?y HTTP/1.1\r\nHost: other.example\r\nX-A: 1\r\nX-B: 2\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: other.example\r\n\r\n"
    );
    let out = forwarded(
        b"GET HTTP://other.example:81?q HTTP/1.1\r\nHost: a.example\r\n\r\n",
        &untrusted(),
    );
    assert!(
        out.starts_with("GET /?q HTTP/1.1\r\nHost: other.example:81\r\n"),
        "{out}"
    );
    assert!(!out.contains("a.example"), "{out}");
}

#[test]
fn a_withheld_field_and_query_parameter_never_reach_the_backend() {
    let input = b"GET /a?x=1&sid=TOKEN&y=2 HTTP/1.1\r\nHost: h\r\nX-Session: TOKEN\r\nAccept: */*\r\nx-SESSION: again\r\nX-Sessions: kept\r\n\r\n";
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    let req = parse_request(input, &mut headers, &LIMITS, &[])
        .unwrap()
        .unwrap();
    let withheld = Withheld {
        field: Some("x-session"),
        query: Some(b"sid"),
    };
    let mut out = Vec::new();
    write_request_head_withholding(&req, &untrusted(), &withheld, &mut out, strip_lb);
    let head = String::from_utf8(out).unwrap();
    assert!(
        head.starts_with(
            "GET /a?x=1&y=2 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Sessions: kept\r\n"
        ),
        "{head}"
    );
    assert!(!head.contains("TOKEN") && !head.contains("again"), "{head}");

    // Absolute-form: the origin-form path loses it too.
    let input = b"GET http://h/a?sid=TOKEN HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    let req = parse_request(input, &mut headers, &LIMITS, &[])
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_request_head_withholding(&req, &untrusted(), &withheld, &mut out, strip_lb);
    assert!(
        out.starts_with(b"GET /a HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}
