//! The mailbox and pager pages (issue 18), and the Messenger's "go to my inbox" sign-in.
//!
//! * `/mail` (`?folder=inbox|sent|deleted`), `/mail/folders`, `/mail/{id}` (opening an unread
//!   Inbox mail marks it read), `/mail/compose` (to accounts of this server only), and
//!   `POST /mail/delete` (to Deleted; from Deleted, for good). Sending tells an online
//!   recipient's client (new-mail notification); reading or deleting an unread Inbox mail tells
//!   the owner's (active-mail notification) — [`crate::mailbox`].
//! * `/mobile`: whether others may page this account (`MOB` and `MBE`, what `PRP` and `SYN`
//!   show), and the pages received, which can be deleted.
//! * `POST /` with a form (and its alias `POST /ppsecure/md5auth.srf`): the inbox sign-in the
//!   client's mail buttons post (fields `username`, `sl`, `auth`, `creds`, `rru` or `ru`, plus
//!   `mode`, `login`, `sid`, `kv`, `id`, `svc`, `js`, which are ignored). Checked as
//!   [`crate::mailbox`] describes; it has no CSRF token (the client builds it in a local file)
//!   and is authenticated by `creds` and the single-use `sl` instead. Success starts a website
//!   session and answers a page that moves on to `rru` with a `Refresh` header: a same-site
//!   navigation, so the `SameSite=Strict` session cookie is sent with it (a `303` from
//!   a cross-site POST would arrive without it). `rru` must be one of this site's mailbox,
//!   account or mobile paths, and `ru` an absolute URL on this site; anything else goes to the
//!   Inbox. Every failure answers the same page (no oracle); `auth` is an unguessable 128-bit
//!   value or Passport ticket, so no rate limiter is needed in front of the MD5 check. An empty
//!   `POST /` is still MSN 7.5's probe of the login server and gets an empty `200`.
//!
//! Mail to an address with no account here is kept in Sent and delivered nowhere, with the same
//! "sent" answer as a delivered one, so the form does not tell which addresses have accounts.
//! Nothing here logs a subject, body, page text, `auth` or `creds`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequest as _, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use relive_msnp::mail::{READ_FOLDER, TRASH_FOLDER};
use serde::Deserialize;

use super::{Visitor, Web, WebError, csrf_field, redirect, when};
use crate::mailbox::{self, SigninRefusal, parse_sl};
use crate::store::mail::{Folder, MAX_BODY_BYTES, MAX_SUBJECT_CHARS, SendOutcome};
use crate::store::{Passport, PhoneProp};

/// The routes of this module (merged into [`super::router`]; `POST /` is wired there).
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/ppsecure/md5auth.srf", post(inbox_signin))
        .route("/mail", get(mailbox))
        .route("/mail/folders", get(folders))
        .route("/mail/compose", get(compose_form).post(compose))
        .route("/mail/delete", post(delete))
        .route("/mail/{id}", get(read))
        .route("/mobile", get(mobile))
        .route("/mobile/pager", post(set_pager))
        .route("/mobile/delete", post(delete_page))
}

/// `?folder=` and `?m=`.
#[derive(Debug, Deserialize, Default)]
pub struct MailQuery {
    folder: Option<String>,
    m: Option<String>,
    to: Option<String>,
}

fn note(m: Option<&str>) -> Markup {
    let text = match m {
        Some("sent") => "Sent.",
        Some("deleted") => "Deleted.",
        Some("bad-to") => "That is not an e-mail address.",
        Some("slow-down") => "You have sent a lot of mail in the last hour. Try again later.",
        Some("full") => "The recipient's mailbox is full.",
        Some("pager") => "Pager setting saved.",
        _ => return html! {},
    };
    html! { p.notice { (text) } }
}

/// What a signed-out visitor sees on a mailbox page (a `200`: Messenger's links open here).
fn signed_out(visitor: &Visitor) -> Response {
    visitor.page(
        "Mail",
        &html! {
            p { "Sign in to read your mail and pages. From Messenger, its mail buttons sign you in by themselves." }
            p { a href="/signin" { "Sign in" } }
        },
    )
}

fn folder_nav(current: Folder) -> Markup {
    html! {
        p.small {
            @for (f, label) in [(Folder::Inbox, "Inbox"), (Folder::Sent, "Sent"), (Folder::Deleted, "Deleted")] {
                @if f == current { strong { (label) } } @else {
                    a href={ "/mail?folder=" (f.as_str()) } { (label) }
                }
                " · "
            }
            a href="/mail/compose" { "Compose" }
        }
    }
}

