//! How load generators and tests log users in: MSNP7 `USR MD5` with the token, MSNP9 through
//! Passport (HTTPS `login2.srf` with the token as password, then `USR TWN` with the ticket), or
//! MSNP11 the same way as MSN 7.0 (`VER MSNP11 MSNP10`, CVR 7.0.0813, `SBS 0 null`). Each ends
//! at `USR OK` and the profile message, on a new NS connection, optionally from a chosen local
//! address (Linux routes all of 127/8 on `lo`: one machine, many sources).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use relive_msnp::client::Role;
use relive_msnp::version::ProtocolVersion;

use crate::MsnpClient;
use crate::http::{connect_tls_from, exchange, tls12_connector};
use crate::stack::{
    da_login_at, login_md5, login_twn_with, login_with_ticket, login2_request, login2_ticket,
};

/// A login path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// MSNP7: `USR MD5` with the token.
    Md5,
    /// MSNP9: HTTPS `login2.srf` with the token, then `USR TWN` with the ticket.
    Passport,
    /// MSNP11 (MSN 7.0): as `passport`, in the address-book dialect with `SBS`.
    Msnp11,
}

impl Method {
    /// For reports.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Md5 => "MSNP7 MD5 token login",
            Self::Passport => "MSNP9 Passport login (HTTPS login2.srf + USR TWN)",
            Self::Msnp11 => "MSNP11 Passport login (HTTPS login2.srf + USR TWN, SBS)",
        }
    }
}

/// Logs users in by one [`Method`] against a running server.
pub struct Logon {
    ns: SocketAddr,
    https: SocketAddr,
    from: Option<IpAddr>,
    /// Passport only: the login server's host and path (from the nexus, asked once as clients
    /// cache it) and a TLS 1.2 connector trusting the server's CA.
    passport: Option<(String, String, tokio_rustls::TlsConnector)>,
    /// Passport in MSNP11 (MSN 7.0) instead of MSNP9.
    msnp11: bool,
}

impl std::fmt::Debug for Logon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logon")
            .field("ns", &self.ns)
            .field("https", &self.https)
            .field("from", &self.from)
            .field("passport", &self.passport.is_some())
            .field("msnp11", &self.msnp11)
            .finish()
    }
}

impl Logon {
    /// Ready to log users in to the server at `ns` / `https` (trusting `ca_cert`) by `method`,
    /// connecting from `from` (`None`: any local address), the nexus included.
    ///
    /// # Errors
    ///
    /// Passport: the CA is unreadable or the nexus did not answer.
    pub async fn new(
        method: Method,
        ns: SocketAddr,
        https: SocketAddr,
        ca_cert: &Path,
        from: Option<IpAddr>,
    ) -> anyhow::Result<Self> {
        let passport = match method {
            Method::Md5 => None,
            Method::Passport | Method::Msnp11 => {
                let connector = tls12_connector(ca_cert)?;
                let (host, path) = da_login_at(&connector, https, from).await?;
                Some((host, path, connector))
            }
        };
        Ok(Self {
            ns,
            https,
            from,
            passport,
            msnp11: method == Method::Msnp11,
        })
    }

    /// A new NS connection logged in as `handle` with `token`.
    ///
    /// # Errors
    ///
    /// The login failed at any step.
    pub async fn login(&self, handle: &str, token: &str) -> anyhow::Result<MsnpClient> {
        let mut c = match self.from {
            Some(local) => {
                MsnpClient::connect_from(self.ns, local, Role::Notification, handle).await?
            }
            None => MsnpClient::connect(self.ns, Role::Notification, handle).await?,
        };
        match &self.passport {
            None => login_md5(&mut c, 7, handle, token).await?,
            Some((host, path, connector)) => {
                let (https, from) = (self.https, self.from);
                let login2 = |twn_params: String| async move {
                    let mut tls = connect_tls_from(connector, https, from).await?;
                    let request = login2_request(host, path, handle, token, &twn_params);
                    exchange(&mut tls, request.as_bytes()).await
                };
                if self.msnp11 {
                    let offer = [ProtocolVersion::MSNP11, ProtocolVersion::MSNP10];
                    login_with_ticket(&mut c, &offer, "7.0.0813", handle, |p| async move {
                        login2_ticket(&login2(p).await?)
                    })
                    .await?;
                } else {
                    login_twn_with(&mut c, 9, handle, login2).await?;
                }
            }
        }
        Ok(c)
    }
}
