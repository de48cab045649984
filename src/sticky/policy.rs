//! The persistence decisions, as pure functions of what the client sent:
//! which server its cookies name (`lookup_insert`, `lookup_rewrite`,
//! `lookup_header` for a token in a field or query parameter) and
//! whether the response must carry a cookie (`must_send`, `must_reissue`).
//! This file decides nothing about server health (the caller checks that
//! the named server is usable, SPEC §6) and never reads the clock, allocates
//! or panics: it runs on every request. See the module doc of `sticky` for
//! the calls in order.

use super::cookie::{self, CookieError, CookieFinder};
use super::rewrite::split_rewritten;
use super::token::{Decoded, Refusal, TokenTable};
use crate::balance::ServerIdx;

/// The insert-mode cookie finders of one group, built once per core.
#[derive(Clone, Debug)]
pub struct InsertFinders {
    main: CookieFinder,
    twin: Option<CookieFinder>,
}

impl InsertFinders {
    /// `name` (e.g. `SERVERID`) and the CORS twin (e.g. `SERVERCORSID`),
    /// `None` when the twin is turned off.
    pub fn new(name: &str, twin: Option<&str>) -> Result<InsertFinders, CookieError> {
        Ok(InsertFinders {
            main: CookieFinder::new(name)?,
            twin: twin.map(CookieFinder::new).transpose()?,
        })
    }

    /// Appends one `Cookie` header value without the persistence cookies
    /// (SPEC §3.6); see `cookie::strip_into`. Nothing appended: drop the
    /// header.
    pub fn strip_into(&self, value: &[u8], out: &mut Vec<u8>) -> usize {
        match &self.twin {
            Some(twin) => cookie::strip_into(value, &[&self.main, twin], out),
            None => cookie::strip_into(value, &[&self.main], out),
        }
    }
}

/// What the client's persistence cookie said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sent {
    /// No persistence cookie (or an empty one).
    #[default]
    Absent,
    /// A token named `Lookup::server`. `issued`: its first issue time, kept
    /// when re-signing. `resign`: a signed token due for re-signing.
    /// `disagree`: insert mode only, the cookie and its twin named different
    /// servers or one was refused: both must be sent again.
    Valid {
        issued: u32,
        resign: bool,
        disagree: bool,
    },
    /// A cookie was there but is treated as absent; count the reason.
    Refused(Refusal),
}

/// The outcome of the request-side lookup in insert mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The server the cookies name, when a token is valid. The caller still
    /// checks it is usable; if not, it balances (failover).
    pub server: Option<ServerIdx>,
    pub sent: Sent,
}

impl Lookup {
    const ABSENT: Lookup = Lookup {
        server: None,
        sent: Sent::Absent,
    };

    /// The first issue time for the token to send: the client's own when
    /// it had a valid one (so `max_age` bounds the session, even across a
    /// failover), else `now`.
    pub fn issued(&self, now: u64) -> u32 {
        match self.sent {
            Sent::Valid { issued, .. } => issued,
            Sent::Absent | Sent::Refused(_) => u32::try_from(now).unwrap_or(u32::MAX),
        }
    }

    fn from_decoded(decoded: Decoded, disagree: bool) -> Lookup {
        match decoded {
            Decoded::Valid {
                server,
                resign,
                issued,
            } => Lookup {
                server: Some(server),
                sent: Sent::Valid {
                    issued,
                    resign,
                    disagree,
                },
            },
            Decoded::Refused(refusal) => Lookup {
                server: None,
                sent: Sent::Refused(refusal),
            },
        }
    }
}

/// Insert mode, request side (SPEC §3.3): reads the persistence cookie and
/// its twin from every `Cookie` header value (first occurrence of each
/// wins) and decodes them. `SERVERID` wins when both are valid and
/// disagree; a valid twin routes when `SERVERID` is absent (cross-site
/// requests) or refused. Allocates nothing.
pub fn lookup_insert<'h>(
    finders: &InsertFinders,
    table: &TokenTable,
    cookie_values: impl IntoIterator<Item = &'h [u8]>,
    now: u64,
) -> Lookup {
    let mut main = None;
    let mut twin = None;
    for value in cookie_values {
        if main.is_none() {
            main = finders.main.find(value);
        }
        if let (None, Some(finder)) = (twin, &finders.twin) {
            twin = finder.find(value);
        }
        if main.is_some() && (twin.is_some() || finders.twin.is_none()) {
            break;
        }
    }
    decode_pair(table, main, twin, now)
}

/// Header mode, request side (SPEC §3.9): the token of the request's
/// field and of its query parameter, as `lookup_insert` reads the cookie
/// and its twin: the field wins when both are valid and disagree, and
/// both disagreeing makes the response send the token again.
pub fn lookup_header(
    table: &TokenTable,
    field: Option<&[u8]>,
    query: Option<&[u8]>,
    now: u64,
) -> Lookup {
    decode_pair(table, field, query, now)
}

