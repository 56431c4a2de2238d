//! Access tokens: the default way a client logs in.
//!
//! A token is 16 characters from the lowercase base32 alphabet (`a`–`z`, `2`–`7`), i.e. 80 bits
//! from the operating system's CSPRNG; it fits the 16-character password fields of old clients.
//! It is shown once and stored encrypted (ChaCha20-Poly1305 under the server key, a random
//! 96-bit nonce per token, the account id as associated data so a ciphertext cannot be moved to
//! another account). MD5 logins need `md5(challenge ‖ token)` with a fresh challenge, which is
//! why tokens are encrypted rather than hashed.

use crate::store::db::{Conn as Connection, params};
use md5::{Digest as _, Md5};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use subtle::ConstantTimeEq as _;

use super::accounts::{Account, account_by_email};
use super::lists::login_contacts;
use super::types::{AccountId, ListSet, Passport, TokenId};
use super::{Store, StoreError, now_unix};
use crate::secret::{Secret, ServerKey};

/// Length of a token in characters.
pub const TOKEN_CHARS: usize = 16;

/// Longest label, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;

/// Most active (unrevoked) tokens per account.
pub const MAX_ACTIVE_TOKENS: usize = 50;

/// How stale a token's `last_used_at` may get before a login writes it again. A login that
/// finds it newer than this writes nothing, so repeated logins stay read-only transactions.
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Errors of token operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The account has no token with that id (or it is already revoked).
    #[error("no such active token")]
    NoSuchToken,
    /// The label is longer than 64 bytes or contains control characters.
    #[error("label must be at most {MAX_LABEL_BYTES} bytes without control characters")]
    InvalidLabel,
    /// The account already has [`MAX_ACTIVE_TOKENS`] active tokens.
    #[error("too many active tokens; revoke one first")]
    TooMany,
    /// Infrastructure failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(e))
    }
}

/// A freshly created token: show `token` to the user once, then forget it.
#[derive(Debug)]
pub struct NewToken {
    /// Row id, for listing and revoking.
    pub id: TokenId,
    /// The token itself.
    pub token: Secret,
}

/// What may be shown about a token (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Row id.
    pub id: TokenId,
    /// Device label.
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last successful login with it, to within
    /// [`LAST_USED_RESOLUTION_SECS`].
    pub last_used_at: Option<i64>,
    /// Unix seconds of revocation.
    pub revoked_at: Option<i64>,
}

pub(super) fn aead_key(key: &ServerKey) -> Result<LessSafeKey, StoreError> {
    let unbound =
        UnboundKey::new(&CHACHA20_POLY1305, key.as_bytes()).map_err(|_| StoreError::Crypto)?;
    Ok(LessSafeKey::new(unbound))
}

pub(super) fn generate_token() -> Result<Secret, StoreError> {
    let mut bytes = [0u8; 10];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Crypto)?;
    // 80 bits → 16 groups of 5 bits, most significant first.
    let bits = bytes
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let token = (0..TOKEN_CHARS)
        .rev()
        .map(|i| char::from(ALPHABET[((bits >> (5 * i)) & 31) as usize]))
        .collect();
    Ok(Secret::new(token))
}

pub(super) fn seal(
    key: &ServerKey,
    account: AccountId,
    token: &Secret,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    seal_bytes(
        &aead_key(key)?,
        &account.0.to_be_bytes(),
        token.expose().as_bytes().to_vec(),
    )
}

pub(super) fn open(
    key: &LessSafeKey,
    account: AccountId,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<Secret> {
    let data = open_bytes(key, &account.0.to_be_bytes(), nonce, ciphertext)?;
    String::from_utf8(data).ok().map(Secret::new)
}

/// Seals `data` under `key` with a fresh random 96-bit nonce and `aad` as associated data;
/// returns `(nonce, ciphertext ‖ tag)`. Shared by tokens and the message history.
pub(super) fn seal_bytes(
    key: &LessSafeKey,
    aad: &[u8],
    mut data: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| StoreError::Crypto)?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut data,
    )
    .map_err(|_| StoreError::Crypto)?;
    Ok((nonce.to_vec(), data))
}

/// Opens what [`seal_bytes`] sealed; `None` if the key, the associated data, the nonce or the
/// ciphertext is not the one it was sealed with.
pub(super) fn open_bytes(
    key: &LessSafeKey,
    aad: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = ciphertext.to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut data)
        .ok()?
        .len();
    data.truncate(len);
    Some(data)
}

