//! Trusting the server's certificate authority.
//!
//! `relive-server cert export FILE` writes the server's root CA as PEM. Old MSN clients log in
//! over HTTPS through the system's certificate store (WinINet), so that CA must be a trusted
//! root for the user who runs Messenger. On Windows we ask the system to import it with
//! `certutil -user -addstore Root FILE`: Windows itself shows the "install this certificate?"
//! confirmation, so nothing is trusted behind the user's back and no unsafe code is needed.
//! On other systems (the app patches files for a Windows machine) the steps are given in words.
//!
//! Reading the file is pure ([`read_ca`]); only [`import`] runs a process.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Largest certificate file we read. A CA certificate is 1–2 KiB; this leaves room for chains.
pub const MAX_CA_FILE: u64 = 64 * 1024;

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
        rustls_pemfile::certs(&mut &bytes[..])
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

    #[test]
    fn steps_name_the_file_and_the_store() {
        let steps = manual_steps(Path::new("/tmp/relive-ca.crt")).join("\n");
        assert!(steps.contains("relive-ca.crt"));
        assert!(steps.contains("Trusted Root Certification Authorities"));
    }
}
