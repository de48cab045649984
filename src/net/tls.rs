//! TLS over monoio's owned-buffer I/O: a rustls *unbuffered* connection
//! driven by hand.
//!
//! rustls's unbuffered API leaves every I/O buffer to its caller, and this
//! module frees each one as soon as it is empty: ciphertext is read into
//! `incoming` (allocated for the read, freed once every whole record in it
//! is processed), decrypted bytes the reader has not taken wait in
//! `plain`, and what is sent is encrypted straight into a buffer that
//! lives for that write. An idle stream holds rustls's state alone (keys,
//! the handshake's outcome: some 3.3 KiB, `tests/tls_floor.rs`), not the
//! buffered connection's 4 KiB receive buffer; `loadtest/idle_tls.sh`
//! measures it next to plain HTTP's.
//!
//! [`TlsCore`] is the synchronous part, shared with the poll-based
//! [`super::TlsPoll`] that HTTP/2 over TLS runs on.

use std::cell::RefCell;
use std::io;
use std::ops::Range;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncryptError, UnbufferedStatus};

use super::stream::Stream;

/// The ciphertext read at once: a whole TLS record and its header.
pub(super) const READ_BYTES: usize = 16 * 1024 + 256;

/// Either side's connection.
enum Conn {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// What one [`TlsCore::run`] is asked to do besides reading.
#[derive(Default)]
pub(super) struct Job<'a> {
    /// Plaintext to encrypt (once the handshake allows it).
    pub send: &'a [u8],
    /// Queue a `close_notify`.
    pub close_notify: bool,
}

/// Where [`TlsCore::run`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Every whole record is processed; more needs more ciphertext. After
    /// the handshake the job is done.
    NeedRead,
    /// Both sides said `close_notify`.
    Closed,
}

/// A rustls unbuffered connection and the buffers it is driven with, in
/// one box: a connection's task moves and keeps a pointer, not the parts.
pub(super) struct TlsCore(Box<CoreState>);

impl std::ops::Deref for TlsCore {
    type Target = CoreState;

    fn deref(&self) -> &CoreState {
        &self.0
    }
}

impl std::ops::DerefMut for TlsCore {
    fn deref_mut(&mut self) -> &mut CoreState {
        &mut self.0
    }
}

pub(super) struct CoreState {
    conn: Conn,
    /// Ciphertext read and not yet processed (a part of a record once
    /// `run` returns); capacity 0 when empty.
    pub incoming: Vec<u8>,
    /// Decrypted bytes not yet taken, from `plain_at` on; capacity 0 when
    /// empty.
    plain: Vec<u8>,
    plain_at: usize,
    /// The peer sent `close_notify`.
    pub peer_closed: bool,
    /// The server name the client sent (server side).
    sni: Option<Box<str>>,
}

impl TlsCore {
    fn new(conn: Conn) -> Self {
        TlsCore(Box::new(CoreState {
            conn,
            incoming: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            peer_closed: false,
            sni: None,
        }))
    }
}

