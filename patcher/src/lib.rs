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
//! - [`plan`](mod@plan): [`Target`], [`Plan`], [`Edit`] and the pure planner.
//! - [`registry`]: registry changes and the `.reg` file.
//! - [`apply`](mod@apply): applying and verifying a plan in memory.
//! - `container`: IExpress self-extractors, cabinets and MSI packages.
//! - [`file`](mod@file): the only I/O: backup, atomic write, restore.
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
pub use plan::{
    DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, Destination, Edit, FileKind, FilePlan, MSNP_PORT, Plan,
    Reason, SHORT_PATHS, Target, Warning,
};

use serde::Serialize;

use crate::container::Visitor;
use crate::image::{FileVersion, Image, Section};
use crate::scan::{Hit, Redirected};

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
    /// When no hit is left: where the file points after an earlier patch (empty for a file
    /// that was never patched, or that is not a client).
    pub points_to: Vec<Redirected>,
}

impl PeReport {
    /// The server an already patched file points at (the host of its first rewritten URL,
    /// else its first rewritten host string).
    pub fn patched_for(&self) -> Option<&str> {
        let first = self
            .points_to
            .iter()
            .find(|r| r.string.contains("://"))
            .or_else(|| self.points_to.first())?;
        let host = plan::origin_of(&first.string).map_or(first.string.as_str(), |origin| {
            let host_port = &origin[origin.find("://").map_or(0, |p| p + 3)..];
            host_port.split(':').next().unwrap_or(host_port)
        });
        Some(host)
    }
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

#[derive(Default)]
struct InspectVisitor {
    files: Vec<PeReport>,
    members: Vec<Member>,
}

fn pe_report(path: &str, image: &Image<'_>) -> PeReport {
    let version = image.file_version();
    let hits = scan::scan(image);
    let points_to = if hits.is_empty() {
        scan::redirected(image)
    } else {
        Vec::new()
    };
    PeReport {
        path: path.to_string(),
        size: image.data().len() as u64,
        is_64: image.is_64(),
        machine: image.machine(),
        version,
        build: version.and_then(catalog::lookup).map(|b| b.name),
        signed: image.signature_range().is_some(),
        checksum_ok: image.compute_checksum() == image.stored_checksum(),
        packer: image.packer(),
        sections: image.sections().to_vec(),
        hits,
        points_to,
    }
}

impl Visitor for InspectVisitor {
    fn pe(&mut self, path: &str, image: &Image<'_>) -> Result<Option<Vec<u8>>, PatchError> {
        self.files.push(pe_report(path, image));
        Ok(None)
    }

    fn extractor(&mut self, image: &Image<'_>) {
        // The extractor itself: signature and checksum matter for it too.
        self.files.push(pe_report("", image));
    }

    fn member(&mut self, path: &str, size: u64) {
        self.members.push(Member {
            path: path.to_string(),
            size,
        });
    }
}

impl InspectVisitor {
    fn finish(self, kind: FileKind) -> Inspection {
        Inspection {
            kind,
            members: self.members,
            files: self.files,
        }
    }
}

/// Inspects a file: its kind, installer members, and every PE with its endpoint hits (or,
/// once patched, where it points).
///
/// # Errors
/// [`PatchError::NotPe`] for files that are neither PE nor MSI, [`PatchError::Installer`]
/// for broken installers.
pub fn inspect(data: &[u8]) -> Result<Inspection, PatchError> {
    let mut visitor = InspectVisitor::default();
    let (kind, _) = container::walk(data, &mut visitor, &mut |_| {})?;
    Ok(visitor.finish(kind))
}

struct PlanVisitor<'t> {
    target: &'t Target,
    files: Vec<FilePlan>,
    warnings: Vec<Warning>,
    /// The self-extractor around the members is signed.
    extractor_signed: bool,
    /// A member with no MSN address left points at this other server.
    patched_for: Option<String>,
}

