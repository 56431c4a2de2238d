//! The Passport 1.4 `Authorization` header parser (`login2.srf`). Whatever it accepts names
//! exactly one handle and one non-empty secret within bounds, and a header rebuilt from them
//! parses to the same credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relive_msnp::passport::{Authorization, MAX_SECRET_BYTES};
use relive_msnp::types::url_encode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Authorization::parse(text) else {
        return;
    };
    assert!(!parsed.secret.is_empty() && parsed.secret.len() <= MAX_SECRET_BYTES);
    let rebuilt = format!(
        "Passport1.4 OrgVerb=GET,sign-in={},pwd={},lc=1033",
        url_encode(parsed.handle.as_str()),
        url_encode(&parsed.secret)
    );
    assert_eq!(Authorization::parse(&rebuilt), Ok(parsed));
});
