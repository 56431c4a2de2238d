//! Test harness for end-to-end Relive tests (placeholder being filled in).
