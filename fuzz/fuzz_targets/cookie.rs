//! Request-side persistence: `CookieFinder::find`, `strip_into`,
//! `TokenTable::decode` (unsigned and signed) and `policy::lookup_insert`
//! over `Cookie` header values (the input, split on `\n` into several
//! header values).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use limpet::sticky::cookie::{strip_into, CookieFinder};
use limpet::sticky::policy::lookup_insert;
use limpet::sticky::{Decoded, InsertFinders, Signing, TokenKey, TokenTable};

const NOW: u64 = 1_700_000_000;
const SERVERS: [&str; 3] = ["web1", "web2", "web3"];

struct Fixture {
    main: CookieFinder,
    twin: CookieFinder,
    finders: InsertFinders,
    unsigned: TokenTable,
    signed: TokenTable,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = TokenKey::DEFAULT;
        let signing = Signing::new(&["k-new", "k-old"], Some(86_400), Some(3_600)).unwrap();
        Fixture {
            main: CookieFinder::new("SERVERID").unwrap(),
            twin: CookieFinder::new("SERVERCORSID").unwrap(),
            finders: InsertFinders::new("SERVERID", Some("SERVERCORSID")).unwrap(),
            unsigned: TokenTable::build(&key, "web", &SERVERS, None).unwrap(),
            signed: TokenTable::build(&key, "web", &SERVERS, Some(signing)).unwrap(),
        }
    })
}

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fn check_decoded(d: Decoded, table: &TokenTable) {
    if let Decoded::Valid { server, .. } = d {
        assert!(server.get() < table.len(), "decoded to a server out of range");
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for &value in &values {
        for finder in [&f.main, &f.twin] {
            if let Some(found) = finder.find(value) {
                assert!(within(found, value), "found value outside the header");
                assert!(!found.contains(&b';'));
                check_decoded(f.unsigned.decode(found, NOW), &f.unsigned);
                check_decoded(f.signed.decode(found, NOW), &f.signed);
            }
        }
        // Stripping removes every pair of ours and nothing else.
        let mut out = Vec::new();
        let removed = strip_into(value, &[&f.main, &f.twin], &mut out);
        if removed == 0 {
            assert_eq!(out, value, "nothing removed but the value changed");
        }
        assert!(f.main.find(&out).is_none(), "SERVERID survives strip_into");
        assert!(f.twin.find(&out).is_none(), "SERVERCORSID survives strip_into");
        let mut out2 = Vec::new();
        assert_eq!(strip_into(&out, &[&f.main, &f.twin], &mut out2), 0);
        assert_eq!(out, out2);
        // The raw value as a token.
        check_decoded(f.unsigned.decode(value, NOW), &f.unsigned);
        check_decoded(f.signed.decode(value, NOW), &f.signed);
    }
    for table in [&f.unsigned, &f.signed] {
        let lookup = lookup_insert(&f.finders, table, values.iter().copied(), NOW);
        if let Some(server) = lookup.server {
            assert!(server.get() < table.len());
        }
    }
    // Tokens limpet writes always decode to their server.
    let server = limpet::balance::ServerIdx(u32::from(data.first().copied().unwrap_or(0)) % 3);
    for table in [&f.unsigned, &f.signed] {
        let token = table.encode(server, NOW as u32, NOW);
        match table.decode(token.as_bytes(), NOW) {
            Decoded::Valid { server: s, .. } => assert_eq!(s, server),
            other => panic!("fresh token refused: {other:?}"),
        }
    }
});
