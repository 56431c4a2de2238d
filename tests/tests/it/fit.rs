//! The rough edges a newcomer and a conformance probe tripped over (issue 13), each over real
//! sockets: `PNG` before login, `BPR` lines without their `LST`, links without the HTTP port, and
//! a client whose dialects are all too new.

use anyhow::{Context as _, bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_server::store::{ListKind, PhoneProp, parse_handle};
use relive_tests::http::exchange;
use relive_tests::stack::sync_lists;
use relive_tests::{StackOptions, TestStack};
use tokio::net::TcpStream;

use crate::transcripts::alice_and_bob_are_friends;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

#[tokio::test]
async fn ping_before_login_closes_like_any_command_out_of_state() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    for version in ["MSNP2", "MSNP7", "MSNP9"] {
        let mut c = stack.connect_ns(version).await?;
        c.send_line(&format!("VER 1 {version} CVR0")).await?;
        c.recv().await?;
        c.send_line("PNG").await?;
        c.expect_closed().await.context(version)?;
    }
    // Online, PNG is answered as always.
    let mut alice = stack.login(7, ALICE).await?;
    alice.send_line("PNG").await?;
    alice.expect_line("QNG").await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn msnp8_lst_sends_a_bpr_only_after_its_own_contact() -> anyhow::Result<()> {
    // alice: bob on FL+AL, bob on RL; carol on RL only. Bob and carol both have phones, so the
    // dump holds a BPR for each; alice's `LST FL` has no line for carol, so no BPR of hers.
    let stack = TestStack::start(StackOptions::cast()).await?;
    alice_and_bob_are_friends(&stack).await?;
    let (bob, carol) = (stack.id(BOB).await?, stack.id(CAROL).await?);
    stack
        .store
        .add_to_list(carol, ListKind::Fl, &parse_handle(ALICE)?, "Alice", None)
        .await?;
    stack
        .store
        .set_phone(bob, PhoneProp::Phw, Some("555"))
        .await?;
    stack
        .store
        .set_phone(carol, PhoneProp::Phh, Some("556"))
        .await?;
    let mut alice = stack.login_twn(8, ALICE).await?;
    sync_lists(&mut alice).await?;
    for (list, contacts) in [
        ("FL", vec![BOB]),
        ("RL", vec![BOB, CAROL]),
        ("AL", vec![BOB]),
    ] {
        alice.send_line(&format!("LST 9 {list}")).await?;
        alice.send_line("PNG").await?;
        let mut seen = Vec::new();
        let mut previous: Option<String> = None;
        loop {
            match alice.recv().await? {
                ServerMessage::Qng { .. } => break,
                ServerMessage::LstContact { handle, .. } => {
                    seen.push(handle.as_str().to_owned());
                    previous = Some(handle.as_str().to_owned());
                }
                ServerMessage::Bpr { handle, value, .. } => {
                    ensure!(list == "FL", "a BPR in LST {list}");
                    ensure!(handle.is_none(), "MSNP8 BPR lines carry no handle");
                    // Only bob's phone ("555") may appear, right after bob's line.
                    let value = value.as_ref().map(|v| v.as_str().to_owned());
                    ensure!(
                        previous.as_deref() == Some(BOB) && value.as_deref() == Some("555"),
                        "BPR {value:?} after {previous:?} in LST {list}: a BPR must follow \
                         its own contact's LST"
                    );
                    previous = None;
                }
                other => bail!("LST {list}: unexpected {other:?}"),
            }
        }
        ensure!(seen == contacts, "LST {list}: {seen:?}");
    }
    stack.shutdown().await?;
    Ok(())
}

/// GETs `url` (`http://host:port/path`) over plain HTTP; the status line.
async fn get(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut io = TcpStream::connect(authority)
        .await
        .with_context(|| format!("{url} is not reachable"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    Ok(exchange(&mut io, request.as_bytes()).await?.status_line)
}

#[tokio::test]
async fn url_and_cvr_links_carry_the_http_port_and_open() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let base = format!("http://127.0.0.1:{}/", stack.http.port());
    let mut c = stack.connect_ns("cvr").await?;
    c.send_line("VER 1 MSNP8 CVR0").await?;
    c.recv().await?;
    c.send_line("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com")
        .await?;
    let mut links = Vec::new();
    match c.recv().await? {
        ServerMessage::Cvr {
            download_url,
            info_url,
            ..
        } => links.extend([
            download_url.as_str().to_owned(),
            info_url.as_str().to_owned(),
        ]),
        other => bail!("CVR: {other:?}"),
    }
    let mut alice = stack.login(7, ALICE).await?;
    for service in ["INBOX", "COMPOSE", "FOLDERS", "PROFILE", "PERSON", "CHGMOB"] {
        alice.send_line(&format!("URL 9 {service}")).await?;
        match alice.recv().await? {
            ServerMessage::Url { url, login_url, .. } => {
                links.extend([url.as_str().to_owned(), login_url.as_str().to_owned()]);
            }
            other => bail!("URL {service}: {other:?}"),
        }
    }
    for link in &links {
        ensure!(link.starts_with(&base), "{link} is not on {base}");
        let status = get(link).await?;
        ensure!(status == "HTTP/1.1 200 OK", "{link}: {status}");
    }
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_client_offering_only_newer_dialects_gets_ver_0_and_a_log_line_naming_them()
-> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut c = stack.connect_ns("msnp11").await?;
    c.send_line("VER 1 MSNP11 MSNP10 CVR0").await?;
    c.expect_line("VER 1 0").await?;
    c.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}
