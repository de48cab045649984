//! `GET /config`: the running configuration as JSON. It is read from the
//! configuration's `Debug` form, whose impls already redact every secret
//! (the admin token, token secrets and signing keys, private keys), so a
//! secret has one place to be hidden and cannot leak through a second
//! serializer that forgot it. Struct and enum names are dropped; `Some(x)`
//! is `x`, `None` is `null`, durations and addresses are strings.

use serde_json::{json, Map, Value};

use crate::control::Snapshot;

/// The configuration, then the address each server written as a host name
/// resolves to now.
pub fn config_json(snapshot: &Snapshot) -> Value {
    let debug = format!("{:?}", snapshot.config);
    let config = parse(&debug).unwrap_or_else(|| json!({ "debug": debug }));
    let mut resolved = Map::new();
    for (group, view) in snapshot.config.groups.iter().zip(&snapshot.groups) {
        for (server, state) in group.servers.iter().zip(&view.servers) {
            if server.address.ip().is_none() {
                resolved.insert(
                    format!("{}/{}", group.name, server.name),
                    json!({ "configured": server.address.to_string(), "now": state.addr.to_string() }),
                );
            }
        }
    }
    json!({ "snapshot": snapshot.generation, "config": config, "resolved": resolved })
}

/// A `Debug` text as JSON; `None` when it is not shaped as expected.
fn parse(text: &str) -> Option<Value> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = reader.value(0)?;
    reader.blank();
    (reader.at == reader.bytes.len()).then_some(value)
}

/// Nesting past this is not a configuration.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn blank(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.blank();
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.blank();
        match self.peek()? {
            b'"' => self.string().map(Value::String),
            b'\'' => {
                let end = self.bytes[self.at + 1..].iter().position(|b| *b == b'\'')?;
                let text = std::str::from_utf8(&self.bytes[self.at + 1..self.at + 1 + end]).ok()?;
                self.at += end + 2;
                Some(Value::String(text.to_owned()))
            }
            b'[' if !self.is_bracketed_address() => {
                self.at += 1;
                let items = self.items(b']', depth)?;
                Some(Value::Array(items))
            }
            b'{' => {
                self.at += 1;
                self.map(depth)
            }
            _ => {
                let word = self.word().to_owned();
                if word.is_empty() {
                    return None;
                }
                self.blank();
                match self.peek() {
                    Some(b'{') => {
                        self.at += 1;
                        self.fields(depth)
                    }
                    Some(b'(') => {
                        self.at += 1;
                        let mut items = self.items(b')', depth)?;
                        if items.len() == 1 {
                            items.pop()
                        } else {
                            Some(json!({ word: items }))
                        }
                    }
                    _ => Some(scalar(&word)),
                }
            }
        }
    }

    /// `[::1]:80` is an address, not a list.
    fn is_bracketed_address(&self) -> bool {
        let rest = &self.bytes[self.at + 1..];
        let Some(end) = rest.iter().position(|b| *b == b']') else {
            return false;
        };
        rest[..end]
            .iter()
            .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.' || *b == b'%')
            && rest[..end].contains(&b':')
            && rest.get(end + 1) == Some(&b':')
    }

    fn word(&mut self) -> &str {
        let start = self.at;
        if self.peek() == Some(b'<') {
            // `<3 redacted>`: a placeholder a Debug impl wrote, spaces and all.
            if let Some(end) = self.bytes[start..].iter().position(|b| *b == b'>') {
                self.at = start + end + 1;
                return std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("");
            }
        }
        let mut brackets = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'[' => brackets += 1,
                b']' if brackets > 0 => brackets -= 1,
                b',' | b'}' | b')' | b']' | b'{' | b'(' => break,
                b if b.is_ascii_whitespace() => break,
                _ => {}
            }
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("")
    }

    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.at += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'u' => {
                            // \u{XXXX}
                            let close = self.bytes[self.at..].iter().position(|b| *b == b'}')?;
                            let hex =
                                std::str::from_utf8(&self.bytes[self.at + 1..self.at + close])
                                    .ok()?;
                            let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                            out.extend_from_slice(c.to_string().as_bytes());
                            self.at += close + 1;
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }

    /// Values up to `close`, comma-separated (a trailing comma allowed).
    fn items(&mut self, close: u8, depth: usize) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value(depth + 1)?);
            if !self.eat(b',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    /// `name: value, …}` of a struct.
    fn fields(&mut self, depth: usize) -> Option<Value> {
        let mut object = Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(object));
            }
            if self.eat(b'.') {
                // `..` of finish_non_exhaustive.
                self.eat(b'.');
                continue;
            }
            self.blank();
            let start = self.at;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                self.at += 1;
            }
            let name = std::str::from_utf8(&self.bytes[start..self.at])
                .ok()?
                .to_owned();
            if name.is_empty() || !self.eat(b':') {
                return None;
            }
            object.insert(name, self.value(depth + 1)?);
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Object(object));
            }
        }
    }

    /// `{key: value, …}` of a map; keys become strings.
    fn map(&mut self, depth: usize) -> Option<Value> {
        let mut object = Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(object));
            }
            let key = match self.value(depth + 1)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !self.eat(b':') {
                return None;
            }
            object.insert(key, self.value(depth + 1)?);
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Object(object));
            }
        }
    }
}

fn scalar(word: &str) -> Value {
    match word {
        "None" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(n) = word.parse::<i64>() {
                json!(n)
            } else if let Ok(n) = word.parse::<u64>() {
                json!(n)
            } else {
                Value::String(word.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn debug_text_becomes_json() {
        let text = r#"Config { a: Some(5), b: None, c: [1, 2], d: "x\"y", t: 1.5s, addr: 127.0.0.1:80, v6: [::1]:443, e: RoundRobin, f: Hash { key: Cookie(CookieName("sid")) }, m: {"k": 1}, n: Some("<redacted>"), k: <2 redacted>, o: Pair(1, 2) }"#;
        assert_eq!(
            parse(text).unwrap(),
            json!({
                "a": 5, "b": null, "c": [1, 2], "d": "x\"y", "t": "1.5s",
                "addr": "127.0.0.1:80", "v6": "[::1]:443", "e": "RoundRobin",
                "f": { "key": "sid" }, "m": { "k": 1 }, "n": "<redacted>", "k": "<2 redacted>",
                "o": { "Pair": [1, 2] },
            })
        );
        assert_eq!(parse("Broken { a: "), None);
    }
}
