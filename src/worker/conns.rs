//! The client connections of one worker, by what each is doing, so that at
//! the connection cap limpet closes the connections worth least instead of
//! shutting the newcomer out (issue 17): idle keep-alive connections,
//! oldest idle first, then connections still sending their first request
//! head, oldest first. A connection with a request in flight or a tunnel is
//! never chosen.
//!
//! Entries live in one slab with an intrusive list per phase, ordered by
//! when the connection entered it, so registering, changing phase, choosing
//! a victim and removing are O(1). A chosen connection is told through its
//! [`Conns::shed`] future, which its wait points select on; it closes
//! itself. The table also counts open connections per client address.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::event::LocalEvent;
use super::stats::Shed;

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, its first request head not complete yet.
    FirstHead,
    /// Between requests on a kept-alive connection.
    Idle,
    /// Reading a later head, a request in flight, or a tunnel: never shed.
    Busy,
}

const NIL: u32 = u32::MAX;
/// How often a refusal per address is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A connection's place in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    index: u32,
    generation: u32,
}

struct Entry {
    phase: Phase,
    peer: IpAddr,
    prev: u32,
    next: u32,
    generation: u32,
    live: bool,
    /// Chosen to be closed.
    shed: bool,
    waker: Option<Waker>,
}

/// An intrusive list: oldest at `head`.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// One worker's connections.
pub struct Conns {
    entries: RefCell<Vec<Entry>>,
    free: RefCell<Vec<u32>>,
    /// Lists of [`Phase::FirstHead`] and [`Phase::Idle`] connections.
    lists: RefCell<[List; 2]>,
    /// Connections told to close that have not closed yet.
    shedding: Cell<usize>,
    per_client: RefCell<HashMap<IpAddr, u32>>,
    /// Signalled when a connection turns idle: an accept loop waiting at
    /// the cap may now make room.
    pub sheddable: LocalEvent,
    /// When a refusal of each address was last logged.
    logged: RefCell<HashMap<IpAddr, super::Tick>>,
}

impl Default for Conns {
    fn default() -> Self {
        Conns {
            entries: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            lists: RefCell::new([List::EMPTY; 2]),
            shedding: Cell::new(0),
            per_client: RefCell::new(HashMap::new()),
            sheddable: LocalEvent::default(),
            logged: RefCell::new(HashMap::new()),
        }
    }
}

fn list_of(phase: Phase) -> Option<usize> {
    match phase {
        Phase::FirstHead => Some(0),
        Phase::Idle => Some(1),
        Phase::Busy => None,
    }
}

impl Conns {
    /// Open connections from `peer` on this worker.
    pub fn from_client(&self, peer: IpAddr) -> u32 {
        self.per_client.borrow().get(&peer).copied().unwrap_or(0)
    }

    /// The client address of the connection in `slot`.
    pub fn peer(&self, slot: Slot) -> Option<IpAddr> {
        let entries = self.entries.borrow();
        let e = entries.get(slot.index as usize)?;
        (e.live && e.generation == slot.generation).then_some(e.peer)
    }

    /// Connections told to close that are still open.
    pub fn shedding(&self) -> usize {
        self.shedding.get()
    }

