//! Pages: the body of a client's `PAG` (MSNP5–8) or `PGD` (MSNP9+), and the `IPG` incoming
//! page notification (MSNP6+) that delivers one (yellows111 `PAG`, `PGD`, `IPG`; research note
//! for issue 18, §4).
//!
//! A page body is a `<TEXT>` element, optionally after a `<PHONE pri="1"><LOC>…</LOC><NUM>…
//! </NUM></PHONE>` callback number:
//!
//! ```text
//! <PHONE pri="1"><LOC>MOBILE</LOC><NUM>15551114444</NUM></PHONE><TEXT xml:space="preserve">Hi</TEXT>
//! <TEXT xml:space="preserve" enc="utf-8">This is an example message.</TEXT>      (PGD)
//! ```
//!
//! It is read with the crate's bounded XML reader ([`crate::xml`]) inside a wrapper element,
//! so the entities clients write (`&#x3B;`, `&#x3C;`, `&amp;` …) come back as text.
//!
//! Clients without `IPG` (MSNP2–5) get their pages from a virtual contact instead: the
//! switchboard member [`VIRTUAL_HANDLE`] ("Pager"), which says one [`page_message`] per page.
//! Its domain is under `.invalid` (RFC 2606: never a real domain), and every handle there is
//! reserved ([`is_reserved_handle`]): no account, no list entry can name one.

use bytes::Bytes;

use crate::xml;

/// Most characters of page text accepted (a pager screen's worth, generously).
pub const MAX_PAGE_CHARS: usize = 512;

/// Most digits of a callback number kept.
pub const MAX_CALLBACK_CHARS: usize = 32;

/// A parsed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The text, unescaped.
    pub text: String,
    /// The callback number the sender attached, if any: location (`HOME`, `WORK`, `MOBILE`)
    /// and number.
    pub callback: Option<(String, String)>,
}

/// Why a page body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// Not the page XML (or no `<TEXT>`).
    #[error("page body is not <TEXT> XML")]
    Malformed,
    /// Empty text.
    #[error("page text is empty")]
    Empty,
    /// More than [`MAX_PAGE_CHARS`] characters of text.
    #[error("page text too long")]
    TooLong,
}

/// Parses a `PAG`/`PGD` body.
///
/// # Errors
///
/// [`PageError`] when it is not page XML, has no text, or too much of it.
pub fn parse_page(body: &[u8]) -> Result<Page, PageError> {
    let mut doc = Vec::with_capacity(body.len() + 13);
    doc.extend_from_slice(b"<PAGE>");
    doc.extend_from_slice(body);
    doc.extend_from_slice(b"</PAGE>");
    let root = xml::parse(&doc).map_err(|_| PageError::Malformed)?;
    let text = root.child("TEXT").ok_or(PageError::Malformed)?.text.clone();
    if text.trim().is_empty() {
        return Err(PageError::Empty);
    }
    if text.chars().count() > MAX_PAGE_CHARS {
        return Err(PageError::TooLong);
    }
    let callback = root.child("PHONE").and_then(|p| {
        let loc = p.child("LOC")?.text.trim().to_ascii_uppercase();
        let num: String = p
            .child("NUM")?
            .text
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .take(MAX_CALLBACK_CHARS)
            .collect();
        (["HOME", "WORK", "MOBILE"].contains(&loc.as_str()) && !num.is_empty())
            .then_some((loc, num))
    });
    Ok(Page { text, callback })
}

/// The handle of the virtual contact that delivers pages to clients without `IPG`.
pub const VIRTUAL_HANDLE: &str = "pager@pager.invalid";

/// The friendly name of [`VIRTUAL_HANDLE`].
pub const VIRTUAL_NAME: &str = "Pager";

/// Whether `handle` is under the reserved `.invalid` top-level domain (RFC 2606), where the
/// server's virtual contacts live: such a handle is never an account or a list entry.
#[must_use]
pub fn is_reserved_handle(handle: &str) -> bool {
    let Some((_, domain)) = handle.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim_end_matches('.');
    let tld = domain.rsplit('.').next().unwrap_or(domain);
    tld.eq_ignore_ascii_case("invalid")
}

/// Who sent a page, as [`page_message`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSender<'a> {
    /// The friendly name (decoded, for display).
    pub name: &'a str,
    /// The handle.
    pub handle: &'a str,
}

/// The switchboard `text/plain` message that delivers one page from the virtual contact:
///
/// ```text
/// MIME-Version: 1.0
/// Content-Type: text/plain; charset=UTF-8
/// X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0
///
/// Page from Alice (alice@example.com), 2026-12-07 22:30 UTC: Hi [call back: MOBILE 15551114444]
/// ```
///
/// Every dialect's text messages carry `X-MMS-IM-Format` (PROTOCOL.md §3.3; already in the
/// MSNP2 draft's example), so every client gets it. `sent` is the page's time as displayed;
/// `callback` the location and number the sender attached.
#[must_use]
pub fn page_message(
    from: PageSender<'_>,
    sent: &str,
    text: &str,
    callback: Option<(&str, &str)>,
) -> Bytes {
    let mut body = format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\
         X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\n\
         Page from {} ({}), {sent}: {text}",
        from.name, from.handle
    );
    if let Some((loc, num)) = callback {
        body.push_str(&format!(" [call back: {loc} {num}]"));
    }
    Bytes::from(body)
}

