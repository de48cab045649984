//! `ChunkedDecoder` over the input whole, split in two at a position taken
//! from the first byte, and byte by byte: all three must agree on where the
//! body ends (or on the error), and on how many data bytes it carried.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limpet::http::{ChunkError, ChunkLimits, ChunkedDecoder};

const LIMITS: ChunkLimits = ChunkLimits {
    max_extension_bytes: 64,
    max_trailer_bytes: 256,
};

/// (bytes consumed up to the end of the body or of the input, done, data bytes)
type Outcome = Result<(usize, bool, u64), ChunkError>;

fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut dec = ChunkedDecoder::with_limits(LIMITS);
    let (mut consumed, mut data) = (0usize, 0u64);
    for piece in pieces {
        if dec.is_done() {
            // After the end, nothing more is consumed.
            let p = dec.feed(piece)?;
            assert_eq!((p.consumed, p.done), (0, true));
            continue;
        }
        let p = dec.feed_data(piece, |r| {
            assert!(r.start <= r.end && r.end <= piece.len(), "data range outside the input");
            data += (r.end - r.start) as u64;
        })?;
        assert!(p.consumed <= piece.len(), "consumed more than fed");
        if !p.done {
            assert_eq!(p.consumed, piece.len(), "stopped early without being done");
        }
        assert_eq!(p.done, dec.is_done());
        consumed += p.consumed;
    }
    Ok((consumed, dec.is_done(), data))
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let at = usize::from(first).min(data.len());
    let whole = run([data]);
    let (a, b) = data.split_at(at);
    let split = run([a, b]);
    assert_eq!(whole, split, "split at {at} disagrees with whole");
    if data.len() <= 4096 {
        let bytes = run(data.chunks(1));
        assert_eq!(whole, bytes, "byte by byte disagrees with whole");
    }
    // `reset` gives a decoder that behaves like a new one.
    let mut dec = ChunkedDecoder::with_limits(LIMITS);
    let _ = dec.feed(a);
    dec.reset();
    let again = dec.feed(data).map(|p| (p.consumed, p.done));
    assert_eq!(whole.map(|(c, d, _)| (c, d)), again);
});
