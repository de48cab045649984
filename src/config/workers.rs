//! `Workers`: how many worker threads, on which CPUs, with how much io_uring
//! queue and buffer memory. Validation only; it never looks at the machine
//! (which CPUs exist is checked when pinning).

use std::num::NonZeroUsize;

use super::error::ConfigError;
use super::raw;
use super::source::{KeyPath, Source};

/// Highest CPU number `sched_setaffinity` can take (`CPU_SETSIZE` is 1024).
const MAX_CPU: i64 = 1023;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workers {
    /// `None`: one worker per CPU the process may run on.
    pub count: Option<NonZeroUsize>,
    /// `None`: the CPUs the process may run on. Never empty, no duplicates.
    pub cpus: Option<Vec<usize>>,
    /// io_uring submission queue entries (the kernel rounds up to a power of two).
    pub uring_entries: u32,
    /// Size of one pooled I/O buffer; a request head must fit in one.
    pub buffer_bytes: usize,
    /// Free buffers each worker keeps for reuse.
    pub pool_buffers: usize,
    /// A plain HTTP/1 response body (`Content-Length`, plain TCP on both
    /// sides) with at least this many bytes left after its first read is
    /// relayed with `splice(2)` through a pipe instead of through a
    /// buffer; 0: never.
    pub splice_min_bytes: u64,
    /// Which event-loop drivers a worker may use.
    pub driver: Driver,
}

/// `workers.driver`: `"auto"` tries io_uring (single issuer + deferred task
/// run, then default flags) and falls back to epoll; `"epoll"` uses epoll
/// only, for tools that cannot follow io_uring (valgrind's callgrind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Driver {
    #[default]
    Auto,
    Epoll,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            count: None,
            cpus: None,
            uring_entries: raw::URING_ENTRIES,
            buffer_bytes: raw::BUFFER_BYTES,
            pool_buffers: raw::POOL_BUFFERS,
            splice_min_bytes: raw::SPLICE_MIN_BYTES,
            driver: Driver::Auto,
        }
    }
}

impl Workers {
    pub(super) fn build(src: &Source<'_>, raw: &raw::Workers) -> Result<Self, ConfigError> {
        let at = KeyPath::root("workers");
        let count: Option<usize> = match &raw.count {
            Some(_) => Some(src.int(raw.count.as_ref(), 0, 1..=MAX_CPU + 1, &at.key("count"))?),
            None => None,
        };
        let cpus = match &raw.cpus {
            Some(cpus) => Some(build_cpus(src, cpus, &at.key("cpus"))?),
            None => None,
        };
        if let (Some(count), Some(cpus), Some(written)) = (count, &cpus, &raw.count) {
            if count != cpus.len() {
                let problem = format!("is {count} but workers.cpus lists {} CPUs", cpus.len());
                return Err(src.at(written, at.key("count"), problem));
            }
        }
        Ok(Self {
            count: count.and_then(NonZeroUsize::new),
            cpus,
            uring_entries: src.int(
                raw.uring_entries.as_ref(),
                raw::URING_ENTRIES,
                256..=32_768,
                &at.key("uring_entries"),
            )?,
            buffer_bytes: src.int(
                raw.buffer_bytes.as_ref(),
                raw::BUFFER_BYTES,
                4096..=1024 * 1024,
                &at.key("buffer_bytes"),
            )?,
            pool_buffers: src.int(
                raw.pool_buffers.as_ref(),
                raw::POOL_BUFFERS,
                0..=1024 * 1024,
                &at.key("pool_buffers"),
            )?,
            splice_min_bytes: src.int(
                raw.splice_min_bytes.as_ref(),
                raw::SPLICE_MIN_BYTES,
                0..=1 << 40,
                &at.key("splice_min_bytes"),
            )?,
            driver: match &raw.driver {
                None => Driver::Auto,
                Some(written) => match written.get_ref().as_str() {
                    "auto" => Driver::Auto,
                    "epoll" => Driver::Epoll,
                    other => {
                        let problem = format!("is `{other}`; expected \"auto\" or \"epoll\"");
                        return Err(src.at(written, at.key("driver"), problem));
                    }
                },
            },
        })
    }
}

fn build_cpus(
    src: &Source<'_>,
    cpus: &toml::Spanned<Vec<toml::Spanned<i64>>>,
    at: &KeyPath,
) -> Result<Vec<usize>, ConfigError> {
    if cpus.get_ref().is_empty() {
        return Err(src.at(cpus, at, "must list at least one CPU"));
    }
    let mut out: Vec<usize> = Vec::with_capacity(cpus.get_ref().len());
    for (i, cpu) in cpus.get_ref().iter().enumerate() {
        let number: usize = src.int(Some(cpu), 0, 0..=MAX_CPU, &at.index(i))?;
        if out.contains(&number) {
            return Err(src.at(cpu, at.index(i), format_args!("repeats CPU {number}")));
        }
        out.push(number);
    }
    Ok(out)
}
