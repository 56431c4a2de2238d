//! Synthetic PE images, for tests and benchmarks (and a GUI smoke test).
//!
//! Builds a small but well-formed PE32 or PE32+ image in memory: a `.text` section of filler,
//! an `.rdata` section with the bytes you give (put endpoint strings there), and optionally
//! a `.rsrc` section with a version resource and an `RCDATA/CABINET` resource (which makes it
//! look like an IExpress self-extractor). No compiler needed, nothing from Microsoft.

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

/// A resource section for `(type id, name, data)` entries (each type once, language 0x409).
fn resources(rva: usize, items: &[(u32, Option<&str>, &[u8])]) -> Vec<u8> {
    // Layout: root dir, per type: name dir, per type: lang dir, data entries, names, data.
    let n = items.len();
    let dir = |entries: usize| 16 + 8 * entries;
    let root = 0;
    let name_dirs = dir(n);
    let lang_dirs = name_dirs + n * dir(1);
    let data_entries = lang_dirs + n * dir(1);
    let names = data_entries + n * 16;
    let mut out = vec![0u8; names];
    let mut name_offsets = Vec::new();
    for (_, name, _) in items {
        name_offsets.push(name.map(|s| {
            let at = out.len();
            let units: Vec<u16> = s.encode_utf16().collect();
            out.extend(u16::try_from(units.len()).unwrap_or(0).to_le_bytes());
            for u in units {
                out.extend(u.to_le_bytes());
            }
            at
        }));
    }
    let mut data_offsets = Vec::new();
    for (_, _, data) in items {
        out.resize(align(out.len(), 8), 0);
        data_offsets.push(out.len());
        out.extend_from_slice(data);
    }
    put16(&mut out, root + 14, u16::try_from(n).unwrap_or(0));
    for (i, (type_id, _, data)) in items.iter().enumerate() {
        let entry = root + 16 + i * 8;
        let name_dir = name_dirs + i * dir(1);
        let lang_dir = lang_dirs + i * dir(1);
        let data_entry = data_entries + i * 16;
        put32(&mut out, entry, *type_id);
        put32(&mut out, entry + 4, 0x8000_0000 | u32_of(name_dir));
        match name_offsets[i] {
            Some(at) => {
                put16(&mut out, name_dir + 12, 1);
                put32(&mut out, name_dir + 16, 0x8000_0000 | u32_of(at));
            }
            None => {
                put16(&mut out, name_dir + 14, 1);
                put32(&mut out, name_dir + 16, 1);
            }
        }
        put32(&mut out, name_dir + 20, 0x8000_0000 | u32_of(lang_dir));
        put16(&mut out, lang_dir + 14, 1);
        put32(&mut out, lang_dir + 16, 0x409);
        put32(&mut out, lang_dir + 20, u32_of(data_entry));
        put32(&mut out, data_entry, u32_of(rva + data_offsets[i]));
        put32(&mut out, data_entry + 4, u32_of(data.len()));
    }
    out
}

/// Builds the image.
pub fn build(spec: &Spec) -> Vec<u8> {
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
    let mut items: Vec<(u32, Option<&str>, &[u8])> = Vec::new();
    if let Some(cab) = &spec.cabinet {
        items.push((10, Some("CABINET"), cab));
    }
    let version = spec.version.map(version_info);
    if let Some(v) = &version {
        items.push((16, None, v));
    }
    let rsrc_rva = rva;
    if !items.is_empty() {
        sections.push((b".rsrc\0\0\0", resources(rsrc_rva, &items), 0x4000_0040));
        rvas.push(rsrc_rva);
        rva += align(sections[2].1.len(), SECT_ALIGN);
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
    if sections.len() > 2 {
        put32(&mut out, dirs_at + 16, u32_of(rsrc_rva));
        put32(&mut out, dirs_at + 20, u32_of(sections[2].1.len()));
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
