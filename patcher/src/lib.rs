//! Relive patcher: points MSN Messenger 1.x – 7.x clients and their installers at a Relive
//! server.
//!
//! The pipeline is parse → plan → apply → verify → atomic write with a backup:
//!
//! ```no_run
//! use relive_patcher::{inspect, plan, apply, Target};
//! # fn main() -> Result<(), relive_patcher::PatchError> {
//! let bytes = std::fs::read("msnmsgr.exe").map_err(|e| relive_patcher::PatchError::Io {
//!     path: "msnmsgr.exe".into(), source: e })?;
//! let report = inspect(&bytes)?;                 // what is in there
//! let target = Target::new("relive.example")?.with_http_login(true);
//! let plan = plan(&bytes, &target)?;             // pure data: print it, or JSON
//! println!("{plan}");
//! let applied = apply(&bytes, &plan, &mut |_progress| {})?;
//! # let _ = (report, applied);
//! # Ok(()) }
//! ```
//!
//! or in one call with I/O: [`patch_file`] / [`restore_file`].
//!
//! # Layout
//! - [`image`]: our wrapper over goblin/pelite (sections, version, resources, checksum,
//!   signature stripping).
//! - `rsrc`: rebuilding the resource section when a resource outgrows its place.
//! - [`scan`]: content search for endpoint hosts, ASCII and UTF-16LE.
//! - [`catalog`]: known client builds as data.
//! - [`plan`]: [`Target`], [`Plan`], [`Edit`] and the pure planner.
//! - [`registry`]: registry changes and the `.reg` file.
//! - [`apply`](mod@apply): applying and verifying a plan in memory.
//! - `container`: IExpress self-extractors, cabinets and MSI packages.
//! - [`file`]: the only I/O: backup, atomic write, restore.
//! - [`synth`]: synthetic PE images for tests and benchmarks.
//!
//! # What it does not do
//! No printing (front ends format [`Plan`] and [`Report`]), no networking, no DLL injection
//! (WLM 8+ is out of scope), no code patches beyond the catalog's several-instances byte.

pub mod apply;
pub mod catalog;
mod container;
mod error;
pub mod file;
pub mod image;
pub mod plan;
pub mod registry;
mod rsrc;
pub mod scan;
pub mod synth;
/// The rule for tests that need a system tool (fail in CI, skip elsewhere), shared with the
/// other crates' tests.
#[cfg(test)]
#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/src/tool.rs"]
mod tool;

pub use apply::{Applied, apply};
pub use container::{Progress, Stage};
pub use error::PatchError;
pub use file::{Report, backup_path, patch_file, restore_file};
pub use plan::{Edit, FileKind, FilePlan, Plan, Reason, Target, Warning};

use serde::Serialize;

use crate::container::Visitor;
use crate::image::{FileVersion, Image, Section};
use crate::scan::Hit;

/// What [`inspect`] found in one PE (the file itself or an installer member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeReport {
    /// Member path (`""` for the file itself).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// PE32+.
    pub is_64: bool,
    /// COFF machine.
    pub machine: u16,
    /// Version resource.
    pub version: Option<FileVersion>,
    /// Catalog build.
    pub build: Option<&'static str>,
    /// Has an Authenticode signature.
    pub signed: bool,
    /// Stored checksum equals the computed one.
    pub checksum_ok: bool,
    /// Exe packer recognised, if any.
    pub packer: Option<&'static str>,
    /// Sections.
    pub sections: Vec<Section>,
    /// Every endpoint hit.
    pub hits: Vec<Hit>,
}

/// A container member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Path inside the file.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// The result of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// Outer file kind.
    pub kind: FileKind,
    /// Every member of installers (empty for an executable).
    pub members: Vec<Member>,
    /// Every PE found, with its endpoint hits.
    pub files: Vec<PeReport>,
}

impl Inspection {
    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

struct InspectVisitor {
    files: Vec<PeReport>,
    members: Vec<Member>,
}

fn pe_report(path: &str, data: &[u8]) -> Result<PeReport, PatchError> {
    let image = Image::parse(data)?;
    let version = image.file_version();
    Ok(PeReport {
        path: path.to_string(),
        size: data.len() as u64,
        is_64: image.is_64(),
        machine: image.machine(),
        version,
        build: version.and_then(catalog::lookup).map(|b| b.name),
        signed: image.signature_range().is_some(),
        checksum_ok: image.compute_checksum() == image.stored_checksum(),
        packer: image.packer(),
        sections: image.sections().to_vec(),
        hits: scan::scan(&image),
    })
}

impl Visitor for InspectVisitor {
    fn pe(&mut self, path: &str, data: &[u8]) -> Result<Option<Vec<u8>>, PatchError> {
        self.files.push(pe_report(path, data)?);
        Ok(None)
    }

