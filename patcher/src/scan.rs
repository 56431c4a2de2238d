//! Finding MSN endpoint strings in a PE image.
//!
//! The search is by content, not by offset: every known host name is looked for as ASCII
//! and as UTF-16LE (at even offsets only), inside section raw data only (never in headers
//! or the certificate table). A hit counts only when it is a whole host token: the bytes
//! (or UTF-16 units) on either side are not host characters. That is what makes
//! `messenger.hotmail.com` not match inside `gateway.messenger.hotmail.com`; the table is
//! also ordered longest first so reports read naturally. For each hit we also report the
//! enclosing printable string (the whole URL, say), because that is what gets rewritten.

use serde::Serialize;

use crate::image::Image;

/// Longest enclosing string we consider, in characters. MSN URLs are well under 100.
pub const MAX_STRING_CHARS: usize = 1024;

/// Which service an endpoint string addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// The notification/dispatch server (`messenger.hotmail.com`, TCP 1863).
    NotificationServer,
    /// The HTTP gateway (`gateway.messenger.hotmail.com`).
    Gateway,
    /// The Passport nexus (`nexus.passport.com`, usually inside the nexus URL).
    Nexus,
    /// Passport login hosts (`login.passport.com`, `loginnet.passport.com`).
    Login,
    /// The MsgrConfig service (`config.messenger.msn.com`, MSN 6+).
    Config,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotificationServer => "notification server",
            Self::Gateway => "HTTP gateway",
            Self::Nexus => "Passport nexus",
            Self::Login => "Passport login",
            Self::Config => "MsgrConfig",
        })
    }
}

/// The host names we redirect, longest first (PATCHER.md §2.1 reference lengths).
/// `loginnet.passport.com` is where MSN 7.5's `msidcrl.dll` posts `RST.srf` according to the
/// third-party clients modelled on it; yellows111 names `login.passport.net` for `RST.srf`
/// (which string the 7.5 DLL embeds is unverified, so both are redirected).
pub const HOSTS: &[(&str, Endpoint)] = &[
    ("gateway.messenger.hotmail.com", Endpoint::Gateway),
    ("config.messenger.msn.com", Endpoint::Config),
    ("loginnet.passport.com", Endpoint::Login),
    ("messenger.hotmail.com", Endpoint::NotificationServer),
    ("login.passport.com", Endpoint::Login),
    ("login.passport.net", Endpoint::Login),
    ("nexus.passport.com", Endpoint::Nexus),
];

/// How a string is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// 8-bit, one byte per character.
    Ascii,
    /// UTF-16 little endian, two bytes per character.
    Utf16Le,
}

impl Encoding {
    /// Bytes per character.
    pub fn width(self) -> usize {
        match self {
            Self::Ascii => 1,
            Self::Utf16Le => 2,
        }
    }

    /// Encodes ASCII text.
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Self::Ascii => text.as_bytes().to_vec(),
            Self::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ascii => "ASCII",
            Self::Utf16Le => "UTF-16LE",
        })
    }
}

/// One occurrence of an endpoint host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// File offset of the host token.
    pub offset: u64,
    /// How it is stored.
    pub encoding: Encoding,
    /// The host name found.
    pub host: &'static str,
    /// The service it addresses.
    pub endpoint: Endpoint,
    /// The section it is in.
    pub section: String,
    /// File offset where the enclosing string starts.
    pub string_offset: u64,
    /// The enclosing string (printable characters up to the terminator).
    pub string: String,
}

/// True for characters that can be part of a host name token.
fn is_host_char(c: u16) -> bool {
    u8::try_from(c).is_ok_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// True for characters that can be part of an enclosing string (printable ASCII).
fn is_string_char(c: u16) -> bool {
    (0x20..0x7f).contains(&c)
}

/// Reads the character at byte offset `at` in `enc`, if inside `range`.
fn unit(data: &[u8], range: &std::ops::Range<usize>, at: usize, enc: Encoding) -> Option<u16> {
    if at < range.start || at + enc.width() > range.end {
        return None;
    }
    match enc {
        Encoding::Ascii => data.get(at).map(|&b| u16::from(b)),
        Encoding::Utf16Le => data
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]])),
    }
}

