//! Installers: the IExpress-like self-extractor and the MSI.

use std::process::Command;

use md5::Digest as _;
use relive_patcher::{FileKind, Target, apply, inspect, plan};

use crate::wine::{self, Loopback, scratch};
use crate::{fixtures, tool};

#[test]
fn patched_self_extractor_extracts_and_runs() {
    let Some(fx) = fixtures::with_wine() else {
        return;
    };
    let lb = Loopback::start();
    let data = std::fs::read(&fx.sfx).unwrap();
    let p = plan(&data, &lb.target()).unwrap();
    assert_eq!(p.kind, FileKind::SelfExtractor);
    assert_eq!(p.files.len(), 1);
    assert_eq!(p.files[0].path, "msmsgs.exe");
    let mut steps = Vec::new();
    let applied = apply(&data, &p, &mut |pr| steps.push(pr.stage)).unwrap();
    assert!(applied.changed && applied.signature_removed);
    assert!(steps.contains(&relive_patcher::Stage::Repacking));
    let report = inspect(&applied.bytes).unwrap();
    assert!(
        report
            .files
            .iter()
            .all(|f| f.hits.is_empty() && f.checksum_ok && !f.signed)
    );
    assert!(report.members.iter().any(|m| m.path == "readme.txt"));

    // Idempotent.
    let again = plan(&applied.bytes, &lb.target()).unwrap();
    assert!(again.is_noop());

    let dir = scratch();
    let exe = dir.path().join("setup.exe");
    std::fs::write(&exe, &applied.bytes).unwrap();
    let into = dir.path().join("x");
    let t_arg = format!("/T:{}", wine::win_path(&into));
    let out = wine::run(
        &exe,
        &[&t_arg],
        &[("RELIVE_NS_PORT", lb.ns_port.to_string())],
    );
    assert!(out.status.success(), "{out:?}");
    let extracted = std::fs::read(into.join("msmsgs.exe")).unwrap();
    assert!(inspect(&extracted).unwrap().files[0].hits.is_empty());
    lb.assert_reached();
}

#[test]
fn bigger_cabinet_rebuilds_the_resource_section_and_still_extracts() {
    let Some(fx) = fixtures::with_wine() else {
        return;
    };
    let data = std::fs::read(&fx.sfx).unwrap();
    let big = std::fs::read(&fx.big_cab).unwrap();
    let out = relive_patcher::replace_sfx_cabinet(&data, &big).unwrap();
    let report = inspect(&out).unwrap();
    assert_eq!(report.kind, FileKind::SelfExtractor);
    assert!(report.files[0].checksum_ok);
    // The resource tree was rebuilt: in a new last `.rsrc` section (mingw puts `.reloc`
    // after `.rsrc`), or grown in place when `.rsrc` was already last.
    let sections = &report.files[0].sections;
    let before = inspect(&data).unwrap().files[0].sections.clone();
    assert_eq!(sections.last().unwrap().name, ".rsrc");
    assert!(sections.iter().all(|s| s.name != ".rlvrsrc"));
    if before.last().unwrap().name != ".rsrc" {
        assert_eq!(sections.len(), before.len() + 1);
        assert!(sections.iter().any(|s| s.name == ".oldrsrc"));
    }
    // Every other section keeps its bytes.
    for (old, new) in before.iter().zip(sections) {
        if old.name != ".rsrc" {
            assert_eq!(old, new);
            assert_eq!(
                data[old.raw_range(data.len())],
                out[new.raw_range(out.len())]
            );
        }
    }
    assert!(
        report
            .members
            .iter()
            .any(|m| m.path == "filler.bin" && m.size == 300_000)
    );
    let dir = scratch();
    let exe = dir.path().join("setup.exe");
    std::fs::write(&exe, &out).unwrap();
    let into = dir.path().join("x");
    let run = wine::run(&exe, &[&format!("/T:{}", wine::win_path(&into)), "/C"], &[]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        std::fs::read(into.join("filler.bin")).unwrap().len(),
        300_000
    );
}