/// Most revoked tokens a failed login compares against (the latest revoked), to tell a
/// revoked token from a wrong one in the log.
pub const MAX_REVOKED_CHECKED: usize = MAX_ACTIVE_TOKENS;

/// Decrypts the tokens `sql` selects for `account` (`id, nonce, ciphertext, last_used_at`,
/// bound to `?1`) and returns the first one `matches` accepts, with its `last_used_at`.
fn first_match<F>(
    conn: &Connection,
    key: &LessSafeKey,
    account: AccountId,
    sql: &str,
    mut matches: F,
) -> Result<Option<(TokenId, Option<i64>)>, StoreError>
where
    F: FnMut(&Secret) -> bool,
{
    let mut stmt = conn.prepare_cached(sql)?;
    let mut found = None;
    let rows = stmt.query_map([account.0], |row| {
        let id: i64 = row.get(0)?;
        // Borrowed straight from the row buffer; `open` copies into its own buffer.
        let nonce = row.get_ref(1)?.as_blob()?;
        let ciphertext = row.get_ref(2)?.as_blob()?;
        match open(key, account, nonce, ciphertext) {
            // Keep looping after a match so the time taken does not depend on which token it was.
            Some(token) => {
                if matches(&token) && found.is_none() {
                    found = Some((TokenId(id), row.get::<_, Option<i64>>(3)?));
                }
            }
            None => tracing::warn!(token = id, "token does not decrypt under the server key"),
        }
        Ok(())
    })?;
    rows.collect::<Result<(), _>>()?;
    Ok(found)
}

/// Decrypts every active token of `account` and returns the id of the first `matches` accepts,
/// marking it used (unless it was marked less than [`LAST_USED_RESOLUTION_SECS`] ago).
///
/// Revocation needs no cache invalidation: every call reads the rows as they are now.
pub(super) fn find_active<F>(
    conn: &Connection,
    key: &LessSafeKey,
    account: AccountId,
    matches: F,
) -> Result<Option<TokenId>, StoreError>
where
    F: FnMut(&Secret) -> bool,
{
    let found = first_match(
        conn,
        key,
        account,
        "SELECT id, nonce, ciphertext, last_used_at FROM tokens
         WHERE account_id = ?1 AND revoked_at IS NULL",
        matches,
    )?;
    let Some((id, last_used)) = found else {
        return Ok(None);
    };
    let now = now_unix();
    if last_used.is_none_or(|t| now.saturating_sub(t) >= LAST_USED_RESOLUTION_SECS || t > now) {
        conn.prepare_cached("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1")?
            .execute(params![id.0, now])?;
    }
    Ok(Some(id))
}

/// Whether one of the [`MAX_REVOKED_CHECKED`] most recently revoked tokens of `account`
/// satisfies `matches`: a device still using a token that was revoked.
fn matches_revoked<F>(
    conn: &Connection,
    key: &LessSafeKey,
    account: AccountId,
    matches: F,
) -> Result<bool, StoreError>
where
    F: FnMut(&Secret) -> bool,
{
    let sql = format!(
        "SELECT id, nonce, ciphertext, last_used_at FROM tokens
         WHERE account_id = ?1 AND revoked_at IS NOT NULL
         ORDER BY revoked_at DESC, id DESC LIMIT {MAX_REVOKED_CHECKED}"
    );
    Ok(first_match(conn, key, account, &sql, matches)?.is_some())
}

/// What a token login proves knowledge of.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// MD5 (MSNP2–7): `response` must be `md5hex(challenge ‖ token)` (any case).
    Md5 {
        /// The challenge the server sent.
        challenge: String,
        /// The client's answer.
        response: String,
    },
    /// The token itself, as sent over TLS (Passport) or by CTP.
    Plain(Secret),
}

/// The outcome of [`Store::token_login`] for an existing account.
#[derive(Debug, Clone)]
pub struct TokenLogin {
    /// The account.
    pub account: Account,
    /// The active token that matched, if any.
    pub token: Option<TokenId>,
    /// No active token matched, but a recently revoked one would have (for the log: the
    /// client is told the same as for a wrong token).
    pub revoked: bool,
    /// The contacts with the lists each is on, if a token matched and they were asked for;
    /// empty otherwise.
    pub contacts: Vec<(Passport, ListSet)>,
}

