//! Relive relay library (placeholder being filled in).
