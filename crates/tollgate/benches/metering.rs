//! Metering benchmarks.
fn main() {}
