//! Deadlines for one worker thread: a hashed timing wheel with O(1)
//! registration and O(1) removal.
//!
//! Every request runs a few deadlines (head, body, backend connect and
//! response, keep-alive idle) and nearly all of them are cancelled long
//! before they fall due. A monoio `Sleep` is 640 bytes that every future
//! holding it carries and moves; here a [`Deadline`] is 16 bytes, and the
//! wheel keeps its entries in one slab with intrusive lists per slot, so a
//! cancelled deadline unlinks itself at once and leaves nothing behind.
//!
//! Resolution is one [`TICK`]: a deadline fires between its limit and its
//! limit plus about two ticks, never before. The wheel is per thread (each
//! worker is one thread); its ticker task runs only while deadlines are
//! pending, and is started by the first one.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::clock::Tick;

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(10);
const TICK_NANOS: u64 = TICK.as_nanos() as u64;
#[cfg(test)]
const TICKS_PER_SECOND: u64 = 1_000_000_000 / TICK_NANOS;
/// Slots per turn of the wheel (2.56 s); later deadlines stay in their slot
/// for more turns.
const SLOTS: usize = 256;
const NIL: u32 = u32::MAX;

struct Entry {
    due: u64,
    prev: u32,
    /// The next entry of the slot's list, or of the free list.
    next: u32,
    /// Bumped each time the entry is freed, so that a stale [`Deadline`]
    /// cannot remove the entry's next owner.
    generation: u32,
    waker: Option<Waker>,
}

/// The deadlines of one thread.
pub struct Wheel {
    epoch: Cell<Option<Tick>>,
    /// The last tick the wheel has passed: deadlines due at or before it
    /// have fired.
    passed: Cell<u64>,
    live: Cell<usize>,
    ticking: Cell<bool>,
    entries: RefCell<Vec<Entry>>,
    free: Cell<u32>,
    heads: RefCell<Vec<u32>>,
    /// Wakers of one `advance`, woken once no borrow is held.
    due: RefCell<Vec<Waker>>,
}

impl Wheel {
    const fn new() -> Self {
        Wheel {
            epoch: Cell::new(None),
            passed: Cell::new(0),
            live: Cell::new(0),
            ticking: Cell::new(false),
            entries: RefCell::new(Vec::new()),
            free: Cell::new(NIL),
            heads: RefCell::new(Vec::new()),
            due: RefCell::new(Vec::new()),
        }
    }

    fn tick_of(&self, at: Tick) -> u64 {
        let Some(epoch) = self.epoch.get() else {
            return 0;
        };
        at.nanos_since(epoch) / TICK_NANOS
    }

    /// The first tick at which a deadline of `limit` from `now` has passed
    /// for certain: the tick `now + limit` falls in, plus one. The first
    /// deadline of the thread starts its clock.
    fn due_tick(&self, now: Tick, limit: Duration) -> u64 {
        let epoch = match self.epoch.get() {
            Some(epoch) => epoch,
            None => {
                self.epoch.set(Some(now));
                now
            }
        };
        // (elapsed + limit) / TICK in 64-bit integers: no 128-bit division.
        (now + limit).nanos_since(epoch) / TICK_NANOS + 1
    }

    fn insert(&self, due: u64, waker: Waker) -> (u32, u32) {
        let mut entries = self.entries.borrow_mut();
        let mut heads = self.heads.borrow_mut();
        if heads.is_empty() {
            heads.resize(SLOTS, NIL);
        }
        let slot = (due % SLOTS as u64) as usize;
        let head = heads[slot];
        let index = match self.free.get() {
            NIL => {
                let index = u32::try_from(entries.len()).unwrap_or(NIL);
                entries.push(Entry {
                    due,
                    prev: NIL,
                    next: head,
                    generation: 0,
                    waker: Some(waker),
                });
                index
            }
            index => {
                let entry = &mut entries[index as usize];
                self.free.set(entry.next);
                entry.due = due;
                entry.prev = NIL;
                entry.next = head;
                entry.waker = Some(waker);
                index
            }
        };
        if head != NIL {
            entries[head as usize].prev = index;
        }
        heads[slot] = index;
        self.live.set(self.live.get() + 1);
        (index, entries[index as usize].generation)
    }

