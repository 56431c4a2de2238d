//! The Passport 1.4 `Authorization` header of a `login2.srf` request (PROTOCOL.md §2.3.3),
//! parsed without I/O:
//!
//! ```text
//! Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=alice%40example.com,pwd=<urlenc>,<twn-params>
//! ```
//!
//! The scheme name and the keys are matched without regard to case; `sign-in` and `pwd` are
//! URL-decoded and must decode to UTF-8. Every other field (`OrgVerb`, `OrgURL`, the copied
//! `TWN` parameters) is ignored. A key given twice is refused rather than resolved one way or
//! the other: a proxy and the server must never disagree about whose login this is.

use std::fmt;

use crate::types::{Passport, url_decode};

/// Longest `Authorization` value parsed.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// Longest secret (URL-decoded) accepted; tokens are 16 characters, bcrypt uses 72 bytes.
pub const MAX_SECRET_BYTES: usize = 256;

/// Why an `Authorization` header could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// Not `Passport1.4 ...`, too long, or missing `sign-in` / `pwd`.
    #[error("not a Passport1.4 authorization")]
    Malformed,
    /// `sign-in` is not a valid handle.
    #[error("sign-in is not a valid handle")]
    BadHandle,
    /// `sign-in` or `pwd` appears more than once.
    #[error("sign-in or pwd given twice")]
    Duplicate,
}

/// The credentials of one `Authorization` header. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The handle (`sign-in`), normalised.
    pub handle: Passport,
    /// The token or password (`pwd`), URL-decoded.
    pub secret: String,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("handle", &self.handle)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `value` URL-decoded, if that is UTF-8.
fn decode(value: &str) -> Option<String> {
    String::from_utf8(url_decode(value)).ok()
}

/// Stores `value` in `slot`, refusing a second one.
fn once(slot: &mut Option<String>, value: String) -> Result<(), AuthorizationError> {
    if slot.replace(value).is_some() {
        return Err(AuthorizationError::Duplicate);
    }
    Ok(())
}

impl Authorization {
    /// Parses an `Authorization` header value.
    ///
    /// ```
    /// use relive_msnp::passport::{Authorization, AuthorizationError};
    /// let a = Authorization::parse("Passport1.4 OrgVerb=GET,sign-in=Alice%40Example.com,pwd=p%2Cw")
    ///     .unwrap();
    /// assert_eq!((a.handle.as_str(), a.secret.as_str()), ("alice@example.com", "p,w"));
    /// assert_eq!(
    ///     Authorization::parse("Passport1.4 sign-in=a%40b.c,sign-in=m%40b.c,pwd=x"),
    ///     Err(AuthorizationError::Duplicate)
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// [`AuthorizationError`].
    pub fn parse(value: &str) -> Result<Self, AuthorizationError> {
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthorizationError::Malformed);
        }
        let value = value.trim_start();
        let (scheme, rest) = value.split_once(' ').ok_or(AuthorizationError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("Passport1.4") {
            return Err(AuthorizationError::Malformed);
        }
        let (mut handle, mut secret) = (None, None);
        for field in rest.split(',') {
            let Some((key, raw)) = field.trim().split_once('=') else {
                continue;
            };
            if key.eq_ignore_ascii_case("sign-in") {
                once(
                    &mut handle,
                    decode(raw).ok_or(AuthorizationError::BadHandle)?,
                )?;
            } else if key.eq_ignore_ascii_case("pwd") {
                once(
                    &mut secret,
                    decode(raw).ok_or(AuthorizationError::Malformed)?,
                )?;
            }
        }
        let (Some(handle), Some(secret)) = (handle, secret) else {
            return Err(AuthorizationError::Malformed);
        };
        if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
            return Err(AuthorizationError::Malformed);
        }
        let handle = Passport::parse(&handle).map_err(|_| AuthorizationError::BadHandle)?;
        Ok(Self { handle, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_header_parses_and_the_secret_is_decoded() {
        let header = "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,\
                      sign-in=Alice%40Example.com,pwd=p%2Cw%25d+x,lc=1033,id=507,tw=40";
        let a = Authorization::parse(header).unwrap();
        assert_eq!(a.handle.as_str(), "alice@example.com");
        assert_eq!(a.secret, "p,w%d+x");
        assert!(!format!("{a:?}").contains("p,w"));
        // Unencoded values (transcript 03) and other key case work too.
        let a = Authorization::parse("passport1.4 SIGN-IN=bob@example.com,PWD=secret123").unwrap();
        assert_eq!(a.secret, "secret123");
    }

    #[test]
    fn bad_headers_are_rejected() {
        let err = |h: &str| Authorization::parse(h).unwrap_err();
        assert_eq!(err("Basic YWxpY2U6cHc="), AuthorizationError::Malformed);
        assert_eq!(err("Passport1.4"), AuthorizationError::Malformed);
        assert_eq!(
            err("Passport1.4 sign-in=alice%40example.com"),
            AuthorizationError::Malformed
        );
        assert_eq!(
            err("Passport1.4 sign-in=alice%40example.com,pwd="),
            AuthorizationError::Malformed
        );
        assert_eq!(
            err("Passport1.4 sign-in=alice,pwd=x"),
            AuthorizationError::BadHandle
        );
        assert_eq!(
            err("Passport1.4 sign-in=%FF%40example.com,pwd=x"),
            AuthorizationError::BadHandle
        );
        assert_eq!(
            err("Passport1.4 sign-in=a%40example.com,pwd=%FF%FE"),
            AuthorizationError::Malformed
        );
        let long = format!(
            "Passport1.4 sign-in=a%40example.com,pwd={}",
            "x".repeat(MAX_SECRET_BYTES + 1)
        );
        assert_eq!(err(&long), AuthorizationError::Malformed);
        let huge = format!("Passport1.4 {}", "a".repeat(MAX_AUTHORIZATION_BYTES));
        assert_eq!(err(&huge), AuthorizationError::Malformed);
    }

    #[test]
    fn a_repeated_sign_in_or_pwd_is_refused_whatever_the_case() {
        let err = |h: &str| Authorization::parse(h).unwrap_err();
        for header in [
            "Passport1.4 sign-in=alice%40example.com,pwd=x,sign-in=mallory%40example.com",
            "Passport1.4 SIGN-IN=alice%40example.com,Sign-In=alice%40example.com,pwd=x",
            "Passport1.4 sign-in=alice%40example.com,pwd=x,PWD=y",
        ] {
            assert_eq!(err(header), AuthorizationError::Duplicate, "{header}");
        }
    }
}
