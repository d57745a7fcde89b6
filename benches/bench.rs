//! The `make bench` harness (filled in below the foundation commit).
fn main() {}
