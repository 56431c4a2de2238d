//! MSNP10 (MSN 6.1/6.2) end to end: a scripted client of MSN 6.2's shape (`VER MSNP10 MSNP9
//! CVR0`, CVR 6.2.0205, nexus + `login2.srf` over HTTPS) drives the address-book commands by
//! GUID, with the exact lines the server answers (research notes for issue 16, §2 and §7.1);
//! the GUIDs survive a restart and name the same contacts and groups an MSNP7 session of the
//! same account sees by handle and number.

use anyhow::{Context as _, anyhow, ensure};
use relive_msnp::server::ServerMessage;
use relive_msnp::types::{Guid, ListStamp};
use relive_msnp::version::ProtocolVersion;
use relive_server::store::{ListKind, parse_handle};
use relive_tests::stack::{change_status, sync_lists};
use relive_tests::{MsnpClient, StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
/// MSN 6.2's caps (MSNC3 and the usual feature bits).
const CAPS_62: &str = "805306404";

/// MSN 6.2: `VER 1 MSNP10 MSNP9 CVR0`, CVR 6.2.0205, the Passport 1.4 exchange.
async fn msn62(stack: &TestStack, handle: &str) -> anyhow::Result<MsnpClient> {
    stack
        .login_passport_as(
            &[ProtocolVersion::MSNP10, ProtocolVersion::MSNP9],
            "6.2.0205",
            handle,
        )
        .await
}

/// The value after `prefix` in a line's fields (`C=` of an `ADC`/`LST`).
fn field<'a>(line: &'a str, prefix: &str) -> anyhow::Result<&'a str> {
    line.split(' ')
        .find_map(|f| f.strip_prefix(prefix))
        .ok_or_else(|| anyhow!("no {prefix} in {line:?}"))
}

/// The next line, which must start with `prefix`; returns the rest.
async fn line_after(c: &mut MsnpClient, prefix: &str) -> anyhow::Result<String> {
    let line = c.recv_raw().await?.line();
    line.strip_prefix(prefix)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{}: expected {prefix:?}…, got {line:?}", c.label()))
}

