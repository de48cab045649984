//! Access logs: one line per request, per listener that asks for one.
//!
//! Workers never touch a file. Each appends lines to a buffer of its own and
//! hands the whole buffer to the writer thread every [`FLUSH_EVERY`] (or once
//! it passes [`FLUSH_BYTES`]): one channel send per batch, not per request.
//! The writer thread appends batches to the files, opened at start.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
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

/// One request's line, filled in as the request goes.
#[derive(Debug, Clone)]
pub struct Entry {
    pub started: std::time::Instant,
    pub client: IpAddr,
    /// `METHOD target`, copied from the head.
    pub request: Box<str>,
    pub status: u16,
    pub bytes: u64,
    pub server: Option<Box<str>>,
    /// What happened to the session, in words.
    pub session: &'static str,
}

/// A worker's unsent lines, per listener id.
pub struct Buffers {
    tx: Option<mpsc::Sender<ToWriter>>,
    lines: RefCell<Vec<Vec<u8>>>,
}

impl Buffers {
    pub fn new(tx: Option<mpsc::Sender<ToWriter>>) -> Self {
        Buffers {
            tx,
            lines: RefCell::new(Vec::new()),
        }
    }

    /// Whether lines go anywhere at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Appends `entry` to `listener`'s lines in `format`.
    pub fn write(&self, listener: ListenerId, format: LogFormat, entry: &Entry) {
        let mut lines = self.lines.borrow_mut();
        let slot = listener.0 as usize;
        if lines.len() <= slot {
            lines.resize_with(slot + 1, Vec::new);
        }
        let buf = &mut lines[slot];
        let time = httpdate_rfc3339(SystemTime::now());
        let micros = entry.started.elapsed().as_micros();
        let server = entry.server.as_deref().unwrap_or("-");
        let _ = match format {
            LogFormat::Text => writeln!(
                buf,
                "{time} {} \"{}\" {} {}B {micros}us server={server} session={}",
                entry.client, entry.request, entry.status, entry.bytes, entry.session
            ),
            LogFormat::Json => {
                let line = serde_json::json!({
                    "time": time,
                    "client": entry.client.to_string(),
                    "request": entry.request,
                    "status": entry.status,
                    "bytes": entry.bytes,
                    "duration_us": micros,
                    "server": server,
                    "session": entry.session,
                });
                writeln!(buf, "{line}")
            }
        };
        if buf.len() >= FLUSH_BYTES {
            let full = std::mem::take(buf);
            self.send(listener, full);
        }
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

/// `2026-11-21T05:10:00.123Z`.
fn httpdate_rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::sticky::set_cookie::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_237_800_123);
        assert_eq!(httpdate_rfc3339(at), "2026-11-21T05:10:00.123Z");
        assert_eq!(
            httpdate_rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(httpdate_rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
