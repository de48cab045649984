//! Access logs: one line per request, per listener that asks for one.
//!
//! Workers never touch a file. Each appends lines to a buffer of its own and
//! hands the whole buffer to the writer thread every [`FLUSH_EVERY`] (or once
//! it passes [`FLUSH_BYTES`]): one channel send per batch, not per request.
//! The writer thread appends batches to the files, opened at start.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::config::{Config, LogFormat};
use crate::net::{ListenerId, ListenerView};

/// How often a worker hands its lines to the writer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this full is handed over at once.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// What the writer thread is told.
#[derive(Debug)]
pub enum ToWriter {
    /// Lines of one listener, from one worker.
    Lines(ListenerId, Vec<u8>),
    /// From now on, the files to write to (every other listener's lines
    /// are dropped). Sent at every reload, which thereby also reopens the
    /// files after log rotation.
    Files(Vec<(ListenerId, File)>),
    /// Sent by the main thread once every worker has exited (their last
    /// lines are queued ahead of it): monoio does not drop a worker's parked
    /// tasks, so the writer cannot wait for every sender to go away.
    End,
}

/// A log file that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("access log {path}: {source}")]
pub struct OpenError {
    path: String,
    #[source]
    source: std::io::Error,
}

fn open(path: &Path) -> Result<File, OpenError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| OpenError {
            path: path.display().to_string(),
            source,
        })
}

/// Whether `limpet run` could open `path` as [`open`] does, without
/// creating or truncating anything (`limpet check`): an existing file is
/// opened for appending and closed; for a missing one, its directory must
/// exist and be writable and searchable by this process.
pub fn check(path: &Path) -> Result<(), OpenError> {
    let fail = |source| OpenError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(fail),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let access = rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
            rustix::fs::access(dir, access).map_err(|errno| fail(errno.into()))?;
            if !std::fs::metadata(dir).map_err(fail)?.is_dir() {
                return Err(fail(std::io::Error::from(
                    std::io::ErrorKind::NotADirectory,
                )));
            }
            Ok(())
        }
        Err(err) => Err(fail(err)),
    }
}

/// Opens the log of every listener of `config` that has one; `listeners`
/// gives their ids, index for index with `config.listeners`.
pub fn open_all(
    config: &Config,
    listeners: &[ListenerView],
) -> Result<Vec<(ListenerId, File)>, OpenError> {
    config
        .listeners
        .iter()
        .zip(listeners)
        .filter_map(|(l, view)| {
            let log = l.access_log.as_ref()?;
            Some(open(&log.path).map(|file| (view.id, file)))
        })
        .collect()
}

/// The writer's inbox and thread.
pub type Writer = (mpsc::Sender<ToWriter>, std::thread::JoinHandle<()>);

/// Starts the writer thread with `files`. It runs even when no listener
/// logs, since a reload may add one; it ends at [`ToWriter::End`], after
/// writing what came before it.
pub fn start(files: Vec<(ListenerId, File)>) -> Result<Writer, OpenError> {
    let (tx, rx) = mpsc::channel::<ToWriter>();
    let mut files = files;
    let spawned = std::thread::Builder::new()
        .name("limpet-access-log".into())
        .spawn(move || {
            for message in rx {
                match message {
                    ToWriter::Lines(listener, lines) => {
                        let Some((_, file)) = files.iter_mut().find(|(id, _)| *id == listener)
                        else {
                            continue;
                        };
                        if let Err(err) = file.write_all(&lines) {
                            log::error!("access log of listener {}: {err}", listener.0);
                        }
                    }
                    ToWriter::Files(new) => files = new,
                    ToWriter::End => return,
                }
            }
        });
    spawned
        .map(|thread| (tx, thread))
        .map_err(|source| OpenError {
            path: "(writer thread)".into(),
            source,
        })
}

