//! `login`: complete logins per second and their latency, with a fixed number of logins in
//! progress at once, each on a new connection:
//!
//! - `md5`: MSNP7 `VER`/`INF`/`USR MD5 I`/`USR MD5 S md5(challenge ‖ token)` until `USR OK` and
//!   the profile message;
//! - `passport`: MSNP9 `VER`/`CVR`/`USR TWN I`, then a new TLS connection to the HTTPS
//!   listener for `login2.srf` with the token as password, then `USR TWN S <ticket>` until
//!   `USR OK` and the profile (the nexus is asked once, as clients cache it);
//! - `msnp11`: the same as MSN 7.0 does it (`VER MSNP11 MSNP10`, `SBS 0 null` before the
//!   profile), to compare the address-book dialect with MSNP9.
//!
//! Password logins are bounded by bcrypt: the scenario times the configured cost's hash and
//! reports the rate one core can verify.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::Common;
use crate::logon::{Logon, Method};
use crate::report::{Report, Target};
use crate::server::{self, ServerOpts, User};
use crate::stats::Samples;

/// Which login path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// MSNP7 MD5 with tokens.
    Md5,
    /// MSNP9 through Passport (HTTPS `login2.srf` + NS `USR TWN`).
    Passport,
    /// MSNP11 through Passport (as MSN 7.0).
    Msnp11,
    /// MD5 and Passport (MSNP9), one after the other.
    Both,
    /// MD5, Passport (MSNP9) and MSNP11, one after the other.
    All,
}

/// `login` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Login path(s) to measure.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Seconds measured per path.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Logins in progress at once (many clients logging in together, as after a restart).
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Accounts logged in round-robin (more than `concurrency`, so no login replaces another).
    #[arg(long, default_value_t = 2000)]
    accounts: usize,
    /// Contacts per account (loaded at every login).
    #[arg(long, default_value_t = 50)]
    contacts: usize,
}

/// Targets of issue #8.
const TARGET_MD5: f64 = 5_000.0;
const TARGET_PASSPORT: f64 = 2_000.0;
/// MSNP11 logins go the Passport way: the same target as MSNP9 (issue 16: no regression).
const TARGET_MSNP11: f64 = TARGET_PASSPORT;

