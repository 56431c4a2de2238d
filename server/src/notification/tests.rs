//! Service-level tests of the notification server: a real temp-file store and a real hub, no
//! sockets. Expected lines follow the conformance transcripts (`shared/transcripts/`); dynamic
//! values (challenges, versions, times) are checked by shape or computed.

use tokio::time::{Duration, Instant};

use crate::metrics::{LoginMethod, LoginResult};
use crate::testing::{Harness, account, context, md5hex};

fn strip<'a>(line: &'a str, prefix: &str) -> &'a str {
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
}

#[tokio::test]
async fn msnp2_login_profile_first_generation_syn_chg_png_out() {
    // Transcript 01 (NS part).
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    let mut c = Harness::ns(&ctx);
    assert_eq!(c.send("VER 4 MSNP2 CVR0").await, ["VER 4 MSNP2"]);
    assert_eq!(c.send("INF 5").await, ["INF 5 MD5"]);
    let challenge = c.challenge(6, "alice@example.com").await;
    let (secs, frac) = challenge.split_once('.').unwrap();
    assert!(secs.len() == 10 && frac.len() == 9, "{challenge}");
    let lines = c
        .send(&format!("USR 7 MD5 S {}", md5hex(&challenge, &token)))
        .await;
    assert_eq!(lines[0], "USR 7 OK alice@example.com Alice");
    let len: usize = strip(&lines[1], "MSG Hotmail Hotmail ").parse().unwrap();
    assert_eq!(len, lines[2].len());
    assert!(lines[2].starts_with(
        "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\nLoginTime: "
    ));
    assert!(lines[2].ends_with("\r\n\r\n") && !lines[2].contains("MemberIdHigh"));
    let syn = c.send("SYN 8 0").await;
    // A client sending 0 has no cache: even an empty account at version 0 gets the dump.
    assert_eq!(
        syn,
        [
            "SYN 8 0",
            "GTC 8 0 A",
            "BLP 8 0 AL",
            "LST 8 FL 0 0 0",
            "LST 8 AL 0 0 0",
            "LST 8 BL 0 0 0",
            "LST 8 RL 0 0 0"
        ]
    );
    // A current, non-zero cache gets only the SYN line.
    assert_eq!(c.send("GTC 81 N").await, ["GTC 81 1 N"]);
    assert_eq!(c.send("SYN 82 1").await, ["SYN 82 1"]);
    assert_eq!(c.send("GTC 83 A").await, ["GTC 83 2 A"]);
    // A change bumps the version; a stale cache gets the full first-generation dump.
    assert_eq!(c.send("GTC 9 N").await, ["GTC 9 3 N"]);
    assert_eq!(
        c.send("SYN 10 0").await,
        [
            "SYN 10 3",
            "GTC 10 3 N",
            "BLP 10 3 AL",
            "LST 10 FL 3 0 0",
            "LST 10 AL 3 0 0",
            "LST 10 BL 3 0 0",
            "LST 10 RL 3 0 0"
        ]
    );
    assert_eq!(c.send("CHG 11 NLN").await, ["CHG 11 NLN"]);
    assert_eq!(c.send("PNG").await, ["QNG"]);
    assert_eq!(c.send("OUT").await, ["OUT"]);
    assert!(c.is_closed());
    c.finish();
    assert!(ctx.hub.is_empty());
}

#[tokio::test]
async fn msnp7_login_third_generation_syn_iln_chl_and_late_cvr() {
    // Transcript 02.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |c| c.chl = true).await;
    let alice = account(&ctx, "alice@example.com", "Alice").await;
    let bob = account(&ctx, "bob@example.com", "Bob").await;
    let mut b = Harness::login(&ctx, "MSNP7", "bob@example.com", &bob).await;
    // CHL is on: bob got one after his first CHG; answer it.
    let mut a = Harness::ns(&ctx);
    assert_eq!(
        a.send("VER 4 MSNP7 MSNP6 MSNP5 MSNP4 CVR0").await,
        ["VER 4 MSNP7"]
    );
    let ch = a.challenge(6, "alice@example.com").await;
    let lines = a
        .send(&format!("USR 7 MD5 S {}", md5hex(&ch, &alice)))
        .await;
    assert_eq!(lines[0], "USR 7 OK alice@example.com Alice 1");
    for field in [
        "EmailEnabled: 1\r\n",
        "preferredEmail: alice@example.com\r\n",
        "Flags: 1027\r\n",
        "MSPAuth: ",
    ] {
        assert!(lines[2].contains(field), "{field}");
    }
    assert!(!lines[2].contains("ClientIP"));
    assert_eq!(a.send("ADG 8 Friends 0").await, ["ADG 8 1 Friends 1 0"]);
    assert_eq!(
        a.send("ADD 9 FL bob@example.com Bob 1").await,
        ["ADD 9 FL 2 bob@example.com Bob 1"]
    );
    assert_eq!(
        a.send("ADD 10 AL bob@example.com Bob").await,
        ["ADD 10 AL 3 bob@example.com Bob"]
    );
    assert_eq!(
        a.send("PRP 11 PHH 555%201234").await,
        ["PRP 11 4 PHH 555%201234"]
    );
    // Alice's FL add put her on Bob's RL, and he heard about it.
    assert_eq!(b.events(), ["ADD 0 RL 1 alice@example.com Alice"]);
    b.send("CHG 20 BSY").await;
    assert_eq!(
        a.send("SYN 12 0").await,
        [
            "SYN 12 4",
            "GTC 12 4 A",
            "BLP 12 4 AL",
            "PRP 12 4 PHH 555%201234",
            "PRP 12 4 PHW",
            "PRP 12 4 PHM",
            "PRP 12 4 MOB N",
            "PRP 12 4 MBE N",
            "LSG 12 4 1 2 0 Other%20Contacts 0",
            "LSG 12 4 2 2 1 Friends 0",
            "LST 12 FL 4 1 1 bob@example.com Bob 1",
            "LST 12 AL 4 1 1 bob@example.com Bob",
            "LST 12 BL 4 0 0",
            "LST 12 RL 4 0 0"
        ]
    );
    let chg = a.send("CHG 13 NLN").await;
    assert_eq!(chg[..2], ["CHG 13 NLN", "ILN 13 BSY bob@example.com Bob"]);
    let challenge = strip(&chg[2], "CHL 0 ").to_owned();
    assert_eq!(challenge.len(), 20);
    let answer = md5hex(&challenge, "Q1P7W2E4J9R8U3S5");
    assert_eq!(
        a.send_payload("QRY 14 msmsgs@msnmsgr.com", &answer).await,
        ["QRY 14"]
    );
    assert_eq!(
        a.send("CVR 15 0x0409 win 4.10 i386 MSMSGS 4.6.0083 MSMSGS")
            .await[0],
        "CVR 15 4.6.0083 4.6.0083 4.6.0083 http://127.0.0.1:8080/download http://127.0.0.1:8080/"
    );
    // Bob never answered his challenge: past the deadline he is told OUT and closed.
    assert!(b.svc_deadline_passes(&ctx));
}

