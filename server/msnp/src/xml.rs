//! A small, bounded XML tree for the two XML documents MSNP10–12 brings: the `UUX`/`UBX`
//! personal message ([`crate::psm`]) and the SOAP `RST.srf` login ([`crate::rst`]).
//!
//! [`parse`] reads a whole document with `quick-xml` into [`Element`]s (local names only;
//! namespaces prefixes are dropped, which both documents allow: every name in them is unique
//! without its namespace), with a bound on nesting and on the number of elements, so a hostile
//! document costs at most its own (already bounded) size. [`escape`] writes text back.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 1024;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// Not well-formed XML (or not UTF-8).
    #[error("not well-formed XML")]
    Malformed,
    /// Nested deeper than [`MAX_DEPTH`] or more than [`MAX_ELEMENTS`] elements.
    #[error("XML document too deep or too large")]
    TooLarge,
    /// No root element.
    #[error("no root element")]
    Empty,
}

/// One element: its local name, attributes (local names, unescaped values), the text directly
/// inside it (character data, CDATA and references, concatenated) and its child elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The local name (`Username` for `<wsse:Username>`).
    pub name: String,
    /// Attributes by local name.
    pub attrs: Vec<(String, String)>,
    /// The element's own text.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Self>,
}

impl Element {
    /// The first child named `name`.
    #[must_use]
    pub fn child(&self, name: &str) -> Option<&Self> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first element named `name` at any depth below this one (depth-first, in order).
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&Self> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    /// Every element named `name` at any depth below this one, in document order.
    #[must_use]
    pub fn find_all<'a>(&'a self, name: &str) -> Vec<&'a Self> {
        let mut out = Vec::new();
        self.collect(name, &mut out);
        out
    }

    fn collect<'a>(&'a self, name: &str, out: &mut Vec<&'a Self>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.collect(name, out);
        }
    }

    /// The value of the attribute with local name `name`.
    #[must_use]
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The local part of a possibly prefixed name.
fn local(name: &[u8]) -> Result<String, XmlError> {
    let local = name.rsplit(|&b| b == b':').next().unwrap_or(name);
    std::str::from_utf8(local)
        .map(str::to_owned)
        .map_err(|_| XmlError::Malformed)
}

fn element(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|_| XmlError::Malformed)?;
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|_| XmlError::Malformed)?;
        attrs.push((local(a.key.as_ref())?, value.into_owned()));
    }
    Ok(Element {
        name: local(start.name().as_ref())?,
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Parses `bytes` (UTF-8) into its root element.
///
/// # Errors
/// [`XmlError`] when the document is malformed, has no root, or exceeds the bounds.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::Malformed)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader.read_event().map_err(|_| XmlError::Malformed)?;
        match event {
            Event::Start(ref s) | Event::Empty(ref s) => {
                if root.is_some() {
                    return Err(XmlError::Malformed);
                }
                count += 1;
                if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooLarge);
                }
                let e = element(s)?;
                if matches!(event, Event::Start(_)) {
                    stack.push(e);
                } else {
                    close(&mut stack, &mut root, e);
                }
            }
            Event::End(_) => {
                let e = stack.pop().ok_or(XmlError::Malformed)?;
                close(&mut stack, &mut root, e);
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|_| XmlError::Malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|_| XmlError::Malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|_| XmlError::Malformed)? {
                    Some(c) => Cow::Owned(c.to_string()),
                    None => {
                        let name = r.decode().map_err(|_| XmlError::Malformed)?;
                        Cow::Borrowed(
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or(XmlError::Malformed)?,
                        )
                    }
                };
                push_text(&mut stack, &c)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed);
    }
    root.ok_or(XmlError::Empty)
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(stack: &mut [Element], root: &mut Option<Element>, e: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(e),
        None => *root = Some(e),
    }
}

/// Adds text to the open element; text outside the root may only be white space.
fn push_text(stack: &mut [Element], s: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(XmlError::Malformed),
    }
}

/// `s` with `& < > ' "` written as entities, for text and attribute values.
#[must_use]
pub fn escape(s: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_becomes_a_tree_of_local_names() {
        let doc = br#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body a:Id="RST0" xmlns:a="y">
            <u>a &amp; b&#33;<![CDATA[<c>]]></u><e/></s:Body></s:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        let body = root.child("Body").unwrap();
        assert_eq!(body.attr("Id"), Some("RST0"));
        assert_eq!(root.find("u").unwrap().text, "a & b!<c>");
        assert!(root.find("e").is_some());
        assert_eq!(root.find_all("u").len(), 1);
        assert_eq!(escape("<a&'b'>"), "&lt;a&amp;&apos;b&apos;&gt;");
    }

    #[test]
    fn bad_documents_are_refused() {
        for bad in [
            &b""[..],
            b"text only",
            b"<a><b></a>",
            b"<a></a><b></b>",
            b"<a>&nosuch;</a>",
            b"<a>\xff</a>",
            b"<a>",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooLarge));
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(wide.as_bytes()), Err(XmlError::TooLarge));
    }
}