pub(crate) async fn run(common: &Common, args: Args) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.accounts > args.concurrency,
        "--accounts must exceed --concurrency (a second login of an account closes the first)"
    );
    let mut report = Report::new(
        "login",
        serde_json::json!({
            "mode": format!("{:?}", args.mode).to_lowercase(), "duration_s": args.duration,
            "concurrency": args.concurrency, "accounts": args.accounts,
            "contacts": args.contacts,
            "store": format!("{:?}", common.store).to_lowercase(),
            "store_pool_size": common.store_pool_size,
        }),
    );
    let (server, users) = server::start(
        common,
        &ServerOpts::load(args.concurrency * 4 + 100),
        server::accounts(args.accounts)?,
        server::ring_contacts(args.accounts, args.contacts),
    )
    .await?;
    let users = Rc::new(users);
    let methods: &[Method] = match args.mode {
        Mode::Md5 => &[Method::Md5],
        Mode::Passport => &[Method::Passport],
        Mode::Msnp11 => &[Method::Msnp11],
        Mode::Both => &[Method::Md5, Method::Passport],
        Mode::All => &[Method::Md5, Method::Passport, Method::Msnp11],
    };
    let mut failures = 0;
    for &method in methods {
        // (short name, long name, target) as the figures are named.
        let (short, long, target) = match method {
            Method::Md5 => ("MD5", "MD5 (MSNP7)", TARGET_MD5),
            Method::Passport => ("Passport", "Passport (HTTPS + MSNP9)", TARGET_PASSPORT),
            Method::Msnp11 => ("MSNP11", "Passport (HTTPS + MSNP11)", TARGET_MSNP11),
        };
        let (rate, mut lat, failed, cpu) = measure(method, &args, &server, &users).await?;
        report.check(
            format!("{long} logins"),
            rate,
            "logins/s",
            Target::AtLeast(target),
        );
        report.info(format!("{short} login: server CPU per login"), cpu, "µs");
        report.info(
            format!("{short} login p50 latency"),
            lat.quantile_ms(0.5),
            "ms",
        );
        report.info(
            format!("{short} login p99 latency"),
            lat.quantile_ms(0.99),
            "ms",
        );
        failures += failed;
        // Once, for the first Passport path measured.
        let first_passport = methods
            .iter()
            .find(|m| **m != Method::Md5)
            .is_some_and(|m| *m == method);
        if first_passport {
            report.note(
                "Passport: one new TLS 1.2 connection per login2.srf request (rustls session \
                 resumption as a client that keeps its session cache); the nexus is asked once",
            );
        }
    }
    server.stop(common.keep).await?;
    report.none("failed logins", failures as f64, "logins");

    // Password logins: bcrypt at the configured default cost.
    let cost = relive_server::store::DEFAULT_BCRYPT_COST;
    let hash = bcrypt::hash("bench-password", cost)?;
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        anyhow::ensure!(
            bcrypt::verify("bench-password", &hash)?,
            "bcrypt verify failed"
        );
    }
    let per_hash = started.elapsed().as_secs_f64() / f64::from(rounds);
    report.info("bcrypt cost (default bcrypt_cost)", f64::from(cost), "");
    report.info("bcrypt verify time", per_hash * 1000.0, "ms");
    report.info(
        "password logins per core (bcrypt bound)",
        1.0 / per_hash,
        "logins/s",
    );
    report.note(format!(
        "password logins (accounts that allow them) cost one bcrypt verify each: at cost {cost} \
         about {:.0}/s per core; the token logins above involve no bcrypt",
        1.0 / per_hash
    ));
    report.finish();
    Ok(report)
}

/// Runs `concurrency` login loops for `duration`; returns logins/s, latencies, failures and
/// the server's CPU time per login (µs).
async fn measure(
    method: Method,
    args: &Args,
    server: &server::Server,
    users: &Rc<Vec<User>>,
) -> anyhow::Result<(f64, Samples, usize, f64)> {
    let mode = format!("{method:?}").to_lowercase();
    let logon = Rc::new(crate::logon::to(method, server).await?);
    let next = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0usize));
    let cpu_before = server.cpu_seconds()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (users, next, done, failed, logon) = (
                Rc::clone(users),
                Rc::clone(&next),
                Rc::clone(&done),
                Rc::clone(&failed),
                Rc::clone(&logon),
            );
            let mode = mode.clone();
            tokio::task::spawn_local(async move {
                let mut lat = Samples::default();
                while Instant::now() < deadline {
                    let i = next.get();
                    next.set((i + 1) % users.len());
                    let u = &users[i];
                    let t = Instant::now();
                    let result = login_and_out(&logon, u).await;
                    match result {
                        Ok(()) => {
                            lat.push(t.elapsed());
                            done.set(done.get() + 1);
                        }
                        Err(error) => {
                            if failed.get() < 5 {
                                eprintln!("{mode} login of {} failed: {error:#}", u.handle);
                            }
                            failed.set(failed.get() + 1);
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let lat = crate::stats::watch(
        &format!("[login] {mode:<8}"),
        "logins/s",
        (started, deadline),
        &done,
        &failed,
        workers,
    )
    .await?;
    let rate = done.get() as f64 / started.elapsed().as_secs_f64();
    let cpu = (server.cpu_seconds()? - cpu_before) * 1e6 / done.get().max(1) as f64;
    Ok((rate, lat, failed.get(), cpu))
}

/// One complete login, then `OUT`.
async fn login_and_out(logon: &Logon, u: &User) -> anyhow::Result<()> {
    let mut c = logon.login(&u.handle, &u.token).await?;
    c.send_line("OUT").await?;
    Ok(())
}