impl Harness<super::NsService> {
    /// Fires the timeout handler just after the CHL deadline; true if it sent OUT and closed.
    fn svc_deadline_passes(&mut self, ctx: &crate::Context) -> bool {
        let later = Instant::now() + ctx.settings.chl_timeout + Duration::from_millis(1);
        self.timeout(later) == ["OUT"] && self.is_closed()
    }
}

#[tokio::test]
async fn wrong_chl_answer_is_540_and_close() {
    // Transcript 16.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |c| c.chl = true).await;
    let t = account(&ctx, "alice@example.com", "Alice").await;
    let mut a = Harness::ns(&ctx);
    a.send("VER 1 MSNP6 CVR0").await;
    let ch = a.challenge(2, "alice@example.com").await;
    a.send(&format!("USR 3 MD5 S {}", md5hex(&ch, &t))).await;
    let chg = a.send("CHG 4 NLN").await;
    assert!(chg[1].starts_with("CHL 0 "));
    assert_eq!(
        a.send_payload("QRY 5 msmsgs@msnmsgr.com", &"0".repeat(32))
            .await,
        ["540 5"]
    );
    assert!(a.is_closed());
}

#[tokio::test]
async fn wrong_secret_and_unknown_account_fail_alike_and_close() {
    // Transcript 11 (MD5 part): the same 911 + close whether or not the account exists.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    for handle in ["alice@example.com", "nobody@example.com"] {
        let mut c = Harness::ns(&ctx);
        c.send("VER 1 MSNP7 CVR0").await;
        let first = c.challenge(2, handle).await;
        assert_eq!(
            c.send(&format!(
                "USR 3 MD5 S {}",
                md5hex(&first, "wrongtoken123456")
            ))
            .await,
            ["911 3"]
        );
        assert!(c.is_closed());
    }
    // A fresh challenge every attempt: an old answer does not work again.
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP7 CVR0").await;
    let one = c.challenge(2, "alice@example.com").await;
    let mut d = Harness::ns(&ctx);
    d.send("VER 1 MSNP7 CVR0").await;
    let two = d.challenge(2, "alice@example.com").await;
    assert_ne!(one, two);
    assert_eq!(
        d.send(&format!("USR 3 MD5 S {}", md5hex(&one, &token)))
            .await,
        ["911 3"]
    );
    // The account password is not a login secret; only tokens are.
    let ch = c.challenge(3, "alice@example.com").await;
    assert_eq!(
        c.send(&format!("USR 4 MD5 S {}", md5hex(&ch, "password")))
            .await,
        ["911 4"]
    );
}

#[tokio::test]
async fn ctp_login_checks_the_token_under_msnp2_only() {
    let capture = crate::testing::LogCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP2").await;
    assert_eq!(
        c.send("USR 2 CTP I alice@example.com").await,
        ["USR 2 CTP S"]
    );
    let lines = c.send(&format!("USR 3 CTP S {token}")).await;
    assert_eq!(lines[0], "USR 3 OK alice@example.com Alice");
    assert_eq!(c.send("USR 4 MD5 I alice@example.com").await, ["207 4"]);
    let mut d = Harness::ns(&ctx);
    d.send("VER 1 MSNP3").await;
    assert!(d.send("USR 2 CTP I alice@example.com").await.is_empty());
    assert!(d.is_closed());
    let logins = ctx.passport.logins();
    assert_eq!(logins.count(LoginMethod::Ctp, LoginResult::Ok), 1);
    // The token crossed the wire in clear; neither log format repeats it.
    for logs in [capture.text(), capture.json()] {
        assert!(logs.contains("logged in"), "{logs}");
        assert!(!logs.contains(token.as_str()), "the token is in the logs");
    }
}

#[tokio::test]
async fn login_stage_rules_close_or_answer() {
    // Transcripts 10 and 15.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    let mut c = Harness::ns(&ctx);
    assert_eq!(c.send("VER 1 MSNP99 CVR0").await, ["VER 1 0"]);
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    assert_eq!(c.send("VER 1 MSNP8 CVR0").await, ["VER 1 MSNP8 CVR0"]);
    assert!(c.send("XYZ 2 hello").await.is_empty());
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP7 CVR0").await;
    assert!(c.send("SYN 2 0").await.is_empty());
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP7 CVR0").await;
    assert_eq!(c.send("VER 2 MSNP7 CVR0").await, ["715 2"]);
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP8 CVR0").await;
    assert!(c.send("INF 2").await.is_empty());
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP8 CVR0").await;
    assert!(c.send("RNG 2").await.is_empty());
    assert!(c.is_closed());
    // After login: unknown command closes; a client MSG on the NS closes.
    let mut c = Harness::login(&ctx, "MSNP7", "alice@example.com", &token).await;
    assert!(c.send("XYZ 7 foo bar").await.is_empty());
    assert!(c.is_closed());
    let mut c = Harness::login(&ctx, "MSNP7", "alice@example.com", &token).await;
    assert!(c.send_payload("MSG 7 A", "hi").await.is_empty());
    assert!(c.is_closed());
}

