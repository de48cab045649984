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

/// This core's requests in flight per server, as the balancers read them:
/// a plain slice in tests and benches, the per-server live state on a
/// worker. A server the source does not know reads as idle.
pub trait Load {
    fn in_flight(&self, server: ServerIdx) -> u32;
}

impl Load for [u32] {
    fn in_flight(&self, server: ServerIdx) -> u32 {
        self.get(server.get()).copied().unwrap_or(0)
    }
}

impl<const N: usize> Load for [u32; N] {
    fn in_flight(&self, server: ServerIdx) -> u32 {
        self[..].in_flight(server)
    }
}

impl Load for Vec<u32> {
    fn in_flight(&self, server: ServerIdx) -> u32 {
        self[..].in_flight(server)
    }
}
