//! The layering rule of DESIGN.md, checked on the source: `control/` imports
//! nothing from `proxy/`, `worker/` or `admin/`, and `config/` imports none
//! of those nor `dns` (outside `#[cfg(test)]` code). Every path that reaches
//! the crate root counts: `crate::x`, grouped `use crate::{x, y::z}`, and
//! `super::` chains that climb to the root.

// Test code: a failed expect is a failed test.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

/// A top-level module named by a path in `file` at `line`.
#[derive(Debug, PartialEq, Eq)]
struct Import {
    file: String,
    line: usize,
    module: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source with comments, string and char literals blanked out (line
/// breaks kept, so that offsets still give lines).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let blank = |b: u8| if b == b'\n' { b'\n' } else { b' ' };
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
            }
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") {
            let hashes = rest[1..].iter().take_while(|&&b| b == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let open = 2 + hashes;
            out.extend(std::iter::repeat_n(b' ', open));
            i += open;
            while i < bytes.len() && !bytes[i..].starts_with(&close) {
                out.push(blank(bytes[i]));
                i += 1;
            }
            out.extend(std::iter::repeat_n(b' ', close.len()));
            i += close.len();
        } else if bytes[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < bytes.len() {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if bytes[i] == b'\''
            && (rest.get(2) == Some(&b'\'') || (rest.get(1) == Some(&b'\\')))
        {
            // A char literal ('x' or '\n'); lifetimes ('a) are left alone.
            let end = rest[1..]
                .iter()
                .skip(1)
                .position(|&b| b == b'\'')
                .map_or(rest.len(), |p| p + 3);
            out.extend(std::iter::repeat_n(b' ', end.min(rest.len())));
            i += end.min(rest.len());
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Blanks every item marked `#[cfg(test)]`: a `mod x;`, a `mod x { .. }`, or
/// any other item up to its `;` or its balanced braces.
fn without_test_code(code: &str) -> String {
    let mut bytes = code.as_bytes().to_vec();
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], marker).map(|p| p + from) {
        let mut i = at + marker.len();
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        for b in &mut bytes[at..i.min(code.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        from = i.min(bytes.len());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn ident_at(code: &[u8], mut i: usize) -> (String, usize) {
    while i < code.len() && code[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < code.len() && (code[i].is_ascii_alphanumeric() || code[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&code[start..i]).into_owned(), i)
}

/// The first segment of each path in a `{ a, b::c, d::{e, f} }` group
/// starting at `open` (the `{`).
fn group_heads(code: &[u8], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut i = open + 1;
    let mut depth = 1;
    let mut expect_head = true;
    while i < code.len() && depth > 0 {
        match code[i] {
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                i += 1;
            }
            b',' if depth == 1 => {
                expect_head = true;
                i += 1;
            }
            c if expect_head && depth == 1 && (c.is_ascii_alphabetic() || c == b'_') => {
                let (name, next) = ident_at(code, i);
                heads.push(name);
                expect_head = false;
                i = next;
            }
            _ => i += 1,
        }
    }
    heads
}

/// Every top-level module a file reaches through the crate root. `depth` is
/// how many `super::` climb from this file's module to the root.
fn imports_of(file: &Path, depth: usize) -> Vec<Import> {
    let text = std::fs::read_to_string(file).expect("source readable");
    let code = without_test_code(&code_only(&text));
    let bytes = code.as_bytes();
    let line_of = |at: usize| bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let name = file.display().to_string();
    let mut found = Vec::new();
    let mut roots: Vec<usize> = Vec::new();
    let mut at = 0;
    while let Some(p) = find(&bytes[at..], b"crate::") {
        let p = p + at;
        let boundary = p == 0 || !(bytes[p - 1].is_ascii_alphanumeric() || bytes[p - 1] == b'_');
        if boundary {
            roots.push(p + "crate::".len());
        }
        at = p + 1;
    }
    let climb = "super::".repeat(depth);
    if depth > 0 {
        let mut at = 0;
        while let Some(p) = find(&bytes[at..], climb.as_bytes()) {
            let p = p + at;
            let boundary =
                p == 0 || !(bytes[p - 1].is_ascii_alphanumeric() || bytes[p - 1] == b':');
            let end = p + climb.len();
            // `super::super::` from a deeper file is not the root: only an
            // exact chain of `depth` climbs is.
            if boundary && !bytes[end..].starts_with(b"super::") {
                roots.push(end);
            }
            at = p + 1;
        }
    }
    for start in roots {
        let mut i = start;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let modules = if bytes.get(i) == Some(&b'{') {
            group_heads(bytes, i)
        } else {
            vec![ident_at(bytes, i).0]
        };
        for module in modules.into_iter().filter(|m| !m.is_empty()) {
            found.push(Import {
                file: name.clone(),
                line: line_of(start),
                module,
            });
        }
    }
    found
}

/// Every import through the crate root in `src/<folder>`, outside test code.
fn imports_in(folder: &str) -> Vec<Import> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root.join(folder), &mut files);
    files.sort();
    files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"))
        .flat_map(|file| {
            let relative = file.strip_prefix(&root).expect("under src");
            let parts = relative.components().count();
            // src/x/mod.rs is module x (one climb to the root); src/x/y.rs
            // is x::y (two); src/x/y/mod.rs is x::y too.
            let depth = if relative.ends_with("mod.rs") {
                parts - 1
            } else {
                parts
            };
            imports_of(file, depth)
        })
        .collect()
}

fn forbidden(folder: &str, banned: &[&str]) -> Vec<String> {
    imports_in(folder)
        .into_iter()
        .filter(|i| banned.contains(&i.module.as_str()))
        .map(|i| format!("{}:{}: crate::{}", i.file, i.line, i.module))
        .collect()
}

#[test]
fn control_imports_nothing_from_proxy_worker_or_admin() {
    let found = forbidden("control", &["proxy", "worker", "admin"]);
    assert!(found.is_empty(), "control/ reaches up: {found:#?}");
}

#[test]
fn config_imports_nothing_from_higher_layers_nor_dns() {
    let found = forbidden("config", &["proxy", "worker", "admin", "control", "dns"]);
    assert!(found.is_empty(), "config/ reaches up: {found:#?}");
}

/// The scanner itself: every form of path it must see, and what it must
/// not count (comments, strings, test modules).
#[test]
fn the_scanner_sees_grouped_and_climbing_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("x.rs");
    std::fs::write(
        &file,
        "use crate::{net::Stream, proxy, worker::{A, B}};\n\
         fn f() { super::super::dns::lookup(); super::sibling(); }\n\
         // crate::commented\n\
         const S: &str = \"crate::quoted\";\n\
         #[cfg(test)]\nmod tests { use crate::tested; }\n\
         #[cfg(test)]\nmod more;\n\
         fn g() -> char { '\"' }\nuse crate::after;\n",
    )
    .expect("write");
    let modules: Vec<String> = imports_of(&file, 2).into_iter().map(|i| i.module).collect();
    assert_eq!(
        modules,
        ["net", "proxy", "worker", "after", "dns"],
        "found {modules:?}"
    );
}