#[tokio::test]
async fn contacts_and_reverse_list_notifications_msnp6() {
    // Transcript 04.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let tb = account(&ctx, "bob@example.com", "Bob").await;
    let mut a = Harness::login(&ctx, "MSNP6", "alice@example.com", &ta).await;
    let mut b = Harness::login(&ctx, "MSNP6", "bob@example.com", &tb).await;
    assert_eq!(
        a.send("ADD 20 FL bob@example.com bob@example.com").await,
        [
            "ADD 20 FL 1 bob@example.com bob@example.com",
            "ILN 20 NLN bob@example.com Bob"
        ]
    );
    assert_eq!(b.events(), ["ADD 0 RL 1 alice@example.com Alice"]);
    assert_eq!(
        b.send("ADD 31 AL alice@example.com Alice").await,
        ["ADD 31 AL 2 alice@example.com Alice"]
    );
    assert_eq!(
        b.send("ADD 32 FL alice@example.com Alice").await,
        [
            "ADD 32 FL 3 alice@example.com Alice",
            "ILN 32 NLN alice@example.com Alice"
        ]
    );
    assert_eq!(a.events(), ["ADD 0 RL 2 bob@example.com Bob"]);
    assert_eq!(
        a.send("ADD 21 AL bob@example.com Bob").await,
        ["ADD 21 AL 3 bob@example.com Bob"]
    );
    assert_eq!(a.send("ADD 22 AL bob@example.com Bob").await, ["215 22"]);
    assert_eq!(a.send("ADD 23 BL bob@example.com Bob").await, ["219 23"]);
    // An unregistered handle is not on the list, as any handle (ADD of one: see
    // `list_commands_answer_alike_for_registered_and_unregistered_handles`).
    assert_eq!(a.send("REM 24 FL nobody@example.com").await, ["216 24"]);
    assert_eq!(a.send("ADD 25 FL a@b a@b").await, ["201 25"]);
    assert_eq!(
        a.send("REM 26 FL bob@example.com").await,
        ["REM 26 FL 4 bob@example.com"]
    );
    assert_eq!(b.events(), ["REM 0 RL 4 alice@example.com"]);
    assert_eq!(a.send("REM 27 BL bob@example.com").await, ["216 27"]);
    assert_eq!(
        a.send("REM 28 AL bob@example.com").await,
        ["REM 28 AL 5 bob@example.com"]
    );
    assert_eq!(
        a.send("ADD 29 BL bob@example.com Bob").await,
        ["ADD 29 BL 6 bob@example.com Bob"]
    );
    // Bob still watches Alice; she now blocks him.
    assert_eq!(b.events(), ["FLN alice@example.com"]);
    // Nobody ever learns the presence or name of someone who blocks them.
    a.send("REA 30 alice@example.com Alice%20Two").await;
    a.send("CHG 31 AWY").await;
    assert!(b.events().is_empty());
    assert!(a.send("ADD 32 RL bob@example.com Bob").await.is_empty());
    assert!(a.is_closed());
    // Versions persisted.
    let alice = ctx
        .store
        .account(&"alice@example.com".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.list_version, 7);
}

#[tokio::test]
async fn groups_and_their_error_codes_msnp7() {
    // Transcript 05's group part, in the MSNP7 dialect.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    account(&ctx, "dave@example.com", "Dave").await;
    let mut a = Harness::login(&ctx, "MSNP7", "alice@example.com", &ta).await;
    assert_eq!(a.send("ADG 20 Work 0").await, ["ADG 20 1 Work 1 0"]);
    assert_eq!(
        a.send("ADD 21 FL dave@example.com dave@example.com 1")
            .await,
        ["ADD 21 FL 2 dave@example.com dave@example.com 1"]
    );
    assert_eq!(
        a.send("ADD 22 FL dave@example.com dave@example.com 0")
            .await,
        ["ADD 22 FL 3 dave@example.com dave@example.com 0"]
    );
    assert_eq!(
        a.send("ADD 23 FL dave@example.com dave@example.com 0")
            .await,
        ["215 23"]
    );
    assert_eq!(
        a.send("ADD 24 FL dave@example.com dave@example.com 31")
            .await,
        ["224 24"]
    );
    assert_eq!(
        a.send("REM 25 FL dave@example.com 1").await,
        ["REM 25 FL 4 dave@example.com 1"]
    );
    assert_eq!(a.send("REM 26 FL dave@example.com 1").await, ["225 26"]);
    assert_eq!(
        a.send("REG 27 1 Colleagues 0").await,
        ["REG 27 5 1 Colleagues 0"]
    );
    assert_eq!(a.send("RMG 28 1").await, ["RMG 28 6 1"]);
    assert_eq!(a.send("RMG 29 0").await, ["230 29"]);
    assert_eq!(a.send("RMG 30 77").await, ["224 30"]);
    let long = "x".repeat(62);
    assert_eq!(a.send(&format!("ADG 31 {long} 0")).await, ["229 31"]);
    for i in 0..29 {
        a.send(&format!("ADG {} g{i} 0", 40 + i)).await;
    }
    assert_eq!(a.send("ADG 99 one-too-many 0").await, ["223 99"]);
    assert_eq!(a.send("GTC 100 A").await, ["218 100"]);
    assert_eq!(a.send("BLP 101 XX").await, ["201 101"]);
    assert_eq!(a.send("LSG 102").await.len(), 30);
    let lst = a.send("LST 103 FL").await;
    assert_eq!(lst.len(), 1);
    assert!(
        lst[0].starts_with("LST 103 FL ")
            && lst[0].ends_with(" 1 1 dave@example.com dave@example.com 0")
    );
}

