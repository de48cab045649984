//! Parses a backend's response head into a borrowed [`Response`] and decides
//! how its body is delimited (RFC 9112 §6.3), refusing every head whose end
//! limpet and the client could disagree about.
//!
//! Every refusal is a [`ResponseError`]; the proxy answers the client 502 and
//! drops the backend connection. Never does I/O, allocates or panics.
//!
//! Who enforces what: httparse (default config) checks the version (exactly
//! `HTTP/1.0` / `HTTP/1.1`), one SP, three digits, the reason bytes, the
//! field syntax (no whitespace before a colon, no obs-fold, no controls in
//! values: response leniencies are all off by default) and the header
//! count. Here: bare LF, the status range, the byte limit, and framing.
//!
//! A `Transfer-Encoding` that is not a lone `chunked` would, per RFC 9112
//! §6.3, make the body close-delimited after decoding codings limpet does
//! not decode; such responses are refused rather than passed through, since
//! the client could not find their end either once we re-frame them.

use std::mem::MaybeUninit;

use httparse::Header;
use thiserror::Error;

use super::field::{self, FieldFault, HeadFacts, TransferCoding};
use super::request::Limits;
use super::Version;

/// Why a response head was refused. The answer to the client is always 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResponseError {
    #[error("response head larger than the limit")]
    HeadTooLarge,
    #[error("more header fields than the limit")]
    TooManyHeaders,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("HTTP version other than 1.0 or 1.1")]
    BadVersion,
    #[error("status code outside 100..=599")]
    BadStatusCode,
    #[error("bare LF in the head")]
    BareLf,
    #[error("obsolete line folding")]
    ObsFold,
    #[error("whitespace between a field name and its colon")]
    SpaceBeforeColon,
    #[error("header line without a colon")]
    MissingColon,
    #[error("invalid byte in a field name")]
    BadHeaderName,
    #[error("invalid byte in a field value")]
    BadHeaderValue,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("Content-Length values differ")]
    ConflictingContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("Transfer-Encoding other than a lone chunked")]
    UnsupportedTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingOnHttp10,
    #[error("a framing field in disguise (Content_Length, Transfer---Encoding, …)")]
    DisguisedFraming,
    #[error(
        "101 Switching Protocols to a protocol the client did not ask for or that is not allowed"
    )]
    UnaskedSwitch,
}

impl ResponseError {
    /// The status limpet answers its client with: the backend failed.
    pub fn status(&self) -> u16 {
        502
    }
}

impl From<FieldFault> for ResponseError {
    fn from(fault: FieldFault) -> Self {
        match fault {
            FieldFault::BareLf => ResponseError::BareLf,
            FieldFault::ObsFold => ResponseError::ObsFold,
            FieldFault::SpaceBeforeColon => ResponseError::SpaceBeforeColon,
            FieldFault::MissingColon => ResponseError::MissingColon,
            FieldFault::BadName => ResponseError::BadHeaderName,
            FieldFault::BadValue => ResponseError::BadHeaderValue,
            FieldFault::BadContentLength => ResponseError::BadContentLength,
            FieldFault::ConflictingContentLength => ResponseError::ConflictingContentLength,
            FieldFault::DisguisedFraming => ResponseError::DisguisedFraming,
        }
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, 1xx, 204 or 304.
    None,
    Length(u64),
    /// Use [`super::ChunkedDecoder`] to find the end.
    Chunked,
    /// Neither field: the body runs until the backend closes.
    UntilClose,
}

/// A parsed response head: views into the caller's buffer and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'b, 'h> {
    pub head_len: usize,
    /// The head's bytes (`buf[..head_len]`); the writers copy unchanged
    /// field lines from it in runs.
    pub head: &'b [u8],
    pub version: Version,
    pub status: u16,
    /// Empty when absent, or when it held obs-text (httparse's choice).
    pub reason: &'b str,
    pub headers: &'h [Header<'b>],
    pub body: ResponseFraming,
    /// The validated `Content-Length` value, even when it does not frame the
    /// body (a response to HEAD, a 304): the writer forwards it normalized.
    pub content_length: Option<u64>,
    /// The backend connection can be reused after this response.
    pub keep_alive: bool,
}

impl Response<'_, '_> {
    /// An interim response (100, 102, 103): the final one follows on the
    /// same connection.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// 101: after this head the connection is a tunnel.
    pub fn is_switching_protocols(&self) -> bool {
        self.status == 101
    }
}