fn msiinfo(args: &[&str]) -> String {
    let out = Command::new("msiinfo")
        .args(args)
        .output()
        .expect("msiinfo (Debian package msitools)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn patched_msi_installs_under_wine_and_the_exe_is_identical() {
    let Some(fx) = fixtures::with_wine() else {
        return;
    };
    if !tool::require(&[("msiinfo", "--version", "msitools")]) {
        return;
    }
    let lb = Loopback::start();
    let t = lb.target();
    let data = std::fs::read(&fx.msi).unwrap();
    let p = plan(&data, &t).unwrap();
    assert_eq!(p.kind, FileKind::Msi);
    assert_eq!(p.files[0].path, "msnmsgr.exe");
    let applied = apply(&data, &p, &mut |_| {}).unwrap();

    // The same client patched on its own gives the bytes the MSI must install.
    let loose = std::fs::read(&fx.client64_nover).unwrap();
    let loose_plan = plan(&loose, &t).unwrap();
    let expected = apply(&loose, &loose_plan, &mut |_| {}).unwrap().bytes;

    let dir = scratch();
    let msi = dir.path().join("patched.msi");
    std::fs::write(&msi, &applied.bytes).unwrap();
    let msi_s = msi.to_str().unwrap();
    let streams = msiinfo(&["streams", msi_s]);
    assert!(!streams.contains("DigitalSignature"), "{streams}");
    let old_code = msiinfo(&["suminfo", fx.msi.to_str().unwrap()]);
    let new_code = msiinfo(&["suminfo", msi_s]);
    let code = |s: &str| {
        s.lines()
            .find(|l| l.contains("Revision number"))
            .unwrap_or_default()
            .to_string()
    };
    assert_ne!(code(&old_code), code(&new_code));
    let file_table = msiinfo(&["export", msi_s, "File"]);
    assert!(
        file_table.contains(&format!("\t{}\t", expected.len())),
        "{file_table}"
    );
    let hashes = msiinfo(&["export", msi_s, "MsiFileHash"]);
    let md5 = md5::Md5::digest(&expected);
    let part =
        |i: usize| i32::from_le_bytes([md5[i * 4], md5[i * 4 + 1], md5[i * 4 + 2], md5[i * 4 + 3]]);
    let row = format!(
        "msnmsgr.exe\t0\t{}\t{}\t{}\t{}",
        part(0),
        part(1),
        part(2),
        part(3)
    );
    assert!(hashes.contains(&row), "{hashes}\nwanted {row}");

    // Install, compare, run, uninstall.
    let product = "{6A1C0C8E-2F0B-4C57-9E0B-3D1F2A7C5B10}";
    let _ = wine::run("msiexec".as_ref(), &["/x", product, "/qn"], &[]);
    let out = wine::run(
        "msiexec".as_ref(),
        &["/i", &wine::win_path(&msi), "/qn"],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let drive_c = wine::prefix().join("drive_c");
    let installed = ["Program Files (x86)", "Program Files"]
        .iter()
        .map(|p| {
            drive_c
                .join(p)
                .join("ReliveFakeMessenger")
                .join("msnmsgr.exe")
        })
        .find(|p| p.exists())
        .expect("installed msnmsgr.exe");
    assert_eq!(std::fs::read(&installed).unwrap(), expected);
    let run = wine::run(
        &installed,
        &[],
        &[("RELIVE_NS_PORT", lb.ns_port.to_string())],
    );
    wine::assert_client_talked(&run, &lb);
    let out = wine::run("msiexec".as_ref(), &["/x", product, "/qn"], &[]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn msi_inside_self_extractor_is_found_and_patched() {
    let Some(fx) = fixtures::get() else {
        return;
    };
    let data = std::fs::read(&fx.sfx_msi).unwrap();
    let t = Target::new("relive.test").unwrap();
    let p = plan(&data, &t).unwrap();
    assert_eq!(p.kind, FileKind::SelfExtractor);
    assert_eq!(p.files[0].path, "MsnMsgs.msi/msnmsgr.exe");
    let applied = apply(&data, &p, &mut |_| {}).unwrap();
    let report = inspect(&applied.bytes).unwrap();
    let client = report
        .files
        .iter()
        .find(|f| f.path == "MsnMsgs.msi/msnmsgr.exe")
        .unwrap();
    assert!(client.hits.is_empty() && client.checksum_ok);
    assert!(plan(&applied.bytes, &t).unwrap().is_noop());
}
