//! The complete responses limpet sends on its own: the errors it answers
//! with when it refuses a request or cannot reach a backend, and the interim
//! `100 Continue`. All are `'static` bytes built at compile time, so sending
//! one allocates nothing; each closes the connection, since after an error
//! limpet no longer trusts where the next request starts.

/// Interim answer to `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// One canned response: status line, fixed fields, the reason as body. The
/// `Content-Length` is written by hand (a `const` cannot count it for
/// `concat!`); a test checks it against the body of every response.
macro_rules! canned {
    ($code:literal, $reason:literal, $body_len:literal) => {
        concat!(
            "HTTP/1.1 ",
            $code,
            " ",
            $reason,
            "\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Length: ",
            $body_len,
            "\r\n",
            "Connection: close\r\n",
            "\r\n",
            $reason,
            "\n",
        )
        .as_bytes()
    };
}

pub const BAD_REQUEST: &[u8] = canned!("400", "Bad Request", "12");
pub const NOT_FOUND: &[u8] = canned!("404", "Not Found", "10");
pub const METHOD_NOT_ALLOWED: &[u8] = canned!("405", "Method Not Allowed", "19");
pub const REQUEST_TIMEOUT: &[u8] = canned!("408", "Request Timeout", "16");
pub const CONTENT_TOO_LARGE: &[u8] = canned!("413", "Content Too Large", "18");
pub const URI_TOO_LONG: &[u8] = canned!("414", "URI Too Long", "13");
pub const MISDIRECTED_REQUEST: &[u8] = canned!("421", "Misdirected Request", "20");
pub const TOO_MANY_REQUESTS: &[u8] = canned!("429", "Too Many Requests", "18");
pub const HEADER_FIELDS_TOO_LARGE: &[u8] = canned!("431", "Request Header Fields Too Large", "32");
pub const INTERNAL_SERVER_ERROR: &[u8] = canned!("500", "Internal Server Error", "22");
pub const BAD_GATEWAY: &[u8] = canned!("502", "Bad Gateway", "12");
pub const SERVICE_UNAVAILABLE: &[u8] = canned!("503", "Service Unavailable", "20");
pub const GATEWAY_TIMEOUT: &[u8] = canned!("504", "Gateway Timeout", "16");

/// The `503` of a strict session whose server is unavailable (SPEC §3.8):
/// the canned `503` with `Retry-After`. Built per answer (an error path).
pub fn unavailable_response(retry_after_secs: u64) -> Vec<u8> {
    const REASON: &str = "Service Unavailable\n";
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: ");
    out.extend_from_slice(itoa::Buffer::new().format(retry_after_secs).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(REASON.len()).as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(REASON.as_bytes());
    out
}

/// The canned response for `status`. A status without one gets the 500,
/// since asking for it is limpet's own mistake.
pub fn error_response(status: u16) -> &'static [u8] {
    match status {
        400 => BAD_REQUEST,
        404 => NOT_FOUND,
        405 => METHOD_NOT_ALLOWED,
        408 => REQUEST_TIMEOUT,
        413 => CONTENT_TOO_LARGE,
        414 => URI_TOO_LONG,
        421 => MISDIRECTED_REQUEST,
        429 => TOO_MANY_REQUESTS,
        431 => HEADER_FIELDS_TOO_LARGE,
        502 => BAD_GATEWAY,
        503 => SERVICE_UNAVAILABLE,
        504 => GATEWAY_TIMEOUT,
        _ => INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_carries_retry_after() {
        assert_eq!(
            unavailable_response(7),
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n"
        );
    }

    const ALL: &[(u16, &str)] = &[
        (400, "Bad Request"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (408, "Request Timeout"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (421, "Misdirected Request"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
    ];

    #[test]
    fn every_response_is_well_framed() {
        for &(status, reason) in ALL {
            let bytes = error_response(status);
            let text = std::str::from_utf8(bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert_eq!(body, format!("{reason}\n"));
            let want = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close",
                body.len()
            );
            assert_eq!(head, want);
            // And it parses as what it says it is.
            let mut h = [httparse::EMPTY_HEADER; 4];
            let mut resp = httparse::Response::new(&mut h);
            let n = resp.parse(bytes).unwrap().unwrap();
            assert_eq!((resp.code, n + body.len()), (Some(status), bytes.len()));
        }
    }

    #[test]
    fn unknown_status_falls_back_to_500() {
        assert_eq!(error_response(418), INTERNAL_SERVER_ERROR);
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}
