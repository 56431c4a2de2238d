//! End-to-end tests (placeholder being filled in).
