//! Writes the seed corpora under `fuzz/seeds/<target>/` (committed; small): client and server
//! byte streams of the conformance transcripts, Passport headers, every relay control and
//! agent frame, the file-transfer invitations of the transcripts, and synthetic PE, CAB,
//! self-extractor and MSI files built by the patcher's own synthesiser.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (from the repository root).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use relive_msnp::transcript::{Line, Side, Transcript};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("seed directory");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

/// Concrete values for the transcripts' placeholders.
fn subst(name: &str) -> String {
    match name {
        "salt" => "1013928519.693957190".into(),
        n if n.starts_with("md5hex") => "12d89a1b85366cad162178f5de0fff5d".into(),
        n if n.starts_with("cookie") => "1749872034.5837".into(),
        n if n.ends_with("_ip") => "10.0.0.9".into(),
        "twn_params" => "lc=1033,id=507,tw=40,fs=1,ct=1700000000,kpp=1,kv=5".into(),
        _ => "1700".into(),
    }
}

fn transcripts() {
    let dir = root().join("../tests/fixtures/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("transcripts")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("t");
        let text = std::fs::read_to_string(&path).expect("transcript");
        let transcript = Transcript::parse(&text).expect("a valid transcript");
        let (mut client, mut server, mut invitations) = (Vec::new(), Vec::new(), Vec::new());
        for block in transcript.blocks.iter().filter(|b| !b.is_http()) {
            for line in &block.lines {
                let Line::Command(side, command) = line else {
                    continue;
                };
                let bytes = command.render(&mut subst);
                match side {
                    Side::Client => client.extend_from_slice(&bytes),
                    Side::Server => server.extend_from_slice(&bytes),
                }
                if command.text.starts_with("MSG ")
                    && let Some(payload) = &command.payload
                    && (payload.contains("x-msnmsgrp2p") || payload.contains("msmsgsinvite"))
                {
                    invitations.push(payload.clone());
                }
            }
        }
        // Two bytes of split point first (msnp_client reads them).
        write("msnp_client", stem, &[[7, 0].as_slice(), &client].concat());
        write("msnp_server", stem, &server);
        if !invitations.is_empty() {
            // Room choices (two members, generations, addresses, policy, ports), then the
            // payloads separated by 0xFF, each after its direction/time byte.
            let mut seed = vec![2, 0, 0, 2, 1, 0, 3, 5];
            for (i, p) in invitations.iter().enumerate() {
                seed.push(u8::try_from(i % 2).unwrap_or(0));
                seed.extend_from_slice(p.as_bytes());
                seed.push(0xFF);
            }
            write("invitation_rewrite", stem, &seed);
        }
    }
}

fn passport() {
    for (name, header) in [
        (
            "official",
            "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,\
             sign-in=alice%40example.com,pwd=p%2Cw%25d,lc=1033,id=507,tw=40,fs=1,\
             ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1700000000,kpp=1,kv=5,ver=2.1.0173.1",
        ),
        ("plain", "passport1.4 SIGN-IN=bob@example.com,PWD=secret123"),
        (
            "duplicate",
            "Passport1.4 sign-in=a%40b.com,pwd=x,sign-in=c%40d.com",
        ),
    ] {
        write("passport_header", name, header.as_bytes());
    }
}

