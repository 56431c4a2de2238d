//! The opt-in message history over real sockets: MSNP7, MSNP9 and MSNP11 clients in one
//! switchboard, the setting turned on and off on the website (plain HTTP), what is recorded
//! (text only, consent of everyone present), export (text and JSON) and delete through the
//! website, and the real SQLite file holding no plaintext. The history pages in Chromium are
//! [`history_pages_in_chromium`].

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use fantoccini::{Client, Locator};
use relive_msnp::server::ServerMessage;
use relive_msnp::version::ProtocolVersion;
use relive_tests::sb::{self, expect_msg, send_acked, send_msg, text_payload};
use relive_tests::stack::{SEEDED_PASSWORD, change_status, sync_lists};
use relive_tests::web::{WebClient, location};
use relive_tests::{MsnpClient, StackOptions, TestStack};

use crate::browser::{fill, in_chromium, shot, submit, text};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";

/// Turns the history on or off on the website, as the page's button does.
async fn set_history(web: &mut WebClient, on: bool) -> anyhow::Result<()> {
    let r = web
        .post("/history/setting", &[("on", if on { "yes" } else { "no" })])
        .await?;
    let want = if on {
        "/history?m=on"
    } else {
        "/history?m=off"
    };
    ensure!(location(&r) == Some(want), "{r:?}");
    let page = web.page("/history").await?;
    let state = if on { ">on<" } else { ">off<" };
    ensure!(page.contains(state), "the page does not say {state}");
    Ok(())
}

/// `handle`'s recorded conversations (oldest first), each as its texts in order.
async fn texts(stack: &TestStack, handle: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let owner = stack.id(handle).await?;
    let mut list = stack.store.history_conversations(owner).await?;
    list.sort_by_key(|c| c.id);
    let mut all = Vec::new();
    for c in list {
        let (_, messages) = stack
            .store
            .history_conversation(owner, c.id)
            .await?
            .context("a listed conversation is gone")?;
        all.push(messages.into_iter().map(|m| m.text).collect());
    }
    Ok(all)
}

/// Waits until `handle` has a recorded message `last` (the writer runs in the background; it
/// writes in order, so everything offered before `last` has been decided by then).
async fn until_recorded(
    stack: &TestStack,
    handle: &str,
    last: &str,
) -> anyhow::Result<Vec<Vec<String>>> {
    for _ in 0..100 {
        let all = texts(stack, handle).await?;
        if all.iter().flatten().any(|t| t == last) {
            return Ok(all);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{handle}: {last:?} was not recorded within 5 s")
}

/// alice opens a switchboard and invites bob: their two switchboard connections.
async fn alice_calls_bob(
    alice_ns: &mut MsnpClient,
    bob_ns: &mut MsnpClient,
) -> anyhow::Result<(MsnpClient, MsnpClient)> {
    let mut alice = sb::open(alice_ns, ALICE, "alice_sb").await?;
    let bob = sb::invite(&mut alice, bob_ns, BOB, "bob_sb").await?.sb;
    alice.expect("JOI bob", |m| is_joi(m, BOB)).await?;
    Ok((alice, bob))
}

/// `from` says each of `texts` to `to` in turn (`MSG A`, relayed, `ACK`).
async fn say(
    from: &mut MsnpClient,
    handle: &str,
    to: &mut MsnpClient,
    texts: &[&str],
) -> anyhow::Result<()> {
    for text in texts {
        send_acked(from, handle, &mut [&mut *to], &text_payload(text)).await?;
    }
    Ok(())
}

fn is_joi(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Joi { handle, .. } if handle.as_str() == who)
}

fn is_bye(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Bye { handle, .. } if handle.as_str() == who)
}

/// Online in MSNP7 (MD5), MSNP9 (Passport 1.4) or MSNP11 (MSN 7.0 over login2.srf).
async fn online(stack: &TestStack, dialect: u8, handle: &str) -> anyhow::Result<MsnpClient> {
    let mut c = match dialect {
        7 => stack.login(7, handle).await?,
        9 => stack.login_twn(9, handle).await?,
        11 => {
            stack
                .login_passport_as(
                    &[ProtocolVersion::MSNP11, ProtocolVersion::MSNP10],
                    "7.0.0813",
                    handle,
                )
                .await?
        }
        other => bail!("no dialect {other} here"),
    };
    sync_lists(&mut c).await?;
    change_status(&mut c, "NLN").await?;
    Ok(c)
}

