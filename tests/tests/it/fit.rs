//! The rough edges a newcomer and a conformance probe tripped over (issue 13), each over real
//! sockets: `PNG` before login, `BPR` lines without their `LST`, links without the HTTP port, a
//! client whose dialects are all too new, the CA certificate published over HTTP, and the port
//! plan: a client patched with relive-patch's defaults finds a server started with its
//! defaults, signs in through the URL the patch wrote (HTTPS, or plain HTTP with
//! `--http-login`), and fetches MsgrConfig.

use std::net::SocketAddr;

use anyhow::{Context as _, bail, ensure};
use relive_msnp::server::ServerMessage;
use relive_patcher::Target;
use relive_patcher::scan::Endpoint;
use relive_server::store::{ListKind, PhoneProp, parse_handle};
use relive_tests::http::{self, Response, exchange};
use relive_tests::stack::{login_twn_with, sync_lists};
use relive_tests::{MsnpClient, StackOptions, TestStack};
use tokio::net::TcpStream;

use crate::transcripts::alice_and_bob_are_friends;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

#[tokio::test]
async fn ping_before_login_closes_like_any_command_out_of_state() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    for version in ["MSNP2", "MSNP7", "MSNP9"] {
        let mut c = stack.connect_ns(version).await?;
        c.send_line(&format!("VER 1 {version} CVR0")).await?;
        c.recv().await?;
        c.send_line("PNG").await?;
        c.expect_closed().await.context(version)?;
    }
    // Online, PNG is answered as always.
    let mut alice = stack.login(7, ALICE).await?;
    alice.send_line("PNG").await?;
    alice.expect_line("QNG").await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn msnp8_lst_sends_a_bpr_only_after_its_own_contact() -> anyhow::Result<()> {
    // alice: bob on FL+AL, bob on RL; carol on RL only. Bob and carol both have phones, so the
    // dump holds a BPR for each; alice's `LST FL` has no line for carol, so no BPR of hers.
    let stack = TestStack::start(StackOptions::cast()).await?;
    alice_and_bob_are_friends(&stack).await?;
    let (bob, carol) = (stack.id(BOB).await?, stack.id(CAROL).await?);
    stack
        .store
        .add_to_list(carol, ListKind::Fl, &parse_handle(ALICE)?, "Alice", None)
        .await?;
    stack
        .store
        .set_phone(bob, PhoneProp::Phw, Some("555"))
        .await?;
    stack
        .store
        .set_phone(carol, PhoneProp::Phh, Some("556"))
        .await?;
    let mut alice = stack.login_twn(8, ALICE).await?;
    sync_lists(&mut alice).await?;
    for (list, contacts) in [
        ("FL", vec![BOB]),
        ("RL", vec![BOB, CAROL]),
        ("AL", vec![BOB]),
    ] {
        alice.send_line(&format!("LST 9 {list}")).await?;
        alice.send_line("PNG").await?;
        let mut seen = Vec::new();
        let mut previous: Option<String> = None;
        loop {
            match alice.recv().await? {
                ServerMessage::Qng { .. } => break,
                ServerMessage::LstContact { handle, .. } => {
                    seen.push(handle.as_str().to_owned());
                    previous = Some(handle.as_str().to_owned());
                }
                ServerMessage::Bpr { handle, value, .. } => {
                    ensure!(list == "FL", "a BPR in LST {list}");
                    ensure!(handle.is_none(), "MSNP8 BPR lines carry no handle");
                    // Only bob's phone ("555") may appear, right after bob's line.
                    let value = value.as_ref().map(|v| v.as_str().to_owned());
                    ensure!(
                        previous.as_deref() == Some(BOB) && value.as_deref() == Some("555"),
                        "BPR {value:?} after {previous:?} in LST {list}: a BPR must follow \
                         its own contact's LST"
                    );
                    previous = None;
                }
                other => bail!("LST {list}: unexpected {other:?}"),
            }
        }
        ensure!(seen == contacts, "LST {list}: {seen:?}");
    }
    stack.shutdown().await?;
    Ok(())
}

