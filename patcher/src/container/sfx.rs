//! IExpress-style self-extractors: a PE whose `RCDATA/CABINET` resource is a cabinet.
//!
//! The cabinet is read, its members walked, and when one changed it is rebuilt and put
//! back: over the old data when it fits (the resource's Size is updated and the rest of the
//! old blob zeroed), otherwise by rebuilding the whole resource section around it (see
//! `crate::rsrc`: grown in place when it is the last section, else moved to a new last
//! section), every other resource kept byte for byte. The other IExpress
//! resources (RUNPROGRAM, FILESIZES...) are left as they are: FILESIZES is only a free-space
//! hint. Finally the Authenticode signature is stripped and the checksum recomputed.

use crate::PatchError;
use crate::container::{Progress, Stage, Visitor, cabinet, join, walk_member};
use crate::image::{self, Image};

/// Walks a self-extractor; returns the rebuilt file if a member changed.
pub(crate) fn walk(
    image: &Image<'_>,
    prefix: &str,
    visitor: &mut dyn Visitor,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Vec<u8>>, PatchError> {
    let data = image.data();
    let loc = image
        .find_rcdata("CABINET")
        .ok_or_else(|| PatchError::installer("resource", "no CABINET resource"))?;
    let cab_bytes = data
        .get(loc.data_offset..loc.data_offset + loc.size)
        .ok_or_else(|| PatchError::installer("resource", "CABINET outside the file"))?;
    let mut contents = cabinet::read(cab_bytes, &mut |done, total| {
        progress(Progress {
            stage: Stage::Extracting,
            path: prefix.to_string(),
            done,
            total,
        });
    })?;
    let mut changed = false;
    for member in &mut contents.members {
        let path = join(prefix, &member.name);
        if let Some(new) = walk_member(&member.data, &path, visitor, progress)? {
            member.data = new;
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    let new_cab = cabinet::write(&contents, &mut |done, total| {
        progress(Progress {
            stage: Stage::Repacking,
            path: prefix.to_string(),
            done,
            total,
        });
    })?;
    replace_cabinet(data, &new_cab).map(Some)
}

/// Puts a new CABINET into the image (in place if it fits), strips the signature and
/// recomputes the checksum.
pub(crate) fn replace_cabinet(data: &[u8], new_cab: &[u8]) -> Result<Vec<u8>, PatchError> {
    let mut out = data.to_vec();
    image::strip_signature(&mut out, false)?;
    let loc = Image::parse(&out)?
        .find_rcdata("CABINET")
        .ok_or_else(|| PatchError::installer("resource", "no CABINET resource"))?;
    let size = u32::try_from(new_cab.len())
        .map_err(|_| PatchError::installer("resource", "cabinet over 4 GiB"))?;
    if new_cab.len() <= loc.size {
        let region = out
            .get_mut(loc.data_offset..loc.data_offset + loc.size)
            .ok_or_else(|| PatchError::installer("resource", "CABINET outside the file"))?;
        region[..new_cab.len()].copy_from_slice(new_cab);
        region[new_cab.len()..].fill(0);
        image::set_resource_entry(&mut out, &loc, loc.data_rva, size)?;
    } else {
        out = crate::rsrc::replace_rcdata(&out, "CABINET", new_cab)?.0;
    }
    image::update_checksum(&mut out)?;
    Ok(out)
}
