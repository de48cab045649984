//! limpet as a child process the test owns: `limpet run` on a config file
//! with its log kept line by line, killed (by its PID) when dropped; the
//! one-shot commands (`check`, a `run` that must fail) under a time limit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::eventually;

/// The limpet binary cargo built for these tests.
pub const LIMPET: &str = env!("CARGO_BIN_EXE_limpet");

/// How long a child may take to start, or a one-shot command to finish.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// A `limpet run` child process; killed when dropped.
pub struct Process {
    pub child: Child,
    /// The first listener's address, as limpet logged it.
    pub addr: SocketAddr,
    /// The config file it runs on.
    pub config: PathBuf,
    /// Every line limpet has written to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Process {
    /// Writes `toml` to `limpet.toml` in a temporary directory and runs
    /// limpet on it.
    pub fn start(toml: &str) -> Process {
        Process::start_env(toml, &[])
    }

    /// [`Process::start`] with `env` added to limpet's environment.
    pub fn start_env(toml: &str, env: &[(&str, &str)]) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limpet.toml");
        std::fs::write(&path, toml).unwrap();
        let mut process = Process::run_env(&path, env);
        process._dir = Some(dir);
        process
    }

    /// Runs `limpet run --config config` with `LIMPET_LOG=info`; returns
    /// once limpet logs the address it listens on.
    pub fn run(config: &Path) -> Process {
        Process::run_env(config, &[])
    }

    /// [`Process::run`] with `env` added to limpet's environment.
    pub fn run_env(config: &Path, env: &[(&str, &str)]) -> Process {
        let mut child = Command::new(LIMPET)
            .args(["run", "--config"])
            .arg(config)
            .env("LIMPET_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Reads to the end, so that limpet never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    if let Ok(addr) = addr.trim().parse::<SocketAddr>() {
                        let _ = tx.send(addr);
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(CHILD_LIMIT)
            .expect("limpet reports its address");
        Process {
            child,
            addr,
            config: config.to_owned(),
            log,
            _dir: None,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// SIGHUP: reload the config file.
    pub fn hup(&self) {
        self.signal(Signal::SIGHUP);
    }

    /// True when a line limpet has logged so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Every line limpet has logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// A line of /proc/PID/status, in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `limpet COMMAND --config PATH`, run to completion with its output kept;
/// killed, and the test failed, if it takes more than 30 s (a lookup with
/// no reachable DNS server can be slow; here it must not hang).
pub fn cli(command: &str, config: &Path) -> Output {
    let child = Command::new(LIMPET)
        .arg(command)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CHILD_LIMIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("limpet {command} did not finish in {CHILD_LIMIT:?}");
        }
    }
}

/// Waits (at most 10 s) for `child` to exit, and checks it exited with 0.
pub fn exits_cleanly(child: &mut Child) {
    assert!(
        eventually(Duration::from_secs(10), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "limpet did not stop"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
