//! MSNP11/12 (MSN 7.0/7.5) end to end with a scripted MSN 7.5: the SOAP `RST.srf` login over
//! HTTPS against the stack's generated CA (tokens, the fault for bad credentials, the shared
//! rate limiter, single-use tickets, the lenient front), `SBS`, the `SYN` dump with the network
//! type, `GCF Shields.xml`, the MSNP11 product-key challenge and `UUX` (research notes for
//! issue 16, §3, §4, §7.2, §7.3).

use anyhow::{anyhow, ensure};
use relive_msnp::auth::product_key_response;
use relive_msnp::rst;
use relive_server::notification::SHIELDS_XML;
use relive_server::store::{ListKind, parse_handle};
use relive_tests::stack::{login_with_ticket, login2_request, rst_request, sync_lists};
use relive_tests::{StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
/// The `USR TWN S` parameters as the server sends them (the RST policy only echoes them).
const PARAMS: &str = "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1";
/// MSN 7.5's caps (MSNC5).
const CAPS_75: &str = "1342177280";

#[tokio::test]
async fn rst_srf_issues_login2_tickets_and_fails_alike() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    // The right token: 200, text/xml, the legacy token then Compact1 for messenger.msn.com.
    let ok = stack.rst_login(ALICE, stack.token(ALICE), PARAMS).await?;
    ensure!(ok.status_line == "HTTP/1.1 200 OK", "{}", ok.status_line);
    ensure!(
        ok.header("Content-Type") == Some("text/xml; charset=utf-8"),
        "{:?}",
        ok.headers
    );
    let body = String::from_utf8(ok.body.clone())?;
    ensure!(body.contains("urn:passport:legacy") && body.contains("Id=\"Compact1\""));
    let ticket = rst::messenger_ticket(&ok.body).ok_or_else(|| anyhow!("no ticket: {body}"))?;
    ensure!(
        ticket.starts_with("t=") && ticket.contains("&p="),
        "{ticket}"
    );
    ensure!(
        body.contains(&ticket.replace('&', "&amp;")),
        "escaped in the XML"
    );

    // A wrong token, an unknown account and a user name that is no handle: the same bytes.
    let wrong = stack.rst_login(ALICE, "not-the-token", PARAMS).await?;
    let unknown = stack
        .rst_login("nobody@example.com", "not-the-token", PARAMS)
        .await?;
    let no_handle = stack.rst_login("nobody", "x", PARAMS).await?;
    for res in [&wrong, &unknown, &no_handle] {
        ensure!(res.status_line == "HTTP/1.1 200 OK", "{}", res.status_line);
        ensure!(res.body == rst::AUTH_FAILED.as_bytes(), "{:?}", res.body);
    }
    // Not a token request: 400 with an S:Client fault.
    let garbage = "<Envelope><Body/></Envelope>";
    let res = stack
        .https_request(&format!(
            "POST /RST.srf HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{garbage}",
            garbage.len()
        ))
        .await?;
    ensure!(
        res.status_line == "HTTP/1.1 400 Bad Request",
        "{}",
        res.status_line
    );
    ensure!(res.body == rst::BAD_REQUEST.as_bytes());

    // The lenient front: an HTTP/1.0 POST with the path in another case is served too.
    let http10 = rst_request(BOB, stack.token(BOB), PARAMS).replacen(
        "POST /RST.srf HTTP/1.1",
        "POST /rst.srf HTTP/1.0",
        1,
    );
    let res = stack.https_request(&http10).await?;
    ensure!(res.status_line == "HTTP/1.1 200 OK", "{}", res.status_line);
    ensure!(rst::messenger_ticket(&res.body).is_some());
    // MSN 7.5's empty probe of the login server's port.
    let res = stack
        .https_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        .await?;
    ensure!(res.status_line == "HTTP/1.1 200 OK", "{}", res.status_line);

    // The RST ticket is a login2.srf ticket: one USR TWN S takes it, a second is refused.
    let versions = [relive_msnp::version::ProtocolVersion::MSNP12];
    let mut c = stack.connect_ns("alice_ns").await?;
    let t = ticket.clone();
    login_with_ticket(
        &mut c,
        &versions,
        "7.5.0324",
        ALICE,
        |_| async move { Ok(t) },
    )
    .await?;
    let mut again = stack.connect_ns("alice_ns2").await?;
    let replay = login_with_ticket(&mut again, &versions, "7.5.0324", ALICE, |_| async move {
        Ok(ticket)
    })
    .await;
    ensure!(replay.is_err(), "a reused ticket logged in");
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn rst_srf_and_login2_srf_share_one_rate_limiter() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    // Wrong RST.srf attempts for bob until the limiter refuses (503, Retry-After).
    let mut refused = None;
    for _ in 0..30 {
        let res = stack.rst_login(BOB, "wrong-token", PARAMS).await?;
        if res.status_line != "HTTP/1.1 200 OK" {
            refused = Some(res);
            break;
        }
        ensure!(res.body == rst::AUTH_FAILED.as_bytes());
    }
    let refused = refused.ok_or_else(|| anyhow!("RST.srf was never rate-limited"))?;
    ensure!(
        refused.status_line == "HTTP/1.1 503 Service Unavailable",
        "{}",
        refused.status_line
    );
    ensure!(
        refused.header("Retry-After").is_some(),
        "{:?}",
        refused.headers
    );
    // The same limiter guards login2.srf: bob's right token from this address waits too.
    let (host, path) = stack.da_login().await?;
    let res = stack
        .https_request(&login2_request(&host, &path, BOB, stack.token(BOB), PARAMS))
        .await?;
    ensure!(
        res.status_line == "HTTP/1.1 503 Service Unavailable",
        "{}",
        res.status_line
    );
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn msn75_session_sbs_syn_gcf_challenge_and_uux() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().chl(true)).await?;
    let (alice_id, bob_id) = (stack.id(ALICE).await?, stack.id(BOB).await?);
    let (alice_h, bob_h) = (parse_handle(ALICE)?, parse_handle(BOB)?);
    let (_, friends) = stack.store.add_group(alice_id, "Friends").await?;
    stack
        .store
        .add_to_list(alice_id, ListKind::Fl, &bob_h, "Bob", Some(friends.id))
        .await?;
    stack
        .store
        .add_to_list(bob_id, ListKind::Fl, &alice_h, "Alice", None)
        .await?;
    // login_rst checks USR OK, SBS 0 null (right after it) and the profile.
    let mut a = stack.login_rst(ALICE).await?;
    let snap = stack.store.list_snapshot(alice_id).await?;
    let bob_guid = snap.contacts[0].guid;
    let (_, dump) = sync_lists(&mut a).await?;
    ensure!(dump.len() == 5, "{dump:?}");
    // MSNP12's LST: the network type (1) after the bits.
    a.send_line("SYN 9 0 0").await?;
    let mut lines = Vec::new();
    for _ in 0..6 {
        lines.push(a.recv_raw().await?.line());
    }
    ensure!(
        lines[5]
            == format!(
                "LST N=bob@example.com F=Bob C={bob_guid} 9 1 {}",
                friends.guid
            ),
        "{lines:?}"
    );
    // GCF: the Shields document, as a payload command.
    a.send_line("GCF 10 Shields.xml").await?;
    let gcf = a.recv_raw().await?;
    ensure!(
        gcf.line() == format!("GCF 10 Shields.xml {}", SHIELDS_XML.len()),
        "{}",
        gcf.line()
    );
    ensure!(gcf.payload().map(|p| &p[..]) == Some(SHIELDS_XML.as_bytes()));
    // The first CHG brings the MSNP11 challenge; MSN 7.5's product key answers it.
    a.send_line(&format!("CHG 11 NLN {CAPS_75}")).await?;
    a.expect_line(&format!("CHG 11 NLN {CAPS_75}")).await?;
    let chl = a.recv_raw().await?.line();
    let challenge = chl
        .strip_prefix("CHL 0 ")
        .ok_or_else(|| anyhow!("expected CHL, got {chl}"))?;
    let answer = product_key_response(challenge, "PROD0104U6VVM{UJ", "VK67B}379XYM5}$T");
    a.send_payload("QRY 12 PROD0104U6VVM{UJ", answer.as_bytes())
        .await?;
    a.expect_line("QRY 12").await?;
    // UUX: answered with an empty payload.
    a.send_payload(
        "UUX 13",
        b"<Data><PSM>example status message</PSM><CurrentMedia></CurrentMedia></Data>",
    )
    .await?;
    a.expect_line("UUX 13 0").await?;
    a.sync().await?;
    // bob on MSN 7.5 too: alice's ILN comes with her personal message.
    let mut b = stack.login_rst(BOB).await?;
    sync_lists(&mut b).await?;
    b.send_line(&format!("CHG 5 NLN {CAPS_75}")).await?;
    b.expect_line(&format!("CHG 5 NLN {CAPS_75}")).await?;
    b.expect_line(&format!("ILN 5 NLN alice@example.com Alice {CAPS_75}"))
        .await?;
    let ubx = b.recv_raw().await?;
    let psm = "<Data><PSM>example status message</PSM><CurrentMedia></CurrentMedia></Data>";
    ensure!(
        ubx.line() == format!("UBX alice@example.com {}", psm.len()),
        "{}",
        ubx.line()
    );
    ensure!(ubx.payload().map(|p| &p[..]) == Some(psm.as_bytes()));
    // An MSNP6–10 (MD5) answer to an MSNP11 challenge: 540 and close.
    let chl = b.recv_raw().await?.line();
    let challenge = chl
        .strip_prefix("CHL 0 ")
        .ok_or_else(|| anyhow!("expected CHL, got {chl}"))?;
    let md5 = relive_msnp::auth::md5_response(challenge, "Q1P7W2E4J9R8U3S5");
    b.send_payload("QRY 6 msmsgs@msnmsgr.com", md5.as_bytes())
        .await?;
    b.expect_line("540 6").await?;
    b.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}
