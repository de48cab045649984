//! URL-safe base64 without padding (RFC 4648 §5), for the fixed-size token
//! bodies only: encoding into, and canonical decoding from, stack arrays.
//! Hand-written because the request path decodes one token per request: a
//! table lookup per character costs a few nanoseconds where a
//! general-purpose engine costs tens. It must never allocate, panic, or
//! accept two spellings of the same bytes (non-zero trailing bits are
//! refused), so a token has exactly one valid form.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Marks a byte outside the alphabet; valid entries are below 64, so any
/// of the two top bits set means invalid.
const INVALID: u8 = 0xff;

const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Characters needed for `bytes` bytes without padding.
pub(crate) const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// Writes `input` encoded into `out`, which must be `encoded_len(input.len())`
/// long (the callers' sizes are constants; a shorter `out` is cut short).
pub(crate) fn encode(input: &[u8], out: &mut [u8]) {
    let mut slots = out.iter_mut();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in input {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            if let Some(slot) = slots.next() {
                *slot = ALPHABET[(acc >> bits) as usize & 63];
            }
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        if let Some(slot) = slots.next() {
            *slot = ALPHABET[(acc << (6 - bits)) as usize & 63];
        }
    }
}

/// Decodes `input` into all of `out`. `None` unless `input` is exactly
/// `encoded_len(out.len())` alphabet characters with zero trailing bits.
pub(crate) fn decode(input: &[u8], out: &mut [u8]) -> Option<()> {
    if input.len() != encoded_len(out.len()) {
        return None;
    }
    let mut slots = out.iter_mut();
    let mut seen = 0u8;
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in input {
        let value = DECODE[usize::from(c)];
        seen |= value;
        acc = (acc << 6) | u32::from(value & 63);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *slots.next()? = (acc >> bits) as u8;
            acc &= (1 << bits) - 1;
        }
    }
    // Invalid characters, or leftover bits that are not zero (a second
    // spelling of the same bytes).
    (seen & !63 == 0 && acc == 0).then_some(())
}

/// `decode` specialised for the 11-character unsigned token: one
/// branch-free pass into a `u64` (big-endian), the request-path hot spot.
pub(crate) fn decode_u64(input: &[u8]) -> Option<u64> {
    let chars: &[u8; 11] = input.try_into().ok()?;
    let mut seen = 0u8;
    let mut acc = 0u64;
    for &c in chars {
        let value = DECODE[usize::from(c)];
        seen |= value;
        acc = (acc << 6) | u64::from(value & 63);
    }
    // 66 bits went in: `acc` kept the low 64. The value is those bits
    // without the 2 trailing ones (which must be zero), topped by the 2
    // high bits of the first character that were shifted out.
    let [first, .., last] = *chars;
    let (first, last) = (DECODE[usize::from(first)] & 63, DECODE[usize::from(last)]);
    let value = (acc >> 2) | (u64::from(first >> 4) << 62);
    (seen & !63 == 0 && last & 3 == 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;

    use super::*;
    use crate::sticky::test_support::runner;

    fn encoded(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0; encoded_len(input.len())];
        encode(input, &mut out);
        out
    }

    #[test]
    fn token_sizes() {
        assert_eq!(encoded_len(8), 11);
        assert_eq!(encoded_len(28), 38);
        assert_eq!(encoded(&[0xfb, 0xff, 0xbf]), b"-_-_");
    }

    #[test]
    fn refuses_bad_input() {
        let mut out = [0u8; 8];
        assert_eq!(decode(b"C-mIWZZDPTM", &mut out), Some(()));
        assert_eq!(out, 0x0be9_8859_9643_3d33u64.to_be_bytes());
        assert_eq!(decode_u64(b"C-mIWZZDPTM"), Some(0x0be9_8859_9643_3d33));
        assert_eq!(decode_u64(b"__________8"), Some(u64::MAX));
        for bad in [
            &b"C-mIWZZDPTN"[..],
            b"C-mIWZZDPT",
            b"C-mIWZZDPTMA",
            b"C+mIWZZDPTM",
            b"C-mIWZZDPT=",
        ] {
            assert_eq!(decode(bad, &mut out), None, "{bad:?}");
            assert_eq!(decode_u64(bad), None, "{bad:?}");
        }
    }

    /// The reference is the `base64` crate, canonical URL-safe, no padding.
    #[test]
    fn prop_agrees_with_the_base64_crate() {
        let strategy = (
            proptest::collection::vec(any::<u8>(), 0..40),
            "[A-Za-z0-9_=+/-]{0,40}",
        );
        runner(4096)
            .run(&strategy, |(bytes, text)| {
                prop_assert_eq!(encoded(&bytes), URL_SAFE_NO_PAD.encode(&bytes).into_bytes());
                let mut out = vec![0; bytes.len()];
                prop_assert_eq!(decode(&encoded(&bytes), &mut out), Some(()));
                prop_assert_eq!(&out, &bytes);
                if let Ok(word) = <[u8; 8]>::try_from(bytes.as_slice()) {
                    prop_assert_eq!(decode_u64(&encoded(&bytes)), Some(u64::from_be_bytes(word)));
                }
                // Arbitrary text decodes exactly when the crate says it does.
                for len in [text.len() * 3 / 4, 8, 28] {
                    let mut ours = vec![0; len];
                    let fits = encoded_len(len) == text.len();
                    let theirs = URL_SAFE_NO_PAD
                        .decode(&text)
                        .ok()
                        .filter(|d| d.len() == len && fits);
                    let got = decode(text.as_bytes(), &mut ours).map(|()| ours);
                    if len == 8 {
                        let word = got
                            .as_deref()
                            .map(|d| u64::from_be_bytes(d.try_into().unwrap()));
                        prop_assert_eq!(decode_u64(text.as_bytes()), word);
                    }
                    prop_assert_eq!(got, theirs, "{:?} {}", text, len);
                }
                Ok(())
            })
            .unwrap();
    }
}