    fn member(&mut self, path: &str, size: u64) {
        self.members.push(Member {
            path: path.to_string(),
            size,
        });
    }
}

/// Inspects a file: its kind, installer members, and every PE with its endpoint hits.
///
/// # Errors
/// [`PatchError::NotPe`] for files that are neither PE nor MSI, [`PatchError::Installer`]
/// for broken installers.
pub fn inspect(data: &[u8]) -> Result<Inspection, PatchError> {
    let mut visitor = InspectVisitor {
        files: Vec::new(),
        members: Vec::new(),
    };
    let (kind, _) = container::walk(data, &mut visitor, &mut |_| {})?;
    if kind == FileKind::SelfExtractor {
        // The extractor itself: signature and checksum matter for it too.
        visitor.files.insert(0, pe_report("", data)?);
    }
    Ok(Inspection {
        kind,
        members: visitor.members,
        files: visitor.files,
    })
}

struct PlanVisitor<'t> {
    target: &'t Target,
    files: Vec<FilePlan>,
    warnings: Vec<Warning>,
}

impl Visitor for PlanVisitor<'_> {
    fn pe(&mut self, path: &str, data: &[u8]) -> Result<Option<Vec<u8>>, PatchError> {
        let image = Image::parse(data)?;
        let mut warnings = Vec::new();
        let file = plan::plan_image(&image, path, self.target, &mut warnings)?;
        if file.hits > 0 || file.already_patched || !file.edits.is_empty() {
            self.files.push(file);
            self.warnings.extend(warnings);
        }
        Ok(None)
    }
}

/// Builds the plan for pointing a file (executable or installer) at `target`. Pure.
///
/// # Errors
/// [`PatchError::NoEndpoints`] when nothing to patch was found and the file does not
/// already point at the target; [`PatchError::DoesNotFit`] when a string would grow;
/// [`PatchError::Packed`], [`PatchError::NotPe`], [`PatchError::Installer`].
pub fn plan(data: &[u8], target: &Target) -> Result<Plan, PatchError> {
    let mut visitor = PlanVisitor {
        target,
        files: Vec::new(),
        warnings: Vec::new(),
    };
    let (kind, _) = container::walk(data, &mut visitor, &mut |_| {})?;
    if visitor.files.is_empty() {
        return Err(PatchError::NoEndpoints {
            path: String::new(),
        });
    }
    if container::is_signed(data) && kind != FileKind::Executable {
        visitor.warnings.push(Warning::SignatureRemoved {
            path: String::new(),
        });
    }
    let client_version = visitor
        .files
        .iter()
        .find_map(|f| f.version.filter(|v| catalog::is_msn_range(*v)));
    Ok(Plan {
        target: target.clone(),
        kind,
        registry: plan::registry_changes(client_version, target),
        files: visitor.files,
        warnings: visitor.warnings,
    })
}