/// A P2P message (MSNP9+ `MSG D`): the MIME head and a 48-byte binary header plus footer.
fn p2p_payload(to: &str) -> Vec<u8> {
    let mut p = format!(
        "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: {to}\r\n\r\n"
    )
    .into_bytes();
    p.extend_from_slice(&[0u8; 48]);
    p.extend_from_slice(b"p2p secret marker");
    p.extend_from_slice(&[0, 0, 0, 0]);
    p
}

const INVITE: &[u8] =
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n\
Application-Name: File Transfer\r\nApplication-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n\
Invitation-Command: INVITE\r\nInvitation-Cookie: 4242\r\nApplication-File: invite-marker.txt\r\n\
Application-FileSize: 10\r\n\r\n";

const TYPING: &[u8] = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: carol@example.com\r\n\r\n\r\n";

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one conversation, told in order")]
async fn msnp7_msnp9_msnp11_room_records_only_text_while_everyone_consents() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().account(DAVE, "Dave")).await?;
    let mut webs = Vec::new();
    for h in [ALICE, BOB, CAROL] {
        let mut web = stack.web_for(h).await?;
        set_history(&mut web, true).await?;
        webs.push(web);
    }
    // dave never turns it on (off by default).
    let mut alice_ns = online(&stack, 7, ALICE).await?;
    let mut bob_ns = online(&stack, 9, BOB).await?;
    let mut carol_ns = online(&stack, 11, CAROL).await?;
    let mut dave_ns = online(&stack, 7, DAVE).await?;

    let (mut alice, mut bob) = alice_calls_bob(&mut alice_ns, &mut bob_ns).await?;
    let mut carol = sb::invite(&mut alice, &mut carol_ns, CAROL, "carol_sb")
        .await?
        .sb;
    alice.expect("JOI carol", |m| is_joi(m, CAROL)).await?;
    bob.expect("JOI carol", |m| is_joi(m, CAROL)).await?;

    // Everyone on: text from each dialect is recorded.
    send_acked(
        &mut alice,
        ALICE,
        &mut [&mut bob, &mut carol],
        &text_payload("m1 from seven"),
    )
    .await?;
    send_acked(
        &mut bob,
        BOB,
        &mut [&mut alice, &mut carol],
        &text_payload("m2 from nine"),
    )
    .await?;
    // Not text: a P2P message (MSNP9 MSG D), an invitation, a typing notice.
    let t = send_msg(&mut bob, "D", &p2p_payload(ALICE)).await?;
    expect_msg(&mut alice, BOB, &p2p_payload(ALICE)).await?;
    expect_msg(&mut carol, BOB, &p2p_payload(ALICE)).await?;
    bob.expect_line(&format!("ACK {t}")).await?;
    send_acked(&mut alice, ALICE, &mut [&mut bob, &mut carol], INVITE).await?;
    send_msg(&mut carol, "U", TYPING).await?;
    expect_msg(&mut alice, CAROL, TYPING).await?;
    expect_msg(&mut bob, CAROL, TYPING).await?;
    send_acked(
        &mut carol,
        CAROL,
        &mut [&mut alice, &mut bob],
        &text_payload("m3 from eleven"),
    )
    .await?;

    // dave (history off) joins: nothing is recorded while he is there.
    let mut dave = sb::invite(&mut alice, &mut dave_ns, DAVE, "dave_sb")
        .await?
        .sb;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect("JOI dave", |m| is_joi(m, DAVE)).await?;
    }
    send_acked(
        &mut carol,
        CAROL,
        &mut [&mut alice, &mut bob, &mut dave],
        &text_payload("while dave is here"),
    )
    .await?;
    // He leaves: recording resumes with the next message.
    dave.send_line("OUT").await?;
    dave.expect_closed().await?;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect("BYE dave", |m| is_bye(m, DAVE)).await?;
    }
    send_acked(
        &mut bob,
        BOB,
        &mut [&mut alice, &mut carol],
        &text_payload("after dave left"),
    )
    .await?;

    // bob turns it off on the website: the room stops recording at once; on again, it resumes.
    // (First the writer's turn for what came before: it checks the stored settings again.)
    until_recorded(&stack, BOB, "after dave left").await?;
    set_history(&mut webs[1], false).await?;
    send_acked(
        &mut alice,
        ALICE,
        &mut [&mut bob, &mut carol],
        &text_payload("bob is off"),
    )
    .await?;
    set_history(&mut webs[1], true).await?;
    send_acked(
        &mut alice,
        ALICE,
        &mut [&mut bob, &mut carol],
        &text_payload("bob is back on"),
    )
    .await?;

    let want = [
        "m1 from seven",
        "m2 from nine",
        "m3 from eleven",
        "after dave left",
        "bob is back on",
    ];
    for h in [ALICE, BOB, CAROL] {
        let all = until_recorded(&stack, h, "bob is back on").await?;
        ensure!(all == [want], "{h}'s copy: {all:?}");
    }
    ensure!(texts(&stack, DAVE).await?.is_empty(), "dave has history");
    // The conversation lists its participants (dave was never recorded as present).
    let list = stack
        .store
        .history_conversations(stack.id(CAROL).await?)
        .await?;
    ensure!(list[0].participants == [ALICE, BOB, CAROL], "{list:?}");
    drop((alice, bob, carol, alice_ns, bob_ns, carol_ns, dave_ns));
    stack.shutdown().await?;
    Ok(())
}

