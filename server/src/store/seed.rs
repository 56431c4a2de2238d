//! Bulk seeding: many accounts, one access token each, and their contact lists, written in one
//! transaction.
//!
//! [`Store::create_account`] hashes a password with bcrypt and commits once per account, and
//! [`Store::add_to_list`] runs one transaction per contact; seeding 20,000 accounts with 50
//! contacts each that way takes minutes. [`Store::seed`] writes the same rows (an account with
//! group 0, password logins off, a token, contact rows with FL contacts in group 0, and the
//! reverse-list bits FL implies) with prepared statements in a single transaction, and hashes
//! one random, never-shown password once for all the accounts (they log in with their tokens).
//! The load generator (`relive-bench`) uses it; so can imports.

use std::collections::HashMap;

use crate::store::db::params;
use rand::Rng as _;

use super::accounts::{GROUP_ZERO_NAME, is_valid_friendly_name};
use super::tokens::{generate_token, seal};
use super::types::{AccountId, ListKind, ListSet, Passport, is_storable_handle};
use super::{Store, StoreError, now_unix};
use crate::secret::Secret;

/// Errors of [`Store::seed`]; nothing is written when one occurs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// An account's handle cannot be stored, or its friendly name is invalid.
    #[error("account {index}: invalid handle or friendly name")]
    InvalidAccount {
        /// Index into the accounts given.
        index: usize,
    },
    /// A handle is given twice, or already exists in the store.
    #[error("account {index}: the handle is already taken")]
    EmailTaken {
        /// Index into the accounts given.
        index: usize,
    },
    /// A contact names an account index out of range or the owner itself, sets RL (which is
    /// derived from FL), sets no list, or sets both AL and BL.
    #[error("contact {index}: invalid entry")]
    InvalidContact {
        /// Index into the contacts given.
        index: usize,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for SeedError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(e))
    }
}

/// One account to create.
#[derive(Debug, Clone)]
pub struct SeedAccount {
    /// The handle.
    pub email: Passport,
    /// Friendly name in its URL-encoded wire form.
    pub friendly_name: String,
}

/// `owner` puts `contact` on `lists` (any of FL, AL, BL; RL is derived: putting X on FL puts
/// the owner on X's RL). Indices refer to the accounts of the same [`Store::seed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedContact {
    /// Index of the owner.
    pub owner: usize,
    /// Index of the contact.
    pub contact: usize,
    /// The lists.
    pub lists: ListSet,
}

/// A created account and its token (shown once, like [`Store::new_token`]'s).
#[derive(Debug)]
pub struct Seeded {
    /// The account's id.
    pub id: AccountId,
    /// Its access token.
    pub token: Secret,
}

/// Checks a contact entry against `accounts` accounts.
fn valid_contact(c: &SeedContact, accounts: usize) -> bool {
    let l = c.lists;
    c.owner < accounts
        && c.contact < accounts
        && c.owner != c.contact
        && l != ListSet::EMPTY
        && !l.contains(ListKind::Rl)
        && !l.contains(ListKind::Pl)
        && !(l.contains(ListKind::Al) && l.contains(ListKind::Bl))
}

