//! Pagers (issue 18) over real sockets: the server is every account's pager device. A page to
//! a contact who allows pages (`MOB Y`) is stored while they are offline and delivered as `IPG`
//! at their next login — `PAG` from MSN 4.x (MSNP7), `PGD` from MSN 6/7 (MSNP9, MSNP11), with
//! yellows111's example bodies replayed byte for byte (and split across writes); a blocked
//! sender, an unpageable target and an over-long page get `800`; `PAG` in MSNP9 gets `715`.
//!
//! Clients without `IPG` (MSNP2–5) get their pages from the virtual contact
//! `pager@pager.invalid` ("Pager"): `RNG` at the first visible `CHG` after login, then `ANS` → `IRO`, `ANS OK`, one
//! `text/plain` `MSG` per page and `BYE`, byte for byte; the website's Mobile page lists them
//! delivered, the next login rings no more, and a client that ignores the `RNG` is rung again
//! at its next login (the old cookie then finds its room gone). The virtual handle cannot be
//! registered or added to a list.

use anyhow::ensure;
use relive_msnp::pager::VIRTUAL_HANDLE;
use relive_msnp::server::ServerMessage;
use relive_server::store::{ListKind, PhoneProp, parse_handle};
use relive_tests::client::MsnpClient;
use relive_tests::web::{WebClient, location};
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

/// yellows111 `PAG` with a mobile callback number.
const PAG_CALLBACK_BODY: &[u8] = br#"<PHONE pri="1"><LOC>MOBILE</LOC><NUM>15551114444</NUM></PHONE><TEXT xml:space="preserve">Call me &amp; soon</TEXT>"#;

/// Alice (MSN 4.x, `PAG`) pages Bob, who allows pages and is offline, twice (the second page
/// with a callback number); returns the two `text/plain` payloads the virtual contact will say.
async fn two_pages_for_bob(stack: &TestStack) -> anyhow::Result<Vec<String>> {
    let bob = stack.id(BOB).await?;
    stack
        .store
        .set_phone(bob, PhoneProp::Mob, Some("Y"))
        .await?;
    let mut a = stack.login_as(7, ALICE).await?;
    page(&mut a, BOB, PAG_BODY).await?;
    page(&mut a, BOB, PAG_CALLBACK_BODY).await?;
    a.sync().await?;
    let name = stack.account(ALICE).await?.friendly_name.to_display();
    let stored = stack.store.pending_pages(bob).await?;
    ensure!(stored.len() == 2, "{stored:?}");
    let head = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\
                X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\n";
    let when = |i: usize| relive_server::web::when(stored[i].created_at);
    Ok(vec![
        format!(
            "{head}Page from {name} ({ALICE}), {}: This is an example message.",
            when(0)
        ),
        format!(
            "{head}Page from {name} ({ALICE}), {}: Call me & soon [call back: MOBILE 15551114444]",
            when(1)
        ),
    ])
}

/// Sends `CHG <status>`; after its echo and the `ILN`s the next NS frame must be the virtual
/// contact's `RNG`, exactly; returns its session and cookie.
async fn pager_rng(
    stack: &TestStack,
    c: &mut MsnpClient,
    status: &str,
) -> anyhow::Result<(String, String)> {
    let t = c.trid();
    c.send_line(&format!("CHG {t} {status}")).await?;
    c.expect_line(&format!("CHG {t} {status}")).await?;
    let raw = loop {
        let raw = c.recv_raw().await?;
        if !raw.line().starts_with("ILN ") {
            break raw;
        }
    };
    let line = raw.line();
    let words: Vec<&str> = line.split(' ').collect();
    ensure!(words.len() == 7, "not an RNG: {line:?}");
    let (session, cookie) = (words[1].to_owned(), words[4].to_owned());
    ensure!(session.parse::<u32>().is_ok(), "session {session:?}");
    let want = format!(
        "RNG {session} 127.0.0.1:{} CKI {cookie} {VIRTUAL_HANDLE} Pager\r\n",
        stack.sb.port()
    );
    ensure!(
        raw.bytes == want.as_bytes(),
        "{:?}",
        String::from_utf8_lossy(&raw.bytes)
    );
    Ok((session, cookie))
}

/// Answers the virtual contact's `RNG` and requires, byte for byte, `IRO` naming it,
/// `ANS OK`, one `MSG` per page and its `BYE`; then a message to it goes nowhere (`NAK`).
async fn answer_pager(
    stack: &TestStack,
    (session, cookie): (&str, &str),
    pages: &[String],
) -> anyhow::Result<()> {
    let mut sb = stack.connect_sb("bob_pager_sb").await?;
    sb.send_line(&format!("ANS 1 {BOB} {cookie} {session}"))
        .await?;
    sb.expect_line(&format!("IRO 1 1 1 {VIRTUAL_HANDLE} Pager"))
        .await?;
    sb.expect_line("ANS 1 OK").await?;
    for payload in pages {
        let raw = sb.recv_raw().await?;
        let want = format!("MSG {VIRTUAL_HANDLE} Pager {}\r\n{payload}", payload.len());
        ensure!(
            raw.bytes == want.as_bytes(),
            "{:?}",
            String::from_utf8_lossy(&raw.bytes)
        );
    }
    sb.expect_line(&format!("BYE {VIRTUAL_HANDLE}")).await?;
    let t = sb.trid();
    sb.send_payload(
        &format!("MSG {t} A"),
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nthanks",
    )
    .await?;
    sb.expect_line(&format!("NAK {t}")).await?;
    Ok(())
}

