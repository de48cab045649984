//! limpet: a thread-per-core HTTP/1.1 load balancer with session persistence.
//!
//! The request path lives in [`proxy`] and runs on one pinned [`worker`] per
//! core, each with its own io_uring event loop, listening sockets, backend
//! pool and counters. Everything the workers share arrives from the
//! [`control`] thread as an immutable [`control::Snapshot`]; nothing on the
//! request path takes a lock. [`http`], [`sticky`] and [`balance`] are pure
//! code over bytes and indices, with no I/O, so they are unit-tested,
//! benchmarked and fuzzed in isolation.

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod demo;
pub mod dns;
pub mod error;
pub mod http;
pub mod logging;
pub mod net;
pub mod proxy;
pub mod server;
pub mod sticky;
pub mod worker;
