//! The message history: opt-in (off by default), one copy per member, sealed at rest.
//!
//! - A per-account setting ([`Store::set_history_enabled`]); no row means off.
//! - [`Store::append_history`] writes a batch of [`Record`]s from the switchboard's background
//!   writer in one transaction. Each record is written once per member (each member owns a
//!   conversation row and message rows and deletes only those), and only if every member's
//!   setting is still on when the batch is written (the switchboard already checked consent
//!   when the message was relayed; this closes the window of a setting turned off since).
//! - Sealing: ChaCha20-Poly1305 ([`super::tokens::seal_bytes`], as for tokens) under a key
//!   derived per owner from the server key with HKDF-SHA256 (salt `relive history v1`, info
//!   `owner` ‖ account id). The associated data binds the owner, the message id, the
//!   conversation id, the time and the sender's handle, so a ciphertext cannot be moved to
//!   another owner, message or conversation, nor its plaintext metadata changed. The sender's
//!   friendly name and the text are inside the ciphertext; handles and times are metadata.
//! - Bounds: at most [`MAX_MESSAGES_PER_OWNER`] messages per owner (the oldest go first),
//!   listing at most [`MAX_LISTED_CONVERSATIONS`] conversations, search scans at most the
//!   newest [`MAX_MESSAGES_PER_OWNER`] messages and returns at most [`MAX_SEARCH_HITS`].
//!
//! Plain SQL only (`INSERT … RETURNING`, `ON CONFLICT … DO UPDATE`, no SQLite-only
//! functions), so the same statements run on PostgreSQL.

use std::collections::{BTreeSet, HashMap};

use super::db::{Conn as Connection, OptionalExtension as _, params};
use ring::aead::{CHACHA20_POLY1305, LessSafeKey, UnboundKey};
use ring::hkdf;
use serde::{Deserialize, Serialize};

use super::accounts::account_by_email;
use super::tokens::{open_bytes, seal_bytes};
use super::types::{AccountId, Passport};
use super::{Store, StoreError, now_unix};
use crate::secret::ServerKey;

/// Most messages kept per owner; beyond it the oldest are deleted as new ones are written.
pub const MAX_MESSAGES_PER_OWNER: i64 = 50_000;

/// Most conversations one listing shows (the most recent).
pub const MAX_LISTED_CONVERSATIONS: usize = 500;

/// Most hits one search returns.
pub const MAX_SEARCH_HITS: usize = 100;

/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

const HKDF_SALT: &[u8] = b"relive history v1";
const AAD_LABEL: &[u8] = b"relive-history-v1";

/// One text message to record for every member present when it was relayed.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// The switchboard session's random key (one conversation per owner and key).
    pub room_key: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who sent it.
    pub sender: Passport,
    /// Their friendly name, as shown (decoded).
    pub sender_name: String,
    /// The message text.
    pub text: String,
    /// Everyone in the room (the sender included), each a future owner of a copy.
    pub members: Vec<Passport>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text or the name.
        f.debug_struct("Record")
            .field("room_key", &self.room_key)
            .field("bytes", &self.text.len())
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// One conversation as its owner lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    /// Row id (per owner).
    pub id: i64,
    /// Handles of everyone recorded as present, sorted.
    pub participants: Vec<String>,
    /// Unix seconds of the first recorded message.
    pub started_at: i64,
    /// Unix seconds of the latest.
    pub last_at: i64,
    /// Messages kept.
    pub messages: i64,
}

/// One decrypted message.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Row id.
    pub id: i64,
    /// The sender's handle.
    pub sender: String,
    /// The sender's friendly name then.
    pub name: String,
    /// Unix seconds.
    pub sent_at: i64,
    /// The text.
    pub text: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("sender", &self.sender)
            .field("bytes", &self.text.len())
            .finish_non_exhaustive()
    }
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The conversation it is in.
    pub conversation: i64,
    /// The message.
    pub message: Message,
}

/// What [`Store::append_history`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Message rows written (one per owner and record).
    pub written: usize,
    /// Records not written: a member's setting is off now, or a member has no account.
    pub skipped: usize,
    /// Old rows deleted to keep owners under [`MAX_MESSAGES_PER_OWNER`].
    pub pruned: usize,
}

