//! The process log (stderr): `LIMPET_LOG` sets the level, `[log] format`
//! the form, `text` (the default) or one JSON object per line. The format
//! is an atomic so that a reload can change it; nothing here is on the
//! request path.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::LogFormat;

static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the logger; call once, before anything logs.
pub fn init() {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("LIMPET_LOG", "info"))
        .format(|buf, record| {
            if JSON.load(Ordering::Relaxed) {
                let mut line = Vec::with_capacity(128);
                line.extend_from_slice(b"{\"time\":\"");
                let _ = write!(line, "{}", buf.timestamp_millis());
                line.extend_from_slice(b"\",\"level\":\"");
                line.extend_from_slice(record.level().as_str().as_bytes());
                line.extend_from_slice(b"\",\"message\":");
                let message = record.args().to_string();
                crate::access_log::json_string(&mut line, message.as_bytes());
                line.extend_from_slice(b"}\n");
                buf.write_all(&line)
            } else {
                writeln!(
                    buf,
                    "[{} {:<5}] {}",
                    buf.timestamp_millis(),
                    record.level(),
                    record.args()
                )
            }
        })
        .init();
}

/// From now on, write the process log in `format`.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}
