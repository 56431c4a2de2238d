//! Planning: which bytes change to what, and why. Pure: bytes and a [`Target`] in, a
//! [`FilePlan`] out, nothing written.
//!
//! Every hit of the content scan is grouped by its enclosing string and the *whole* string is
//! rewritten: host tokens are replaced by the server host, optionally `https://` becomes
//! `http://` in the nexus URL, and the tail is NUL-filled when the new string is shorter. A
//! longer string is refused ([`PatchError::DoesNotFit`]): growing a string would overwrite its
//! neighbour.
//!
//! # The port plan
//!
//! URLs get the port of relive-server's listener for their scheme: `https://` URLs (the nexus)
//! the HTTPS port, [`DEFAULT_HTTPS_PORT`] unless the target says otherwise; `http://` URLs
//! (MsgrConfig, the nexus with `http_login`) the HTTP port, [`DEFAULT_HTTP_PORT`]; 443 and 80
//! are left out. The MSNP port ([`MSNP_PORT`]) is built into the clients, not a string. A URL
//! that does not fit with the host and port keeps its length budget by taking the shorter path
//! the server also answers on ([`SHORT_PATHS`]): `https://nexus.passport.com/rdr/pprdr.asp`
//! (40 characters) leaves 13 for the host with `:8443` and the original path, 21 with
//! `/nexus`, as many as the notification server's `messenger.hotmail.com`.

use serde::{Serialize, Serializer};

use crate::PatchError;
use crate::catalog::{self, Build, RegistryKind};
use crate::image::{FileVersion, Image};
use crate::registry::RegistryChange;
use crate::scan::{self, Encoding, Endpoint, Hit};

/// Longest host name accepted (DNS limit).
const MAX_HOST_LEN: usize = 253;

/// relive-server's default HTTPS listener (`--https 0.0.0.0:8443`): the port patched
/// `https://` URLs (the nexus) carry unless the target says otherwise.
pub const DEFAULT_HTTPS_PORT: u16 = 8443;

/// relive-server's default plain-HTTP listener (`--http 0.0.0.0:8080`): the port patched
/// `http://` URLs (MsgrConfig; the nexus with `http_login`) carry unless the target says
/// otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The MSNP port the clients dial. It is built into them (not a string), so the server's
/// notification listener must be on it (relive-server's default `--ns 0.0.0.0:1863`).
pub const MSNP_PORT: u16 = 1863;

/// The shorter paths relive-server also answers on, for URLs that do not fit with the host
/// and port: `(service, original path, short path)`.
pub const SHORT_PATHS: [(Endpoint, &str, &str); 2] = [
    (Endpoint::Nexus, "/rdr/pprdr.asp", "/nexus"),
    (Endpoint::Config, "/Config/MsgrConfig.asmx", "/config"),
];

/// What the user wants: the server to point at and the optional patches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Target {
    /// Host name or IPv4 address of the Relive server (no port, no scheme).
    pub host: String,
    /// Port of the server's HTTPS listener, put into `https://` URLs (the nexus); 443 is left
    /// out. Default [`DEFAULT_HTTPS_PORT`].
    pub https_port: u16,
    /// Port of the server's plain HTTP listener, put into `http://` URLs (MsgrConfig, and the
    /// nexus with [`Target::http_login`]); 80 is left out. Default [`DEFAULT_HTTP_PORT`].
    pub http_port: u16,
    /// Rewrite `https://` to `http://` in the nexus URL (login without TLS).
    pub http_login: bool,
    /// Apply the "allow several instances" byte patch for builds in the catalog.
    pub multiple_instances: bool,
}

