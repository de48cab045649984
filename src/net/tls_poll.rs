//! TLS over a poll-based socket, for the `h2` crate: an HTTPS connection
//! that chose HTTP/2 by ALPN leaves the owned-buffer [`TlsStream`] after
//! its handshake and goes on as a [`TlsPoll`], with rustls's state (keys,
//! decrypted bytes not yet read) and any ciphertext already read carried
//! over, so nothing the client sent is lost in the switch.
//!
//! rustls is driven as tokio-rustls drives it: its `read_tls`/`write_tls`
//! take a `std::io` adapter over the socket ([`SyncIo`]) that answers
//! `WouldBlock` when the socket is not ready, having registered the waker.

use std::io::{self, Read as _, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use rustls::Connection;

/// A TLS connection, after its handshake, over a poll-based socket `T`.
pub struct TlsPoll<T> {
    io: T,
    conn: Box<Connection>,
    /// Ciphertext read before the switch and not yet taken by rustls.
    pending: Vec<u8>,
    taken: usize,
    /// `close_notify` queued (shutdown started).
    closing: bool,
}

impl<T> TlsPoll<T> {
    pub(super) fn new(io: T, conn: Box<Connection>, pending: Vec<u8>, taken: usize) -> Self {
        TlsPoll {
            io,
            conn,
            pending,
            taken,
            closing: false,
        }
    }
}

/// The socket as `std::io` for rustls: `WouldBlock` where it would wait.
struct SyncIo<'a, 'b, T> {
    io: &'a mut T,
    cx: &'a mut Context<'b>,
}

impl<T: AsyncRead + Unpin> io::Read for SyncIo<'_, '_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<T: AsyncWrite + Unpin> io::Write for SyncIo<'_, '_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsPoll<T> {
    /// Writes what rustls has queued until it has none or the socket is
    /// full. `Ready(Ok(()))`: all written; `Pending`: the socket is full
    /// (the waker is registered).
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut io = SyncIo {
                io: &mut self.io,
                cx,
            };
            match self.conn.write_tls(&mut io) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Hands rustls more ciphertext: what was read before the switch
    /// first, then the socket's. `Ready(Ok(false))`: the peer closed TCP.
    fn poll_recv_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let read = if self.taken < self.pending.len() {
            let mut rest = self.pending.get(self.taken..).unwrap_or_default();
            let taken = self.conn.read_tls(&mut rest);
            if let Ok(n) = taken {
                self.taken += n;
                if self.taken >= self.pending.len() {
                    self.pending = Vec::new();
                    self.taken = 0;
                }
            }
            taken
        } else {
            let mut io = SyncIo {
                io: &mut self.io,
                cx,
            };
            self.conn.read_tls(&mut io)
        };
        match read {
            Ok(0) => return Poll::Ready(Ok(false)),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(err) => return Poll::Ready(Err(err)),
        }
        if let Err(err) = self.conn.process_new_packets() {
            // The alert rustls queued, if the socket takes it now.
            let _ = self.poll_send_tls(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, err)));
        }
        Poll::Ready(Ok(true))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsPoll<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    // 0: the peer said close_notify, an orderly end.
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
            // Key updates and the like: sent now if the socket takes them,
            // else with the next write.
            if this.conn.wants_write() {
                if let Poll::Ready(Err(err)) = this.poll_send_tls(cx) {
                    return Poll::Ready(Err(err));
                }
            }
            match this.poll_recv_tls(cx) {
                Poll::Ready(Ok(true)) => {}
                // TCP closed with no close_notify: an end all the same;
                // `h2` tells a clean one from a cut one by its frames.
                Poll::Ready(Ok(false)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsPoll<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut written = 0;
        while written < buf.len() {
            match this
                .conn
                .writer()
                .write(buf.get(written..).unwrap_or_default())
            {
                Ok(n) => written += n,
                Err(err) => return Poll::Ready(Err(err)),
            }
            match this.poll_send_tls(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                // The socket is full: what rustls took is written as far
                // as the caller is concerned; the rest waits.
                Poll::Pending if written == 0 => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.writer().flush()?;
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.conn.send_close_notify();
            this.closing = true;
        }
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}
