//! The per-core pool of I/O buffers.
//!
//! io_uring reads into memory the kernel owns until the operation completes,
//! so buffers move into each read and come back with its result ("rent").
//! A connection takes a buffer only while it has bytes to hold: an idle
//! keep-alive connection gives its buffer back and waits for readability
//! without one, which keeps idle connections cheap (DESIGN.md).

use std::cell::RefCell;

/// Free buffers of one size, owned by one worker.
pub struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
    size: usize,
    keep: usize,
}

impl BufferPool {
    /// A pool of `size`-byte buffers that keeps at most `keep` free ones.
    pub fn new(size: usize, keep: usize) -> Self {
        BufferPool {
            free: RefCell::new(Vec::new()),
            size,
            keep,
        }
    }

    /// An empty buffer with capacity for `size()` bytes.
    pub fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Returns a buffer; one that grew past twice the pool size (a head
    /// written with many extra headers) is freed instead of kept.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() < self.size || buf.capacity() > 2 * self.size {
            return;
        }
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep {
            buf.clear();
            free.push(buf);
        }
    }

    /// How many free buffers the pool holds now.
    pub fn free_count(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        let pool = BufferPool::new(4096, 1);
        let mut a = pool.take();
        assert_eq!(a.capacity(), 4096);
        a.extend_from_slice(b"data");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr, "the freed buffer is handed out again");
        assert!(b.is_empty());
        pool.give(b);
        pool.give(Vec::with_capacity(4096));
        assert_eq!(pool.free_count(), 1, "keeps at most `keep` buffers");
        pool.give(pool.take());
        pool.give(Vec::with_capacity(64 * 1024));
        assert_eq!(pool.free_count(), 1, "oversized buffers are freed");
    }
}