impl TokenCheck {
    /// Whether `token` satisfies this check, compared in constant time.
    fn matches(&self, token: &Secret) -> bool {
        match self {
            Self::Md5 {
                challenge,
                response,
            } => {
                let mut md5 = Md5::new();
                md5.update(challenge.as_bytes());
                md5.update(token.expose().as_bytes());
                let expected = hex::encode(md5.finalize());
                bool::from(
                    expected
                        .as_bytes()
                        .ct_eq(response.to_ascii_lowercase().as_bytes()),
                )
            }
            Self::Plain(secret) => {
                bool::from(token.expose().as_bytes().ct_eq(secret.expose().as_bytes()))
            }
        }
    }

    /// Whether the answer has the shape a token could satisfy at all.
    fn plausible(&self) -> bool {
        match self {
            Self::Md5 { response, .. } => response.len() == 32,
            Self::Plain(secret) => secret.expose().len() == TOKEN_CHARS,
        }
    }
}

impl Store {
    /// A token login in one database round trip: looks `handle` up and runs `check` against
    /// its active tokens, marking the matching one used; with `load_contacts`, an accepted
    /// login also reads the contacts' list bits (what the NS gives the hub). `None` if there
    /// is no such account; for an unknown handle the same token query runs against an id no
    /// token belongs to, so the work done is the same. A refused login also tells whether a
    /// revoked token matched ([`TokenLogin::revoked`]).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn token_login(
        &self,
        handle: &Passport,
        check: TokenCheck,
        load_contacts: bool,
    ) -> Result<Option<TokenLogin>, StoreError> {
        let handle = handle.clone();
        let store = self.clone();
        self.call(move |conn| {
            let account = account_by_email(conn, &handle)?;
            let id = account.as_ref().map_or(AccountId(0), |a| a.id);
            // A disabled account (website admin) matches no token, as if it had none.
            let disabled = account
                .as_ref()
                .is_some_and(|a| super::web::account_disabled(conn, a.id).unwrap_or(true));
            let token = if check.plausible() && !disabled {
                find_active(conn, store.aead(), id, |t| check.matches(t))?
            } else {
                None
            };
            let Some(account) = account else {
                return Ok(None);
            };
            let revoked = token.is_none()
                && check.plausible()
                && matches_revoked(conn, store.aead(), account.id, |t| check.matches(t))?;
            let contacts = match token {
                Some(_) if load_contacts => login_contacts(conn, account.id)?,
                _ => Vec::new(),
            };
            Ok(Some(TokenLogin {
                account,
                token,
                revoked,
                contacts,
            }))
        })
        .await
    }

    /// Creates a token for `account` labelled `label` (e.g. the device name).
    ///
    /// # Errors
    ///
    /// [`TokenError::InvalidLabel`], [`TokenError::TooMany`], or an infrastructure error
    /// (including a foreign-key error if the account does not exist).
    pub async fn new_token(&self, account: AccountId, label: &str) -> Result<NewToken, TokenError> {
        if label.len() > MAX_LABEL_BYTES || label.chars().any(char::is_control) {
            return Err(TokenError::InvalidLabel);
        }
        let token = generate_token()?;
        let (nonce, ciphertext) = seal(self.key(), account, &token)?;
        let label = label.to_owned();
        let id = self
            .call_alone(move |conn| {
                let tx = conn.transaction()?;
                let active: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM tokens WHERE account_id = ?1 AND revoked_at IS NULL",
                    [account.0],
                    |r| r.get(0),
                )?;
                if usize::try_from(active).unwrap_or(usize::MAX) >= MAX_ACTIVE_TOKENS {
                    return Err(TokenError::TooMany);
                }
                tx.execute(
                    "INSERT INTO tokens (account_id, label, nonce, ciphertext, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![account.0, label, nonce, ciphertext, now_unix()],
                )?;
                let id = TokenId(tx.last_insert_rowid()?);
                tx.commit()?;
                Ok(id)
            })
            .await?;
        Ok(NewToken { id, token })
    }

    /// All tokens of `account` (active and revoked), oldest first. Never includes the tokens.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn tokens(&self, account: AccountId) -> Result<Vec<TokenInfo>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, label, created_at, last_used_at, revoked_at FROM tokens
                 WHERE account_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([account.0], |r| {
                Ok(TokenInfo {
                    id: TokenId(r.get(0)?),
                    label: r.get(1)?,
                    created_at: r.get(2)?,
                    last_used_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// Revokes an active token of `account`.
    ///
    /// # Errors
    ///
    /// [`TokenError::NoSuchToken`] if `account` has no active token `id`.
    pub async fn revoke_token(&self, account: AccountId, id: TokenId) -> Result<(), TokenError> {
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE tokens SET revoked_at = ?3
                 WHERE id = ?1 AND account_id = ?2 AND revoked_at IS NULL",
                params![id.0, account.0, now_unix()],
            )?;
            if n == 0 {
                return Err(TokenError::NoSuchToken);
            }
            Ok(())
        })
        .await
    }

    /// MD5 login (MSNP2–7): returns the id of the active token `t` of `account` for which
    /// `md5hex(challenge ‖ t)` equals `response` (compared in constant time), and marks it used.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only; a wrong response is `Ok(None)`.
    pub async fn verify_md5(
        &self,
        account: AccountId,
        challenge: &str,
        response: &str,
    ) -> Result<Option<TokenId>, StoreError> {
        let check = TokenCheck::Md5 {
            challenge: challenge.to_owned(),
            response: response.to_owned(),
        };
        if !check.plausible() {
            return Ok(None);
        }
        let store = self.clone();
        self.call(move |conn| find_active(conn, store.aead(), account, |t| check.matches(t)))
            .await
    }

    /// Plain login (Passport over TLS): returns the id of the active token of `account` equal to
    /// `secret` (constant-time compare), and marks it used.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only; a wrong secret is `Ok(None)`.
    pub async fn verify_plain(
        &self,
        account: AccountId,
        secret: &Secret,
    ) -> Result<Option<TokenId>, StoreError> {
        let check = TokenCheck::Plain(secret.clone());
        if !check.plausible() {
            return Ok(None);
        }
        let store = self.clone();
        self.call(move |conn| find_active(conn, store.aead(), account, |t| check.matches(t)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::store::types::{ListKind, Passport as Email};

    fn md5hex(challenge: &str, token: &str) -> String {
        hex::encode(Md5::digest(format!("{challenge}{token}").as_bytes()))
    }

    #[test]
    fn tokens_are_16_base32_characters_and_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn token_lifecycle_and_md5_login() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let alice = store
            .create_account(
                &Email::parse("alice@example.com").unwrap(),
                "Alice",
                Secret::new("pw".into()),
            )
            .await
            .unwrap();
        let bob = store
            .create_account(
                &Email::parse("bob@example.com").unwrap(),
                "Bob",
                Secret::new("pw".into()),
            )
            .await
            .unwrap();
        let new = store.new_token(alice.id, "laptop").await.unwrap();
        let bob_token = store.new_token(bob.id, "phone").await.unwrap();
        let token = new.token.expose().to_owned();

        let listed = store.tokens(alice.id).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].label.as_str()), (new.id, "laptop"));
        assert_eq!((listed[0].last_used_at, listed[0].revoked_at), (None, None));

        let challenge = "1013928519.693957190";
        let good = md5hex(challenge, &token);
        assert_eq!(
            store.verify_md5(alice.id, challenge, &good).await.unwrap(),
            Some(new.id)
        );
        assert_eq!(
            store
                .verify_md5(alice.id, challenge, &good.to_ascii_uppercase())
                .await
                .unwrap(),
            Some(new.id)
        );
        assert!(
            store.tokens(alice.id).await.unwrap()[0]
                .last_used_at
                .is_some()
        );
        // Wrong challenge, garbage, and another account's token are rejected.
        assert_eq!(
            store.verify_md5(alice.id, "other", &good).await.unwrap(),
            None
        );
        assert_eq!(
            store.verify_md5(alice.id, challenge, "zz").await.unwrap(),
            None
        );
        let bobs = md5hex(challenge, bob_token.token.expose());
        assert_eq!(
            store.verify_md5(alice.id, challenge, &bobs).await.unwrap(),
            None
        );
        assert_eq!(
            store.verify_md5(bob.id, challenge, &good).await.unwrap(),
            None
        );
        assert_eq!(
            store.verify_plain(alice.id, &new.token).await.unwrap(),
            Some(new.id)
        );
        assert_eq!(store.verify_plain(bob.id, &new.token).await.unwrap(), None);

        // The database file never holds the token in clear (a file only SQLite has).
        store.close().await.unwrap();
        if !on_postgres() {
            let mut raw = std::fs::read(dir.path().join("relive.db")).unwrap();
            if let Ok(wal) = std::fs::read(dir.path().join("relive.db-wal")) {
                raw.extend(wal);
            }
            assert!(!raw.windows(TOKEN_CHARS).any(|w| w == token.as_bytes()));
        }

        let store = file_store(dir.path()).await;
        store.revoke_token(alice.id, new.id).await.unwrap();
        assert!(matches!(
            store.revoke_token(alice.id, new.id).await,
            Err(TokenError::NoSuchToken)
        ));
        assert!(matches!(
            store.revoke_token(alice.id, bob_token.id).await,
            Err(TokenError::NoSuchToken)
        ));
        assert_eq!(
            store.verify_md5(alice.id, challenge, &good).await.unwrap(),
            None
        );
        assert_eq!(
            store.verify_plain(alice.id, &new.token).await.unwrap(),
            None
        );
        assert!(
            store.tokens(alice.id).await.unwrap()[0]
                .revoked_at
                .is_some()
        );
        assert!(matches!(
            store.new_token(alice.id, "bad\nlabel").await,
            Err(TokenError::InvalidLabel)
        ));

        // A different server key cannot use the stored tokens.
        store.close().await.unwrap();
        let other_key = Store::open(
            &dir.path().join("relive.db"),
            ServerKey::from_bytes([1; crate::secret::SERVER_KEY_BYTES]),
            fast_options(),
        )
        .await
        .unwrap();
        let bobs_plain = bob_token.token.clone();
        assert_eq!(
            other_key.verify_plain(bob.id, &bobs_plain).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn token_login_reads_contacts_and_sees_revocation_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let email = |s: &str| Email::parse(s).unwrap();
        let alice = store
            .create_account(
                &email("alice@example.com"),
                "Alice",
                Secret::new("pw".into()),
            )
            .await
            .unwrap();
        store
            .create_account(&email("bob@example.com"), "Bob", Secret::new("pw".into()))
            .await
            .unwrap();
        store
            .add_to_list(
                alice.id,
                ListKind::Fl,
                &email("bob@example.com"),
                "Bob",
                None,
            )
            .await
            .unwrap();
        let new = store.new_token(alice.id, "laptop").await.unwrap();
        let challenge = "29409134351025259292";
        let md5 = |token: &Secret| TokenCheck::Md5 {
            challenge: challenge.to_owned(),
            response: md5hex(challenge, token.expose()).to_ascii_uppercase(),
        };

        let login = store
            .token_login(&alice.email, md5(&new.token), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((login.account.id, login.token), (alice.id, Some(new.id)));
        let bob = email("bob@example.com");
        assert_eq!(
            login.contacts,
            vec![(bob, ListSet::EMPTY.with(ListKind::Fl))]
        );
        // The Passport side does not ask for the contacts.
        let plain = TokenCheck::Plain(new.token.clone());
        let login = store
            .token_login(&alice.email, plain.clone(), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.token, Some(new.id));
        assert!(login.contacts.is_empty());

        // A wrong answer and an unknown account: no token, no contacts.
        let wrong = TokenCheck::Plain(Secret::new("a".repeat(TOKEN_CHARS)));
        let login = store
            .token_login(&alice.email, wrong, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((login.token, login.revoked), (None, false));
        assert!(login.contacts.is_empty());
        assert!(
            store
                .token_login(&email("nobody@example.com"), plain.clone(), true)
                .await
                .unwrap()
                .is_none()
        );

        // last_used_at is written once per resolution window, not at every login.
        let used =
            |store: Store| async move { store.tokens(alice.id).await.unwrap()[0].last_used_at };
        let first = used(store.clone()).await.unwrap();
        // Sets last_used_at to `at`, then logs in once more with the token.
        let login_after = |at: i64| {
            let (store, email, plain) = (store.clone(), alice.email.clone(), plain.clone());
            async move {
                store
                    .call(move |c| c.execute("UPDATE tokens SET last_used_at = ?1", [at]))
                    .await
                    .unwrap();
                store.token_login(&email, plain, false).await.unwrap();
            }
        };
        login_after(first - LAST_USED_RESOLUTION_SECS - 5).await;
        let refreshed = used(store.clone()).await.unwrap();
        assert!(refreshed >= first);
        let recent = refreshed - 1;
        login_after(recent).await;
        assert_eq!(used(store.clone()).await, Some(recent));

        // Revocation takes effect at the next login: nothing about the token is cached.
        store.revoke_token(alice.id, new.id).await.unwrap();
        // The log can say why (the client is told the same as for a wrong token).
        for check in [md5(&new.token), plain] {
            let login = store
                .token_login(&alice.email, check, true)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((login.token, login.revoked), (None, true));
            assert!(login.contacts.is_empty());
        }
    }
}
