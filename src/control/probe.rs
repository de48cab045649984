//! One active health check: an HTTP GET on a new connection, judged by its
//! status. Runs on the control thread, never on a worker.

use std::net::SocketAddr;

use monoio::net::TcpStream;

use crate::config::{ActiveCheck, BackendTls};
use crate::net::{Stream, TlsStream};

/// The largest check response head read.
const MAX_HEAD_BYTES: usize = 8192;

/// Checks `addr`: `Ok(status)` when it passes, else why it failed.
/// Over TLS when the group's servers speak it (`tls`).
pub async fn check(
    addr: SocketAddr,
    check: &ActiveCheck,
    tls: Option<&BackendTls>,
) -> Result<u16, String> {
    match monoio::time::timeout(check.timeout, status(addr, check, tls)).await {
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
        Ok(Err(why)) => Err(why),
        Ok(Ok(status)) if check.passes(status) => Ok(status),
        Ok(Ok(status)) => Err(format!("status {status}")),
    }
}

async fn status(
    addr: SocketAddr,
    check: &ActiveCheck,
    tls: Option<&BackendTls>,
) -> Result<u16, String> {
    let stream = TcpStream::connect_addr(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let Some(tls) = tls else {
        return exchange(stream, addr, check).await;
    };
    let conn =
        rustls::client::UnbufferedClientConnection::new(tls.client.clone(), tls.server_name(addr))
            .map_err(|e| format!("TLS: {e}"))?;
    let mut stream = TlsStream::client(stream, conn);
    stream
        .handshake()
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    exchange(stream, addr, check).await
}

async fn exchange<S: Stream>(
    mut stream: S,
    addr: SocketAddr,
    check: &ActiveCheck,
) -> Result<u16, String> {
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: limpet-health-check\r\nConnection: close\r\n\r\n",
        check.path
    );
    let (written, _) = stream.write_all(request.into_bytes()).await;
    written.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(MAX_HEAD_BYTES);
    loop {
        if buf.len() == buf.capacity() {
            return Err("response head too large".into());
        }
        let (read, back) = stream.read_more(buf).await;
        buf = back;
        match read {
            Ok(0) => return Err("closed before a response".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                return response.code.ok_or_else(|| "no status".to_string());
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("bad response: {e}")),
        }
    }
}
