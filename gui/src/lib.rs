//! Relive desktop app library (placeholder being filled in).
