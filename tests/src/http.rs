//! Raw HTTP/1.1 over TLS (rustls, TLS 1.2 only, like MSN 6.x/7.x through WinINet) for the
//! Passport 1.4 exchanges: the nexus (`/rdr/pprdr.asp`) and `login2.srf`. Requests are written
//! byte for byte and responses kept with their header names as sent, so tests can check the
//! exact case real clients depend on.

use rustls::pki_types::pem::PemObject as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail, ensure};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::client::within;

/// The largest response head the harness accepts.
const MAX_HEAD: usize = 16 * 1024;
/// The largest response body the harness accepts.
const MAX_BODY: usize = 64 * 1024;

/// A TLS 1.2-only client configuration that trusts exactly the CA certificate(s) in `ca_pem`.
///
/// # Errors
///
/// The file is unreadable, holds no certificate, or rustls rejects it.
pub fn tls12_connector(ca_pem: &Path) -> anyhow::Result<TlsConnector> {
    let pem = std::fs::read(ca_pem).with_context(|| ca_pem.display().to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_slice()) {
        roots.add(cert?)?;
    }
    ensure!(!roots.is_empty(), "no certificate in {}", ca_pem.display());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Connects to `addr` and completes a TLS handshake, verifying the certificate for `addr`'s IP.
///
/// # Errors
///
/// The connection or handshake failed (or took longer than [`crate::TIMEOUT`]).
pub async fn connect_tls(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> anyhow::Result<TlsStream<TcpStream>> {
    connect_tls_from(connector, addr, None).await
}

/// [`connect_tls`] from the local address `local` (`None`: any).
///
/// # Errors
///
/// As [`connect_tls`].
pub async fn connect_tls_from(
    connector: &TlsConnector,
    addr: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    within("TLS handshake", async {
        let tcp = match local {
            Some(local) => crate::tcp_from(local, addr).await?,
            None => TcpStream::connect(addr).await?,
        };
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = connector.connect(name, tcp).await?;
        let (_, session) = tls.get_ref();
        ensure!(
            session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2),
            "negotiated {:?}, not TLS 1.2",
            session.protocol_version()
        );
        Ok(tls)
    })
    .await
}

/// An HTTP response as received.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Headers in order, names as the server wrote them.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header whose name is exactly `name` (case-sensitive: old clients are).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `request` (a whole request head, ending in an empty line) and reads one response.
///
/// # Errors
///
/// I/O failed, the response was malformed or too large, or it took longer than
/// [`crate::TIMEOUT`].
pub async fn exchange<S>(io: &mut S, request: &[u8]) -> anyhow::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    exchange_in_writes(io, request, request.len().max(1)).await
}

/// [`exchange`], writing (and flushing) the request `write_len` bytes at a time: over TLS, one
/// record per write, so `1` splits the request into one-byte records.
///
/// # Errors
///
/// As [`exchange`].
pub async fn exchange_in_writes<S>(
    io: &mut S,
    request: &[u8],
    write_len: usize,
) -> anyhow::Result<Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within("HTTP exchange", async {
        for part in request.chunks(write_len.max(1)) {
            io.write_all(part).await?;
            io.flush().await?;
        }
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            ensure!(buf.len() <= MAX_HEAD, "response head over {MAX_HEAD} bytes");
            let mut chunk = [0u8; 4096];
            let n = io.read(&mut chunk).await?;
            ensure!(n > 0, "connection closed before the response head ended");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&buf[..head_end]).context("response head not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| anyhow!("malformed header line {line:?}"))?;
            headers.push((name.to_owned(), value.trim_start_matches(' ').to_owned()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse())
            .transpose()?
            .unwrap_or(0);
        ensure!(len <= MAX_BODY, "body of {len} bytes");
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = io.read(&mut chunk).await?;
            ensure!(n > 0, "connection closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        if body.len() > len {
            bail!("{} bytes after the body", body.len() - len);
        }
        Ok(Response {
            status_line,
            headers,
            body,
        })
    })
    .await
}

/// Extracts the ticket from an `Authentication-Info` value (`...from-PP='<ticket>'...`).
#[must_use]
pub fn ticket_of(authentication_info: &str) -> Option<&str> {
    let rest = authentication_info.split_once("from-PP='")?.1;
    let ticket = rest.split_once('\'')?.0;
    (!ticket.is_empty()).then_some(ticket)
}

/// Extracts the `DALogin` value (host\[:port\]/path, maybe with a scheme) from `PassportURLs`.
#[must_use]
pub fn da_login(passport_urls: &str) -> Option<&str> {
    passport_urls
        .split(',')
        .find_map(|kv| kv.strip_prefix("DALogin="))
}

/// Sends the nexus `request` on `io` (in writes of `write_len` bytes, see
/// [`exchange_in_writes`]) and returns the `DALogin` host (with port, if any) and path (without
/// its leading `/`) from the `HTTP/1.1 200 OK` answer.
///
/// # Errors
///
/// The exchange failed, or the answer is not a `200` with a usable `DALogin`.
pub async fn ask_nexus<S>(
    io: &mut S,
    request: &[u8],
    write_len: usize,
) -> anyhow::Result<(String, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let nexus = exchange_in_writes(io, request, write_len).await?;
    ensure!(
        nexus.status_line == "HTTP/1.1 200 OK",
        "nexus: {}",
        nexus.status_line
    );
    let urls = nexus
        .header("PassportURLs")
        .ok_or_else(|| anyhow!("nexus: no PassportURLs header"))?;
    let login = da_login(urls).ok_or_else(|| anyhow!("no DALogin in {urls}"))?;
    let (host, path) =
        split_da_login(login).ok_or_else(|| anyhow!("DALogin {login} has no path"))?;
    Ok((host.to_owned(), path.to_owned()))
}

/// Splits a `DALogin` value into host (with port, if any) and path (without its leading `/`),
/// dropping a scheme.
#[must_use]
pub fn split_da_login(login: &str) -> Option<(&str, &str)> {
    let login = login
        .strip_prefix("https://")
        .or_else(|| login.strip_prefix("http://"))
        .unwrap_or(login);
    login.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ticket_and_da_login() {
        assert_eq!(
            ticket_of("Passport1.4 da-status=success,from-PP='t=a&p=b',ru=x"),
            Some("t=a&p=b")
        );
        assert_eq!(ticket_of("Passport1.4 da-status=success,from-PP=''"), None);
        assert_eq!(
            da_login("DARealm=Passport.Net,DALogin=h:1/login2.srf,ConfigVersion=1"),
            Some("h:1/login2.srf")
        );
        assert_eq!(
            split_da_login("https://h:1/login2.srf"),
            Some(("h:1", "login2.srf"))
        );
        assert_eq!(split_da_login("h/a/b"), Some(("h", "a/b")));
        assert_eq!(split_da_login("h"), None);
    }
}
