#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::*;

const LIMITS: Limits = Limits {
    max_request_line_bytes: 1024,
    max_head_bytes: 4096,
    max_headers: 32,
};

/// The listeners' default allow-list.
fn websocket() -> [String; 1] {
    ["websocket".to_owned()]
}

/// Parses with roomy storage and hands the request to `check`.
fn with_request(buf: &[u8], check: impl FnOnce(Request<'_, '_>)) {
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    match parse_request(buf, &mut headers, &LIMITS, &websocket()) {
        Ok(Some(req)) => check(req),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn refused_with(buf: &[u8], limits: &Limits) -> RequestError {
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    match parse_request(buf, &mut headers, limits, &[]) {
        Err(e) => e,
        other => panic!(
            "{:?} was not refused: {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn refused(buf: &[u8]) -> RequestError {
    refused_with(buf, &LIMITS)
}

#[test]
fn typical_get() {
    let buf = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nNEXT";
    with_request(buf, |r| {
        assert_eq!(r.head_len, buf.len() - 4);
        assert_eq!(
            (r.method, r.target, r.version),
            ("GET", &b"/a?b=c"[..], Version::Http11)
        );
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.body, BodyFraming::None);
        assert!(r.keep_alive && !r.expect_continue && r.upgrade.is_none());
        assert_eq!(r.host, Some(&b"example.com"[..]));
        assert!(r.is_idempotent() && !r.is_head());
    });
}

#[test]
fn body_framings() {
    let framing = |buf: &[u8]| {
        let mut out = None;
        with_request(buf, |r| out = Some(r.body));
        out.unwrap()
    };
    assert_eq!(
        framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
        BodyFraming::Length(5)
    );
    assert_eq!(
        framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
        BodyFraming::Length(0)
    );
    assert_eq!(
        framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
        BodyFraming::Length(5)
    );
    assert_eq!(
        framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        BodyFraming::Length(5)
    );
    assert_eq!(
        framing(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        BodyFraming::Chunked
    );
    assert_eq!(
        framing(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
        BodyFraming::Chunked
    );
}

#[test]
fn connection_facts() {
    let facts = |buf: &[u8]| {
        let mut out = None;
        with_request(buf, |r| {
            out = Some((r.keep_alive, r.expect_continue, r.upgrade.is_some()))
        });
        out.unwrap()
    };
    assert_eq!(
        facts(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        (false, false, false)
    );
    assert_eq!(facts(b"GET / HTTP/1.0\r\n\r\n"), (false, false, false));
    assert_eq!(
        facts(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
        (true, false, false)
    );
    assert_eq!(
        facts(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
        (true, true, false)
    );
    assert_eq!(
        facts(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
        (false, false, false)
    );
    assert_eq!(
        facts(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        (true, false, true)
    );
    // Both halves are needed, and 1.0 cannot upgrade.
    assert_eq!(
        facts(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
        (true, false, false)
    );
    assert_eq!(
        facts(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"),
        (true, false, false)
    );
    assert_eq!(
        facts(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
        (false, false, false)
    );
}

#[test]
fn accepted_forms() {
    with_request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", |r| {
        assert_eq!(r.target, b"*")
    });
    with_request(b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", |r| {
        assert_eq!(r.target, b"http://a/b")
    });
    with_request(b"GET HTTPS://a/ HTTP/1.1\r\nHost: a\r\n\r\n", |r| {
        assert_eq!(r.target, b"HTTPS://a/")
    });
    with_request(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", |r| {
        assert_eq!(r.head_len, 31)
    });
    with_request(b"GET / HTTP/1.0\r\nHost: [::1]:8080\r\n\r\n", |r| {
        assert_eq!(r.host, Some(&b"[::1]:8080"[..]))
    });
    with_request(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", |r| {
        assert_eq!(r.host, Some(&b""[..]))
    });
    with_request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", |r| {
        assert!(r.is_head() && r.is_idempotent())
    });
    with_request(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", |r| {
        assert!(!r.is_idempotent())
    });
    with_request(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \xe2\x82\xac\t ok\r\n\r\n",
        |r| {
            assert_eq!(r.headers[1].value, "€\t ok".as_bytes());
        },
    );
}

#[test]
fn each_refusal_has_its_own_error_and_status() {
    use RequestError as E;
    let cases: &[(&[u8], RequestError)] = &[
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", E::LengthAndTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", E::LengthAndTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", E::ConflictingContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", E::ConflictingContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", E::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", E::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", E::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\n", E::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", E::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", E::BadContentLength),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", E::UnsupportedTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", E::UnsupportedTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", E::UnsupportedTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", E::UnsupportedTransferEncoding),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", E::UnsupportedTransferEncoding),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", E::TransferEncodingOnHttp10),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", E::SpaceBeforeColon),
        (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", E::SpaceBeforeColon),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", E::BadHeaderValue),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", E::BadHeaderValue),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", E::BadHeaderValue),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n", E::BadHeaderValue),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", E::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", E::BadHeaderName),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", E::ObsFold),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", E::ObsFold),
        (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", E::ObsFold),
        (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", E::MissingColon),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", E::BareLf),
        (b"GET / HTTP/1.1\r\nHost: a\n\r\n", E::BareLf),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", E::BareLf),
        (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", E::BareLf),
        (b"GET / HTTP/1.1\r\nHost: a\nX: \x00\r\n\r\n", E::BareLf),
        (b"GET / HTTP/1.1\r\n\r\n", E::MissingHost),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", E::RepeatedHost),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", E::RepeatedHost),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a.example:99999x\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", E::BadHost),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", E::BadHost),
        (
            b"GET http://a.example:99999/ HTTP/1.1\r\nHost: a\r\n\r\n",
            E::BadAuthority(AuthorityError::BadPort),
        ),
        (
            b"GET http://u@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n",
            E::BadAuthority(AuthorityError::BadHost),
        ),
        (
            b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
            E::BadAuthority(AuthorityError::EmptyHost),
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", E::BadVersion),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", E::BadVersion),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", E::BadVersion),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", E::BadVersion),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLineWhitespace),
        (b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLineWhitespace),
        (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", E::RequestLineWhitespace),
        (b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLineWhitespace),
        (b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLineWhitespace),
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", E::RequestLineWhitespace),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", E::BadRequestLine),
        (b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", E::BadRequestLine),
        (b"GET\r\n\r\n", E::BadRequestLine),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", E::Connect),
        (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", E::BadTarget),
        (b"GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", E::BadTarget),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", E::BadTarget),
        (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", E::BadTarget),
    ];
    for (input, want) in cases {
        let got = refused(input);
        assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(got.status(), 400);
    }
}

#[test]
fn incomplete_heads_ask_for_more() {
    let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for cut in 0..full.len() {
        let mut headers = [std::mem::MaybeUninit::uninit(); 4];
        assert_eq!(
            parse_request(&full[..cut], &mut headers, &LIMITS, &[]),
            Ok(None),
            "cut at {cut}"
        );
    }
}

#[test]
fn long_request_line_is_414_first() {
    let limits = Limits {
        max_request_line_bytes: 32,
        max_head_bytes: 64,
        max_headers: 8,
    };
    let line = b"GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n"; // 39 bytes
                                                              // Incomplete, complete, and longer than the head limit: always 414.
    assert_eq!(
        refused_with(&line[..32], &limits),
        RequestError::RequestLineTooLong
    );
    let mut head = line.to_vec();
    head.extend_from_slice(b"Host: a\r\n\r\n");
    assert_eq!(
        refused_with(&head, &limits),
        RequestError::RequestLineTooLong
    );
    let mut huge = b"GET /".to_vec();
    huge.resize(200, b'a');
    assert_eq!(
        refused_with(&huge, &limits),
        RequestError::RequestLineTooLong
    );
    assert_eq!(RequestError::RequestLineTooLong.status(), 414);
    // A line of exactly the limit, CRLF included, is fine.
    let exact = b"GET /aaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut headers = [std::mem::MaybeUninit::uninit(); 8];
    assert!(parse_request(exact, &mut headers, &limits, &[])
        .unwrap()
        .is_some());
    // Shorter than the limit and incomplete: wait.
    assert_eq!(
        parse_request(&line[..31], &mut headers, &limits, &[]),
        Ok(None)
    );
}

#[test]
fn large_heads_and_many_fields_are_431() {
    let limits = Limits {
        max_request_line_bytes: 64,
        max_head_bytes: 48,
        max_headers: 2,
    };
    let exact = b"GET / HTTP/1.1\r\nHost: a\r\nX: bbbbbbbbbbbbbbbb\r\n\r\n";
    assert_eq!(exact.len(), 48);
    let mut headers = [std::mem::MaybeUninit::uninit(); 8];
    assert_eq!(
        parse_request(exact, &mut headers, &limits, &[])
            .unwrap()
            .unwrap()
            .head_len,
        48
    );
    let over = b"GET / HTTP/1.1\r\nHost: a\r\nX: bbbbbbbbbbbbbbbbb\r\n\r\n";
    assert_eq!(refused_with(over, &limits), RequestError::HeadTooLarge);
    assert_eq!(
        refused_with(&over[..48], &limits),
        RequestError::HeadTooLarge
    );
    assert_eq!(
        parse_request(&over[..47], &mut headers, &limits, &[]),
        Ok(None)
    );
    let three = b"GET / HTTP/1.1\r\nHost: a\r\nB: c\r\nD: e\r\n\r\n";
    assert_eq!(refused_with(three, &limits), RequestError::TooManyHeaders);
    assert_eq!(RequestError::HeadTooLarge.status(), 431);
    assert_eq!(RequestError::TooManyHeaders.status(), 431);
    // The caller's storage caps the count too.
    let roomy = Limits {
        max_headers: 100,
        ..LIMITS
    };
    let mut two = [std::mem::MaybeUninit::uninit(); 2];
    assert_eq!(
        parse_request(three, &mut two, &roomy, &[]),
        Err(RequestError::TooManyHeaders)
    );
}

fn runner() -> TestRunner {
    let config = Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Raw bytes, and bytes drawn from the alphabet of heads so that the
    // parser gets deep into the field section.
    let raw = proptest::collection::vec(any::<u8>(), 0..600);
    let heady = proptest::collection::vec(
        prop::sample::select(&b"GET / HTTP/1.1\r\n:Host; a,Content-Length 0x\t\0chunked"[..]),
        0..600,
    );
    let small = Limits {
        max_request_line_bytes: 40,
        max_head_bytes: 300,
        max_headers: 4,
    };
    for strategy in [raw.boxed(), heady.boxed()] {
        runner()
            .run(&strategy, |bytes| {
                for limits in [&LIMITS, &small] {
                    let mut headers = [std::mem::MaybeUninit::uninit(); 8];
                    let _ = parse_request(&bytes, &mut headers, limits, &[]);
                }
                Ok(())
            })
            .unwrap();
    }
}

/// A valid request head built from parts, plus a body that must not matter.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
    ]);
    let path = "/[a-zA-Z0-9._~%/?=&-]{0,40}";
    let version = prop::sample::select(vec!["HTTP/1.0", "HTTP/1.1"]);
    let host = "[a-z0-9.-]{1,20}(:[1-5][0-9]{0,3})?";
    let field = ("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}")
        .prop_filter("framing fields are generated on purpose", |(n, _)| {
            // Nor in disguise (`Content--Length`): that is refused.
            let n = n.to_ascii_lowercase().replace('-', "");
            !matches!(n.as_str(), "host" | "contentlength" | "transferencoding")
        })
        .prop_map(|(n, v)| format!("{n}: {}\r\n", v.trim()));
    let fields = proptest::collection::vec(field, 0..12);
    let framing = prop::sample::select(vec![
        "",
        "Content-Length: 3\r\n",
        "Transfer-Encoding: chunked\r\n",
    ]);
    (method, path, version, host, fields, framing, "[ -~]{0,20}").prop_map(
        |(method, path, version, host, fields, framing, body)| {
            // No chunked on HTTP/1.0, no body on GET or HEAD: both refused.
            let bodiless = method == "GET" || method == "HEAD";
            let framing = if bodiless || (version == "HTTP/1.0" && framing.starts_with("Transfer"))
            {
                ""
            } else {
                framing
            };
            format!(
                "{method} {path} {version}\r\nHost: {host}\r\n{}{framing}\r\n{body}",
                fields.concat()
            )
            .into_bytes()
        },
    )
}

