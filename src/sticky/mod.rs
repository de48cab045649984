//! Session persistence (SPEC §3–5), as pure code: find the persistence
//! cookie in the request, map its token to a server, decide whether the
//! response carries a cookie, and write or rewrite `Set-Cookie`. Nothing
//! here does I/O, reads the clock (callers pass `now`, unix seconds) or
//! knows server health (callers check the named server is usable).
//! Everything the request path calls allocates nothing beyond growing the
//! caller's output buffer.
//!
//! - [`token`]: `TokenKey`, `TokenTable` (server name ⇄ token, signed or not).
//! - [`cookie`]: `CookieFinder` (find one cookie), `strip_into`.
//! - [`set_cookie`]: `InsertCookie`, `RewriteCookie`, `needs_no_cache`.
//! - [`rewrite`]: `rewrite_into` (response), `restore_into` (request).
//! - [`policy`]: `lookup_insert`, `must_send`, `lookup_rewrite`, `must_reissue`,
//!   `lookup_header`.
//! - [`Persistence`]: one group's policy as one object over those pieces
//!   (one file per mode); [`Session`], what the request's token said;
//!   [`Outcome`], what happened to it, with its log word and metric label.
//!
//! What to build when (config snapshot: once; per core: once; per request):
//!
//! ```
//! use limpet::balance::ServerIdx;
//! use limpet::sticky::{policy, set_cookie, CookieAttrs, InsertCookie, InsertFinders, TokenKey, TokenTable};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once per config snapshot, per group (Signing::new(keys, max_age, max_idle) for signed tokens).
//! let key = TokenKey::from_secret(None); // the group's token_secret
//! let table = TokenTable::build(&key, "web", &["ECS01", "ECS02"], None)?;
//! let insert = InsertCookie::build("SERVERID", Some("SERVERCORSID"), Some(600), &CookieAttrs::default())?;
//! // Once per core.
//! let finders = InsertFinders::new("SERVERID", Some("SERVERCORSID"))?;
//!
//! // Per request: every `Cookie` header value, in order.
//! let now = 1_795_237_800;
//! let cookie_headers: [&[u8]; 1] = [b"lang=en; SERVERID=C-mIWZZDPTM"];
//! let lookup = policy::lookup_insert(&finders, &table, cookie_headers, now);
//! assert_eq!(lookup.server, Some(ServerIdx(0))); // C-mIWZZDPTM is ECS01
//! // Count `lookup.sent` when it is `Sent::Refused(reason)`.
//! let usable = |_: ServerIdx| true; // the caller's view of SPEC §6
//! let chosen = match lookup.server {
//!     Some(server) if usable(server) => server,
//!     _ => ServerIdx(1), // failover: ask the balancer
//! };
//! assert!(!policy::must_send(&lookup, chosen)); // stuck, nothing to send
//!
//! // Forwarded request head: the persistence cookies removed (§3.6).
//! let mut head = Vec::new();
//! for value in cookie_headers {
//!     let line = head.len();
//!     head.extend_from_slice(b"Cookie: ");
//!     let value_at = head.len();
//!     finders.strip_into(value, &mut head);
//!     if head.len() == value_at {
//!         head.truncate(line); // nothing left: drop the header
//!     } else {
//!         head.extend_from_slice(b"\r\n");
//!     }
//! }
//! assert_eq!(head, b"Cookie: lang=en\r\n");
//!
//! // Response head: cookies only when `must_send` says so (§3.4, §3.7).
//! let mut response = Vec::new();
//! let chosen = ServerIdx(1); // say ECS01 was down
//! if policy::must_send(&lookup, chosen) {
//!     let token = table.encode(chosen, lookup.issued(now), now);
//!     insert.write_headers(token.as_bytes(), now, &mut response);
//!     let cache_control: [&[u8]; 0] = []; // the response's Cache-Control values
//!     if set_cookie::needs_no_cache(cache_control) {
//!         response.extend_from_slice(set_cookie::CACHE_CONTROL_LINE);
//!     }
//! }
//! assert!(response.starts_with(b"Set-Cookie: SERVERID=dm32rv5k2hc; Path=/; Max-Age=600; "));
//! # Ok(())
//! # }
//! ```
//!
//! Rewrite mode (`BACKEND_SERVER`), per request:
//! `policy::lookup_rewrite(&finder, &table, cookie_headers, now)` gives the
//! server and the application's value; route to the server if usable, else
//! `ring.pick(app_value)` when `app_value` is `Some`, else balance. Forward
//! each `Cookie` value through `rewrite::restore_into`. On the response, pass
//! each `Set-Cookie` value through `rewrite::rewrite_into(value, name,
//! table.encode(chosen, lookup.issued(now), now).as_bytes(), out)`; if none
//! `sets_our_cookie()` and `policy::must_reissue(&lookup, chosen)`, append
//! `RewriteCookie::write_reissue(token, app_value, lookup.quoted, out)`.

mod base64url;
pub mod cookie;
mod mode;
mod outcome;
pub mod policy;
pub mod rewrite;
pub mod set_cookie;
pub mod token;

#[cfg(test)]
mod test_support;

pub use cookie::{CookieError, CookieFinder};
pub use mode::{
    ByScheme, HeaderMode, HeaderResponse, InsertMode, InsertResponse, Persistence, ResponseCookies,
    RewriteMode, RewriteResponse, Session,
};
pub use outcome::Outcome;
pub use policy::{InsertFinders, Lookup, RewriteLookup, Sent};
pub use rewrite::{RewriteOutcome, SetCookie};
pub use set_cookie::{CookieAttrs, InsertCookie, RewriteCookie, SameSite};
pub use token::{Decoded, Refusal, Signing, TokenBuf, TokenError, TokenKey, TokenTable};
