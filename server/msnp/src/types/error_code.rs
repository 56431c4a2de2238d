//! Numeric MSNP error codes (PROTOCOL.md §2.10), sent as `<code> <trid>`.

use std::fmt;

/// Defines [`ErrorCode`] from one table so `code` and `from_code` cannot disagree.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, )+) => {
        /// A numeric MSNP error. Known codes have explicit `u16` discriminants; any other
        /// three-digit number read from the wire is kept as [`ErrorCode::Unrecognized`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant = $code, )+
            /// A code not in the table above (only ever produced by parsing).
            Unrecognized(u16),
        }

        impl ErrorCode {
            /// Every known code, in table order.
            pub const KNOWN: &'static [Self] = &[$(Self::$variant),+];

            /// The numeric code.
            #[must_use]
            pub const fn code(self) -> u16 {
                match self {
                    $( Self::$variant => $code, )+
                    Self::Unrecognized(n) => n,
                }
            }

            /// The typed code for `n`; unknown numbers become [`ErrorCode::Unrecognized`].
            #[must_use]
            pub const fn from_code(n: u16) -> Self {
                match n {
                    $( $code => Self::$variant, )+
                    other => Self::Unrecognized(other),
                }
            }
        }
    };
}

error_codes! {
    /// 200: syntax error (never sent by official servers).
    SyntaxError = 200,
    /// 201: invalid parameter (bad handle, `CHG FLN`, bad BLP value …).
    InvalidParameter = 201,
    /// 205: invalid / non-existent user (MSNP2–9 `ADD`).
    InvalidUser = 205,
    /// 206: domain name missing.
    DomainNameMissing = 206,
    /// 207: already logged in (`USR` after success).
    AlreadyLoggedIn = 207,
    /// 208: invalid user name (SB `CAL`; `ADC` in MSNP10+).
    InvalidUsername = 208,
    /// 209: friendly name change not allowed.
    InvalidFriendlyName = 209,
    /// 210: list full.
    ListFull = 210,
    /// 213: invalid rename request.
    InvalidRenameRequest = 213,
    /// 215: already on list / in group / invited.
    AlreadyThere = 215,
    /// 216: not on list.
    NotOnList = 216,
    /// 217: user offline or not reachable.
    NotOnline = 217,
    /// 218: already in that mode (`BLP`, `GTC`).
    AlreadyInMode = 218,
    /// 219: already in the opposite list (AL vs BL).
    AlreadyInOppositeList = 219,
    /// 223: too many groups.
    TooManyGroups = 223,
    /// 224: invalid group.
    InvalidGroup = 224,
    /// 225: user not in group.
    UserNotInGroup = 225,
    /// 228: group already exists.
    GroupAlreadyExists = 228,
    /// 229: group name too long.
    GroupNameTooLong = 229,
    /// 230: cannot remove group 0.
    CannotRemoveGroupZero = 230,
    /// 231: group does not exist (add to group).
    GroupDoesNotExist = 231,
    /// 280: switchboard failed.
    SwitchboardFailed = 280,
    /// 281: transfer to switchboard failed.
    TransferToSwitchboardFailed = 281,
    /// 282: P2P (`MSG D`) message malformed (MSNP9+).
    P2pError = 282,
    /// 300: required field missing.
    RequiredFieldMissing = 300,
    /// 301: too many `FND` results.
    TooManyResults = 301,
    /// 302: not logged in.
    NotLoggedIn = 302,
    /// 500: internal server error.
    InternalServerError = 500,
    /// 501: database server error.
    DatabaseServerError = 501,
    /// 502: command disabled (MSNP7+).
    CommandDisabled = 502,
    /// 510: file operation error.
    FileOperationError = 510,
    /// 520: memory allocation error.
    MemoryAllocationError = 520,
    /// 540: challenge response failed.
    ChallengeResponseFailed = 540,
    /// 600: server busy.
    ServerBusy = 600,
    /// 601: server unavailable.
    ServerUnavailable = 601,
    /// 602: peer notification server down.
    PeerNsDown = 602,
    /// 603: database connect error.
    DatabaseConnectError = 603,
    /// 604: server going down.
    ServerGoingDown = 604,
    /// 605: server unavailable (variant).
    ServerUnavailable605 = 605,
    /// 707: could not create connection.
    CouldNotCreateConnection = 707,
    /// 710: bad `CVR` parameters.
    BadCvrParameters = 710,
    /// 711: write is blocking.
    WriteBlocking = 711,
    /// 712: session overload.
    SessionOverload = 712,
    /// 713: calling too rapidly / user too active.
    TooActive = 713,
    /// 714: too many sessions.
    TooManySessions = 714,
    /// 715: not expected (command at the wrong time, e.g. a second `VER`).
    NotExpected = 715,
    /// 717: bad friend file.
    BadFriendFile = 717,
    /// 731: not expected (`CVR` before the initial `USR`, MSNP7-era).
    NotExpectedCvr = 731,
    /// 800: changing too rapidly.
    ChangingTooRapidly = 800,
    /// 910: server too busy.
    ServerTooBusy910 = 910,
    /// 911: authentication failed.
    AuthenticationFailed = 911,
    /// 912: server too busy.
    ServerTooBusy912 = 912,
    /// 913: not allowed when offline / hidden.
    NotAllowedWhenOffline = 913,
    /// 914: server unavailable.
    ServerUnavailable914 = 914,
    /// 915: server unavailable.
    ServerUnavailable915 = 915,
    /// 916: server unavailable.
    ServerUnavailable916 = 916,
    /// 917: authentication failed (variant).
    AuthenticationFailed917 = 917,
    /// 918: server too busy.
    ServerTooBusy918 = 918,
    /// 919: server too busy.
    ServerTooBusy919 = 919,
    /// 920: not accepting new users.
    NotAcceptingNewUsers = 920,
    /// 921: server too busy.
    ServerTooBusy921 = 921,
    /// 922: server too busy.
    ServerTooBusy922 = 922,
    /// 923: Kids Passport without parental consent.
    KidsWithoutConsent = 923,
    /// 924: Passport account not yet verified.
    PassportNotVerified = 924,
    /// 928: bad ticket.
    BadTicket = 928,
}

impl ErrorCode {
    /// Parses a three-digit code (`100 ..= 999`), the name of an error line.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u16 = s.parse().ok()?;
        (n >= 100).then(|| Self::from_code(n))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.code().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips() {
        for c in ErrorCode::KNOWN {
            assert_eq!(ErrorCode::from_code(c.code()), *c);
            assert_eq!(ErrorCode::parse(&c.to_string()), Some(*c));
        }
        assert_eq!(ErrorCode::AuthenticationFailed.code(), 911);
        assert_eq!(ErrorCode::parse("999"), Some(ErrorCode::Unrecognized(999)));
        assert_eq!(ErrorCode::parse("099"), None);
        assert_eq!(ErrorCode::parse("1000"), None);
    }
}
