//! Newtypes for every value that appears in an MSNP command.
//!
//! Handlers never see raw `&str` arguments: a list is a [`ListKind`], a status a [`Status`], a
//! user handle a [`Passport`]. Each type parses its wire form (`parse` / [`std::str::FromStr`])
//! and writes it back (`as_str` or [`std::fmt::Display`] for numbers), so encode∘parse is the
//! identity on valid input.

/// Implements [`std::str::FromStr`] for a type by calling its inherent
/// `parse(&str) -> Result<Self, InvalidValue>`.
macro_rules! from_str_via_parse {
    ($name:ty) => {
        impl std::str::FromStr for $name {
            type Err = $crate::error::InvalidValue;
            fn from_str(s: &str) -> Result<Self, $crate::error::InvalidValue> {
                Self::parse(s)
            }
        }
    };
}

mod abch;
mod error_code;
mod text;

use std::fmt;

pub use abch::{GroupKey, Guid, ListStamp, utc_seconds};
pub use error_code::ErrorCode;
pub use text::{
    FriendlyName, GroupName, MAX_FRIENDLY_NAME_BYTES, MAX_GROUP_NAME_BYTES, MAX_MSN_OBJECT_BYTES,
    MAX_PASSPORT_BYTES, MAX_TOKEN_BYTES, MsnObject, Passport, Secret, Token, decodes_to_utf8,
    url_decode, url_encode,
};

use crate::error::InvalidValue;

/// Defines a keyword enum: variants, `as_str`, `parse`, `FromStr` and `Display`.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire form.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            /// Parses the wire form (case-sensitive, as on the wire).
            ///
            /// # Errors
            /// [`InvalidValue`] if `s` is not one of the keywords.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(InvalidValue::new($what)),
                }
            }
        }

        from_str_via_parse!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Defines a `u32` newtype with decimal parse and display.
macro_rules! u32_newtype {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            /// Parses a plain decimal number (digits only, no sign).
            ///
            /// # Errors
            /// [`InvalidValue`] if `s` is not a decimal `u32`.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                parse_u32(s).map(Self).ok_or(InvalidValue::new($what))
            }
        }

        from_str_via_parse!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// Parses a plain decimal `u32`: ASCII digits only (no sign, no spaces), at most 10 of them.
#[must_use]
pub fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

u32_newtype!(
    /// A transaction id (`0 ..= 4294967295`), chosen by the client and echoed by the server.
    /// Server-initiated commands that carry one use `0`.
    TrId, "transaction id"
);
u32_newtype!(
    /// A contact group id (MSNP7–MSNP9: small integers; group 0 is "Other Contacts").
    GroupId, "group id"
);
u32_newtype!(
    /// Client capability bits sent in `CHG` and repeated in `ILN`/`NLN` (MSNP8+).
    ClientCaps, "client capabilities"
);
u32_newtype!(
    /// A switchboard session id, as in `CAL trid RINGING <id>` and `RNG <id> ...`.
    SessionId, "session id"
);

keyword_enum!(
    /// One of the per-account contact lists.
    ListKind, "list" {
        /// Forward list: people I watch.
        Fl => "FL",
        /// Allow list.
        Al => "AL",
        /// Block list.
        Bl => "BL",
        /// Reverse list: people who have me on their FL (read-only for clients).
        Rl => "RL",
        /// Pending list (MSNP10+).
        Pl => "PL",
    }
);

impl ListKind {
    /// This list's bit in a [`ListSet`] (FL=1 AL=2 BL=4 RL=8 PL=16).
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            Self::Fl => 1,
            Self::Al => 2,
            Self::Bl => 4,
            Self::Rl => 8,
            Self::Pl => 16,
        }
    }
}

/// A set of lists as the MSNP8+ `LST` bitmask (FL=1 AL=2 BL=4 RL=8 PL=16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ListSet(u8);

impl ListSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// A set from raw bits; `None` if bits outside FL|AL|BL|RL|PL are set.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !31 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether `list` is in the set.
    #[must_use]
    pub const fn contains(self, list: ListKind) -> bool {
        self.0 & list.bit() != 0
    }

    /// The set with `list` added.
    #[must_use]
    pub const fn with(self, list: ListKind) -> Self {
        Self(self.0 | list.bit())
    }

    /// The set with `list` removed.
    #[must_use]
    pub const fn without(self, list: ListKind) -> Self {
        Self(self.0 & !list.bit())
    }

    /// Parses the decimal wire form.
    ///
    /// # Errors
    /// [`InvalidValue`] if `s` is not a decimal number of known bits.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        parse_u32(s)
            .and_then(|n| u8::try_from(n).ok())
            .and_then(Self::from_bits)
            .ok_or(InvalidValue::new("list bitmask"))
    }
}