impl CoreState {
    fn common(&self) -> &rustls::CommonState {
        match &self.conn {
            Conn::Server(conn) => conn,
            Conn::Client(conn) => conn,
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    /// Whether decrypted bytes wait to be taken.
    pub fn has_plaintext(&self) -> bool {
        self.plain_at < self.plain.len()
    }

    /// Copies decrypted bytes into `dst` (at most `dst.len()`); how many.
    pub fn take_plaintext(&mut self, dst: &mut [u8]) -> usize {
        let rest = self.plain.get(self.plain_at..).unwrap_or_default();
        let n = rest.len().min(dst.len());
        if let (Some(to), Some(from)) = (dst.get_mut(..n), rest.get(..n)) {
            to.copy_from_slice(from);
        }
        self.plain_at += n;
        if self.plain_at >= self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        n
    }

    /// Copies decrypted bytes after `buf`'s initialised part, up to its
    /// capacity; how many.
    pub fn take_plaintext_into(&mut self, buf: &mut Vec<u8>) -> usize {
        let rest = self.plain.get(self.plain_at..).unwrap_or_default();
        let n = rest.len().min(buf.capacity() - buf.len());
        buf.extend_from_slice(rest.get(..n).unwrap_or_default());
        self.plain_at += n;
        if self.plain_at >= self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        n
    }

    /// Processes every whole record in `incoming`: decrypted bytes go to
    /// `plain`, and what is to be sent (handshake, alerts, `job`'s
    /// plaintext encrypted, its `close_notify`) is appended to `out`.
    pub fn run(&mut self, mut job: Job<'_>, out: &mut Vec<u8>) -> io::Result<Stop> {
        loop {
            let CoreState {
                conn,
                incoming,
                plain,
                ..
            } = self;
            let step = match conn {
                Conn::Server(conn) => {
                    handle(conn.process_tls_records(incoming), &mut job, plain, out)
                }
                Conn::Client(conn) => {
                    handle(conn.process_tls_records(incoming), &mut job, plain, out)
                }
            };
            let (discard, step) = match step {
                Ok(step) => step,
                Err((discard, err)) => {
                    self.discard(discard);
                    self.alert(out);
                    return Err(err);
                }
            };
            self.discard(discard);
            match step {
                Step::Again => {}
                Step::PeerClosed => self.peer_closed = true,
                Step::Stop(stop) => return Ok(stop),
            }
        }
    }

    /// After an error: the alert rustls queued, if any, into `out`. Once:
    /// a second call would deframe the bad bytes again.
    fn alert(&mut self, out: &mut Vec<u8>) {
        let CoreState { conn, incoming, .. } = self;
        let discard = match conn {
            Conn::Server(conn) => encode_only(conn.process_tls_records(incoming), out),
            Conn::Client(conn) => encode_only(conn.process_tls_records(incoming), out),
        };
        self.discard(discard);
    }

    fn discard(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if n >= self.incoming.len() {
            // Nothing kept while idle.
            self.incoming = Vec::new();
        } else {
            self.incoming.drain(..n);
        }
    }
}

enum Step {
    Again,
    PeerClosed,
    Stop(Stop),
}

/// Appends what `encode` writes to `out`: into `guess` bytes first,
/// then, if rustls says that is too few (a failed call changes nothing),
/// into as many as it needs.
fn append<E>(
    out: &mut Vec<u8>,
    guess: usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    let mut size = guess;
    loop {
        out.resize(start + size, 0);
        match encode(out.get_mut(start..).unwrap_or_default()) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(err) => {
                out.truncate(start);
                match required(&err) {
                    Some(need) if need > size => size = need,
                    _ => return Err(err),
                }
            }
        }
    }
}

/// Room for `len` bytes of plaintext as TLS records: a header, the
/// content type and the AEAD tag (TLS 1.2: the explicit nonce) per record.
fn sealed_len(len: usize) -> usize {
    len + len.div_ceil(16 * 1024) * 40
}

fn encode_error(err: rustls::unbuffered::EncodeError) -> io::Error {
    io::Error::other(err.to_string())
}

fn encrypt_error(err: EncryptError) -> io::Error {
    io::Error::other(err.to_string())
}

/// One state of the connection, handled.
#[allow(clippy::type_complexity)]
fn handle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    job: &mut Job<'_>,
    plain: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(usize, Step), (usize, io::Error)> {
    let discard = status.discard;
    let fail = |err: io::Error| (discard, err);
    let state = status
        .state
        .map_err(|err| fail(io::Error::new(io::ErrorKind::InvalidData, err)))?;
    let step = match state {
        ConnectionState::ReadTraffic(mut read) => {
            while let Some(record) = read.next_record() {
                let record =
                    record.map_err(|err| fail(io::Error::new(io::ErrorKind::InvalidData, err)))?;
                plain.extend_from_slice(record.payload);
            }
            Step::Again
        }
        // limpet accepts no early data (`max_early_data_size` 0).
        ConnectionState::ReadEarlyData(_) => {
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS early data",
            )))
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            append(
                out,
                0,
                |buf| encode.encode(buf),
                |err| match err {
                    rustls::unbuffered::EncodeError::InsufficientSize(size) => {
                        Some(size.required_size)
                    }
                    _ => None,
                },
            )
            .map_err(|err| fail(encode_error(err)))?;
            Step::Again
        }
        // What was encoded is in `out`, which the caller sends before
        // anything encoded later.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            Step::Again
        }
        ConnectionState::WriteTraffic(mut write) => {
            if !job.send.is_empty() {
                let send = std::mem::take(&mut job.send);
                append(
                    out,
                    sealed_len(send.len()),
                    |buf| write.encrypt(send, buf),
                    insufficient,
                )
                .map_err(|err| fail(encrypt_error(err)))?;
            }
            if std::mem::take(&mut job.close_notify) {
                append(
                    out,
                    sealed_len(2),
                    |buf| write.queue_close_notify(buf),
                    insufficient,
                )
                .map_err(|err| fail(encrypt_error(err)))?;
            }
            Step::Stop(Stop::NeedRead)
        }
        ConnectionState::BlockedHandshake => Step::Stop(Stop::NeedRead),
        ConnectionState::PeerClosed => Step::PeerClosed,
        ConnectionState::Closed => Step::Stop(Stop::Closed),
        _ => Step::Stop(Stop::NeedRead),
    };
    Ok((discard, step))
}

