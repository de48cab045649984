//! `http::h2::check_request` on an `http::request::Parts` built from
//! arbitrary bytes, then `h2::write_request_head` on every accepted
//! request; the HTTP/1.1 head the backend would get must parse again with
//! `parse_request` to the same method and origin-form (or `*`) target, one
//! `Host` equal to the effective authority, at most one `Cookie` (the
//! crumbs joined, `SERVERID` stripped), framing that follows
//! `content-length` and `end_stream`, no connection-specific field, and
//! every other field in order.
//!
//! Input: a flags byte (bit 0 `end_stream`, bit 1 trusted peer, bit 2
//! https, bit 3 a request id, bit 4 header-mode persistence withholding
//! the `x-session` field and the `sid` query parameter), then lines split
//! on `\n`: the method (empty:
//! GET), the authority (empty: none, a path-only URI), the path and query
//! (empty: none), then one `name:value` field per line. What the `http`
//! crate refuses to construct is skipped: the `h2` crate would never hand
//! it over. Unlike `h2`, nothing here refuses connection-specific fields
//! or an upper-case name (`http` lower-cases it), so those reach
//! `check_request` and the writer too.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use limpet::http::h2::{check_request, write_request_head};
use limpet::http::{
    is_hop_by_hop, parse_request, query, BodyFraming, Forwarding, Limits, Version, Withheld,
};
use limpet::sticky::cookie::{strip_into, CookieFinder};

/// Fields in one input at most, so that the written head stays below
/// `REPARSE.max_headers` with limpet's own fields added.
const MAX_FIELDS: usize = 128;

const REPARSE: Limits = Limits {
    max_request_line_bytes: 1 << 20,
    max_head_bytes: 1 << 20,
    max_headers: 256,
};

