//! Header mode (SPEC §3.9): for clients that keep no cookies, the token
//! travels in a request field (e.g. `X-Session`) and comes back in the
//! same response field when a session starts, moves or is re-signed;
//! optionally a query parameter carries it too. The backend sees neither:
//! the request writers leave out what [`HeaderMode::withheld`] names.
//! Tokens, signing and expiry are the cookie's; nothing else is.

use super::Session;
use crate::balance::ServerIdx;
use crate::http::{query, Fields, Withheld};
use crate::sticky::cookie::trim_ows;
use crate::sticky::policy::{self, Lookup};
use crate::sticky::token::{TokenBuf, TokenTable};

/// One group's header-mode persistence.
#[derive(Debug)]
pub struct HeaderMode {
    tokens: TokenTable,
    /// The field name as configured: responses carry this spelling.
    field: Box<str>,
    /// The same in lower case, built once: request fields are matched
    /// against it without folding case per request.
    lower: Box<str>,
    /// The query parameter that may carry the token too.
    query: Option<Box<[u8]>>,
}

impl HeaderMode {
    /// `field`: a valid field name (config checks it); `query`: a
    /// parameter name, if any.
    pub fn new(tokens: TokenTable, field: &str, query: Option<&str>) -> Self {
        HeaderMode {
            tokens,
            field: field.into(),
            lower: field.to_ascii_lowercase().into(),
            query: query.map(|q| q.as_bytes().into()),
        }
    }

    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    /// The field name as configured.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What the backend must not see.
    pub fn withheld(&self) -> Withheld<'_> {
        Withheld {
            field: Some(&self.lower),
            query: self.query.as_deref(),
        }
    }

    /// Appends `Field: token\r\n`: what a response that pins a session
    /// to `token`'s server carries.
    pub(super) fn write_new(&self, token: &[u8], out: &mut Vec<u8>) {
        write_field(&self.field, token, out);
    }

    pub(super) fn lookup<F: Fields + ?Sized>(&self, fields: &F, path: &[u8], now: u64) -> Session {
        // The first field wins, as the first cookie does.
        let field = fields.values(&self.lower).next().map(trim_ows);
        let query = self
            .query
            .as_deref()
            .and_then(|name| query::find_param(path, name));
        let Lookup { server, sent } = policy::lookup_header(&self.tokens, field, query, now);
        Session {
            server,
            sent,
            ..Session::ABSENT
        }
    }

    pub(super) fn response(
        &self,
        session: &Session,
        chosen: ServerIdx,
        now: u64,
    ) -> HeaderResponse<'_> {
        let lookup = Lookup {
            server: session.server,
            sent: session.sent,
        };
        // As the cookie (SPEC §3.4): only when new, moved, disagreeing or
        // due for re-signing.
        let token = policy::must_send(&lookup, chosen)
            .then(|| self.tokens.encode(chosen, session.issued(now), now));
        HeaderResponse {
            field: &self.field,
            token,
        }
    }
}

/// One response's header-mode field.
#[derive(Debug)]
pub struct HeaderResponse<'a> {
    field: &'a str,
    /// The token to send, when the response must carry it.
    token: Option<TokenBuf>,
}

impl HeaderResponse<'_> {
    /// Appends `Field: token\r\n` when the session is new or changed.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        write_field(self.field, token.as_bytes(), out);
        true
    }
}