impl Store {
    /// Creates `accounts` (each with group 0, list version 0 or 1, password logins off and one
    /// access token labelled `token_label`) and the `contacts`, in one transaction. FL contacts
    /// are put in group 0, and each FL entry sets the owner's RL bit in the contact's list, as
    /// [`Store::add_to_list`] would. List size limits are not applied (seeding may exceed
    /// them on purpose). Returns the accounts in the order given.
    ///
    /// # Errors
    ///
    /// [`SeedError::InvalidAccount`], [`SeedError::EmailTaken`], [`SeedError::InvalidContact`],
    /// or an infrastructure error; nothing is written then.
    pub async fn seed(
        &self,
        accounts: Vec<SeedAccount>,
        contacts: Vec<SeedContact>,
        token_label: &str,
    ) -> Result<Vec<Seeded>, SeedError> {
        for (index, a) in accounts.iter().enumerate() {
            if !is_storable_handle(&a.email) || !is_valid_friendly_name(&a.friendly_name) {
                return Err(SeedError::InvalidAccount { index });
            }
        }
        // Merge the entries into rows, adding the derived RL bits.
        let mut rows: HashMap<(usize, usize), u8> = HashMap::with_capacity(contacts.len() * 2);
        for (index, c) in contacts.iter().enumerate() {
            if !valid_contact(c, accounts.len()) {
                return Err(SeedError::InvalidContact { index });
            }
            *rows.entry((c.owner, c.contact)).or_default() |= c.lists.bits();
            if c.lists.contains(ListKind::Fl) {
                *rows.entry((c.contact, c.owner)).or_default() |= ListKind::Rl.bit();
            }
        }
        if rows
            .values()
            .any(|&b| b & ListKind::Al.bit() != 0 && b & ListKind::Bl.bit() != 0)
        {
            let index = contacts
                .iter()
                .position(|c| rows.get(&(c.owner, c.contact)).is_some_and(|&b| b & 6 == 6))
                .unwrap_or(0);
            return Err(SeedError::InvalidContact { index });
        }
        let tokens = (0..accounts.len())
            .map(|_| generate_token())
            .collect::<Result<Vec<_>, _>>()?;
        // One unusable password for everybody: random, never shown, password logins off.
        let password = generate_token()?;
        let cost = self.options().bcrypt_cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password.expose(), cost))
            .await
            .map_err(StoreError::Join)?
            .map_err(StoreError::Bcrypt)?;
        let key = self.key().clone();
        let label = token_label.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let now = now_unix();
            let mut has_contacts = vec![false; accounts.len()];
            for &(owner, _) in rows.keys() {
                has_contacts[owner] = true;
            }
            let mut ids = Vec::with_capacity(accounts.len());
            {
                let mut exists = tx.prepare("SELECT 1 FROM accounts WHERE email = ?1")?;
                let mut account = tx.prepare(
                    "INSERT INTO accounts (email, friendly_name, password_hash, member_id,
                                           created_at, list_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let mut group =
                    tx.prepare("INSERT INTO groups (account_id, group_id, name) VALUES (?1, 0, ?2)")?;
                let mut token = tx.prepare(
                    "INSERT INTO tokens (account_id, label, nonce, ciphertext, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let mut rng = rand::rng();
                for (index, a) in accounts.iter().enumerate() {
                    if exists.exists([a.email.as_str()])? {
                        return Err(SeedError::EmailTaken { index });
                    }
                    let member_id: i64 = rng.random_range(1..i64::MAX);
                    let version = i64::from(has_contacts[index]);
                    let inserted = account.execute(params![
                        a.email.as_str(),
                        a.friendly_name,
                        hash,
                        member_id,
                        now,
                        version
                    ]);
                    match inserted {
                        Ok(_) => {}
                        // A duplicate within this call.
                        Err(e) if e.is_constraint_violation() => {
                            return Err(SeedError::EmailTaken { index });
                        }
                        Err(e) => return Err(e.into()),
                    }
                    let id = AccountId(tx.last_insert_rowid()?);
                    group.execute(params![id.0, GROUP_ZERO_NAME])?;
                    let (nonce, ciphertext) = seal(&key, id, &tokens[index])?;
                    token.execute(params![id.0, label, nonce, ciphertext, now])?;
                    ids.push(id);
                }
                let mut contact = tx.prepare(
                    "INSERT INTO contacts (owner_id, contact_id, friendly_name, lists)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut in_group = tx.prepare(
                    "INSERT INTO contact_groups (owner_id, contact_id, group_id) VALUES (?1, ?2, 0)",
                )?;
                let mut sorted: Vec<_> = rows.iter().map(|(&k, &v)| (k, v)).collect();
                sorted.sort_unstable();
                for ((owner, other), bits) in sorted {
                    let (o, c) = (ids[owner], ids[other]);
                    contact.execute(params![o.0, c.0, accounts[other].friendly_name, bits])?;
                    if bits & ListKind::Fl.bit() != 0 {
                        in_group.execute(params![o.0, c.0])?;
                    }
                }
            }
            tx.commit()?;
            Ok(ids
                .into_iter()
                .zip(tokens.iter().cloned())
                .map(|(id, token)| Seeded { id, token })
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;
    use crate::store::{Contact, parse_handle};

    fn account(n: usize) -> SeedAccount {
        SeedAccount {
            email: parse_handle(&format!("user{n}@example.com")).unwrap(),
            friendly_name: format!("User%20{n}"),
        }
    }

    const FL_AL: ListSet = ListSet::EMPTY.with(ListKind::Fl).with(ListKind::Al);

    #[tokio::test]
    async fn seeded_accounts_log_in_with_their_tokens_and_have_consistent_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let accounts = (0..3).map(account).collect();
        // 0 and 1 are mutual friends; 2 has 0 on its FL only, and blocks 1.
        let contacts = vec![
            SeedContact {
                owner: 0,
                contact: 1,
                lists: FL_AL,
            },
            SeedContact {
                owner: 1,
                contact: 0,
                lists: FL_AL,
            },
            SeedContact {
                owner: 2,
                contact: 0,
                lists: ListSet::EMPTY.with(ListKind::Fl),
            },
            SeedContact {
                owner: 2,
                contact: 1,
                lists: ListSet::EMPTY.with(ListKind::Bl),
            },
        ];
        let seeded = store.seed(accounts, contacts, "bench").await.unwrap();
        assert_eq!(seeded.len(), 3);

        // The token works for MD5 and plain logins, exactly like one from `new_token`.
        let md5 = relive_msnp::auth::md5_response("salt", seeded[1].token.expose());
        assert!(
            store
                .verify_md5(seeded[1].id, "salt", &md5)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .verify_plain(seeded[2].id, &seeded[2].token)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .verify_plain(seeded[0].id, &seeded[2].token)
                .await
                .unwrap()
                .is_none()
        );

        // List data as the list model would have written it.
        let snap = store.list_snapshot(seeded[0].id).await.unwrap();
        let bits = |c: &Contact| c.lists.bits();
        let of = |snap: &crate::store::ListSnapshot, n: usize| {
            snap.contacts
                .iter()
                .find(|c| c.email.as_str() == format!("user{n}@example.com"))
                .cloned()
                .unwrap()
        };
        // 0: 1 on FL|AL|RL, 2 on RL only.
        assert_eq!(bits(&of(&snap, 1)), 1 | 2 | 8);
        assert_eq!(bits(&of(&snap, 2)), 8);
        assert_eq!(snap.version, 1);
        let snap2 = store.list_snapshot(seeded[2].id).await.unwrap();
        assert_eq!(bits(&of(&snap2, 0)), 1);
        assert_eq!(bits(&of(&snap2, 1)), 4);
        assert_eq!(of(&snap2, 0).friendly_name.as_str(), "User%200");
        assert_eq!(
            of(&snap2, 0)
                .groups
                .iter()
                .map(|g| g.id)
                .collect::<Vec<_>>(),
            vec![crate::store::GroupId(0)]
        );
        // Seeded rows get their MSNP10+ GUIDs from the insert triggers too.
        assert!(!of(&snap2, 0).guid.is_nil());

        // Password logins stay off.
        let a = store.account(&account(0).email).await.unwrap().unwrap();
        assert!(!a.allow_password_login);
    }

    #[tokio::test]
    async fn invalid_input_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let bad_contacts = [
            SeedContact {
                owner: 0,
                contact: 0,
                lists: FL_AL,
            },
            SeedContact {
                owner: 0,
                contact: 9,
                lists: FL_AL,
            },
            SeedContact {
                owner: 0,
                contact: 1,
                lists: ListSet::EMPTY.with(ListKind::Rl),
            },
            SeedContact {
                owner: 0,
                contact: 1,
                lists: ListSet::EMPTY,
            },
            SeedContact {
                owner: 0,
                contact: 1,
                lists: ListSet::EMPTY.with(ListKind::Al).with(ListKind::Bl),
            },
        ];
        for c in bad_contacts {
            let err = store
                .seed((0..2).map(account).collect(), vec![c], "bench")
                .await
                .unwrap_err();
            assert!(
                matches!(err, SeedError::InvalidContact { index: 0 }),
                "{c:?}"
            );
        }
        // AL and BL from two entries for the same pair.
        let err = store
            .seed(
                (0..2).map(account).collect(),
                vec![
                    SeedContact {
                        owner: 0,
                        contact: 1,
                        lists: FL_AL,
                    },
                    SeedContact {
                        owner: 0,
                        contact: 1,
                        lists: ListSet::EMPTY.with(ListKind::Bl),
                    },
                ],
                "bench",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SeedError::InvalidContact { .. }));
        // A duplicate handle within the call rolls the whole call back.
        let err = store
            .seed(vec![account(0), account(1), account(0)], vec![], "bench")
            .await
            .unwrap_err();
        assert!(matches!(err, SeedError::EmailTaken { index: 2 }));
        assert!(store.accounts().await.unwrap().is_empty());
        // And one that already exists.
        store.seed(vec![account(5)], vec![], "bench").await.unwrap();
        let err = store
            .seed(vec![account(6), account(5)], vec![], "bench")
            .await
            .unwrap_err();
        assert!(matches!(err, SeedError::EmailTaken { index: 1 }));
        assert_eq!(store.accounts().await.unwrap().len(), 1);
    }
}
