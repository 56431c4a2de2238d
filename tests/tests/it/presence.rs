//! Presence between real sessions: NLN/FLN fan-out under the visibility rule (PROTOCOL.md
//! §2.8), HDN, BL and BLP changes while online, name changes, duplicate login.

use anyhow::{bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_server::store::ListKind;
use relive_tests::stack::change_status;
use relive_tests::{MsnpClient, StackOptions, TestStack, sb};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// `a` and `b` have each other on FL (and so on RL), stored before anyone logs in.
async fn friends(stack: &TestStack, a: &str, b: &str) -> anyhow::Result<()> {
    stack.befriend(a, b).await
}

fn is_fln(m: &ServerMessage, who: &str) -> bool {
    matches!(m, ServerMessage::Fln { handle } if handle.as_str() == who)
}

fn is_nln(m: &ServerMessage, status: &str, who: &str, name: &str) -> bool {
    matches!(m, ServerMessage::Nln { status: s, handle, name: n, .. }
        if s.as_str() == status && handle.as_str() == who && n.as_str() == name)
}

/// Alice then bob come online (MSNP7) as friends; alice has taken bob's NLN.
async fn alice_and_bob(stack: &TestStack) -> anyhow::Result<(MsnpClient, MsnpClient)> {
    friends(stack, ALICE, BOB).await?;
    let (mut alice, _) = stack.online(7, ALICE, "NLN").await?;
    let (bob, ilns) = stack.online(7, BOB, "NLN").await?;
    ensure!(
        matches!(ilns.as_slice(), [ServerMessage::Iln { handle, .. }] if handle.as_str() == ALICE),
        "bob's ILN burst: {ilns:?}"
    );
    alice.expect_line(&format!("NLN NLN {BOB} Bob")).await?;
    Ok((alice, bob))
}

#[tokio::test]
async fn hidden_looks_offline_and_cannot_chat() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut alice, mut bob) = alice_and_bob(&stack).await?;
    change_status(&mut bob, "HDN").await?;
    alice.expect_line(&format!("FLN {BOB}")).await?;
    // Hidden: no switchboard.
    bob.send_line("XFR 50 SB").await?;
    bob.expect_line("913 50").await?;
    // Nobody can call a hidden user.
    let mut alice_sb = sb::open(&mut alice, ALICE, "alice_sb").await?;
    alice_sb.send_line(&format!("CAL 2 {BOB}")).await?;
    alice_sb.expect_line("217 2").await?;
    // Every other status is visible again, with the name.
    for status in ["BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "NLN"] {
        change_status(&mut bob, status).await?;
        alice
            .expect_line(&format!("NLN {status} {BOB} Bob"))
            .await?;
    }
    // FLN is not a status one can set.
    bob.send_line("CHG 60 FLN").await?;
    bob.expect_line("201 60").await?;
    // Signing out is FLN for the watchers.
    bob.send_line("OUT").await?;
    alice.expect_line(&format!("FLN {BOB}")).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn no_switchboard_before_the_first_chg() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut alice = stack.login(7, ALICE).await?;
    relive_tests::stack::sync_lists(&mut alice).await?;
    alice.send_line("XFR 30 SB").await?;
    alice.expect_line("913 30").await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn blocking_while_online_hides_presence_name_and_calls() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut alice, mut bob) = alice_and_bob(&stack).await?;
    alice.send_line(&format!("ADD 40 BL {BOB} Bob")).await?;
    alice
        .expect("ADD 40 BL", |m| {
            matches!(
                m,
                ServerMessage::Add {
                    list: ListKind::Bl,
                    ..
                }
            )
        })
        .await?;
    bob.expect_line(&format!("FLN {ALICE}")).await?;
    // While blocked, bob learns nothing: not alice's new name, not her status.
    alice
        .send_line(&format!("REA 41 {ALICE} Secret%20Name"))
        .await?;
    alice
        .expect("REA 41", |m| matches!(m, ServerMessage::Rea { .. }))
        .await?;
    change_status(&mut alice, "BSY").await?;
    // And cannot call her.
    let mut bob_sb = sb::open(&mut bob, BOB, "bob_sb").await?;
    bob_sb.send_line(&format!("CAL 2 {ALICE}")).await?;
    bob_sb.expect_line("217 2").await?;
    // Unblocking shows her again; this NLN, queued after everything above, must be the first
    // thing bob hears about alice since the FLN.
    alice.send_line(&format!("REM 42 BL {BOB}")).await?;
    alice
        .expect("REM 42 BL", |m| {
            matches!(
                m,
                ServerMessage::Rem {
                    list: ListKind::Bl,
                    ..
                }
            )
        })
        .await?;
    bob.expect_line(&format!("NLN BSY {ALICE} Secret%20Name"))
        .await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn blp_decides_for_everyone_on_neither_list() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    friends(&stack, CAROL, ALICE).await?;
    let (mut alice, mut bob) = alice_and_bob(&stack).await?;
    alice.send_line("BLP 40 BL").await?;
    alice
        .expect("BLP 40 BL", |m| matches!(m, ServerMessage::Blp { .. }))
        .await?;
    bob.expect_line(&format!("FLN {ALICE}")).await?;
    // Allow-listed: visible again under BLP BL.
    alice.send_line(&format!("ADD 41 AL {BOB} Bob")).await?;
    alice
        .expect("ADD 41 AL", |m| {
            matches!(
                m,
                ServerMessage::Add {
                    list: ListKind::Al,
                    ..
                }
            )
        })
        .await?;
    bob.expect_line(&format!("NLN NLN {ALICE} Alice")).await?;
    // carol watches alice but is on neither list: no ILN for alice when she comes online.
    let (mut carol, ilns) = stack.online(7, CAROL, "NLN").await?;
    ensure!(
        !ilns
            .iter()
            .any(|m| matches!(m, ServerMessage::Iln { handle, .. } if handle.as_str() == ALICE)),
        "carol saw alice: {ilns:?}"
    );
    // Back to BLP AL: carol now sees alice, bob (on AL) hears nothing new.
    alice.send_line("BLP 42 AL").await?;
    // carol's NLN (alice watches her) may come first.
    alice
        .wait_for("BLP 42 AL", |m| matches!(m, ServerMessage::Blp { .. }))
        .await?;
    carol.expect_line(&format!("NLN NLN {ALICE} Alice")).await?;
    bob.sync().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_name_change_reaches_watchers_in_every_dialect() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    friends(&stack, ALICE, BOB).await?;
    friends(&stack, ALICE, CAROL).await?;
    let (mut alice, _) = stack.online(7, ALICE, "AWY").await?;
    let (mut bob, _) = stack.online(2, BOB, "NLN").await?;
    let (mut carol, _) = stack.online(5, CAROL, "NLN").await?;
    alice
        .wait_for("NLN bob", |m| is_nln(m, "NLN", BOB, "Bob"))
        .await?;
    alice
        .wait_for("NLN carol", |m| is_nln(m, "NLN", CAROL, "Carol"))
        .await?;
    alice
        .send_line(&format!("REA 50 {ALICE} Alice%20in%20Wonderland"))
        .await?;
    match alice.recv().await? {
        ServerMessage::Rea {
            trid, handle, name, ..
        } if trid.0 == 50 => {
            ensure!(handle.as_str() == ALICE && name.as_str() == "Alice%20in%20Wonderland");
        }
        other => bail!("expected REA 50, got {other:?}"),
    }
    for c in [&mut bob, &mut carol] {
        c.expect_line(&format!("NLN AWY {ALICE} Alice%20in%20Wonderland"))
            .await?;
    }
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_second_login_sends_out_oth_to_the_first() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let (mut first, mut bob) = alice_and_bob(&stack).await?;
    let mut second = stack.login(7, ALICE).await?;
    first.expect_line("OUT OTH").await?;
    first.expect_closed().await?;
    relive_tests::stack::sync_lists(&mut second).await?;
    let ilns = change_status(&mut second, "NLN").await?;
    ensure!(ilns.len() == 1, "second session's ILN burst: {ilns:?}");
    // Transcript 12: bob ends up seeing alice online; an FLN in between is acceptable.
    let (_, skipped) = bob
        .wait_for("NLN alice", |m| is_nln(m, "NLN", ALICE, "Alice"))
        .await?;
    ensure!(
        skipped.iter().all(|m| is_fln(m, ALICE)),
        "bob saw more than an FLN: {skipped:?}"
    );
    second.sync().await?;
    stack.shutdown().await?;
    Ok(())
}