/// What a request's line needs from its head, copied out of the client's
/// buffer when the head is parsed (the buffer is reused long before the
/// line is written): `METHOD target`, then `Host`, then `User-Agent`, in
/// one recycled buffer.
#[derive(Debug)]
pub struct LogText {
    text: Vec<u8>,
    request_end: usize,
    host_end: usize,
}

impl LogText {
    /// Copies the fields into `text` (a buffer from [`Buffers::text`]):
    /// the request is `method target` then `version` (empty for HTTP/1,
    /// ` HTTP/2.0` for HTTP/2), the target's `withheld` query parameter
    /// (a header-mode token) redacted.
    pub fn new(
        mut text: Vec<u8>,
        method: &[u8],
        target: &[u8],
        withheld: &crate::http::Withheld<'_>,
        version: &[u8],
        host: &[u8],
        agent: &[u8],
    ) -> Self {
        text.clear();
        text.extend_from_slice(method);
        text.push(b' ');
        withheld.write_logged_target(target, &mut text);
        text.extend_from_slice(version);
        let request_end = text.len();
        text.extend_from_slice(host);
        let host_end = text.len();
        text.extend_from_slice(agent);
        LogText {
            text,
            request_end,
            host_end,
        }
    }

    pub fn request(&self) -> &[u8] {
        &self.text[..self.request_end]
    }

    /// Empty when the request named no host.
    pub fn host(&self) -> &[u8] {
        &self.text[self.request_end..self.host_end]
    }

    /// Empty when the request had no `User-Agent`.
    pub fn user_agent(&self) -> &[u8] {
        &self.text[self.host_end..]
    }

    /// The buffer, for [`Buffers::recycle`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.text
    }
}

/// One request's line, borrowed from the request's context when it ends.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// How long the request took, head to last byte.
    pub duration: Duration,
    pub client: IpAddr,
    /// `METHOD target` as received (`-` when there was no request).
    pub request: &'a [u8],
    pub status: u16,
    pub bytes: u64,
    /// The server that answered (`-` for none).
    pub server: &'a str,
    /// What happened to the session, in words.
    pub session: &'a str,
    /// How many times the request was sent again (SPEC §7).
    pub retries: u32,
    /// The host the request named (empty: none).
    pub host: &'a [u8],
    /// Its `User-Agent` (empty: none).
    pub user_agent: &'a [u8],
    /// The address of the server that answered, if one did.
    pub upstream: Option<SocketAddr>,
    /// The request id sent to the backend (empty: none, the request was
    /// refused before it had one).
    pub request_id: &'a [u8],
}

/// A worker's unsent lines, per listener id, and the scratch it writes
/// them with: writing a line allocates nothing once the buffers have
/// grown to their working size.
pub struct Buffers {
    tx: Option<mpsc::Sender<ToWriter>>,
    lines: RefCell<Vec<Vec<u8>>>,
    /// Request texts of requests in flight, recycled (see [`Buffers::text`]).
    texts: RefCell<Vec<Vec<u8>>>,
    /// The date and time to the second last written, and that second.
    clock: RefCell<(u64, [u8; 19])>,
}

/// Room past [`FLUSH_BYTES`] for the line that crosses it: its request
/// line, host and user agent come from one head (at most
/// `max_head_bytes`, 16 KiB by default), and escaping may quadruple them.
const LINE_ROOM: usize = 64 * 1024;

/// Request texts kept for reuse at most.
const KEEP_TEXTS: usize = 256;

impl Buffers {
    pub fn new(tx: Option<mpsc::Sender<ToWriter>>) -> Self {
        Buffers {
            tx,
            lines: RefCell::new(Vec::new()),
            texts: RefCell::new(Vec::new()),
            clock: RefCell::new((u64::MAX, [0; 19])),
        }
    }

    /// Whether lines go anywhere at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// An empty buffer for a request's text while it runs; hand it back
    /// with [`Buffers::recycle`].
    pub fn text(&self) -> Vec<u8> {
        self.texts.borrow_mut().pop().unwrap_or_default()
    }

