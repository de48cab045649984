use proptest::prelude::*;

use super::*;
use crate::sticky::test_support::runner;

const NOW: u64 = 1_795_000_100;

fn unsigned(group: &str, servers: &[&str]) -> TokenTable {
    TokenTable::build(&TokenKey::DEFAULT, group, servers, None).unwrap()
}

fn signed(keys: &[&str], max_age: Option<u64>, max_idle: Option<u64>) -> TokenTable {
    let signing = Signing::new(keys, max_age, max_idle).unwrap();
    TokenTable::build(
        &TokenKey::DEFAULT,
        "web",
        &["ECS01", "ECS02"],
        Some(signing),
    )
    .unwrap()
}

fn valid(server: u32, resign: bool, issued: u32) -> Decoded {
    Decoded::Valid {
        server: ServerIdx(server),
        resign,
        issued,
    }
}

// GOLDEN: these literals decide routing for every deployed user. Changing
// one (the hash, the key, the byte layout, the encoding) remaps every
// sticky session of every limpet node at upgrade. They were computed once
// and cross-checked with an independent SipHash-2-4 / HMAC implementation.
#[test]
fn golden_unsigned_default_key() {
    let table = unsigned("web", &["ECS01", "ECS02"]);
    assert_eq!(table.token(ServerIdx(0)), b"C-mIWZZDPTM");
    assert_eq!(table.token(ServerIdx(1)), b"dm32rv5k2hc");
    assert_eq!(
        server_id(&TokenKey::DEFAULT, "web", "ECS01"),
        0x0be9_8859_9643_3d33
    );
}

#[test]
fn golden_unsigned_with_secret() {
    let key = TokenKey::from_secret(Some("s3cret"));
    let table = TokenTable::build(&key, "web", &["ECS01"], None).unwrap();
    assert_eq!(table.token(ServerIdx(0)), b"rCB_bxkDzfw");
}

#[test]
fn golden_signed() {
    let table = signed(&["k2", "k1"], Some(86_400), Some(3_600));
    let token = table.encode(ServerIdx(0), 1_795_000_000, NOW);
    assert_eq!(token.as_bytes(), b"C-mIWZZDPTNq_YbAav2HJLJbmj82bkGRUzLZvw");
}

#[test]
fn server_id_hashes_exactly_group_nul_server() {
    let mut hasher = SipHasher24::new_with_key(&DEFAULT_KEY);
    hasher.write(b"web\0ECS01");
    assert_eq!(
        server_id(&TokenKey::DEFAULT, "web", "ECS01"),
        hasher.finish()
    );
}

#[test]
fn tokens_do_not_depend_on_list_order_or_neighbours() {
    let a = unsigned("web", &["ECS01", "ECS02", "ECS03"]);
    let b = unsigned("web", &["ECS03", "ECS01"]);
    assert_eq!(a.token(ServerIdx(0)), b.token(ServerIdx(1)));
    assert_eq!(b.decode(a.token(ServerIdx(2)), NOW), valid(0, false, 0));
}

#[test]
fn unknown_tokens_are_refused() {
    let web = unsigned("web", &["ECS01", "ECS02"]);
    let api = unsigned("api", &["ECS01", "ECS02"]);
    let shrunk = unsigned("web", &["ECS02"]);
    let foreign = api.token(ServerIdx(0));
    assert_eq!(web.decode(foreign, NOW), Decoded::Refused(Refusal::Unknown));
    assert_eq!(
        shrunk.decode(web.token(ServerIdx(0)), NOW),
        Decoded::Refused(Refusal::Unknown)
    );
}

#[test]
fn garbled_tokens_are_refused() {
    let table = unsigned("web", &["ECS01"]);
    for bad in [
        &b""[..],
        b"C-mIWZZDPT",
        b"C-mIWZZDPTMM",
        b"C-mIWZZDPT=",
        b"C+mIWZZDPTM",
        b"C-mIWZZDPTN", // same bits, non-zero trailing bits: not canonical
        b"C-mIWZZDP\xffM",
    ] {
        assert_eq!(
            table.decode(bad, NOW),
            Decoded::Refused(Refusal::Garbled),
            "{bad:?}"
        );
    }
}

#[test]
fn modes_refuse_each_other() {
    let plain = unsigned("web", &["ECS01", "ECS02"]);
    let sign = signed(&["k1"], None, None);
    let signed_token = sign.encode(ServerIdx(0), 1, NOW);
    assert_eq!(
        sign.decode(plain.token(ServerIdx(0)), NOW),
        Decoded::Refused(Refusal::Garbled)
    );
    assert_eq!(
        plain.decode(signed_token.as_bytes(), NOW),
        Decoded::Refused(Refusal::Garbled)
    );
    // The unsigned token is still the stable id in signed mode.
    assert_eq!(sign.token(ServerIdx(0)), plain.token(ServerIdx(0)));
}

#[test]
fn keys_rotate_first_signs_all_verify() {
    let old = signed(&["k1"], None, None);
    let rotated = signed(&["k2", "k1"], None, None);
    let other = signed(&["k3"], None, None);
    let by_old = old.encode(ServerIdx(1), 100, NOW);
    assert_eq!(rotated.decode(by_old.as_bytes(), NOW), valid(1, false, 100));
    let by_rotated = rotated.encode(ServerIdx(1), 100, NOW);
    assert_ne!(by_rotated.as_bytes(), by_old.as_bytes());
    assert_eq!(
        other.decode(by_rotated.as_bytes(), NOW),
        Decoded::Refused(Refusal::BadSignature)
    );
}

