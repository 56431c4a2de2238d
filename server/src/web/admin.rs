//! The admin pages (accounts flagged with `relive-server user admin EMAIL`) and the actions the
//! JSON API shares: who is online (client version, dialect), accounts (search, disable/enable,
//! reset tokens, issue a password reset code), invite codes, API keys, a broadcast to everyone online, and a maintenance
//! countdown that ends every session with `OUT SSD`.
//!
//! A broadcast reaches every dialect as `MSG Hotmail Hotmail` with a
//! `text/x-msmsgsemailnotification` payload (every Messenger from 1.0 shows it as a toast; the
//! text is its subject); the maintenance notice is the service's own
//! `application/x-msmsgssystemmessage` `Type: 1` with the minutes left in `Arg1`, sent when the
//! countdown starts and again at 5, 2 and 1 minutes.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use maud::html;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{FriendlyName, OutReason, Passport, Token};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Maintenance, Visitor, Web, WebError, csrf_field, redirect, when};

/// Longest broadcast text, in bytes.
pub const MAX_BROADCAST_BYTES: usize = 400;

/// Longest maintenance countdown.
pub const MAX_MAINTENANCE: Duration = Duration::from_secs(24 * 3600);

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/account", post(account_action))
        .route("/admin/invites", post(new_invite))
        .route("/admin/broadcast", post(broadcast_form))
        .route("/admin/maintenance", post(maintenance_form))
        .route("/admin/api-keys", post(new_api_key))
}

/// One online session, as the admin page and the API show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OnlineSession {
    /// Handle.
    pub handle: String,
    /// Dialect (`MSNP7`), if negotiated.
    pub dialect: Option<String>,
    /// Client version from `CVR`, if sent.
    pub client_version: Option<String>,
    /// Status (`NLN`, `BSY`, …), once set.
    pub status: Option<String>,
}

/// Everyone online now.
#[must_use]
pub fn online(web: &Web) -> Vec<OnlineSession> {
    web.hub
        .online()
        .into_iter()
        .map(|u| {
            let device = web.devices.get(&u.handle).filter(|d| d.conn == u.conn);
            OnlineSession {
                handle: u.handle.as_str().to_owned(),
                dialect: u.dialect.map(|d| d.to_string()),
                client_version: device.and_then(|d| d.client),
                status: u.status.map(|s| s.to_string()),
            }
        })
        .collect()
}

fn hotmail() -> Token {
    #[allow(clippy::unwrap_used, reason = "a constant, valid token")]
    Token::parse("Hotmail").unwrap()
}

fn from_hotmail(payload: String) -> ServerMessage {
    ServerMessage::Msg {
        from: hotmail(),
        name: FriendlyName::from_display("Hotmail").unwrap_or_else(|_| {
            #[allow(clippy::unwrap_used, reason = "a constant, valid name")]
            FriendlyName::parse("Hotmail").unwrap()
        }),
        payload: Bytes::from(payload),
    }
}

/// Sends `text` to everyone online; returns how many sessions it was queued for. Text is cut to
/// [`MAX_BROADCAST_BYTES`] and line breaks become spaces (it is a MIME header value).
#[must_use]
pub fn broadcast(web: &Web, text: &str) -> usize {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    while clean.len() > MAX_BROADCAST_BYTES {
        clean.pop();
    }
    let website = web.endpoints().website();
    let payload = format!(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n\
         From: Relive\r\nMessage-URL: /\r\nPost-URL: {website}/\r\nSubject: {}\r\n\
         Dest-Folder: ACTIVE\r\nFrom-Addr: relive@{}\r\nid: 2\r\n\r\n",
        clean.trim(),
        web.endpoints().public_host
    );
    let sent = web.hub.send_to_all(from_hotmail(payload));
    tracing::info!(sent, bytes = clean.len(), "admin broadcast");
    sent
}

/// The maintenance system message: the server goes down in `minutes`.
fn maintenance_notice(minutes: u64) -> ServerMessage {
    from_hotmail(format!(
        "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\n\
         Type: 1\r\nArg1: {minutes}\r\n"
    ))
}

