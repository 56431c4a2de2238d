//! Value types shared by the store API: identifiers, handles and the small enums of the list
//! data model (PROTOCOL.md §2.6). Each type validates its input once, on construction.

use std::fmt;
use std::str::FromStr;

/// Longest MSN handle accepted, in bytes.
pub const MAX_EMAIL_BYTES: usize = 129;

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

/// Numeric id of a contact group (MSNP7+). Group 0 is "Other Contacts".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

/// Why a string is not a valid MSN handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid handle: {0}")]
pub struct EmailError(&'static str);

/// A validated, lowercased MSN handle (`user@domain`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Validates and lowercases a handle: at most 129 bytes, printable ASCII without spaces,
    /// exactly one `@` with something on both sides.
    ///
    /// # Errors
    ///
    /// [`EmailError`] naming the rule that failed.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        if input.len() > MAX_EMAIL_BYTES {
            return Err(EmailError("longer than 129 bytes"));
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EmailError("only printable ASCII without spaces is allowed"));
        }
        let mut parts = input.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty() => {
                Ok(Self(input.to_ascii_lowercase()))
            }
            _ => Err(EmailError(
                "needs exactly one '@' between a name and a domain",
            )),
        }
    }

    /// The handle as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Email {
    type Err = EmailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What the client does when someone adds you (`GTC`): ask (`A`) or allow silently (`N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gtc {
    /// `A`: prompt the user (default).
    Ask,
    /// `N`: add to AL without asking.
    NoAsk,
}

impl Gtc {
    /// Wire and database form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ask => "A",
            Self::NoAsk => "N",
        }
    }

    /// Parses the wire form.
    #[must_use]
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "A" => Some(Self::Ask),
            "N" => Some(Self::NoAsk),
            _ => None,
        }
    }
}

/// Privacy mode for people on neither AL nor BL (`BLP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blp {
    /// `AL`: everyone not blocked may see me (default).
    AllowAll,
    /// `BL`: only people on my AL may see me.
    BlockAll,
}

impl Blp {
    /// Wire and database form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AllowAll => "AL",
            Self::BlockAll => "BL",
        }
    }

    /// Parses the wire form.
    #[must_use]
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "AL" => Some(Self::AllowAll),
            "BL" => Some(Self::BlockAll),
            _ => None,
        }
    }
}

/// A phone property (`PRP`/`BPR`, MSNP5+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhoneProp {
    /// Home phone.
    Phh,
    /// Work phone.
    Phw,
    /// Mobile phone.
    Phm,
    /// Mobile device enabled (`Y`/`N`).
    Mob,
    /// MSN Mobile enabled (`Y`/`N`).
    Mbe,
}

impl PhoneProp {
    /// All properties in SYN order.
    pub const ALL: [Self; 5] = [Self::Phh, Self::Phw, Self::Phm, Self::Mob, Self::Mbe];

    /// Wire and database form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Phh => "PHH",
            Self::Phw => "PHW",
            Self::Phm => "PHM",
            Self::Mob => "MOB",
            Self::Mbe => "MBE",
        }
    }

    /// Parses the wire form.
    #[must_use]
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One of the four lists of the MSNP2–9 data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum List {
    /// Forward list: people I watch.
    Forward,
    /// Allow list.
    Allow,
    /// Block list.
    Block,
    /// Reverse list: people who have me on their FL (server-maintained, read-only).
    Reverse,
}

impl List {
    /// The list's membership bit (FL=1 AL=2 BL=4 RL=8).
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            Self::Forward => 1,
            Self::Allow => 2,
            Self::Block => 4,
            Self::Reverse => 8,
        }
    }

    /// Wire form (`FL`, `AL`, `BL`, `RL`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "FL",
            Self::Allow => "AL",
            Self::Block => "BL",
            Self::Reverse => "RL",
        }
    }
}

/// A set of list memberships, as stored and as sent in MSNP8+ `LST` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListBits(pub u8);

impl ListBits {
    /// Whether the set contains `list`.
    #[must_use]
    pub const fn contains(self, list: List) -> bool {
        self.0 & list.bit() != 0
    }

    /// The set with `list` added.
    #[must_use]
    pub const fn with(self, list: List) -> Self {
        Self(self.0 | list.bit())
    }

    /// The set with `list` removed.
    #[must_use]
    pub const fn without(self, list: List) -> Self {
        Self(self.0 & !list.bit())
    }

    /// Whether no bit is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_validated_and_lowercased() {
        assert_eq!(
            Email::parse("Alice@Example.COM").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in ["", "alice", "a@b@c", "@b", "a@", "a b@c", "a\t@b", "ä@b.c"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@x.y", "a".repeat(126));
        assert!(Email::parse(&long).is_err());
        let max = format!("{}@x.y", "a".repeat(125));
        assert!(Email::parse(&max).is_ok());
    }

    #[test]
    fn list_bits_combine() {
        let bits = ListBits::default().with(List::Forward).with(List::Reverse);
        assert_eq!(bits.0, 9);
        assert!(bits.contains(List::Reverse) && !bits.contains(List::Allow));
        assert!(
            bits.without(List::Forward)
                .without(List::Reverse)
                .is_empty()
        );
    }
}
