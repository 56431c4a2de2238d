//! The local mailboxes (issue 18): one copy of a mail per owner in the folders Inbox, Sent and
//! Deleted, the unread counts the Messenger's mail notifications show, and the token secret
//! the inbox sign-in checks its credentials against.
//!
//! Plain SQL (no SQLite-only constructs), so the operations port to another backend as they
//! are. Mail bodies and subjects are never logged.

use super::db::{Conn, OptionalExtension as _, params};
use relive_msnp::mail::MailCounts;

use super::accounts::{ACCOUNT_COLUMNS, account_from_row};
use super::{Account, AccountId, Passport, Store, StoreError, TokenId, now_unix};
use crate::secret::Secret;

/// Most characters of a subject.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Most bytes of a mail body.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Most copies one mailbox holds; a send to a full Inbox is refused.
pub const MAX_MAILBOX_MESSAGES: i64 = 5_000;
/// Most mails one account may send in an hour.
pub const MAX_SENT_PER_HOUR: i64 = 60;
/// Most messages a folder listing shows (newest first).
pub const MAX_LISTED: i64 = 500;

/// A mail folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Received mail.
    Inbox,
    /// Copies of sent mail.
    Sent,
    /// Deleted mail (deleting here removes it for good).
    Deleted,
}

impl Folder {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Sent => "sent",
            Self::Deleted => "deleted",
        }
    }

    /// The folder stored as `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "inbox" => Self::Inbox,
            "sent" => Self::Sent,
            "deleted" => Self::Deleted,
            _ => return None,
        })
    }
}

/// One copy of a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Row id.
    pub id: i64,
    /// Its folder.
    pub folder: Folder,
    /// The sender's handle.
    pub from_addr: String,
    /// The sender's display name when it was sent.
    pub from_name: String,
    /// The recipient's handle.
    pub to_addr: String,
    /// Subject.
    pub subject: String,
    /// Body (empty in listings).
    pub body: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether it has been read.
    pub read: bool,
}

/// What [`Store::send_mail`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Delivered: the recipient and the id of their Inbox copy.
    Sent {
        /// The recipient's account.
        to: Account,
        /// The Inbox copy's id.
        inbox_id: i64,
    },
    /// No such account on this server.
    NoSuchRecipient,
    /// The recipient's mailbox is full.
    MailboxFull,
    /// The sender sent [`MAX_SENT_PER_HOUR`] mails in the last hour.
    RateLimited,
}

/// How an open or a delete changed the owner's unread Inbox count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailChange {
    /// An unread Inbox message stopped being one (read, or moved to Deleted).
    pub left_unread_inbox: bool,
}

const COLUMNS: &str =
    "id, folder, from_addr, from_name, to_addr, subject, body, created_at, read_at";

fn mail_from_row(row: &super::db::Row<'_>) -> super::db::Result<Mail> {
    let folder: String = row.get(1)?;
    Ok(Mail {
        id: row.get(0)?,
        folder: Folder::parse(&folder).unwrap_or(Folder::Deleted),
        from_addr: row.get(2)?,
        from_name: row.get(3)?,
        to_addr: row.get(4)?,
        subject: row.get(5)?,
        body: row.get(6)?,
        created_at: row.get(7)?,
        read: row.get::<_, Option<i64>>(8)?.is_some(),
    })
}

/// The registered (not placeholder) account with handle `email`.
pub(super) fn registered_account(conn: &Conn, email: &str) -> super::db::Result<Option<Account>> {
    conn.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = ?1 AND placeholder = 0"),
        [email],
        account_from_row,
    )
    .optional()
}

/// The unread counts of `account`'s mailbox (see [`Store::mail_counts`]).
pub(super) fn unread_counts(conn: &Conn, account: AccountId) -> Result<MailCounts, StoreError> {
    Ok(MailCounts {
        inbox_unread: count(
            conn,
            "SELECT COUNT(*) FROM mail_messages
             WHERE owner_id = ?1 AND folder = 'inbox' AND read_at IS NULL",
            account,
        )?,
        folders_unread: count(
            conn,
            "SELECT COUNT(*) FROM mail_messages
             WHERE owner_id = ?1 AND folder <> 'inbox' AND read_at IS NULL",
            account,
        )?,
    })
}