#[tokio::test]
async fn presence_hidden_rename_block_and_xfr_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let tb = account(&ctx, "bob@example.com", "Bob").await;
    let mut a = Harness::login(&ctx, "MSNP7", "alice@example.com", &ta).await;
    let mut b = Harness::login(&ctx, "MSNP7", "bob@example.com", &tb).await;
    b.send("ADD 10 FL alice@example.com Alice").await;
    a.events();
    // Alice goes hidden: Bob sees FLN; Alice may not open a switchboard.
    a.send("CHG 11 HDN").await;
    assert_eq!(b.events(), ["FLN alice@example.com"]);
    assert_eq!(a.send("XFR 12 SB").await, ["913 12"]);
    assert_eq!(a.send("CHG 13 FLN").await, ["201 13"]);
    a.send("CHG 14 BRB").await;
    assert_eq!(b.events(), ["NLN BRB alice@example.com Alice"]);
    // A new own name reaches the watcher as a fresh NLN.
    assert_eq!(
        a.send("REA 15 alice@example.com Ally").await,
        ["REA 15 2 alice@example.com Ally"]
    );
    assert_eq!(b.events(), ["NLN BRB alice@example.com Ally"]);
    // BLP BL hides Alice from Bob (not on her AL), BLP AL shows her again.
    assert_eq!(a.send("BLP 16 BL").await, ["BLP 16 3 BL"]);
    assert_eq!(b.events(), ["FLN alice@example.com"]);
    a.send("BLP 17 AL").await;
    assert_eq!(b.events(), ["NLN BRB alice@example.com Ally"]);
    // XFR SB: a cookie, and never the same one twice.
    let x1 = a.send("XFR 18 SB").await;
    let x2 = a.send("XFR 19 SB").await;
    assert!(x1[0].starts_with("XFR 18 SB 127.0.0.1:1864 CKI "));
    assert_ne!(x1[0].rsplit(' ').next(), x2[0].rsplit(' ').next());
    // Disconnecting sends FLN.
    a.finish();
    assert_eq!(b.events(), ["FLN alice@example.com"]);
}

#[tokio::test]
async fn duplicate_login_kicks_the_old_session_with_out_oth() {
    // Transcript 12 (MSNP7 instead of TWN).
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    let mut first = Harness::login(&ctx, "MSNP7", "alice@example.com", &ta).await;
    let mut second = Harness::login(&ctx, "MSNP7", "alice@example.com", &ta).await;
    assert_eq!(first.events(), ["OUT OTH"]);
    assert!(first.is_closed());
    // The old connection ending must not unregister the new one.
    first.finish();
    assert_eq!(ctx.hub.len(), 1);
    assert_eq!(second.send("PNG").await, ["QNG"]);
}

#[tokio::test]
async fn shutdown_says_out_ssd_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let mut c = Harness::ns(&ctx);
    assert_eq!(c.shutdown(), ["OUT SSD"]);
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    let soon = Instant::now() + Duration::from_secs(1);
    assert!(c.timeout(soon).is_empty() && !c.is_closed());
    let later = Instant::now() + ctx.settings.ns_idle_timeout + Duration::from_secs(1);
    c.timeout(later);
    assert!(c.is_closed());
}

#[tokio::test]
async fn fnd_searches_only_opted_in_accounts_and_misc_commands_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let ta = account(&ctx, "alice@example.com", "Alice").await;
    account(&ctx, "bob@example.com", "Bob%20Smith").await;
    account(&ctx, "bobby@example.com", "Bobby%20Hidden").await;
    ctx.store
        .set_searchable(&"bob@example.com".parse().unwrap(), true)
        .await
        .unwrap();
    let mut a = Harness::login(&ctx, "MSNP7", "alice@example.com", &ta).await;
    assert_eq!(
        a.send("FND 20 fname=bob lname=* city=* state=* country=*")
            .await,
        ["FND 20 1 1 fname=Bob%20Smith lname=* city=* state=* country=*"]
    );
    assert_eq!(
        a.send("FND 21 fname=bob lname=* city=Paris state=* country=*")
            .await,
        ["FND 21 0 0"]
    );
    assert_eq!(
        a.send_payload(
            "SDC 22 carol@example.com 0x0409 MSMSGS MSMSGS X X Alice",
            "hi"
        )
        .await,
        ["SDC 22 OK"]
    );
    assert_eq!(a.send("IMS 23 OFF").await, ["IMS 23 0 OFF"]);
    assert_eq!(
        a.send("URL 24 INBOX").await,
        ["URL 24 http://127.0.0.1:8080/mail http://127.0.0.1:8080/ 2"]
    );
    // A page whose body is not the page XML (and to a contact who does not allow pages).
    assert_eq!(
        a.send_payload("PAG 25 bob@example.com", "hi").await,
        ["800 25"]
    );
}

#[tokio::test]
async fn ns_referral_when_a_separate_host_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |c| {
        c.ns_referral_host = Some("ns2.example.com".to_owned());
    })
    .await;
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP2 CVR0").await;
    assert_eq!(
        c.send("USR 3 MD5 I alice@example.com").await,
        ["XFR 3 NS ns2.example.com:1863"]
    );
    assert!(c.is_closed());
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP7 CVR0").await;
    assert_eq!(
        c.send("USR 3 MD5 I alice@example.com").await,
        ["XFR 3 NS ns2.example.com:1863 0 127.0.0.1:1863"]
    );
}

/// A context whose Passport clock the test moves forward by hand.
async fn clocked_context(
    dir: &std::path::Path,
) -> (
    crate::Context,
    std::sync::Arc<std::sync::Mutex<std::time::Duration>>,
) {
    use std::sync::{Arc, Mutex};
    let mut config = crate::config::Config::default();
    // This test counts tickets, not failures.
    config.passport.login_slow_after = 1000;
    config.passport.login_refuse_after = 1000;
    let settings = config.validate(dir.to_path_buf()).unwrap();
    let store = crate::store::test_support::file_store(dir).await;
    let offset = Arc::new(Mutex::new(std::time::Duration::ZERO));
    let start = std::time::Instant::now();
    let clock_offset = Arc::clone(&offset);
    let clock: crate::passport::Clock = Arc::new(move || start + *clock_offset.lock().unwrap());
    let passport =
        crate::passport::PassportService::with_clock(store.clone(), &settings.passport, clock);
    let ctx = crate::Context::with_passport(settings, store, passport).unwrap();
    (ctx, offset)
}

/// A ticket from `login2.srf`'s service for `handle` with `token`.
async fn ticket(ctx: &crate::Context, handle: &str, token: &str) -> String {
    let credentials = crate::passport::Credentials::from_authorization(&format!(
        "Passport1.4 OrgVerb=GET,sign-in={handle},pwd={token}"
    ))
    .unwrap();
    ctx.passport
        .login(
            &credentials,
            "198.51.100.7".parse().unwrap(),
            crate::passport::Transport::Tls,
        )
        .await
        .unwrap()
        .expose()
        .to_owned()
}

