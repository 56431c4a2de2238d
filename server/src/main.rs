//! `relive-server` binary (placeholder being filled in).
fn main() {}
