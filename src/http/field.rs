//! Field-level rules shared by requests, responses and the writers: comma
//! lists and their tokens, `Content-Length` values, the one pass over the
//! header fields that gathers what framing and connection management need,
//! the bare-LF check, and the cold-path diagnosis that names which rule a
//! head broke when httparse only says "invalid header name".
//!
//! Nothing here allocates or looks at anything but the bytes it is given.

use httparse::Header;

/// One field-level fault, mapped by the request and response parsers onto
/// their own error enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldFault {
    BareLf,
    ObsFold,
    SpaceBeforeColon,
    MissingColon,
    BadName,
    BadValue,
    BadContentLength,
    ConflictingContentLength,
    /// `Content_Length`, `Transfer---Encoding`…: a framing field in a
    /// disguise that some servers see through and others do not.
    DisguisedFraming,
}

/// What the `Transfer-Encoding` fields of a message amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransferCoding {
    Absent,
    /// Exactly one field whose whole value is `chunked`.
    Chunked,
    /// Anything else (another coding, a list, a repeated field): limpet does
    /// not decode codings, so it cannot find where such a body ends.
    Other,
}

/// Everything the framing rules need from the header fields, gathered in one
/// pass so that a head is walked once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadFacts<'b> {
    pub content_length: Option<u64>,
    pub transfer: TransferCoding,
    pub close: bool,
    pub keep_alive: bool,
    pub connection_upgrade: bool,
    pub has_upgrade: bool,
    pub expect_continue: bool,
    pub host_count: usize,
    pub host: Option<&'b [u8]>,
}