/// `VER`, `CVR`, `USR TWN I` in dialect `msnp`; returns the connection awaiting `USR TWN S`.
async fn twn_start(ctx: &crate::Context, msnp: &str, handle: &str) -> Harness<super::NsService> {
    let mut c = Harness::ns(ctx);
    assert_eq!(
        c.send(&format!("VER 1 {msnp} CVR0")).await,
        [format!("VER 1 {msnp} CVR0")]
    );
    let cvr = c
        .send(&format!(
            "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS {handle}"
        ))
        .await;
    assert!(
        cvr[0].starts_with("CVR 2 6.0.0602 6.0.0602 6.0.0602 "),
        "{cvr:?}"
    );
    let usr = c.send(&format!("USR 3 TWN I {handle}")).await;
    let params = strip(&usr[0], "USR 3 TWN S ");
    let keys: Vec<&str> = params
        .split(',')
        .map(|kv| kv.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        keys,
        [
            "lc", "id", "tw", "fs", "ru", "ct", "kpp", "kv", "ver", "tpf"
        ]
    );
    c
}

#[tokio::test]
async fn twn_login_then_syn_chg_and_png_in_msnp8_and_msnp9() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    let bob = account(&ctx, "bob@example.com", "Bob").await;
    let mut b = Harness::login(&ctx, "MSNP7", "bob@example.com", &bob).await;
    assert_eq!(
        b.send("ADD 10 AL alice@example.com alice@example.com")
            .await
            .len(),
        1
    );
    assert_eq!(
        b.send("ADD 11 FL alice@example.com alice@example.com")
            .await
            .len(),
        1
    );
    b.events();
    for msnp in ["MSNP8", "MSNP9"] {
        let p9 = msnp == "MSNP9";
        let mut c = twn_start(&ctx, msnp, "alice@example.com").await;
        let ticket = ticket(&ctx, "alice%40example.com", &token).await;
        let lines = c.send(&format!("USR 4 TWN S {ticket}")).await;
        assert_eq!(lines[0], "USR 4 OK alice@example.com Alice 1 0");
        let profile = &lines[2];
        let t = crate::passport::tickets::t_part(&ticket).unwrap();
        assert!(profile.contains(&format!("MSPAuth: {t}\r\n")), "{profile}");
        // 51000 = 0xC738, byte-swapped 0x38C7.
        assert!(profile.contains("ClientIP: 192.0.2.1\r\nClientPort: 14535\r\n"));
        assert!(profile.contains("MemberIdHigh: "));
        // SYN in the MSNP8 form: counts on the SYN line, one LST per contact with a bitmask.
        let syn = c.send("SYN 5 0").await;
        let head: Vec<&str> = syn[0].split(' ').collect();
        assert_eq!((head[0], head[1], head.len()), ("SYN", "5", 5), "{syn:?}");
        assert!(
            syn.iter()
                .any(|l| l.starts_with("LST bob@example.com Bob ")),
            "{syn:?}"
        );
        // Client LST is gone in MSNP9 (closes), still answered in MSNP8 — checked last.
        let chg = if p9 {
            "CHG 6 NLN 268435492 %3Cmsnobj%20Creator%3D%22alice%40example.com%22%2F%3E"
        } else {
            "CHG 6 NLN 268435492"
        };
        assert_eq!(c.send(chg).await, [chg.to_owned()]);
        // Bob (MSNP7) sees Alice online, without capabilities or MSNObject in his dialect.
        let seen = b.events();
        assert_eq!(seen, ["NLN NLN alice@example.com Alice"], "{msnp}");
        let qng = c.send("PNG").await;
        if p9 {
            let secs: u32 = strip(&qng[0], "QNG ").parse().unwrap();
            assert!(secs > 5);
        } else {
            assert_eq!(qng, ["QNG"]);
        }
        let lst = c.send("LST 7 FL").await;
        if p9 {
            assert!(lst.is_empty() && c.is_closed(), "{lst:?}");
        } else {
            assert!(!c.is_closed(), "{lst:?}");
        }
        c.finish();
        b.events();
    }
}

#[tokio::test]
async fn bad_twn_tickets_are_911_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, clock) = clocked_context(dir.path()).await;
    let alice = account(&ctx, "alice@example.com", "Alice").await;
    let bob = account(&ctx, "bob@example.com", "Bob").await;
    let fail = |msnp: &'static str, handle: &'static str, ticket: String| {
        let ctx = ctx.clone();
        async move {
            let mut c = twn_start(&ctx, msnp, handle).await;
            assert_eq!(c.send(&format!("USR 4 TWN S {ticket}")).await, ["911 4"]);
            assert!(c.is_closed());
        }
    };
    // Unknown ticket, for a known and an unknown account.
    fail("MSNP8", "alice@example.com", "t=nope&p=nope".to_owned()).await;
    fail("MSNP9", "nobody@example.com", "t=nope&p=nope".to_owned()).await;
    // Bob's ticket presented for Alice.
    let bobs = ticket(&ctx, "bob%40example.com", &bob).await;
    fail("MSNP9", "alice@example.com", bobs).await;
    // Reused: the first use succeeds, the second fails.
    let t = ticket(&ctx, "alice%40example.com", &alice).await;
    let mut c = twn_start(&ctx, "MSNP9", "alice@example.com").await;
    assert!(c.send(&format!("USR 4 TWN S {t}")).await[0].starts_with("USR 4 OK "));
    c.finish();
    fail("MSNP8", "alice@example.com", t).await;
    // Expired.
    let t = ticket(&ctx, "alice%40example.com", &alice).await;
    *clock.lock().unwrap() += std::time::Duration::from_secs(121);
    fail("MSNP9", "alice@example.com", t).await;
}

/// A context whose rate limiter refuses an account or address after `failures` failures.
async fn refusing_after(dir: &std::path::Path, failures: u32) -> crate::Context {
    context(dir, |c| {
        c.passport.login_slow_after = failures;
        c.passport.login_refuse_after = failures;
    })
    .await
}

