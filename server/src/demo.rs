//! `serve --demo`: three demo accounts with one token each, created only if missing.

use crate::Error;
use crate::secret::Secret;
use crate::store::{AccountError, NewToken, Passport, Store, parse_handle};

/// The demo accounts: handle and friendly name.
pub const DEMO_ACCOUNTS: [(&str, &str); 3] = [
    ("alice@example.com", "Alice"),
    ("bob@example.com", "Bob"),
    ("carol@example.com", "Carol"),
];

/// Creates the demo accounts that do not exist yet, each with a random (unprinted) password and
/// one token labelled `demo`. Returns the tokens it created; existing accounts are left alone.
///
/// # Errors
///
/// Store errors.
pub async fn seed(store: &Store) -> Result<Vec<(Passport, NewToken)>, Error> {
    let mut created = Vec::new();
    for (handle, name) in DEMO_ACCOUNTS {
        let email = parse_handle(handle).map_err(|_| Error::Demo)?;
        if store.account(&email).await?.is_some() {
            continue;
        }
        // Password logins are off by default; a random password keeps the account usable only
        // through its token until an operator sets one with `user passwd`.
        let password = Secret::new(hex::encode(rand::random::<[u8; 16]>()));
        let account = match store.create_account(&email, name, password).await {
            Ok(account) => account,
            // Created concurrently (another process): leave it alone.
            Err(AccountError::EmailTaken) => continue,
            Err(e) => return Err(e.into()),
        };
        let token = store.new_token(account.id, "demo").await?;
        created.push((email, token));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;

    #[tokio::test]
    async fn seeding_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let first = seed(&store).await.unwrap();
        assert_eq!(first.len(), 3);
        assert!(seed(&store).await.unwrap().is_empty());
        assert_eq!(store.accounts().await.unwrap().len(), 3);
        let alice = store.account(&first[0].0).await.unwrap().unwrap();
        assert_eq!(
            store
                .verify_plain(alice.id, &first[0].1.token)
                .await
                .unwrap(),
            Some(first[0].1.id)
        );
    }
}
