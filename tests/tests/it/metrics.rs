//! `/metrics` scraped over HTTP while real clients log in (MSNP7 MD5, MSNP9 Passport), fail to,
//! chat and leave: every series the issue names is there, in the Prometheus text format, and
//! moves by exactly what the clients did.

use std::collections::HashMap;

use anyhow::{Context as _, bail, ensure};
use relive_tests::sb::{self, send_acked, text_payload};
use relive_tests::stack::{change_status, md5_challenge, sync_lists};
use relive_tests::{StackOptions, TestStack};
use tokio::net::TcpStream;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// One scrape: every sample by its series (`name{labels}` exactly as written), and the text.
pub(crate) struct Scrape {
    samples: HashMap<String, f64>,
    text: String,
}

impl Scrape {
    /// The value of `series`; fails if the scrape lacks it.
    pub(crate) fn get(&self, series: &str) -> anyhow::Result<f64> {
        self.samples
            .get(series)
            .copied()
            .with_context(|| format!("no {series} in\n{}", self.text))
    }

    /// How much `series` grew from `before` to this scrape.
    fn grew(&self, before: &Self, series: &str) -> anyhow::Result<f64> {
        Ok(self.get(series)? - before.get(series)?)
    }
}

/// `GET /metrics` on a fresh connection; checks the status and the content type.
pub(crate) async fn scrape(stack: &TestStack) -> anyhow::Result<Scrape> {
    let mut conn = TcpStream::connect(stack.metrics).await?;
    let response = relive_tests::http::exchange(
        &mut conn,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await?;
    ensure!(
        response.status_line == "HTTP/1.1 200 OK",
        "{}",
        response.status_line
    );
    let content_type = response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    ensure!(
        content_type == Some("text/plain; version=0.0.4; charset=utf-8"),
        "content type {content_type:?}"
    );
    let text = String::from_utf8(response.body)?;
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("sample line {line:?}"))?;
        samples.insert(series.to_owned(), value.parse()?);
    }
    Ok(Scrape { samples, text })
}

