//! `config::parse` on any UTF-8 text: a `Config` or a `ConfigError` that
//! formats, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match limpet::config::parse(text, "fuzz.toml") {
        Ok(config) => {
            // Deterministic: the same text gives the same configuration.
            let again = limpet::config::parse(text, "fuzz.toml").expect("second parse failed");
            assert!(config == again, "two parses of the same text differ");
            let _ = format!("{config:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
    }
});
