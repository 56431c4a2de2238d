//! Relive server library (placeholder being filled in).
