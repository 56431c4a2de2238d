//! Rebuilding the resource section (`.rsrc`) of a PE image with one resource replaced.
//!
//! Used when a self-extractor's rebuilt `RCDATA/CABINET` no longer fits where the old one
//! was. The whole resource tree (types, names, languages; numeric and named ids; data
//! entries; the name strings) is parsed from the image, the one resource is swapped, and a
//! new section body is serialised in the layout the Microsoft tools use: all directory
//! tables (breadth first), then the name strings, then the data entries (4-byte aligned),
//! then the data blobs (8-byte aligned). RVAs are computed for where the body will live.
//!
//! When the resource section is the last section of the image it grows in place
//! (VirtualSize, SizeOfRawData, SizeOfImage and the RESOURCE data directory are updated);
//! otherwise the body goes into a new last section named `.rsrc`, the old section is
//! renamed `.oldrsrc` and the bytes the old tree used in it are zeroed. Every other section
//! keeps its bytes. Afterwards the output is re-parsed with pelite and goblin and the whole
//! tree is compared with the original: every resource but the replaced one must be
//! byte-identical. Signature stripping and the checksum are the caller's business.

use std::collections::HashMap;
use std::ops::Range;

use crate::PatchError;
use crate::image::{Image, Section, align_up};

/// Index of the RESOURCE entry in the data directory.
const RESOURCE_DIRECTORY: usize = 2;
/// Resource type id of `RT_RCDATA`.
const RT_RCDATA: u32 = 10;
/// Deepest directory nesting accepted (Windows uses 3: type, name, language).
const MAX_DEPTH: usize = 8;
/// Most directory entries accepted in a whole tree.
const MAX_ENTRIES: usize = 65_536;
/// Name of the section the old resource section is renamed to when the tree moves.
const OLD_SECTION_NAME: &[u8; 8] = b".oldrsrc";
/// Name of the section that holds the rebuilt tree.
const SECTION_NAME: &[u8; 8] = b".rsrc\0\0\0";
/// Characteristics for a new section when the old one cannot be copied:
/// `IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ`.
const DEFAULT_CHARACTERISTICS: u32 = 0x4000_0040;

/// A directory entry key: a numeric id or a UTF-16 name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(u32),
    Name(Vec<u16>),
}

/// One `IMAGE_RESOURCE_DIRECTORY` with its entries, in their stored order.
#[derive(Debug)]
struct Dir<'a> {
    characteristics: u32,
    time_date_stamp: u32,
    major: u16,
    minor: u16,
    entries: Vec<(Key, Node<'a>)>,
}

/// What a directory entry points at.
#[derive(Debug)]
enum Node<'a> {
    Dir(Dir<'a>),
    Data(Data<'a>),
}

/// One `IMAGE_RESOURCE_DATA_ENTRY` and the bytes it points at.
#[derive(Debug)]
struct Data<'a> {
    bytes: &'a [u8],
    code_page: u32,
    reserved: u32,
}

fn bad(reason: impl std::fmt::Display) -> PatchError {
    PatchError::installer("resource", reason)
}

fn read_u16(data: &[u8], at: usize) -> Result<u16, PatchError> {
    at.checked_add(2)
        .and_then(|end| data.get(at..end))
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| bad("resource directory outside the file"))
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, PatchError> {
    at.checked_add(4)
        .and_then(|end| data.get(at..end))
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("resource directory outside the file"))
}

fn put_u16(out: &mut [u8], at: usize, v: u16) -> Result<(), PatchError> {
    at.checked_add(2)
        .and_then(|end| out.get_mut(at..end))
        .map(|b| b.copy_from_slice(&v.to_le_bytes()))
        .ok_or_else(|| bad("write outside the image"))
}

fn put_u32(out: &mut [u8], at: usize, v: u32) -> Result<(), PatchError> {
    at.checked_add(4)
        .and_then(|end| out.get_mut(at..end))
        .map(|b| b.copy_from_slice(&v.to_le_bytes()))
        .ok_or_else(|| bad("write outside the image"))
}

fn put_bytes(out: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), PatchError> {
    at.checked_add(bytes.len())
        .and_then(|end| out.get_mut(at..end))
        .map(|b| b.copy_from_slice(bytes))
        .ok_or_else(|| bad("write outside the image"))
}

fn to_u32(v: u64) -> Result<u32, PatchError> {
    u32::try_from(v).map_err(|_| PatchError::Unsupported {
        reason: "image would grow beyond 4 GiB".into(),
    })
}

