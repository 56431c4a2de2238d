//! The pager inbox (issue 18): the server is every account's pager device. A page (`PAG`,
//! `PGD`, or the website) to an account that allows pages (`MOB` = `Y`) is stored here and
//! delivered as `IPG` at the recipient's next login; the website lists them.
//!
//! [`Store::send_page`] applies the rules in one transaction: the target exists, allows pages,
//! does not block the sender (the same BL/AL/BLP rule as presence), the sender is under its
//! rate limits and the target's pager inbox is not full. Plain SQL, portable. Page text is
//! never logged.

use super::db::{OptionalExtension as _, params};
use relive_msnp::mail::MailCounts;

use super::{Account, AccountId, Passport, Store, StoreError, now_unix};

/// Most pages one sender may send in a minute.
pub const MAX_PAGES_PER_MINUTE: i64 = 5;
/// Most pages one sender may send in a day.
pub const MAX_PAGES_PER_DAY: i64 = 100;
/// Most pages one sender may send to one recipient in a day.
pub const MAX_PAGES_PER_TARGET_PER_DAY: i64 = 20;
/// Most pages one pager inbox holds (delete some on the website to receive more).
pub const MAX_STORED_PAGES: i64 = 100;

/// A stored page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPage {
    /// Row id.
    pub id: i64,
    /// The sender's handle.
    pub from_addr: String,
    /// The sender's member id, when the account still exists (for `IPG`'s `pid`).
    pub from_member_id: Option<u64>,
    /// The text.
    pub body: String,
    /// The callback number the sender attached: location and number.
    pub callback: Option<(String, String)>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of delivery to a client.
    pub delivered_at: Option<i64>,
}

/// Why a page was not stored (every one is the same `800` to the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageRefusal {
    /// No such account.
    #[error("no such account")]
    NoSuchAccount,
    /// The target does not allow pages (`MOB` is not `Y`).
    #[error("target does not allow pages")]
    NotPageable,
    /// The target blocks the sender.
    #[error("sender is blocked")]
    Blocked,
    /// The sender is over a rate limit.
    #[error("sender is paging too often")]
    RateLimited,
    /// The target's pager inbox is full.
    #[error("pager inbox full")]
    InboxFull,
}

/// A page to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPage {
    /// The text.
    pub text: String,
    /// Callback location and number.
    pub callback: Option<(String, String)>,
}

const COLUMNS: &str = "p.id, p.from_addr, a.member_id, p.body, p.callback_loc, p.callback_num, \
                       p.created_at, p.delivered_at";