/// The enclosing printable string around `[at, at + len)` as (start offset, text).
pub(crate) fn enclosing_string(
    data: &[u8],
    range: &std::ops::Range<usize>,
    at: usize,
    len: usize,
    enc: Encoding,
) -> (usize, String) {
    let w = enc.width();
    let mut start = at;
    let mut steps = 0;
    while steps < MAX_STRING_CHARS {
        let Some(prev) = start.checked_sub(w) else {
            break;
        };
        match unit(data, range, prev, enc) {
            Some(c) if is_string_char(c) => start = prev,
            _ => break,
        }
        steps += 1;
    }
    let mut end = at + len;
    steps = 0;
    while steps < MAX_STRING_CHARS {
        match unit(data, range, end, enc) {
            Some(c) if is_string_char(c) => end += w,
            _ => break,
        }
        steps += 1;
    }
    let text: String = (start..end)
        .step_by(w)
        .filter_map(|i| unit(data, range, i, enc))
        .filter_map(|c| char::from_u32(u32::from(c)))
        .collect();
    (start, text)
}

/// Finds every whole-token occurrence of `needle` (ASCII text) in one section.
fn find_in_range(
    data: &[u8],
    range: &std::ops::Range<usize>,
    needle: &str,
    enc: Encoding,
    out: &mut Vec<(usize, usize)>,
) {
    let pattern = enc.encode(needle);
    let w = enc.width();
    let hay = &data[range.clone()];
    for rel in memchr::memmem::find_iter(hay, &pattern) {
        let at = range.start + rel;
        if enc == Encoding::Utf16Le && !at.is_multiple_of(2) {
            continue;
        }
        let before = at.checked_sub(w).and_then(|p| unit(data, range, p, enc));
        let after = unit(data, range, at + pattern.len(), enc);
        if before.is_some_and(is_host_char) || after.is_some_and(is_host_char) {
            continue;
        }
        out.push((at, pattern.len()));
    }
}

/// Finds every endpoint host in the image's section data, in file order.
pub fn scan(image: &Image<'_>) -> Vec<Hit> {
    scan_hosts(image, HOSTS)
}

/// Finds the given host tokens in the image's section data, in file order.
pub fn scan_hosts(image: &Image<'_>, hosts: &[(&'static str, Endpoint)]) -> Vec<Hit> {
    let data = image.data();
    let mut hits = Vec::new();
    for section in image.sections() {
        let range = section.raw_range(data.len());
        if range.is_empty() {
            continue;
        }
        for enc in [Encoding::Ascii, Encoding::Utf16Le] {
            for &(host, endpoint) in hosts {
                let mut found = Vec::new();
                find_in_range(data, &range, host, enc, &mut found);
                for (at, len) in found {
                    let (start, string) = enclosing_string(data, &range, at, len, enc);
                    hits.push(Hit {
                        offset: at as u64,
                        encoding: enc,
                        host,
                        endpoint,
                        section: section.name.clone(),
                        string_offset: start as u64,
                        string,
                    });
                }
            }
        }
    }
    hits.sort_by_key(|h| (h.offset, std::cmp::Reverse(h.host.len())));
    hits
}

/// A string a patch wrote: part of where an already patched client points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redirected {
    /// File offset of the string.
    pub offset: u64,
    /// How it is stored.
    pub encoding: Encoding,
    /// The service: a URL's path says which; a string that is only the host is the
    /// notification server's (or the HTTP gateway's).
    pub endpoint: Endpoint,
    /// The string.
    pub string: String,
}

/// The URL paths of the services a patch rewrites, the original and the short one each.
fn endpoint_of_path(path: &str) -> Option<Endpoint> {
    crate::plan::SHORT_PATHS
        .iter()
        .find(|(_, long, short)| {
            path.eq_ignore_ascii_case(long) || path.eq_ignore_ascii_case(short)
        })
        .map(|(endpoint, _, _)| *endpoint)
}

