//! The user pages: home, register, sign in/out, password reset with an admin's code, account
//! (name, password, delete), tokens, contacts and privacy, connect.
//!
//! Every change an online client could also make goes the way the NS handlers make it: the
//! store first, then the hub (watchers get `NLN`/`FLN`), then the user's own client gets the
//! server-initiated form of the change (`REA 0`, `ADD 0 BL`, `REM 0 AL`, `BLP 0`).

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{Blp, FriendlyName, Guid, ListKind, OutReason, Passport, TrId};
use serde::Deserialize;

use super::{Registration, Visitor, Web, WebError, csrf_field, redirect, when};
use crate::passport::rate_limit::Ceiling;
use crate::secret::Secret;
use crate::store::{AccountError, ListError, TokenError, TokenId};

/// A short message carried in a redirect's query (`?m=`), shown once at the top of a page.
#[derive(Debug, Default, Deserialize)]
pub struct Note {
    m: Option<String>,
}

impl Note {
    fn show(&self) -> Markup {
        let text = match self.m.as_deref() {
            Some("registered") => {
                "If that address was free, your account now exists: sign in with it."
            }
            Some("signin-failed") => "The e-mail address or password is incorrect.",
            Some("slow-down") => "Too many attempts. Wait a minute and try again.",
            Some("weak") => {
                "Choose a password of at least 10 characters, not your address, with some variety."
            }
            Some("mismatch") => "The two passwords differ.",
            Some("bad-handle") => "That is not an e-mail address a client can sign in with.",
            Some("bad-invite") => "That invite code is unknown or already used.",
            Some("closed") => {
                "Registration is closed on this server; ask its operator for an account."
            }
            Some("name") => "Your friendly name was changed.",
            Some("bad-name") => "A friendly name must be 1 to 129 characters.",
            Some("password") => {
                "Your password was changed; other website sessions were signed out."
            }
            Some("wrong-password") => "The current password is incorrect.",
            Some("deleted") => "The account and everything the server kept about it are gone.",
            Some("revoked") => "The token was revoked; a client signed in with it was signed out.",
            Some("too-many") => "This account has as many tokens as it may have; revoke one first.",
            Some("privacy") => "Privacy settings saved.",
            Some("blocked") => "Done.",
            Some("no-contact") => "That address is not on your lists.",
            Some("full") => "That list is full.",
            Some("signed-out") => "You are signed out.",
            Some("reset") => {
                "Your password was reset and your website sessions were signed out: sign in with the new one."
            }
            Some("reset-failed") => {
                "That reset code does not work for that address: it may be mistyped, used, replaced or expired. Ask the admin for a new one."
            }
            _ => return html! {},
        };
        html! { p.notice role="status" { (text) } }
    }
}

fn field(label: &str, name: &str, kind: &str, autocomplete: &str) -> Markup {
    html! {
        label {
            (label)
            input type=(kind) name=(name) autocomplete=(autocomplete) required;
        }
    }
}

/// `GET /`.
pub async fn home(visitor: Visitor, Query(note): Query<Note>) -> Response {
    let body = html! {
        (note.show())
        @if let Some(account) = &visitor.account {
            p { "Signed in as " strong { (account.email.as_str()) } " ("
                (account.friendly_name.to_display()) ")." }
            ol.steps {
                li { a href="/tokens" { "Create a token" } " for each computer you sign in from: it is the password your Messenger uses." }
                li { a href="/connect" { "Connect your client" } ": what to set or patch, with this server's addresses." }
                li { a href="/contacts" { "Check your contacts and privacy" } "." }
            }
        } @else {
            p.lead { "Sign in with MSN Messenger 1.0 to 7.5 again: your contacts, your status, file transfers — on a server run by people you know." }
            ol.steps {
                li { a href="/register" { "Register" } " an account (an e-mail-like address and a password)." }
                li { "Create an " strong { "access token" } " for each computer: Messenger signs in with it instead of your password." }
                li { a href="/connect" { "Connect your client" } ": a registry file for 1.x–4.x, a patch for 5.x–7.x." }
            }
            p { a.button href="/signin" { "Sign in" } " " a.button.secondary href="/register" { "Register" } }
        }
    };
    visitor.page("Welcome", &body)
}