/// Decodes a main token and its twin (either may be missing or empty)
/// into one lookup: the main one wins when both are valid.
#[inline]
fn decode_pair(table: &TokenTable, main: Option<&[u8]>, twin: Option<&[u8]>, now: u64) -> Lookup {
    let main = main.filter(|token| !token.is_empty());
    let twin = twin.filter(|token| !token.is_empty());
    let decoded_main = main.map(|token| table.decode(token, now));
    // Both cookies are written together, so they are usually the same
    // bytes: decode (and verify a signature) once.
    let decoded_twin = match (main, twin) {
        (Some(m), Some(t)) if m == t => decoded_main,
        _ => twin.map(|token| table.decode(token, now)),
    };
    match (decoded_main, decoded_twin) {
        (None, None) => Lookup::ABSENT,
        (Some(decoded), None) | (None, Some(decoded)) => Lookup::from_decoded(decoded, false),
        (Some(m @ Decoded::Valid { server, .. }), Some(t)) => {
            let agree = matches!(t, Decoded::Valid { server: s, .. } if s == server);
            Lookup::from_decoded(m, !agree)
        }
        (Some(Decoded::Refused(_)), Some(t @ Decoded::Valid { .. })) => {
            Lookup::from_decoded(t, true)
        }
        (Some(m @ Decoded::Refused(_)), Some(Decoded::Refused(_))) => {
            Lookup::from_decoded(m, false)
        }
    }
}

/// Insert mode, response side (SPEC §3.4): whether to send the cookies for
/// `chosen`, the server that answers. Only when they are new, name another
/// server than the client's (failover), disagreed, or are due for
/// re-signing; never just to refresh an expiry.
pub fn must_send(lookup: &Lookup, chosen: ServerIdx) -> bool {
    match lookup.sent {
        Sent::Absent | Sent::Refused(_) => true,
        Sent::Valid {
            resign, disagree, ..
        } => resign || disagree || lookup.server != Some(chosen),
    }
}

/// The outcome of the request-side lookup in rewrite mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteLookup<'h> {
    /// The server the token names, when valid (caller checks usable).
    pub server: Option<ServerIdx>,
    /// `Absent` also when the application's cookie carries no token (set
    /// before limpet was there): it is then treated like a failover.
    pub sent: Sent,
    /// The application's value (inside quotes, token removed): the hash
    /// ring key when the token does not route (SPEC §4.4). `None`: no
    /// application cookie, balance as usual and re-issue nothing.
    pub app_value: Option<&'h [u8]>,
    /// Whether the client's value was in DQUOTEs (kept on re-issue).
    pub quoted: bool,
}

impl RewriteLookup<'_> {
    const ABSENT: RewriteLookup<'static> = RewriteLookup {
        server: None,
        sent: Sent::Absent,
        app_value: None,
        quoted: false,
    };

    /// As `Lookup::issued`.
    pub fn issued(&self, now: u64) -> u32 {
        Lookup {
            server: self.server,
            sent: self.sent,
        }
        .issued(now)
    }
}

/// Rewrite mode, request side (SPEC §4.2): finds the application's cookie
/// (first occurrence wins), splits `<token>.<value>` and decodes the token.
/// Allocates nothing.
pub fn lookup_rewrite<'h>(
    finder: &CookieFinder,
    table: &TokenTable,
    cookie_values: impl IntoIterator<Item = &'h [u8]>,
    now: u64,
) -> RewriteLookup<'h> {
    let found = cookie_values.into_iter().find_map(|header| {
        let pair = finder.find_span(header, 0)?;
        Some((header.get(pair.value)?, pair.quoted))
    });
    let Some((value, quoted)) = found.filter(|(value, _)| !value.is_empty()) else {
        return RewriteLookup::ABSENT;
    };
    let Some((token, app_value)) = split_rewritten(value) else {
        return RewriteLookup {
            app_value: Some(value),
            quoted,
            ..RewriteLookup::ABSENT
        };
    };
    let Lookup { server, sent } = Lookup::from_decoded(table.decode(token, now), false);
    RewriteLookup {
        server,
        sent,
        app_value: Some(app_value),
        quoted,
    }
}

/// Rewrite mode, response side (SPEC §4.4): whether to re-issue the cookie
/// for `chosen` with `RewriteCookie::write_reissue`, when the response does
/// not set it itself (`RewriteOutcome::sets_our_cookie`). Only when the
/// client has the application's cookie and its token did not name `chosen`
/// (failover, refused or missing token) or is due for re-signing.
pub fn must_reissue(lookup: &RewriteLookup<'_>, chosen: ServerIdx) -> bool {
    if lookup.app_value.is_none() {
        return false;
    }
    match lookup.sent {
        Sent::Absent | Sent::Refused(_) => true,
        Sent::Valid { resign, .. } => resign || lookup.server != Some(chosen),
    }
}

#[cfg(test)]
mod tests;