fn insufficient(err: &EncryptError) -> Option<usize> {
    match err {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

/// `EncodeTlsData` (an alert) into `out`, if that is the state.
fn encode_only<Data>(status: UnbufferedStatus<'_, '_, Data>, out: &mut Vec<u8>) -> usize {
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state {
        let _ = append(
            out,
            0,
            |buf| encode.encode(buf),
            |err| match err {
                rustls::unbuffered::EncodeError::InsufficientSize(size) => Some(size.required_size),
                _ => None,
            },
        );
    }
    status.discard
}

thread_local! {
    /// The server name of the ClientHello this thread's certificate
    /// resolver saw last (rustls's unbuffered server connection does not
    /// tell it): set within `TlsCore::run`, taken right after it.
    static HELLO_SNI: RefCell<Option<Box<str>>> = const { RefCell::new(None) };
}

/// Notes the server name a ClientHello asked for (the certificate
/// resolver calls this, within the handshake's synchronous step).
pub(crate) fn note_sni(name: Option<&str>) {
    HELLO_SNI.with(|sni| *sni.borrow_mut() = name.map(Box::from));
}

fn take_sni() -> Option<Box<str>> {
    HELLO_SNI.with(|sni| sni.borrow_mut().take())
}

/// A TCP stream with TLS on it, client or server side.
pub struct TlsStream {
    tcp: TcpStream,
    core: TlsCore,
}

impl TlsStream {
    /// The server side of a new connection, before its handshake.
    pub fn server(tcp: TcpStream, conn: UnbufferedServerConnection) -> Self {
        TlsStream {
            tcp,
            core: TlsCore::new(Conn::Server(conn)),
        }
    }

    /// The client side of a new connection, before its handshake.
    pub fn client(tcp: TcpStream, conn: UnbufferedClientConnection) -> Self {
        TlsStream {
            tcp,
            core: TlsCore::new(Conn::Client(conn)),
        }
    }

    /// The server name the client sent (server side only).
    pub fn sni(&self) -> Option<&str> {
        self.core.sni.as_deref()
    }

    /// Whether the client chose HTTP/2 by ALPN (server side).
    pub fn alpn_h2(&self) -> bool {
        self.core.common().alpn_protocol() == Some(crate::config::ALPN_H2)
    }

    /// The same connection over monoio's poll-based socket (for `h2`),
    /// after its handshake: rustls's state, decrypted bytes not yet read
    /// and ciphertext not yet processed go with it.
    pub fn into_poll_io(
        self,
    ) -> io::Result<super::TlsPoll<monoio::net::tcp::stream_poll::TcpStreamPoll>> {
        use monoio::io::IntoPollIo as _;
        let TlsStream { tcp, core } = self;
        Ok(super::TlsPoll::new(tcp.into_poll_io()?, core))
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.core.common().handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Runs the handshake to its end (the caller bounds it in time),
    /// TLS 1.3 session tickets included.
    pub async fn handshake(&mut self) -> io::Result<()> {
        loop {
            let mut out = Vec::new();
            take_sni();
            let run = self.core.run(Job::default(), &mut out);
            if let Some(name) = take_sni() {
                self.core.sni = Some(name);
            }
            if !out.is_empty() {
                self.write_out(out).await?;
            }
            match run? {
                Stop::NeedRead if !self.core.is_handshaking() => return Ok(()),
                Stop::NeedRead => {
                    if !self.read_tls().await? {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Stop::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    async fn write_out(&mut self, out: Vec<u8>) -> io::Result<()> {
        let (result, _) = AsyncWriteRentExt::write_all(&mut self.tcp, out).await;
        result.map(|_| ())
    }

    /// Reads more ciphertext after what `incoming` holds. `Ok(false)`: the
    /// peer closed TCP.
    async fn read_tls(&mut self) -> io::Result<bool> {
        let mut buf = std::mem::take(&mut self.core.incoming);
        if buf.capacity() - buf.len() < READ_BYTES / 2 {
            buf.reserve(READ_BYTES);
        }
        let start = buf.len();
        let end = buf.capacity();
        let (result, slice) = self.tcp.read(buf.slice_mut(start..end)).await;
        let buf = slice.into_inner();
        let n = result?;
        if buf.is_empty() {
            // Nothing kept while idle: dropped, not stored.
            return Ok(n > 0);
        }
        self.core.incoming = buf;
        Ok(n > 0)
    }

    /// Sends a `close_notify` alert (the peer learns the close was meant).
    pub async fn close_notify(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        let job = Job {
            close_notify: true,
            ..Job::default()
        };
        let run = self.core.run(job, &mut out);
        if !out.is_empty() {
            self.write_out(out).await?;
        }
        run.map(|_| ())
    }

    /// Encrypts `bytes` into one buffer and sends it with one write.
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        let run = self.core.run(
            Job {
                send: bytes,
                ..Job::default()
            },
            &mut out,
        );
        if !out.is_empty() {
            self.write_out(out).await?;
        }
        match run? {
            Stop::NeedRead if !self.core.is_handshaking() => Ok(()),
            _ => Err(io::ErrorKind::WriteZero.into()),
        }
    }
}

impl Stream for TlsStream {
    async fn read_more(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        loop {
            if self.core.has_plaintext() {
                let n = self.core.take_plaintext_into(&mut buf);
                return (Ok(n), buf);
            }
            if self.core.peer_closed {
                return (Ok(0), buf);
            }
            let mut out = Vec::new();
            let run = self.core.run(Job::default(), &mut out);
            // Key updates, alerts: sent before anything else.
            if !out.is_empty() {
                if let Err(err) = self.write_out(out).await {
                    return (Err(err), buf);
                }
            }
            match run {
                Ok(Stop::NeedRead) => {}
                Ok(Stop::Closed) => return (Ok(0), buf),
                Err(err) => return (Err(err), buf),
            }
            if self.core.has_plaintext() || self.core.peer_closed {
                continue;
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
        // `run` left only a part of a record in `incoming`: what can be
        // read without the socket is decrypted bytes or the peer's end.
        if self.core.has_plaintext() || self.core.peer_closed {
            return Ok(());
        }
        self.tcp.readable(false).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.close_notify().await?;
        AsyncWriteRent::shutdown(&mut self.tcp).await
    }
}
