//! The local Hotmail (issue 18) over real sockets, for each client generation with mail
//! notifications (MSNP7 with MD5, MSNP9 with Passport 1.4, MSNP11): the initial counts after
//! login, a mail arriving while online, reading it (active mail), and the client's "go to my
//! inbox" form — `URL INBOX`, then the form libpurple builds (`mode`, `login`, `username`,
//! `sid`, `kv`, `id`, `sl`, `rru`, `auth`, `creds = md5(auth ‖ sl ‖ password)`, `svc`, `js`)
//! posted to the login URL — with its forged and replayed variants refused.

use anyhow::{Context as _, ensure};
use relive_msnp::auth::md5_response;
use relive_server::store::mail::SendOutcome;
use relive_server::store::parse_handle;
use relive_tests::client::MsnpClient;
use relive_tests::web::WebClient;
use relive_tests::{StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// `MSG Hotmail Hotmail <len>` + `payload`, exactly.
fn hotmail(payload: &str) -> Vec<u8> {
    format!("MSG Hotmail Hotmail {}\r\n{payload}", payload.len()).into_bytes()
}

/// The form the client posts for `URL INBOX` (libpurple `url_cmd`): `sl` seconds after the
/// profile's `LoginTime`, `secret` what the user typed as password.
fn inbox_form(
    c: &MsnpClient,
    handle: &str,
    sl: u64,
    secret: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let auth = c.profile_field("MSPAuth").context("MSPAuth")?;
    let creds = md5_response(&format!("{auth}{sl}"), secret);
    Ok([
        ("mode", "ttl".to_owned()),
        ("login", handle.to_owned()),
        ("username", handle.to_owned()),
        ("sid", c.profile_field("sid").context("sid")?),
        ("kv", c.profile_field("kv").context("kv")?),
        ("id", "2".to_owned()),
        ("sl", sl.to_string()),
        ("rru", "/mail".to_owned()),
        ("auth", auth),
        ("creds", creds),
        ("svc", "mail".to_owned()),
        ("js", "yes".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

async fn post_form(
    web: &mut WebClient,
    form: &[(String, String)],
) -> anyhow::Result<relive_tests::http::Response> {
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    web.post_raw("/", &fields).await
}

/// `URL INBOX`, then the sign-in form posted to its login URL: returns the signed-in visitor.
async fn inbox_signin(
    stack: &TestStack,
    c: &mut MsnpClient,
    handle: &str,
    sl: u64,
) -> anyhow::Result<WebClient> {
    let site = format!("http://127.0.0.1:{}", stack.http.port());
    let t = c.trid();
    c.send_line(&format!("URL {t} INBOX")).await?;
    c.expect_line(&format!("URL {t} {site}/mail {site}/ 2"))
        .await?;
    let mut web = WebClient::new(stack.http);
    let r = post_form(&mut web, &inbox_form(c, handle, sl, stack.token(handle))?).await?;
    ensure!(r.status_line.contains(" 200 "), "inbox sign-in: {r:?}");
    ensure!(
        r.header("Refresh") == Some("0;url=/mail"),
        "{:?}",
        r.headers
    );
    ensure!(web.cookie("relive_session").is_some(), "no session cookie");
    let inbox = web.page("/mail").await?;
    ensure!(inbox.contains("<h1>Inbox</h1>"), "{inbox}");
    Ok(web)
}

async fn mail_round(version: u8) -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let site = format!("http://127.0.0.1:{}", stack.http.port());
    let (alice, bob) = (stack.account(ALICE).await?, parse_handle(BOB)?);
    // Two mails for Bob while he is away; one of them deleted unread.
    for subject in ["First", "Second"] {
        let sent = stack
            .store
            .send_mail(&alice, &bob, subject, "Hello")
            .await?;
        ensure!(matches!(sent, SendOutcome::Sent { .. }), "{sent:?}");
    }
    let bob_id = stack.id(BOB).await?;
    let first = stack
        .store
        .mailbox(bob_id, relive_server::store::mail::Folder::Inbox)
        .await?;
    stack.store.delete_mail(bob_id, first[1].id).await?;

    // The initial notification, right after the profile.
    let mut b = stack.login_as(version, BOB).await?;
    let raw = b.recv_raw().await?;
    let want = hotmail(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialemailnotification; charset=UTF-8\r\n\r\n\
         Inbox-Unread: 1\r\nFolders-Unread: 1\r\nInbox-URL: /mail\r\nFolders-URL: /mail/folders\r\n\
         Post-URL: {site}/\r\n\r\n"
    ));
    ensure!(
        raw.bytes == want,
        "{:?}",
        String::from_utf8_lossy(&raw.bytes)
    );

    // Alice (MSNP7) signs in to her mailbox from Messenger and writes to Bob, who is online.
    let mut a = stack.login(7, ALICE).await?;
    let mut alice_web = inbox_signin(&stack, &mut a, ALICE, 3).await?;
    let r = alice_web
        .post(
            "/mail/compose",
            &[("to", BOB), ("subject", "Grüße"), ("body", "See you at 8")],
        )
        .await?;
    ensure!(
        relive_tests::web::location(&r) == Some("/mail?folder=sent&m=sent"),
        "{r:?}"
    );
    let newest = stack
        .store
        .mailbox(bob_id, relive_server::store::mail::Folder::Inbox)
        .await?;
    let id = newest.first().context("no mail arrived")?.id;
    let raw = b.recv_raw().await?;
    let want = hotmail(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n\
         From: Alice\r\nMessage-URL: /mail/{id}\r\nPost-URL: {site}/\r\n\
         Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDest-Folder: ACTIVE\r\nFrom-Addr: {ALICE}\r\nid: 2\r\n\r\n"
    ));
    ensure!(
        raw.bytes == want,
        "{:?}",
        String::from_utf8_lossy(&raw.bytes)
    );

    // Bob follows the toast: his own sign-in, then the message; his count goes down.
    let mut bob_web = inbox_signin(&stack, &mut b, BOB, 7).await?;
    let page = bob_web.page(&format!("/mail/{id}")).await?;
    ensure!(page.contains("See you at 8"), "{page}");
    let raw = b.recv_raw().await?;
    let want = hotmail(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsactivemailnotification; charset=UTF-8\r\n\r\n\
         Src-Folder: ACTIVE\r\nDest-Folder: .!!READ\r\nMessage-Delta: 1\r\n\r\n",
    );
    ensure!(
        raw.bytes == want,
        "{:?}",
        String::from_utf8_lossy(&raw.bytes)
    );
    // Deleting the read mail changes no count: nothing is sent.
    let r = bob_web
        .post("/mail/delete", &[("id", &id.to_string())])
        .await?;
    ensure!(
        relive_tests::web::location(&r) == Some("/mail?m=deleted"),
        "{r:?}"
    );
    // Deleting the other, unread one does.
    let unread = newest.get(1).context("second inbox mail")?.id;
    bob_web
        .post("/mail/delete", &[("id", &unread.to_string())])
        .await?;
    let raw = b.recv_raw().await?;
    let want = hotmail(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsactivemailnotification; charset=UTF-8\r\n\r\n\
         Src-Folder: ACTIVE\r\nDest-Folder: .!!trAsH\r\nMessage-Delta: 1\r\n\r\n",
    );
    ensure!(
        raw.bytes == want,
        "{:?}",
        String::from_utf8_lossy(&raw.bytes)
    );
    b.sync().await?;
    let deleted = bob_web.page("/mail?folder=deleted").await?;
    ensure!(
        deleted.contains("Grüße") || deleted.contains("Gr&#252;&#223;e"),
        "{deleted}"
    );
    Ok(())
}

#[tokio::test]
async fn msnp7_mail_counts_new_mail_and_reading() -> anyhow::Result<()> {
    mail_round(7).await
}

#[tokio::test]
async fn msnp9_mail_counts_new_mail_and_reading() -> anyhow::Result<()> {
    mail_round(9).await
}

#[tokio::test]
async fn msnp11_mail_counts_new_mail_and_reading() -> anyhow::Result<()> {
    mail_round(11).await
}

/// No unread mail: no initial notification (the next thing is the `PNG` answer).
#[tokio::test]
async fn no_mail_notification_without_unread_mail() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut c = stack.login(7, BOB).await?;
    c.sync().await
}

async fn refused(web: &mut WebClient, form: &[(String, String)]) -> anyhow::Result<()> {
    let r = post_form(web, form).await?;
    ensure!(r.status_line.contains(" 403 "), "expected a refusal: {r:?}");
    ensure!(
        web.cookie("relive_session").is_none(),
        "a refused sign-in set a session"
    );
    Ok(())
}

fn with(form: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    form.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == key {
                    value.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

async fn forged_and_replayed(version: u8) -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut a = stack.login_as(version, ALICE).await?;
    let mut b = stack.login_as(version, BOB).await?;
    let token = stack.token(ALICE);
    // Forged: the wrong password in the hash, or another user's name with Alice's auth.
    let mut web = WebClient::new(stack.http);
    refused(&mut web, &inbox_form(&a, ALICE, 10, "not-the-token")?).await?;
    refused(
        &mut web,
        &with(&inbox_form(&a, ALICE, 10, token)?, "username", BOB),
    )
    .await?;
    // Bob's own auth with Alice's name.
    refused(
        &mut web,
        &with(
            &inbox_form(&b, BOB, 10, stack.token(BOB))?,
            "username",
            ALICE,
        ),
    )
    .await?;
    // The real form works once.
    let good = inbox_form(&a, ALICE, 10, token)?;
    let r = post_form(&mut web, &good).await?;
    ensure!(r.status_line.contains(" 200 "), "{r:?}");
    // Replayed (a new browser posting the captured form), or an older one: refused.
    refused(&mut WebClient::new(stack.http), &good).await?;
    refused(
        &mut WebClient::new(stack.http),
        &inbox_form(&a, ALICE, 9, token)?,
    )
    .await?;
    // A later click works.
    let r = post_form(
        &mut WebClient::new(stack.http),
        &inbox_form(&a, ALICE, 11, token)?,
    )
    .await?;
    ensure!(r.status_line.contains(" 200 "), "{r:?}");
    // After sign-out the grant is gone.
    a.send_line("OUT").await?;
    a.expect_line("OUT").await?;
    a.expect_closed().await?;
    let mut after = WebClient::new(stack.http);
    let late = inbox_form(&a, ALICE, 50, token)?;
    for _ in 0..50 {
        let r = post_form(&mut after, &late).await?;
        if r.status_line.contains(" 403 ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    refused(
        &mut WebClient::new(stack.http),
        &inbox_form(&a, ALICE, 51, token)?,
    )
    .await?;
    b.sync().await?;
    Ok(())
}

#[tokio::test]
async fn msnp7_inbox_signin_forged_and_replayed_are_refused() -> anyhow::Result<()> {
    forged_and_replayed(7).await
}

#[tokio::test]
async fn msnp9_inbox_signin_forged_and_replayed_are_refused() -> anyhow::Result<()> {
    forged_and_replayed(9).await
}

#[tokio::test]
async fn msnp11_inbox_signin_forged_and_replayed_are_refused() -> anyhow::Result<()> {
    forged_and_replayed(11).await
}

/// MSN 7.5's empty `POST /` probe still gets its empty `200`.
#[tokio::test]
async fn empty_post_to_the_root_is_still_the_probe() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut web = WebClient::new(stack.http);
    let r = web.send("POST / HTTP/1.1\r\nHost: relive\r\n", b"").await?;
    ensure!(
        r.status_line.contains(" 200 ") && r.body.is_empty(),
        "{r:?}"
    );
    Ok(())
}
