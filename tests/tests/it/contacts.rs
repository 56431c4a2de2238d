//! List management over real sessions: RL notifications, groups (MSNP7), settings, list
//! versions bumped on every change and persisted across a restart on the same data directory.

use anyhow::{bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::ListKind;
use relive_tests::stack::sync_lists;
use relive_tests::{MsnpClient, StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// Sends `line` (with `{t}` replaced by a fresh trid) and returns the reply's trid and message.
async fn ask(c: &mut MsnpClient, line: &str) -> anyhow::Result<(u32, ServerMessage)> {
    let t = c.trid();
    c.send_line(&line.replace("{t}", &t.to_string())).await?;
    Ok((t.0, c.recv().await?))
}

/// Sends `line` and requires the error `code` for its trid.
async fn ask_error(c: &mut MsnpClient, line: &str, code: u16) -> anyhow::Result<()> {
    let (t, m) = ask(c, line).await?;
    match m {
        ServerMessage::Error { code: got, trid } if trid.0 == t && got.code() == code => Ok(()),
        other => bail!("{line}: expected {code} {t}, got {other:?}"),
    }
}

/// The list version carried by a list-change reply to trid `t`.
fn version_of(t: u32, m: &ServerMessage) -> anyhow::Result<u32> {
    Ok(match m {
        ServerMessage::Add { trid, version, .. }
        | ServerMessage::Rem { trid, version, .. }
        | ServerMessage::Rea { trid, version, .. }
        | ServerMessage::Adg { trid, version, .. }
        | ServerMessage::Rmg { trid, version, .. }
        | ServerMessage::Reg { trid, version, .. }
        | ServerMessage::Gtc { trid, version, .. }
        | ServerMessage::Blp { trid, version, .. }
        | ServerMessage::Prp { trid, version, .. }
            if trid.0 == t =>
        {
            *version
        }
        other => bail!("expected a list-change reply to {t}, got {other:?}"),
    })
}

/// Sends a list change and requires the version to go up by exactly one.
async fn change(
    c: &mut MsnpClient,
    line: &str,
    version: &mut u32,
) -> anyhow::Result<ServerMessage> {
    let (t, m) = ask(c, line).await?;
    let v = version_of(t, &m)?;
    ensure!(v == *version + 1, "{line}: version {v} after {version}");
    *version = v;
    Ok(m)
}

#[tokio::test]
async fn an_offline_user_finds_the_adder_on_rl_and_online_users_are_told() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    // MSNP2 (first-generation lists): alice adds bob while bob is offline.
    let mut alice = stack.login(2, ALICE).await?;
    let (mut version, _) = sync_lists(&mut alice).await?;
    change(&mut alice, "ADD {t} FL bob@example.com Bob", &mut version).await?;
    // bob logs in and finds alice on his RL.
    let mut bob = stack.login(2, BOB).await?;
    let (_, dump) = sync_lists(&mut bob).await?;
    let on_rl = dump.iter().any(|m| {
        matches!(m, ServerMessage::LstEntry { list: ListKind::Rl, contact: Some(c), .. }
            if c.handle.as_str() == ALICE && c.name.as_str() == "Alice")
    });
    ensure!(on_rl, "alice missing from bob's RL: {dump:?}");
    // Now online: alice removes bob, bob is told with REM 0 RL and his new version.
    let bob_version = stack.account(BOB).await?.list_version;
    change(&mut alice, "REM {t} FL bob@example.com", &mut version).await?;
    bob.expect_line(&format!("REM 0 RL {} {ALICE}", bob_version + 1))
        .await?;
    // And adds him back: ADD 0 RL with alice's friendly name.
    change(&mut alice, "ADD {t} FL bob@example.com Bob", &mut version).await?;
    bob.expect_line(&format!("ADD 0 RL {} {ALICE} Alice", bob_version + 2))
        .await?;
    // REM RL is read-only like ADD RL: the connection closes.
    bob.send_line(&format!("REM 9 RL {ALICE}")).await?;
    bob.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn groups_on_msnp7() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut alice = stack.login(7, ALICE).await?;
    let (mut v, _) = sync_lists(&mut alice).await?;
    match change(&mut alice, "ADG {t} Friends 0", &mut v).await? {
        ServerMessage::Adg { name, group, .. } => {
            ensure!(
                name.as_str() == "Friends" && group.id.0 == 1,
                "ADG {name:?} {group:?}"
            );
        }
        other => bail!("ADG reply {other:?}"),
    }
    match change(&mut alice, "ADD {t} FL bob@example.com Bob 1", &mut v).await? {
        ServerMessage::Add { group, .. } => ensure!(group.map(|g| g.id.0) == Some(1)),
        other => bail!("{other:?}"),
    }
    ask_error(&mut alice, "ADD {t} FL bob@example.com Bob 1", 215).await?;
    ask_error(&mut alice, "ADD {t} FL bob@example.com Bob 7", 224).await?;
    ask_error(&mut alice, "REM {t} FL bob@example.com 0", 225).await?;
    ask_error(&mut alice, "REM {t} FL bob@example.com 7", 224).await?;
    change(&mut alice, "REG {t} 1 Best%20Friends 0", &mut v).await?;
    ask_error(&mut alice, "RMG {t} 0", 230).await?;
    // Group names: 61 bytes of wire form are fine, 62 are not.
    let name61 = "n".repeat(61);
    match change(&mut alice, &format!("ADG {{t}} {name61} 0"), &mut v).await? {
        ServerMessage::Adg { group, .. } => {
            ensure!(group.id.0 == 2, "second group id {group:?}");
        }
        other => bail!("{other:?}"),
    }
    ask_error(&mut alice, &format!("ADG {{t}} {}x 0", name61), 229).await?;
    // 30 groups in all (group 0 included): 27 more fit, the next does not.
    for i in 0..27 {
        change(&mut alice, &format!("ADG {{t}} g{i} 0"), &mut v).await?;
    }
    ask_error(&mut alice, "ADG {t} one-too-many 0", 223).await?;
    // Removing the group keeps bob on FL; removing it twice is 224.
    change(&mut alice, "RMG {t} 1", &mut v).await?;
    ask_error(&mut alice, "RMG {t} 1", 224).await?;
    // The dump agrees: 29 groups, bob still on FL.
    let (dump_v, dump) = sync_lists(&mut alice).await?;
    ensure!(dump_v == v, "SYN says {dump_v}, replies said {v}");
    let groups = dump
        .iter()
        .filter(|m| matches!(m, ServerMessage::Lsg { .. }))
        .count();
    ensure!(groups == 29, "{groups} LSG lines");
    ensure!(dump.iter().any(|m| matches!(m,
        ServerMessage::LstEntry { list: ListKind::Fl, contact: Some(c), .. } if c.handle.as_str() == BOB)));
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn settings_and_renames_bump_the_version() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut alice = stack.login(5, ALICE).await?;
    let (mut v, _) = sync_lists(&mut alice).await?;
    change(&mut alice, "GTC {t} N", &mut v).await?;
    ask_error(&mut alice, "GTC {t} N", 218).await?;
    change(&mut alice, "BLP {t} BL", &mut v).await?;
    ask_error(&mut alice, "BLP {t} BL", 218).await?;
    match change(&mut alice, "PRP {t} PHH 555%201234", &mut v).await? {
        ServerMessage::Prp { value, .. } => {
            ensure!(value.as_ref().map(|t| t.as_str()) == Some("555%201234"));
        }
        other => bail!("{other:?}"),
    }
    change(&mut alice, "ADD {t} FL bob@example.com Bob", &mut v).await?;
    change(&mut alice, "REA {t} bob@example.com Bobby", &mut v).await?;
    change(&mut alice, "REA {t} alice@example.com Alice%20A.", &mut v).await?;
    // A handle nobody registered is listed like one that is never online (no 205).
    change(&mut alice, "ADD {t} AL nobody@example.com Nobody", &mut v).await?;
    ask_error(&mut alice, "REM {t} BL nobody@example.com", 216).await?;
    ask_error(&mut alice, "REM {t} AL bob@example.com", 216).await?;
    // Everything was stored.
    let account = stack.account(ALICE).await?;
    ensure!(account.list_version == v);
    ensure!(account.friendly_name.as_str() == "Alice%20A.");
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn list_versions_survive_a_restart_on_the_same_data_dir() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut alice = stack.login(5, ALICE).await?;
    let (mut v, _) = sync_lists(&mut alice).await?;
    change(&mut alice, "ADD {t} FL bob@example.com Bob", &mut v).await?;
    change(&mut alice, "ADD {t} BL carol@example.com Carol", &mut v).await?;
    let token = stack.token(ALICE).to_owned();
    drop(alice);
    let data = stack.shutdown().await?;

    let stack = TestStack::start(StackOptions::new().reuse(data)).await?;
    ensure!(stack.token(ALICE) == token);
    let mut alice = stack.login(5, ALICE).await?;
    // A client with the cached version gets only the SYN line.
    let t = alice.trid();
    alice.send_line(&format!("SYN {t} {v}")).await?;
    alice.expect_line(&format!("SYN {t} {v}")).await?;
    alice.sync().await?;
    // A client without a cache gets the lists as they were.
    let (again, dump) = sync_lists(&mut alice).await?;
    ensure!(again == v);
    let has = |list: ListKind, who: &str| {
        dump.iter().any(|m| matches!(m,
            ServerMessage::LstEntry { list: l, contact: Some(c), .. } if *l == list && c.handle.as_str() == who))
    };
    ensure!(
        has(ListKind::Fl, BOB) && has(ListKind::Bl, "carol@example.com"),
        "{dump:?}"
    );
    // bob's RL survived too.
    let mut bob = stack.login(5, BOB).await?;
    let (_, bob_dump) = sync_lists(&mut bob).await?;
    ensure!(bob_dump.iter().any(|m| matches!(m,
        ServerMessage::LstEntry { list: ListKind::Rl, contact: Some(c), .. } if c.handle.as_str() == ALICE)));
    stack.shutdown().await?;
    Ok(())
}