/// GETs `url` (`http://host:port/path`) over plain HTTP; the status line.
async fn get(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut io = TcpStream::connect(authority)
        .await
        .with_context(|| format!("{url} is not reachable"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    Ok(exchange(&mut io, request.as_bytes()).await?.status_line)
}

#[tokio::test]
async fn url_and_cvr_links_carry_the_http_port_and_open() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let base = format!("http://127.0.0.1:{}/", stack.http.port());
    let mut c = stack.connect_ns("cvr").await?;
    c.send_line("VER 1 MSNP8 CVR0").await?;
    c.recv().await?;
    c.send_line("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com")
        .await?;
    let mut links = Vec::new();
    match c.recv().await? {
        ServerMessage::Cvr {
            download_url,
            info_url,
            ..
        } => links.extend([
            download_url.as_str().to_owned(),
            info_url.as_str().to_owned(),
        ]),
        other => bail!("CVR: {other:?}"),
    }
    let mut alice = stack.login(7, ALICE).await?;
    for service in ["INBOX", "COMPOSE", "FOLDERS", "PROFILE", "PERSON", "CHGMOB"] {
        alice.send_line(&format!("URL 9 {service}")).await?;
        match alice.recv().await? {
            ServerMessage::Url { url, login_url, .. } => {
                links.extend([url.as_str().to_owned(), login_url.as_str().to_owned()]);
            }
            other => bail!("URL {service}: {other:?}"),
        }
    }
    for link in &links {
        ensure!(link.starts_with(&base), "{link} is not on {base}");
        let status = get(link).await?;
        ensure!(status == "HTTP/1.1 200 OK", "{link}: {status}");
    }
    stack.shutdown().await?;
    Ok(())
}

/// The log line naming the offered dialects is checked where the log can be captured:
/// `relive_server`'s `notification::tests::a_ver_with_only_newer_dialects_is_logged_with_what_was_offered`.
#[tokio::test]
async fn a_client_offering_only_newer_dialects_gets_ver_0_and_is_closed() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    // Windows Live Messenger 8.1: MSNP13 and later are not served.
    let mut c = stack.connect_ns("msnp15").await?;
    c.send_line("VER 1 MSNP15 MSNP14 MSNP13 CVR0").await?;
    c.expect_line("VER 1 0").await?;
    c.expect_closed().await?;
    stack.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn the_ca_certificate_is_published_on_the_http_listener() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let mut io = TcpStream::connect(stack.http).await?;
    let res = exchange(
        &mut io,
        b"GET /relive-ca.crt HTTP/1.1\r\nHost: relive\r\nConnection: close\r\n\r\n",
    )
    .await?;
    ensure!(res.status_line == "HTTP/1.1 200 OK", "{}", res.status_line);
    ensure!(res.header("Content-Type") == Some("application/x-x509-ca-cert"));
    ensure!(
        res.body == std::fs::read(&stack.ca_cert)?,
        "not the CA the HTTPS certificate chains to"
    );
    // No legacy-TLS listener here, so no legacy CA either.
    let mut io = TcpStream::connect(stack.http).await?;
    let res = exchange(
        &mut io,
        b"GET /relive-ca-legacy.crt HTTP/1.1\r\nHost: relive\r\nConnection: close\r\n\r\n",
    )
    .await?;
    ensure!(
        res.status_line == "HTTP/1.1 404 Not Found",
        "{}",
        res.status_line
    );
    stack.shutdown().await?;
    Ok(())
}

#[test]
fn the_patcher_defaults_are_the_server_defaults() -> anyhow::Result<()> {
    let server = relive_server::config::Config::default();
    let target = Target::new("relive.example")?;
    ensure!(target.https_port == server.https.port());
    ensure!(target.http_port == server.http.port());
    ensure!(relive_patcher::MSNP_PORT == server.ns.port());
    let plan = relive_patcher::plan(&relive_patcher::synth::msn6_client(), &target)?;
    let used: Vec<String> = plan.destinations().into_iter().map(|d| d.address).collect();
    let expected = [
        format!("relive.example:{}", server.ns.port()),
        format!("https://relive.example:{}", server.https.port()),
        format!("http://relive.example:{}", server.http.port()),
    ];
    ensure!(used == expected, "{used:?}");
    ensure!(
        plan.to_string().contains("the patched client will use:"),
        "{plan}"
    );
    Ok(())
}