    /// Takes back a buffer from [`Buffers::text`].
    pub fn recycle(&self, mut text: Vec<u8>) {
        let mut texts = self.texts.borrow_mut();
        if texts.len() < KEEP_TEXTS && text.capacity() <= 4096 {
            text.clear();
            texts.push(text);
        }
    }

    /// Appends `entry` to `listener`'s lines in `format`.
    pub fn write(&self, listener: ListenerId, format: LogFormat, entry: &Entry<'_>) {
        let mut lines = self.lines.borrow_mut();
        let slot = listener.0 as usize;
        if lines.len() <= slot {
            lines.resize_with(slot + 1, Vec::new);
        }
        let buf = &mut lines[slot];
        if buf.capacity() == 0 {
            // Once per batch: a line then never makes the buffer grow.
            buf.reserve(FLUSH_BYTES + LINE_ROOM);
        }
        let micros = u64::try_from(entry.duration.as_micros()).unwrap_or(u64::MAX);
        let mut n = itoa::Buffer::new();
        match format {
            LogFormat::Text => {
                self.write_time(buf);
                buf.push(b' ');
                write_ip(buf, entry.client);
                buf.extend_from_slice(b" \"");
                text_escaped(buf, entry.request);
                buf.extend_from_slice(b"\" ");
                buf.extend_from_slice(n.format(entry.status).as_bytes());
                buf.push(b' ');
                buf.extend_from_slice(n.format(entry.bytes).as_bytes());
                buf.extend_from_slice(b"B ");
                buf.extend_from_slice(n.format(micros).as_bytes());
                buf.extend_from_slice(b"us retries=");
                buf.extend_from_slice(n.format(entry.retries).as_bytes());
                buf.extend_from_slice(b" server=");
                buf.extend_from_slice(entry.server.as_bytes());
                buf.extend_from_slice(b" session=");
                buf.extend_from_slice(entry.session.as_bytes());
                buf.extend_from_slice(b" host=");
                text_quoted(buf, entry.host);
                buf.extend_from_slice(b" ua=");
                text_quoted(buf, entry.user_agent);
                buf.extend_from_slice(b" upstream=");
                match entry.upstream {
                    Some(addr) => write_addr(buf, addr),
                    None => buf.push(b'-'),
                }
                buf.extend_from_slice(b" id=");
                text_quoted(buf, entry.request_id);
                buf.push(b'\n');
            }
            LogFormat::Json => {
                buf.extend_from_slice(b"{\"time\":\"");
                self.write_time(buf);
                buf.extend_from_slice(b"\",\"client\":\"");
                write_ip(buf, entry.client);
                buf.extend_from_slice(b"\",\"request\":");
                json_string(buf, entry.request);
                buf.extend_from_slice(b",\"status\":");
                buf.extend_from_slice(n.format(entry.status).as_bytes());
                buf.extend_from_slice(b",\"bytes\":");
                buf.extend_from_slice(n.format(entry.bytes).as_bytes());
                buf.extend_from_slice(b",\"duration_us\":");
                buf.extend_from_slice(n.format(micros).as_bytes());
                buf.extend_from_slice(b",\"retries\":");
                buf.extend_from_slice(n.format(entry.retries).as_bytes());
                buf.extend_from_slice(b",\"server\":");
                json_string(buf, entry.server.as_bytes());
                buf.extend_from_slice(b",\"session\":");
                json_string(buf, entry.session.as_bytes());
                buf.extend_from_slice(b",\"host\":");
                json_or_null(buf, entry.host);
                buf.extend_from_slice(b",\"user_agent\":");
                json_or_null(buf, entry.user_agent);
                buf.extend_from_slice(b",\"upstream\":");
                match entry.upstream {
                    Some(addr) => {
                        buf.push(b'"');
                        write_addr(buf, addr);
                        buf.push(b'"');
                    }
                    None => buf.extend_from_slice(b"null"),
                }
                buf.extend_from_slice(b",\"request_id\":");
                json_or_null(buf, entry.request_id);
                buf.extend_from_slice(b"}\n");
            }
        }
        if buf.len() >= FLUSH_BYTES {
            let full = std::mem::take(buf);
            self.send(listener, full);
        }
    }

