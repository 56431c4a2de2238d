//! The full list snapshot that `SYN` (and client `LST`) sends when the client's cached version is
//! stale: version, GTC, BLP, own phone properties, groups, and every contact with its bits, name,
//! groups and phone properties (for `BPR`).

use std::collections::HashMap;

use crate::store::db::Conn as Connection;

use super::{ListError, bits_from_db};
use crate::store::accounts::{Account, account_by_email};
use crate::store::types::{
    AccountId, Blp, FriendlyName, GroupId, GroupKey, GroupName, Gtc, Guid, ListSet, ListStamp,
    Passport, PhoneProp, Token, phone_prop_rank,
};
use crate::store::{Store, StoreError};

/// A contact group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Numeric id (MSNP7–9) and GUID (MSNP10+).
    pub key: GroupKey,
    /// URL-encoded name.
    pub name: GroupName,
}

/// One contact in the owner's lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's handle.
    pub email: Passport,
    /// The name stored in the owner's list (URL-encoded).
    pub friendly_name: FriendlyName,
    /// Which of the owner's lists the contact is on.
    pub lists: ListSet,
    /// The contact's GUID in the owner's lists (MSNP10+ `C=`).
    pub guid: Guid,
    /// Groups (FL only), ascending by id. May be empty; MSNP7–9 encoders then print group 0.
    pub groups: Vec<GroupKey>,
    /// The contact's own phone properties, in `SYN` order (for `BPR`).
    pub phones: Vec<(PhoneProp, Token)>,
}

/// Everything `SYN` sends, as of one consistent read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSnapshot {
    /// List version.
    pub version: u32,
    /// The MSNP10+ `SYN` timestamp ([`ListStamp::of_version`]: creation time + version).
    pub stamp: ListStamp,
    /// The owner's own friendly name (MSNP10+ `PRP MFN`).
    pub name: FriendlyName,
    /// GTC.
    pub gtc: Gtc,
    /// BLP.
    pub blp: Blp,
    /// Own phone properties that are set, in `SYN` order.
    pub phones: Vec<(PhoneProp, Token)>,
    /// Groups by ascending id (group 0 first).
    pub groups: Vec<Group>,
    /// Contacts by handle.
    pub contacts: Vec<Contact>,
}

/// One stored phone property, or `None` for a row that no longer parses (values were validated
/// on the way in; such a row is left out).
fn phone_row(prop: &str, value: &str) -> Option<(PhoneProp, Token)> {
    PhoneProp::parse(prop).ok().zip(Token::parse(value).ok())
}

fn phones_of(conn: &Connection, account: i64) -> crate::store::db::Result<Vec<(PhoneProp, Token)>> {
    let mut stmt =
        conn.prepare_cached("SELECT prop, value FROM account_phones WHERE account_id = ?1")?;
    let mut rows = stmt.query([account])?;
    let mut phones = Vec::new();
    while let Some(r) = rows.next()? {
        phones.extend(phone_row(r.get_ref(0)?.as_str()?, r.get_ref(1)?.as_str()?));
    }
    phones.sort_by_key(|(p, _)| phone_prop_rank(*p));
    Ok(phones)
}

/// The phone properties of every contact of `owner`, by contact id, each in `SYN` order: one
/// query instead of one per contact (most contacts have none).
fn contact_phones(
    conn: &Connection,
    owner: i64,
) -> crate::store::db::Result<HashMap<i64, Vec<(PhoneProp, Token)>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.account_id, p.prop, p.value
         FROM contacts c JOIN account_phones p ON p.account_id = c.contact_id
         WHERE c.owner_id = ?1",
    )?;
    let mut rows = stmt.query([owner])?;
    let mut out: HashMap<i64, Vec<(PhoneProp, Token)>> = HashMap::new();
    while let Some(r) = rows.next()? {
        if let Some(phone) = phone_row(r.get_ref(1)?.as_str()?, r.get_ref(2)?.as_str()?) {
            out.entry(r.get(0)?).or_default().push(phone);
        }
    }
    for phones in out.values_mut() {
        phones.sort_by_key(|(p, _)| phone_prop_rank(*p));
    }
    Ok(out)
}

/// A stored GUID; `NIL` for a row that has none or a damaged one (the triggers of migration 4
/// give every row one, so this is never expected).
pub(super) fn guid_of(text: Option<&str>) -> Guid {
    text.and_then(|t| Guid::parse(t).ok()).unwrap_or(Guid::NIL)
}