#[tokio::test]
async fn msn62_address_book_by_guid() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    // alice has bob on FL (group "Friends") and AL; bob has alice on FL and AL.
    let (alice_id, bob_id) = (stack.id(ALICE).await?, stack.id(BOB).await?);
    let (alice_h, bob_h) = (parse_handle(ALICE)?, parse_handle(BOB)?);
    let (_, friends) = stack.store.add_group(alice_id, "Friends").await?;
    let s = &stack.store;
    s.add_to_list(alice_id, ListKind::Fl, &bob_h, "Bob", Some(friends.id))
        .await?;
    s.add_to_list(alice_id, ListKind::Al, &bob_h, "Bob", None)
        .await?;
    s.add_to_list(bob_id, ListKind::Fl, &alice_h, "Alice", None)
        .await?;
    s.add_to_list(bob_id, ListKind::Al, &alice_h, "Alice", None)
        .await?;
    // bob on MSN 4.7, carol on MSN 6.2, both online.
    let (mut bob, _) = stack.online(7, BOB, "NLN").await?;
    let mut carol = msn62(&stack, CAROL).await?;
    sync_lists(&mut carol).await?;
    change_status(&mut carol, "NLN").await?;

    let mut a = msn62(&stack, ALICE).await?;
    // The address-book dump: timestamps, PRP MFN, LSG by GUID, LST N= F= C=.
    let snap = stack.store.list_snapshot(alice_id).await?;
    let account = stack.account(ALICE).await?;
    let stamp = ListStamp::of_version(u64::try_from(account.created_at)?, snap.version);
    let bob_guid = snap.contacts[0].guid;
    let gg = friends.guid;
    a.send_line("SYN 5 0 0").await?;
    for want in [
        format!("SYN 5 {stamp} {stamp} 1 1"),
        "GTC A".to_owned(),
        "BLP AL".to_owned(),
        "PRP MFN Alice".to_owned(),
        format!("LSG Friends {gg}"),
        format!("LST N=bob@example.com F=Bob C={bob_guid} 11 {gg}"),
    ] {
        a.expect_line(&want).await?;
    }
    // A cache that is current: the SYN line only.
    a.send_line(&format!("SYN 6 {stamp} {stamp}")).await?;
    a.expect_line(&format!("SYN 6 {stamp} {stamp}")).await?;
    a.sync().await?;

    // Presence as before: bob (MSNP7, no caps) in alice's burst, alice's NLN to bob in his form.
    a.send_line(&format!("CHG 7 NLN {CAPS_62}")).await?;
    a.expect_line(&format!("CHG 7 NLN {CAPS_62}")).await?;
    a.expect_line("ILN 7 NLN bob@example.com Bob 0").await?;
    bob.expect_line("NLN NLN alice@example.com Alice").await?;

    // ADC FL by handle: the reply names the new contact's GUID; carol (MSNP10) is told in her
    // form, and alice gets carol's ILN with the same trid.
    a.send_line("ADC 8 FL N=carol@example.com F=carol@example.com")
        .await?;
    let added = a.recv_raw().await?.line();
    let carol_guid = Guid::parse(field(&added, "C=")?)?;
    ensure!(
        added == format!("ADC 8 FL N=carol@example.com F=carol@example.com C={carol_guid}"),
        "{added}"
    );
    // carol went online with a bare `CHG NLN` (caps 0).
    a.expect_line("ILN 8 NLN carol@example.com Carol 0").await?;
    carol
        .expect_line("ADC 0 RL N=alice@example.com F=Alice")
        .await?;
    a.send_line("ADC 9 AL N=carol@example.com").await?;
    a.expect_line("ADC 9 AL N=carol@example.com").await?;
    // Groups: ADG answers name then GUID; the contact is filed in and out by GUID.
    a.send_line("ADG 10 Work").await?;
    let work = Guid::parse(&line_after(&mut a, "ADG 10 Work ").await?)?;
    a.send_line(&format!("ADC 11 FL C={carol_guid} {work}"))
        .await?;
    a.expect_line(&format!("ADC 11 FL C={carol_guid} {work}"))
        .await?;
    a.send_line(&format!("REG 12 {work} Office")).await?;
    a.expect_line(&format!("REG 12 1 Office {work} 0")).await?;
    a.send_line(&format!("REM 13 FL {carol_guid} {work}"))
        .await?;
    a.expect_line(&format!("REM 13 FL {carol_guid} {work}"))
        .await?;
    a.send_line(&format!("RMG 14 {work}")).await?;
    a.expect_line(&format!("RMG 14 1 {work}")).await?;
    // Names: PRP MFN is echoed as sent and reaches bob (MSNP7) as an NLN; SBP renames carol.
    a.send_line("PRP 15 MFN Alice%20A").await?;
    a.expect_line("PRP 15 MFN Alice%20A").await?;
    bob.expect_line("NLN NLN alice@example.com Alice%20A")
        .await?;
    a.send_line(&format!("SBP 16 {carol_guid} MFN Caz")).await?;
    a.expect_line(&format!("SBP 16 {carol_guid} MFN Caz"))
        .await?;
    // A handle no account has is added like a registered one that never comes online (issue
    // 14: no enumeration), with a GUID of its own; a malformed handle is 208.
    a.send_line("ADC 16 FL N=nobody@example.com F=nobody@example.com")
        .await?;
    let added = a.recv_raw().await?.line();
    ensure!(
        added.starts_with("ADC 16 FL N=nobody@example.com F=nobody@example.com C="),
        "{added}"
    );
    a.send_line("ADC 16 FL N=nobody F=nobody").await?;
    a.expect_line("208 16").await?;
    // A GUID that names nobody in alice's lists: 208 (ADC, SBP), 216 (REM), 224 (group).
    let nobody = Guid::from_random([7; 16]);
    a.send_line(&format!("ADC 17 FL C={nobody} {gg}")).await?;
    a.expect_line("208 17").await?;
    a.send_line(&format!("SBP 18 {nobody} MFN X")).await?;
    a.expect_line("208 18").await?;
    a.send_line(&format!("REM 19 FL {nobody}")).await?;
    a.expect_line("216 19").await?;
    a.send_line(&format!("ADC 20 FL C={carol_guid} {nobody}"))
        .await?;
    a.expect_line("224 20").await?;
    // AL and BL still exclude each other; AL/BL are edited by handle.
    a.send_line("ADC 21 BL N=carol@example.com").await?;
    a.expect_line("219 21").await?;
    a.send_line("REM 22 AL carol@example.com").await?;
    a.expect_line("REM 22 AL carol@example.com").await?;
    a.send_line(&format!("REM 23 FL {carol_guid}")).await?;
    a.expect_line(&format!("REM 23 FL {carol_guid}")).await?;
    carol.expect_line("REM 0 RL alice@example.com").await?;
    // Settings without versions; PNG answered with seconds above 5.
    a.send_line("BLP 24 BL").await?;
    a.expect_line("BLP 24 BL").await?;
    a.send_line("GTC 25 N").await?;
    a.expect_line("GTC 25 N").await?;
    a.send_line("PNG").await?;
    let secs: u32 = line_after(&mut a, "QNG ").await?.parse()?;
    ensure!(secs > 5, "QNG {secs}");
    // The timestamp moved with the changes: the old one gets the whole dump again.
    a.send_line(&format!("SYN 26 {stamp} {stamp}")).await?;
    let syn = a.recv_raw().await?.line();
    ensure!(
        syn.starts_with("SYN 26 ") && !syn.ends_with(&format!("{stamp} {stamp}")),
        "{syn}"
    );
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn commands_msnp10_removed_or_lacks_close_the_connection() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    for (line, why) in [
        ("ADD 5 FL bob@example.com Bob", "ADD is gone from MSNP10"),
        ("REA 5 alice@example.com Al", "REA is gone from MSNP10"),
        ("ADC 5 RL N=bob@example.com", "RL is read-only"),
        ("GCF 5 Shields.xml", "GCF is MSNP11-12"),
        ("LST 5 FL", "client LST is gone from MSNP9"),
    ] {
        let mut a = msn62(&stack, ALICE).await?;
        a.send_line(line).await?;
        a.expect_closed().await.context(why)?;
    }
    // UUX is MSNP11+: a payload command MSNP10 does not have.
    let mut a = msn62(&stack, ALICE).await?;
    a.send_payload(
        "UUX 5",
        b"<Data><PSM>x</PSM><CurrentMedia></CurrentMedia></Data>",
    )
    .await?;
    a.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn guids_survive_a_restart_and_name_what_msnp7_sees() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut a = msn62(&stack, ALICE).await?;
    sync_lists(&mut a).await?;
    a.send_line("ADC 5 FL N=bob@example.com F=Bob").await?;
    let bob_guid = Guid::parse(field(&a.recv_raw().await?.line(), "C=")?)?;
    a.send_line("ADG 6 Work").await?;
    let work = Guid::parse(&line_after(&mut a, "ADG 6 Work ").await?)?;
    a.send_line(&format!("ADC 7 FL C={bob_guid} {work}"))
        .await?;
    a.expect_line(&format!("ADC 7 FL C={bob_guid} {work}"))
        .await?;
    drop(a);
    let data = stack.shutdown().await?;

    let stack = TestStack::start(StackOptions::new().reuse(data)).await?;
    // MSNP10 after the restart: the same GUIDs.
    let mut a = msn62(&stack, ALICE).await?;
    let (_, dump) = sync_lists(&mut a).await?;
    ensure!(
        dump.iter().any(|m| matches!(m,
            ServerMessage::Lsg { group, name, .. } if group.guid == work && name.as_str() == "Work")),
        "{dump:?}"
    );
    ensure!(
        dump.iter().any(|m| matches!(m,
            ServerMessage::LstContact { handle, guid, groups, .. }
                if handle.as_str() == BOB && *guid == bob_guid
                    && groups.iter().map(|g| g.guid).collect::<Vec<_>>() == [work])),
        "{dump:?}"
    );
    drop(a);
    // MSNP7 on the same account: the same contact, in the same group, by number; filed out of
    // "Other Contacts" when MSNP10 filed it into Work.
    let mut old = stack.login(7, ALICE).await?;
    let (_, dump7) = sync_lists(&mut old).await?;
    let work_id = dump7
        .iter()
        .find_map(|m| match m {
            ServerMessage::Lsg { group, name, .. } if name.as_str() == "Work" => Some(group.id),
            _ => None,
        })
        .ok_or_else(|| anyhow!("no Work group for MSNP7: {dump7:?}"))?;
    ensure!(
        dump7.iter().any(|m| matches!(m,
            ServerMessage::LstEntry { list: ListKind::Fl, contact: Some(c), .. }
                if c.handle.as_str() == BOB && c.groups == Some(vec![work_id]))),
        "{dump7:?}"
    );
    // A group MSNP7 makes is an MSNP10 group with a GUID; a contact MSNP7 adds has one too.
    old.send_line("ADG 20 Family 0").await?;
    old.recv_raw().await?;
    old.send_line("ADD 21 FL carol@example.com Carol").await?;
    old.recv_raw().await?;
    drop(old);
    let mut a = msn62(&stack, ALICE).await?;
    let (_, dump) = sync_lists(&mut a).await?;
    ensure!(
        dump.iter().any(|m| matches!(m,
            ServerMessage::Lsg { group, name, .. } if name.as_str() == "Family" && !group.guid.is_nil())),
        "{dump:?}"
    );
    ensure!(
        dump.iter().any(|m| matches!(m,
            ServerMessage::LstContact { handle, guid, .. } if handle.as_str() == CAROL && !guid.is_nil())),
        "{dump:?}"
    );
    stack.shutdown().await?;
    Ok(())
}