/// The pages of `account` no client has received yet, oldest first.
fn pending(conn: &super::db::Conn, account: AccountId) -> Result<Vec<StoredPage>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pages p LEFT JOIN accounts a ON a.id = p.from_id
         WHERE p.to_id = ?1 AND p.delivered_at IS NULL ORDER BY p.id"
    ))?;
    let rows = stmt.query_map([account.0], page_from_row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

fn page_from_row(row: &super::db::Row<'_>) -> super::db::Result<StoredPage> {
    let loc: Option<String> = row.get(4)?;
    let num: Option<String> = row.get(5)?;
    Ok(StoredPage {
        id: row.get(0)?,
        from_addr: row.get(1)?,
        from_member_id: row.get::<_, Option<i64>>(2)?.map(|m| m as u64),
        body: row.get(3)?,
        callback: loc.zip(num),
        created_at: row.get(6)?,
        delivered_at: row.get(7)?,
    })
}

/// Whether an account with privacy default `BL` (`blp_bl`, else `AL`) and `bits` (FL=1 AL=2 BL=4 RL=8)
/// for someone blocks them: BL blocks, AL allows, otherwise the default decides (as presence).
#[must_use]
pub fn blocks(blp_bl: bool, bits: i64) -> bool {
    if bits & 4 != 0 {
        true
    } else if bits & 2 != 0 {
        false
    } else {
        blp_bl
    }
}

impl Store {
    /// Stores a page from account `from_id` (`from_addr`) to `to` if the rules allow it (module doc).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only; a refusal is `Ok(Err(_))`.
    pub async fn send_page(
        &self,
        from_id: AccountId,
        from_addr: &Passport,
        to: &Passport,
        page: NewPage,
    ) -> Result<Result<(Account, i64), PageRefusal>, StoreError> {
        let from_addr = from_addr.as_str().to_owned();
        let to = to.as_str().to_owned();
        self.call_alone(move |conn| {
            let tx = conn.transaction()?;
            let Some(target) = super::mail::registered_account(&tx, &to)? else {
                return Ok(Err(PageRefusal::NoSuchAccount));
            };
            let mob: Option<String> = tx
                .query_row(
                    "SELECT value FROM account_phones WHERE account_id = ?1 AND prop = 'MOB'",
                    [target.id.0],
                    |r| r.get(0),
                )
                .optional()?;
            if mob.as_deref() != Some("Y") {
                return Ok(Err(PageRefusal::NotPageable));
            }
            let bits: i64 = tx
                .query_row(
                    "SELECT lists FROM contacts WHERE owner_id = ?1 AND contact_id = ?2",
                    params![target.id.0, from_id.0],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            if blocks(target.blp == super::Blp::Bl, bits) {
                return Ok(Err(PageRefusal::Blocked));
            }
            let now = now_unix();
            let sent_since = |since: i64, to_only: bool| -> super::db::Result<i64> {
                if to_only {
                    tx.query_row(
                        "SELECT COUNT(*) FROM pages
                         WHERE from_id = ?1 AND to_id = ?2 AND created_at > ?3",
                        params![from_id.0, target.id.0, since],
                        |r| r.get(0),
                    )
                } else {
                    tx.query_row(
                        "SELECT COUNT(*) FROM pages WHERE from_id = ?1 AND created_at > ?2",
                        params![from_id.0, since],
                        |r| r.get(0),
                    )
                }
            };
            if sent_since(now - 60, false)? >= MAX_PAGES_PER_MINUTE
                || sent_since(now - 86_400, false)? >= MAX_PAGES_PER_DAY
                || sent_since(now - 86_400, true)? >= MAX_PAGES_PER_TARGET_PER_DAY
            {
                return Ok(Err(PageRefusal::RateLimited));
            }
            let held: i64 = tx.query_row(
                "SELECT COUNT(*) FROM pages WHERE to_id = ?1",
                [target.id.0],
                |r| r.get(0),
            )?;
            if held >= MAX_STORED_PAGES {
                return Ok(Err(PageRefusal::InboxFull));
            }
            let (loc, num) = page.callback.clone().unzip();
            tx.execute(
                "INSERT INTO pages (to_id, from_id, from_addr, body, callback_loc, callback_num,
                                    created_at, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
                params![target.id.0, from_id.0, from_addr, page.text, loc, num, now],
            )?;
            let id = tx.last_insert_rowid()?;
            tx.commit()?;
            Ok(Ok((target, id)))
        })
        .await
    }

    /// The pages of `account` no client has received yet, oldest first.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn pending_pages(&self, account: AccountId) -> Result<Vec<StoredPage>, StoreError> {
        self.call(move |conn| pending(conn, account)).await
    }

    /// What waits for `account` at login, in one store round trip: its unread mail counts
    /// ([`Self::mail_counts`]) and its undelivered pages ([`Self::pending_pages`]).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn waiting_at_login(
        &self,
        account: AccountId,
    ) -> Result<(MailCounts, Vec<StoredPage>), StoreError> {
        self.call(move |conn| {
            Ok((
                super::mail::unread_counts(conn, account)?,
                pending(conn, account)?,
            ))
        })
        .await
    }

    /// Every page of `account` (newest first), for the website.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn pages(&self, account: AccountId) -> Result<Vec<StoredPage>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pages p LEFT JOIN accounts a ON a.id = p.from_id
                 WHERE p.to_id = ?1 ORDER BY p.id DESC"
            ))?;
            let rows = stmt.query_map([account.0], page_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// Marks pages `ids` of `account` delivered.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn mark_pages_delivered(
        &self,
        account: AccountId,
        ids: Vec<i64>,
    ) -> Result<(), StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let now = now_unix();
            for &id in &ids {
                tx.execute(
                    "UPDATE pages SET delivered_at = ?3 WHERE id = ?1 AND to_id = ?2",
                    params![id, account.0, now],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Deletes page `id` of `account`; whether there was one.
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn delete_page(&self, account: AccountId, id: i64) -> Result<bool, StoreError> {
        self.call(move |conn| {
            Ok(conn.execute(
                "DELETE FROM pages WHERE id = ?1 AND to_id = ?2",
                params![id, account.0],
            )? > 0)
        })
        .await
    }

    /// Whether `account` allows pages (`MOB` = `Y`).
    ///
    /// # Errors
    ///
    /// Infrastructure errors only.
    pub async fn allows_pages(&self, account: AccountId) -> Result<bool, StoreError> {
        self.call(move |conn| {
            let mob: Option<String> = conn
                .query_row(
                    "SELECT value FROM account_phones WHERE account_id = ?1 AND prop = 'MOB'",
                    [account.0],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(mob.as_deref() == Some("Y"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::secret::Secret;
    use crate::store::{ListKind, PhoneProp};

    fn page(text: &str) -> NewPage {
        NewPage {
            text: text.to_owned(),
            callback: None,
        }
    }

    #[test]
    fn block_rule_matches_presence() {
        assert!(blocks(false, 4) && blocks(true, 4 | 2));
        assert!(!blocks(true, 2) && !blocks(false, 0) && !blocks(false, 1 | 8));
        assert!(blocks(true, 1 | 8));
    }

    #[tokio::test]
    async fn pages_obey_mob_blocks_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path()).await;
        let mk = |h: &'static str| {
            let store = store.clone();
            async move {
                store
                    .create_account(
                        &Passport::parse(h).unwrap(),
                        h,
                        Secret::new("long-password".into()),
                    )
                    .await
                    .unwrap()
            }
        };
        let (alice, bob, carol) = (
            mk("alice@x.com").await,
            mk("bob@x.com").await,
            mk("carol@x.com").await,
        );
        assert_eq!(
            store
                .send_page(alice.id, &alice.email, &bob.email, page("hi"))
                .await
                .unwrap(),
            Err(PageRefusal::NotPageable)
        );
        store
            .set_phone(bob.id, PhoneProp::Mob, Some("Y"))
            .await
            .unwrap();
        assert!(store.allows_pages(bob.id).await.unwrap());
        let (to, _) = store
            .send_page(alice.id, &alice.email, &bob.email, page("hi"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(to.id, bob.id);
        // Bob blocks Carol.
        store
            .add_to_list(bob.id, ListKind::Bl, &carol.email, "carol", None)
            .await
            .unwrap();
        assert_eq!(
            store
                .send_page(carol.id, &carol.email, &bob.email, page("hi"))
                .await
                .unwrap(),
            Err(PageRefusal::Blocked)
        );
        for _ in 1..MAX_PAGES_PER_MINUTE {
            store
                .send_page(alice.id, &alice.email, &bob.email, page("again"))
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            store
                .send_page(alice.id, &alice.email, &bob.email, page("one more"))
                .await
                .unwrap(),
            Err(PageRefusal::RateLimited)
        );
        let pending = store.pending_pages(bob.id).await.unwrap();
        assert_eq!(
            pending.len(),
            usize::try_from(MAX_PAGES_PER_MINUTE).unwrap()
        );
        assert_eq!(pending[0].body, "hi");
        assert_eq!(pending[0].from_member_id, Some(alice.member_id));
        store
            .mark_pages_delivered(bob.id, pending.iter().map(|p| p.id).collect())
            .await
            .unwrap();
        assert!(store.pending_pages(bob.id).await.unwrap().is_empty());
        assert_eq!(store.pages(bob.id).await.unwrap().len(), pending.len());
        assert!(store.delete_page(bob.id, pending[0].id).await.unwrap());
        assert!(!store.delete_page(alice.id, pending[1].id).await.unwrap());
    }
}
