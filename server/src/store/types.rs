//! Value types of the store API: row identifiers, plus the protocol types the store shares with
//! `relive-msnp` (re-exported so handlers pass values straight through, with no conversions).
//!
//! Handles are [`Passport`]s. The store is a little stricter than the protocol about handles it
//! *creates* accounts for: [`parse_handle`] additionally requires printable ASCII, so an account
//! name can always be typed on an old client's keyboard layout and stored as-is.

use std::fmt;

pub use relive_msnp::types::{
    Blp, FriendlyName, GroupId, GroupKey, GroupName, Gtc, Guid, ListKind, ListSet, ListStamp,
    Passport, PhoneProp, Token,
};

/// Longest MSN handle accepted, in bytes.
pub const MAX_EMAIL_BYTES: usize = relive_msnp::types::MAX_PASSPORT_BYTES;

/// The phone properties an account can store (`PRP`/`BPR`, MSNP5+), in `SYN` order. `MFN`
/// (MSNP10+) is the friendly name and lives in the account row instead.
pub const PHONE_PROPS: [PhoneProp; 5] = [
    PhoneProp::Phh,
    PhoneProp::Phw,
    PhoneProp::Phm,
    PhoneProp::Mob,
    PhoneProp::Mbe,
];

/// The position of `prop` in [`PHONE_PROPS`] (`None` for `MFN`), for ordering.
#[must_use]
pub fn phone_prop_rank(prop: PhoneProp) -> Option<usize> {
    PHONE_PROPS.iter().position(|p| *p == prop)
}

/// The lists a client may edit and the store models (FL, AL, BL, RL; not MSNP10's PL).
#[must_use]
pub const fn is_stored_list(list: ListKind) -> bool {
    !matches!(list, ListKind::Pl)
}

/// Row id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

/// Row id of an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub i64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a string is not a valid MSN handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid handle: {0}")]
pub struct EmailError(&'static str);

/// Validates and lowercases a handle for a new account: a valid [`Passport`] (at most 129
/// bytes, one `@`, a dotted domain) made of printable ASCII only, and not under the `.invalid`
/// domain reserved for the server's virtual contacts ([`relive_msnp::pager::is_reserved_handle`]).
///
/// # Errors
///
/// [`EmailError`] naming the rule that failed.
pub fn parse_handle(input: &str) -> Result<Passport, EmailError> {
    if input.len() > MAX_EMAIL_BYTES {
        return Err(EmailError("longer than 129 bytes"));
    }
    if !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EmailError("only printable ASCII without spaces is allowed"));
    }
    if relive_msnp::pager::is_reserved_handle(input) {
        return Err(EmailError(
            "the .invalid domain is reserved for the server's own contacts",
        ));
    }
    Passport::parse(input)
        .map_err(|_| EmailError("needs exactly one '@' between a name and a domain with a dot"))
}

/// Whether `p` may name a stored account (see [`parse_handle`]).
#[must_use]
pub fn is_storable_handle(p: &Passport) -> bool {
    p.as_str().bytes().all(|b| b.is_ascii_graphic())
        && !relive_msnp::pager::is_reserved_handle(p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_validated_and_lowercased() {
        assert_eq!(
            parse_handle("Alice@Example.COM").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "a@b@c",
            "@b.c",
            "a@",
            "a b@c.d",
            "a\t@b.c",
            "ä@b.c",
            "a@b",
            "pager@pager.invalid",
            "x@PAGER.INVALID",
        ] {
            assert!(parse_handle(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@x.y", "a".repeat(126));
        assert!(parse_handle(&long).is_err());
        let max = format!("{}@x.y", "a".repeat(125));
        assert!(parse_handle(&max).is_ok());
    }

    #[test]
    fn list_bits_combine() {
        let bits = ListSet::EMPTY.with(ListKind::Fl).with(ListKind::Rl);
        assert_eq!(bits.bits(), 9);
        assert!(bits.contains(ListKind::Rl) && !bits.contains(ListKind::Al));
        assert_eq!(
            bits.without(ListKind::Fl).without(ListKind::Rl),
            ListSet::EMPTY
        );
        assert!(!is_stored_list(ListKind::Pl));
    }
}