impl Target {
    /// A target for `host` with no options.
    ///
    /// # Errors
    /// [`PatchError::InvalidHost`] when `host` is empty, too long, or has characters that
    /// are not allowed in a host name (a port or scheme included by mistake, spaces...).
    pub fn new(host: &str) -> Result<Self, PatchError> {
        let invalid = |reason| PatchError::InvalidHost {
            host: host.to_string(),
            reason,
        };
        if host.is_empty() {
            return Err(invalid("it is empty"));
        }
        if host.len() > MAX_HOST_LEN {
            return Err(invalid("it is longer than 253 characters"));
        }
        if host.contains("://") || host.contains('/') {
            return Err(invalid("give a host name only, without scheme or path"));
        }
        if host.contains(':') {
            return Err(invalid(
                "give the host only (ports: --https-port, --http-port)",
            ));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(invalid("only letters, digits, '.' and '-' are allowed"));
        }
        if host.starts_with(['.', '-']) || host.ends_with(['.', '-']) {
            return Err(invalid("it must not start or end with '.' or '-'"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            https_port: DEFAULT_HTTPS_PORT,
            http_port: DEFAULT_HTTP_PORT,
            http_login: false,
            multiple_instances: false,
        })
    }

    /// Sets the port of the server's HTTPS listener (for `https://` URLs).
    #[must_use]
    pub fn with_https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    /// Sets the port of the server's plain HTTP listener (for `http://` URLs).
    #[must_use]
    pub fn with_http_port(mut self, port: u16) -> Self {
        self.http_port = port;
        self
    }

    /// `https://host[:port]` or `http://host[:port]` as patched URLs carry it (the port of
    /// the server's listener for that scheme, left out when it is the scheme's default).
    #[must_use]
    pub fn origin(&self, https: bool) -> String {
        let (scheme, port, default) = if https {
            ("https", self.https_port, 443)
        } else {
            ("http", self.http_port, 80)
        };
        if port == default {
            format!("{scheme}://{}", self.host)
        } else {
            format!("{scheme}://{}:{port}", self.host)
        }
    }

    /// Where a patched client fetches the Passport nexus: [`Self::origin`] over HTTPS, or
    /// over HTTP with [`Self::http_login`].
    #[must_use]
    pub fn nexus_origin(&self) -> String {
        self.origin(!self.http_login)
    }

    /// Where a client patched for this target connects, in words, one line per service (for
    /// front ends to show before anything is patched).
    #[must_use]
    pub fn summary(&self) -> Vec<String> {
        vec![
            format!(
                "{}:{MSNP_PORT} for messaging (MSNP; the port is built into the client)",
                self.host
            ),
            format!(
                "{} to sign in (Passport nexus; the server then names its login URL)",
                self.nexus_origin()
            ),
            format!("{} for MsgrConfig (MSN 6 and later)", self.origin(false)),
        ]
    }

    /// Enables or disables the `https://` → `http://` nexus rewrite.
    #[must_use]
    pub fn with_http_login(mut self, on: bool) -> Self {
        self.http_login = on;
        self
    }

    /// Enables or disables the "allow several instances" patch.
    #[must_use]
    pub fn with_multiple_instances(mut self, on: bool) -> Self {
        self.multiple_instances = on;
        self
    }
}

/// Why an edit is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// An endpoint host is redirected to the target.
    Redirect {
        /// The service.
        endpoint: Endpoint,
        /// The original host.
        host: &'static str,
    },
    /// `https://` becomes `http://` in the nexus URL.
    HttpLogin,
    /// The URL took the shorter path the server also answers on, to fit with the host and
    /// port ([`SHORT_PATHS`]).
    ShortPath {
        /// The new path.
        path: &'static str,
    },
    /// The "allow several instances" byte of a catalog build.
    MultipleInstances {
        /// The catalog build.
        build: &'static str,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redirect { endpoint, host } => write!(f, "{endpoint} ({host})"),
            Self::HttpLogin => f.write_str("nexus over http"),
            Self::ShortPath { path } => write!(f, "short path {path}"),
            Self::MultipleInstances { build } => write!(f, "several instances ({build})"),
        }
    }
}