fn snapshot_tx(conn: &mut Connection, owner: AccountId) -> Result<ListSnapshot, ListError> {
    // A read transaction so the pieces agree with each other.
    let tx = conn.transaction()?;
    let (version, gtc, blp, name, created): (u32, String, String, String, i64) = tx
        .prepare_cached(
            "SELECT list_version, gtc, blp, friendly_name, created_at FROM accounts WHERE id = ?1",
        )?
        .query_row([owner.0], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(|e| match e {
            StoreError::NoRows => ListError::NoSuchAccount,
            e => e.into(),
        })?;
    let phones = phones_of(&tx, owner.0)?;
    let groups = {
        let mut stmt = tx.prepare_cached(
            "SELECT group_id, name, guid FROM groups WHERE account_id = ?1 ORDER BY group_id",
        )?;
        let rows = stmt.query_map([owner.0], |r| {
            Ok((
                GroupId(r.get(0)?),
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut groups = Vec::new();
        for row in rows {
            let (id, name, guid) = row?;
            // Names were validated on the way in; fall back to the id for a damaged row.
            let name = GroupName::parse(&name)
                .or_else(|_| GroupName::parse(&id.to_string()))
                .map_err(|_| ListError::InvalidName)?;
            groups.push(Group {
                key: GroupKey::new(id, guid_of(guid.as_deref())),
                name,
            });
        }
        groups
    };
    let keys: HashMap<GroupId, GroupKey> = groups.iter().map(|g| (g.key.id, g.key)).collect();
    let mut memberships: HashMap<i64, Vec<GroupKey>> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT contact_id, group_id FROM contact_groups WHERE owner_id = ?1
             ORDER BY contact_id, group_id",
        )?;
        let rows = stmt.query_map([owner.0], |r| Ok((r.get::<_, i64>(0)?, GroupId(r.get(1)?))))?;
        for row in rows {
            let (contact, group) = row?;
            let key = keys
                .get(&group)
                .copied()
                .unwrap_or(GroupKey::new(group, Guid::NIL));
            memberships.entry(contact).or_default().push(key);
        }
    }
    let rows: Vec<(i64, String, String, u8, Option<String>)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT a.id, a.email, c.friendly_name, c.lists, c.guid
             FROM contacts c JOIN accounts a ON a.id = c.contact_id
             WHERE c.owner_id = ?1 ORDER BY a.email",
        )?;
        let rows = stmt.query_map([owner.0], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut phones_by_contact = contact_phones(&tx, owner.0)?;
    let mut contacts = Vec::with_capacity(rows.len());
    for (id, email, friendly_name, lists, guid) in rows {
        // Handles were validated on the way in; a row that no longer parses is skipped
        // rather than failing the whole SYN.
        let Ok(email) = Passport::parse(&email) else {
            tracing::warn!(
                contact = id,
                "skipping contact with an invalid stored handle"
            );
            continue;
        };
        let friendly_name = FriendlyName::parse(&friendly_name)
            .unwrap_or_else(|_| FriendlyName::from(email.clone()));
        contacts.push(Contact {
            email,
            friendly_name,
            lists: bits_from_db(lists),
            guid: guid_of(guid.as_deref()),
            groups: memberships.remove(&id).unwrap_or_default(),
            phones: phones_by_contact.remove(&id).unwrap_or_default(),
        });
    }
    tx.finish()?;
    Ok(ListSnapshot {
        version,
        // Creation times are positive Unix seconds; a damaged one counts from the epoch.
        stamp: ListStamp::of_version(u64::try_from(created).unwrap_or(0), version),
        name: FriendlyName::parse(&name).unwrap_or_else(|_| {
            #[allow(clippy::unwrap_used, reason = "a constant, valid name")]
            FriendlyName::parse("Relive%20user").unwrap()
        }),
        gtc: Gtc::parse(&gtc).unwrap_or(Gtc::A),
        blp: Blp::parse(&blp).unwrap_or(Blp::Al),
        phones,
        groups,
        contacts,
    })
}

/// The contacts of `owner` with the lists each is on: all a login needs of the lists (the hub
/// keeps only these bits; names, groups and phones are read at `SYN`). One query.
pub(crate) fn login_contacts(
    conn: &Connection,
    owner: AccountId,
) -> crate::store::db::Result<Vec<(Passport, ListSet)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.email, c.lists
         FROM contacts c JOIN accounts a ON a.id = c.contact_id
         WHERE c.owner_id = ?1",
    )?;
    let mut rows = stmt.query([owner.0])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        // As in the snapshot: a stored handle that no longer parses is skipped.
        let Ok(email) = Passport::parse(r.get_ref(1)?.as_str()?) else {
            let id: i64 = r.get(0)?;
            tracing::warn!(
                contact = id,
                "skipping contact with an invalid stored handle"
            );
            continue;
        };
        out.push((email, bits_from_db(r.get(2)?)));
    }
    Ok(out)
}

/// An account and its contacts' list bits, as a login needs them.
#[derive(Debug, Clone)]
pub struct LoginState {
    /// The account.
    pub account: Account,
    /// Its contacts with the lists each is on (unordered).
    pub contacts: Vec<(Passport, ListSet)>,
}

impl Store {
    /// The account `handle` and its contacts' list bits, in one round trip (the Passport `TWN`
    /// login, whose ticket was already checked). `None` if there is no such account.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn login_state(&self, handle: &Passport) -> Result<Option<LoginState>, StoreError> {
        let handle = handle.clone();
        self.call(move |conn| {
            let Some(account) = account_by_email(conn, &handle)? else {
                return Ok(None);
            };
            let contacts = login_contacts(conn, account.id)?;
            Ok(Some(LoginState { account, contacts }))
        })
        .await
    }

    /// The full list state of `owner`, read in one transaction.
    ///
    /// # Errors
    ///
    /// [`ListError::NoSuchAccount`] or an infrastructure error.
    pub async fn list_snapshot(&self, owner: AccountId) -> Result<ListSnapshot, ListError> {
        self.call(move |conn| snapshot_tx(conn, owner)).await
    }
}
