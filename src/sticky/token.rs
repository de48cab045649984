//! Server tokens: the opaque string a persistence cookie carries to name a
//! server (SPEC §5). This file owns the token key, the stable server id, the
//! per-group `TokenTable` that maps a token back to a `ServerIdx`, and the
//! optional signed form (issue time, last signing time, truncated
//! HMAC-SHA-256). It must never depend on list order, a random seed, the
//! clock (callers pass `now`), or a hash whose output may change between
//! builds: a token is a promise to every core, node and future version.
//! `decode` allocates nothing and never panics on what a client sends.

use std::hash::Hasher;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher24;

use super::base64url;
use crate::balance::ServerIdx;

/// Length of an unsigned token: 8 bytes in URL-safe base64 without padding.
pub const UNSIGNED_TOKEN_LEN: usize = base64url::encoded_len(8);
/// Length of a signed token: 28 bytes in URL-safe base64 without padding.
pub const SIGNED_TOKEN_LEN: usize = base64url::encoded_len(SIGNED_RAW_LEN);

/// id (8) ‖ first issue time (4) ‖ last signed time (4): what the MAC covers.
const SIGNED_BODY_LEN: usize = 16;
/// HMAC-SHA-256 truncated to 96 bits, as in RFC 2104 §5 practice (IPsec,
/// TLS 1.2 Finished): forging takes 2^96 online guesses.
const TAG_LEN: usize = 12;
const SIGNED_RAW_LEN: usize = SIGNED_BODY_LEN + TAG_LEN;

/// The key used when a group has no `token_secret`.
///
/// It is a fixed constant on purpose, never random or derived from the host:
/// every core, every node of a cluster and every future limpet version must
/// compute the same token for the same group and server, or an upgrade or a
/// second node would silently re-balance every sticky session. Changing it
/// remaps every user of every deployment that relies on the default.
const DEFAULT_KEY: [u8; 16] = *b"limpet-sticky-v1";

/// Key of the keyed hash that turns a server name into its token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 16]);

impl TokenKey {
    /// The built-in default key (see `DEFAULT_KEY` for why it is fixed).
    pub const DEFAULT: TokenKey = TokenKey(DEFAULT_KEY);

    /// The first 16 bytes of SHA-256(`secret`), or the default key.
    pub fn from_secret(secret: Option<&str>) -> TokenKey {
        let Some(secret) = secret else {
            return TokenKey::DEFAULT;
        };
        let digest = Sha256::digest(secret.as_bytes());
        let mut key = [0u8; 16];
        key.iter_mut().zip(digest.iter()).for_each(|(k, d)| *k = *d);
        TokenKey(key)
    }
}

impl std::fmt::Debug for TokenKey {
    // A key may be derived from a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The stable 64-bit id of `server` in `group`: SipHash-2-4 keyed with `key`
/// over the bytes `group \0 server`.
///
/// The bytes go through `Hasher::write` directly rather than `Hash::hash` of
/// `&str`, which appends a 0xff terminator that is a std implementation
/// detail, not part of SipHash. The input is exactly the specified bytes, so
/// the output is reproducible by any SipHash-2-4 implementation. Names must
/// not contain NUL (checked by `TokenTable::build`), so `\0` separates them
/// unambiguously.
pub fn server_id(key: &TokenKey, group: &str, server: &str) -> u64 {
    let mut hasher = SipHasher24::new_with_key(&key.0);
    hasher.write(group.as_bytes());
    hasher.write(&[0]);
    hasher.write(server.as_bytes());
    hasher.finish()
}

/// Why a well-formed cookie does not route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Wrong length or alphabet, or a token of the other mode.
    Garbled,
    /// Well-formed, but no such server in this group: a token of another
    /// group, or of a server removed since.
    Unknown,
    /// Signed token whose MAC matches none of the keys: forged or altered.
    BadSignature,
    /// Signed token older than `max_age`.
    Expired,
    /// Signed token not re-signed for longer than `max_idle`.
    Idle,
}

impl Refusal {
    /// A short stable name, for counters and logs.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Garbled => "garbled",
            Refusal::Unknown => "unknown",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired => "expired",
            Refusal::Idle => "idle",
        }
    }
}

