//! Runs the built `relive-server` binary against a temporary data directory.

use rustls::pki_types::pem::PemObject as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The rule for tests that need a system tool (fail in CI, skip elsewhere), shared with the
/// other crates' tests.
#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/src/tool.rs"]
mod tool;

fn run(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relive-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        // A low cost keeps the test fast; it also exercises the env layer.
        .env("RELIVE_BCRYPT_COST", "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("writing stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("the binary runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

#[test]
fn user_and_token_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    run(
        &data,
        &[
            "user",
            "add",
            "Alice@Example.com",
            "--name",
            "Alice A",
            "--password-stdin",
        ],
        Some("s3cret\n"),
    );
    let users = stdout(&run(&data, &["user", "list"], None));
    assert!(
        users.starts_with("alice@example.com\tAlice%20A\t"),
        "{users}"
    );

    let new = stdout(&run(
        &data,
        &["token", "new", "alice@example.com", "--label", "xp-vm"],
        None,
    ));
    let lines: Vec<_> = new.lines().collect();
    assert_eq!(lines.len(), 1, "{new:?}");
    let token = lines[0];
    assert_eq!(token.len(), 16);
    assert!(
        token
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
    );

    let listed = stdout(&run(&data, &["token", "list", "alice@example.com"], None));
    assert!(!listed.contains(token));
    let row: Vec<_> = listed.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!((row[0], row[1], row[3], row[4]), ("1", "xp-vm", "-", "-"));

    run(&data, &["token", "revoke", "alice@example.com", "1"], None);
    let listed = stdout(&run(&data, &["token", "list", "alice@example.com"], None));
    let row: Vec<_> = listed.lines().nth(1).unwrap().split('\t').collect();
    assert_ne!(row[4], "-", "revocation time missing: {listed}");

    // Revoking again fails with a message and a non-zero status.
    let again = Command::new(env!("CARGO_BIN_EXE_relive-server"))
        .arg("--data-dir")
        .arg(&data)
        .args(["token", "revoke", "alice@example.com", "1"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("error:"));

    run(
        &data,
        &["user", "passwd", "alice@example.com", "--password-stdin"],
        Some("other\n"),
    );
    // A reset code for the website's /reset: only the code on standard output.
    let printed = stdout(&run(
        &data,
        &["user", "reset-code", "alice@example.com"],
        None,
    ));
    let lines: Vec<_> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "{printed:?}");
    assert_eq!(
        lines[0].chars().filter(char::is_ascii_hexdigit).count(),
        32,
        "{printed:?}"
    );
    run(&data, &["user", "del", "alice@example.com"], None);
    assert_eq!(stdout(&run(&data, &["user", "list"], None)), "");
}

/// A `serve` process on loopback port-0 listeners.
struct Serving {
    child: std::process::Child,
}

impl Serving {
    /// Starts `serve` and waits until it prints its public host; returns what it printed.
    fn start(data_dir: &Path, args: &[&str]) -> (Self, String) {
        use std::io::{BufRead as _, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_relive-server"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--ns", "127.0.0.1:0", "--sb", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
            .args(["--metrics", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("RELIVE_BCRYPT_COST", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut printed = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).expect("reading stdout") == 0 {
                break;
            }
            printed.push_str(&line);
            if line.starts_with("public host") {
                break;
            }
        }
        (Self { child }, printed)
    }

    /// The address a listener printed it listens on (`NS listening on ADDR`).
    fn address(printed: &str, what: &str) -> String {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{what} listening on ")))
            .unwrap_or_else(|| panic!("no {what} address in {printed}"))
            .to_owned()
    }

    /// Stops the server with SIGTERM; what it logged (standard error).
    fn stop(mut self) -> String {
        use std::io::Read as _;
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM is sent");
        let mut logged = String::new();
        self.child
            .stderr
            .take()
            .expect("stderr is piped")
            .read_to_string(&mut logged)
            .expect("reading stderr");
        let status = self.child.wait().expect("the server exits");
        assert!(status.success(), "serve failed: {logged}");
        logged
    }
}

/// Runs `serve` until it is ready, then stops it; what it printed and logged.
fn serve_until_ready(data_dir: &Path, args: &[&str]) -> (String, String) {
    let (server, printed) = Serving::start(data_dir, args);
    (printed, server.stop())
}

#[test]
fn first_start_and_demo_rerun_say_what_happened_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The relay's QUIC socket would bind its fixed default port otherwise.
    std::fs::write(
        data.join("relive.toml"),
        "[relay]\nquic = \"127.0.0.1:0\"\n",
    )
    .unwrap();

    let (first, logged) = serve_until_ready(&data, &["--demo"]);
    assert!(
        !first.contains("Created") && !first.contains("certificates:"),
        "{first}"
    );
    let ca = data.join("tls").join("relive-ca.crt");
    assert!(ca.exists());
    assert!(
        first.contains("created a local certificate authority")
            && first.contains(&ca.display().to_string()),
        "{first}"
    );
    for handle in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        assert!(
            first.contains(&format!("demo account {handle} token ")),
            "{first}"
        );
    }
    // Every start names the CA with the fingerprint a user compares before trusting it, and
    // the URL it is published at (the desktop app downloads it from there).
    let pem = std::fs::read(&ca).unwrap();
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    let fingerprint: Vec<String> = ring::digest::digest(&ring::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let ca_line = first
        .lines()
        .find(|l| l.starts_with("certificate authority "))
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        ca_line.contains(&format!("(SHA-256 {})", fingerprint.join(":")))
            && ca_line.contains("also at http://127.0.0.1:")
            && ca_line.ends_with("/relive-ca.crt"),
        "{ca_line}"
    );
    assert!(
        first.contains("public host 127.0.0.1: only clients on this machine can connect"),
        "{first}"
    );
    // The default relay range has no PortX pairs: nothing the operator could act on is logged.
    assert!(
        !logged.contains("0x3141") && !logged.contains("WARN"),
        "{logged}"
    );
    // The files the README's data-directory table names are where it says.
    for file in [
        "relive.db",
        "relive.toml",
        "secret.key",
        "tls/relive-ca.crt",
        "tls/ca.key",
        "tls/server.crt",
        "tls/server.key",
        "relive.lock",
    ] {
        assert!(data.join(file).exists(), "{file} missing");
    }

    let (again, _) = serve_until_ready(&data, &["--demo", "--public-host", "msn.example.net"]);
    assert!(
        !again.contains("@example.com token "),
        "no token is printed twice: {again}"
    );
    assert!(
        again.contains(
            "demo accounts alice@example.com, bob@example.com, carol@example.com already exist"
        ),
        "{again}"
    );
    assert!(
        again.contains("issued a new server certificate for msn.example.net")
            && again.contains("public host msn.example.net\n"),
        "{again}"
    );
}

/// Runs the binary on `data_dir` with `args`; its status and standard error.
fn run_status(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_relive-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A store on `data_dir`, as the server opens it (same key file, same database file).
async fn open_store(data_dir: &Path) -> relive_server::store::Store {
    use relive_server::secret::ServerKey;
    use relive_server::store::{Store, StoreOptions};
    std::fs::create_dir_all(data_dir).expect("creating the data directory");
    let key = ServerKey::load_or_create(&data_dir.join("secret.key")).expect("the key");
    let options = StoreOptions {
        bcrypt_cost: 4,
        ..StoreOptions::default()
    };
    Store::open(&data_dir.join("relive.db"), key, options)
        .await
        .expect("the store opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_to_the_same_lists() {
    use relive_server::store::seed::SeedAccount;
    use relive_server::store::{ListKind, parse_handle};

    // Within the default forward-list limit (300).
    const CONTACTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open_store(&data).await;
    let accounts = (0..=CONTACTS)
        .map(|i| SeedAccount {
            email: parse_handle(&format!("user{i}@example.com")).unwrap(),
            friendly_name: format!("User{i}"),
        })
        .collect();
    let seeded = store.seed(accounts, Vec::new(), "seed").await.unwrap();
    let owner = seeded[0].id;

    // The writer: user0 adds user1, user2, ... one acknowledged change after another.
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            for i in 1..=CONTACTS {
                let contact = parse_handle(&format!("user{i}@example.com")).unwrap();
                store
                    .add_to_list(owner, ListKind::Fl, &contact, "x", None)
                    .await
                    .unwrap();
            }
        }
    });
    while store.list_snapshot(owner).await.unwrap().contacts.len() < CONTACTS / 4 {
        tokio::task::yield_now().await;
    }
    let acked_before = store.list_snapshot(owner).await.unwrap().contacts.len();
    let loaded = dir.path().join("under-load.db");
    let (ok, err) = tokio::task::spawn_blocking({
        let (data, loaded) = (data.clone(), loaded.clone());
        move || run_status(&data, &["backup", loaded.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    let acked_after = store.list_snapshot(owner).await.unwrap().contacts.len();
    writer.await.unwrap();
    let final_lists = store.list_snapshot(owner).await.unwrap();
    assert_eq!(final_lists.contacts.len(), CONTACTS);
    store.close().await.unwrap();

    // A quiet backup of the final state, and one taken while the writer ran.
    let quiet = dir.path().join("quiet.db");
    let (ok, err) = run_status(&data, &["backup", quiet.to_str().unwrap()]);
    assert!(
        ok && err.contains("301 accounts, 600 list entries, 301 tokens"),
        "{err}"
    );

    // Restore the one taken under load: a snapshot of one moment, every change acknowledged
    // before the backup started is in it, and the list version counts exactly its changes.
    let (ok, err) = run_status(&data, &["restore", loaded.to_str().unwrap()]);
    assert!(ok, "{err}");
    let store = open_store(&data).await;
    let restored = store.list_snapshot(owner).await.unwrap();
    let n = restored.contacts.len();
    eprintln!("backup under load: {acked_before} ≤ {n} ≤ {acked_after} of {CONTACTS}");
    assert!(
        (acked_before..=acked_after).contains(&n),
        "{acked_before} ≤ {n} ≤ {acked_after}"
    );
    let expected: Vec<String> = (1..=n).map(|i| format!("user{i}@example.com")).collect();
    let mut got: Vec<String> = restored
        .contacts
        .iter()
        .map(|c| c.email.as_str().to_owned())
        .collect();
    got.sort_by_key(|h| h[4..h.find('@').unwrap()].parse::<usize>().unwrap());
    assert_eq!(
        got, expected,
        "the restored list is not a prefix of the writes"
    );
    assert_eq!(restored.version, u32::try_from(n).unwrap());
    store.close().await.unwrap();

    // While a server holds the data directory, restore refuses and changes nothing.
    let lock = relive_server::store::backup::DataDirLock::acquire(&data).unwrap();
    let (ok, err) = run_status(&data, &["restore", quiet.to_str().unwrap()]);
    assert!(!ok && err.contains("a server is running"), "{err}");
    drop(lock);

    // Restoring the quiet backup gives back exactly the final lists.
    let (ok, err) = run_status(&data, &["restore", quiet.to_str().unwrap()]);
    assert!(ok, "{err}");
    let store = open_store(&data).await;
    assert_eq!(store.list_snapshot(owner).await.unwrap(), final_lists);
    store.close().await.unwrap();
    assert!(data.join("relive.db.before-restore").exists());

    // Under another data directory's key the tokens would not decrypt: refused.
    let elsewhere = dir.path().join("elsewhere");
    open_store(&elsewhere).await.close().await.unwrap();
    let (ok, err) = run_status(&elsewhere, &["restore", quiet.to_str().unwrap()]);
    assert!(!ok && err.contains("secret.key"), "{err}");
}

#[test]
fn json_logs_are_one_object_per_line_and_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("relive.toml"),
        "[relay]\nquic = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let (printed, logged) = serve_until_ready(&data, &["--demo", "--log-format", "json"]);
    let lines: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    // The start-up events are there, as objects with a level and a message.
    assert!(
        lines.iter().any(|v| v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("generated local CA"))),
        "{logged}"
    );
    assert!(lines.iter().all(|v| v["level"].is_string()));
    // The demo tokens went to standard output only.
    let tokens: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.split_once(" token ").map(|(_, t)| t))
        .collect();
    assert_eq!(tokens.len(), 3, "{printed}");
    for token in tokens {
        assert!(!logged.contains(token), "a token is in the logs");
    }
}

#[test]
fn doctor_checks_a_running_server_and_names_each_problem_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A free UDP port for the relay's QUIC socket, and a free TCP port as its range.
    let quic = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let range = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = format!(
        "[relay]\nquic = \"{quic}\"\nbind_ip = \"127.0.0.1\"\nport_min = {range}\nport_max = {range}\n"
    );
    std::fs::write(data.join("relive.toml"), &relay).unwrap();
    let (server, printed) = Serving::start(&data, &[]);
    let flag = |what: &str| Serving::address(&printed, what);
    let (ns, sb, http, https) = (flag("NS"), flag("SB"), flag("HTTP"), flag("HTTPS"));
    let doctor = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_relive-server"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "doctor", "--ns", &ns, "--sb", &sb, "--http", &http, "--https", &https,
            ])
            .args(extra)
            .output()
            .expect("doctor runs")
    };
    let output = doctor(&[]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    for seen in [
        "ok       notification server (MSNP): ",
        "answers VER: VER 1 MSNP8",
        "ok       switchboard: ",
        "ok       HTTP (Passport nexus): ",
        "ok       HTTPS (Passport login): ",
        "certificate valid for 127.0.0.1",
        "ok       secret.key: mode 600",
        &format!("ok       relay QUIC: UDP {quic} is held"),
        "ok       relay ports: 1 of 1 TCP ports free for transfers",
        "ok       disk space: ",
        "ok       open-file limit: ",
    ] {
        assert!(report.contains(seen), "{seen:?} missing from\n{report}");
    }
    // The default public host and relay IP are loopback: two problems, each with its fix.
    assert!(
        report.contains("PROBLEM  public host: 127.0.0.1 is this machine only")
            && report.contains("PROBLEM  relay: ")
            && report.contains("fix: set public_host"),
        "{report}"
    );
    assert!(!output.status.success());

    // A host the certificate does not name, and a listener that is gone.
    let output = doctor(&["--public-host", "127.0.0.2"]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        report.contains("PROBLEM  HTTPS (Passport login): ")
            && report
                .contains("PROBLEM  certificate names: the server certificate is for 127.0.0.1"),
        "{report}"
    );
    // The CA clients import, named with the thumbprint their certificate dialog shows.
    let ca = data.join("tls").join("relive-ca.crt");
    let thumbprint = report
        .lines()
        .find_map(|l| l.strip_prefix("ok       CA certificate: "))
        .and_then(|l| l.split_once("(SHA-1 "))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(t, _)| t.to_owned())
        .unwrap_or_else(|| panic!("no CA thumbprint in\n{report}"));
    assert_eq!(thumbprint.len(), 59, "{thumbprint}");
    match Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(&ca)
        .output()
    {
        // `SHA1 Fingerprint=AB:…` (OpenSSL 1.1) or `sha1 Fingerprint=AB:…` (OpenSSL 3).
        Ok(out) => assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .split_once('=')
                .map(|(_, t)| t.to_owned()),
            Some(thumbprint),
            "openssl sees another thumbprint"
        ),
        Err(_) if std::env::var_os("CI").is_some() => panic!("openssl is missing (Debian openssl)"),
        Err(_) => eprintln!("not comparing the thumbprint: the openssl command is missing"),
    }
    // The health check a container runs: the NS answers on this host.
    let health = |ns: &str| {
        Command::new(env!("CARGO_BIN_EXE_relive-server"))
            .arg("--data-dir")
            .arg(&data)
            .args(["health", "--ns", ns])
            .output()
            .expect("health runs")
    };
    let healthy = health(&ns);
    assert!(
        healthy.status.success()
            && String::from_utf8_lossy(&healthy.stdout).contains("answers VER: VER 1 MSNP8"),
        "{healthy:?}"
    );
    let logged = server.stop();
    assert!(!logged.contains("panicked"), "{logged}");
    assert!(!health(&ns).status.success(), "healthy without a server");
    let output = doctor(&[]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        report.contains("PROBLEM  notification server (MSNP): nothing answers on 127.0.0.1:")
            && report.contains("fix: start the server")
            && report.contains(&format!(
                "PROBLEM  relay QUIC: nothing listens on UDP {quic}"
            )),
        "{report}"
    );

    // What else goes wrong on hosts: a key others can read, a clock behind the certificates,
    // an open-file limit below max_connections, a lost CA.
    use std::os::unix::fs::PermissionsExt as _;
    let key = data.join("secret.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(data.join("tls").join("server.crt"))
        .unwrap()
        .set_modified(ahead)
        .unwrap();
    std::fs::write(
        data.join("relive.toml"),
        format!("max_connections = 1000000000\n{relay}"),
    )
    .unwrap();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", range));
    std::fs::remove_file(&ca).unwrap();
    let output = doctor(&[]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    for seen in [
        "PROBLEM  secret.key: readable by others (mode 644)",
        &format!("fix: chmod 600 {}", key.display()),
        "PROBLEM  clock: the system clock is behind the server certificate's creation time",
        "PROBLEM  CA certificate: ",
        &format!("PROBLEM  relay ports: all 1 ports {range}-{range} are taken"),
    ] {
        assert!(report.contains(seen), "{seen:?} missing from\n{report}");
    }
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if hard.is_some_and(|h| h < 1_000_000_064) {
        assert!(
            report.contains("PROBLEM  open-file limit: ")
                && report.contains("below max_connections 1000000000 + 64"),
            "{report}"
        );
    }
}

#[test]
fn the_systemd_unit_verifies_and_runs_the_server_as_installed() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contrib/relive-server.service"
    ))
    .unwrap();
    let installed = "/usr/local/bin/relive-server";
    assert!(unit.contains(&format!(
        "ExecStart={installed} --data-dir /var/lib/relive serve"
    )));
    for key in [
        "DynamicUser=yes",
        "StateDirectory=relive",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    if !tool::require(&[("systemd-analyze", "--version", "systemd")]) {
        return;
    }
    // Verified with ExecStart pointing at the binary just built (verify checks it exists).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relive-server.service");
    std::fs::write(
        &path,
        unit.replace(installed, env!("CARGO_BIN_EXE_relive-server")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&output.stderr);
    // Outside a booted systemd (containers, CI) verify also reports that it cannot reach the
    // system manager; only lines about this unit count.
    let about_unit: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains("relive-server.service"))
        .collect();
    assert!(about_unit.is_empty(), "{complaints}");
}

