//! Every catalog build from MSN 5.0 on (MSNP8 – MSNP12: 5.0, 6.0, 6.1, 6.2, 7.0, 7.5), as a
//! synthetic client ([`synth::msn_client`]: its version, the endpoints it embeds at the
//! catalog's offsets where known, the several-instances byte), and MSN 7.5 with its login DLL
//! ([`synth::msidcrl`]) alone and inside an installer.

use relive_patcher::catalog::{BUILDS, MSIDCRL, POLYGAMY_PATCHED};
use relive_patcher::registry::RegistryChange;
use relive_patcher::scan::{Encoding, Endpoint};
use relive_patcher::{FileKind, Target, Warning, apply, inspect, plan, synth};

fn target() -> Target {
    Target::new("relive.example")
        .unwrap()
        .with_multiple_instances(true)
}

#[test]
fn every_msn5_to_msn75_build_is_named_and_redirected_whole() {
    let t = target();
    let builds: Vec<_> = BUILDS.iter().filter(|b| b.major >= 5).collect();
    assert!(
        ["6.1.0211", "6.2.0205", "7.5.0299"]
            .iter()
            .all(|n| builds.iter().any(|b| b.name == *n))
    );
    for build in builds {
        let exe = synth::msn_client(build);
        assert!(
            inspect(&exe).unwrap().files[0].checksum_ok,
            "{}",
            build.name
        );
        let p = plan(&exe, &t).unwrap();
        let file = &p.files[0];
        assert_eq!(file.build, Some(build.name));
        // Every endpoint the build embeds is rewritten, at the catalog offset where it has one.
        for endpoint in build.embeds {
            let (text, _) = synth::endpoint_string(*endpoint);
            assert!(
                file.edits.iter().any(|e| e.before_text == text),
                "{}: {endpoint} not rewritten: {:?}",
                build.name,
                file.edits
            );
        }
        if let Some(at) = build.ns_host {
            assert!(file.edits.iter().any(|e| e.offset == at), "{}", build.name);
        }
        assert_eq!(
            file.edits.iter().any(|e| e.after == [POLYGAMY_PATCHED]),
            build.polygamy.is_some(),
            "{}",
            build.name
        );
        // Nothing amiss but, for MSN 7.5 alone, the login that lives in msidcrl.dll.
        let expected: Vec<Warning> = build
            .login_dll
            .map(|dll| Warning::LoginElsewhere {
                path: String::new(),
                build: build.name,
                dll,
            })
            .into_iter()
            .chain(
                build
                    .polygamy
                    .is_none()
                    .then(|| Warning::MultipleInstancesUnavailable {
                        path: String::new(),
                        reason: format!("no known offset for {}", build.name),
                    }),
            )
            .collect();
        let mut got = p.warnings.clone();
        got.retain(|w| !matches!(w, Warning::Shorter { .. }));
        got.sort_by_key(|w| format!("{w:?}"));
        let mut want = expected;
        want.sort_by_key(|w| format!("{w:?}"));
        assert_eq!(got, want, "{}", build.name);
        assert_eq!(
            p.registry,
            vec![RegistryChange::clear_msn_messenger_cache()]
        );
        // Applied, the file points at the target and a second plan changes nothing.
        let applied = apply(&exe, &p, &mut |_| {}).unwrap();
        assert!(
            plan(&applied.bytes, &t).unwrap().is_noop(),
            "{}",
            build.name
        );
    }
}

#[test]
fn a_known_build_missing_an_endpoint_it_embeds_is_reported() {
    let mut build = *BUILDS.iter().find(|b| b.name == "6.2.0205").unwrap();
    // The same build with the MsgrConfig URL taken out (a modified client).
    build.embeds = &[
        Endpoint::NotificationServer,
        Endpoint::Gateway,
        Endpoint::Nexus,
    ];
    let exe = synth::msn_client(&build);
    let p = plan(&exe, &target()).unwrap();
    assert!(p.warnings.contains(&Warning::MissingEndpoint {
        path: String::new(),
        build: "6.2.0205",
        endpoint: Endpoint::Config,
    }));
}

#[test]
fn msn75_and_its_msidcrl_in_one_installer_sign_in_at_the_target() {
    let t = target();
    let rst = format!("{}/RST.srf", t.origin(true));
    for name in ["7.5.0299", "7.5.0311", "7.5.0324"] {
        let build = BUILDS.iter().find(|b| b.name == name).unwrap();
        let mut b = cab::CabinetBuilder::new();
        let folder = b.add_folder(cab::CompressionType::MsZip);
        folder.add_file("msnmsgr.exe");
        folder.add_file(MSIDCRL);
        let mut w = b.build(std::io::Cursor::new(Vec::new())).unwrap();
        let members = [synth::msn_client(build), synth::msidcrl()];
        let mut i = 0;
        while let Some(mut f) = w.next_file().unwrap() {
            std::io::Write::write_all(&mut f, &members[i]).unwrap();
            i += 1;
        }
        let cab = w.finish().unwrap().into_inner();
        let sfx = synth::build(&synth::Spec {
            is_64: false,
            text_size: 0x200,
            rdata: Vec::new(),
            version: None,
            cabinet: Some(cab),
        });
        let p = plan(&sfx, &t).unwrap();
        assert_eq!(p.kind, FileKind::SelfExtractor);
        let paths: Vec<&str> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["msnmsgr.exe", MSIDCRL], "{name}");
        assert!(
            !p.warnings
                .iter()
                .any(|w| matches!(w, Warning::LoginElsewhere { .. })),
            "{name}: {:?}",
            p.warnings
        );
        // The DLL's RST.srf URL, ASCII and UTF-16LE, now names the target's HTTPS listener.
        let dll = &p.files[1];
        let mut rewritten: Vec<(Option<Encoding>, &str)> = dll
            .edits
            .iter()
            .map(|e| (e.encoding, e.after_text.as_str()))
            .collect();
        rewritten.sort_by_key(|(e, _)| format!("{e:?}"));
        assert_eq!(
            rewritten,
            [
                (Some(Encoding::Ascii), rst.as_str()),
                (Some(Encoding::Utf16Le), rst.as_str())
            ],
            "{name}"
        );
        assert!(
            p.destinations()
                .iter()
                .any(|d| d.endpoint == Endpoint::Login && d.address == t.origin(true)),
            "{name}"
        );
        // The registry follows the client, not the DLL.
        assert_eq!(
            p.registry,
            vec![RegistryChange::clear_msn_messenger_cache()]
        );
        let applied = apply(&sfx, &p, &mut |_| {}).unwrap();
        assert!(plan(&applied.bytes, &t).unwrap().is_noop(), "{name}");
    }
}
