//! Test harness: limpet started in-process on 127.0.0.1 with OS-assigned
//! ports, backends as plain threads over std sockets, and a small HTTP/1.1
//! client that reads responses byte for byte. The client and backends parse
//! HTTP themselves, independently of limpet's parser, so a bug there cannot
//! hide itself.
//!
//! By role: `http` (the client side and the parsing), `backend` (backends
//! and canned answers), `process` (limpet as a child process), `tls`
//! (certificates, TLS clients and backends); this file starts limpet
//! in-process, builds configs and waits.

#![allow(dead_code)]

mod backend;
pub mod h2client;
mod http;
pub mod process;
pub mod tls;

use std::fmt::Display;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use limpet::control::WorkerReport;

pub use backend::*;
pub use http::*;

/// How long any single read in a test may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// limpet running in this process.
pub struct Limpet {
    pub running: Option<limpet::server::Running>,
    pub addr: SocketAddr,
}

impl Limpet {
    /// Starts limpet with `toml` (listen addresses should use port 0).
    pub fn start(toml: &str) -> Limpet {
        let config = limpet::config::parse(toml, "test.toml").expect("test config is valid");
        Limpet::from_running(limpet::server::start(config).expect("limpet starts"))
    }

    /// Takes over a limpet started some other way (a resolver of the
    /// test's, a config loaded from a file); `addr` is its first listener.
    pub fn from_running(running: limpet::server::Running) -> Limpet {
        let addr = running.listen_addrs()[0];
        Limpet {
            running: Some(running),
            addr,
        }
    }

    /// Calls the admin listener (the config must have `[admin]`).
    pub fn admin(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> Response {
        let addr = self.running().admin_addr().expect("an admin listener");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let mut client = Client::connect(addr);
        client.send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Limpet-Admin: 1\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        client.read_response(false).expect("an admin answer")
    }

    /// Waits (at most 10 s: a loaded machine) until every worker routes
    /// with snapshot `generation` or a later one; false if they do not.
    pub fn snapshot_reached(&self, generation: u64) -> bool {
        eventually(Duration::from_secs(10), || {
            self.running()
                .reports()
                .iter()
                .all(|r| r.snapshot_generation >= generation)
        })
    }

    /// `GET /stats` from the admin listener, as JSON.
    pub fn stats(&self) -> serde_json::Value {
        self.admin("GET", "/stats", "", None).json()
    }

    /// The `/stats` entry of server `name` in the first group.
    pub fn server_stats(&self, name: &str) -> serde_json::Value {
        let stats = self.stats();
        let servers = stats["groups"][0]["servers"].as_array().cloned();
        servers
            .unwrap_or_default()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no server {name} in {stats}"))
    }

    /// One counter of every worker's report, in worker order.
    pub fn per_worker(&self, counter: impl Fn(&WorkerReport) -> u64) -> Vec<u64> {
        self.running().reports().iter().map(counter).collect()
    }

    /// One counter summed over every worker's report.
    pub fn total(&self, counter: impl Fn(&WorkerReport) -> u64) -> u64 {
        self.running().reports().iter().map(counter).sum()
    }

    pub fn running(&self) -> &limpet::server::Running {
        self.running.as_ref().unwrap()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// `GET /` on a fresh connection, with the session `token` in
    /// `SERVERID` if given.
    pub fn get_token(&self, token: Option<&str>) -> Response {
        self.client().get_token(token)
    }
}

impl Drop for Limpet {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop();
        }
    }
}

/// A config with one worker and one listener on port 0 in front of
/// `backends` (group `web`, servers `s0`, `s1`, …, each an address or a
/// `name:port`); `extra` is appended.
pub fn config_for(backends: &[impl Display], extra: &str) -> String {
    config_with(backends, "", extra)
}

/// Like [`config_for`], with `group_keys` written in `[groups.web]`.
pub fn config_with(backends: &[impl Display], group_keys: &str, extra: &str) -> String {
    let mut toml = format!(
        "[workers]\ncount = 1\n\n[[listeners]]\nname = \"test\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n\n[groups.web]\n{group_keys}\n",
    );
    for (i, addr) in backends.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[groups.web.servers]]\nname = \"s{i}\"\naddress = \"{addr}\"\n"
        ));
    }
    toml.push('\n');
    toml.push_str(extra);
    toml
}

/// [`config_with`] balancing round robin, with insert-mode persistence
/// and the `persistence` keys.
pub fn insert_config(backends: &[impl Display], persistence: &str) -> String {
    config_with(
        backends,
        "balance = \"round_robin\"",
        &format!("[groups.web.persistence]\nmode = \"insert\"\n{persistence}"),
    )
}

/// `toml` with a second listener, on its own port, routing to `web`.
pub fn with_listener(toml: &str, name: &str, listen: &str) -> String {
    format!(
        "{toml}\n[[listeners]]\nname = \"{name}\"\nlisten = \"{listen}\"\ndefault_group = \"web\"\n"
    )
}

/// The unsigned token (default key) of server `s<i>` in `group`, whose
/// servers are `s0` … `s<servers - 1>`.
pub fn token(group: &str, servers: usize, i: u32) -> String {
    let names: Vec<String> = (0..servers).map(|n| format!("s{n}")).collect();
    let key = limpet::sticky::TokenKey::from_secret(None);
    let table = limpet::sticky::TokenTable::build(&key, group, &names, None).unwrap();
    String::from_utf8(table.token(limpet::balance::ServerIdx(i)).to_vec()).unwrap()
}

/// Waits until `check` holds, up to `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        // The poll interval: the condition is what is waited for.
        thread::sleep(Duration::from_millis(10));
    }
    check()
}
