//! `config/full.toml` against the parser: every key `raw::Config` accepts
//! is shown in the file (live or as a commented `# key = ...` line), and
//! every key the file shows is accepted, so the two cannot drift.
//!
//! The accepted keys come from the serde types themselves: `Tracer` is a
//! `Deserializer` that hands every struct all of its fields and records
//! their paths, so a field added to `raw` is a key here without anyone
//! listing it. serde-reflection (0.6) cannot trace `raw`: it feeds structs
//! through `visit_seq`, which `toml::Spanned` does not implement ("invalid
//! type: sequence, expected a spanned value"), and it registers containers
//! by name, so `Spanned<String>` and `Spanned<i64>` would be one container
//! with two formats. Here `Spanned` is unwrapped to its inner type, a map
//! with arbitrary names (`[groups.NAME]`) becomes `*`, and an array of
//! tables has the keys of its element.

use std::collections::BTreeSet;

use serde::de::value::{BorrowedStrDeserializer, Error};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

use super::raw;

/// What a type accepts, as dotted key paths (`groups.*.servers.weight`).
#[derive(Debug, Default)]
struct Schema {
    /// Every key: tables and leaves, `*` for a map's names.
    keys: BTreeSet<String>,
    /// Keys whose children are names the operator chooses (`groups`).
    maps: BTreeSet<String>,
}

impl Schema {
    fn of<'de, T: Deserialize<'de>>() -> Result<Schema, Error> {
        let spanned = spanned_name();
        let mut schema = Schema::default();
        T::deserialize(Tracer {
            schema: &mut schema,
            spanned: &spanned,
            path: String::new(),
        })?;
        Ok(schema)
    }

    /// `prefix.key`, `*` for `key` when `prefix` is a map.
    fn child(&self, prefix: &str, key: &str) -> String {
        let key = if self.maps.contains(prefix) { "*" } else { key };
        join(prefix, key)
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The struct name `toml::Spanned` asks its deserializer for, read from
/// `Spanned` itself rather than copied from the crate's private constant.
fn spanned_name() -> String {
    struct Probe;
    impl<'de> Deserializer<'de> for Probe {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            _: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            // The name travels out in the error; nothing is built.
            Err(de::Error::custom(name))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match toml::Spanned::<bool>::deserialize(Probe) {
        Err(name) => name.to_string(),
        Ok(_) => panic!("toml::Spanned deserialized from nothing"),
    }
}

/// Deserializes any `raw` type from nothing, recording the keys at `path`.
/// Leaves get a zero, `false` or `""` (only their presence matters);
/// an enum its first unit variant; a sequence one element; a map one entry
/// named `*`. A type that asks for `deserialize_any` (`untagged`,
/// `flatten`, a hand-written `Deserialize` that guesses) is refused with
/// its path, so such a field is noticed here and given its own rule.
struct Tracer<'s> {
    schema: &'s mut Schema,
    spanned: &'s str,
    path: String,
}

impl Tracer<'_> {
    fn at(&mut self, path: String) -> Tracer<'_> {
        Tracer {
            schema: self.schema,
            spanned: self.spanned,
            path,
        }
    }
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?),)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "{}: deserialize_any cannot be traced",
            self.path
        )))
    }

    leaf! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(b""),
        deserialize_byte_buf => visit_bytes(b""),
        deserialize_unit => visit_unit(),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "{}: an identifier outside a key",
            self.path
        )))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// An array's elements have the array's path: `[[listeners]]` tables
    /// hold `listeners.name`, `cpus = [0, 1]` holds nothing more.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(One(Some(self)))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        const NAMES: &[&str] = &["*"];
        let path = join(&self.path, "*");
        self.schema.maps.insert(self.path.clone());
        self.schema.keys.insert(path.clone());
        visitor.visit_map(Fields {
            keys: NAMES.iter(),
            tracer: self,
            paths: vec![path],
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // `Spanned<T>` is `T` in the file: its fields (start, end, value)
        // are all read at this path, the span as a zero.
        let paths = if name == self.spanned {
            vec![self.path.clone(); fields.len()]
        } else {
            let paths: Vec<String> = fields.iter().map(|f| join(&self.path, f)).collect();
            self.schema.keys.extend(paths.iter().cloned());
            paths
        };
        visitor.visit_map(Fields {
            keys: fields.iter(),
            tracer: self,
            paths,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = variants
            .first()
            .ok_or_else(|| de::Error::custom(format!("{}: an enum without variants", self.path)))?;
        // TOML spells `raw`'s enums as strings: unit variants only.
        visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(*first))
    }
}

/// A sequence of one element.
struct One<'s>(Option<Tracer<'s>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .take()
            .map(|tracer| seed.deserialize(tracer))
            .transpose()
    }
}

/// Every key of a struct (or the one `*` of a map), each value traced at
/// its path.
struct Fields<'s> {
    keys: std::slice::Iter<'static, &'static str>,
    tracer: Tracer<'s>,
    paths: Vec<String>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        self.keys
            .next()
            // Borrowed: `Spanned` reads its keys as `&str`.
            .map(|&key| seed.deserialize(BorrowedStrDeserializer::new(key)))
            .transpose()
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let index = self.paths.len() - self.keys.len() - 1;
        let path = self.paths[index].clone();
        seed.deserialize(self.tracer.at(path))
    }
}