#[test]
fn signature_binds_the_group() {
    let signing = Signing::new(&["k1"], None, None).unwrap();
    let web =
        TokenTable::build(&TokenKey::DEFAULT, "web", &["ECS01"], Some(signing.clone())).unwrap();
    let api = TokenTable::build(&TokenKey::DEFAULT, "api", &["ECS01"], Some(signing)).unwrap();
    let token = web.encode(ServerIdx(0), 1, NOW);
    assert_eq!(
        api.decode(token.as_bytes(), NOW),
        Decoded::Refused(Refusal::BadSignature)
    );
}

#[test]
fn max_age_and_max_idle() {
    let table = signed(&["k1"], Some(1_000), Some(100));
    let token = table.encode(ServerIdx(0), 10_000, 10_500);
    let at = |now| table.decode(token.as_bytes(), now);
    assert_eq!(at(10_500), valid(0, false, 10_000));
    assert_eq!(at(10_550), valid(0, false, 10_000));
    assert_eq!(at(10_551), valid(0, true, 10_000));
    assert_eq!(at(10_600), valid(0, true, 10_000));
    assert_eq!(at(10_601), Decoded::Refused(Refusal::Idle));
    // A clock behind the signer's is not idle time.
    assert_eq!(at(9_000), valid(0, false, 10_000));
    let resigned = table.encode(ServerIdx(0), 10_000, 10_990);
    assert_eq!(
        table.decode(resigned.as_bytes(), 11_000),
        valid(0, false, 10_000)
    );
    assert_eq!(
        table.decode(resigned.as_bytes(), 11_001),
        Decoded::Refused(Refusal::Expired)
    );
}

#[test]
fn times_after_2106_saturate() {
    let table = signed(&["k1"], None, Some(100));
    let token = table.encode(ServerIdx(0), u32::MAX, u64::MAX);
    assert_eq!(
        table.decode(token.as_bytes(), u64::from(u32::MAX)),
        valid(0, false, u32::MAX)
    );
}

#[test]
fn build_errors() {
    let err = TokenTable::build(&TokenKey::DEFAULT, "web", &["a", "b", "a"], None).unwrap_err();
    assert!(
        matches!(err, TokenError::Collision { ref first, ref second, .. } if first == "a" && second == "a")
    );
    let err = TokenTable::build(&TokenKey::DEFAULT, "web", &["a\0b"], None).unwrap_err();
    assert_eq!(err, TokenError::NulInName("a\0b".into()));
    assert_eq!(
        Signing::new(&[], None, None).unwrap_err(),
        TokenError::NoSigningKey
    );
    assert_eq!(
        Signing::new(&["k", ""], None, None).unwrap_err(),
        TokenError::EmptySigningKey(1)
    );
    assert_eq!(
        Signing::new(&["k"], Some(0), None).unwrap_err(),
        TokenError::ZeroLimit
    );
}

#[test]
fn index_outside_the_table_encodes_nothing() {
    let table = unsigned("web", &["ECS01"]);
    assert_eq!(table.token(ServerIdx(5)), b"");
    assert_eq!(table.encode(ServerIdx(5), 0, NOW).as_bytes(), b"");
}

#[test]
fn debug_never_prints_keys() {
    let key = TokenKey::from_secret(Some("s3cret"));
    assert_eq!(format!("{key:?}"), "TokenKey(..)");
    let signing = Signing::new(&["hunter2"], None, None).unwrap();
    assert!(!format!("{signing:?}").contains("hunter2"));
}

fn names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::hash_set("[A-Za-z0-9._-]{1,12}", 1..20)
        .prop_map(|set| set.into_iter().collect())
}

#[test]
fn prop_round_trip() {
    let strategy = (names(), any::<u32>(), 0u64..100_000, any::<bool>());
    runner(256)
        .run(&strategy, |(servers, issued, later, sign)| {
            let signing = sign.then(|| Signing::new(&["k1"], None, Some(200_000)).unwrap());
            let key = TokenKey::from_secret(Some("t"));
            let table = TokenTable::build(&key, "g", &servers, signing).unwrap();
            let now = u64::from(issued);
            for i in 0..servers.len() {
                let server = ServerIdx(i as u32);
                let token = table.encode(server, issued, now);
                let len = if sign {
                    SIGNED_TOKEN_LEN
                } else {
                    UNSIGNED_TOKEN_LEN
                };
                prop_assert_eq!(token.as_bytes().len(), len);
                prop_assert!(token
                    .as_bytes()
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                let issued = if sign { issued } else { 0 };
                prop_assert_eq!(
                    table.decode(token.as_bytes(), now + later),
                    valid(i as u32, false, issued)
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_every_single_byte_change_to_a_signed_token_is_refused() {
    let table = signed(&["k2", "k1"], None, None);
    let strategy = (0u32..2, any::<u32>());
    runner(8)
        .run(&strategy, |(server, issued)| {
            let token = table.encode(ServerIdx(server), issued, u64::from(issued));
            let mut forged = *token.as_bytes().first_chunk::<SIGNED_TOKEN_LEN>().unwrap();
            for at in 0..SIGNED_TOKEN_LEN {
                let original = forged[at];
                for byte in (0..=u8::MAX).filter(|&b| b != original) {
                    forged[at] = byte;
                    let decoded = table.decode(&forged, u64::from(issued));
                    prop_assert!(matches!(decoded, Decoded::Refused(_)), "{at} {byte}");
                }
                forged[at] = original;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_truncated_or_extended_signed_tokens_are_garbled() {
    let table = signed(&["k1"], None, None);
    let token = table.encode(ServerIdx(0), 5, NOW);
    let bytes = token.as_bytes();
    for len in 0..bytes.len() {
        assert_eq!(
            table.decode(&bytes[..len], NOW),
            Decoded::Refused(Refusal::Garbled)
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(b'A');
    assert_eq!(
        table.decode(&longer, NOW),
        Decoded::Refused(Refusal::Garbled)
    );
}