fn write_field(field: &str, token: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(token);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::sticky::policy::Sent;
    use crate::sticky::token::{Refusal, Signing, TokenKey};

    const NOW: u64 = 1_795_237_200;
    const S0: ServerIdx = ServerIdx(0);
    const S1: ServerIdx = ServerIdx(1);

    fn table(signing: Option<Signing>) -> TokenTable {
        TokenTable::build(&TokenKey::DEFAULT, "api", &["s0", "s1"], signing).unwrap()
    }

    fn mode(query: Option<&str>) -> HeaderMode {
        HeaderMode::new(table(None), "X-Session", query)
    }

    fn token(server: ServerIdx) -> String {
        String::from_utf8(table(None).token(server).to_vec()).unwrap()
    }

    /// Looks up with HTTP/1 fields `(name, value)` and `path`.
    fn lookup(mode: &HeaderMode, fields: &[(&str, &str)], path: &str) -> Session {
        let headers: Vec<httparse::Header<'_>> = fields
            .iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        mode.lookup(&headers[..], path.as_bytes(), NOW)
    }

    fn sent(mode: &HeaderMode, session: &Session, chosen: ServerIdx) -> Option<String> {
        let mut out = Vec::new();
        mode.response(session, chosen, NOW)
            .finish(&mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_field_is_read_in_any_case_and_the_first_one_wins() {
        let mode = mode(None);
        let (one, two) = (token(S0), token(S1));
        let session = lookup(&mode, &[("x-SESSION", &one), ("X-Session", &two)], "/");
        assert_eq!(session.server, Some(S0));
        assert!(matches!(
            session.sent,
            Sent::Valid {
                disagree: false,
                ..
            }
        ));
        assert_eq!(sent(&mode, &session, S0), None, "stuck: nothing sent");
        // Moved: the new server's token, in the configured spelling.
        assert_eq!(
            sent(&mode, &session, S1),
            Some(format!("X-Session: {two}\r\n"))
        );
        let session = lookup(&mode, &[("X-Session", &format!(" {two} "))], "/");
        assert_eq!(session.server, Some(S1));
        // Without persistence, the query is not read.
        let session = lookup(&mode, &[], &format!("/?sid={one}"));
        assert_eq!(session, Session::ABSENT);
    }

    #[test]
    fn absent_unknown_or_garbled_tokens_start_a_session() {
        let mode = mode(Some("sid"));
        for (fields, path, want) in [
            (vec![], "/", Sent::Absent),
            (vec![("X-Session", "")], "/?sid=", Sent::Absent),
            (
                vec![("X-Session", "AAAAAAAAAAA")],
                "/",
                Sent::Refused(Refusal::Unknown),
            ),
            (
                vec![("X-Session", "not a token")],
                "/",
                Sent::Refused(Refusal::Garbled),
            ),
            (vec![], "/?sid=%41", Sent::Refused(Refusal::Garbled)),
        ] {
            let session = lookup(&mode, &fields, path);
            assert_eq!(session.server, None, "{fields:?} {path}");
            assert_eq!(session.sent, want, "{fields:?} {path}");
            assert_eq!(
                sent(&mode, &session, S1),
                Some(format!("X-Session: {}\r\n", token(S1)))
            );
        }
    }

    #[test]
    fn the_query_parameter_routes_and_the_field_wins_over_it() {
        let mode = mode(Some("sid"));
        let (one, two) = (token(S0), token(S1));
        let session = lookup(&mode, &[], &format!("/a?x=1&sid={two}"));
        assert_eq!(session.server, Some(S1));
        assert_eq!(sent(&mode, &session, S1), None);
        // Both, disagreeing: the field wins and the token is sent again.
        let session = lookup(&mode, &[("X-Session", &one)], &format!("/a?sid={two}"));
        assert_eq!(session.server, Some(S0));
        assert_eq!(
            sent(&mode, &session, S0),
            Some(format!("X-Session: {one}\r\n"))
        );
        // A refused field leaves the query's valid token in charge.
        let session = lookup(&mode, &[("X-Session", "garbage")], &format!("/?sid={two}"));
        assert_eq!(session.server, Some(S1));
    }

    #[test]
    fn withheld_names_the_lower_case_field_and_the_parameter() {
        let mode = HeaderMode::new(table(None), "X-Api-Session", Some("sid"));
        let withheld = mode.withheld();
        assert_eq!(withheld.field, Some("x-api-session"));
        assert_eq!(withheld.query, Some(&b"sid"[..]));
        assert!(withheld.hides_field(b"X-API-SESSION"));
        assert!(!withheld.hides_field(b"X-Api-Sessions"));
        assert_eq!(mode.field(), "X-Api-Session");
        assert_eq!(
            HeaderMode::new(table(None), "X", None).withheld().query,
            None
        );
    }

    #[test]
    fn signed_tokens_expire_after_timeout_since_they_were_sent() {
        let signing = Signing::new(&["a-signing-key-of-16b"], None, None)
            .unwrap()
            .with_timeout(Some(600))
            .unwrap();
        let mode = HeaderMode::new(table(Some(signing)), "X-Session", None);
        let issued = u32::try_from(NOW - 1000).unwrap();
        let fresh = mode.tokens().encode(S0, issued, NOW - 599);
        let stale = mode.tokens().encode(S0, issued, NOW - 601);
        let text = |t: TokenBuf| String::from_utf8(t.as_bytes().to_vec()).unwrap();
        let session = lookup(&mode, &[("X-Session", &text(fresh))], "/");
        assert_eq!(session.server, Some(S0));
        assert_eq!(sent(&mode, &session, S0), None, "never refreshed");
        let session = lookup(&mode, &[("X-Session", &text(stale))], "/");
        assert_eq!(session.sent, Sent::Refused(Refusal::Expired));
        assert!(sent(&mode, &session, S0)
            .unwrap()
            .starts_with("X-Session: "));
    }
}
