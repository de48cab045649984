//! Small owned-buffer I/O steps with deadlines, shared by both sides.
//!
//! A read or write moves its buffer into the kernel until it completes. When
//! a deadline drops the operation, monoio cancels it and frees the buffer
//! once the kernel lets go of it, so a timed-out step gives no buffer back;
//! callers only time out I/O on connections they are about to close.

use std::io;
use std::time::Duration;

use monoio::buf::IoBuf;

use crate::net::Stream;

use crate::worker::deadline::timeout;

/// How a read or write with a deadline failed.
#[derive(Debug)]
pub enum IoFailure {
    /// The deadline passed; the buffer went with the cancelled operation.
    TimedOut,
    /// The peer reset, or another I/O error; the buffer came back.
    Failed(io::Error),
}

/// Reads more bytes after the initialised part of `buf`, which must have
/// spare capacity. `Ok(0)` is end of stream. The buffer comes back unless
/// the deadline passed.
pub async fn read_more<S: Stream>(
    stream: &mut S,
    buf: Vec<u8>,
    limit: Duration,
) -> (Result<usize, IoFailure>, Option<Vec<u8>>) {
    match timeout(limit, stream.read_more(buf)).await {
        Ok((Ok(n), buf)) => (Ok(n), Some(buf)),
        Ok((Err(err), buf)) => (Err(IoFailure::Failed(err)), Some(buf)),
        Err(_) => (Err(IoFailure::TimedOut), None),
    }
}

/// [`read_more`] without a deadline, for a read that cannot wait: the
/// socket was just seen readable.
pub async fn read_more_at_once<S: Stream>(
    stream: &mut S,
    buf: Vec<u8>,
) -> (Result<usize, IoFailure>, Option<Vec<u8>>) {
    let (result, buf) = stream.read_more(buf).await;
    (result.map_err(IoFailure::Failed), Some(buf))
}

/// Writes all of `buf`. The buffer comes back unless the deadline passed.
pub async fn write_all<S: Stream, B: IoBuf + AsRef<[u8]>>(
    stream: &mut S,
    buf: B,
    limit: Duration,
) -> (Result<(), IoFailure>, Option<B>) {
    match timeout(limit, stream.write_all(buf)).await {
        Ok((Ok(_), buf)) => (Ok(()), Some(buf)),
        Ok((Err(err), buf)) => (Err(IoFailure::Failed(err)), Some(buf)),
        Err(_) => (Err(IoFailure::TimedOut), None),
    }
}

/// Writes all of `buf` without a deadline: only for writes that cannot
/// wait (small enough for an empty socket send buffer).
pub async fn write_all_at_once<S: Stream, B: IoBuf + AsRef<[u8]>>(
    stream: &mut S,
    buf: B,
) -> (Result<(), IoFailure>, Option<B>) {
    let (result, buf) = stream.write_all(buf).await;
    (result.map_err(IoFailure::Failed), Some(buf))
}

/// Writes `buf[range]` of an owned vector; the vector comes back unless the
/// deadline passed.
pub async fn write_range<S: Stream>(
    stream: &mut S,
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
    limit: Duration,
) -> (Result<(), IoFailure>, Option<Vec<u8>>) {
    if range.is_empty() {
        return (Ok(()), Some(buf));
    }
    match crate::worker::deadline::timeout(limit, stream.write_range(buf, range)).await {
        Ok((Ok(()), buf)) => (Ok(()), Some(buf)),
        Ok((Err(err), buf)) => (Err(IoFailure::Failed(err)), Some(buf)),
        Err(_) => (Err(IoFailure::TimedOut), None),
    }
}

/// Drops the first `n` bytes of `buf`, keeping the rest (pipelined bytes).
pub fn consume(buf: &mut Vec<u8>, n: usize) {
    if n >= buf.len() {
        buf.clear();
    } else {
        buf.drain(..n);
    }
}
