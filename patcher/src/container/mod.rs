//! Walking files that contain client executables: the executable itself, IExpress
//! self-extractors and MSI packages (possibly one inside the other).
//!
//! ```text
//! setup.exe (PE, RCDATA/CABINET) ─▶ CAB ─▶ msmsgs.exe            (MSN 1.x – 4.x)
//!                                     └──▶ MsnMsgs.msi ─▶ #cab stream ─▶ msnmsgr.exe (5.x – 7.x)
//! ```
//!
//! The walk is shared by inspect, plan, apply and verify: a [`Visitor`] sees every PE leaf
//! with its member path and may return replacement bytes; the containers on the way up are
//! then rebuilt (cabinet re-packed, MSI tables and stream updated, resource replaced,
//! signature stripped, checksum recomputed).

pub(crate) mod cabinet;
pub(crate) mod msi;
pub(crate) mod sfx;

use serde::Serialize;

use crate::PatchError;
use crate::image::Image;
use crate::plan::FileKind;

/// The compound-file magic that starts every MSI.
const CFB_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Where a long operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Decompressing a cabinet.
    Extracting,
    /// Patching a client executable.
    Patching,
    /// Compressing a cabinet.
    Repacking,
    /// Checking the result.
    Verifying,
    /// Writing the output file.
    Writing,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Extracting => "extracting",
            Self::Patching => "patching",
            Self::Repacking => "repacking",
            Self::Verifying => "verifying",
            Self::Writing => "writing",
        })
    }
}

/// A progress report for long steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The step.
    pub stage: Stage,
    /// The member being worked on (`""` for the outer file).
    pub path: String,
    /// Units done (bytes).
    pub done: u64,
    /// Units in total (bytes).
    pub total: u64,
}

/// Sees every PE leaf of a file. Each PE is parsed once, by the walk, and handed over parsed.
pub(crate) trait Visitor {
    /// Called for each PE leaf; returns replacement bytes to rebuild containers with.
    fn pe(&mut self, path: &str, image: &Image<'_>) -> Result<Option<Vec<u8>>, PatchError>;

    /// Called first for a self-extractor, with its own image (the PE around the cabinet).
    fn extractor(&mut self, _image: &Image<'_>) {}

    /// Called for every member of a container (PE or not).
    fn member(&mut self, _path: &str, _size: u64) {}
}

/// Two visitors in one walk (inspect and plan on opening a file). The second one's error is
/// kept aside so that the first still sees every PE.
pub(crate) struct Both<'a> {
    /// Sees everything; its error ends the walk.
    pub first: &'a mut dyn Visitor,
    /// Sees every PE until its first error.
    pub second: &'a mut dyn Visitor,
    /// The second visitor's first error.
    pub second_error: Option<PatchError>,
}

impl Visitor for Both<'_> {
    fn pe(&mut self, path: &str, image: &Image<'_>) -> Result<Option<Vec<u8>>, PatchError> {
        self.first.pe(path, image)?;
        if self.second_error.is_none()
            && let Err(error) = self.second.pe(path, image)
        {
            self.second_error = Some(error);
        }
        Ok(None)
    }

    fn extractor(&mut self, image: &Image<'_>) {
        self.first.extractor(image);
        self.second.extractor(image);
    }

    fn member(&mut self, path: &str, size: u64) {
        self.first.member(path, size);
        self.second.member(path, size);
    }
}

/// Joins a container path and a member name.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// True when the bytes start like an MSI (OLE compound file).
pub(crate) fn is_msi(data: &[u8]) -> bool {
    data.starts_with(CFB_MAGIC)
}

/// True when the outer file carries a signature (Authenticode, or an MSI signature stream).
pub(crate) fn is_signed(data: &[u8]) -> bool {
    if is_msi(data) {
        return msi::guarded(|| {
            Ok(::msi::Package::open(std::io::Cursor::new(data))
                .is_ok_and(|p| p.has_digital_signature()))
        })
        .unwrap_or(false);
    }
    Image::parse(data).is_ok_and(|i| i.signature_range().is_some())
}

/// Walks a whole file. Returns its kind and the rebuilt bytes if anything changed.
///
/// # Errors
/// [`PatchError::NotPe`] when it is neither an MSI nor a PE; the visitor's and the
/// containers' errors.
pub(crate) fn walk(
    data: &[u8],
    visitor: &mut dyn Visitor,
    progress: &mut dyn FnMut(Progress),
) -> Result<(FileKind, Option<Vec<u8>>), PatchError> {
    if is_msi(data) {
        return Ok((FileKind::Msi, msi::walk(data, "", visitor, progress)?));
    }
    let image = Image::parse(data)?;
    if image.find_rcdata("CABINET").is_some() {
        visitor.extractor(&image);
        let out = sfx::walk(&image, "", visitor, progress)?;
        Ok((FileKind::SelfExtractor, out))
    } else {
        Ok((FileKind::Executable, visitor.pe("", &image)?))
    }
}

/// Walks one member of a container: a nested MSI, a PE, or something we leave alone.
pub(crate) fn walk_member(
    data: &[u8],
    path: &str,
    visitor: &mut dyn Visitor,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Vec<u8>>, PatchError> {
    visitor.member(path, data.len() as u64);
    if is_msi(data) {
        return msi::walk(data, path, visitor, progress);
    }
    if data.starts_with(b"MZ")
        && let Ok(image) = Image::parse(data)
    {
        return visitor.pe(path, &image);
    }
    Ok(None)
}