#[tokio::test]
async fn repeated_login_failures_refuse_that_source_like_a_bad_secret_not_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = refusing_after(dir.path(), 2).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    for _ in 0..2 {
        let mut c = Harness::ns(&ctx);
        c.send("VER 1 MSNP7").await;
        c.challenge(2, "alice@example.com").await;
        assert_eq!(c.send("USR 3 MD5 S 0123").await, ["911 3"]);
    }
    // From the failing source the right answer is refused too (without being checked).
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP7").await;
    let challenge = c.challenge(2, "alice@example.com").await;
    let answer = md5hex(&challenge, &token);
    assert_eq!(c.send(&format!("USR 3 MD5 S {answer}")).await, ["911 3"]);
    assert!(c.is_closed());
    // The limiter is shared: login2.srf refuses that source as well ...
    let credentials = crate::passport::Credentials::from_authorization(&format!(
        "Passport1.4 sign-in=alice%40example.com,pwd={token}"
    ))
    .unwrap();
    let login = |from: &str| {
        let from = from.parse().unwrap();
        let (ctx, credentials) = (&ctx, &credentials);
        async move {
            ctx.passport
                .login(credentials, from, crate::passport::Transport::Tls)
                .await
        }
    };
    assert!(matches!(
        login("192.0.2.1").await,
        Err(crate::passport::LoginError::Refused(_))
    ));
    // Counted by method and result.
    let logins = ctx.passport.logins();
    assert_eq!(logins.count(LoginMethod::Md5, LoginResult::Failed), 2);
    assert_eq!(logins.count(LoginMethod::Md5, LoginResult::Refused), 1);
    assert_eq!(logins.count(LoginMethod::Md5, LoginResult::Ok), 0);
    assert_eq!(logins.count(LoginMethod::Passport, LoginResult::Refused), 1);
    // ... while the owner, elsewhere, gets in on both paths.
    assert!(login("198.51.100.7").await.is_ok());
    let mut c = Harness::ns_from(&ctx, "198.51.100.7:40000".parse().unwrap());
    c.send("VER 1 MSNP7").await;
    let challenge = c.challenge(2, "alice@example.com").await;
    let answer = md5hex(&challenge, &token);
    let lines = c.send(&format!("USR 3 MD5 S {answer}")).await;
    assert!(lines[0].starts_with("USR 3 OK "), "{lines:?}");
    assert_eq!(logins.count(LoginMethod::Md5, LoginResult::Ok), 1);
    assert_eq!(logins.count(LoginMethod::Passport, LoginResult::Ok), 1);
}

#[tokio::test]
async fn a_ver_with_only_newer_dialects_is_logged_with_what_was_offered() {
    let capture = crate::testing::LogCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let mut c = Harness::ns(&ctx);
    assert_eq!(c.send("VER 1 MSNP15 MSNP13 CVR0").await, ["VER 1 0"]);
    assert!(c.is_closed());
    let logs = capture.text();
    assert!(
        logs.contains("none of the offered dialects is supported")
            && logs.contains("offered=MSNP15 MSNP13")
            && logs.contains("supported=MSNP2-MSNP12"),
        "{logs}"
    );
}

#[tokio::test]
async fn png_before_login_closes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let mut c = Harness::ns(&ctx);
    assert_eq!(c.send("VER 1 MSNP8 CVR0").await, ["VER 1 MSNP8 CVR0"]);
    assert!(c.send("PNG").await.is_empty());
    assert!(c.is_closed());
}

#[tokio::test]
async fn a_failed_login_is_logged_with_the_account_and_why_but_never_the_secret() {
    let capture = crate::testing::LogCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = refusing_after(dir.path(), 4).await;
    let token = account(&ctx, "alice@example.com", "Alice").await;
    let bob_token = account(&ctx, "bob@example.com", "Bob").await;
    let bob = ctx
        .store
        .account(&crate::store::parse_handle("bob@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let bob_token_id = ctx.store.tokens(bob.id).await.unwrap()[0].id;
    ctx.store.revoke_token(bob.id, bob_token_id).await.unwrap();
    // One MD5 attempt with `secret` as the token; its answer.
    let attempt = |handle: &'static str, secret: String| {
        let ctx = ctx.clone();
        async move {
            let mut c = Harness::ns(&ctx);
            c.send("VER 1 MSNP7").await;
            let challenge = c.challenge(2, handle).await;
            let answer = md5hex(&challenge, &secret);
            let reply = c.send(&format!("USR 3 MD5 S {answer}")).await;
            (reply, answer)
        }
    };
    let mut answers = Vec::new();
    for (handle, secret, reason) in [
        ("nobody@example.com", token.clone(), "unknown account"),
        ("alice@example.com", "a".repeat(16), "wrong secret"),
        ("bob@example.com", bob_token.clone(), "revoked token"),
    ] {
        let (reply, answer) = attempt(handle, secret).await;
        assert_eq!(reply, ["911 3"], "{handle}");
        answers.push(answer);
        let line = format!("login failed handle=\"{handle}\" reason={reason}");
        assert!(capture.text().contains(&line), "{line}\n{}", capture.text());
    }
    // A TWN ticket that was never issued.
    let mut c = Harness::ns(&ctx);
    c.send("VER 1 MSNP8 CVR0").await;
    c.send("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 6.0.0602 MSMSGS alice@example.com")
        .await;
    c.send("USR 3 TWN I alice@example.com").await;
    assert_eq!(c.send("USR 4 TWN S t=forged&p=forged").await, ["911 4"]);
    assert!(capture.text().contains(
        "login failed handle=\"alice@example.com\" reason=ticket not accepted: unknown or \
         already used ticket"
    ));
    // Two more wrong secrets make 4 failures of alice from this address: the pair is refused,
    // so even the right token is refused unchecked (from this address only).
    for _ in 0..2 {
        let (reply, answer) = attempt("alice@example.com", "b".repeat(16)).await;
        assert_eq!(reply, ["911 3"]);
        answers.push(answer);
    }
    let (reply, answer) = attempt("alice@example.com", token.clone()).await;
    assert_eq!(reply, ["911 3"]);
    answers.push(answer);
    let logs = capture.text();
    assert!(
        logs.contains("login failed handle=\"alice@example.com\" reason=rate-limited"),
        "{logs}"
    );
    for secret in [&token, &bob_token].into_iter().chain(&answers) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the log:\n{logs}"
        );
    }
    assert!(!logs.contains("forged"), "{logs}");
}