/// `GET /register`.
pub async fn register_form(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(note): Query<Note>,
) -> Response {
    let mode = web.config.registration;
    let body = html! {
        (note.show())
        @if mode == Registration::Closed {
            p.notice { "Registration is closed on this server; ask its operator for an account." }
        } @else {
            form.card method="post" action="/register" {
                (csrf_field(&visitor.csrf))
                (field("E-mail address (your sign-in name)", "email", "email", "username"))
                (field("Password (at least 10 characters)", "password", "password", "new-password"))
                (field("Password again", "password2", "password", "new-password"))
                @if mode == Registration::Invite {
                    (field("Invite code", "invite", "text", "off"))
                }
                button type="submit" { "Register" }
            }
            p.small { "The address is your sign-in name; it does not need to receive mail. Your password signs you in here; Messenger uses access tokens you create after." }
        }
    };
    visitor.page("Register", &body)
}

/// The register form.
#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    csrf: String,
    email: String,
    password: String,
    password2: String,
    #[serde(default)]
    invite: String,
}

/// Whether `password` is strong enough for `handle`: [`super::MIN_PASSWORD_CHARS`] characters,
/// at least 5 different ones, not the handle or its user part, at most 72 bytes (bcrypt).
#[must_use]
pub fn strong_enough(password: &str, handle: &str) -> bool {
    let chars = password.chars().count();
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let lower = password.to_lowercase();
    let user = handle.split('@').next().unwrap_or(handle);
    chars >= super::MIN_PASSWORD_CHARS
        && password.len() <= crate::store::accounts::MAX_PASSWORD_BYTES
        && distinct.len() >= 5
        && lower != handle
        && lower != user
}

/// `POST /register`: answers the same whether the handle was free or taken.
pub async fn register(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let mode = web.config.registration;
    if mode == Registration::Closed {
        return Ok(redirect("/register?m=closed", &[]));
    }
    let Ok(handle) = crate::store::parse_handle(form.email.trim()) else {
        return Ok(redirect("/register?m=bad-handle", &[]));
    };
    if form.password != form.password2 {
        return Ok(redirect("/register?m=mismatch", &[]));
    }
    if !strong_enough(&form.password, handle.as_str()) {
        return Ok(redirect("/register?m=weak", &[]));
    }
    let password = Secret::new(form.password);
    // Registration is an attempt like a sign-in: a source that keeps trying is slowed down.
    let attempt = async {
        let name = handle.as_str();
        let created = if mode == Registration::Invite {
            web.store
                .create_account_with_invite(&handle, name, password, form.invite.trim())
                .await
                .map(|a| a.is_some())
        } else {
            web.store
                .create_account(&handle, name, password)
                .await
                .map(|_| true)
        };
        match created {
            Ok(true) => Ok(Ok(())),
            Ok(false) => Ok(Err("bad-invite")),
            // Taken: answered like a success, so nobody learns which handles exist.
            Err(AccountError::EmailTaken) => Ok(Ok(())),
            Err(AccountError::InvalidHandle) => Ok(Err("bad-handle")),
            Err(AccountError::InvalidPassword) => Ok(Err("weak")),
            Err(e) => Err(e),
        }
    };
    let outcome = web
        .limited(&format!("register:{}", visitor.ip), visitor.ip, attempt)
        .await;
    match outcome {
        Err(_) => Ok(redirect("/register?m=slow-down", &[])),
        Ok(Ok(Ok(()))) => {
            tracing::info!("website: registration answered");
            Ok(redirect("/signin?m=registered", &[]))
        }
        Ok(Ok(Err(why))) => Ok(redirect(&format!("/register?m={why}"), &[])),
        Ok(Err(e)) => Err(e.into()),
    }
}

/// `GET /signin`.
pub async fn signin_form(visitor: Visitor, Query(note): Query<Note>) -> Response {
    let body = html! {
        (note.show())
        form.card method="post" action="/signin" {
            (csrf_field(&visitor.csrf))
            (field("E-mail address", "email", "email", "username"))
            (field("Password", "password", "password", "current-password"))
            button type="submit" { "Sign in" }
        }
        p.small { "No account yet? " a href="/register" { "Register" } "." }
        p.small { "Forgot your password? " a href="/reset" { "Ask the server's admin for a reset code" } "." }
    };
    visitor.page("Sign in", &body)
}

/// `GET /reset`.
pub async fn reset_form(visitor: Visitor, Query(note): Query<Note>) -> Response {
    reset_page(&visitor, &note)
}

