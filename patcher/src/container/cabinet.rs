//! Reading and rebuilding Microsoft cabinets (CAB, [MS-CAB]).
//!
//! A cabinet is read whole into memory (bounded: member count, block sizes and total
//! uncompressed size), keeping member order, raw names, timestamps and attributes and the
//! folder layout, because Windows Installer relies on the member order (`File.Sequence`).
//!
//! The headers are parsed here; MSZIP and stored folders are decoded here too (one pass per
//! folder), LZX folders through the `cab` crate. Rebuilding is incremental: patching a client
//! changes a few hundred bytes of a folder that may hold tens of megabytes, so the writer keeps
//! every original `CFDATA` block whose uncompressed bytes did not change.
//!
//! ```text
//! MSZIP: block k = "CK" + deflate(data_k, history = last 32 KiB of data_0..k-1)
//!        ⇒ block k can be copied verbatim iff data_k and its 32 KiB of history are unchanged
//! ```
//!
//! Blocks that must be compressed again are compressed at level 6 on every core (each block
//! depends only on uncompressed bytes, never on another block's output). An unchanged folder
//! keeps its blocks whatever its compression (LZX included); a changed LZX folder comes back as
//! MSZIP. Quantum cannot be decoded and is refused. Header, folder and data reserve areas (a
//! cabinet signature lives there) are dropped; checksums are written for every block.

use std::io::{Cursor, Read};
use std::num::NonZeroUsize;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::PatchError;

/// Most members we accept in one cabinet.
pub(crate) const MAX_MEMBERS: usize = 65_535;
/// Most uncompressed bytes we accept in one cabinet (all members together).
pub(crate) const MAX_TOTAL_SIZE: u64 = 512 << 20;
/// Uncompressed bytes per `CFDATA` block (the format's maximum, what Microsoft's tools write).
const BLOCK: usize = 32_768;
/// The MSZIP history window.
const WINDOW: usize = 32_768;
/// Compression level for blocks that changed (zlib's default: far faster than "best" for a
/// percent or two of size).
const LEVEL: u32 = 6;
/// Blocks compressed between two progress reports.
const BATCH: usize = 64;
/// `typeCompress` values (low nibble).
const TYPE_NONE: u16 = 0;
const TYPE_MSZIP: u16 = 1;
const TYPE_QUANTUM: u16 = 2;
const TYPE_LZX: u16 = 3;
/// `CFHEADER.flags`.
const FLAG_PREV_CABINET: u16 = 0x0001;
const FLAG_NEXT_CABINET: u16 = 0x0002;
const FLAG_RESERVE_PRESENT: u16 = 0x0004;
/// `CFFILE.attribs`: the name is UTF-8.
const ATTR_NAME_IS_UTF: u16 = 0x0080;
/// Longest member name (including the terminating NUL) the format allows.
const MAX_NAME: usize = 256;

/// One file in a cabinet.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Name inside the cabinet (UTF-8, or Latin-1 decoded for display and matching).
    pub(crate) name: String,
    /// The name exactly as stored.
    raw_name: Vec<u8>,
    /// Index of its folder in the cabinet.
    pub(crate) folder: usize,
    /// Uncompressed content.
    pub(crate) data: Vec<u8>,
    /// DOS date, DOS time and attributes, kept as stored.
    date: u16,
    time: u16,
    attribs: u16,
}

/// One folder (compression unit) as read: what is needed to rebuild it incrementally.
#[derive(Debug, Clone)]
struct Folder {
    /// `typeCompress` as stored.
    kind: u16,
    /// The original compressed blocks.
    blocks: Vec<Block>,
    /// The original uncompressed stream.
    original: Vec<u8>,
}

/// One `CFDATA` block: its compressed payload and how many bytes it expands to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    uncompressed: u16,
    data: Vec<u8>,
}

/// A whole cabinet in memory.
#[derive(Debug, Clone)]
pub(crate) struct Contents {
    set_id: u16,
    folders: Vec<Folder>,
    /// Members in cabinet order.
    pub(crate) members: Vec<Member>,
}

/// What a rebuild did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriteStats {
    /// Original blocks copied verbatim.
    pub(crate) reused: usize,
    /// Blocks compressed (or stored) anew.
    pub(crate) encoded: usize,
}

