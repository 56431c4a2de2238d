//! Accounts: creation (with group 0), look-ups, deletion with cascade, and bcrypt passwords.
//!
//! bcrypt runs in a blocking task but outside the connection mutex, so hashing (tens of
//! milliseconds at cost 10) does not hold up other queries.

use crate::store::db::{Conn as Connection, OptionalExtension as _, Row, params};
use rand::Rng as _;

use super::types::{AccountId, Blp, FriendlyName, Gtc, Passport, is_storable_handle};
use super::{Store, StoreError, now_unix};
use crate::secret::Secret;

/// Longest friendly name accepted, in bytes of its URL-encoded wire form (129 characters, each
/// possibly `%XX`-encoded).
pub const MAX_FRIENDLY_NAME_BYTES: usize = 387;

/// Longest password accepted, in bytes (bcrypt uses at most 72).
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Name of group 0, URL-encoded as it goes on the wire.
pub const GROUP_ZERO_NAME: &str = "Other%20Contacts";

/// Errors of account operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// An account with that handle already exists.
    #[error("an account with that handle already exists")]
    EmailTaken,
    /// No account has that handle.
    #[error("no such account")]
    NoSuchAccount,
    /// The handle is not printable ASCII (the store only creates ASCII handles).
    #[error("handle must be printable ASCII")]
    InvalidHandle,
    /// The password is empty or longer than 72 bytes.
    #[error("password must be 1 to {MAX_PASSWORD_BYTES} bytes")]
    InvalidPassword,
    /// The friendly name is empty, too long, or contains spaces or control characters.
    #[error("friendly name must be 1 to {MAX_FRIENDLY_NAME_BYTES} bytes of URL-encoded text")]
    InvalidName,
    /// Infrastructure failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(e))
    }
}

/// An account as stored (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Row id.
    pub id: AccountId,
    /// Handle.
    pub email: Passport,
    /// Friendly name, URL-encoded wire form.
    pub friendly_name: FriendlyName,
    /// Current list version.
    pub list_version: u32,
    /// GTC setting.
    pub gtc: Gtc,
    /// BLP setting.
    pub blp: Blp,
    /// Whether the bcrypt password may be used for client logins (tokens always may).
    pub allow_password_login: bool,
    /// Passport member id.
    pub member_id: u64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Whether the account may be found with `FND` (off by default).
    pub searchable: bool,
}

/// Columns read by [`account_from_row`], in order.
pub(crate) const ACCOUNT_COLUMNS: &str = "id, email, friendly_name, list_version, gtc, blp, allow_password_login, member_id, created_at, searchable";

pub(crate) fn account_from_row(row: &Row<'_>) -> crate::store::db::Result<Account> {
    let email: String = row.get(1)?;
    let bad = |column: usize, what: &str| StoreError::Decode {
        column,
        why: format!("invalid {what} in database"),
    };
    let name: String = row.get(2)?;
    let gtc: String = row.get(4)?;
    let blp: String = row.get(5)?;
    Ok(Account {
        id: AccountId(row.get(0)?),
        email: Passport::parse(&email).map_err(|_| bad(1, "email"))?,
        friendly_name: FriendlyName::parse(&name).map_err(|_| bad(2, "friendly name"))?,
        list_version: row.get(3)?,
        gtc: Gtc::parse(&gtc).map_err(|_| bad(4, "gtc"))?,
        blp: Blp::parse(&blp).map_err(|_| bad(5, "blp"))?,
        allow_password_login: row.get(6)?,
        member_id: row.get::<_, i64>(7)?.unsigned_abs(),
        created_at: row.get(8)?,
        searchable: row.get(9)?,
    })
}

/// Whether `name` is acceptable as a friendly name or stored contact name: 1..=387 bytes of
/// printable ASCII without spaces (the URL-encoded wire form).
#[must_use]
pub fn is_valid_friendly_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FRIENDLY_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_graphic())
}

