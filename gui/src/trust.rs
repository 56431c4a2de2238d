//! Trusting the server's certificate authority.
//!
//! A Relive server publishes its root CA (PEM) on its plain HTTP listener at
//! [`CA_PATH`] ([`download_ca`] fetches it from there; the user compares the fingerprint with
//! the one `relive-server` prints at start), and `relive-server cert export FILE` writes the
//! same file for copying by hand. Old MSN clients log in
//! over HTTPS through the system's certificate store (WinINet), so that CA must be a trusted
//! root for the user who runs Messenger. On Windows we ask the system to import it with
//! `certutil -user -addstore Root FILE`: Windows itself shows the "install this certificate?"
//! confirmation, so nothing is trusted behind the user's back and no unsafe code is needed.
//! On other systems (the app patches files for a Windows machine) the steps are given in words.
//!
//! Parsing is pure ([`parse_ca`]); [`download_ca`] is a one-shot HTTP/1.0 GET with a bounded
//! answer (std sockets: the worker thread has no async runtime); only [`import`] runs a process.

use rustls::pki_types::pem::PemObject as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use relive_patcher::Target;
use sha2::{Digest as _, Sha256};

/// Largest certificate file we read. A CA certificate is 1–2 KiB; this leaves room for chains.
pub const MAX_CA_FILE: u64 = 64 * 1024;

/// Where a Relive server publishes its CA certificate on its plain HTTP listener.
pub const CA_PATH: &str = "/relive-ca.crt";

/// How long connecting, sending or waiting for the answer of a download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Larger than [`MAX_CA_FILE`].
    #[error("{} is {size} bytes; a certificate is a few kilobytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Neither a PEM certificate nor a DER one.
    #[error("{} does not contain a certificate (expected PEM or DER)", path.display())]
    NotCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The system refused or the user declined.
    #[error("the certificate was not imported: {reason}")]
    Import {
        /// What `certutil` said, or why it could not run.
        reason: String,
    },
    /// The server's certificate could not be downloaded.
    #[error("could not download {url}: {reason}")]
    Download {
        /// What was asked for.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// What the user needs to recognise a CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the (first) certificate, as `AB:CD:…`, to compare with the server's.
    pub sha256: String,
    /// How many certificates the file holds.
    pub count: usize,
}

/// Reads a CA certificate file (PEM, or a single DER certificate).
///
/// # Errors
/// [`CaError::Io`], [`CaError::TooLarge`], [`CaError::NotCertificate`].
pub fn read_ca(path: &Path) -> Result<CaInfo, CaError> {
    let io = |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_CA_FILE {
        return Err(CaError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse_ca(path, &bytes)
}

/// Parses certificate bytes (PEM or DER). Pure.
///
/// # Errors
/// [`CaError::NotCertificate`].
pub fn parse_ca(path: &Path, bytes: &[u8]) -> Result<CaInfo, CaError> {
    let not_cert = || CaError::NotCertificate {
        path: path.to_path_buf(),
    };
    let ders: Vec<Vec<u8>> = if bytes.starts_with(&[0x30]) {
        // DER: a SEQUENCE. certutil checks the rest; we only fingerprint it.
        vec![bytes.to_vec()]
    } else {
        rustls::pki_types::CertificateDer::pem_slice_iter(bytes)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| not_cert())?
    };
    let first = ders.first().ok_or_else(not_cert)?;
    Ok(CaInfo {
        path: path.to_path_buf(),
        sha256: fingerprint(first),
        count: ders.len(),
    })
}

/// `AB:CD:…` SHA-256 of DER bytes, the way certificate viewers show it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex = hex::encode_upper(digest);
    let pairs: Vec<&str> = hex
        .as_bytes()
        .chunks(2)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    pairs.join(":")
}

/// The URL of the CA certificate the server of `target` publishes
/// (`http://host[:port]/relive-ca.crt`, on the server's plain HTTP port).
pub fn ca_url(target: &Target) -> String {
    format!("{}{CA_PATH}", target.origin(false))
}

/// Downloads the CA certificate at `url` (plain HTTP), checks that it is one, and writes it
/// to `into` (creating its folder).
///
/// # Errors
/// [`CaError::Download`] when the server cannot be reached or does not answer 200 with at
/// most [`MAX_CA_FILE`] bytes, [`CaError::NotCertificate`], [`CaError::Io`] writing `into`.
pub fn download_ca(url: &str, into: &Path) -> Result<CaInfo, CaError> {
    let failed = |reason: String| CaError::Download {
        url: url.to_owned(),
        reason,
    };
    let body = http_get(url).map_err(failed)?;
    let info = parse_ca(into, &body).map_err(|_| {
        failed("the answer is not a certificate (is this a Relive server?)".to_owned())
    })?;
    let io = |source| CaError::Io {
        path: into.to_path_buf(),
        source,
    };
    if let Some(dir) = into.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(into, &body).map_err(io)?;
    Ok(info)
}

