//! The PostgreSQL store end to end: `migrate-store` copies a data directory filled through the
//! real server (accounts, tokens, lists, groups, settings, website sessions, API keys, invites)
//! into PostgreSQL, verified; the server then runs on PostgreSQL with the same `secret.key`, the
//! old access tokens log in (MD5 and Passport) and every list is as it was.

use anyhow::{Context as _, bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::ListKind;
use relive_server::store::copy::{self, CopyError, TableReport};
use relive_server::store::history::Record;
use relive_server::store::pages::NewPage;
use relive_server::store::{Passport, PhoneProp};
use relive_tests::stack::{DataDir, sync_lists};
use relive_tests::{MsnpClient, StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const DAVE: &str = "dave@example.com";
const PASSWORD: &str = "correct horse battery";

/// Sends `line` (with `{t}` replaced by a fresh trid) and requires a reply with that trid.
async fn change(c: &mut MsnpClient, line: &str) -> anyhow::Result<()> {
    let t = c.trid();
    c.send_line(&line.replace("{t}", &t.to_string())).await?;
    let reply = c.recv().await?;
    let text = format!("{reply:?}");
    ensure!(!text.starts_with("Error"), "{line}: refused with {reply:?}");
    Ok(())
}

/// Runs the blocking copy (or verification) on its own thread, as the CLI does.
async fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CopyError> + Send + 'static,
) -> anyhow::Result<Result<T, CopyError>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    Ok(rx.await?)
}

/// The SYN dump without its transaction ids (which differ between two sessions).
fn lists_of(dump: &[ServerMessage]) -> Vec<String> {
    dump.iter()
        .map(|m| {
            let text = format!("{m:?}");
            match text.split_once("trid: TrId(") {
                Some((head, tail)) => {
                    format!(
                        "{head}{}",
                        tail.split_once(')').map_or("", |(_, rest)| rest)
                    )
                }
                None => text,
            }
        })
        .collect()
}

fn rows(reports: &[TableReport], table: &str) -> u64 {
    reports
        .iter()
        .find(|r| r.name == table)
        .map_or(0, |r| r.rows)
}