    /// Unlinks and frees entry `index`, returning its waker.
    fn unlink(&self, entries: &mut [Entry], heads: &mut [u32], index: u32) -> Option<Waker> {
        let (prev, next, due) = {
            let entry = &entries[index as usize];
            (entry.prev, entry.next, entry.due)
        };
        if prev == NIL {
            heads[(due % SLOTS as u64) as usize] = next;
        } else {
            entries[prev as usize].next = next;
        }
        if next != NIL {
            entries[next as usize].prev = prev;
        }
        let entry = &mut entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free.get();
        self.free.set(index);
        self.live.set(self.live.get() - 1);
        entry.waker.take()
    }

    fn remove(&self, index: u32, generation: u32) {
        let mut entries = self.entries.borrow_mut();
        if entries.get(index as usize).map(|e| e.generation) != Some(generation) {
            return; // fired already
        }
        let waker = self.unlink(&mut entries, &mut self.heads.borrow_mut(), index);
        drop(entries);
        drop(waker);
    }

    fn set_waker(&self, index: u32, generation: u32, waker: &Waker) {
        let mut entries = self.entries.borrow_mut();
        if let Some(entry) = entries.get_mut(index as usize) {
            if entry.generation == generation
                && !entry.waker.as_ref().is_some_and(|w| w.will_wake(waker))
            {
                entry.waker = Some(waker.clone());
            }
        }
    }

    /// Fires every deadline due by `now`.
    fn advance(&self, now: Tick) {
        let now = self.tick_of(now);
        let passed = self.passed.get();
        if now <= passed {
            return;
        }
        {
            let mut entries = self.entries.borrow_mut();
            let mut heads = self.heads.borrow_mut();
            let mut due = self.due.borrow_mut();
            if !heads.is_empty() {
                let turns = (now - passed).min(SLOTS as u64);
                for tick in passed + 1..=passed + turns {
                    let mut index = heads[(tick % SLOTS as u64) as usize];
                    while index != NIL {
                        let (next, due_at) = {
                            let entry = &entries[index as usize];
                            (entry.next, entry.due)
                        };
                        if due_at <= now {
                            due.extend(self.unlink(&mut entries, &mut heads, index));
                        }
                        index = next;
                    }
                }
            }
            self.passed.set(now);
        }
        let mut due = std::mem::take(&mut *self.due.borrow_mut());
        for waker in due.drain(..) {
            waker.wake();
        }
        *self.due.borrow_mut() = due;
    }

    /// Deadlines registered and not yet fired or dropped.
    pub fn pending(&self) -> usize {
        self.live.get()
    }
}

impl Drop for Wheel {
    fn drop(&mut self) {
        // At thread exit: the wakers belong to tasks of a runtime that is
        // gone, and dropping the last one would drop its task here, after
        // monoio's own thread-locals. Leave them, as monoio leaves its
        // parked tasks.
        std::mem::forget(std::mem::take(self.entries.get_mut()));
    }
}

thread_local! {
    static WHEEL: Wheel = const { Wheel::new() };
}

/// This thread's deadlines registered and not yet fired or dropped.
pub fn pending() -> usize {
    WHEEL.with(Wheel::pending)
}

/// Resolves once `limit` has passed (late by up to about two ticks).
pub fn after(limit: Duration) -> Deadline {
    let due = WHEEL.with(|wheel| wheel.due_tick(super::clock::now(), limit));
    Deadline {
        due,
        index: NIL,
        generation: 0,
    }
}

/// Runs `future` with a deadline of `limit`; `Err(Elapsed)` once it passed.
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        deadline: after(limit),
    }
}

/// Advances this thread's wheel every tick while deadlines are pending.
async fn tick() {
    loop {
        monoio::time::sleep(TICK).await;
        let idle = WHEEL.with(|wheel| {
            wheel.advance(Tick::read());
            let idle = wheel.pending() == 0;
            if idle {
                wheel.ticking.set(false);
            }
            idle
        });
        if idle {
            return;
        }
    }
}

