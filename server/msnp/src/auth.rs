//! Pure authentication helpers: the MD5 login (MSNP2–7) and the `CHL`/`QRY` challenge: the
//! MSNP6–MSNP10 MD5 scheme (PROTOCOL.md §2.5) and the MSNP11+ product-key scheme (§8).
//!
//! Comparisons of client answers are constant-time so a remote client cannot learn the
//! expected value byte by byte from timing.

use md5::{Digest, Md5};

use crate::version::QryScheme;

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

/// The known MSNP11+ product ids and keys (yellows111 `challenge_keypairs`, "since MSNP11";
/// `PROD0101{0RM?UBW` is MSN 7.0.0777's, `PROD0104U6VVM{UJ` MSN 7.5's).
pub const PRODUCT_KEYS: &[(&str, &str)] = &[
    ("PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL"),
    ("PROD00974#MT*RC2", "LMCVO*18PQJ3H!K3"),
    ("PROD0101{0RM?UBW", "CFHUR$52U_{VIX5T"),
    ("PROD0104U6VVM{UJ", "VK67B}379XYM5}$T"),
];

/// The MSNP11+ `QRY` payload for `challenge` from product `product_id` with `product_key`
/// (PROTOCOL.md §8, libpurple's `msn_handle_chl`): MD5 of challenge ‖ key as four
/// little-endian words (kept, and masked with `0x7FFFFFFF`), folded with challenge ‖ product
/// id padded with `'0'` to a multiple of 8, XORed into the kept words.
///
/// ```
/// use relive_msnp::auth::product_key_response;
/// assert_eq!(
///     product_key_response("13038318816579321232", "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL"),
///     "b01c13020e374d4fa20abfad6981b7a9"
/// );
/// ```
#[must_use]
pub fn product_key_response(challenge: &str, product_id: &str, product_key: &str) -> String {
    const MASK: u64 = 0x7FFF_FFFF;
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(product_key.as_bytes());
    let digest = h.finalize();
    let mut kept = [0u32; 4];
    for (i, w) in digest.chunks_exact(4).enumerate() {
        kept[i] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    }
    let md5 = kept.map(|w| u64::from(w) & MASK);
    let mut text = format!("{challenge}{product_id}").into_bytes();
    while text.len() % 8 != 0 {
        text.push(b'0');
    }
    let words: Vec<u64> = text
        .chunks_exact(4)
        .map(|w| u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .collect();
    let (mut high, mut low) = (0u64, 0u64);
    for pair in words.chunks_exact(2) {
        let mut temp = (0x0E79_A9C1 * pair[0]) % MASK;
        temp = (md5[0] * (temp + low) + md5[1]) % MASK;
        high += temp;
        temp = (pair[1] + temp) % MASK;
        low = (md5[2] * temp + md5[3]) % MASK;
        high += low;
    }
    // Both are below 2^31 after the reduction, so they fit a word.
    let low = u32::try_from((low + md5[1]) % MASK).unwrap_or(0);
    let high = u32::try_from((high + md5[3]) % MASK).unwrap_or(0);
    let out = [kept[0] ^ low, kept[1] ^ high, kept[2] ^ low, kept[3] ^ high];
    out.iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The expected `QRY` payload in `scheme` for `challenge` from `client_id`, or `None` for an id
/// the scheme does not know (an MSNP6–10 id under MSNP11 and the other way round).
#[must_use]
pub fn qry_answer(scheme: QryScheme, challenge: &str, client_id: &str) -> Option<String> {
    match scheme {
        QryScheme::Md5 => qry_response(challenge, client_id),
        QryScheme::ProductKey => PRODUCT_KEYS
            .iter()
            .find(|(id, _)| *id == client_id)
            .map(|(id, key)| product_key_response(challenge, id, key)),
    }
}

/// Whether `answer` (the `QRY` payload) is right for `challenge` and `client_id` in `scheme`.
/// Unknown ids and wrong answers are both `false`.
#[must_use]
pub fn verify_qry(scheme: QryScheme, challenge: &str, client_id: &str, answer: &[u8]) -> bool {
    qry_answer(scheme, challenge, client_id)
        .is_some_and(|exp| constant_time_eq(exp.as_bytes(), answer))
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
            assert!(verify_qry(QryScheme::Md5, chl, id, want.as_bytes()));
        }
        assert!(!verify_qry(
            QryScheme::Md5,
            "29409134351025259292",
            "msmsgs@msnmsgr.com",
            b"ffffffffffffffffffffffffffffffff"
        ));
        assert!(!verify_qry(
            QryScheme::Md5,
            "29409134351025259292",
            "unknown@client",
            b"d0c1178c689350104350d99f8c36ed9c"
        ));
        assert_eq!(qry_response("1", "nobody"), None);
    }

    #[test]
    fn msnp11_product_key_vectors() {
        // PROTOCOL.md §8's vector, and Eclipse ECF's ChallengeTest (also a Ruby client's spec).
        let vectors = [
            ("13038318816579321232", "b01c13020e374d4fa20abfad6981b7a9"),
            ("22210219642164014968", "85ecb0db8f32113df79ce0892b9a102c"),
            ("36819795137093047918", "e7ad3cb09d3e9e4e7c720175984809e9"),
            ("21948129323261853323", "59bcf63ed21f44906c3d3e121ddbed65"),
            ("41525959199453244913", "dcb8ff529e4dd12cc43389851128d2db"),
        ];
        for (chl, want) in vectors {
            let id = "PROD0090YUAUV{2B";
            assert_eq!(
                qry_answer(QryScheme::ProductKey, chl, id).as_deref(),
                Some(want)
            );
            assert!(verify_qry(QryScheme::ProductKey, chl, id, want.as_bytes()));
            // The same answer under the MD5 scheme (an MSNP6–10 session) is refused.
            assert!(!verify_qry(QryScheme::Md5, chl, id, want.as_bytes()));
        }
        // The research notes' values for the other MSNP11+ ids (no independent cross-check).
        let chl = "22210219642164014968";
        for (id, want) in [
            ("PROD00974#MT*RC2", "dbb79287f2a8b24af4230fde60125b29"),
            ("PROD0101{0RM?UBW", "64812169fe9717715f03c678fa4ab938"),
            ("PROD0104U6VVM{UJ", "a79aeff92542b7d771601f693ce895b2"),
        ] {
            assert_eq!(
                qry_answer(QryScheme::ProductKey, chl, id).as_deref(),
                Some(want)
            );
        }
        // An MSNP6–10 id is not a product id.
        assert_eq!(
            qry_answer(QryScheme::ProductKey, chl, "msmsgs@msnmsgr.com"),
            None
        );
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
