//! The MSNP2–9 list data model (PROTOCOL.md §2.6–§2.7): FL/AL/BL/RL membership, groups, GTC,
//! BLP, phone properties, names, and the snapshot `SYN` sends.
//!
//! Every operation runs in one transaction that also bumps and persists the owner's list version
//! (and the other account's, when its RL changes), so an acknowledged change is durable and its
//! version is the one the reply carries. Violations are typed [`ListError`]s; the store knows no
//! MSNP numbers: the notification service maps each variant to its error code (one function,
//! `notification::list_error_code`).
//!
//! Model rules kept here:
//! - A contact row holds list bits FL=1 AL=2 BL=4 RL=8, the stored friendly name, and (FL only)
//!   a set of group ids. A row whose bits are all clear is deleted.
//! - Adding X to my FL sets my RL bit in X's list (X's version bumps); removing X from my FL
//!   clears it. RL is never changed by its owner.
//! - AL and BL exclude each other.
//! - A handle nobody registered can be listed all the same: it gets a placeholder account that
//!   never logs in and is never shown (`migrations/0003_placeholders.sql`), so the answers to
//!   `ADD`/`REM`/`REA` never tell registered handles from unregistered ones. Registering the
//!   handle later keeps those lists; a placeholder no list names any more is deleted.
//! - FL without a group puts the contact in group 0. Removing a contact from a group it is the
//!   last one of leaves it on FL with no groups (as after removing a group); encoders print
//!   such a contact as being in group 0.
//! - MSNP10+ (the address book) names contact rows and groups by GUID (migration 4): a row's
//!   GUID lives as long as the row. Group 0 is "no group" there: filing a contact into a group
//!   the MSNP10 way ([`Store::file_in_group`]) takes it out of group 0, as an MSNP7 client does
//!   with `ADD` to the new group then `REM` from group 0.

mod groups;
mod props;
mod snapshot;
#[cfg(test)]
mod tests;

use crate::store::db::{Conn as Connection, OptionalExtension as _, params};

use super::accounts::{
    drop_placeholder_if_unlisted, handle_id, handle_id_or_placeholder, is_valid_friendly_name,
};
use super::types::{
    AccountId, GroupId, GroupKey, Guid, ListKind, ListSet, Passport, is_stored_list,
};
use super::{Store, StoreError};

pub use groups::{MAX_GROUP_NAME_BYTES, MAX_GROUPS};
pub use props::MAX_PHONE_BYTES;
use snapshot::guid_of;
pub(crate) use snapshot::login_contacts;
pub use snapshot::{Contact, Group, ListSnapshot, LoginState};

/// Violations of the list model. The numbers in the variants' docs are the MSNP error codes the
/// notification service answers with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Already on that list, or already in that group (215).
    #[error("already on the list or in the group")]
    AlreadyOnList,
    /// Not on that list (216).
    #[error("not on the list")]
    NotOnList,
    /// On the opposite one of AL/BL (219).
    #[error("already on the opposite list")]
    InOppositeList,
    /// The handle names no account (205). Not returned by `ADD` any more: unregistered handles
    /// are listed as placeholders so `ADD` does not tell them apart.
    #[error("no such user")]
    NoSuchUser,
    /// The handle is under the `.invalid` domain of the server's virtual contacts (the pager,
    /// [`relive_msnp::pager::is_reserved_handle`]): never a list entry (208).
    #[error("reserved handle")]
    ReservedHandle,
    /// The list reached its size limit (210).
    #[error("list is full")]
    ListFull,
    /// No group with that id (224).
    #[error("no such group")]
    NoSuchGroup,
    /// The contact is not in that group (225).
    #[error("contact is not in that group")]
    NotInGroup,
    /// The account already has [`MAX_GROUPS`] groups (223).
    #[error("too many groups")]
    TooManyGroups,
    /// The group name is longer than [`MAX_GROUP_NAME_BYTES`] (229).
    #[error("group name too long")]
    GroupNameTooLong,
    /// Another group already has that name (228).
    #[error("group already exists")]
    GroupExists,
    /// Group 0 cannot be removed (230).
    #[error("group 0 cannot be removed")]
    CannotRemoveGroupZero,
    /// The setting already has that value (218).
    #[error("already in that mode")]
    SameValue,
    /// A name is empty, too long, or not URL-encoded (201; `REA` may answer 209).
    #[error("invalid name")]
    InvalidName,
    /// Another invalid argument, e.g. a group given for AL/BL or a bad phone value (201).
    #[error("invalid parameter")]
    InvalidParameter,
    /// The client tried to change its RL; MSN servers disconnect for that (no code).
    #[error("the reverse list is read-only")]
    ReverseListReadOnly,
    /// The account doing the change no longer exists (500).
    #[error("account no longer exists")]
    NoSuchAccount,
    /// Infrastructure failure (500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ListError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(e))
    }
}