/// `GET` over HTTP/1.0 (the server closes after the answer); the body of a `200`.
fn http_get(url: &str) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are fetched".to_owned())?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addrs = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot find {authority}: {e}"))?;
    let mut last = format!("{authority} has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, DOWNLOAD_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let io = |e: std::io::Error| e.to_string();
    stream
        .set_read_timeout(Some(DOWNLOAD_TIMEOUT))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(DOWNLOAD_TIMEOUT))
        .map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: relive-gui\r\n\r\n"
    )
    .map_err(io)?;
    // The head is small; the body is a certificate. Anything longer is not what we want.
    let limit = MAX_CA_FILE + 16 * 1024;
    let mut answer = Vec::new();
    stream
        .take(limit + 1)
        .read_to_end(&mut answer)
        .map_err(io)?;
    if answer.len() as u64 > limit {
        return Err(format!("the answer is larger than {limit} bytes"));
    }
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "the answer is not HTTP".to_owned())?;
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let status = head.lines().next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!("the server answered {status:?}"));
    }
    let body = answer.split_off(head_end + 4);
    if body.len() as u64 > MAX_CA_FILE {
        return Err(format!("the certificate is {} bytes", body.len()));
    }
    Ok(body)
}

/// Steps for systems where the app cannot import the certificate itself.
pub fn manual_steps(file: &Path) -> Vec<String> {
    let name = file.file_name().map_or_else(
        || "the certificate file".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    vec![
        format!("Copy {name} to the Windows computer (or VM) that runs MSN Messenger."),
        format!("Double-click {name}, then press \"Install Certificate…\"."),
        "Choose \"Current User\", then \"Place all certificates in the following store\" → \
         Browse → \"Trusted Root Certification Authorities\"."
            .into(),
        "Finish, and answer \"Yes\" when Windows asks whether to install the certificate.".into(),
        format!("Or, in a command prompt on that computer: certutil -user -addstore Root {name}"),
    ]
}

/// Imports the certificate into the current user's trusted roots. Windows shows its own
/// confirmation dialog; declining is reported as [`CaError::Import`].
///
/// # Errors
/// [`CaError::Import`] when `certutil` cannot run or fails; always on other systems.
pub fn import(path: &Path) -> Result<(), CaError> {
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        /// Do not flash a console window: the confirmation is the system's own dialog.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        let out = std::process::Command::new("certutil")
            .args(["-user", "-addstore", "Root"])
            .arg(path)
            .creation_flags(CREATE_NO_WINDOW)
            .output()
            .map_err(|e| CaError::Import {
                reason: format!("certutil could not start: {e}"),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .next_back()
            .unwrap_or("certutil failed");
        Err(CaError::Import {
            reason: last.chars().take(300).collect(),
        })
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        Err(CaError::Import {
            reason: "this is not Windows: follow the steps shown".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A syntactically valid PEM block; the fingerprint is over its base64-decoded bytes.
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_and_der_give_the_same_fingerprint() {
        let path = Path::new("relive-ca.crt");
        let pem = parse_ca(path, PEM.as_bytes()).unwrap();
        let der = parse_ca(path, &[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
        assert_eq!(pem.sha256, der.sha256);
        assert_eq!(pem.count, 1);
        assert_eq!(pem.sha256.len(), 32 * 3 - 1);
        assert_eq!(pem.sha256, fingerprint(&[0x30, 0x03, 0x02, 0x01, 0x01]));
    }

    #[test]
    fn text_without_certificate_is_refused() {
        let err = parse_ca(Path::new("x.txt"), b"hello").unwrap_err();
        assert!(matches!(err, CaError::NotCertificate { .. }));
        let err = parse_ca(Path::new("x.txt"), b"").unwrap_err();
        assert!(matches!(err, CaError::NotCertificate { .. }));
    }

    #[test]
    fn large_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.crt");
        std::fs::write(&path, vec![b'A'; 70 * 1024]).unwrap();
        assert!(matches!(read_ca(&path), Err(CaError::TooLarge { .. })));
    }

    /// Serves `answer` to one connection on 127.0.0.1; returns the URL of `path` there and
    /// the request the client sent.
    fn serve_once(answer: Vec<u8>, path: &str) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            conn.write_all(&answer).unwrap();
            String::from_utf8(request).unwrap()
        });
        (url, server)
    }

    #[test]
    fn the_certificate_is_downloaded_checked_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("certs").join("relive-ca-example.crt");
        let mut answer =
            b"HTTP/1.0 200 OK\r\nContent-Type: application/x-x509-ca-cert\r\n\r\n".to_vec();
        answer.extend_from_slice(PEM.as_bytes());
        let (url, server) = serve_once(answer, CA_PATH);
        let info = download_ca(&url, &into).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /relive-ca.crt HTTP/1.0\r\nHost: 127.0.0.1:"));
        assert_eq!(info.sha256, fingerprint(&[0x30, 0x03, 0x02, 0x01, 0x01]));
        assert_eq!(std::fs::read(&into).unwrap(), PEM.as_bytes());

        // A 404, a page that is not a certificate, nobody listening: said, nothing written.
        for answer in [
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\n\r\n<html>hello</html>".to_vec(),
        ] {
            let other = dir.path().join("other.crt");
            let (url, server) = serve_once(answer, CA_PATH);
            let err = download_ca(&url, &other).unwrap_err();
            server.join().unwrap();
            assert!(matches!(err, CaError::Download { .. }), "{err}");
            assert!(!other.exists());
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}{CA_PATH}", closed.local_addr().unwrap());
        drop(closed);
        assert!(matches!(
            download_ca(&url, &into),
            Err(CaError::Download { .. })
        ));
        let target = Target::new("relive.example").unwrap();
        assert_eq!(ca_url(&target), "http://relive.example:8080/relive-ca.crt");
    }

    #[test]
    fn steps_name_the_file_and_the_store() {
        let steps = manual_steps(Path::new("/tmp/relive-ca.crt")).join("\n");
        assert!(steps.contains("relive-ca.crt"));
        assert!(steps.contains("Trusted Root Certification Authorities"));
    }
}
