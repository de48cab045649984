//! The query of a request target, for a token carried in a query
//! parameter: finding the parameter's value ([`find_param`]), and writing
//! the target without it (what the backend gets, [`write_without`]) or
//! with its value hidden (what the access log shows, [`write_redacted`]).
//!
//! Parameters are `&`-separated `name[=value]` pairs after the first `?`;
//! a name matches exactly, case-sensitively and without percent-decoding,
//! as the operator wrote it (configured names are unreserved characters,
//! which are never encoded). Every other byte of the target is kept as
//! received, in its order. Pure code over bytes the client sent: it never
//! panics and never allocates beyond growing the caller's buffer.

/// What the access log shows in place of a hidden parameter's value.
pub const REDACTED: &[u8] = b"REDACTED";

/// The target before its query, and the query (after `?`), if any.
fn split(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'?', target) {
        Some(at) => (&target[..at], target.get(at + 1..)),
        None => (target, None),
    }
}

/// A pair's name and value (`None`: no `=`).
fn pair(segment: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'=', segment) {
        Some(at) => (&segment[..at], segment.get(at + 1..)),
        None => (segment, None),
    }
}

/// The value of the first parameter called `name` in `target` (empty when
/// it has no `=`), or `None` when there is no such parameter.
pub fn find_param<'t>(target: &'t [u8], name: &[u8]) -> Option<&'t [u8]> {
    let (_, query) = split(target);
    query?.split(|&b| b == b'&').find_map(|segment| {
        let (key, value) = pair(segment);
        (key == name).then_some(value.unwrap_or_default())
    })
}

/// Appends `target` without any parameter called `name`: the others keep
/// their bytes and order; a query left empty loses its `?` too.
pub fn write_without(target: &[u8], name: &[u8], out: &mut Vec<u8>) {
    write_edited(target, name, out, |_, _| {});
}

/// Appends `target` with the value of every parameter called `name`
/// replaced by [`REDACTED`].
pub fn write_redacted(target: &[u8], name: &[u8], out: &mut Vec<u8>) {
    write_edited(target, name, out, |key, out| {
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(REDACTED);
    });
}

/// Appends `target`, each parameter called `name` through `named` (which
/// appends what replaces it, or nothing to drop it).
fn write_edited(
    target: &[u8],
    name: &[u8],
    out: &mut Vec<u8>,
    mut named: impl FnMut(&[u8], &mut Vec<u8>),
) {
    if find_param(target, name).is_none() {
        out.extend_from_slice(target);
        return;
    }
    let (path, query) = split(target);
    out.extend_from_slice(path);
    let Some(query) = query else {
        return;
    };
    let mut first = true;
    for segment in query.split(|&b| b == b'&') {
        let at = out.len();
        out.push(if first { b'?' } else { b'&' });
        let content = out.len();
        if pair(segment).0 == name {
            named(segment.get(..name.len()).unwrap_or_default(), out);
            if out.len() == content {
                out.truncate(at);
                continue;
            }
        } else {
            out.extend_from_slice(segment);
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without(target: &str) -> String {
        let mut out = Vec::new();
        write_without(target.as_bytes(), b"sid", &mut out);
        String::from_utf8(out).unwrap()
    }

    fn redacted(target: &str) -> String {
        let mut out = Vec::new();
        write_redacted(target.as_bytes(), b"sid", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn finds_the_first_parameter_by_exact_name() {
        assert_eq!(find_param(b"/p?a=1&sid=T&sid=U", b"sid"), Some(&b"T"[..]));
        assert_eq!(find_param(b"/p?sid", b"sid"), Some(&b""[..]));
        assert_eq!(find_param(b"/p?SID=T&xsid=U&sidx=V", b"sid"), None);
        assert_eq!(find_param(b"/p/sid=T", b"sid"), None);
        assert_eq!(find_param(b"/p?a=sid=T", b"sid"), None);
        assert_eq!(find_param(b"/p?a=1&sid=T=U", b"sid"), Some(&b"T=U"[..]));
        assert_eq!(find_param(b"*", b"sid"), None);
        assert_eq!(find_param(b"", b"sid"), None);
    }

    #[test]
    fn removes_the_parameter_and_keeps_the_rest_in_order() {
        let cases = [
            ("/p?sid=T", "/p"),
            ("/p?sid=T&a=1", "/p?a=1"),
            ("/p?a=1&sid=T", "/p?a=1"),
            ("/p?a=1&sid=T&b=2", "/p?a=1&b=2"),
            ("/p?sid=T&sid=U", "/p"),
            ("/p?sid", "/p"),
            ("/p?sid=", "/p"),
            ("/p?a=%20&&b&sid=T&c=3", "/p?a=%20&&b&c=3"),
            ("/p?a=1", "/p?a=1"),
            ("/p?", "/p?"),
            ("/p", "/p"),
            ("/p?SID=T", "/p?SID=T"),
            ("/p?sid=T?x=1", "/p"),
            ("/p?x=1?sid=T", "/p?x=1?sid=T"),
        ];
        for (target, want) in cases {
            assert_eq!(without(target), want, "{target}");
        }
    }

    #[test]
    fn redacts_every_value_of_the_parameter() {
        assert_eq!(redacted("/p?a=1&sid=T&b=2"), "/p?a=1&sid=REDACTED&b=2");
        assert_eq!(redacted("/p?sid=T&sid=U"), "/p?sid=REDACTED&sid=REDACTED");
        assert_eq!(redacted("/p?sid"), "/p?sid=REDACTED");
        assert_eq!(redacted("/p?a=1"), "/p?a=1");
        assert_eq!(redacted("http://h/p?sid=T"), "http://h/p?sid=REDACTED");
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_lose_only_the_parameter() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"/?&=sidT%a";
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let target: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i * 2 % 60)) % alphabet.len() as u64) as usize])
                .collect();
            let mut out = Vec::new();
            write_without(&target, b"sid", &mut out);
            assert_eq!(find_param(&out, b"sid"), None, "{target:?} -> {out:?}");
            assert!(out.len() <= target.len());
            let mut log = Vec::new();
            write_redacted(&target, b"sid", &mut log);
        }
    }
}
