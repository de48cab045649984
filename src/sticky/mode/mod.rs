//! A group's session persistence as one object: [`Persistence`], built once
//! per configuration snapshot, says which request field carries the
//! client's token ([`Persistence::lookup`]), what the backend sees of it
//! ([`Persistence::edit_cookie`]) and which fields the response carries
//! ([`Persistence::response`], then [`ResponseCookies`]).
//!
//! Each mode lives in a file of its own (`insert.rs`, `rewrite.rs`,
//! `header.rs`); this file only dispatches, with one arm per mode in every
//! `match`, so a new mode is a new file plus its arms and the compiler
//! finds every place it must be handled. Nothing here does I/O, reads the
//! clock (callers pass `now`, Unix seconds), knows server health, or
//! allocates on the request path except rewrite mode's copy of the
//! application's value.
//!
//! What the backend must not see besides cookies (header mode's field and
//! query parameter) is named by [`Persistence::withheld`]; the request
//! writers leave it out.
//!
//! Response fields are written as HTTP/1 field lines (`Name: value\r\n`)
//! into the caller's buffer: the HTTP/1 front end sends them as they are,
//! and other front ends split the lines into their own fields.

mod header;
mod insert;
mod rewrite;

pub use header::{HeaderMode, HeaderResponse};
pub use insert::{InsertMode, InsertResponse};
pub use rewrite::{RewriteMode, RewriteResponse};

use super::policy::Sent;
use super::token::TokenTable;
use super::Outcome;
use crate::balance::ServerIdx;
use crate::http::{Fields, Withheld};

/// A cookie writer built for plain-HTTP listeners and for HTTPS ones: they
/// differ in `Secure` when `secure` is not configured (on by default on
/// HTTPS).
#[derive(Debug, Clone)]
pub struct ByScheme<T> {
    pub http: T,
    pub https: T,
}

impl<T> ByScheme<T> {
    /// Builds the plain-HTTP (`false`) and the HTTPS (`true`) writer.
    pub fn build<E>(build: impl Fn(bool) -> Result<T, E>) -> Result<Self, E> {
        Ok(ByScheme {
            http: build(false)?,
            https: build(true)?,
        })
    }

    /// The writer for a request that arrived over HTTPS or not.
    pub fn get(&self, https: bool) -> &T {
        if https {
            &self.https
        } else {
            &self.http
        }
    }
}

/// What a request's persistence token said, kept past the borrow of its
/// head (SPEC §3.3, §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The server the token names, when it is valid. The caller still
    /// checks that the server takes stuck sessions (SPEC §6).
    pub server: Option<ServerIdx>,
    pub sent: Sent,
    /// Rewrite mode: the application's session value (token removed), the
    /// ring's key on failover (SPEC §4.4) and what a re-issued cookie
    /// carries. `None` in other modes or without the application's cookie.
    pub app_value: Option<Vec<u8>>,
    /// Whether the client's value was in DQUOTEs (kept on re-issue).
    pub quoted: bool,
}

impl Session {
    /// No persistence token at all.
    pub const ABSENT: Session = Session {
        server: None,
        sent: Sent::Absent,
        app_value: None,
        quoted: false,
    };

    /// The first issue time for a token sent now: the client's own when it
    /// had a valid one (so `max_age` bounds a session across failovers),
    /// else `now`.
    pub fn issued(&self, now: u64) -> u32 {
        match self.sent {
            Sent::Valid { issued, .. } => issued,
            Sent::Absent | Sent::Refused(_) => u32::try_from(now).unwrap_or(u32::MAX),
        }
    }

    /// What happened to this session once `chosen` answered, `cookie_sent`
    /// saying whether the response carried a persistence field.
    pub fn outcome(&self, chosen: ServerIdx, cookie_sent: bool) -> Outcome {
        match (self.server, self.sent) {
            (Some(named), _) if named == chosen => Outcome::Stuck,
            (Some(_), _) => Outcome::Moved,
            (None, Sent::Refused(reason)) => Outcome::Refused(reason),
            (None, _) if cookie_sent => Outcome::New,
            (None, _) => Outcome::None,
        }
    }
}

/// A group's persistence policy with everything built that requests use.
#[derive(Debug)]
pub enum Persistence {
    None,
    Insert(Box<InsertMode>),
    Rewrite(Box<RewriteMode>),
    Header(Box<HeaderMode>),
}

impl Persistence {
    /// Whether requests of this group carry sessions at all (the clock is
    /// read only for those that do).
    pub fn is_none(&self) -> bool {
        match self {
            Persistence::None => true,
            Persistence::Insert(_) | Persistence::Rewrite(_) | Persistence::Header(_) => false,
        }
    }

    /// The group's token table, when it has persistence.
    pub fn tokens(&self) -> Option<&TokenTable> {
        match self {
            Persistence::None => None,
            Persistence::Insert(mode) => Some(mode.tokens()),
            Persistence::Rewrite(mode) => Some(mode.tokens()),
            Persistence::Header(mode) => Some(mode.tokens()),
        }
    }

