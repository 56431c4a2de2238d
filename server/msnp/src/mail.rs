//! The Hotmail notifications the NS sends from `Hotmail Hotmail` (PROTOCOL.md §2.4; research
//! note for issue 18, §1): the initial mail counts after login, a new mail, and the change of
//! the unread count when a mail is read or leaves the Inbox ("active mail").
//!
//! Unlike the profile message, their fields are in the body: the MIME header block, a blank
//! line, then `Key: value` lines and a closing blank line (Twisted's captured examples). The
//! content types depend on the dialect ([`MailGeneration`]). Every value built from user input
//! (a sender's name, a subject) goes through [`header_value`]: no CR/LF or other control
//! characters, RFC 2047 `Q` encoding when it is not printable ASCII, and a length bound, so
//! the whole `MSG` stays far below [`crate::frame::MAX_SERVER_PAYLOAD_BYTES`].

use std::fmt::Write as _;

use bytes::Bytes;

use crate::version::MailGeneration;

/// Most characters of a sender's name or a subject that go into a notification (before
/// encoding).
pub const MAX_FIELD_CHARS: usize = 128;

/// Hotmail's name for the Inbox in `Dest-Folder`/`Src-Folder`.
pub const INBOX_FOLDER: &str = "ACTIVE";
/// Hotmail's name for the trash (Escargot's active-mail payload).
pub const TRASH_FOLDER: &str = ".!!trAsH";
/// The folder name used when a mail is read: it no longer counts as unread in the Inbox, so
/// it is reported as having left it (aMSN and Kopete both decrement then).
pub const READ_FOLDER: &str = ".!!READ";

/// Unread counts for the initial notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailCounts {
    /// Unread messages in the Inbox.
    pub inbox_unread: u32,
    /// Unread messages in the other folders.
    pub folders_unread: u32,
}

/// The site links every notification carries: the form action and the redirects (`rru`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLinks<'a> {
    /// Where the client posts its sign-in form (`Post-URL`).
    pub post_url: &'a str,
    /// The Inbox path (`Inbox-URL`).
    pub inbox_url: &'a str,
    /// The folder list path (`Folders-URL`).
    pub folders_url: &'a str,
}

/// A new mail, as the new-mail notification shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewMail<'a> {
    /// The sender's display name.
    pub from_name: &'a str,
    /// The sender's address.
    pub from_addr: &'a str,
    /// The subject.
    pub subject: &'a str,
    /// The path that opens this message (`Message-URL`).
    pub message_url: &'a str,
    /// Where the client posts its sign-in form (`Post-URL`).
    pub post_url: &'a str,
}

/// The site id the client posts as `id` (Hotmail's was 2).
pub const SITE_ID: u32 = 2;

fn head(content_type: &str) -> String {
    format!("MIME-Version: 1.0\r\nContent-Type: {content_type}; charset=UTF-8\r\n\r\n")
}

