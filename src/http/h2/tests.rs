use super::*;

fn parts(uri: &str, fields: &[(&str, &str)]) -> ::http::request::Parts {
    parts_of("GET", uri, fields)
}

fn parts_of(method: &str, uri: &str, fields: &[(&str, &str)]) -> ::http::request::Parts {
    let mut builder = ::http::Request::builder().method(method).uri(uri);
    for (name, value) in fields {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

const FWD: Forwarding<'static> = Forwarding {
    client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)),
    trusted_peer: false,
    proto: "http",
    request_id: b"",
};

fn head_of(req: &H2Request<'_>) -> String {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    write_request_head(
        req,
        &FWD,
        &Withheld::NONE,
        &mut out,
        &mut scratch,
        |v, out| out.extend_from_slice(v),
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn authority_becomes_host_and_crumbs_are_joined() {
    let p = parts(
        "http://example.com:8080/a?b=1",
        &[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")],
    );
    let req = check_request(&p, true).unwrap();
    assert_eq!(req.authority, b"example.com:8080");
    assert_eq!(req.body, BodyFraming::None);
    assert_eq!(
        head_of(&req),
        "GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\naccept: */*\r\nCookie: a=1; b=2\r\n\
         X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com:8080\r\n\r\n"
    );
}

#[test]
fn host_stands_in_for_a_missing_authority() {
    let p = parts_of("POST", "/x", &[("host", "example.com")]);
    let req = check_request(&p, false).unwrap();
    assert_eq!(req.authority, b"example.com");
    assert_eq!(req.body, BodyFraming::Chunked);
    assert!(head_of(&req).contains("Transfer-Encoding: chunked\r\n"));
}

/// A target, its fields, whether HEADERS ends the stream, the refusal.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool, Malformed);

#[test]
fn malformed_requests_are_named() {
    let cases: &[Case<'_>] = &[
        ("/x", &[], true, Malformed::NoAuthority),
        (
            "http://a.example/x",
            &[("host", "b.example")],
            true,
            Malformed::HostMismatch,
        ),
        (
            "/x",
            &[("host", "a.example"), ("host", "a.example")],
            true,
            Malformed::RepeatedHost,
        ),
        (
            "http://a.example/x",
            &[("content-length", "5")],
            true,
            Malformed::MissingBody,
        ),
        (
            "http://a.example/x",
            &[("content-length", "5"), ("content-length", "6")],
            false,
            Malformed::ConflictingContentLength,
        ),
        (
            "http://a.example/x",
            &[("content-length", "+5")],
            false,
            Malformed::BadContentLength,
        ),
        (
            "http://a.example/x",
            &[("x-a", " padded")],
            false,
            Malformed::ValueWhitespace,
        ),
        (
            "/x",
            &[("host", "a b")],
            false,
            Malformed::BadHost(AuthorityError::BadHost),
        ),
        // Found by fuzz/fuzz_targets/h2_request.rs: forwarded as they were.
        (
            "http://a.example/x",
            &[("content-le-ngth", "1")],
            false,
            Malformed::DisguisedFraming,
        ),
        (
            "http://a.example/x",
            &[("transfer_encoding", "chunked")],
            false,
            Malformed::DisguisedFraming,
        ),
    ];
    for (uri, fields, end, want) in cases {
        let p = parts(uri, fields);
        assert_eq!(
            check_request(&p, *end).unwrap_err(),
            *want,
            "{uri} {fields:?}"
        );
    }
}

#[test]
fn a_length_is_restated() {
    let p = parts_of("PUT", "http://a.example/up", &[("content-length", "11")]);
    let req = check_request(&p, false).unwrap();
    assert_eq!(req.body, BodyFraming::Length(11));
    let head = head_of(&req);
    assert_eq!(head.matches("Content-Length: 11\r\n").count(), 1, "{head}");
    assert!(!head.contains("content-length"), "{head}");
}

/// Found by fuzz/fuzz_targets/h2_request.rs: a GET whose HEADERS did not
/// end the stream went out as `Transfer-Encoding: chunked`, a head that
/// limpet refuses from an HTTP/1 client, as a backend may skip its body.
#[test]
fn get_and_head_never_carry_a_body() {
    for method in ["GET", "HEAD"] {
        let p = parts_of(method, "http://a.example/x", &[]);
        let req = check_request(&p, false).unwrap();
        assert_eq!(req.body, BodyFraming::Length(0), "{method}");
        let head = head_of(&req);
        assert!(head.contains("Content-Length: 0\r\n"), "{head}");
        let mut slots = [std::mem::MaybeUninit::uninit(); 16];
        let limits = crate::http::Limits::default();
        let again = crate::http::parse_request(head.as_bytes(), &mut slots, &limits, &[]);
        assert_eq!(again.unwrap().unwrap().body, BodyFraming::Length(0));

        let zero = parts_of(method, "http://a.example/x", &[("content-length", "0")]);
        let req = check_request(&zero, false).unwrap();
        assert_eq!(req.body, BodyFraming::Length(0), "{method}");
        let one = parts_of(method, "http://a.example/x", &[("content-length", "1")]);
        let refused = check_request(&one, false).unwrap_err();
        assert_eq!(refused, Malformed::BodyOnGetOrHead, "{method}");
        // Ended by its HEADERS: no body either way.
        let req = check_request(&p, true).unwrap();
        assert_eq!(req.body, BodyFraming::None, "{method}");
    }
    let post = parts_of("POST", "http://a.example/x", &[]);
    assert_eq!(
        check_request(&post, false).unwrap().body,
        BodyFraming::Chunked
    );
}

#[test]
fn responses_lose_connection_fields_and_keep_every_set_cookie() {
    let raw =
        b"HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n\
        Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\nabc";
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut storage: Vec<_> = headers
        .iter_mut()
        .map(|h| std::mem::MaybeUninit::new(*h))
        .collect();
    let resp = crate::http::parse_response(raw, &mut storage, &Default::default(), false)
        .unwrap()
        .unwrap();
    let mut scratch = Vec::new();
    let response = response_head(
        &resp,
        &mut scratch,
        |v, out| out.extend_from_slice(v),
        |out| {
            out.extend_from_slice(
                b"Set-Cookie: SRV=s1; Path=/\r\nCache-Control: no-cache=\"set-cookie\"\r\n",
            )
        },
    )
    .unwrap();
    let h = response.headers();
    assert_eq!(response.status(), 200);
    assert!(h.get("x-private").is_none() && h.get("keep-alive").is_none());
    let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2", "SRV=s1; Path=/"]);
    assert_eq!(h.get("content-length").unwrap(), "3");
    assert_eq!(h.get("cache-control").unwrap(), "no-cache=\"set-cookie\"");
}

#[test]
fn trailers_cross_both_ways() {
    let map = parse_trailers(b"grpc-status: 0\r\nTransfer-Encoding: x\r\nx-sum: abc\r\n");
    assert_eq!(map.len(), 2);
    let mut out = Vec::new();
    write_trailers(&map, &mut out);
    assert_eq!(out, b"0\r\ngrpc-status: 0\r\nx-sum: abc\r\n\r\n");
}

#[test]
fn a_withheld_field_and_query_parameter_never_reach_the_backend() {
    let p = parts(
        "http://example.com/a?sid=TOKEN&b=1",
        &[
            ("x-session", "TOKEN"),
            ("accept", "*/*"),
            ("x-sessions", "kept"),
        ],
    );
    let req = check_request(&p, true).unwrap();
    let withheld = Withheld {
        field: Some("x-session"),
        query: Some(b"sid"),
    };
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    write_request_head(&req, &FWD, &withheld, &mut out, &mut scratch, |v, out| {
        out.extend_from_slice(v)
    });
    let head = String::from_utf8(out).unwrap();
    assert!(
        head.starts_with("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\n"),
        "{head}"
    );
    assert!(head.contains("x-sessions: kept\r\n"), "{head}");
    assert!(!head.contains("TOKEN"), "{head}");
}
