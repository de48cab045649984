//! `Ring`: the consistent-hash ring of one server group, built once per
//! configuration by the control thread and shared read-only by every core.
//! It places a request key (cookie value, header, client IP or path) on a
//! server so that every core, every node and every future version agree,
//! and so that adding or removing a server moves only that server's keys.
//!
//! The hash is specified and frozen, because it decides routing: XXH3-64
//! (xxhash-rust; its output is fixed by the XXH3 spec and pinned by golden
//! tests here). Never use `ahash` or `RandomState` in this file.
//! Point `r` of a server is `xxh3_64_with_seed(name, seed = r) >> 32`, for
//! `r` in `0..weight × POINTS_PER_WEIGHT`: keyed by the server NAME, never
//! its position in the list. A key lands on the first point at or after
//! `xxh3_64(key) >> 32`, wrapping around.
//! XXH3 is unkeyed: a client can pick keys that land on one server, but a
//! client that chooses its own key can always do that on any ring; bounded
//! load ([`Ring::pick_bounded`]) is the defence against hot keys.
//!
//! Layout (as Pingora's ketama `Continuum`): one sorted array of compact
//! 8-byte points (position, server index), plus a position index (the first
//! point of each range of top bits) that turns the lookup into one or two
//! reads. A third array makes [`Ring::iter`] yield distinct servers without
//! a bitset or allocation for any group size: `back_gap[j]` is how far
//! point `j` is from the previous point of the same server, so a walk that
//! has gone `d` points knows that server is new exactly when
//! `back_gap[j] > d`.

use std::num::NonZeroU32;

use thiserror::Error;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::round_robin::idx;
use super::{Load, ServerIdx};

/// Points per unit of weight. 160 is ketama's and nginx's `hash consistent`
/// choice. A server's share of keys has a relative spread of about
/// 1/√(160 × weight): 8 % for weight 1, so for weights 1:2:3 about four
/// groups in ten land every share within 5 % (1,024 points would make it
/// nine in ten, at 6× the build time and memory). At 160 a 1,000-server
/// ring is 160k points, about 2.4 MiB with its index, built in about 2 ms.
/// Changing it remaps every key, so it is part of the routing spec.
pub const POINTS_PER_WEIGHT: u32 = 160;

/// Upper bound on points in one ring (12 bytes each plus an index of at
/// most 4 MiB: about 52 MiB), i.e. a group's weights may add up to 26,214.
const MAX_POINTS: u64 = 1 << 22;

/// Why a ring or its bounded-load setting cannot be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RingError {
    #[error("a hash ring needs at least one server")]
    Empty,
    #[error("server name {0:?} appears twice in the group")]
    DuplicateServer(String),
    #[error("weights need {points} ring points, more than the limit of {MAX_POINTS}; use smaller weights")]
    TooManyPoints { points: u64 },
    #[error("balance factor {0} must be a finite number >= 1.0")]
    BalanceFactor(f64),
    #[error("the ring has {ring} servers but the group has {group}")]
    ServerCount { ring: usize, group: usize },
}

/// The `balance_factor` of bounded-load consistent hashing (Mirrokni,
/// Thorup, Zadimoghaddam 2016): no server takes more than
/// `ceil(factor × (in-flight + 1) / usable servers)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BalanceFactor(f64);

