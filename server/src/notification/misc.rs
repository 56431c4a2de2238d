//! The small NS commands: `PNG`, `XFR SB`, `URL`, `FND`, `PAG` (PROTOCOL.md §2.9, §3.1).
//!
//! * `PNG` → `QNG` (with the seconds until the next ping from MSNP9).
//! * `XFR SB` → a fresh single-use cookie bound to the user (`913` while hidden or before the
//!   first `CHG` is decided by the session rules).
//! * `URL` → links into this server's website, with its HTTP port: `INBOX`, `FOLDERS`, `COMPOSE
//!   [address]` to the mailbox, `PROFILE`/`PERSON`/`PASSWORD` to the profile page, `CHGMOB`/
//!   `MOBILE` to the Mobile page, the rest to the home page; the login URL is the site's root,
//!   where the client posts its inbox sign-in form ([`crate::web::mail`]).
//! * `FND` searches only accounts whose owner opted in (`searchable`, off by default): a result
//!   is an account whose friendly name contains the given first and last name (case-insensitive;
//!   `*` matches anything). Locations are not stored, so `city`/`state`/`country` must be `*` or
//!   nothing matches. More than [`MAX_FND_RESULTS`] matches → `301`. Results show the name only,
//!   never the handle.
//! * `SND`/`SDC` are accepted and no e-mail is ever sent; `IMS` is echoed.
//! * `GCF Shields.xml` (MSNP11–12) → the "shields" configuration that blocks no client build
//!   (yellows111's example, as the service sent it); any other file → an empty one.

use bytes::Bytes;
use relive_msnp::client::{Fnd, Gcf, Url};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{ClientCaps, ErrorCode, FriendlyName, Token, TrId, url_decode};
use relive_msnp::version::Capabilities;
use tokio::time::Instant;

use super::{NsService, User};
use crate::net::conn::Replies;
use crate::switchboard::{Grant, Purpose};

/// Seconds until the next `PNG` that MSNP9+ clients are told in `QNG`. Never 5 or less:
/// msnp11-sdk (and so, plausibly, clients written the same way) disconnects itself on a
/// `QNG` of 5 or less.
pub const PING_INTERVAL_SECS: u32 = 50;
const _: () = assert!(PING_INTERVAL_SECS > 5);

/// The `Shields.xml` MSNP11–12 clients fetch with `GCF` (yellows111 `GCF`; Escargot's is the
/// same document): no client build is denied.
pub const SHIELDS_XML: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?><config><shield>\
<cli maj=\"7\" min=\"0\" minbld=\"0\" maxbld=\"9999\" deny=\" \" /></shield><block></block>\
</config>";
/// Most `FND` results before the search is refused with `301`.
pub const MAX_FND_RESULTS: usize = 20;
/// How many searchable accounts one `FND` looks at.
const FND_SCAN_LIMIT: usize = 10_000;

/// The decoded, lower-cased value of `key=value` among `fields`, `None` for `*` or absent.
fn field(fields: &[Token], key: &str) -> Option<String> {
    let value = fields
        .iter()
        .find_map(|f| f.as_str().strip_prefix(key)?.strip_prefix('='))?;
    let decoded = String::from_utf8_lossy(&url_decode(value)).to_lowercase();
    (decoded != "*" && !decoded.is_empty()).then_some(decoded)
}

impl NsService {
    pub(super) fn handle_png(&mut self, out: &mut Replies) {
        out.push(ServerMessage::Qng {
            seconds: PING_INTERVAL_SECS,
        });
    }

    pub(super) fn handle_xfr(
        &mut self,
        trid: TrId,
        user: &User,
        caps: &Capabilities,
        out: &mut Replies,
    ) {
        let sbs = &self.ctx.switchboards;
        if let Some(cluster) = &self.ctx.cluster {
            // The SB node with the least load; its cookie is signed for it.
            let own = cluster.load(sbs.rooms() as u64, cluster.local_sessions());
            let Some((node, addr)) = cluster.pick_sb(own, sbs.address().as_str()) else {
                return out.push(ServerMessage::error(ErrorCode::ServerBusy, trid));
            };
            return out.push(ServerMessage::XfrSb {
                trid,
                addr: Token::parse(&addr).unwrap_or_else(|_| sbs.address()),
                cookie: cluster.cookies().issue(&node, &user.handle),
            });
        }
        let cookie = sbs.issue(
            Grant {
                user: user.handle.clone(),
                name: user.name.clone(),
                caps: *caps,
                client_caps: self.ctx.hub.caps_of(&user.handle).unwrap_or(ClientCaps(0)),
                purpose: Purpose::NewRoom,
            },
            Instant::now(),
        );
        out.push(ServerMessage::XfrSb {
            trid,
            addr: sbs.address(),
            cookie,
        });
    }

