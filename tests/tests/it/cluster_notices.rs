//! Cluster mode end to end, what the website starts and what a NATS outage breaks (issue 19):
//! a real `nats-server` and two `relive-server serve` nodes (roles `ns,sb`) on `127.0.0.1:0`
//! sharing one SQLite data directory (needs `nats-server`; skipped with the reason outside CI
//! when it is missing).
//!
//! - Notices from one node's website reach sessions on the other node with the bytes a
//!   single node sends: the admin broadcast, the new-mail and active-mail notifications of a
//!   mail written and read on the website, a token revoked (`OUT OTH`), an account disabled
//!   (`OUT OTH`), a maintenance countdown (the system message, then `OUT SSD`).
//! - NATS restarts while users are online (once for 3 s, longer than the nodes' dead_after,
//!   once for 0.2 s): a status change and a logout made while it was down are seen
//!   correctly by a watcher on the other node once the nodes have reconnected.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_tests::client::MsnpClient;
use relive_tests::cluster::{Node, node_program};
use relive_tests::logon::{Logon, Method};
use relive_tests::nats::Nats;
use relive_tests::stack::{DataDir, SEEDED_PASSWORD, change_status, sync_lists};
use relive_tests::web::{WebClient, location};
use relive_tests::{StackOptions, TestStack};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";

/// `MSG Hotmail Hotmail <len>` + `payload`, exactly.
fn hotmail(payload: &str) -> Vec<u8> {
    format!("MSG Hotmail Hotmail {}\r\n{payload}", payload.len()).into_bytes()
}

/// The next frame `c` receives is exactly `want`.
async fn expect_bytes(c: &mut MsnpClient, want: &[u8]) -> anyhow::Result<()> {
    let raw = c.recv_raw().await?;
    ensure!(
        raw.bytes == want,
        "{}: got {:?}, want {:?}",
        c.label(),
        String::from_utf8_lossy(&raw.bytes),
        String::from_utf8_lossy(want)
    );
    Ok(())
}

/// A two-node network (`n1`, `n2`, both `ns,sb`) on one shared SQLite data directory seeded
/// with alice (an admin, whose API key is returned) and bob, carol and dave, her friends
/// (not each other's).
struct Network {
    nats: Nats,
    nodes: Vec<Node>,
    data: DataDir,
    ca: std::path::PathBuf,
    api_key: String,
}

impl Network {
    async fn start() -> anyhow::Result<Option<Self>> {
        let Some(nats) = Nats::start()? else {
            return Ok(None);
        };
        let stack = TestStack::start(
            StackOptions::new()
                .reuse(DataDir::sqlite()?)
                .account(ALICE, "Alice")
                .account(BOB, "Bob")
                .account(CAROL, "Carol")
                .account(DAVE, "Dave"),
        )
        .await?;
        for (a, b) in [(ALICE, BOB), (ALICE, CAROL), (ALICE, DAVE)] {
            stack.befriend(a, b).await?;
        }
        let alice = relive_server::store::parse_handle(ALICE)?;
        stack.store.set_admin(&alice, true).await?;
        let api_key = stack
            .store
            .create_api_key(stack.id(ALICE).await?, "test")
            .await?;
        let ca = stack.ca_cert.clone();
        let data = stack.shutdown().await?;
        let name = format!("n{}", std::process::id());
        let program = tokio::task::spawn_blocking(node_program).await??;
        let mut nodes = Vec::new();
        for id in ["n1", "n2"] {
            nodes.push(Node::spawn(&program, &data, nats.url(), &name, id, "ns,sb", 1).await?);
        }
        for node in &mut nodes {
            node.ready().await?;
        }
        Ok(Some(Self {
            nats,
            nodes,
            data,
            ca,
            api_key,
        }))
    }

    /// `handle` logged in (MD5, MSNP7) on node `i`, lists synchronised, status `status`.
    async fn online(&self, i: usize, handle: &str, status: &str) -> anyhow::Result<MsnpClient> {
        let node = &self.nodes[i];
        let logon = Logon::new(Method::Md5, node.ns, node.https, &self.ca, None).await?;
        let token = self.data.token(handle).context("token")?;
        let mut c = logon.login(handle, token).await?;
        sync_lists(&mut c).await?;
        change_status(&mut c, status).await?;
        Ok(c)
    }