    /// `2026-11-21T05:10:00.123Z`, the seconds rendered once per second.
    fn write_time(&self, buf: &mut Vec<u8>) {
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let mut clock = self.clock.borrow_mut();
        if clock.0 != secs {
            *clock = (secs, render_seconds(secs));
        }
        buf.extend_from_slice(&clock.1);
        let millis = since.subsec_millis();
        buf.extend_from_slice(&[
            b'.',
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
            b'Z',
        ]);
    }

    /// Hands every non-empty buffer to the writer.
    pub fn flush(&self) {
        let mut lines = self.lines.borrow_mut();
        for (slot, buf) in (0..).zip(lines.iter_mut()) {
            if !buf.is_empty() {
                let full = std::mem::take(buf);
                self.send(ListenerId(slot), full);
            }
        }
    }

    fn send(&self, listener: ListenerId, lines: Vec<u8>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(ToWriter::Lines(listener, lines));
        }
    }
}

/// An address without allocating (`Display` into the buffer).
fn write_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    let _ = write!(buf, "{ip}");
}

/// An address and port without allocating.
fn write_addr(buf: &mut Vec<u8>, addr: SocketAddr) {
    let _ = write!(buf, "{addr}");
}

/// `bytes` for a text line: `"` and `\` escaped with a backslash, control
/// bytes (below 0x20, and 0x7f) as `\xHH`; every other byte as received.
/// A field can then never end its quotes or its line early.
fn text_escaped(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f;
        if escape {
            buf.extend_from_slice(&bytes[start..i]);
            start = i + 1;
            match b {
                b'"' | b'\\' => buf.extend_from_slice(&[b'\\', b]),
                _ => buf.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]),
            }
        }
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// A text field in quotes, escaped; `-` when empty (absent).
fn text_quoted(buf: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        buf.push(b'-');
    } else {
        buf.push(b'"');
        text_escaped(buf, bytes);
        buf.push(b'"');
    }
}

/// A JSON string, `null` when empty (absent).
fn json_or_null(buf: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        buf.extend_from_slice(b"null");
    } else {
        json_string(buf, bytes);
    }
}

/// `bytes` as a JSON string: quotes, backslashes and control characters
/// escaped; bytes that are not UTF-8 as U+FFFD.
pub fn json_string(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => buf.extend_from_slice(b"\\\""),
                '\\' => buf.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut utf8 = [0; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            buf.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    buf.push(b'"');
}

/// `2026-11-21T05:10:00` for Unix second `secs`.
fn render_seconds(secs: u64) -> [u8; 19] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::sticky::set_cookie::civil_from_days(days);
    let mut out = [0u8; 19];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rem / 3600, 2);
    put(14, rem % 3600 / 60, 2);
    put(17, rem % 60, 2);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_render_as_rfc3339() {
        assert_eq!(&render_seconds(1_795_237_800), b"2026-11-21T05:10:00");
        assert_eq!(&render_seconds(0), b"1970-01-01T00:00:00");
        assert_eq!(&render_seconds(951_782_400), b"2000-02-29T00:00:00"); // leap day
    }

    #[test]
    fn text_fields_are_escaped() {
        let mut out = Vec::new();
        text_escaped(&mut out, b"GET /a\"b\\c\x01\r\n\x7f\xff d");
        assert_eq!(out, b"GET /a\\\"b\\\\c\\x01\\x0d\\x0a\\x7f\xff d");
        let mut out = Vec::new();
        text_quoted(&mut out, b"");
        text_quoted(&mut out, b"x\"");
        assert_eq!(out, b"-\"x\\\"\"");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        json_string(&mut out, b"GET /a\"b\\c\x01\xff");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"GET /a\\\"b\\\\c\\u0001\u{fffd}\""
        );
    }
}