/// Logs `handle` in with Passport in dialect `msnp` (MSNP8+) and returns the connection right
/// after `USR OK` (and, from MSNP11, `SBS`) and the profile, with those lines.
async fn twn_login(
    ctx: &crate::Context,
    msnp: &str,
    handle: &str,
    token: &str,
) -> (Harness<super::NsService>, Vec<String>) {
    let mut c = twn_start(ctx, msnp, handle).await;
    let ticket = ticket(ctx, &handle.replace('@', "%40"), token).await;
    let lines = c.send(&format!("USR 4 TWN S {ticket}")).await;
    (c, lines)
}

/// The value of `key=` among the fields of an MSNP10 `LST` line.
fn lst_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ').find_map(|f| f.strip_prefix(key))
}

#[tokio::test]
async fn msnp10_address_book_by_guid_next_to_an_msnp7_session() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |_| {}).await;
    let alice = account(&ctx, "alice@example.com", "Alice").await;
    let bob = account(&ctx, "bob@example.com", "Bob").await;
    account(&ctx, "carol@example.com", "Carol").await;
    // Bob (MSN 4.7) watches Alice.
    let mut b = Harness::login(&ctx, "MSNP7", "bob@example.com", &bob).await;
    assert_eq!(b.send("ADD 10 FL alice@example.com Alice").await.len(), 1);
    b.events();

    let (mut a, lines) = twn_login(&ctx, "MSNP10", "alice@example.com", &alice).await;
    // USR OK without the name; no SBS before MSNP11; the profile names the address book.
    assert_eq!(lines[0], "USR 4 OK alice@example.com 1 0");
    assert!(lines[1].starts_with("MSG Hotmail Hotmail "), "{lines:?}");
    assert!(lines[2].contains("ABCHMigrated: 1\r\n"), "{lines:?}");
    // SYN: timestamps, PRP MFN, Bob on the RL (no C=, no group), no version anywhere.
    let syn = a.send("SYN 5 0 0").await;
    let head: Vec<&str> = syn[0].split(' ').collect();
    assert_eq!((head[0], head.len()), ("SYN", 6), "{syn:?}");
    assert_eq!(head[2], head[3]);
    assert!(head[2].ends_with("-00:00"), "{syn:?}");
    assert_eq!(
        &syn[1..],
        [
            "GTC A",
            "BLP AL",
            "PRP MFN Alice",
            "LST N=bob@example.com F=Bob 8"
        ]
    );
    // The same stamps again: only the SYN line.
    let (s1, s2) = (head[2].to_owned(), head[3].to_owned());
    assert_eq!(
        a.send(&format!("SYN 6 {s1} {s2}")).await,
        [format!("SYN 6 {s1} {s2}")]
    );
    assert_eq!(a.send("CHG 7 NLN 805306404").await, ["CHG 7 NLN 805306404"]);
    assert_eq!(b.events(), ["NLN NLN alice@example.com Alice"]);

    // ADC FL by handle: the reply carries the contact's GUID; Carol is offline.
    let add = a.send("ADC 8 FL N=carol@example.com F=Caz").await;
    assert_eq!(add.len(), 1, "{add:?}");
    let cg = lst_field(&add[0], "C=").unwrap().to_owned();
    assert_eq!(add[0], format!("ADC 8 FL N=carol@example.com F=Caz C={cg}"));
    assert_eq!(
        a.send("ADC 9 AL N=carol@example.com").await,
        ["ADC 9 AL N=carol@example.com"]
    );
    // Groups by GUID.
    let adg = a.send("ADG 10 Work").await;
    let gg = strip(&adg[0], "ADG 10 Work ").to_owned();
    assert!(relive_msnp::types::Guid::parse(&gg).is_ok(), "{adg:?}");
    assert_eq!(
        a.send(&format!("ADC 11 FL C={cg} {gg}")).await,
        [format!("ADC 11 FL C={cg} {gg}")]
    );
    assert_eq!(
        a.send(&format!("REG 12 {gg} Office")).await,
        [format!("REG 12 1 Office {gg} 0")]
    );
    // The dump shows Carol in the group, by GUID; group 0 is nowhere.
    let syn = a.send("SYN 13 0 0").await;
    assert!(syn.contains(&format!("LSG Office {gg}")), "{syn:?}");
    assert!(
        syn.contains(&format!("LST N=carol@example.com F=Caz C={cg} 3 {gg}")),
        "{syn:?}"
    );
    assert!(
        !syn.iter().any(|l| l.contains("Other%20Contacts")),
        "{syn:?}"
    );
    assert_eq!(
        a.send(&format!("REM 14 FL {cg} {gg}")).await,
        [format!("REM 14 FL {cg} {gg}")]
    );
    assert_eq!(
        a.send(&format!("RMG 15 {gg}")).await,
        [format!("RMG 15 1 {gg}")]
    );
    // PRP MFN renames Alice: echoed as sent, and the MSNP7 watcher gets an NLN.
    assert_eq!(
        a.send("PRP 16 MFN Alice%20A").await,
        ["PRP 16 MFN Alice%20A"]
    );
    assert_eq!(b.events(), ["NLN NLN alice@example.com Alice%20A"]);
    assert_eq!(
        a.send(&format!("SBP 17 {cg} MFN Caroline")).await,
        [format!("SBP 17 {cg} MFN Caroline")]
    );
    // Unknown GUIDs: 208 for ADC and SBP, 216 for REM, 224 for a group.
    let nobody = "00000000-0000-4000-8000-000000000000";
    assert_eq!(a.send(&format!("SBP 18 {nobody} MFN X")).await, ["208 18"]);
    assert_eq!(
        a.send(&format!("ADC 19 FL C={nobody} {gg}")).await,
        ["208 19"]
    );
    assert_eq!(a.send(&format!("REM 20 FL {nobody}")).await, ["216 20"]);
    assert_eq!(
        a.send(&format!("ADC 21 FL C={cg} {nobody}")).await,
        ["224 21"]
    );
    // AL and BL exclude each other; REM AL by handle.
    assert_eq!(a.send("ADC 22 BL N=carol@example.com").await, ["219 22"]);
    assert_eq!(
        a.send("REM 23 AL carol@example.com").await,
        ["REM 23 AL carol@example.com"]
    );
    assert_eq!(
        a.send(&format!("REM 24 FL {cg}")).await,
        [format!("REM 24 FL {cg}")]
    );
    // Bob (MSNP7) sees Alice's lists with the same contacts: Carol is gone, the group too.
    let syn7 = b.send("SYN 30 0").await;
    assert!(!syn7.iter().any(|l| l.contains("Office")), "{syn7:?}");
    // ADD and REA are gone from MSNP10: the connection closes.
    assert!(a.send("ADD 25 FL bob@example.com Bob").await.is_empty());
    assert!(a.is_closed());
}