/// `GET /mail`.
pub async fn mailbox(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(q): Query<MailQuery>,
) -> Result<Response, WebError> {
    let Some(account) = &visitor.account else {
        return Ok(signed_out(&visitor));
    };
    let folder = q
        .folder
        .as_deref()
        .and_then(Folder::parse)
        .unwrap_or(Folder::Inbox);
    let mails = web.store.mailbox(account.id, folder).await?;
    let csrf = &visitor.csrf;
    let body = html! {
        (note(q.m.as_deref()))
        (folder_nav(folder))
        @if mails.is_empty() {
            p { "No messages." }
        } @else {
            table.mail {
                thead { tr {
                    th { @if folder == Folder::Sent { "To" } @else { "From" } }
                    th { "Subject" } th { "Date" } th {}
                } }
                tbody {
                    @for m in &mails {
                        tr class=[(!m.read).then_some("unread")] {
                            td { @if folder == Folder::Sent { (m.to_addr) } @else { (m.from_name) " <" (m.from_addr) ">" } }
                            td { a href={ "/mail/" (m.id) } {
                                @if m.subject.is_empty() { "(no subject)" } @else { (m.subject) }
                            } }
                            td { (when(m.created_at)) }
                            td {
                                form.inline method="post" action="/mail/delete" {
                                    (csrf_field(csrf))
                                    input type="hidden" name="id" value=(m.id);
                                    button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let title = match folder {
        Folder::Inbox => "Inbox",
        Folder::Sent => "Sent",
        Folder::Deleted => "Deleted",
    };
    Ok(visitor.page(title, &body))
}

/// `GET /mail/folders`.
pub async fn folders(State(web): State<Arc<Web>>, visitor: Visitor) -> Result<Response, WebError> {
    let Some(account) = &visitor.account else {
        return Ok(signed_out(&visitor));
    };
    let counts = web.store.mail_counts(account.id).await?;
    let body = html! {
        ul {
            li { a href="/mail?folder=inbox" { "Inbox" } " — " (counts.inbox_unread) " unread" }
            li { a href="/mail?folder=sent" { "Sent" } }
            li { a href="/mail?folder=deleted" { "Deleted" } " — " (counts.folders_unread) " unread" }
        }
        p.small { a href="/mail/compose" { "Compose" } }
    };
    Ok(visitor.page("Folders", &body))
}

/// `GET /mail/{id}`.
pub async fn read(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let Some(account) = &visitor.account else {
        return Ok(signed_out(&visitor));
    };
    let Some((mail, change)) = web.store.open_mail(account.id, id).await? else {
        return Ok((StatusCode::NOT_FOUND, visitor.page("No such message", &html! {
            p { "There is no such message in your mailbox." } p { a href="/mail" { "Back to the Inbox" } }
        })).into_response());
    };
    if change.left_unread_inbox {
        mailbox::notify_unread_left(&web.hub, &account.email, READ_FOLDER);
    }
    let body = html! {
        (folder_nav(mail.folder))
        section.card.mail-message {
            p { strong { "From: " } (mail.from_name) " <" (mail.from_addr) ">" }
            p { strong { "To: " } (mail.to_addr) }
            p { strong { "Date: " } (when(mail.created_at)) }
            pre.mail-body { (mail.body) }
        }
        p {
            a href={ "/mail/compose?to=" (mail.from_addr) } { "Reply" }
        }
        form method="post" action="/mail/delete" {
            (csrf_field(&visitor.csrf))
            input type="hidden" name="id" value=(mail.id);
            button type="submit" { "Delete" }
        }
    };
    let title = if mail.subject.is_empty() {
        "(no subject)".to_owned()
    } else {
        mail.subject.clone()
    };
    Ok(visitor.page(&title, &body))
}

/// `GET /mail/compose`.
pub async fn compose_form(
    visitor: Visitor,
    Query(q): Query<MailQuery>,
) -> Result<Response, WebError> {
    if visitor.account.is_none() {
        return Ok(signed_out(&visitor));
    }
    let to = q.to.unwrap_or_default();
    let body = html! {
        (note(q.m.as_deref()))
        (folder_nav(Folder::Sent))
        form.card method="post" action="/mail/compose" {
            (csrf_field(&visitor.csrf))
            label { "To (an account on this server)"
                input type="email" name="to" value=(to) maxlength="129" required;
            }
            label { "Subject"
                input type="text" name="subject" maxlength=(MAX_SUBJECT_CHARS);
            }
            label { "Message"
                textarea name="body" rows="10" maxlength=(MAX_BODY_BYTES) {}
            }
            button type="submit" { "Send" }
        }
    };
    Ok(visitor.page("Compose", &body))
}

/// The compose form.
#[derive(Debug, Deserialize)]
pub struct ComposeForm {
    csrf: String,
    to: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

/// `POST /mail/compose`.
pub async fn compose(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<ComposeForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let Ok(to) = Passport::parse(form.to.trim()) else {
        return Ok(redirect("/mail/compose?m=bad-to", &[]));
    };
    let subject: String = form
        .subject
        .trim()
        .chars()
        .take(MAX_SUBJECT_CHARS)
        .collect();
    match web
        .store
        .send_mail(account, &to, &subject, &form.body)
        .await?
    {
        SendOutcome::Sent { to, inbox_id } => {
            tracing::info!(from = %account.email, to = %to.email, bytes = form.body.len(), "mail sent");
            mailbox::notify_new_mail(
                &web.hub,
                &web.website(),
                &to.email,
                account.email.as_str(),
                &account.friendly_name.to_display(),
                &subject,
                inbox_id,
            );
            Ok(redirect("/mail?folder=sent&m=sent", &[]))
        }
        SendOutcome::NoSuchRecipient => {
            tracing::info!(from = %account.email, "mail to an address with no account kept in Sent");
            Ok(redirect("/mail?folder=sent&m=sent", &[]))
        }
        SendOutcome::MailboxFull => Ok(redirect("/mail/compose?m=full", &[])),
        SendOutcome::RateLimited => Ok(redirect("/mail/compose?m=slow-down", &[])),
    }
}

/// A form naming one row.
#[derive(Debug, Deserialize)]
pub struct IdForm {
    csrf: String,
    id: i64,
}

/// `POST /mail/delete`.
pub async fn delete(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<IdForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    if let Some(change) = web.store.delete_mail(account.id, form.id).await?
        && change.left_unread_inbox
    {
        mailbox::notify_unread_left(&web.hub, &account.email, TRASH_FOLDER);
    }
    Ok(redirect("/mail?m=deleted", &[]))
}

/// `GET /mobile`.
pub async fn mobile(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(q): Query<MailQuery>,
) -> Result<Response, WebError> {
    let Some(account) = &visitor.account else {
        return Ok(signed_out(&visitor));
    };
    let on = web.store.allows_pages(account.id).await?;
    let pages = web.store.pages(account.id).await?;
    let csrf = &visitor.csrf;
    let body = html! {
        (note(q.m.as_deref()))
        section.card {
            h2 { "Pager" }
            p { "This server is your pager: when your contacts page you (Messenger's "
                em { "Send a message to a mobile device" } "), the page waits here and your next "
                "Messenger sign-in shows it. Contacts you block cannot page you." }
            form method="post" action="/mobile/pager" {
                (csrf_field(csrf))
                input type="hidden" name="on" value=(if on { "0" } else { "1" });
                p { "Pages are " strong { (if on { "on" } else { "off" }) } ". "
                    button type="submit" { (if on { "Turn pages off" } else { "Allow pages" }) } }
            }
        }
        h2 { "Pages received" }
        @if pages.is_empty() {
            p { "No pages." }
        } @else {
            table.pages {
                thead { tr { th { "From" } th { "Message" } th { "Received" } th { "Call back" } th {} } }
                tbody {
                    @for p in &pages {
                        tr {
                            td { (p.from_addr) }
                            td { (p.body) }
                            td { (when(p.created_at)) @if p.delivered_at.is_none() { " (not yet shown in Messenger)" } }
                            td { @if let Some((loc, num)) = &p.callback { (loc) " " (num) } }
                            td {
                                form.inline method="post" action="/mobile/delete" {
                                    (csrf_field(csrf))
                                    input type="hidden" name="id" value=(p.id);
                                    button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(visitor.page("Mobile", &body))
}

/// The pager switch.
#[derive(Debug, Deserialize)]
pub struct PagerForm {
    csrf: String,
    on: String,
}

/// `POST /mobile/pager`: sets `MOB` (others may page me) and `MBE` (the mobile device, here
/// the server, is enabled) together.
pub async fn set_pager(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<PagerForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let value = if form.on == "1" { "Y" } else { "N" };
    web.store
        .set_phone(account.id, PhoneProp::Mob, Some(value))
        .await?;
    web.store
        .set_phone(account.id, PhoneProp::Mbe, Some(value))
        .await?;
    Ok(redirect("/mobile?m=pager", &[]))
}

/// `POST /mobile/delete`.
pub async fn delete_page(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<IdForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    web.store.delete_page(account.id, form.id).await?;
    Ok(redirect("/mobile?m=deleted", &[]))
}

/// The client's inbox sign-in form (unknown fields ignored).
#[derive(Debug, Deserialize, Default)]
pub struct InboxForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    sl: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    creds: String,
    #[serde(default)]
    rru: String,
    #[serde(default)]
    ru: String,
}

/// `POST /`: the inbox sign-in when a form is posted, otherwise MSN 7.5's empty probe.
pub async fn root_post(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    request: Request,
) -> Response {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return crate::http::routes::key_port_probe().await.into_response();
    }
    signin_request(web, visitor, request).await
}

/// `POST /ppsecure/md5auth.srf`.
pub async fn inbox_signin(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    request: Request,
) -> Response {
    signin_request(web, visitor, request).await
}

async fn signin_request(web: Arc<Web>, visitor: Visitor, request: Request) -> Response {
    let form = match Form::<InboxForm>::from_request(request, &()).await {
        Ok(Form(f)) => f,
        Err(_) => InboxForm::default(),
    };
    match check_signin(&web, &form).await {
        Ok(account) => match web.store.create_web_session(account).await {
            Ok(session) => {
                let to = landing(&form, &web.website());
                tracing::info!(handle = %form.username.trim(), "inbox sign-in from Messenger");
                let body = html! {
                    p { "Signed in. " a href=(to) { "Continue to your mailbox" } "." }
                };
                let mut response = visitor.page("Signing in", &body);
                let head = format!("0;url={to}");
                if let (Ok(c), Ok(r)) = (
                    header::HeaderValue::from_str(&visitor.session_cookie(&session)),
                    header::HeaderValue::from_str(&head),
                ) {
                    response.headers_mut().append(header::SET_COOKIE, c);
                    response.headers_mut().insert(header::REFRESH, r);
                }
                response
            }
            Err(error) => WebError::from(error).into_response(),
        },
        Err(reason) => {
            tracing::info!(handle = %form.username.trim(), %reason, "inbox sign-in refused");
            let body = html! {
                p.notice { "Messenger could not sign you in to your mailbox. Sign in with your password instead." }
                p { a href="/signin" { "Sign in" } }
            };
            (
                StatusCode::FORBIDDEN,
                visitor.page("Mailbox sign-in", &body),
            )
                .into_response()
        }
    }
}

async fn check_signin(
    web: &Web,
    form: &InboxForm,
) -> Result<crate::store::AccountId, SigninRefusal> {
    let sl = parse_sl(form.sl.trim()).ok_or(SigninRefusal::Malformed)?;
    if form.auth.is_empty() || form.auth.len() > 4096 || form.creds.len() != 32 {
        return Err(SigninRefusal::Malformed);
    }
    let grants = web.inbox();
    let candidate = grants.candidate(&form.auth, &form.username, sl)?;
    let secret = web
        .store
        .active_token_secret(candidate.account, candidate.token)
        .await
        .map_err(|_| SigninRefusal::Revoked)?
        .ok_or(SigninRefusal::Revoked)?;
    if !mailbox::creds_match(&form.auth, form.sl.trim(), secret.expose(), &form.creds) {
        return Err(SigninRefusal::WrongCreds);
    }
    grants.accept(&form.auth, sl)?;
    Ok(candidate.account)
}

/// Where a signed-in form goes: `rru` if it is one of this site's mailbox, account or mobile
/// paths, `ru` if it is such a URL on this site, else the Inbox.
fn landing(form: &InboxForm, website: &str) -> String {
    let allowed = |p: &str| {
        let path = p.split(['?', '#']).next().unwrap_or_default();
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.contains(['\\', '\r', '\n', '"', '<', '>', ' '])
            && ["/mail", "/account", "/mobile"]
                .iter()
                .any(|a| path == *a || path.starts_with(&format!("{a}/")))
    };
    let rru = form.rru.trim();
    if allowed(rru) {
        return rru.to_owned();
    }
    if let Some(path) = form.ru.trim().strip_prefix(website)
        && allowed(path)
    {
        return path.to_owned();
    }
    mailbox::INBOX_PATH.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(rru: &str, ru: &str) -> InboxForm {
        InboxForm {
            rru: rru.to_owned(),
            ru: ru.to_owned(),
            ..InboxForm::default()
        }
    }

    #[test]
    fn landing_stays_on_this_site() {
        let w = "http://host:8080";
        assert_eq!(landing(&form("/mail", ""), w), "/mail");
        assert_eq!(landing(&form("/mail/7", ""), w), "/mail/7");
        assert_eq!(
            landing(&form("/mail/compose?to=a@b.c", ""), w),
            "/mail/compose?to=a@b.c"
        );
        assert_eq!(landing(&form("/mobile", ""), w), "/mobile");
        for bad in [
            "//evil.example/mail",
            "http://evil/mail",
            "/admin",
            "/mailx",
            "/mail\r\nX: y",
            "/\\evil",
        ] {
            assert_eq!(landing(&form(bad, ""), w), "/mail", "{bad:?}");
        }
        assert_eq!(
            landing(&form("", "http://host:8080/account"), w),
            "/account"
        );
        assert_eq!(
            landing(&form("", "http://host:8080.evil/account"), w),
            "/mail"
        );
        assert_eq!(landing(&form("", "http://evil/account"), w), "/mail");
    }
}