fn as_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// One contiguous byte change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    /// File offset (within the file or installer member the edit belongs to).
    pub offset: u64,
    /// The string encoding, `None` for a code byte.
    pub encoding: Option<Encoding>,
    /// The original text (or `0xB7` for a byte patch).
    pub before_text: String,
    /// The new text.
    pub after_text: String,
    /// The original bytes.
    #[serde(serialize_with = "as_hex")]
    pub before: Vec<u8>,
    /// The new bytes, same length (NUL-padded).
    #[serde(serialize_with = "as_hex")]
    pub after: Vec<u8>,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// Something the user should know that does not stop the patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning {
    /// The client build is not in the catalog; it was patched by content search only.
    UnknownBuild {
        /// Member path.
        path: String,
        /// Its version resource, if any.
        version: Option<FileVersion>,
    },
    /// A catalog build whose strings are not at the catalog offsets (a language variant?).
    CatalogMismatch {
        /// Member path.
        path: String,
        /// The build.
        build: &'static str,
        /// Which string.
        what: &'static str,
        /// Where the catalog expected it.
        expected: u64,
    },
    /// A string is rewritten shorter and NUL-padded.
    Shorter {
        /// Member path.
        path: String,
        /// File offset of the string.
        offset: u64,
        /// Characters before.
        original_len: usize,
        /// Characters after.
        new_len: usize,
    },
    /// The several-instances patch was asked for but cannot be applied.
    MultipleInstancesUnavailable {
        /// Member path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Patching removes the Authenticode signature.
    SignatureRemoved {
        /// Member path.
        path: String,
    },
    /// A catalog build in which the scan found none of an endpoint the build embeds.
    MissingEndpoint {
        /// Member path.
        path: String,
        /// The build.
        build: &'static str,
        /// The endpoint not found.
        endpoint: Endpoint,
    },
    /// The build signs in through a DLL of its own that this plan does not patch (MSN 7.5:
    /// `msidcrl.dll` posts to `RST.srf`), so the client would still sign in at Microsoft.
    LoginElsewhere {
        /// Member path of the executable.
        path: String,
        /// The build.
        build: &'static str,
        /// The DLL to patch too.
        dll: &'static str,
    },
}

fn show_path(path: &str) -> &str {
    if path.is_empty() { "the file" } else { path }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownBuild { path, version } => {
                let v = version.map_or_else(|| "no version".to_string(), |v| v.to_string());
                write!(
                    f,
                    "{}: unknown client build ({v}); patched by content search",
                    show_path(path)
                )
            }
            Self::CatalogMismatch {
                path,
                build,
                what,
                expected,
            } => write!(
                f,
                "{}: build {build} should have {what} at {expected:#x} but does not \
                 (language variant?)",
                show_path(path)
            ),
            Self::Shorter {
                path,
                offset,
                original_len,
                new_len,
            } => write!(
                f,
                "{}: string at {offset:#x} shortened from {original_len} to {new_len} \
                 characters (NUL-padded); a same-length host is the safest choice",
                show_path(path)
            ),
            Self::MultipleInstancesUnavailable { path, reason } => {
                write!(
                    f,
                    "{}: several-instances patch not applied: {reason}",
                    show_path(path)
                )
            }
            Self::SignatureRemoved { path } => write!(
                f,
                "{}: the Authenticode signature will be removed (Windows will show an \
                 unknown publisher)",
                show_path(path)
            ),
            Self::MissingEndpoint {
                path,
                build,
                endpoint,
            } => write!(
                f,
                "{}: build {build} should contain the {endpoint} address but none was found \
                 (a modified client?)",
                show_path(path)
            ),
            Self::LoginElsewhere { path, build, dll } => write!(
                f,
                "{}: build {build} signs in through {dll}, which is not part of this patch: \
                 patch the {dll} next to it too, or the client signs in at Microsoft",
                show_path(path)
            ),
        }
    }
}

/// What kind of file a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// An installed client executable.
    Executable,
    /// An IExpress-style self-extractor (CAB in an `RCDATA/CABINET` resource).
    SelfExtractor,
    /// A Windows Installer package.
    Msi,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Executable => "executable",
            Self::SelfExtractor => "self-extracting installer",
            Self::Msi => "MSI installer",
        })
    }
}

