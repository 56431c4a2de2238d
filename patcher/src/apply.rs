//! Applying a plan to bytes, and verifying the result. Pure: bytes in, bytes out.
//!
//! For one PE: every edit's `before` bytes are checked (the file must be the one that was
//! planned), `after` is written, the Authenticode signature is stripped and the checksum
//! recomputed. Then the result is verified: it must re-parse, carry the new bytes at every
//! edit, have a correct checksum, and a re-scan must find no original endpoint left in any
//! string the plan rewrote. Installers are walked with the same visitor and verified by
//! walking the rebuilt file again and comparing every patched member byte for byte.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

use crate::PatchError;
use crate::container::{self, Progress, Stage, Visitor};
use crate::image::{self, Image};
use crate::plan::{FilePlan, Plan};
use crate::scan;

/// The outcome of [`apply`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Applied {
    /// The new file bytes (identical to the input when nothing changed).
    pub bytes: Vec<u8>,
    /// True when the bytes differ from the input.
    pub changed: bool,
    /// Member paths that were patched.
    pub patched: Vec<String>,
    /// True when at least one Authenticode signature was removed.
    pub signature_removed: bool,
}

/// Applies one file plan to one PE image and verifies it.
///
/// # Errors
/// [`PatchError::PlanMismatch`] when the bytes are not what was planned,
/// [`PatchError::VerifyFailed`] when the result does not check out.
pub fn apply_image(data: &[u8], plan: &FilePlan) -> Result<(Vec<u8>, bool), PatchError> {
    patch_image(data, plan, false)
}

/// [`apply_image`]; `keep_size` keeps the file length when removing the signature (members of
/// cabinets, see [`image::strip_signature`]).
fn patch_image(
    data: &[u8],
    plan: &FilePlan,
    keep_size: bool,
) -> Result<(Vec<u8>, bool), PatchError> {
    let mismatch = |reason: String| PatchError::PlanMismatch {
        path: plan.path.clone(),
        reason,
    };
    let mut out = data.to_vec();
    for edit in &plan.edits {
        if edit.before.len() != edit.after.len() {
            return Err(mismatch(format!(
                "edit at {:#x} changes length",
                edit.offset
            )));
        }
        let start = usize::try_from(edit.offset).map_err(|_| mismatch("offset".into()))?;
        let region = out
            .get_mut(start..start.saturating_add(edit.before.len()))
            .filter(|r| r.len() == edit.before.len())
            .ok_or_else(|| mismatch(format!("offset {start:#x} is past the end")))?;
        if region != edit.before.as_slice() {
            return Err(mismatch(format!(
                "bytes at {start:#x} are not {:?}",
                edit.before_text
            )));
        }
        region.copy_from_slice(&edit.after);
    }
    let signed = image::strip_signature(&mut out, keep_size)?;
    image::update_checksum(&mut out)?;
    verify_image(&out, plan)?;
    Ok((out, signed))
}

/// Checks a patched image against its plan.
fn verify_image(out: &[u8], plan: &FilePlan) -> Result<(), PatchError> {
    let failed = |reason: String| PatchError::VerifyFailed { reason };
    let image = Image::parse(out).map_err(|e| failed(format!("does not re-parse: {e}")))?;
    if image.compute_checksum() != image.stored_checksum() {
        return Err(failed("checksum".into()));
    }
    if image.signature_range().is_some() {
        return Err(failed("signature still present".into()));
    }
    for edit in &plan.edits {
        let start = usize::try_from(edit.offset).unwrap_or(usize::MAX);
        if out.get(start..start.saturating_add(edit.after.len())) != Some(edit.after.as_slice()) {
            return Err(failed(format!("edit at {start:#x} not in the output")));
        }
    }
    let rewritten: Vec<(u64, u64)> = plan
        .edits
        .iter()
        .map(|e| (e.offset, e.offset + e.before.len() as u64))
        .collect();
    if let Some(hit) = scan::scan(&image)
        .into_iter()
        .find(|h| rewritten.iter().any(|(s, e)| (*s..*e).contains(&h.offset)))
    {
        return Err(failed(format!(
            "{} still present at {:#x}",
            hit.host, hit.offset
        )));
    }
    Ok(())
}

