//! Behaviour tests of the patcher on fixtures built from our own C sources.
//!
//! One test binary (fixtures are built once per run and shared). Modules:
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

/// Every catalog build from MSN 5.0 to 7.5 synthesized, and MSN 7.5 with its msidcrl.dll.
mod catalog;
/// Installed-client executables: patch, run under wine64, idempotency, restore, PE32 statically.
mod executable;
/// Building the fixtures (mingw-w64, windres, gcab, wixl, osslsigncode) once.
mod fixtures;
/// Inputs the fuzzer (`fuzz/`, target `patcher`) once crashed on: now an error or a result.
mod fuzz_regressions;
/// Installers: IExpress-like self-extractor and MSI.
mod installer;
/// Opening a file as the GUI does: every PE parsed once, nothing logged.
mod open;
/// Random and truncated inputs never panic.
mod props;
/// The rule for tests that need a system tool (fail in CI, skip elsewhere), shared with the
/// other crates' tests.
#[allow(dead_code)]
#[path = "../../../tests/src/tool.rs"]
mod tool;
/// Wine prefix and runner, plus the loopback NS/HTTP listeners the fake client talks to.
mod wine;
