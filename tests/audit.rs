//! Reloads an operator can audit (issue 20): every reload, by SIGHUP or
//! over the admin API, logs one line saying what changed or why it was
//! refused; refusals are counted; weights set over the API survive a
//! reload for servers whose entry in the file did not change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::process::*;
use common::*;

/// Servers as `(name, weight)`, all at `backend`; `listener` and `extra`
/// are written into the listener table and after everything.
fn file(backend: SocketAddr, servers: &[(&str, u32)], listener: &str, extra: &str) -> String {
    let mut text = format!(
        "[workers]\ncount = 1\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listeners]]\nname = \"front\"\nlisten = \"127.0.0.1:0\"\ndefault_group = \"web\"\n{listener}\n\n[groups.web]\nbalance = \"round_robin\"\n"
    );
    for (i, (name, weight)) in servers.iter().enumerate() {
        // Distinct addresses (as written) for one backend: 127.0.0.1 and
        // 127.0.0.2.. all reach a socket bound to 0.0.0.0.
        let addr = SocketAddr::new(loopback_source(i), backend.port());
        text.push_str(&format!(
            "\n[[groups.web.servers]]\nname = \"{name}\"\naddress = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    text.push('\n');
    text.push_str(extra);
    text
}

struct Audited {
    limpet: Process,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Audited {
    fn start(text: &str) -> Audited {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limpet.toml");
        std::fs::write(&path, text).unwrap();
        let limpet = Process::run(&path);
        let mut admin = None;
        assert!(eventually(Duration::from_secs(10), || {
            admin = limpet
                .lines()
                .iter()
                .find_map(|l| l.split("admin listening on ").nth(1)?.trim().parse().ok());
            admin.is_some()
        }));
        Audited {
            limpet,
            admin: admin.unwrap(),
            _dir: dir,
        }
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.limpet.config, text).unwrap();
    }

    fn call(&self, method: &str, path: &str, body: &str) -> Response {
        let mut client = Client::connect(self.admin);
        client.send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-Limpet-Admin: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.admin,
                body.len()
            )
            .as_bytes(),
        );
        client.read_response(false).unwrap()
    }

    fn weight(&self, server: &str) -> u64 {
        let stats = self.call("GET", "/stats", "").json();
        let found = stats["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == "web"))
            .and_then(|g| g["servers"].as_array())
            .and_then(|list| list.iter().find(|s| s["name"] == server))
            .unwrap_or_else(|| panic!("{server} in {stats}"));
        found["weight"].as_u64().unwrap()
    }

    /// The audit lines logged so far (reloaded or refused).
    fn audit_lines(&self) -> Vec<String> {
        self.limpet
            .lines()
            .into_iter()
            .filter(|l| l.contains(": reloaded (snapshot ") || l.contains(": reload refused"))
            .collect()
    }

    /// Waits for the next audit line after the `seen` first ones, checks
    /// it is the only new one, and returns it.
    fn next_audit(&self, seen: &mut usize) -> String {
        assert!(
            eventually(Duration::from_secs(10), || self.audit_lines().len() > *seen),
            "no audit line after {:?}",
            self.audit_lines()
        );
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.audit_lines();
        assert_eq!(lines.len(), *seen + 1, "one line per reload: {lines:?}");
        *seen += 1;
        lines[*seen - 1].clone()
    }

    fn hup_and_audit(&self, text: &str, seen: &mut usize) -> String {
        self.write(text);
        self.limpet.hup();
        self.next_audit(seen)
    }
}

fn assert_says(line: &str, wanted: &str) {
    assert!(line.contains(wanted), "{wanted:?} in {line:?}");
}

#[test]
fn every_reload_says_what_changed() {
    let backend = Backend::respond(|_| Some(ok("a")));
    let base = [("s0", 1), ("s1", 1)];
    let limpet = Audited::start(&file(backend.addr, &base, "", ""));
    let mut seen = 0;

    let line = limpet.hup_and_audit(&file(backend.addr, &base, "", ""), &mut seen);
    assert_says(&line, "SIGHUP: reloaded (snapshot ");
    assert_says(&line, "): nothing changed");

    let three = [("s0", 1), ("s1", 1), ("s2", 1)];
    let line = limpet.hup_and_audit(&file(backend.addr, &three, "", ""), &mut seen);
    assert!(line.ends_with("servers added web/s2"), "{line}");

    let line = limpet.hup_and_audit(
        &file(backend.addr, &[("s0", 1), ("s2", 4)], "", ""),
        &mut seen,
    );
    // s2 is now the second server written: its address moved too.
    assert_says(&line, "servers removed web/s1");
    assert_says(&line, "weights web/s2 1->4");

    let two = [("s0", 1), ("s2", 4)];
    let persistence = "[groups.web.persistence]\nmode = \"insert\"\n";
    let line = limpet.hup_and_audit(&file(backend.addr, &two, "", persistence), &mut seen);
    assert!(line.ends_with("): persistence web"), "{line}");

    let route = "\n[[listeners.routes]]\npath_prefix = \"/api\"\ngroup = \"web\"\n";
    let line = limpet.hup_and_audit(&file(backend.addr, &two, route, persistence), &mut seen);
    assert!(line.ends_with("): routes front"), "{line}");

    let limits = format!("{persistence}\n[limits]\nmax_headers = 50\n");
    let line = limpet.hup_and_audit(&file(backend.addr, &two, route, &limits), &mut seen);
    assert!(line.ends_with("): changed limits"), "{line}");

    let pki = tls::Pki::new();
    let tls = format!(
        "{limits}\n[groups.web.tls]\nca = {:?}\n",
        pki.path("ca.pem")
    );
    let line = limpet.hup_and_audit(&file(backend.addr, &two, route, &tls), &mut seen);
    assert!(line.ends_with("): TLS group web"), "{line}");

    // Refusals: by signal and over the API, each logged once and counted.
    let line = limpet.hup_and_audit("[workers]\ncount = \"x\"\n", &mut seen);
    assert_says(&line, "SIGHUP: reload refused, nothing changed: ");
    assert_says(&line, "expected an integer");
    let answer = limpet.call("POST", "/reload", "");
    assert_eq!(answer.status, 409, "{}", answer.body_text());
    let line = limpet.next_audit(&mut seen);
    assert_says(&line, "API: reload refused, nothing changed: ");
    assert_eq!(
        limpet.call("GET", "/stats", "").json()["reloads_refused"],
        2
    );
    let metrics = limpet.call("GET", "/metrics", "").body_text();
    assert!(
        metrics.contains("limpet_reloads_refused_total 2"),
        "{metrics}"
    );

    // A good file over the API: logged as the API's.
    limpet.write(&file(backend.addr, &two, route, &tls));
    assert_eq!(limpet.call("POST", "/reload", "").status, 200);
    let line = limpet.next_audit(&mut seen);
    assert_says(&line, "API: reloaded (snapshot ");
}

#[test]
fn api_weights_survive_a_reload_unless_the_file_changes_the_entry() {
    let backend = Backend::respond(|_| Some(ok("a")));
    let servers = [("s0", 1), ("s1", 2)];
    let limpet = Audited::start(&file(backend.addr, &servers, "", ""));
    let mut seen = 0;
    for (server, from, to) in [("s0", 1, 5), ("s1", 2, 7)] {
        let path = format!("/servers/web/{server}/weight");
        assert_eq!(limpet.call("PUT", &path, &to.to_string()).status, 200);
        let line = limpet.next_audit(&mut seen);
        assert_says(&line, "API weight: reloaded (snapshot ");
        assert!(
            line.ends_with(&format!("weights web/{server} {from}->{to}")),
            "{line}"
        );
    }
    assert_eq!((limpet.weight("s0"), limpet.weight("s1")), (5, 7));

    // The file unchanged: both weights stay.
    let line = limpet.hup_and_audit(&file(backend.addr, &servers, "", ""), &mut seen);
    assert!(line.ends_with("nothing changed"), "{line}");
    assert_eq!((limpet.weight("s0"), limpet.weight("s1")), (5, 7));

    // The file changes s1's entry (its weight): s1 takes the file's word,
    // s0 keeps the API's.
    let line = limpet.hup_and_audit(
        &file(backend.addr, &[("s0", 1), ("s1", 3)], "", ""),
        &mut seen,
    );
    assert!(line.ends_with("weights web/s1 7->3"), "{line}");
    assert_eq!((limpet.weight("s0"), limpet.weight("s1")), (5, 3));
    assert!(limpet.limpet.logged(
        "web/s1: the file changed its entry; the weight set over the API (7) no longer applies"
    ));
}
