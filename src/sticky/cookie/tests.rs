use proptest::prelude::*;

use super::*;
use crate::sticky::test_support::runner;

fn finder(name: &str) -> CookieFinder {
    CookieFinder::new(name).unwrap()
}

fn find<'a>(name: &str, header: &'a [u8]) -> Option<&'a [u8]> {
    finder(name).find(header)
}

fn strip(header: &[u8], names: &[&str]) -> (Vec<u8>, usize) {
    let finders: Vec<CookieFinder> = names.iter().map(|n| finder(n)).collect();
    let refs: Vec<&CookieFinder> = finders.iter().collect();
    let mut out = Vec::new();
    let removed = strip_into(header, &refs, &mut out);
    (out, removed)
}

#[test]
fn finds_a_pair_anywhere() {
    assert_eq!(find("SERVERID", b"SERVERID=abc"), Some(&b"abc"[..]));
    assert_eq!(
        find("SERVERID", b"a=1; SERVERID=abc; b=2"),
        Some(&b"abc"[..])
    );
    assert_eq!(find("SERVERID", b"a=1;SERVERID=abc"), Some(&b"abc"[..]));
    assert_eq!(
        find("SERVERID", b"a=1;\t SERVERID=abc \t;b=2"),
        Some(&b"abc"[..])
    );
    assert_eq!(find("SERVERID", b"  SERVERID=abc"), Some(&b"abc"[..]));
    assert_eq!(
        find("SERVERID", b"SERVERID=\"abc\"; b=2"),
        Some(&b"abc"[..])
    );
    assert_eq!(find("SERVERID", b"SERVERID= abc "), Some(&b"abc"[..]));
    assert_eq!(find("SERVERID", b"SERVERID=; b=2"), Some(&b""[..]));
    assert_eq!(find("SERVERID", b"SERVERID=\""), Some(&b"\""[..]));
}

#[test]
fn matches_only_at_a_pair_boundary() {
    assert_eq!(find("SERVERID", b"XSERVERID=abc"), None);
    assert_eq!(find("SERVERID", b"SERVERIDX=abc"), None);
    assert_eq!(find("SERVERID", b"SERVERID =abc"), None);
    assert_eq!(find("SERVERID", b"a=SERVERID=abc"), None);
    assert_eq!(find("SERVERID", b"a=x SERVERID=abc"), None);
    assert_eq!(
        find("SERVERID", b"XSERVERID=1; a=\"SERVERID=2\"; SERVERID=3"),
        Some(&b"3"[..])
    );
    assert_eq!(find("SERVERID", b"serverid=abc"), None);
}

#[test]
fn first_occurrence_wins() {
    assert_eq!(find("SERVERID", b"SERVERID=1; SERVERID=2"), Some(&b"1"[..]));
}

#[test]
fn names_are_checked() {
    assert_eq!(finder("SERVERID").name(), b"SERVERID");
    for bad in ["", "a b", "a=b", "a;b", "é"] {
        assert!(CookieFinder::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn strip_removes_the_persistence_cookies_only() {
    let both = ["SERVERID", "SERVERCORSID"];
    assert_eq!(
        strip(b"a=1; SERVERID=x; b=2", &both),
        (b"a=1; b=2".to_vec(), 1)
    );
    assert_eq!(strip(b"SERVERID=x;a=1", &both), (b"a=1".to_vec(), 1));
    assert_eq!(
        strip(b"a=1 ;SERVERCORSID=y;  SERVERID=x", &both),
        (b"a=1".to_vec(), 2)
    );
    assert_eq!(strip(b"SERVERID=x; SERVERCORSID=x", &both), (Vec::new(), 2));
    assert_eq!(
        strip(b"XSERVERID=1; b=\"q\"", &both),
        (b"XSERVERID=1; b=\"q\"".to_vec(), 0)
    );
    // Untouched headers are copied verbatim, odd separators and all.
    assert_eq!(strip(b"a=1;b=2 ;;", &both), (b"a=1;b=2 ;;".to_vec(), 0));
    assert_eq!(
        strip(b"a=1;b=2; SERVERID=1;; c", &both),
        (b"a=1; b=2; c".to_vec(), 1)
    );
}

/// The reference: split on `;`, name up to the first `=`, first match wins.
fn naive_find<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim_ows(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        if &pair[..eq] != name {
            return None;
        }
        let value = trim_ows(&pair[eq + 1..]);
        if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
            Some(&value[1..value.len() - 1])
        } else {
            Some(value)
        }
    })
}

const NAMES: [&str; 7] = [
    "SERVERID",
    "XSERVERID",
    "SERVERIDX",
    "SERVER",
    "ID",
    "SERVERCORSID",
    "a",
];
const SEPARATORS: [&str; 6] = [";", "; ", ";  ", " ;\t", ";;", "; ;"];

/// Cookie headers mixing names that are prefixes and suffixes of each
/// other, quoted values, values holding `NAME=`, odd spacing, bare words.
fn headers() -> impl Strategy<Value = Vec<u8>> {
    let pair = (
        0..NAMES.len(),
        prop_oneof![Just(""), Just("SERVERID="), Just("\""), Just(" ")],
        "[A-Za-z0-9 =\"_-]{0,8}",
        any::<bool>(),
        0..SEPARATORS.len(),
    );
    (proptest::collection::vec(pair, 0..8), "[ \t]{0,2}").prop_map(|(pairs, lead)| {
        let mut header = lead.into_bytes();
        for (i, (name, prefix, value, eq, sep)) in pairs.into_iter().enumerate() {
            if i > 0 {
                header.extend_from_slice(SEPARATORS[sep].as_bytes());
            }
            header.extend_from_slice(NAMES[name].as_bytes());
            if eq {
                header.push(b'=');
            }
            header.extend_from_slice(prefix.as_bytes());
            header.extend_from_slice(value.as_bytes());
        }
        header
    })
}

#[test]
fn prop_find_agrees_with_the_naive_parser() {
    let finders: Vec<(&str, CookieFinder)> = NAMES.iter().map(|n| (*n, finder(n))).collect();
    runner(4096)
        .run(&headers(), |header| {
            for (name, finder) in &finders {
                let expected = naive_find(&header, name.as_bytes());
                prop_assert_eq!(finder.find(&header), expected, "{}", name);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_strip_agrees_with_the_naive_parser() {
    runner(2048)
        .run(&headers(), |header| {
            let names = ["SERVERID", "SERVERCORSID"];
            let (out, removed) = strip(&header, &names);
            let named = |pair: &[u8]| {
                names
                    .iter()
                    .any(|n| pair.starts_with(format!("{n}=").as_bytes()))
            };
            let pairs: Vec<&[u8]> = header
                .split(|&b| b == b';')
                .map(trim_ows)
                .filter(|p| !p.is_empty())
                .collect();
            let expected_removed = pairs.iter().filter(|p| named(p)).count();
            prop_assert_eq!(removed, expected_removed);
            if expected_removed == 0 {
                prop_assert_eq!(out, header);
            } else {
                let kept: Vec<&[u8]> = pairs.into_iter().filter(|p| !named(p)).collect();
                prop_assert_eq!(out, kept.join(&b"; "[..]));
            }
            Ok(())
        })
        .unwrap();
}
