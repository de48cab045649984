//! The byte streams a connection runs over: plain TCP, or TLS through
//! [`super::tls::TlsStream`], on either side.
//!
//! The client side is generic over [`Stream`]: a plain listener's
//! connections are compiled for `TcpStream` alone and pay nothing for TLS.
//! The backend side is the [`Upstream`] enum, since one pool holds both
//! kinds and a group may switch on a reload; its plain arm costs a branch
//! per I/O call next to a system call.

use std::future::Future;
use std::io;
use std::ops::Range;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::tls::TlsStream;

/// Owned-buffer I/O, as monoio does it, on plain or TLS streams.
pub trait Stream {
    /// Reads more bytes after the initialised part of `buf`, which has
    /// spare capacity. `Ok(0)` is the end of the stream.
    fn read_more(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// Writes all of `buf`.
    fn write_all<B: IoBuf + AsRef<[u8]>>(
        &mut self,
        buf: B,
    ) -> impl Future<Output = (io::Result<()>, B)>;

    /// Writes all of `buf[range]`.
    fn write_range(
        &mut self,
        buf: Vec<u8>,
        range: Range<usize>,
    ) -> impl Future<Output = (io::Result<()>, Vec<u8>)>;

    /// Waits until a read would find something (bytes, or the end), without
    /// holding a buffer. Dropping the wait loses nothing.
    fn readable(&mut self) -> impl Future<Output = io::Result<()>>;

    /// Ends the sending direction (TLS: with a `close_notify`).
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>>;
}

impl Stream for TcpStream {
    async fn read_more(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        let end = buf.capacity();
        let (result, slice) = self.read(buf.slice_mut(start..end)).await;
        (result, slice.into_inner())
    }

    async fn write_all<B: IoBuf + AsRef<[u8]>>(&mut self, buf: B) -> (io::Result<()>, B) {
        let (result, buf) = AsyncWriteRentExt::write_all(self, buf).await;
        (result.map(|_| ()), buf)
    }

    async fn write_range(
        &mut self,
        buf: Vec<u8>,
        range: Range<usize>,
    ) -> (io::Result<()>, Vec<u8>) {
        let (result, slice) = AsyncWriteRentExt::write_all(self, buf.slice(range)).await;
        (result.map(|_| ()), slice.into_inner())
    }

    async fn readable(&mut self) -> io::Result<()> {
        TcpStream::readable(self, false).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        AsyncWriteRent::shutdown(self).await
    }
}

/// A connection to a backend.
pub enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream for Upstream {
    async fn read_more(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Upstream::Plain(stream) => stream.read_more(buf).await,
            Upstream::Tls(stream) => stream.read_more(buf).await,
        }
    }

    async fn write_all<B: IoBuf + AsRef<[u8]>>(&mut self, buf: B) -> (io::Result<()>, B) {
        match self {
            Upstream::Plain(stream) => Stream::write_all(stream, buf).await,
            Upstream::Tls(stream) => stream.write_all(buf).await,
        }
    }

    async fn write_range(
        &mut self,
        buf: Vec<u8>,
        range: Range<usize>,
    ) -> (io::Result<()>, Vec<u8>) {
        match self {
            Upstream::Plain(stream) => stream.write_range(buf, range).await,
            Upstream::Tls(stream) => stream.write_range(buf, range).await,
        }
    }

    async fn readable(&mut self) -> io::Result<()> {
        match self {
            Upstream::Plain(stream) => Stream::readable(stream).await,
            Upstream::Tls(stream) => stream.readable().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Upstream::Plain(stream) => Stream::shutdown(stream).await,
            Upstream::Tls(stream) => stream.shutdown().await,
        }
    }
}