#[tokio::test]
async fn msnp11_sbs_gcf_uux_reach_only_msnp11_watchers_and_the_product_key_chl() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), |c| c.chl = true).await;
    let alice = account(&ctx, "alice@example.com", "Alice").await;
    let bob = account(&ctx, "bob@example.com", "Bob").await;
    let carol = account(&ctx, "carol@example.com", "Carol").await;
    // Bob (MSNP7) and Carol (MSNP11) watch Alice.
    let mut b = Harness::login(&ctx, "MSNP7", "bob@example.com", &bob).await;
    b.send("ADD 10 FL alice@example.com Alice").await;
    let (mut c, _) = twn_login(&ctx, "MSNP11", "carol@example.com", &carol).await;
    c.send("SYN 5 0 0").await;
    c.send("ADC 6 FL N=alice@example.com F=Alice").await;
    let chg = c.send("CHG 7 NLN 1073741824").await;
    assert_eq!(chg[0], "CHG 7 NLN 1073741824");
    // Carol answers her product-key challenge.
    let chl = strip(&chg[1], "CHL 0 ").to_owned();
    let answer =
        relive_msnp::auth::product_key_response(&chl, "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL");
    assert_eq!(
        c.send_payload("QRY 8 PROD0090YUAUV{2B", &answer).await,
        ["QRY 8"]
    );
    b.events();
    c.events();

    let (mut a, lines) = twn_login(&ctx, "MSNP11", "alice@example.com", &alice).await;
    assert_eq!(
        &lines[..2],
        ["USR 4 OK alice@example.com 1 0", "SBS 0 null"]
    );
    a.send("SYN 5 0 0").await;
    assert_eq!(
        a.send("GCF 6 Shields.xml").await,
        [
            format!("GCF 6 Shields.xml {}", super::SHIELDS_XML.len()),
            super::SHIELDS_XML.to_owned()
        ]
    );
    let chg = a.send("CHG 7 NLN 1073741824").await;
    assert_eq!(chg[0], "CHG 7 NLN 1073741824");
    // An MSNP6–10 answer to an MSNP11 challenge is wrong: 540 and close.
    let chl = strip(&chg[1], "CHL 0 ").to_owned();
    let md5 = relive_msnp::auth::qry_response(&chl, "msmsgs@msnmsgr.com").unwrap();
    assert_eq!(b.events(), ["NLN NLN alice@example.com Alice"]);
    assert_eq!(c.events(), ["NLN NLN alice@example.com Alice 1073741824"]);
    let xml = "<Data><PSM>hi &amp; bye</PSM><CurrentMedia/></Data>";
    assert_eq!(a.send_payload("UUX 8", xml).await, ["UUX 8 0"]);
    let ubx = "<Data><PSM>hi &amp; bye</PSM><CurrentMedia></CurrentMedia></Data>";
    assert_eq!(
        c.events(),
        [
            format!("UBX alice@example.com {}", ubx.len()),
            ubx.to_owned()
        ]
    );
    assert!(b.events().is_empty(), "an MSNP7 watcher gets no UBX");
    assert_eq!(
        a.send_payload("QRY 9 msmsgs@msnmsgr.com", &md5).await,
        ["540 9"]
    );
    assert!(a.is_closed());
    a.finish();
    assert_eq!(b.events(), ["FLN alice@example.com"]);
    assert_eq!(c.events(), ["FLN alice@example.com"]);
    // Invalid personal-message XML closes the connection.
    let (mut d, _) = twn_login(&ctx, "MSNP12", "alice@example.com", &alice).await;
    assert!(
        d.send_payload("UUX 5", "<invalid></invalid>")
            .await
            .is_empty()
    );
    assert!(d.is_closed());
}

#[test]
fn list_errors_map_to_their_msnp_codes_per_dialect() {
    use crate::store::ListError as E;
    use relive_msnp::version::{Capabilities, ProtocolVersion};
    let v7 = Capabilities::for_version(ProtocolVersion::MSNP7);
    let v10 = Capabilities::for_version(ProtocolVersion::MSNP10);
    let code = |e: &E, caps| super::list_error_code(e, caps).map(|c| c.code());
    let table = [
        (E::AlreadyOnList, 215),
        (E::NotOnList, 216),
        (E::InOppositeList, 219),
        (E::NoSuchUser, 205),
        (E::ListFull, 210),
        (E::NoSuchGroup, 224),
        (E::NotInGroup, 225),
        (E::TooManyGroups, 223),
        (E::GroupNameTooLong, 229),
        (E::GroupExists, 228),
        (E::CannotRemoveGroupZero, 230),
        (E::SameValue, 218),
        (E::InvalidName, 201),
        (E::InvalidParameter, 201),
        (E::NoSuchAccount, 500),
    ];
    for (error, expected) in &table {
        assert_eq!(code(error, &v7), Some(*expected), "{error}");
    }
    assert_eq!(
        code(&E::NoSuchUser, &v10),
        Some(208),
        "the address book says 208"
    );
    assert_eq!(code(&E::ReverseListReadOnly, &v7), None, "closes instead");
}
