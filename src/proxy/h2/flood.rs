//! SETTINGS and PING floods: `h2` answers both internally without a limit,
//! so this read adapter looks at the 9-byte frame headers on their way to
//! `h2` (nothing else: payloads are skipped by their length) and counts
//! those two types. Past [`MAX_CONTROL_FRAMES`] in [`WINDOW`], it stops
//! handing bytes to `h2` and trips [`Counter`]; the connection's task then
//! sends GOAWAY (ENHANCE_YOUR_CALM) and closes.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::worker::Tick;

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};

/// SETTINGS and PING frames a client may send per window.
pub const MAX_CONTROL_FRAMES: u32 = 1000;
pub const WINDOW: Duration = Duration::from_secs(10);

const FRAME_HEADER_BYTES: usize = 9;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;

/// What the adapter tells the connection's task.
#[derive(Debug, Default)]
pub struct Counter {
    tripped: Cell<bool>,
}

impl Counter {
    pub fn tripped(&self) -> bool {
        self.tripped.get()
    }
}

/// Where the reader is in the frame sequence.
struct Frames {
    /// Bytes still to pass before the next frame header (the client
    /// preface first, then each payload).
    skip: u64,
    header: [u8; FRAME_HEADER_BYTES],
    have: usize,
    window_start: Option<Tick>,
    count: u32,
}

impl Frames {
    /// Scans `bytes`; true once the client is past the limit.
    fn scan(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).map_or(bytes.len(), |s| s.min(bytes.len()));
                self.skip -= n as u64;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let want = FRAME_HEADER_BYTES - self.have;
            let n = want.min(bytes.len());
            let (head, rest) = bytes.split_at(n);
            if let Some(slot) = self.header.get_mut(self.have..self.have + n) {
                slot.copy_from_slice(head);
            }
            self.have += n;
            bytes = rest;
            if self.have < FRAME_HEADER_BYTES {
                break;
            }
            self.have = 0;
            let [l0, l1, l2, kind, ..] = self.header;
            self.skip = u64::from(u32::from_be_bytes([0, l0, l1, l2]));
            if (kind == SETTINGS || kind == PING) && self.count() {
                return true;
            }
        }
        false
    }

    /// Counts one control frame; true past the limit.
    fn count(&mut self) -> bool {
        let now = crate::worker::now();
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < WINDOW => self.count += 1,
            _ => {
                self.window_start = Some(now);
                self.count = 1;
            }
        }
        self.count > MAX_CONTROL_FRAMES
    }
}

/// The client side of an HTTP/2 connection, counted.
pub struct Flood<T> {
    inner: T,
    frames: Frames,
    counter: Rc<Counter>,
}

impl<T> Flood<T> {
    /// `preface`: bytes that come before the first frame (the client's
    /// 24-byte connection preface).
    pub fn new(inner: T, preface: u64, counter: Rc<Counter>) -> Self {
        Flood {
            inner,
            frames: Frames {
                skip: preface,
                header: [0; FRAME_HEADER_BYTES],
                have: 0,
                window_start: None,
                count: 0,
            },
            counter,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Flood<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.counter.tripped() {
            // `h2` gets nothing more; the connection's task closes it.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = buf.filled().get(before..).unwrap_or_default();
            if this.frames.scan(new) {
                this.counter.tripped.set(true);
                // Wake the connection's task to act on it.
                cx.waker().wake_by_ref();
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Flood<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0, (len >> 8) as u8, len as u8, kind, 0, 0, 0, 0, 0];
        f.resize(9 + len, 0xAA);
        f
    }

    #[test]
    fn counts_only_settings_and_ping_headers_split_anywhere() {
        let mut frames = Frames {
            skip: 24,
            header: [0; 9],
            have: 0,
            window_start: None,
            count: 0,
        };
        let mut wire = vec![b'P'; 24];
        for _ in 0..MAX_CONTROL_FRAMES / 2 {
            wire.extend(frame(PING, 8));
            wire.extend(frame(0x0, 300)); // DATA whose payload looks like headers
            wire.extend(frame(SETTINGS, 0));
        }
        for piece in wire.chunks(7) {
            assert!(!frames.scan(piece), "{} counted", frames.count);
        }
        assert_eq!(frames.count, MAX_CONTROL_FRAMES);
        assert!(frames.scan(&frame(PING, 8)), "one more is past the limit");
    }
}
