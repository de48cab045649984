//! A one-thread wake-up: tasks wait until another task on the same worker
//! says something changed (a connection slot freed, shutdown began).
//! No atomics and no locks: it never crosses threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Tasks park on it; `notify_all` wakes every one of them.
#[derive(Default)]
pub struct LocalEvent {
    version: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl LocalEvent {
    /// Wakes every task waiting now.
    pub fn notify_all(&self) {
        self.version.set(self.version.get().wrapping_add(1));
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            seen: self.version.get(),
        }
    }
}

/// The future returned by [`LocalEvent::wait`].
pub struct Wait<'a> {
    event: &'a LocalEvent,
    seen: u64,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.version.get() != self.seen {
            return Poll::Ready(());
        }
        let mut waiters = self.event.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
