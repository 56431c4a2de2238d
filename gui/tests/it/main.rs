//! Integration tests of `relive-gui`, one test binary (STYLE §2.8).
//!
//! - `companion`: the real worker's companion agent against a real relay hub over QUIC.
//! - `worker`: the real worker thread and reducer on fixture files, no window.
//! - `screenshot`: the built app under Xvfb, captured with ImageMagick.
//! - `windows`: the Windows build of `relive-patch`, run under wine on a fixture.
//! - `tool`: the rule for tests that need a system tool (fail in CI, skip elsewhere), shared
//!   with the other crates' tests.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns too (STYLE §2.2)

mod companion;
/// The release builds and wine helpers shared with the end-to-end tests.
#[path = "../../../tests/src/dist.rs"]
#[allow(dead_code, unreachable_pub)]
mod dist;
mod fixture;
mod screenshot;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/tool.rs"]
mod tool;
mod windows;
mod worker;
