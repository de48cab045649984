//! Helpers shared by the unit tests of `sticky` (test builds only).

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// A property-test runner with a fixed seed, so every run and every machine
/// tries the same cases, and no regression files are written.
pub(crate) fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}
