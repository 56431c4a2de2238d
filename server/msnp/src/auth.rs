//! Pure authentication helpers: the MD5 login (MSNP2–7) and the `CHL`/`QRY` challenge
//! (MSNP6–MSNP10 MD5 scheme, PROTOCOL.md §2.5).
//!
//! Comparisons of client answers are constant-time so a remote client cannot learn the
//! expected value byte by byte from timing.

use md5::{Digest, Md5};

/// Lowercase hex of `md5(challenge ‖ secret)`: the `USR MD5 S` answer (secret = password or
/// access token) and the `QRY` payload (secret = client key).
///
/// ```
/// use relive_msnp::auth::md5_response;
/// assert_eq!(md5_response("1013928519.693957190", "secret123"), "12d89a1b85366cad162178f5de0fff5d");
/// ```
#[must_use]
pub fn md5_response(challenge: &str, secret: &str) -> String {
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The known MSNP6–MSNP10 `QRY` client ids and their keys.
pub const CHL_KEYS: &[(&str, &str)] = &[
    ("msmsgs@msnmsgr.com", "Q1P7W2E4J9R8U3S5"),
    ("PROD0038W!61ZTF9", "VT6PX?UQTM4WM%YR"),
    ("PROD0058#7IL2{QD", "QHDCY@7R1TB6W?5B"),
    ("PROD0061VRRZH@4F", "JXQ6J@TUOGYV@N0M"),
    ("PROD00504RLUG%WL", "I2EBK%PYNLZL5_J4"),
    ("PROD0076ENE8*@AW", "CEQJ8}OE0!WTSWII"),
];

/// The expected `QRY` payload for `challenge` from `client_id`, or `None` for an unknown id.
///
/// ```
/// use relive_msnp::auth::qry_response;
/// assert_eq!(
///     qry_response("22299241447072743325", "msmsgs@msnmsgr.com").as_deref(),
///     Some("20dba7e6e9817826b9cd5240cc8add99")
/// );
/// ```
#[must_use]
pub fn qry_response(challenge: &str, client_id: &str) -> Option<String> {
    CHL_KEYS
        .iter()
        .find(|(id, _)| *id == client_id)
        .map(|(_, key)| md5_response(challenge, key))
}

/// Whether `answer` (the `QRY` payload) is right for `challenge` and `client_id`.
/// Unknown ids and wrong answers are both `false`.
#[must_use]
pub fn verify_qry(challenge: &str, client_id: &str, answer: &[u8]) -> bool {
    qry_response(challenge, client_id).is_some_and(|exp| constant_time_eq(exp.as_bytes(), answer))
}

/// Whether an `USR MD5 S` answer matches `md5(challenge ‖ secret)`.
#[must_use]
pub fn verify_md5(challenge: &str, secret: &str, answer: &str) -> bool {
    constant_time_eq(
        md5_response(challenge, secret).as_bytes(),
        answer.as_bytes(),
    )
}

/// Compares two byte strings in time depending only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_login_vector() {
        assert_eq!(
            md5_response("1013928519.693957190", "secret123"),
            "12d89a1b85366cad162178f5de0fff5d"
        );
        assert!(verify_md5(
            "1013928519.693957190",
            "secret123",
            "12d89a1b85366cad162178f5de0fff5d"
        ));
        assert!(!verify_md5(
            "1013928519.693957190",
            "secret123",
            "00000000000000000000000000000000"
        ));
    }

    #[test]
    fn chl_vectors() {
        let vectors = [
            (
                "15570131571988941333",
                "msmsgs@msnmsgr.com",
                "8f2f5a91b72102cd28355e9fc9000d6e",
            ),
            (
                "15570131571988941333",
                "PROD0038W!61ZTF9",
                "ca90e6a7c94a14aae7b3ae0f6018433e",
            ),
            (
                "22299241447072743325",
                "msmsgs@msnmsgr.com",
                "20dba7e6e9817826b9cd5240cc8add99",
            ),
            (
                "29409134351025259292",
                "msmsgs@msnmsgr.com",
                "d0c1178c689350104350d99f8c36ed9c",
            ),
            (
                "11111111111111111111",
                "msmsgs@msnmsgr.com",
                "3b6666b60157322b6fc6e41a115968f5",
            ),
        ];
        for (chl, id, want) in vectors {
            assert_eq!(qry_response(chl, id).as_deref(), Some(want), "{chl} {id}");
            assert!(verify_qry(chl, id, want.as_bytes()));
        }
        assert!(!verify_qry(
            "29409134351025259292",
            "msmsgs@msnmsgr.com",
            b"ffffffffffffffffffffffffffffffff"
        ));
        assert!(!verify_qry(
            "29409134351025259292",
            "unknown@client",
            b"d0c1178c689350104350d99f8c36ed9c"
        ));
        assert_eq!(qry_response("1", "nobody"), None);
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