/// The sealed part of a message.
#[derive(Serialize, Deserialize)]
struct Sealed {
    name: String,
    text: String,
}

/// The cipher of `owner`'s history: ChaCha20-Poly1305 under HKDF-SHA256(server key, owner).
pub(crate) fn owner_key(key: &ServerKey, owner: AccountId) -> Result<LessSafeKey, StoreError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(key.as_bytes());
    let id = owner.0.to_be_bytes();
    let info = [b"owner".as_slice(), id.as_slice()];
    let okm = prk
        .expand(&info, &CHACHA20_POLY1305)
        .map_err(|_| StoreError::Crypto)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The associated data of one message row.
fn aad(owner: AccountId, message: i64, conversation: i64, sent_at: i64, sender: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 32 + sender.len());
    aad.extend_from_slice(AAD_LABEL);
    for n in [owner.0, message, conversation, sent_at] {
        aad.extend_from_slice(&n.to_be_bytes());
    }
    aad.extend_from_slice(sender.as_bytes());
    aad
}

/// Where a sealed message belongs: what its associated data binds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub(crate) owner: AccountId,
    pub(crate) message: i64,
    pub(crate) conversation: i64,
    pub(crate) sent_at: i64,
    pub(crate) sender: &'a str,
}

impl Place<'_> {
    fn aad(&self) -> Vec<u8> {
        aad(
            self.owner,
            self.message,
            self.conversation,
            self.sent_at,
            self.sender,
        )
    }
}

/// Seals `name` and `text` for `place` under `key` (the owner's key): `(nonce, ciphertext)`.
pub(crate) fn seal_message(
    key: &LessSafeKey,
    place: &Place<'_>,
    name: &str,
    text: &str,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let plain = serde_json::to_vec(&Sealed {
        name: name.to_owned(),
        text: text.to_owned(),
    })
    .map_err(|_| StoreError::Crypto)?;
    seal_bytes(key, &place.aad(), plain)
}

/// Opens what [`seal_message`] sealed: `(name, text)`, or `None` for the wrong key or place.
pub(crate) fn open_message(
    key: &LessSafeKey,
    place: &Place<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<(String, String)> {
    let plain = open_bytes(key, &place.aad(), nonce, ciphertext)?;
    let sealed: Sealed = serde_json::from_slice(&plain).ok()?;
    Some((sealed.name, sealed.text))
}

fn enabled(conn: &Connection, owner: AccountId) -> super::db::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT enabled FROM history_settings WHERE account_id = ?1")?
        .query_row([owner.0], |r| r.get::<_, i64>(0))
        .optional()?
        == Some(1))
}

/// The owners of `record` (distinct accounts), or `None` if one has no account or has the
/// history off now.
fn consenting_owners(
    conn: &Connection,
    record: &Record,
) -> super::db::Result<Option<Vec<AccountId>>> {
    let mut owners = Vec::with_capacity(record.members.len());
    for member in &record.members {
        let Some(account) = account_by_email(conn, member)? else {
            return Ok(None);
        };
        if !enabled(conn, account.id)? {
            return Ok(None);
        }
        if !owners.contains(&account.id) {
            owners.push(account.id);
        }
    }
    Ok(Some(owners))
}

