//! MSNFTP (MSN 1.x–5.x file transfer, P2P.md §1) for scripted clients: the
//! `text/x-msmsgsinvite` invitations on the switchboard and both roles of the TCP transfer
//! (`VER MSNFTP`, `USR`, `FIL`, `TFR`, blocks of at most 2045 bytes, `BYE`). Shared by
//! `relive-nat-peer` (NAT namespaces) and the cluster relay test (loopback).

use std::path::Path;

use anyhow::{anyhow, bail, ensure};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::MsnpClient;

/// Longest MSNFTP data block.
pub const BLOCK: usize = 2045;

/// Next frame whose command line starts with `prefix` (others are skipped), as its line and
/// payload.
pub async fn wait_line(c: &mut MsnpClient, prefix: &str) -> anyhow::Result<(String, Vec<u8>)> {
    for _ in 0..200 {
        let raw = c.recv_raw().await?;
        let line = raw.line();
        if line.starts_with(prefix) {
            return Ok((line, raw.payload().map(|p| p.to_vec()).unwrap_or_default()));
        }
    }
    bail!("no line starting {prefix:?}")
}

/// The `Name: value` fields of an invitation payload.
pub fn fields(payload: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(payload);
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The value of field `name` (any case) among `f`.
pub fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A `text/x-msmsgsinvite` payload with `body` (its `Name: value` lines).
pub fn invitation(body: &str) -> Vec<u8> {
    format!("MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n{body}")
        .into_bytes()
}

/// Waits for an invitation `MSG` whose `Invitation-Command` is `command`.
pub async fn wait_invitation(
    sbc: &mut MsnpClient,
    command: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    for _ in 0..50 {
        let (_, payload) = wait_line(sbc, "MSG ").await?;
        let f = fields(&payload);
        if field(&f, "Invitation-Command").is_some_and(|c| c.eq_ignore_ascii_case(command)) {
            return Ok(f);
        }
        if field(&f, "Invitation-Command").is_some_and(|c| c.eq_ignore_ascii_case("CANCEL")) {
            bail!("the invitation was cancelled");
        }
    }
    bail!("no {command}")
}

/// MSNFTP client role: `VER`, `USR`, `FIL`, `TFR`, blocks, `BYE`.
pub async fn fetch_file(
    stream: TcpStream,
    handle: &str,
    auth: &str,
    size: u64,
    out: &Path,
) -> anyhow::Result<()> {
    let mut s = BufReader::new(stream);
    let mut line = String::new();
    s.get_mut().write_all(b"VER MSNFTP\r\n").await?;
    read_line(&mut s, &mut line).await?;
    ensure!(line.trim_end() == "VER MSNFTP", "unexpected VER reply");
    s.get_mut()
        .write_all(format!("USR {handle} {auth}\r\n").as_bytes())
        .await?;
    read_line(&mut s, &mut line).await?;
    let announced: u64 = line
        .trim_end()
        .strip_prefix("FIL ")
        .ok_or_else(|| anyhow!("expected FIL"))?
        .parse()?;
    ensure!(announced == size, "FIL size differs from the invitation");
    s.get_mut().write_all(b"TFR\r\n").await?;
    let mut file = tokio::fs::File::create(out).await?;
    let mut got = 0u64;
    let mut block = vec![0u8; BLOCK];
    while got < size {
        let mut header = [0u8; 3];
        s.read_exact(&mut header).await?;
        ensure!(header[0] == 0, "the sender cancelled");
        let len = usize::from(u16::from_le_bytes([header[1], header[2]]));
        ensure!(len <= BLOCK && len > 0, "bad block length");
        s.read_exact(&mut block[..len]).await?;
        file.write_all(&block[..len]).await?;
        got += len as u64;
    }
    ensure!(got == size, "more data than announced");
    file.flush().await?;
    s.get_mut().write_all(b"BYE 16777989\r\n").await?;
    Ok(())
}

/// One line (at most 1 KiB) into `line`; a closed connection is an error.
async fn read_line(s: &mut BufReader<TcpStream>, line: &mut String) -> anyhow::Result<()> {
    line.clear();
    let n = (&mut *s).take(1024).read_line(line).await?;
    ensure!(n > 0, "connection closed");
    Ok(())
}

/// MSNFTP server role: answers `VER`, checks `USR`'s cookie, `FIL`, waits `TFR`, sends blocks,
/// waits `BYE`.
pub async fn serve_file(
    stream: TcpStream,
    auth: &str,
    path: &Path,
    size: u64,
) -> anyhow::Result<()> {
    let mut s = BufReader::new(stream);
    let mut line = String::new();
    read_line(&mut s, &mut line).await?;
    ensure!(line.trim_end() == "VER MSNFTP", "expected VER MSNFTP");
    s.get_mut().write_all(b"VER MSNFTP\r\n").await?;
    read_line(&mut s, &mut line).await?;
    let cookie = line.trim_end().rsplit(' ').next().unwrap_or("");
    ensure!(
        line.starts_with("USR ") && cookie == auth,
        "wrong USR cookie"
    );
    s.get_mut()
        .write_all(format!("FIL {size}\r\n").as_bytes())
        .await?;
    read_line(&mut s, &mut line).await?;
    ensure!(line.trim_end() == "TFR", "expected TFR");
    let mut file = tokio::fs::File::open(path).await?;
    let mut block = vec![0u8; BLOCK];
    let mut sent = 0u64;
    while sent < size {
        let n = file.read(&mut block).await?;
        ensure!(n > 0, "file shorter than announced");
        let len = u16::try_from(n)?.to_le_bytes();
        s.get_mut().write_all(&[0, len[0], len[1]]).await?;
        s.get_mut().write_all(&block[..n]).await?;
        sent += n as u64;
    }
    read_line(&mut s, &mut line).await?;
    ensure!(line.starts_with("BYE"), "expected BYE");
    Ok(())
}