/// Where an already patched client points: the nexus and MsgrConfig URLs that no longer name
/// a Microsoft host, and the strings that are exactly their host (the notification server).
/// Meant for images [`scan`] finds nothing in; file order.
pub fn redirected(image: &Image<'_>) -> Vec<Redirected> {
    let data = image.data();
    let mut found: Vec<Redirected> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for section in image.sections() {
        let range = section.raw_range(data.len());
        for enc in [Encoding::Ascii, Encoding::Utf16Le] {
            let pattern = enc.encode("://");
            for rel in memchr::memmem::find_iter(&data[range.clone()], &pattern) {
                let at = range.start + rel;
                if enc == Encoding::Utf16Le && !at.is_multiple_of(2) {
                    continue;
                }
                let (start, string) = enclosing_string(data, &range, at, pattern.len(), enc);
                let Some(origin) = crate::plan::origin_of(&string) else {
                    continue;
                };
                let host = origin[origin.find("://").map_or(0, |p| p + 3)..]
                    .split(':')
                    .next()
                    .unwrap_or_default();
                let known = HOSTS.iter().any(|(h, _)| h.eq_ignore_ascii_case(host));
                let Some(endpoint) = endpoint_of_path(&string[origin.len()..]) else {
                    continue;
                };
                if host.is_empty() || known || found.iter().any(|r| r.offset == start as u64) {
                    continue;
                }
                if !hosts.iter().any(|h| h == host) {
                    hosts.push(host.to_owned());
                }
                found.push(Redirected {
                    offset: start as u64,
                    encoding: enc,
                    endpoint,
                    string,
                });
            }
        }
    }
    for section in image.sections() {
        let range = section.raw_range(data.len());
        for enc in [Encoding::Ascii, Encoding::Utf16Le] {
            for host in &hosts {
                let mut at = Vec::new();
                find_in_range(data, &range, host, enc, &mut at);
                for (at, len) in at {
                    let (start, string) = enclosing_string(data, &range, at, len, enc);
                    if string == *host {
                        found.push(Redirected {
                            offset: start as u64,
                            encoding: enc,
                            endpoint: Endpoint::NotificationServer,
                            string,
                        });
                    }
                }
            }
        }
    }
    found.sort_by_key(|r| r.offset);
    found
}

/// True when `host` occurs as a whole token (ASCII or UTF-16LE) in section data.
pub fn contains_host(image: &Image<'_>, host: &str) -> bool {
    let data = image.data();
    image.sections().iter().any(|section| {
        let range = section.raw_range(data.len());
        [Encoding::Ascii, Encoding::Utf16Le].into_iter().any(|enc| {
            let mut found = Vec::new();
            find_in_range(data, &range, host, enc, &mut found);
            !found.is_empty()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits_in(bytes: &[u8], needle: &str, enc: Encoding) -> Vec<usize> {
        let mut out = Vec::new();
        find_in_range(bytes, &(0..bytes.len()), needle, enc, &mut out);
        out.into_iter().map(|(a, _)| a).collect()
    }

    #[test]
    fn whole_tokens_only() {
        let data =
            b"\0gateway.messenger.hotmail.com\0messenger.hotmail.com\0xmessenger.hotmail.com\0";
        assert_eq!(
            hits_in(data, "messenger.hotmail.com", Encoding::Ascii),
            vec![31]
        );
        assert_eq!(
            hits_in(data, "gateway.messenger.hotmail.com", Encoding::Ascii),
            vec![1]
        );
    }

    #[test]
    fn utf16_even_offsets_only() {
        let mut data = vec![0u8];
        data.extend(Encoding::Utf16Le.encode("nexus.passport.com"));
        data.extend([0, 0, 0]);
        data.extend(Encoding::Utf16Le.encode("nexus.passport.com"));
        data.extend([0, 0]);
        assert_eq!(
            hits_in(&data, "nexus.passport.com", Encoding::Utf16Le),
            vec![40]
        );
    }

    #[test]
    fn enclosing_string_spans_url() {
        let data = b"\0\0https://nexus.passport.com/rdr/pprdr.asp\0\0";
        let (start, s) = enclosing_string(data, &(0..data.len()), 10, 18, Encoding::Ascii);
        assert_eq!(start, 2);
        assert_eq!(s, "https://nexus.passport.com/rdr/pprdr.asp");
    }
}
