//! Relive patcher library (placeholder being filled in).