    /// Appends the response field lines (`Name: value\r\n`, byte for byte
    /// what the request path writes) that pin a client to the server
    /// `token` names, for a listener over HTTPS or not: insert mode's
    /// cookie and its twin, rewrite mode's re-issued cookie with
    /// `app_value` in place of the application's value, header mode's
    /// field. Returns the
    /// lifetime the fields give the session in seconds (`None`: until the
    /// browser closes). For the admin mint call, never the request path.
    pub fn write_pinning(
        &self,
        token: &[u8],
        https: bool,
        now: u64,
        app_value: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<u64> {
        match self {
            Persistence::None => None,
            Persistence::Insert(mode) => mode.write_new(token, https, now, out),
            Persistence::Rewrite(mode) => {
                mode.write_new(token, https, app_value, out);
                None
            }
            // The field has no lifetime: the signed token's own does.
            Persistence::Header(mode) => {
                mode.write_new(token, out);
                mode.tokens().lifetime()
            }
        }
    }

    /// Reads the client's token from the request's fields (every `Cookie`
    /// field, HTTP/2 crumbs included; header mode's field) or its `path`
    /// and query (header mode's parameter), and decodes it.
    pub fn lookup<F: Fields + ?Sized>(&self, fields: &F, path: &[u8], now: u64) -> Session {
        match self {
            Persistence::None => Session::ABSENT,
            Persistence::Insert(mode) => mode.lookup(fields.values("cookie"), now),
            Persistence::Rewrite(mode) => mode.lookup(fields.values("cookie"), now),
            Persistence::Header(mode) => mode.lookup(fields, path, now),
        }
    }

    /// The field and query parameter the backend must not get (header
    /// mode's token); nothing in the other modes.
    pub fn withheld(&self) -> Withheld<'_> {
        match self {
            Persistence::None | Persistence::Insert(_) | Persistence::Rewrite(_) => Withheld::NONE,
            Persistence::Header(mode) => mode.withheld(),
        }
    }

    /// Appends what the backend gets in place of one `Cookie` value: insert
    /// mode removes its cookies (SPEC §3.6), rewrite mode gives the
    /// application its own value back (§4.2). Nothing appended: drop it.
    pub fn edit_cookie(&self, value: &[u8], out: &mut Vec<u8>) {
        match self {
            Persistence::None | Persistence::Header(_) => out.extend_from_slice(value),
            Persistence::Insert(mode) => mode.edit_cookie(value, out),
            Persistence::Rewrite(mode) => mode.edit_cookie(value, out),
        }
    }

    /// The response side for `session` answered by `chosen`, over HTTPS or
    /// not, at `now`.
    pub fn response<'a>(
        &'a self,
        session: &'a Session,
        chosen: ServerIdx,
        https: bool,
        now: u64,
    ) -> ResponseCookies<'a> {
        match self {
            Persistence::None => ResponseCookies::None,
            Persistence::Insert(mode) => {
                ResponseCookies::Insert(mode.response(session, chosen, https, now))
            }
            Persistence::Rewrite(mode) => {
                ResponseCookies::Rewrite(mode.response(session, chosen, https, now))
            }
            Persistence::Header(mode) => {
                ResponseCookies::Header(mode.response(session, chosen, now))
            }
        }
    }
}

/// One response's persistence edits: each `Set-Cookie` value the backend
/// sent passes through [`ResponseCookies::set_cookie`]; then
/// [`ResponseCookies::finish`] appends the fields limpet adds.
#[derive(Debug)]
pub enum ResponseCookies<'a> {
    None,
    Insert(InsertResponse<'a>),
    Rewrite(RewriteResponse<'a>),
    Header(HeaderResponse<'a>),
}

impl ResponseCookies<'_> {
    /// Appends what the client gets in place of one `Set-Cookie` value from
    /// the backend (append nothing to drop it).
    pub fn set_cookie(&mut self, value: &[u8], out: &mut Vec<u8>) {
        match self {
            ResponseCookies::None | ResponseCookies::Insert(_) | ResponseCookies::Header(_) => {
                out.extend_from_slice(value)
            }
            ResponseCookies::Rewrite(edit) => edit.set_cookie(value, out),
        }
    }

    /// Appends the field lines limpet adds to the response (its cookies,
    /// and `Cache-Control: no-cache="Set-Cookie"` when `no_cache` says the
    /// response's own `Cache-Control` does not already keep it out of
    /// shared caches, SPEC §3.7; header mode's token field). Returns
    /// whether limpet set a persistence cookie or field of its own (a
    /// rewritten application cookie does not count).
    pub fn finish(&mut self, no_cache: impl FnOnce() -> bool, out: &mut Vec<u8>) -> bool {
        match self {
            ResponseCookies::None => false,
            ResponseCookies::Insert(edit) => edit.finish(no_cache, out),
            ResponseCookies::Rewrite(edit) => edit.finish(no_cache, out),
            // No `Cache-Control` of limpet's: SPEC §3.7 is about cookies.
            ResponseCookies::Header(edit) => edit.finish(out),
        }
    }
}