#[test]
fn release_binaries_carry_no_debug_sections() {
    // Shipped binaries were 94 MB, 75 of it debug sections (issue 13): the release profile
    // builds without debug info and strips what the standard library brings.
    let manifest: toml::Table = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")
        .parse::<std::path::PathBuf>()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .unwrap()
        .parse()
        .unwrap();
    let release = &manifest["profile"]["release"];
    assert!(
        release.get("debug").is_none_or(|d| {
            d.as_bool() == Some(false) || d.as_str() == Some("none") || d.as_integer() == Some(0)
        }),
        "{release}"
    );
    let strip = release.get("strip");
    assert!(
        strip.is_some_and(|s| {
            s.as_bool() == Some(true) || matches!(s.as_str(), Some("debuginfo" | "symbols"))
        }),
        "{release}"
    );
}

/// A blocking MSNP connection for the tests below: lines in, lines out.
struct Msnp {
    r: std::io::BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl Msnp {
    /// Logs in over MSNP7 MD5 as `handle` with `token` at `ns`.
    fn login(ns: &str, handle: &str, token: &str) -> Self {
        let stream = std::net::TcpStream::connect(ns).expect("connecting to the NS");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("a read timeout");
        let mut c = Self {
            r: std::io::BufReader::new(stream.try_clone().expect("a second handle")),
            w: stream,
        };
        c.send("VER 1 MSNP7 CVR0");
        assert_eq!(c.line().as_deref(), Some("VER 1 MSNP7"));
        c.send(&format!("USR 2 MD5 I {handle}"));
        let challenge = c.line().expect("the challenge");
        let salt = challenge
            .strip_prefix("USR 2 MD5 S ")
            .expect("an MD5 challenge")
            .to_owned();
        let answer = relive_msnp::auth::md5_response(&salt, token);
        c.send(&format!("USR 3 MD5 S {answer}"));
        let ok = c.line().expect("USR OK");
        assert!(ok.starts_with("USR 3 OK "), "{ok}");
        let profile = c.line().expect("the profile");
        let len: usize = profile
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("the profile's length");
        let mut payload = vec![0; len];
        std::io::Read::read_exact(&mut c.r, &mut payload).expect("the profile");
        c
    }

    fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("sending a line");
    }

