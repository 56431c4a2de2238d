//! The history pages: turn the opt-in history on or off, list one's conversations (participants
//! and times), view one, search one's own history, export a conversation (plain text or JSON,
//! one file per conversation, as a download) and delete one's own copy (one conversation or
//! all). What is recorded and when: [`crate::switchboard::history`]; how it is stored:
//! [`crate::store::history`]. Every change is a CSRF-checked POST; nothing here logs text.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::{Visitor, Web, WebError, csrf_field, format_utc, redirect, when};
use crate::store::history::{
    Conversation, MAX_LISTED_CONVERSATIONS, MAX_MESSAGES_PER_OWNER, MAX_QUERY_CHARS,
    MAX_SEARCH_HITS, Message,
};

/// The history routes.
pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/history", get(overview))
        .route("/history/setting", post(setting))
        .route("/history/search", get(search))
        .route("/history/delete-all", post(delete_all))
        .route("/history/{id}", get(view))
        .route("/history/{id}/export.txt", get(export_text))
        .route("/history/{id}/export.json", get(export_json))
        .route("/history/{id}/delete", post(delete_one))
}

/// A one-time note after a redirect (`?m=`).
#[derive(Debug, Default, Deserialize)]
pub struct Note {
    m: Option<String>,
}

impl Note {
    fn show(&self) -> Markup {
        let text = match self.m.as_deref() {
            Some("on") => {
                "History is on. Conversations are recorded only while everyone in them has it on."
            }
            Some("off") => "History is off. What was recorded stays until you delete it.",
            Some("deleted") => "Your copy of that conversation was deleted.",
            Some("deleted-all") => "All your history was deleted.",
            _ => return html! {},
        };
        html! { p.notice role="status" { (text) } }
    }
}

fn participants(c: &Conversation) -> String {
    c.participants.join(", ")
}

fn export_links(id: i64) -> Markup {
    html! {
        a.button.secondary href=(format!("/history/{id}/export.txt")) download { "Export as text" }
        " "
        a.button.secondary href=(format!("/history/{id}/export.json")) download { "Export as JSON" }
    }
}

/// `GET /history`.
pub async fn overview(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(note): Query<Note>,
) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let on = web.store.history_enabled(account.id).await?;
    let list = web.store.history_conversations(account.id).await?;
    let csrf = &visitor.csrf;
    let body = html! {
        (note.show())
        section.card {
            h2 { "Recording" }
            p { "History is " strong id="history-state" { @if on { "on" } @else { "off" } } "." }
            p.small {
                "When it is on, the text messages of a conversation are kept on this server, "
                "encrypted, only while " strong { "everyone" } " in that conversation has history on. "
                "Each person keeps their own copy. Typing notices, invitations, file transfers, "
                "nudges, emoticons and ink are never kept. At most "
                (MAX_MESSAGES_PER_OWNER) " messages are kept; the oldest go first."
            }
            form method="post" action="/history/setting" {
                (csrf_field(csrf))
                @if on {
                    input type="hidden" name="on" value="no";
                    button.secondary id="history-toggle" type="submit" { "Turn history off" }
                } @else {
                    input type="hidden" name="on" value="yes";
                    button id="history-toggle" type="submit" { "Turn history on" }
                }
            }
        }
        section.card {
            h2 { "Search" }
            form method="get" action="/history/search" {
                label { "Text, name or address"
                    input type="search" name="q" maxlength=(MAX_QUERY_CHARS) required;
                }
                button type="submit" { "Search" }
            }
        }
        section.card {
            h2 { "Conversations" }
            @if list.is_empty() {
                p { "None recorded." }
            } @else {
                @if list.len() >= MAX_LISTED_CONVERSATIONS {
                    p.small { "The " (MAX_LISTED_CONVERSATIONS) " most recent are shown." }
                }
                div.scroll { table id="conversations" {
                    thead { tr { th { "With" } th { "Started" } th { "Last message" } th { "Messages" } th {} } }
                    tbody {
                        @for c in &list {
                            tr {
                                td { a href=(format!("/history/{}", c.id)) { (participants(c)) } }
                                td { (when(c.started_at)) }
                                td { (when(c.last_at)) }
                                td { (c.messages) }
                                td { (export_links(c.id)) }
                            }
                        }
                    }
                } }
            }
        }
        @if !list.is_empty() {
            section.card.danger {
                h2 { "Delete all history" }
                p { "Deletes your copy of every conversation. The others keep theirs." }
                form method="post" action="/history/delete-all" {
                    (csrf_field(csrf))
                    label.check { input type="checkbox" name="confirm" value="yes" required; " Delete all my history" }
                    button.danger type="submit" { "Delete all" }
                }
            }
        }
    };
    Ok(visitor.page("History", &body))
}

/// The on/off form.
#[derive(Debug, Deserialize)]
pub struct SettingForm {
    csrf: String,
    on: String,
}

/// `POST /history/setting`: stored first, then the recorder is told (takes effect at once).
pub async fn setting(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<SettingForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    let on = form.on == "yes";
    web.store.set_history_enabled(account.id, on).await?;
    web.history.set_enabled(&account.email, on);
    tracing::info!(handle = %account.email, on, "history setting changed");
    Ok(redirect(
        if on {
            "/history?m=on"
        } else {
            "/history?m=off"
        },
        &[],
    ))
}

