#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::*;

/// The outcome of framing `input` fed in the pieces that `cuts` delimits:
/// bytes consumed in total and whether the body ended, or the error.
fn run(input: &[u8], cuts: &[usize]) -> Result<(usize, bool), ChunkError> {
    let mut decoder = ChunkedDecoder::with_limits(ChunkLimits {
        max_extension_bytes: 16,
        max_trailer_bytes: 32,
    });
    let mut consumed = 0;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[start..end];
        let p = decoder.feed(piece)?;
        consumed += p.consumed;
        if p.done {
            return Ok((consumed, true));
        }
        assert_eq!(
            p.consumed,
            piece.len(),
            "not done yet must consume everything"
        );
        start = end;
    }
    Ok((consumed, false))
}

/// Feeds whole, split at every offset, split at every pair of offsets, and
/// byte by byte, and asserts the outcome never depends on the split.
fn same_outcome_however_split(input: &[u8]) -> Result<(usize, bool), ChunkError> {
    let whole = run(input, &[]);
    for i in 0..=input.len() {
        assert_eq!(
            run(input, &[i]),
            whole,
            "split at {i} of {:?}",
            String::from_utf8_lossy(input)
        );
        for j in i..=input.len() {
            assert_eq!(run(input, &[i, j]), whole, "split at {i},{j}");
        }
    }
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run(input, &every), whole, "byte by byte");
    whole
}

const VALID: &[(&[u8], &[u8])] = &[
    (b"0\r\n\r\n", b""),
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    (b"a\r\n0123456789\r\n00\r\n\r\n", b"0123456789"),
    (b"0003\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3;name=value\r\nabc\r\n0;x\r\n\r\n", b"abc"),
    (b"3 ;q=\"a b\"\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3\t\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3\r\na\r\n\r\n0\r\n\r\n", b"a\r\n"),
    (b"0\r\nExpires: never\r\n\r\n", b""),
    (b"1\r\nx\r\n0\r\nA: b\r\nC-D:\r\n\r\n", b"x"),
];

#[test]
fn valid_bodies_end_where_they_should_however_split() {
    for (input, _) in VALID {
        assert_eq!(same_outcome_however_split(input), Ok((input.len(), true)));
    }
}

#[test]
fn bytes_after_the_end_are_left_to_the_caller() {
    for (input, _) in VALID {
        let mut with_next = input.to_vec();
        with_next.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            same_outcome_however_split(&with_next),
            Ok((input.len(), true))
        );
    }
}

#[test]
fn data_ranges_rebuild_the_body() {
    for (input, body) in VALID {
        for cut in 0..=input.len() {
            let mut decoder = ChunkedDecoder::new();
            let mut out = Vec::new();
            for piece in [&input[..cut], &input[cut..]] {
                decoder
                    .feed_data(piece, |r| out.extend_from_slice(&piece[r]))
                    .unwrap();
            }
            assert!(decoder.is_done());
            assert_eq!(out, *body, "cut at {cut}");
        }
    }
}

#[test]
fn incomplete_bodies_consume_everything_and_wait() {
    for input in [
        &b"5\r\nhel"[..],
        b"5\r\nhello\r\n0\r\n",
        b"0\r\nA: b\r\n",
        b"1;a",
    ] {
        assert_eq!(same_outcome_however_split(input), Ok((input.len(), false)));
    }
}

