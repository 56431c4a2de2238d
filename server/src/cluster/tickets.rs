//! Passport tickets valid on every node, over core NATS request/reply.
//!
//! A ticket stays where `login2.srf` issued it (the node's in-memory
//! [`crate::passport::TicketStore`], as on a
//! single node). `USR TWN S` on a node that does not hold it asks the network: a request on
//! `relive.<cluster>.ticket` carrying the ticket's SHA-256 (never the ticket) and the handle.
//! Every node listens; only the node holding it answers, after consuming it under its own
//! lock, so a ticket is single-use in the whole network by construction. Nobody answering
//! within [`ASK_TIMEOUT`] means unknown (`911`). Why not a KV bucket: one atomic owner needs
//! no replicated state and no JetStream (whose replies the Debian 2.9 server words in a way
//! async-nats 0.52 cannot decode: measured). The cost: a ticket dies with the node that
//! issued it (the client logs in again, which it does on any failure).

use std::time::Duration;

use bytes::Bytes;
use relive_msnp::types::Passport;
use serde::{Deserialize, Serialize};

use crate::passport::PassportService;
use crate::passport::tickets::{TicketError, digest};
use crate::store::{AccountId, TokenId};

/// How long a node waits for the node holding a ticket.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the other nodes for tickets.
#[derive(Debug, Clone)]
pub struct ClusterTickets {
    client: async_nats::Client,
    subject: String,
}

/// The question.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Ask {
    /// Hex SHA-256 of the ticket.
    d: String,
    /// The handle of `USR TWN I`.
    h: String,
}

/// The holder's answer.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    /// Account id, on success.
    a: Option<i64>,
    /// Access token id.
    t: Option<i64>,
    /// The failure otherwise: "expired" or "wrong".
    e: Option<String>,
}

impl ClusterTickets {
    /// Asks on `subject` (`relive.<cluster>.ticket`) through `client`.
    #[must_use]
    pub const fn new(client: async_nats::Client, subject: String) -> Self {
        Self { client, subject }
    }

    /// Consumes `ticket` for `handle` on whichever node holds it.
    ///
    /// # Errors
    /// [`TicketError`]: unknown (nobody answered), expired or another account's.
    pub async fn consume(
        &self,
        ticket: &str,
        handle: &Passport,
    ) -> Result<(AccountId, Option<TokenId>), TicketError> {
        let ask = Ask {
            d: hex::encode(digest(ticket)),
            h: handle.as_str().to_owned(),
        };
        let payload = serde_json::to_vec(&ask).map_err(|_| TicketError::Unknown)?;
        let reply = tokio::time::timeout(
            ASK_TIMEOUT,
            self.client
                .request(self.subject.clone(), Bytes::from(payload)),
        )
        .await
        .map_err(|_| TicketError::Unknown)?
        .map_err(|_| TicketError::Unknown)?;
        let answer: Answer =
            serde_json::from_slice(&reply.payload).map_err(|_| TicketError::Unknown)?;
        match (answer.a, answer.e.as_deref()) {
            (Some(a), _) => Ok((AccountId(a), answer.t.map(TokenId))),
            (None, Some("expired")) => Err(TicketError::Expired),
            (None, Some("wrong")) => Err(TicketError::WrongAccount),
            _ => Err(TicketError::Unknown),
        }
    }
}

/// Answers a question if this node holds the ticket (`None`: stay silent).
pub(super) fn answer(passport: &PassportService, payload: &[u8]) -> Option<Bytes> {
    let ask: Ask = serde_json::from_slice(payload).ok()?;
    let handle = Passport::parse(&ask.h).ok()?;
    let digest: [u8; 32] = hex::decode(&ask.d).ok()?.try_into().ok()?;
    let answer = match passport.consume_ticket_digest(&digest, &handle) {
        Ok((account, token)) => Answer {
            a: Some(account.0),
            t: token.map(|t| t.0),
            e: None,
        },
        Err(TicketError::Unknown) => return None,
        Err(TicketError::Expired) => Answer {
            a: None,
            t: None,
            e: Some("expired".to_owned()),
        },
        Err(_) => Answer {
            a: None,
            t: None,
            e: Some("wrong".to_owned()),
        },
    };
    serde_json::to_vec(&answer).ok().map(Bytes::from)
}
