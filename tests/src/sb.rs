//! Switchboard helpers: open a session through `XFR SB`, invite a user through `CAL` / `RNG` /
//! `ANS`, and send text messages (PROTOCOL.md §3).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail, ensure};
use relive_msnp::client::Role;
use relive_msnp::server::ServerMessage;
use relive_msnp::types::SessionId;

use crate::client::MsnpClient;

/// A referral or invitation: where to connect and with which cookie.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The advertised switchboard address.
    pub addr: SocketAddr,
    /// The cookie (single use).
    pub cookie: String,
}

/// Sends `XFR trid SB` on `ns` and returns the referral.
///
/// # Errors
///
/// Any reply other than `XFR trid SB <addr> CKI <cookie>`.
pub async fn request_sb(ns: &mut MsnpClient) -> anyhow::Result<Ticket> {
    let t = ns.trid();
    ns.send_line(&format!("XFR {t} SB")).await?;
    match ns.recv().await? {
        ServerMessage::XfrSb { trid, addr, cookie } if trid == t => Ok(Ticket {
            addr: addr
                .as_str()
                .parse()
                .with_context(|| format!("XFR SB address {addr:?}"))?,
            cookie: cookie.as_str().to_owned(),
        }),
        other => bail!("{}: expected XFR {t} SB ..., got {other:?}", ns.label()),
    }
}

/// Opens a switchboard session for `handle` (logged in on `ns`): `XFR SB`, connect to the
/// advertised address, `USR trid handle cookie`, `USR trid OK handle name`.
///
/// # Errors
///
/// Any step failed.
pub async fn open(ns: &mut MsnpClient, handle: &str, label: &str) -> anyhow::Result<MsnpClient> {
    open_from(ns, handle, label, None).await
}

/// [`open`], connecting to the switchboard from the local address `from` (`None`: any).
///
/// # Errors
///
/// Any step failed.
pub async fn open_from(
    ns: &mut MsnpClient,
    handle: &str,
    label: &str,
    from: Option<IpAddr>,
) -> anyhow::Result<MsnpClient> {
    let ticket = request_sb(ns).await?;
    let mut sb = match from {
        Some(local) => {
            MsnpClient::connect_from(ticket.addr, local, Role::Switchboard, label).await?
        }
        None => MsnpClient::connect(ticket.addr, Role::Switchboard, label).await?,
    };
    sb.set_version(ns.caps().version);
    let t = sb.trid();
    sb.send_line(&format!("USR {t} {handle} {}", ticket.cookie))
        .await?;
    let want = handle.to_owned();
    sb.expect(&format!("USR {t} OK {handle} <name>"), |m| {
        matches!(m, ServerMessage::SbUsrOk { trid, handle, .. } if *trid == t && handle.as_str() == want)
    })
    .await?;
    Ok(sb)
}

/// What a successful invitation produced.
#[derive(Debug)]
pub struct Joined {
    /// The callee's switchboard connection, after `ANS trid OK`.
    pub sb: MsnpClient,
    /// The `IRO` lines the callee received (participants already present).
    pub iro: Vec<ServerMessage>,
    /// The session id from `CAL` (equal to the one in `RNG` and `ANS`).
    pub session: SessionId,
}

/// `caller_sb` invites `callee` (logged in on `callee_ns`): `CAL`, the `RNG` on the callee's
/// NS (other notifications before it are skipped), a new connection with `ANS`, the `IRO`
/// lines and `ANS trid OK`. The `JOI` that existing participants receive is left to the test.
///
/// # Errors
///
/// Any step failed.
pub async fn invite(
    caller_sb: &mut MsnpClient,
    callee_ns: &mut MsnpClient,
    callee: &str,
    label: &str,
) -> anyhow::Result<Joined> {
    let session = call(caller_sb, callee).await?;
    answer(callee_ns, callee, label, session, None).await
}

/// Sends `CAL trid callee` and returns the session id from `CAL trid RINGING <session>`.
///
/// # Errors
///
/// A different reply.
pub async fn call(caller_sb: &mut MsnpClient, callee: &str) -> anyhow::Result<SessionId> {
    let t = caller_sb.trid();
    caller_sb.send_line(&format!("CAL {t} {callee}")).await?;
    match caller_sb.recv().await? {
        ServerMessage::CalRinging { trid, session } if trid == t => Ok(session),
        other => bail!(
            "{}: expected CAL {t} RINGING <session>, got {other:?}",
            caller_sb.label()
        ),
    }
}