/// The reset page, with `note` on top. Every failure that could tell whether an account exists
/// renders this same page with the same note.
fn reset_page(visitor: &Visitor, note: &Note) -> Response {
    let body = html! {
        (note.show())
        p { "This server sends no mail. Ask its admin for a " strong { "reset code" }
            " for your address; it works once, for 24 hours." }
        form.card method="post" action="/reset" {
            (csrf_field(&visitor.csrf))
            (field("E-mail address", "email", "email", "username"))
            (field("Reset code", "code", "text", "one-time-code"))
            (field("New password (at least 10 characters)", "password", "password", "new-password"))
            (field("New password again", "password2", "password", "new-password"))
            button type="submit" { "Set the new password" }
        }
        p.small { "Your website sessions are signed out. Your access tokens stay as they are: Messenger keeps signing in with them (revoke them on the tokens page if a device was lost)." }
    };
    visitor.page("Reset your password", &body)
}

/// The reset form.
#[derive(Debug, Deserialize)]
pub struct ResetForm {
    csrf: String,
    email: String,
    code: String,
    password: String,
    password2: String,
}

/// `POST /reset`: an unknown handle, a wrong, used or expired code answer the same page,
/// through the sign-in rate limiter (keyed the same: handle and source address).
pub async fn reset(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let answer = |m: &str| {
        reset_page(
            &visitor,
            &Note {
                m: Some(m.to_owned()),
            },
        )
    };
    if form.password != form.password2 {
        return Ok(answer("mismatch"));
    }
    let Ok(handle) = Passport::parse(form.email.trim()) else {
        return Ok(answer("reset-failed"));
    };
    if !strong_enough(&form.password, handle.as_str()) {
        return Ok(answer("weak"));
    }
    let password = Secret::new(form.password);
    let attempt = async {
        match web
            .store
            .reset_password_with_code(&handle, &form.code, password, crate::store::now_unix())
            .await
        {
            Ok(found) => Ok(found.ok_or(())),
            Err(AccountError::InvalidPassword) => Ok(Err(())),
            Err(e) => Err(WebError::from(e)),
        }
    };
    match web.limited(handle.as_str(), visitor.ip, attempt).await {
        Err(_) => Ok(answer("slow-down")),
        Ok(Ok(Ok(_account))) => {
            tracing::info!(handle = %handle, "website: password reset with a code");
            Ok(redirect("/signin?m=reset", &[]))
        }
        Ok(Ok(Err(()))) => {
            tracing::info!(handle = %handle, "website: password reset refused");
            Ok(answer("reset-failed"))
        }
        Ok(Err(e)) => Err(e),
    }
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SigninForm {
    csrf: String,
    email: String,
    password: String,
}

/// Checks `password` for `handle` through the Passport rate limiter; the account on success.
/// An unknown handle costs a bcrypt check too, so failures look and take alike.
async fn check_password(
    web: &Web,
    handle: &Passport,
    password: &Secret,
    ip: std::net::IpAddr,
) -> Result<Result<Option<crate::store::Account>, ()>, WebError> {
    let verify = async {
        let found = web.store.verify_password(handle, password).await?;
        if found.is_none() && web.store.account(handle).await?.is_none() {
            web.dummy_check(password).await;
        }
        Ok::<_, WebError>(found.ok_or(()))
    };
    match web.limited(handle.as_str(), ip, verify).await {
        Err(_) => Ok(Err(())),
        Ok(Ok(Ok(account))) => Ok(Ok(Some(account))),
        Ok(Ok(Err(()))) => Ok(Ok(None)),
        Ok(Err(e)) => Err(e),
    }
}

impl Web {
    /// Runs one attempt keyed `key` from `ip` under the Passport rate limiter, waiting out a
    /// delay ([`crate::passport::RateLimiter::attempt`] says how outcomes count).
    async fn limited<T, F, E>(
        &self,
        key: &str,
        ip: std::net::IpAddr,
        attempt: impl Future<Output = Result<Result<T, F>, E>>,
    ) -> Result<Result<Result<T, F>, E>, crate::passport::rate_limit::Refused> {
        let passport = self.passport.clone();
        let now = move || passport.now();
        self.passport
            .rate_limiter()
            .attempt(key, ip, &now, Ceiling::Wait, attempt)
            .await
    }

    /// A bcrypt check against a hash of nothing anyone knows, at the store's cost.
    async fn dummy_check(&self, password: &Secret) {
        let cost = self.store.options().bcrypt_cost;
        let hash = match self.dummy_hash.get() {
            Some(h) => h.clone(),
            None => {
                let made = tokio::task::spawn_blocking(move || {
                    bcrypt::hash(
                        crate::store::web::random_secret(16).unwrap_or_default(),
                        cost,
                    )
                })
                .await;
                match made {
                    Ok(Ok(h)) => self.dummy_hash.get_or_init(|| h).clone(),
                    _ => return,
                }
            }
        };
        let password = password.clone();
        let _ = tokio::task::spawn_blocking(move || bcrypt::verify(password.expose(), &hash)).await;
    }
}

/// `POST /signin`.
pub async fn signin(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<SigninForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let Ok(handle) = Passport::parse(form.email.trim()) else {
        return Ok(redirect("/signin?m=signin-failed", &[]));
    };
    let password = Secret::new(form.password);
    match check_password(&web, &handle, &password, visitor.ip).await? {
        Err(()) => Ok(redirect("/signin?m=slow-down", &[])),
        Ok(None) => {
            tracing::info!(handle = %handle, "website sign-in failed");
            Ok(redirect("/signin?m=signin-failed", &[]))
        }
        Ok(Some(account)) => {
            let session = web.store.create_web_session(account.id).await?;
            tracing::info!(handle = %handle, "website sign-in");
            Ok(redirect("/", &[visitor.session_cookie(&session)]))
        }
    }
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

impl CsrfForm {
    /// The form's CSRF token.
    #[must_use]
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /signout`.
pub async fn signout(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    if let Some(session) = &visitor.session {
        web.store.end_web_session(session).await?;
    }
    Ok(redirect(
        "/signin?m=signed-out",
        &[visitor.clear_session_cookie()],
    ))
}

/// `GET /account`.
pub async fn account(visitor: Visitor, Query(note): Query<Note>) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let csrf = &visitor.csrf;
    let body = html! {
        (note.show())
        section.card {
            h2 { "Friendly name" }
            form method="post" action="/account/name" {
                (csrf_field(csrf))
                label { "Shown to your contacts"
                    input type="text" name="name" maxlength="129" value=(account.friendly_name.to_display()) required;
                }
                button type="submit" { "Change name" }
            }
        }
        section.card {
            h2 { "Password" }
            form method="post" action="/account/password" {
                (csrf_field(csrf))
                (field("Current password", "current", "password", "current-password"))
                (field("New password", "password", "password", "new-password"))
                (field("New password again", "password2", "password", "new-password"))
                button type="submit" { "Change password" }
            }
        }
        section.card.danger {
            h2 { "Delete the account" }
            p { "Deletes your account, lists, groups, tokens and sessions. Contacts see you go offline and you leave their lists." }
            form method="post" action="/account/delete" {
                (csrf_field(csrf))
                (field("Password", "password", "password", "current-password"))
                label.check { input type="checkbox" name="confirm" value="yes" required; " I want my account deleted" }
                button.danger type="submit" { "Delete my account" }
            }
        }
    };
    Ok(visitor.page("Your account", &body))
}

/// The name form.
#[derive(Debug, Deserialize)]
pub struct NameForm {
    csrf: String,
    name: String,
}

/// `POST /account/name`: as `REA` on one's own handle (watchers get `NLN`, the client `REA 0`).
pub async fn change_name(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<NameForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let display = form.name.trim();
    let Ok(name) = FriendlyName::from_display(display)
        .map_err(drop)
        .and_then(|n| {
            if display.chars().count() <= 129 {
                Ok(n)
            } else {
                Err(())
            }
        })
    else {
        return Ok(redirect("/account?m=bad-name", &[]));
    };
    set_own_name(&web, &account.email, account.id, name).await?;
    Ok(redirect("/account?m=name", &[]))
}

/// Stores `user`'s new friendly name, then tells watchers (`NLN`) and the user's own client
/// (`REA 0`), as the NS does for `REA`.
///
/// # Errors
///
/// Store failures.
pub async fn set_own_name(
    web: &Web,
    user: &Passport,
    id: crate::store::AccountId,
    name: FriendlyName,
) -> Result<(), WebError> {
    let version = match web.store.set_friendly_name(id, name.as_str()).await {
        Ok(v) => v,
        Err(ListError::InvalidName) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    web.hub.set_name(user, name.clone());
    web.hub.send_to(
        user,
        ServerMessage::Rea {
            trid: TrId(0),
            version,
            handle: user.clone(),
            name,
        },
    );
    Ok(())
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    password: String,
    password2: String,
}

/// `POST /account/password`: other website sessions end; this one continues in a new session.
pub async fn change_password(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    if form.password != form.password2 {
        return Ok(redirect("/account?m=mismatch", &[]));
    }
    if !strong_enough(&form.password, account.email.as_str()) {
        return Ok(redirect("/account?m=weak", &[]));
    }
    let current = Secret::new(form.current);
    match check_password(&web, &account.email, &current, visitor.ip).await? {
        Err(()) => return Ok(redirect("/account?m=slow-down", &[])),
        Ok(None) => return Ok(redirect("/account?m=wrong-password", &[])),
        Ok(Some(_)) => {}
    }
    web.store
        .set_password(&account.email, Secret::new(form.password))
        .await?;
    web.store.end_web_sessions(account.id).await?;
    let session = web.store.create_web_session(account.id).await?;
    tracing::info!(handle = %account.email, "website: password changed");
    Ok(redirect(
        "/account?m=password",
        &[visitor.session_cookie(&session)],
    ))
}

/// The delete form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    csrf: String,
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /account/delete`.
pub async fn delete_account(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    if form.confirm != "yes" {
        return Ok(redirect("/account", &[]));
    }
    let password = Secret::new(form.password);
    match check_password(&web, &account.email, &password, visitor.ip).await? {
        Err(()) => return Ok(redirect("/account?m=slow-down", &[])),
        Ok(None) => return Ok(redirect("/account?m=wrong-password", &[])),
        Ok(Some(_)) => {}
    }
    delete_everything(&web, &account.email).await?;
    Ok(redirect("/?m=deleted", &[visitor.clear_session_cookie()]))
}

/// Deletes `user` with everything the server holds (lists, groups, tokens, sessions, API keys,
/// history through the store's cascades) and ends its online session.
///
/// # Errors
///
/// Store failures.
pub async fn delete_everything(web: &Web, user: &Passport) -> Result<(), WebError> {
    web.hub.kick(user, None, OutReason::Oth);
    match web.store.delete_account(user).await {
        Ok(()) | Err(AccountError::NoSuchAccount) => {}
        Err(e) => return Err(e.into()),
    }
    // The history went with the account (cascade); a new account of that handle starts off.
    web.history.set_enabled(user, false);
    tracing::info!(handle = %user, "account deleted");
    Ok(())
}

/// `GET /tokens`.
pub async fn tokens(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(note): Query<Note>,
) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let body = tokens_body(&web, &visitor, account, &note, None).await?;
    Ok(visitor.page("Access tokens", &body))
}

async fn tokens_body(
    web: &Web,
    visitor: &Visitor,
    account: &crate::store::Account,
    note: &Note,
    created: Option<(&str, &str, &str)>,
) -> Result<Markup, WebError> {
    let list = web.store.tokens(account.id).await?;
    let classes = web.store.token_address_classes(account.id).await?;
    let class_of = |id: TokenId| {
        classes
            .iter()
            .find(|(t, _)| *t == id)
            .map_or("—", |(_, c)| c.as_str())
    };
    let csrf = &visitor.csrf;
    Ok(html! {
        (note.show())
        @if let Some((label, token, client)) = created {
            section.card.created {
                h2 { "Token for “" (label) "”" }
                p { "Type this as the " strong { "password" } " in " (client) ". It is shown only now: copy it before you leave this page." }
                label { "Token"
                    input.token type="text" readonly value=(token) id="new-token" autocomplete="off" spellcheck="false";
                }
                button.copy type="button" data-copy="new-token" hidden { "Copy" }
                p.small { "To copy by hand: click in the field, select all (Ctrl+A) and copy (Ctrl+C)." }
                p { "Sign in as " strong { (account.email.as_str()) } " with this token." }
            }
        }
        section.card {
            h2 { "New token" }
            form method="post" action="/tokens" {
                (csrf_field(csrf))
                label { "Label (which computer or device)"
                    input type="text" name="label" maxlength="64" required placeholder="Living-room PC";
                }
                label { "Client"
                    select name="client" {
                        option value="msn7" { "MSN Messenger 7.x" }
                        option value="msn6" { "MSN Messenger 6.x" }
                        option value="msn5" { "MSN Messenger 5.x" }
                        option value="msn4" { "MSN Messenger 1.x–4.x" }
                        option value="other" { "Another client (Pidgin, aMSN, …)" }
                    }
                }
                button type="submit" { "Create token" }
            }
        }
        section.card {
            h2 { "Your tokens" }
            @if list.is_empty() {
                p { "None yet." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Label" } th { "Created" } th { "Last used" } th { "From" } th {} } }
                    tbody {
                        @for t in &list {
                            tr.revoked[t.revoked_at.is_some()] {
                                td { (t.label) }
                                td { (when(t.created_at)) }
                                td { (t.last_used_at.map_or_else(|| "never".to_owned(), when)) }
                                td { (class_of(t.id)) }
                                td {
                                    @if let Some(at) = t.revoked_at {
                                        "revoked " (when(at))
                                    } @else {
                                        form.inline method="post" action="/tokens/revoke" {
                                            (csrf_field(csrf))
                                            input type="hidden" name="id" value=(t.id.0);
                                            button.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    })
}

/// The new-token form.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: String,
    label: String,
    #[serde(default)]
    client: String,
}

/// `POST /tokens`: creates the token and shows it once (the response is not cached).
pub async fn create_token(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let label = form.label.trim();
    let client = match form.client.as_str() {
        "msn7" => "MSN Messenger 7.x",
        "msn6" => "MSN Messenger 6.x",
        "msn5" => "MSN Messenger 5.x",
        "msn4" => "MSN Messenger 1.x–4.x",
        _ => "your client",
    };
    let label_text = format!("{label} ({client})");
    let created = match web.store.new_token(account.id, &label_text).await {
        Ok(t) => t,
        Err(TokenError::TooMany) => return Ok(redirect("/tokens?m=too-many", &[])),
        Err(TokenError::InvalidLabel) => return Ok(redirect("/tokens", &[])),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(handle = %account.email, "website: token created");
    let body = tokens_body(
        &web,
        &visitor,
        account,
        &Note::default(),
        Some((label, created.token.expose(), client)),
    )
    .await?;
    let mut response = visitor.page("Access tokens", &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The revoke form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
    id: i64,
}

/// `POST /tokens/revoke`.
pub async fn revoke_token(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<RevokeForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    revoke(&web, &account.email, account.id, TokenId(form.id)).await?;
    Ok(redirect("/tokens?m=revoked", &[]))
}

/// Revokes `token` of `user` and ends the session it opened (`OUT OTH`).
///
/// # Errors
///
/// Store failures (an unknown or already revoked token is not an error).
pub async fn revoke(
    web: &Web,
    user: &Passport,
    id: crate::store::AccountId,
    token: TokenId,
) -> Result<bool, WebError> {
    match web.store.revoke_token(id, token).await {
        Ok(()) => {}
        Err(TokenError::NoSuchToken) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let ended = web.devices.revoked(&web.hub, user, token);
    tracing::info!(handle = %user, ended, "token revoked");
    Ok(ended)
}

/// `GET /contacts`.
pub async fn contacts(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(note): Query<Note>,
) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let snapshot = web.store.list_snapshot(account.id).await?;
    let csrf = &visitor.csrf;
    let group_name = |key: &relive_msnp::types::GroupKey| {
        snapshot
            .groups
            .iter()
            .find(|g| g.key.id == key.id)
            .map_or_else(String::new, |g| {
                String::from_utf8_lossy(&percent_decode(g.name.as_str())).into_owned()
            })
    };
    let body = html! {
        (note.show())
        section.card {
            h2 { "Privacy" }
            form method="post" action="/contacts/privacy" {
                (csrf_field(csrf))
                fieldset {
                    legend { "People not on your allow or block list" }
                    label.check { input type="radio" name="blp" value="AL" checked[snapshot.blp == Blp::Al]; " can see my status and message me" }
                    label.check { input type="radio" name="blp" value="BL" checked[snapshot.blp == Blp::Bl]; " cannot (only my allow list can)" }
                }
                label.check { input type="checkbox" name="searchable" value="on" checked[account.searchable]; " Others may find me with the member search (FND)" }
                label.check { input type="checkbox" name="password_login" value="on" checked[account.allow_password_login]; " Messenger 5.x–7.x may sign in with my password over HTTPS (not only with tokens)" }
                button type="submit" { "Save" }
            }
        }
        section.card {
            h2 { "Contacts" }
            p.small { "FL: your contact list · AL: allowed to see you · BL: blocked · RL: has you on their list." }
            @if snapshot.contacts.is_empty() {
                p { "Nobody yet. Add contacts from Messenger." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Contact" } th { "Name" } th { "Lists" } th { "Groups" } th {} } }
                    tbody {
                        @for c in &snapshot.contacts {
                            tr {
                                td { (c.email.as_str()) }
                                td { (c.friendly_name.to_display()) }
                                td.lists {
                                    @for (kind, tag) in [(ListKind::Fl, "FL"), (ListKind::Al, "AL"), (ListKind::Bl, "BL"), (ListKind::Rl, "RL")] {
                                        @if c.lists.contains(kind) { span.tag { (tag) } " " }
                                    }
                                }
                                td { (c.groups.iter().map(&group_name).collect::<Vec<_>>().join(", ")) }
                                td {
                                    form.inline method="post" action="/contacts/block" {
                                        (csrf_field(csrf))
                                        input type="hidden" name="handle" value=(c.email.as_str());
                                        @if c.lists.contains(ListKind::Bl) {
                                            input type="hidden" name="action" value="allow";
                                            button type="submit" { "Unblock" }
                                        } @else {
                                            input type="hidden" name="action" value="block";
                                            button.danger type="submit" { "Block" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            h3 { "Groups" }
            ul { @for g in &snapshot.groups { li { (String::from_utf8_lossy(&percent_decode(g.name.as_str()))) } } }
        }
    };
    Ok(visitor.page("Contacts & privacy", &body))
}

fn percent_decode(s: &str) -> Vec<u8> {
    relive_msnp::types::url_decode(s)
}

/// The privacy form (unchecked boxes are absent).
#[derive(Debug, Deserialize)]
pub struct PrivacyForm {
    csrf: String,
    blp: String,
    #[serde(default)]
    searchable: Option<String>,
    #[serde(default)]
    password_login: Option<String>,
}

/// `POST /contacts/privacy`: BLP as the client's `BLP` (watchers flip, the client gets
/// `BLP 0`), the FND and password switches as stored settings.
pub async fn privacy(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<PrivacyForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let blp = if form.blp == "BL" { Blp::Bl } else { Blp::Al };
    if blp != account.blp {
        let version = web.store.set_blp(account.id, blp).await?;
        web.hub.set_blp(&account.email, blp);
        web.hub.send_to(
            &account.email,
            ServerMessage::Blp {
                trid: TrId(0),
                version,
                value: blp,
            },
        );
    }
    web.store
        .set_searchable(&account.email, form.searchable.is_some())
        .await?;
    web.store
        .set_allow_password_login(&account.email, form.password_login.is_some())
        .await?;
    Ok(redirect("/contacts?m=privacy", &[]))
}

/// The block form.
#[derive(Debug, Deserialize)]
pub struct BlockForm {
    csrf: String,
    handle: String,
    action: String,
}

/// `POST /contacts/block`: block = `ADD BL` + `REM AL`, unblock = `REM BL` + `ADD AL`, each as
/// the NS makes it (the contact's view of the user flips at once) and told to the user's own
/// client as `ADD 0` / `REM 0`.
pub async fn block(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<BlockForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let Ok(contact) = Passport::parse(form.handle.trim()) else {
        return Ok(redirect("/contacts?m=no-contact", &[]));
    };
    let (add, remove) = if form.action == "allow" {
        (ListKind::Al, ListKind::Bl)
    } else {
        (ListKind::Bl, ListKind::Al)
    };
    // Off the opposite list first: the store keeps AL and BL exclusive, as for the client.
    for (list, adding) in [(remove, false), (add, true)] {
        let result = if adding {
            web.store
                .add_to_list_unnamed(account.id, list, &contact)
                .await
        } else {
            web.store
                .remove_from_list(account.id, list, &contact, None)
                .await
        };
        let outcome = match result {
            Ok(o) => o,
            Err(ListError::AlreadyOnList | ListError::NotOnList) => continue,
            Err(ListError::ListFull) => return Ok(redirect("/contacts?m=full", &[])),
            Err(ListError::ReservedHandle) => {
                return Ok(redirect("/contacts?m=no-contact", &[]));
            }
            Err(e) => return Err(e.into()),
        };
        web.hub
            .set_contact_bits(&account.email, &contact, outcome.bits);
        let message = if adding {
            ServerMessage::Add {
                trid: TrId(0),
                list,
                version: outcome.version,
                handle: contact.clone(),
                name: contact.clone().into(),
                group: None,
                guid: Guid::NIL,
            }
        } else {
            ServerMessage::Rem {
                trid: TrId(0),
                list,
                version: outcome.version,
                handle: contact.clone(),
                group: None,
            }
        };
        web.hub.send_to(&account.email, message);
    }
    Ok(redirect("/contacts?m=blocked", &[]))
}

/// `GET /connect`: this server's exact addresses per client generation.
pub async fn connect(State(web): State<Arc<Web>>, visitor: Visitor) -> Response {
    let endpoints = web.endpoints();
    let host = endpoints.public_host.clone();
    let ns = web.ns_address();
    let website = endpoints.website();
    let handle = visitor.account.as_ref().map_or_else(
        || "you@example.com".to_owned(),
        |a| a.email.as_str().to_owned(),
    );
    let https = if endpoints.https_port == 443 {
        host.clone()
    } else {
        format!("{host}:{}", endpoints.https_port)
    };
    let patch_ports = format!(
        "{}{}",
        if endpoints.https_port == 443 {
            String::new()
        } else {
            format!(" --https-port {}", endpoints.https_port)
        },
        if endpoints.http_port == 80 {
            String::new()
        } else {
            format!(" --http-port {}", endpoints.http_port)
        },
    );
    let body = html! {
        p { "This server is " strong { (host) } ". Sign in with your e-mail address and an "
            a href="/tokens" { "access token" } " as the password." }
        section.card {
            h2 { "1. Trust this server's certificate" }
            p { "Messenger 5.x–7.x sign in over HTTPS (" code { (https) } "). Download the certificate authority and install it into Windows' " em { "Trusted Root Certification Authorities" } " store (double-click it, " em { "Install Certificate" } ")." }
            p { a.button href=(crate::http::routes::CA_PATH) download { "relive-ca.crt" } }
            @if endpoints.legacy_port.is_some() || web.data_dir.join("legacy").exists() {
                p { "Windows XP: its TLS is too old for the main HTTPS port. This server also runs a legacy TLS listener"
                    @if let Some(p) = endpoints.legacy_port { " on port " code { (p) } }
                    "; trust " a href=(crate::http::routes::LEGACY_CA_PATH) { "relive-ca-legacy.crt" } " as well." }
            } @else {
                p.small { "Windows XP: its TLS (1.0, 3DES) is too old for the main HTTPS port; the operator can enable the legacy TLS listener (" code { "[passport] legacy_tls" } ")." }
            }
        }
        section.card {
            h2 { "2a. MSN Messenger 1.x – 4.x" }
            p { "They read the server from the registry. Download and open this file (it sets "
                code { "HKEY_CURRENT_USER\\Software\\Microsoft\\MessengerService\\Server" } " to " code { (ns) } "), then restart Messenger." }
            p { a.button href="/connect/relive.reg" download { "relive.reg" } }
        }
        section.card {
            h2 { "2b. MSN Messenger 5.x – 7.x" }
            p { "Patch the client (or its installer) so it talks to this server, with " code { "relive-gui" } " (a window: pick the file, type the server) or on the command line:" }
            pre { "relive-patch apply msnmsgr.exe --server " (host) (patch_ports) }
            p.small { "MSN 7.5 also signs in through " code { "msidcrl.dll" } ": patch it too (patching the 7.5 installer covers both)." }
        }
        section.card {
            h2 { "3. File transfers across routers (optional)" }
            p { "If your router cannot be reached from outside, run the companion agent next to Messenger:" }
            pre { "relive-relay agent --server " (host)
                @if let Some(port) = web.relay_quic_port { ":" (port) }
                " --handle " (handle) " --token TOKEN --ca relive-ca.crt" }
            p.small { "Replace TOKEN with one of your tokens." }
        }
        section.card {
            h2 { "Addresses" }
            table.kv {
                tr { th { "Notification server" } td { code { (ns) } } }
                tr { th { "Website, nexus (HTTP)" } td { code { (website) } } }
                tr { th { "Passport (HTTPS)" } td { code { "https://" (https) "/login2.srf" } } }
                @if let Some(p) = endpoints.legacy_port { tr { th { "Legacy TLS (XP)" } td { code { (host) ":" (p) } } } }
            }
        }
    };
    visitor.page("Connect your client", &body)
}

/// `GET /connect/relive.reg`: the MSN 1.x–4.x registry setting (REGEDIT4, CRLF, ANSI: what
/// Windows 95–XP all import).
pub async fn reg_file(State(web): State<Arc<Web>>) -> Response {
    let ns = web.ns_address();
    let body = format!(
        "REGEDIT4\r\n\r\n[HKEY_CURRENT_USER\\Software\\Microsoft\\MessengerService]\r\n\"Server\"=\"{ns}\"\r\n\r\n"
    );
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"relive.reg\"",
            ),
        ],
        body,
    )
        .into_response()
}
