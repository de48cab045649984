//! `http::parse_response` (as the answer to a GET and to a HEAD), then
//! `write_response_head`; the written head must parse again with the same
//! status and body framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limpet::http::{parse_response, write_response_head, Limits, Version};

const LIMITS: Limits = Limits {
    max_request_line_bytes: 1024,
    max_head_bytes: 4096,
    max_headers: 32,
};

const REPARSE: Limits = Limits {
    max_request_line_bytes: 1 << 20,
    max_head_bytes: 1 << 20,
    max_headers: 256,
};

fn check(data: &[u8], is_head: bool, client_keep_alive: bool, client_version: Version) {
    let mut headers = [std::mem::MaybeUninit::uninit(); 64];
    let resp = match parse_response(data, &mut headers, &LIMITS, is_head) {
        Ok(Some(resp)) => resp,
        Ok(None) => {
            assert!(data.len() < LIMITS.max_head_bytes, "partial beyond the head limit");
            return;
        }
        Err(e) => {
            assert_eq!(e.status(), 502);
            return;
        }
    };
    assert!(resp.head_len <= data.len());
    assert!(resp.head_len <= LIMITS.max_head_bytes);
    assert_eq!(resp.head, &data[..resp.head_len]);
    assert!(resp.head.ends_with(b"\r\n\r\n"));
    assert!(resp.headers.len() <= LIMITS.max_headers);
    assert!((100..=599).contains(&resp.status));

    let mut out = Vec::new();
    write_response_head(
        &resp,
        &mut out,
        client_keep_alive,
        client_version,
        |value, out| out.extend_from_slice(value),
        |out| out.extend_from_slice(b"Set-Cookie: SERVERID=abc; Path=/\r\n"),
    );
    let mut again = [std::mem::MaybeUninit::uninit(); 256];
    let re = match parse_response(&out, &mut again, &REPARSE, is_head) {
        Ok(Some(re)) => re,
        other => panic!(
            "written head does not parse again: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(re.head_len, out.len());
    assert_eq!(re.status, resp.status);
    assert_eq!(re.body, resp.body, "framing changed on the way through");
}

fuzz_target!(|data: &[u8]| {
    check(data, false, true, Version::Http11);
    check(data, true, false, Version::Http10);
});
