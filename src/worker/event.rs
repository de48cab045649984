//! A one-thread wake-up: tasks wait until another task on the same worker
//! says something changed (a connection slot freed, shutdown began).
//! No atomics and no locks: it never crosses threads.
//!
//! Each waiting future owns one slot of the event's waker list from its
//! first poll until it is dropped, so a wait given up (a connection that
//! closed while listening for shutdown) leaves no waker behind, and with
//! it no task kept alive.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Tasks park on it; `notify_all` wakes every one of them.
#[derive(Default)]
pub struct LocalEvent {
    version: Cell<u64>,
    waiters: RefCell<Waiters>,
}

#[derive(Default)]
struct Waiters {
    /// One slot per waiting future; `None` once woken (the slot stays its
    /// future's until it is dropped) or while free.
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// Slots holding a waker: `notify_all` with none does nothing.
    armed: usize,
}

impl LocalEvent {
    /// Wakes every task waiting now.
    pub fn notify_all(&self) {
        self.version.set(self.version.get().wrapping_add(1));
        let mut waiters = self.waiters.borrow_mut();
        if waiters.armed == 0 {
            return;
        }
        waiters.armed = 0;
        for waker in waiters.slots.iter_mut().filter_map(Option::take) {
            waker.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            seen: self.version.get(),
            slot: None,
        }
    }

    /// Wakers registered and not yet woken or dropped.
    #[cfg(test)]
    fn armed(&self) -> usize {
        self.waiters.borrow().armed
    }
}

/// The future returned by [`LocalEvent::wait`].
pub struct Wait<'a> {
    event: &'a LocalEvent,
    seen: u64,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.event.version.get() != this.seen {
            return Poll::Ready(());
        }
        let mut waiters = this.event.waiters.borrow_mut();
        let waiters = &mut *waiters;
        let slot = *this.slot.get_or_insert_with(|| match waiters.free.pop() {
            Some(slot) => slot,
            None => {
                waiters.slots.push(None);
                waiters.slots.len() - 1
            }
        });
        match &mut waiters.slots[slot] {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            empty => {
                *empty = Some(cx.waker().clone());
                waiters.armed += 1;
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot else {
            return;
        };
        let mut waiters = self.event.waiters.borrow_mut();
        if waiters.slots[slot].take().is_some() {
            waiters.armed -= 1;
        }
        waiters.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once(wait: &mut Wait<'_>) -> Poll<()> {
        let waker = futures_util::task::noop_waker();
        Pin::new(wait).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_dropped_wait_leaves_no_waker_and_its_slot_is_reused() {
        let event = LocalEvent::default();
        for _ in 0..1000 {
            let mut wait = event.wait();
            assert_eq!(poll_once(&mut wait), Poll::Pending);
            assert_eq!(event.armed(), 1);
            assert_eq!(poll_once(&mut wait), Poll::Pending, "polled again");
            assert_eq!(event.armed(), 1, "one waker per wait, however often polled");
        }
        assert_eq!(event.armed(), 0, "every dropped wait took its waker");
        assert_eq!(event.waiters.borrow().slots.len(), 1, "one slot, reused");
    }

    #[test]
    fn notify_all_wakes_every_waiter_once_and_later_waits_wait_again() {
        let event = LocalEvent::default();
        let mut a = event.wait();
        let mut b = event.wait();
        assert_eq!(poll_once(&mut a), Poll::Pending);
        assert_eq!(poll_once(&mut b), Poll::Pending);
        event.notify_all();
        assert_eq!(event.armed(), 0);
        assert_eq!(poll_once(&mut a), Poll::Ready(()));
        assert_eq!(poll_once(&mut b), Poll::Ready(()));
        let mut c = event.wait();
        assert_eq!(
            poll_once(&mut c),
            Poll::Pending,
            "a wait after the notify waits"
        );
        drop((a, b));
        assert_eq!(event.armed(), 1);
        event.notify_all();
        assert_eq!(poll_once(&mut c), Poll::Ready(()));
    }
}
