//! Sans-IO MSNP core (placeholder being filled in).