fn count(conn: &Conn, sql: &str, account: AccountId) -> Result<u32, StoreError> {
    let n: i64 = conn.query_row(sql, [account.0], |r| r.get(0))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl Store {
    /// Sends a mail from `from` to the account `to`: the recipient's unread Inbox copy and the
    /// sender's (read) Sent copy, in one transaction (only the Sent copy when `to` has no
    /// account; nothing over the sender's hourly limit or into a full mailbox). `subject` and `body` are cut to their
    /// limits by the caller's validation; here they are only stored.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn send_mail(
        &self,
        from: &Account,
        to: &Passport,
        subject: &str,
        body: &str,
    ) -> Result<SendOutcome, StoreError> {
        let (from_id, from_addr) = (from.id, from.email.as_str().to_owned());
        let from_name = from.friendly_name.to_display();
        let to = to.as_str().to_owned();
        let subject: String = subject.chars().take(MAX_SUBJECT_CHARS).collect();
        let mut body = body.to_owned();
        if body.len() > MAX_BODY_BYTES {
            let mut end = MAX_BODY_BYTES;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
        }
        self.call_alone(move |conn| {
            let tx = conn.transaction()?;
            let now = now_unix();
            let sent: i64 = tx.query_row(
                "SELECT COUNT(*) FROM mail_messages
                 WHERE owner_id = ?1 AND folder = 'sent' AND created_at > ?2",
                params![from_id.0, now - 3600],
                |r| r.get(0),
            )?;
            if sent >= MAX_SENT_PER_HOUR {
                return Ok(SendOutcome::RateLimited);
            }
            let insert = "INSERT INTO mail_messages
                 (owner_id, folder, from_addr, from_name, to_addr, subject, body, created_at, read_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
            let Some(recipient) = registered_account(&tx, &to)? else {
                // Kept in Sent, delivered nowhere (web::mail: no address oracle).
                tx.execute(
                    insert,
                    params![from_id.0, "sent", from_addr, from_name, to, subject, body, now, now],
                )?;
                tx.commit()?;
                return Ok(SendOutcome::NoSuchRecipient);
            };
            let held: i64 = tx.query_row(
                "SELECT COUNT(*) FROM mail_messages WHERE owner_id = ?1",
                [recipient.id.0],
                |r| r.get(0),
            )?;
            if held >= MAX_MAILBOX_MESSAGES {
                return Ok(SendOutcome::MailboxFull);
            }
            tx.execute(
                insert,
                params![recipient.id.0, "inbox", from_addr, from_name, to, subject, body, now, None::<i64>],
            )?;
            let inbox_id = tx.last_insert_rowid()?;
            tx.execute(
                insert,
                params![from_id.0, "sent", from_addr, from_name, to, subject, body, now, now],
            )?;
            tx.commit()?;
            Ok(SendOutcome::Sent {
                to: recipient,
                inbox_id,
            })
        })
        .await
    }

    /// The unread counts of `account`'s mailbox: the Inbox, and every other folder.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn mail_counts(&self, account: AccountId) -> Result<MailCounts, StoreError> {
        self.call(move |conn| unread_counts(conn, account)).await
    }

    /// The newest [`MAX_LISTED`] messages of `folder` (bodies left empty).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn mailbox(
        &self,
        account: AccountId,
        folder: Folder,
    ) -> Result<Vec<Mail>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, folder, from_addr, from_name, to_addr, subject, '', created_at, read_at
                 FROM mail_messages WHERE owner_id = ?1 AND folder = ?2
                 ORDER BY created_at DESC, id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![account.0, folder.as_str(), MAX_LISTED],
                mail_from_row,
            )?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// Opens message `id` of `account` and marks it read; `None` if it is not theirs.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn open_mail(
        &self,
        account: AccountId,
        id: i64,
    ) -> Result<Option<(Mail, MailChange)>, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let Some(mail) = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM mail_messages WHERE id = ?1 AND owner_id = ?2"),
                    params![id, account.0],
                    mail_from_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            if !mail.read {
                tx.execute(
                    "UPDATE mail_messages SET read_at = ?3 WHERE id = ?1 AND owner_id = ?2",
                    params![id, account.0, now_unix()],
                )?;
            }
            tx.commit()?;
            let change = MailChange {
                left_unread_inbox: !mail.read && mail.folder == Folder::Inbox,
            };
            Ok(Some((mail, change)))
        })
        .await
    }

    /// Deletes message `id` of `account`: moves it to Deleted, or removes it for good when it
    /// is there already. `None` if it is not theirs.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn delete_mail(
        &self,
        account: AccountId,
        id: i64,
    ) -> Result<Option<MailChange>, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let Some((folder, read)) = tx
                .query_row(
                    "SELECT folder, read_at FROM mail_messages WHERE id = ?1 AND owner_id = ?2",
                    params![id, account.0],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<i64>>(1)?.is_some(),
                        ))
                    },
                )
                .optional()?
            else {
                return Ok(None);
            };
            let folder = Folder::parse(&folder).unwrap_or(Folder::Deleted);
            if folder == Folder::Deleted {
                tx.execute(
                    "DELETE FROM mail_messages WHERE id = ?1 AND owner_id = ?2",
                    params![id, account.0],
                )?;
            } else {
                tx.execute(
                    "UPDATE mail_messages SET folder = 'deleted' WHERE id = ?1 AND owner_id = ?2",
                    params![id, account.0],
                )?;
            }
            tx.commit()?;
            Ok(Some(MailChange {
                left_unread_inbox: folder == Folder::Inbox && !read,
            }))
        })
        .await
    }

    /// The secret of `account`'s active token `token` (what the client typed as its password,
    /// which the inbox sign-in's `creds` hash over); `None` if it is revoked or not theirs.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn active_token_secret(
        &self,
        account: AccountId,
        token: TokenId,
    ) -> Result<Option<Secret>, StoreError> {
        let store = self.clone();
        self.call(move |conn| {
            let row: Option<(Vec<u8>, Vec<u8>)> = conn
                .query_row(
                    "SELECT nonce, ciphertext FROM tokens
                     WHERE id = ?1 AND account_id = ?2 AND revoked_at IS NULL",
                    params![token.0, account.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(row.and_then(|(nonce, ct)| super::tokens::open(store.aead(), account, &nonce, &ct)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    async fn two_accounts(store: &Store) -> (Account, Account) {
        let a = store
            .create_account(
                &Passport::parse("alice@example.com").unwrap(),
                "Alice",
                Secret::new("password-alice".into()),
            )
            .await
            .unwrap();
        let b = store
            .create_account(
                &Passport::parse("bob@example.com").unwrap(),
                "Bob",
                Secret::new("password-bob1".into()),
            )
            .await
            .unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn send_read_delete_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let (alice, bob) = two_accounts(&store).await;
        let SendOutcome::Sent { to, inbox_id } = store
            .send_mail(&alice, &bob.email, "Hi", "Hello Bob")
            .await
            .unwrap()
        else {
            panic!("not sent");
        };
        assert_eq!(to.id, bob.id);
        let none = Passport::parse("nobody@example.com").unwrap();
        assert_eq!(
            store.send_mail(&alice, &none, "x", "y").await.unwrap(),
            SendOutcome::NoSuchRecipient
        );
        assert_eq!(store.mail_counts(bob.id).await.unwrap().inbox_unread, 1);
        assert_eq!(
            store.mail_counts(alice.id).await.unwrap(),
            MailCounts::default()
        );
        // Both copies in Sent: to Bob and to the address with no account.
        let sent = store.mailbox(alice.id, Folder::Sent).await.unwrap();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|m| m.read));
        // Alice cannot open Bob's copy.
        assert!(store.open_mail(alice.id, inbox_id).await.unwrap().is_none());
        let (mail, change) = store.open_mail(bob.id, inbox_id).await.unwrap().unwrap();
        assert_eq!(mail.body, "Hello Bob");
        assert!(change.left_unread_inbox);
        let (_, again) = store.open_mail(bob.id, inbox_id).await.unwrap().unwrap();
        assert!(!again.left_unread_inbox, "reading twice changes nothing");
        assert_eq!(store.mail_counts(bob.id).await.unwrap().inbox_unread, 0);
        // Delete: to Deleted, then for good.
        let change = store.delete_mail(bob.id, inbox_id).await.unwrap().unwrap();
        assert!(!change.left_unread_inbox, "it was read already");
        assert_eq!(
            store.mailbox(bob.id, Folder::Deleted).await.unwrap().len(),
            1
        );
        store.delete_mail(bob.id, inbox_id).await.unwrap().unwrap();
        assert!(
            store
                .mailbox(bob.id, Folder::Deleted)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.delete_mail(bob.id, inbox_id).await.unwrap().is_none());
        // Alice's Sent copies are still there.
        assert_eq!(
            store.mailbox(alice.id, Folder::Sent).await.unwrap().len(),
            2
        );
    }

    #[tokio::test]
    async fn deleting_an_unread_mail_counts_it_in_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let (alice, bob) = two_accounts(&store).await;
        let SendOutcome::Sent { inbox_id, .. } = store
            .send_mail(&alice, &bob.email, "Hi", "x")
            .await
            .unwrap()
        else {
            panic!("not sent");
        };
        let change = store.delete_mail(bob.id, inbox_id).await.unwrap().unwrap();
        assert!(change.left_unread_inbox);
        assert_eq!(
            store.mail_counts(bob.id).await.unwrap(),
            MailCounts {
                inbox_unread: 0,
                folders_unread: 1
            }
        );
    }

    #[tokio::test]
    async fn senders_are_limited_per_hour_and_bodies_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let (alice, bob) = two_accounts(&store).await;
        let long = "é".repeat(MAX_BODY_BYTES);
        for _ in 0..MAX_SENT_PER_HOUR {
            let sent = store
                .send_mail(&alice, &bob.email, "x", &long)
                .await
                .unwrap();
            assert!(matches!(sent, SendOutcome::Sent { .. }));
        }
        assert_eq!(
            store.send_mail(&alice, &bob.email, "x", "y").await.unwrap(),
            SendOutcome::RateLimited
        );
        let inbox = store.mailbox(bob.id, Folder::Inbox).await.unwrap();
        let (mail, _) = store.open_mail(bob.id, inbox[0].id).await.unwrap().unwrap();
        assert!(mail.body.len() <= MAX_BODY_BYTES && mail.body.len() > MAX_BODY_BYTES - 2);
    }

    #[tokio::test]
    async fn token_secret_only_while_active() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let (alice, bob) = two_accounts(&store).await;
        let token = store.new_token(alice.id, "pc").await.unwrap();
        let secret = store
            .active_token_secret(alice.id, token.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose(), token.token.expose());
        assert!(
            store
                .active_token_secret(bob.id, token.id)
                .await
                .unwrap()
                .is_none()
        );
        store.revoke_token(alice.id, token.id).await.unwrap();
        assert!(
            store
                .active_token_secret(alice.id, token.id)
                .await
                .unwrap()
                .is_none()
        );
    }
}