/// Waits for the `RNG` of `session` on `callee_ns` and returns its address and cookie.
///
/// # Errors
///
/// No such `RNG`, or one for another session.
pub async fn ring(callee_ns: &mut MsnpClient, session: SessionId) -> anyhow::Result<Ticket> {
    let (rng, _) = callee_ns
        .wait_for("RNG", |m| matches!(m, ServerMessage::Rng { .. }))
        .await?;
    let ServerMessage::Rng {
        session: rng_session,
        addr,
        cookie,
        ..
    } = rng
    else {
        bail!("not an RNG");
    };
    ensure!(
        rng_session == session,
        "RNG session {rng_session:?} differs from CAL's {session:?}"
    );
    Ok(Ticket {
        addr: addr.as_str().parse()?,
        cookie: cookie.as_str().to_owned(),
    })
}

/// The callee's side of an invitation: [`ring`], then connect (with a receive buffer of
/// `recv_buffer` bytes if given), `ANS`, the `IRO` lines and `ANS trid OK`.
///
/// # Errors
///
/// Any step failed.
pub async fn answer(
    callee_ns: &mut MsnpClient,
    callee: &str,
    label: &str,
    session: SessionId,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Joined> {
    let ticket = ring(callee_ns, session).await?;
    let sb = match recv_buffer {
        Some(size) => {
            MsnpClient::connect_small_buffer(ticket.addr, Role::Switchboard, label, size).await?
        }
        None => MsnpClient::connect(ticket.addr, Role::Switchboard, label).await?,
    };
    ans(sb, callee_ns, callee, &ticket, session).await
}

/// [`answer`] from the local address `from`; also returns where the `RNG` pointed.
///
/// # Errors
///
/// Any step failed.
pub async fn answer_from(
    callee_ns: &mut MsnpClient,
    callee: &str,
    label: &str,
    session: SessionId,
    from: IpAddr,
) -> anyhow::Result<(Joined, SocketAddr)> {
    let ticket = ring(callee_ns, session).await?;
    let sb = MsnpClient::connect_from(ticket.addr, from, Role::Switchboard, label).await?;
    Ok((
        ans(sb, callee_ns, callee, &ticket, session).await?,
        ticket.addr,
    ))
}

/// `ANS` on the new connection `sb`, the `IRO` lines and `ANS trid OK`.
async fn ans(
    mut sb: MsnpClient,
    callee_ns: &MsnpClient,
    callee: &str,
    ticket: &Ticket,
    session: SessionId,
) -> anyhow::Result<Joined> {
    let label = sb.label().to_owned();
    sb.set_version(callee_ns.caps().version);
    let a = sb.trid();
    sb.send_line(&format!("ANS {a} {callee} {} {session}", ticket.cookie))
        .await?;
    let mut iro = Vec::new();
    loop {
        match sb.recv().await? {
            m @ ServerMessage::Iro { trid, .. } if trid == a => iro.push(m),
            ServerMessage::AnsOk { trid } if trid == a => break,
            other => bail!("{label}: expected IRO {a} ... or ANS {a} OK, got {other:?}"),
        }
    }
    Ok(Joined { sb, iro, session })
}

/// A plain-text message payload (PROTOCOL.md §3.3).
#[must_use]
pub fn text_payload(text: &str) -> Vec<u8> {
    format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\
         X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\n{text}"
    )
    .into_bytes()
}

/// Sends `MSG trid <mode> <len>` with `payload`; returns the trid.
///
/// # Errors
///
/// The write failed.
pub async fn send_msg(sb: &mut MsnpClient, mode: &str, payload: &[u8]) -> anyhow::Result<u32> {
    let t = sb.trid();
    sb.send_payload(&format!("MSG {t} {mode}"), payload).await?;
    Ok(t.0)
}

/// Receives the next message on `sb` and requires it to be `MSG <from> <name> <len>` with
/// exactly `payload`.
///
/// # Errors
///
/// A different message or payload.
pub async fn expect_msg(sb: &mut MsnpClient, from: &str, payload: &[u8]) -> anyhow::Result<()> {
    let label = sb.label().to_owned();
    match sb.recv().await? {
        ServerMessage::Msg {
            from: f,
            payload: p,
            ..
        } if f.as_str() == from => {
            ensure!(
                p == payload,
                "{label}: payload from {from} differs: {:?}",
                String::from_utf8_lossy(&p)
            );
            Ok(())
        }
        other => bail!("{label}: expected MSG {from} ..., got {other:?}"),
    }
}

/// Sends `payload` as `MSG A` from `sender` (signed in as `from`), requires every one of
/// `others` to receive it unchanged, then the sender's `ACK`.
///
/// # Errors
///
/// A write failed, or a message or payload differs.
pub async fn send_acked(
    sender: &mut MsnpClient,
    from: &str,
    others: &mut [&mut MsnpClient],
    payload: &[u8],
) -> anyhow::Result<()> {
    let t = send_msg(sender, "A", payload).await?;
    for other in others.iter_mut() {
        expect_msg(other, from, payload).await?;
    }
    sender.expect_line(&format!("ACK {t}")).await
}