/// Parses the response head at the start of `buf`. `Ok(None)`: incomplete
/// and within limits. `request_method_is_head`: the response has no body.
pub fn parse_response<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
    limits: &Limits,
    request_method_is_head: bool,
) -> Result<Option<Response<'b, 'h>>, ResponseError> {
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let slots = limits.max_headers.min(headers.len());
    let (storage, _) = headers.split_at_mut(slots);
    // Uninitialised storage: see `parse_request`.
    let mut parsed = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        window,
        storage,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => {
            return Err(ResponseError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(diagnose(window, e)),
    };
    let head = window.get(..head_len).unwrap_or(window);
    if field::has_bare_lf(head) {
        return Err(ResponseError::BareLf);
    }
    let (Some(version), Some(status), Some(reason)) = (
        parsed.version.and_then(Version::from_minor),
        parsed.code,
        parsed.reason,
    ) else {
        return Err(ResponseError::BadStatusLine);
    };
    if !(100..=599).contains(&status) {
        return Err(ResponseError::BadStatusCode);
    }
    let headers: &'h [Header<'b>] = parsed.headers;
    let facts = HeadFacts::collect(headers)?;
    let body = framing(&facts, version, status, request_method_is_head)?;
    let reusable = match version {
        Version::Http11 => !facts.close,
        Version::Http10 => facts.keep_alive && !facts.close,
    };
    Ok(Some(Response {
        head_len,
        head,
        version,
        status,
        reason,
        headers,
        body,
        content_length: facts.content_length,
        keep_alive: reusable && body != ResponseFraming::UntilClose && status != 101,
    }))
}

/// RFC 9112 §6.3, strict. The fields are validated even when the body is
/// absent by rule, so that a broken backend is noticed on every response.
fn framing(
    facts: &HeadFacts<'_>,
    version: Version,
    status: u16,
    head: bool,
) -> Result<ResponseFraming, ResponseError> {
    match (facts.transfer, facts.content_length, version) {
        (TransferCoding::Absent, _, _) => {}
        // §6.1: a 1.0 message with Transfer-Encoding has faulty framing.
        (_, _, Version::Http10) => return Err(ResponseError::TransferEncodingOnHttp10),
        (_, Some(_), _) => return Err(ResponseError::LengthAndTransferEncoding),
        (TransferCoding::Other, None, _) => return Err(ResponseError::UnsupportedTransferEncoding),
        (TransferCoding::Chunked, None, _) => {}
    }
    if head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(ResponseFraming::None);
    }
    Ok(match (facts.transfer, facts.content_length) {
        (TransferCoding::Chunked, _) => ResponseFraming::Chunked,
        (_, Some(n)) => ResponseFraming::Length(n),
        (_, None) => ResponseFraming::UntilClose,
    })
}

