//! TLS over a poll-based socket, for the `h2` crate: an HTTPS connection
//! that chose HTTP/2 by ALPN leaves the owned-buffer [`TlsStream`] after
//! its handshake and goes on as a [`TlsPoll`], with rustls's state (keys,
//! decrypted bytes not yet read) and any ciphertext already read carried
//! over, so nothing the client sent is lost in the switch.
//!
//! The same [`TlsCore`] as `TlsStream`'s drives rustls's unbuffered
//! connection: ciphertext is read from the socket into its `incoming`,
//! what rustls sends is encrypted into `out` and written from there; both
//! are freed whenever they are empty, so an idle connection holds no TLS
//! buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tls::{Job, Stop, TlsCore, READ_BYTES};

/// The most plaintext one `poll_write` encrypts (and so buffers, if the
/// socket is full).
const WRITE_BYTES: usize = 64 * 1024;

/// A TLS connection, after its handshake, over a poll-based socket `T`.
pub struct TlsPoll<T> {
    io: T,
    core: TlsCore,
    /// Ciphertext to send, from `out_at` on; capacity 0 when empty.
    out: Vec<u8>,
    out_at: usize,
    /// `close_notify` queued (shutdown started).
    closing: bool,
}

impl<T> TlsPoll<T> {
    pub(super) fn new(io: T, core: TlsCore) -> Self {
        TlsPoll {
            io,
            core,
            out: Vec::new(),
            out_at: 0,
            closing: false,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsPoll<T> {
    /// Writes `out` until it is empty or the socket is full.
    /// `Ready(Ok(()))`: all written; `Pending`: the socket is full (the
    /// waker is registered).
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let rest = self.out.get(self.out_at..).unwrap_or_default();
            match Pin::new(&mut self.io).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.out_at += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Nothing kept while idle.
        self.out = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Runs rustls over what `incoming` holds, `job` included; what it
    /// has to send is queued in `out`.
    fn run(&mut self, job: Job<'_>) -> io::Result<Stop> {
        if self.out_at > 0 {
            self.out.drain(..self.out_at);
            self.out_at = 0;
        }
        self.core.run(job, &mut self.out)
    }

    /// Reads more ciphertext from the socket. `Ready(Ok(false))`: the peer
    /// closed TCP.
    fn poll_recv_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        // Read into uninitialised stack space, then keep what came: most
        // polls find nothing, and zeroing a buffer for each of them cost
        // more than the rest of an HTTP/2 request over TLS (28k
        // instructions of memset per request at 10 streams a connection).
        let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); READ_BYTES];
        let mut buf = ReadBuf::uninit(&mut scratch);
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut buf);
        let read = buf.filled();
        let n = read.len();
        let incoming = &mut self.core.incoming;
        incoming.extend_from_slice(read);
        if incoming.is_empty() {
            // Nothing kept while idle.
            *incoming = Vec::new();
        }
        match polled {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(n > 0)),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
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
            if this.core.has_plaintext() {
                let n = this.core.take_plaintext(buf.initialize_unfilled());
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            // close_notify: an orderly end.
            if this.core.peer_closed {
                return Poll::Ready(Ok(()));
            }
            let run = this.run(Job::default());
            // Key updates, alerts: sent now if the socket takes them, else
            // with the next write.
            if let Poll::Ready(Err(err)) = this.poll_send_tls(cx) {
                return Poll::Ready(Err(err));
            }
            match run {
                Ok(Stop::NeedRead) => {}
                Ok(Stop::Closed) => return Poll::Ready(Ok(())),
                Err(err) => return Poll::Ready(Err(err)),
            }
            if this.core.has_plaintext() || this.core.peer_closed {
                continue;
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
        // What an earlier write left first: at most one write's worth
        // waits in `out`.
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let send = buf.get(..WRITE_BYTES.min(buf.len())).unwrap_or_default();
        match this.run(Job {
            send,
            ..Job::default()
        }) {
            Ok(Stop::NeedRead) => {}
            Ok(Stop::Closed) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Err(err) => return Poll::Ready(Err(err)),
        }
        // Encrypted: written as far as the caller is concerned; what the
        // socket does not take now waits in `out` for the next call.
        match this.poll_send_tls(cx) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            _ => Poll::Ready(Ok(send.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            if let Err(err) = this.run(Job {
                close_notify: true,
                ..Job::default()
            }) {
                return Poll::Ready(Err(err));
            }
        }
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}
