use super::*;
use crate::sticky::token::{Signing, TokenKey};

const NOW: u64 = 1_795_237_200;
const ECS01: ServerIdx = ServerIdx(0);
const ECS02: ServerIdx = ServerIdx(1);

fn table() -> TokenTable {
    TokenTable::build(&TokenKey::DEFAULT, "web", &["ECS01", "ECS02"], None).unwrap()
}

fn finders() -> InsertFinders {
    InsertFinders::new("SERVERID", Some("SERVERCORSID")).unwrap()
}

fn token(table: &TokenTable, server: ServerIdx) -> String {
    String::from_utf8(table.encode(server, 0, NOW).as_bytes().to_vec()).unwrap()
}

fn lookup(headers: &[&str]) -> Lookup {
    let headers = headers.iter().map(|h| h.as_bytes());
    lookup_insert(&finders(), &table(), headers, NOW)
}

fn valid(server: ServerIdx, disagree: bool) -> Lookup {
    Lookup {
        server: Some(server),
        sent: Sent::Valid {
            issued: 0,
            resign: false,
            disagree,
        },
    }
}

fn refused(refusal: Refusal) -> Lookup {
    Lookup {
        server: None,
        sent: Sent::Refused(refusal),
    }
}

#[test]
fn insert_lookup_outcomes() {
    let t = table();
    let (one, two) = (token(&t, ECS01), token(&t, ECS02));
    let absent = Lookup {
        server: None,
        sent: Sent::Absent,
    };
    let cases: Vec<(Vec<String>, Lookup)> = vec![
        (vec![], absent),
        (vec!["a=1; XSERVERID=x".into()], absent),
        (vec!["SERVERID=; SERVERCORSID=".into()], absent),
        (vec![format!("SERVERID={one}")], valid(ECS01, false)),
        (vec![format!("SERVERCORSID={two}")], valid(ECS02, false)),
        (
            vec![format!("SERVERID={one}; SERVERCORSID={one}")],
            valid(ECS01, false),
        ),
        (
            vec![
                format!("SERVERCORSID={two}"),
                format!("a=1; SERVERID=\"{two}\""),
            ],
            valid(ECS02, false),
        ),
        (
            vec![format!("SERVERID={one}; SERVERCORSID={two}")],
            valid(ECS01, true),
        ),
        (
            vec![format!("SERVERCORSID={two}; SERVERID={one}")],
            valid(ECS01, true),
        ),
        (
            vec![format!("SERVERID={one}; SERVERCORSID=junk")],
            valid(ECS01, true),
        ),
        (
            vec![format!("SERVERID=junk; SERVERCORSID={two}")],
            valid(ECS02, true),
        ),
        (
            vec!["SERVERID=junk; SERVERCORSID=AAAAAAAAAAA".into()],
            refused(Refusal::Garbled),
        ),
        (
            vec!["SERVERID=AAAAAAAAAAA".into()],
            refused(Refusal::Unknown),
        ),
        (
            vec![format!("SERVERID=A; SERVERID={one}")],
            refused(Refusal::Garbled),
        ),
    ];
    for (headers, expected) in cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        assert_eq!(lookup(&headers), expected, "{headers:?}");
    }
}

#[test]
fn twin_can_be_turned_off() {
    let t = table();
    let finders = InsertFinders::new("SERVERID", None).unwrap();
    let header = format!("SERVERCORSID={}", token(&t, ECS02));
    let found = lookup_insert(&finders, &t, [header.as_bytes()], NOW);
    assert_eq!(found.sent, Sent::Absent);
    let mut out = Vec::new();
    assert_eq!(finders.strip_into(header.as_bytes(), &mut out), 0);
    assert_eq!(out, header.as_bytes());
}

