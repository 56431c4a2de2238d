//! Every MSNP line of every conformance transcript decodes as a frame and parses as a typed
//! command or message in the transcript's dialect; literal lines re-encode byte-identically; and
//! decoding gives the same frames for every split of each connection's byte stream.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use relive_msnp::client::{ClientCommand, Role};
use relive_msnp::error::ParseErrorKind;
use relive_msnp::frame::{Direction, Frame, decode};
use relive_msnp::server::ServerMessage;
use relive_msnp::transcript::{Block, Line, Side, Transcript};
use relive_msnp::types::TrId;
use relive_msnp::version::{Capabilities, ProtocolVersion};

fn fixtures() -> Vec<(String, Transcript)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 16,
        "expected the 16 transcripts in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let t = Transcript::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, t)
        })
        .collect()
}

/// The dialect a transcript starts in (a `VER` reply in a block overrides it).
fn default_dialect(file: &str) -> ProtocolVersion {
    let n = match &file[..2] {
        "01" => 2,
        "02" | "10" | "11" | "15" => 7,
        "04" | "16" => 6,
        "14" => 9,
        _ => 8,
    };
    ProtocolVersion::new(n).unwrap()
}

/// Plausible concrete values for the transcripts' dynamic placeholders.
fn subst(name: &str) -> String {
    match name {
        "ns_ip" | "ds_ip" | "sb_ip" => "10.0.0.9".into(),
        "sb_port" => "1864".into(),
        "salt" => "1013928519.693957190".into(),
        n if n.starts_with("md5hex") => "12d89a1b85366cad162178f5de0fff5d".into(),
        "twn_params" => "lc=1033,id=507,tw=40,fs=1,ct=1700000000,kpp=1,kv=5".into(),
        "ticket" | "ticket2" => "t=abc&p=def".into(),
        "v" | "bob_v" | "u32" | "unix_seconds" => "1700".into(),
        "caps" | "bob_caps" | "dave_caps" | "ac" => "268435456".into(),
        n if n.starts_with("cookie") => "1749872034.5837".into(),
        "session_id" => "11752013".into(),
        "download_url" | "info_url" => "http://example.invalid/msn".into(),
        _ => "x".into(),
    }
}

fn is_msnp(block: &Block) -> bool {
    !block.is_http() && !block.conn.contains("msnftp")
}

fn role(conn: &str) -> Role {
    if conn.ends_with("_sb") {
        Role::Switchboard
    } else {
        Role::Notification
    }
}

/// Lines the transcripts show being rejected: (file prefix, line) → (error kind, trid).
fn expected_parse_error(file: &str, text: &str) -> Option<(ParseErrorKind, Option<TrId>)> {
    match (&file[..2], text) {
        ("04", "ADD 25 FL a@b a@b") => Some((ParseErrorKind::BadPassport, Some(TrId(25)))),
        ("09", "CAL 3 not-an-address") => Some((ParseErrorKind::BadPassport, Some(TrId(3)))),
        ("09", "MSG 7 a 4") => Some((ParseErrorKind::BadValue("ack mode"), Some(TrId(7)))),
        _ => None,
    }
}

fn decode_one(bytes: &Bytes, dir: Direction) -> Frame {
    let mut buf = BytesMut::from(&bytes[..]);
    let frame = decode(&mut buf, dir)
        .unwrap_or_else(|e| panic!("{e}: {bytes:?}"))
        .unwrap_or_else(|| panic!("incomplete: {bytes:?}"));
    assert!(buf.is_empty(), "left over after {bytes:?}: {buf:?}");
    frame
}

