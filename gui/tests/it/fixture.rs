//! Fixture files (synthetic clients from the patcher's `synth` builder) and paths under the
//! target directory.

use std::path::{Path, PathBuf};

use relive_patcher::synth;

/// A synthetic MSN Messenger 6.0 executable with the usual endpoint strings.
pub(crate) fn client() -> Vec<u8> {
    synth::msn6_client()
}

/// A synthetic IExpress-style setup (PE with an `RCDATA/CABINET` holding the client).
pub(crate) fn installer() -> Vec<u8> {
    let mut builder = cab::CabinetBuilder::new();
    builder
        .add_folder(cab::CompressionType::MsZip)
        .add_file("msnmsgr.exe");
    let mut writer = builder.build(std::io::Cursor::new(Vec::new())).unwrap();
    while let Some(mut file) = writer.next_file().unwrap() {
        std::io::Write::write_all(&mut file, &client()).unwrap();
    }
    let cab = writer.finish().unwrap().into_inner();
    synth::build(&synth::Spec {
        is_64: false,
        text_size: 0x200,
        rdata: Vec::new(),
        version: None,
        cabinet: Some(cab),
    })
}

/// Writes `bytes` as `dir/name`.
pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The Cargo target directory this test binary was built in.
pub(crate) fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map_or(tmp.clone(), Path::to_path_buf)
}

/// Is `program` on the PATH and runnable?
pub(crate) use crate::dist::have;