/// The search query.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// `GET /history/search?q=`.
pub async fn search(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(query): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let q: String = query.q.chars().take(MAX_QUERY_CHARS).collect();
    let hits = web.store.search_history(account.id, &q).await?;
    let body = html! {
        form method="get" action="/history/search" {
            label { "Text, name or address"
                input type="search" name="q" maxlength=(MAX_QUERY_CHARS) value=(q) required;
            }
            button type="submit" { "Search" }
        }
        @if hits.is_empty() {
            p id="no-hits" { "Nothing found." }
        } @else {
            @if hits.len() >= MAX_SEARCH_HITS {
                p.small { "The " (MAX_SEARCH_HITS) " most recent matches are shown." }
            }
            ul id="hits" {
                @for h in &hits {
                    li {
                        a href=(format!("/history/{}", h.conversation)) { (when(h.message.sent_at)) }
                        " " strong { (h.message.name) } " (" (h.message.sender) "): "
                        (excerpt(&h.message.text))
                    }
                }
            }
        }
        p { a href="/history" { "Back to the history" } }
    };
    Ok(visitor.page("Search the history", &body))
}

fn not_found(visitor: &Visitor) -> Response {
    let mut r = visitor.page(
        "Not found",
        &html! { p.notice { "You have no such conversation." } p { a href="/history" { "Back to the history" } } },
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// The visitor's conversation `id` with its messages, or the not-found page.
async fn owned(
    web: &Web,
    visitor: &Visitor,
    id: i64,
) -> Result<Result<(Conversation, Vec<Message>), Response>, WebError> {
    let account = visitor.account()?;
    Ok(web
        .store
        .history_conversation(account.id, id)
        .await?
        .ok_or_else(|| not_found(visitor)))
}

/// `GET /history/{id}`.
pub async fn view(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let (c, messages) = match owned(&web, &visitor, id).await? {
        Ok(found) => found,
        Err(missing) => return Ok(missing),
    };
    let csrf = &visitor.csrf;
    let body = html! {
        p { "With " strong { (participants(&c)) } ", " (when(c.started_at)) " to " (when(c.last_at)) "." }
        p { (export_links(c.id)) }
        ol.conversation id="messages" {
            @for m in &messages {
                li {
                    span.small { (format_utc(m.sent_at)) } " "
                    strong title=(m.sender) { (m.name) } ": "
                    span.text { (m.text) }
                }
            }
        }
        section.card.danger {
            h2 { "Delete this conversation" }
            p { "Deletes your copy. The others keep theirs." }
            form method="post" action=(format!("/history/{}/delete", c.id)) {
                (csrf_field(csrf))
                button.danger id="delete-conversation" type="submit" { "Delete my copy" }
            }
        }
        p { a href="/history" { "Back to the history" } }
    };
    Ok(visitor.page("Conversation", &body))
}

/// A conversation as the JSON export writes it.
#[derive(Debug, Serialize)]
struct Export<'a> {
    conversation: i64,
    owner: &'a str,
    participants: &'a [String],
    started_at: i64,
    last_at: i64,
    messages: &'a [Message],
}

fn download(content_type: &'static str, name: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The plain-text export: a header, then `[time UTC] name (handle): text`, continuation lines
/// indented by two spaces.
#[must_use]
pub fn render_text(owner: &str, c: &Conversation, messages: &[Message]) -> String {
    let mut out = format!(
        "Relive conversation history\nOwner: {owner}\nParticipants: {}\nStarted: {} UTC\nLast message: {} UTC\n\n",
        participants(c),
        format_utc(c.started_at),
        format_utc(c.last_at)
    );
    for m in messages {
        let text = m.text.replace("\r\n", "\n").replace('\n', "\n  ");
        out.push_str(&format!(
            "[{}] {} ({}): {}\n",
            format_utc(m.sent_at),
            m.name,
            m.sender,
            text
        ));
    }
    out
}

/// `GET /history/{id}/export.txt`.
pub async fn export_text(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let (c, messages) = match owned(&web, &visitor, id).await? {
        Ok(found) => found,
        Err(missing) => return Ok(missing),
    };
    let text = render_text(account.email.as_str(), &c, &messages);
    Ok(download(
        "text/plain; charset=utf-8",
        format!("relive-history-{id}.txt"),
        text.into_bytes(),
    ))
}

/// `GET /history/{id}/export.json`.
pub async fn export_json(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let account = visitor.account()?;
    let (c, messages) = match owned(&web, &visitor, id).await? {
        Ok(found) => found,
        Err(missing) => return Ok(missing),
    };
    let json = serde_json::to_vec_pretty(&Export {
        conversation: c.id,
        owner: account.email.as_str(),
        participants: &c.participants,
        started_at: c.started_at,
        last_at: c.last_at,
        messages: &messages,
    })
    .map_err(|_| WebError::Store(crate::store::StoreError::Crypto))?;
    Ok(download(
        "application/json",
        format!("relive-history-{id}.json"),
        json,
    ))
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /history/{id}/delete`: the caller's copy only.
pub async fn delete_one(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    if !web
        .store
        .delete_history_conversation(account.id, id)
        .await?
    {
        return Ok(not_found(&visitor));
    }
    Ok(redirect("/history?m=deleted", &[]))
}

/// `POST /history/delete-all` (with `confirm=yes`).
pub async fn delete_all(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    visitor.check(&form.csrf)?;
    let account = visitor.account()?;
    if form.confirm != "yes" {
        return Ok(redirect("/history", &[]));
    }
    web.store.delete_all_history(account.id).await?;
    Ok(redirect("/history?m=deleted-all", &[]))
}