/// The conversation row of `owner` for `record`'s room, created or updated (participants
/// merged, `last_at` moved).
fn conversation_for(
    conn: &Connection,
    owner: AccountId,
    record: &Record,
) -> super::db::Result<i64> {
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, participants FROM history_conversations \
             WHERE owner_id = ?1 AND room_key = ?2",
        )?
        .query_row(params![owner.0, record.room_key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let mut participants: BTreeSet<String> = record
        .members
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    match found {
        Some((id, known)) => {
            participants.extend(
                known
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            conn.prepare_cached(
                "UPDATE history_conversations SET participants = ?2, \
                 last_at = CASE WHEN last_at > ?3 THEN last_at ELSE ?3 END WHERE id = ?1",
            )?
            .execute(params![id, join(&participants), record.at])?;
            Ok(id)
        }
        None => conn
            .prepare_cached(
                "INSERT INTO history_conversations \
                 (owner_id, room_key, participants, started_at, last_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
            )?
            .query_row(
                params![owner.0, record.room_key, join(&participants), record.at],
                |r| r.get(0),
            ),
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}

/// Deletes `owner`'s oldest messages beyond `cap`, and conversations left empty.
fn prune(conn: &Connection, owner: AccountId, cap: i64) -> super::db::Result<usize> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM history_messages WHERE owner_id = ?1")?
        .query_row([owner.0], |r| r.get(0))?;
    if count <= cap {
        return Ok(0);
    }
    let pruned = conn
        .prepare_cached(
            "DELETE FROM history_messages WHERE id IN \
             (SELECT id FROM history_messages WHERE owner_id = ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![owner.0, count - cap])?;
    conn.prepare_cached(
        "DELETE FROM history_conversations WHERE owner_id = ?1 AND NOT EXISTS \
         (SELECT 1 FROM history_messages m WHERE m.conversation_id = history_conversations.id)",
    )?
    .execute([owner.0])?;
    Ok(pruned)
}

fn append(
    conn: &mut Connection,
    key: &ServerKey,
    records: &[Record],
) -> Result<Appended, StoreError> {
    let tx = conn.transaction()?;
    let mut done = Appended::default();
    let mut keys: HashMap<AccountId, LessSafeKey> = HashMap::new();
    for record in records {
        let Some(owners) = consenting_owners(&tx, record)? else {
            done.skipped += 1;
            continue;
        };
        for owner in owners {
            let conversation = conversation_for(&tx, owner, record)?;
            let message: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM history_messages")?
                .query_row([], |r| r.get(0))?;
            let cipher = match keys.entry(owner) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(owner_key(key, owner)?),
            };
            let place = Place {
                owner,
                message,
                conversation,
                sent_at: record.at,
                sender: record.sender.as_str(),
            };
            let (nonce, ciphertext) =
                seal_message(cipher, &place, &record.sender_name, &record.text)?;
            tx.prepare_cached(
                "INSERT INTO history_messages \
                 (id, conversation_id, owner_id, sender, sent_at, nonce, ciphertext) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                message,
                conversation,
                owner.0,
                record.sender.as_str(),
                record.at,
                nonce,
                ciphertext
            ])?;
            done.written += 1;
        }
    }
    for owner in keys.keys() {
        done.pruned += prune(&tx, *owner, MAX_MESSAGES_PER_OWNER)?;
    }
    tx.commit()?;
    Ok(done)
}

/// A stored row before decryption.
struct Row {
    id: i64,
    conversation: i64,
    sender: String,
    sent_at: i64,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Row {
    fn from_sql(r: &super::db::Row<'_>) -> super::db::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            conversation: r.get(1)?,
            sender: r.get(2)?,
            sent_at: r.get(3)?,
            nonce: r.get(4)?,
            ciphertext: r.get(5)?,
        })
    }

    /// Decrypts the row; `None` (logged by id only) if it does not open.
    fn open(self, key: &LessSafeKey, owner: AccountId) -> Option<Message> {
        let place = Place {
            owner,
            message: self.id,
            conversation: self.conversation,
            sent_at: self.sent_at,
            sender: &self.sender,
        };
        let Some((name, text)) = open_message(key, &place, &self.nonce, &self.ciphertext) else {
            tracing::warn!(
                message = self.id,
                "history: a message does not decrypt; skipped"
            );
            return None;
        };
        Some(Message {
            id: self.id,
            sender: self.sender,
            name,
            sent_at: self.sent_at,
            text,
        })
    }
}

const ROW_COLUMNS: &str = "id, conversation_id, sender, sent_at, nonce, ciphertext";

fn conversation_from_row(r: &super::db::Row<'_>) -> super::db::Result<Conversation> {
    let participants: String = r.get(1)?;
    Ok(Conversation {
        id: r.get(0)?,
        participants: participants
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        started_at: r.get(2)?,
        last_at: r.get(3)?,
        messages: r.get(4)?,
    })
}

const CONVERSATION_COLUMNS: &str = "c.id, c.participants, c.started_at, c.last_at, \
     (SELECT COUNT(*) FROM history_messages m WHERE m.conversation_id = c.id)";

/// Whether `query` (already lower-cased) is in `message`'s text or sender's name or handle.
fn matches(message: &Message, query: &str) -> bool {
    message.text.to_lowercase().contains(query)
        || message.name.to_lowercase().contains(query)
        || message.sender.contains(query)
}