fn err(e: impl std::fmt::Display) -> PatchError {
    PatchError::installer("cabinet", e)
}

/// A bounds-checked little-endian reader over the cabinet bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn at(bytes: &'a [u8], at: usize) -> Self {
        Self { bytes, at }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PatchError> {
        let end = self.at.checked_add(n).ok_or_else(|| err("truncated"))?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| err("truncated"))?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, PatchError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PatchError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PatchError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string of at most `MAX_NAME` bytes (without the NUL).
    fn cstr(&mut self) -> Result<&'a [u8], PatchError> {
        let rest = self.bytes.get(self.at..).ok_or_else(|| err("truncated"))?;
        let len = rest
            .iter()
            .take(MAX_NAME)
            .position(|&b| b == 0)
            .ok_or_else(|| err("unterminated or overlong name"))?;
        let s = self.take(len)?;
        self.take(1)?;
        Ok(s)
    }
}

/// A file entry as stored.
struct FileEntry {
    size: u32,
    offset: u32,
    folder: u16,
    date: u16,
    time: u16,
    attribs: u16,
    raw_name: Vec<u8>,
}

fn decode_name(raw: &[u8], attribs: u16) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) if attribs & ATTR_NAME_IS_UTF != 0 || raw.is_ascii() => s.to_string(),
        _ => raw.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Reads every member of a cabinet.
///
/// # Errors
/// [`PatchError::Installer`] for a malformed cabinet, a spanned cabinet set, an unsupported
/// compression (Quantum) or a cabinet over the size limits.
pub(crate) fn read(
    bytes: &[u8],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Contents, PatchError> {
    let mut r = Reader::at(bytes, 0);
    if r.take(4)? != b"MSCF" {
        return Err(err("not a cabinet"));
    }
    r.take(4)?; // reserved1
    r.u32()?; // cbCabinet: the slice we were given is authoritative
    r.take(4)?; // reserved2
    let files_at = r.u32()? as usize;
    r.take(4)?; // reserved3
    r.take(2)?; // version
    let folder_count = usize::from(r.u16()?);
    let file_count = usize::from(r.u16()?);
    let flags = r.u16()?;
    let set_id = r.u16()?;
    r.u16()?; // iCabinet
    if flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET) != 0 {
        return Err(err("cabinet sets spanning several files are not supported"));
    }
    let (folder_reserve, data_reserve) = if flags & FLAG_RESERVE_PRESENT != 0 {
        let header_reserve = usize::from(r.u16()?);
        let folder_reserve = usize::from(r.u8()?);
        let data_reserve = usize::from(r.u8()?);
        r.take(header_reserve)?;
        (folder_reserve, data_reserve)
    } else {
        (0, 0)
    };
    if file_count > MAX_MEMBERS {
        return Err(err("cabinet too large"));
    }

    let mut headers = Vec::with_capacity(folder_count);
    for _ in 0..folder_count {
        let start = r.u32()? as usize;
        let blocks = usize::from(r.u16()?);
        let kind = r.u16()?;
        r.take(folder_reserve)?;
        headers.push((start, blocks, kind));
    }

    let mut r = Reader::at(bytes, files_at);
    let mut entries = Vec::with_capacity(file_count);
    for _ in 0..file_count {
        let size = r.u32()?;
        let offset = r.u32()?;
        let folder = r.u16()?;
        let date = r.u16()?;
        let time = r.u16()?;
        let attribs = r.u16()?;
        let raw_name = r.cstr()?.to_vec();
        if usize::from(folder) >= folder_count {
            return Err(err("member continued from or into another cabinet"));
        }
        entries.push(FileEntry {
            size,
            offset,
            folder,
            date,
            time,
            attribs,
            raw_name,
        });
    }

    // The uncompressed size of each folder, from its blocks; bounded before any decoding.
    let mut folders = Vec::with_capacity(folder_count);
    let mut total: u64 = 0;
    for &(start, count, kind) in &headers {
        let mut r = Reader::at(bytes, start);
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            r.u32()?; // checksum: verified by decoding, rewritten on output
            let compressed = usize::from(r.u16()?);
            let uncompressed = r.u16()?;
            r.take(data_reserve)?;
            if usize::from(uncompressed) > BLOCK {
                return Err(err("data block larger than 32 KiB"));
            }
            total += u64::from(uncompressed);
            if total > MAX_TOTAL_SIZE {
                return Err(err("cabinet too large"));
            }
            blocks.push(Block {
                uncompressed,
                data: r.take(compressed)?.to_vec(),
            });
        }
        folders.push(Folder {
            kind,
            blocks,
            original: Vec::new(),
        });
    }

    // Every member must lie inside its folder before anything is decoded or allocated.
    for e in &entries {
        let size: u64 = folders[usize::from(e.folder)]
            .blocks
            .iter()
            .map(|b| u64::from(b.uncompressed))
            .sum();
        if u64::from(e.offset) + u64::from(e.size) > size {
            return Err(err("member outside its folder"));
        }
    }

    let mut done = 0u64;
    for (index, folder) in folders.iter_mut().enumerate() {
        folder.original = match folder.kind & 0x000F {
            TYPE_NONE => stored_decode(&folder.blocks)?,
            TYPE_MSZIP => mszip_decode(&folder.blocks)?,
            TYPE_LZX => lzx_decode(bytes, index, &entries)?,
            TYPE_QUANTUM => return Err(err("Quantum-compressed cabinets are not supported")),
            _ => return Err(err("unknown compression type")),
        };
        done += folder.original.len() as u64;
        progress(done, total);
    }

    let mut members = Vec::with_capacity(entries.len());
    for e in entries {
        let folder = usize::from(e.folder);
        let start = e.offset as usize;
        let data = folders[folder]
            .original
            .get(start..start + e.size as usize)
            .ok_or_else(|| err("member outside its folder"))?
            .to_vec();
        members.push(Member {
            name: decode_name(&e.raw_name, e.attribs),
            raw_name: e.raw_name,
            folder,
            data,
            date: e.date,
            time: e.time,
            attribs: e.attribs,
        });
    }
    Ok(Contents {
        set_id,
        folders,
        members,
    })
}

