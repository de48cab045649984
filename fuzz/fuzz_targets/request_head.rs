//! `http::parse_request` on arbitrary bytes, then `write_request_head` on
//! every accepted head; the written head must parse again to the same
//! request line, Host and body framing.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use limpet::http::{parse_request, write_request_head, Forwarding, Limits};
use limpet::sticky::cookie::{strip_into, CookieFinder};

const LIMITS: Limits = Limits {
    max_request_line_bytes: 1024,
    max_head_bytes: 4096,
    max_headers: 32,
};

/// The written head may be larger than the input (X-Forwarded-*).
const REPARSE: Limits = Limits {
    max_request_line_bytes: 1 << 20,
    max_head_bytes: 1 << 20,
    max_headers: 256,
};

fuzz_target!(|data: &[u8]| {
    // More slots than the limit, so that the limit is what binds.
    let mut headers = [std::mem::MaybeUninit::uninit(); 64];
    let req = match parse_request(data, &mut headers, &LIMITS) {
        Ok(Some(req)) => req,
        Ok(None) => {
            assert!(data.len() < LIMITS.max_head_bytes, "partial beyond the head limit");
            return;
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 414 | 431));
            return;
        }
    };
    assert!(req.head_len <= data.len());
    assert!(req.head_len <= LIMITS.max_head_bytes);
    assert_eq!(req.head, &data[..req.head_len]);
    assert!(req.head.ends_with(b"\r\n\r\n"), "head does not end in CRLF CRLF");
    assert!(req.headers.len() <= LIMITS.max_headers);
    assert!(req.method != "CONNECT");
    if req.version == limpet::http::Version::Http11 {
        assert!(req.host.is_some(), "HTTP/1.1 accepted without Host");
    }

    let finder = CookieFinder::new("SERVERID").unwrap();
    let fwd = Forwarding {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        trusted_peer: true,
        proto: "https",
    };
    let mut out = Vec::new();
    write_request_head(&req, &fwd, &mut out, |value, out| {
        strip_into(value, &[&finder], out);
    });

    let mut again = [std::mem::MaybeUninit::uninit(); 256];
    let re = match parse_request(&out, &mut again, &REPARSE) {
        Ok(Some(re)) => re,
        other => panic!(
            "written head does not parse again: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(re.head_len, out.len());
    assert_eq!(re.method, req.method);
    assert_eq!(re.target, req.target);
    assert_eq!(re.version, req.version);
    assert_eq!(re.host, req.host);
    assert_eq!(re.body, req.body);
    assert_eq!(re.upgrade, req.upgrade);
    // No persistence cookie leaks to the backend.
    for h in re.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("cookie")) {
        assert!(finder.find(h.value).is_none(), "SERVERID forwarded");
    }
});