/// List size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// Maximum FL entries (default 300).
    pub forward: usize,
    /// Maximum entries on each of AL and BL (default 1000: with GTC `N`, AL grows with RL).
    pub allow_block: usize,
}

impl Default for ListLimits {
    fn default() -> Self {
        Self {
            forward: 300,
            allow_block: 1000,
        }
    }
}

/// What a list change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The owner's list version after the change (goes in the reply).
    pub version: u32,
    /// The contact's bits in the owner's lists after the change (for the presence hub).
    pub bits: ListSet,
    /// The contact row's GUID after the change (MSNP10+ `C=`); `NIL` when no row is left.
    pub guid: Guid,
    /// The other account's RL change, if any, so the server can send it `ADD 0 RL` / `REM 0 RL`.
    pub reverse: Option<ReverseChange>,
}

/// A change to another account's RL caused by an FL change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseChange {
    /// The account whose RL changed.
    pub account: AccountId,
    /// Its handle.
    pub email: Passport,
    /// Its list version after the change.
    pub version: u32,
    /// `true` when the owner was added to its RL, `false` when removed.
    pub added: bool,
    /// The owner's bits in that account's lists after the change (for the presence hub).
    pub bits: ListSet,
}

/// List bits as read from the database; the schema's CHECK keeps them within FL|AL|BL|RL, and
/// unknown bits (never written by this code) are dropped rather than failing the read.
pub(super) fn bits_from_db(raw: u8) -> ListSet {
    ListSet::from_bits(raw & 15).unwrap_or(ListSet::EMPTY)
}

