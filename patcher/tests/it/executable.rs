//! Installed-client executables.

use relive_patcher::scan::{Encoding, Endpoint};
use relive_patcher::{FileKind, PatchError, Target, inspect, patch_file, plan, restore_file};

use crate::fixtures;
use crate::wine::{self, Loopback, scratch};

#[test]
fn inspect_reports_every_endpoint() {
    let Some(fx) = fixtures::get() else {
        return;
    };
    let data = std::fs::read(&fx.client64_signed).unwrap();
    let report = inspect(&data).unwrap();
    assert_eq!(report.kind, FileKind::Executable);
    let pe = &report.files[0];
    assert!(pe.is_64 && pe.signed);
    assert_eq!(
        pe.version.map(|v| (v.major, v.minor, v.build)),
        Some((0, 9, 1))
    );
    let found: Vec<(&str, Encoding)> = pe.hits.iter().map(|h| (h.host, h.encoding)).collect();
    for want in [
        ("messenger.hotmail.com", Encoding::Ascii),
        ("messenger.hotmail.com", Encoding::Utf16Le),
        ("gateway.messenger.hotmail.com", Encoding::Ascii),
        ("nexus.passport.com", Encoding::Ascii),
        ("config.messenger.msn.com", Encoding::Utf16Le),
    ] {
        assert!(found.contains(&want), "{want:?} not in {found:?}");
    }
    // Whole tokens only: the NS host inside the gateway host is not a separate hit.
    assert_eq!(
        pe.hits
            .iter()
            .filter(|h| h.endpoint == Endpoint::NotificationServer)
            .count(),
        2
    );
    let nexus = pe
        .hits
        .iter()
        .find(|h| h.endpoint == Endpoint::Nexus)
        .unwrap();
    assert_eq!(nexus.string, "https://nexus.passport.com/rdr/pprdr.asp");
    assert_eq!(nexus.section, ".rdata");
}

#[test]
fn patched_pe32plus_talks_to_loopback_under_wine() {
    let Some(fx) = fixtures::with_wine() else {
        return;
    };
    let lb = Loopback::start();
    let dir = scratch();
    let exe = dir.path().join("msnmsgr.exe");
    std::fs::copy(&fx.client64_signed, &exe).unwrap();
    let original = std::fs::read(&exe).unwrap();

    let report = patch_file(&exe, &lb.target(), None, &mut |_| {}).unwrap();
    assert!(report.changed && report.signature_removed);
    assert_eq!(
        std::fs::read(report.backup.as_ref().unwrap()).unwrap(),
        original
    );
    let patched = std::fs::read(&exe).unwrap();
    let after = inspect(&patched).unwrap();
    assert!(after.files[0].hits.is_empty(), "{:?}", after.files[0].hits);
    assert!(after.files[0].checksum_ok && !after.files[0].signed);

    let out = wine::run(&exe, &[], &[("RELIVE_NS_PORT", lb.ns_port.to_string())]);
    wine::assert_client_talked(&out, &lb);

    // Idempotent: the same server again changes nothing.
    let again = patch_file(&exe, &lb.target(), None, &mut |_| {}).unwrap();
    assert!(!again.changed);
    assert!(again.plan.files[0].already_patched);
    assert_eq!(std::fs::read(&exe).unwrap(), patched);

    // Restore puts the signed original back.
    restore_file(&exe).unwrap();
    assert_eq!(std::fs::read(&exe).unwrap(), original);
    assert!(matches!(
        restore_file(&exe),
        Err(PatchError::NoBackup { .. })
    ));
}

#[test]
fn pe32_is_patched_and_checked_statically() {
    let Some(fx) = fixtures::get() else {
        return;
    };
    let data = std::fs::read(&fx.client32).unwrap();
    let t = Target::new("relive.test").unwrap();
    let p = plan(&data, &t).unwrap();
    assert!(!p.files[0].is_64);
    let applied = relive_patcher::apply(&data, &p, &mut |_| {}).unwrap();
    let report = inspect(&applied.bytes).unwrap();
    assert!(report.files[0].hits.is_empty());
    assert!(report.files[0].checksum_ok);
    let text = String::from_utf8_lossy(&applied.bytes);
    assert!(text.contains("https://relive.test:8443/rdr/pprdr.asp\0"));
    assert!(text.contains("\0relive.test\0"));
    assert_eq!(
        applied.bytes.len(),
        data.len(),
        "unsigned input keeps its size"
    );
}

/// The same PE32 run under wine. 32-bit wine (wine32:i386) needs the i386 architecture on
/// the machine, which CI does not set up: `cargo test -- --ignored` runs it where it is.
#[test]
#[ignore = "needs 32-bit wine (wine32:i386), which CI does not install"]
fn pe32_fixture_runs_under_32_bit_wine() {
    let Some(fx) = fixtures::with_wine() else {
        return;
    };
    let data = std::fs::read(&fx.client32).unwrap();
    let t = Target::new("relive.test").unwrap();
    let applied = relive_patcher::apply(&data, &plan(&data, &t).unwrap(), &mut |_| {}).unwrap();
    let dir = scratch();
    let exe = dir.path().join("msmsgs.exe");
    std::fs::write(&exe, &applied.bytes).unwrap();
    let out = wine::run(&exe, &["strings"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Without wine32 the wine64 loader exits 0 without running anything: no output.
    if stdout.trim().is_empty() {
        crate::tool::skip(&format!(
            "32-bit wine (wine32:i386) is not installed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or_default()
        ));
        return;
    }
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("https://relive.test:8443/rdr/pprdr.asp"),
        "{stdout}"
    );
}

#[test]
fn refuses_what_does_not_fit_and_what_is_not_pe() {
    let Some(fx) = fixtures::get() else {
        return;
    };
    let data = std::fs::read(&fx.client64).unwrap();
    let long = Target::new("a-very-long-relive-server-name.example.org").unwrap();
    match plan(&data, &long) {
        Err(PatchError::DoesNotFit {
            original, max_len, ..
        }) => {
            assert_eq!(max_len, original.len());
        }
        other => panic!("expected DoesNotFit, got {other:?}"),
    }
    assert!(matches!(
        plan(b"not a pe", &long),
        Err(PatchError::NotPe { .. })
    ));
    let dir = scratch();
    let out = dir.path().join("out.exe");
    let err = patch_file(
        &dir.path().join("missing.exe"),
        &long,
        Some(&out),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::Io { .. }));
    assert!(!out.exists(), "no output on failure");
}

#[test]
fn plan_is_printable_and_json() {
    let Some(fx) = fixtures::get() else {
        return;
    };
    let data = std::fs::read(&fx.client64).unwrap();
    let p = plan(&data, &Target::new("relive.test").unwrap()).unwrap();
    let table = p.to_string();
    assert!(
        table.contains(
            "\"https://nexus.passport.com/rdr/pprdr.asp\" → \"https://relive.test:8443/rdr/pprdr.asp\""
        ),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    let edits = json["files"][0]["edits"].as_array().unwrap();
    assert_eq!(edits.len(), p.files[0].edits.len());
    assert!(
        p.warnings
            .iter()
            .any(|w| matches!(w, relive_patcher::Warning::UnknownBuild { .. }))
    );
}
