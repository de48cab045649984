//! Rewrite mode (SPEC §4): the application owns the session cookie; limpet
//! puts the server's token in front of its value on the way out, takes it
//! off on the way in, and re-issues the cookie itself only on failover.

use super::{ByScheme, Session};
use crate::balance::ServerIdx;
use crate::sticky::cookie::CookieFinder;
use crate::sticky::policy::{self, RewriteLookup};
use crate::sticky::rewrite;
use crate::sticky::set_cookie::{self, RewriteCookie};
use crate::sticky::token::{TokenBuf, TokenTable};

/// One group's rewrite-mode persistence.
#[derive(Debug)]
pub struct RewriteMode {
    tokens: TokenTable,
    cookie: ByScheme<RewriteCookie>,
    finder: CookieFinder,
}

impl RewriteMode {
    pub fn new(tokens: TokenTable, cookie: ByScheme<RewriteCookie>, finder: CookieFinder) -> Self {
        RewriteMode {
            tokens,
            cookie,
            finder,
        }
    }

    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    /// The application's cookie name.
    pub fn cookie_name(&self) -> &str {
        self.cookie.http.name()
    }

    /// Appends the cookie limpet re-issues for `token`'s server (as on a
    /// failover), carrying `app_value` for the application's value; it
    /// has no expiry.
    pub(super) fn write_new(&self, token: &[u8], https: bool, app_value: &[u8], out: &mut Vec<u8>) {
        self.cookie
            .get(https)
            .write_reissue(token, app_value, false, out);
    }

    pub(super) fn lookup<'h>(
        &self,
        cookie_values: impl IntoIterator<Item = &'h [u8]>,
        now: u64,
    ) -> Session {
        let lookup = policy::lookup_rewrite(&self.finder, &self.tokens, cookie_values, now);
        Session {
            server: lookup.server,
            sent: lookup.sent,
            // Copied out of the client's buffer: failover hashes it and a
            // re-issued cookie carries it, after the head's borrow ends.
            app_value: lookup.app_value.map(<[u8]>::to_vec),
            quoted: lookup.quoted,
        }
    }

    pub(super) fn edit_cookie(&self, value: &[u8], out: &mut Vec<u8>) {
        rewrite::restore_into(value, &self.finder, out);
    }

    pub(super) fn response<'a>(
        &'a self,
        session: &'a Session,
        chosen: ServerIdx,
        https: bool,
        now: u64,
    ) -> RewriteResponse<'a> {
        RewriteResponse {
            cookie: self.cookie.get(https),
            token: self.tokens.encode(chosen, session.issued(now), now),
            session,
            chosen,
            set_by_app: false,
            rewritten: false,
        }
    }
}

/// One response's rewrite-mode edits.
#[derive(Debug)]
pub struct RewriteResponse<'a> {
    cookie: &'a RewriteCookie,
    token: TokenBuf,
    session: &'a Session,
    chosen: ServerIdx,
    /// The application set or deleted its cookie in this response.
    set_by_app: bool,
    /// limpet put a token into the application's cookie in this response.
    rewritten: bool,
}

impl RewriteResponse<'_> {
    pub(super) fn set_cookie(&mut self, value: &[u8], out: &mut Vec<u8>) {
        let name = self.cookie.name().as_bytes();
        let outcome = rewrite::rewrite_into(value, name, self.token.as_bytes(), out);
        self.set_by_app |= outcome.sets_our_cookie();
        self.rewritten |= outcome == rewrite::RewriteOutcome::Rewritten;
    }

    pub(super) fn finish(&mut self, no_cache: impl FnOnce() -> bool, out: &mut Vec<u8>) -> bool {
        if self.set_by_app {
            // The application's own cookie: limpet adds no cookie, but one
            // it rewrote names a server, so shared caches must not keep it
            // (SPEC §3.7, as in insert mode).
            if self.rewritten && no_cache() {
                out.extend_from_slice(set_cookie::CACHE_CONTROL_LINE);
            }
            return false;
        }
        let lookup = RewriteLookup {
            server: self.session.server,
            sent: self.session.sent,
            app_value: self.session.app_value.as_deref(),
            quoted: self.session.quoted,
        };
        // On failover the cookie is re-issued for the new server, unless the
        // application set it itself (SPEC §4.4).
        if !policy::must_reissue(&lookup, self.chosen) {
            return false;
        }
        let Some(value) = lookup.app_value else {
            return false;
        };
        self.cookie
            .write_reissue(self.token.as_bytes(), value, lookup.quoted, out);
        if no_cache() {
            out.extend_from_slice(set_cookie::CACHE_CONTROL_LINE);
        }
        true
    }
}