/// The edits for one PE (the file itself, or a member inside an installer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    /// Member path inside the installer (`"MsnMsgs.msi/msnmsgr.exe"`), `""` for the file.
    pub path: String,
    /// Version resource.
    pub version: Option<FileVersion>,
    /// The catalog build, if known.
    pub build: Option<&'static str>,
    /// PE32+.
    pub is_64: bool,
    /// Carries an Authenticode signature (it will be stripped).
    pub signed: bool,
    /// The file already points at the target (nothing to change).
    pub already_patched: bool,
    /// Number of endpoint hits the scan found.
    pub hits: usize,
    /// The edits, in offset order, non-overlapping.
    pub edits: Vec<Edit>,
}

/// A service a patched client reaches, and where ([`Plan::destinations`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// The service.
    pub endpoint: Endpoint,
    /// `host:port` for MSNP, `scheme://host[:port]` for the HTTP services.
    pub address: String,
}

/// `scheme://host[:port]` of a URL, if `text` is one.
pub(crate) fn origin_of(text: &str) -> Option<&str> {
    let after_scheme = text.find("://")? + 3;
    let end = text[after_scheme..]
        .find('/')
        .map_or(text.len(), |p| after_scheme + p);
    Some(&text[..end])
}

/// A whole plan: per-file edits, registry changes and warnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The target it was made for.
    pub target: Target,
    /// The outer file kind.
    pub kind: FileKind,
    /// The PE files to change (members without endpoints are left out).
    pub files: Vec<FilePlan>,
    /// Registry values to set or clear on the machine running the client.
    pub registry: Vec<RegistryChange>,
    /// Things to know.
    pub warnings: Vec<Warning>,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_noop(&self) -> bool {
        self.files.iter().all(|f| f.edits.is_empty())
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The `.reg` file for [`Plan::registry`], if there is anything to change.
    pub fn registry_file(&self) -> Option<String> {
        (!self.registry.is_empty()).then(|| crate::registry::reg_file(&self.registry))
    }

    /// Where the client connects once the plan is applied, one entry per service and
    /// address, in file order: what the rewritten strings and the registry say. (The HTTP
    /// gateway, which Relive does not serve, is left out; the login URL comes from the
    /// server's nexus answer, not from the client.)
    pub fn destinations(&self) -> Vec<Destination> {
        let mut out: Vec<Destination> = Vec::new();
        let mut add = |endpoint, address: String| {
            if !out
                .iter()
                .any(|d| d.endpoint == endpoint && d.address == address)
            {
                out.push(Destination { endpoint, address });
            }
        };
        let msnp = |host: &str| format!("{host}:{MSNP_PORT}");
        for edit in self.files.iter().flat_map(|f| &f.edits) {
            for reason in &edit.reasons {
                let Reason::Redirect { endpoint, .. } = reason else {
                    continue;
                };
                match (endpoint, origin_of(&edit.after_text)) {
                    (Endpoint::Gateway, _) => {}
                    (_, Some(origin)) => add(*endpoint, origin.to_owned()),
                    (Endpoint::NotificationServer, None) => {
                        add(*endpoint, msnp(&edit.after_text));
                    }
                    (_, None) => add(*endpoint, edit.after_text.clone()),
                }
            }
        }
        for change in &self.registry {
            if let RegistryChange::SetString { value, .. } = change {
                add(Endpoint::NotificationServer, msnp(value));
            }
        }
        out
    }
}

