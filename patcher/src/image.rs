//! Our own small view of a PE32/PE32+ image, over goblin (headers) and pelite (version info).
//!
//! The rest of the crate asks an [`Image`] for its sections, the client version, a resource,
//! and the file offsets of the header fields it rewrites (CheckSum, the Security directory,
//! NumberOfSections...); only `rsrc` also imports goblin and pelite, to re-parse its output
//! as an independent check. Swapping the PE library touches those two files. The editing
//! helpers here ([`strip_signature`], [`update_checksum`]) work on a `Vec<u8>` by offsets
//! found at parse time; rebuilding the resource section lives in `rsrc`.

use serde::Serialize;

use crate::PatchError;

/// Resource type id of `RT_RCDATA`.
const RT_RCDATA: u32 = 10;
/// Depth guard for the resource directory walk (type, name, language).
const MAX_RESOURCE_ENTRIES: usize = 4096;

/// One section header, as stored on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Name (up to 8 bytes, NULs trimmed).
    pub name: String,
    /// RVA of the section.
    pub virtual_address: u32,
    /// Size in memory.
    pub virtual_size: u32,
    /// File offset of the raw data.
    pub raw_offset: u32,
    /// Size of the raw data on disk.
    pub raw_size: u32,
}

impl Section {
    /// The file byte range of the raw data, clipped to a file of `len` bytes.
    pub fn raw_range(&self, len: usize) -> std::ops::Range<usize> {
        let start = (self.raw_offset as usize).min(len);
        let end = start.saturating_add(self.raw_size as usize).min(len);
        start..end
    }
}

/// A client build number as stored in `VS_FIXEDFILEINFO` (`major.minor.build.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FileVersion {
    /// Major version (MSN 7.0 → 7).
    pub major: u16,
    /// Minor version (MSN 7.0 → 0).
    pub minor: u16,
    /// Build (MSN 7.0.0813 → 813).
    pub build: u16,
    /// Fourth field, usually 0.
    pub patch: u16,
}

impl std::fmt::Display for FileVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{:04}", self.major, self.minor, self.build)?;
        if self.patch != 0 {
            write!(f, ".{}", self.patch)?;
        }
        Ok(())
    }
}

/// Where a resource's data lives and where its directory entry is, for in-place rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLocation {
    /// File offset of the `IMAGE_RESOURCE_DATA_ENTRY` (RVA u32, Size u32, ...).
    pub entry_offset: usize,
    /// RVA of the data.
    pub data_rva: u32,
    /// File offset of the data.
    pub data_offset: usize,
    /// Size of the data in bytes.
    pub size: usize,
}

/// A parsed PE image borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    data: &'a [u8],
    is_64: bool,
    machine: u16,
    file_header: usize,
    optional_header: usize,
    section_table: usize,
    sections: Vec<Section>,
    section_alignment: u32,
    file_alignment: u32,
    size_of_headers: u32,
}

fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn write_u32(data: &mut [u8], at: usize, v: u32) -> Option<()> {
    data.get_mut(at..at.checked_add(4)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

/// Whether pelite 0.10 can read an image without undefined behaviour. It turns header
/// offsets into references and slices after checking only some of the alignments its
/// structures need: an odd `SizeOfOptionalHeader` (which goblin and Windows accept) puts the
/// section table off its 4-byte alignment and pelite builds a misaligned slice of it, and a
/// PE32+ header at an offset that is 4- but not 8-aligned is a misaligned `u64` read (both
/// found by fuzzing; debug builds abort on them). Every image MSN ships passes: its buffer
/// comes from the allocator (8-aligned), `e_lfanew` is a multiple of 8, and the optional
/// header has its standard size (0xE0 or 0xF0). Images that do not are read without pelite.
pub(crate) fn pelite_can_read(
    data: &[u8],
    is_64: bool,
    nt_headers: usize,
    section_table: usize,
) -> bool {
    let align = if is_64 { 8 } else { 4 };
    let base = data.as_ptr() as usize;
    base.is_multiple_of(align)
        && nt_headers.is_multiple_of(align)
        && section_table.is_multiple_of(4)
}

fn malformed(what: &str) -> PatchError {
    PatchError::NotPe {
        reason: format!("malformed PE header ({what})"),
    }
}

impl<'a> Image<'a> {
    /// Parses the headers of a PE32 or PE32+ image.
    ///
    /// # Errors
    /// [`PatchError::NotPe`] when the bytes are not a PE image goblin accepts.
    pub fn parse(data: &'a [u8]) -> Result<Self, PatchError> {
        if data.get(..2) != Some(b"MZ") {
            return Err(PatchError::NotPe {
                reason: "no MZ header".into(),
            });
        }
        // RVAs are resolved through the section table, as for any file on disk: read as file
        // offsets (`resolve_rva = false`, meant for images mapped by a loader), goblin misread
        // the data directories it walks and warned about each (base relocations "exceeding
        // the bytes") on every parse.
        let mut opts = goblin::pe::options::ParseOptions::default()
            .with_parse_mode(goblin::pe::options::ParseMode::Permissive)
            .with_parse_imports(false)
            .with_parse_resources(false)
            .with_parse_tls_data(false);
        opts.parse_attribute_certificates = false;
        let pe = goblin::pe::PE::parse_with_opts(data, &opts).map_err(|e| PatchError::NotPe {
            reason: e.to_string(),
        })?;
        let opt = pe
            .header
            .optional_header
            .ok_or_else(|| malformed("no optional header"))?;
        let e_lfanew = read_u32(data, 0x3c).ok_or_else(|| malformed("e_lfanew"))? as usize;
        let file_header = e_lfanew
            .checked_add(4)
            .ok_or_else(|| malformed("e_lfanew"))?;
        let optional_header = file_header + 20;
        let size_opt = usize::from(pe.header.coff_header.size_of_optional_header);
        let section_table = optional_header + size_opt;
        let sections = pe
            .sections
            .iter()
            .map(|s| Section {
                name: String::from_utf8_lossy(&s.name)
                    .trim_end_matches('\0')
                    .to_string(),
                virtual_address: s.virtual_address,
                virtual_size: s.virtual_size,
                raw_offset: s.pointer_to_raw_data,
                raw_size: s.size_of_raw_data,
            })
            .collect();
        Ok(Self {
            data,
            is_64: pe.is_64,
            machine: pe.header.coff_header.machine,
            file_header,
            optional_header,
            section_table,
            sections,
            section_alignment: opt.windows_fields.section_alignment,
            file_alignment: opt.windows_fields.file_alignment,
            size_of_headers: opt.windows_fields.size_of_headers,
        })
    }

    /// The bytes the image was parsed from.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// True for PE32+ (64-bit) images.
    pub fn is_64(&self) -> bool {
        self.is_64
    }

    /// The COFF machine field (0x14c i386, 0x8664 x64).
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// The section headers.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// `(SectionAlignment, FileAlignment)` from the optional header.
    pub(crate) fn alignments(&self) -> (u32, u32) {
        (self.section_alignment, self.file_alignment)
    }

    /// File offset of the COFF file header (just after the `PE\0\0` signature).
    pub(crate) fn file_header_offset(&self) -> usize {
        self.file_header
    }

    /// File offset of the optional header.
    pub(crate) fn optional_header_offset(&self) -> usize {
        self.optional_header
    }

    /// File offset of the section table.
    pub(crate) fn section_table_offset(&self) -> usize {
        self.section_table
    }

    /// File offset of the CheckSum field (same place in PE32 and PE32+).
    pub fn checksum_offset(&self) -> usize {
        self.optional_header + 64
    }

    /// The CheckSum value stored in the header.
    pub fn stored_checksum(&self) -> u32 {
        read_u32(self.data, self.checksum_offset()).unwrap_or(0)
    }

    /// File offset of data directory `index`, if the header has that many entries.
    pub(crate) fn data_directory_offset(&self, index: usize) -> Option<usize> {
        let (count_at, dirs_at) = if self.is_64 { (108, 112) } else { (92, 96) };
        let count = read_u32(self.data, self.optional_header + count_at)? as usize;
        if index >= count {
            return None;
        }
        let at = self.optional_header + dirs_at + index * 8;
        (at + 8 <= self.section_table).then_some(at)
    }

    /// `(address, size)` of data directory `index`, if present and non-empty.
    pub(crate) fn data_directory(&self, index: usize) -> Option<(u32, u32)> {
        let at = self.data_directory_offset(index)?;
        let rva = read_u32(self.data, at)?;
        let size = read_u32(self.data, at + 4)?;
        (rva != 0 && size != 0).then_some((rva, size))
    }

    /// The Authenticode certificate table as a file range, if the image is signed.
    pub fn signature_range(&self) -> Option<std::ops::Range<usize>> {
        let (offset, size) = self.data_directory(4)?;
        let start = offset as usize;
        let end = start.checked_add(size as usize)?;
        Some(start..end)
    }

    /// Maps an RVA to a file offset through the section table.
    pub fn rva_to_offset(&self, rva: u32) -> Option<usize> {
        if rva < self.size_of_headers {
            return Some(rva as usize);
        }
        self.sections.iter().find_map(|s| {
            let span = s.virtual_size.max(s.raw_size);
            let delta = rva.checked_sub(s.virtual_address)?;
            (delta < span && delta < s.raw_size).then(|| s.raw_offset as usize + delta as usize)
        })
    }

    /// A packer recognised from section names (UPX, ASPack, PECompact, MPRESS...).
    pub fn packer(&self) -> Option<&'static str> {
        const PACKERS: &[(&str, &str)] = &[
            ("UPX", "UPX"),
            (".aspack", "ASPack"),
            (".adata", "ASPack"),
            ("PEC2", "PECompact"),
            ("pec1", "PECompact"),
            (".MPRESS", "MPRESS"),
            (".petite", "Petite"),
            ("FSG!", "FSG"),
        ];
        self.sections.iter().find_map(|s| {
            PACKERS
                .iter()
                .find(|(prefix, _)| s.name.starts_with(prefix))
                .map(|(_, name)| *name)
        })
    }

    /// pelite's view of the resources, when pelite can read them without undefined behaviour:
    /// the headers as [`pelite_can_read`] says, and the resource data starting 4-aligned in
    /// memory (pelite checks the alignment of resource structures only relative to that
    /// start; a resource directory at an odd file offset made it read a misaligned `u32`,
    /// found by fuzzing).
    pub(crate) fn pelite_resources(&self) -> Option<pelite::resources::Resources<'a>> {
        if !self.pelite_can_read() {
            return None;
        }
        // The parser of the image's own kind: pelite's `Wrap` tries PE32+ first and would
        // read a PE32 header at a 4-aligned offset as 8-aligned PE32+ structures.
        macro_rules! resources {
            ($kind:ident) => {{
                use pelite::$kind::Pe as _;
                let pe = pelite::$kind::PeFile::from_bytes(self.data).ok()?;
                let dir = pe
                    .data_directory()
                    .get(pelite::image::IMAGE_DIRECTORY_ENTRY_RESOURCE)?;
                // Where pelite will read the resources from (its own alignment check is made
                // on the RVA, not on the file offset it reads).
                let start = pe.slice_bytes(dir.VirtualAddress).ok()?;
                if !(start.as_ptr() as usize).is_multiple_of(4) {
                    return None;
                }
                pe.resources().ok()
            }};
        }
        if self.is_64 {
            resources!(pe64)
        } else {
            resources!(pe32)
        }
    }

    /// Whether pelite may read this image's headers: see [`pelite_can_read`].
    pub(crate) fn pelite_can_read(&self) -> bool {
        pelite_can_read(
            self.data,
            self.is_64,
            self.file_header - 4,
            self.section_table,
        )
    }

    /// The `FILEVERSION` from the version resource, if there is one.
    pub fn file_version(&self) -> Option<FileVersion> {
        let info = self.pelite_resources()?.version_info().ok()?;
        let fixed = info.fixed()?;
        let v = fixed.dwFileVersion;
        Some(FileVersion {
            major: v.Major,
            minor: v.Minor,
            // pelite names the two LS words in memory order: `Patch` is the high word
            // (FILEVERSION's third number), `Build` the low word (the fourth).
            build: v.Patch,
            patch: v.Build,
        })
    }

    /// Finds an `RT_RCDATA` resource by (case-insensitive) name, first language.
    pub fn find_rcdata(&self, name: &str) -> Option<ResourceLocation> {
        let (root_rva, _) = self.data_directory(2)?;
        let root = self.rva_to_offset(root_rva)?;
        let mut budget = MAX_RESOURCE_ENTRIES;
        let by_type = self.resource_entry(root, root, &ResName::Id(RT_RCDATA), &mut budget)?;
        let by_name = self.resource_entry(root, by_type?, &ResName::Name(name), &mut budget)?;
        let lang = self.first_entry(root, by_name?)?;
        let entry_offset = match lang {
            Child::Data(at) => at,
            Child::Dir => return None,
        };
        let data_rva = read_u32(self.data, entry_offset)?;
        let size = read_u32(self.data, entry_offset + 4)? as usize;
        let data_offset = self.rva_to_offset(data_rva)?;
        (data_offset.checked_add(size)? <= self.data.len()).then_some(ResourceLocation {
            entry_offset,
            data_rva,
            data_offset,
            size,
        })
    }

    /// Looks one level down a resource directory for `wanted`; `Some(None)` means "no such
    /// entry", `None` means "malformed". Returns the file offset of the subdirectory.
    fn resource_entry(
        &self,
        root: usize,
        dir: usize,
        wanted: &ResName<'_>,
        budget: &mut usize,
    ) -> Option<Option<usize>> {
        let named = usize::from(read_u16(self.data, dir + 12)?);
        let ids = usize::from(read_u16(self.data, dir + 14)?);
        for i in 0..named + ids {
            *budget = budget.checked_sub(1)?;
            let at = dir + 16 + i * 8;
            let name_field = read_u32(self.data, at)?;
            let target = read_u32(self.data, at + 4)?;
            let matches = match wanted {
                ResName::Id(id) => name_field & 0x8000_0000 == 0 && name_field == *id,
                ResName::Name(want) => {
                    name_field & 0x8000_0000 != 0
                        && self
                            .resource_name(root + (name_field & 0x7fff_ffff) as usize)
                            .is_some_and(|n| n.eq_ignore_ascii_case(want))
                }
            };
            if matches {
                if target & 0x8000_0000 == 0 {
                    return None;
                }
                return Some(Some(root + (target & 0x7fff_ffff) as usize));
            }
        }
        Some(None)
    }

    /// The first child of a resource directory.
    fn first_entry(&self, root: usize, dir: usize) -> Option<Child> {
        let count = usize::from(read_u16(self.data, dir + 12)?)
            + usize::from(read_u16(self.data, dir + 14)?);
        if count == 0 {
            return None;
        }
        let target = read_u32(self.data, dir + 16 + 4)?;
        let at = root + (target & 0x7fff_ffff) as usize;
        Some(if target & 0x8000_0000 != 0 {
            Child::Dir
        } else {
            Child::Data(at)
        })
    }

    /// Reads an `IMAGE_RESOURCE_DIR_STRING_U` (u16 length, UTF-16 units).
    fn resource_name(&self, at: usize) -> Option<String> {
        let len = usize::from(read_u16(self.data, at)?);
        let bytes = self.data.get(at + 2..at + 2 + len * 2)?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(String::from_utf16_lossy(&units))
    }

    /// Recomputes the PE checksum for these bytes (the CheckSum field itself is skipped).
    pub fn compute_checksum(&self) -> u32 {
        pe_checksum(self.data, self.checksum_offset())
    }

    /// Room for one more section header between the section table and the first raw data.
    pub(crate) fn has_room_for_section(&self) -> bool {
        let end = self.section_table + (self.sections.len() + 1) * 40;
        let first_raw = self
            .sections
            .iter()
            .filter(|s| s.raw_size > 0)
            .map(|s| s.raw_offset as usize)
            .min()
            .unwrap_or(usize::MAX);
        end <= self.size_of_headers as usize
            && end <= first_raw
            && self
                .data
                .get(end - 40..end)
                .is_some_and(|b| b.iter().all(|&x| x == 0))
    }
}

