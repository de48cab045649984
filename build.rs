//! Records the commit limpet is built from as `LIMPET_COMMIT` for
//! `limpet --version`: `LIMPET_COMMIT` from the environment if set (a
//! packager building from a tarball), else `git rev-parse`, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LIMPET_COMMIT");
    let commit = std::env::var("LIMPET_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LIMPET_COMMIT={commit}");
    // Rebuild when HEAD moves; only name files that exist, since a missing
    // one makes cargo rerun this script on every build.
    let git = Path::new(".git");
    for file in ["HEAD", "packed-refs"] {
        let path = git.join(file);
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            let path = git.join(reference);
            if path.is_file() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!commit.is_empty()).then_some(commit)
}