/// Replaces the `RCDATA/CABINET` of a self-extractor with `cab` (in place when it fits,
/// otherwise by rebuilding the resource section: grown in place when it is the last
/// section, moved to a new last `.rsrc` section otherwise), strips the signature and
/// recomputes the checksum.
/// [`apply`] does this itself; this is the building block, for tools and tests.
///
/// # Errors
/// [`PatchError::NotPe`], [`PatchError::Installer`] when there is no CABINET,
/// [`PatchError::Unsupported`] when no section can be added,
/// [`PatchError::VerifyFailed`] when the rebuilt resource tree does not re-parse as the
/// original with the new cabinet.
pub fn replace_sfx_cabinet(data: &[u8], cab: &[u8]) -> Result<Vec<u8>, PatchError> {
    container::sfx::replace_cabinet(data, cab)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryChange;
    use crate::scan::Encoding;

    fn synthetic(
        version: Option<[u16; 4]>,
        text_size: usize,
    ) -> (Vec<u8>, Vec<(usize, &'static str)>) {
        let (rdata, at) = synth::msn_rdata();
        let spec = synth::Spec {
            is_64: false,
            text_size,
            rdata,
            version,
            cabinet: None,
        };
        (synth::build(&spec), at)
    }

    #[test]
    fn golden_plan_on_synthetic_pe32() {
        let (data, at) = synthetic(Some([0, 1, 2, 3]), 0x200);
        let report = inspect(&data).unwrap();
        assert!(report.files[0].checksum_ok);
        let t = Target::new("relive.test").unwrap();
        let p = plan(&data, &t).unwrap();
        let rdata = 0x600;
        let got: Vec<(u64, Option<Encoding>, &str, &str)> = p.files[0]
            .edits
            .iter()
            .map(|e| {
                (
                    e.offset,
                    e.encoding,
                    e.before_text.as_str(),
                    e.after_text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    (rdata + at[0].0) as u64,
                    Some(Encoding::Ascii),
                    "messenger.hotmail.com",
                    "relive.test"
                ),
                (
                    (rdata + at[1].0) as u64,
                    Some(Encoding::Ascii),
                    "gateway.messenger.hotmail.com",
                    "relive.test"
                ),
                (
                    (rdata + at[2].0) as u64,
                    Some(Encoding::Ascii),
                    "https://nexus.passport.com/rdr/pprdr.asp",
                    "https://relive.test/rdr/pprdr.asp"
                ),
                (
                    (rdata + at[4].0) as u64,
                    Some(Encoding::Utf16Le),
                    "http://config.messenger.msn.com/Config/MsgrConfig.asmx",
                    "http://relive.test/Config/MsgrConfig.asmx"
                ),
            ]
        );
        let e = &p.files[0].edits[0];
        assert_eq!(e.after, b"relive.test\0\0\0\0\0\0\0\0\0\0".to_vec());
        assert!(p.registry.is_empty(), "0.1 is not an MSN version");
        let applied = apply(&data, &p, &mut |_| {}).unwrap();
        assert_eq!(applied.bytes.len(), data.len());
        assert!(plan(&applied.bytes, &t).unwrap().is_noop());
    }

    #[test]
    fn catalog_build_gets_polygamy_patch_and_cross_check() {
        let (mut data, _) = synthetic(Some([6, 0, 602, 0]), 0xd0000);
        data[0xccbf2] = catalog::POLYGAMY_ORIGINAL;
        let url = b"\0https://nexus.passport.com/rdr/pprdr.asp\0";
        data[0x1f164 - 1..0x1f164 - 1 + url.len()].copy_from_slice(url);
        let ns = b"\0messenger.hotmail.com\0";
        data[0x1f238 - 1..0x1f238 - 1 + ns.len()].copy_from_slice(ns);
        let t = Target::new("relive.test")
            .unwrap()
            .with_multiple_instances(true);
        let p = plan(&data, &t).unwrap();
        assert_eq!(p.files[0].build, Some("6.0.0602"));
        let poly = p.files[0]
            .edits
            .iter()
            .find(|e| e.offset == 0xccbf2)
            .unwrap();
        assert_eq!(
            (poly.before.as_slice(), poly.after.as_slice()),
            (&[0xB7][..], &[0xB6][..])
        );
        assert!(
            !p.warnings
                .iter()
                .any(|w| matches!(w, Warning::CatalogMismatch { .. })),
            "{:?}",
            p.warnings
        );
        assert!(
            !p.warnings
                .iter()
                .any(|w| matches!(w, Warning::UnknownBuild { .. }))
        );
        assert_eq!(
            p.registry,
            vec![RegistryChange::clear_msn_messenger_cache()]
        );
        let applied = apply(&data, &p, &mut |_| {}).unwrap();
        assert_eq!(applied.bytes[0xccbf2], catalog::POLYGAMY_PATCHED);

        // Same build, strings elsewhere (another language): content search still works, and
        // the mismatch is reported.
        let (mut moved, _) = synthetic(Some([6, 0, 602, 0]), 0xd0000);
        moved[0xccbf2] = 0x90;
        let p = plan(&moved, &t).unwrap();
        assert!(
            p.warnings
                .iter()
                .any(|w| matches!(w, Warning::CatalogMismatch { .. }))
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| matches!(w, Warning::MultipleInstancesUnavailable { .. }))
        );
        assert!(!p.files[0].edits.is_empty());
    }

    #[test]
    fn old_clients_get_the_registry_server_value() {
        let (data, _) = synthetic(Some([4, 5, 121, 0]), 0x200);
        let t = Target::new("relive.test").unwrap();
        let p = plan(&data, &t).unwrap();
        assert_eq!(
            p.registry,
            vec![RegistryChange::set_messenger_service_server("relive.test")]
        );
        assert!(
            p.registry_file()
                .unwrap()
                .contains("\"Server\"=\"relive.test\"")
        );
    }

    #[test]
    fn synthetic_self_extractor_round_trip() {
        let (client, _) = synthetic(Some([5, 0, 544, 0]), 0x200);
        let mut b = cab::CabinetBuilder::new();
        b.add_folder(cab::CompressionType::MsZip)
            .add_file("msnmsgr.exe");
        let mut w = b.build(std::io::Cursor::new(Vec::new())).unwrap();
        while let Some(mut f) = w.next_file().unwrap() {
            std::io::Write::write_all(&mut f, &client).unwrap();
        }
        let cab = w.finish().unwrap().into_inner();
        let sfx = synth::build(&synth::Spec {
            is_64: true,
            text_size: 0x200,
            rdata: Vec::new(),
            version: None,
            cabinet: Some(cab),
        });
        let t = Target::new("relive.test").unwrap();
        let p = plan(&sfx, &t).unwrap();
        assert_eq!(p.kind, FileKind::SelfExtractor);
        assert_eq!(p.files[0].path, "msnmsgr.exe");
        let applied = apply(&sfx, &p, &mut |_| {}).unwrap();
        assert!(plan(&applied.bytes, &t).unwrap().is_noop());
    }
}