/// Reads a resource tree, tracking the file ranges it occupies.
struct Reader<'i, 'a> {
    image: &'i Image<'a>,
    root_rva: u32,
    entries_left: usize,
    bytes_left: usize,
    used: Vec<Range<usize>>,
}

impl<'a> Reader<'_, 'a> {
    /// File bytes at `rva`, `len` long.
    fn bytes(&mut self, rva: u32, len: usize) -> Result<(usize, &'a [u8]), PatchError> {
        let data = self.image.data();
        let at = self
            .image
            .rva_to_offset(rva)
            .ok_or_else(|| bad("resource RVA outside every section"))?;
        let slice = at
            .checked_add(len)
            .and_then(|end| data.get(at..end))
            .ok_or_else(|| bad("resource outside the file"))?;
        self.used.push(at..at + len);
        Ok((at, slice))
    }

    /// File offset of the structure `rel` bytes into the tree, `len` bytes long.
    fn rel(&mut self, rel: u32, len: usize) -> Result<usize, PatchError> {
        let rva = self
            .root_rva
            .checked_add(rel)
            .ok_or_else(|| bad("resource offset overflows"))?;
        Ok(self.bytes(rva, len)?.0)
    }

    fn dir(&mut self, rel: u32, depth: usize) -> Result<Dir<'a>, PatchError> {
        if depth >= MAX_DEPTH {
            return Err(bad("resource directories nested too deep"));
        }
        let data = self.image.data();
        let at = self.rel(rel, 16)?;
        let named = usize::from(read_u16(data, at + 12)?);
        let ids = usize::from(read_u16(data, at + 14)?);
        let count = named + ids;
        self.entries_left = self
            .entries_left
            .checked_sub(count)
            .ok_or_else(|| bad("too many resource directory entries"))?;
        let entries_rel = rel
            .checked_add(16)
            .ok_or_else(|| bad("resource offset overflows"))?;
        let entries_at = self.rel(entries_rel, count * 8)?;
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let name_field = read_u32(data, entries_at + i * 8)?;
            let target = read_u32(data, entries_at + i * 8 + 4)?;
            let key = if name_field & 0x8000_0000 != 0 {
                Key::Name(self.name(name_field & 0x7fff_ffff)?)
            } else {
                Key::Id(name_field)
            };
            let node = if target & 0x8000_0000 != 0 {
                Node::Dir(self.dir(target & 0x7fff_ffff, depth + 1)?)
            } else {
                Node::Data(self.data(target)?)
            };
            entries.push((key, node));
        }
        Ok(Dir {
            characteristics: read_u32(data, at)?,
            time_date_stamp: read_u32(data, at + 4)?,
            major: read_u16(data, at + 8)?,
            minor: read_u16(data, at + 10)?,
            entries,
        })
    }

    /// An `IMAGE_RESOURCE_DIR_STRING_U`: u16 length, then that many UTF-16 units.
    fn name(&mut self, rel: u32) -> Result<Vec<u16>, PatchError> {
        let data = self.image.data();
        let at = self.rel(rel, 2)?;
        let len = usize::from(read_u16(data, at)?);
        let units_rel = rel
            .checked_add(2)
            .ok_or_else(|| bad("resource offset overflows"))?;
        let units_at = self.rel(units_rel, len * 2)?;
        (0..len).map(|i| read_u16(data, units_at + i * 2)).collect()
    }

    fn data(&mut self, rel: u32) -> Result<Data<'a>, PatchError> {
        let data = self.image.data();
        let at = self.rel(rel, 16)?;
        let rva = read_u32(data, at)?;
        let size = read_u32(data, at + 4)? as usize;
        self.bytes_left = self
            .bytes_left
            .checked_sub(size)
            .ok_or_else(|| bad("resource data larger than the file"))?;
        let (_, bytes) = if size == 0 {
            (0, &data[..0])
        } else {
            self.bytes(rva, size)?
        };
        Ok(Data {
            bytes,
            code_page: read_u32(data, at + 8)?,
            reserved: read_u32(data, at + 12)?,
        })
    }
}

