//! Mixed dialects in one contact list and one conversation (issue 16): MSN 4.7 (MSNP7, MD5),
//! MSN 6.0 (MSNP9, Passport 1.4), MSN 7.5 (MSNP12, RST.srf) and, to see a personal message
//! arrive, MSN 7.0 (MSNP11) on each other's lists. Every event reaches every client in its own
//! dialect, byte for byte: presence with caps and MSNObject where the dialect has them, names
//! from `REA` and `PRP MFN` alike, `UBX` only for MSNP11+, one switchboard with `IRO`/`JOI`
//! caps only for MSNP12, the messages relayed unchanged, and `FLN` to all when MSN 7.5 leaves.

use anyhow::ensure;
use relive_msnp::server::ServerMessage;
use relive_msnp::version::ProtocolVersion;
use relive_server::store::{ListKind, parse_handle};
use relive_tests::sb::{self, send_acked, text_payload};
use relive_tests::stack::sync_lists;
use relive_tests::{MsnpClient, StackOptions, TestStack};

/// MSN 4.7 (MSNP7).
const ANN: &str = "ann@example.com";
/// MSN 6.0 (MSNP9).
const BEN: &str = "ben@example.com";
/// MSN 7.0 (MSNP11).
const DAN: &str = "dan@example.com";
/// MSN 7.5 (MSNP12).
const CAT: &str = "cat@example.com";

const CAPS_60: &str = "268435492";
const CAPS_70: &str = "1073741824";
const CAPS_75: &str = "1342177280";
const BEN_OBJ: &str = "%3Cmsnobj%20Creator%3D%22ben%40example.com%22%20Size%3D%2210%22%2F%3E";

/// Puts all four on each other's FL and AL (so each is on the others' RL).
async fn everyone_knows_everyone(stack: &TestStack) -> anyhow::Result<()> {
    let users = [(ANN, "Ann"), (BEN, "Ben"), (DAN, "Dan"), (CAT, "Cat")];
    for (owner, _) in users {
        let id = stack.id(owner).await?;
        for (contact, name) in users.iter().filter(|(c, _)| *c != owner) {
            let h = parse_handle(contact)?;
            for list in [ListKind::Fl, ListKind::Al] {
                stack.store.add_to_list(id, list, &h, name, None).await?;
            }
        }
    }
    Ok(())
}

/// Handle, name and caps of each `IRO`.
fn iro_seen(iro: &[ServerMessage]) -> Vec<(&str, &str, u32)> {
    iro.iter()
        .filter_map(|m| match m {
            ServerMessage::Iro {
                handle, name, caps, ..
            } => Some((handle.as_str(), name.as_str(), caps.0)),
            _ => None,
        })
        .collect()
}

/// `CHG` to `status line` and its echo, then the `ILN` burst checked line by line.
async fn go_online(c: &mut MsnpClient, chg: &str, burst: &[String]) -> anyhow::Result<()> {
    c.send_line(chg).await?;
    c.expect_line(chg).await?;
    for line in burst {
        c.expect_line(line).await?;
    }
    c.sync().await
}