fn stored_decode(blocks: &[Block]) -> Result<Vec<u8>, PatchError> {
    let mut out = Vec::new();
    for block in blocks {
        if block.data.len() != usize::from(block.uncompressed) {
            return Err(err("stored block with a compressed size"));
        }
        out.extend_from_slice(&block.data);
    }
    Ok(out)
}

/// Decodes an MSZIP folder: each block is `CK` and a raw deflate stream whose history is the
/// last 32 KiB of everything decoded before it.
fn mszip_decode(blocks: &[Block]) -> Result<Vec<u8>, PatchError> {
    let total: usize = blocks.iter().map(|b| usize::from(b.uncompressed)).sum();
    let mut out = Vec::with_capacity(total);
    let mut inflate = Decompress::new(false);
    for block in blocks {
        let data = block
            .data
            .strip_prefix(b"CK")
            .ok_or_else(|| err("MSZIP block without its signature"))?;
        inflate.reset(false);
        let start = out.len();
        if start > 0 {
            inflate
                .set_dictionary(&out[start.saturating_sub(WINDOW)..])
                .map_err(|e| err(format!("MSZIP: {e}")))?;
        }
        let want = usize::from(block.uncompressed);
        out.reserve(want);
        let status = inflate
            .decompress_vec(data, &mut out, FlushDecompress::Finish)
            .map_err(|e| err(format!("MSZIP: {e}")))?;
        // `decompress_vec` writes at most the spare capacity: more output than promised shows
        // up as a stream that did not end.
        if status != Status::StreamEnd || out.len() - start != want {
            return Err(err("MSZIP block does not decode to its stated size"));
        }
    }
    Ok(out)
}

