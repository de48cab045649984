//! The command line as an operator meets it: `--help` for the program and
//! every command, `--version` with the commit, completion scripts, and
//! mistakes refused on stderr, pointing at the usage, with exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const LIMPET: &str = env!("CARGO_BIN_EXE_limpet");

fn limpet(args: &[&str]) -> Output {
    Command::new(LIMPET)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

const COMMANDS: [&str; 4] = ["run", "check", "demo", "completions"];

#[test]
fn help_lists_every_command() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let output = limpet(args);
        assert!(output.status.success(), "{args:?}");
        let text = stdout(&output);
        for command in COMMANDS {
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{command} "))),
                "{args:?} lists {command}: {text}"
            );
        }
        assert!(text.contains("LIMPET_LOG"), "{text}");
    }
}

#[test]
fn every_command_has_its_own_help() {
    let flags: [(&str, &[&str]); 4] = [
        ("run", &["--config <FILE>"]),
        ("check", &["--config <FILE>", "--bind"]),
        (
            "demo",
            &["--listen <ADDR>", "--admin <ADDR>", "127.0.0.1:8080"],
        ),
        ("completions", &["<SHELL>", "bash", "zsh", "fish"]),
    ];
    for (command, wanted) in flags {
        for help in [vec![command, "--help"], vec!["help", command]] {
            let output = limpet(&help);
            assert!(output.status.success(), "{help:?}: {output:?}");
            let text = stdout(&output);
            assert!(
                text.contains(&format!("Usage: limpet {command}")),
                "{help:?}: {text}"
            );
            for flag in wanted {
                assert!(text.contains(flag), "{help:?} shows {flag}: {text}");
            }
        }
    }
}

#[test]
fn version_names_the_commit() {
    let output = limpet(&["--version"]);
    assert!(output.status.success());
    let text = stdout(&output);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.starts_with(&format!("limpet {version} (commit ")),
        "{text}"
    );
    let commit = text
        .trim()
        .strip_suffix(')')
        .and_then(|t| t.rsplit(' ').next())
        .unwrap();
    // This suite runs in a git checkout: the commit is one git knows.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(head) if head.status.success() => {
            let head = String::from_utf8(head.stdout).unwrap();
            assert!(
                commit.len() >= 7 && head.starts_with(commit),
                "{commit} vs HEAD {head}"
            );
        }
        _ => assert_eq!(commit, "unknown"),
    }
    // Each command takes --version too.
    let check = stdout(&limpet(&["check", "--version"]));
    assert_eq!(check, text.replacen("limpet", "limpet-check", 1));
}

#[test]
fn completions_cover_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish"] {
        let output = limpet(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = stdout(&output);
        for word in COMMANDS
            .iter()
            .chain(&["--config", "--bind", "--listen", "--admin"])
        {
            let word = if shell == "fish" {
                word.trim_start_matches("--")
            } else {
                word
            };
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    assert!(stdout(&limpet(&["completions", "bash"])).contains("complete -F"));
    assert!(stdout(&limpet(&["completions", "zsh"])).starts_with("#compdef limpet"));
    assert!(stdout(&limpet(&["completions", "fish"])).contains("complete -c limpet"));
}

#[test]
fn mistakes_exit_2_pointing_at_the_usage() {
    for args in [
        &[][..],
        &["serve"],
        &["run"],
        &["run", "--config"],
        &["check", "--config", "a.toml", "--listen", "x"],
        &["demo", "--listen", "localhost"],
        &["completions", "tcsh"],
    ] {
        let output = limpet(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        // No arguments at all shows the whole help (on stderr).
        assert!(
            args.is_empty() || stderr.starts_with("error: "),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("Usage: limpet") || stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
