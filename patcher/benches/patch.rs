//! Benchmark: plan + apply on a synthetic 5 MB PE and on synthetic self-extractors (20 MiB of
//! payload, an installer file of at least 20 MiB, and the same with a signed client, whose
//! shrinking would force every later block of its folder to be compressed again).
//!
//! Run with `cargo bench -p relive-patcher`. Prints min / median / max over repeated runs.
//! Targets from issue 6: patch a 5 MB PE in ≤ 50 ms; repack a 20 MB installer in ≤ 2 s.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use relive_patcher::{Target, apply, plan, synth};

fn client(size: usize) -> Vec<u8> {
    let (rdata, _) = synth::msn_rdata();
    synth::build(&synth::Spec {
        is_64: false,
        text_size: size,
        rdata,
        version: Some([7, 0, 813, 0]),
        cabinet: None,
    })
}

/// Filler that compresses roughly like program files (repeating structure plus noise).
fn filler(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 4 == 0 { x as u8 } else { (i / 64) as u8 }
        })
        .collect()
}

fn installer(client: &[u8], total: usize) -> Vec<u8> {
    let mut b = cab::CabinetBuilder::new();
    let folder = b.add_folder(cab::CompressionType::MsZip);
    folder.add_file("msnmsgr.exe");
    folder.add_file("data.bin");
    let extra = filler(total.saturating_sub(client.len()));
    let mut w = b.build(std::io::Cursor::new(Vec::new())).unwrap();
    let mut files = [client, extra.as_slice()].into_iter();
    while let Some(mut f) = w.next_file().unwrap() {
        f.write_all(files.next().unwrap()).unwrap();
    }
    let cab = w.finish().unwrap().into_inner();
    synth::build(&synth::Spec {
        is_64: false,
        text_size: 0x4000,
        rdata: Vec::new(),
        version: None,
        cabinet: Some(cab),
    })
}

/// Appends an 8 KiB certificate table and points the Security directory at it, like a signed
/// client. Its content is filler (nothing checks it): what matters is that stripping it shrinks
/// the file, so everything after the client in its cabinet folder shifts and is recompressed.
fn with_signature_table(mut pe: Vec<u8>) -> Vec<u8> {
    let lfanew = u32::from_le_bytes(pe[0x3c..0x40].try_into().unwrap()) as usize;
    let opt = lfanew + 24;
    let dirs = if pe[opt..opt + 2] == [0x0b, 0x02] {
        opt + 112
    } else {
        opt + 96
    };
    let at = u32::try_from(pe.len()).unwrap();
    pe.extend_from_slice(&[0x5a; 8192]);
    pe[dirs + 32..dirs + 36].copy_from_slice(&at.to_le_bytes());
    pe[dirs + 36..dirs + 40].copy_from_slice(&8192u32.to_le_bytes());
    pe
}

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name}: min {:.1} ms, median {:.1} ms, max {:.1} ms ({runs} runs)",
        times[0].as_secs_f64() * 1e3,
        times[runs / 2].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let target = Target::new("relive.test").unwrap().with_http_login(true);
    let pe = client(5 << 20);
    println!("PE: {} bytes", pe.len());
    measure("plan+apply 5 MB PE", 20, || {
        let p = plan(&pe, &target).unwrap();
        let out = apply(&pe, &p, &mut |_| {}).unwrap();
        assert!(out.changed);
    });
    let setup = installer(&pe, 20 << 20);
    println!(
        "installer: {} bytes (20 MiB uncompressed payload)",
        setup.len()
    );
    measure("plan+apply+repack, 20 MiB payload", 5, || {
        let p = plan(&setup, &target).unwrap();
        let out = apply(&setup, &p, &mut |_| {}).unwrap();
        assert!(out.changed);
    });
    // The figure is for a 20 MB installer file: scale the payload until the compressed
    // installer itself is at least 20 MiB.
    let payload = (20u64 << 20) * (20u64 << 20) / setup.len() as u64 + (1 << 20);
    let big = installer(&pe, usize::try_from(payload).unwrap());
    assert!(big.len() >= 20 << 20, "installer is {} bytes", big.len());
    println!(
        "installer: {} bytes ({payload} bytes uncompressed payload)",
        big.len()
    );
    measure("plan+apply+repack 20 MB installer file", 5, || {
        let p = plan(&big, &target).unwrap();
        let out = apply(&big, &p, &mut |_| {}).unwrap();
        assert!(out.changed);
    });
    // Worst case: the client is signed, stripping the signature shrinks it, and every block
    // after it in the folder must be compressed again.
    let signed = installer(
        &with_signature_table(pe.clone()),
        usize::try_from(payload).unwrap(),
    );
    println!("installer: {} bytes, signed client first", signed.len());
    measure(
        "plan+apply+repack 20 MB installer, signed client",
        5,
        || {
            let p = plan(&signed, &target).unwrap();
            let out = apply(&signed, &p, &mut |_| {}).unwrap();
            assert!(out.changed && out.signature_removed);
        },
    );
}
