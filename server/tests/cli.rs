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