    pub(super) fn handle_gcf(&mut self, gcf: &Gcf, out: &mut Replies) {
        let payload = if gcf.file.as_str().eq_ignore_ascii_case("Shields.xml") {
            Bytes::from_static(SHIELDS_XML.as_bytes())
        } else {
            Bytes::new()
        };
        out.push(ServerMessage::Gcf {
            trid: gcf.trid,
            file: gcf.file.clone(),
            payload,
        });
    }

    pub(super) fn handle_url(&mut self, url: &Url, out: &mut Replies) {
        let base = self.ctx.http.website();
        let path = match url.service.as_str() {
            "INBOX" => crate::mailbox::INBOX_PATH.to_owned(),
            "FOLDERS" => crate::mailbox::FOLDERS_PATH.to_owned(),
            // `COMPOSE <address>`: the address arrives where other services have the LCID.
            "COMPOSE" => match url
                .lcid
                .as_ref()
                .and_then(|a| relive_msnp::types::Passport::parse(a.as_str()).ok())
            {
                Some(to) => format!("{}?to={to}", crate::mailbox::COMPOSE_PATH),
                None => crate::mailbox::COMPOSE_PATH.to_owned(),
            },
            "PROFILE" | "PERSON" | "PASSWORD" => "/profile".to_owned(),
            "CHGMOB" | "MOBILE" => "/mobile".to_owned(),
            _ => "/".to_owned(),
        };
        let link =
            |p: &str| Token::parse(&format!("{base}{p}")).unwrap_or_else(|_| url.service.clone());
        out.push(ServerMessage::Url {
            trid: url.trid,
            url: link(&path),
            // The client posts its inbox sign-in form here (crate::mailbox, web::mail).
            login_url: link("/"),
            site_id: relive_msnp::mail::SITE_ID,
        });
    }

    pub(super) async fn handle_fnd(&mut self, fnd: &Fnd, out: &mut Replies) {
        let location_given = ["city", "state", "country"]
            .iter()
            .any(|k| field(&fnd.fields, k).is_some());
        let (first, last) = (field(&fnd.fields, "fname"), field(&fnd.fields, "lname"));
        let accounts = match self.ctx.store.searchable_accounts(FND_SCAN_LIMIT).await {
            Ok(a) => a,
            Err(e) => return Self::internal_error("FND", &e, fnd.trid, out),
        };
        let matches: Vec<FriendlyName> = accounts
            .into_iter()
            .filter(|_| !location_given && (first.is_some() || last.is_some()))
            .filter(|a| {
                let name = a.friendly_name.to_display().to_lowercase();
                first.as_ref().is_none_or(|f| name.contains(f.as_str()))
                    && last.as_ref().is_none_or(|l| name.contains(l.as_str()))
            })
            .map(|a| a.friendly_name)
            .collect();
        if matches.len() > MAX_FND_RESULTS {
            return out.push(ServerMessage::error(ErrorCode::TooManyResults, fnd.trid));
        }
        if matches.is_empty() {
            return out.push(ServerMessage::Fnd {
                trid: fnd.trid,
                index: 0,
                total: 0,
                fields: Vec::new(),
            });
        }
        let total = u32::try_from(matches.len()).unwrap_or(u32::MAX);
        for (i, name) in matches.into_iter().enumerate() {
            let fields = [
                format!("fname={name}"),
                "lname=*".to_owned(),
                "city=*".to_owned(),
                "state=*".to_owned(),
                "country=*".to_owned(),
            ]
            .iter()
            .filter_map(|f| Token::parse(f).ok())
            .collect();
            out.push(ServerMessage::Fnd {
                trid: fnd.trid,
                index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                total,
                fields,
            });
        }
    }
}