/// The resource tree of `image`, and the file ranges its structures and data occupy.
fn parse<'a>(image: &Image<'a>) -> Result<(Dir<'a>, Vec<Range<usize>>), PatchError> {
    let (root_rva, _) = image
        .data_directory(RESOURCE_DIRECTORY)
        .ok_or_else(|| bad("no resource directory"))?;
    let mut reader = Reader {
        image,
        root_rva,
        entries_left: MAX_ENTRIES,
        // Shared blobs are legal, but more data than twice the file is not a real tree.
        bytes_left: image.data().len().saturating_mul(2),
        used: Vec::new(),
    };
    let root = reader.dir(0, 0)?;
    Ok((root, reader.used))
}

impl<'a> Dir<'a> {
    /// The first-language data of `RCDATA/<name>` (name compared case-insensitively).
    fn rcdata_mut(&mut self, name: &str) -> Option<&mut Data<'a>> {
        let by_type = self.entries.iter_mut().find_map(|(k, n)| match (k, n) {
            (Key::Id(RT_RCDATA), Node::Dir(d)) => Some(d),
            _ => None,
        })?;
        let by_name = by_type.entries.iter_mut().find_map(|(k, n)| match (k, n) {
            (Key::Name(units), Node::Dir(d))
                if String::from_utf16_lossy(units).eq_ignore_ascii_case(name) =>
            {
                Some(d)
            }
            _ => None,
        })?;
        match by_name.entries.first_mut() {
            Some((_, Node::Data(d))) => Some(d),
            _ => None,
        }
    }

    /// Every data leaf as `(path of keys, bytes, code page)`, depth first in stored order.
    fn leaves(&self, path: &mut Vec<Key>, out: &mut Vec<Leaf>) {
        for (key, node) in &self.entries {
            path.push(key.clone());
            match node {
                Node::Dir(d) => d.leaves(path, out),
                Node::Data(d) => out.push((path.clone(), d.bytes.to_vec(), d.code_page)),
            }
            path.pop();
        }
    }
}

/// A resource as the verifier sees it: key path, bytes, code page.
type Leaf = (Vec<Key>, Vec<u8>, u32);