/// URL-encodes a display name into the wire form friendly names are stored in: ASCII letters,
/// digits and `-_.~@` stay, every other byte becomes `%XX`.
///
/// ```
/// assert_eq!(relive_server::store::accounts::encode_friendly_name("Bob B."), "Bob%20B.");
/// ```
#[must_use]
pub fn encode_friendly_name(display: &str) -> String {
    let mut out = String::with_capacity(display.len());
    for b in display.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The registered account of `email` (never a placeholder).
pub(crate) fn account_by_email(
    conn: &Connection,
    email: &Passport,
) -> crate::store::db::Result<Option<Account>> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = ?1 AND placeholder = 0"
    ))?
    .query_row([email.as_str()], account_from_row)
    .optional()
}

/// The id of `email`'s row, registered or placeholder (what the list model works with).
pub(crate) fn handle_id(
    conn: &Connection,
    email: &Passport,
) -> crate::store::db::Result<Option<AccountId>> {
    conn.prepare_cached("SELECT id FROM accounts WHERE email = ?1")?
        .query_row([email.as_str()], |r| Ok(AccountId(r.get(0)?)))
        .optional()
}

/// The id of `email`'s row, making a placeholder account for an unregistered handle (see
/// `migrations/0003_placeholders.sql`): group 0, no password, no tokens, random member id.
pub(crate) fn handle_id_or_placeholder(
    conn: &Connection,
    email: &Passport,
) -> crate::store::db::Result<AccountId> {
    if let Some(id) = handle_id(conn, email)? {
        return Ok(id);
    }
    insert_account(conn, email, email.as_str(), "", true)
}

/// Inserts an account row (a placeholder with `placeholder`) with its group 0.
fn insert_account(
    conn: &Connection,
    email: &Passport,
    name: &str,
    password_hash: &str,
    placeholder: bool,
) -> crate::store::db::Result<AccountId> {
    // Positive 63-bit member id; a collision is astronomically unlikely and would surface as a
    // constraint error rather than a silent duplicate.
    let member_id: i64 = rand::rng().random_range(1..i64::MAX);
    conn.execute(
        "INSERT INTO accounts (email, friendly_name, password_hash, member_id, created_at,
                               placeholder)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            email.as_str(),
            name,
            password_hash,
            member_id,
            now_unix(),
            placeholder
        ],
    )?;
    let id = conn.last_insert_rowid()?;
    conn.execute(
        "INSERT INTO groups (account_id, group_id, name) VALUES (?1, 0, ?2)",
        params![id, GROUP_ZERO_NAME],
    )?;
    Ok(AccountId(id))
}

/// Deletes placeholder accounts no list names any more (their own rows go with them).
pub(crate) fn drop_unlisted_placeholders(conn: &Connection) -> crate::store::db::Result<usize> {
    conn.execute(
        "DELETE FROM accounts WHERE placeholder = 1
           AND NOT EXISTS (SELECT 1 FROM contacts WHERE contact_id = accounts.id)",
        [],
    )
}

/// Deletes `id` if it is a placeholder no list names any more.
pub(crate) fn drop_placeholder_if_unlisted(
    conn: &Connection,
    id: AccountId,
) -> crate::store::db::Result<()> {
    conn.prepare_cached(
        "DELETE FROM accounts WHERE id = ?1 AND placeholder = 1
           AND NOT EXISTS (SELECT 1 FROM contacts WHERE contact_id = ?1)",
    )?
    .execute([id.0])?;
    Ok(())
}

fn check_password(password: &Secret) -> Result<(), AccountError> {
    let len = password.expose().len();
    if len == 0 || len > MAX_PASSWORD_BYTES {
        return Err(AccountError::InvalidPassword);
    }
    Ok(())
}

