//! The one error type of the library.
//!
//! Front ends (the CLI, the GUI) match on [`PatchError`] variants to show a message a user
//! understands and, in the CLI, to pick an exit code. Every variant carries enough context
//! (paths, offsets, lengths) to explain itself without a log.

use std::path::PathBuf;

/// Everything that can go wrong while inspecting, planning, applying or restoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The input is neither a PE image nor an installer we understand.
    #[error("not a Windows executable or MSI installer: {reason}")]
    NotPe {
        /// What the parser said.
        reason: String,
    },
    /// The PE parsed but has a shape we refuse to edit (for example no section table room).
    #[error("unsupported file: {reason}")]
    Unsupported {
        /// Why it is not supported.
        reason: String,
    },
    /// The executable is compressed by an exe packer; its strings are not visible.
    #[error("the file is packed with {packer}; unpack it first (its strings are not readable)")]
    Packed {
        /// The packer recognised from the section names.
        packer: String,
    },
    /// No known MSN endpoint string was found and the target host is not present either.
    #[error("no MSN server address found in {path}: not an MSN Messenger client?")]
    NoEndpoints {
        /// The member path inside the file ("" for the file itself).
        path: String,
    },
    /// No MSN server address is left: the file was patched to point at another server.
    #[error(
        "{} already points at {host} (patched earlier); restore the original (relive-patch \
         restore) and patch that",
        if path.is_empty() { "the file".to_owned() } else { path.clone() }
    )]
    PatchedForAnotherServer {
        /// The member path inside the file ("" for the file itself).
        path: String,
        /// The server it points at.
        host: String,
    },
    /// The new string would be longer than the one it replaces.
    #[error(
        "the new value {replacement:?} ({new_len} characters) does not fit in place of \
         {original:?} ({max_len} characters) at offset {offset:#x}{}",
        if path.is_empty() { String::new() } else { format!(" in {path}") }
    )]
    DoesNotFit {
        /// Member path ("" for the file itself).
        path: String,
        /// File offset of the original string.
        offset: u64,
        /// The original string.
        original: String,
        /// The string it would become.
        replacement: String,
        /// Length of the replacement.
        new_len: usize,
        /// Room available.
        max_len: usize,
    },
    /// The target host name is not acceptable (empty, spaces, non-ASCII...).
    #[error("invalid server host {host:?}: {reason}")]
    InvalidHost {
        /// What the user gave.
        host: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The plan does not match the bytes it is applied to (the file changed since planning).
    #[error("the plan does not match the file{}: {reason}",
        if path.is_empty() { String::new() } else { format!(" member {path}") })]
    PlanMismatch {
        /// Member path ("" for the file itself).
        path: String,
        /// What differs.
        reason: String,
    },
    /// Re-parsing or re-scanning the patched output failed.
    #[error("verification of the patched file failed: {reason}")]
    VerifyFailed {
        /// What the check found.
        reason: String,
    },
    /// An installer container (CAB, MSI, resource) could not be read or rebuilt.
    #[error("installer {what} error: {reason}")]
    Installer {
        /// Which layer ("cabinet", "msi", "resource").
        what: &'static str,
        /// The underlying message.
        reason: String,
    },
    /// No backup exists to restore from.
    #[error("no backup found at {}", path.display())]
    NoBackup {
        /// The backup path looked for.
        path: PathBuf,
    },
    /// File system error, with the path it concerned.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl PatchError {
    /// Shorthand for an [`PatchError::Io`] error.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for a [`PatchError::Installer`] error.
    pub(crate) fn installer(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Installer {
            what,
            reason: reason.to_string(),
        }
    }
}