/// What a token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The token names `server`. `resign`: a signed token is past half its
    /// `max_idle` and the cookie must be sent again. `issued`: the first
    /// issue time to carry over when re-signing (0 for unsigned tokens).
    Valid {
        server: ServerIdx,
        resign: bool,
        issued: u32,
    },
    /// Treat as absent, and count the reason.
    Refused(Refusal),
}

/// Errors building a `Signing` or a `TokenTable` (config time only).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("servers {first:?} and {second:?} of group {group:?} have the same token (duplicate name, or a hash collision: change token_secret)")]
    Collision {
        group: String,
        first: String,
        second: String,
    },
    #[error("name {0:?} contains a NUL byte")]
    NulInName(String),
    #[error("group {0:?} has more servers than a token table can address")]
    TooManyServers(String),
    #[error("signed tokens need at least one key")]
    NoSigningKey,
    #[error("signing key #{0} is empty")]
    EmptySigningKey(usize),
    #[error("max_age, max_idle and timeout must be at least 1 second")]
    ZeroLimit,
}

/// Signing configuration of a group: keys (the first signs, every one
/// verifies, so keys rotate without logging anyone out) and the limits.
#[derive(Clone)]
pub struct Signing {
    /// HMAC states already keyed, cloned per use: no re-keying per request.
    macs: Box<[Hmac<Sha256>]>,
    max_age: Option<u64>,
    max_idle: Option<u64>,
    /// Header mode's `timeout`: refuse tokens signed longer ago than this,
    /// as a cookie's `Max-Age` would have expired, without re-signing.
    timeout: Option<u64>,
}

impl Signing {
    /// `keys[0]` signs; all verify. Limits in seconds; `None` means no limit.
    pub fn new(
        keys: &[&str],
        max_age: Option<u64>,
        max_idle: Option<u64>,
    ) -> Result<Signing, TokenError> {
        if keys.is_empty() {
            return Err(TokenError::NoSigningKey);
        }
        if max_age == Some(0) || max_idle == Some(0) {
            return Err(TokenError::ZeroLimit);
        }
        let mut macs = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if key.is_empty() {
                return Err(TokenError::EmptySigningKey(i));
            }
            // HMAC takes keys of any length: this cannot fail.
            let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .map_err(|_| TokenError::EmptySigningKey(i))?;
            macs.push(mac);
        }
        Ok(Signing {
            macs: macs.into_boxed_slice(),
            max_age,
            max_idle,
            timeout: None,
        })
    }

    /// Also refuses tokens last signed more than `timeout` seconds ago
    /// (`Refusal::Expired`), the lifetime a cookie would have had.
    pub fn with_timeout(mut self, timeout: Option<u64>) -> Result<Signing, TokenError> {
        if timeout == Some(0) {
            return Err(TokenError::ZeroLimit);
        }
        self.timeout = timeout;
        Ok(self)
    }
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("keys", &self.macs.len())
            .field("max_age", &self.max_age)
            .field("max_idle", &self.max_idle)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A token on the stack: what `TokenTable::encode` returns.
#[derive(Clone, Copy)]
pub struct TokenBuf {
    bytes: [u8; SIGNED_TOKEN_LEN],
    len: usize,
}