/// The keys `text` shows: its live keys and tables, and its commented
/// `# key = value` lines and `# [table]` / `# [[array]]` headers. A
/// commented key belongs to the last header above it, commented or not.
/// Names under a map (`groups.web`) read as `*`, as in the schema.
fn documented(text: &str, schema: &Schema) -> Result<BTreeSet<String>, String> {
    let mut keys = BTreeSet::new();
    let live: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    walk(schema, "", &toml::Value::Table(live), &mut keys);
    let mut table = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let (commented, rest) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if let Some(header) = header(rest) {
            table = header.split('.').fold(String::new(), |path, key| {
                let path = schema.child(&path, key.trim());
                keys.insert(path.clone());
                path
            });
        } else if commented && is_key_line(rest) {
            let parsed: toml::Table = rest
                .parse()
                .map_err(|e| format!("line {}: {rest:?} is not TOML: {e}", n + 1))?;
            walk(schema, &table, &toml::Value::Table(parsed), &mut keys);
        }
    }
    Ok(keys)
}

/// `a.b` of `[a.b]` or `[[a.b]]`, a whole line and bare keys only, so
/// that prose such as "[dns] interval" is not taken for one.
fn header(line: &str) -> Option<&str> {
    let inner = line
        .strip_prefix("[[")
        .and_then(|l| l.strip_suffix("]]"))
        .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?;
    let bare = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' ');
    (!inner.is_empty() && inner.bytes().all(bare)).then_some(inner)
}

/// `key = ...` or `a.b = ...` with a bare lower-case key: what a commented-out
/// setting looks like, and prose does not.
fn is_key_line(line: &str) -> bool {
    let Some((key, value)) = line.split_once('=') else {
        return false;
    };
    let key = key.trim();
    // Lower case: every key of `raw` is, and a capitalised sentence is not.
    let bare =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.');
    !key.is_empty() && key.bytes().all(bare) && !value.trim().is_empty()
}

fn walk(schema: &Schema, prefix: &str, value: &toml::Value, keys: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = schema.child(prefix, key);
                keys.insert(path.clone());
                walk(schema, &path, value, keys);
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                walk(schema, prefix, item, keys);
            }
        }
        _ => {}
    }
}

// The whole module is test-only (`#[cfg(test)] mod keys` in config/mod.rs):
// its unwraps never see network, file or operator input.
#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::of::<raw::Config>().unwrap()
    }

    #[test]
    fn full_example_shows_every_accepted_key_and_no_other() {
        let schema = schema();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/full.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let shown = documented(&text, &schema).unwrap();
        let missing: Vec<&String> = schema.keys.difference(&shown).collect();
        let unknown: Vec<&String> = shown.difference(&schema.keys).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "config/full.toml lacks these accepted keys: {missing:?}; \
             it shows these keys the parser refuses: {unknown:?}"
        );
    }

    #[test]
    fn the_schema_comes_from_the_raw_types() {
        let schema = schema();
        for key in [
            "workers.cpus",
            "log.format",
            "listeners.http2",
            "listeners.routes.group",
            "listeners.tls.certs.cert",
            "listeners.tls.handshake_timeout",
            "groups.*",
            "groups.*.servers.weight",
            "groups.*.persistence.same_site",
            "groups.*.health.drain_timeout",
            "groups.*.tls.sni",
        ] {
            assert!(schema.keys.contains(key), "{key} not traced");
        }
        assert_eq!(schema.maps, BTreeSet::from(["groups".to_owned()]));
        // Spanned's own fields never show through.
        assert!(
            schema.keys.iter().all(|k| !k.contains('$')),
            "{:?}",
            schema.keys
        );
        assert!(!schema.keys.contains("groups.*.servers.weight.value"));
    }

    #[test]
    fn commented_keys_count_under_their_header() {
        let schema = schema();
        let text = "# format = \"text\"\n\
                    [log]\n\
                    # format = \"json\"\n\
                    # [groups.web.health]\n\
                    # path = \"/up\"\n\
                    # Prose = such as this, or [dns] interval, is not a key.\n\
                    [[groups.web.servers]]\n\
                    name = \"a\"\n\
                    # weight = 1\n\
                    # [listeners.tls]\n\
                    # certs = [{ cert = \"c.pem\", key = \"k.pem\" }]\n";
        let shown = documented(text, &schema).unwrap();
        let expected = [
            "format",
            "log",
            "log.format",
            "groups",
            "groups.*",
            "groups.*.health",
            "groups.*.health.path",
            "groups.*.servers",
            "groups.*.servers.name",
            "groups.*.servers.weight",
            "listeners",
            "listeners.tls",
            "listeners.tls.certs",
            "listeners.tls.certs.cert",
            "listeners.tls.certs.key",
        ];
        assert_eq!(shown, expected.iter().map(|k| k.to_string()).collect());
        // `format` at the top is not a key the parser accepts.
        assert!(!schema.keys.contains("format"));
    }
}
