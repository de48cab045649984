//! `CookieName`: a cookie name that is safe to write into a `Set-Cookie`
//! header as is. It only checks; it never escapes or rewrites a name.

use std::fmt;

/// An RFC 6265 cookie name: 1 to 64 bytes, all `token` characters (RFC 9110
/// `tchar`: letters, digits and ``!#$%&'*+-.^_`|~``).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CookieName(String);

impl CookieName {
    /// Longest accepted name; real ones are short, and the cookie finder
    /// builds one searcher per name.
    pub const MAX_BYTES: usize = 64;

    /// `None` unless `name` is a valid cookie name.
    pub fn new(name: &str) -> Option<Self> {
        let valid = !name.is_empty() && name.len() <= Self::MAX_BYTES && name.bytes().all(is_tchar);
        valid.then(|| Self(name.to_owned()))
    }

    /// A name built into limpet (the insert-mode defaults); a test checks
    /// that each is valid.
    pub(super) fn builtin(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 9110 `tchar`, which is also what header field names are made of.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a valid name looks like, for error messages.
pub(super) const COOKIE_NAME_RULE: &str = "1 to 64 of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~";

#[cfg(test)]
mod tests {
    use super::CookieName;

    #[test]
    fn accepts_token_characters_only() {
        assert_eq!(
            CookieName::new("SERVERID").map(|n| n.to_string()),
            Some("SERVERID".into())
        );
        assert!(CookieName::new("__Host-id!#$%&'*+-.^_`|~").is_some());
        assert!(CookieName::new(&"a".repeat(CookieName::MAX_BYTES)).is_some());
        for bad in ["", "a b", "a=b", "a;b", "a\"b", "a,b", "é", "a\tb"] {
            assert_eq!(CookieName::new(bad), None, "{bad:?}");
        }
        assert_eq!(
            CookieName::new(&"a".repeat(CookieName::MAX_BYTES + 1)),
            None
        );
    }

    #[test]
    fn builtin_names_are_valid() {
        for name in [
            crate::config::raw::INSERT_COOKIE,
            crate::config::raw::INSERT_CORS_COOKIE,
        ] {
            assert_eq!(CookieName::new(name), Some(CookieName::builtin(name)));
        }
    }
}
