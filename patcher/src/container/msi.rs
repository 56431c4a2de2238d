//! Windows Installer packages: files in embedded cabinet streams (`Media.Cabinet = "#x"`).
//!
//! For every embedded cabinet the members are walked (member name = `File` table key); when
//! one changed, the cabinet stream is rebuilt and the tables follow: `File.FileSize`, and
//! `MsiFileHash` (MD5 as four little-endian i32, only for files that have a row: Windows
//! Installer hashes unversioned files only). The digital signature streams are removed and
//! the package code (summary information UUID) is replaced, so Windows Installer does not
//! mistake the package for the cached original. The new package code is derived from a
//! SHA-256 of the new cabinet, so the same patch gives the same package. External cabinets
//! (no `#`) and uncompressed layouts are not handled: their files are loose on disk.

use std::io::{Cursor, Read, Write};

use md5::Digest as _;
use msi::{Expr, Select, Update, Value};

use crate::PatchError;
use crate::container::{Progress, Stage, Visitor, cabinet, join, walk_member};

/// Largest cabinet stream we read.
const MAX_STREAM: u64 = cabinet::MAX_TOTAL_SIZE;

fn err(e: impl std::fmt::Display) -> PatchError {
    PatchError::installer("msi", e)
}

/// Names of the embedded cabinet streams listed in the `Media` table.
fn cabinet_streams(package: &mut msi::Package<Cursor<Vec<u8>>>) -> Result<Vec<String>, PatchError> {
    if !package.has_table("Media") {
        return Ok(Vec::new());
    }
    let rows = package
        .select_rows(Select::table("Media").columns(&["Cabinet"]))
        .map_err(err)?;
    Ok(rows
        .filter_map(|row| {
            row[0]
                .as_str()
                .and_then(|s| s.strip_prefix('#'))
                .map(str::to_string)
        })
        .collect())
}

/// Runs `f` over the `msi` crate, turning a panic inside that crate (it unwraps on some malformed
/// packages; found by our corruption property test) into an error: bad input must never crash
/// the patcher or the GUI.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, PatchError>) -> Result<T, PatchError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(err("malformed MSI package")))
}

/// Walks an MSI; returns the rebuilt package if a member changed.
pub(crate) fn walk(
    data: &[u8],
    prefix: &str,
    visitor: &mut dyn Visitor,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Vec<u8>>, PatchError> {
    guarded(|| walk_unguarded(data, prefix, visitor, progress))
}

fn walk_unguarded(
    data: &[u8],
    prefix: &str,
    visitor: &mut dyn Visitor,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Vec<u8>>, PatchError> {
    let mut package = msi::Package::open(Cursor::new(data.to_vec())).map_err(err)?;
    let mut any_changed = false;
    let mut digest = sha2::Sha256::new();
    for stream in cabinet_streams(&mut package)? {
        let mut bytes = Vec::new();
        package
            .read_stream(&stream)
            .map_err(err)?
            .take(MAX_STREAM + 1)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        if bytes.len() as u64 > MAX_STREAM {
            return Err(err("embedded cabinet too large"));
        }
        let mut contents = cabinet::read(&bytes, &mut |done, total| {
            progress(Progress {
                stage: Stage::Extracting,
                path: join(prefix, &stream),
                done,
                total,
            });
        })?;
        let mut changed = Vec::new();
        for member in &mut contents.members {
            let path = join(prefix, &member.name);
            if let Some(new) = walk_member(&member.data, &path, visitor, progress)? {
                member.data = new;
                changed.push(member.name.clone());
            }
        }
        if changed.is_empty() {
            continue;
        }
        any_changed = true;
        let new_cab = cabinet::write(&contents, &mut |done, total| {
            progress(Progress {
                stage: Stage::Repacking,
                path: join(prefix, &stream),
                done,
                total,
            });
        })?;
        digest.update(&new_cab);
        package
            .write_stream(&stream)
            .map_err(err)?
            .write_all(&new_cab)
            .map_err(err)?;
        for name in &changed {
            if let Some(member) = contents.members.iter().find(|m| &m.name == name) {
                update_file_rows(&mut package, name, &member.data)?;
            }
        }
    }
    if !any_changed {
        return Ok(None);
    }
    package.remove_digital_signature().map_err(err)?;
    let hash = digest.finalize();
    let mut seed = [0u8; 16];
    seed.copy_from_slice(&hash[..16]);
    package
        .summary_info_mut()
        .set_uuid(uuid::Builder::from_random_bytes(seed).into_uuid());
    package.flush().map_err(err)?;
    Ok(Some(package.into_inner().map_err(err)?.into_inner()))
}

/// Updates `File.FileSize` and the `MsiFileHash` row of one file.
fn update_file_rows(
    package: &mut msi::Package<Cursor<Vec<u8>>>,
    key: &str,
    data: &[u8],
) -> Result<(), PatchError> {
    let size = i32::try_from(data.len()).map_err(|_| err("file over 2 GiB"))?;
    if package.has_table("File") {
        package
            .update_rows(
                Update::table("File")
                    .set("FileSize", Value::Int(size))
                    .with(Expr::col("File").eq(Expr::string(key))),
            )
            .map_err(err)?;
    }
    if package.has_table("MsiFileHash") {
        let md5 = md5::Md5::digest(data);
        let part = |i: usize| {
            Value::Int(i32::from_le_bytes([
                md5[i * 4],
                md5[i * 4 + 1],
                md5[i * 4 + 2],
                md5[i * 4 + 3],
            ]))
        };
        package
            .update_rows(
                Update::table("MsiFileHash")
                    .set("HashPart1", part(0))
                    .set("HashPart2", part(1))
                    .set("HashPart3", part(2))
                    .set("HashPart4", part(3))
                    .with(Expr::col("File_").eq(Expr::string(key))),
            )
            .map_err(err)?;
    }
    Ok(())
}
