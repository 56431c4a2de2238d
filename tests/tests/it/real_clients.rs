//! The catalogue of what each client generation sends to the Passport endpoints, replayed byte
//! for byte over a real TLS socket (the HTTPS listener), from the nexus request through
//! `login2.srf` to `USR OK` on the NS. Each request is replayed whole and again split into
//! one-byte TLS records.
//!
//! Where the bytes come from (read in each client's sources; our own test clients are not proof):
//!
//! - **WinINet**, MSN Messenger 5.0–7.0: HTTP/1.1 with the headers WinINet adds for the
//!   `MSMSGS` agent, nexus and login on one kept-alive connection (PROTOCOL.md §2.3.3).
//! - **libpurple** (Gaim 1.x – Pidgin 2.4 `msn/nexus.c`; msn-pecan, KMess and Kopete send the
//!   same nexus line): the version-less `GET /rdr/pprdr.asp\r\n\r\n`, then an HTTP/1.1 login on a
//!   new connection with the handle percent-encoded.
//! - **hand-written clients** (small C, C#, PHP and Python MSNP8 clients published in the 2000s):
//!   HTTP/1.0 without `Host`, one of them with bare LF line ends.
//! - **aMSN** through Tcl's `http` package: 2.5 (Tcl 8.4) sends HTTP/1.0 with `Accept`, `Host`
//!   and its `User-Agent`; 2.7 (Tcl 8.5+) sends HTTP/1.1 with `Connection: close` and
//!   `Accept-Encoding`; aMSN puts the handle in `sign-in` unencoded.
//! - **msnp11-sdk** 0.13 through reqwest 0.12 (hyper): lowercase header names, `accept: */*`,
//!   the handle and the secret unencoded. (Its NS side, MSNP11, is tested with the SDK itself in
//!   `sdk.rs`; the NS part here is MSNP9.)

use anyhow::anyhow;
use relive_tests::http::{Response, ask_nexus, connect_tls, exchange_in_writes};
use relive_tests::stack::login_twn_with;
use relive_tests::{StackOptions, TestStack};

const ALICE: &str = "alice@example.com";

/// One client's Passport requests. In `login`, `{path}`, `{host}`, `{sign_in}`, `{pwd}` and
/// `{params}` (the `USR TWN S` parameters) are filled in as that client does.
struct Client {
    name: &'static str,
    nexus: &'static str,
    login: &'static str,
    /// Whether `sign-in` carries the handle percent-encoded (`%40`) or as typed.
    encode_sign_in: bool,
    /// Whether the login reuses the nexus connection (only a client that keeps it alive).
    reuse_connection: bool,
}

/// The `Authorization` value every client builds, up to `sign-in`.
macro_rules! passport14 {
    () => {
        "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={sign_in},pwd={pwd},{params}"
    };
}