/// Current list version of `owner`, or [`ListError::NoSuchAccount`].
pub(super) fn owner_version(conn: &Connection, owner: AccountId) -> Result<u32, ListError> {
    conn.query_row(
        "SELECT list_version FROM accounts WHERE id = ?1",
        [owner.0],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(ListError::NoSuchAccount)
}

/// Bumps and returns the list version of `account`.
pub(super) fn bump(conn: &Connection, account: AccountId) -> Result<u32, ListError> {
    Ok(conn.query_row(
        "UPDATE accounts SET list_version = list_version + 1 WHERE id = ?1 RETURNING list_version",
        [account.0],
        |r| r.get(0),
    )?)
}

/// The bits and stored name of `contact` in `owner`'s lists.
fn contact_row(
    conn: &Connection,
    owner: AccountId,
    contact: AccountId,
) -> crate::store::db::Result<Option<(ListSet, String)>> {
    conn.query_row(
        "SELECT lists, friendly_name FROM contacts WHERE owner_id = ?1 AND contact_id = ?2",
        [owner.0, contact.0],
        |r| Ok((bits_from_db(r.get(0)?), r.get(1)?)),
    )
    .optional()
}

/// The GUID of `contact`'s row in `owner`'s lists.
fn row_guid(
    conn: &Connection,
    owner: AccountId,
    contact: AccountId,
) -> crate::store::db::Result<Guid> {
    let text: Option<Option<String>> = conn
        .query_row(
            "SELECT guid FROM contacts WHERE owner_id = ?1 AND contact_id = ?2",
            [owner.0, contact.0],
            |r| r.get(0),
        )
        .optional()?;
    Ok(guid_of(text.flatten().as_deref()))
}

/// Writes a contact row, or deletes it when `bits` is empty.
fn write_row(
    conn: &Connection,
    owner: AccountId,
    contact: AccountId,
    bits: ListSet,
    name: &str,
) -> crate::store::db::Result<()> {
    if bits == ListSet::EMPTY {
        conn.execute(
            "DELETE FROM contacts WHERE owner_id = ?1 AND contact_id = ?2",
            [owner.0, contact.0],
        )?;
    } else {
        conn.execute(
            "INSERT INTO contacts (owner_id, contact_id, friendly_name, lists) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (owner_id, contact_id)
             DO UPDATE SET friendly_name = excluded.friendly_name, lists = excluded.lists",
            params![owner.0, contact.0, name, bits.bits()],
        )?;
    }
    Ok(())
}

fn count_on(
    conn: &Connection,
    owner: AccountId,
    list: ListKind,
) -> crate::store::db::Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM contacts WHERE owner_id = ?1 AND (lists & ?2) <> 0",
        params![owner.0, list.bit()],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn in_group(
    conn: &Connection,
    owner: AccountId,
    contact: AccountId,
    group: GroupId,
) -> crate::store::db::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM contact_groups
                        WHERE owner_id = ?1 AND contact_id = ?2 AND group_id = ?3)",
        params![owner.0, contact.0, group.0],
        |r| r.get(0),
    )
}

/// Sets or clears `owner`'s RL bit in `contact`'s lists and bumps `contact`'s version.
fn update_reverse(
    conn: &Connection,
    owner: AccountId,
    owner_name: &str,
    contact: AccountId,
    email: &Passport,
    added: bool,
) -> Result<ReverseChange, ListError> {
    let (bits, name) = contact_row(conn, contact, owner)?
        .unwrap_or_else(|| (ListSet::EMPTY, owner_name.to_owned()));
    let bits = if added {
        bits.with(ListKind::Rl)
    } else {
        bits.without(ListKind::Rl)
    };
    write_row(conn, contact, owner, bits, &name)?;
    Ok(ReverseChange {
        account: contact,
        email: email.clone(),
        version: bump(conn, contact)?,
        added,
        bits,
    })
}

