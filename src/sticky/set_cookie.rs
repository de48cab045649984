//! Writing the `Set-Cookie` lines limpet sends itself: the insert-mode pair
//! (`SERVERID` and its CORS twin, SPEC §3.5, byte exact) and the cookie
//! re-issued on a rewrite-mode failover (§4.4), plus the `Cache-Control`
//! rule of §3.7. Everything constant is rendered once at build time; the
//! per-response writers only append slices, the token and the IMF-fixdate.
//! They must never allocate beyond growing the caller's buffer, read the
//! clock (callers pass `now`), or let a configured value inject a header.

use super::cookie::{is_cookie_name, is_ows, is_tchar, CookieError};

/// The line added to a response that sets a persistence cookie (§3.7), so
/// shared caches never hand one client's cookie to another.
pub const CACHE_CONTROL_LINE: &[u8] = b"Cache-Control: no-cache=\"Set-Cookie\"\r\n";

/// The `SameSite` attribute's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// The attributes a group configures for the cookies limpet writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieAttrs<'a> {
    /// `Path`, default `/`.
    pub path: &'a str,
    pub domain: Option<&'a str>,
    /// Default on.
    pub http_only: bool,
    /// Default on for HTTPS listeners; the CORS twin is always `Secure`.
    pub secure: bool,
    /// The main cookie's `SameSite` (the twin's is always `None`).
    pub same_site: Option<SameSite>,
    /// `Partitioned` (CHIPS), on both cookies.
    pub partitioned: bool,
}

impl Default for CookieAttrs<'_> {
    fn default() -> Self {
        CookieAttrs {
            path: "/",
            domain: None,
            http_only: true,
            secure: false,
            same_site: None,
            partitioned: false,
        }
    }
}

/// One cookie's constant parts: `head` token `middle` [date] `tail`.
#[derive(Clone, Debug)]
struct Rendered {
    /// `Set-Cookie: NAME=`
    head: Box<[u8]>,
    /// `; Path=/; Domain=..; Max-Age=600; Expires=` (up to the date).
    middle: Box<[u8]>,
    /// `; HttpOnly; Secure; SameSite=None\r\n`
    tail: Box<[u8]>,
}

impl Rendered {
    fn build(
        name: &str,
        attrs: &CookieAttrs<'_>,
        timeout: Option<u64>,
        twin: bool,
    ) -> Result<Rendered, CookieError> {
        if !is_cookie_name(name.as_bytes()) {
            return Err(CookieError::BadName(name.to_owned()));
        }
        check_attr("path", attrs.path)?;
        if let Some(domain) = attrs.domain {
            check_attr("domain", domain)?;
        }
        let mut head = b"Set-Cookie: ".to_vec();
        head.extend_from_slice(name.as_bytes());
        head.push(b'=');
        let mut middle = Vec::new();
        push_attr(&mut middle, "Path", Some(attrs.path));
        if let Some(domain) = attrs.domain {
            push_attr(&mut middle, "Domain", Some(domain));
        }
        if let Some(timeout) = timeout {
            middle.extend_from_slice(b"; Max-Age=");
            middle.extend_from_slice(itoa::Buffer::new().format(timeout).as_bytes());
            middle.extend_from_slice(b"; Expires=");
        }
        let mut tail = Vec::new();
        if attrs.http_only {
            push_attr(&mut tail, "HttpOnly", None);
        }
        if attrs.secure || twin {
            push_attr(&mut tail, "Secure", None);
        }
        // The twin exists for cross-site requests, which only carry cookies
        // marked `SameSite=None` (which browsers require Secure).
        let same_site = if twin {
            Some(SameSite::None)
        } else {
            attrs.same_site
        };
        if let Some(same_site) = same_site {
            push_attr(&mut tail, "SameSite", Some(same_site.as_str()));
        }
        if attrs.partitioned {
            push_attr(&mut tail, "Partitioned", None);
        }
        tail.extend_from_slice(b"\r\n");
        Ok(Rendered {
            head: head.into(),
            middle: middle.into(),
            tail: tail.into(),
        })
    }

    fn write(&self, value: &[&[u8]], expires: Option<u64>, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        value.iter().for_each(|part| out.extend_from_slice(part));
        out.extend_from_slice(&self.middle);
        if let Some(expires) = expires {
            write_imf_fixdate(expires, out);
        }
        out.extend_from_slice(&self.tail);
    }
}