impl<'b> HeadFacts<'b> {
    pub(crate) fn collect(headers: &[Header<'b>]) -> Result<Self, FieldFault> {
        let mut facts = HeadFacts {
            content_length: None,
            transfer: TransferCoding::Absent,
            close: false,
            keep_alive: false,
            connection_upgrade: false,
            has_upgrade: false,
            expect_continue: false,
            host_count: 0,
            host: None,
        };
        for h in headers {
            let name = h.name.as_bytes();
            // Dispatch on length first: most fields are none of these, and a
            // length compare rejects them without touching their bytes.
            match name.len() {
                4 if name_is(name, b"host") => {
                    facts.host_count += 1;
                    facts.host = Some(h.value);
                }
                6 if name_is(name, b"expect") => {
                    facts.expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue");
                }
                7 if name_is(name, b"upgrade") => facts.has_upgrade = true,
                10 if name_is(name, b"connection") => {
                    for token in tokens(h.value) {
                        facts.close |= token.eq_ignore_ascii_case(b"close");
                        facts.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                        facts.connection_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                    }
                }
                14 if name_is(name, b"content-length") => {
                    let n = parse_content_length(h.value)?;
                    match facts.content_length {
                        Some(seen) if seen != n => {
                            return Err(FieldFault::ConflictingContentLength)
                        }
                        _ => facts.content_length = Some(n),
                    }
                }
                17 if name_is(name, b"transfer-encoding") => {
                    facts.transfer = match facts.transfer {
                        TransferCoding::Absent if h.value.eq_ignore_ascii_case(b"chunked") => {
                            TransferCoding::Chunked
                        }
                        _ => TransferCoding::Other,
                    };
                }
                13..=32 if is_disguised_framing(name) => {
                    return Err(FieldFault::DisguisedFraming);
                }
                _ => {}
            }
        }
        Ok(facts)
    }
}

/// A name that is not `Content-Length` or `Transfer-Encoding` but becomes
/// one once `-` and `_` are dropped and case folded (the canonical names
/// matched earlier, so reaching here means a disguise).
pub(super) fn is_disguised_framing(name: &[u8]) -> bool {
    let mut folded = [0u8; 32];
    let mut len = 0;
    for &b in name.iter().filter(|&&b| b != b'-' && b != b'_') {
        let Some(slot) = folded.get_mut(len) else {
            return false;
        };
        *slot = b.to_ascii_lowercase();
        len += 1;
    }
    let folded = &folded[..len];
    folded == b"contentlength" || folded == b"transferencoding"
}

/// Parses a `Content-Length` value: `1*DIGIT`, or a comma list of equal
/// values (`5, 5`), which RFC 9110 §8.6 lets a recipient collapse. A sign,
/// inner whitespace, hex, an empty element or a value past `u64` is invalid.
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, FieldFault> {
    let mut result: Option<u64> = None;
    for element in value.split(|&b| b == b',') {
        let digits = trim_ows(element);
        if digits.is_empty() {
            return Err(FieldFault::BadContentLength);
        }
        let mut n: u64 = 0;
        for &b in digits {
            if !b.is_ascii_digit() {
                return Err(FieldFault::BadContentLength);
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(FieldFault::BadContentLength)?;
        }
        match result {
            Some(seen) if seen != n => return Err(FieldFault::ConflictingContentLength),
            _ => result = Some(n),
        }
    }
    result.ok_or(FieldFault::BadContentLength)
}

/// Whether the comma-separated `value` holds `token`, compared
/// case-insensitively with optional whitespace around each element
/// (`Connection: keep-alive, Upgrade` has `upgrade`).
pub fn header_has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// The values of the fields called `name` (case-insensitive), in order.
pub fn headers_named<'a, 'b: 'a>(
    headers: &'a [Header<'b>],
    name: &'a str,
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The non-empty elements of a comma list, without their surrounding OWS.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// True when some LF in `head` is not preceded by CR. httparse accepts a
/// bare LF as a line end (RFC 9112 §2.2 allows that leniency); a proxy must
/// not, because the server behind it may split lines differently.
///
/// Only for heads httparse accepted: there every CR is followed by LF
/// (httparse refuses a bare CR in every position), so each LF pairs with at
/// most one CR and a bare LF shows as more LFs than CRs. Counting both in
/// byte lanes vectorizes; it is twice as fast as visiting each LF with
/// `memchr_iter` on a typical head.
pub(crate) fn has_bare_lf(head: &[u8]) -> bool {
    let (mut lf, mut cr) = (0usize, 0usize);
    // A u8 lane cannot overflow over 255 bytes.
    for chunk in head.chunks(255) {
        let (mut chunk_lf, mut chunk_cr) = (0u8, 0u8);
        for &b in chunk {
            chunk_lf += u8::from(b == b'\n');
            chunk_cr += u8::from(b == b'\r');
        }
        lf += usize::from(chunk_lf);
        cr += usize::from(chunk_cr);
    }
    lf != cr
}

/// Whether `name`, a field name as the parsers pass it (`tchar` bytes
/// only), is `lower` in any case; `lower` holds lower-case letters, digits
/// and `-`, every one with bit 0x20 set. Folding with `| 0x20` then only
/// joins a letter with its capital (the other byte it joins with a digit
/// or `-` is a control byte, never a `tchar`), so eight bytes compare at
/// once where `eq_ignore_ascii_case` folds both sides byte by byte.
#[inline]
pub(crate) fn name_is(name: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    if name.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (name, lower);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if u64::from_ne_bytes(*x) | 0x2020_2020_2020_2020 != u64::from_ne_bytes(*y) {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.iter().zip(b).all(|(&x, &y)| x | 0x20 == y)
}

/// `tchar` of RFC 9110 §5.6.2: the bytes of a field name or a method.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// A byte allowed inside a field value: HTAB, visible ASCII, SP, obs-text.
pub(crate) const fn is_value_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=0x7e | 0x80..=0xff)
}

/// Cold path: httparse refused the field section of `head` (the bytes after
/// the start line) with a name or value error; find the first line at fault
/// and say which rule it broke. `fallback` is used when the fault is not in
/// the bytes at hand.
pub(crate) fn diagnose_fields(fields: &[u8], fallback: FieldFault) -> FieldFault {
    let mut rest = fields;
    while !rest.is_empty() {
        let (line, ended) = match memchr::memchr(b'\n', rest) {
            Some(lf) => (rest.get(..lf).unwrap_or_default(), true),
            None => (rest, false),
        };
        rest = rest.get(line.len() + 1..).unwrap_or_default();
        let line = match line {
            [body @ .., b'\r'] => body,
            _ if ended => return FieldFault::BareLf,
            _ => line,
        };
        if line.is_empty() {
            break;
        }
        if let Some(fault) = diagnose_line(line) {
            return fault;
        }
    }
    fallback
}

