//! The MSNP11+ personal message: what a client sends in `UUX` and its contacts receive in
//! `UBX` (PROTOCOL.md §8).
//!
//! ```text
//! <Data><PSM>example status message</PSM><CurrentMedia></CurrentMedia></Data>
//! ```
//!
//! The client's XML is parsed ([`PersonalMessage::parse`]) into text and written again for the
//! watchers ([`PersonalMessage::to_xml`]) with both elements always present (msnp11-sdk reads
//! nothing from a `UBX` that lacks one of them) and `& < > ' "` escaped; the client's own bytes
//! are never relayed. `CurrentMedia` is kept as the text it is (`\0Music\01\0{0} - {1}\0…` with
//! literal backslash-zero separators).

use crate::xml;

/// Longest `PSM` text accepted, in bytes (MSN 7 limits it to 129 characters).
pub const MAX_PSM_BYTES: usize = 1024;
/// Longest `CurrentMedia` text accepted, in bytes.
pub const MAX_CURRENT_MEDIA_BYTES: usize = 2048;

/// Why a `UUX` payload was refused (the server closes the connection, as the service did).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PsmError {
    /// Not well-formed XML.
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    /// The root element is not `<Data>`.
    #[error("the root element is not <Data>")]
    NotData,
    /// `PSM` or `CurrentMedia` is longer than allowed.
    #[error("personal message too long")]
    TooLong,
}

/// A personal message and the "now playing" text, as plain (unescaped) text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonalMessage {
    /// The personal message.
    pub psm: String,
    /// The current media ("now playing") text.
    pub current_media: String,
}

impl PersonalMessage {
    /// Parses a `UUX` payload. Missing elements are empty; other elements (`MachineGuid` of
    /// later clients) are ignored.
    ///
    /// # Errors
    /// [`PsmError`].
    ///
    /// ```
    /// use relive_msnp::psm::PersonalMessage;
    /// let p = PersonalMessage::parse(b"<Data><PSM>a &amp; b</PSM><CurrentMedia/></Data>").unwrap();
    /// assert_eq!(p.psm, "a & b");
    /// assert_eq!(p.to_xml(), "<Data><PSM>a &amp; b</PSM><CurrentMedia></CurrentMedia></Data>");
    /// ```
    pub fn parse(payload: &[u8]) -> Result<Self, PsmError> {
        let root = xml::parse(payload)?;
        if root.name != "Data" {
            return Err(PsmError::NotData);
        }
        let text = |name| root.child(name).map(|e| e.text.clone()).unwrap_or_default();
        let pm = Self {
            psm: text("PSM"),
            current_media: text("CurrentMedia"),
        };
        if pm.psm.len() > MAX_PSM_BYTES || pm.current_media.len() > MAX_CURRENT_MEDIA_BYTES {
            return Err(PsmError::TooLong);
        }
        Ok(pm)
    }

    /// The `UBX` payload: `<Data><PSM>…</PSM><CurrentMedia>…</CurrentMedia></Data>`.
    #[must_use]
    pub fn to_xml(&self) -> String {
        format!(
            "<Data><PSM>{}</PSM><CurrentMedia>{}</CurrentMedia></Data>",
            xml::escape(&self.psm),
            xml::escape(&self.current_media)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_clients_send_parse() {
        // yellows111's examples (the `\0` are two characters).
        let p = PersonalMessage::parse(
            b"<Data><PSM>example status message</PSM><CurrentMedia></CurrentMedia></Data>",
        )
        .unwrap();
        assert_eq!(p.psm, "example status message");
        let media = r"\0Music\01\0{0} - {1}\0Song Title\0Song Artist\0Song Album\0\0";
        let xml = format!("<Data><PSM></PSM><CurrentMedia>{media}</CurrentMedia></Data>");
        assert_eq!(
            PersonalMessage::parse(xml.as_bytes())
                .unwrap()
                .current_media,
            media
        );
        // msnp11-sdk (quick-xml serde): self-closing empty element.
        let p = PersonalMessage::parse(b"<Data><PSM>test</PSM><CurrentMedia/></Data>").unwrap();
        assert_eq!(p.current_media, "");
        // MSNP13's MachineGuid is ignored; a missing element is empty.
        let p = PersonalMessage::parse(b"<Data><PSM>x</PSM><MachineGuid>{1}</MachineGuid></Data>")
            .unwrap();
        assert_eq!(
            p.to_xml(),
            "<Data><PSM>x</PSM><CurrentMedia></CurrentMedia></Data>"
        );
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert_eq!(
            PersonalMessage::parse(b"<invalid></invalid>"),
            Err(PsmError::NotData)
        );
        assert!(matches!(
            PersonalMessage::parse(b"<Data><PSM>x</Data>"),
            Err(PsmError::Xml(_))
        ));
        let long = format!("<Data><PSM>{}</PSM></Data>", "x".repeat(MAX_PSM_BYTES + 1));
        assert_eq!(
            PersonalMessage::parse(long.as_bytes()),
            Err(PsmError::TooLong)
        );
    }

    #[test]
    fn text_is_escaped_on_the_way_out() {
        let p = PersonalMessage {
            psm: "<b>\"hi\" & 'bye'</b>".into(),
            current_media: String::new(),
        };
        let xml = p.to_xml();
        assert_eq!(
            xml,
            "<Data><PSM>&lt;b&gt;&quot;hi&quot; &amp; &apos;bye&apos;&lt;/b&gt;</PSM>\
             <CurrentMedia></CurrentMedia></Data>"
        );
        assert_eq!(PersonalMessage::parse(xml.as_bytes()).unwrap(), p);
    }
}