/// Serialises `root` as a resource section body that will live at `base_rva`.
fn serialize(root: &Dir<'_>, base_rva: u32) -> Result<Vec<u8>, PatchError> {
    // Breadth-first order of directories; children are met again in the same order below.
    let mut dirs: Vec<&Dir<'_>> = vec![root];
    let mut i = 0;
    while let Some(dir) = dirs.get(i) {
        let children: Vec<&Dir<'_>> = dir
            .entries
            .iter()
            .filter_map(|(_, n)| match n {
                Node::Dir(d) => Some(d),
                Node::Data(_) => None,
            })
            .collect();
        dirs.extend(children);
        i += 1;
    }
    let mut dir_offsets = Vec::with_capacity(dirs.len());
    let mut at = 0usize;
    for dir in &dirs {
        dir_offsets.push(at);
        at += 16 + 8 * dir.entries.len();
    }
    // Name strings, each distinct name once, 2-byte aligned (directories are 8-aligned).
    let mut strings: Vec<u8> = Vec::new();
    let mut string_at: HashMap<&[u16], usize> = HashMap::new();
    let mut datas: Vec<&Data<'_>> = Vec::new();
    for dir in &dirs {
        for (key, node) in &dir.entries {
            if let Key::Name(units) = key
                && !string_at.contains_key(units.as_slice())
            {
                string_at.insert(units, at + strings.len());
                let len = u16::try_from(units.len()).map_err(|_| bad("resource name too long"))?;
                strings.extend(len.to_le_bytes());
                strings.extend(units.iter().flat_map(|u| u.to_le_bytes()));
            }
            if let Node::Data(d) = node {
                datas.push(d);
            }
        }
    }
    at += strings.len();
    let entries_start = at.next_multiple_of(8);
    let mut blob_offsets = Vec::with_capacity(datas.len());
    at = entries_start + 16 * datas.len();
    for d in &datas {
        at = at.next_multiple_of(8);
        blob_offsets.push(at);
        at += d.bytes.len();
    }
    let total = at;
    if total >= 0x8000_0000 || u64::from(base_rva) + total as u64 > u64::from(u32::MAX) {
        return Err(PatchError::Unsupported {
            reason: "resource section would exceed 2 GiB".into(),
        });
    }
    let mut out = vec![0u8; total];
    let strings_start = dir_offsets.last().map_or(0, |&o| {
        o + 16 + 8 * dirs.last().map_or(0, |d| d.entries.len())
    });
    out[strings_start..strings_start + strings.len()].copy_from_slice(&strings);

    let mut next_dir = 1;
    let mut next_data = 0;
    for (dir, &dir_at) in dirs.iter().zip(&dir_offsets) {
        let named = dir
            .entries
            .iter()
            .filter(|(k, _)| matches!(k, Key::Name(_)))
            .count();
        let ids = dir.entries.len() - named;
        put_u32(&mut out, dir_at, dir.characteristics)?;
        put_u32(&mut out, dir_at + 4, dir.time_date_stamp)?;
        put_u16(&mut out, dir_at + 8, dir.major)?;
        put_u16(&mut out, dir_at + 10, dir.minor)?;
        let too_many = || bad("too many entries in one resource directory");
        put_u16(
            &mut out,
            dir_at + 12,
            u16::try_from(named).map_err(|_| too_many())?,
        )?;
        put_u16(
            &mut out,
            dir_at + 14,
            u16::try_from(ids).map_err(|_| too_many())?,
        )?;
        // Named entries come first, as the loader's binary search expects; the stored order
        // is kept within each group. Directory and data children are numbered in the same
        // breadth-first order they were laid out in, so walk them in stored order.
        let order = dir
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| matches!(k, Key::Name(_)))
            .chain(
                dir.entries
                    .iter()
                    .enumerate()
                    .filter(|(_, (k, _))| matches!(k, Key::Id(_))),
            );
        let mut targets = Vec::with_capacity(dir.entries.len());
        for (_, node) in &dir.entries {
            targets.push(match node {
                Node::Dir(_) => {
                    let t = 0x8000_0000 | dir_offsets[next_dir] as u32;
                    next_dir += 1;
                    t
                }
                Node::Data(_) => {
                    let t = (entries_start + 16 * next_data) as u32;
                    next_data += 1;
                    t
                }
            });
        }
        for (slot, (index, (key, _))) in order.enumerate() {
            let entry_at = dir_at + 16 + 8 * slot;
            let name_field = match key {
                Key::Id(id) => *id,
                Key::Name(units) => 0x8000_0000 | string_at[units.as_slice()] as u32,
            };
            put_u32(&mut out, entry_at, name_field)?;
            put_u32(&mut out, entry_at + 4, targets[index])?;
        }
    }
    for (i, (d, &blob_at)) in datas.iter().zip(&blob_offsets).enumerate() {
        let entry_at = entries_start + 16 * i;
        put_u32(&mut out, entry_at, base_rva + blob_at as u32)?;
        put_u32(&mut out, entry_at + 4, d.bytes.len() as u32)?;
        put_u32(&mut out, entry_at + 8, d.code_page)?;
        put_u32(&mut out, entry_at + 12, d.reserved)?;
        out[blob_at..blob_at + d.bytes.len()].copy_from_slice(d.bytes);
    }
    Ok(out)
}

/// Where a rebuilt resource section went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The resource section was the last one and grew where it was.
    GrownInPlace,
    /// The tree moved to a new last section; the old one was blanked and renamed.
    Moved,
}