impl<'t> PlanVisitor<'t> {
    fn new(target: &'t Target) -> Self {
        Self {
            target,
            files: Vec::new(),
            warnings: Vec::new(),
            extractor_signed: false,
            patched_for: None,
        }
    }

    /// The plan from what the walk saw of `data`.
    fn finish(mut self, data: &[u8], kind: FileKind) -> Result<Plan, PatchError> {
        if self.files.is_empty() {
            return Err(match self.patched_for {
                Some(host) => PatchError::PatchedForAnotherServer {
                    path: String::new(),
                    host,
                },
                None => PatchError::NoEndpoints {
                    path: String::new(),
                },
            });
        }
        let signed = match kind {
            FileKind::Executable => false,
            FileKind::SelfExtractor => self.extractor_signed,
            FileKind::Msi => container::is_signed(data),
        };
        if signed {
            self.warnings.push(Warning::SignatureRemoved {
                path: String::new(),
            });
        }
        self.warnings.extend(plan::login_elsewhere(&self.files));
        // A known client build decides; else the first version in MSN's range (a DLL next to
        // the client may carry a version of its own).
        let client_version = self
            .files
            .iter()
            .find_map(|f| f.version.filter(|v| catalog::lookup(*v).is_some()))
            .or_else(|| {
                self.files
                    .iter()
                    .find_map(|f| f.version.filter(|v| catalog::is_msn_range(*v)))
            });
        Ok(Plan {
            target: self.target.clone(),
            kind,
            registry: plan::registry_changes(client_version, self.target),
            files: self.files,
            warnings: self.warnings,
        })
    }
}

impl Visitor for PlanVisitor<'_> {
    fn pe(&mut self, path: &str, image: &Image<'_>) -> Result<Option<Vec<u8>>, PatchError> {
        let mut warnings = Vec::new();
        let file = plan::plan_image(image, path, self.target, &mut warnings)?;
        if file.hits > 0 || file.already_patched || !file.edits.is_empty() {
            self.files.push(file);
            self.warnings.extend(warnings);
        } else if self.patched_for.is_none() {
            self.patched_for = pe_report(path, image).patched_for().map(str::to_owned);
        }
        Ok(None)
    }

    fn extractor(&mut self, image: &Image<'_>) {
        self.extractor_signed = image.signature_range().is_some();
    }
}

/// Builds the plan for pointing a file (executable or installer) at `target`. Pure.
///
/// # Errors
/// [`PatchError::NoEndpoints`] when nothing to patch was found and the file does not
/// already point at the target; [`PatchError::PatchedForAnotherServer`] when it points at
/// another server already; [`PatchError::DoesNotFit`] when a string would grow;
/// [`PatchError::Packed`], [`PatchError::NotPe`], [`PatchError::Installer`].
pub fn plan(data: &[u8], target: &Target) -> Result<Plan, PatchError> {
    let mut visitor = PlanVisitor::new(target);
    let (kind, _) = container::walk(data, &mut visitor, &mut |_| {})?;
    visitor.finish(data, kind)
}

/// [`inspect`] and, with a target, [`plan`](fn@plan) in one walk: every PE is parsed once (what a
/// front end does when a file is opened). The plan's own errors come back in its slot.
///
/// # Errors
/// As [`inspect`].
pub fn inspect_and_plan(
    data: &[u8],
    target: Option<&Target>,
) -> Result<(Inspection, Option<Result<Plan, PatchError>>), PatchError> {
    let mut inspect = InspectVisitor::default();
    let Some(target) = target else {
        let (kind, _) = container::walk(data, &mut inspect, &mut |_| {})?;
        return Ok((inspect.finish(kind), None));
    };
    let mut planner = PlanVisitor::new(target);
    let mut both = container::Both {
        first: &mut inspect,
        second: &mut planner,
        second_error: None,
    };
    let (kind, _) = container::walk(data, &mut both, &mut |_| {})?;
    let plan = match both.second_error.take() {
        Some(error) => Err(error),
        None => planner.finish(data, kind),
    };
    Ok((inspect.finish(kind), Some(plan)))
}

