//! Runs the built `relive-server` binary against a temporary data directory.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
    run(&data, &["user", "del", "alice@example.com"], None);
    assert_eq!(stdout(&run(&data, &["user", "list"], None)), "");
}

/// Runs `serve` on loopback port-0 listeners until it prints its public host, then stops it;
/// returns what it printed (stdout) and logged (stderr, at info level).
fn serve_until_ready(data_dir: &Path, args: &[&str]) -> (String, String) {
    use std::io::{BufRead as _, BufReader, Read as _};
    let mut child = Command::new(env!("CARGO_BIN_EXE_relive-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--ns", "127.0.0.1:0", "--sb", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
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
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let mut logged = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut logged)
        .expect("reading stderr");
    let status = child.wait().expect("the server exits");
    assert!(status.success(), "serve failed: {printed}\n{logged}");
    (printed, logged)
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