impl TokenBuf {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl AsRef<[u8]> for TokenBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for TokenBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenBuf({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

/// One group's tokens, built once per config snapshot, read by every core.
#[derive(Debug, Clone)]
pub struct TokenTable {
    group: Box<str>,
    /// Sorted by id: a binary search maps a decoded id to its server.
    by_id: Box<[(u64, ServerIdx)]>,
    /// Indexed by `ServerIdx`.
    ids: Box<[u64]>,
    /// Indexed by `ServerIdx`: the unsigned token of each server.
    tokens: Box<[[u8; UNSIGNED_TOKEN_LEN]]>,
    signing: Option<Signing>,
}

impl TokenTable {
    /// Builds the table of `group` whose servers are `servers`, addressed as
    /// `ServerIdx(position)`. A server's token depends on its name only, so
    /// adding or removing a server moves no other session.
    pub fn build<S: AsRef<str>>(
        key: &TokenKey,
        group: &str,
        servers: &[S],
        signing: Option<Signing>,
    ) -> Result<TokenTable, TokenError> {
        if group.contains('\0') {
            return Err(TokenError::NulInName(group.to_owned()));
        }
        let mut ids = Vec::with_capacity(servers.len());
        let mut by_id = Vec::with_capacity(servers.len());
        for (i, name) in servers.iter().enumerate() {
            let name = name.as_ref();
            if name.contains('\0') {
                return Err(TokenError::NulInName(name.to_owned()));
            }
            let idx = u32::try_from(i).map_err(|_| TokenError::TooManyServers(group.to_owned()))?;
            let id = server_id(key, group, name);
            ids.push(id);
            by_id.push((id, ServerIdx(idx)));
        }
        by_id.sort_unstable();
        if let Some(pair) = by_id.windows(2).find(|w| matches!(w, [a, b] if a.0 == b.0)) {
            let name = |i: Option<&(u64, ServerIdx)>| {
                i.and_then(|(_, s)| servers.get(s.get()))
                    .map_or_else(String::new, |n| n.as_ref().to_owned())
            };
            return Err(TokenError::Collision {
                group: group.to_owned(),
                first: name(pair.first()),
                second: name(pair.get(1)),
            });
        }
        let tokens = ids.iter().map(|&id| encode_id(id)).collect();
        Ok(TokenTable {
            group: group.into(),
            by_id: by_id.into_boxed_slice(),
            ids: ids.into_boxed_slice(),
            tokens,
            signing,
        })
    }

    /// How long a token signed now stays valid at most, in seconds: the
    /// smaller of `max_age` and header mode's `timeout`; `None` when
    /// unsigned or unlimited (`max_idle` depends on use, not counted).
    pub fn lifetime(&self) -> Option<u64> {
        let signing = self.signing.as_ref()?;
        match (signing.max_age, signing.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether tokens are signed (`TokenBuf`s are then 38 bytes, else 11).
    pub fn is_signed(&self) -> bool {
        self.signing.is_some()
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The unsigned token of `server`: the cookie value in unsigned mode, and
    /// the stable server id in both modes (admin token lookup). In signed
    /// mode cookies carry `encode` instead. Empty for an index this table
    /// does not hold (a caller mixing groups).
    pub fn token(&self, server: ServerIdx) -> &[u8] {
        self.tokens.get(server.get()).map_or(&[], |t| t.as_slice())
    }

    /// The token to send for `server`. Signed mode: first issued at `issued`
    /// (carry `Decoded::Valid::issued` over when re-signing, else the
    /// current time), signed now. Unsigned mode ignores both times.
    pub fn encode(&self, server: ServerIdx, issued: u32, now: u64) -> TokenBuf {
        let mut buf = TokenBuf {
            bytes: [0; SIGNED_TOKEN_LEN],
            len: 0,
        };
        let Some(&id) = self.ids.get(server.get()) else {
            return buf;
        };
        let Some(signing) = &self.signing else {
            fill(&mut buf.bytes, &[self.token(server)]);
            buf.len = UNSIGNED_TOKEN_LEN;
            return buf;
        };
        let mut body = [0u8; SIGNED_BODY_LEN];
        let signed = clamp_time(now);
        fill(
            &mut body,
            &[
                &id.to_be_bytes(),
                &issued.to_be_bytes(),
                &signed.to_be_bytes(),
            ],
        );
        let mut raw = [0u8; SIGNED_RAW_LEN];
        if let Some(mac) = signing.macs.first() {
            let tag = self.mac(mac, &body).finalize().into_bytes();
            fill(&mut raw, &[&body, tag.get(..TAG_LEN).unwrap_or_default()]);
        }
        base64url::encode(&raw, &mut buf.bytes);
        buf.len = SIGNED_TOKEN_LEN;
        buf
    }

    /// Appends the token of `server` to `out` (see `encode`).
    pub fn encode_into(&self, server: ServerIdx, issued: u32, now: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(self.encode(server, issued, now).as_bytes());
    }

    /// What `token` (a cookie value, quotes already removed) says at `now`.
    /// A signed table refuses unsigned tokens and vice versa (`Garbled`).
    pub fn decode(&self, token: &[u8], now: u64) -> Decoded {
        match &self.signing {
            None => self.decode_unsigned(token),
            Some(signing) => self.decode_signed(signing, token, now),
        }
    }

    fn decode_unsigned(&self, token: &[u8]) -> Decoded {
        let Some(id) = base64url::decode_u64(token) else {
            return Decoded::Refused(Refusal::Garbled);
        };
        match self.lookup(id) {
            Some(server) => Decoded::Valid {
                server,
                resign: false,
                issued: 0,
            },
            None => Decoded::Refused(Refusal::Unknown),
        }
    }

    fn decode_signed(&self, signing: &Signing, token: &[u8], now: u64) -> Decoded {
        let mut raw = [0u8; SIGNED_RAW_LEN];
        if base64url::decode(token, &mut raw).is_none() {
            return Decoded::Refused(Refusal::Garbled);
        }
        let Some((body, tag)) = raw.split_first_chunk::<SIGNED_BODY_LEN>() else {
            return Decoded::Refused(Refusal::Garbled);
        };
        // Constant-time per key (hmac's verify uses `subtle`); which key
        // matched may leak through timing, which reveals nothing secret.
        let signed = signing
            .macs
            .iter()
            .any(|mac| self.mac(mac, body).verify_truncated_left(tag).is_ok());
        if !signed {
            return Decoded::Refused(Refusal::BadSignature);
        }
        let (id, issued, last) = unpack_body(body);
        let Some(server) = self.lookup(id) else {
            return Decoded::Refused(Refusal::Unknown);
        };
        // A node whose clock is ahead may have issued "in the future": age 0.
        let age = now.saturating_sub(u64::from(issued));
        let idle = now.saturating_sub(u64::from(last));
        if signing.max_age.is_some_and(|max| age > max)
            || signing.timeout.is_some_and(|max| idle > max)
        {
            return Decoded::Refused(Refusal::Expired);
        }
        if signing.max_idle.is_some_and(|max| idle > max) {
            return Decoded::Refused(Refusal::Idle);
        }
        Decoded::Valid {
            server,
            resign: signing.max_idle.is_some_and(|max| idle > max / 2),
            issued,
        }
    }

    /// The MAC state over `body ‖ group`: binding the group makes a token
    /// copied from another group with the same servers useless here.
    fn mac(&self, keyed: &Hmac<Sha256>, body: &[u8; SIGNED_BODY_LEN]) -> Hmac<Sha256> {
        let mut mac = keyed.clone();
        mac.update(body);
        mac.update(self.group.as_bytes());
        mac
    }

    fn lookup(&self, id: u64) -> Option<ServerIdx> {
        let at = self.by_id.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        self.by_id.get(at).map(|&(_, server)| server)
    }
}

/// The 11-character unsigned token of an id (big-endian, base64url).
fn encode_id(id: u64) -> [u8; UNSIGNED_TOKEN_LEN] {
    let mut out = [0u8; UNSIGNED_TOKEN_LEN];
    base64url::encode(&id.to_be_bytes(), &mut out);
    out
}

/// Times travel as u32 unix seconds (good until 2106); later saturates.
fn clamp_time(now: u64) -> u32 {
    u32::try_from(now).unwrap_or(u32::MAX)
}

/// Copies `parts` one after the other into `dst`; every size here is a
/// constant, so nothing is ever cut short.
fn fill(dst: &mut [u8], parts: &[&[u8]]) {
    let src = parts.iter().flat_map(|part| part.iter());
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
}

fn unpack_body(body: &[u8; SIGNED_BODY_LEN]) -> (u64, u32, u32) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, i0, i1, i2, i3, s0, s1, s2, s3] = *body;
    (
        u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u32::from_be_bytes([i0, i1, i2, i3]),
        u32::from_be_bytes([s0, s1, s2, s3]),
    )
}

#[cfg(test)]
mod tests;