const REQUEST_ID: &[u8] = b"fuzz-request-id-1";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(parts) = build(flags, rest) else {
        return;
    };
    let end_stream = flags & 1 != 0;
    let Ok(req) = check_request(&parts, end_stream) else {
        return;
    };
    assert!(parts.method != http::Method::CONNECT, "CONNECT accepted");

    let finder = CookieFinder::new("SERVERID").unwrap();
    let fwd = Forwarding {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        trusted_peer: flags & 2 != 0,
        proto: if flags & 4 != 0 { "https" } else { "http" },
        request_id: if flags & 8 != 0 { REQUEST_ID } else { b"" },
    };
    let withhold = flags & 16 != 0;
    let withheld = if withhold {
        Withheld {
            field: Some("x-session"),
            query: Some(b"sid"),
        }
    } else {
        Withheld::NONE
    };
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    write_request_head(&req, &fwd, &withheld, &mut out, &mut scratch, |value, out| {
        strip_into(value, &[&finder], out);
    });

    let mut slots = [std::mem::MaybeUninit::uninit(); 256];
    let upgrades = ["websocket".to_owned()];
    let re = match parse_request(&out, &mut slots, &REPARSE, &upgrades) {
        Ok(Some(re)) => re,
        other => panic!(
            "written head does not parse again: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    let shown = String::from_utf8_lossy(&out);
    assert_eq!(re.head_len, out.len(), "{shown}");
    assert_eq!(re.method, parts.method.as_str(), "{shown}");
    assert_eq!(re.version, Version::Http11);
    if withhold {
        let mut target = Vec::new();
        query::write_without(req.path, b"sid", &mut target);
        assert_eq!(re.target, target.as_slice(), "{shown}");
        assert!(query::find_param(re.target, b"sid").is_none(), "{shown}");
    } else {
        assert_eq!(re.target, req.path, "{shown}");
    }
    assert!(
        re.target.starts_with(b"/") || (re.target == b"*" && re.method == "OPTIONS"),
        "not origin-form: {shown}"
    );
    let effective = match parts.uri.authority() {
        Some(a) => a.as_str().as_bytes(),
        None => parts.headers.get(http::header::HOST).unwrap().as_bytes(),
    };
    assert_eq!(req.authority, effective);
    assert_eq!(re.host, Some(effective), "{shown}");
    assert_eq!(re.authority, Some(effective), "{shown}");
    assert_eq!(re.origin, None);
    assert!(re.upgrade.is_none(), "upgraded: {shown}");
    assert!(!re.expect_continue, "Expect forwarded: {shown}");

    // Framing: none when HEADERS ended the stream, else the length the
    // client stated, else chunked; never a body on GET or HEAD (limpet
    // refuses one from an HTTP/1 client too), only `Content-Length: 0`.
    let length = parts.headers.get(http::header::CONTENT_LENGTH).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    let bodiless = matches!(parts.method.as_str(), "GET" | "HEAD");
    let framing = match (end_stream, length) {
        (true, _) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
        (false, None) if bodiless => BodyFraming::Length(0),
        (false, None) => BodyFraming::Chunked,
    };
    if bodiless {
        let empty = matches!(framing, BodyFraming::None | BodyFraming::Length(0));
        assert!(empty, "a body on {}: {shown}", re.method);
    }
    assert_eq!(req.body, framing);
    assert_eq!(re.body, framing, "{shown}");

    // One Cookie: every crumb joined with "; ", then stripped.
    let mut joined = Vec::new();
    for crumb in parts.headers.get_all(http::header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    let mut stripped = Vec::new();
    strip_into(&joined, &[&finder], &mut stripped);
    let cookies: Vec<&[u8]> = named(re.headers, "cookie").collect();
    if stripped.is_empty() {
        assert!(cookies.is_empty(), "an empty Cookie forwarded: {shown}");
    } else {
        assert_eq!(cookies.len(), 1, "{shown}");
        assert_eq!(cookies[0].trim_ascii(), stripped.trim_ascii(), "{shown}");
        assert!(
            finder.find(cookies[0]).is_none(),
            "SERVERID forwarded: {shown}"
        );
    }

    // limpet's own fields, once each.
    let count = |name: &str| named(re.headers, name).count();
    assert_eq!(count("host"), 1, "{shown}");
    assert_eq!(count("x-forwarded-for"), 1, "{shown}");
    assert_eq!(count("x-forwarded-host"), 1, "{shown}");
    assert_eq!(count("x-forwarded-proto"), 1, "{shown}");
    assert_eq!(
        count("x-request-id"),
        usize::from(!fwd.request_id.is_empty())
    );
    assert_eq!(
        count("content-length"),
        usize::from(matches!(framing, BodyFraming::Length(_)))
    );
    assert_eq!(
        count("transfer-encoding"),
        usize::from(framing == BodyFraming::Chunked)
    );
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "expect",
    ] {
        assert_eq!(count(name), 0, "{name} forwarded: {shown}");
    }
    if withhold {
        assert_eq!(count("x-session"), 0, "the session token forwarded: {shown}");
    }

    // Every other field goes through unchanged and in order.
    let sent: Vec<(&[u8], &[u8])> = parts
        .headers
        .iter()
        .filter(|(name, _)| !written_by_limpet(name.as_str()))
        .filter(|(name, _)| !(withhold && name.as_str() == "x-session"))
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
        .collect();
    let got: Vec<(&[u8], &[u8])> = re
        .headers
        .iter()
        .filter(|h| !written_by_limpet(h.name))
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    assert_eq!(got, sent, "{shown}");
});

/// The request of the input, or `None` where `http` refuses a part.
fn build(flags: u8, rest: &[u8]) -> Option<http::request::Parts> {
    let mut lines = rest.split(|&b| b == b'\n');
    let method = lines.next().unwrap_or_default();
    let authority = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let mut builder = http::Request::builder().method(match method {
        [] => http::Method::GET,
        m => http::Method::from_bytes(m).ok()?,
    });
    let mut uri = http::uri::Builder::new();
    if !authority.is_empty() {
        let scheme = if flags & 4 != 0 { "https" } else { "http" };
        uri = uri
            .scheme(scheme)
            .authority(http::uri::Authority::try_from(authority).ok()?);
    }
    if !path.is_empty() {
        uri = uri.path_and_query(http::uri::PathAndQuery::try_from(path).ok()?);
    }
    builder = builder.uri(uri.build().ok()?);
    for line in lines.take(MAX_FIELDS) {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = http::HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = http::HeaderValue::from_bytes(&line[colon + 1..]).ok()?;
        builder = builder.header(name, value);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

/// Fields limpet writes itself, re-states, edits or never forwards.
fn written_by_limpet(name: &str) -> bool {
    is_hop_by_hop(name.as_bytes())
        || [
            "host",
            "cookie",
            "expect",
            "content-length",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-request-id",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

fn named<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}
