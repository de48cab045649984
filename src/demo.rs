//! `limpet demo`: the embedded default (SPEC §8). Two built-in backends,
//! `ECS01` and `ECS02`, on ephemeral loopback ports, answering
//! `Hello World ! This is ECS0x`, behind a listener on 127.0.0.1:8080.
//!
//! The demo's configuration is TOML text checked by the same validation as
//! any file, so the demo cannot drift from what a user can write.

use std::net::SocketAddr;
use std::rc::Rc;
use std::thread::JoinHandle;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::http;
use crate::proxy::Remaining;

/// The built-in backends' names, in order.
pub const SERVER_NAMES: [&str; 2] = ["ECS01", "ECS02"];

/// The configuration `limpet demo` runs with.
pub fn config_text(listen: SocketAddr, admin: SocketAddr, backends: [SocketAddr; 2]) -> String {
    format!(
        r#"# limpet demo: two built-in backends behind one listener.
[admin]
listen = "{admin}"

[[listeners]]
name = "demo"
listen = "{listen}"
default_group = "web"

[groups.web]
balance = "least_outstanding"

# Sticky sessions: limpet sets SERVERID (and its CORS twin SERVERCORSID)
# naming the server; a client that sends it back stays on that server.
[groups.web.persistence]
mode = "insert"

[[groups.web.servers]]
name = "{a}"
address = "{addr_a}"

[[groups.web.servers]]
name = "{b}"
address = "{addr_b}"
"#,
        a = SERVER_NAMES[0],
        b = SERVER_NAMES[1],
        addr_a = backends[0],
        addr_b = backends[1],
    )
}

/// Runs the demo until SIGINT or SIGTERM.
pub fn run(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    let backends = Backends::start()?;
    let text = config_text(listen, admin, backends.addrs);
    let config = crate::config::parse(&text, "<demo>")?;
    let running = crate::server::start(config)?.watch_signals()?;
    let addr = running.listen_addrs()[0];
    println!("limpet demo");
    for (name, backend) in SERVER_NAMES.iter().zip(backends.addrs) {
        println!("  backend {name} on {backend}");
    }
    println!("  listener on {addr} (group `web`)");
    if let Some(admin) = running.admin_addr() {
        println!("  admin on {admin}: the status page at http://{admin}/, /stats, /metrics");
    }
    println!();
    println!("try:  curl -s -c jar -b jar http://{addr}/    # the same ECS0x every time");
    println!("      curl -s http://{addr}/                  # no cookie jar: balanced afresh");
    if let Some(admin) = running.admin_addr() {
        println!("      curl -s -X POST -H 'X-Limpet-Admin: 1' http://{admin}/servers/web/ECS01/drain   # then watch sessions move");
    }
    println!("stop: Ctrl-C");
    let result = running.wait();
    backends.stop();
    Ok(result?)
}

/// The two built-in backends, on a thread of their own.
pub struct Backends {
    pub addrs: [SocketAddr; 2],
    stop: futures_channel::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Backends {
    /// Binds both backends on ephemeral loopback ports and starts serving.
    pub fn start() -> std::io::Result<Self> {
        let mut listeners = Vec::new();
        for _ in SERVER_NAMES {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            listeners.push(listener);
        }
        let addrs = [listeners[0].local_addr()?, listeners[1].local_addr()?];
        let (stop, stopped) = futures_channel::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("limpet-demo-backends".into())
            .spawn(move || {
                let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build();
                let Ok(mut runtime) = runtime else {
                    log::error!("demo backends: cannot build an event loop");
                    return;
                };
                runtime.block_on(async move {
                    for (listener, name) in listeners.into_iter().zip(SERVER_NAMES) {
                        match TcpListener::from_std(listener) {
                            Ok(listener) => {
                                monoio::spawn(accept(Rc::new(listener), name));
                            }
                            Err(err) => log::error!("demo backend {name}: {err}"),
                        }
                    }
                    let _ = stopped.await;
                });
            })?;
        Ok(Backends {
            addrs,
            stop,
            thread,
        })
    }

    /// Stops both backends.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

async fn accept(listener: Rc<TcpListener>, name: &'static str) {
    while let Ok((stream, _)) = listener.accept().await {
        monoio::spawn(hello(stream, name));
    }
}

/// Answers every request on the connection with `Hello World ! This is
/// <name>`, keeping the connection alive, and drains request bodies.
async fn hello(mut stream: TcpStream, name: &'static str) {
    let body = format!("Hello World ! This is {name}\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let limits = http::Limits {
        max_request_line_bytes: 8192,
        max_head_bytes: 16384,
        max_headers: 100,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(16384);
    let mut response = response;
    loop {
        // Read a head.
        let (head_len, framing, keep_alive) = loop {
            let mut headers = [std::mem::MaybeUninit::uninit(); 100];
            match http::parse_request(&buf, &mut headers, &limits, &[]) {
                Ok(Some(req)) => break (req.head_len, req.body, req.keep_alive),
                Ok(None) if buf.len() < buf.capacity() => {}
                _ => return,
            }
            let (len, cap) = (buf.len(), buf.capacity());
            let (res, slice) = stream
                .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
                .await;
            buf = slice.into_inner();
            if !matches!(res, Ok(n) if n > 0) {
                return;
            }
        };
        buf.drain(..head_len);
        // Skip the body.
        let mut remaining = Remaining::of_request(framing);
        while !remaining.is_done() {
            let Ok(used) = remaining.advance(&buf) else {
                return;
            };
            buf.drain(..used);
            if remaining.is_done() {
                break;
            }
            let (len, cap) = (buf.len(), buf.capacity());
            let (res, slice) = stream
                .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
                .await;
            buf = slice.into_inner();
            if !matches!(res, Ok(n) if n > 0) {
                return;
            }
        }
        let (res, back) = stream.write_all(response).await;
        response = back;
        if res.is_err() || !keep_alive {
            return;
        }
    }
}
