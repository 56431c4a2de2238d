//! The names of the commands a client sends, and which of them carry a payload (with its byte
//! limit): the one definition that both the framing ([`crate::frame`]) and the command parsers
//! ([`crate::client`]) read, so they cannot disagree.

use crate::frame::{
    MAX_CLIENT_LIST_XML_BYTES, MAX_CLIENT_MSG_BYTES, MAX_CLIENT_TEXT_BYTES, MAX_CLIENT_XML_BYTES,
    MAX_QRY_BYTES,
};

/// A client → server command name this crate knows (whether or not it parses its arguments:
/// MSNP13+ names such as `ADL` are framed here but parse as
/// [`ClientCommand::Unknown`](crate::client::ClientCommand::Unknown)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verb {
    /// `VER`.
    Ver,
    /// `CVR`.
    Cvr,
    /// `INF`.
    Inf,
    /// `USR`.
    Usr,
    /// `XFR`.
    Xfr,
    /// `SYN`.
    Syn,
    /// `LST`.
    Lst,
    /// `LSG`.
    Lsg,
    /// `GTC`.
    Gtc,
    /// `BLP`.
    Blp,
    /// `ADD`.
    Add,
    /// `ADC`.
    Adc,
    /// `REM`.
    Rem,
    /// `REA`.
    Rea,
    /// `ADG`.
    Adg,
    /// `RMG`.
    Rmg,
    /// `REG`.
    Reg,
    /// `PRP`.
    Prp,
    /// `SBP`.
    Sbp,
    /// `UUX`.
    Uux,
    /// `UUN`.
    Uun,
    /// `UUM`.
    Uum,
    /// `GCF`.
    Gcf,
    /// `CHG`.
    Chg,
    /// `PNG`.
    Png,
    /// `OUT`.
    Out,
    /// `URL`.
    Url,
    /// `FND`.
    Fnd,
    /// `SND`.
    Snd,
    /// `SDC`.
    Sdc,
    /// `IMS`.
    Ims,
    /// `PAG`.
    Pag,
    /// `PGD`.
    Pgd,
    /// `QRY`.
    Qry,
    /// `CAL`.
    Cal,
    /// `ANS`.
    Ans,
    /// `MSG`.
    Msg,
    /// `ADL`.
    Adl,
    /// `RML`.
    Rml,
    /// `FQY`.
    Fqy,
}

impl Verb {
    /// Every name, in the order above.
    pub const ALL: [Self; 40] = [
        Self::Ver,
        Self::Cvr,
        Self::Inf,
        Self::Usr,
        Self::Xfr,
        Self::Syn,
        Self::Lst,
        Self::Lsg,
        Self::Gtc,
        Self::Blp,
        Self::Add,
        Self::Adc,
        Self::Rem,
        Self::Rea,
        Self::Adg,
        Self::Rmg,
        Self::Reg,
        Self::Prp,
        Self::Sbp,
        Self::Uux,
        Self::Uun,
        Self::Uum,
        Self::Gcf,
        Self::Chg,
        Self::Png,
        Self::Out,
        Self::Url,
        Self::Fnd,
        Self::Snd,
        Self::Sdc,
        Self::Ims,
        Self::Pag,
        Self::Pgd,
        Self::Qry,
        Self::Cal,
        Self::Ans,
        Self::Msg,
        Self::Adl,
        Self::Rml,
        Self::Fqy,
    ];

