//! Synthetic PE images, for tests and benchmarks (and a GUI smoke test).
//!
//! Builds a small but well-formed PE32 or PE32+ image in memory: a `.text` section of filler,
//! an `.rdata` section with the bytes you give (put endpoint strings there), and optionally
//! a `.rsrc` section with a version resource and an `RCDATA/CABINET` resource (which makes it
//! look like an IExpress self-extractor). No compiler needed, nothing from Microsoft.
//!
//! [`msn_client`] builds the client of any catalog build (its version, the strings it embeds,
//! at the catalog's offsets where known, and the several-instances byte), [`msidcrl`] the
//! login DLL of MSN 7.5.

/// What to put into a synthetic image.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// PE32+ instead of PE32.
    pub is_64: bool,
    /// Size of the `.text` filler.
    pub text_size: usize,
    /// Content of `.rdata`.
    pub rdata: Vec<u8>,
    /// `FILEVERSION a,b,c,d` for a version resource.
    pub version: Option<[u16; 4]>,
    /// Content of `RCDATA/CABINET`.
    pub cabinet: Option<Vec<u8>>,
}

use crate::catalog::Build;
use crate::scan::Endpoint;

const FILE_ALIGN: usize = 0x200;
const SECT_ALIGN: usize = 0x1000;
const HEADERS: usize = 0x400;

fn align(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn u32_of(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A minimal `VS_VERSIONINFO` with only the fixed part.
fn version_info(v: [u16; 4]) -> Vec<u8> {
    let mut out = vec![0u8; 6];
    for unit in "VS_VERSION_INFO\0".encode_utf16() {
        out.extend(unit.to_le_bytes());
    }
    out.resize(align(out.len(), 4), 0);
    let fixed = [
        0xFEEF_04BD,
        0x0001_0000,
        (u32::from(v[0]) << 16) | u32::from(v[1]),
        (u32::from(v[2]) << 16) | u32::from(v[3]),
        (u32::from(v[0]) << 16) | u32::from(v[1]),
        (u32::from(v[2]) << 16) | u32::from(v[3]),
        0x3f,
        0,
        0x0004_0004,
        1,
        0,
        0,
        0,
    ];
    for x in fixed {
        out.extend(x.to_le_bytes());
    }
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    put16(&mut out, 0, len);
    put16(&mut out, 2, 52);
    out
}

/// A resource id: a number or a name (named ids sort before numeric ones).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResId {
    /// A case-insensitive name, stored in UTF-16.
    Name(String),
    /// A numeric id.
    Id(u32),
}

/// One extra resource: type, name, language and data.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Resource type (`ResId::Id(10)` is `RT_RCDATA`).
    pub kind: ResId,
    /// Resource name.
    pub name: ResId,
    /// Language id (0x409 is US English).
    pub language: u16,
    /// The bytes.
    pub data: Vec<u8>,
}

/// More than [`Spec`] says: extra resources and a section after `.rsrc`.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Resources besides the ones [`Spec`] asks for.
    pub resources: Vec<Resource>,
    /// Content of a `.reloc`-like section placed after `.rsrc` (so `.rsrc` is not last).
    pub trailing: Option<Vec<u8>>,
}