/// Replaces the first-language data of `RCDATA/<name>` with `new` by rebuilding the
/// resource section, then verifies the result (see the module documentation).
///
/// # Errors
/// [`PatchError::Installer`] when the resource tree is malformed or has no such resource,
/// [`PatchError::Unsupported`] when the image has no room for a section header or would
/// outgrow 4 GiB, [`PatchError::VerifyFailed`] when the re-parsed tree differs.
pub(crate) fn replace_rcdata(
    data: &[u8],
    name: &str,
    new: &[u8],
) -> Result<(Vec<u8>, Placement), PatchError> {
    let image = Image::parse(data)?;
    let (mut tree, used) = parse(&image)?;
    let mut expected = Vec::new();
    tree.leaves(&mut Vec::new(), &mut expected);
    let target = tree
        .rcdata_mut(name)
        .ok_or_else(|| bad(format!("no RCDATA/{name} resource")))?;
    target.bytes = new;
    let (root_rva, _) = image
        .data_directory(RESOURCE_DIRECTORY)
        .ok_or_else(|| bad("no resource directory"))?;
    let sections = image.sections();
    let index = sections
        .iter()
        .position(|s| {
            root_rva
                .checked_sub(s.virtual_address)
                .is_some_and(|d| d < s.virtual_size.max(s.raw_size) && d < s.raw_size)
        })
        .ok_or_else(|| bad("resource directory outside every section"))?;
    let old = &sections[index];
    let raw_end = |s: &Section| s.raw_range(data.len()).end;
    let last_raw_end = sections.iter().map(raw_end).max().unwrap_or(0);
    let last_virtual = sections.iter().map(|s| s.virtual_address).max();
    let (section_alignment, file_alignment) = image.alignments();
    let header_at = image.section_table_offset() + index * 40;

    let (mut out, placement) =
        if last_virtual == Some(old.virtual_address) && raw_end(old) == last_raw_end {
            let body = serialize(&tree, root_rva)?;
            let start = old.raw_offset as usize;
            let prefix = (root_rva - old.virtual_address) as usize;
            let mut content = data
                .get(start..start + prefix)
                .ok_or_else(|| bad("resource section outside the file"))?
                .to_vec();
            content.extend_from_slice(&body);
            let raw_size = align_up(content.len() as u64, file_alignment);
            let mut out = data[..start].to_vec();
            out.extend_from_slice(&content);
            out.resize(start + raw_size as usize, 0);
            out.extend_from_slice(&data[last_raw_end..]);
            put_u32(&mut out, header_at + 8, to_u32(content.len() as u64)?)?;
            put_u32(&mut out, header_at + 16, to_u32(raw_size)?)?;
            let dir_at = image
                .data_directory_offset(RESOURCE_DIRECTORY)
                .ok_or_else(|| bad("no resource directory"))?;
            put_u32(&mut out, dir_at + 4, to_u32(body.len() as u64)?)?;
            (out, Placement::GrownInPlace)
        } else {
            if !image.has_room_for_section() {
                return Err(PatchError::Unsupported {
                    reason: "no room in the PE header for another section".into(),
                });
            }
            let virtual_end = sections
                .iter()
                .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.raw_size)))
                .max()
                .unwrap_or(0);
            let va = to_u32(align_up(virtual_end, section_alignment))?;
            let body = serialize(&tree, va)?;
            let raw_at = align_up(last_raw_end as u64, file_alignment);
            let raw_size = align_up(body.len() as u64, file_alignment);
            let mut out = data[..last_raw_end].to_vec();
            out.resize(raw_at as usize, 0);
            out.extend_from_slice(&body);
            out.resize((raw_at + raw_size) as usize, 0);
            out.extend_from_slice(&data[last_raw_end..]);
            // Blank what the old tree used inside the old section, and rename that section.
            let old_range = old.raw_range(data.len());
            for r in &used {
                if r.start >= old_range.start && r.end <= old_range.end {
                    out[r.clone()].fill(0);
                }
            }
            let characteristics = read_u32(data, header_at + 36).unwrap_or(DEFAULT_CHARACTERISTICS);
            put_bytes(&mut out, header_at, OLD_SECTION_NAME)?;
            let new_header = image.section_table_offset() + sections.len() * 40;
            let mut header = [0u8; 40];
            header[..8].copy_from_slice(SECTION_NAME);
            header[8..12].copy_from_slice(&to_u32(body.len() as u64)?.to_le_bytes());
            header[12..16].copy_from_slice(&va.to_le_bytes());
            header[16..20].copy_from_slice(&to_u32(raw_size)?.to_le_bytes());
            header[20..24].copy_from_slice(&to_u32(raw_at)?.to_le_bytes());
            header[36..40].copy_from_slice(&characteristics.to_le_bytes());
            put_bytes(&mut out, new_header, &header)?;
            let count = u16::try_from(sections.len() + 1).map_err(|_| PatchError::Unsupported {
                reason: "too many sections".into(),
            })?;
            put_u16(&mut out, image.file_header_offset() + 2, count)?;
            let dir_at = image
                .data_directory_offset(RESOURCE_DIRECTORY)
                .ok_or_else(|| bad("no resource directory"))?;
            put_u32(&mut out, dir_at, va)?;
            put_u32(&mut out, dir_at + 4, to_u32(body.len() as u64)?)?;
            (out, Placement::Moved)
        };

    // SizeOfImage from the updated section table.
    let size_of_image = Image::parse(&out)?
        .sections()
        .iter()
        .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.raw_size)))
        .max()
        .unwrap_or(0);
    put_u32(
        &mut out,
        image.optional_header_offset() + 56,
        to_u32(align_up(size_of_image, section_alignment))?,
    )?;

    for leaf in &mut expected {
        if is_rcdata(&leaf.0, name) {
            leaf.1 = new.to_vec();
            break;
        }
    }
    verify(&out, &expected)?;
    Ok((out, placement))
}