fn diagnose_line(line: &[u8]) -> Option<FieldFault> {
    if let [b' ' | b'\t', ..] = line {
        return Some(FieldFault::ObsFold);
    }
    let name_len = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    let after_name = line.get(name_len..).unwrap_or_default();
    match after_name {
        [b':', value @ ..] if name_len > 0 => {
            if value.iter().all(|&b| is_value_byte(b)) {
                None
            } else {
                Some(FieldFault::BadValue)
            }
        }
        [b' ' | b'\t', ..] if trim_ows(after_name).first() == Some(&b':') && name_len > 0 => {
            Some(FieldFault::SpaceBeforeColon)
        }
        _ if !line.contains(&b':') => Some(FieldFault::MissingColon),
        _ => Some(FieldFault::BadName),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn name_is_agrees_with_eq_ignore_ascii_case_on_every_tchar() {
        let targets: [&[u8]; 6] = [
            b"te",
            b"host",
            b"content-length",
            b"transfer-encoding",
            b"x-forwarded-proto",
            b"http2-settings",
        ];
        let tchars: Vec<u8> = (0u8..=255).filter(|&b| is_tchar(b)).collect();
        for target in targets {
            assert!(name_is(target, target));
            assert!(name_is(&target.to_ascii_uppercase(), target));
            assert!(!name_is(&target[1..], target), "shorter");
            for at in 0..target.len() {
                for &b in &tchars {
                    let mut name = target.to_vec();
                    name[at] = b;
                    assert_eq!(
                        name_is(&name, target),
                        name.eq_ignore_ascii_case(target),
                        "{:?} against {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(target)
                    );
                }
            }
        }
    }

    #[test]
    fn tokens_are_found_case_insensitively_with_ows() {
        assert!(header_has_token(b"keep-alive, Upgrade", b"upgrade"));
        assert!(header_has_token(b" close ", b"close"));
        assert!(header_has_token(b"a,\tb ,c", b"B"));
        assert!(!header_has_token(b"upgrade-insecure", b"upgrade"));
        assert!(!header_has_token(b"", b"close"));
        assert!(!header_has_token(b",,", b""));
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"005"), Ok(5));
        assert_eq!(parse_content_length(b"5, 5"), Ok(5));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"+5",
            b"-5",
            b"1 0",
            b"0x10",
            b"a",
            b"5,",
            b",5",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_content_length(bad),
                Err(FieldFault::BadContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_content_length(b"5, 6"),
            Err(FieldFault::ConflictingContentLength)
        );
    }

    #[test]
    fn bare_lf_is_found_anywhere() {
        assert!(!has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(has_bare_lf(b"\nGET / HTTP/1.1\r\n\r\n"));
        assert!(has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\n\r\n"));
        assert!(has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\n"));
        // Past one 255-byte lane.
        let mut long = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..100 {
            long.extend_from_slice(b"A: b\r\n");
        }
        long.extend_from_slice(b"\r\n");
        assert!(!has_bare_lf(&long));
        long.insert(600, b'\n');
        assert!(has_bare_lf(&long));
    }

    #[test]
    fn diagnosis_names_the_rule() {
        let d = |s: &[u8]| diagnose_fields(s, FieldFault::BadName);
        assert_eq!(d(b"A: b\r\n c\r\n\r\n"), FieldFault::ObsFold);
        assert_eq!(d(b"A : b\r\n\r\n"), FieldFault::SpaceBeforeColon);
        assert_eq!(d(b"A b\r\n\r\n"), FieldFault::MissingColon);
        assert_eq!(d(b"A(b: c\r\n\r\n"), FieldFault::BadName);
        assert_eq!(d(b"A: b\x00c\r\n\r\n"), FieldFault::BadValue);
        assert_eq!(d(b"A: b\nC: d\r\n\r\n"), FieldFault::BareLf);
        assert_eq!(d(b"A: b\r\n\r\n"), FieldFault::BadName);
    }
}
