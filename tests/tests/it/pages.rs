//! Pagers (issue 18) over real sockets: the server is every account's pager device. A page to
//! a contact who allows pages (`MOB Y`) is stored while they are offline and delivered as `IPG`
//! at their next login — `PAG` from MSN 4.x (MSNP7), `PGD` from MSN 6/7 (MSNP9, MSNP11), with
//! yellows111's example bodies replayed byte for byte (and split across writes); a blocked
//! sender, an unpageable target and an over-long page get `800`; `PAG` in MSNP9 gets `715`.

use anyhow::ensure;
use relive_msnp::server::ServerMessage;
use relive_server::store::{ListKind, PhoneProp, parse_handle};
use relive_tests::client::MsnpClient;
use relive_tests::{StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// yellows111 `PAG`: the 61-byte body without a callback number.
const PAG_BODY: &[u8] = br#"<TEXT xml:space="preserve">This is an example message.</TEXT>"#;
/// yellows111 `PGD`: the body without a callback number (73 bytes; the wiki's header says 74,
/// one more than its body).
const PGD_BODY: &[u8] =
    br#"<TEXT xml:space="preserve" enc="utf-8">This is an example message.</TEXT>"#;
/// yellows111 `PGD` with a home callback number.
const PGD_CALLBACK_BODY: &[u8] = br#"<PHONE pri="1"><LOC>HOME</LOC><NUM>15551114444</NUM></PHONE><TEXT xml:space="preserve" enc="utf-8">This is an example message with a home callback number.</TEXT>"#;

/// Sends a page to `to` in the dialect's command, written in two pieces split inside the body.
async fn page(c: &mut MsnpClient, to: &str, body: &[u8]) -> anyhow::Result<u32> {
    let t = c.trid();
    let head = if c.caps().pag {
        format!("PAG {t} {to} {}\r\n", body.len())
    } else {
        format!("PGD {t} {to} 1 {}\r\n", body.len())
    };
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    let (first, rest) = bytes.split_at(bytes.len() - 20);
    c.send_raw(first).await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    c.send_raw(rest).await?;
    Ok(t.0)
}

fn pid(member_id: u64) -> String {
    format!(
        "0x{:08X}:0x{:08X}",
        member_id >> 32,
        member_id & 0xffff_ffff
    )
}

async fn offline_page_delivered_at_login(
    version: u8,
    body: &[u8],
    text: &str,
) -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let site = format!("http://127.0.0.1:{}/", stack.http.port());
    stack
        .store
        .set_phone(stack.id(BOB).await?, PhoneProp::Mob, Some("Y"))
        .await?;
    let mut a = stack.login_as(version, ALICE).await?;
    page(&mut a, BOB, body).await?;
    // Success has no reply: the next answer is the one to PNG.
    a.sync().await?;
    let mut b = stack.login_as(version, BOB).await?;
    let (alice, bob) = (stack.account(ALICE).await?, stack.account(BOB).await?);
    let payload = format!(
        "<NOTIFICATION id=\"0\" siteid=\"111100400\" siteurl=\"{site}\"><TO name=\"{BOB}\" \
         pid=\"{}\" email=\"{BOB}\"><VIA agent=\"mobile\"/></TO><FROM pid=\"{}\" name=\"{ALICE}\"/>\
         <MSG pri=\"1\" id=\"0\"><ACTION url=\"mobile\"/><SUBSCR url=\"mobile\"/><CAT id=\"110110001\"/>\
         <BODY lang=\"1033\"><TEXT>{text}</TEXT></BODY></MSG></NOTIFICATION>",
        pid(bob.member_id),
        pid(alice.member_id),
    );
    let raw = b.recv_raw().await?;
    let want = format!("IPG {}\r\n{payload}", payload.len());
    ensure!(
        raw.bytes == want.as_bytes(),
        "{:?}",
        String::from_utf8_lossy(&raw.bytes)
    );
    b.sync().await?;
    // Delivered once: the next login has nothing waiting.
    drop(b);
    let mut again = stack.login_as(version, BOB).await?;
    again.sync().await?;
    // The website lists it.
    let pages = stack.store.pages(bob.id).await?;
    ensure!(
        pages.len() == 1 && pages[0].delivered_at.is_some(),
        "{pages:?}"
    );
    Ok(())
}

