//! TLS over monoio's owned-buffer I/O: a rustls connection driven by hand.
//!
//! An idle stream holds no I/O buffer of its own: ciphertext is read into a
//! buffer allocated for that read and dropped once rustls has taken all of
//! it, and what rustls has to send is written from a buffer allocated for
//! that write. What stays is rustls's own state (keys, a 4 KiB receive
//! buffer); `loadtest/idle.sh` measures it next to plain HTTP's.

use std::io::{self, BufRead, Write as _};
use std::ops::Range;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::Connection;

use super::stream::Stream;

/// The most ciphertext read at once: a whole TLS record and its header.
const READ_BYTES: usize = 16 * 1024 + 256;

/// A TCP stream with TLS on it, client or server side.
pub struct TlsStream {
    tcp: TcpStream,
    conn: Box<Connection>,
    /// Ciphertext read and not yet taken by rustls (from `taken` on);
    /// capacity 0 when there is none.
    pending: Vec<u8>,
    taken: usize,
}

impl TlsStream {
    /// The server side of a new connection, before its handshake.
    pub fn server(tcp: TcpStream, conn: rustls::ServerConnection) -> Self {
        Self::new(tcp, Connection::Server(conn))
    }

    /// The client side of a new connection, before its handshake.
    pub fn client(tcp: TcpStream, conn: rustls::ClientConnection) -> Self {
        Self::new(tcp, Connection::Client(conn))
    }

    fn new(tcp: TcpStream, conn: Connection) -> Self {
        TlsStream {
            tcp,
            conn: Box::new(conn),
            pending: Vec::new(),
            taken: 0,
        }
    }

    /// The server name the client sent (server side only).
    pub fn sni(&self) -> Option<&str> {
        match &*self.conn {
            Connection::Server(conn) => conn.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// Whether the client chose HTTP/2 by ALPN (server side).
    pub fn alpn_h2(&self) -> bool {
        self.conn.alpn_protocol() == Some(crate::config::ALPN_H2)
    }

    /// The same connection over monoio's poll-based socket (for `h2`),
    /// after its handshake: rustls's state and any ciphertext read and
    /// not yet decrypted go with it.
    pub fn into_poll_io(
        self,
    ) -> io::Result<super::TlsPoll<monoio::net::tcp::stream_poll::TcpStreamPoll>> {
        use monoio::io::IntoPollIo as _;
        let TlsStream {
            tcp,
            conn,
            pending,
            taken,
        } = self;
        Ok(super::TlsPoll::new(
            tcp.into_poll_io()?,
            conn,
            pending,
            taken,
        ))
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Runs the handshake to its end (the caller bounds it in time).
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            if self.conn.wants_write() {
                self.flush().await?;
            } else if self.conn.wants_read() {
                if !self.read_tls().await? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            } else {
                return Err(io::Error::other("TLS handshake stalled"));
            }
        }
        // The last flight, and TLS 1.3 session tickets.
        self.flush().await
    }

    /// Writes everything rustls has to send.
    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut out = Vec::new();
            while self.conn.wants_write() {
                self.conn.write_tls(&mut out)?;
            }
            let (result, _) = AsyncWriteRentExt::write_all(&mut self.tcp, out).await;
            result?;
        }
        Ok(())
    }

    /// Reads ciphertext (unless some is pending) and hands rustls what it
    /// takes. `Ok(false)`: the peer closed TCP.
    async fn read_tls(&mut self) -> io::Result<bool> {
        if self.taken >= self.pending.len() {
            let mut buf = std::mem::take(&mut self.pending);
            buf.clear();
            if buf.capacity() == 0 {
                buf.reserve_exact(READ_BYTES);
            }
            let (result, buf) = self.tcp.read(buf).await;
            if result? == 0 {
                return Ok(false);
            }
            self.pending = buf;
            self.taken = 0;
        }
        let mut rest = &self.pending[self.taken..];
        let taken = self.conn.read_tls(&mut rest)?;
        if taken == 0 {
            return Err(io::Error::other("TLS receive buffer full"));
        }
        self.taken += taken;
        if self.taken >= self.pending.len() {
            self.pending = Vec::new();
            self.taken = 0;
        }
        if let Err(err) = self.conn.process_new_packets() {
            // Send the alert rustls queued, then fail.
            let _ = self.flush().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        Ok(true)
    }

    /// Plaintext rustls has decrypted, copied after `buf`'s initialised part.
    /// `None`: none yet.
    fn take_plaintext(&mut self, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        let mut reader = self.conn.reader();
        let n = match reader.fill_buf() {
            Ok(chunk) => {
                let n = chunk.len().min(buf.capacity() - buf.len());
                buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
            Err(err) => return Some(Err(err)),
        };
        reader.consume(n);
        Some(Ok(n))
    }

    /// Sends a `close_notify` alert (the peer learns the close was meant).
    pub async fn close_notify(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush().await
    }

    /// Encrypts and sends `bytes`.
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest)?;
            rest = rest.get(n..).unwrap_or_default();
            self.flush().await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Stream for TlsStream {
    async fn read_more(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        loop {
            if let Some(result) = self.take_plaintext(&mut buf) {
                return (result, buf);
            }
            if self.conn.wants_write() {
                if let Err(err) = self.flush().await {
                    return (Err(err), buf);
                }
            }
            match self.read_tls().await {
                Ok(true) => {}
                Ok(false) => return (Ok(0), buf),
                Err(err) => return (Err(err), buf),
            }
        }
    }

    async fn write_all<B: IoBuf + AsRef<[u8]>>(&mut self, buf: B) -> (io::Result<()>, B) {
        let result = self.send(buf.as_ref()).await;
        (result, buf)
    }

    async fn write_range(
        &mut self,
        buf: Vec<u8>,
        range: Range<usize>,
    ) -> (io::Result<()>, Vec<u8>) {
        let result = match buf.get(range) {
            Some(bytes) => self.send(bytes).await,
            None => Err(io::ErrorKind::InvalidInput.into()),
        };
        (result, buf)
    }

    async fn readable(&mut self) -> io::Result<()> {
        if self.taken < self.pending.len() {
            return Ok(());
        }
        match self.conn.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => {
                return Ok(())
            }
            Ok(_) => {}
            // The next read reports it.
            Err(_) => return Ok(()),
        }
        self.tcp.readable(false).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush().await?;
        AsyncWriteRent::shutdown(&mut self.tcp).await
    }
}