#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one scenario, told in order")]
async fn msn47_msn60_msn70_and_msn75_in_one_list_and_one_conversation() -> anyhow::Result<()> {
    let stack = TestStack::start(
        StackOptions::new()
            .account(ANN, "Ann")
            .account(BEN, "Ben")
            .account(DAN, "Dan")
            .account(CAT, "Cat"),
    )
    .await?;
    everyone_knows_everyone(&stack).await?;

    // MSN 4.7 first, alone.
    let mut ann = stack.login(7, ANN).await?;
    sync_lists(&mut ann).await?;
    go_online(&mut ann, "CHG 4 NLN", &[]).await?;
    // MSN 6.0: ann in its burst with caps 0 and no MSNObject; ann sees ben without either.
    let mut ben = stack
        .login_passport_as(
            &[ProtocolVersion::MSNP9, ProtocolVersion::MSNP8],
            "6.0.0602",
            BEN,
        )
        .await?;
    sync_lists(&mut ben).await?;
    go_online(
        &mut ben,
        &format!("CHG 5 NLN {CAPS_60} {BEN_OBJ}"),
        &["ILN 5 NLN ann@example.com Ann 0".into()],
    )
    .await?;
    ann.expect_line("NLN NLN ben@example.com Ben").await?;
    // MSN 7.0 (MSNP11, over login2.srf).
    let mut dan = stack
        .login_passport_as(
            &[ProtocolVersion::MSNP11, ProtocolVersion::MSNP10],
            "7.0.0813",
            DAN,
        )
        .await?;
    sync_lists(&mut dan).await?;
    go_online(
        &mut dan,
        &format!("CHG 5 NLN {CAPS_70}"),
        &[
            "ILN 5 NLN ann@example.com Ann 0".into(),
            format!("ILN 5 NLN ben@example.com Ben {CAPS_60} {BEN_OBJ}"),
        ],
    )
    .await?;
    ann.expect_line("NLN NLN dan@example.com Dan").await?;
    ben.expect_line(&format!("NLN NLN dan@example.com Dan {CAPS_70}"))
        .await?;

    // MSN 7.5 (MSNP12 through RST.srf): everyone in its burst, each as MSNP12 writes it.
    let mut cat = stack.login_rst(CAT).await?;
    sync_lists(&mut cat).await?;
    go_online(
        &mut cat,
        &format!("CHG 5 NLN {CAPS_75}"),
        &[
            "ILN 5 NLN ann@example.com Ann 0".into(),
            format!("ILN 5 NLN ben@example.com Ben {CAPS_60} {BEN_OBJ}"),
            format!("ILN 5 NLN dan@example.com Dan {CAPS_70}"),
        ],
    )
    .await?;
    // An MSNP7 watcher of an MSNP12 user gets its NLN all the same.
    ann.expect_line("NLN NLN cat@example.com Cat").await?;
    ben.expect_line(&format!("NLN NLN cat@example.com Cat {CAPS_75}"))
        .await?;
    dan.expect_line(&format!("NLN NLN cat@example.com Cat {CAPS_75}"))
        .await?;

    // cat's personal message: only dan (MSNP11) gets a UBX; ann and ben nothing.
    let psm = "<Data><PSM>7.5 &amp; friends</PSM><CurrentMedia></CurrentMedia></Data>";
    cat.send_payload("UUX 6", psm.as_bytes()).await?;
    cat.expect_line("UUX 6 0").await?;
    let ubx = dan.recv_raw().await?;
    ensure!(
        ubx.line() == format!("UBX cat@example.com {}", psm.len()),
        "{}",
        ubx.line()
    );
    ensure!(ubx.payload().map(|p| &p[..]) == Some(psm.as_bytes()));
    // Names: PRP MFN (MSNP12) and REA (MSNP7) reach everyone as NLN in their own forms.
    cat.send_line("PRP 7 MFN Cat%20C").await?;
    cat.expect_line("PRP 7 MFN Cat%20C").await?;
    ann.expect_line("NLN NLN cat@example.com Cat%20C").await?;
    ben.expect_line(&format!("NLN NLN cat@example.com Cat%20C {CAPS_75}"))
        .await?;
    dan.expect_line(&format!("NLN NLN cat@example.com Cat%20C {CAPS_75}"))
        .await?;
    let t = ann.trid();
    ann.send_line(&format!("REA {t} ann@example.com Annie"))
        .await?;
    let rea = ann.recv_raw().await?.line();
    ensure!(
        rea.starts_with(&format!("REA {t} ")) && rea.ends_with(" ann@example.com Annie"),
        "{rea}"
    );
    cat.expect_line("NLN NLN ann@example.com Annie 0").await?;
    ben.expect_line("NLN NLN ann@example.com Annie 0").await?;
    dan.expect_line("NLN NLN ann@example.com Annie 0").await?;
    for c in [&mut ann, &mut ben, &mut cat] {
        c.sync().await?;
    }

    // One conversation: cat opens it and invites ann (MSNP7), then ben (MSNP9).
    let mut cat_sb = sb::open(&mut cat, CAT, "cat_sb").await?;
    let joined = sb::invite(&mut cat_sb, &mut ann, ANN, "ann_sb").await?;
    // ann's IRO has no caps (MSNP7: a caps field would be read back here); cat's JOI has
    // ann's caps (MSNP12).
    ensure!(
        iro_seen(&joined.iro) == [("cat@example.com", "Cat%20C", 0)],
        "{:?}",
        joined.iro
    );
    cat_sb.expect_line("JOI ann@example.com Annie 0").await?;
    let mut ann_sb = joined.sb;
    let session = sb::call(&mut cat_sb, BEN).await?;
    let ben_joined = sb::answer(&mut ben, BEN, "ben_sb", session, None).await?;
    let mut ben_sb = ben_joined.sb;
    // ben (MSNP9) got two IROs without caps; ann and cat a JOI each, in their forms.
    ensure!(
        iro_seen(&ben_joined.iro)
            == [
                ("cat@example.com", "Cat%20C", 0),
                ("ann@example.com", "Annie", 0)
            ],
        "{:?}",
        ben_joined.iro
    );
    ann_sb.expect_line("JOI ben@example.com Ben").await?;
    cat_sb
        .expect_line(&format!("JOI ben@example.com Ben {CAPS_60}"))
        .await?;
    // What each wrote reaches the other two unchanged.
    send_acked(
        &mut cat_sb,
        CAT,
        &mut [&mut ann_sb, &mut ben_sb],
        &text_payload("hello from 7.5"),
    )
    .await?;
    send_acked(
        &mut ann_sb,
        ANN,
        &mut [&mut cat_sb, &mut ben_sb],
        &text_payload("hello from 4.7"),
    )
    .await?;
    send_acked(
        &mut ben_sb,
        BEN,
        &mut [&mut cat_sb, &mut ann_sb],
        &text_payload("hello from 6.0"),
    )
    .await?;
    // A second invitation of ben (MSNP12 CAL of someone present): 215.
    let t = cat_sb.trid();
    cat_sb.send_line(&format!("CAL {t} {BEN}")).await?;
    cat_sb.expect_line(&format!("215 {t}")).await?;

    // cat leaves the conversation and signs out: BYE in the room, FLN to every watcher.
    cat_sb.send_line("OUT").await?;
    ann_sb.expect_line("BYE cat@example.com").await?;
    ben_sb.expect_line("BYE cat@example.com").await?;
    cat.send_line("OUT").await?;
    ann.expect_line("FLN cat@example.com").await?;
    ben.expect_line("FLN cat@example.com").await?;
    dan.expect_line("FLN cat@example.com").await?;
    stack.shutdown().await?;
    Ok(())
}
