//! Secret values: the server key that encrypts access tokens at rest, and a wrapper for anything
//! that must never reach a log.
//!
//! The server key is 32 random bytes kept in `<data-dir>/secret.key` (64 hex digits, file mode
//! 0600 on Unix). It exists because MD5 logins (MSNP2–7) need the server to compute
//! `md5(challenge ‖ token)` with a fresh challenge each time, so tokens cannot be stored as
//! one-way hashes; they are stored encrypted under this key instead. Losing the key invalidates
//! every token (accounts and passwords are unaffected).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom as _, SystemRandom};

/// Length of the server key in bytes (ChaCha20-Poly1305 key size).
pub const SERVER_KEY_BYTES: usize = 32;

/// Errors loading or creating the server key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("server key file {path}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold exactly 64 hex digits.
    #[error("server key file {path} is malformed (expected {} hex digits)", SERVER_KEY_BYTES * 2)]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// The operating system's random generator failed.
    #[error("system random generator failed")]
    Random,
}

/// A string that must not be logged; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub const fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself. Call this only where the value is really needed (printing a new token
    /// once, comparing it); never pass the result to a log macro.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The 32-byte server key. `Debug` prints `***`.
#[derive(Clone)]
pub struct ServerKey([u8; SERVER_KEY_BYTES]);

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// A fresh random key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] if the system random generator fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; SERVER_KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        Ok(Self(bytes))
    }

    /// Wraps raw key bytes (tests and tools).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; SERVER_KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes, for building the AEAD key.
    pub(crate) const fn as_bytes(&self) -> &[u8; SERVER_KEY_BYTES] {
        &self.0
    }

    /// Loads the key from `path`, creating it (mode 0600 on Unix) if the file does not exist.
    ///
    /// Safe when several processes start at once on one shared file (cluster nodes): the key
    /// is written complete to a private temporary file next to `path` and hard-linked into
    /// place, which fails if the name exists; the process that loses that race reads the
    /// winner's key. Nobody ever reads a partly written key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] on file errors, [`KeyError::Malformed`] if the file is not 64 hex digits.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                let mut nonce = [0u8; 8];
                SystemRandom::new()
                    .fill(&mut nonce)
                    .map_err(|_| KeyError::Random)?;
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(format!(".{}.tmp", hex::encode(nonce)));
                let tmp = PathBuf::from(tmp);
                let written = (|| {
                    let mut file = create_private_file(&tmp)?;
                    writeln!(file, "{}", hex::encode(key.0))?;
                    file.sync_all()?;
                    std::fs::hard_link(&tmp, path)
                })();
                let _ = std::fs::remove_file(&tmp);
                match written {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created server key");
                        Ok(key)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(io)?;
                        Self::parse(path, &text)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key in a key file's text (64 hex digits).
    fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let malformed = || KeyError::Malformed {
            path: path.to_path_buf(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
        let bytes: [u8; SERVER_KEY_BYTES] = bytes.try_into().map_err(|_| malformed())?;
        Ok(Self(bytes))
    }
}

/// Creates a new file readable only by its owner (mode 0600 on Unix); fails if it exists.
///
/// # Errors
///
/// Any I/O error, including `AlreadyExists`.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes `data` to `path`, creating the parent directory. A `private` file (a key) is replaced
/// by a new file readable only by its owner: removed first, then created 0600, so it is never
/// briefly readable by others.
///
/// # Errors
///
/// Any I/O error.
pub fn write_file(path: &Path, data: &[u8], private: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if !private {
        return std::fs::write(path, data);
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::io::Write::write_all(&mut create_private_file(path)?, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        let key = ServerKey::from_bytes([7; SERVER_KEY_BYTES]);
        assert!(!format!("{key:?}").contains('7'));
    }

    #[test]
    fn processes_starting_at_once_on_one_key_file_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let keys: Vec<[u8; SERVER_KEY_BYTES]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| *ServerKey::load_or_create(&path).unwrap().as_bytes()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(
            *ServerKey::load_or_create(&path).unwrap().as_bytes(),
            keys[0]
        );
        // Only the key is left: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn key_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = ServerKey::load_or_create(&path).unwrap();
        let second = ServerKey::load_or_create(&path).unwrap();
        assert_eq!(first.as_bytes(), second.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex\n").unwrap();
        assert!(matches!(
            ServerKey::load_or_create(&path),
            Err(KeyError::Malformed { .. })
        ));
    }
}