/// One side of an `IPG`: a handle and its Passport member id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParty<'a> {
    /// The handle.
    pub handle: &'a str,
    /// The 64-bit member id (`pid="0x<high>:0x<low>"`).
    pub member_id: u64,
}

fn pid(member_id: u64) -> String {
    format!(
        "0x{:08X}:0x{:08X}",
        member_id >> 32,
        member_id & 0xffff_ffff
    )
}

/// The `IPG` payload that delivers `text` from `from` to `to`; `site_url` is where the
/// client's links resolve (this server's website).
#[must_use]
pub fn ipg_payload(to: PageParty<'_>, from: PageParty<'_>, text: &str, site_url: &str) -> Bytes {
    let e = xml::escape;
    Bytes::from(format!(
        "<NOTIFICATION id=\"0\" siteid=\"111100400\" siteurl=\"{site}\"><TO name=\"{to}\" \
         pid=\"{to_pid}\" email=\"{to}\"><VIA agent=\"mobile\"/></TO><FROM pid=\"{from_pid}\" \
         name=\"{from}\"/><MSG pri=\"1\" id=\"0\"><ACTION url=\"mobile\"/><SUBSCR url=\"mobile\"/>\
         <CAT id=\"110110001\"/><BODY lang=\"1033\"><TEXT>{text}</TEXT></BODY></MSG></NOTIFICATION>",
        site = e(site_url),
        to = e(to.handle),
        to_pid = pid(to.member_id),
        from = e(from.handle),
        from_pid = pid(from.member_id),
        text = e(text),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgd_body_of_the_wiki_example() {
        // yellows111 `PGD` ("PGD 1 anotheruser@hotmail.com 1 74"; the body is 73 bytes, the
        // wiki's count is one off: its PAG twin, 61, is exact).
        let body = br#"<TEXT xml:space="preserve" enc="utf-8">This is an example message.</TEXT>"#;
        assert_eq!(body.len(), 73);
        let page = parse_page(body).unwrap();
        assert_eq!(page.text, "This is an example message.");
        assert_eq!(page.callback, None);
    }

    #[test]
    fn pag_body_with_callback_and_escapes() {
        let body = b"<PHONE pri=\"1\"><LOC>MOBILE</LOC><NUM>15551114444</NUM></PHONE>\
<TEXT xml:space=\"preserve\">a&#x3B; b &#x3C;c&#x3E; &amp; d&#x5E;</TEXT>";
        let page = parse_page(body).unwrap();
        assert_eq!(page.text, "a; b <c> & d^");
        assert_eq!(
            page.callback,
            Some(("MOBILE".to_owned(), "15551114444".to_owned()))
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert_eq!(parse_page(b"hello"), Err(PageError::Malformed));
        assert_eq!(parse_page(b"<TEXT></TEXT>"), Err(PageError::Empty));
        assert_eq!(parse_page(b"<TEXT>unclosed"), Err(PageError::Malformed));
        let long = format!("<TEXT>{}</TEXT>", "x".repeat(MAX_PAGE_CHARS + 1));
        assert_eq!(parse_page(long.as_bytes()), Err(PageError::TooLong));
    }

    #[test]
    fn reserved_handles_are_the_invalid_domain() {
        assert!(is_reserved_handle(VIRTUAL_HANDLE));
        assert!(is_reserved_handle("someone@PAGER.Invalid"));
        assert!(is_reserved_handle("x@invalid"));
        assert!(is_reserved_handle("x@a.invalid."));
        assert!(!is_reserved_handle("alice@example.com"));
        assert!(!is_reserved_handle("invalid@example.com"));
        assert!(!is_reserved_handle("x@invalid.example.com"));
        assert!(!is_reserved_handle("no-at-sign"));
    }

    #[test]
    fn page_message_exact_bytes() {
        let from = PageSender {
            name: "Alice",
            handle: "alice@example.com",
        };
        let m = page_message(from, "2026-12-07 22:30 UTC", "Hi there", None);
        assert_eq!(
            &m[..],
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\
X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\n\
Page from Alice (alice@example.com), 2026-12-07 22:30 UTC: Hi there"
        );
        let m = page_message(from, "t", "x", Some(("MOBILE", "15551114444")));
        assert!(m.ends_with(b"t: x [call back: MOBILE 15551114444]"));
    }

    #[test]
    fn ipg_escapes_text_and_names_both_parties() {
        let p = ipg_payload(
            PageParty {
                handle: "bob@example.com",
                member_id: 0x0006_BFFD_8582_C0FB,
            },
            PageParty {
                handle: "alice@example.com",
                member_id: 1,
            },
            "<b>&",
            "http://h/",
        );
        let s = std::str::from_utf8(&p).unwrap();
        assert!(s.contains("pid=\"0x0006BFFD:0x8582C0FB\" email=\"bob@example.com\""));
        assert!(s.contains("<FROM pid=\"0x00000000:0x00000001\" name=\"alice@example.com\"/>"));
        assert!(s.contains("<TEXT>&lt;b&gt;&amp;</TEXT>"));
    }
}