fn add_tx(
    conn: &mut Connection,
    limits: ListLimits,
    owner: AccountId,
    list: ListKind,
    email: &Passport,
    name: Option<&str>,
    group: Option<GroupId>,
) -> Result<Outcome, ListError> {
    if relive_msnp::pager::is_reserved_handle(email.as_str()) {
        return Err(ListError::ReservedHandle);
    }
    let tx = conn.transaction()?;
    owner_version(&tx, owner)?;
    if list == ListKind::Rl {
        return Err(ListError::ReverseListReadOnly);
    }
    // An unregistered handle gets a placeholder account: the change is made (and answered)
    // exactly as for a registered handle that never comes online.
    let contact = handle_id_or_placeholder(&tx, email)?;
    let row = contact_row(&tx, owner, contact)?;
    let bits = row.as_ref().map_or(ListSet::EMPTY, |(b, _)| *b);
    // Without a name the stored one stays (a new row is named after the handle).
    let name = match (name, &row) {
        (Some(n), _) => n.to_owned(),
        (None, Some((_, stored))) => stored.clone(),
        (None, None) => email.as_str().to_owned(),
    };
    let name = name.as_str();
    let mut outcome = match list {
        ListKind::Rl => return Err(ListError::ReverseListReadOnly),
        ListKind::Pl => return Err(ListError::InvalidParameter),
        ListKind::Fl => {
            let gid = group.unwrap_or(GroupId(0));
            if !groups::exists(&tx, owner, gid)? {
                return Err(ListError::NoSuchGroup);
            }
            if bits.contains(ListKind::Fl) {
                // Already on FL: only adding it to another group is a change.
                if group.is_none() || in_group(&tx, owner, contact, gid)? {
                    return Err(ListError::AlreadyOnList);
                }
                groups::add_member(&tx, owner, contact, gid)?;
                Outcome {
                    bits: ListSet::EMPTY,
                    guid: Guid::NIL,
                    version: bump(&tx, owner)?,
                    reverse: None,
                }
            } else {
                if count_on(&tx, owner, ListKind::Fl)? >= limits.forward {
                    return Err(ListError::ListFull);
                }
                write_row(&tx, owner, contact, bits.with(ListKind::Fl), name)?;
                groups::add_member(&tx, owner, contact, gid)?;
                let version = bump(&tx, owner)?;
                let owner_name: String = tx.query_row(
                    "SELECT friendly_name FROM accounts WHERE id = ?1",
                    [owner.0],
                    |r| r.get(0),
                )?;
                let reverse = update_reverse(&tx, owner, &owner_name, contact, email, true)?;
                Outcome {
                    bits: ListSet::EMPTY,
                    guid: Guid::NIL,
                    // Adding yourself bumps your own version twice; report the final one.
                    version: if contact == owner {
                        reverse.version
                    } else {
                        version
                    },
                    reverse: Some(reverse),
                }
            }
        }
        ListKind::Al | ListKind::Bl => {
            if group.is_some() {
                return Err(ListError::InvalidParameter);
            }
            let opposite = if list == ListKind::Al {
                ListKind::Bl
            } else {
                ListKind::Al
            };
            if bits.contains(opposite) {
                return Err(ListError::InOppositeList);
            }
            if bits.contains(list) {
                return Err(ListError::AlreadyOnList);
            }
            if count_on(&tx, owner, list)? >= limits.allow_block {
                return Err(ListError::ListFull);
            }
            write_row(&tx, owner, contact, bits.with(list), name)?;
            Outcome {
                bits: ListSet::EMPTY,
                guid: Guid::NIL,
                version: bump(&tx, owner)?,
                reverse: None,
            }
        }
    };
    outcome.bits = contact_row(&tx, owner, contact)?.map_or(ListSet::EMPTY, |(b, _)| b);
    outcome.guid = row_guid(&tx, owner, contact)?;
    tx.commit()?;
    Ok(outcome)
}

fn remove_tx(
    conn: &mut Connection,
    owner: AccountId,
    list: ListKind,
    email: &Passport,
    group: Option<GroupId>,
) -> Result<Outcome, ListError> {
    let tx = conn.transaction()?;
    owner_version(&tx, owner)?;
    if list == ListKind::Rl {
        return Err(ListError::ReverseListReadOnly);
    }
    if !is_stored_list(list) || (group.is_some() && list != ListKind::Fl) {
        return Err(ListError::InvalidParameter);
    }
    let contact = handle_id(&tx, email)?.ok_or(ListError::NotOnList)?;
    let (bits, name) = contact_row(&tx, owner, contact)?.ok_or(ListError::NotOnList)?;
    if !bits.contains(list) {
        return Err(ListError::NotOnList);
    }
    let mut outcome = match (list, group) {
        (ListKind::Fl, Some(gid)) => {
            if !groups::exists(&tx, owner, gid)? {
                return Err(ListError::NoSuchGroup);
            }
            if !in_group(&tx, owner, contact, gid)? {
                return Err(ListError::NotInGroup);
            }
            tx.execute(
                "DELETE FROM contact_groups WHERE owner_id = ?1 AND contact_id = ?2 AND group_id = ?3",
                params![owner.0, contact.0, gid.0],
            )?;
            Outcome {
                bits: ListSet::EMPTY,
                guid: Guid::NIL,
                version: bump(&tx, owner)?,
                reverse: None,
            }
        }
        (ListKind::Fl, None) => {
            tx.execute(
                "DELETE FROM contact_groups WHERE owner_id = ?1 AND contact_id = ?2",
                [owner.0, contact.0],
            )?;
            write_row(&tx, owner, contact, bits.without(ListKind::Fl), &name)?;
            let version = bump(&tx, owner)?;
            let reverse = update_reverse(&tx, owner, "", contact, email, false)?;
            Outcome {
                bits: ListSet::EMPTY,
                guid: Guid::NIL,
                version: if contact == owner {
                    reverse.version
                } else {
                    version
                },
                reverse: Some(reverse),
            }
        }
        _ => {
            write_row(&tx, owner, contact, bits.without(list), &name)?;
            Outcome {
                bits: ListSet::EMPTY,
                guid: Guid::NIL,
                version: bump(&tx, owner)?,
                reverse: None,
            }
        }
    };
    outcome.bits = contact_row(&tx, owner, contact)?.map_or(ListSet::EMPTY, |(b, _)| b);
    outcome.guid = row_guid(&tx, owner, contact)?;
    drop_placeholder_if_unlisted(&tx, contact)?;
    tx.commit()?;
    Ok(outcome)
}

