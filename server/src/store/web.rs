//! What the website keeps in the database: sign-in sessions, admin API keys, invite codes,
//! password reset codes, the admin and disabled flags of accounts, and the address class tokens
//! were last used from.
//!
//! Session ids, API keys and reset codes are random values the browser, the API client or the
//! account's owner holds; only their SHA-256 is stored ([`hash_secret`]), so a copy of the
//! database signs nobody in and resets no password.

use crate::store::db::{OptionalExtension as _, params};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom as _, SystemRandom};

use super::accounts::{ACCOUNT_COLUMNS, account_from_row};
use super::{Account, AccountError, AccountId, Store, StoreError, TokenId, now_unix};
use crate::secret::Secret;
use relive_msnp::types::Passport;

/// How long a website session lasts without signing in again: 30 days.
pub const SESSION_LIFETIME_SECS: i64 = 30 * 24 * 3600;

/// Most invite codes kept unused at once.
pub const MAX_OPEN_INVITES: usize = 1000;

/// Most API keys per admin.
pub const MAX_API_KEYS: usize = 20;

/// How long a password reset code stays valid: 24 hours.
pub const RESET_CODE_LIFETIME_SECS: i64 = 24 * 3600;

/// Random bytes in a reset code (128 bits).
const RESET_CODE_BYTES: usize = 16;

/// A reset code as typed back: hex digits only, lower case (dashes, spaces and case are
/// forgiven; the code is read out or pasted by people).
#[must_use]
pub fn normalize_reset_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(2 * RESET_CODE_BYTES + 1)
        .collect()
}

/// An invite code and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The code.
    pub code: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The handle that registered with it.
    pub used_by: Option<String>,
}

/// An admin API key as listed (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Row id.
    pub id: i64,
    /// Label.
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A random value for a cookie, key or code: `bytes` random bytes, base64url without padding.
///
/// # Errors
///
/// [`StoreError::Crypto`] if the system random generator fails.
pub fn random_secret(bytes: usize) -> Result<String, StoreError> {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Crypto)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// SHA-256 of `value`, lower-case hex: how session ids and API keys are stored.
#[must_use]
pub fn hash_secret(value: &str) -> String {
    hex::encode(digest(&SHA256, value.as_bytes()))
}