impl Store {
    /// Whether `owner` has the history on.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn history_enabled(&self, owner: AccountId) -> Result<bool, StoreError> {
        self.call(move |conn| enabled(conn, owner)).await
    }

    /// Turns `owner`'s history on or off (what is already recorded stays until deleted).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn set_history_enabled(&self, owner: AccountId, on: bool) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO history_settings (account_id, enabled, changed_at) \
                 VALUES (?1, ?2, ?3) ON CONFLICT (account_id) DO UPDATE \
                 SET enabled = excluded.enabled, changed_at = excluded.changed_at",
            )?
            .execute(params![owner.0, i64::from(on), now_unix()])?;
            Ok(())
        })
        .await
    }

    /// The handles of every account with the history on (loaded once at start).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn history_enabled_handles(&self) -> Result<Vec<Passport>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT a.email FROM history_settings s JOIN accounts a ON a.id = s.account_id \
                 WHERE s.enabled = 1",
            )?;
            let handles = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .filter_map(|h| h.ok().and_then(|h| Passport::parse(&h).ok()))
                .collect();
            Ok(handles)
        })
        .await
    }

    /// Writes `records` (see the module documentation) in one transaction.
    ///
    /// # Errors
    ///
    /// Store or sealing failures; nothing of the batch is written then.
    pub async fn append_history(&self, records: Vec<Record>) -> Result<Appended, StoreError> {
        let key = self.key().clone();
        self.call_alone(move |conn| append(conn, &key, &records))
            .await
    }

    /// `owner`'s conversations, most recent first (at most [`MAX_LISTED_CONVERSATIONS`]).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn history_conversations(
        &self,
        owner: AccountId,
    ) -> Result<Vec<Conversation>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM history_conversations c \
                 WHERE c.owner_id = ?1 ORDER BY c.last_at DESC, c.id DESC LIMIT ?2"
            ))?;
            let list = stmt
                .query_map(
                    params![owner.0, MAX_LISTED_CONVERSATIONS as i64],
                    conversation_from_row,
                )?
                .collect::<super::db::Result<_>>()?;
            Ok(list)
        })
        .await
    }

    /// `owner`'s conversation `id` with its messages in order, or `None` if `owner` has no
    /// such conversation.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn history_conversation(
        &self,
        owner: AccountId,
        id: i64,
    ) -> Result<Option<(Conversation, Vec<Message>)>, StoreError> {
        let key = owner_key(self.key(), owner)?;
        self.call(move |conn| {
            let Some(conversation) = conn
                .prepare_cached(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM history_conversations c \
                     WHERE c.owner_id = ?1 AND c.id = ?2"
                ))?
                .query_row(params![owner.0, id], conversation_from_row)
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM history_messages \
                 WHERE owner_id = ?1 AND conversation_id = ?2 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map(params![owner.0, id], Row::from_sql)?
                .collect::<super::db::Result<Vec<_>>>()?;
            let messages = rows
                .into_iter()
                .filter_map(|row| row.open(&key, owner))
                .collect();
            Ok(Some((conversation, messages)))
        })
        .await
    }

    /// Messages of `owner` whose text, sender name or handle contains `query` (case-insensitive,
    /// newest first, at most [`MAX_SEARCH_HITS`], over the newest [`MAX_MESSAGES_PER_OWNER`]).
    /// An empty query (after trimming) or one longer than [`MAX_QUERY_CHARS`] finds nothing.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn search_history(
        &self,
        owner: AccountId,
        query: &str,
    ) -> Result<Vec<Hit>, StoreError> {
        let query = query.trim().to_lowercase();
        if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
            return Ok(Vec::new());
        }
        let key = owner_key(self.key(), owner)?;
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM history_messages \
                 WHERE owner_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let mut hits = Vec::new();
            for row in stmt.query_map(params![owner.0, MAX_MESSAGES_PER_OWNER], Row::from_sql)? {
                let row = row?;
                let conversation = row.conversation;
                if let Some(message) = row.open(&key, owner).filter(|m| matches(m, &query)) {
                    hits.push(Hit {
                        conversation,
                        message,
                    });
                    if hits.len() >= MAX_SEARCH_HITS {
                        break;
                    }
                }
            }
            Ok(hits)
        })
        .await
    }

    /// Deletes `owner`'s copy of conversation `id`; whether there was one. Other members'
    /// copies stay.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn delete_history_conversation(
        &self,
        owner: AccountId,
        id: i64,
    ) -> Result<bool, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "DELETE FROM history_messages WHERE owner_id = ?1 AND conversation_id = ?2",
            )?
            .execute(params![owner.0, id])?;
            let gone = tx
                .prepare_cached(
                    "DELETE FROM history_conversations WHERE owner_id = ?1 AND id = ?2",
                )?
                .execute(params![owner.0, id])?;
            tx.commit()?;
            Ok(gone > 0)
        })
        .await
    }

    /// Deletes all of `owner`'s history; the number of conversations deleted.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn delete_all_history(&self, owner: AccountId) -> Result<usize, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached("DELETE FROM history_messages WHERE owner_id = ?1")?
                .execute([owner.0])?;
            let gone = tx
                .prepare_cached("DELETE FROM history_conversations WHERE owner_id = ?1")?
                .execute([owner.0])?;
            tx.commit()?;
            Ok(gone)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;

    fn handle(s: &str) -> Passport {
        Passport::parse(s).unwrap()
    }

    fn place(owner: i64) -> Place<'static> {
        Place {
            owner: AccountId(owner),
            message: 7,
            conversation: 3,
            sent_at: 1_700_000_000,
            sender: "alice@example.com",
        }
    }

    #[test]
    fn sealing_round_trips_and_is_bound_to_owner_and_place() {
        let key = test_key();
        let alice = owner_key(&key, AccountId(1)).unwrap();
        let bob = owner_key(&key, AccountId(2)).unwrap();
        let (nonce, ct) = seal_message(&alice, &place(1), "Alice", "hello there").unwrap();
        assert!(!ct.windows(11).any(|w| w == b"hello there"));
        assert_eq!(
            open_message(&alice, &place(1), &nonce, &ct),
            Some(("Alice".to_owned(), "hello there".to_owned()))
        );
        // Another owner's key, or the right key with another owner in the associated data.
        assert_eq!(open_message(&bob, &place(1), &nonce, &ct), None);
        assert_eq!(open_message(&alice, &place(2), &nonce, &ct), None);
        // Moved to another message id, conversation, time or sender.
        for moved in [
            Place {
                message: 8,
                ..place(1)
            },
            Place {
                conversation: 4,
                ..place(1)
            },
            Place {
                sent_at: 1,
                ..place(1)
            },
            Place {
                sender: "mallory@example.com",
                ..place(1)
            },
        ] {
            assert_eq!(open_message(&alice, &moved, &nonce, &ct), None);
        }
        // Another server key.
        let other = owner_key(&ServerKey::from_bytes([7; 32]), AccountId(1)).unwrap();
        assert_eq!(open_message(&other, &place(1), &nonce, &ct), None);
    }

    async fn store_with(handles: &[&str]) -> (Store, Vec<AccountId>) {
        let store = Store::open_in_memory(test_key(), fast_options())
            .await
            .unwrap();
        let mut ids = Vec::new();
        for h in handles {
            let a = store
                .create_account(
                    &handle(h),
                    "N",
                    crate::secret::Secret::new("pw-pw-pw-pw".into()),
                )
                .await
                .unwrap();
            ids.push(a.id);
        }
        (store, ids)
    }

    fn record(room: i64, from: &str, text: &str, members: &[&str]) -> Record {
        Record {
            room_key: room,
            at: 1_700_000_000,
            sender: handle(from),
            sender_name: from.split('@').next().unwrap_or_default().to_owned(),
            text: text.to_owned(),
            members: members.iter().map(|m| handle(m)).collect(),
        }
    }

    #[tokio::test]
    async fn each_member_gets_a_copy_only_when_all_have_it_on() {
        let (store, ids) = store_with(&["a@x.com", "b@x.com", "c@x.com"]).await;
        assert!(
            !store.history_enabled(ids[0]).await.unwrap(),
            "off by default"
        );
        store.set_history_enabled(ids[0], true).await.unwrap();
        store.set_history_enabled(ids[1], true).await.unwrap();
        let done = store
            .append_history(vec![
                record(9, "a@x.com", "hi b", &["a@x.com", "b@x.com"]),
                // c never turned it on: not written for anyone.
                record(9, "a@x.com", "hi all", &["a@x.com", "b@x.com", "c@x.com"]),
            ])
            .await
            .unwrap();
        assert_eq!(
            done,
            Appended {
                written: 2,
                skipped: 1,
                pruned: 0
            }
        );
        assert_eq!(store.history_enabled_handles().await.unwrap().len(), 2);
        for owner in &ids[..2] {
            let list = store.history_conversations(*owner).await.unwrap();
            assert_eq!(list.len(), 1);
            let (_, messages) = store
                .history_conversation(*owner, list[0].id)
                .await
                .unwrap()
                .unwrap();
            let texts: Vec<_> = messages.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["hi b"]);
        }
        assert!(
            store
                .history_conversations(ids[2])
                .await
                .unwrap()
                .is_empty()
        );
        // Search is per owner; delete removes only the caller's copy.
        let hits = store.search_history(ids[1], "HI B").await.unwrap();
        assert_eq!(hits.len(), 1);
        let a_conv = store.history_conversations(ids[0]).await.unwrap()[0].id;
        // b cannot see or delete a's conversation by id.
        assert_eq!(
            store.history_conversation(ids[1], a_conv).await.unwrap(),
            None
        );
        assert!(
            !store
                .delete_history_conversation(ids[1], a_conv)
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_history_conversation(ids[0], a_conv)
                .await
                .unwrap()
        );
        assert!(
            store
                .history_conversations(ids[0])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.history_conversations(ids[1]).await.unwrap().len(), 1);
        assert_eq!(store.delete_all_history(ids[1]).await.unwrap(), 1);
        // Turned off: nothing more is written.
        store.set_history_enabled(ids[1], false).await.unwrap();
        let done = store
            .append_history(vec![record(9, "a@x.com", "again", &["a@x.com", "b@x.com"])])
            .await
            .unwrap();
        assert_eq!(done.written, 0);
    }

    #[tokio::test]
    async fn the_oldest_messages_go_beyond_the_cap() {
        let (store, ids) = store_with(&["a@x.com", "b@x.com"]).await;
        for id in &ids {
            store.set_history_enabled(*id, true).await.unwrap();
        }
        let both = ["a@x.com", "b@x.com"];
        store
            .append_history(vec![
                record(1, "a@x.com", "old room", &both),
                record(2, "a@x.com", "two", &both),
                record(2, "b@x.com", "three", &both),
            ])
            .await
            .unwrap();
        let owner = ids[0];
        let pruned = store.call(move |c| prune(c, owner, 2)).await.unwrap();
        assert_eq!(pruned, 1);
        // Room 1 lost its only message and went; room 2 is whole; b was not touched.
        let list = store.history_conversations(owner).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].messages, 2);
        assert_eq!(store.history_conversations(ids[1]).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn history_goes_with_the_account() {
        let (store, ids) = store_with(&["a@x.com", "b@x.com"]).await;
        for id in &ids {
            store.set_history_enabled(*id, true).await.unwrap();
        }
        let done = store
            .append_history(vec![record(1, "a@x.com", "bye", &["a@x.com", "b@x.com"])])
            .await
            .unwrap();
        assert_eq!(done.written, 2);
        store.delete_account(&handle("a@x.com")).await.unwrap();
        let gone = ids[0].0;
        let (messages, conversations, settings): (i64, i64, i64) = store
            .call(move |c| {
                let count = |table: &str| {
                    c.query_row(
                        &format!("SELECT COUNT(*) FROM {table} WHERE owner_id = ?1"),
                        [gone],
                        |r| r.get(0),
                    )
                };
                Ok::<_, StoreError>((
                    count("history_messages")?,
                    count("history_conversations")?,
                    c.query_row(
                        "SELECT COUNT(*) FROM history_settings WHERE account_id = ?1",
                        [gone],
                        |r| r.get(0),
                    )?,
                ))
            })
            .await
            .unwrap();
        assert_eq!((messages, conversations, settings), (0, 0, 0));
        // b's copy stays.
        assert_eq!(store.history_conversations(ids[1]).await.unwrap().len(), 1);
    }
}
