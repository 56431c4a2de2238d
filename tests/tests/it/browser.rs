//! The website in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started here on a free loopback port), against a real server and a real MSNP7 client.
//!
//! One browser session walks the whole story (the machine has 2 cores: one Chromium, not one
//! per test): register → create a token → that token logs an MSNP7 client in → every page →
//! an admin broadcast reaches the client → revoking the token ends its session. A screenshot
//! of every page is written to `target/screenshots/` (names below; the README shows some).
//! Without `chromium` and `chromedriver` the test fails in CI and is skipped elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use relive_msnp::server::ServerMessage;
use relive_server::store::parse_handle;
use relive_tests::stack::{change_status, login_md5};
use relive_tests::{StackOptions, TestStack, tool};

const ALICE: &str = "alice@example.com";
const PASSWORD: &str = "purple-monkey-42";

/// chromedriver, ended when dropped.
pub(crate) struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Self { child, url });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("chromedriver did not listen on port {port} within 10 s")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub(crate) async fn browser(driver: &Driver) -> anyhow::Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--renderer-process-limit=1",
                "--window-size=1024,900"
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("opening a Chromium session")
}

fn screenshots() -> anyhow::Result<PathBuf> {
    let dir = relive_tests::dist::target_dir().join("screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub(crate) async fn shot(c: &Client, name: &str) -> anyhow::Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(screenshots()?.join(format!("{name}.png")), png)?;
    Ok(())
}

pub(crate) async fn fill(c: &Client, name: &str, value: &str) -> anyhow::Result<()> {
    c.find(Locator::Css(&format!("[name={name}]")))
        .await
        .with_context(|| format!("no field {name}"))?
        .send_keys(value)
        .await?;
    Ok(())
}

/// Clicks the submit button of the form posting to `action` and waits for the next page.
pub(crate) async fn submit(c: &Client, action: &str) -> anyhow::Result<()> {
    let before = c.current_url().await?;
    c.find(Locator::Css(&format!(
        "form[action=\"{action}\"] button[type=submit]"
    )))
    .await
    .with_context(|| format!("no form posting to {action}"))?
    .click()
    .await?;
    for _ in 0..50 {
        if c.current_url().await? != before
            || c.find(Locator::Css("p.notice, section.created"))
                .await
                .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub(crate) async fn text(c: &Client) -> anyhow::Result<String> {
    Ok(c.find(Locator::Css("body")).await?.text().await?)
}

/// Starts a stack with `opts` and one Chromium session, runs `walk`, and closes both (skipped
/// without `chromium` and `chromedriver`, outside CI).
pub(crate) async fn in_chromium(
    opts: StackOptions,
    walk: impl AsyncFnOnce(&TestStack, &Client) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(why) = tool::missing(&[
        ("chromium", "--version", "chromium"),
        ("chromedriver", "--version", "chromium-driver"),
    ]) {
        tool::skip(&why);
        return Ok(());
    }
    let stack = TestStack::start(opts).await?;
    let driver = Driver::start().await?;
    let c = browser(&driver).await?;
    let walked = walk(&stack, &c).await;
    let closed = c.close().await;
    walked?;
    closed?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn register_token_msnp7_login_broadcast_and_revoke_in_chromium() -> anyhow::Result<()> {
    in_chromium(StackOptions::new().account("bob@example.com", "Bob"), walk).await
}

async fn walk(stack: &TestStack, c: &Client) -> anyhow::Result<()> {
    let site = format!("http://{}", stack.http);
    c.goto(&format!("{site}/")).await?;
    shot(c, "01-home").await?;

    c.goto(&format!("{site}/register")).await?;
    fill(c, "email", ALICE).await?;
    fill(c, "password", PASSWORD).await?;
    fill(c, "password2", PASSWORD).await?;
    shot(c, "02-register").await?;
    submit(c, "/register").await?;
    ensure!(
        c.current_url().await?.path() == "/signin",
        "after registering: {}",
        c.current_url().await?
    );
    ensure!(text(c).await?.contains("sign in with it"));
    fill(c, "email", ALICE).await?;
    fill(c, "password", PASSWORD).await?;
    shot(c, "03-signin").await?;
    submit(c, "/signin").await?;
    ensure!(text(c).await?.contains(&format!("Signed in as {ALICE}")));
    shot(c, "04-home-signed-in").await?;

    c.goto(&format!("{site}/tokens")).await?;
    fill(c, "label", "Living-room PC").await?;
    c.find(Locator::Css("select[name=client] option[value=msn4]"))
        .await?
        .click()
        .await?;
    submit(c, "/tokens").await?;
    let token = c
        .find(Locator::Css("input.token"))
        .await?
        .prop("value")
        .await?
        .context("the new token's value")?;
    ensure!(token.len() == 16, "token {token:?}");
    // The copy button is there once the page's script ran (under the CSP); without JavaScript
    // it stays hidden and the field is copied by hand.
    ensure!(
        c.find(Locator::Css("button.copy"))
            .await?
            .is_displayed()
            .await?,
        "the copy button stayed hidden"
    );
    shot(c, "05-token-created").await?;

    // That token logs a real MSNP7 client in over a socket.
    let mut msn = stack.connect_ns("alice_ns").await?;
    login_md5(&mut msn, 7, ALICE, &token).await?;
    change_status(&mut msn, "NLN").await?;
    // MSN Messenger 4.7 says which version it is (a late CVR, as 4.x sends it).
    msn.send_line("CVR 9 0x0409 winnt 5.1 i386 MSMSGS 4.7.3001 MSMSGS alice@example.com")
        .await?;
    msn.wait_for("CVR 9", |m| matches!(m, ServerMessage::Cvr { .. }))
        .await?;

    c.goto(&format!("{site}/tokens")).await?;
    ensure!(
        text(c).await?.contains("loopback"),
        "last-used address class"
    );
    shot(c, "06-tokens").await?;
    c.goto(&format!("{site}/contacts")).await?;
    shot(c, "07-contacts").await?;
    c.goto(&format!("{site}/connect")).await?;
    ensure!(text(c).await?.contains(&format!("--handle {ALICE}")));
    shot(c, "08-connect").await?;
    c.goto(&format!("{site}/account")).await?;
    shot(c, "09-account").await?;

    // The operator makes alice an admin (`relive-server user admin`); she broadcasts.
    stack.store.set_admin(&parse_handle(ALICE)?, true).await?;
    c.goto(&format!("{site}/admin")).await?;
    let admin = text(c).await?;
    ensure!(
        admin.contains("Online now (1)") && admin.contains("MSNP7") && admin.contains("4.7.3001"),
        "{admin}"
    );
    fill(c, "text", "Server upgrade tonight at 22:00").await?;
    shot(c, "10-admin").await?;
    submit(c, "/admin/broadcast").await?;
    let (msg, _) = msn
        .wait_for("the broadcast", |m| matches!(m, ServerMessage::Msg { .. }))
        .await?;
    let ServerMessage::Msg { payload, .. } = msg else {
        unreachable!()
    };
    ensure!(String::from_utf8_lossy(&payload).contains("Subject: Server upgrade tonight at 22:00"));
    shot(c, "11-admin-broadcast-sent").await?;

    // Revoking the token ends the client's session.
    c.goto(&format!("{site}/tokens")).await?;
    submit(c, "/tokens/revoke").await?;
    msn.expect_line("OUT OTH").await?;
    msn.expect_closed().await?;
    ensure!(text(c).await?.contains("revoked"));
    shot(c, "12-token-revoked").await?;
    // The password reset page (codes come from an admin; the server sends no mail).
    c.goto(&format!("{site}/reset")).await?;
    shot(c, "15-reset").await?;

    // Readable on a phone.
    c.set_window_size(390, 844).await?;
    c.goto(&format!("{site}/connect")).await?;
    shot(c, "13-connect-phone").await?;
    c.goto(&format!("{site}/tokens")).await?;
    shot(c, "14-tokens-phone").await?;
    Ok(())
}

/// The mailbox and pager pages (issue 18) in Chromium, entered the way Messenger enters them:
/// the client's auto-login form in a local `file://` page posted to the site root (so the
/// `SameSite=Strict` session cookie must survive the hop from a cross-site POST), then reading,
/// composing (the recipient's MSNP7 client gets the new-mail toast), deleting, and the Mobile
/// page with a page waiting. Screenshots `20-…` to `25-…`.
#[tokio::test]
async fn mailbox_signin_from_messenger_compose_and_mobile_in_chromium() -> anyhow::Result<()> {
    in_chromium(StackOptions::cast(), mailbox_walk).await
}

async fn mailbox_walk(stack: &TestStack, c: &Client) -> anyhow::Result<()> {
    const BOB: &str = "bob@example.com";
    let site = format!("http://{}", stack.http);
    let (alice, bob) = (stack.account(ALICE).await?, stack.account(BOB).await?);
    stack
        .store
        .send_mail(&alice, &bob.email, "Lunch?", "Noon at the usual place.")
        .await?;
    stack
        .store
        .set_phone(bob.id, relive_server::store::PhoneProp::Mob, Some("Y"))
        .await?;
    stack
        .store
        .send_page(
            alice.id,
            &alice.email,
            &bob.email,
            relive_server::store::pages::NewPage {
                text: "Call me when you land".to_owned(),
                callback: Some(("MOBILE".to_owned(), "15551114444".to_owned())),
            },
        )
        .await?
        .map_err(|e| anyhow::anyhow!("page refused: {e}"))?;
    let mut a = stack.login(7, ALICE).await?;
    let mut b = stack.login(7, BOB).await?;
    // Bob's client: the mail count, then the page (IPG), then it builds its inbox form.
    b.wait_for("the mail count", |m| matches!(m, ServerMessage::Msg { .. }))
        .await?;
    b.wait_for("the page", |m| matches!(m, ServerMessage::Ipg { .. }))
        .await?;
    let field = |k: &str| b.profile_field(k).unwrap_or_default();
    let (auth, sl) = (field("MSPAuth"), 42u64);
    let creds = relive_msnp::auth::md5_response(&format!("{auth}{sl}"), stack.token(BOB));
    let form = format!(
        "<html><body><form name=\"hiddenform\" action=\"{site}/\" method=\"POST\">\
         <input type=\"hidden\" name=\"mode\" value=\"ttl\">\
         <input type=\"hidden\" name=\"login\" value=\"bob\">\
         <input type=\"hidden\" name=\"username\" value=\"{BOB}\">\
         <input type=\"hidden\" name=\"sid\" value=\"{}\"><input type=\"hidden\" name=\"kv\" value=\"{}\">\
         <input type=\"hidden\" name=\"id\" value=\"2\"><input type=\"hidden\" name=\"sl\" value=\"{sl}\">\
         <input type=\"hidden\" name=\"rru\" value=\"/mail\"><input type=\"hidden\" name=\"auth\" value=\"{auth}\">\
         <input type=\"hidden\" name=\"creds\" value=\"{creds}\"><input type=\"hidden\" name=\"svc\" value=\"mail\">\
         <input type=\"hidden\" name=\"js\" value=\"yes\"></form>\
         <script>document.hiddenform.submit();</script></body></html>",
        field("sid"),
        field("kv"),
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("hotmail.htm");
    std::fs::write(&file, form)?;
    c.goto(&format!("file://{}", file.display())).await?;
    let mut inbox = String::new();
    for _ in 0..50 {
        if c.current_url().await?.path() == "/mail" {
            inbox = text(c).await?;
            if inbox.contains("Lunch?") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        inbox.contains("Lunch?") && inbox.contains("Sign out"),
        "not signed in to the Inbox after the Messenger form: {} {inbox}",
        c.current_url().await?
    );
    shot(c, "20-mail-inbox").await?;
    c.find(Locator::LinkText("Lunch?")).await?.click().await?;
    ensure!(text(c).await?.contains("Noon at the usual place."));
    shot(c, "21-mail-message").await?;
    b.wait_for("the active-mail count change", |m| {
        matches!(m, ServerMessage::Msg { payload, .. }
            if String::from_utf8_lossy(payload).contains("x-msmsgsactivemailnotification"))
    })
    .await?;
    c.find(Locator::LinkText("Reply")).await?.click().await?;
    fill(c, "subject", "Re: Lunch?").await?;
    fill(c, "body", "See you there.").await?;
    shot(c, "22-mail-compose").await?;
    submit(c, "/mail/compose").await?;
    ensure!(text(c).await?.contains("Re: Lunch?"), "the Sent folder");
    shot(c, "23-mail-sent").await?;
    a.wait_for("the new-mail toast", |m| {
        matches!(m, ServerMessage::Msg { payload, .. }
            if String::from_utf8_lossy(payload).contains("Subject: Re: Lunch?"))
    })
    .await?;
    c.goto(&format!("{site}/mail?folder=inbox")).await?;
    submit(c, "/mail/delete").await?;
    ensure!(text(c).await?.contains("Deleted."));
    c.goto(&format!("{site}/mail?folder=deleted")).await?;
    ensure!(text(c).await?.contains("Lunch?"));
    shot(c, "24-mail-deleted").await?;
    c.goto(&format!("{site}/mobile")).await?;
    let mobile = text(c).await?;
    ensure!(
        mobile.contains("Call me when you land") && mobile.contains("MOBILE 15551114444"),
        "{mobile}"
    );
    shot(c, "25-mobile").await?;
    Ok(())
}
