use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use relive_msnp::client::Role;
use relive_server::net::Kind;
use relive_tests::logon::{Logon, Method};
use relive_tests::{MsnpClient, StackOptions, TestStack, tcp_from};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// Logs users in to `stack` by `method`, connecting from `from`.
async fn logon(stack: &TestStack, method: Method, from: &str) -> anyhow::Result<Logon> {
    Logon::new(
        method,
        stack.ns,
        stack.https,
        &stack.ca_cert,
        Some(ip(from)),
    )
    .await
}

/// One address floods the NS and HTTPS listeners with 400 connections, half of them idle and
/// half trickling a byte every 250 ms, and keeps reconnecting; meanwhile a user from another
/// address logs in over MD5 and over Passport, again and again. The flood gets its
/// per-source share and no more, and what it holds is closed at the login deadline (NS) and
/// the connection lifetime (HTTPS). (`relive-bench flood` is the 10,000-connection version,
/// with latency figures.)
#[tokio::test]
async fn a_flood_from_one_address_leaves_md5_and_passport_logins_to_others() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().configure(|c| {
        c.limits.ns_per_source = 16;
        c.limits.http_per_source = 16;
        c.limits.login_timeout_secs = 2;
        c.limits.http_connection_secs = 2;
    }))
    .await?;
    let flooder = ip("127.0.0.1");
    let stop = tokio_util::sync::CancellationToken::new();
    let mut flood = Vec::new();
    for i in 0..400 {
        let addr = if i % 2 == 0 { stack.ns } else { stack.https };
        let trickle = i % 4 < 2;
        let stop = stop.clone();
        flood.push(tokio::spawn(async move {
            let mut held_longest = Duration::ZERO;
            while !stop.is_cancelled() {
                let Ok(mut s) = tcp_from(flooder, addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let connected = Instant::now();
                let mut b = [0u8; 256];
                loop {
                    if trickle && s.write_all(b"\r\n").await.is_err() {
                        break;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return held_longest,
                        read = tokio::time::timeout(Duration::from_millis(250), s.read(&mut b)) => {
                            if matches!(read, Ok(Ok(0) | Err(_))) {
                                break;
                            }
                        }
                    }
                }
                held_longest = held_longest.max(connected.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            held_longest
        }));
    }
    // Let the flood take what it can.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let md5 = logon(&stack, Method::Md5, "127.0.0.2").await?;
    let passport = logon(&stack, Method::Passport, "127.0.0.3").await?;
    let mut slowest = Duration::ZERO;
    let limits = &stack.connection_limits;
    for round in 0..6 {
        for (logon, handle) in [(&md5, ALICE), (&passport, BOB)] {
            let started = Instant::now();
            let mut c = logon
                .login(handle, stack.token(handle))
                .await
                .with_context(|| format!("round {round}: {handle}"))?;
            slowest = slowest.max(started.elapsed());
            c.send_line("OUT").await?;
        }
        ensure!(limits.open_from(Kind::Ns, flooder) <= 16);
        ensure!(limits.open_from(Kind::Https, flooder) <= 16);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.cancel();
    let mut held_longest = Duration::ZERO;
    for task in flood {
        held_longest = held_longest.max(task.await?);
    }
    // The flood was refused most of the time, and nothing it held outlived its deadline
    // (2 s, plus a read interval and a loaded machine's slack).
    ensure!(limits.refused_total() > 1000, "{}", limits.refused_total());
    ensure!(held_longest < Duration::from_secs(6), "{held_longest:?}");
    // Generous for a loaded 2-core CI machine; `relive-bench flood` measures the latency.
    ensure!(
        slowest < Duration::from_secs(10),
        "slowest login {slowest:?}"
    );
    eprintln!(
        "flood: {} connections refused; slowest login of the other user {slowest:?}; longest \
         held {held_longest:?}",
        limits.refused_total()
    );
    Ok(())
}

/// One wrong token a second against each of two accounts for 20 seconds, against Alice from
/// one address (MD5) and against Bob from 20 rotating addresses (Passport `login2.srf`), while
/// both owners log in from their own addresses, alternately over MD5 and Passport, 20 times
/// each: all 40 succeed. The single-address attacker is refused (unchecked) after its first
/// failures; the rotating one only ever slows Bob's account down, by at most `max_delay`.
#[tokio::test]
async fn a_wrong_token_a_second_never_locks_the_owner_out() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast()).await?;
    let max_delay = stack.passport.rate_limiter().settings().max_delay;
    let (da_host, da_path) = stack.da_login().await?;
    let connector = stack.tls_connector()?;
    let limiter = stack.passport.rate_limiter();
    let attack_alice = async {
        let from = ip("127.0.0.66");
        let mut checked = 0;
        for _ in 0..20 {
            let tick = tokio::time::sleep(Duration::from_secs(1));
            checked += usize::from(limiter.check(ALICE, from, stack.passport.now()).is_ok());
            let mut c =
                MsnpClient::connect_from(stack.ns, from, Role::Notification, "mallory").await?;
            let wrong = "0123456789abcdef0123456789abcdef";
            let failed = relive_tests::stack::login_md5(&mut c, 7, ALICE, wrong).await;
            ensure!(failed.is_err(), "a wrong MD5 answer logged in");
            tick.await;
        }
        // Now the guesser is refused for Alice without being checked, even with the right
        // token, on every path (its spacing has grown to 16 s); Alice from her address is not.
        let now = stack.passport.now();
        ensure!(limiter.check(ALICE, from, now).is_err());
        ensure!(
            limiter
                .check(ALICE, ip("127.0.0.2"), now)
                .is_ok_and(|d| d <= max_delay)
        );
        anyhow::Ok(checked)
    };
    let attack_bob = async {
        let mut refused = 0;
        for i in 0..20u8 {
            let tick = tokio::time::sleep(Duration::from_secs(1));
            let from = IpAddr::from([127, 0, 1, 10 + i]);
            let mut tls =
                relive_tests::http::connect_tls_from(&connector, stack.https, Some(from)).await?;
            let request =
                relive_tests::stack::login2_request(&da_host, &da_path, BOB, "WRONGTOKEN12345", "");
            let res = relive_tests::http::exchange(&mut tls, request.as_bytes()).await?;
            ensure!(
                res.status_line != "HTTP/1.1 200 OK",
                "a wrong token got a ticket"
            );
            refused += usize::from(res.status_line.contains("503"));
            tick.await;
        }
        anyhow::Ok(refused)
    };
    let owner = |handle: &'static str, from: &'static str| {
        let stack = &stack;
        async move {
            let md5 = logon(stack, Method::Md5, from).await?;
            let passport = logon(stack, Method::Passport, from).await?;
            let (mut ok, mut slowest) = (0, Duration::ZERO);
            for i in 0..20 {
                let tick = tokio::time::sleep(Duration::from_secs(1));
                let logon = if i % 2 == 0 { &md5 } else { &passport };
                let started = Instant::now();
                let mut c = logon
                    .login(handle, stack.token(handle))
                    .await
                    .with_context(|| format!("{handle}'s login {i}"))?;
                slowest = slowest.max(started.elapsed());
                c.send_line("OUT").await?;
                ok += 1;
                tick.await;
            }
            anyhow::Ok((ok, slowest))
        }
    };
    let (a, b, alice, bob) = tokio::join!(
        attack_alice,
        attack_bob,
        owner(ALICE, "127.0.0.2"),
        owner(BOB, "127.0.0.3")
    );
    let single_checked = a?;
    let rotating_refused = b?;
    let (alice_ok, alice_slowest) = alice?;
    let (bob_ok, bob_slowest) = bob?;
    ensure!(alice_ok == 20 && bob_ok == 20, "{alice_ok}/20, {bob_ok}/20");
    // The single-address guesser had 6 of its 20 guesses checked (3 at full speed, then
    // spaced 2, 4, 8 s apart).
    ensure!(single_checked <= 7, "{single_checked} of 20 checked");
    // Each rotating address failed once: none was refused, Bob's account was only slowed.
    ensure!(rotating_refused == 0, "{rotating_refused}");
    ensure!(
        bob_slowest < max_delay + Duration::from_secs(3),
        "{bob_slowest:?}"
    );
    eprintln!(
        "attack: alice {alice_ok}/20 (slowest {alice_slowest:?}; the single-address guesser \
         had {single_checked}/20 guesses checked), bob {bob_ok}/20 (slowest {bob_slowest:?}, \
         account delay at most {max_delay:?})"
    );
    Ok(())
}

/// The replies to `lines` with transaction ids, list versions and the probed handle replaced,
/// so a registered and an unregistered handle can be compared.
async fn replies(c: &mut MsnpClient, handle: &str, lines: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for line in lines {
        let t = c.trid();
        c.send_line(&line.replace("{t}", &t.to_string()).replace("{h}", handle))
            .await?;
        let reply = c.recv_raw().await?.line();
        let normal: Vec<String> = reply
            .split(' ')
            .enumerate()
            .map(|(i, w)| match (i, w) {
                (1, w) if w == t.to_string() => "T".to_owned(),
                (_, w) if w == handle => "H".to_owned(),
                // The list version (after the trid, or after the list kind).
                (2 | 3, w) if w.bytes().all(|b| b.is_ascii_digit()) => "V".to_owned(),
                (_, w) => w.to_owned(),
            })
            .collect();
        out.push(normal.join(" "));
    }
    Ok(out)
}

/// Every list command that names a handle, and a switchboard `CAL`, answer alike for a
/// registered user who is offline and for a handle nobody registered; `SYN` then shows both
/// alike; the agent's token check answers alike too. And lookups are throttled per account:
/// a burst, then the configured rate.
#[tokio::test]
async fn list_commands_and_the_agent_do_not_tell_registered_handles_from_others()
-> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::cast().configure(|c| {
        c.limits.lookup_burst = 20;
        c.limits.lookups_per_minute = 600;
    }))
    .await?;
    let mut alice = stack.login(7, ALICE).await?;
    let script = [
        "ADD {t} FL {h} {h}",
        "ADD {t} FL {h} {h}",
        "ADD {t} FL {h} {h} 9",
        "ADD {t} AL {h} {h}",
        "ADD {t} BL {h} {h}",
        "REA {t} {h} Somebody",
        "REM {t} AL {h}",
        "REM {t} BL {h}",
        "REM {t} FL {h} 0",
        "REM {t} FL {h}",
        "REM {t} FL {h}",
        "ADD {t} FL {h} {h}",
    ];
    let registered = replies(&mut alice, CAROL, &script).await?;
    let unregistered = replies(&mut alice, "nobody@example.com", &script).await?;
    ensure!(
        registered == unregistered,
        "{registered:#?}\n{unregistered:#?}"
    );
    ensure!(registered[0].starts_with("ADD T FL V H"), "{registered:?}");
    // The stored lists (what the next SYN sends) hold both the same way.
    let snapshot = stack.store.list_snapshot(stack.id(ALICE).await?).await?;
    let shown: Vec<String> = snapshot
        .contacts
        .iter()
        .map(|c| {
            let h = c.email.as_str();
            format!(
                "{:?} {} {:?}",
                c.lists,
                c.friendly_name.as_str().replace(h, "H"),
                c.groups
            )
        })
        .collect();
    ensure!(shown.len() == 2 && shown[0] == shown[1], "{shown:#?}");
    // A switchboard CAL: 217 for both.
    relive_tests::stack::change_status(&mut alice, "NLN").await?;
    let mut sb = relive_tests::sb::open(&mut alice, ALICE, "alice_sb").await?;
    let cal = |h: &str| format!("CAL {{t}} {h}");
    let a = replies(&mut sb, CAROL, &[&cal(CAROL)]).await?;
    let b = replies(&mut sb, "nobody@example.com", &[&cal("nobody@example.com")]).await?;
    ensure!(a == b && a[0] == "217 T", "{a:?} {b:?}");
    // The agent's token check: refused alike, and counted alike in the login limiter.
    let auth = relive_server::relay::StoreAuth::new(stack.store.clone(), stack.passport.clone());
    let from = ip("127.0.0.77");
    for handle in [CAROL, "nobody@example.com"] {
        use relive_server::relay::engine::agent_hub::Authenticate as _;
        for _ in 0..3 {
            let user = auth
                .authenticate(&format!("{handle} AAAAAAAAAAAAAAAA"), from)
                .await;
            ensure!(user.is_none());
        }
        let verdict = stack
            .passport
            .rate_limiter()
            .check(handle, from, stack.passport.now());
        ensure!(verdict.is_err(), "{handle}: {verdict:?}");
    }

    // Throttling: 20 at once, then 10 a second. 60 more lookups (ADDs of unregistered
    // handles, one after the other as fast as the answers come) go at the steady rate, and
    // every one is answered like the rest.
    let started = Instant::now();
    let mut answered = Vec::new();
    for i in 0..60 {
        let t = alice.trid();
        alice
            .send_line(&format!("ADD {t} AL probe{i}@example.com probe"))
            .await?;
        let line = alice.recv_raw().await?.line();
        ensure!(line.starts_with(&format!("ADD {t} AL ")), "{i}: {line}");
        answered.push(started.elapsed());
    }
    let total = started.elapsed();
    ensure!(total >= Duration::from_secs(5), "60 lookups in {total:?}");
    let steady = 50.0 / (answered[59] - answered[9]).as_secs_f64();
    ensure!(steady <= 11.0, "{steady:.1} lookups/s after the burst");
    eprintln!("enumeration: 60 ADDs in {total:?}, {steady:.1}/s after the burst (limit 10/s)");
    Ok(())
}