fn header<'a>(r: &'a relive_tests::http::Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario, told in order")]
async fn export_is_one_conversation_delete_is_one_copy_and_the_file_holds_no_text()
-> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut alice_web = stack.web_for(ALICE).await?;
    let mut bob_web = stack.web_for(BOB).await?;
    set_history(&mut alice_web, true).await?;
    set_history(&mut bob_web, true).await?;
    let mut alice_ns = online(&stack, 7, ALICE).await?;
    let mut bob_ns = online(&stack, 9, BOB).await?;

    // Room one, opened by alice.
    let (mut alice, mut bob) = alice_calls_bob(&mut alice_ns, &mut bob_ns).await?;
    say(&mut alice, ALICE, &mut bob, &["first room one"]).await?;
    say(
        &mut bob,
        BOB,
        &mut alice,
        &["first room two\r\nsecond line"],
    )
    .await?;
    // Room two, opened by bob.
    let mut bob2 = sb::open(&mut bob_ns, BOB, "bob_sb2").await?;
    let mut alice2 = sb::invite(&mut bob2, &mut alice_ns, ALICE, "alice_sb2")
        .await?
        .sb;
    bob2.expect("JOI alice", |m| is_joi(m, ALICE)).await?;
    send_acked(
        &mut alice2,
        ALICE,
        &mut [&mut bob2],
        &text_payload("second room only"),
    )
    .await?;
    for h in [ALICE, BOB] {
        let all = until_recorded(&stack, h, "second room only").await?;
        ensure!(all.len() == 2, "{h}: {all:?}");
    }

    let alice_id = stack.id(ALICE).await?;
    let mut list = stack.store.history_conversations(alice_id).await?;
    list.sort_by_key(|c| c.id);
    let first = list[0].id;

    // The list page names the participants and links both exports.
    let page = alice_web.page("/history").await?;
    ensure!(
        page.contains("alice@example.com, bob@example.com"),
        "{page}"
    );
    ensure!(page.contains(&format!("/history/{first}/export.txt")));

    // Plain text: a download holding exactly room one.
    let r = alice_web
        .get(&format!("/history/{first}/export.txt"))
        .await?;
    ensure!(r.status_line.contains(" 200 "), "{}", r.status_line);
    ensure!(
        header(&r, "content-disposition")
            == Some(&*format!(
                "attachment; filename=\"relive-history-{first}.txt\""
            )),
        "{:?}",
        r.headers
    );
    let body = String::from_utf8(r.body)?;
    ensure!(
        body.contains("Participants: alice@example.com, bob@example.com"),
        "{body}"
    );
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with('[')).collect();
    ensure!(lines.len() == 2, "{body}");
    ensure!(
        lines[0].ends_with("] Alice (alice@example.com): first room one"),
        "{body}"
    );
    ensure!(
        lines[1].ends_with("] Bob (bob@example.com): first room two"),
        "{body}"
    );
    ensure!(body.contains("\n  second line\n"), "{body}");
    ensure!(!body.contains("second room only"), "{body}");

    // JSON: the same conversation, nothing else.
    let r = alice_web
        .get(&format!("/history/{first}/export.json"))
        .await?;
    ensure!(header(&r, "content-type") == Some("application/json"));
    ensure!(
        header(&r, "content-disposition")
            .is_some_and(|v| v.contains(&format!("relive-history-{first}.json")))
    );
    let json: serde_json::Value = serde_json::from_slice(&r.body)?;
    ensure!(
        json["owner"] == ALICE && json["conversation"] == first,
        "{json}"
    );
    ensure!(
        json["participants"] == serde_json::json!([ALICE, BOB]),
        "{json}"
    );
    let messages = json["messages"].as_array().context("messages")?;
    let got: Vec<(&str, &str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default(),
                m["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    ensure!(
        got == [
            (ALICE, "Alice", "first room one"),
            (BOB, "Bob", "first room two\r\nsecond line")
        ],
        "{json}"
    );

    // Someone else's conversation id is not found for bob (ids are per copy).
    let r = bob_web.get(&format!("/history/{first}/export.txt")).await?;
    ensure!(r.status_line.contains(" 404 "), "{}", r.status_line);
    let r = bob_web
        .post(&format!("/history/{first}/delete"), &[])
        .await?;
    ensure!(r.status_line.contains(" 404 "), "{}", r.status_line);

    // Search is over one's own text, server side.
    let page = alice_web.page("/history/search?q=ROOM+TWO").await?;
    ensure!(
        page.contains("first room two") && !page.contains("second room only"),
        "{page}"
    );

    // alice deletes her copy of room one: bob keeps his.
    let r = alice_web
        .post(&format!("/history/{first}/delete"), &[])
        .await?;
    ensure!(location(&r) == Some("/history?m=deleted"), "{r:?}");
    ensure!(texts(&stack, ALICE).await? == [["second room only"]]);
    ensure!(texts(&stack, BOB).await?.len() == 2);
    // A form with a wrong CSRF token changes nothing.
    let r = bob_web
        .post_raw(
            "/history/delete-all",
            &[("csrf", "not-the-cookie-value-at-all"), ("confirm", "yes")],
        )
        .await?;
    ensure!(r.status_line.contains(" 403 "), "{}", r.status_line);
    ensure!(texts(&stack, BOB).await?.len() == 2);
    // bob deletes all of his: alice keeps hers.
    let r = bob_web
        .post("/history/delete-all", &[("confirm", "yes")])
        .await?;
    ensure!(location(&r) == Some("/history?m=deleted-all"), "{r:?}");
    ensure!(texts(&stack, BOB).await?.is_empty());
    ensure!(texts(&stack, ALICE).await? == [["second room only"]]);

    // Six copies written (room one: 2 messages × 2 members, room two: 1 × 2), none dropped.
    let metrics = crate::metrics::scrape(&stack).await?;
    ensure!(metrics.get("relive_history_recorded_total")? == 6.0);
    ensure!(metrics.get("relive_history_dropped_total")? == 0.0);

    // The real SQLite file (after a clean shutdown: WAL checkpointed) holds the handles as
    // metadata and none of the texts, deleted or kept.
    drop((alice, bob, alice2, bob2, alice_ns, bob_ns));
    let data = stack.shutdown().await?;
    if relive_tests::stack::skip_on_postgres("the at-rest check reads the SQLite file") {
        return Ok(());
    }
    let db = data.database();
    let mut bytes = std::fs::read(&db).with_context(|| format!("reading {}", db.display()))?;
    if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
        bytes.extend_from_slice(&wal);
    }
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    ensure!(
        has("alice@example.com bob@example.com"),
        "participants not found: wrong file?"
    );
    for plain in [
        "second room only",
        "first room one",
        "first room two",
        "second line",
    ] {
        ensure!(
            !has(plain),
            "{plain:?} is in the database file in the clear"
        );
    }
    Ok(())
}