const CLIENTS: &[Client] = &[
    Client {
        name: "WinINet (MSN Messenger 5.0-7.0)",
        nexus: "GET /rdr/pprdr.asp HTTP/1.1\r\nUser-Agent: MSMSGS\r\nHost: nexus.passport.com\r\n\
                Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n",
        login: concat!(
            "GET /{path} HTTP/1.1\r\nAuthorization: ",
            passport14!(),
            "\r\nUser-Agent: MSMSGS\r\nHost: {host}\r\nConnection: Keep-Alive\r\n",
            "Cache-Control: no-cache\r\n\r\n"
        ),
        encode_sign_in: true,
        reuse_connection: true,
    },
    Client {
        name: "libpurple MSNP9 (Gaim 1.x - Pidgin 2.4, msn-pecan, KMess)",
        nexus: "GET /rdr/pprdr.asp\r\n\r\n",
        login: concat!(
            "GET /{path} HTTP/1.1\r\nAuthorization: ",
            passport14!(),
            "\r\nUser-Agent: MSMSGS\r\nHost: {host}\r\nConnection: Keep-Alive\r\n",
            "Cache-Control: no-cache\r\n\r\n"
        ),
        encode_sign_in: true,
        reuse_connection: false,
    },
    Client {
        name: "hand-written client, HTTP/1.0 without Host",
        nexus: "GET /rdr/pprdr.asp HTTP/1.0\r\n\r\n",
        login: concat!(
            "GET /{path} HTTP/1.1\r\nAuthorization: ",
            passport14!(),
            "\r\n\r\n"
        ),
        encode_sign_in: true,
        reuse_connection: false,
    },
    Client {
        name: "hand-written client, HTTP/1.0 with bare LF",
        nexus: "GET /rdr/pprdr.asp HTTP/1.0\n\n",
        login: concat!(
            "GET /{path} HTTP/1.0\nAuthorization: ",
            passport14!(),
            "\n\n"
        ),
        encode_sign_in: true,
        reuse_connection: false,
    },
    Client {
        name: "aMSN, Tcl http 2.5 (Tcl 8.4)",
        nexus: "GET /rdr/pprdr.asp HTTP/1.0\r\nAccept: */*\r\nHost: nexus.passport.com\r\n\
                User-Agent: Tcl http client package 2.5.5\r\n\r\n",
        login: concat!(
            "GET /{path} HTTP/1.0\r\nAccept: */*\r\nHost: {host}\r\n",
            "User-Agent: Tcl http client package 2.5.5\r\nAuthorization: ",
            passport14!(),
            "\r\n\r\n"
        ),
        encode_sign_in: false,
        reuse_connection: false,
    },
    Client {
        name: "aMSN, Tcl http 2.7 (Tcl 8.5+)",
        nexus: "GET /rdr/pprdr.asp HTTP/1.1\r\nAccept: */*\r\nHost: nexus.passport.com\r\n\
                User-Agent: Tcl http client package 2.7.13\r\nConnection: close\r\n\
                Accept-Encoding: gzip,deflate,compress\r\n\r\n",
        login: concat!(
            "GET /{path} HTTP/1.1\r\nAccept: */*\r\nHost: {host}\r\n",
            "User-Agent: Tcl http client package 2.7.13\r\nConnection: close\r\nAuthorization: ",
            passport14!(),
            "\r\nAccept-Encoding: gzip,deflate,compress\r\n\r\n"
        ),
        encode_sign_in: false,
        reuse_connection: false,
    },
    Client {
        name: "msnp11-sdk 0.13 (reqwest 0.12)",
        nexus: "GET /rdr/pprdr.asp HTTP/1.1\r\naccept: */*\r\nhost: nexus.passport.com\r\n\r\n",
        login: concat!(
            "GET /{path} HTTP/1.1\r\nauthorization: ",
            passport14!(),
            "\r\naccept: */*\r\nhost: {host}\r\n\r\n"
        ),
        encode_sign_in: false,
        reuse_connection: true,
    },
];

/// The nexus and `login2.srf` exchanges as `client` does them, each request written
/// `write_len` bytes at a time; returns the `login2.srf` response.
async fn passport(
    stack: &TestStack,
    client: &Client,
    twn_params: &str,
    write_len: usize,
) -> anyhow::Result<Response> {
    let connector = stack.tls_connector()?;
    let mut tls = connect_tls(&connector, stack.https).await?;
    let (host, path) = ask_nexus(&mut tls, client.nexus.as_bytes(), write_len).await?;
    if !client.reuse_connection {
        tls = connect_tls(&connector, stack.https).await?;
    }
    let sign_in = if client.encode_sign_in {
        ALICE.replace('@', "%40")
    } else {
        ALICE.to_owned()
    };
    let request = client
        .login
        .replace("{path}", &path)
        .replace("{host}", &host)
        .replace("{sign_in}", &sign_in)
        .replace("{pwd}", stack.token(ALICE))
        .replace("{params}", twn_params);
    exchange_in_writes(&mut tls, request.as_bytes(), write_len).await
}

#[tokio::test]
async fn every_catalogued_client_logs_in_from_the_nexus_to_usr_ok() -> anyhow::Result<()> {
    let stack = TestStack::start(StackOptions::new().account(ALICE, "Alice")).await?;
    for client in CLIENTS {
        for write_len in [usize::MAX, 1] {
            let stack = &stack;
            let mut c = stack.connect_ns("alice_ns").await?;
            login_twn_with(&mut c, 9, ALICE, |params| async move {
                passport(stack, client, &params, write_len).await
            })
            .await
            .map_err(|e| {
                let writes = if write_len == 1 {
                    "one-byte TLS records"
                } else {
                    "whole"
                };
                anyhow!("{} ({writes}): {e:#}", client.name)
            })?;
        }
    }
    stack.shutdown().await?;
    Ok(())
}
