//! `limpet check` accepts exactly what `limpet run` accepts: each refusal
//! of `run` (an access log that cannot be opened) is a refusal of `check`
//! with the same words, `check` changes nothing on disk, and it passes
//! beside a running limpet unless asked to bind (`--bind`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::path::Path;

use common::process::*;
use common::*;

fn with_log(log: &Path) -> String {
    log_for(&[dead_address()], log)
}

fn log_for(backends: &[std::net::SocketAddr], log: &Path) -> String {
    config_for(backends, "").replace(
        "default_group = \"web\"\n",
        &format!(
            "default_group = \"web\"\naccess_log = {:?}\n",
            log.display().to_string()
        ),
    )
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("limpet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `check` and `run` both refuse `config`, with the same message, which
/// contains `wanted` once.
fn both_refuse(config: &Path, wanted: &str) {
    let check = cli("check", config);
    assert!(!check.status.success(), "check accepted it");
    let run = cli("run", config);
    assert!(!run.status.success(), "run accepted it");
    let (check, run) = (stderr(&check), stderr(&run));
    assert_eq!(check.matches(wanted).count(), 1, "{check}");
    assert!(run.contains(wanted), "{run}");
    // The last line of run's log is its refusal: the same words as check's.
    assert_eq!(
        run.lines().last().unwrap().trim(),
        check.lines().last().unwrap().trim()
    );
}

#[test]
fn a_log_directory_that_does_not_exist_is_refused_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("missing").join("access.log");
    both_refuse(
        &write(&dir, &with_log(&log)),
        "No such file or directory (os error 2)",
    );
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_log_under_a_file_is_refused_by_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain"), "x").unwrap();
    let log = dir.path().join("plain").join("access.log");
    both_refuse(
        &write(&dir, &with_log(&log)),
        "Not a directory (os error 20)",
    );
}

#[test]
fn a_log_that_cannot_be_opened_for_appending_is_refused_by_both() {
    // Root may write anywhere, so a directory stands for a file no one can
    // open for appending.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::create_dir(&log).unwrap();
    both_refuse(
        &write(&dir, &with_log(&log)),
        "Is a directory (os error 21)",
    );
}

#[test]
fn check_creates_and_truncates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.log");
    let output = cli("check", &write(&dir, &with_log(&absent)));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!absent.exists(), "check created the log");

    let existing = dir.path().join("existing.log");
    std::fs::write(&existing, "old line\n").unwrap();
    let output = cli("check", &write(&dir, &with_log(&existing)));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old line\n");
}

#[test]
fn a_cause_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli("check", &dir.path().join("nowhere.toml"));
    assert!(!output.status.success());
    let text = stderr(&output);
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );
    assert!(text.contains("cannot read"), "{text}");
}

#[test]
fn type_errors_say_what_was_expected_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_for(&[dead_address()], "");
    for (from, to, wanted) in [
        (
            "count = 1",
            "count = \"one\"",
            "workers.count: invalid type: string \"one\", expected an integer",
        ),
        (
            "count = 1",
            "count = 1\n\n[timeouts]\nclient_head = 10",
            "timeouts.client_head: invalid type: integer `10`, expected a duration such as \"10s\"",
        ),
    ] {
        let output = cli("check", &write(&dir, &base.replacen(from, to, 1)));
        assert!(!output.status.success());
        assert!(stderr(&output).contains(wanted), "{}", stderr(&output));
    }
}

#[test]
fn check_passes_beside_a_running_limpet_and_binds_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::respond(|_| Some(ok("a")));
    let log = dir.path().join("access.log");
    let path = write(&dir, &log_for(&[backend.addr], &log));
    let running = Process::run(&path);
    // The same file, with the port limpet listens on written in.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:0", &running.addr.to_string());
    let beside = dir.path().join("beside.toml");
    std::fs::write(&beside, text).unwrap();
    let output = cli("check", &beside);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).ends_with(": ok\n"));

    let output = std::process::Command::new(LIMPET)
        .args(["check", "--bind", "--config"])
        .arg(&beside)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains(&format!("listener test: cannot bind {}", running.addr)),
        "{text}"
    );
    assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
}