impl BalanceFactor {
    /// A finite factor of at least 1.0 (1.25 is a common choice: keys move
    /// only when a server is 25 % above the mean).
    pub fn new(factor: f64) -> Result<Self, RingError> {
        if factor.is_finite() && factor >= 1.0 {
            Ok(Self(factor))
        } else {
            Err(RingError::BalanceFactor(factor))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// Most requests one of `servers` may have in flight once `requests`
    /// are placed. Never below the exact `ceil(requests / servers)`, so
    /// some server always has room.
    fn capacity(self, requests: u64, servers: u64) -> u64 {
        let servers = servers.max(1);
        // Float to int `as` saturates; precision loss only matters near 2^53.
        let scaled = (self.0 * requests as f64 / servers as f64).ceil() as u64;
        scaled.max(requests.div_ceil(servers))
    }
}

/// The hash of a request key, as the ring and every node compute it.
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Position of point `replica` of server `name`. Seeding XXH3 with the
/// replica number hashes each point without building an input buffer
/// (XXH3 is designed and tested for independent outputs across seeds).
fn point_position(name: &str, replica: u32) -> u32 {
    ring_position(xxh3_64_with_seed(name.as_bytes(), u64::from(replica)))
}

/// Position of a 64-bit hash on the 32-bit ring.
fn ring_position(hash: u64) -> u32 {
    // Truncation intended: the ring uses the high half of XXH3-64.
    (hash >> 32) as u32
}

/// One point of the ring: its position in the high half and its server in
/// the low half, so points sort by position (then list order) as integers
/// and a lookup reads one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Point(u64);

impl Point {
    fn new(position: u32, server: ServerIdx) -> Self {
        Self(u64::from(position) << 32 | u64::from(server.0))
    }

    fn position(self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn server(self) -> ServerIdx {
        // Truncation intended: the low half is the server.
        ServerIdx(self.0 as u32)
    }
}

/// Consistent-hash ring of one group; index = [`ServerIdx`] in the list it
/// was built from.
#[derive(Clone, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by position; no two points share a position.
    points: Vec<Point>,
    /// Distance from point `j` back to the previous point of the same
    /// server, wrapping; the ring length when it is that server's only one.
    back_gap: Vec<u32>,
    /// `index[b]` = first point whose position's top `index_bits` bits are
    /// at least `b`; the last entry is the ring length. Two to four points
    /// per slot, so a lookup is one index read and a step or two, instead of
    /// a binary search of ~17 dependent cache misses on a 1,000-server ring.
    index: Vec<u32>,
    index_bits: u32,
    /// Servers in the group the ring was built from.
    server_count: usize,
    /// Servers owning at least one point (all of them, unless every point
    /// of one lost a hash collision: about 2^-5000 for weight 1).
    distinct: usize,
}

impl Ring {
    /// Builds the ring for `servers` (name, weight); `ServerIdx(i)` is
    /// `servers[i]`. The points depend only on the set of names and
    /// weights, never on their order.
    pub fn build(servers: &[(&str, NonZeroU32)]) -> Result<Ring, RingError> {
        if servers.is_empty() {
            return Err(RingError::Empty);
        }
        check_unique(servers)?;
        let total = servers.iter().try_fold(0u64, |sum, (_, w)| {
            let sum = sum + u64::from(w.get()) * u64::from(POINTS_PER_WEIGHT);
            (sum <= MAX_POINTS)
                .then_some(sum)
                .ok_or(RingError::TooManyPoints { points: sum })
        })?;

        let mut points = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for (i, (name, weight)) in servers.iter().enumerate() {
            let replicas = weight.get().saturating_mul(POINTS_PER_WEIGHT);
            points.extend((0..replicas).map(|r| Point::new(point_position(name, r), idx(i))));
        }
        let mut points = sort_points(points);
        // Two servers hashed to one position (a few times in a 1,000-server
        // ring): the smaller name keeps it, whatever the list order.
        points.dedup_by(|later, kept| {
            if later.position() != kept.position() {
                return false;
            }
            if name_of(servers, later.server()) < name_of(servers, kept.server()) {
                *kept = *later;
            }
            true
        });

        let (back_gap, distinct) = back_gaps(&points, servers.len());
        let (index, index_bits) = position_index(&points);
        Ok(Ring {
            points,
            back_gap,
            index,
            index_bits,
            server_count: servers.len(),
            distinct,
        })
    }

    /// Servers in the group the ring was built from.
    pub fn server_count(&self) -> usize {
        self.server_count
    }

    /// Points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Always false for a built ring; here for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The points (position, server) in ring order, for admin views and
    /// golden tests.
    pub fn points(&self) -> impl Iterator<Item = (u32, ServerIdx)> + '_ {
        self.points.iter().map(|p| (p.position(), p.server()))
    }

    /// Every server that owns a point, each once, in ring order from the
    /// successor of `key_hash` (from [`hash_key`]): the first is the key's
    /// home, the rest are where it falls over to.
    pub fn iter(&self, key_hash: u64) -> RingIter<'_> {
        RingIter {
            ring: self,
            at: self.successor(ring_position(key_hash)),
            walked: 0,
            left: self.distinct,
        }
    }