from_str_via_parse!(ListSet);

impl fmt::Display for ListSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

keyword_enum!(
    /// A presence status (`CHG`, `ILN`, `NLN`).
    Status, "status" {
        /// Online.
        Nln => "NLN",
        /// Busy.
        Bsy => "BSY",
        /// Idle.
        Idl => "IDL",
        /// Be right back.
        Brb => "BRB",
        /// Away.
        Awy => "AWY",
        /// On the phone.
        Phn => "PHN",
        /// Out to lunch.
        Lun => "LUN",
        /// Hidden (appears offline to others).
        Hdn => "HDN",
        /// Offline (never a settable status: `CHG trid FLN` → 201).
        Fln => "FLN",
    }
);

keyword_enum!(
    /// The acknowledgement mode of a client switchboard `MSG` (case-sensitive).
    AckMode, "ack mode" {
        /// Unacknowledged: no reply at all.
        U => "U",
        /// Negative only: `NAK` if delivery failed.
        N => "N",
        /// Always: `ACK` or `NAK`.
        A => "A",
        /// Data (P2P, MSNP9+): like `A`; malformed → 282.
        D => "D",
    }
);

keyword_enum!(
    /// The privacy default (`BLP`): who may see me if on neither AL nor BL.
    Blp, "BLP value" {
        /// Everyone not on BL.
        Al => "AL",
        /// Only people on AL.
        Bl => "BL",
    }
);

keyword_enum!(
    /// The "prompt when someone adds me" preference (`GTC`); stored, not interpreted.
    Gtc, "GTC value" {
        /// Ask.
        A => "A",
        /// Do not ask.
        N => "N",
    }
);

keyword_enum!(
    /// A phone/mobile property (`PRP`, `BPR`), MSNP5+; `MFN` (own friendly name) from MSNP10.
    PhoneProp, "property" {
        /// Home phone.
        Phh => "PHH",
        /// Work phone.
        Phw => "PHW",
        /// Mobile phone.
        Phm => "PHM",
        /// Mobile device enabled (`Y`/`N`).
        Mob => "MOB",
        /// MSN Mobile enabled (`Y`/`N`).
        Mbe => "MBE",
        /// My friendly name (MSNP10+).
        Mfn => "MFN",
    }
);

keyword_enum!(
    /// An authentication method in `INF` and `USR`.
    AuthMethod, "auth method" {
        /// MD5 challenge (MSNP2–MSNP7).
        Md5 => "MD5",
        /// Clear-text password (MSNP2 only).
        Ctp => "CTP",
        /// Passport 1.4 tweener (MSNP8+).
        Twn => "TWN",
    }
);

keyword_enum!(
    /// Why the server ends the session (`OUT <reason>`).
    OutReason, "OUT reason" {
        /// Logged in from another location.
        Oth => "OTH",
        /// Server shutting down.
        Ssd => "SSD",
        /// Terms of use (MSNP10+).
        Tou => "TOU",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_reject_other_case() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Ok(*s));
        }
        assert!(Status::parse("nln").is_err());
        assert!(AckMode::parse("a").is_err());
        assert_eq!(ListKind::parse("PL").map(ListKind::bit), Ok(16));
    }

    #[test]
    fn list_set_bits() {
        let s = ListSet::EMPTY
            .with(ListKind::Fl)
            .with(ListKind::Al)
            .with(ListKind::Rl);
        assert_eq!(s.to_string(), "11");
        assert_eq!(ListSet::parse("11"), Ok(s));
        assert!(s.contains(ListKind::Al) && !s.contains(ListKind::Bl));
        assert!(ListSet::parse("32").is_err());
        assert!(ListSet::parse("-1").is_err());
    }

    #[test]
    fn numbers_are_plain_decimal() {
        assert_eq!(TrId::parse("4294967295"), Ok(TrId(u32::MAX)));
        assert!(TrId::parse("4294967296").is_err());
        assert!(TrId::parse("+1").is_err());
        assert!(TrId::parse("").is_err());
        assert!(TrId::parse("00000000001").is_err());
    }
}
