//! Account properties that bump the list version: GTC, BLP, phone properties, the account's own
//! friendly name, and the names stored for contacts.

use crate::store::db::{Conn as Connection, params};

use super::{ListError, bump, owner_version};
use crate::store::Store;
use crate::store::accounts::is_valid_friendly_name;
use crate::store::types::{AccountId, Blp, Gtc, Passport, PhoneProp, phone_prop_rank};

/// Longest phone property value, in bytes of its URL-encoded wire form.
pub const MAX_PHONE_BYTES: usize = 95;

/// Runs `update` (which must change exactly one row of `owner` to be meaningful) in a
/// transaction with a version bump.
fn with_bump<F>(conn: &mut Connection, owner: AccountId, update: F) -> Result<u32, ListError>
where
    F: FnOnce(&Connection) -> Result<(), ListError>,
{
    let tx = conn.transaction()?;
    owner_version(&tx, owner)?;
    update(&tx)?;
    let version = bump(&tx, owner)?;
    tx.commit()?;
    Ok(version)
}

/// Sets a text column of `accounts` to `value`, refusing an unchanged value with
/// [`ListError::SameValue`].
async fn set_mode(
    store: &Store,
    owner: AccountId,
    column: &'static str,
    value: &'static str,
) -> Result<u32, ListError> {
    store
        .call(move |conn| {
            with_bump(conn, owner, |tx| {
                let current: String = tx.query_row(
                    &format!("SELECT {column} FROM accounts WHERE id = ?1"),
                    [owner.0],
                    |r| r.get(0),
                )?;
                if current == value {
                    return Err(ListError::SameValue);
                }
                tx.execute(
                    &format!("UPDATE accounts SET {column} = ?2 WHERE id = ?1"),
                    params![owner.0, value],
                )?;
                Ok(())
            })
        })
        .await
}

impl Store {
    /// `GTC`: sets the add-prompt preference.
    ///
    /// # Errors
    ///
    /// [`ListError::SameValue`] if unchanged.
    pub async fn set_gtc(&self, owner: AccountId, gtc: Gtc) -> Result<u32, ListError> {
        set_mode(self, owner, "gtc", gtc.as_str()).await
    }

    /// `BLP`: sets the privacy mode.
    ///
    /// # Errors
    ///
    /// [`ListError::SameValue`] if unchanged.
    pub async fn set_blp(&self, owner: AccountId, blp: Blp) -> Result<u32, ListError> {
        set_mode(self, owner, "blp", blp.as_str()).await
    }

    /// `PRP`: sets a phone property, or clears it when `value` is `None` or empty.
    ///
    /// # Errors
    ///
    /// [`ListError::InvalidParameter`] if the value is longer than [`MAX_PHONE_BYTES`] or not
    /// URL-encoded text, or `prop` is `MFN` (not a phone property).
    pub async fn set_phone(
        &self,
        owner: AccountId,
        prop: PhoneProp,
        value: Option<&str>,
    ) -> Result<u32, ListError> {
        if phone_prop_rank(prop).is_none() {
            return Err(ListError::InvalidParameter);
        }
        let value = value.filter(|v| !v.is_empty()).map(str::to_owned);
        if let Some(v) = &value
            && (v.len() > MAX_PHONE_BYTES || !v.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ListError::InvalidParameter);
        }
        self.call(move |conn| {
            with_bump(conn, owner, |tx| {
                match &value {
                    Some(v) => tx.execute(
                        "INSERT INTO account_phones (account_id, prop, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (account_id, prop) DO UPDATE SET value = excluded.value",
                        params![owner.0, prop.as_str(), v],
                    )?,
                    None => tx.execute(
                        "DELETE FROM account_phones WHERE account_id = ?1 AND prop = ?2",
                        params![owner.0, prop.as_str()],
                    )?,
                };
                Ok(())
            })
        })
        .await
    }

    /// `REA` on one's own handle: changes the account's friendly name.
    ///
    /// # Errors
    ///
    /// [`ListError::InvalidName`].
    pub async fn set_friendly_name(&self, owner: AccountId, name: &str) -> Result<u32, ListError> {
        if !is_valid_friendly_name(name) {
            return Err(ListError::InvalidName);
        }
        let name = name.to_owned();
        self.call(move |conn| {
            with_bump(conn, owner, |tx| {
                tx.execute(
                    "UPDATE accounts SET friendly_name = ?2 WHERE id = ?1",
                    params![owner.0, name],
                )?;
                Ok(())
            })
        })
        .await
    }

    /// `REA` on another handle: changes the name stored for a contact in `owner`'s lists.
    ///
    /// # Errors
    ///
    /// [`ListError::NotOnList`] if the contact is on none of `owner`'s lists,
    /// [`ListError::InvalidName`].
    pub async fn rename_contact(
        &self,
        owner: AccountId,
        contact: &Passport,
        name: &str,
    ) -> Result<u32, ListError> {
        if !is_valid_friendly_name(name) {
            return Err(ListError::InvalidName);
        }
        let (email, name) = (contact.clone(), name.to_owned());
        self.call(move |conn| {
            with_bump(conn, owner, |tx| {
                let n = tx.execute(
                    "UPDATE contacts SET friendly_name = ?3
                     WHERE owner_id = ?1
                       AND contact_id = (SELECT id FROM accounts WHERE email = ?2)",
                    params![owner.0, email.as_str(), name],
                )?;
                if n == 0 {
                    return Err(ListError::NotOnList);
                }
                Ok(())
            })
        })
        .await
    }
}