    /// Registers a connection just accepted from `peer`.
    pub fn register(&self, peer: IpAddr) -> Slot {
        *self.per_client.borrow_mut().entry(peer).or_insert(0) += 1;
        let mut entries = self.entries.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(index) => {
                let entry = &mut entries[index as usize];
                entry.phase = Phase::Busy;
                entry.peer = peer;
                entry.live = true;
                entry.shed = false;
                entry.waker = None;
                index
            }
            None => {
                entries.push(Entry {
                    phase: Phase::Busy,
                    peer,
                    prev: NIL,
                    next: NIL,
                    generation: 0,
                    live: true,
                    shed: false,
                    waker: None,
                });
                u32::try_from(entries.len() - 1).unwrap_or(NIL)
            }
        };
        let generation = entries[index as usize].generation;
        drop(entries);
        let slot = Slot { index, generation };
        self.set(slot, Phase::FirstHead);
        slot
    }

    fn valid(&self, slot: Slot) -> bool {
        self.entries
            .borrow()
            .get(slot.index as usize)
            .is_some_and(|e| e.live && e.generation == slot.generation)
    }

    /// Moves a connection to `phase` (to the young end of its list).
    pub fn set(&self, slot: Slot, phase: Phase) {
        if !self.valid(slot) {
            return;
        }
        if phase == Phase::Busy && self.entries.borrow()[slot.index as usize].phase == phase {
            // Busy connections are on no list: nothing to move.
            return;
        }
        self.unlink(slot.index);
        let mut entries = self.entries.borrow_mut();
        entries[slot.index as usize].phase = phase;
        let Some(list) = list_of(phase) else {
            return;
        };
        let mut lists = self.lists.borrow_mut();
        let tail = lists[list].tail;
        entries[slot.index as usize].prev = tail;
        entries[slot.index as usize].next = NIL;
        match tail {
            NIL => lists[list].head = slot.index,
            tail => entries[tail as usize].next = slot.index,
        }
        lists[list].tail = slot.index;
        drop((lists, entries));
        if phase == Phase::Idle {
            self.sheddable.notify_all();
        }
    }

    fn unlink(&self, index: u32) {
        let mut entries = self.entries.borrow_mut();
        let Some(list) = list_of(entries[index as usize].phase) else {
            return;
        };
        let (prev, next) = {
            let e = &entries[index as usize];
            (e.prev, e.next)
        };
        let mut lists = self.lists.borrow_mut();
        match prev {
            NIL => lists[list].head = next,
            prev => entries[prev as usize].next = next,
        }
        match next {
            NIL => lists[list].tail = prev,
            next => entries[next as usize].prev = prev,
        }
        let e = &mut entries[index as usize];
        e.prev = NIL;
        e.next = NIL;
        e.phase = Phase::Busy;
    }

    /// Removes a connection that has closed.
    pub fn remove(&self, slot: Slot) {
        if !self.valid(slot) {
            return;
        }
        self.unlink(slot.index);
        let peer = {
            let mut entries = self.entries.borrow_mut();
            let e = &mut entries[slot.index as usize];
            if e.shed {
                self.shedding.set(self.shedding.get().saturating_sub(1));
            }
            e.live = false;
            e.shed = false;
            e.waker = None;
            e.generation = e.generation.wrapping_add(1);
            e.peer
        };
        self.free.borrow_mut().push(slot.index);
        let mut per_client = self.per_client.borrow_mut();
        if let Some(count) = per_client.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&peer);
            }
        }
    }

    /// Chooses the connection to close to admit a new one, tells it, and
    /// says why it was chosen; `None` when every connection is busy.
    pub fn shed_one(&self) -> Option<Shed> {
        let (index, reason) = {
            let lists = self.lists.borrow();
            match (lists[1].head, lists[0].head) {
                (NIL, NIL) => return None,
                (NIL, first_head) => (first_head, Shed::FirstHead),
                (idle, _) => (idle, Shed::Idle),
            }
        };
        self.unlink(index);
        let waker = {
            let mut entries = self.entries.borrow_mut();
            let e = &mut entries[index as usize];
            e.shed = true;
            e.waker.take()
        };
        self.shedding.set(self.shedding.get() + 1);
        if let Some(waker) = waker {
            waker.wake();
        }
        Some(reason)
    }

    /// Resolves once the connection in `slot` is told to close.
    pub fn shed(&self, slot: Slot) -> ShedSignal<'_> {
        ShedSignal { conns: self, slot }
    }

    /// Whether a refusal of `peer` at `now` should be logged: once per
    /// address per 10 s.
    pub fn should_log(&self, peer: IpAddr, now: super::Tick) -> bool {
        let mut logged = self.logged.borrow_mut();
        if logged.len() > 4096 {
            logged.retain(|_, at| now.saturating_duration_since(*at) < LOG_EVERY);
        }
        match logged.get(&peer) {
            Some(at) if now.saturating_duration_since(*at) < LOG_EVERY => false,
            _ => {
                logged.insert(peer, now);
                true
            }
        }
    }
}

/// See [`Conns::shed`].
pub struct ShedSignal<'a> {
    conns: &'a Conns,
    slot: Slot,
}

impl Future for ShedSignal<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut entries = self.conns.entries.borrow_mut();
        let Some(e) = entries
            .get_mut(self.slot.index as usize)
            .filter(|e| e.live && e.generation == self.slot.generation)
        else {
            return Poll::Pending;
        };
        if e.shed {
            return Poll::Ready(());
        }
        match &e.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => e.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn idle_goes_first_oldest_first_then_first_heads_and_never_busy() {
        let conns = Conns::default();
        let slow = conns.register(ip(2)); // still on its first head
        let busy = conns.register(ip(3));
        conns.set(busy, Phase::Busy);
        let idle_old = conns.register(ip(4));
        conns.set(idle_old, Phase::Idle);
        let idle_new = conns.register(ip(5));
        conns.set(idle_new, Phase::Idle);
        assert_eq!(conns.shed_one(), Some(Shed::Idle));
        assert_eq!(conns.shed_one(), Some(Shed::Idle));
        assert_eq!(conns.shed_one(), Some(Shed::FirstHead));
        assert_eq!(conns.shed_one(), None, "the busy one stays");
        assert_eq!(conns.shedding(), 3);
        // The first chosen was the oldest idle one.
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for (slot, told) in [
            (idle_old, true),
            (idle_new, true),
            (slow, true),
            (busy, false),
        ] {
            let mut signal = conns.shed(slot);
            assert_eq!(Pin::new(&mut signal).poll(&mut cx).is_ready(), told);
        }
        for slot in [idle_old, idle_new, slow, busy] {
            conns.remove(slot);
        }
        assert_eq!(conns.shedding(), 0);
        assert_eq!(conns.from_client(ip(2)), 0);
    }

    #[test]
    fn a_connection_that_turns_idle_again_goes_to_the_young_end() {
        let conns = Conns::default();
        let a = conns.register(ip(2));
        conns.set(a, Phase::Idle);
        let b = conns.register(ip(2));
        conns.set(b, Phase::Idle);
        assert_eq!(conns.from_client(ip(2)), 2);
        // a serves a request and is idle again: b is now the oldest idle.
        conns.set(a, Phase::Busy);
        conns.set(a, Phase::Idle);
        assert_eq!(conns.shed_one(), Some(Shed::Idle));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut conns.shed(b)).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut conns.shed(a)).poll(&mut cx).is_pending());
        conns.remove(b);
        // A stale slot changes nothing.
        conns.set(b, Phase::Idle);
        assert_eq!(conns.shed_one(), Some(Shed::Idle));
        assert_eq!(conns.from_client(ip(2)), 1);
    }

    #[test]
    fn refusals_are_logged_once_per_address_per_ten_seconds() {
        let conns = Conns::default();
        let now = super::super::Tick::read();
        assert!(conns.should_log(ip(9), now));
        assert!(!conns.should_log(ip(9), now + Duration::from_secs(9)));
        assert!(conns.should_log(ip(8), now));
        assert!(conns.should_log(ip(9), now + Duration::from_secs(10)));
    }
}