/// The history pages in headless Chromium: turn it on, a conversation between two MSNP7
/// clients, the list, search, the export links, delete. Screenshots `history-*.png`.
#[tokio::test]
async fn history_pages_in_chromium() -> anyhow::Result<()> {
    in_chromium(StackOptions::cast(), walk).await
}

async fn walk(stack: &TestStack, c: &Client) -> anyhow::Result<()> {
    let site = format!("http://{}", stack.http);
    c.goto(&format!("{site}/signin")).await?;
    fill(c, "email", ALICE).await?;
    fill(c, "password", SEEDED_PASSWORD).await?;
    submit(c, "/signin").await?;
    c.find(Locator::Css("a[href=\"/history\"]"))
        .await
        .context("no History link in the navigation")?
        .click()
        .await?;
    ensure!(c.current_url().await?.path() == "/history");
    ensure!(text(c).await?.contains("History is off."));
    shot(c, "history-01-off").await?;
    submit(c, "/history/setting").await?;
    let page = text(c).await?;
    ensure!(page.contains("History is on."), "{page}");
    shot(c, "history-02-on").await?;

    // bob turns it on too (plain HTTP); they talk over MSNP7.
    let mut bob_web = stack.web_for(BOB).await?;
    set_history(&mut bob_web, true).await?;
    let mut alice_ns = online(stack, 7, ALICE).await?;
    let mut bob_ns = online(stack, 7, BOB).await?;
    let (mut alice, mut bob) = alice_calls_bob(&mut alice_ns, &mut bob_ns).await?;
    say(
        &mut alice,
        ALICE,
        &mut bob,
        &["Shall we play chess tonight?"],
    )
    .await?;
    say(&mut bob, BOB, &mut alice, &["Sure, at nine!"]).await?;
    until_recorded(stack, ALICE, "Sure, at nine!").await?;

    c.goto(&format!("{site}/history")).await?;
    let row = c
        .find(Locator::Css("#conversations tbody tr"))
        .await
        .context("no conversation listed")?
        .text()
        .await?;
    ensure!(
        row.contains("alice@example.com, bob@example.com") && row.contains('2'),
        "{row}"
    );
    shot(c, "history-03-list").await?;

    fill(c, "q", "chess").await?;
    c.find(Locator::Css(
        "form[action=\"/history/search\"] button[type=submit]",
    ))
    .await?
    .click()
    .await?;
    let hits = c
        .wait()
        .for_element(Locator::Css("#hits"))
        .await?
        .text()
        .await?;
    ensure!(
        hits.contains("Shall we play chess tonight?") && !hits.contains("at nine"),
        "{hits}"
    );
    shot(c, "history-04-search").await?;

    c.find(Locator::Css("#hits a")).await?.click().await?;
    let messages = c
        .wait()
        .for_element(Locator::Css("#messages"))
        .await?
        .text()
        .await?;
    ensure!(
        messages.contains("Alice: Shall we play chess tonight?")
            && messages.contains("Bob: Sure, at nine!"),
        "{messages}"
    );
    let path = c.current_url().await?.path().to_owned();
    for ext in ["txt", "json"] {
        let link = c
            .find(Locator::Css(&format!("a[href=\"{path}/export.{ext}\"]")))
            .await
            .with_context(|| format!("no {ext} export link"))?;
        ensure!(
            link.attr("download").await?.is_some(),
            "{ext} link is not a download"
        );
    }
    shot(c, "history-05-conversation").await?;
    submit(c, &format!("{path}/delete")).await?;
    let page = text(c).await?;
    ensure!(
        page.contains("Your copy of that conversation was deleted.")
            && page.contains("None recorded."),
        "{page}"
    );
    shot(c, "history-06-deleted").await?;
    // bob's copy is still there.
    ensure!(texts(stack, BOB).await?.len() == 1);
    Ok(())
}