impl std::fmt::Display for Plan {
    /// A table: one line per edit, then registry changes and warnings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} → {}", self.kind, self.target.host)?;
        let destinations = self.destinations();
        if !destinations.is_empty() {
            writeln!(f, "\nthe patched client will use:")?;
            for d in &destinations {
                writeln!(f, "  {:<36}  {}", d.address, d.endpoint)?;
            }
        }
        for file in &self.files {
            let build = file.build.map_or_else(
                || {
                    file.version.map_or_else(
                        || "unknown build".into(),
                        |v| format!("{v} (unknown build)"),
                    )
                },
                |b| format!("MSN {b}"),
            );
            writeln!(
                f,
                "\n{} — {build}, {}{}",
                show_path(&file.path),
                if file.is_64 { "PE32+" } else { "PE32" },
                if file.already_patched {
                    ", already patched"
                } else {
                    ""
                }
            )?;
            if file.edits.is_empty() {
                writeln!(f, "  (no changes)")?;
                continue;
            }
            writeln!(
                f,
                "  {:>10}  {:<8}  {:<28}  change",
                "offset", "encoding", "reason"
            )?;
            for e in &file.edits {
                let enc = e.encoding.map_or_else(|| "byte".into(), |e| e.to_string());
                let why: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
                writeln!(
                    f,
                    "  {:>#10x}  {enc:<8}  {:<28}  {:?} → {:?}",
                    e.offset,
                    why.join(", "),
                    e.before_text,
                    e.after_text
                )?;
            }
        }
        if !self.registry.is_empty() {
            writeln!(f, "\nregistry:")?;
            for r in &self.registry {
                writeln!(f, "  {r}")?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(f, "\nwarnings:")?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
        }
        Ok(())
    }
}

/// The scheme of a URL whose host starts right after `before` (`…https://`), if it is one.
fn scheme_before(before: &str) -> Option<&str> {
    let scheme = before.strip_suffix("://")?;
    let start = scheme
        .rfind(|c: char| !c.is_ascii_alphabetic())
        .map_or(0, |p| p + 1);
    Some(&scheme[start..])
}

