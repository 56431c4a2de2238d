//! Logging in with MD5 and tokens in every dialect MSNP2–7; failures look alike and close.

use anyhow::{bail, ensure};
use relive_msnp::auth::md5_response;
use relive_msnp::server::ServerMessage;
use relive_msnp::version::ProtocolVersion;
use relive_tests::stack::{login_md5, md5_challenge};
use relive_tests::{MsnpClient, StackOptions, TestStack};

const ALICE: &str = "alice@example.com";

fn dialect(n: u8) -> anyhow::Result<ProtocolVersion> {
    ProtocolVersion::new(n).ok_or_else(|| anyhow::anyhow!("no MSNP{n}"))
}

/// VER and INF for `version`, then the MD5 challenge for `handle`.
async fn up_to_challenge(c: &mut MsnpClient, version: u8, handle: &str) -> anyhow::Result<String> {
    c.send_line(&format!("VER 1 MSNP{version} CVR0")).await?;
    c.set_version(dialect(version)?);
    c.expect("VER", |m| matches!(m, ServerMessage::Ver { .. }))
        .await?;
    c.send_line("INF 2").await?;
    c.expect("INF 2 MD5", |m| matches!(m, ServerMessage::Inf { .. }))
        .await?;
    c.trid();
    c.trid();
    md5_challenge(c, handle).await
}

/// `USR trid MD5 S <answer>` must fail with exactly `911 trid` and a close.
async fn expect_911_and_close(c: &mut MsnpClient, answer: &str) -> anyhow::Result<()> {
    let t = c.trid();
    c.send_line(&format!("USR {t} MD5 S {answer}")).await?;
    c.expect_line(&format!("911 {t}")).await?;
    c.expect_closed().await
}