impl Store {
    /// Starts a website session for `account`; returns the cookie value (stored hashed).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn create_web_session(&self, account: AccountId) -> Result<String, StoreError> {
        let id = random_secret(32)?;
        let hash = hash_secret(&id);
        self.call(move |conn| {
            let now = now_unix();
            conn.execute("DELETE FROM web_sessions WHERE expires_at < ?1", [now])?;
            conn.execute(
                "INSERT INTO web_sessions (id_hash, account_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![hash, account.0, now, now + SESSION_LIFETIME_SECS],
            )?;
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(id)
    }

    /// The account of an unexpired, enabled session with cookie value `id`.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn web_session(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let hash = hash_secret(id);
        self.call(move |conn| {
            conn
                .query_row(
                    &format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE disabled = 0 AND id =
                         (SELECT account_id FROM web_sessions WHERE id_hash = ?1 AND expires_at >= ?2)"
                    ),
                    params![hash, now_unix()],
                    account_from_row,
                )
                .optional()
        })
        .await
    }

    /// Ends the session with cookie value `id` (sign out).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn end_web_session(&self, id: &str) -> Result<(), StoreError> {
        let hash = hash_secret(id);
        self.call(move |conn| {
            conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [&hash])?;
            Ok(())
        })
        .await
    }

    /// Ends every website session of `account` (after a password change, or a disable).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn end_web_sessions(&self, account: AccountId) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM web_sessions WHERE account_id = ?1",
                [account.0],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether `account` is flagged admin.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn is_admin(&self, account: AccountId) -> Result<bool, StoreError> {
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT admin FROM accounts WHERE id = ?1",
                    [account.0],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(false))
        })
        .await
    }

    /// Flags or unflags `email` as admin.
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`] or an infrastructure error.
    pub async fn set_admin(&self, email: &Passport, on: bool) -> Result<(), AccountError> {
        self.set_flag(email, "admin", on).await
    }

    /// Disables (no logins, no website) or enables `email`.
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`] or an infrastructure error.
    pub async fn set_disabled(&self, email: &Passport, on: bool) -> Result<(), AccountError> {
        self.set_flag(email, "disabled", on).await
    }

    async fn set_flag(
        &self,
        email: &Passport,
        column: &'static str,
        on: bool,
    ) -> Result<(), AccountError> {
        let email = email.clone();
        self.call(move |conn| {
            let n = conn.execute(
                &format!("UPDATE accounts SET {column} = ?2 WHERE email = ?1 AND placeholder = 0"),
                params![email.as_str(), on],
            )?;
            if n == 0 {
                return Err(AccountError::NoSuchAccount);
            }
            Ok(())
        })
        .await
    }

    /// Whether `account` is disabled (an unknown id counts as disabled).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn is_disabled(&self, account: AccountId) -> Result<bool, StoreError> {
        self.call(move |conn| account_disabled(conn, account)).await
    }

    /// Accounts (not placeholders) whose handle contains `query`, with their admin and
    /// disabled flags, at most `limit`, by handle.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn search_accounts(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<(Account, bool, bool)>, StoreError> {
        let pattern = format!(
            "%{}%",
            query
                .to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS}, admin, disabled FROM accounts
                 WHERE placeholder = 0 AND email LIKE ?1 ESCAPE '\\' ORDER BY email LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![pattern, limit], |row| {
                    Ok((account_from_row(row)?, row.get(10)?, row.get(11)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Revokes every active token of `account`; returns their ids.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn revoke_all_tokens(&self, account: AccountId) -> Result<Vec<TokenId>, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let ids = tx
                .prepare("SELECT id FROM tokens WHERE account_id = ?1 AND revoked_at IS NULL")?
                .query_map([account.0], |r| r.get(0).map(TokenId))?
                .collect::<Result<Vec<_>, _>>()?;
            tx.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE account_id = ?1 AND revoked_at IS NULL",
                params![account.0, now_unix()],
            )?;
            tx.commit()?;
            Ok(ids)
        })
        .await
    }

    /// Records the class of address (`loopback`, `private`, `public`) token `id` was just used
    /// from.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn note_token_address(
        &self,
        id: TokenId,
        class: &'static str,
    ) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.prepare_cached("UPDATE tokens SET last_address_class = ?2 WHERE id = ?1")?
                .execute(params![id.0, class])?;
            Ok(())
        })
        .await
    }

    /// The address class each of `account`'s tokens was last used from, by token id.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn token_address_classes(
        &self,
        account: AccountId,
    ) -> Result<Vec<(TokenId, String)>, StoreError> {
        self.call(move |conn| {
            let rows = conn
                .prepare(
                    "SELECT id, last_address_class FROM tokens
                     WHERE account_id = ?1 AND last_address_class IS NOT NULL",
                )?
                .query_map([account.0], |r| Ok((TokenId(r.get(0)?), r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Creates an invite code.
    ///
    /// # Errors
    ///
    /// [`StoreError::Crypto`], or an infrastructure error.
    pub async fn create_invite(&self, by: AccountId) -> Result<String, StoreError> {
        let code = random_secret(9)?;
        let stored = code.clone();
        self.call_alone(move |conn| {
            let open: i64 = conn.query_row(
                "SELECT count(*) FROM invite_codes WHERE used_by IS NULL",
                [],
                |r| r.get(0),
            )?;
            if usize::try_from(open).unwrap_or(usize::MAX) >= MAX_OPEN_INVITES {
                conn.execute(
                    "DELETE FROM invite_codes WHERE code =
                     (SELECT code FROM invite_codes WHERE used_by IS NULL ORDER BY created_at LIMIT 1)",
                    [],
                )?;
            }
            conn.execute(
                "INSERT INTO invite_codes (code, created_by, created_at) VALUES (?1, ?2, ?3)",
                params![stored, by.0, now_unix()],
            )?;
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(code)
    }

    /// Invite codes, newest first (at most 200).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn invites(&self) -> Result<Vec<Invite>, StoreError> {
        self.call(|conn| {
            let rows = conn
                .prepare(
                    "SELECT code, created_at, used_by FROM invite_codes
                     ORDER BY created_at DESC LIMIT 200",
                )?
                .query_map([], |r| {
                    Ok(Invite {
                        code: r.get(0)?,
                        created_at: r.get(1)?,
                        used_by: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Creates an account with an unused invite code, marking it used, in one transaction.
    /// `Ok(None)` if the code is unknown or used.
    ///
    /// # Errors
    ///
    /// As [`Store::create_account`].
    pub async fn create_account_with_invite(
        &self,
        email: &Passport,
        friendly_name: &str,
        password: crate::secret::Secret,
        code: &str,
    ) -> Result<Option<Account>, AccountError> {
        let code = code.to_owned();
        let open = self
            .call(move |conn| {
                conn.query_row(
                    "SELECT code FROM invite_codes WHERE code = ?1 AND used_by IS NULL",
                    [&code],
                    |r| r.get::<_, String>(0),
                )
                .optional()
            })
            .await?;
        let Some(code) = open else {
            return Ok(None);
        };
        let account = self.create_account(email, friendly_name, password).await?;
        let who = account.email.as_str().to_owned();
        self.call(move |conn| {
            conn.execute(
                "UPDATE invite_codes SET used_by = ?2, used_at = ?3 WHERE code = ?1",
                params![code, who, now_unix()],
            )?;
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(Some(account))
    }

    /// Creates an admin API key labelled `label` for `account`; returns the key (stored
    /// hashed; show it once).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only; more than [`MAX_API_KEYS`] replaces the oldest.
    pub async fn create_api_key(
        &self,
        account: AccountId,
        label: &str,
    ) -> Result<String, StoreError> {
        let key = random_secret(24)?;
        let hash = hash_secret(&key);
        let label: String = label.chars().take(64).collect();
        self.call_alone(move |conn| {
            let n: i64 = conn.query_row(
                "SELECT count(*) FROM api_keys WHERE account_id = ?1",
                [account.0],
                |r| r.get(0),
            )?;
            if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_API_KEYS {
                conn.execute(
                    "DELETE FROM api_keys WHERE id =
                     (SELECT id FROM api_keys WHERE account_id = ?1 ORDER BY id LIMIT 1)",
                    [account.0],
                )?;
            }
            conn.execute(
                "INSERT INTO api_keys (key_hash, account_id, label, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![hash, account.0, label, now_unix()],
            )?;
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(key)
    }

    /// `account`'s API keys (never the keys).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.call(move |conn| {
            let rows = conn
                .prepare(
                    "SELECT id, label, created_at FROM api_keys WHERE account_id = ?1 ORDER BY id",
                )?
                .query_map([account.0], |r| {
                    Ok(ApiKeyInfo {
                        id: r.get(0)?,
                        label: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Deletes API key `id` of `account`.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn delete_api_key(&self, account: AccountId, id: i64) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM api_keys WHERE id = ?1 AND account_id = ?2",
                params![id, account.0],
            )?;
            Ok(())
        })
        .await
    }

    /// The enabled admin account holding API key `key`, if any.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn api_key_admin(&self, key: &str) -> Result<Option<Account>, StoreError> {
        let hash = hash_secret(key);
        self.call(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE admin = 1 AND disabled = 0
                         AND id = (SELECT account_id FROM api_keys WHERE key_hash = ?1)"
                ),
                [&hash],
                account_from_row,
            )
            .optional()
        })
        .await
    }
}

impl Store {
    /// Issues a one-time password reset code for `email` (replacing any earlier one), valid
    /// for [`RESET_CODE_LIFETIME_SECS`]; returns the code (32 hex digits in groups of four,
    /// stored only hashed: show it once) and when it expires (Unix seconds).
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`], or an infrastructure error.
    pub async fn create_reset_code(&self, email: &Passport) -> Result<(String, i64), AccountError> {
        let mut raw = [0u8; RESET_CODE_BYTES];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| StoreError::Crypto)?;
        let digits = hex::encode(raw);
        let code = digits
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        let hash = hash_secret(&digits);
        let email = email.clone();
        let now = now_unix();
        let expires = now + RESET_CODE_LIFETIME_SECS;
        self.call(move |conn| {
            conn.execute("DELETE FROM reset_codes WHERE expires_at <= ?1", [now])?;
            let n = conn.execute(
                "INSERT INTO reset_codes (account_id, code_hash, issued_at, expires_at)
                 SELECT id, ?2, ?3, ?4 FROM accounts WHERE email = ?1 AND placeholder = 0
                 ON CONFLICT (account_id) DO UPDATE SET code_hash = excluded.code_hash,
                   issued_at = excluded.issued_at, expires_at = excluded.expires_at",
                params![email.as_str(), hash, now, expires],
            )?;
            if n == 0 {
                return Err(AccountError::NoSuchAccount);
            }
            Ok(())
        })
        .await?;
        Ok((code, expires))
    }

    /// Sets `email`'s password to `password` if `code` is its unexpired, unused reset code at
    /// `now` (Unix seconds): in one transaction the code is consumed, the password replaced and
    /// every website session of the account ended. Tokens are left alone. `Ok(None)` when the
    /// handle is unknown or disabled, the code wrong, expired or used: callers answer those
    /// alike. The new password is hashed first either way, so they also take alike.
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidPassword`], or an infrastructure error.
    pub async fn reset_password_with_code(
        &self,
        email: &Passport,
        code: &str,
        password: Secret,
        now: i64,
    ) -> Result<Option<Account>, AccountError> {
        let hash = self.hash_password(password).await?;
        let code_hash = hash_secret(&normalize_reset_code(code));
        let email = email.clone();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts
                         WHERE email = ?1 AND placeholder = 0 AND disabled = 0 AND id IN
                           (SELECT account_id FROM reset_codes
                            WHERE code_hash = ?2 AND expires_at > ?3)"
                    ),
                    params![email.as_str(), code_hash, now],
                    account_from_row,
                )
                .optional()?;
            let Some(account) = found else {
                return Ok(None);
            };
            tx.execute(
                "DELETE FROM reset_codes WHERE account_id = ?1",
                [account.id.0],
            )?;
            tx.execute(
                "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
                params![account.id.0, hash],
            )?;
            tx.execute(
                "DELETE FROM web_sessions WHERE account_id = ?1",
                [account.id.0],
            )?;
            tx.commit()?;
            Ok(Some(account))
        })
        .await
    }
}

/// Whether `account` is disabled (an unknown id counts as disabled).
pub(crate) fn account_disabled(
    conn: &crate::store::db::Conn,
    account: AccountId,
) -> crate::store::db::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT disabled FROM accounts WHERE id = ?1")?
        .query_row([account.0], |r| r.get(0))
        .optional()?
        .unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn pw(s: &str) -> Secret {
        Secret::new(s.into())
    }

    #[tokio::test]
    async fn a_reset_code_works_once_until_it_expires_and_a_new_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let alice = Passport::parse("alice@example.com").unwrap();
        let account = store
            .create_account(&alice, "Alice", pw("old"))
            .await
            .unwrap();
        let session = store.create_web_session(account.id).await.unwrap();
        let token = store.new_token(account.id, "pc").await.unwrap();
        assert!(matches!(
            store
                .create_reset_code(&Passport::parse("nobody@example.com").unwrap())
                .await,
            Err(AccountError::NoSuchAccount)
        ));

        let (first, expires) = store.create_reset_code(&alice).await.unwrap();
        assert_eq!(normalize_reset_code(&first).len(), 32);
        let (code, _) = store.create_reset_code(&alice).await.unwrap();
        assert_ne!(first, code);
        let now = now_unix();
        // The replaced code, a wrong handle and an expired code are all refused, untouched.
        let refused = [
            (alice.clone(), first.clone(), now),
            (
                Passport::parse("bob@example.com").unwrap(),
                code.clone(),
                now,
            ),
            (alice.clone(), code.clone(), expires),
            (
                alice.clone(),
                code.clone(),
                now + RESET_CODE_LIFETIME_SECS + 1,
            ),
        ];
        for (who, c, at) in refused {
            let r = store.reset_password_with_code(&who, &c, pw("new-pass-123"), at);
            assert!(r.await.unwrap().is_none(), "{who} {at}");
        }
        // Typed back in upper case without dashes, just before it expires: it works once.
        let typed = code.replace('-', " ").to_ascii_uppercase();
        let done = store
            .reset_password_with_code(&alice, &typed, pw("new-pass-123"), expires - 1)
            .await
            .unwrap();
        assert_eq!(done.map(|a| a.id), Some(account.id));
        let again = store
            .reset_password_with_code(&alice, &code, pw("other-pass-1"), now)
            .await
            .unwrap();
        assert!(again.is_none());
        assert!(
            store
                .verify_password(&alice, &pw("new-pass-123"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .verify_password(&alice, &pw("old"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.web_session(&session).await.unwrap().is_none());
        assert!(
            store
                .tokens(account.id)
                .await
                .unwrap()
                .iter()
                .any(|t| t.id == token.id && t.revoked_at.is_none())
        );

        // Deleting the account deletes its code.
        store.create_reset_code(&alice).await.unwrap();
        store.delete_account(&alice).await.unwrap();
        let left: i64 = store
            .call(|c| c.query_row("SELECT count(*) FROM reset_codes", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
}
