//! A raw HTTP/2 frame writer and reader for the tests that must send what no
//! validating client would (RFC 9113 §4, §6): frames are built byte by byte,
//! header blocks are HPACK literals of arbitrary bytes (RFC 7541 §6.2.2,
//! never Huffman-coded, integers and string lengths per §5.1 and §5.2), so
//! upper-case names, CR/LF/NUL, repeated or late pseudo-headers reach the
//! server exactly as written. The reader splits the socket's bytes into
//! frames and decodes every header block it receives (with `fluke-hpack`,
//! an implementation independent of the server's), so that the dynamic
//! table stays in step and a response's `:status` can be read.
//!
//! It never validates what it sends: that is its purpose. It is used from
//! one thread per connection, with a read timeout on every read.

// Test code: a failed unwrap is a failed test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// One frame: the 9-byte header (length, type, flags, stream id with the
/// reserved bit cleared) and the payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 24, "a frame payload is at most 2^24 - 1 bytes");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in values {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

/// A HEADERS frame carrying `block` (no padding, no priority).
pub fn headers(stream: u32, block: &[u8], end_stream: bool, end_headers: bool) -> Vec<u8> {
    let flags = if end_stream { END_STREAM } else { 0 } | if end_headers { END_HEADERS } else { 0 };
    frame(HEADERS, flags, stream, block)
}

pub fn continuation(stream: u32, block: &[u8], end_headers: bool) -> Vec<u8> {
    frame(
        CONTINUATION,
        if end_headers { END_HEADERS } else { 0 },
        stream,
        block,
    )
}

pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, bytes)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(opaque: [u8; 8], ack: bool) -> Vec<u8> {
    frame(PING, if ack { ACK } else { 0 }, 0, &opaque)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let mut payload = last_stream.to_be_bytes().to_vec();
    payload.extend_from_slice(&code.to_be_bytes());
    frame(GOAWAY, 0, 0, &payload)
}

/// An HPACK integer (RFC 7541 §5.1) with an `prefix_bits`-bit prefix; the
/// bits above the prefix in the first byte are `flags`.
pub fn hpack_integer(value: usize, prefix_bits: u8, flags: u8) -> Vec<u8> {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        return vec![flags | u8::try_from(value).unwrap()];
    }
    let mut out = vec![flags | u8::try_from(max).unwrap()];
    let mut rest = value - max;
    while rest >= 128 {
        out.push(u8::try_from(rest % 128).unwrap() | 0x80);
        rest /= 128;
    }
    out.push(u8::try_from(rest).unwrap());
    out
}

/// An HPACK string literal (RFC 7541 §5.2), never Huffman-coded.
pub fn hpack_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = hpack_integer(bytes.len(), 7, 0);
    out.extend_from_slice(bytes);
    out
}

/// A literal header field without indexing, with a literal name (RFC 7541
/// §6.2.2): the bytes go on the wire as they are.
pub fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend(hpack_string(name));
    out.extend(hpack_string(value));
    out
}

/// A literal header field with incremental indexing (RFC 7541 §6.2.1): the
/// server's decoder adds it to its dynamic table, at index 62.
pub fn literal_indexed(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    out.extend(hpack_string(name));
    out.extend(hpack_string(value));
    out
}

/// An indexed header field (RFC 7541 §6.1): one byte for indices below 127.
pub fn indexed(index: usize) -> Vec<u8> {
    hpack_integer(index, 7, 0x80)
}

/// A header block of literals without indexing, in order.
pub fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    fields.iter().flat_map(|(n, v)| literal(n, v)).collect()
}

/// The four pseudo-headers of a GET of `path` at `authority`, as fields.
pub fn get_fields<'a>(path: &'a str, authority: &'a str) -> Vec<(&'a [u8], &'a [u8])> {
    vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", path.as_bytes()),
        (b":authority", authority.as_bytes()),
    ]
}