    /// `handle` signed in on node `i`'s website.
    async fn web(&self, i: usize, handle: &str) -> anyhow::Result<WebClient> {
        let mut web = WebClient::new(self.nodes[i].http);
        let r = web
            .post(
                "/signin",
                &[("email", handle), ("password", SEEDED_PASSWORD)],
            )
            .await?;
        ensure!(location(&r) == Some("/"), "sign-in of {handle}: {r:?}");
        Ok(web)
    }

    /// An admin API call on node `i`; the status code and the body.
    async fn api(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut api = WebClient::new(self.nodes[i].http);
        let r = api.api(method, path, Some(&self.api_key), body).await?;
        let code = r
            .status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("status line")?;
        Ok((code, r.body))
    }

    /// `http://127.0.0.1:<port>` of node `i`'s website.
    fn site(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].http.port())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn website_notices_reach_sessions_on_another_node() -> anyhow::Result<()> {
    let Some(net) = Network::start().await? else {
        return Ok(());
    };
    // bob, carol and dave live on n2; everything below is done on n1's website.
    let mut bob = net.online(1, BOB, "NLN").await?;
    let mut carol = net.online(1, CAROL, "NLN").await?;
    let mut dave = net.online(1, DAVE, "NLN").await?;
    // n1 knows them once it applied n2's changes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = net.api(0, "GET", "/api/online", None).await?;
        ensure!(code == 200, "online: {code}");
        let online: serde_json::Value = serde_json::from_slice(&body)?;
        if online.as_array().is_some_and(|a| a.len() == 3) {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "n1 sees {online} online"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The admin broadcast, counted for the three sessions of n2 it was handed to.
    let (code, body) = net
        .api(
            0,
            "POST",
            "/api/broadcast",
            Some(r#"{"text":"Hello from the admins"}"#),
        )
        .await?;
    ensure!(code == 200, "broadcast: {code}");
    let sent: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(sent["sent"] == 3, "{sent}");
    let site = net.site(0);
    let want = hotmail(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n\
         From: Relive\r\nMessage-URL: /\r\nPost-URL: {site}/\r\nSubject: Hello from the admins\r\n\
         Dest-Folder: ACTIVE\r\nFrom-Addr: relive@127.0.0.1\r\nid: 2\r\n\r\n"
    ));
    for c in [&mut bob, &mut carol, &mut dave] {
        expect_bytes(c, &want).await?;
    }

    // alice writes to bob on n1's website: bob (n2) gets the new-mail notification.
    let mut alice_web = net.web(0, ALICE).await?;
    let r = alice_web
        .post(
            "/mail/compose",
            &[("to", BOB), ("subject", "Grüße"), ("body", "See you at 8")],
        )
        .await?;
    ensure!(location(&r) == Some("/mail?folder=sent&m=sent"), "{r:?}");
    let raw = bob.recv_raw().await?;
    let text = String::from_utf8_lossy(&raw.bytes).into_owned();
    let id: i64 = text
        .split("Message-URL: /mail/")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no message URL in {text:?}"))?;
    let want = hotmail(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n\
         From: Alice\r\nMessage-URL: /mail/{id}\r\nPost-URL: {site}/\r\n\
         Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDest-Folder: ACTIVE\r\nFrom-Addr: {ALICE}\r\nid: 2\r\n\r\n"
    ));
    ensure!(raw.bytes == want, "{text:?}");
    // bob reads it on n1's website: the active-mail notification reaches him on n2.
    let mut bob_web = net.web(0, BOB).await?;
    let page = bob_web.page(&format!("/mail/{id}")).await?;
    ensure!(page.contains("See you at 8"), "{page}");
    expect_bytes(
        &mut bob,
        &hotmail(
            "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsactivemailnotification; charset=UTF-8\r\n\r\n\
             Src-Folder: ACTIVE\r\nDest-Folder: .!!READ\r\nMessage-Delta: 1\r\n\r\n",
        ),
    )
    .await?;

    // carol's token is revoked on n1 (admin API): her session on n2 ends.
    let (code, body) = net
        .api(0, "GET", &format!("/api/accounts/{CAROL}/tokens"), None)
        .await?;
    ensure!(code == 200, "tokens: {code}");
    let tokens: serde_json::Value = serde_json::from_slice(&body)?;
    let token_id = tokens[0]["id"]
        .as_i64()
        .with_context(|| format!("{tokens}"))?;
    let (code, _) = net
        .api(
            0,
            "DELETE",
            &format!("/api/accounts/{CAROL}/tokens/{token_id}"),
            None,
        )
        .await?;
    ensure!(code == 204, "revoke: {code}");
    expect_bytes(&mut carol, b"OUT OTH\r\n").await?;
    carol.expect_closed().await?;

    // dave is disabled on n1: his session on n2 ends.
    let (code, _) = net
        .api(0, "POST", &format!("/api/accounts/{DAVE}/disable"), None)
        .await?;
    ensure!(code == 204, "disable: {code}");
    expect_bytes(&mut dave, b"OUT OTH\r\n").await?;
    dave.expect_closed().await?;

    // A maintenance countdown started on n1: bob (n2) gets the system message, then OUT SSD.
    let (code, _) = net
        .api(0, "POST", "/api/maintenance", Some(r#"{"seconds":2}"#))
        .await?;
    ensure!(code == 204, "maintenance: {code}");
    expect_bytes(
        &mut bob,
        &hotmail(
            "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\n\
             Type: 1\r\nArg1: 1\r\n",
        ),
    )
    .await?;
    expect_bytes(&mut bob, b"OUT SSD\r\n").await?;
    bob.expect_closed().await?;
    Ok(())
}

fn status_of(m: &ServerMessage, who: &str) -> Option<String> {
    match m {
        ServerMessage::Nln { handle, status, .. } if handle.as_str() == who => {
            Some(status.as_str().to_owned())
        }
        ServerMessage::Fln { handle } if handle.as_str() == who => Some("FLN".to_owned()),
        _ => None,
    }
}

/// Reads `c`'s lines until `who` shows `want` (`NLN` statuses or `FLN`), within 30 s.
async fn until_status(c: &mut MsnpClient, who: &str, want: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = match tokio::time::timeout(left, c.recv()).await {
            Ok(m) => m?,
            Err(_) => bail!("{}: {who} never showed {want}", c.label()),
        };
        if status_of(&m, who).as_deref() == Some(want) {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_converges_after_nats_restarts() -> anyhow::Result<()> {
    let Some(mut net) = Network::start().await? else {
        return Ok(());
    };
    // alice on n1 watches bob and carol on n2.
    let mut alice = net.online(0, ALICE, "NLN").await?;
    let mut bob = net.online(1, BOB, "NLN").await?;
    until_status(&mut alice, BOB, "NLN").await?;
    let mut carol = net.online(1, CAROL, "NLN").await?;
    until_status(&mut alice, CAROL, "NLN").await?;

    // NATS goes away for 3 s (longer than the nodes' 1 s dead_after). Meanwhile bob goes
    // busy and carol logs out, on n2.
    net.nats.stop()?;
    change_status(&mut bob, "BSY").await?;
    carol.send_line("OUT").await?;
    carol.expect_line("OUT").await?;
    carol.expect_closed().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.nats.resume()?;

    // After the reconnect alice sees bob busy and carol offline, and a change made now
    // crosses again.
    until_status(&mut alice, BOB, "BSY").await?;
    // carol: FLN came when n1 took n2 for dead; after the resync she must not come back.
    // (bob may first be told alice went offline and came back: n2 took n1 for dead too.)
    bob.send_line("CHG 90 AWY").await?;
    bob.wait_for("CHG 90 AWY", |m| matches!(m, ServerMessage::Chg { .. }))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = tokio::time::timeout(left, alice.recv())
            .await
            .context("bob's AWY never crossed")??;
        ensure!(
            status_of(&m, CAROL).is_none_or(|s| s == "FLN"),
            "carol came back: {m:?}"
        );
        if status_of(&m, BOB).as_deref() == Some("AWY") {
            break;
        }
    }
    // A short outage this time (0.2 s, shorter than dead_after: nobody is taken for dead,
    // what the nodes published while reconnecting is lost or late): bob goes online again
    // meanwhile; the resync after the reconnect brings it to alice.
    net.nats.stop()?;
    bob.send_line("CHG 91 NLN").await?;
    bob.wait_for("CHG 91 NLN", |m| matches!(m, ServerMessage::Chg { .. }))
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    net.nats.resume()?;
    until_status(&mut alice, BOB, "NLN").await?;
    // alice's view of the network, through n1's API: bob online, carol not.
    let (code, body) = net.api(0, "GET", "/api/online", None).await?;
    ensure!(code == 200);
    let online: serde_json::Value = serde_json::from_slice(&body)?;
    let handles: Vec<&str> = online
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|u| u["handle"].as_str())
        .collect();
    ensure!(handles == [ALICE, BOB], "{online}");
    Ok(())
}