#[tokio::test]
async fn migrate_store_moves_a_data_directory_to_postgres_and_old_tokens_still_log_in()
-> anyhow::Result<()> {
    let Some(url) = relive_tests::postgres::database() else {
        return Ok(());
    };
    // A server on relive.db, filled through its own doors.
    let stack = TestStack::start(StackOptions::cast().reuse(DataDir::sqlite()?)).await?;
    let mut alice = stack.login(7, ALICE).await?;
    for line in [
        "ADD {t} FL bob@example.com Bob",
        "ADD {t} AL bob@example.com Bob",
        "ADD {t} BL carol@example.com Carol",
        "ADG {t} Work 0",
        "ADD {t} FL bob@example.com Bob 1",
        "ADD {t} FL nobody@example.com Nobody",
        "GTC {t} N",
        "BLP {t} BL",
        "PRP {t} PHH 555%201234",
        "REA {t} alice@example.com Alice%20A.",
    ] {
        change(&mut alice, line).await?;
    }
    let mut bob = stack.login_twn(9, BOB).await?;
    change(&mut bob, "ADD {t} FL alice@example.com Alice").await?;
    // bob's ADD put him on alice's RL: she is told, and her version moved too.
    let note = alice.recv().await?;
    ensure!(
        matches!(
            note,
            ServerMessage::Add {
                list: ListKind::Rl,
                ..
            }
        ),
        "{note:?}"
    );
    let (alice_version, alice_lists) = sync_lists(&mut alice).await?;
    let (bob_version, bob_lists) = sync_lists(&mut bob).await?;
    // The website: dave registers and signs in (a session row); an API key and an invite.
    let web = crate::website::member(&stack, DAVE).await?;
    // Issue 18's tables: a mail to dave (two copies), a page waiting for dave (who allows
    // pages; he is in nobody's lists and never signs in to Messenger here, so the lists and
    // logins compared below are untouched), and one history message (a copy each for alice
    // and bob, who turned history on).
    let dave_id = stack.id(DAVE).await?;
    let dave = Passport::parse(DAVE)?;
    stack
        .store
        .set_phone(dave_id, PhoneProp::Mob, Some("Y"))
        .await?;
    let alice_account = stack
        .store
        .account(&Passport::parse(ALICE)?)
        .await?
        .context("alice")?;
    let bob_handle = Passport::parse(BOB)?;
    stack
        .store
        .send_mail(&alice_account, &dave, "hello", "a mail to copy")
        .await?;
    stack
        .store
        .send_page(
            alice_account.id,
            &alice_account.email,
            &dave,
            NewPage {
                text: "a page to copy".to_owned(),
                callback: None,
            },
        )
        .await?
        .map_err(|refused| anyhow::anyhow!("page refused: {refused:?}"))?;
    let bob_id = stack.id(BOB).await?;
    for owner in [alice_account.id, bob_id] {
        stack.store.set_history_enabled(owner, true).await?;
    }
    stack
        .store
        .append_history(vec![Record {
            room_key: 7,
            at: 1,
            sender: alice_account.email.clone(),
            sender_name: "Alice".to_owned(),
            text: "a history line to copy".to_owned(),
            members: vec![alice_account.email.clone(), bob_handle.clone()],
        }])
        .await?;
    let alice_id = stack.id(ALICE).await?;
    stack.store.create_api_key(alice_id, "ops").await?;
    stack.store.create_invite(alice_id).await?;
    drop((alice, bob));
    let mut data = stack.shutdown().await?;

    // Copy and verify.
    let db = data.path().join("relive.db");
    let reports = on_thread({
        let (db, url) = (db.clone(), url.clone());
        move || copy::copy_to_postgres(&db, &url)
    })
    .await??;
    for (table, at_least) in [
        ("accounts", 5), // alice, bob, carol, dave, and the placeholder nobody@
        ("tokens", 3),
        ("groups", 6),
        ("contacts", 5),
        ("contact_groups", 2),
        ("account_phones", 1),
        ("web_sessions", 1),
        ("api_keys", 1),
        ("invite_codes", 1),
        ("mail_messages", 2),
        ("pages", 1),
        ("history_settings", 2),
        ("history_conversations", 2),
        ("history_messages", 2),
    ] {
        ensure!(
            rows(&reports, table) >= at_least,
            "{table}: {} rows copied, expected at least {at_least}: {reports:?}",
            rows(&reports, table)
        );
    }
    // A second copy into the now filled database is refused, and changes nothing.
    let again = on_thread({
        let (db, url) = (db.clone(), url.clone());
        move || copy::copy_to_postgres(&db, &url)
    })
    .await?;
    ensure!(
        matches!(again, Err(CopyError::NotEmpty { .. })),
        "{again:?}"
    );
    // Verification notices a changed row (then the row is put back).
    let cluster = relive_tests::postgres::cluster().map_err(anyhow::Error::msg)?;
    let name = url
        .split('?')
        .next()
        .and_then(|s| s.rsplit('/').next())
        .context("database name")?
        .to_owned();
    let tamper = |sql: &str| cluster.psql(&name, sql).map_err(anyhow::Error::msg);
    tamper("UPDATE account_phones SET value = 'x' WHERE prop = 'PHH'")?;
    let found = on_thread({
        let (db, url) = (db.clone(), url.clone());
        move || copy::verify(&db, &url)
    })
    .await?;
    match found {
        Err(CopyError::Mismatch { table, .. }) if table == "account_phones" => {}
        other => bail!("a changed phone went unnoticed: {other:?}"),
    }
    tamper("UPDATE account_phones SET value = '555%201234' WHERE prop = 'PHH'")?;
    let verified = on_thread({
        let (db, url) = (db.clone(), url.clone());
        move || copy::verify(&db, &url)
    })
    .await??;
    ensure!(verified == reports);

    // The server on PostgreSQL, same data directory (same secret.key), same tokens.
    data.use_postgres(&url);
    let stack = TestStack::start(StackOptions::new().reuse(data)).await?;
    let mut alice = stack.login(7, ALICE).await?;
    let (v, lists) = sync_lists(&mut alice).await?;
    ensure!(
        v == alice_version,
        "alice's list version {v} != {alice_version}"
    );
    ensure!(
        lists_of(&lists) == lists_of(&alice_lists),
        "alice's lists changed:\n{lists:?}\n{alice_lists:?}"
    );
    let mut bob = stack.login_twn(9, BOB).await?;
    let (v, lists) = sync_lists(&mut bob).await?;
    ensure!(
        v == bob_version && lists_of(&lists) == lists_of(&bob_lists),
        "bob's lists changed"
    );
    // dave's website session survived the move.
    let mut web = web.at(stack.http);
    let page = web.page("/").await?;
    ensure!(page.contains(DAVE), "dave is no longer signed in");
    // dave's unread mail and waiting page, and alice's history setting, moved too.
    let counts = stack.store.mail_counts(dave_id).await?;
    ensure!(counts.inbox_unread == 1, "{counts:?}");
    let pages = stack.store.pending_pages(dave_id).await?;
    ensure!(pages.len() == 1 && pages[0].from_addr == ALICE, "{pages:?}");
    ensure!(stack.store.history_enabled(alice_account.id).await?);
    // New rows continue after the copied ids.
    let eve = stack
        .store
        .create_account(
            &relive_server::store::parse_handle("eve@example.com")?,
            "Eve",
            relive_server::secret::Secret::new(PASSWORD.to_owned()),
        )
        .await?;
    ensure!(eve.id > stack.id(DAVE).await?, "{eve:?}");
    stack.store.new_token(eve.id, "new").await?;
    drop((alice, bob));
    stack.shutdown().await?;
    Ok(())
}
