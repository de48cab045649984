//! Insert mode (SPEC §3): limpet's own cookie (`SERVERID`) and its CORS twin
//! name the server; the backend never sees them; a response carries them
//! only when the session is new, moved, disagreeing or due for re-signing.

use super::{ByScheme, Session};
use crate::balance::ServerIdx;
use crate::sticky::policy::{self, InsertFinders, Lookup};
use crate::sticky::set_cookie::{self, InsertCookie};
use crate::sticky::token::{TokenBuf, TokenTable};

/// One group's insert-mode persistence.
#[derive(Debug)]
pub struct InsertMode {
    tokens: TokenTable,
    cookie: ByScheme<InsertCookie>,
    finders: InsertFinders,
}

impl InsertMode {
    pub fn new(tokens: TokenTable, cookie: ByScheme<InsertCookie>, finders: InsertFinders) -> Self {
        InsertMode {
            tokens,
            cookie,
            finders,
        }
    }

    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    /// The cookie writers (plain HTTP, HTTPS).
    pub fn cookie(&self) -> &ByScheme<InsertCookie> {
        &self.cookie
    }

    /// Appends the cookies a new session on `token`'s server gets, as the
    /// request path writes them; returns their lifetime in seconds.
    pub(super) fn write_new(
        &self,
        token: &[u8],
        https: bool,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<u64> {
        let cookie = self.cookie.get(https);
        cookie.write_headers(token, now, out);
        cookie.timeout()
    }

    pub(super) fn lookup<'h>(
        &self,
        cookie_values: impl IntoIterator<Item = &'h [u8]>,
        now: u64,
    ) -> Session {
        let Lookup { server, sent } =
            policy::lookup_insert(&self.finders, &self.tokens, cookie_values, now);
        Session {
            server,
            sent,
            ..Session::ABSENT
        }
    }

    pub(super) fn edit_cookie(&self, value: &[u8], out: &mut Vec<u8>) {
        self.finders.strip_into(value, out);
    }

    pub(super) fn response<'a>(
        &'a self,
        session: &Session,
        chosen: ServerIdx,
        https: bool,
        now: u64,
    ) -> InsertResponse<'a> {
        let lookup = Lookup {
            server: session.server,
            sent: session.sent,
        };
        // Sent only when new or naming another server than the client's
        // (SPEC §3.4); limpet never refreshes the expiry.
        let token = policy::must_send(&lookup, chosen)
            .then(|| self.tokens.encode(chosen, session.issued(now), now));
        InsertResponse {
            cookie: self.cookie.get(https),
            token,
            now,
        }
    }
}

/// One response's insert-mode cookies.
#[derive(Debug)]
pub struct InsertResponse<'a> {
    cookie: &'a InsertCookie,
    /// The token to send, when the response must carry the cookies.
    token: Option<TokenBuf>,
    now: u64,
}

impl InsertResponse<'_> {
    pub(super) fn finish(&mut self, no_cache: impl FnOnce() -> bool, out: &mut Vec<u8>) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        self.cookie.write_headers(token.as_bytes(), self.now, out);
        if no_cache() {
            out.extend_from_slice(set_cookie::CACHE_CONTROL_LINE);
        }
        true
    }
}