/// True when `path` is `RCDATA/<name>/<language>`.
fn is_rcdata(path: &[Key], name: &str) -> bool {
    matches!(path, [Key::Id(RT_RCDATA), Key::Name(n), _]
        if String::from_utf16_lossy(n).eq_ignore_ascii_case(name))
}

fn verify_failed(reason: impl Into<String>) -> PatchError {
    PatchError::VerifyFailed {
        reason: reason.into(),
    }
}

/// Re-parses `out` with pelite (whole tree) and goblin (headers and root directory) and
/// checks the tree holds exactly `expected`, in the same order.
fn verify(out: &[u8], expected: &[Leaf]) -> Result<(), PatchError> {
    let image = Image::parse(out)
        .map_err(|e| verify_failed(format!("the rebuilt image does not parse: {e}")))?;
    let resources = image.pelite_resources().ok_or_else(|| {
        verify_failed("pelite cannot read the rebuilt image's resources (or not aligned)")
    })?;
    let root = resources
        .root()
        .map_err(|e| verify_failed(format!("pelite cannot read the resource root: {e}")))?;
    let mut got = Vec::new();
    walk_pelite(root, &mut Vec::new(), &mut got, 0)?;
    if got.len() != expected.len() {
        return Err(verify_failed(format!(
            "{} resources after the rebuild, {} before",
            got.len(),
            expected.len()
        )));
    }
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        return Err(verify_failed(format!(
            "resource #{i} differs after the rebuild"
        )));
    }

    let mut opts = goblin::pe::options::ParseOptions::default()
        .with_parse_mode(goblin::pe::options::ParseMode::Permissive)
        .with_parse_imports(false)
        .with_parse_tls_data(false);
    opts.parse_attribute_certificates = false;
    let parsed = goblin::pe::PE::parse_with_opts(out, &opts)
        .map_err(|e| verify_failed(format!("goblin cannot parse the rebuilt image: {e}")))?;
    let goblin_root = parsed
        .resource_data
        .ok_or_else(|| verify_failed("goblin finds no resources"))?;
    let root_ids = goblin_root
        .entries()
        .map(|e| e.map(|e| e.id()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| verify_failed(format!("goblin cannot read the resource root: {e}")))?;
    let pelite_ids: Vec<Option<u16>> = root
        .entries()
        .map(|e| match e.name() {
            Ok(pelite::resources::Name::Id(id)) => u16::try_from(id).ok(),
            _ => None,
        })
        .collect();
    if root_ids != pelite_ids {
        return Err(verify_failed(
            "goblin and pelite disagree on the resource root",
        ));
    }
    Ok(())
}