fn relay() {
    use relive_relay::control::{self, ToRelay, ToServer};
    use relive_relay::proto::{self, AgentHello, Grant, Open, ToAgent};
    use relive_relay::wire::{Redacted, encode};
    let peer = IpAddr::from([198, 51, 100, 7]);
    let v6: IpAddr = "2001:db8::1".parse().expect("an address");
    // The first byte picks the message type (relay_control: even ToRelay, odd ToServer).
    let to_relay = [
        ToRelay::Hello {
            secret: Redacted(b"0123456789abcdef0123".to_vec()),
        },
        ToRelay::Lease { count: 8 },
        ToRelay::Forward {
            id: 1,
            port: 6891,
            peer,
            target: 6891,
            user: "alice@example.com".into(),
        },
        ToRelay::Rendezvous {
            legs: [(2, 6893, peer), (3, 6894, v6)],
            owner: "bob@example.com".into(),
        },
        ToRelay::Release { id: 1 },
        ToRelay::Verdict {
            request: 5,
            user: Some("alice@example.com".into()),
        },
    ];
    let to_server = [
        ToServer::Welcome,
        ToServer::Leased {
            ports: vec![6891, 6892],
        },
        ToServer::Refused { id: 2 },
        ToServer::Verify {
            request: 5,
            peer,
            credential: Redacted("alice@example.com tok".into()),
        },
        ToServer::Presence {
            user: "alice@example.com".into(),
            online: true,
        },
    ];
    // One seed per message, and one with all of them in a row.
    let frames = |name: &str, selector: u8, frames: Vec<bytes::BytesMut>| {
        let mut stream = vec![selector];
        for (i, bytes) in frames.iter().enumerate() {
            write(
                "relay_control",
                &format!("{name}{i}"),
                &[&[selector][..], bytes].concat(),
            );
            stream.extend_from_slice(bytes);
        }
        write("relay_control", &format!("{name}_stream"), &stream);
    };
    let encoded = |m| encode(m, control::MAX_FRAME).expect("encodes");
    frames("to_relay", 0, to_relay.into_iter().map(encoded).collect());
    let encoded = |m| encode(m, control::MAX_FRAME).expect("encodes");
    frames("to_server", 1, to_server.into_iter().map(encoded).collect());

    let hello = AgentHello {
        token: Redacted("alice@example.com 0123456789abcdef".into()),
    };
    let hello = encode(hello, proto::MAX_FRAME).expect("encodes");
    write("relay_agent", "hello", &[&[0][..], &hello].concat());
    let mut replies = vec![1];
    for message in [
        ToAgent::Welcome {
            user: "alice@example.com".into(),
        },
        ToAgent::Grant(Grant { id: 1, port: 6891 }),
        ToAgent::Grant(Grant { id: 2, port: 7000 }),
        ToAgent::Denied,
    ] {
        replies.extend_from_slice(&encode(message, proto::MAX_FRAME).expect("encodes"));
    }
    write("relay_agent", "to_agent", &replies);
    let open = encode(Open { id: 9 }, proto::MAX_FRAME).expect("encodes");
    write("relay_agent", "open", &[&[2][..], &open].concat());
    write(
        "relay_agent",
        "stream",
        &[&[3][..], &open, b"VER MSNFTP\r\n"].concat(),
    );
}

fn cabinet(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = cab::CabinetBuilder::new();
    b.add_folder(cab::CompressionType::MsZip).add_file(name);
    let mut w = b.build(std::io::Cursor::new(Vec::new())).expect("cabinet");
    while let Some(mut f) = w.next_file().expect("member") {
        std::io::Write::write_all(&mut f, content).expect("member bytes");
    }
    w.finish().expect("cabinet").into_inner()
}

fn msi(cab: &[u8]) -> Vec<u8> {
    use msi::{Column, Insert, Package, PackageType, Value};
    let mut package =
        Package::create(PackageType::Installer, std::io::Cursor::new(Vec::new())).expect("msi");
    package
        .create_table(
            "Media",
            vec![
                Column::build("DiskId").primary_key().int16(),
                Column::build("LastSequence").int16(),
                Column::build("Cabinet").nullable().string(255),
            ],
        )
        .expect("Media table");
    package
        .insert_rows(Insert::into("Media").row(vec![
            Value::Int(1),
            Value::Int(1),
            Value::from("#client.cab"),
        ]))
        .expect("Media row");
    {
        let mut stream = package.write_stream("client.cab").expect("stream");
        std::io::Write::write_all(&mut stream, cab).expect("stream bytes");
    }
    package.flush().expect("flush");
    package.into_inner().expect("msi bytes").into_inner()
}

fn patcher() {
    use relive_patcher::synth::{self, Spec};
    let client = synth::msn6_client();
    write("patcher", "msn6_client.exe", &client);
    let pe64 = synth::build(&Spec {
        is_64: true,
        text_size: 0x200,
        rdata: b"\0messenger.hotmail.com\0".to_vec(),
        version: Some([4, 7, 3001, 0]),
        cabinet: None,
    });
    write("patcher", "msmsgs64.exe", &pe64);
    let cab = cabinet("msnmsgr.exe", &client);
    write("patcher", "client.cab", &cab);
    let sfx = synth::build(&Spec {
        is_64: false,
        text_size: 0x200,
        rdata: Vec::new(),
        version: Some([6, 0, 602, 0]),
        cabinet: Some(cab.clone()),
    });
    write("patcher", "setup_sfx.exe", &sfx);
    write("patcher", "client.msi", &msi(&cab));
}

fn main() {
    transcripts();
    passport();
    relay();
    patcher();
    eprintln!("seeds written to {}", root().join("seeds").display());
}