#[test]
fn invalid_bodies_fail_the_same_way_however_split() {
    let cases: &[(&[u8], ChunkError)] = &[
        (b"\r\n", ChunkError::BadSize),
        (b"g\r\n", ChunkError::BadSize),
        (b"+5\r\nhello\r\n", ChunkError::BadSize),
        (b"-5\r\nhello\r\n", ChunkError::BadSize),
        (b"0x5\r\nhello\r\n", ChunkError::BadSize),
        (b" 5\r\nhello\r\n", ChunkError::BadSize),
        (b"1 2\r\nab\r\n", ChunkError::BadSize),
        (b"10000000000000000\r\n", ChunkError::SizeOverflow),
        (b"00000000000000001\r\n", ChunkError::SizeOverflow),
        (b"5\nhello\r\n0\r\n\r\n", ChunkError::BareLf),
        (b"5\r\nhello\n0\r\n\r\n", ChunkError::BareLf),
        (b"5\r\nhello\r\n0\n\r\n", ChunkError::BareLf),
        (b"0\r\n\n", ChunkError::BareLf),
        (b"0\r\nA: b\n\r\n", ChunkError::BareLf),
        (b"5\rhello", ChunkError::BareCr),
        (b"5\r\nhello\rx", ChunkError::BareCr),
        (b"0\r\n\rx", ChunkError::BareCr),
        (b"5\r\nhello!\r\n0\r\n\r\n", ChunkError::DataTooLong),
        (b"1;aaaaaaaaaaaaaaaaaaaa\r\n", ChunkError::ExtensionTooLong),
        (b"1;a\x00\r\n", ChunkError::BadExtension),
        (b"1;a\x7f\r\n", ChunkError::BadExtension),
        // An extension needs a name (llhttp transfer-encoding.md:330).
        (b"2;\r\naa\r\n0\r\n\r\n", ChunkError::BadExtension),
        (b"2; \r\naa\r\n", ChunkError::BadExtension),
        (b"2;a=1;\r\naa\r\n", ChunkError::BadExtension),
        (b"2;=1\r\naa\r\n", ChunkError::BadExtension),
        (
            b"0\r\nA: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n",
            ChunkError::TrailersTooLarge,
        ),
        (b"0\r\nA : b\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\n b\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\n:b\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\nA: \x01\r\n\r\n", ChunkError::BadTrailer),
    ];
    for (input, want) in cases {
        assert_eq!(
            same_outcome_however_split(input),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn largest_size_is_accepted_and_counted_down() {
    let mut decoder = ChunkedDecoder::new();
    let p = decoder.feed(b"ffffffffffffffff\r\nabc").unwrap();
    assert_eq!(
        p,
        Progress {
            consumed: 21,
            done: false
        }
    );
    assert_eq!(decoder.size, u64::MAX - 3);
}

#[test]
fn done_consumes_nothing_more_and_reset_starts_over() {
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(
        decoder.feed(b"0\r\n\r\n").unwrap(),
        Progress {
            consumed: 5,
            done: true
        }
    );
    assert_eq!(
        decoder.feed(b"1\r\nx").unwrap(),
        Progress {
            consumed: 0,
            done: true
        }
    );
    decoder.reset();
    assert!(!decoder.is_done());
    assert_eq!(
        decoder.feed(b"1\r\nx").unwrap(),
        Progress {
            consumed: 4,
            done: false
        }
    );
}

#[test]
fn default_limits_are_the_named_constants() {
    let limits = ChunkLimits::default();
    assert_eq!(limits.max_extension_bytes, DEFAULT_MAX_EXTENSION_BYTES);
    assert_eq!(limits.max_trailer_bytes, DEFAULT_MAX_TRAILER_BYTES);
    let mut long_ext = b"1;".to_vec();
    long_ext.resize(2 + DEFAULT_MAX_EXTENSION_BYTES, b'a');
    assert_eq!(
        ChunkedDecoder::new().feed(&long_ext),
        Err(ChunkError::ExtensionTooLong)
    );
    long_ext.truncate(1 + DEFAULT_MAX_EXTENSION_BYTES);
    assert!(ChunkedDecoder::new().feed(&long_ext).is_ok());
}

#[test]
fn arbitrary_bytes_never_panic_and_never_overconsume() {
    let config = Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let alphabet = prop::sample::select(&b"0123456789abcdefABCDEFxg;= \t\r\n:\x00"[..]);
    let bytes = proptest::collection::vec(alphabet, 0..200);
    runner
        .run(&(bytes, any::<prop::sample::Index>()), |(input, cut)| {
            let cut = cut.index(input.len() + 1);
            let mut decoder = ChunkedDecoder::new();
            if let Ok(p) = decoder.feed(&input[..cut]) {
                prop_assert!(p.consumed <= cut);
                prop_assert!(p.done || p.consumed == cut);
            }
            Ok(())
        })
        .unwrap();
}