    /// The verb named `name` (three upper-case letters), if known.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "VER" => Self::Ver,
            "CVR" => Self::Cvr,
            "INF" => Self::Inf,
            "USR" => Self::Usr,
            "XFR" => Self::Xfr,
            "SYN" => Self::Syn,
            "LST" => Self::Lst,
            "LSG" => Self::Lsg,
            "GTC" => Self::Gtc,
            "BLP" => Self::Blp,
            "ADD" => Self::Add,
            "ADC" => Self::Adc,
            "REM" => Self::Rem,
            "REA" => Self::Rea,
            "ADG" => Self::Adg,
            "RMG" => Self::Rmg,
            "REG" => Self::Reg,
            "PRP" => Self::Prp,
            "SBP" => Self::Sbp,
            "UUX" => Self::Uux,
            "UUN" => Self::Uun,
            "UUM" => Self::Uum,
            "GCF" => Self::Gcf,
            "CHG" => Self::Chg,
            "PNG" => Self::Png,
            "OUT" => Self::Out,
            "URL" => Self::Url,
            "FND" => Self::Fnd,
            "SND" => Self::Snd,
            "SDC" => Self::Sdc,
            "IMS" => Self::Ims,
            "PAG" => Self::Pag,
            "PGD" => Self::Pgd,
            "QRY" => Self::Qry,
            "CAL" => Self::Cal,
            "ANS" => Self::Ans,
            "MSG" => Self::Msg,
            "ADL" => Self::Adl,
            "RML" => Self::Rml,
            "FQY" => Self::Fqy,
            _ => return None,
        })
    }

    /// The name on the wire.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ver => "VER",
            Self::Cvr => "CVR",
            Self::Inf => "INF",
            Self::Usr => "USR",
            Self::Xfr => "XFR",
            Self::Syn => "SYN",
            Self::Lst => "LST",
            Self::Lsg => "LSG",
            Self::Gtc => "GTC",
            Self::Blp => "BLP",
            Self::Add => "ADD",
            Self::Adc => "ADC",
            Self::Rem => "REM",
            Self::Rea => "REA",
            Self::Adg => "ADG",
            Self::Rmg => "RMG",
            Self::Reg => "REG",
            Self::Prp => "PRP",
            Self::Sbp => "SBP",
            Self::Uux => "UUX",
            Self::Uun => "UUN",
            Self::Uum => "UUM",
            Self::Gcf => "GCF",
            Self::Chg => "CHG",
            Self::Png => "PNG",
            Self::Out => "OUT",
            Self::Url => "URL",
            Self::Fnd => "FND",
            Self::Snd => "SND",
            Self::Sdc => "SDC",
            Self::Ims => "IMS",
            Self::Pag => "PAG",
            Self::Pgd => "PGD",
            Self::Qry => "QRY",
            Self::Cal => "CAL",
            Self::Ans => "ANS",
            Self::Msg => "MSG",
            Self::Adl => "ADL",
            Self::Rml => "RML",
            Self::Fqy => "FQY",
        }
    }

    /// The payload byte limit of this command, or `None` if it carries no payload (PROTOCOL.md
    /// §1.4).
    ///
    /// | command | limit |
    /// |---|---|
    /// | `MSG` | [`MAX_CLIENT_MSG_BYTES`] (1664) |
    /// | `QRY` | [`MAX_QRY_BYTES`] |
    /// | `SDC`, `PAG`, `PGD` | [`MAX_CLIENT_TEXT_BYTES`] |
    /// | `UUX`, `UUN`, `UUM` | [`MAX_CLIENT_XML_BYTES`] |
    /// | `ADL`, `RML`, `FQY` | [`MAX_CLIENT_LIST_XML_BYTES`] |
    #[must_use]
    pub const fn payload_limit(self) -> Option<usize> {
        match self {
            Self::Msg => Some(MAX_CLIENT_MSG_BYTES),
            Self::Qry => Some(MAX_QRY_BYTES),
            Self::Sdc | Self::Pag | Self::Pgd => Some(MAX_CLIENT_TEXT_BYTES),
            Self::Uux | Self::Uun | Self::Uum => Some(MAX_CLIENT_XML_BYTES),
            Self::Adl | Self::Rml | Self::Fqy => Some(MAX_CLIENT_LIST_XML_BYTES),
            _ => None,
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for verb in Verb::ALL {
            assert_eq!(Verb::parse(verb.as_str()), Some(verb));
        }
        assert_eq!(Verb::parse("RNG"), None, "server-only");
        assert_eq!(Verb::parse("msg"), None, "case matters");
    }

    #[test]
    fn payload_commands_are_the_documented_ones() {
        let with: Vec<&str> = Verb::ALL
            .into_iter()
            .filter(|v| v.payload_limit().is_some())
            .map(Verb::as_str)
            .collect();
        assert_eq!(
            with,
            [
                "UUX", "UUN", "UUM", "SDC", "PAG", "PGD", "QRY", "MSG", "ADL", "RML", "FQY"
            ]
        );
        assert_eq!(Verb::Msg.payload_limit(), Some(1664));
    }
}
