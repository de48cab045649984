use proptest::prelude::*;

use super::*;
use crate::sticky::test_support::runner;

const NAME: &[u8] = b"BACKEND_SERVER";

fn rewrite(value: &str) -> (String, RewriteOutcome) {
    let mut out = Vec::new();
    let outcome = rewrite_into(value.as_bytes(), NAME, b"tok", &mut out);
    (String::from_utf8(out).unwrap(), outcome)
}

fn restore(value: &str) -> (String, usize) {
    let finder = CookieFinder::new("BACKEND_SERVER").unwrap();
    let mut out = Vec::new();
    let restored = restore_into(value.as_bytes(), &finder, &mut out);
    (String::from_utf8(out).unwrap(), restored)
}

#[test]
fn parses_tolerantly() {
    let cookie = parse_set_cookie(b" SID = \"abc\" ;Path=/; HttpOnly;").unwrap();
    assert_eq!(cookie.name, b"SID");
    assert_eq!(cookie.value, b"abc");
    assert!(cookie.quoted);
    assert_eq!(cookie.attributes, b";Path=/; HttpOnly;");
    let cookie = parse_set_cookie(b"SID=a=b").unwrap();
    assert_eq!(
        (cookie.value, cookie.attributes, cookie.quoted),
        (&b"a=b"[..], &b""[..], false)
    );
    assert_eq!(parse_set_cookie(b"SID=").unwrap().value, b"");
    assert_eq!(parse_set_cookie(b"SID; Path=/"), None);
    assert_eq!(parse_set_cookie(b" =abc"), None);
    assert_eq!(parse_set_cookie(b""), None);
}

#[test]
fn rewrites_our_cookie_keeping_every_other_byte() {
    use RewriteOutcome::*;
    let cases = [
        (
            "BACKEND_SERVER=abc; Path=/; HttpOnly",
            "BACKEND_SERVER=tok.abc; Path=/; HttpOnly",
            Rewritten,
        ),
        (
            "BACKEND_SERVER=\"abc\"; Secure",
            "BACKEND_SERVER=\"tok.abc\"; Secure",
            Rewritten,
        ),
        (
            "BACKEND_SERVER = abc ;Path=/;",
            "BACKEND_SERVER = tok.abc ;Path=/;",
            Rewritten,
        ),
        ("BACKEND_SERVER=abc", "BACKEND_SERVER=tok.abc", Rewritten),
        (
            "BACKEND_SERVER=abc; Max-Age=10",
            "BACKEND_SERVER=tok.abc; Max-Age=10",
            Rewritten,
        ),
        (
            "BACKEND_SERVER=abc; Max-Age=x0",
            "BACKEND_SERVER=tok.abc; Max-Age=x0",
            Rewritten,
        ),
        (
            "BACKEND_SERVER=; Max-Age=0",
            "BACKEND_SERVER=; Max-Age=0",
            Deleted,
        ),
        ("BACKEND_SERVER=\"\"", "BACKEND_SERVER=\"\"", Deleted),
        (
            "BACKEND_SERVER=abc; max-age = 00",
            "BACKEND_SERVER=abc; max-age = 00",
            Deleted,
        ),
        (
            "BACKEND_SERVER=abc; Max-Age=-1",
            "BACKEND_SERVER=abc; Max-Age=-1",
            Deleted,
        ),
        ("backend_server=abc", "backend_server=abc", Other),
        ("OTHER=abc; Path=/", "OTHER=abc; Path=/", Other),
        ("BACKEND_SERVER", "BACKEND_SERVER", Other),
    ];
    for (input, expected, outcome) in cases {
        assert_eq!(rewrite(input), (expected.to_owned(), outcome), "{input}");
    }
    assert!(Rewritten.sets_our_cookie() && Deleted.sets_our_cookie() && !Other.sets_our_cookie());
}

#[test]
fn splits_on_the_first_dot() {
    assert_eq!(
        split_rewritten(b"tok.abc"),
        Some((&b"tok"[..], &b"abc"[..]))
    );
    assert_eq!(
        split_rewritten(b"tok.a.b"),
        Some((&b"tok"[..], &b"a.b"[..]))
    );
    for not_ours in [&b"abc"[..], b".abc", b"tok.", b""] {
        assert_eq!(split_rewritten(not_ours), None);
    }
}

#[test]
fn restores_the_application_value() {
    let cases = [
        (
            "a=1; BACKEND_SERVER=tok.abc; b=2",
            "a=1; BACKEND_SERVER=abc; b=2",
            1,
        ),
        ("BACKEND_SERVER=\"tok.abc\"", "BACKEND_SERVER=\"abc\"", 1),
        ("BACKEND_SERVER= tok.abc ;x", "BACKEND_SERVER= abc ;x", 1),
        (
            "BACKEND_SERVER=t.1;BACKEND_SERVER=u.2",
            "BACKEND_SERVER=1;BACKEND_SERVER=2",
            2,
        ),
        ("BACKEND_SERVER=abc; X=t.y", "BACKEND_SERVER=abc; X=t.y", 0),
        ("XBACKEND_SERVER=t.1", "XBACKEND_SERVER=t.1", 0),
        ("a=\"BACKEND_SERVER=t.1\"", "a=\"BACKEND_SERVER=t.1\"", 0),
    ];
    for (input, expected, restored) in cases {
        assert_eq!(restore(input), (expected.to_owned(), restored), "{input}");
    }
}

#[test]
fn prop_rewrite_then_restore_round_trips() {
    let strategy = (
        "[A-Za-z0-9!#$%&'()*+./:<=>?@_`{|}~-]{1,16}",
        any::<bool>(),
        "(; [A-Za-z-]{1,8}(=[A-Za-z0-9/]{0,6})?){0,3};?",
    );
    runner(1024)
        .run(&strategy, |(app, quoted, attributes)| {
            let q = if quoted { "\"" } else { "" };
            let set_cookie = format!("BACKEND_SERVER={q}{app}{q}{attributes}");
            let mut rewritten = Vec::new();
            let outcome = rewrite_into(set_cookie.as_bytes(), NAME, b"C-mIWZZDPTM", &mut rewritten);
            prop_assert_eq!(outcome, RewriteOutcome::Rewritten);
            let cookie = parse_set_cookie(&rewritten).unwrap();
            prop_assert_eq!(cookie.attributes, attributes.as_bytes());
            prop_assert_eq!(cookie.quoted, quoted);
            let (token, value) = split_rewritten(cookie.value).unwrap();
            prop_assert_eq!((token, value), (&b"C-mIWZZDPTM"[..], app.as_bytes()));
            // The browser sends back `NAME=value`; the backend gets its own.
            let sent = format!(
                "a=1; BACKEND_SERVER={q}{}{q}",
                String::from_utf8_lossy(cookie.value)
            );
            prop_assert_eq!(
                restore(&sent),
                (format!("a=1; BACKEND_SERVER={q}{app}{q}"), 1)
            );
            Ok(())
        })
        .unwrap();
}
