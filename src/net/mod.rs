//! Sockets and the streams over them: the free-port probe, per-worker
//! `SO_REUSEPORT` sockets, the open-files limit, and the owned-buffer
//! [`Stream`]s (plain TCP, TLS) that the proxy and the health checks use.
//! Nothing here knows HTTP, workers or the control thread.
//!
//! Every worker accepts on a socket of its own bound with `SO_REUSEPORT`, so
//! the kernel spreads connections over cores with no shared accept queue.
//! `SO_REUSEPORT` would also let a second limpet silently take half of the
//! traffic, so before any worker binds, the main thread binds each address
//! once *without* it: that bind fails when anything holds the port, and it
//! resolves port 0 once so that every worker binds the same port.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

mod stream;
mod tls;
mod tls_poll;

pub use stream::{Stream, Upstream};
pub(crate) use tls::note_sni;
pub use tls::TlsStream;
pub use tls_poll::TlsPoll;

/// A listener's identity while its address stays the same, across reloads:
/// connections accepted on it keep finding its current settings by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u32);

/// An open listener: its id and the address its sockets are bound to (the
/// configured one, with port 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerView {
    pub id: ListenerId,
    pub addr: SocketAddr,
}

/// A listening address that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: the port is already in use (is another limpet or server running?)")]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn socket_for(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Not SO_REUSEPORT: only SO_REUSEADDR, so that sockets in TIME_WAIT from a
    // previous run do not block a restart.
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn wrap(addr: SocketAddr, source: io::Error) -> ListenError {
    if source.kind() == io::ErrorKind::AddrInUse {
        ListenError::InUse { addr }
    } else {
        ListenError::Io { addr, source }
    }
}

/// Checks that nothing listens on `addr` and returns the address the workers
/// must bind: `addr` itself, or with port 0 the port the kernel chose.
///
/// The probe socket is bound without `SO_REUSEPORT` and closed before the
/// workers bind theirs (a socket without the flag would keep them out).
pub fn probe(addr: SocketAddr) -> Result<SocketAddr, ListenError> {
    let socket = socket_for(addr).map_err(|e| wrap(addr, e))?;
    socket.bind(&addr.into()).map_err(|e| wrap(addr, e))?;
    let bound = socket
        .local_addr()
        .map_err(|e| wrap(addr, e))?
        .as_socket()
        .ok_or_else(|| wrap(addr, io::Error::other("not an inet address")))?;
    Ok(bound)
}

/// Binds one worker's listening socket on `addr` with `SO_REUSEPORT`.
pub fn bind_shared(addr: SocketAddr, backlog: u32) -> Result<TcpListener, ListenError> {
    let inner = || -> io::Result<TcpListener> {
        let socket = socket_for(addr)?;
        socket.set_reuse_port(true)?;
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        Ok(socket.into())
    };
    inner().map_err(|e| wrap(addr, e))
}

/// Opens a listener for `workers` workers: the probe, then one
/// `SO_REUSEPORT` socket each. Returns the bound address (port 0 resolved).
pub fn bind_listener(
    addr: SocketAddr,
    backlog: u32,
    workers: usize,
) -> Result<(SocketAddr, Vec<TcpListener>), ListenError> {
    let bound = probe(addr)?;
    let sockets = (0..workers)
        .map(|_| bind_shared(bound, backlog))
        .collect::<Result<_, _>>()?;
    Ok((bound, sockets))
}

/// Binds a listener that must never be shared (the admin listener).
pub fn bind_exclusive(addr: SocketAddr, backlog: u32) -> Result<TcpListener, ListenError> {
    let inner = || -> io::Result<TcpListener> {
        let socket = socket_for(addr)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        Ok(socket.into())
    };
    inner().map_err(|e| wrap(addr, e))
}

/// Raises the open-files soft limit to the hard limit; returns the new limit.
///
/// Each client connection costs one descriptor and each backend connection
/// another, so the default soft limit of 1024 would cap limpet far below
/// what the machine can serve.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback0() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn probe_resolves_port_zero_and_workers_share_it() {
        let addr = probe(loopback0()).unwrap();
        assert_ne!(addr.port(), 0);
        let a = bind_shared(addr, 16).unwrap();
        let b = bind_shared(addr, 16).unwrap();
        assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
    }

    #[test]
    fn probe_refuses_a_taken_port() {
        let addr = probe(loopback0()).unwrap();
        let _held = bind_shared(addr, 16).unwrap();
        match probe(addr) {
            Err(ListenError::InUse { addr: a }) => assert_eq!(a, addr),
            other => panic!("expected InUse, got {other:?}"),
        }
    }

    #[test]
    fn exclusive_listener_refuses_sharing() {
        let held = bind_exclusive(loopback0(), 16).unwrap();
        let addr = held.local_addr().unwrap();
        assert!(matches!(
            bind_shared(addr, 16),
            Err(ListenError::InUse { .. })
        ));
    }
}