#[tokio::test]
async fn every_md5_dialect_logs_in_with_a_token() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    for version in 2..=7u8 {
        let mut c = stack.connect_ns(&format!("alice_msnp{version}")).await?;
        let t = c.trid();
        c.send_line(&format!("VER {t} MSNP{version} CVR0")).await?;
        c.set_version(dialect(version)?);
        c.expect("VER", |m| matches!(m, ServerMessage::Ver { .. }))
            .await?;
        let t = c.trid();
        c.send_line(&format!("INF {t}")).await?;
        c.expect_line(&format!("INF {t} MD5")).await?;
        let salt = md5_challenge(&mut c, ALICE).await?;
        let t = c.trid();
        c.send_line(&format!(
            "USR {t} MD5 S {}",
            md5_response(&salt, stack.token(ALICE))
        ))
        .await?;
        // PROTOCOL.md §2.3.2: the verified flag appears from MSNP6.
        let want = if version >= 6 {
            format!("USR {t} OK {ALICE} Alice 1")
        } else {
            format!("USR {t} OK {ALICE} Alice")
        };
        c.expect_line(&want).await?;
        match c.recv().await? {
            ServerMessage::Msg {
                from,
                name,
                payload,
            } => {
                ensure!(from.as_str() == "Hotmail" && name.as_str() == "Hotmail");
                let text = String::from_utf8_lossy(&payload);
                ensure!(
                    text.contains("Content-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"),
                    "MSNP{version} profile: {text:?}"
                );
                ensure!(text.contains("LoginTime: "), "MSNP{version}: {text:?}");
                // MSNP3 added the Passport fields; MSNP2 sent LoginTime only.
                ensure!(
                    text.contains("MSPAuth: ") == (version >= 3),
                    "MSNP{version} profile fields: {text:?}"
                );
                ensure!(
                    text.ends_with("\r\n\r\n"),
                    "MSNP{version}: headers end with a blank line"
                );
            }
            other => bail!("MSNP{version}: expected the profile MSG, got {other:?}"),
        }
        // The session works: PNG → QNG.
        c.sync().await?;
    }
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn each_attempt_gets_a_fresh_challenge_and_old_answers_fail() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    let mut first = stack.connect_ns("first").await?;
    let salt1 = up_to_challenge(&mut first, 7, ALICE).await?;
    let mut second = stack.connect_ns("second").await?;
    let salt2 = up_to_challenge(&mut second, 7, ALICE).await?;
    ensure!(salt1 != salt2, "the same challenge twice: {salt1}");
    // A captured answer to the first challenge is useless for the second.
    expect_911_and_close(&mut second, &md5_response(&salt1, stack.token(ALICE))).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_fails_with_911_and_close() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    let id = stack.id(ALICE).await?;
    let tokens = stack.store.tokens(id).await?;
    let token = tokens
        .first()
        .map(|t| t.id)
        .ok_or_else(|| anyhow::anyhow!("no token"))?;
    stack.store.revoke_token(id, token).await?;
    let mut c = stack.connect_ns("alice").await?;
    let salt = up_to_challenge(&mut c, 7, ALICE).await?;
    expect_911_and_close(&mut c, &md5_response(&salt, stack.token(ALICE))).await?;
    // A new token works at once.
    let fresh = stack.store.new_token(id, "new device").await?;
    let mut c = stack.connect_ns("alice_again").await?;
    login_md5(&mut c, 7, ALICE, fresh.token.expose()).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_unknown_account_fails_exactly_like_a_wrong_secret() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    // Known account, wrong secret.
    let mut known = stack.connect_ns("known").await?;
    let salt_known = up_to_challenge(&mut known, 7, ALICE).await?;
    let wrong = md5_response(&salt_known, "not-the-token");
    // Unknown account: USR I still answers with a challenge (no enumeration at USR I).
    let mut unknown = stack.connect_ns("unknown").await?;
    let salt_unknown = up_to_challenge(&mut unknown, 7, "nobody@example.com").await?;
    ensure!(
        salt_known.len() == salt_unknown.len()
            && salt_known
                .bytes()
                .map(|b| b.is_ascii_digit())
                .eq(salt_unknown.bytes().map(|b| b.is_ascii_digit())),
        "challenges look different: {salt_known:?} vs {salt_unknown:?}"
    );
    expect_911_and_close(&mut known, &wrong).await?;
    expect_911_and_close(&mut unknown, &md5_response(&salt_unknown, "anything")).await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn ctp_logs_in_on_msnp2_only() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    let mut c = stack.connect_ns("alice_ctp").await?;
    c.send_line("VER 1 MSNP2").await?;
    c.expect_line("VER 1 MSNP2").await?;
    c.send_line(&format!("USR 2 CTP I {ALICE}")).await?;
    c.expect_line("USR 2 CTP S").await?;
    c.send_line(&format!("USR 3 CTP S {}", stack.token(ALICE)))
        .await?;
    c.expect_line(&format!("USR 3 OK {ALICE} Alice")).await?;
    c.expect("the profile MSG", |m| {
        matches!(m, ServerMessage::Msg { .. })
    })
    .await?;
    c.sync().await?;

    // A wrong clear-text secret fails like MD5.
    let mut bad = stack.connect_ns("alice_ctp_bad").await?;
    bad.send_line("VER 1 MSNP2").await?;
    bad.expect_line("VER 1 MSNP2").await?;
    bad.send_line(&format!("USR 2 CTP I {ALICE}")).await?;
    bad.expect_line("USR 2 CTP S").await?;
    bad.send_line("USR 3 CTP S wrong-secret").await?;
    bad.expect_line("911 3").await?;
    bad.expect_closed().await?;

    // CTP was removed in MSNP3: it never logs in there.
    let mut p3 = stack.connect_ns("alice_ctp_msnp3").await?;
    p3.send_line("VER 1 MSNP3").await?;
    p3.expect_line("VER 1 MSNP3").await?;
    p3.send_line(&format!("USR 2 CTP I {ALICE}")).await?;
    match p3.recv().await {
        Err(e) if e.to_string().contains("closed by the server") => {}
        // Any error code is a refusal too.
        Ok(ServerMessage::Error { .. }) => {}
        Ok(other) => bail!("CTP under MSNP3 answered {other:?}"),
        Err(e) => return Err(e),
    }
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn cvr_is_echoed_at_any_time_in_old_dialects() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    // Before USR (MSNP4 with codebase) and after login (MSNP7).
    let mut c = stack.connect_ns("before").await?;
    c.send_line("VER 1 MSNP4").await?;
    c.expect_line("VER 1 MSNP4").await?;
    c.send_line("CVR 2 0x0409 win 4.10 i386 MSMSGS 2.2.1053 MSMSGS")
        .await?;
    match c.recv().await? {
        ServerMessage::Cvr {
            trid,
            latest,
            recommended,
            minimum,
            ..
        } => {
            ensure!(trid.0 == 2);
            for v in [latest, recommended, minimum] {
                ensure!(
                    v.as_str() == "2.2.1053",
                    "CVR slot {v:?} is not the client's version"
                );
            }
        }
        other => bail!("expected CVR, got {other:?}"),
    }
    let mut after = stack.login(7, ALICE).await?;
    let t = after.trid();
    after
        .send_line(&format!(
            "CVR {t} 0x0409 win 4.10 i386 MSMSGS 4.6.0083 MSMSGS"
        ))
        .await?;
    after
        .expect(
            "CVR echo",
            |m| matches!(m, ServerMessage::Cvr { minimum, .. } if minimum.as_str() == "4.6.0083"),
        )
        .await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_server_shutdown_says_out_ssd() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    let (mut alice, _) = stack.online(7, ALICE, "NLN").await?;
    stack.shutdown().await?;
    alice.expect_line("OUT SSD").await?;
    alice.expect_closed().await
}

#[tokio::test]
async fn the_other_ns_commands_answer() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    // MSNP4: SND exists (P2–P4), IMS and the URL site id exist (P3+).
    let (mut c, _) = stack.online(4, ALICE, "NLN").await?;
    c.send_line("URL 20 INBOX").await?;
    c.expect(
        "URL 20 <url> <login-url> <site>",
        |m| matches!(m, ServerMessage::Url { trid, .. } if trid.0 == 20),
    )
    .await?;
    c.send_line("IMS 21 OFF").await?;
    c.expect_line("IMS 21 0 OFF").await?;
    c.send_line("IMS 22 ON").await?;
    c.expect_line("IMS 22 0 ON").await?;
    c.send_line("SND 23 friend@example.com 0x0409 MSMSGS MSMSGS")
        .await?;
    c.expect_line("SND 23 OK").await?;
    // Client LST (P2–P8) answers with the same lines as SYN: an empty FL.
    c.send_line("LST 24 FL").await?;
    c.expect("LST 24 FL <v> 0 0", |m| {
        matches!(m, ServerMessage::LstEntry { trid, index: 0, total: 0, contact: None, .. } if trid.0 == 24)
    })
    .await?;
    // FND: results, none, or 502 (disabled) are all documented answers.
    c.send_line("FND 25 fname=Alice lname=* city=* state=* country=*")
        .await?;
    match c.recv().await? {
        ServerMessage::Fnd { trid, .. } | ServerMessage::Error { trid, .. } if trid.0 == 25 => {}
        other => bail!("FND 25 answered {other:?}"),
    }
    c.sync().await?;
    stack.shutdown().await?;
    Ok(())
}