/// Starts (or restarts) a maintenance countdown of `length` (at most [`MAX_MAINTENANCE`]):
/// everyone online gets the system message now (minutes rounded up) and at 5, 2 and 1 minutes
/// left; at the end every session gets `OUT SSD`. Zero cancels a countdown in progress.
pub fn start_maintenance(web: &Arc<Web>, length: Duration) {
    let mut slot = web
        .maintenance
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(old) = slot.take() {
        old.cancel.cancel();
    }
    if length.is_zero() {
        tracing::info!("maintenance countdown cancelled");
        return;
    }
    let length = length.min(MAX_MAINTENANCE);
    let minutes = length.as_secs().div_ceil(60).max(1);
    let cancel = CancellationToken::new();
    let ends = Instant::now() + length;
    *slot = Some(Maintenance {
        ends,
        cancel: cancel.clone(),
    });
    drop(slot);
    tracing::info!(minutes, "maintenance countdown started");
    let web = Arc::clone(web);
    tokio::spawn(async move {
        web.hub.send_to_all(maintenance_notice(minutes));
        for left in [5u64, 2, 1, 0] {
            if left != 0 && left * 60 >= length.as_secs() {
                continue;
            }
            let at = ends - Duration::from_secs(left * 60);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(at.into()) => {}
            }
            if left > 0 {
                web.hub.send_to_all(maintenance_notice(left));
            }
        }
        let ended = end_all_sessions(&web);
        tracing::info!(ended, "maintenance: every session told OUT SSD");
        let mut slot = web
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|m| m.ends == ends) {
            *slot = None;
        }
    });
}

/// Tells every session `OUT SSD`; returns how many.
fn end_all_sessions(web: &Web) -> usize {
    web.hub
        .online()
        .iter()
        .filter(|u| web.hub.kick(&u.handle, Some(u.conn), OutReason::Ssd))
        .count()
}

/// Seconds left of a maintenance countdown in progress.
#[must_use]
pub fn maintenance_left(web: &Web) -> Option<u64> {
    web.maintenance
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|m| m.ends.saturating_duration_since(Instant::now()).as_secs())
}

/// Disables or enables `email`. Disabling ends its website sessions and its online session
/// (`OUT OTH`); its tokens stay, unusable until it is enabled again.
///
/// # Errors
///
/// [`crate::store::AccountError::NoSuchAccount`] or a store failure.
pub async fn set_disabled(web: &Web, email: &Passport, on: bool) -> Result<(), WebError> {
    web.store.set_disabled(email, on).await?;
    if on {
        if let Some(account) = web.store.account(email).await? {
            web.store.end_web_sessions(account.id).await?;
        }
        web.hub.kick(email, None, OutReason::Oth);
    }
    tracing::info!(handle = %email, disabled = on, "admin: account flag changed");
    Ok(())
}

/// Revokes every token of `email`, ending the sessions they opened; returns how many tokens.
///
/// # Errors
///
/// Store failures; `Ok(None)` for an unknown account.
pub async fn reset_tokens(web: &Web, email: &Passport) -> Result<Option<usize>, WebError> {
    let Some(account) = web.store.account(email).await? else {
        return Ok(None);
    };
    let ids = web.store.revoke_all_tokens(account.id).await?;
    for id in &ids {
        web.devices.revoked(&web.hub, email, *id);
    }
    tracing::info!(handle = %email, tokens = ids.len(), "admin: tokens reset");
    Ok(Some(ids.len()))
}

/// Issues a one-time password reset code for `email` (replacing an earlier one); returns the
/// code (show it once, never log it) and when it expires (Unix seconds).
///
/// # Errors
///
/// [`crate::store::AccountError::NoSuchAccount`] or a store failure.
pub async fn issue_reset_code(web: &Web, email: &Passport) -> Result<(String, i64), WebError> {
    let issued = web.store.create_reset_code(email).await?;
    tracing::info!(handle = %email, "admin: password reset code issued");
    Ok(issued)
}

/// A secret the admin page shows once, on top.
#[derive(Debug, Clone, Copy)]
enum ShowOnce<'a> {
    /// A new API key.
    ApiKey(&'a str),
    /// A reset code for an account, and when it expires.
    ResetCode(&'a Passport, &'a str, i64),
}

/// The admin page's query.
#[derive(Debug, Default, Deserialize)]
pub struct AdminQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    m: Option<String>,
}

async fn page(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(query): Query<AdminQuery>,
) -> Result<Response, WebError> {
    admin_page(&web, &visitor, &query, None).await
}

