//! Contact groups (MSNP7+): `ADG`, `RMG`, `REG` and group membership helpers.

use crate::store::db::{Conn as Connection, params};

use super::{ListError, bump, guid_of, owner_version};
use crate::store::Store;
use crate::store::types::{AccountId, GroupId, GroupKey};

/// Most groups an account may have, group 0 included (more → 223).
pub const MAX_GROUPS: usize = 30;

/// Longest group name, in bytes of its URL-encoded wire form (longer → 229).
pub const MAX_GROUP_NAME_BYTES: usize = 61;

/// Whether `owner` has group `group`.
pub(super) fn exists(
    conn: &Connection,
    owner: AccountId,
    group: GroupId,
) -> crate::store::db::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM groups WHERE account_id = ?1 AND group_id = ?2)",
        params![owner.0, group.0],
        |r| r.get(0),
    )
}

/// Puts an FL contact into a group (no-op if already there).
pub(super) fn add_member(
    conn: &Connection,
    owner: AccountId,
    contact: AccountId,
    group: GroupId,
) -> crate::store::db::Result<()> {
    conn.execute(
        "INSERT INTO contact_groups (owner_id, contact_id, group_id) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![owner.0, contact.0, group.0],
    )?;
    Ok(())
}

fn check_name(name: &str) -> Result<(), ListError> {
    if name.len() > MAX_GROUP_NAME_BYTES {
        return Err(ListError::GroupNameTooLong);
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ListError::InvalidName);
    }
    Ok(())
}

/// Whether another group of `owner` (not `except`) is called `name`.
fn name_taken(
    conn: &Connection,
    owner: AccountId,
    name: &str,
    except: Option<GroupId>,
) -> crate::store::db::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM groups WHERE account_id = ?1 AND name = ?2 AND group_id <> ?3)",
        params![owner.0, name, except.map_or(-1, |g| i64::from(g.0))],
        |r| r.get(0),
    )
}

fn add_group_tx(
    conn: &mut Connection,
    owner: AccountId,
    name: &str,
) -> Result<(u32, GroupKey), ListError> {
    let tx = conn.transaction()?;
    owner_version(&tx, owner)?;
    let ids: Vec<u32> = {
        let mut stmt =
            tx.prepare("SELECT group_id FROM groups WHERE account_id = ?1 ORDER BY group_id")?;
        let rows = stmt.query_map([owner.0], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if ids.len() >= MAX_GROUPS {
        return Err(ListError::TooManyGroups);
    }
    if name_taken(&tx, owner, name, None)? {
        return Err(ListError::GroupExists);
    }
    // The smallest free id above 0; ids are sorted, so the first gap is it.
    let mut id = 1;
    for existing in ids.into_iter().filter(|&g| g > 0) {
        if existing != id {
            break;
        }
        id += 1;
    }
    tx.execute(
        "INSERT INTO groups (account_id, group_id, name) VALUES (?1, ?2, ?3)",
        params![owner.0, id, name],
    )?;
    // The insert trigger of migration 4 gave the group its GUID.
    let guid: Option<String> = tx.query_row(
        "SELECT guid FROM groups WHERE account_id = ?1 AND group_id = ?2",
        params![owner.0, id],
        |r| r.get(0),
    )?;
    let version = bump(&tx, owner)?;
    tx.commit()?;
    Ok((
        version,
        GroupKey::new(GroupId(id), guid_of(guid.as_deref())),
    ))
}

impl Store {
    /// `ADG`: creates a group with the smallest free id; returns the new version and the
    /// group's id and GUID.
    ///
    /// # Errors
    ///
    /// [`ListError::TooManyGroups`], [`ListError::GroupNameTooLong`], [`ListError::GroupExists`],
    /// [`ListError::InvalidName`].
    pub async fn add_group(
        &self,
        owner: AccountId,
        name: &str,
    ) -> Result<(u32, GroupKey), ListError> {
        check_name(name)?;
        let name = name.to_owned();
        self.call(move |conn| add_group_tx(conn, owner, &name))
            .await
    }

    /// `RMG`: removes a group; its contacts stay on FL (without that group).
    ///
    /// # Errors
    ///
    /// [`ListError::CannotRemoveGroupZero`], [`ListError::NoSuchGroup`].
    pub async fn remove_group(&self, owner: AccountId, group: GroupId) -> Result<u32, ListError> {
        if group.0 == 0 {
            return Err(ListError::CannotRemoveGroupZero);
        }
        self.call(move |conn| {
            let tx = conn.transaction()?;
            owner_version(&tx, owner)?;
            // contact_groups rows go with it (ON DELETE CASCADE).
            let n = tx.execute(
                "DELETE FROM groups WHERE account_id = ?1 AND group_id = ?2",
                params![owner.0, group.0],
            )?;
            if n == 0 {
                return Err(ListError::NoSuchGroup);
            }
            let version = bump(&tx, owner)?;
            tx.commit()?;
            Ok(version)
        })
        .await
    }

    /// `REG`: renames a group (group 0 included).
    ///
    /// # Errors
    ///
    /// [`ListError::NoSuchGroup`], [`ListError::GroupNameTooLong`], [`ListError::GroupExists`],
    /// [`ListError::InvalidName`].
    pub async fn rename_group(
        &self,
        owner: AccountId,
        group: GroupId,
        name: &str,
    ) -> Result<u32, ListError> {
        check_name(name)?;
        let name = name.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            owner_version(&tx, owner)?;
            if !exists(&tx, owner, group)? {
                return Err(ListError::NoSuchGroup);
            }
            if name_taken(&tx, owner, &name, Some(group))? {
                return Err(ListError::GroupExists);
            }
            tx.execute(
                "UPDATE groups SET name = ?3 WHERE account_id = ?1 AND group_id = ?2",
                params![owner.0, group.0, name],
            )?;
            let version = bump(&tx, owner)?;
            tx.commit()?;
            Ok(version)
        })
        .await
    }
}
