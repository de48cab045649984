//! The main cookie's `SameSite` and `Partitioned` (SPEC §3.5) byte for byte
//! over real sockets, the combinations `check` refuses (naming the line),
//! and rewrite mode's `Cache-Control` rule (§3.7).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use common::*;

/// The `Set-Cookie` values a new session gets with `persistence` keys.
fn new_session_cookies(persistence: &str) -> Vec<String> {
    let backend = Backend::named("s0", log());
    let limpet = Limpet::start(&insert_config(&[backend.addr], persistence));
    let response = limpet.get_token(None);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("cache-control"),
        Some("no-cache=\"Set-Cookie\"")
    );
    response
        .set_cookies()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn golden_set_cookie_for_each_same_site_and_partitioned() {
    let t = token("web", 1, 0);
    let twin =
        |extra: &str| format!("SERVERCORSID={t}; Path=/; HttpOnly; Secure; SameSite=None{extra}");
    let cases: [(&str, Vec<String>); 6] = [
        (
            "same_site = \"Lax\"",
            vec![
                format!("SERVERID={t}; Path=/; HttpOnly; SameSite=Lax"),
                twin(""),
            ],
        ),
        (
            "same_site = \"Strict\"",
            vec![
                format!("SERVERID={t}; Path=/; HttpOnly; SameSite=Strict"),
                twin(""),
            ],
        ),
        (
            "secure = true\nsame_site = \"None\"",
            vec![format!(
                "SERVERID={t}; Path=/; HttpOnly; Secure; SameSite=None"
            )],
        ),
        (
            "secure = true\npartitioned = true",
            vec![
                format!("SERVERID={t}; Path=/; HttpOnly; Secure; Partitioned"),
                twin("; Partitioned"),
            ],
        ),
        (
            "secure = true\nsame_site = \"Strict\"\npartitioned = true\ntimeout = \"10m\"",
            vec![], // checked apart: carries an Expires
        ),
        (
            "secure = true\nsame_site = \"None\"\npartitioned = true\nhttp_only = false",
            vec![format!(
                "SERVERID={t}; Path=/; Secure; SameSite=None; Partitioned"
            )],
        ),
    ];
    for (keys, want) in cases {
        let got = new_session_cookies(keys);
        if want.is_empty() {
            assert_eq!(got.len(), 2, "{keys}: {got:?}");
            assert!(got[0].starts_with(&format!("SERVERID={t}; Path=/; Max-Age=600; Expires=")));
            assert!(
                got[0].ends_with(" GMT; HttpOnly; Secure; SameSite=Strict; Partitioned"),
                "{keys}: {got:?}"
            );
            assert!(got[1].ends_with(" GMT; HttpOnly; Secure; SameSite=None; Partitioned"));
            continue;
        }
        assert_eq!(got, want, "{keys}");
    }
}

#[test]
fn none_and_partitioned_need_secure_written_and_check_names_the_line() {
    let base = insert_config(&["127.0.0.1:1"], "");
    // insert_config ends with `mode = "insert"`: what follows starts on
    // the next line.
    let line = base.lines().count() + 1;
    let cases = [
        (
            "same_site = \"None\"",
            "same_site \"None\" needs secure = true written",
        ),
        (
            "secure = false\nsame_site = \"None\"",
            "same_site \"None\" needs secure = true written",
        ),
        (
            "partitioned = true",
            "partitioned true needs secure = true written",
        ),
        ("same_site = \"lax\"", "unknown variant `lax`"),
    ];
    for (keys, want) in cases {
        let toml = format!("{base}{keys}\n");
        let err = limpet::config::parse(&toml, "t.toml")
            .unwrap_err()
            .to_string();
        let at = line + keys.lines().count() - 1;
        assert!(err.starts_with(&format!("t.toml:{at}: ")), "{keys}: {err}");
        assert!(err.contains(want), "{keys}: {err}");
    }
    let fine = format!("{base}secure = true\nsame_site = \"None\"\npartitioned = true\n");
    assert!(limpet::config::parse(&fine, "t.toml").is_ok());
}

/// A rewrite-mode limpet whose backend sets `APP=abc` with the given
/// extra response fields.
fn rewrite_response(extra: &'static str) -> Response {
    let backend = Backend::respond(move |_| {
        Some(
            format!("HTTP/1.1 200 OK\r\nSet-Cookie: APP=abc; Path=/\r\n{extra}Content-Length: 2\r\n\r\nok")
                .into_bytes(),
        )
    });
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"APP\"\n",
    ));
    limpet.get_token(None)
}

#[test]
fn rewrite_mode_adds_cache_control_unless_the_application_has_its_own() {
    let t = token("web", 1, 0);
    let plain = rewrite_response("");
    assert_eq!(plain.set_cookies(), [format!("APP={t}.abc; Path=/")]);
    assert_eq!(
        plain.headers_named("cache-control"),
        ["no-cache=\"Set-Cookie\""]
    );

    let public = rewrite_response("Cache-Control: public, max-age=60\r\n");
    assert_eq!(
        public.headers_named("cache-control"),
        ["public, max-age=60", "no-cache=\"Set-Cookie\""]
    );

    for own in ["private", "no-store", "no-cache"] {
        let response = rewrite_response(match own {
            "private" => "Cache-Control: private\r\n",
            "no-store" => "Cache-Control: no-store\r\n",
            _ => "Cache-Control: no-cache\r\n",
        });
        assert_eq!(response.set_cookies(), [format!("APP={t}.abc; Path=/")]);
        assert_eq!(response.headers_named("cache-control"), [own], "{own}");
    }

    // A response that rewrites nothing gets nothing.
    let backend = Backend::named("s0", log());
    let limpet = Limpet::start(&config_for(
        &[backend.addr],
        "[groups.web.persistence]\nmode = \"rewrite\"\ncookie = \"APP\"\n",
    ));
    assert!(limpet
        .get_token(None)
        .headers_named("cache-control")
        .is_empty());
}