/// Decodes an LZX folder through the `cab` crate, member by member (LZX blocks are not
/// independent, so this path never reuses anything on output unless the folder is unchanged).
fn lzx_decode(bytes: &[u8], folder: usize, entries: &[FileEntry]) -> Result<Vec<u8>, PatchError> {
    let mut cabinet = cab::Cabinet::new(Cursor::new(bytes)).map_err(err)?;
    let mut mine: Vec<&FileEntry> = entries
        .iter()
        .filter(|e| usize::from(e.folder) == folder)
        .collect();
    mine.sort_by_key(|e| e.offset);
    let mut out = Vec::new();
    for e in mine {
        let name = decode_name(&e.raw_name, e.attribs);
        let start = e.offset as usize;
        if start < out.len() {
            continue; // overlapping entries: the bytes are already there
        }
        out.resize(start, 0);
        cabinet
            .read_file(&name)
            .map_err(err)?
            .take(u64::from(e.size))
            .read_to_end(&mut out)
            .map_err(err)?;
        if out.len() != start + e.size as usize {
            return Err(err("LZX member shorter than stated"));
        }
    }
    Ok(out)
}

/// Writes a cabinet with the same folders and member order.
///
/// # Errors
/// [`PatchError::Installer`] when the result would exceed the format's limits.
pub(crate) fn write(
    contents: &Contents,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<u8>, PatchError> {
    write_with_stats(contents, progress).map(|(bytes, _)| bytes)
}

/// [`write`](fn@write), also saying how many blocks were reused.
pub(crate) fn write_with_stats(
    contents: &Contents,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<u8>, WriteStats), PatchError> {
    // New uncompressed stream and member offsets per folder, in member order.
    let mut streams: Vec<Vec<u8>> = vec![Vec::new(); contents.folders.len()];
    let mut offsets = Vec::with_capacity(contents.members.len());
    for member in &contents.members {
        let stream = streams
            .get_mut(member.folder)
            .ok_or_else(|| err("member in a missing folder"))?;
        offsets.push(u32::try_from(stream.len()).map_err(|_| err("folder over 4 GiB"))?);
        stream.extend_from_slice(&member.data);
    }
    let total: u64 = streams.iter().map(|s| s.len() as u64).sum();

    let mut stats = WriteStats::default();
    let mut done = 0u64;
    let mut built: Vec<(u16, Vec<Block>)> = Vec::with_capacity(streams.len());
    for (folder, stream) in contents.folders.iter().zip(&streams) {
        let (kind, blocks) = rebuild_folder(folder, stream, &mut stats, &mut |n| {
            done += n;
            progress(done, total);
        })?;
        built.push((kind, blocks));
    }

    let folder_count = u16::try_from(built.len()).map_err(|_| err("too many folders"))?;
    let file_count = u16::try_from(contents.members.len()).map_err(|_| err("too many members"))?;
    let files_at = 36 + 8 * built.len();
    let files_len: usize = contents
        .members
        .iter()
        .map(|m| 16 + m.raw_name.len() + 1)
        .sum();
    let mut data_at = files_at + files_len;
    let data_len: usize = built
        .iter()
        .flat_map(|(_, b)| b)
        .map(|b| 8 + b.data.len())
        .sum();
    let size = u32::try_from(data_at + data_len).map_err(|_| err("cabinet over 4 GiB"))?;

    let mut out = Vec::with_capacity(data_at + data_len);
    out.extend_from_slice(b"MSCF");
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(files_at as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&[3, 1]); // format version 1.3
    out.extend_from_slice(&folder_count.to_le_bytes());
    out.extend_from_slice(&file_count.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // flags: no reserve, no set
    out.extend_from_slice(&contents.set_id.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // iCabinet
    for (kind, blocks) in &built {
        let count = u16::try_from(blocks.len()).map_err(|_| err("folder over 2 GiB"))?;
        out.extend_from_slice(&(data_at as u32).to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        data_at += blocks.iter().map(|b| 8 + b.data.len()).sum::<usize>();
    }
    for (member, offset) in contents.members.iter().zip(offsets) {
        let size = u32::try_from(member.data.len()).map_err(|_| err("member over 4 GiB"))?;
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(member.folder as u16).to_le_bytes());
        out.extend_from_slice(&member.date.to_le_bytes());
        out.extend_from_slice(&member.time.to_le_bytes());
        out.extend_from_slice(&member.attribs.to_le_bytes());
        out.extend_from_slice(&member.raw_name);
        out.push(0);
    }
    for block in built.iter().flat_map(|(_, b)| b) {
        let compressed = block.data.len() as u16;
        out.extend_from_slice(&checksum(block, compressed).to_le_bytes());
        out.extend_from_slice(&compressed.to_le_bytes());
        out.extend_from_slice(&block.uncompressed.to_le_bytes());
        out.extend_from_slice(&block.data);
    }
    Ok((out, stats))
}

/// The `CFDATA` checksum ([MS-CAB] 2.6): the XOR of the payload as little-endian 32-bit words
/// (a trailing partial word taken most-significant byte first), then of the two size fields.
fn checksum(block: &Block, compressed: u16) -> u32 {
    let mut words = block.data.chunks_exact(4);
    let mut sum = 0u32;
    for w in words.by_ref() {
        sum ^= u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    }
    let tail = words
        .remainder()
        .iter()
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    sum ^ tail ^ (u32::from(compressed) | (u32::from(block.uncompressed) << 16))
}

/// The blocks of one folder for its new stream: original blocks where nothing they depend on
/// changed, new MSZIP (or stored) blocks elsewhere.
fn rebuild_folder(
    folder: &Folder,
    stream: &[u8],
    stats: &mut WriteStats,
    progress: &mut dyn FnMut(u64),
) -> Result<(u16, Vec<Block>), PatchError> {
    if stream == folder.original.as_slice() {
        stats.reused += folder.blocks.len();
        progress(stream.len() as u64);
        return Ok((folder.kind, folder.blocks.clone()));
    }
    if folder.kind & 0x000F == TYPE_NONE {
        let blocks: Vec<Block> = stream
            .chunks(BLOCK)
            .map(|chunk| Block {
                uncompressed: chunk.len() as u16,
                data: chunk.to_vec(),
            })
            .collect();
        stats.encoded += blocks.len();
        progress(stream.len() as u64);
        return Ok((TYPE_NONE, blocks));
    }
    // Block boundaries: the original ones while they fit, then 32 KiB steps.
    let reusable = folder.kind & 0x000F == TYPE_MSZIP;
    let mut plan: Vec<(usize, usize, Option<&Block>)> = Vec::new();
    let mut start = 0;
    for block in &folder.blocks {
        let end = start + usize::from(block.uncompressed);
        if end > stream.len() {
            break;
        }
        let history = start.saturating_sub(WINDOW);
        let same = reusable && stream[history..end] == folder.original[history..end];
        plan.push((start, end, same.then_some(block)));
        start = end;
    }
    while start < stream.len() {
        let end = (start + BLOCK).min(stream.len());
        plan.push((start, end, None));
        start = end;
    }

    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut blocks = Vec::with_capacity(plan.len());
    for batch in plan.chunks(BATCH * workers) {
        let todo: Vec<(usize, usize)> = batch
            .iter()
            .filter(|(_, _, reuse)| reuse.is_none())
            .map(|&(s, e, _)| (s, e))
            .collect();
        let mut fresh = compress_all(stream, &todo, workers)?.into_iter();
        for &(s, e, reuse) in batch {
            match reuse {
                Some(original) => {
                    stats.reused += 1;
                    blocks.push(original.clone());
                }
                None => {
                    stats.encoded += 1;
                    blocks.push(fresh.next().ok_or_else(|| err("lost a compressed block"))?);
                }
            }
            progress((e - s) as u64);
        }
    }
    Ok((TYPE_MSZIP, blocks))
}

/// Compresses `ranges` of `stream` as MSZIP blocks, spread over `workers` threads.
fn compress_all(
    stream: &[u8],
    ranges: &[(usize, usize)],
    workers: usize,
) -> Result<Vec<Block>, PatchError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let per = ranges.len().div_ceil(workers.max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    let mut deflate = Compress::new(Compression::new(LEVEL), false);
                    part.iter()
                        .map(|&(s, e)| mszip_block(&mut deflate, stream, s, e))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(ranges.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| err("compression thread panicked"))??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// One MSZIP block for `stream[start..end]`, with the 32 KiB before it as history.
fn mszip_block(
    deflate: &mut Compress,
    stream: &[u8],
    start: usize,
    end: usize,
) -> Result<Block, PatchError> {
    deflate.reset();
    if start > 0 {
        deflate
            .set_dictionary(&stream[start.saturating_sub(WINDOW)..start])
            .map_err(|e| err(format!("MSZIP: {e}")))?;
    }
    let input = &stream[start..end];
    // Deflate grows incompressible data by a few bytes per stored block; leave ample room.
    let mut data = Vec::with_capacity(input.len() + input.len() / 8 + 1024);
    data.extend_from_slice(b"CK");
    let status = deflate
        .compress_vec(input, &mut data, FlushCompress::Finish)
        .map_err(|e| err(format!("MSZIP: {e}")))?;
    if status != Status::StreamEnd
        || deflate.total_in() != input.len() as u64
        || data.len() > usize::from(u16::MAX)
    {
        return Err(err("MSZIP block did not fit its buffer"));
    }
    Ok(Block {
        uncompressed: (end - start) as u16,
        data,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Bytes that compress somewhat, like program files.
    fn filler(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 3 == 0 { x as u8 } else { (i / 100) as u8 }
            })
            .collect()
    }

    /// A cabinet built by the `cab` crate (an independent implementation).
    fn build(ctype: cab::CompressionType, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = cab::CabinetBuilder::new();
        let folder = b.add_folder(ctype);
        for (name, _) in files {
            folder.add_file(*name).set_is_archive(true);
        }
        let mut w = b.build(Cursor::new(Vec::new())).unwrap();
        let mut data = files.iter();
        while let Some(mut f) = w.next_file().unwrap() {
            f.write_all(&data.next().unwrap().1).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// Reads every member with the `cab` crate, which verifies checksums.
    fn read_with_cab_crate(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut cabinet = cab::Cabinet::new(Cursor::new(bytes)).unwrap();
        let names: Vec<String> = cabinet
            .folder_entries()
            .flat_map(|f| f.file_entries().map(|e| e.name().to_string()))
            .collect();
        names
            .into_iter()
            .map(|n| {
                let mut data = Vec::new();
                cabinet
                    .read_file(&n)
                    .unwrap()
                    .read_to_end(&mut data)
                    .unwrap();
                (n, data)
            })
            .collect()
    }

    fn sample() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("b.exe", filler(300_000, 7)),
            ("a.txt", filler(70_001, 9)),
            ("c.dll", filler(1_000_000, 11)),
        ]
    }

    #[test]
    fn reads_what_the_cab_crate_writes_in_order() {
        for ctype in [cab::CompressionType::MsZip, cab::CompressionType::None] {
            let files = sample();
            let contents = read(&build(ctype, &files), &mut |_, _| {}).unwrap();
            let got: Vec<_> = contents
                .members
                .iter()
                .map(|m| (m.name.as_str(), m.data.clone()))
                .collect();
            assert_eq!(got, files);
            assert!(contents.members.iter().all(|m| m.attribs & 0x20 != 0));
        }
    }

    #[test]
    fn an_unchanged_cabinet_is_rewritten_from_its_own_blocks() {
        let original = build(cab::CompressionType::MsZip, &sample());
        let contents = read(&original, &mut |_, _| {}).unwrap();
        let (bytes, stats) = write_with_stats(&contents, &mut |_, _| {}).unwrap();
        assert_eq!(stats.encoded, 0);
        assert_eq!(stats.reused, contents.folders[0].blocks.len());
        let back: Vec<_> = read_with_cab_crate(&bytes);
        assert_eq!(
            back,
            sample()
                .into_iter()
                .map(|(n, d)| (n.to_string(), d))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_small_change_recompresses_only_the_blocks_that_depend_on_it() {
        let original = build(cab::CompressionType::MsZip, &sample());
        let mut contents = read(&original, &mut |_, _| {}).unwrap();
        let blocks = contents.folders[0].blocks.len();
        // Change 20 bytes in the middle of the first member (same size).
        contents.members[0].data[150_000..150_020].copy_from_slice(b"relive.example.org\0\0");
        let (bytes, stats) = write_with_stats(&contents, &mut |_, _| {}).unwrap();
        // The block holding the change and the block after it (its history) at most.
        assert!(stats.encoded <= 2, "{stats:?}");
        assert_eq!(stats.reused + stats.encoded, blocks);
        let back = read_with_cab_crate(&bytes);
        assert_eq!(back[0].1, contents.members[0].data);
        assert_eq!(back[2].1, contents.members[2].data);
        // And our own reader agrees.
        let again = read(&bytes, &mut |_, _| {}).unwrap();
        assert_eq!(again.members[0].data, contents.members[0].data);
    }

    #[test]
    fn cabextract_accepts_a_partly_reused_cabinet() {
        // libmspack (cabextract) is a third implementation, with its own checksum and MSZIP code.
        if !crate::tool::require(&[("cabextract", "--version", "cabextract")]) {
            return;
        }
        let mut contents = read(
            &build(cab::CompressionType::MsZip, &sample()),
            &mut |_, _| {},
        )
        .unwrap();
        contents.members[0].data[200_000..200_004].copy_from_slice(b"edit");
        let (bytes, stats) = write_with_stats(&contents, &mut |_, _| {}).unwrap();
        assert!(stats.reused > 0 && stats.encoded > 0, "{stats:?}");
        let path = std::env::temp_dir().join(format!("relive-cab-{}.cab", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let out = std::process::Command::new("cabextract")
            .arg("-t")
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("All done, no errors"),
            "{text}"
        );
    }

    #[test]
    fn a_size_change_shifts_and_still_round_trips() {
        let original = build(cab::CompressionType::MsZip, &sample());
        let mut contents = read(&original, &mut |_, _| {}).unwrap();
        contents.members[0].data.truncate(299_000);
        contents.members[2]
            .data
            .extend_from_slice(&filler(50_000, 3));
        let bytes = write(&contents, &mut |_, _| {}).unwrap();
        let back = read_with_cab_crate(&bytes);
        for (m, (name, data)) in contents.members.iter().zip(back) {
            assert_eq!(m.name, name);
            assert_eq!(&m.data, &data);
        }
    }

    #[test]
    fn stored_folders_change_in_place() {
        let original = build(cab::CompressionType::None, &sample());
        let mut contents = read(&original, &mut |_, _| {}).unwrap();
        contents.members[1].data[5] ^= 0xFF;
        let bytes = write(&contents, &mut |_, _| {}).unwrap();
        assert_eq!(read_with_cab_crate(&bytes)[1].1, contents.members[1].data);
    }

    #[test]
    fn checksums_match_the_format() {
        // [MS-CAB]'s rule on a payload with a partial trailing word, checked against the
        // `cab` crate's reader (it rejects a wrong checksum).
        let block = Block {
            uncompressed: 7,
            data: b"1234567".to_vec(),
        };
        let sum = checksum(&block, 7);
        let mut cab = Vec::new();
        cab.extend_from_slice(b"MSCF\0\0\0\0");
        let total = 36 + 8 + 16 + 2 + 8 + 7;
        cab.extend_from_slice(&(total as u32).to_le_bytes());
        cab.extend_from_slice(&[0; 4]);
        cab.extend_from_slice(&44u32.to_le_bytes());
        cab.extend_from_slice(&[0; 4]);
        cab.extend_from_slice(&[3, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        cab.extend_from_slice(&(36u32 + 8 + 16 + 2).to_le_bytes());
        cab.extend_from_slice(&[1, 0, 0, 0]);
        cab.extend_from_slice(&7u32.to_le_bytes());
        cab.extend_from_slice(&[0; 4]);
        cab.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x20, 0]);
        cab.extend_from_slice(b"x\0");
        cab.extend_from_slice(&sum.to_le_bytes());
        cab.extend_from_slice(&[7, 0, 7, 0]);
        cab.extend_from_slice(b"1234567");
        assert_eq!(
            read_with_cab_crate(&cab),
            vec![("x".to_string(), b"1234567".to_vec())]
        );
        cab[total - 1] ^= 1;
        let mut c = cab::Cabinet::new(Cursor::new(&cab)).unwrap();
        let mut sink = Vec::new();
        let read = c.read_file("x").and_then(|mut f| f.read_to_end(&mut sink));
        assert!(
            read.is_err(),
            "a flipped payload bit must fail the checksum"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read(b"MSCF garbage", &mut |_, _| {}).is_err());
        let good = build(cab::CompressionType::MsZip, &sample());
        for cut in [10, 40, 60, 100, good.len() / 2, good.len() - 1] {
            assert!(read(&good[..cut], &mut |_, _| {}).is_err(), "cut at {cut}");
        }
    }
}