#[test]
fn cookies_are_sent_only_when_something_changed() {
    assert!(must_send(&lookup(&[]), ECS01));
    assert!(must_send(&refused(Refusal::Unknown), ECS01));
    assert!(!must_send(&valid(ECS01, false), ECS01));
    assert!(must_send(&valid(ECS01, false), ECS02));
    assert!(must_send(&valid(ECS01, true), ECS01));
    let resign = Lookup {
        server: Some(ECS01),
        sent: Sent::Valid {
            issued: 7,
            resign: true,
            disagree: false,
        },
    };
    assert!(must_send(&resign, ECS01));
    assert_eq!(resign.issued(NOW), 7);
    assert_eq!(lookup(&[]).issued(NOW), NOW as u32);
    assert_eq!(lookup(&[]).issued(u64::MAX), u32::MAX);
}

#[test]
fn signed_tokens_carry_issue_time_and_resign() {
    let signing = Signing::new(&["k1"], None, Some(100)).unwrap();
    let t = TokenTable::build(
        &TokenKey::DEFAULT,
        "web",
        &["ECS01", "ECS02"],
        Some(signing),
    )
    .unwrap();
    let header = format!(
        "SERVERID={}",
        String::from_utf8_lossy(t.encode(ECS02, 1_000, 1_000).as_bytes())
    );
    let fresh = lookup_insert(&finders(), &t, [header.as_bytes()], 1_010);
    assert_eq!(fresh.server, Some(ECS02));
    assert!(!must_send(&fresh, ECS02));
    let stale = lookup_insert(&finders(), &t, [header.as_bytes()], 1_060);
    assert!(must_send(&stale, ECS02));
    assert_eq!(stale.issued(1_060), 1_000);
    let idle = lookup_insert(&finders(), &t, [header.as_bytes()], 1_101);
    assert_eq!(idle, refused(Refusal::Idle));
}

#[test]
fn insert_strip_removes_both_cookies() {
    let mut out = Vec::new();
    let removed = finders().strip_into(b"a=1; SERVERID=x; SERVERCORSID=x; b=2", &mut out);
    assert_eq!((out.as_slice(), removed), (&b"a=1; b=2"[..], 2));
}

fn rewrite_lookup<'a>(headers: &[&'a str], table: &TokenTable) -> RewriteLookup<'a> {
    let finder = CookieFinder::new("BACKEND_SERVER").unwrap();
    lookup_rewrite(&finder, table, headers.iter().map(|h| h.as_bytes()), NOW)
}

#[test]
fn rewrite_lookup_outcomes() {
    let t = table();
    let two = token(&t, ECS02);
    let none = rewrite_lookup(&["a=1", "BACKEND_SERVER="], &t);
    assert_eq!(none, RewriteLookup::ABSENT);
    assert!(!must_reissue(&none, ECS01));

    let header = format!("BACKEND_SERVER=\"{two}.s3ss\"");
    let stuck = rewrite_lookup(&["a=1", &header], &t);
    assert_eq!(
        (stuck.server, stuck.app_value, stuck.quoted),
        (Some(ECS02), Some(&b"s3ss"[..]), true)
    );
    assert!(!must_reissue(&stuck, ECS02));
    assert!(must_reissue(&stuck, ECS01));

    let unmarked = rewrite_lookup(&["BACKEND_SERVER=s3ss"], &t);
    assert_eq!(
        (unmarked.server, unmarked.sent, unmarked.app_value),
        (None, Sent::Absent, Some(&b"s3ss"[..]))
    );
    assert!(must_reissue(&unmarked, ECS01));

    let forged = rewrite_lookup(&["BACKEND_SERVER=AAAAAAAAAAA.s3ss; BACKEND_SERVER=x"], &t);
    assert_eq!(
        (forged.server, forged.sent),
        (None, Sent::Refused(Refusal::Unknown))
    );
    assert_eq!(forged.app_value, Some(&b"s3ss"[..]));
    assert!(must_reissue(&forged, ECS02));
    assert_eq!(forged.issued(NOW), NOW as u32);
}
