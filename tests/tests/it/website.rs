//! The website and its `/api/` against a real server (loopback listeners on port 0, a real
//! SQLite file), driven over plain HTTP like a browser without JavaScript, with real MSNP7
//! clients watching what website changes do to online sessions.

use anyhow::{Context as _, ensure};
use relive_msnp::server::ServerMessage;
use relive_server::store::{ListKind, parse_handle};
use relive_tests::stack::login_md5;
use relive_tests::web::{WebClient, location, shown_token};
use relive_tests::{StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const PASSWORD: &str = "purple-monkey-42";

fn status(r: &relive_tests::http::Response) -> u16 {
    r.status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(r: &'a relive_tests::http::Response, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Registers `handle` with [`PASSWORD`] and signs in; returns the signed-in visitor.
pub(crate) async fn member(stack: &TestStack, handle: &str) -> anyhow::Result<WebClient> {
    let mut web = WebClient::new(stack.http);
    let r = web
        .post(
            "/register",
            &[
                ("email", handle),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await?;
    ensure!(location(&r) == Some("/signin?m=registered"), "{r:?}");
    let r = web
        .post("/signin", &[("email", handle), ("password", PASSWORD)])
        .await?;
    ensure!(location(&r) == Some("/"), "sign-in: {r:?}");
    ensure!(web.cookie("relive_session").is_some(), "no session cookie");
    Ok(web)
}

/// Makes alice an admin (as `relive-server user admin` does) and gives her an API key.
async fn admin_key(stack: &TestStack) -> anyhow::Result<String> {
    stack.store.set_admin(&parse_handle(ALICE)?, true).await?;
    Ok(stack
        .store
        .create_api_key(stack.id(ALICE).await?, "test")
        .await?)
}

/// Creates a token labelled `label` on the tokens page; returns it as shown once.
async fn new_token(web: &mut WebClient, label: &str) -> anyhow::Result<String> {
    let r = web
        .post("/tokens", &[("label", label), ("client", "msn4")])
        .await?;
    ensure!(status(&r) == 200, "{}", r.status_line);
    shown_token(&String::from_utf8(r.body)?).context("no token shown")
}

#[tokio::test]
async fn register_and_sign_in_answer_alike_for_existing_and_unknown_handles() -> anyhow::Result<()>
{
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut web = WebClient::new(stack.http);
    // alice exists (seeded); dave does not: registering either answers the same redirect.
    let fields = |h| {
        [
            ("email", h),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ]
    };
    let taken = web.post("/register", &fields(ALICE)).await?;
    let free = web.post("/register", &fields("dave@example.com")).await?;
    ensure!(taken.status_line == free.status_line && location(&taken) == location(&free));
    ensure!(location(&free) == Some("/signin?m=registered"));
    // The existing account kept its password: the register attempt did not take it over.
    stack
        .store
        .set_password(
            &parse_handle(ALICE)?,
            relive_server::secret::Secret::new("alice-own-pass-1".into()),
        )
        .await?;
    let wrong = web
        .post("/signin", &[("email", ALICE), ("password", PASSWORD)])
        .await?;
    let unknown = web
        .post(
            "/signin",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await?;
    ensure!(wrong.status_line == unknown.status_line && location(&wrong) == location(&unknown));
    ensure!(location(&wrong) == Some("/signin?m=signin-failed"));
    ensure!(web.cookie("relive_session").is_none());
    // A weak password and a mismatch are refused before anything is stored.
    let weak = web
        .post(
            "/register",
            &[
                ("email", "erin@example.com"),
                ("password", "aaaaaaaaaaaa"),
                ("password2", "aaaaaaaaaaaa"),
            ],
        )
        .await?;
    ensure!(location(&weak) == Some("/register?m=weak"));
    ensure!(
        stack
            .store
            .account(&parse_handle("erin@example.com")?)
            .await?
            .is_none()
    );
    // dave signs in; the session cookie is HttpOnly and SameSite=Strict, not Secure over HTTP.
    let r = web
        .post(
            "/signin",
            &[("email", "dave@example.com"), ("password", PASSWORD)],
        )
        .await?;
    let cookie = header(&r, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("relive_session="))
        .context("no session cookie")?;
    ensure!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    ensure!(web.page("/account").await?.contains("dave@example.com"));
    // Signing out ends the session on the server too.
    let session = web.cookie("relive_session").context("session")?.to_owned();
    web.post("/signout", &[]).await?;
    let mut replay = WebClient::new(stack.http);
    let r = replay
        .send(
            &format!("GET /account HTTP/1.1\r\nHost: x\r\nCookie: relive_session={session}\r\n"),
            b"",
        )
        .await?;
    ensure!(
        status(&r) == 403,
        "a signed-out session still works: {}",
        r.status_line
    );
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_pages_send_security_headers() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new()).await?;
    let mut web = member(&stack, ALICE).await?;
    for path in [
        "/",
        "/register",
        "/signin",
        "/reset",
        "/account",
        "/tokens",
        "/contacts",
        "/connect",
    ] {
        let r = web.get(path).await?;
        ensure!(status(&r) == 200, "{path}: {}", r.status_line);
        let csp = header(&r, "content-security-policy").join("");
        ensure!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        ensure!(
            header(&r, "x-content-type-options") == ["nosniff"],
            "{path}"
        );
        ensure!(header(&r, "x-frame-options") == ["DENY"], "{path}");
    }
    let wrong = web
        .post_raw(
            "/tokens",
            &[("csrf", "not-the-token-0123456789"), ("label", "x")],
        )
        .await?;
    ensure!(status(&wrong) == 403, "{}", wrong.status_line);
    // A visitor whose cookie was set by another site cannot post either: no cookie, no form.
    let mut stranger = WebClient::new(stack.http);
    let r = stranger
        .post_raw(
            "/signin",
            &[("csrf", "x"), ("email", ALICE), ("password", PASSWORD)],
        )
        .await?;
    ensure!(status(&r) == 403, "{}", r.status_line);
    ensure!(stack.store.tokens(stack.id(ALICE).await?).await?.is_empty());
    // Over HTTPS the cookies are Secure as well.
    let r = stack
        .https_request("GET /signin HTTP/1.1\r\nHost: relive\r\n\r\n")
        .await?;
    let cookie = header(&r, "set-cookie").join("\n");
    ensure!(
        cookie.starts_with("relive_csrf=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn sign_in_and_reset_share_the_passport_rate_limiter() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().configure(|c| {
        c.passport.login_slow_after = 3;
        c.passport.login_refuse_after = 3;
    }))
    .await?;
    let mut web = member(&stack, ALICE).await?;
    web.post("/signout", &[]).await?;
    let (code, _) = stack.store.create_reset_code(&parse_handle(ALICE)?).await?;
    const NEW: &str = "brand-new-secret-7";
    for _ in 0..2 {
        let r = web
            .post(
                "/signin",
                &[("email", ALICE), ("password", "wrong-password-1")],
            )
            .await?;
        ensure!(location(&r) == Some("/signin?m=signin-failed"));
    }
    // A wrong reset code is the third failure of the same handle from the same address.
    let r = web
        .post("/reset", &reset_fields(ALICE, "not-the-code", NEW))
        .await?;
    ensure!(String::from_utf8(r.body)?.contains("does not work for that address"));
    // Now even the right password is refused from this address, and the right reset code…
    let r = web
        .post("/signin", &[("email", ALICE), ("password", PASSWORD)])
        .await?;
    ensure!(location(&r) == Some("/signin?m=slow-down"), "{r:?}");
    let r = web.post("/reset", &reset_fields(ALICE, &code, NEW)).await?;
    ensure!(String::from_utf8(r.body)?.contains("Too many attempts"));
    // …and so is a Passport login of the same account from it: one limiter.
    let token = "ABCDEFGHJKMNPQRS";
    let response = stack
        .https_request(&relive_tests::stack::login2_request(
            "127.0.0.1",
            "login2.srf",
            ALICE,
            token,
            "lc=1033,id=507,tw=40",
        ))
        .await?;
    ensure!(
        response.status_line.contains("503"),
        "{}",
        response.status_line
    );
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_website_token_logs_msnp7_in_and_revoking_it_ends_that_session() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new()).await?;
    let mut web = member(&stack, ALICE).await?;
    let laptop = new_token(&mut web, "Laptop").await?;
    let desktop = new_token(&mut web, "Desktop").await?;
    let mut c = stack.connect_ns("alice_ns").await?;
    login_md5(&mut c, 7, ALICE, &laptop).await?;
    c.sync().await?;
    let page = web.page("/tokens").await?;
    ensure!(
        page.contains("Laptop (MSN Messenger 1.x–4.x)") && page.contains("loopback"),
        "{page}"
    );
    // Revoking the other device's token leaves this session alone.
    let id_of = |label: &str, list: &[relive_server::store::TokenInfo]| {
        list.iter()
            .find(|t| t.label.starts_with(label))
            .map(|t| t.id.0.to_string())
    };
    let list = stack.store.tokens(stack.id(ALICE).await?).await?;
    let desktop_id = id_of("Desktop", &list).context("desktop token")?;
    let laptop_id = id_of("Laptop", &list).context("laptop token")?;
    web.post("/tokens/revoke", &[("id", &desktop_id)]).await?;
    let mut other = stack.connect_ns("alice_desktop").await?;
    ensure!(login_md5(&mut other, 7, ALICE, &desktop).await.is_err());
    c.sync().await?;
    let r = web.post("/tokens/revoke", &[("id", &laptop_id)]).await?;
    ensure!(location(&r) == Some("/tokens?m=revoked"));
    c.expect_line("OUT OTH").await?;
    c.expect_closed().await?;
    // And the revoked token no longer logs in.
    let mut again = stack.connect_ns("alice_again").await?;
    ensure!(login_md5(&mut again, 7, ALICE, &laptop).await.is_err());
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn name_changes_and_blocks_reach_online_clients_as_if_the_client_made_them()
-> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let alice_id = stack.id(ALICE).await?;
    stack
        .store
        .set_password(
            &parse_handle(ALICE)?,
            relive_server::secret::Secret::new(PASSWORD.into()),
        )
        .await?;
    stack.befriend(ALICE, BOB).await?;
    let (mut alice, _) = stack.online(7, ALICE, "NLN").await?;
    let (mut bob, _) = stack.online(7, BOB, "NLN").await?;
    alice.expect_line(&format!("NLN NLN {BOB} Bob")).await?;
    let mut web = WebClient::new(stack.http);
    let r = web
        .post("/signin", &[("email", ALICE), ("password", PASSWORD)])
        .await?;
    ensure!(location(&r) == Some("/"));

    web.post("/account/name", &[("name", "Alice in Wonderland")])
        .await?;
    bob.expect_line(&format!("NLN NLN {ALICE} Alice%20in%20Wonderland"))
        .await?;
    let (rea, _) = alice
        .wait_for("REA 0", |m| matches!(m, ServerMessage::Rea { .. }))
        .await?;
    ensure!(
        matches!(&rea, ServerMessage::Rea { name, .. } if name.as_str() == "Alice%20in%20Wonderland")
    );

    // Block bob: he sees alice go offline; her client learns the list change.
    web.post("/contacts/block", &[("handle", BOB), ("action", "block")])
        .await?;
    bob.expect_line(&format!("FLN {ALICE}")).await?;
    alice
        .wait_for("ADD 0 BL bob", |m| {
            matches!(m, ServerMessage::Add { list: ListKind::Bl, handle, .. } if handle.as_str() == BOB)
        })
        .await?;
    let snapshot = stack.store.list_snapshot(alice_id).await?;
    let bits = snapshot
        .contacts
        .iter()
        .find(|c| c.email.as_str() == BOB)
        .context("bob")?
        .lists;
    ensure!(bits.contains(ListKind::Bl) && !bits.contains(ListKind::Al));
    let page = web.page("/contacts").await?;
    ensure!(page.contains(BOB) && page.contains("Unblock"));
    // Unblock: he sees her again.
    web.post("/contacts/block", &[("handle", BOB), ("action", "allow")])
        .await?;
    bob.expect_line(&format!("NLN NLN {ALICE} Alice%20in%20Wonderland"))
        .await?;

    // BLP BL hides her from everyone on neither list (bob is on AL now: still sees her); the
    // switches are stored.
    web.post("/contacts/privacy", &[("blp", "BL"), ("searchable", "on")])
        .await?;
    alice
        .wait_for("BLP 0 BL", |m| matches!(m, ServerMessage::Blp { .. }))
        .await?;
    let account = stack.account(ALICE).await?;
    ensure!(account.searchable && !account.allow_password_login);
    bob.sync().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn invite_only_registration_needs_an_unused_code() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().configure(|c| {
        c.web.registration = relive_server::web::Registration::Invite;
    }))
    .await?;
    let mut web = WebClient::new(stack.http);
    let fields = |code| {
        [
            ("email", "dave@example.com"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
            ("invite", code),
        ]
    };
    let r = web.post("/register", &fields("made-up-code")).await?;
    ensure!(location(&r) == Some("/register?m=bad-invite"));
    let code = stack.store.create_invite(stack.id(ALICE).await?).await?;
    let r = web.post("/register", &fields(&code)).await?;
    ensure!(location(&r) == Some("/signin?m=registered"));
    ensure!(
        stack
            .store
            .account(&parse_handle("dave@example.com")?)
            .await?
            .is_some()
    );
    let invites = stack.store.invites().await?;
    ensure!(invites[0].used_by.as_deref() == Some("dave@example.com"));
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn admins_broadcast_count_down_and_manage_accounts_through_the_api() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let key = admin_key(&stack).await?;
    let (mut bob, _) = stack.online(7, BOB, "NLN").await?;
    let mut api = WebClient::new(stack.http);

    let r = api.api("GET", "/api/online", None, None).await?;
    ensure!(status(&r) == 401);
    let r = api.api("GET", "/api/online", Some(&key), None).await?;
    let online: serde_json::Value = serde_json::from_slice(&r.body)?;
    ensure!(
        online[0]["handle"] == BOB && online[0]["dialect"] == "MSNP7",
        "{online}"
    );

    let r = api
        .api(
            "POST",
            "/api/broadcast",
            Some(&key),
            Some(r#"{"text":"Hello from the admins"}"#),
        )
        .await?;
    ensure!(status(&r) == 200, "{}", r.status_line);
    let (msg, _) = bob
        .wait_for("the broadcast", |m| matches!(m, ServerMessage::Msg { .. }))
        .await?;
    let ServerMessage::Msg { from, payload, .. } = msg else {
        unreachable!()
    };
    ensure!(from.as_str() == "Hotmail");
    ensure!(String::from_utf8_lossy(&payload).contains("Subject: Hello from the admins\r\n"));

    // Disabling bob ends his session and his logins.
    let r = api
        .api(
            "POST",
            "/api/accounts/bob@example.com/disable",
            Some(&key),
            None,
        )
        .await?;
    ensure!(status(&r) == 204, "{}", r.status_line);
    bob.expect_line("OUT OTH").await?;
    let mut again = stack.connect_ns("bob_again").await?;
    ensure!(
        login_md5(&mut again, 7, BOB, stack.token(BOB))
            .await
            .is_err()
    );
    api.api(
        "POST",
        "/api/accounts/bob@example.com/enable",
        Some(&key),
        None,
    )
    .await?;
    let (mut bob, _) = stack.online(7, BOB, "NLN").await?;

    // A two-second maintenance countdown: the system message, then OUT SSD.
    let r = api
        .api(
            "POST",
            "/api/maintenance",
            Some(&key),
            Some(r#"{"seconds":2}"#),
        )
        .await?;
    ensure!(status(&r) == 204);
    let (msg, _) = bob
        .wait_for("the maintenance notice", |m| {
            matches!(m, ServerMessage::Msg { .. })
        })
        .await?;
    let ServerMessage::Msg { payload, .. } = msg else {
        unreachable!()
    };
    let text = String::from_utf8_lossy(&payload).into_owned();
    ensure!(
        text.contains("application/x-msmsgssystemmessage")
            && text.contains("Type: 1\r\nArg1: 1\r\n"),
        "{text}"
    );
    bob.expect_line("OUT SSD").await?;
    bob.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_parses_and_every_route_in_it_answers() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let key = admin_key(&stack).await?;
    let mut api = WebClient::new(stack.http);
    let r = api.api("GET", "/api/openapi.json", None, None).await?;
    ensure!(status(&r) == 200);
    let doc = oas3::from_json(String::from_utf8(r.body)?)?;
    let paths = doc.paths.context("no paths")?;
    ensure!(paths.len() >= 9, "{} paths", paths.len());
    let token = stack
        .store
        .tokens(stack.id(BOB).await?)
        .await?
        .first()
        .context("bob's token")?
        .id
        .0
        .to_string();
    let mut answered = Vec::new();
    for (template, item) in &paths {
        let path = template.replace("{handle}", BOB).replace("{id}", &token);
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, _) in methods.iter().filter(|(_, listed)| *listed) {
            let body = match template.as_str() {
                "/api/broadcast" => Some(r#"{"text":"hi"}"#),
                "/api/maintenance" => Some(r#"{"seconds":0}"#),
                _ => None,
            };
            let denied = api.api(method, &path, None, body).await?;
            ensure!(
                status(&denied) == 401,
                "{method} {path} without a key: {}",
                denied.status_line
            );
            let r = api.api(method, &path, Some(&key), body).await?;
            ensure!(
                (200..300).contains(&status(&r)),
                "{method} {path}: {}",
                r.status_line
            );
            answered.push(format!("{method} {template}"));
        }
    }
    ensure!(answered.len() >= 10, "{answered:?}");
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn deleting_the_account_removes_everything_and_ends_the_session() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut web = member(&stack, "dave@example.com").await?;
    let token = new_token(&mut web, "PC").await?;
    stack
        .store
        .add_to_list(
            stack.id(BOB).await?,
            ListKind::Fl,
            &parse_handle("dave@example.com")?,
            "Dave",
            None,
        )
        .await?;
    let mut c = stack.connect_ns("dave_ns").await?;
    login_md5(&mut c, 7, "dave@example.com", &token).await?;
    let r = web
        .post(
            "/account/delete",
            &[("password", PASSWORD), ("confirm", "yes")],
        )
        .await?;
    ensure!(location(&r) == Some("/?m=deleted"));
    c.expect_line("OUT OTH").await?;
    ensure!(
        stack
            .store
            .account(&parse_handle("dave@example.com")?)
            .await?
            .is_none()
    );
    let bob = stack.store.list_snapshot(stack.id(BOB).await?).await?;
    ensure!(
        bob.contacts
            .iter()
            .all(|c| c.email.as_str() != "dave@example.com"),
        "bob still lists dave: {:?}",
        bob.contacts
    );
    ensure!(web.get("/account").await.map(|r| status(&r))? == 403);
    stack.shutdown().await?;
    Ok(())
}

/// The `/reset` form's fields.
fn reset_fields<'a>(handle: &'a str, code: &'a str, password: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("email", handle),
        ("code", code),
        ("password", password),
        ("password2", password),
    ]
}

/// A page's body with the visitor's CSRF token blanked (it differs per visitor).
fn without_csrf(web: &WebClient, r: &relive_tests::http::Response) -> anyhow::Result<String> {
    let body = String::from_utf8(r.body.clone())?;
    let csrf = web.cookie("relive_csrf").context("no CSRF cookie")?;
    Ok(body.replace(csrf, "CSRF"))
}

#[tokio::test]
async fn an_admins_reset_code_sets_a_new_password_once_and_every_failure_answers_alike()
-> anyhow::Result<()> {
    // A roomy limiter: this test fails on purpose several times in a row from one address.
    let stack = TestStack::start(StackOptions::cast().configure(|c| {
        c.passport.login_slow_after = 20;
        c.passport.login_refuse_after = 20;
    }))
    .await?;
    let key = admin_key(&stack).await?;
    for (who, password) in [(ALICE, PASSWORD), (BOB, "bob-old-password-1")] {
        stack
            .store
            .set_password(
                &parse_handle(who)?,
                relive_server::secret::Secret::new(password.into()),
            )
            .await?;
    }
    const NEW: &str = "brand-new-secret-7";
    // Bob is signed in on the website before he forgets his password.
    let mut bob_web = WebClient::new(stack.http);
    let r = bob_web
        .post(
            "/signin",
            &[("email", BOB), ("password", "bob-old-password-1")],
        )
        .await?;
    ensure!(location(&r) == Some("/"), "{r:?}");

    // Alice (admin) issues a code on the admin page: the form needs the CSRF token, the code
    // is shown once.
    let mut admin = WebClient::new(stack.http);
    admin
        .post("/signin", &[("email", ALICE), ("password", PASSWORD)])
        .await?;
    ensure!(admin.page("/admin").await?.contains("Reset code"));
    let forged = admin
        .post_raw(
            "/admin/account",
            &[
                ("csrf", "not-the-token-0123456789"),
                ("email", BOB),
                ("action", "reset-code"),
            ],
        )
        .await?;
    ensure!(status(&forged) == 403, "{}", forged.status_line);
    let r = admin
        .post(
            "/admin/account",
            &[("email", BOB), ("action", "reset-code")],
        )
        .await?;
    ensure!(status(&r) == 200, "{}", r.status_line);
    ensure!(header(&r, "cache-control") == ["no-store"]);
    let page_code = shown_token(&String::from_utf8(r.body)?).context("no code shown")?;
    // The API issues another one, which replaces it.
    let mut api = WebClient::new(stack.http);
    let r = api
        .api(
            "POST",
            "/api/accounts/nobody@example.com/reset-code",
            Some(&key),
            None,
        )
        .await?;
    ensure!(status(&r) == 404, "{}", r.status_line);
    let r = api
        .api(
            "POST",
            "/api/accounts/bob@example.com/reset-code",
            Some(&key),
            None,
        )
        .await?;
    ensure!(status(&r) == 200, "{}", r.status_line);
    let issued: serde_json::Value = serde_json::from_slice(&r.body)?;
    let code = issued["code"].as_str().context("code")?.to_owned();
    let expires = issued["expires_at"].as_i64().context("expires_at")?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    ensure!(
        (now + 23 * 3600..=now + 24 * 3600 + 60).contains(&expires),
        "{issued}"
    );
    ensure!(code != page_code && code.chars().filter(char::is_ascii_hexdigit).count() == 32);

    // Sign-in points at /reset; failures all get the same page, whoever asks.
    let mut web = WebClient::new(stack.http);
    ensure!(web.page("/signin").await?.contains("href=\"/reset\""));
    ensure!(web.page("/reset").await?.contains("tokens stay"));
    let mut failures = Vec::new();
    for (handle, tried) in [
        ("nobody@example.com", code.as_str()),
        (BOB, "0123-4567-89ab-cdef-0123-4567-89ab-cdef"),
        (BOB, page_code.as_str()),
        (ALICE, code.as_str()),
    ] {
        let mut visitor = WebClient::new(stack.http);
        let r = visitor
            .post("/reset", &reset_fields(handle, tried, NEW))
            .await?;
        ensure!(status(&r) == 200 && location(&r).is_none(), "{r:?}");
        failures.push((r.status_line.clone(), without_csrf(&visitor, &r)?));
    }
    ensure!(
        failures[0].1.contains("does not work for that address"),
        "{}",
        failures[0].1
    );
    // The right code, typed back in capitals: a new password, bob's website session ends.
    let r = web
        .post(
            "/reset",
            &reset_fields(BOB, &code.to_ascii_uppercase(), NEW),
        )
        .await?;
    ensure!(location(&r) == Some("/signin?m=reset"), "{r:?}");
    ensure!(
        web.page("/signin?m=reset")
            .await?
            .contains("Your password was reset")
    );
    ensure!(
        status(&bob_web.get("/account").await?) == 403,
        "bob's old session lives on"
    );
    // Used once: the second use answers exactly as an unknown handle and a wrong code.
    let mut again = WebClient::new(stack.http);
    let r = again
        .post("/reset", &reset_fields(BOB, &code, "yet-another-pass-9"))
        .await?;
    let used = (r.status_line.clone(), without_csrf(&again, &r)?);
    for f in &failures {
        ensure!(
            *f == used,
            "a failure answered differently:\n{}\n---\n{}",
            f.1,
            used.1
        );
    }

    // The new password signs in on the website; the old one does not; the token still works.
    let r = web
        .post(
            "/signin",
            &[("email", BOB), ("password", "bob-old-password-1")],
        )
        .await?;
    ensure!(location(&r) == Some("/signin?m=signin-failed"));
    let r = web
        .post("/signin", &[("email", BOB), ("password", NEW)])
        .await?;
    ensure!(location(&r) == Some("/"), "{r:?}");
    ensure!(web.page("/account").await?.contains(BOB));
    let mut c = stack.connect_ns("bob_ns").await?;
    login_md5(&mut c, 7, BOB, stack.token(BOB)).await?;
    stack.shutdown().await?;
    Ok(())
}