/// Checks that a configured attribute value cannot end the attribute or the
/// header early (`;`, CR, LF, other controls) nor is empty.
fn check_attr(attr: &'static str, value: &str) -> Result<(), CookieError> {
    let bad = value.is_empty()
        || value
            .bytes()
            .any(|b| b == b';' || b.is_ascii_control() || b >= 0x80);
    if bad {
        return Err(CookieError::BadAttribute {
            attr,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Appends `; Name=value`, or `; Name` for a flag.
fn push_attr(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    out.extend_from_slice(b"; ");
    out.extend_from_slice(name.as_bytes());
    if let Some(value) = value {
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
}

/// The insert-mode cookies of one group (SPEC §3), rendered once.
#[derive(Clone, Debug)]
pub struct InsertCookie {
    main: Rendered,
    twin: Option<Rendered>,
    timeout: Option<u64>,
}

impl InsertCookie {
    /// `name` (e.g. `SERVERID`), `twin` (e.g. `SERVERCORSID`, `None` when
    /// turned off), `timeout` in seconds (`None`: browser-session cookies).
    /// A main cookie that is `SameSite=None` already has no twin: it would
    /// say the same (SPEC §3.5).
    pub fn build(
        name: &str,
        twin: Option<&str>,
        timeout: Option<u64>,
        attrs: &CookieAttrs<'_>,
    ) -> Result<InsertCookie, CookieError> {
        let twin = twin.filter(|_| attrs.same_site != Some(SameSite::None));
        Ok(InsertCookie {
            main: Rendered::build(name, attrs, timeout, false)?,
            twin: twin
                .map(|twin| Rendered::build(twin, attrs, timeout, true))
                .transpose()?,
            timeout,
        })
    }

    /// The cookies' lifetime in seconds (`Max-Age`); `None` for
    /// browser-session cookies.
    pub fn timeout(&self) -> Option<u64> {
        self.timeout
    }

    /// Appends the `Set-Cookie: ...\r\n` line of the cookie and of its twin,
    /// carrying `token`, expiring `timeout` seconds after `now`.
    pub fn write_headers(&self, token: &[u8], now: u64, out: &mut Vec<u8>) {
        let expires = self.timeout.map(|t| now.saturating_add(t));
        self.main.write(&[token], expires, out);
        if let Some(twin) = &self.twin {
            twin.write(&[token], expires, out);
        }
    }
}

/// The cookie limpet re-issues in rewrite mode when a session fails over and
/// the response does not set the cookie itself (SPEC §4.4).
#[derive(Clone, Debug)]
pub struct RewriteCookie {
    name: Box<str>,
    rendered: Rendered,
}

impl RewriteCookie {
    pub fn build(name: &str, attrs: &CookieAttrs<'_>) -> Result<RewriteCookie, CookieError> {
        Ok(RewriteCookie {
            name: name.into(),
            rendered: Rendered::build(name, attrs, None, false)?,
        })
    }

    /// The application's cookie name (e.g. `BACKEND_SERVER`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends `Set-Cookie: NAME=<token>.<app_value>; Path=..\r\n` with the
    /// group's attributes and no expiry; `quoted` wraps the value in DQUOTEs
    /// as the client's cookie was, so the application sees the same bytes.
    pub fn write_reissue(&self, token: &[u8], app_value: &[u8], quoted: bool, out: &mut Vec<u8>) {
        let quote: &[u8] = if quoted { b"\"" } else { b"" };
        self.rendered
            .write(&[quote, token, b".", app_value, quote], None, out);
    }
}

/// Whether a response with these `Cache-Control` values must get
/// `CACHE_CONTROL_LINE`: false when one already has a `no-store`, `private`
/// or `no-cache` directive (with or without an argument), names compared
/// case-insensitively, quoted arguments skipped.
pub fn needs_no_cache<'a>(cache_control_values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    const ENOUGH: [&[u8]; 3] = [b"no-store", b"private", b"no-cache"];
    !cache_control_values.into_iter().any(|value| {
        directives(value).any(|name| ENOUGH.iter().any(|d| d.eq_ignore_ascii_case(name)))
    })
}

/// The directive names of one `Cache-Control` value (RFC 9111 §5.2:
/// `token [ "=" ( token / quoted-string ) ]`, comma-separated).
fn directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        rest = skip_while(rest, |b| b == b',' || is_ows(b));
        if rest.is_empty() {
            return None;
        }
        let name_len = rest.iter().take_while(|&&b| is_tchar(b)).count();
        let (name, after) = rest.split_at_checked(name_len)?;
        rest = skip_argument(after);
        if !name.is_empty() {
            return Some(name);
        }
    })
}

/// Skips `= token`, `= "quoted, string"` and any junk up to and including
/// the next comma outside quotes.
fn skip_argument(s: &[u8]) -> &[u8] {
    let mut s = skip_while(s, is_ows);
    if let [b'=', rest @ ..] = s {
        s = skip_while(rest, is_ows);
        if let [b'"', quoted @ ..] = s {
            s = skip_quoted(quoted);
        }
    }
    match memchr::memchr(b',', s) {
        Some(comma) => s.get(comma + 1..).unwrap_or_default(),
        None => &[],
    }
}

/// The bytes after the closing DQUOTE of a quoted-string whose opening
/// DQUOTE was already consumed (`\` escapes one byte).
fn skip_quoted(mut s: &[u8]) -> &[u8] {
    loop {
        match s {
            [] => return s,
            [b'"', rest @ ..] => return rest,
            [b'\\', _, rest @ ..] | [_, rest @ ..] => s = rest,
        }
    }
}

fn skip_while(s: &[u8], skip: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&b| skip(b)).count();
    s.get(n..).unwrap_or_default()
}

/// The latest instant IMF-fixdate can write: 9999-12-31 23:59:59 UTC.
const MAX_IMF_SECS: u64 = 253_402_300_799;

/// Appends `unix_secs` as an IMF-fixdate (`Sat, 21 Nov 2026 05:10:00 GMT`,
/// RFC 9110 §5.6.7) without allocating; later than year 9999 saturates.
pub fn write_imf_fixdate(unix_secs: u64, out: &mut Vec<u8>) {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = unix_secs.min(MAX_IMF_SECS);
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday, WEEKDAYS[0].
    out.extend_from_slice(WEEKDAYS[(days % 7) as usize]);
    out.extend_from_slice(b", ");
    push_two(out, day);
    out.push(b' ');
    out.extend_from_slice(MONTHS[((month + 11) % 12) as usize]);
    out.push(b' ');
    push_two(out, year / 100);
    push_two(out, year % 100);
    out.push(b' ');
    push_two(out, of_day / 3600);
    out.push(b':');
    push_two(out, of_day / 60 % 60);
    out.push(b':');
    push_two(out, of_day % 60);
    out.extend_from_slice(b" GMT");
}

fn push_two(out: &mut Vec<u8>, n: u64) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, for
/// days ≥ 0 (Howard Hinnant's `civil_from_days`, proleptic Gregorian).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
