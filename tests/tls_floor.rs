//! The floor of an idle HTTPS connection's memory: what a rustls server
//! connection keeps on the heap after a TLS 1.3 handshake and one request
//! and response, buffered (`ServerConnection`) and unbuffered
//! (`UnbufferedServerConnection`, whose caller owns every I/O buffer, as
//! `limpet::net::TlsStream` does). A counting global allocator records the
//! live allocations made on the current thread; `cargo test --test
//! tls_floor -- --nocapture` prints them.
//!
//! This test crate holds `unsafe` only to implement `GlobalAlloc`.

#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;

const SLOTS: usize = 512;

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    /// (address, size) of the live allocations made while recording.
    static LIVE: RefCell<[(usize, usize); SLOTS]> = const { RefCell::new([(0, 0); SLOTS]) };
}

fn record(ptr: *mut u8, size: usize) {
    let _ = RECORDING.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|live| {
                if let Ok(mut live) = live.try_borrow_mut() {
                    if let Some(slot) = live.iter_mut().find(|s| s.0 == 0) {
                        *slot = (ptr as usize, size);
                    }
                }
            });
        }
    });
}

fn forget(ptr: *mut u8) {
    let _ = LIVE.try_with(|live| {
        if let Ok(mut live) = live.try_borrow_mut() {
            if let Some(slot) = live.iter_mut().find(|s| s.0 == ptr as usize) {
                *slot = (0, 0);
            }
        }
    });
}

struct Recording;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; recording touches no allocated memory.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let ptr = unsafe { System.alloc(layout) };
        record(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        record(ptr, layout.size());
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        forget(ptr);
        // SAFETY: same contract as ours, forwarded.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        record(new, new_size);
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        forget(ptr);
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Recording = Recording;

/// Starts recording this thread's allocations afresh.
fn start() {
    LIVE.with(|live| *live.borrow_mut() = [(0, 0); SLOTS]);
    RECORDING.with(|on| on.set(true));
}

/// Stops recording; the sizes of what is still live, largest first.
fn stop() -> Vec<usize> {
    RECORDING.with(|on| on.set(false));
    let mut sizes: Vec<usize> = LIVE.with(|live| {
        live.borrow()
            .iter()
            .filter(|s| s.0 != 0)
            .map(|s| s.1)
            .collect()
    });
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

struct Configs {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

/// limpet's server configuration as `config/tls.rs` builds it (ECDSA
/// P-256, ring, TLS 1.3 and 1.2, a rotating ticketer, ALPN http/1.1), and
/// a client that trusts the certificate and keeps no session.
fn configs() -> Configs {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["floor.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    server.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    client.resumption = rustls::client::Resumption::disabled();
    Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

fn client(configs: &Configs) -> rustls::ClientConnection {
    let name = ServerName::try_from("floor.test").unwrap();
    rustls::ClientConnection::new(configs.client.clone(), name).unwrap()
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: floor.test\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

/// Everything the client has to send.
fn client_out(client: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).unwrap();
    }
    out
}

fn client_in(client: &mut rustls::ClientConnection, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).unwrap();
        client.process_new_packets().unwrap();
    }
}

/// A buffered server connection after the handshake and one exchange.
fn buffered(configs: &Configs) -> Box<rustls::ServerConnection> {
    let mut server = Box::new(rustls::ServerConnection::new(configs.server.clone()).unwrap());
    let mut client = client(configs);
    client.writer().write_all(REQUEST).unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        let bytes = client_out(&mut client);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            server.read_tls(&mut rest).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut plain = [0; 256];
        if let Ok(n) = server.reader().read(&mut plain) {
            got.extend_from_slice(&plain[..n]);
            if got == REQUEST {
                server.writer().write_all(RESPONSE).unwrap();
            }
        }
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).unwrap();
        }
        client_in(&mut client, &out);
        if got == REQUEST && !server.wants_write() && !client.wants_write() {
            break;
        }
    }
    assert_eq!(got, REQUEST);
    let mut answer = vec![0; RESPONSE.len()];
    client.reader().read_exact(&mut answer).unwrap();
    assert_eq!(answer, RESPONSE);
    server
}

/// An unbuffered server connection after the handshake and one exchange,
/// driven with caller-owned buffers that are dropped before it returns.
fn unbuffered(configs: &Configs) -> Box<UnbufferedServerConnection> {
    let mut server = Box::new(UnbufferedServerConnection::new(configs.server.clone()).unwrap());
    let mut client = client(configs);
    client.writer().write_all(REQUEST).unwrap();
    let mut incoming = Vec::new();
    let mut got = Vec::new();
    let mut answered = false;
    for _ in 0..10 {
        incoming.extend_from_slice(&client_out(&mut client));
        let mut outgoing = vec![0; 16 * 1024 + 256];
        let mut out_len = 0;
        loop {
            let status = server.process_tls_records(&mut incoming);
            let discard = status.discard;
            let mut blocked = false;
            match status.state.unwrap() {
                ConnectionState::ReadTraffic(mut read) => {
                    while let Some(record) = read.next_record() {
                        got.extend_from_slice(record.unwrap().payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    out_len += encode.encode(&mut outgoing[out_len..]).unwrap();
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    client_in(&mut client, &outgoing[..out_len]);
                    out_len = 0;
                    transmit.done();
                }
                ConnectionState::WriteTraffic(mut write) => {
                    if got == REQUEST && !answered {
                        out_len += write.encrypt(RESPONSE, &mut outgoing[out_len..]).unwrap();
                        answered = true;
                    }
                    blocked = true;
                }
                ConnectionState::BlockedHandshake => blocked = true,
                other => panic!("unexpected {other:?}"),
            }
            incoming.drain(..discard);
            if blocked {
                break;
            }
        }
        client_in(&mut client, &outgoing[..out_len]);
        if answered && !client.wants_write() {
            break;
        }
    }
    assert!(incoming.is_empty());
    let mut answer = vec![0; RESPONSE.len()];
    client.reader().read_exact(&mut answer).unwrap();
    assert_eq!(answer, RESPONSE);
    server
}

fn report(name: &str, inline: usize, sizes: &[usize]) -> usize {
    let heap: usize = sizes.iter().sum();
    println!("{name}: {heap} bytes on the heap in {} allocations (the connection itself {inline} of them): {sizes:?}", sizes.len());
    heap
}

#[test]
fn idle_rustls_server_connection_floor() {
    let configs = configs();
    // A first exchange of each kind, so that lazily built process-wide
    // state (the provider's tables, the ticketer's key) is not counted.
    drop(buffered(&configs));
    drop(unbuffered(&configs));

    start();
    let conn = buffered(&configs);
    let sizes = stop();
    let buffered_heap = report(
        "buffered ServerConnection",
        size_of::<rustls::ServerConnection>(),
        &sizes,
    );
    drop(conn);

    start();
    let conn = unbuffered(&configs);
    let sizes = stop();
    let unbuffered_heap = report(
        "UnbufferedServerConnection",
        size_of::<UnbufferedServerConnection>(),
        &sizes,
    );
    drop(conn);

    // The deframer buffer (4 KiB at least after any read) is what the
    // unbuffered connection does not hold.
    assert!(
        unbuffered_heap + 4096 <= buffered_heap,
        "{unbuffered_heap} vs {buffered_heap}"
    );
    assert!(unbuffered_heap <= 3584, "{unbuffered_heap}");
}