#[tokio::test]
async fn msnp7_pag_to_offline_contact_delivered_at_login() -> anyhow::Result<()> {
    offline_page_delivered_at_login(7, PAG_BODY, "This is an example message.").await
}

#[tokio::test]
async fn msnp9_pgd_to_offline_contact_delivered_at_login() -> anyhow::Result<()> {
    offline_page_delivered_at_login(9, PGD_BODY, "This is an example message.").await
}

#[tokio::test]
async fn msnp11_pgd_with_callback_to_offline_contact_delivered_at_login() -> anyhow::Result<()> {
    offline_page_delivered_at_login(
        11,
        PGD_CALLBACK_BODY,
        "This is an example message with a home callback number.",
    )
    .await
}

async fn refusals(version: u8) -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let bob = stack.id(BOB).await?;
    // Bob allows pages from his own client ("allow contacts to page me": PRP MOB Y) and
    // blocks Carol.
    let mut b = stack.login_as(version, BOB).await?;
    let t = b.trid();
    b.send_line(&format!("PRP {t} MOB Y")).await?;
    b.wait_for(
        "PRP MOB Y",
        |m| matches!(m, ServerMessage::Prp { trid, .. } if *trid == t),
    )
    .await?;
    stack
        .store
        .add_to_list(bob, ListKind::Bl, &parse_handle(CAROL)?, "Carol", None)
        .await?;
    let body = if version == 7 { PAG_BODY } else { PGD_BODY };
    let mut c = stack.login_as(version, CAROL).await?;
    let t = page(&mut c, BOB, body).await?;
    c.expect_line(&format!("800 {t}")).await?;
    // Alice does not allow pages: the same 800 as the block.
    let t = page(&mut c, ALICE, body).await?;
    c.expect_line(&format!("800 {t}")).await?;
    // Not page XML: 800, and the connection stays usable.
    let t = page(&mut c, BOB, b"just some text that is not the page XML").await?;
    c.expect_line(&format!("800 {t}")).await?;
    c.sync().await?;
    // Bob gets nothing, online or at his next login.
    b.sync().await?;
    let mut b = stack.login_as(version, BOB).await?;
    b.sync().await?;
    ensure!(
        stack.store.pages(bob).await?.is_empty(),
        "a refused page was stored"
    );
    Ok(())
}

#[tokio::test]
async fn msnp7_page_from_blocked_user_refused() -> anyhow::Result<()> {
    refusals(7).await
}

#[tokio::test]
async fn msnp9_page_from_blocked_user_refused() -> anyhow::Result<()> {
    refusals(9).await
}

#[tokio::test]
async fn msnp11_page_from_blocked_user_refused() -> anyhow::Result<()> {
    refusals(11).await
}

/// The per-sender rate limit, and `PAG` in MSNP9 (`715`: the command was replaced by `PGD`).
#[tokio::test]
async fn msnp9_rate_limit_and_old_pag() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    stack
        .store
        .set_phone(stack.id(BOB).await?, PhoneProp::Mob, Some("Y"))
        .await?;
    let mut a = stack.login_as(9, ALICE).await?;
    let t = a.trid();
    a.send_payload(&format!("PAG {t} {BOB}"), PAG_BODY).await?;
    a.expect_line(&format!("715 {t}")).await?;
    for _ in 0..relive_server::store::pages::MAX_PAGES_PER_MINUTE {
        page(&mut a, BOB, PGD_BODY).await?;
    }
    a.sync().await?;
    let t = page(&mut a, BOB, PGD_BODY).await?;
    a.expect_line(&format!("800 {t}")).await?;
    Ok(())
}
