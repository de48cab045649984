//! One active health check: an HTTP GET on a new connection, judged by its
//! status. Runs on the control thread, never on a worker.

use std::net::SocketAddr;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::ActiveCheck;

/// The largest check response head read.
const MAX_HEAD_BYTES: usize = 8192;

/// Checks `addr`: `Ok(status)` when it passes, else why it failed.
pub async fn check(addr: SocketAddr, check: &ActiveCheck) -> Result<u16, String> {
    match monoio::time::timeout(check.timeout, status(addr, check)).await {
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
        Ok(Err(why)) => Err(why),
        Ok(Ok(status)) if check.passes(status) => Ok(status),
        Ok(Ok(status)) => Err(format!("status {status}")),
    }
}

async fn status(addr: SocketAddr, check: &ActiveCheck) -> Result<u16, String> {
    let mut stream = TcpStream::connect_addr(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: limpet-health-check\r\nConnection: close\r\n\r\n",
        check.path
    );
    let (written, _) = stream.write_all(request.into_bytes()).await;
    written.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(MAX_HEAD_BYTES);
    loop {
        let (len, cap) = (buf.len(), buf.capacity());
        if len == cap {
            return Err("response head too large".into());
        }
        let (read, slice) = stream.read(buf.slice_mut(len..cap)).await;
        buf = slice.into_inner();
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