/// A resource directory key.
enum ResName<'n> {
    Id(u32),
    Name(&'n str),
}

/// A resource directory child.
enum Child {
    Dir,
    Data(usize),
}

/// The PE checksum: 16-bit one's-complement-style sum with carry folding, plus the length.
///
/// The 4-byte CheckSum field at `checksum_at` is treated as zero; an odd trailing byte is
/// padded with zero. This is what `imagehlp!CheckSumMappedFile` and GNU ld compute.
pub fn pe_checksum(data: &[u8], checksum_at: usize) -> u32 {
    let mut sum: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for (i, c) in chunks.by_ref().enumerate() {
        let at = i * 2;
        if at >= checksum_at && at < checksum_at + 4 {
            continue;
        }
        sum += u64::from(u16::from_le_bytes([c[0], c[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    // The file length is added modulo 2^32, as the Windows implementation does.
    ((sum as u32) & 0xffff).wrapping_add(data.len() as u32)
}

/// Removes the Authenticode signature: zeroes the Security directory and drops the
/// certificate table. Returns true when a signature was present.
///
/// With `keep_size` false the file is truncated when the table is its tail; with `keep_size`
/// true the table is overwritten with zeros instead and the length stays the same. Members of
/// cabinets use the latter: a client whose length does not change leaves every compressed
/// block after it in its folder (and the MSI `File.FileSize`) untouched.
///
/// # Errors
/// [`PatchError::NotPe`] when `data` does not parse.
pub fn strip_signature(data: &mut Vec<u8>, keep_size: bool) -> Result<bool, PatchError> {
    let image = Image::parse(data)?;
    let Some(dir) = image.data_directory_offset(4) else {
        return Ok(false);
    };
    let range = image.signature_range();
    let had = range.is_some();
    if let Some(range) = range {
        let last_raw_end = image
            .sections
            .iter()
            .map(|s| s.raw_range(data.len()).end)
            .max()
            .unwrap_or(0);
        // The table lies after every section: drop it (and any zero padding behind it).
        if range.start >= last_raw_end && range.start <= data.len() {
            let end = range.end.min(data.len());
            if keep_size {
                data[range.start..end].fill(0);
            } else if data[end..].iter().all(|&b| b == 0) {
                data.truncate(range.start);
            }
        }
    }
    write_u32(data, dir, 0).ok_or_else(|| malformed("security directory"))?;
    write_u32(data, dir + 4, 0).ok_or_else(|| malformed("security directory"))?;
    Ok(had)
}

/// Recomputes and stores the PE checksum.
///
/// # Errors
/// [`PatchError::NotPe`] when `data` does not parse.
pub fn update_checksum(data: &mut [u8]) -> Result<u32, PatchError> {
    let image = Image::parse(data)?;
    let at = image.checksum_offset();
    let sum = image.compute_checksum();
    write_u32(data, at, sum).ok_or_else(|| malformed("checksum"))?;
    Ok(sum)
}

/// Rewrites a resource data entry to point at `rva` with `size` bytes.
pub(crate) fn set_resource_entry(
    data: &mut [u8],
    loc: &ResourceLocation,
    rva: u32,
    size: u32,
) -> Result<(), PatchError> {
    write_u32(data, loc.entry_offset, rva).ok_or_else(|| malformed("resource entry"))?;
    write_u32(data, loc.entry_offset + 4, size).ok_or_else(|| malformed("resource entry"))
}

/// Rounds `v` up to a multiple of `a` (an alignment of 0 counts as 1).
pub(crate) fn align_up(v: u64, a: u32) -> u64 {
    let a = u64::from(a.max(1));
    v.div_ceil(a) * a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic image with a 4 KiB certificate table at its tail.
    fn signed_image() -> Vec<u8> {
        let mut pe = crate::synth::build(&crate::synth::Spec {
            text_size: 0x1000,
            ..Default::default()
        });
        let at = pe.len();
        pe.extend_from_slice(&[0x5a; 4096]);
        let dir = Image::parse(&pe).unwrap().data_directory_offset(4).unwrap();
        write_u32(&mut pe, dir, at as u32).unwrap();
        write_u32(&mut pe, dir + 4, 4096).unwrap();
        assert!(Image::parse(&pe).unwrap().signature_range().is_some());
        pe
    }

    #[test]
    fn stripping_truncates_a_file_but_keeps_a_members_length() {
        let signed = signed_image();
        let mut bare = signed.clone();
        assert!(strip_signature(&mut bare, false).unwrap());
        assert_eq!(bare.len(), signed.len() - 4096);
        let mut member = signed.clone();
        assert!(strip_signature(&mut member, true).unwrap());
        assert_eq!(member.len(), signed.len());
        assert!(member[bare.len()..].iter().all(|&b| b == 0));
        assert_eq!(member[..bare.len()], bare[..]);
        for out in [&bare, &member] {
            assert!(Image::parse(out).unwrap().signature_range().is_none());
        }
    }

    #[test]
    fn checksum_skips_its_field_and_adds_length() {
        // Words: 0x0201, [4-byte field skipped], 0x0605 ; length 8.
        let data = [1u8, 2, 0xff, 0xff, 0xff, 0xff, 5, 6];
        assert_eq!(pe_checksum(&data, 2), 0x0201 + 0x0605 + 8);
        // Odd tail byte counts as a low byte.
        let data = [1u8, 0, 0, 0, 0, 0, 7];
        assert_eq!(pe_checksum(&data, 2), 1 + 7 + 7);
    }

    #[test]
    fn checksum_folds_carries() {
        let data = [0xffu8, 0xff, 0, 0, 0, 0, 0x02, 0x00];
        // 0xffff + 2 = 0x10001 → folded 0x0002.
        assert_eq!(pe_checksum(&data, 2), 2 + 8);
    }

    #[test]
    fn rejects_non_pe() {
        assert!(matches!(
            Image::parse(b"hello"),
            Err(PatchError::NotPe { .. })
        ));
        assert!(matches!(Image::parse(b"MZ"), Err(PatchError::NotPe { .. })));
    }

    #[test]
    fn version_display() {
        let v = FileVersion {
            major: 7,
            minor: 0,
            build: 813,
            patch: 0,
        };
        assert_eq!(v.to_string(), "7.0.0813");
    }
}
