//! Registry values a plan asks for, and their `.reg` file.
//!
//! MSN 1.0 – 4.7 read the notification server from
//! `HKCU\SOFTWARE\Microsoft\MessengerService\Server`, which overrides the built-in host, so a
//! plan sets it. MSN 5.0 – 7.5 cache the last server in
//! `HKCU\SOFTWARE\Microsoft\MSNMessenger\Server`; a plan deletes it so the client uses the
//! patched built-in host. The file is written in the `REGEDIT4` format, which every Windows
//! from 95 on imports (`regedit /s file.reg`), with CRLF line ends.

use serde::Serialize;

/// Key of the 1.x – 4.x server override.
pub const MESSENGER_SERVICE_KEY: &str = r"HKEY_CURRENT_USER\SOFTWARE\Microsoft\MessengerService";
/// Key of the 5.x – 7.x server cache.
pub const MSN_MESSENGER_KEY: &str = r"HKEY_CURRENT_USER\SOFTWARE\Microsoft\MSNMessenger";

/// One registry change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RegistryChange {
    /// Set a string value.
    SetString {
        /// Full key path.
        key: &'static str,
        /// Value name.
        name: &'static str,
        /// The data.
        value: String,
    },
    /// Delete a value.
    DeleteValue {
        /// Full key path.
        key: &'static str,
        /// Value name.
        name: &'static str,
    },
}

impl RegistryChange {
    /// `MessengerService\Server = host` for MSN 1.x – 4.x.
    pub fn set_messenger_service_server(host: &str) -> Self {
        Self::SetString {
            key: MESSENGER_SERVICE_KEY,
            name: "Server",
            value: host.to_string(),
        }
    }

    /// Deletes `MSNMessenger\Server` for MSN 5.x – 7.x.
    pub fn clear_msn_messenger_cache() -> Self {
        Self::DeleteValue {
            key: MSN_MESSENGER_KEY,
            name: "Server",
        }
    }
}

impl std::fmt::Display for RegistryChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SetString { key, name, value } => write!(f, r"set {key}\{name} = {value:?}"),
            Self::DeleteValue { key, name } => write!(f, r"delete {key}\{name}"),
        }
    }
}

/// Escapes a `.reg` string value (backslash and double quote).
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"")
}

/// Renders changes as a `REGEDIT4` file (CRLF line ends, keys grouped in order).
pub fn reg_file(changes: &[RegistryChange]) -> String {
    let mut out = String::from("REGEDIT4\r\n");
    let mut current: Option<&str> = None;
    for change in changes {
        let (key, line) = match change {
            RegistryChange::SetString { key, name, value } => {
                (*key, format!("\"{}\"=\"{}\"", escape(name), escape(value)))
            }
            RegistryChange::DeleteValue { key, name } => (*key, format!("\"{}\"=-", escape(name))),
        };
        if current != Some(key) {
            out.push_str(&format!("\r\n[{key}]\r\n"));
            current = Some(key);
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_file_format() {
        let text = reg_file(&[
            RegistryChange::set_messenger_service_server("relive.test"),
            RegistryChange::clear_msn_messenger_cache(),
        ]);
        assert_eq!(
            text,
            "REGEDIT4\r\n\r\n[HKEY_CURRENT_USER\\SOFTWARE\\Microsoft\\MessengerService]\r\n\
             \"Server\"=\"relive.test\"\r\n\r\n\
             [HKEY_CURRENT_USER\\SOFTWARE\\Microsoft\\MSNMessenger]\r\n\"Server\"=-\r\n"
        );
    }
}