/// Rewrites one enclosing string for `target`. Returns the new text and the reasons.
pub(crate) fn rewrite_string(text: &str, target: &Target) -> (String, Vec<Reason>) {
    let mut out = String::with_capacity(text.len());
    let mut reasons = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut nexus = false;
    while i < bytes.len() {
        let boundary_before = i == 0 || !is_host_byte(bytes[i - 1]);
        let found = boundary_before
            .then(|| {
                scan::HOSTS.iter().find(|(host, _)| {
                    bytes.len() >= i + host.len()
                        && bytes[i..i + host.len()].eq_ignore_ascii_case(host.as_bytes())
                        && bytes.get(i + host.len()).is_none_or(|&c| !is_host_byte(c))
                })
            })
            .flatten();
        if let Some(&(host, endpoint)) = found {
            out.push_str(&target.host);
            let scheme = scheme_before(&text[..i]);
            let has_port = bytes.get(i + host.len()) == Some(&b':');
            // The nexus URL becomes `http://` below (it starts the string, as in every client).
            let login_over_http = endpoint == Endpoint::Nexus
                && target.http_login
                && text[..i].eq_ignore_ascii_case("https://");
            let port = match scheme {
                Some(s) if s.eq_ignore_ascii_case("https") && !login_over_http => {
                    Some((target.https_port, 443))
                }
                Some(s) if s.eq_ignore_ascii_case("http") || login_over_http => {
                    Some((target.http_port, 80))
                }
                _ => None,
            };
            if let (Some((port, default)), false) = (port, has_port)
                && port != default
            {
                out.push(':');
                out.push_str(&port.to_string());
            }
            nexus |= endpoint == Endpoint::Nexus && scheme.is_some();
            reasons.push(Reason::Redirect { endpoint, host });
            i += host.len();
        } else {
            // Strings are printable ASCII (see scan), so byte-wise copying is char-wise.
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    if target.http_login && nexus && out.len() >= 8 && out[..8].eq_ignore_ascii_case("https://") {
        out.replace_range(..8, "http://");
        reasons.push(Reason::HttpLogin);
    }
    (out, reasons)
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'
}

/// `url` with its path replaced by the shorter one the server also answers on, if it ends
/// with one of [`SHORT_PATHS`].
fn shorten_path(url: &str) -> Option<(String, Reason)> {
    SHORT_PATHS.iter().find_map(|&(_, long, short)| {
        let cut = url.len().checked_sub(long.len())?;
        let (origin, path) = (url.get(..cut)?, url.get(cut..)?);
        (origin.contains("://") && path.eq_ignore_ascii_case(long)).then(|| {
            (
                format!("{origin}{short}"),
                Reason::ShortPath { path: short },
            )
        })
    })
}

/// Plans the edits for one PE image. `path` names it in reports (`""` for the file itself).
///
/// Returns the file plan (possibly with no edits) and pushes warnings.
///
/// # Errors
/// [`PatchError::Packed`], [`PatchError::DoesNotFit`], or [`PatchError::Unsupported`] for
/// overlapping strings.
pub fn plan_image(
    image: &Image<'_>,
    path: &str,
    target: &Target,
    warnings: &mut Vec<Warning>,
) -> Result<FilePlan, PatchError> {
    if let Some(packer) = image.packer() {
        return Err(PatchError::Packed {
            packer: packer.to_string(),
        });
    }
    let data = image.data();
    let hits = scan::scan(image);
    let version = image.file_version();
    let build = version.and_then(catalog::lookup);
    let mut edits = group_edits(data, &hits, path, target, warnings)?;

    if let Some(b) = build {
        cross_check(b, &hits, data, target, path, warnings);
    }
    if target.multiple_instances
        && let Some(edit) = polygamy_edit(build, data, path, warnings)
    {
        edits.push(edit);
    }
    edits.sort_by_key(|e| e.offset);
    for pair in edits.windows(2) {
        if pair[0].offset + pair[0].before.len() as u64 > pair[1].offset {
            return Err(PatchError::Unsupported {
                reason: format!(
                    "overlapping strings at {:#x} and {:#x}",
                    pair[0].offset, pair[1].offset
                ),
            });
        }
    }
    let already_patched = hits.is_empty() && scan::contains_host(image, &target.host);
    let signed = image.signature_range().is_some();
    if !edits.is_empty() {
        if build.is_none() && !hits.is_empty() {
            warnings.push(Warning::UnknownBuild {
                path: path.to_string(),
                version,
            });
        }
        if signed {
            warnings.push(Warning::SignatureRemoved {
                path: path.to_string(),
            });
        }
    }
    Ok(FilePlan {
        path: path.to_string(),
        version,
        build: build.map(|b| b.name),
        is_64: image.is_64(),
        signed,
        already_patched,
        hits: hits.len(),
        edits,
    })
}

/// One edit per enclosing string.
fn group_edits(
    data: &[u8],
    hits: &[Hit],
    path: &str,
    target: &Target,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Edit>, PatchError> {
    let mut edits: Vec<Edit> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for hit in hits {
        if !seen.insert((hit.string_offset, hit.encoding)) {
            continue;
        }
        let (mut after_text, mut reasons) = rewrite_string(&hit.string, target);
        let old_len = hit.string.len();
        if after_text.len() > old_len
            && let Some((shorter, why)) = shorten_path(&after_text)
        {
            after_text = shorter;
            reasons.push(why);
        }
        let new_len = after_text.len();
        if new_len > old_len {
            return Err(PatchError::DoesNotFit {
                path: path.to_string(),
                offset: hit.string_offset,
                original: hit.string.clone(),
                replacement: after_text,
                new_len,
                max_len: old_len,
            });
        }
        if after_text == hit.string {
            continue;
        }
        if new_len < old_len {
            warnings.push(Warning::Shorter {
                path: path.to_string(),
                offset: hit.string_offset,
                original_len: old_len,
                new_len,
            });
        }
        let start = usize::try_from(hit.string_offset).unwrap_or(usize::MAX);
        let byte_len = old_len * hit.encoding.width();
        let Some(before) = data.get(start..start.saturating_add(byte_len)) else {
            continue;
        };
        let mut after = hit.encoding.encode(&after_text);
        after.resize(byte_len, 0);
        edits.push(Edit {
            offset: hit.string_offset,
            encoding: Some(hit.encoding),
            before_text: hit.string.clone(),
            after_text,
            before: before.to_vec(),
            after,
            reasons,
        });
    }
    Ok(edits)
}

/// Warns when a catalog build's strings are not where the catalog says.
fn cross_check(
    build: &'static Build,
    hits: &[Hit],
    data: &[u8],
    target: &Target,
    path: &str,
    warnings: &mut Vec<Warning>,
) {
    // Every endpoint the build embeds is somewhere (unless nothing was found at all: an
    // already patched file).
    if !hits.is_empty() {
        for endpoint in build.embeds {
            if !hits.iter().any(|h| h.endpoint == *endpoint) {
                warnings.push(Warning::MissingEndpoint {
                    path: path.to_string(),
                    build: build.name,
                    endpoint: *endpoint,
                });
            }
        }
    }
    let checks = [
        (build.ns_host, "messenger.hotmail.com", false),
        (build.nexus_url, "the nexus URL", true),
    ];
    for (expected, what, by_string) in checks {
        let Some(expected) = expected else { continue };
        let found = hits.iter().any(|h| {
            h.encoding == Encoding::Ascii
                && if by_string {
                    h.string_offset == expected
                } else {
                    h.offset == expected
                }
        });
        // An already patched file has the target host there instead.
        let patched = usize::try_from(expected).ok().is_some_and(|at| {
            data.get(at..).is_some_and(|rest| {
                rest.windows(target.host.len())
                    .take(16)
                    .any(|w| w == target.host.as_bytes())
            })
        });
        if !found && !patched {
            warnings.push(Warning::CatalogMismatch {
                path: path.to_string(),
                build: build.name,
                what,
                expected,
            });
        }
    }
}

/// The several-instances byte patch for a catalog build.
fn polygamy_edit(
    build: Option<&'static Build>,
    data: &[u8],
    path: &str,
    warnings: &mut Vec<Warning>,
) -> Option<Edit> {
    let mut unavailable = |reason: String| {
        warnings.push(Warning::MultipleInstancesUnavailable {
            path: path.to_string(),
            reason,
        });
    };
    let Some(build) = build else {
        unavailable("only known for builds in the catalog".into());
        return None;
    };
    let Some(offset) = build.polygamy else {
        unavailable(format!("no known offset for {}", build.name));
        return None;
    };
    let at = usize::try_from(offset).ok()?;
    match data.get(at) {
        Some(&catalog::POLYGAMY_ORIGINAL) => Some(Edit {
            offset,
            encoding: None,
            before_text: format!("{:#04X}", catalog::POLYGAMY_ORIGINAL),
            after_text: format!("{:#04X}", catalog::POLYGAMY_PATCHED),
            before: vec![catalog::POLYGAMY_ORIGINAL],
            after: vec![catalog::POLYGAMY_PATCHED],
            reasons: vec![Reason::MultipleInstances { build: build.name }],
        }),
        Some(&catalog::POLYGAMY_PATCHED) => None,
        Some(other) => {
            unavailable(format!(
                "byte at {offset:#x} is {other:#04x}, expected {:#04x}",
                catalog::POLYGAMY_ORIGINAL
            ));
            None
        }
        None => {
            unavailable(format!("offset {offset:#x} is past the end of the file"));
            None
        }
    }
}

/// A [`Warning::LoginElsewhere`] for every planned executable of a build that signs in
/// through a DLL of its own when no planned file is that DLL.
pub(crate) fn login_elsewhere(files: &[FilePlan]) -> Vec<Warning> {
    let planned = |dll: &str| {
        files.iter().any(|f| {
            let name = f.path.rsplit(['/', '\\']).next().unwrap_or(&f.path);
            name.eq_ignore_ascii_case(dll)
        })
    };
    files
        .iter()
        .filter_map(|f| {
            let build = f.version.and_then(catalog::lookup)?;
            let dll = build.login_dll?;
            (!planned(dll)).then(|| Warning::LoginElsewhere {
                path: f.path.clone(),
                build: build.name,
                dll,
            })
        })
        .collect()
}

/// The registry side of a plan, from the client's version.
pub(crate) fn registry_changes(
    version: Option<FileVersion>,
    target: &Target,
) -> Vec<RegistryChange> {
    let Some(version) = version.filter(|v| catalog::is_msn_range(*v)) else {
        return Vec::new();
    };
    match catalog::registry_kind(version) {
        RegistryKind::MessengerServiceServer => {
            vec![RegistryChange::set_messenger_service_server(&target.host)]
        }
        RegistryKind::MsnMessengerCache => vec![RegistryChange::clear_msn_messenger_cache()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str) -> Target {
        Target::new(host).unwrap()
    }

    #[test]
    fn host_validation() {
        assert!(Target::new("relive.example").is_ok());
        assert!(Target::new("10.0.0.1").is_ok());
        for bad in ["", "a b", "http://x", "x:1863", "x/y", ".x", "é.com"] {
            assert!(
                matches!(Target::new(bad), Err(PatchError::InvalidHost { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls_get_the_port_of_their_scheme_and_keep_their_path() {
        let target = t("10.0.0.1");
        let (s, r) = rewrite_string("https://nexus.passport.com/rdr/pprdr.asp", &target);
        assert_eq!(s, "https://10.0.0.1:8443/rdr/pprdr.asp");
        assert_eq!(r.len(), 1);
        let (s, _) = rewrite_string(
            "http://config.messenger.msn.com/Config/MsgrConfig.asmx",
            &target,
        );
        assert_eq!(s, "http://10.0.0.1:8080/Config/MsgrConfig.asmx");
        let (s, _) = rewrite_string("messenger.hotmail.com", &target);
        assert_eq!(s, "10.0.0.1", "bare hosts never get a port");
        // The schemes' own ports are left out.
        let standard = t("10.0.0.1").with_https_port(443).with_http_port(80);
        let (s, _) = rewrite_string("https://nexus.passport.com/rdr/pprdr.asp", &standard);
        assert_eq!(s, "https://10.0.0.1/rdr/pprdr.asp");
        assert_eq!(
            standard.summary()[..2],
            [
                "10.0.0.1:1863 for messaging (MSNP; the port is built into the client)",
                "https://10.0.0.1 to sign in (Passport nexus; the server then names its login URL)"
            ]
        );
    }

    #[test]
    fn http_login_only_for_nexus_and_on_the_http_port() {
        let target = t("h.test").with_http_login(true);
        let (s, r) = rewrite_string("https://nexus.passport.com/rdr/pprdr.asp", &target);
        assert_eq!(s, "http://h.test:8080/rdr/pprdr.asp");
        assert!(r.contains(&Reason::HttpLogin));
        assert_eq!(target.nexus_origin(), "http://h.test:8080");
        let (s, _) = rewrite_string("https://loginnet.passport.com/RST.srf", &target);
        assert_eq!(s, "https://h.test:8443/RST.srf");
    }

    #[test]
    fn a_url_too_long_with_host_and_port_takes_the_short_path() {
        let nexus = "https://nexus.passport.com/rdr/pprdr.asp";
        // 13 characters still fit with :8443 and the original path (40 characters).
        let (s, _) = rewrite_string(nexus, &t("a.example.org"));
        assert_eq!(s.len(), 40);
        // 14 do not: /nexus instead, as far as the notification server's 21 characters.
        let (long, _) = rewrite_string(nexus, &t("relive.example"));
        assert_eq!(long, "https://relive.example:8443/rdr/pprdr.asp");
        assert_eq!(
            shorten_path(&long),
            Some((
                "https://relive.example:8443/nexus".to_owned(),
                Reason::ShortPath { path: "/nexus" }
            ))
        );
        let config = "http://config.messenger.msn.com/Config/MsgrConfig.asmx";
        let (long, _) = rewrite_string(config, &t("a-twenty-char-host.x"));
        assert_eq!(
            shorten_path(&long).map(|(s, _)| s).as_deref(),
            Some("http://a-twenty-char-host.x:8080/config")
        );
        assert_eq!(shorten_path("relive.example"), None);
        assert_eq!(shorten_path("https://h/other.asp"), None);
    }

    #[test]
    fn longest_host_wins_inside_strings() {
        let (s, r) = rewrite_string("gateway.messenger.hotmail.com", &t("gw.test"));
        assert_eq!(s, "gw.test");
        assert_eq!(
            r,
            vec![Reason::Redirect {
                endpoint: Endpoint::Gateway,
                host: "gateway.messenger.hotmail.com"
            }]
        );
    }
}