/// The future returned by [`after`]: 16 bytes, registered when first
/// polled, removed from the wheel when dropped.
#[derive(Debug)]
pub struct Deadline {
    due: u64,
    index: u32,
    generation: u32,
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        WHEEL.with(|wheel| {
            if wheel.passed.get() >= this.due {
                this.index = NIL;
                return Poll::Ready(());
            }
            if this.index == NIL {
                (this.index, this.generation) = wheel.insert(this.due, cx.waker().clone());
                if !wheel.ticking.get() {
                    wheel.ticking.set(true);
                    monoio::spawn(tick());
                }
            } else {
                wheel.set_waker(this.index, this.generation, cx.waker());
            }
            Poll::Pending
        })
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if self.index != NIL {
            // After thread-local destruction there is nothing to remove from.
            let _ = WHEEL.try_with(|wheel| wheel.remove(self.index, self.generation));
        }
    }
}

/// A deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// The future returned by [`timeout`].
    pub struct Timeout<F> {
        #[pin]
        future: F,
        deadline: Deadline,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.future.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match Pin::new(this.deadline).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn waker() -> Waker {
        futures_util::task::noop_waker()
    }

    #[test]
    fn entries_fire_at_their_tick_across_turns_and_leave_nothing() {
        let wheel = Wheel::new();
        let start = Tick::read();
        let near = wheel.due_tick(start, Duration::from_millis(25));
        let far = wheel.due_tick(start, TICK * (SLOTS as u32 * 3 + 7));
        let (a, _) = wheel.insert(near, waker());
        let (b, _) = wheel.insert(far, waker());
        let (c, gc) = wheel.insert(near, waker());
        wheel.remove(c, gc);
        assert_eq!(wheel.pending(), 2);
        wheel.advance(start + Duration::from_millis(20));
        assert_eq!(wheel.pending(), 2, "not before its limit");
        wheel.advance(start + Duration::from_millis(45));
        assert_eq!(wheel.pending(), 1, "the near one fired");
        assert_ne!(wheel.entries.borrow()[a as usize].generation, 0);
        // Turns pass; the far one stays until its own tick.
        wheel.advance(start + TICK * (SLOTS as u32 * 3));
        assert_eq!(wheel.pending(), 1);
        wheel.advance(start + TICK * (SLOTS as u32 * 3 + 9));
        assert_eq!(wheel.pending(), 0);
        assert!(wheel.entries.borrow()[b as usize].waker.is_none());
        // Freed entries are reused.
        let (again, _) = wheel.insert(wheel.due_tick(start, TICK), waker());
        assert!(again <= 2);
        assert_eq!(wheel.entries.borrow().len(), 3);
    }

    #[test]
    fn tick_arithmetic_matches_durations() {
        assert_eq!(
            TICKS_PER_SECOND * TICK_NANOS,
            1_000_000_000,
            "TICK divides a second"
        );
        let wheel = Wheel::new();
        let start = Tick::read();
        assert_eq!(wheel.due_tick(start, Duration::ZERO), 1);
        let later = start + Duration::from_millis(995);
        // 995 ms + 1.01 s = 2.005 s: tick 200, due at 201.
        assert_eq!(wheel.due_tick(later, Duration::from_millis(1010)), 201);
        assert_eq!(wheel.tick_of(later + Duration::from_millis(1010)), 200);
    }

    #[test]
    fn a_stale_handle_cannot_remove_the_next_owner() {
        let wheel = Wheel::new();
        let now = Tick::read();
        let (index, generation) = wheel.insert(wheel.due_tick(now, TICK), waker());
        wheel.remove(index, generation);
        let (reused, _) = wheel.insert(wheel.due_tick(now, TICK), waker());
        assert_eq!(reused, index);
        wheel.remove(index, generation);
        assert_eq!(wheel.pending(), 1, "the old handle's remove was a no-op");
    }

    #[test]
    fn deadlines_fire_after_their_limit_and_dropped_ones_deregister() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let start = Instant::now();
            after(Duration::from_millis(120)).await;
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(120), "{waited:?}");
            assert!(
                waited < Duration::from_millis(120) + 10 * TICK,
                "{waited:?}"
            );
            assert_eq!(pending(), 0);

            let slow = timeout(Duration::from_millis(30), after(Duration::from_secs(60)));
            assert_eq!(slow.await, Err(Elapsed));
            assert_eq!(pending(), 0, "the inner deadline was dropped with it");
            let quick = timeout(Duration::from_secs(60), async { 7 });
            assert_eq!(quick.await, Ok(7));
            assert_eq!(pending(), 0);
        });
        assert!(std::mem::size_of::<Deadline>() <= 16);
    }
}
