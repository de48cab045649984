//! Rewrite mode: `parse_set_cookie`, `rewrite_into` (response side),
//! `split_rewritten` and `restore_into` (request side), and the round trip:
//! a value limpet rewrote is restored to the application's own value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limpet::sticky::cookie::CookieFinder;
use limpet::sticky::rewrite::{parse_set_cookie, restore_into, rewrite_into, split_rewritten};
use limpet::sticky::RewriteOutcome;

const NAME: &str = "JSESSIONID";
const TOKEN: &[u8] = b"AbCdEfGhIjK";

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fuzz_target!(|data: &[u8]| {
    let finder = CookieFinder::new(NAME).unwrap();

    // Response side: the input as a Set-Cookie value.
    let parsed = parse_set_cookie(data);
    if let Some(c) = parsed {
        assert!(!c.name.is_empty());
        assert!(within(c.name, data) && within(c.value, data) && within(c.attributes, data));
    }
    let mut out = Vec::new();
    let outcome = rewrite_into(data, NAME.as_bytes(), TOKEN, &mut out);
    match outcome {
        RewriteOutcome::Rewritten => {
            assert_eq!(out.len(), data.len() + TOKEN.len() + 1);
            let c = parsed.expect("rewritten what does not parse");
            let re = parse_set_cookie(&out).expect("rewritten value does not parse");
            assert_eq!(re.name, c.name);
            assert_eq!(re.attributes, c.attributes, "attributes altered");
            assert_eq!(re.quoted, c.quoted);
            let (token, app) = split_rewritten(re.value).expect("rewritten value does not split");
            // TOKEN has no dot: the first dot is the one limpet wrote.
            assert_eq!(token, TOKEN);
            assert_eq!(app, c.value);
            // The browser sends NAME=<value> back, quoted as it was set:
            // restoring gives the application's value.
            let q: &[u8] = if re.quoted { b"\"" } else { b"" };
            let pair = |value: &[u8]| [b"a=1; ", NAME.as_bytes(), b"=", q, value, q].concat();
            let cookie = pair(re.value);
            let mut restored = Vec::new();
            if !re.value.contains(&b';') {
                assert_eq!(restore_into(&cookie, &finder, &mut restored), 1);
                assert_eq!(restored, pair(c.value), "round trip lost the application's value");
            }
        }
        RewriteOutcome::Deleted | RewriteOutcome::Other => {
            assert_eq!(out, data, "value altered without being rewritten");
        }
    }

    // Request side: the input as a Cookie value.
    if let Some((token, app)) = split_rewritten(data) {
        assert!(!token.is_empty() && !app.is_empty());
        assert_eq!(token.len() + 1 + app.len(), data.len());
    }
    let mut restored = Vec::new();
    let n = restore_into(data, &finder, &mut restored);
    if n == 0 {
        assert_eq!(restored, data);
    } else {
        assert!(restored.len() < data.len());
    }
});