/// `value` made safe for a `Key: value` line: control characters (CR/LF above all) become
/// spaces, it is cut to [`MAX_FIELD_CHARS`] characters, and anything that is not printable
/// ASCII is RFC 2047 `Q`-encoded as UTF-8 (in words of at most 75 characters, as the RFC asks).
#[must_use]
pub fn header_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_FIELD_CHARS)
        .collect();
    let clean = clean.trim();
    if clean.bytes().all(|b| (0x20..0x7f).contains(&b)) && !clean.contains("=?") {
        return clean.to_owned();
    }
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in clean.chars() {
        let mut piece = String::new();
        if c.is_ascii_alphanumeric() {
            piece.push(c);
        } else if c == ' ' {
            piece.push('_');
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(piece, "={b:02X}");
            }
        }
        // "=?UTF-8?Q?" + "?=" is 12 characters; a word is at most 75.
        if word.len() + piece.len() > 75 - 12 {
            words.push(std::mem::take(&mut word));
        }
        word.push_str(&piece);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .iter()
        .map(|w| format!("=?UTF-8?Q?{w}?="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The initial mail notification (`text/x-msmsgsinitialemailnotification`; MSNP2:
/// `application/x-msmsgsemailnotification`).
#[must_use]
pub fn initial_notification(
    generation: MailGeneration,
    counts: MailCounts,
    links: MailLinks<'_>,
) -> Bytes {
    let mut p = head(match generation {
        MailGeneration::Legacy => "application/x-msmsgsemailnotification",
        MailGeneration::Text => "text/x-msmsgsinitialemailnotification",
    });
    let _ = write!(
        p,
        "Inbox-Unread: {}\r\nFolders-Unread: {}\r\nInbox-URL: {}\r\nFolders-URL: {}\r\n\
         Post-URL: {}\r\n\r\n",
        counts.inbox_unread,
        counts.folders_unread,
        header_value(links.inbox_url),
        header_value(links.folders_url),
        header_value(links.post_url),
    );
    Bytes::from(p)
}

/// The new-mail notification (`text/x-msmsgsemailnotification`, with the site `id` from MSNP3;
/// MSNP2: `application/x-msmsgsemailnotification` without it). Fields in the order of the
/// captured example.
#[must_use]
pub fn new_mail_notification(generation: MailGeneration, mail: &NewMail<'_>) -> Bytes {
    let mut p = head(match generation {
        MailGeneration::Legacy => "application/x-msmsgsemailnotification",
        MailGeneration::Text => "text/x-msmsgsemailnotification",
    });
    // Kopete reads `From-Addr` with `[A-Za-z0-9@._-]*`: send the plain address.
    let addr: String = mail
        .from_addr
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "@._-".contains(*c))
        .take(MAX_FIELD_CHARS)
        .collect();
    let _ = write!(
        p,
        "From: {}\r\nMessage-URL: {}\r\nPost-URL: {}\r\nSubject: {}\r\nDest-Folder: {INBOX_FOLDER}\r\n\
         From-Addr: {addr}\r\n",
        header_value(mail.from_name),
        header_value(mail.message_url),
        header_value(mail.post_url),
        header_value(mail.subject),
    );
    if generation == MailGeneration::Text {
        let _ = write!(p, "id: {SITE_ID}\r\n");
    }
    p.push_str("\r\n");
    Bytes::from(p)
}

/// The active-mail notification (`text/x-msmsgsactivemailnotification`): `delta` messages
/// moved from `src` to `dest`. `None` for MSNP2, which has none, and for a zero delta.
#[must_use]
pub fn active_mail_notification(
    generation: MailGeneration,
    src: &str,
    dest: &str,
    delta: u32,
) -> Option<Bytes> {
    if generation == MailGeneration::Legacy || delta == 0 {
        return None;
    }
    let mut p = head("text/x-msmsgsactivemailnotification");
    let _ = write!(
        p,
        "Src-Folder: {}\r\nDest-Folder: {}\r\nMessage-Delta: {delta}\r\n\r\n",
        header_value(src),
        header_value(dest)
    );
    Some(Bytes::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKS: MailLinks<'static> = MailLinks {
        post_url: "http://127.0.0.1:8080/",
        inbox_url: "/mail",
        folders_url: "/mail/folders",
    };

    #[test]
    fn initial_notification_per_dialect() {
        let counts = MailCounts {
            inbox_unread: 3,
            folders_unread: 1,
        };
        let text = initial_notification(MailGeneration::Text, counts, LINKS);
        assert_eq!(
            &text[..],
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialemailnotification; \
charset=UTF-8\r\n\r\nInbox-Unread: 3\r\nFolders-Unread: 1\r\nInbox-URL: /mail\r\n\
Folders-URL: /mail/folders\r\nPost-URL: http://127.0.0.1:8080/\r\n\r\n"
        );
        let legacy = initial_notification(MailGeneration::Legacy, counts, LINKS);
        assert!(legacy.starts_with(
            b"MIME-Version: 1.0\r\nContent-Type: application/x-msmsgsemailnotification;"
        ));
    }

    #[test]
    fn new_mail_has_the_site_id_from_msnp3_and_no_injection() {
        let mail = NewMail {
            from_name: "Bob\r\nInbox-Unread: 99",
            from_addr: "bob@example.com\r\nX: y",
            subject: "Hi",
            message_url: "/mail/7",
            post_url: "http://h/",
        };
        let text = new_mail_notification(MailGeneration::Text, &mail);
        let s = std::str::from_utf8(&text).unwrap();
        assert_eq!(
            s,
            "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n\
From: Bob  Inbox-Unread: 99\r\nMessage-URL: /mail/7\r\nPost-URL: http://h/\r\nSubject: Hi\r\n\
Dest-Folder: ACTIVE\r\nFrom-Addr: bob@example.comXy\r\nid: 2\r\n\r\n"
        );
        let legacy = new_mail_notification(MailGeneration::Legacy, &mail);
        assert!(!std::str::from_utf8(&legacy).unwrap().contains("id: 2"));
    }

    #[test]
    fn non_ascii_values_are_rfc2047_words() {
        assert_eq!(header_value("Grüße"), "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=");
        assert_eq!(header_value("  plain  "), "plain");
        let long = header_value(&"é".repeat(100));
        assert!(long.split(' ').all(|w| w.len() <= 75), "{long}");
        assert!(!long.contains('\r'));
        assert_eq!(header_value(&"a".repeat(500)).len(), MAX_FIELD_CHARS);
    }

    #[test]
    fn active_mail_only_for_a_change_and_from_msnp3() {
        let p =
            active_mail_notification(MailGeneration::Text, INBOX_FOLDER, TRASH_FOLDER, 1).unwrap();
        assert_eq!(
            &p[..],
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsactivemailnotification; \
charset=UTF-8\r\n\r\nSrc-Folder: ACTIVE\r\nDest-Folder: .!!trAsH\r\nMessage-Delta: 1\r\n\r\n"
        );
        assert!(
            active_mail_notification(MailGeneration::Text, INBOX_FOLDER, TRASH_FOLDER, 0).is_none()
        );
        assert!(
            active_mail_notification(MailGeneration::Legacy, INBOX_FOLDER, TRASH_FOLDER, 1)
                .is_none()
        );
    }
}
