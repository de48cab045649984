//! `limpet check`: everything `limpet run` refuses before serving, without
//! changing anything on the machine. The file is parsed and its server
//! names resolved as `run` does (TLS files are read by the parser); each
//! access log must be openable for appending, checked without creating or
//! truncating it; listen addresses are bound only when asked (`--bind`),
//! so that a check beside a running limpet, before a SIGHUP, passes.

use std::path::Path;

use crate::dns::SystemResolver;

/// Checks the file at `path`; `bind` also binds (and releases) every
/// listen address and the admin address.
pub fn run(path: &Path, bind: bool) -> anyhow::Result<()> {
    let (config, _) = crate::dns::load_resolved(path, &SystemResolver)?;
    for listener in &config.listeners {
        if let Some(log) = &listener.access_log {
            crate::access_log::check(&log.path)?;
        }
    }
    if bind {
        let admin = config.admin.as_ref().map(|a| ("admin", a.addr));
        let listeners = config.listeners.iter().map(|l| (l.name.as_str(), l.addr));
        for (name, addr) in listeners.chain(admin) {
            std::net::TcpListener::bind(addr)
                .map_err(|err| anyhow::anyhow!("listener {name}: cannot bind {addr}: {err}"))?;
        }
    }
    Ok(())
}

/// `err` and its causes as one line, each said once: many errors already
/// print their cause in their own message (`cannot read X: <io error>`),
/// so a cause whose text the line already holds is not repeated.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = next.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {0}")]
    struct Doubled(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Bare(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(chain(&Doubled(io())), "cannot read x: entity not found");
        assert_eq!(chain(&Bare(io())), "cannot start: entity not found");
    }
}