/// Cold path: name the rule httparse's coarse error stands for.
fn diagnose(window: &[u8], err: httparse::Error) -> ResponseError {
    match err {
        httparse::Error::TooManyHeaders => return ResponseError::TooManyHeaders,
        httparse::Error::Version => return ResponseError::BadVersion,
        httparse::Error::HeaderName | httparse::Error::HeaderValue => {}
        _ => return ResponseError::BadStatusLine,
    }
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let rest = window.get(start..).unwrap_or_default();
    let Some(end) = memchr::memchr(b'\n', rest) else {
        return ResponseError::BadStatusLine;
    };
    if end == 0 || rest.get(end - 1) != Some(&b'\r') {
        return ResponseError::BareLf;
    }
    let fallback = match err {
        httparse::Error::HeaderValue => FieldFault::BadValue,
        _ => FieldFault::BadName,
    };
    field::diagnose_fields(rest.get(end + 1..).unwrap_or_default(), fallback).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;

    const LIMITS: Limits = Limits {
        max_request_line_bytes: 8192,
        max_head_bytes: 8192,
        max_headers: 64,
    };

    fn parse(
        buf: &[u8],
        head: bool,
    ) -> Result<Option<(ResponseFraming, bool, u16)>, ResponseError> {
        let mut h = [std::mem::MaybeUninit::uninit(); 64];
        parse_response(buf, &mut h, &LIMITS, head)
            .map(|r| r.map(|r| (r.body, r.keep_alive, r.status)))
    }

    fn framing_of(buf: &[u8]) -> ResponseFraming {
        parse(buf, false).unwrap().unwrap().0
    }

    fn refused(buf: &[u8]) -> ResponseError {
        parse(buf, false).unwrap_err()
    }

    #[test]
    fn accepted_framings() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut h = [std::mem::MaybeUninit::uninit(); 8];
        let resp = parse_response(r, &mut h, &LIMITS, false).unwrap().unwrap();
        assert_eq!(resp.head_len, r.len() - 5);
        assert_eq!(
            (resp.status, resp.reason, resp.version),
            (200, "OK", Version::Http11)
        );
        assert_eq!(
            (resp.body, resp.keep_alive),
            (ResponseFraming::Length(5), true)
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            ResponseFraming::Chunked
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\n\r\n"),
            ResponseFraming::UntilClose
        );
        assert!(!parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap().1);
        assert_eq!(
            framing_of(b"HTTP/1.1 204 No Content\r\n\r\n"),
            ResponseFraming::None
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
            ResponseFraming::None
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 100 Continue\r\n\r\n"),
            ResponseFraming::None
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
                .unwrap()
                .unwrap()
                .0,
            ResponseFraming::None
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 \r\nContent-Length: 5, 5\r\n\r\n"),
            ResponseFraming::Length(5)
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
            ResponseFraming::Length(0)
        );
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |b: &[u8]| parse(b, false).unwrap().unwrap().1;
        assert!(ka(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ka(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(ka(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
    }

    #[test]
    fn status_classes() {
        let mut h = [std::mem::MaybeUninit::uninit(); 8];
        let r = parse_response(b"HTTP/1.1 103 Early Hints\r\n\r\n", &mut h, &LIMITS, false)
            .unwrap()
            .unwrap();
        assert!(r.is_informational() && !r.is_switching_protocols());
        let mut h = [std::mem::MaybeUninit::uninit(); 8];
        let r = parse_response(b"HTTP/1.1 101 Switching\r\n\r\n", &mut h, &LIMITS, false)
            .unwrap()
            .unwrap();
        assert!(!r.is_informational() && r.is_switching_protocols());
    }

    #[test]
    fn incomplete_and_limits() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nA: b\r\n", false), Ok(None));
        let small = Limits {
            max_head_bytes: 20,
            ..LIMITS
        };
        let mut h = [std::mem::MaybeUninit::uninit(); 8];
        let big = b"HTTP/1.1 200 OK\r\nA: bbbbbbbbbbbb\r\n\r\n";
        assert_eq!(
            parse_response(big, &mut h, &small, false),
            Err(ResponseError::HeadTooLarge)
        );
        let few = Limits {
            max_headers: 1,
            ..LIMITS
        };
        let two = b"HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\n";
        assert_eq!(
            parse_response(two, &mut h, &few, false),
            Err(ResponseError::TooManyHeaders)
        );
        assert_eq!(ResponseError::TooManyHeaders.status(), 502);
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], ResponseError)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                ResponseError::LengthAndTransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ResponseError::ConflictingContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ResponseError::BadContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                ResponseError::UnsupportedTransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                ResponseError::UnsupportedTransferEncoding,
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                ResponseError::TransferEncodingOnHttp10,
            ),
            (
                b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
                ResponseError::BareLf,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
                ResponseError::BareLf,
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
                ResponseError::ObsFold,
            ),
            (
                b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
                ResponseError::SpaceBeforeColon,
            ),
            (
                b"HTTP/1.1 200 OK\r\nA b\r\n\r\n",
                ResponseError::MissingColon,
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: \x01\r\n\r\n",
                ResponseError::BadHeaderValue,
            ),
            (b"HTTP/1.1 2000 OK\r\n\r\n", ResponseError::BadStatusLine),
            (b"HTTP/1.1 20 OK\r\n\r\n", ResponseError::BadStatusLine),
            (b"HTTP/1.1  200 OK\r\n\r\n", ResponseError::BadStatusLine),
            (b"garbage\r\n\r\n", ResponseError::BadVersion),
            (b"HTTP/2.0 200 OK\r\n\r\n", ResponseError::BadVersion),
            (b"HTTP/1.1 600 Nope\r\n\r\n", ResponseError::BadStatusCode),
            (b"HTTP/1.1 099 Nope\r\n\r\n", ResponseError::BadStatusCode),
        ];
        for (input, want) in cases {
            assert_eq!(
                refused(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(want.status(), 502);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let config = Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
        let alphabet =
            prop::sample::select(&b"HTTP/1.0 204\r\n:Content-Length; 5,chunked\t\x00"[..]);
        let bytes = proptest::collection::vec(alphabet, 0..400);
        runner
            .run(&(bytes, any::<bool>()), |(input, head)| {
                let mut h = [std::mem::MaybeUninit::uninit(); 8];
                let _ = parse_response(&input, &mut h, &LIMITS, head);
                Ok(())
            })
            .unwrap();
    }
}
