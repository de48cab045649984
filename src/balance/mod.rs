//! Balancing: choose a server of one group for a request that no sticky
//! cookie has already placed. It owns the per-core balancer state (smooth
//! weighted round robin counters, the random-two generator) and the
//! consistent-hash ring shared read-only by every core.
//!
//! Everything here is pure: no I/O, no clock, no lock, no allocation per pick.
//! It must never decide routing with a hash whose output can change between
//! CPUs, builds or versions (see `ring.rs`), and never address a server by
//! anything but its [`ServerIdx`] in the group's server list.

mod least_outstanding;
mod picker;
mod random_two;
mod ring;
mod round_robin;

pub use least_outstanding::LeastOutstanding;
pub use picker::{HashPick, Picker};
pub use random_two::RandomTwo;
pub use ring::{hash_key, BalanceFactor, Ring, RingError, RingIter, POINTS_PER_WEIGHT};
pub use round_robin::RoundRobin;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerIdx(pub u32);
impl ServerIdx {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// In-flight count of `server` in this core's view; a count the caller did
/// not supply reads as idle rather than panicking on a short slice.
fn outstanding_of(outstanding: &[u32], server: usize) -> u32 {
    outstanding.get(server).copied().unwrap_or(0)
}