    /// The first usable server from the key's point on.
    pub fn pick(&self, key_hash: u64, usable: impl Fn(ServerIdx) -> bool) -> Option<ServerIdx> {
        self.iter(key_hash).find(|&s| usable(s))
    }

    /// Like [`Ring::pick`], but a server already holding its share of this
    /// core's in-flight requests (see [`BalanceFactor`]) passes the key on
    /// to the next server on the ring. Costs one pass over the group to
    /// count in-flight requests, then usually one or two ring steps.
    pub fn pick_bounded(
        &self,
        key_hash: u64,
        usable: impl Fn(ServerIdx) -> bool,
        outstanding: &(impl Load + ?Sized),
        factor: BalanceFactor,
    ) -> Option<ServerIdx> {
        let (mut in_flight, mut usable_count) = (0u64, 0u64);
        for i in 0..self.server_count {
            if usable(idx(i)) {
                in_flight += u64::from(outstanding.in_flight(idx(i)));
                usable_count += 1;
            }
        }
        if usable_count == 0 {
            return None;
        }
        let capacity = factor.capacity(in_flight + 1, usable_count);
        let mut home = None;
        for s in self.iter(key_hash).filter(|&s| usable(s)) {
            if u64::from(outstanding.in_flight(s)) < capacity {
                return Some(s);
            }
            home.get_or_insert(s);
        }
        // Unreachable while every server owns a point (some usable server
        // is always under capacity); keep the key home rather than fail.
        home
    }

    /// Index of the first point at or after `position`, wrapping to 0.
    fn successor(&self, position: u32) -> usize {
        let slot = (position >> (32 - self.index_bits)) as usize;
        let len = self.points.len();
        let from = self.index.get(slot).map_or(len, |&j| j as usize);
        let to = self.index.get(slot + 1).map_or(len, |&j| j as usize);
        // Every point in the slot shares its top bits with `position`; the
        // successor is in the slot or is the first point after it.
        let within = self
            .points
            .get(from..to)
            .map_or(0, |run| run.partition_point(|p| p.position() < position));
        match from + within {
            j if j >= len => 0,
            j => j,
        }
    }
}

/// A summary: a snapshot printed with `{:?}` must not dump 160k points.
impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("points", &self.points.len())
            .field("server_count", &self.server_count)
            .field("distinct", &self.distinct)
            .finish_non_exhaustive()
    }
}

/// The position index of sorted `points` and its number of bits: two to
/// four points per slot on average (a short scan, and half the memory of
/// one per slot), at most 2^20 slots (4 MiB).
fn position_index(points: &[Point]) -> (Vec<u32>, u32) {
    let bits = points
        .len()
        .checked_ilog2()
        .unwrap_or(0)
        .saturating_sub(1)
        .clamp(1, 20);
    let len = u32::try_from(points.len()).unwrap_or(u32::MAX);
    let mut index = vec![u32::MAX; (1 << bits) + 1];
    // Backwards, so each occupied slot ends with its first point...
    for (j, p) in points.iter().enumerate().rev() {
        if let Some(slot) = index.get_mut((p.position() >> (32 - bits)) as usize) {
            // At most MAX_POINTS, so it fits.
            *slot = u32::try_from(j).unwrap_or(u32::MAX);
        }
    }
    // ...and each empty slot takes the first point after it.
    let mut after = len;
    for slot in index.iter_mut().rev() {
        if *slot == u32::MAX {
            *slot = after;
        }
        after = *slot;
    }
    (index, bits)
}