fn walk_pelite(
    dir: pelite::resources::Directory<'_>,
    path: &mut Vec<Key>,
    out: &mut Vec<Leaf>,
    depth: usize,
) -> Result<(), PatchError> {
    if depth >= MAX_DEPTH {
        return Err(verify_failed("resource directories nested too deep"));
    }
    for entry in dir.entries() {
        let key = match entry.name() {
            Ok(pelite::resources::Name::Id(id)) => Key::Id(id),
            Ok(pelite::resources::Name::Wide(units)) => Key::Name(units.to_vec()),
            Ok(pelite::resources::Name::Str(s)) => Key::Name(s.encode_utf16().collect()),
            Err(e) => return Err(verify_failed(format!("resource name: {e}"))),
        };
        path.push(key);
        match entry
            .entry()
            .map_err(|e| verify_failed(format!("resource entry: {e}")))?
        {
            pelite::resources::Entry::Directory(d) => walk_pelite(d, path, out, depth + 1)?,
            pelite::resources::Entry::DataEntry(d) => {
                let bytes = d
                    .bytes()
                    .map_err(|e| verify_failed(format!("resource data: {e}")))?;
                out.push((path.clone(), bytes.to_vec(), d.code_page()));
            }
        }
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{self, Extras, ResId, Resource};

    fn resource(kind: ResId, name: ResId, language: u16, data: &[u8]) -> Resource {
        Resource {
            kind,
            name,
            language,
            data: data.to_vec(),
        }
    }

    /// An IExpress-like image: CABINET, RUNPROGRAM, an RCDATA with a numeric id in two
    /// languages, a named type, a version resource; maybe a section after `.rsrc`.
    fn sfx(is_64: bool, trailing: Option<Vec<u8>>) -> (Vec<u8>, Vec<Resource>) {
        let resources = vec![
            resource(
                ResId::Id(10),
                ResId::Name("RUNPROGRAM".into()),
                0x409,
                b"setup.exe\0",
            ),
            resource(ResId::Id(10), ResId::Id(5), 0x409, b"five"),
            resource(ResId::Id(10), ResId::Id(5), 0x407, b"fuenf!"),
            resource(ResId::Name("AVI".into()), ResId::Id(1), 0, &[7u8; 333]),
        ];
        let data = synth::build_with(
            &synth::Spec {
                is_64,
                text_size: 0x300,
                rdata: b"rdata bytes".to_vec(),
                version: Some([5, 1, 2, 3]),
                cabinet: Some(b"MSCF old cabinet".to_vec()),
            },
            &Extras {
                resources: resources.clone(),
                trailing,
            },
        );
        (data, resources)
    }

    /// Looks a resource up by path with pelite, independently of the code under test.
    fn lookup(data: &[u8], kind: &ResId, name: &ResId, language: u16) -> Vec<u8> {
        let pe = pelite::PeFile::from_bytes(data).unwrap();
        let root = pe.resources().unwrap().root().unwrap();
        fn find<'d>(
            dir: pelite::resources::Directory<'d>,
            id: &ResId,
        ) -> pelite::resources::Entry<'d> {
            dir.entries()
                .find(|e| match (e.name().unwrap(), id) {
                    (pelite::resources::Name::Id(a), ResId::Id(b)) => a == *b,
                    (pelite::resources::Name::Wide(w), ResId::Name(s)) => {
                        String::from_utf16_lossy(w) == *s
                    }
                    _ => false,
                })
                .unwrap()
                .entry()
                .unwrap()
        }
        let by_kind = find(root, kind).dir().unwrap();
        let by_name = find(by_kind, name).dir().unwrap();
        let data_entry = find(by_name, &ResId::Id(u32::from(language)))
            .data()
            .unwrap();
        data_entry.bytes().unwrap().to_vec()
    }

    fn check_resources(out: &[u8], originals: &[Resource], cabinet: &[u8]) {
        for r in originals {
            assert_eq!(lookup(out, &r.kind, &r.name, r.language), r.data);
        }
        let cab = lookup(out, &ResId::Id(10), &ResId::Name("CABINET".into()), 0x409);
        assert_eq!(cab, cabinet);
        let image = Image::parse(out).unwrap();
        assert!(image.file_version().is_some());
        assert_eq!(image.find_rcdata("cabinet").unwrap().size, cabinet.len());
        assert_eq!(image.compute_checksum(), image.stored_checksum());
    }

    fn raw<'d>(data: &'d [u8], image: &Image<'_>, name: &str) -> &'d [u8] {
        let s = image.sections().iter().find(|s| s.name == name).unwrap();
        &data[s.raw_range(data.len())]
    }

    fn size_of_image(image: &Image<'_>) -> u32 {
        let at = image.optional_header_offset() + 56;
        u32::from_le_bytes(image.data()[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn last_resource_section_grows_in_place() {
        for is_64 in [false, true] {
            let (data, originals) = sfx(is_64, None);
            let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
            let (out, placement) = replace_rcdata(&data, "CABINET", &big).unwrap();
            assert_eq!(placement, Placement::GrownInPlace);
            let out = {
                let mut out = out;
                crate::image::update_checksum(&mut out).unwrap();
                out
            };
            check_resources(&out, &originals, &big);

            let before = Image::parse(&data).unwrap();
            let after = Image::parse(&out).unwrap();
            assert_eq!(before.sections().len(), after.sections().len());
            for name in [".text", ".rdata"] {
                assert_eq!(raw(&data, &before, name), raw(&out, &after, name));
            }
            let old = &before.sections()[2];
            let new = &after.sections()[2];
            assert_eq!(new.name, ".rsrc");
            assert_eq!(
                (new.virtual_address, new.raw_offset),
                (old.virtual_address, old.raw_offset)
            );
            let (rva, size) = after.data_directory(RESOURCE_DIRECTORY).unwrap();
            assert_eq!(rva, new.virtual_address);
            assert_eq!(size, new.virtual_size);
            assert!(size as usize > big.len());
            assert_eq!(new.raw_size % 0x200, 0);
            assert!(new.raw_size >= new.virtual_size);
            assert_eq!(out.len(), (new.raw_offset + new.raw_size) as usize);
            assert_eq!(
                size_of_image(&after),
                (new.virtual_address + new.virtual_size).next_multiple_of(0x1000)
            );
            assert!(size_of_image(&after) > size_of_image(&before));
        }
    }

    #[test]
    fn resource_section_before_another_moves_to_the_end() {
        let reloc = vec![0xA5u8; 0x123];
        let (data, originals) = sfx(false, Some(reloc.clone()));
        let big = vec![0x5Au8; 9_000];
        let (mut out, placement) = replace_rcdata(&data, "CABINET", &big).unwrap();
        assert_eq!(placement, Placement::Moved);
        crate::image::update_checksum(&mut out).unwrap();
        check_resources(&out, &originals, &big);

        let before = Image::parse(&data).unwrap();
        let after = Image::parse(&out).unwrap();
        let names: Vec<&str> = after.sections().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [".text", ".rdata", ".oldrsrc", ".reloc", ".rsrc"]);
        for name in [".text", ".rdata", ".reloc"] {
            assert_eq!(raw(&data, &before, name), raw(&out, &after, name));
        }
        assert_eq!(&raw(&out, &after, ".reloc")[..reloc.len()], reloc);
        // The old tree is blanked; its section keeps its place.
        assert!(raw(&out, &after, ".oldrsrc").iter().all(|&b| b == 0));
        assert_eq!(
            after.sections()[2].virtual_address,
            before.sections()[2].virtual_address
        );
        let new = &after.sections()[4];
        assert_eq!(new.virtual_address % 0x1000, 0);
        assert!(new.virtual_address > after.sections()[3].virtual_address);
        assert_eq!(
            after.data_directory(RESOURCE_DIRECTORY),
            Some((new.virtual_address, new.virtual_size))
        );
        assert_eq!(
            size_of_image(&after),
            (new.virtual_address + new.virtual_size).next_multiple_of(0x1000)
        );
        // Rebuilding again (now the tree is last) grows in place.
        let bigger = vec![0x11u8; 12_000];
        let (again, placement) = replace_rcdata(&out, "CABINET", &bigger).unwrap();
        assert_eq!(placement, Placement::GrownInPlace);
        assert_eq!(
            lookup(
                &again,
                &ResId::Id(10),
                &ResId::Name("CABINET".into()),
                0x409
            ),
            bigger
        );
    }

    #[test]
    fn sfx_replace_cabinet_rebuilds_when_it_does_not_fit() {
        let (data, originals) = sfx(true, Some(vec![1u8; 16]));
        let big = vec![0x42u8; 5_000];
        let out = crate::replace_sfx_cabinet(&data, &big).unwrap();
        check_resources(&out, &originals, &big);
        assert!(!out.windows(8).any(|w| w == b".rlvrsrc"));
        // A smaller cabinet still goes over the old bytes.
        let small = b"MSCF tiny".to_vec();
        let out = crate::replace_sfx_cabinet(&data, &small).unwrap();
        assert_eq!(out.len(), data.len());
        check_resources(&out, &originals, &small);
    }

    #[test]
    fn malformed_trees_are_errors_not_panics() {
        let (data, _) = sfx(false, None);
        let image = Image::parse(&data).unwrap();
        let (rva, _) = image.data_directory(RESOURCE_DIRECTORY).unwrap();
        let root = image.rva_to_offset(rva).unwrap();
        // A directory that contains itself.
        let mut cyclic = data.clone();
        cyclic[root + 16 + 4..root + 16 + 8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        assert!(replace_rcdata(&cyclic, "CABINET", b"x").is_err());
        // Entry counts far beyond the section.
        let mut huge = data.clone();
        huge[root + 14..root + 16].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(replace_rcdata(&huge, "CABINET", b"x").is_err());
        // A data entry pointing past the end of the file.
        let mut past = data;
        for at in (root..root + 0x200).step_by(4) {
            past[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        }
        assert!(replace_rcdata(&past, "CABINET", b"x").is_err());
        // No such resource.
        let (data, _) = sfx(false, None);
        assert!(matches!(
            replace_rcdata(&data, "NOPE", b"x"),
            Err(PatchError::Installer { .. })
        ));
    }
}
