//! Passport tickets valid on every node: a JetStream KV bucket `relive_<cluster>_tickets`.
//!
//! `login2.srf` on any node issues the ticket as it always did (in memory) and also puts its
//! SHA-256 (never the ticket) with the account, the access token, the handle and the expiry
//! into the bucket. `USR TWN S` on any NS node consumes it there: read the entry, then replace
//! it by an empty value *at the revision read* (compare-and-swap), so of two nodes presenting
//! one ticket exactly one succeeds. The bucket's `max_age` ([`MAX_TICKET_LIFETIME`]) is the
//! TTL: nothing outlives the longest ticket. Why KV and not the database: tickets are
//! short-lived, never need a backup, and must not wait for the store's writer.

use bytes::Bytes;
use relive_msnp::types::Passport;
use serde::{Deserialize, Serialize};

use crate::passport::tickets::{MAX_TICKET_LIFETIME, TicketError};
use crate::store::{AccountId, TokenId};

/// The ticket bucket of one network.
#[derive(Debug, Clone)]
pub struct ClusterTickets {
    kv: async_nats::jetstream::kv::Store,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    a: i64,
    t: Option<i64>,
    h: String,
    /// Expiry, Unix milliseconds.
    x: u64,
}

/// Why the bucket could not be used.
#[derive(Debug, thiserror::Error)]
#[error("ticket bucket: {0}")]
pub struct BucketError(String);

fn key(ticket: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        ticket.as_bytes(),
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ClusterTickets {
    /// Opens (creating if needed) the bucket of network `cluster`.
    ///
    /// # Errors
    /// [`BucketError`] if JetStream is unavailable.
    pub async fn open(client: async_nats::Client, cluster: &str) -> Result<Self, BucketError> {
        let js = async_nats::jetstream::new(client);
        let bucket = format!("relive_{cluster}_tickets");
        let kv = match js.get_key_value(bucket.clone()).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(async_nats::jetstream::kv::Config {
                    bucket,
                    history: 1,
                    max_age: MAX_TICKET_LIFETIME,
                    ..Default::default()
                })
                .await
                .map_err(|e| BucketError(e.to_string()))?,
        };
        Ok(Self { kv })
    }

    /// Records a ticket issued on this node, valid for `lifetime`.
    ///
    /// # Errors
    /// [`BucketError`] if NATS did not store it (the login then fails: another node could
    /// not accept the ticket).
    pub async fn issue(
        &self,
        ticket: &str,
        account: AccountId,
        token: Option<TokenId>,
        handle: &Passport,
        lifetime: std::time::Duration,
    ) -> Result<(), BucketError> {
        let record = Record {
            a: account.0,
            t: token.map(|t| t.0),
            h: handle.as_str().to_owned(),
            x: now_ms() + u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
        };
        let value = serde_json::to_vec(&record).map_err(|e| BucketError(e.to_string()))?;
        self.kv
            .put(key(ticket), Bytes::from(value))
            .await
            .map_err(|e| BucketError(e.to_string()))?;
        Ok(())
    }

    /// Consumes `ticket` for `handle`, once in the whole network.
    ///
    /// # Errors
    /// [`TicketError`] (unknown, already used, expired or another account's); a NATS failure
    /// counts as unknown.
    pub async fn consume(
        &self,
        ticket: &str,
        handle: &Passport,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        let key = key(ticket);
        let entry = match self.kv.entry(key.clone()).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Err(TicketError::Unknown),
            Err(error) => {
                tracing::warn!(%error, "ticket bucket unreadable");
                return Err(TicketError::Unknown);
            }
        };
        if entry.operation != async_nats::jetstream::kv::Operation::Put || entry.value.is_empty() {
            return Err(TicketError::Unknown);
        }
        // Burnt at the revision read: a second consumer's update fails.
        if self
            .kv
            .update(key, Bytes::new(), entry.revision)
            .await
            .is_err()
        {
            return Err(TicketError::Unknown);
        }
        let record: Record =
            serde_json::from_slice(&entry.value).map_err(|_| TicketError::Unknown)?;
        if record.x <= now_ms() {
            return Err(TicketError::Expired);
        }
        if record.h != handle.as_str() {
            return Err(TicketError::WrongAccount);
        }
        Ok((AccountId(record.a), record.t.map(TokenId)))
    }
}