/// Sorts packed points ascending. Positions are uniform, so one counting
/// pass on the top bits splits them into cache-sized buckets of about 32
/// points, each finished by a small comparison sort: half the time of one
/// big `sort_unstable`, which would otherwise dominate the ring build.
fn sort_points(points: Vec<Point>) -> Vec<Point> {
    let bits = points
        .len()
        .checked_ilog2()
        .unwrap_or(0)
        .saturating_sub(5)
        .clamp(1, 16);
    let bucket = |p: &Point| (p.position() >> (32 - bits)) as usize;
    // starts[b] = first output slot of bucket b; the last entry = len.
    let mut starts = vec![0usize; (1 << bits) + 1];
    for p in &points {
        if let Some(n) = starts.get_mut(bucket(p) + 1) {
            *n += 1;
        }
    }
    let mut sum = 0;
    for n in &mut starts {
        sum += *n;
        *n = sum;
    }
    let mut next = starts.clone();
    let mut sorted = vec![Point(0); points.len()];
    for &p in &points {
        if let Some(slot) = next.get_mut(bucket(&p)) {
            if let Some(out) = sorted.get_mut(*slot) {
                *out = p;
            }
            *slot += 1;
        }
    }
    for range in starts.windows(2) {
        if let [from, to] = *range {
            if let Some(run) = sorted.get_mut(from..to) {
                run.sort_unstable();
            }
        }
    }
    sorted
}

/// Rejects a group naming one server twice: both would claim the same
/// points and the group's tokens would collide too.
fn check_unique(servers: &[(&str, NonZeroU32)]) -> Result<(), RingError> {
    let mut names: Vec<&str> = servers.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    match names.windows(2).find(|pair| pair.first() == pair.last()) {
        Some(pair) => Err(RingError::DuplicateServer(
            pair.first().copied().unwrap_or_default().to_owned(),
        )),
        None => Ok(()),
    }
}

fn name_of<'a>(servers: &[(&'a str, NonZeroU32)], server: ServerIdx) -> &'a str {
    servers.get(server.get()).map_or("", |(name, _)| *name)
}

/// `back_gap` of every point, and how many servers own a point: two
/// passes, the first to learn each server's last point so the second can
/// wrap around the ring.
fn back_gaps(points: &[Point], server_count: usize) -> (Vec<u32>, usize) {
    let len = points.len();
    let mut last: Vec<Option<usize>> = vec![None; server_count];
    for (j, p) in points.iter().enumerate() {
        if let Some(slot) = last.get_mut(p.server().get()) {
            *slot = Some(j);
        }
    }
    let distinct = last.iter().filter(|j| j.is_some()).count();
    let gaps = points
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let Some(Some(prev)) = last.get_mut(p.server().get()) else {
                return 0;
            };
            let gap = if *prev < j {
                j - *prev
            } else {
                j + len - *prev
            };
            *prev = j;
            // At most MAX_POINTS, so it fits.
            u32::try_from(gap).unwrap_or(u32::MAX)
        })
        .collect();
    (gaps, distinct)
}

/// Distinct servers of a [`Ring`] in ring order; see [`Ring::iter`].
#[derive(Clone, Debug)]
pub struct RingIter<'a> {
    ring: &'a Ring,
    /// Next point to look at.
    at: usize,
    /// Points looked at so far.
    walked: usize,
    /// Distinct servers not yet yielded; the walk stops at zero.
    left: usize,
}

impl Iterator for RingIter<'_> {
    type Item = ServerIdx;

    fn next(&mut self) -> Option<ServerIdx> {
        let len = self.ring.points.len();
        while self.left > 0 && self.walked < len {
            let (j, walked) = (self.at, self.walked);
            self.walked += 1;
            self.at = if j + 1 == len { 0 } else { j + 1 };
            let (Some(&gap), Some(point)) = (self.ring.back_gap.get(j), self.ring.points.get(j))
            else {
                return None;
            };
            if gap as usize > walked {
                self.left -= 1;
                return Some(point.server());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
