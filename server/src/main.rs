//! `relive-server`: the command line. Parses arguments (clap), sets up logging, and calls the
//! library; nothing else lives here. The flags follow the vocabulary all Relive programs share
//! ([`relive_cli`]): `--data-dir`, the account as the positional `EMAIL`, `-v`/`-q`,
//! `--log-format text|json`, `RUST_LOG` deciding when set.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use relive_cli::{Level, Logging};
use relive_server::config::{self, DEFAULT_DATA_DIR, Overrides, Settings};
use relive_server::http::legacy::{self, LegacyCertPaths, LegacyTls};
use relive_server::secret::{Secret, ServerKey};
use relive_server::store::accounts::encode_friendly_name;
use relive_server::store::{Account, Passport, Store, TokenId, backup, parse_handle};
use relive_server::tls::CertPaths;
use relive_server::{Context, Listeners, data_dir, demo, tls};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Relive: a self-hosted MSN Messenger server.
#[derive(Debug, Parser)]
#[command(name = "relive-server", version, about)]
struct Cli {
    /// Data directory (database, keys, certificates, relive.toml).
    #[arg(long, global = true, env = "RELIVE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[command(flatten)]
    logging: Logging,
    /// Settings over `relive.toml` (every subcommand reads the configuration).
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (first start sets up the data directory).
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage access tokens (what clients log in with).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Check, from this host, what usually stops clients from connecting (run it while the
    /// server runs, with the same flags).
    Doctor,
    /// Exit 0 if the server on this host answers an MSNP `VER` on its NS port (for container
    /// and service-manager health checks).
    Health,
    /// Write a consistent copy of the database to FILE (safe while the server runs). SQLite
    /// store only: with `[store] url` (PostgreSQL) use pg_dump.
    Backup {
        /// Destination file (replaced only once the copy is complete and checked).
        file: PathBuf,
    },
    /// Replace the database with the backup FILE (the server must be stopped; the current
    /// database is kept as relive.db.before-restore). SQLite store only: with `[store] url`
    /// (PostgreSQL) use pg_restore.
    Restore {
        /// A file written by `backup`.
        file: PathBuf,
    },
    /// Copy the data directory's SQLite database (relive.db) into an empty PostgreSQL
    /// database, keeping every id, in one transaction, and verify it table by table (row counts
    /// and SHA-256 digests on both sides). Stop the server first. Then set `[store] url` to the
    /// same URL and keep secret.key: tokens only decrypt with it.
    MigrateStore {
        /// The PostgreSQL database, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or
        /// `?host=/socket/dir`).
        #[arg(long, value_name = "URL")]
        to: String,
        /// Only compare relive.db with the PostgreSQL database (after a copy), writing nothing.
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Create alice@, bob@ and carol@example.com with a token each (if missing) and print them.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account (prompts for the password when interactive).
    Add {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
        /// Friendly name (defaults to the handle).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Delete an account and everything that belongs to it.
    Del {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
    },
    /// Flag an account as admin of the website (its admin pages and `/api/` keys).
    Admin {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
        /// Take the flag away instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Issue a one-time password reset code (24 hours; replaces an earlier one); prints only
    /// the code. Its owner sets a new password with it on the website's /reset page.
    ResetCode {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
    },
    /// Change an account's password.
    Passwd {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; prints only the token on standard output.
    New {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
        /// Device label.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List an account's tokens (never the tokens themselves).
    List {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
    },
    /// Revoke a token.
    Revoke {
        /// The account's handle.
        #[arg(value_parser = parse_handle)]
        email: Passport,
        /// Token id, as shown by `token list`.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Write the local root CA certificate (PEM) to FILE, for clients to trust.
    Export {
        /// Destination, e.g. relive-ca.crt.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.logging.init(Level::Info);
    let result = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(dispatch(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn settings(data_dir: PathBuf, overrides: &Overrides) -> anyhow::Result<Settings> {
    config::resolve(&data_dir, overrides).context("reading configuration")
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let o = &cli.overrides;
    match cli.command {
        Command::Serve(args) => serve(cli.data_dir, o, args).await,
        Command::User(cmd) => {
            let store = open(cli.data_dir, o).await?;
            let result = user(&store, cmd).await;
            store.close().await?;
            result
        }
        Command::Token(cmd) => {
            let store = open(cli.data_dir, o).await?;
            let result = token(&store, cmd).await;
            store.close().await?;
            result
        }
        Command::Backup { file } => {
            let settings = settings(cli.data_dir, o)?;
            sqlite_only(&settings, "backup")?;
            let db = settings.database_path();
            let dest = file.clone();
            let summary = tokio::task::spawn_blocking(move || backup::backup(&db, &dest))
                .await?
                .with_context(|| format!("backing up to {}", file.display()))?;
            eprintln!(
                "wrote {} ({} bytes: {} accounts, {} list entries, {} tokens); keep secret.key \
                 with it: the tokens only decrypt with that key",
                file.display(),
                summary.bytes,
                summary.accounts,
                summary.contacts,
                summary.tokens
            );
            Ok(())
        }
        Command::Restore { file } => restore(cli.data_dir, o, file).await,
        Command::MigrateStore { to, verify } => migrate_store(cli.data_dir, o, to, verify).await,
        Command::Doctor => {
            let settings = settings(cli.data_dir, o)?;
            let checks = relive_server::doctor::run(&settings).await;
            for check in &checks {
                println!("{check}");
            }
            let problems = checks.iter().filter(|c| !c.is_ok()).count();
            if problems > 0 {
                bail!("{problems} problem(s) found");
            }
            println!("no problems found");
            Ok(())
        }
        Command::Health => {
            let settings = settings(cli.data_dir, o)?;
            let check = relive_server::doctor::health(&settings).await;
            println!("{check}");
            if !check.is_ok() {
                bail!("unhealthy");
            }
            Ok(())
        }
        Command::Cert(CertCommand::Export { file }) => {
            let paths = CertPaths::in_data_dir(&cli.data_dir);
            tls::export_ca(&paths, &file)
                .context("exporting the CA certificate (has `serve` run once?)")?;
            eprintln!(
                "wrote {} (SHA-256 {})",
                file.display(),
                tls::fingerprint(&file).context("reading the CA certificate")?
            );
            let legacy = LegacyCertPaths::in_data_dir(&cli.data_dir);
            if legacy.ca_cert.exists() {
                let dest = legacy_export_path(&file);
                std::fs::copy(&legacy.ca_cert, &dest).with_context(|| {
                    format!("writing the legacy CA certificate to {}", dest.display())
                })?;
                eprintln!(
                    "wrote {} (the legacy RSA CA: Windows XP clients on the legacy TLS listener \
                     need it)",
                    dest.display()
                );
            }
            Ok(())
        }
    }
}

/// `FILE` with `-legacy` before its extension (`relive-ca.crt` → `relive-ca-legacy.crt`).
fn legacy_export_path(file: &std::path::Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "relive-ca".into(), std::ffi::OsStr::to_os_string);
    let mut name = stem;
    name.push("-legacy");
    if let Some(ext) = file.extension() {
        name.push(".");
        name.push(ext);
    }
    file.with_file_name(name)
}

/// Refuses `what` (backup, restore) for a PostgreSQL store.
fn sqlite_only(settings: &Settings, what: &'static str) -> anyhow::Result<()> {
    if settings.store_url.is_some() {
        bail!(
            "{what} works on the embedded SQLite store (relive.db) only; this server keeps its \
             data in PostgreSQL ([store] url): use pg_dump / pg_restore"
        );
    }
    Ok(())
}

/// `migrate-store --to URL`: relive.db into PostgreSQL, under the data directory's lock.
async fn migrate_store(
    data_dir: PathBuf,
    o: &Overrides,
    url: String,
    verify_only: bool,
) -> anyhow::Result<()> {
    let settings = settings(data_dir, o)?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let db = settings.database_path();
    if !db.exists() {
        bail!("no SQLite database at {} to copy", db.display());
    }
    // No server may write relive.db while it is copied.
    let _lock = backup::DataDirLock::acquire(&settings.data_dir)
        .context("locking the data directory (stop the server first)")?;
    // The synchronous PostgreSQL client must not run inside the async runtime.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = if verify_only {
            relive_server::store::copy::verify(&db, &url)
        } else {
            relive_server::store::copy::copy_to_postgres(&db, &url)
        };
        let _ = tx.send(result);
    });
    let reports = rx
        .await
        .context("the copy thread stopped")?
        .context(if verify_only {
            "verifying the copy"
        } else {
            "copying relive.db to PostgreSQL (nothing was committed)"
        })?;
    let mut total = 0;
    for table in &reports {
        println!(
            "{:<16} {:>9} rows  sha256 {}",
            table.name, table.rows, table.digest
        );
        total += table.rows;
    }
    if verify_only {
        eprintln!(
            "relive.db and the PostgreSQL database match: {} tables, {total} rows",
            reports.len()
        );
    } else {
        eprintln!(
            "copied and verified {} tables, {total} rows (every id kept). Set `[store] url` (or \
             --store-url) to this URL and keep this data directory's secret.key: tokens only \
             decrypt with it",
            reports.len()
        );
    }
    Ok(())
}

/// `restore FILE`: under the data directory's lock, with its key.
async fn restore(data_dir: PathBuf, o: &Overrides, file: PathBuf) -> anyhow::Result<()> {
    let settings = settings(data_dir, o)?;
    sqlite_only(&settings, "restore")?;
    data_dir::create_dir(&settings.data_dir)?;
    let lock =
        backup::DataDirLock::acquire(&settings.data_dir).context("locking the data directory")?;
    let key = ServerKey::load_or_create(&settings.key_path()).context("loading secret.key")?;
    let db = settings.database_path();
    let src = file.clone();
    let summary = tokio::task::spawn_blocking(move || backup::restore(&src, &db, &key, &lock))
        .await?
        .with_context(|| format!("restoring {}", file.display()))?;
    eprintln!(
        "restored {} ({} accounts, {} list entries, {} tokens); the previous database is \
         relive.db.before-restore",
        file.display(),
        summary.accounts,
        summary.contacts,
        summary.tokens
    );
    Ok(())
}

async fn open(data_dir: PathBuf, o: &Overrides) -> anyhow::Result<Store> {
    let settings = settings(data_dir, o)?;
    data_dir::open_store(&settings)
        .await
        .context("opening the data directory")
}

async fn account(store: &Store, email: &Passport) -> anyhow::Result<Account> {
    store
        .account(email)
        .await?
        .with_context(|| format!("no account {email}"))
}

fn read_password(from_stdin: bool) -> anyhow::Result<Secret> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']);
        return Ok(Secret::new(line.to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal: pass --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let second = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(Secret::new(first))
}

async fn user(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            email,
            name,
            password_stdin,
        } => {
            let name = encode_friendly_name(name.as_deref().unwrap_or(email.as_str()));
            let password = read_password(password_stdin)?;
            store.create_account(&email, &name, password).await?;
            eprintln!("created {email}");
        }
        UserCommand::List => {
            for a in store.accounts().await? {
                println!(
                    "{}\t{}\t{}",
                    a.email,
                    a.friendly_name,
                    format_time(a.created_at)
                );
            }
        }
        UserCommand::Del { email } => {
            store.delete_account(&email).await?;
            eprintln!("deleted {email}");
        }
        UserCommand::Admin { email, revoke } => {
            store.set_admin(&email, !revoke).await?;
            if revoke {
                eprintln!("{email} is no longer an admin");
            } else {
                eprintln!("{email} is an admin: the website shows it the admin pages");
            }
        }
        UserCommand::ResetCode { email } => {
            let (code, expires) = store.create_reset_code(&email).await?;
            eprintln!(
                "reset code for {email}, valid once until {} UTC: its owner types it on /reset",
                format_time(expires)
            );
            println!("{code}");
        }
        UserCommand::Passwd {
            email,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            store.set_password(&email, password).await?;
            eprintln!("password changed for {email}");
        }
    }
    Ok(())
}

async fn token(store: &Store, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::New { email, label } => {
            let account = account(store, &email).await?;
            let new = store.new_token(account.id, &label).await?;
            eprintln!(
                "token {} for {email} (label {label:?}); it is shown only once",
                new.id
            );
            println!("{}", new.token.expose());
        }
        TokenCommand::List { email } => {
            let account = account(store, &email).await?;
            println!("id\tlabel\tcreated\tlast used\trevoked");
            for t in store.tokens(account.id).await? {
                let opt = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), format_time);
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.id,
                    if t.label.is_empty() { "-" } else { &t.label },
                    format_time(t.created_at),
                    opt(t.last_used_at),
                    opt(t.revoked_at),
                );
            }
        }
        TokenCommand::Revoke { email, id } => {
            let account = account(store, &email).await?;
            store.revoke_token(account.id, TokenId(id)).await?;
            eprintln!("revoked token {id} of {email}");
        }
    }
    Ok(())
}

async fn serve(data_dir: PathBuf, o: &Overrides, args: ServeArgs) -> anyhow::Result<()> {
    let settings = settings(data_dir, o)?;
    data_dir::create_dir(&settings.data_dir)?;
    // Held until the server exits: `restore` refuses to run under a live server.
    let _lock = backup::DataDirLock::acquire(&settings.data_dir)
        .context("locking the data directory (is another server running on it?)")?;
    raise_fd_limit(settings.max_connections);
    let (store, certs) = data_dir::prepare(&settings)
        .await
        .context("setting up the data directory")?;
    println!("data directory {}", settings.data_dir.display());
    let ca = CertPaths::in_data_dir(&settings.data_dir).ca_cert;
    match certs {
        tls::CertStatus::Created => println!(
            "created a local certificate authority and a certificate for {}; clients must trust \
             {} (`relive-server cert export FILE` copies it)",
            settings.public_host,
            ca.display()
        ),
        tls::CertStatus::Reissued => println!(
            "the public host changed: issued a new server certificate for {} (same CA, \
             clients need nothing new)",
            settings.public_host
        ),
        tls::CertStatus::Loaded => {}
    }
    if args.demo {
        demo_accounts(&store).await?;
    }
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} listener on {addr}"))
    };
    let mut ctx = Context::new(settings.clone(), store).context("setting up Passport")?;
    ctx.https_tls = Some(
        relive_server::http::tls::acceptor(&CertPaths::in_data_dir(&settings.data_dir))
            .context("loading the HTTPS certificate")?,
    );
    let legacy_listener = match settings.passport.legacy_tls {
        Some(addr) => {
            ctx.legacy_tls = Some(legacy_tls(&settings)?);
            Some(bind(addr, "legacy TLS").await?)
        }
        None => None,
    };
    let listeners = Listeners {
        ns: bind(settings.ns, "NS").await?,
        sb: bind(settings.sb, "SB").await?,
        http: bind(settings.http, "HTTP").await?,
        https: bind(settings.https, "HTTPS").await?,
        legacy_tls: legacy_listener,
    };
    for (what, l) in [
        ("NS", Some(&listeners.ns)),
        ("SB", Some(&listeners.sb)),
        ("HTTP", Some(&listeners.http)),
        ("HTTPS", Some(&listeners.https)),
        ("legacy TLS", listeners.legacy_tls.as_ref()),
    ] {
        if let Some(l) = l {
            println!("{what} listening on {}", l.local_addr()?);
        }
    }
    let website = relive_server::passport::Endpoints {
        public_host: settings.public_host.clone(),
        http_port: listeners.http.local_addr()?.port(),
        https_port: listeners.https.local_addr()?.port(),
        legacy_port: None,
    }
    .website();
    println!(
        "certificate authority {} (SHA-256 {}), also at {website}{}",
        ca.display(),
        tls::fingerprint(&ca).context("reading the CA certificate")?,
        relive_server::http::routes::CA_PATH
    );
    // The relay's QUIC socket for companion agents, bound like the TCP listeners.
    let relay_quic = if settings.relay.enabled && settings.relay.public_ip.is_some() {
        let addr = settings.relay.quic;
        let socket = std::net::UdpSocket::bind(addr)
            .with_context(|| format!("binding the relay QUIC socket on {addr}/udp"))?;
        if settings.relay.remote.is_some() {
            println!("relay control connection from {}/udp", socket.local_addr()?);
        } else {
            println!("relay QUIC listening on {}/udp", socket.local_addr()?);
        }
        Some(socket)
    } else {
        None
    };
    let metrics_listener = match settings.metrics {
        Some(addr) => {
            let listener = bind(addr, "metrics").await?;
            println!("metrics listening on {}", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    // Registered before the ready line: a supervisor may signal as soon as it sees it.
    let signals = Signals::register();
    let shutdown = CancellationToken::new();
    // Cluster mode: join before serving (so the first client already counts in the network),
    // then say which peers are live whenever that changes.
    let cluster_tasks = TaskTracker::new();
    relive_server::join_cluster(&mut ctx, &listeners, &cluster_tasks, &shutdown)
        .await
        .context("joining the cluster")?;
    if let Some(cluster) = &ctx.cluster {
        let s = cluster.settings();
        let roles: Vec<&str> = [(s.ds, "ds"), (s.ns, "ns"), (s.sb, "sb")]
            .into_iter()
            .filter_map(|(on, role)| on.then_some(role))
            .collect();
        println!(
            "cluster node {} ({}) of network {} on {}",
            s.node_id,
            roles.join(","),
            s.name,
            s.nats_url
        );
    }
    println!("{}", public_host_line(&settings.public_host));
    if let Some(cluster) = &ctx.cluster {
        cluster_tasks.spawn(print_peers(cluster.watch_peers(), shutdown.clone()));
    }
    if let Some(listener) = metrics_listener {
        let (metrics, stop) = (std::sync::Arc::clone(&ctx.metrics), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = relive_server::metrics::serve(metrics, listener, stop).await {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
    }
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        match signals.wait().await {
            Ok(()) => tracing::info!("signal received, shutting down"),
            Err(error) => tracing::error!(%error, "cannot listen for signals; shutting down"),
        }
        trigger.cancel();
    });
    relive_server::run_with_relay(ctx, listeners, relay_quic, shutdown).await?;
    // The cluster's tasks end with the shutdown, after telling the peers this node leaves.
    cluster_tasks.close();
    cluster_tasks.wait().await;
    Ok(())
}

/// Cluster mode: prints `cluster peers: <ids>` (or `none`) now and whenever a peer joins or
/// leaves, until `shutdown`. Standard output only (a closed one is ignored).
async fn print_peers(
    mut peers: tokio::sync::watch::Receiver<Vec<String>>,
    shutdown: CancellationToken,
) {
    loop {
        let line = {
            let ids = peers.borrow_and_update();
            let count = ids.len();
            match count {
                0 => "cluster peers: none".to_owned(),
                _ => format!("cluster peers: {} ({count})", ids.join(" ")),
            }
        };
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = peers.changed() => if changed.is_err() { break },
        }
    }
}

/// `serve --demo`: creates the demo accounts that are missing and prints their tokens; says
/// which ones already existed (their tokens were printed when they were made).
async fn demo_accounts(store: &Store) -> anyhow::Result<()> {
    let created = demo::seed(store).await?;
    for (email, new) in &created {
        println!("demo account {email} token {}", new.token.expose());
    }
    let existing: Vec<&str> = demo::DEMO_ACCOUNTS
        .iter()
        .map(|(handle, _)| *handle)
        .filter(|handle| !created.iter().any(|(email, _)| email.as_str() == *handle))
        .collect();
    if !existing.is_empty() {
        println!(
            "demo accounts {} already exist, with the tokens printed when they were created \
             (`relive-server token new EMAIL` makes another)",
            existing.join(", ")
        );
    }
    Ok(())
}

/// The start-up line naming the public host, with what it means for who can connect.
fn public_host_line(host: &str) -> String {
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        format!(
            "public host {host}: only clients on this machine can connect; give the name or \
             address other machines reach this one by with --public-host"
        )
    } else {
        format!("public host {host}")
    }
}

/// Raises the open-file soft limit to the hard limit (every connection is a descriptor; the
/// usual soft limit of 1024 would cap the server near 1000 users whatever `max_connections`
/// says), and warns when `max_connections` still does not fit. (Windows has no such limit.)
#[cfg(not(unix))]
const fn raise_fd_limit(_max_connections: usize) {}

/// See the other `raise_fd_limit`.
#[cfg(unix)]
fn raise_fd_limit(max_connections: usize) {
    use relive_server::doctor::FD_RESERVE;
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the open-file limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(FD_RESERVE);
    if now < wanted {
        tracing::warn!(
            limit = now,
            max_connections,
            "the open-file limit is below max_connections + {FD_RESERVE}: connections beyond \
             about {} will fail to be accepted (raise `ulimit -Hn`)",
            now.saturating_sub(FD_RESERVE)
        );
    }
}

/// The legacy listener's acceptor: the configured PEM files, or the generated RSA chain in the
/// data directory (created on first use).
fn legacy_tls(settings: &Settings) -> anyhow::Result<LegacyTls> {
    let p = &settings.passport;
    if let (Some(cert), Some(key)) = (&p.legacy_cert, &p.legacy_key) {
        return LegacyTls::from_files(cert, key).context("loading the legacy TLS certificate");
    }
    let paths = LegacyCertPaths::in_data_dir(&settings.data_dir);
    legacy::ensure_certificates(&paths, &settings.public_host)
        .context("generating the legacy TLS certificates")?;
    LegacyTls::from_files(&paths.chain, &paths.key).context("loading the legacy TLS certificate")
}

/// The shutdown signals, registered at once (a signal that arrives before the handler exists
/// would kill the process with the default action instead of a clean shutdown).
struct Signals {
    #[cfg(unix)]
    term: std::io::Result<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: std::io::Result<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()),
                int: signal(SignalKind::interrupt()),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves on SIGTERM or SIGINT (Ctrl-C elsewhere).
    async fn wait(self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let (mut term, mut int) = (self.term?, self.int?);
            tokio::select! {
                _ = term.recv() => Ok(()),
                _ = int.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn format_time(unix: i64) -> String {
    relive_server::web::format_utc(unix)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn a_loopback_public_host_is_flagged() {
        for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
            assert!(
                public_host_line(host).contains("only clients on this machine"),
                "{host}"
            );
        }
        assert_eq!(
            public_host_line("msn.example.net"),
            "public host msn.example.net"
        );
        assert_eq!(public_host_line("192.168.1.5"), "public host 192.168.1.5");
    }

    #[test]
    fn cli_is_well_formed_and_times_format() {
        Cli::command().debug_assert();
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(951_782_400 + 3_723), "2000-02-29 01:02:03");
        assert_eq!(
            legacy_export_path(std::path::Path::new("/tmp/relive-ca.crt")),
            PathBuf::from("/tmp/relive-ca-legacy.crt")
        );
        assert_eq!(
            legacy_export_path(std::path::Path::new("ca")),
            PathBuf::from("ca-legacy")
        );
    }
}
