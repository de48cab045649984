use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use crate::sticky::test_support::runner;

/// `Sat, 21 Nov 2026 05:10:00 GMT` minus the 600 s timeout.
const NOW: u64 = 1_795_237_200;

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn date(secs: u64) -> String {
    let mut out = Vec::new();
    write_imf_fixdate(secs, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn golden_insert_pair() {
    let attrs = CookieAttrs::default();
    let cookie = InsertCookie::build("SERVERID", Some("SERVERCORSID"), Some(600), &attrs).unwrap();
    let mut out = Vec::new();
    cookie.write_headers(b"C-mIWZZDPTM", NOW, &mut out);
    assert_eq!(
        text(&out),
        "Set-Cookie: SERVERID=C-mIWZZDPTM; Path=/; Max-Age=600; Expires=Sat, 21 Nov 2026 05:10:00 GMT; HttpOnly\r\n\
         Set-Cookie: SERVERCORSID=C-mIWZZDPTM; Path=/; Max-Age=600; Expires=Sat, 21 Nov 2026 05:10:00 GMT; HttpOnly; Secure; SameSite=None\r\n"
    );
}

#[test]
fn every_attribute_in_order() {
    let attrs = CookieAttrs {
        path: "/app",
        domain: Some("example.com"),
        http_only: true,
        secure: true,
        ..CookieAttrs::default()
    };
    let cookie = InsertCookie::build("SID", None, Some(60), &attrs).unwrap();
    let mut out = Vec::new();
    cookie.write_headers(b"tok", 0, &mut out);
    assert_eq!(
        text(&out),
        "Set-Cookie: SID=tok; Path=/app; Domain=example.com; Max-Age=60; Expires=Thu, 01 Jan 1970 00:01:00 GMT; HttpOnly; Secure\r\n"
    );
}

/// Every `same_site` × `partitioned` combination, byte for byte: the
/// attribute order of SPEC §3.5 (`SameSite` then `Partitioned`), and no
/// twin when the main cookie is `SameSite=None` already.
#[test]
fn golden_same_site_and_partitioned() {
    let head = "Path=/; Max-Age=600; Expires=Sat, 21 Nov 2026 05:10:00 GMT; HttpOnly; Secure";
    let twin =
        |extra: &str| format!("Set-Cookie: SERVERCORSID=tok; {head}; SameSite=None{extra}\r\n");
    let cases: [(Option<SameSite>, bool, String); 8] = [
        (
            None,
            false,
            format!("Set-Cookie: SERVERID=tok; {head}\r\n{}", twin("")),
        ),
        (
            None,
            true,
            format!(
                "Set-Cookie: SERVERID=tok; {head}; Partitioned\r\n{}",
                twin("; Partitioned")
            ),
        ),
        (
            Some(SameSite::Lax),
            false,
            format!(
                "Set-Cookie: SERVERID=tok; {head}; SameSite=Lax\r\n{}",
                twin("")
            ),
        ),
        (
            Some(SameSite::Lax),
            true,
            format!(
                "Set-Cookie: SERVERID=tok; {head}; SameSite=Lax; Partitioned\r\n{}",
                twin("; Partitioned")
            ),
        ),
        (
            Some(SameSite::Strict),
            false,
            format!(
                "Set-Cookie: SERVERID=tok; {head}; SameSite=Strict\r\n{}",
                twin("")
            ),
        ),
        (
            Some(SameSite::Strict),
            true,
            format!(
                "Set-Cookie: SERVERID=tok; {head}; SameSite=Strict; Partitioned\r\n{}",
                twin("; Partitioned")
            ),
        ),
        (
            Some(SameSite::None),
            false,
            format!("Set-Cookie: SERVERID=tok; {head}; SameSite=None\r\n"),
        ),
        (
            Some(SameSite::None),
            true,
            format!("Set-Cookie: SERVERID=tok; {head}; SameSite=None; Partitioned\r\n"),
        ),
    ];
    for (same_site, partitioned, want) in cases {
        let attrs = CookieAttrs {
            secure: true,
            same_site,
            partitioned,
            ..CookieAttrs::default()
        };
        let cookie =
            InsertCookie::build("SERVERID", Some("SERVERCORSID"), Some(600), &attrs).unwrap();
        let mut out = Vec::new();
        cookie.write_headers(b"tok", NOW, &mut out);
        assert_eq!(text(&out), want, "{same_site:?} partitioned={partitioned}");
    }
}

#[test]
fn reissue_carries_same_site_and_partitioned() {
    let attrs = CookieAttrs {
        secure: true,
        same_site: Some(SameSite::Strict),
        partitioned: true,
        ..CookieAttrs::default()
    };
    let cookie = RewriteCookie::build("APP", &attrs).unwrap();
    let mut out = Vec::new();
    cookie.write_reissue(b"tok", b"v", false, &mut out);
    assert_eq!(
        text(&out),
        "Set-Cookie: APP=tok.v; Path=/; HttpOnly; Secure; SameSite=Strict; Partitioned\r\n"
    );
}

#[test]
fn session_cookies_without_timeout() {
    let attrs = CookieAttrs {
        http_only: false,
        ..CookieAttrs::default()
    };
    let cookie = InsertCookie::build("SERVERID", Some("SERVERCORSID"), None, &attrs).unwrap();
    let mut out = Vec::new();
    cookie.write_headers(b"tok", NOW, &mut out);
    assert_eq!(
        text(&out),
        "Set-Cookie: SERVERID=tok; Path=/\r\n\
         Set-Cookie: SERVERCORSID=tok; Path=/; Secure; SameSite=None\r\n"
    );
}

#[test]
fn configured_values_cannot_inject() {
    let attrs = |path, domain| CookieAttrs {
        path,
        domain,
        ..CookieAttrs::default()
    };
    let build = |name, attrs: CookieAttrs<'_>| InsertCookie::build(name, None, None, &attrs).err();
    assert!(matches!(
        build("A B", attrs("/", None)),
        Some(CookieError::BadName(_))
    ));
    assert!(matches!(
        build("ID", attrs("/;x", None)),
        Some(CookieError::BadAttribute { attr: "path", .. })
    ));
    assert!(matches!(
        build("ID", attrs("", None)),
        Some(CookieError::BadAttribute { attr: "path", .. })
    ));
    assert!(matches!(
        build("ID", attrs("/", Some("a\r\nX: y"))),
        Some(CookieError::BadAttribute { attr: "domain", .. })
    ));
    assert!(RewriteCookie::build("ID\n", &attrs("/", None)).is_err());
}

#[test]
fn reissue_has_attributes_and_no_expiry() {
    let attrs = CookieAttrs {
        path: "/",
        domain: Some("example.com"),
        http_only: true,
        secure: true,
        ..CookieAttrs::default()
    };
    let cookie = RewriteCookie::build("BACKEND_SERVER", &attrs).unwrap();
    let mut out = Vec::new();
    cookie.write_reissue(b"tok", b"abc", false, &mut out);
    cookie.write_reissue(b"tok", b"q", true, &mut out);
    assert_eq!(
        text(&out),
        "Set-Cookie: BACKEND_SERVER=tok.abc; Path=/; Domain=example.com; HttpOnly; Secure\r\n\
         Set-Cookie: BACKEND_SERVER=\"tok.q\"; Path=/; Domain=example.com; HttpOnly; Secure\r\n"
    );
}

#[test]
fn imf_fixdate_edges() {
    assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(date(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
    assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
    assert_eq!(date(MAX_IMF_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
    assert_eq!(date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
}

#[test]
fn prop_imf_fixdate_agrees_with_httpdate() {
    runner(4096)
        .run(&(0..=MAX_IMF_SECS), |secs| {
            let expected = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            prop_assert_eq!(date(secs), expected);
            Ok(())
        })
        .unwrap();
}

#[test]
fn no_cache_unless_the_response_already_forbids_caching() {
    let needs = |values: &[&str]| needs_no_cache(values.iter().map(|v| v.as_bytes()));
    assert!(needs(&[]));
    assert!(needs(&["max-age=60, public"]));
    assert!(needs(&["no-cachex", "s-maxage=1"]));
    assert!(needs(&["foo=\"no-store, private\", max-age=1"]));
    assert!(needs(&["foo=\"a\\\"no-store\""]));
    assert!(!needs(&["no-store"]));
    assert!(!needs(&["public", "max-age=0 , Private"]));
    assert!(!needs(&["NO-CACHE=\"Set-Cookie\""]));
    assert!(!needs(&["foo=\"x\",no-cache"]));
    assert!(!needs(&[",, ;junk, no-store"]));
    assert_eq!(
        CACHE_CONTROL_LINE,
        b"Cache-Control: no-cache=\"Set-Cookie\"\r\n"
    );
}