/// The admin page showing `secret` once (not cached).
async fn admin_page_once(
    web: &Arc<Web>,
    visitor: &Visitor,
    secret: ShowOnce<'_>,
) -> Result<Response, WebError> {
    let mut response = admin_page(web, visitor, &AdminQuery::default(), Some(secret)).await?;
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn admin_page(
    web: &Arc<Web>,
    visitor: &Visitor,
    query: &AdminQuery,
    once: Option<ShowOnce<'_>>,
) -> Result<Response, WebError> {
    let me = admin(visitor)?;
    let sessions = online(web);
    let accounts = web.store.search_accounts(query.q.trim(), 50).await?;
    let invites = web.store.invites().await?;
    let keys = web.store.api_keys(me.id).await?;
    let csrf = &visitor.csrf;
    let body = html! {
        @if let Some(m) = &query.m {
            p.notice role="status" { (match m.as_str() {
                "sent" => "Broadcast sent.",
                "maintenance" => "Maintenance countdown set.",
                "done" => "Done.",
                "unknown" => "No such account.",
                _ => "",
            }) }
        }
        @if let Some(ShowOnce::ApiKey(key)) = once {
            section.card.created {
                h2 { "New API key" }
                p { "Send it as " code { "Authorization: Bearer KEY" } " to " code { "/api/" } ". Shown only now." }
                label { "Key" input.token id="new-key" type="text" readonly value=(key) autocomplete="off" spellcheck="false"; }
                button.copy type="button" data-copy="new-key" hidden { "Copy" }
            }
        }
        @if let Some(ShowOnce::ResetCode(handle, code, expires)) = once {
            section.card.created {
                h2 { "Reset code for " (handle.as_str()) }
                p { "Give it to the account's owner (not by a channel others read): they set a new password with it on "
                    code { "/reset" } ". It works once, until " (when(expires)) "; a new code replaces it. Shown only now." }
                label { "Code" input.token id="new-code" type="text" readonly value=(code) autocomplete="off" spellcheck="false"; }
                button.copy type="button" data-copy="new-code" hidden { "Copy" }
            }
        }
        section.card {
            h2 { "Online now (" (sessions.len()) ")" }
            @if sessions.is_empty() { p { "Nobody." } } @else {
                div.scroll { table {
                    thead { tr { th { "Handle" } th { "Dialect" } th { "Client" } th { "Status" } } }
                    tbody { @for s in &sessions { tr {
                        td { (s.handle) }
                        td { (s.dialect.as_deref().unwrap_or("—")) }
                        td { (s.client_version.as_deref().unwrap_or("—")) }
                        td { (s.status.as_deref().unwrap_or("signing in")) }
                    } } }
                } }
            }
        }
        section.card {
            h2 { "Broadcast" }
            form method="post" action="/admin/broadcast" {
                (csrf_field(csrf))
                label { "Message to everyone online" input type="text" name="text" maxlength="400" required; }
                button type="submit" { "Send" }
            }
        }
        section.card {
            h2 { "Maintenance" }
            @if let Some(left) = maintenance_left(web) {
                p.notice { "Countdown running: " (left / 60) " min " (left % 60) " s left, then everyone gets OUT SSD." }
            }
            form method="post" action="/admin/maintenance" {
                (csrf_field(csrf))
                label { "Minutes until every client is signed out (0 cancels)" input type="number" name="minutes" min="0" max="1440" value="10" required; }
                button.danger type="submit" { "Start countdown" }
            }
        }
        section.card {
            h2 { "Accounts" }
            form.search method="get" action="/admin" {
                label { "Search" input type="search" name="q" value=(query.q); }
                button type="submit" { "Search" }
            }
            div.scroll { table {
                thead { tr { th { "Handle" } th { "Created" } th { "Flags" } th {} } }
                tbody { @for (a, is_admin, disabled) in &accounts { tr {
                    td { (a.email.as_str()) }
                    td { (when(a.created_at)) }
                    td { @if *is_admin { span.tag { "admin" } " " } @if *disabled { span.tag.bad { "disabled" } } }
                    td {
                        @for (action, label) in [(if *disabled { "enable" } else { "disable" }, if *disabled { "Enable" } else { "Disable" }), ("reset-tokens", "Reset tokens"), ("reset-code", "Reset code")] {
                            form.inline method="post" action="/admin/account" {
                                (csrf_field(csrf))
                                input type="hidden" name="email" value=(a.email.as_str());
                                input type="hidden" name="action" value=(action);
                                button type="submit" { (label) }
                            }
                        }
                    }
                } } }
            } }
        }
        section.card {
            h2 { "Invite codes" }
            p.small { "Needed to register when " code { "[web] registration = \"invite\"" } "." }
            form method="post" action="/admin/invites" { (csrf_field(csrf)) button type="submit" { "New invite code" } }
            ul { @for i in invites.iter().take(20) {
                li { code { (i.code) } " — " (when(i.created_at))
                    @if let Some(u) = &i.used_by { " — used by " (u) } }
            } }
        }
        section.card {
            h2 { "API keys" }
            p.small { "For the JSON API; its OpenAPI document is at " a href="/api/openapi.json" { "/api/openapi.json" } "." }
            form method="post" action="/admin/api-keys" {
                (csrf_field(csrf))
                label { "Label" input type="text" name="label" maxlength="64" required; }
                button type="submit" { "Create API key" }
            }
            ul { @for k in &keys { li { (k.label) " — " (when(k.created_at)) } } }
        }
    };
    Ok(visitor.page("Admin", &body))
}

fn admin(visitor: &Visitor) -> Result<&crate::store::Account, WebError> {
    let account = visitor.account()?;
    if visitor.admin {
        Ok(account)
    } else {
        Err(WebError::Forbidden)
    }
}

/// An account action.
#[derive(Debug, Deserialize)]
pub struct AccountForm {
    csrf: String,
    email: String,
    action: String,
}

async fn account_action(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<AccountForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    admin(&visitor)?;
    let Ok(email) = Passport::parse(form.email.trim()) else {
        return Ok(redirect("/admin?m=unknown", &[]));
    };
    let result = match form.action.as_str() {
        "disable" => set_disabled(&web, &email, true).await.map(|()| true),
        "enable" => set_disabled(&web, &email, false).await.map(|()| true),
        "reset-tokens" => reset_tokens(&web, &email).await.map(|n| n.is_some()),
        "reset-code" => match issue_reset_code(&web, &email).await {
            Ok((code, expires)) => {
                let once = ShowOnce::ResetCode(&email, &code, expires);
                return admin_page_once(&web, &visitor, once).await;
            }
            Err(e) => Err(e),
        },
        _ => Ok(false),
    };
    match result {
        Ok(true) => Ok(redirect("/admin?m=done", &[])),
        Ok(false) | Err(WebError::Account(crate::store::AccountError::NoSuchAccount)) => {
            Ok(redirect("/admin?m=unknown", &[]))
        }
        Err(e) => Err(e),
    }
}

async fn new_invite(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<super::pages::CsrfForm>,
) -> Result<Response, WebError> {
    visitor.check(form.csrf())?;
    let me = admin(&visitor)?;
    web.store.create_invite(me.id).await?;
    Ok(redirect("/admin?m=done", &[]))
}

/// The broadcast form.
#[derive(Debug, Deserialize)]
pub struct BroadcastForm {
    csrf: String,
    text: String,
}

async fn broadcast_form(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<BroadcastForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    admin(&visitor)?;
    let _sent = broadcast(&web, &form.text);
    Ok(redirect("/admin?m=sent", &[]))
}

/// The maintenance form.
#[derive(Debug, Deserialize)]
pub struct MaintenanceForm {
    csrf: String,
    minutes: u32,
}

async fn maintenance_form(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<MaintenanceForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    admin(&visitor)?;
    start_maintenance(&web, Duration::from_secs(u64::from(form.minutes) * 60));
    Ok(redirect("/admin?m=maintenance", &[]))
}

/// The API key form.
#[derive(Debug, Deserialize)]
pub struct ApiKeyForm {
    csrf: String,
    label: String,
}

async fn new_api_key(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<ApiKeyForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let me = admin(&visitor)?;
    let key = web.store.create_api_key(me.id, form.label.trim()).await?;
    tracing::info!(handle = %me.email, "admin: API key created");
    admin_page_once(&web, &visitor, ShowOnce::ApiKey(&key)).await
}
