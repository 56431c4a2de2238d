//! Known MSN Messenger client builds, as data.
//!
//! The patcher never depends on these offsets: it finds endpoints by content (offsets differ
//! between languages). The catalog serves three purposes: name the build in reports,
//! cross-check the content search (a known build whose strings are not where the catalog
//! says gets a warning), and locate the "allow several instances" byte (0xB7 → 0xB6), which
//! cannot be found by content. Offsets are file offsets from the Escargot notes, reproduced
//! in PATCHER.md §2.3. A new client build is a new row here, not new code.
//!
//! Each row also says which endpoints the build's executable embeds ([`Build::embeds`]; a
//! known build whose scan misses one is reported) and, for MSN 7.5, the DLL that holds the
//! Passport login instead ([`Build::login_dll`]: MSN 7.5 signs in through `RST.srf` from
//! `msidcrl.dll`, PATCHER.md §2.2). MSN 6.1, 6.2.0205 and 7.5.0299 (the first MSNP12 build)
//! have no known offsets: they are named and cross-checked by content only.

use serde::Serialize;

use crate::image::FileVersion;
use crate::scan::Endpoint;

/// How a client picks its notification server, which decides the registry side of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryKind {
    /// MSN 1.0 – 4.7: `HKCU\SOFTWARE\Microsoft\MessengerService\Server` overrides the built-in
    /// host, so a plan sets it.
    MessengerServiceServer,
    /// MSN 5.0 – 7.5: `HKCU\SOFTWARE\Microsoft\MSNMessenger\Server` is a cache of the last
    /// server; a plan clears it so the patched built-in host is used.
    MsnMessengerCache,
}

/// One known client build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Build {
    /// `major.minor.build` as MSN numbers it, e.g. `"7.0.0813"`.
    pub name: &'static str,
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Build number.
    pub build: u16,
    /// The executable name in the install directory.
    pub exe: &'static str,
    /// File offset of the "allow several instances" byte (0xB7 in the original).
    pub polygamy: Option<u64>,
    /// File offset of `https://nexus.passport.com/rdr/pprdr.asp` (40 bytes).
    pub nexus_url: Option<u64>,
    /// File offset of `messenger.hotmail.com` (21 bytes), when it is in the exe.
    pub ns_host: Option<u64>,
    /// The endpoints the executable embeds (PATCHER.md §2.2, research notes for issue 16 §6):
    /// a plan warns when a known build's scan misses one.
    pub embeds: &'static [Endpoint],
    /// The DLL next to the executable that holds the Passport login endpoint, when the
    /// executable does not (MSN 7.5: `msidcrl.dll` posts to `RST.srf`).
    pub login_dll: Option<&'static str>,
}

impl Build {
    /// The registry behaviour of this build.
    pub fn registry(&self) -> RegistryKind {
        registry_kind(FileVersion {
            major: self.major,
            minor: self.minor,
            build: self.build,
            patch: 0,
        })
    }
}

/// The original byte at [`Build::polygamy`].
pub const POLYGAMY_ORIGINAL: u8 = 0xB7;
/// The byte that allows several instances.
pub const POLYGAMY_PATCHED: u8 = 0xB6;

const fn b(
    name: &'static str,
    (major, minor, build): (u16, u16, u16),
    exe: &'static str,
    polygamy: Option<u64>,
    nexus_url: Option<u64>,
    ns_host: Option<u64>,
) -> Build {
    Build {
        name,
        major,
        minor,
        build,
        exe,
        polygamy,
        nexus_url,
        ns_host,
        embeds: &[],
        login_dll: None,
    }
}

/// `base` with the endpoints its executable embeds.
const fn with(base: Build, embeds: &'static [Endpoint]) -> Build {
    Build { embeds, ..base }
}

/// `base` (MSN 7.5) signing in through `RST.srf` from [`MSIDCRL`].
const fn rst(base: Build) -> Build {
    Build {
        login_dll: Some(MSIDCRL),
        ..base
    }
}

const MSMSGS: &str = "msmsgs.exe";
const MSNMSGR: &str = "msnmsgr.exe";
/// MSN 7.5's Identity Client Runtime Library, which posts to `RST.srf`.
pub const MSIDCRL: &str = "msidcrl.dll";

use Endpoint::{Config, Gateway, Nexus, NotificationServer as Ns};
/// MSN 5.0: the NS host and the nexus URL (Escargot's offsets).
const MSN5: &[Endpoint] = &[Ns, Nexus];
/// MSN 6.0 – 7.0: plus the HTTP gateway and MsgrConfig (6.x added it).
const MSN6: &[Endpoint] = &[Ns, Gateway, Nexus, Config];
/// MSN 7.5: the nexus URL is gone (7.5.0324; 0311 still has one), the login is in msidcrl.dll.
const MSN75: &[Endpoint] = &[Ns, Gateway, Config];