/// A frame as read from the socket; a HEADERS frame and its CONTINUATIONs
/// come back as one HEADERS frame with `fields` decoded.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
    /// For HEADERS: the decoded header list.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// A HEADERS frame's `:status`.
    pub fn status(&self) -> Option<u16> {
        let (_, value) = self.fields.iter().find(|(n, _)| n == b":status")?;
        std::str::from_utf8(value).ok()?.parse().ok()
    }

    pub fn is(&self, kind: u8) -> bool {
        self.kind == kind
    }

    pub fn end_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM != 0
    }
}

/// How a stream ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response: its status and body.
    Response(u16, Vec<u8>),
    /// RST_STREAM on the stream, with its code.
    Reset(u32),
    /// GOAWAY for the connection, with its code, before the stream ended.
    GoAway(u32),
    /// The connection closed (EOF or reset) before the stream ended.
    Closed,
    /// Nothing decisive within the time limit.
    TimedOut,
}

/// One HTTP/2 client connection over TCP, frames written raw.
pub struct H2 {
    pub stream: TcpStream,
    buf: Vec<u8>,
    decoder: fluke_hpack::Decoder<'static>,
    /// The GOAWAY received, if any.
    pub goaway: Option<Frame>,
    /// PING ACKs and SETTINGS ACKs received, for the flood tests.
    pub ping_acks: usize,
    pub settings_acks: usize,
    /// Bytes of DATA received on any stream.
    pub data_bytes: usize,
    /// Whether to acknowledge the server's SETTINGS and PINGs (a normal
    /// client does; a flood test may not want to write).
    pub auto_ack: bool,
    closed: bool,
}

impl H2 {
    /// Connects and sends the preface and `settings`; the server's SETTINGS
    /// are read (and acknowledged) with the frames that follow.
    pub fn connect(addr: SocketAddr, settings_values: &[(u16, u32)]) -> H2 {
        let stream = TcpStream::connect(addr).unwrap();
        H2::over(stream, settings_values)
    }

    pub fn over(stream: TcpStream, settings_values: &[(u16, u32)]) -> H2 {
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut h2 = H2 {
            stream,
            buf: Vec::new(),
            decoder: fluke_hpack::Decoder::new(),
            goaway: None,
            ping_acks: 0,
            settings_acks: 0,
            data_bytes: 0,
            auto_ack: true,
            closed: false,
        };
        let mut opening = PREFACE.to_vec();
        opening.extend(settings(settings_values));
        h2.send(&opening);
        h2
    }

    /// Connects, sends the preface and settings, and waits (at most 5 s)
    /// for the server's SETTINGS. Panics if they do not come.
    pub fn handshake(addr: SocketAddr) -> H2 {
        let mut h2 = H2::connect(addr, &[(SETTINGS_ENABLE_PUSH, 0)]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match h2.read_frame() {
                Some(f) if f.is(SETTINGS) && f.flags & ACK == 0 => return h2,
                Some(_) => continue,
                None if h2.closed => break,
                None => continue,
            }
        }
        panic!("no SETTINGS from the server at {addr}");
    }

    /// Writes `bytes`; false if the connection is gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends a request's header block on `stream` in one HEADERS frame.
    pub fn request(&mut self, stream: u32, fields: &[(&[u8], &[u8])], end_stream: bool) {
        self.send(&headers(stream, &block(fields), end_stream, true));
    }

    /// A GET of `path` on `stream`; returns how it ended.
    pub fn get(&mut self, stream: u32, path: &str) -> Outcome {
        self.request(stream, &get_fields(path, "a.example"), true);
        self.outcome(stream, Duration::from_secs(5))
    }