/// `ADC trid FL C=<guid> <group-guid>`: files an FL contact into `group` and out of group 0.
fn file_tx(
    conn: &mut Connection,
    owner: AccountId,
    email: &Passport,
    group: GroupId,
) -> Result<u32, ListError> {
    let tx = conn.transaction()?;
    owner_version(&tx, owner)?;
    let contact = handle_id(&tx, email)?.ok_or(ListError::NotOnList)?;
    let (bits, _) = contact_row(&tx, owner, contact)?.ok_or(ListError::NotOnList)?;
    if !bits.contains(ListKind::Fl) {
        return Err(ListError::NotOnList);
    }
    if !groups::exists(&tx, owner, group)? {
        return Err(ListError::NoSuchGroup);
    }
    if in_group(&tx, owner, contact, group)? {
        return Err(ListError::AlreadyOnList);
    }
    groups::add_member(&tx, owner, contact, group)?;
    if group.0 != 0 {
        tx.execute(
            "DELETE FROM contact_groups WHERE owner_id = ?1 AND contact_id = ?2 AND group_id = 0",
            [owner.0, contact.0],
        )?;
    }
    let version = bump(&tx, owner)?;
    tx.commit()?;
    Ok(version)
}

impl Store {
    /// `ADD`: puts `contact` on `owner`'s FL, AL or BL. For FL, `group` selects the group
    /// (default 0); adding a contact already on FL to another group is allowed. Adding to FL
    /// also puts `owner` on the contact's RL (see [`Outcome::reverse`]). An unregistered
    /// handle is added like a registered one (as a placeholder account: see
    /// `migrations/0003_placeholders.sql`), so the answer never tells which handles exist.
    ///
    /// # Errors
    ///
    /// [`ListError::AlreadyOnList`], [`ListError::InOppositeList`],
    /// [`ListError::ListFull`], [`ListError::NoSuchGroup`], [`ListError::InvalidName`],
    /// [`ListError::InvalidParameter`] (group with AL/BL), [`ListError::ReverseListReadOnly`].
    pub async fn add_to_list(
        &self,
        owner: AccountId,
        list: ListKind,
        contact: &Passport,
        name: &str,
        group: Option<GroupId>,
    ) -> Result<Outcome, ListError> {
        if !is_valid_friendly_name(name) {
            return Err(ListError::InvalidName);
        }
        let limits = self.options().limits;
        let (email, name) = (contact.clone(), name.to_owned());
        self.call(move |conn| add_tx(conn, limits, owner, list, &email, Some(&name), group))
            .await
    }