/// Applies each [`FilePlan`] to the PE leaf with the same path.
struct ApplyVisitor<'p> {
    plans: HashMap<&'p str, &'p FilePlan>,
    done: HashMap<String, [u8; 32]>,
    signature_removed: bool,
}

impl Visitor for ApplyVisitor<'_> {
    fn pe(&mut self, path: &str, image: &Image<'_>) -> Result<Option<Vec<u8>>, PatchError> {
        let data = image.data();
        let Some(plan) = self.plans.get(path) else {
            return Ok(None);
        };
        if plan.edits.is_empty() {
            return Ok(None);
        }
        // A member of a container keeps its length (see `strip_signature`); a bare file is
        // truncated.
        let (out, signed) = patch_image(data, plan, !path.is_empty())?;
        self.signature_removed |= signed;
        self.done
            .insert(path.to_string(), Sha256::digest(&out).into());
        Ok(Some(out))
    }
}

/// Re-walks the rebuilt file and checks every patched member.
struct VerifyVisitor<'a> {
    expected: &'a HashMap<String, [u8; 32]>,
    seen: usize,
    error: Option<String>,
}

impl Visitor for VerifyVisitor<'_> {
    fn pe(&mut self, path: &str, image: &Image<'_>) -> Result<Option<Vec<u8>>, PatchError> {
        if let Some(hash) = self.expected.get(path) {
            self.seen += 1;
            if <[u8; 32]>::from(Sha256::digest(image.data())) != *hash && self.error.is_none() {
                self.error = Some(format!("{path} differs after repacking"));
            }
        }
        Ok(None)
    }
}

/// Applies a plan to a whole file (executable or installer) and verifies the result.
///
/// `progress` is called during long steps (cabinet extraction and repacking).
///
/// # Errors
/// Any [`PatchError`]: the file is not the one planned, a container cannot be rebuilt, or
/// verification failed. Nothing is written anywhere.
pub fn apply(
    data: &[u8],
    plan: &Plan,
    progress: &mut dyn FnMut(Progress),
) -> Result<Applied, PatchError> {
    if plan.is_noop() {
        return Ok(Applied {
            bytes: data.to_vec(),
            changed: false,
            patched: Vec::new(),
            signature_removed: false,
        });
    }
    let mut visitor = ApplyVisitor {
        plans: plan.files.iter().map(|f| (f.path.as_str(), f)).collect(),
        done: HashMap::new(),
        signature_removed: false,
    };
    let (_, out) = container::walk(data, &mut visitor, progress)?;
    let ApplyVisitor {
        done,
        signature_removed,
        ..
    } = visitor;
    let wanted = plan.files.iter().filter(|f| !f.edits.is_empty()).count();
    if done.len() != wanted {
        return Err(PatchError::PlanMismatch {
            path: String::new(),
            reason: format!("{} of {wanted} planned files found", done.len()),
        });
    }
    let bytes = out.unwrap_or_else(|| data.to_vec());
    progress(Progress {
        stage: Stage::Verifying,
        path: String::new(),
        done: 0,
        total: bytes.len() as u64,
    });
    let mut verify = VerifyVisitor {
        expected: &done,
        seen: 0,
        error: None,
    };
    container::walk(&bytes, &mut verify, &mut |_| {})?;
    if let Some(reason) = verify.error {
        return Err(PatchError::VerifyFailed { reason });
    }
    if verify.seen != done.len() {
        return Err(PatchError::VerifyFailed {
            reason: "a patched member is missing from the rebuilt file".into(),
        });
    }
    let mut patched: Vec<String> = done.into_keys().collect();
    patched.sort();
    let signature_removed = signature_removed || container::is_signed(data);
    Ok(Applied {
        changed: bytes != data,
        bytes,
        patched,
        signature_removed,
    })
}