/// Every known build, oldest first.
pub const BUILDS: &[Build] = &[
    b("1.0.0863", (1, 0, 863), MSMSGS, Some(0x263ce), None, None),
    b("2.0.0083", (2, 0, 83), MSMSGS, Some(0x2acef), None, None),
    b("2.0.0085", (2, 0, 85), MSMSGS, Some(0x2ad07), None, None),
    b("2.2.1053", (2, 2, 1053), MSMSGS, Some(0x17160), None, None),
    b("3.0.0286", (3, 0, 286), MSMSGS, Some(0x1f234), None, None),
    b("3.5.0077", (3, 5, 77), MSMSGS, Some(0x30389), None, None),
    b("3.6.0025", (3, 6, 25), MSMSGS, Some(0x2f82d), None, None),
    b("4.5.0121", (4, 5, 121), MSMSGS, Some(0x4e692), None, None),
    b("4.6.0073", (4, 6, 73), MSMSGS, Some(0x1e794), None, None),
    b("4.6.0083", (4, 6, 83), MSMSGS, Some(0x2b9c4), None, None),
    b("4.7.2009", (4, 7, 2009), MSMSGS, None, None, None),
    b("4.7.3001", (4, 7, 3001), MSMSGS, None, None, None),
    with(
        b(
            "5.0.0544",
            (5, 0, 544),
            MSNMSGR,
            Some(0x46739),
            Some(0x655a0),
            Some(0xf048),
        ),
        MSN5,
    ),
    with(
        b(
            "6.0.0602",
            (6, 0, 602),
            MSNMSGR,
            Some(0xccbf2),
            Some(0x1f164),
            Some(0x1f238),
        ),
        MSN6,
    ),
    // MSN 6.1 (MSNP10): offsets unknown.
    with(b("6.1.0211", (6, 1, 211), MSNMSGR, None, None, None), MSN6),
    with(
        b(
            "6.2.0137",
            (6, 2, 137),
            MSNMSGR,
            Some(0xdffe1),
            Some(0x22ce0),
            Some(0x22d68),
        ),
        MSN6,
    ),
    with(b("6.2.0205", (6, 2, 205), MSNMSGR, None, None, None), MSN6),
    with(
        b(
            "7.0.0777",
            (7, 0, 777),
            MSNMSGR,
            Some(0x1406b1),
            Some(0x2cd80),
            Some(0x2ce18),
        ),
        MSN6,
    ),
    with(
        b(
            "7.0.0813",
            (7, 0, 813),
            MSNMSGR,
            Some(0x147079),
            Some(0x2d098),
            Some(0x2d140),
        ),
        MSN6,
    ),
    with(
        b(
            "7.0.0820",
            (7, 0, 820),
            MSNMSGR,
            Some(0x147112),
            Some(0x2cfb8),
            Some(0x2d060),
        ),
        MSN6,
    ),
    // MSN 7.5.0299, the first MSNP12 build: offsets unknown.
    rst(with(
        b("7.5.0299", (7, 5, 299), MSNMSGR, None, None, None),
        MSN75,
    )),
    rst(with(
        b(
            "7.5.0311",
            (7, 5, 311),
            MSNMSGR,
            Some(0x157607),
            Some(0x2e8f8),
            Some(0x2e9b8),
        ),
        MSN6,
    )),
    rst(with(
        b(
            "7.5.0324",
            (7, 5, 324),
            MSNMSGR,
            Some(0x1580ec),
            None,
            Some(0x2e9e8),
        ),
        MSN75,
    )),
];

/// Looks a build up by its file version (the fourth field is ignored).
pub fn lookup(version: FileVersion) -> Option<&'static Build> {
    BUILDS
        .iter()
        .find(|b| b.major == version.major && b.minor == version.minor && b.build == version.build)
}

/// The registry behaviour for any version number, known build or not.
pub fn registry_kind(version: FileVersion) -> RegistryKind {
    if version.major < 5 {
        RegistryKind::MessengerServiceServer
    } else {
        RegistryKind::MsnMessengerCache
    }
}

/// True when the version looks like an MSN Messenger 1.0 – 7.5 client number.
pub fn is_msn_range(version: FileVersion) -> bool {
    (1..=7).contains(&version.major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_sorted_and_unique() {
        for pair in BUILDS.windows(2) {
            assert!(
                (pair[0].major, pair[0].minor, pair[0].build)
                    < (pair[1].major, pair[1].minor, pair[1].build)
            );
        }
    }

    #[test]
    fn msnp10_to_12_builds_are_named_with_what_they_embed() {
        let find = |name: &str| BUILDS.iter().find(|b| b.name == name).unwrap();
        for name in ["6.1.0211", "6.2.0137", "6.2.0205", "7.0.0777", "7.0.0813"] {
            let b = find(name);
            assert_eq!((b.exe, b.login_dll), (MSNMSGR, None), "{name}");
            assert!(b.embeds.contains(&Endpoint::Nexus), "{name}");
            assert!(b.embeds.contains(&Endpoint::Config), "{name}");
        }
        for name in ["7.5.0299", "7.5.0311", "7.5.0324"] {
            let b = find(name);
            assert_eq!(b.login_dll, Some(MSIDCRL), "{name}");
            assert_eq!(b.registry(), RegistryKind::MsnMessengerCache);
            // The nexus URL is only where the offsets table saw one.
            assert_eq!(
                b.embeds.contains(&Endpoint::Nexus),
                b.nexus_url.is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn names_match_numbers() {
        for b in BUILDS {
            assert_eq!(b.name, format!("{}.{}.{:04}", b.major, b.minor, b.build));
        }
    }

    #[test]
    fn lookup_ignores_fourth_field() {
        let v = FileVersion {
            major: 6,
            minor: 2,
            build: 137,
            patch: 9,
        };
        assert_eq!(lookup(v).map(|b| b.name), Some("6.2.0137"));
        assert_eq!(
            lookup(v).map(Build::registry),
            Some(RegistryKind::MsnMessengerCache)
        );
        let old = FileVersion {
            major: 3,
            minor: 6,
            build: 25,
            patch: 0,
        };
        assert_eq!(
            lookup(old).map(Build::registry),
            Some(RegistryKind::MessengerServiceServer)
        );
    }
}
