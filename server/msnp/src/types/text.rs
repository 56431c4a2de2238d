//! Text-valued newtypes: handles, names, opaque tokens and secrets, plus URL encoding.

use std::fmt;

use crate::error::InvalidValue;

/// Maximum length of a user handle in bytes (DRAFT §5.4).
pub const MAX_PASSPORT_BYTES: usize = 129;
/// Maximum length of a URL-encoded friendly name in bytes (DRAFT §5.5).
pub const MAX_FRIENDLY_NAME_BYTES: usize = 387;
/// Maximum length of a URL-encoded group name in bytes (yellows111 `ADG`).
pub const MAX_GROUP_NAME_BYTES: usize = 61;
/// Maximum length of a URL-encoded MSNObject; real ones are a few hundred bytes.
pub const MAX_MSN_OBJECT_BYTES: usize = 2048;
/// Maximum length of any other single argument (tokens, cookies, URLs).
pub const MAX_TOKEN_BYTES: usize = 1024;

/// Whether `s` is a usable single argument: non-empty, no whitespace or control characters.
fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A user handle (e-mail-like "passport"), stored lower-case so comparisons are
/// case-insensitive.
///
/// Valid: at most [`MAX_PASSPORT_BYTES`], exactly one `@` with a non-empty local part, a domain
/// containing a dot that is neither first nor last, no whitespace or control characters.
///
/// ```
/// use relive_msnp::types::Passport;
/// let p = Passport::parse("Alice@Example.com").unwrap();
/// assert_eq!(p.as_str(), "alice@example.com");
/// assert!(Passport::parse("a@b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Passport(String);

/// Lets maps keyed by `Passport` be searched with a `&str` (hashing and ordering agree: both
/// are those of the string).
impl std::borrow::Borrow<str> for Passport {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Passport {
    /// Parses and normalises (lower-cases) a handle.
    ///
    /// # Errors
    /// [`InvalidValue`] if the handle breaks one of the rules above.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let err = InvalidValue::new("passport");
        if !is_token(s, MAX_PASSPORT_BYTES) {
            return Err(err);
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(err);
        };
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(err);
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The normalised wire form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Passport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

from_str_via_parse!(Passport);

/// Defines a validated string newtype kept in its wire form.
macro_rules! wire_string {
    ($(#[$meta:meta])* $name:ident, $max:expr, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts a wire-form value (single argument, bounded length).
            ///
            /// # Errors
            /// [`InvalidValue`] if empty, too long, or containing whitespace/control characters.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                if is_token(s, $max) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidValue::new($what))
                }
            }

            /// The wire form.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        from_str_via_parse!($name);
    };
}

wire_string!(
    /// A friendly (display) name in its URL-encoded wire form, at most
    /// [`MAX_FRIENDLY_NAME_BYTES`]. Names are stored and compared encoded.
    #[derive(Debug)]
    FriendlyName, MAX_FRIENDLY_NAME_BYTES, "friendly name"
);
wire_string!(
    /// A contact group name in its URL-encoded wire form, at most [`MAX_GROUP_NAME_BYTES`].
    #[derive(Debug)]
    GroupName, MAX_GROUP_NAME_BYTES, "group name"
);
wire_string!(
    /// A URL-encoded `<msnobj .../>` (MSNP9+), kept opaque.
    #[derive(Debug)]
    MsnObject, MAX_MSN_OBJECT_BYTES, "MSNObject"
);
wire_string!(
    /// Any other single argument kept verbatim (addresses, versions, URLs, challenges).
    #[derive(Debug)]
    Token, MAX_TOKEN_BYTES, "token"
);
wire_string!(
    /// A credential-bearing argument (cookie, ticket, password hash, clear-text password).
    /// Its `Debug` output is redacted so it never reaches a log.
    Secret, MAX_TOKEN_BYTES, "secret"
);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FriendlyName {
    /// URL-encodes a display string into a wire name, truncating whole characters so the result
    /// stays within [`MAX_FRIENDLY_NAME_BYTES`].
    ///
    /// # Errors
    /// [`InvalidValue`] if `display` is empty.
    pub fn from_display(display: &str) -> Result<Self, InvalidValue> {
        let mut out = String::new();
        for c in display.chars() {
            let mut buf = [0u8; 4];
            let enc = url_encode(c.encode_utf8(&mut buf));
            if out.len() + enc.len() > MAX_FRIENDLY_NAME_BYTES {
                break;
            }
            out.push_str(&enc);
        }
        Self::parse(&out)
    }

    /// The URL-decoded display string (invalid escapes and UTF-8 are replaced, never an error).
    #[must_use]
    pub fn to_display(&self) -> String {
        String::from_utf8_lossy(&url_decode(&self.0)).into_owned()
    }
}

impl From<&Passport> for Token {
    /// A handle is always a valid token (e.g. the sender field of a relayed `MSG`).
    fn from(p: &Passport) -> Self {
        Self(p.0.clone())
    }
}

impl From<Passport> for FriendlyName {
    /// A handle is always a valid friendly name (clients use it as the default name).
    fn from(p: Passport) -> Self {
        Self(p.0)
    }
}

/// URL-encodes `s` the way MSN clients do: unreserved ASCII stays, everything else is `%XX`.
///
/// ```
/// assert_eq!(relive_msnp::types::url_encode("Bob B"), "Bob%20B");
/// ```
#[must_use]
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes `%XX` escapes (malformed escapes are kept literally). Returns raw bytes since the
/// result need not be UTF-8.
#[must_use]
pub fn url_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            // Both digits are < 16, so the value fits a byte.
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether the `%XX` escapes of `wire` decode to UTF-8 (what a name must be).
///
/// ```
/// assert!(relive_msnp::types::decodes_to_utf8("Ren%C3%A9e"));
/// assert!(!relive_msnp::types::decodes_to_utf8("%FF%FE"));
/// ```
#[must_use]
pub fn decodes_to_utf8(wire: &str) -> bool {
    std::str::from_utf8(&url_decode(wire)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passport_rules() {
        assert!(Passport::parse("a@b.c").is_ok());
        assert!(Passport::parse("a@b").is_err());
        assert!(Passport::parse("not-an-address").is_err());
        assert!(Passport::parse("a@@b.c").is_err());
        assert!(Passport::parse("@b.c").is_err());
        assert!(Passport::parse("a b@c.d").is_err());
        let long = format!("{}@example.com", "a".repeat(117));
        assert_eq!(long.len(), 129);
        assert!(Passport::parse(&long).is_ok());
        assert!(Passport::parse(&format!("a{long}")).is_err());
        assert_eq!(Passport::parse("A@B.C"), Passport::parse("a@b.c"));
    }

    #[test]
    fn friendly_name_encoding() {
        let n = FriendlyName::from_display("Dave (work) ü").unwrap();
        assert_eq!(n.as_str(), "Dave%20(work)%20%C3%BC");
        assert_eq!(n.to_display(), "Dave (work) ü");
        let long = FriendlyName::from_display(&"é".repeat(200)).unwrap();
        assert!(long.as_str().len() <= MAX_FRIENDLY_NAME_BYTES);
        assert!(FriendlyName::parse(&"a".repeat(388)).is_err());
        assert!(GroupName::parse(&"a".repeat(62)).is_err());
        assert_eq!(url_decode("100%"), b"100%");
        assert_eq!(url_decode("%4"), b"%4");
        assert_eq!(url_decode("%41%zz"), b"A%zz");
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::parse("t=abc&p=def").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.as_str(), "t=abc&p=def");
    }
}
