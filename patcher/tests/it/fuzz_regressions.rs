use relive_patcher::{Target, inspect, plan};

/// Every file in `tests/fuzz_regressions/` (inputs `cargo fuzz run patcher` found crashing
/// pelite 0.10 with misaligned reads, which debug builds abort on:
/// `pelite-misaligned-section-table.bin`, a PE32 whose odd `SizeOfOptionalHeader` put the
/// section table off its alignment; `pelite-misaligned-resource-directory.bin`, a resource
/// directory at a file offset that is not a multiple of 4) goes through inspect and plan like
/// any other file, at an 8-aligned address and again at one that is only 4-aligned (where
/// pelite's PE32+-first `Wrap` once read a PE32 header as 8-aligned structures).
#[test]
fn fuzz_regressions_are_errors_or_results_never_aborts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let target = Target::new("relive.example.net").unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let mut buf = vec![0u8; data.len() + 16];
        let at = (8 - buf.as_ptr() as usize % 8) % 8;
        for offset in [at, at + 4] {
            buf[offset..offset + data.len()].copy_from_slice(&data);
            let input = &buf[offset..offset + data.len()];
            let _ = inspect(input);
            let _ = plan(input, &target);
        }
        files += 1;
    }
    assert!(files >= 1);
}
