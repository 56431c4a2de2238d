//! The only I/O of the library: read, plan, apply, back up, write atomically, restore.
//!
//! In-place patching first copies the original to `<file>.relive-backup` (once: an existing
//! backup is the pristine original and is kept), then writes the new bytes to a temporary
//! file in the same directory and renames it over the original, so a crash leaves either
//! the old or the new file, never half of one. `restore_file` renames the backup back.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::PatchError;
use crate::container::{Progress, Stage};
use crate::plan::{Plan, Target};

/// Suffix of the backup file.
pub const BACKUP_SUFFIX: &str = ".relive-backup";
/// Suffix of the registry file written next to the output.
pub const REG_SUFFIX: &str = ".relive.reg";

/// What [`patch_file`] did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The plan that was applied.
    pub plan: Plan,
    /// Where the result is.
    pub output: PathBuf,
    /// False when the file already pointed at the target (nothing written).
    pub changed: bool,
    /// The backup of the original, when patched in place.
    pub backup: Option<PathBuf>,
    /// The `.reg` file written, when the client needs registry changes.
    pub registry_file: Option<PathBuf>,
    /// Member paths patched.
    pub patched: Vec<String>,
    /// An Authenticode signature was removed.
    pub signature_removed: bool,
}

/// `<path>.relive-backup`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    PathBuf::from(name)
}

fn reg_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(REG_SUFFIX);
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename),
/// keeping the permissions of `like` when given.
///
/// # Errors
/// [`PatchError::Io`] naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8], like: Option<&Path>) -> Result<(), PatchError> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".relive-patch")
        .tempfile_in(&dir)
        .map_err(|e| PatchError::io(&dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| PatchError::io(tmp.path(), e))?;
    if let Some(meta) = like.and_then(|l| std::fs::metadata(l).ok()) {
        // Best effort: a failure here leaves default permissions, not a broken file.
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path)
        .map_err(|e| PatchError::io(path, e.error))?;
    Ok(())
}

/// Patches `path` for `target`: in place (with a backup) or into `out`.
///
/// Patching a file that already points at the target writes nothing.
///
/// # Errors
/// Everything [`crate::plan()`] and [`crate::apply()`] return, plus [`PatchError::Io`].
pub fn patch_file(
    path: &Path,
    target: &Target,
    out: Option<&Path>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, PatchError> {
    let data = std::fs::read(path).map_err(|e| PatchError::io(path, e))?;
    let plan = crate::plan(&data, target)?;
    let applied = crate::apply(&data, &plan, progress)?;
    let output = out.unwrap_or(path).to_path_buf();
    let mut backup = None;
    if applied.changed || out.is_some_and(|o| o != path) {
        progress(Progress {
            stage: Stage::Writing,
            path: String::new(),
            done: 0,
            total: applied.bytes.len() as u64,
        });
        if output == path {
            let b = backup_path(path);
            if !b.exists() {
                write_atomic(&b, &data, Some(path))?;
            }
            backup = Some(b);
        }
        write_atomic(&output, &applied.bytes, Some(path))?;
    }
    let registry_file = match plan.registry_file() {
        Some(text) => {
            let reg = reg_path(&output);
            write_atomic(&reg, text.as_bytes(), None)?;
            Some(reg)
        }
        None => None,
    };
    Ok(Report {
        plan,
        output,
        changed: applied.changed,
        backup,
        registry_file,
        patched: applied.patched,
        signature_removed: applied.signature_removed,
    })
}

/// Puts the original back from `<path>.relive-backup` (an atomic rename).
///
/// # Errors
/// [`PatchError::NoBackup`] when there is no backup, [`PatchError::Io`] otherwise.
pub fn restore_file(path: &Path) -> Result<PathBuf, PatchError> {
    let backup = backup_path(path);
    if !backup.is_file() {
        return Err(PatchError::NoBackup { path: backup });
    }
    std::fs::rename(&backup, path).map_err(|e| PatchError::io(path, e))?;
    Ok(backup)
}