impl Store {
    pub(super) async fn hash_password(&self, password: Secret) -> Result<String, AccountError> {
        check_password(&password)?;
        let cost = self.options().bcrypt_cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password.expose(), cost))
            .await
            .map_err(StoreError::Join)?
            .map_err(StoreError::Bcrypt)?;
        Ok(hash)
    }

    /// Creates an account with group 0, list version 0, GTC `A`, BLP `AL`, password logins off.
    /// A placeholder for the handle (someone listed it before it was registered) becomes the
    /// account, with the lists that name it and its RL.
    ///
    /// # Errors
    ///
    /// [`AccountError::EmailTaken`], [`AccountError::InvalidName`],
    /// [`AccountError::InvalidPassword`], or an infrastructure error.
    pub async fn create_account(
        &self,
        email: &Passport,
        friendly_name: &str,
        password: Secret,
    ) -> Result<Account, AccountError> {
        if !is_storable_handle(email) {
            return Err(AccountError::InvalidHandle);
        }
        if !is_valid_friendly_name(friendly_name) {
            return Err(AccountError::InvalidName);
        }
        let hash = self.hash_password(password).await?;
        let email = email.clone();
        let name = friendly_name.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            if account_by_email(&tx, &email)?.is_some() {
                return Err(AccountError::EmailTaken);
            }
            let converted = tx.execute(
                "UPDATE accounts SET friendly_name = ?2, password_hash = ?3, created_at = ?4,
                                     placeholder = 0
                 WHERE email = ?1 AND placeholder = 1",
                params![email.as_str(), name, hash, now_unix()],
            )?;
            if converted == 0 {
                insert_account(&tx, &email, &name, &hash, false)?;
            }
            let account = account_by_email(&tx, &email)?.ok_or(AccountError::NoSuchAccount)?;
            tx.commit()?;
            Ok(account)
        })
        .await
    }

    /// Looks an account up by handle.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn account(&self, email: &Passport) -> Result<Option<Account>, StoreError> {
        let email = email.clone();
        self.call(move |conn| account_by_email(conn, &email)).await
    }

    /// Looks an account up by id.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.call(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1 AND placeholder = 0"
                ),
                [id.0],
                account_from_row,
            )
            .optional()
        })
        .await
    }

    /// All accounts, ordered by handle.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE placeholder = 0 ORDER BY email"
            ))?;
            let rows = stmt.query_map([], account_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// Deletes an account with its groups, contacts, tokens and phone properties, and removes it
    /// from everyone else's lists (bumping their list versions).
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`] or an infrastructure error.
    pub async fn delete_account(&self, email: &Passport) -> Result<(), AccountError> {
        let email = email.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let account = account_by_email(&tx, &email)?.ok_or(AccountError::NoSuchAccount)?;
            tx.execute(
                "UPDATE accounts SET list_version = list_version + 1
                 WHERE id IN (SELECT owner_id FROM contacts WHERE contact_id = ?1 AND owner_id <> ?1)",
                [account.id.0],
            )?;
            // Foreign keys cascade to groups, contacts (both directions), contact_groups,
            // tokens and phone properties; placeholders only it listed go too.
            tx.execute("DELETE FROM accounts WHERE id = ?1", [account.id.0])?;
            drop_unlisted_placeholders(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Replaces an account's password.
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`], [`AccountError::InvalidPassword`], or an
    /// infrastructure error.
    pub async fn set_password(
        &self,
        email: &Passport,
        password: Secret,
    ) -> Result<(), AccountError> {
        let hash = self.hash_password(password).await?;
        let email = email.clone();
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE accounts SET password_hash = ?1 WHERE email = ?2 AND placeholder = 0",
                params![hash, email.as_str()],
            )?;
            if n == 0 {
                return Err(AccountError::NoSuchAccount);
            }
            Ok(())
        })
        .await
    }

    /// Checks a password; returns the account when it matches, `None` when it does not or the
    /// account does not exist.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn verify_password(
        &self,
        email: &Passport,
        password: &Secret,
    ) -> Result<Option<Account>, StoreError> {
        let lookup = email.clone();
        let found = self
            .call(move |conn| {
                conn.query_row(
                    &format!(
                        "SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts
                             WHERE email = ?1 AND placeholder = 0 AND disabled = 0"
                    ),
                    [lookup.as_str()],
                    |row| Ok((account_from_row(row)?, row.get::<_, String>(10)?)),
                )
                .optional()
            })
            .await?;
        let Some((account, hash)) = found else {
            return Ok(None);
        };
        if check_password(password).is_err() {
            return Ok(None);
        }
        let password = password.clone();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password.expose(), &hash)).await??;
        Ok(ok.then_some(account))
    }

    /// Allows or forbids logging in to clients with the account password (tokens always work).
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`] or an infrastructure error.
    pub async fn set_allow_password_login(
        &self,
        email: &Passport,
        allow: bool,
    ) -> Result<(), AccountError> {
        let email = email.clone();
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE accounts SET allow_password_login = ?1 WHERE email = ?2 AND placeholder = 0",
                params![allow, email.as_str()],
            )?;
            if n == 0 {
                return Err(AccountError::NoSuchAccount);
            }
            Ok(())
        })
        .await
    }

    /// Lets (or stops letting) other users find the account with `FND`.
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`] or an infrastructure error.
    pub async fn set_searchable(&self, email: &Passport, on: bool) -> Result<(), AccountError> {
        let email = email.clone();
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE accounts SET searchable = ?1 WHERE email = ?2 AND placeholder = 0",
                params![on, email.as_str()],
            )?;
            if n == 0 {
                return Err(AccountError::NoSuchAccount);
            }
            Ok(())
        })
        .await
    }

    /// The searchable accounts (ordered by handle), at most `limit` of them; `FND` filters these.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn searchable_accounts(&self, limit: usize) -> Result<Vec<Account>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE searchable = 1 AND placeholder = 0
                 ORDER BY email LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], account_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn email(s: &str) -> Passport {
        Passport::parse(s).unwrap()
    }

    fn pw(s: &str) -> Secret {
        Secret::new(s.to_owned())
    }

    #[tokio::test]
    async fn accounts_crud_on_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let alice = store
            .create_account(&email("Alice@Example.com"), "Alice", pw("correct horse"))
            .await
            .unwrap();
        assert_eq!(alice.email.as_str(), "alice@example.com");
        assert_eq!(
            (alice.list_version, alice.gtc, alice.blp),
            (0, Gtc::A, Blp::Al)
        );
        assert!(!alice.allow_password_login);
        assert!(alice.member_id > 0);
        assert!(matches!(
            store
                .create_account(&email("alice@example.com"), "Again", pw("x"))
                .await,
            Err(AccountError::EmailTaken)
        ));
        assert!(matches!(
            store
                .create_account(&email("b@example.com"), "has space", pw("x"))
                .await,
            Err(AccountError::InvalidName)
        ));
        assert!(matches!(
            store
                .create_account(&email("b@example.com"), "B", pw(""))
                .await,
            Err(AccountError::InvalidPassword)
        ));
        store
            .create_account(&email("bob@example.com"), "Bob", pw("pw"))
            .await
            .unwrap();

        let listed: Vec<_> = store.accounts().await.unwrap();
        let emails: Vec<_> = listed.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
        assert_eq!(store.account_by_id(alice.id).await.unwrap().unwrap(), alice);

        assert!(
            store
                .verify_password(&alice.email, &pw("correct horse"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .verify_password(&alice.email, &pw("wrong"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .verify_password(&email("nobody@example.com"), &pw("x"))
                .await
                .unwrap()
                .is_none()
        );
        store
            .set_password(&alice.email, pw("new one"))
            .await
            .unwrap();
        assert!(
            store
                .verify_password(&alice.email, &pw("new one"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            store
                .set_password(&email("nobody@example.com"), pw("x"))
                .await,
            Err(AccountError::NoSuchAccount)
        ));
        store
            .set_allow_password_login(&alice.email, true)
            .await
            .unwrap();
        assert!(
            store
                .account(&alice.email)
                .await
                .unwrap()
                .unwrap()
                .allow_password_login
        );

        store.delete_account(&alice.email).await.unwrap();
        assert!(store.account(&alice.email).await.unwrap().is_none());
        assert!(matches!(
            store.delete_account(&alice.email).await,
            Err(AccountError::NoSuchAccount)
        ));
        store.close().await.unwrap();
        let reopened = file_store(dir.path()).await;
        assert_eq!(reopened.accounts().await.unwrap().len(), 1);
    }
}