/// Scrapes until `check` holds (gauges follow a connection's end a moment later).
async fn scrape_until(
    stack: &TestStack,
    what: &str,
    check: impl Fn(&Scrape) -> anyhow::Result<bool>,
) -> anyhow::Result<Scrape> {
    for _ in 0..200 {
        let s = scrape(stack).await?;
        if check(&s)? {
            return Ok(s);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    bail!("{what}: never seen in\n{}", scrape(stack).await?.text)
}

fn logins(method: &str, result: &str) -> String {
    format!("relive_logins_total{{method=\"{method}\",result=\"{result}\"}}")
}

fn online(dialect: &str) -> String {
    format!("relive_users_online{{dialect=\"{dialect}\"}}")
}

#[tokio::test]
async fn metrics_move_with_logins_chats_and_logouts() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().relay(true)).await?;
    let start = scrape(&stack).await?;
    // Every series is declared with its type; labelled ones exist from the start at zero.
    for (family, kind) in [
        ("relive_users_online", "gauge"),
        ("relive_connections_open", "gauge"),
        ("relive_logins_total", "counter"),
        ("relive_switchboard_sessions", "gauge"),
        ("relive_switchboard_messages_total", "counter"),
        ("relive_outbox_overflows_total", "counter"),
        ("relive_history_recorded_total", "counter"),
        ("relive_history_dropped_total", "counter"),
        ("relive_relay_allocations_open", "gauge"),
        ("relive_relay_allocations_total", "counter"),
        ("relive_relay_transfers_total", "counter"),
        ("relive_relay_bytes_total", "counter"),
        ("relive_store_operation_duration_seconds", "histogram"),
        ("relive_store_retries_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        ensure!(
            start.text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} {kind} missing from\n{}",
            start.text
        );
    }
    for dialect in ["MSNP2", "MSNP7", "MSNP9"] {
        ensure!(start.get(&online(dialect))? == 0.0);
    }
    for method in ["md5", "ctp", "twn", "passport"] {
        for result in ["ok", "failed", "refused", "error"] {
            ensure!(start.get(&logins(method, result))? == 0.0);
        }
    }
    ensure!(start.get("relive_relay_transfers_total{result=\"ok\"}")? == 0.0);
    ensure!(start.get("process_resident_memory_bytes")? > 1_000_000.0);

    // alice: MSNP7 MD5. bob: MSNP9 through Passport (login2.srf, then USR TWN).
    let mut alice = stack.login(7, ALICE).await?;
    sync_lists(&mut alice).await?;
    change_status(&mut alice, "NLN").await?;
    let mut bob = stack.login_twn(9, BOB).await?;
    sync_lists(&mut bob).await?;
    change_status(&mut bob, "NLN").await?;
    // carol answers her challenge with alice's token: a failed MD5 login.
    let mut carol = stack.connect_ns("carol_ns").await?;
    let t = carol.trid();
    carol.send_line(&format!("VER {t} MSNP7 CVR0")).await?;
    carol.expect_line(&format!("VER {t} MSNP7")).await?;
    let salt = md5_challenge(&mut carol, CAROL).await?;
    let wrong = relive_msnp::auth::md5_response(&salt, stack.token(ALICE));
    let t = carol.trid();
    carol.send_line(&format!("USR {t} MD5 S {wrong}")).await?;
    carol.expect_line(&format!("911 {t}")).await?;

    let logged_in = scrape(&stack).await?;
    ensure!(logged_in.get(&online("MSNP7"))? == 1.0);
    ensure!(logged_in.get(&online("MSNP9"))? == 1.0);
    ensure!(logged_in.grew(&start, &logins("md5", "ok"))? == 1.0);
    ensure!(logged_in.grew(&start, &logins("md5", "failed"))? == 1.0);
    ensure!(logged_in.grew(&start, &logins("passport", "ok"))? == 1.0);
    ensure!(logged_in.grew(&start, &logins("twn", "ok"))? == 1.0);
    ensure!(logged_in.grew(&start, &logins("ctp", "ok"))? == 0.0);
    // Token checks, list loads and SYN dumps went through the store.
    ensure!(
        logged_in.grew(&start, "relive_store_operation_duration_seconds_count")? >= 4.0,
        "{}",
        logged_in.text
    );
    ensure!(logged_in.get("relive_connections_open")? >= 2.0);

    // A chat: alice opens a switchboard, invites bob, three messages go across.
    let mut alice_sb = sb::open(&mut alice, ALICE, "alice_sb").await?;
    let joined = sb::invite(&mut alice_sb, &mut bob, BOB, "bob_sb").await?;
    let mut bob_sb = joined.sb;
    alice_sb
        .wait_for("JOI bob", |m| {
            matches!(m, relive_msnp::server::ServerMessage::Joi { .. })
        })
        .await?;
    for text in ["one", "two", "three"] {
        send_acked(
            &mut alice_sb,
            ALICE,
            &mut [&mut bob_sb],
            &text_payload(text),
        )
        .await?;
    }
    let chatting = scrape(&stack).await?;
    ensure!(chatting.get("relive_switchboard_sessions")? == 1.0);
    ensure!(chatting.grew(&start, "relive_switchboard_messages_total")? == 3.0);
    ensure!(chatting.get("relive_connections_open")? >= 4.0);

    // Everyone leaves: the gauges come back down, the counters stay.
    alice_sb.send_line("OUT").await?;
    bob_sb.send_line("OUT").await?;
    alice.send_line("OUT").await?;
    bob.send_line("OUT").await?;
    let left = scrape_until(&stack, "everyone gone", |s| {
        Ok(s.get(&online("MSNP7"))? == 0.0
            && s.get(&online("MSNP9"))? == 0.0
            && s.get("relive_switchboard_sessions")? == 0.0)
    })
    .await?;
    ensure!(left.grew(&start, "relive_switchboard_messages_total")? == 3.0);
    ensure!(left.grew(&start, &logins("md5", "ok"))? == 1.0);

    // Only /metrics is served there.
    let mut conn = TcpStream::connect(stack.metrics).await?;
    let other = relive_tests::http::exchange(
        &mut conn,
        b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await?;
    ensure!(other.status_line == "HTTP/1.1 404 Not Found", "{other:?}");
    stack.shutdown().await?;
    Ok(())
}