    /// The next line without CRLF; `None` at EOF (or a reset).
    fn line(&mut self) -> Option<String> {
        let mut s = String::new();
        match std::io::BufRead::read_line(&mut self.r, &mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s.trim_end_matches("\r\n").to_owned()),
        }
    }
}

/// kill -9 of the server process in the middle of 1,000 list changes (ADD AL of new handles,
/// every tenth a REM AL of the one before), then a restart: every change the server
/// acknowledged is there (and every acknowledged removal gone), whatever was in flight.
#[test]
fn kill_9_under_a_thousand_list_changes_loses_no_acknowledged_change() {
    const CHANGES: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Lookups unthrottled: 1,000 changes from one account in a few seconds.
    std::fs::write(
        data.join("relive.toml"),
        "[relay]\nenabled = false\n[limits]\nlookup_burst = 100000\n",
    )
    .unwrap();
    run(
        &data,
        &["user", "add", "alice@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let token = stdout(&run(&data, &["token", "new", "alice@example.com"], None))
        .trim()
        .to_owned();

    let (mut server, printed) = Serving::start(&data, &[]);
    let ns = Serving::address(&printed, "NS");
    let mut c = Msnp::login(&ns, "alice@example.com", &token);
    let handle = |i: usize| format!("probe{i}@example.com");
    // Change i: trid 10 + i; every tenth removes the handle added just before.
    let change = move |i: usize| {
        if i % 10 == 9 {
            format!("REM {} AL {}", 10 + i, handle(i - 1))
        } else {
            format!("ADD {} AL {} probe", 10 + i, handle(i))
        }
    };
    let mut writer = c.w.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        // In bursts of 20, so the kill comes while changes are still being sent.
        for i in 0..CHANGES {
            // The server may be gone already.
            if writer
                .write_all(format!("{}\r\n", change(i)).as_bytes())
                .is_err()
            {
                break;
            }
            if i % 20 == 19 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    });
    // Acknowledgements until half are in, then SIGKILL, then whatever still arrives.
    let mut acked = std::collections::BTreeSet::new();
    let mut killed = false;
    while let Some(line) = c.line() {
        let mut words = line.split(' ');
        let (Some(command), Some(trid)) = (words.next(), words.next()) else {
            continue;
        };
        if let (true, Ok(trid)) = (command == "ADD" || command == "REM", trid.parse::<usize>()) {
            acked.insert(trid - 10);
        }
        if !killed && acked.len() >= CHANGES / 2 {
            server.child.kill().expect("SIGKILL");
            killed = true;
        }
    }
    assert!(killed, "only {} changes were acknowledged", acked.len());
    assert!(acked.len() < CHANGES, "the kill came after the last change");
    server.child.wait().unwrap();
    sender.join().unwrap();

    // Restart on the same data directory and read the allow list back through SYN.
    let (server, printed) = Serving::start(&data, &[]);
    let ns = Serving::address(&printed, "NS");
    let mut c = Msnp::login(&ns, "alice@example.com", &token);
    c.send("SYN 4 0");
    let mut allowed = std::collections::BTreeSet::new();
    loop {
        let line = c.line().expect("the SYN dump");
        let w: Vec<&str> = line.split(' ').collect();
        if w[0] != "LST" {
            continue;
        }
        // LST trid list ver index total [handle name ...]
        if w[2] == "AL" && w.len() > 6 {
            allowed.insert(w[6].to_owned());
        }
        if w[2] == "RL" && w[4] == w[5] {
            break;
        }
    }
    for &i in &acked {
        if i % 10 == 9 {
            assert!(
                !allowed.contains(&handle(i - 1)),
                "acknowledged removal {i} undone"
            );
        } else if !(i % 10 == 8 && i + 1 < CHANGES) {
            // (An added handle whose removal was sent may be gone; the others must be there.)
            assert!(allowed.contains(&handle(i)), "acknowledged change {i} lost");
        }
    }
    eprintln!(
        "kill -9 after {} acknowledged changes of {CHANGES}: all present after restart ({} \
         handles allowed)",
        acked.len(),
        allowed.len()
    );
    server.stop();
}

#[test]
fn settings_come_from_flags_then_environment_and_help_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = |args: &[&str], cost: &str| {
        Command::new(env!("CARGO_BIN_EXE_relive-server"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("RELIVE_BCRYPT_COST", cost)
            .output()
            .expect("the binary runs")
    };
    // The variable is read (and refused when out of range) ...
    let refused = server(&["user", "list"], "99");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bcrypt_cost"));
    // ... and a flag, in any subcommand's place, beats it.
    assert!(
        server(&["user", "list", "--bcrypt-cost", "4"], "99")
            .status
            .success()
    );
    assert!(
        server(&["--bcrypt-cost", "4", "user", "list"], "99")
            .status
            .success()
    );
    // A value that is no number stops the parse, naming the setting.
    let bad = server(&["user", "list"], "many");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bcrypt-cost"));
    let help = server(&["serve", "--help"], "4");
    let help = String::from_utf8_lossy(&help.stdout);
    for (flag, var) in [
        ("--ns", "RELIVE_NS"),
        ("--max-connections", "RELIVE_MAX_CONNECTIONS"),
    ] {
        assert!(
            help.contains(flag) && help.contains(&format!("[env: {var}")),
            "{help}"
        );
    }
}

/// The PostgreSQL fixture of the tests crate (one throwaway cluster per test process).
#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/src/postgres.rs"]
mod postgres;

#[test]
fn migrate_store_copies_relive_db_and_the_commands_then_work_on_postgres() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run(
        &data,
        &["user", "add", "alice@example.com", "--password-stdin"],
        Some("s3cret\n"),
    );
    run(&data, &["token", "new", "alice@example.com"], None);

    // The copy prints every table with its rows and digest.
    let copied = stdout(&run(&data, &["migrate-store", "--to", &url], None));
    assert!(
        copied
            .lines()
            .any(|l| l.starts_with("accounts ") && l.contains(" 1 rows")),
        "{copied}"
    );
    assert!(
        copied
            .lines()
            .any(|l| l.starts_with("tokens ") && l.contains(" 1 rows")),
        "{copied}"
    );
    let verified = stdout(&run(
        &data,
        &["migrate-store", "--to", &url, "--verify"],
        None,
    ));
    assert_eq!(copied, verified);
    // A second copy is refused: the target is not empty.
    let (ok, err) = run_status(&data, &["migrate-store", "--to", &url]);
    assert!(!ok && err.contains("not empty"), "{err}");

    // The same commands on PostgreSQL see the copied data (the env layer names the store).
    let on_pg = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_relive-server"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("RELIVE_STORE_URL", &url)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
    };
    let users = on_pg(&["user", "list"]);
    assert!(users.status.success());
    assert!(stdout(&users).starts_with("alice@example.com\t"));
    let tokens = on_pg(&["token", "list", "alice@example.com"]);
    assert!(
        tokens.status.success(),
        "{}",
        String::from_utf8_lossy(&tokens.stderr)
    );
    // A header and the one copied token, keeping its id.
    let listed = stdout(&tokens);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.lines().nth(1).is_some_and(|l| l.starts_with("1\t")),
        "{listed}"
    );
    // backup and restore are for relive.db only, and say what to use instead.
    let backup = on_pg(&["backup", "x.db"]);
    assert!(!backup.status.success());
    assert!(String::from_utf8_lossy(&backup.stderr).contains("pg_dump"));
}