/// Replaces the `RCDATA/CABINET` of a self-extractor with `cab` (in place when it fits,
/// otherwise by rebuilding the resource section: grown in place when it is the last
/// section, moved to a new last `.rsrc` section otherwise), strips the signature and
/// recomputes the checksum.
/// [`apply`](fn@apply) does this itself; this is the building block, for tools and tests.
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
    use crate::scan::{Encoding, Endpoint};

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
                    "https://relive.test:8443/rdr/pprdr.asp"
                ),
                (
                    (rdata + at[4].0) as u64,
                    Some(Encoding::Utf16Le),
                    "http://config.messenger.msn.com/Config/MsgrConfig.asmx",
                    "http://relive.test:8080/Config/MsgrConfig.asmx"
                ),
            ]
        );
        let e = &p.files[0].edits[0];
        assert_eq!(e.after, b"relive.test\0\0\0\0\0\0\0\0\0\0".to_vec());
        assert!(p.registry.is_empty(), "0.1 is not an MSN version");
        assert_eq!(
            p.destinations()
                .iter()
                .map(|d| (d.endpoint, d.address.as_str()))
                .collect::<Vec<_>>(),
            [
                (Endpoint::NotificationServer, "relive.test:1863"),
                (Endpoint::Nexus, "https://relive.test:8443"),
                (Endpoint::Config, "http://relive.test:8080"),
            ]
        );
        let applied = apply(&data, &p, &mut |_| {}).unwrap();
        assert_eq!(applied.bytes.len(), data.len());
        assert!(plan(&applied.bytes, &t).unwrap().is_noop());

        // Patched, the file says where it points; planned for another server, it says so.
        let report = inspect(&applied.bytes).unwrap();
        let pe = &report.files[0];
        assert!(pe.hits.is_empty());
        assert_eq!(pe.patched_for(), Some("relive.test"));
        let points: Vec<(Endpoint, Encoding, &str)> = pe
            .points_to
            .iter()
            .map(|r| (r.endpoint, r.encoding, r.string.as_str()))
            .collect();
        assert_eq!(
            points,
            [
                (Endpoint::NotificationServer, Encoding::Ascii, "relive.test"),
                (Endpoint::NotificationServer, Encoding::Ascii, "relive.test"),
                (
                    Endpoint::Nexus,
                    Encoding::Ascii,
                    "https://relive.test:8443/rdr/pprdr.asp"
                ),
                (
                    Endpoint::Config,
                    Encoding::Utf16Le,
                    "http://relive.test:8080/Config/MsgrConfig.asmx"
                ),
            ]
        );
        assert!(matches!(
            plan(&applied.bytes, &Target::new("other.test").unwrap()),
            Err(PatchError::PatchedForAnotherServer { host, .. }) if host == "relive.test"
        ));
        // An unpatched file points nowhere yet.
        assert!(inspect(&data).unwrap().files[0].points_to.is_empty());
    }

    #[test]
    fn opening_inspects_and_plans_in_one_walk() {
        let (data, _) = synthetic(Some([6, 0, 602, 0]), 0x200);
        let t = Target::new("relive.test").unwrap();
        let (inspection, planned) = inspect_and_plan(&data, Some(&t)).unwrap();
        assert_eq!(inspection, inspect(&data).unwrap());
        assert_eq!(planned.unwrap().unwrap(), plan(&data, &t).unwrap());
        let (alone, none) = inspect_and_plan(&data, None).unwrap();
        assert_eq!((alone, none.is_none()), (inspection, true));
        // A plan that fails leaves the inspection whole.
        let long = Target::new(&"x".repeat(40)).unwrap();
        let (inspection, planned) = inspect_and_plan(&data, Some(&long)).unwrap();
        assert!(!inspection.files[0].hits.is_empty());
        assert!(matches!(planned, Some(Err(PatchError::DoesNotFit { .. }))));
        assert!(matches!(
            inspect_and_plan(b"not a pe", Some(&t)),
            Err(PatchError::NotPe { .. })
        ));
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