    /// True once the server has closed the connection (EOF or reset).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next frame, or None on a read timeout (200 ms) or a closed
    /// connection ([`H2::is_closed`] says which). Header blocks are decoded
    /// here, whatever their stream; SETTINGS and PING are acknowledged when
    /// `auto_ack` is set.
    pub fn read_frame(&mut self) -> Option<Frame> {
        let mut frame = self.raw_frame()?;
        if frame.is(HEADERS) || frame.is(PUSH_PROMISE) {
            let mut block = header_block(&frame);
            while frame.flags & END_HEADERS == 0 {
                let next = self.raw_frame_waiting()?;
                assert!(next.is(CONTINUATION), "expected CONTINUATION, got {next:?}");
                block.extend_from_slice(&next.payload);
                frame.flags |= next.flags & END_HEADERS;
            }
            frame.fields = self
                .decoder
                .decode(&block)
                .unwrap_or_else(|e| panic!("the server's header block does not decode: {e:?}"));
        }
        match frame.kind {
            SETTINGS if frame.flags & ACK != 0 => self.settings_acks += 1,
            SETTINGS if self.auto_ack => {
                let _ = self.try_send(&settings_ack());
            }
            PING if frame.flags & ACK != 0 => self.ping_acks += 1,
            PING if self.auto_ack => {
                let opaque: [u8; 8] = frame.payload[..8].try_into().unwrap();
                let _ = self.try_send(&ping(opaque, true));
            }
            GOAWAY => self.goaway = Some(frame.clone()),
            DATA => self.data_bytes += frame.payload.len(),
            _ => {}
        }
        Some(frame)
    }

    /// Reads frames until `stream` ends (response complete, reset), the
    /// connection goes away or closes, or `limit` passes. DATA is credited
    /// back to the server on the stream and the connection so that a
    /// response of any size can arrive.
    pub fn outcome(&mut self, stream: u32, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        let mut status = None;
        let mut body = Vec::new();
        while Instant::now() < deadline {
            let Some(frame) = self.read_frame() else {
                if self.closed {
                    return self.goaway_code().map_or(Outcome::Closed, Outcome::GoAway);
                }
                continue;
            };
            if frame.is(GOAWAY) {
                // Streams up to the last id may still complete (§6.8).
                let last = u32::from_be_bytes(frame.payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                if last < stream || frame.error_code() != Some(NO_ERROR) {
                    return Outcome::GoAway(frame.error_code().unwrap());
                }
                continue;
            }
            if frame.stream != stream {
                continue;
            }
            match frame.kind {
                RST_STREAM => return Outcome::Reset(frame.error_code().unwrap()),
                HEADERS => {
                    // 1xx responses are interim; a later HEADERS with a
                    // status below 200 does not end the stream.
                    if let Some(s) = frame.status().filter(|s| *s >= 200) {
                        status = Some(s);
                    }
                }
                DATA => {
                    body.extend_from_slice(&frame.payload);
                    let n = u32::try_from(frame.payload.len()).unwrap();
                    if n > 0 {
                        let _ = self.try_send(&window_update(0, n));
                        if !frame.end_stream() {
                            let _ = self.try_send(&window_update(stream, n));
                        }
                    }
                }
                _ => {}
            }
            if frame.end_stream() {
                return Outcome::Response(status.unwrap_or(0), body);
            }
        }
        Outcome::TimedOut
    }

    /// Reads every frame already buffered or arriving within 1 ms, without
    /// waiting longer: for a writer that must not stall on its own reads.
    /// Returns how many frames were read.
    pub fn drain(&mut self) -> usize {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut n = 0;
        while self.read_frame().is_some() {
            n += 1;
        }
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        n
    }

    /// Reads until the server closes the connection, at most `limit`;
    /// true if it did.
    pub fn closes_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.closed && Instant::now() < deadline {
            let _ = self.read_frame();
        }
        self.closed
    }

    /// The code of the GOAWAY received so far, if any.
    pub fn goaway_code(&self) -> Option<u32> {
        self.goaway.as_ref().and_then(Frame::error_code)
    }