/// A request for `url`'s path on the stack's listener for its scheme (the patched client's
/// host is the stack's, whatever name it was patched with): over TLS, trusting the stack's
/// CA, for `https://`.
async fn fetch(stack: &TestStack, url: &str, extra: &str) -> anyhow::Result<Response> {
    let (scheme, rest) = url.split_once("://").context("a URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port: u16 = authority
        .rsplit_once(':')
        .context("a port in the URL")?
        .1
        .parse()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if scheme == "https" {
        ensure!(
            port == stack.https.port(),
            "{url} is not the HTTPS listener"
        );
        let mut tls = http::connect_tls(&stack.tls_connector()?, addr).await?;
        http::exchange(&mut tls, request.as_bytes()).await
    } else {
        ensure!(port == stack.http.port(), "{url} is not the HTTP listener");
        let mut io = TcpStream::connect(addr).await?;
        http::exchange(&mut io, request.as_bytes()).await
    }
}

/// What a patched MSN 5–7 client does with the URLs its patch wrote: the nexus, then the login
/// `DALogin` names (`https://` when it names no scheme, as the clients prepend), with `handle`'s
/// token, then `USR TWN S` with the ticket; and the MsgrConfig document.
async fn sign_in_as_patched(
    stack: &TestStack,
    patched: &[u8],
    handle: &str,
) -> anyhow::Result<MsnpClient> {
    let points_to = &relive_patcher::inspect(patched)?.files[0].points_to;
    let url = |endpoint| {
        points_to
            .iter()
            .find(|r| r.endpoint == endpoint && r.string.contains("://"))
            .map(|r| r.string.clone())
            .with_context(|| format!("no {endpoint} URL in {points_to:?}"))
    };
    let (nexus, config) = (url(Endpoint::Nexus)?, url(Endpoint::Config)?);
    let res = fetch(stack, &config, "").await?;
    ensure!(
        res.status_line == "HTTP/1.1 200 OK",
        "{config}: {}",
        res.status_line
    );
    ensure!(String::from_utf8_lossy(&res.body).contains("<MsgrConfig>"));
    let res = fetch(stack, &nexus, "").await?;
    let urls = res
        .header("PassportURLs")
        .context("nexus: no PassportURLs")?;
    let login = http::da_login(urls).context("no DALogin")?;
    let login = if login.contains("://") {
        login.to_owned()
    } else {
        format!("https://{login}")
    };
    let token = stack.token(handle).to_owned();
    let mut c = stack.connect_ns(handle).await?;
    login_twn_with(&mut c, 9, handle, |twn_params| async move {
        let authorization = format!(
            "Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,\
             sign-in={},pwd={token},{twn_params}\r\n",
            handle.replace('@', "%40")
        );
        fetch(stack, &login, &authorization).await
    })
    .await?;
    Ok(c)
}

#[tokio::test]
async fn a_client_patched_for_the_servers_ports_signs_in_through_the_urls_the_patch_wrote()
-> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let client = relive_patcher::synth::msn6_client();
    let ports = |host: &str| -> anyhow::Result<Target> {
        Ok(Target::new(host)?
            .with_https_port(stack.https.port())
            .with_http_port(stack.http.port()))
    };
    // A short name keeps the original paths; a longer one (`https://msn.relive.example:PORT`
    // leaves no room for /rdr/pprdr.asp in 40 characters) takes the short paths the server
    // also answers on. Either way the URLs lead to the server's listeners.
    for (host, nexus_path) in [
        ("127.0.0.1", "/rdr/pprdr.asp"),
        ("msn.relive.example", "/nexus"),
    ] {
        let target = ports(host)?;
        let plan = relive_patcher::plan(&client, &target)?;
        let patched = relive_patcher::apply(&client, &plan, &mut |_| {})?.bytes;
        let report = relive_patcher::inspect(&patched)?;
        ensure!(report.files[0].patched_for() == Some(host), "{report:?}");
        let nexus = format!("https://{host}:{}{nexus_path}", stack.https.port());
        ensure!(
            report.files[0].points_to.iter().any(|r| r.string == nexus),
            "{nexus} not in {:?}",
            report.files[0].points_to
        );
        let mut alice = sign_in_as_patched(&stack, &patched, ALICE).await?;
        alice.send_line("PNG").await?;
        ensure!(matches!(alice.recv().await?, ServerMessage::Qng { .. }));
    }
    // Signing in over plain HTTP: the nexus on the HTTP listener names the login there too,
    // so no certificate is involved at all.
    let target = ports("127.0.0.1")?.with_http_login(true);
    let plan = relive_patcher::plan(&client, &target)?;
    let patched = relive_patcher::apply(&client, &plan, &mut |_| {})?.bytes;
    let mut bob = sign_in_as_patched(&stack, &patched, BOB).await?;
    bob.send_line("PNG").await?;
    ensure!(matches!(bob.recv().await?, ServerMessage::Qng { .. }));
    stack.shutdown().await?;
    Ok(())
}
