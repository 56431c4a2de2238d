//! The tests crate's PostgreSQL fixture ([`postgres`]) and tool rule ([`tool`]), included here
//! for the store's unit tests (`RELIVE_TEST_STORE=postgres` runs them on PostgreSQL).

#[path = "../../tests/src/tool.rs"]
#[allow(dead_code, unreachable_pub)] // Shared with the tests crate: not every helper is used here.
pub(crate) mod tool;

#[path = "../../tests/src/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod postgres;