    fn raw_frame_waiting(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(f) = self.raw_frame() {
                return Some(f);
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// One frame as it is on the wire, once its bytes are all buffered.
    fn raw_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = split_frame(&mut self.buf) {
                return Some(frame);
            }
            if self.closed {
                return None;
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

/// The header block fragment of a HEADERS frame: padding and priority
/// fields removed (RFC 9113 §6.2).
fn header_block(frame: &Frame) -> Vec<u8> {
    let mut payload = &frame.payload[..];
    let mut pad = 0;
    if frame.flags & 0x8 != 0 {
        pad = usize::from(payload[0]);
        payload = &payload[1..];
    }
    if frame.is(HEADERS) && frame.flags & 0x20 != 0 {
        payload = &payload[5..];
    }
    if frame.is(PUSH_PROMISE) {
        payload = &payload[4..];
    }
    payload[..payload.len() - pad].to_vec()
}

/// Takes one complete frame off the front of `buf`, if there is one.
pub fn split_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 9 {
        return None;
    }
    let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
    if buf.len() < 9 + len {
        return None;
    }
    let stream = u32::from_be_bytes(buf[5..9].try_into().unwrap()) & 0x7fff_ffff;
    let frame = Frame {
        kind: buf[3],
        flags: buf[4],
        stream,
        payload: buf[9..9 + len].to_vec(),
        fields: Vec::new(),
    };
    buf.drain(..9 + len);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_rfc_7541_c_1() {
        // C.1.1, C.1.2 and C.1.3: 10 and 1337 with a 5-bit prefix, 42 with 8.
        assert_eq!(hpack_integer(10, 5, 0), [0b0000_1010]);
        assert_eq!(
            hpack_integer(1337, 5, 0),
            [0b0001_1111, 0b1001_1010, 0b0000_1010]
        );
        assert_eq!(hpack_integer(42, 8, 0), [42]);
        assert_eq!(hpack_integer(31, 5, 0xe0), [0xff, 0x00]);
    }

    #[test]
    fn literals_decode_byte_for_byte_with_an_independent_decoder() {
        // Upper case, CR/LF/NUL and a 300-byte value (a two-byte length)
        // come out exactly as written: nothing is normalised on the way.
        let long = vec![b'v'; 300];
        let fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b"X-Upper", b"a\r\nb\0c"),
            (b"", b"empty name"),
            (b"long", &long),
        ];
        let decoded = fluke_hpack::Decoder::new().decode(&block(&fields)).unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = fields
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
        // Literal without indexing, literal name: 0x00 then the lengths.
        assert_eq!(literal(b"ab", b"c"), [0x00, 2, b'a', b'b', 1, b'c']);
    }

    #[test]
    fn an_indexed_literal_is_referred_to_at_62() {
        let mut bytes = literal_indexed(b"x-big", b"value");
        bytes.extend(indexed(62));
        let decoded = fluke_hpack::Decoder::new().decode(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1], (b"x-big".to_vec(), b"value".to_vec()));
    }

    #[test]
    fn frames_split_as_written() {
        let mut wire = headers(3, &block(&get_fields("/", "a")), true, true);
        wire.extend(rst_stream(3, CANCEL));
        wire.extend(goaway(7, ENHANCE_YOUR_CALM));
        wire.extend(&data(5, b"hello", false)[..6]);
        let first = split_frame(&mut wire).unwrap();
        assert_eq!(
            (first.kind, first.flags, first.stream),
            (HEADERS, END_STREAM | END_HEADERS, 3)
        );
        let reset = split_frame(&mut wire).unwrap();
        assert_eq!((reset.kind, reset.error_code()), (RST_STREAM, Some(CANCEL)));
        let away = split_frame(&mut wire).unwrap();
        assert_eq!(
            (away.kind, away.error_code()),
            (GOAWAY, Some(ENHANCE_YOUR_CALM))
        );
        assert!(
            split_frame(&mut wire).is_none(),
            "a partial frame stays buffered"
        );
        assert_eq!(wire.len(), 6);
    }
}
