//! `http::parse_request` on arbitrary bytes, then `write_request_head` on
//! every accepted head; the written head must parse again to the same
//! request line (origin-form for an absolute-form target, whose authority
//! becomes the only Host), Host and body framing. Each input runs with the
//! listeners' default upgrade allow-list (`["websocket"]`) and with one
//! chosen by the input's length and first byte; `upgrade` may only name an
//! offer that list allows. The second run also withholds what header-mode
//! persistence hides (the `X-Session` field, the `sid` query parameter),
//! which the written head must not carry.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use limpet::http::authority;
use limpet::http::{
    parse_request, query, upgrade_matches, write_request_head_withholding, Forwarding, Limits,
    Withheld,
};
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

/// Protocol names an allow-list may hold.
const PROTOCOLS: [&str; 6] = ["websocket", "h2c", "chat", "websocket/13", "tls/1.0", "x"];

fuzz_target!(|data: &[u8]| {
    let default = vec!["websocket".to_owned()];
    let bits = (data.len() as u8) ^ data.first().copied().unwrap_or(0);
    let fuzzed: Vec<String> = PROTOCOLS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, p)| p.to_string())
        .collect();
    check(data, &default, &Withheld::NONE);
    let withheld = Withheld {
        field: Some("x-session"),
        query: Some(b"sid"),
    };
    check(data, &fuzzed, &withheld);
});

fn check(data: &[u8], upgrades: &[String], withheld: &Withheld<'_>) {
    // More slots than the limit, so that the limit is what binds.
    let mut headers = [std::mem::MaybeUninit::uninit(); 64];
    let req = match parse_request(data, &mut headers, &LIMITS, upgrades) {
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
    if let Some(upgrade) = req.upgrade {
        assert_eq!(req.version, limpet::http::Version::Http11, "1.0 upgraded");
        let entry = &upgrades[upgrade.allowed];
        assert!(upgrade_matches(entry.as_bytes(), upgrade.token), "upgrade not allowed");
    }
    let absolute = authority::split_absolute(req.target);
    match absolute {
        Some((auth, origin)) => {
            assert_eq!(req.authority, Some(auth));
            assert_eq!(req.origin, Some(origin));
        }
        None => {
            assert_eq!(req.origin, None);
            assert_eq!(req.authority, req.host.filter(|h| !h.is_empty()));
        }
    }
    if let Some(auth) = req.authority {
        assert_eq!(authority::check(auth), Ok(()), "authority not validated");
    }

    let finder = CookieFinder::new("SERVERID").unwrap();
    let fwd = Forwarding {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        trusted_peer: true,
        proto: "https",
        request_id: b"w0-1-1795237200",
    };
    let mut out = Vec::new();
    write_request_head_withholding(&req, &fwd, withheld, &mut out, |value, out| {
        strip_into(value, &[&finder], out);
    });

    let mut again = [std::mem::MaybeUninit::uninit(); 256];
    let re = match parse_request(&out, &mut again, &REPARSE, upgrades) {
        Ok(Some(re)) => re,
        other => panic!(
            "written head does not parse again: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(re.head_len, out.len());
    assert_eq!(re.method, req.method);
    // The target as it must go out: without the withheld parameter.
    let without = |target: &[u8]| match withheld.query {
        Some(name) => {
            let mut kept = Vec::new();
            query::write_without(target, name, &mut kept);
            kept
        }
        None => target.to_vec(),
    };
    match absolute {
        // Origin-form, the target's authority as the only Host.
        Some((auth, origin)) => {
            assert_eq!(re.origin, None);
            let path = re.target.strip_prefix(b"/".as_slice()).unwrap_or(re.target);
            assert!(re.target.starts_with(b"/"), "not origin-form");
            let origin = without(origin);
            assert!(path == origin || re.target == origin, "path changed");
            assert_eq!(re.host, Some(auth));
        }
        None => {
            assert_eq!(re.target, without(req.target));
            assert_eq!(re.host, req.host);
        }
    }
    assert_eq!(re.authority, req.authority);
    assert_eq!(re.version, req.version);
    assert_eq!(re.body, req.body);
    assert_eq!(re.upgrade.map(|u| u.token), req.upgrade.map(|u| u.token));
    // limpet's request id, once; any received one dropped.
    let ids: Vec<&[u8]> = re
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-request-id"))
        .map(|h| h.value)
        .collect();
    assert_eq!(ids, [fwd.request_id], "X-Request-Id not limpet's alone");
    // Header-mode's token reaches the backend neither way.
    if let Some(name) = withheld.query {
        assert!(query::find_param(re.target, name).is_none(), "sid forwarded");
    }
    if let Some(field) = withheld.field {
        assert!(
            !re.headers.iter().any(|h| h.name.eq_ignore_ascii_case(field)),
            "X-Session forwarded"
        );
    }
    // No persistence cookie leaks to the backend.
    for h in re.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("cookie")) {
        assert!(finder.find(h.value).is_none(), "SERVERID forwarded");
    }
}
