//! Reading and rebuilding Microsoft cabinets (CAB), over the `cab` crate.
//!
//! A cabinet is read whole into memory (bounded: member count and total uncompressed size),
//! keeping member order, names, timestamps, attributes and folder layout, because Windows
//! Installer relies on the member order (`File.Sequence`). It is rebuilt with the same
//! folders; the `cab` crate writes only stored and MSZIP data, so LZX folders come back as
//! MSZIP (Quantum cannot even be read).

use std::io::{Cursor, Read, Write};

use cab::CompressionType;

use crate::PatchError;

/// Most members we accept in one cabinet.
pub(crate) const MAX_MEMBERS: usize = 65_535;
/// Most uncompressed bytes we accept in one cabinet (all members together).
pub(crate) const MAX_TOTAL_SIZE: u64 = 512 << 20;

/// One file in a cabinet.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Name inside the cabinet.
    pub(crate) name: String,
    /// Index of its folder in [`Contents::folders`].
    pub(crate) folder: usize,
    /// Uncompressed content.
    pub(crate) data: Vec<u8>,
    datetime: Option<time::PrimitiveDateTime>,
    read_only: bool,
    hidden: bool,
    system: bool,
    archive: bool,
    exec: bool,
}

/// A whole cabinet in memory.
#[derive(Debug, Clone)]
pub(crate) struct Contents {
    /// Compression per folder.
    pub(crate) folders: Vec<CompressionType>,
    /// Members in cabinet order.
    pub(crate) members: Vec<Member>,
}

fn err(e: impl std::fmt::Display) -> PatchError {
    PatchError::installer("cabinet", e)
}

/// Reads every member of a cabinet.
///
/// # Errors
/// [`PatchError::Installer`] for a malformed cabinet, an unsupported compression (Quantum)
/// or a cabinet over the size limits.
pub(crate) fn read(
    bytes: &[u8],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Contents, PatchError> {
    let mut cabinet = cab::Cabinet::new(Cursor::new(bytes)).map_err(err)?;
    let mut folders = Vec::new();
    let mut entries = Vec::new();
    let mut total: u64 = 0;
    for (index, folder) in cabinet.folder_entries().enumerate() {
        let ctype = folder.compression_type();
        if matches!(ctype, CompressionType::Quantum(..)) {
            return Err(err("Quantum-compressed cabinets are not supported"));
        }
        folders.push(ctype);
        for file in folder.file_entries() {
            total += u64::from(file.uncompressed_size());
            if entries.len() >= MAX_MEMBERS || total > MAX_TOTAL_SIZE {
                return Err(err("cabinet too large"));
            }
            entries.push((
                index,
                file.name().to_string(),
                file.datetime(),
                [
                    file.is_read_only(),
                    file.is_hidden(),
                    file.is_system(),
                    file.is_archive(),
                    file.is_exec(),
                ],
                file.uncompressed_size(),
            ));
        }
    }
    let mut members = Vec::with_capacity(entries.len());
    let mut done = 0u64;
    for (folder, name, datetime, flags, size) in entries {
        let mut data = Vec::new();
        cabinet
            .read_file(&name)
            .map_err(err)?
            .take(u64::from(size))
            .read_to_end(&mut data)
            .map_err(err)?;
        done += u64::from(size);
        progress(done, total);
        let [read_only, hidden, system, archive, exec] = flags;
        members.push(Member {
            name,
            folder,
            data,
            datetime,
            read_only,
            hidden,
            system,
            archive,
            exec,
        });
    }
    Ok(Contents { folders, members })
}

/// Writes a cabinet with the same folders and member order.
///
/// # Errors
/// [`PatchError::Installer`] when the `cab` crate refuses (a member over 2 GiB, say).
pub(crate) fn write(
    contents: &Contents,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<u8>, PatchError> {
    let mut builder = cab::CabinetBuilder::new();
    let mut order = Vec::new();
    for (index, ctype) in contents.folders.iter().enumerate() {
        let ctype = match ctype {
            CompressionType::None => CompressionType::None,
            _ => CompressionType::MsZip,
        };
        let folder = builder.add_folder(ctype);
        for member in contents.members.iter().filter(|m| m.folder == index) {
            let file = folder.add_file(member.name.clone());
            if let Some(dt) = member.datetime {
                file.set_datetime(dt);
            }
            file.set_is_read_only(member.read_only);
            file.set_is_hidden(member.hidden);
            file.set_is_system(member.system);
            file.set_is_archive(member.archive);
            file.set_is_exec(member.exec);
            order.push(member);
        }
    }
    let total: u64 = order.iter().map(|m| m.data.len() as u64).sum();
    let mut done = 0u64;
    let mut writer = builder.build(Cursor::new(Vec::new())).map_err(err)?;
    let mut next = order.iter();
    while let Some(mut file) = writer.next_file().map_err(err)? {
        let member = next
            .next()
            .ok_or_else(|| err("cabinet writer asked for more files than were added"))?;
        file.write_all(&member.data).map_err(err)?;
        done += member.data.len() as u64;
        progress(done, total);
    }
    Ok(writer.finish().map_err(err)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_and_content() {
        let contents = Contents {
            folders: vec![CompressionType::MsZip],
            members: ["b.exe", "a.txt", "c.dll"]
                .iter()
                .enumerate()
                .map(|(i, n)| Member {
                    name: (*n).to_string(),
                    folder: 0,
                    data: vec![i as u8; 70_000 + i],
                    datetime: None,
                    read_only: false,
                    hidden: false,
                    system: false,
                    archive: true,
                    exec: false,
                })
                .collect(),
        };
        let bytes = write(&contents, &mut |_, _| {}).unwrap();
        let back = read(&bytes, &mut |_, _| {}).unwrap();
        let names: Vec<_> = back.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["b.exe", "a.txt", "c.dll"]);
        for (a, b) in contents.members.iter().zip(&back.members) {
            assert_eq!(a.data, b.data);
            assert!(b.archive);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read(b"MSCF garbage", &mut |_, _| {}).is_err());
    }
}