    /// [`Store::add_to_list`] without a name (MSNP10 `ADC AL|BL N=<handle>`): the name stored
    /// for the contact stays as it is; a new row is named after the handle.
    ///
    /// # Errors
    ///
    /// As [`Store::add_to_list`].
    pub async fn add_to_list_unnamed(
        &self,
        owner: AccountId,
        list: ListKind,
        contact: &Passport,
    ) -> Result<Outcome, ListError> {
        let limits = self.options().limits;
        let email = contact.clone();
        self.call(move |conn| add_tx(conn, limits, owner, list, &email, None, None))
            .await
    }

    /// `REM`: takes `contact` off `owner`'s FL, AL or BL. For FL with `group`, only removes it
    /// from that group. Removing from FL also takes `owner` off the contact's RL.
    ///
    /// # Errors
    ///
    /// [`ListError::NotOnList`], [`ListError::NoSuchGroup`], [`ListError::NotInGroup`],
    /// [`ListError::InvalidParameter`] (group with AL/BL), [`ListError::ReverseListReadOnly`].
    pub async fn remove_from_list(
        &self,
        owner: AccountId,
        list: ListKind,
        contact: &Passport,
        group: Option<GroupId>,
    ) -> Result<Outcome, ListError> {
        let email = contact.clone();
        self.call(move |conn| remove_tx(conn, owner, list, &email, group))
            .await
    }

    /// MSNP10 `ADC FL C=<guid> <group-guid>`: files FL contact `contact` into `group` and takes
    /// it out of group 0 ("no group" in MSNP10+). Returns the new list version.
    ///
    /// # Errors
    ///
    /// [`ListError::NotOnList`] (not on FL), [`ListError::NoSuchGroup`],
    /// [`ListError::AlreadyOnList`] (already in that group).
    pub async fn file_in_group(
        &self,
        owner: AccountId,
        contact: &Passport,
        group: GroupId,
    ) -> Result<u32, ListError> {
        let email = contact.clone();
        self.call(move |conn| file_tx(conn, owner, &email, group))
            .await
    }

    /// The contact whose row in `owner`'s lists has GUID `guid` (MSNP10+ `C=`), if any.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn contact_by_guid(
        &self,
        owner: AccountId,
        guid: Guid,
    ) -> Result<Option<Passport>, ListError> {
        self.call(move |conn| {
            let email: Option<String> = conn
                .query_row(
                    "SELECT a.email FROM contacts c JOIN accounts a ON a.id = c.contact_id
                     WHERE c.owner_id = ?1 AND c.guid = ?2",
                    params![owner.0, guid.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(email.and_then(|e| Passport::parse(&e).ok()))
        })
        .await
    }

    /// The key of `owner`'s group with GUID `guid`, if any.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn group_by_guid(
        &self,
        owner: AccountId,
        guid: Guid,
    ) -> Result<Option<GroupKey>, ListError> {
        self.call(move |conn| {
            let id: Option<u32> = conn
                .query_row(
                    "SELECT group_id FROM groups WHERE account_id = ?1 AND guid = ?2",
                    params![owner.0, guid.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(id.map(|id| GroupKey::new(GroupId(id), guid)))
        })
        .await
    }

    /// The key of `owner`'s group number `id` or, with `name`, the group of that name; `None`
    /// if there is none.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn group_key(
        &self,
        owner: AccountId,
        id: Option<GroupId>,
        name: Option<&str>,
    ) -> Result<Option<GroupKey>, ListError> {
        let name = name.map(str::to_owned);
        self.call(move |conn| {
            let row: Option<(u32, Option<String>)> = conn
                .query_row(
                    "SELECT group_id, guid FROM groups WHERE account_id = ?1
                     AND (group_id = ?2 OR name = ?3)",
                    params![owner.0, id.map(|g| g.0), name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(row.map(|(id, guid)| GroupKey::new(GroupId(id), guid_of(guid.as_deref()))))
        })
        .await
    }
}