#[test]
fn valid_requests_parse_the_same_when_fed_in_two_pieces() {
    runner()
        .run(
            &(valid_request(), any::<prop::sample::Index>()),
            |(buf, index)| {
                let mut headers = [std::mem::MaybeUninit::uninit(); 32];
                let whole = parse_request(&buf, &mut headers, &LIMITS, &[])
                    .unwrap()
                    .unwrap();
                let cut = index.index(whole.head_len);
                let mut first = [std::mem::MaybeUninit::uninit(); 32];
                prop_assert_eq!(
                    parse_request(&buf[..cut], &mut first, &LIMITS, &[]),
                    Ok(None)
                );
                let mut second = [std::mem::MaybeUninit::uninit(); 32];
                let again = parse_request(&buf[..whole.head_len], &mut second, &LIMITS, &[])
                    .unwrap()
                    .unwrap();
                prop_assert_eq!(again, whole);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn framing_fields_in_disguise_are_refused() {
    for name in [
        "Content_Length",
        "Transfer_Encoding",
        "Transfer---Encoding",
        "transfer___encoding",
        "CONTENT-_-LENGTH",
    ] {
        let head = format!("POST / HTTP/1.1\r\nHost: a\r\n{name}: 5\r\n\r\n");
        assert_eq!(
            refused(head.as_bytes()),
            RequestError::DisguisedFraming,
            "{name}"
        );
    }
    with_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nX_Content_Type: 1\r\n\r\n",
        |_| {},
    );
}

#[test]
fn a_body_on_get_or_head_is_refused() {
    for head in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 22\r\n\r\n"[..],
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(refused(head), RequestError::BodyOnGetOrHead);
    }
    with_request(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        |r| {
            assert_eq!(r.body, BodyFraming::Length(0));
        },
    );
}

#[test]
fn the_absolute_form_authority_is_the_effective_authority() {
    let mut headers = [std::mem::MaybeUninit::uninit(); 32];
    let buf = b"GET http://other.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n";
    let req = parse_request(buf, &mut headers, &LIMITS, &[])
        .unwrap()
        .unwrap();
    assert_eq!(req.authority, Some(&b"other.example"[..]));
    assert_eq!(req.origin, Some(&b"/x?y"[..]));
    assert_eq!(req.host, Some(&b"a.example"[..]));

    let buf = b"GET /x HTTP/1.1\r\nHost: a.example:8080\r\n\r\n";
    let req = parse_request(buf, &mut headers, &LIMITS, &[])
        .unwrap()
        .unwrap();
    assert_eq!(req.authority, Some(&b"a.example:8080"[..]));
    assert_eq!(req.origin, None);

    let buf = b"GET /x HTTP/1.0\r\nHost: \r\n\r\n";
    let req = parse_request(buf, &mut headers, &LIMITS, &[])
        .unwrap()
        .unwrap();
    assert_eq!(req.authority, None);
}

#[test]
fn only_allowed_protocols_upgrade() {
    let upgrade = |buf: &[u8], allowed: &[&str]| {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let mut headers = [std::mem::MaybeUninit::uninit(); 32];
        let req = parse_request(buf, &mut headers, &LIMITS, &allowed)
            .unwrap()
            .unwrap();
        req.upgrade
            .map(|u| (String::from_utf8_lossy(u.token).into_owned(), u.allowed))
    };
    let h2c = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    assert_eq!(upgrade(h2c, &["websocket"]), None);
    assert_eq!(upgrade(h2c, &[]), None);
    let ws =
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c, WebSocket/13\r\n\r\n";
    assert_eq!(
        upgrade(ws, &["websocket"]),
        Some(("WebSocket/13".into(), 0))
    );
    assert_eq!(
        upgrade(ws, &["foo", "websocket/13"]),
        Some(("WebSocket/13".into(), 1))
    );
    assert_eq!(upgrade(ws, &["websocket/12"]), None);
    assert_eq!(upgrade(ws, &[]), None);
    assert!(upgrade_matches(b"websocket", b"WEBSOCKET"));
    assert!(!upgrade_matches(b"websocket", b"websockets"));
}