/// One type's names, each with its languages.
type Names<'r> = Vec<(&'r ResId, Vec<(u16, &'r [u8])>)>;

/// A resource section body at `rva`: directories (root, names, languages), data entries,
/// name strings, then data (8-aligned). Entries are sorted as Windows expects.
fn resources(rva: usize, items: &[Resource]) -> Vec<u8> {
    let mut sorted: Vec<&Resource> = items.iter().collect();
    sorted.sort_by(|a, b| (&a.kind, &a.name, a.language).cmp(&(&b.kind, &b.name, b.language)));
    let mut tree: Vec<(&ResId, Names<'_>)> = Vec::new();
    for r in sorted {
        if tree.last().is_none_or(|(k, _)| *k != &r.kind) {
            tree.push((&r.kind, Vec::new()));
        }
        let Some((_, names)) = tree.last_mut() else {
            continue;
        };
        if names.last().is_none_or(|(n, _)| *n != &r.name) {
            names.push((&r.name, Vec::new()));
        }
        if let Some((_, langs)) = names.last_mut() {
            langs.push((r.language, &r.data));
        }
    }
    let dir = |entries: usize| 16 + 8 * entries;
    let name_dirs = dir(tree.len());
    let lang_dirs = name_dirs + tree.iter().map(|(_, n)| dir(n.len())).sum::<usize>();
    let data_entries = lang_dirs
        + tree
            .iter()
            .flat_map(|(_, n)| n.iter().map(|(_, l)| dir(l.len())))
            .sum::<usize>();
    let leaves = items.len();
    let mut out = vec![0u8; data_entries + 16 * leaves];
    let put_string = |out: &mut Vec<u8>, s: &str| {
        let at = out.len();
        let units: Vec<u16> = s.encode_utf16().collect();
        out.extend(u16::try_from(units.len()).unwrap_or(0).to_le_bytes());
        for u in units {
            out.extend(u.to_le_bytes());
        }
        at
    };
    let key = |out: &mut Vec<u8>, id: &ResId| match id {
        ResId::Id(n) => *n,
        ResId::Name(s) => 0x8000_0000 | u32_of(put_string(out, s)),
    };
    let count = |out: &mut Vec<u8>, at: usize, ids: &[&ResId]| {
        let named = ids.iter().filter(|i| matches!(i, ResId::Name(_))).count();
        put16(out, at + 12, u16::try_from(named).unwrap_or(0));
        put16(out, at + 14, u16::try_from(ids.len() - named).unwrap_or(0));
    };
    let kinds: Vec<&ResId> = tree.iter().map(|(k, _)| *k).collect();
    count(&mut out, 0, &kinds);
    let (mut name_dir, mut lang_dir, mut entry) = (name_dirs, lang_dirs, data_entries);
    let mut blobs = Vec::new();
    for (t, (kind, names)) in tree.iter().enumerate() {
        let k = key(&mut out, kind);
        put32(&mut out, 16 + 8 * t, k);
        put32(&mut out, 16 + 8 * t + 4, 0x8000_0000 | u32_of(name_dir));
        let ids: Vec<&ResId> = names.iter().map(|(n, _)| *n).collect();
        count(&mut out, name_dir, &ids);
        for (i, (name, langs)) in names.iter().enumerate() {
            let k = key(&mut out, name);
            put32(&mut out, name_dir + 16 + 8 * i, k);
            put32(
                &mut out,
                name_dir + 20 + 8 * i,
                0x8000_0000 | u32_of(lang_dir),
            );
            put16(
                &mut out,
                lang_dir + 14,
                u16::try_from(langs.len()).unwrap_or(0),
            );
            for (j, (lang, data)) in langs.iter().enumerate() {
                put32(&mut out, lang_dir + 16 + 8 * j, u32::from(*lang));
                put32(&mut out, lang_dir + 20 + 8 * j, u32_of(entry));
                blobs.push((entry, *data));
                entry += 16;
            }
            lang_dir += dir(langs.len());
        }
        name_dir += dir(names.len());
    }
    for (entry, data) in blobs {
        out.resize(align(out.len(), 8), 0);
        let at = out.len();
        put32(&mut out, entry, u32_of(rva + at));
        put32(&mut out, entry + 4, u32_of(data.len()));
        put32(&mut out, entry + 8, 1252);
        out.extend_from_slice(data);
    }
    out
}

/// Builds the image.
pub fn build(spec: &Spec) -> Vec<u8> {
    build_with(spec, &Extras::default())
}

/// Builds the image with [`Extras`]: more resources, and maybe a section after `.rsrc`.
pub fn build_with(spec: &Spec, extras: &Extras) -> Vec<u8> {
    let opt_size: usize = if spec.is_64 { 240 } else { 224 };
    let mut sections: Vec<(&[u8; 8], Vec<u8>, u32)> = vec![
        (
            b".text\0\0\0",
            vec![0xCC; spec.text_size.max(1)],
            0x6000_0020,
        ),
        (b".rdata\0\0", spec.rdata.clone(), 0x4000_0040),
    ];
    let mut rva = SECT_ALIGN;
    let mut rvas = Vec::new();
    for (_, data, _) in &sections {
        rvas.push(rva);
        rva += align(data.len().max(1), SECT_ALIGN);
    }
    let mut items = extras.resources.clone();
    if let Some(cab) = &spec.cabinet {
        items.push(Resource {
            kind: ResId::Id(10),
            name: ResId::Name("CABINET".into()),
            language: 0x409,
            data: cab.clone(),
        });
    }
    if let Some(v) = spec.version {
        items.push(Resource {
            kind: ResId::Id(16),
            name: ResId::Id(1),
            language: 0x409,
            data: version_info(v),
        });
    }
    let rsrc_rva = rva;
    let mut rsrc_len = 0;
    if !items.is_empty() {
        let body = resources(rsrc_rva, &items);
        rsrc_len = body.len();
        sections.push((b".rsrc\0\0\0", body, 0x4000_0040));
        rvas.push(rsrc_rva);
        rva += align(rsrc_len, SECT_ALIGN);
    }
    if let Some(trailing) = &extras.trailing {
        sections.push((b".reloc\0\0", trailing.clone(), 0x4200_0040));
        rvas.push(rva);
        rva += align(trailing.len().max(1), SECT_ALIGN);
    }
    let size_of_image = rva;

    let mut out = vec![0u8; HEADERS];
    out[..2].copy_from_slice(b"MZ");
    put32(&mut out, 0x3c, 0x40);
    out[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    put16(&mut out, coff, if spec.is_64 { 0x8664 } else { 0x14c });
    put16(
        &mut out,
        coff + 2,
        u16::try_from(sections.len()).unwrap_or(0),
    );
    put16(&mut out, coff + 16, u16::try_from(opt_size).unwrap_or(0));
    put16(
        &mut out,
        coff + 18,
        if spec.is_64 { 0x0022 } else { 0x0102 },
    );
    let opt = coff + 20;
    put16(&mut out, opt, if spec.is_64 { 0x20b } else { 0x10b });
    put32(&mut out, opt + 4, u32_of(sections[0].1.len()));
    put32(&mut out, opt + 16, u32_of(SECT_ALIGN)); // entry point
    put32(&mut out, opt + 20, u32_of(SECT_ALIGN)); // base of code
    let dirs_at;
    if spec.is_64 {
        out[opt + 24..opt + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes());
        dirs_at = opt + 112;
        put32(&mut out, opt + 108, 16);
    } else {
        put32(&mut out, opt + 28, 0x40_0000);
        dirs_at = opt + 96;
        put32(&mut out, opt + 92, 16);
    }
    put32(&mut out, opt + 32, u32_of(SECT_ALIGN));
    put32(&mut out, opt + 36, u32_of(FILE_ALIGN));
    put16(&mut out, opt + 40, 5); // OS version
    put16(&mut out, opt + 48, 5); // subsystem version
    put32(&mut out, opt + 56, u32_of(size_of_image));
    put32(&mut out, opt + 60, u32_of(HEADERS));
    put16(&mut out, opt + 68, 3); // console
    if rsrc_len > 0 {
        put32(&mut out, dirs_at + 16, u32_of(rsrc_rva));
        put32(&mut out, dirs_at + 20, u32_of(rsrc_len));
    }
    let table = opt + opt_size;
    let mut raw = HEADERS;
    for (i, (name, data, chars)) in sections.iter().enumerate() {
        let h = table + i * 40;
        let raw_size = align(data.len().max(1), FILE_ALIGN);
        out[h..h + 8].copy_from_slice(*name);
        put32(&mut out, h + 8, u32_of(data.len().max(1)));
        put32(&mut out, h + 12, u32_of(rvas[i]));
        put32(&mut out, h + 16, u32_of(raw_size));
        put32(&mut out, h + 20, u32_of(raw));
        put32(&mut out, h + 36, *chars);
        raw += raw_size;
    }
    for (_, data, _) in &sections {
        let start = out.len();
        out.extend_from_slice(data);
        out.resize(start + align(data.len().max(1), FILE_ALIGN), 0);
    }
    let at = opt + 64;
    let sum = crate::image::pe_checksum(&out, at);
    put32(&mut out, at, sum);
    out
}

/// The string an MSN 5–7.5 executable holds for `endpoint`, and whether it is UTF-16LE (the
/// MsgrConfig URL is; PATCHER.md §2.1).
#[must_use]
pub const fn endpoint_string(endpoint: Endpoint) -> (&'static str, bool) {
    match endpoint {
        Endpoint::NotificationServer => ("messenger.hotmail.com", false),
        Endpoint::Gateway => ("gateway.messenger.hotmail.com", false),
        Endpoint::Nexus => ("https://nexus.passport.com/rdr/pprdr.asp", false),
        Endpoint::Login => (RST_URL, false),
        Endpoint::Config => (
            "http://config.messenger.msn.com/Config/MsgrConfig.asmx",
            true,
        ),
    }
}

/// The `RST.srf` URL MSN 7.5's login DLL posts to (the third-party clients' copy of it).
pub const RST_URL: &str = "https://loginnet.passport.com/RST.srf";

/// Appends `s` (ASCII or UTF-16LE) NUL-terminated and 8-aligned.
fn push_string(out: &mut Vec<u8>, s: &str, utf16: bool) {
    if utf16 {
        for u in s.encode_utf16() {
            out.extend(u.to_le_bytes());
        }
        out.resize(align(out.len() + 2, 8), 0);
    } else {
        out.extend(s.as_bytes());
        out.resize(align(out.len() + 1, 8), 0);
    }
}

/// A synthetic client of catalog build `build`: PE32 with `FILEVERSION` of the build; the
/// NS host and the nexus URL at the catalog's file offsets when it has them (in `.text`) and
/// the several-instances byte (0xB7) at its offset; every other string the build embeds in
/// `.rdata`, with `PassportURLs`.
#[must_use]
pub fn msn_client(client: &Build) -> Vec<u8> {
    let at_offset = |e: Endpoint| match e {
        Endpoint::NotificationServer => client.ns_host,
        Endpoint::Nexus => client.nexus_url,
        _ => None,
    };
    let mut rdata = vec![0u8; 16];
    for e in client.embeds.iter().filter(|e| at_offset(**e).is_none()) {
        let (s, utf16) = endpoint_string(*e);
        push_string(&mut rdata, s, utf16);
    }
    push_string(&mut rdata, "PassportURLs", false);
    let placed: Vec<(u64, &[u8])> = client
        .embeds
        .iter()
        .filter_map(|e| at_offset(*e).map(|o| (o, endpoint_string(*e).0.as_bytes())))
        .chain(
            client
                .polygamy
                .map(|o| (o, &[crate::catalog::POLYGAMY_ORIGINAL][..])),
        )
        .collect();
    // `.text` starts right after the headers; make it reach past the last offset.
    let end = placed
        .iter()
        .map(|(o, b)| usize::try_from(*o).unwrap_or(0) + b.len() + 1)
        .max()
        .unwrap_or(0);
    let mut image = build(&Spec {
        is_64: false,
        text_size: end.saturating_sub(HEADERS).max(0x200),
        rdata,
        version: Some([client.major, client.minor, client.build, 0]),
        cabinet: None,
    });
    for (offset, bytes) in placed {
        let at = usize::try_from(offset).unwrap_or(0);
        // A NUL before and after, as between C strings.
        image[at - 1] = 0;
        image[at..at + bytes.len()].copy_from_slice(bytes);
        image[at + bytes.len()] = 0;
    }
    let sum_at = 0x44 + 20 + 64;
    let sum = crate::image::pe_checksum(&image, sum_at);
    put32(&mut image, sum_at, sum);
    image
}

/// A synthetic `msidcrl.dll` of MSN 7.5: the `RST.srf` URL in ASCII and UTF-16LE (which of
/// the two the real DLL holds is unverified), no version resource (its version numbering is
/// not MSN's).
#[must_use]
pub fn msidcrl() -> Vec<u8> {
    let mut rdata = vec![0u8; 16];
    push_string(&mut rdata, RST_URL, false);
    push_string(&mut rdata, RST_URL, true);
    build(&Spec {
        is_64: false,
        text_size: 0x200,
        rdata,
        version: None,
        cabinet: None,
    })
}

/// A synthetic MSN Messenger 6.0 client: PE32, `0x200` bytes of `.text`, the [`msn_rdata`]
/// endpoint strings and `FILEVERSION 6,0,602,0`.
pub fn msn6_client() -> Vec<u8> {
    build(&Spec {
        is_64: false,
        text_size: 0x200,
        rdata: msn_rdata().0,
        version: Some([6, 0, 602, 0]),
        cabinet: None,
    })
}

/// `.rdata` content with the MSN 5.x – 7.x endpoint strings, NUL-separated, ASCII and
/// UTF-16LE, each at its own offset (returned alongside, for golden tests).
pub fn msn_rdata() -> (Vec<u8>, Vec<(usize, &'static str)>) {
    let mut out = vec![0u8; 16];
    let mut at = Vec::new();
    for s in [
        "messenger.hotmail.com",
        "gateway.messenger.hotmail.com",
        "https://nexus.passport.com/rdr/pprdr.asp",
        "PassportURLs",
    ] {
        at.push((out.len(), s));
        out.extend(s.as_bytes());
        out.resize(align(out.len() + 1, 8), 0);
    }
    for s in ["http://config.messenger.msn.com/Config/MsgrConfig.asmx"] {
        at.push((out.len(), s));
        for u in s.encode_utf16() {
            out.extend(u.to_le_bytes());
        }
        out.resize(align(out.len() + 2, 8), 0);
    }
    (out, at)
}