#[test]
fn every_transcript_line_decodes_parses_and_round_trips() {
    let mut checked = 0;
    let mut literal = 0;
    for (file, t) in fixtures() {
        let mut dialect: HashMap<String, ProtocolVersion> = HashMap::new();
        for block in t.blocks.iter().filter(|b| is_msnp(b)) {
            for line in &block.lines {
                let Line::Command(side, cmd) = line else {
                    continue;
                };
                let at = format!("{file}:{}", cmd.line_no);
                let v = *dialect
                    .entry(block.conn.clone())
                    .or_insert_with(|| default_dialect(&file));
                let caps = Capabilities::for_version(v);
                let bytes = cmd.render(&mut subst);
                let role = role(&block.conn);
                checked += 1;
                match side {
                    Side::Client => {
                        let frame = decode_one(&bytes, Direction::ClientToServer);
                        let parsed = ClientCommand::from_frame(&frame, role, &caps);
                        if let Some((kind, trid)) = expected_parse_error(&file, &cmd.text) {
                            let e = parsed.expect_err(&at);
                            assert_eq!((e.kind, e.trid), (kind, trid), "{at}");
                            continue;
                        }
                        let c = parsed.unwrap_or_else(|e| panic!("{at}: {e:?}"));
                        // `Unknown` keeps only name and trid by design.
                        if !cmd.is_dynamic() && !matches!(c, ClientCommand::Unknown { .. }) {
                            literal += 1;
                            let mut out = BytesMut::new();
                            c.encode(&mut out);
                            assert_eq!(out.freeze(), bytes, "{at}");
                        }
                    }
                    Side::Server => {
                        let frame = decode_one(&bytes, Direction::ServerToClient);
                        let m = ServerMessage::from_frame(&frame, role, &caps)
                            .unwrap_or_else(|e| panic!("{at}: {e:?} in {frame:?}"));
                        if let ServerMessage::Ver { versions, .. } = &m
                            && let Some(v) = versions.first()
                        {
                            dialect.insert(block.conn.clone(), *v);
                        }
                        let mut out = BytesMut::new();
                        m.encode(&caps, &mut out);
                        if !cmd.is_dynamic() {
                            literal += 1;
                            assert_eq!(out.freeze(), bytes, "{at}");
                        } else {
                            // Dynamic lines still re-encode to the same bytes once filled in.
                            assert_eq!(out.freeze(), bytes, "{at} (rendered)");
                        }
                    }
                }
            }
        }
    }
    assert!(
        checked > 300 && literal > 100,
        "checked {checked}, literal {literal}"
    );
}

/// All frames of `bytes`, decoded from one buffer.
fn decode_all(bytes: &[u8], dir: Direction) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = decode(&mut buf, dir).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

/// Frames decoded when the stream arrives in two pieces split at `at`.
fn decode_split(bytes: &[u8], at: usize, dir: Direction) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in [&bytes[..at], &bytes[at..]] {
        buf.extend_from_slice(piece);
        while let Some(f) = decode(&mut buf, dir).unwrap() {
            out.push(f);
        }
    }
    out
}

#[test]
fn every_split_of_every_connection_stream_gives_the_same_frames() {
    for (file, t) in fixtures() {
        let mut streams: HashMap<(String, Side), Vec<u8>> = HashMap::new();
        for block in t.blocks.iter().filter(|b| is_msnp(b)) {
            for line in &block.lines {
                if let Line::Command(side, cmd) = line {
                    let s = streams.entry((block.conn.clone(), *side)).or_default();
                    s.extend_from_slice(&cmd.render(&mut subst));
                }
            }
        }
        for ((conn, side), bytes) in streams {
            let dir = match side {
                Side::Client => Direction::ClientToServer,
                Side::Server => Direction::ServerToClient,
            };
            let whole = decode_all(&bytes, dir);
            for at in 0..=bytes.len() {
                assert_eq!(
                    decode_split(&bytes, at, dir),
                    whole,
                    "{file} {conn} split at {at}"
                );
            }
            // Byte at a time.
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for b in &bytes {
                buf.extend_from_slice(&[*b]);
                while let Some(f) = decode(&mut buf, dir).unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(frames, whole, "{file} {conn} byte at a time");
        }
    }
}