/// Waits until Bob's pages are marked delivered: the server marks them once its socket took
/// the virtual contact's messages, which may come a moment after the client read them.
async fn delivered(stack: &TestStack) -> anyhow::Result<()> {
    let bob = stack.id(BOB).await?;
    relive_tests::client::within("the pages marked delivered", async {
        while !stack.store.pending_pages(bob).await?.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    })
    .await
}

/// Bob's Mobile page on the website: both pages listed, `delivered` or not.
async fn mobile_lists(web: &mut WebClient, delivered: bool) -> anyhow::Result<()> {
    let html = web.page("/mobile").await?;
    ensure!(
        html.contains("This is an example message.") && html.contains("Call me &amp; soon"),
        "{html}"
    );
    let waiting = html.matches("(not yet shown in Messenger)").count();
    ensure!(
        waiting == if delivered { 0 } else { 2 },
        "{waiting} waiting: {html}"
    );
    Ok(())
}

async fn pages_from_the_virtual_contact(version: u8) -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let pages = two_pages_for_bob(&stack).await?;
    let mut web = stack.web_for(BOB).await?;
    mobile_lists(&mut web, false).await?;
    let mut b = stack.login_as(version, BOB).await?;
    // Rung at the first CHG, not before (no switchboard before it).
    relive_tests::stack::sync_lists(&mut b).await?;
    let (session, cookie) = pager_rng(&stack, &mut b, "NLN").await?;
    b.sync().await?;
    answer_pager(&stack, (&session, &cookie), &pages).await?;
    delivered(&stack).await?;
    mobile_lists(&mut web, true).await?;
    // Delivered once: the next login is not rung.
    drop(b);
    let mut again = stack.login_as(version, BOB).await?;
    relive_tests::stack::change_status(&mut again, "NLN").await?;
    again.sync().await?;
    Ok(())
}

#[tokio::test]
async fn msnp5_pages_come_from_the_virtual_contact() -> anyhow::Result<()> {
    pages_from_the_virtual_contact(5).await
}

#[tokio::test]
async fn msnp2_pages_come_from_the_virtual_contact() -> anyhow::Result<()> {
    pages_from_the_virtual_contact(2).await
}

/// An MSNP3 client that ignores the `RNG` keeps its pages for the next login; the virtual
/// handle is neither registrable nor addable.
#[tokio::test]
async fn msnp3_ignored_pager_ring_rings_again_at_next_login() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let pages = two_pages_for_bob(&stack).await?;
    let mut b = stack.login_as(3, BOB).await?;
    let (old_session, old_cookie) = pager_rng(&stack, &mut b, "BSY").await?;
    // Nobody can list the virtual contact.
    let t = b.trid();
    b.send_line(&format!("ADD {t} FL {VIRTUAL_HANDLE} Pager"))
        .await?;
    b.expect_line(&format!("208 {t}")).await?;
    drop(b);
    let mut web = stack.web_for(BOB).await?;
    mobile_lists(&mut web, false).await?;
    // Hidden, nobody rings: only a visible status does.
    let mut b = stack.login_as(3, BOB).await?;
    relive_tests::stack::change_status(&mut b, "HDN").await?;
    b.sync().await?;
    let (session, cookie) = pager_rng(&stack, &mut b, "NLN").await?;
    ensure!(cookie != old_cookie, "the RNG cookie was reused");
    // The ignored ring's room is gone.
    let mut late = stack.connect_sb("late").await?;
    late.send_line(&format!("ANS 1 {BOB} {old_cookie} {old_session}"))
        .await?;
    late.expect_line("911 1").await?;
    late.expect_closed().await?;
    answer_pager(&stack, (&session, &cookie), &pages).await?;
    delivered(&stack).await?;
    mobile_lists(&mut web, true).await?;
    // Nobody can register it.
    let mut visitor = WebClient::new(stack.http);
    let r = visitor
        .post(
            "/register",
            &[
                ("email", VIRTUAL_HANDLE),
                ("password", "a long enough passphrase 1"),
                ("password2", "a long enough passphrase 1"),
            ],
        )
        .await?;
    ensure!(location(&r) == Some("/register?m=bad-handle"), "{r:?}");
    ensure!(
        stack.store.account(&parse_handle(BOB)?).await?.is_some()
            && parse_handle(VIRTUAL_HANDLE).is_err(),
        "the virtual handle parses as an account handle"
    );
    Ok(())
}
