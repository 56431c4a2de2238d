//! Header names in the exact case old clients expect.
//!
//! HTTP header names are case-insensitive, but MSN Messenger 5–7 look the nexus header up as
//! `PassportURLs`, case-sensitively (Escargot's server re-cased it and had to patch every client
//! binary to `Passporturls` instead; PATCHER.md §1.1). hyper stores names lower-cased and by
//! default writes them that way; its `title_case_headers` option would write `Passporturls` and
//! `Www-Authenticate`.
//!
//! hyper 1 does write a response's header names in their original case when the response
//! carries hyper's (crate-private) header-case map in its extensions; that map is only ever
//! created by hyper's own parser with `preserve_header_case` on. So, once per process, we feed
//! hyper a template request whose headers are spelled the way we want them written, keep the
//! extensions hyper attached to it (which hold that map), and copy them onto every response.
//! Headers not in the template fall back to title case (`Content-Length`, `Date`). The
//! socket-level tests in [`crate::http`] check the exact bytes, so a hyper change that breaks
//! this fails loudly.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{Extensions, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;

/// The response header names whose exact spelling matters, as they must appear on the wire.
pub const EXACT_NAMES: [&str; 5] = [
    "PassportURLs",
    "Authentication-Info",
    "WWW-Authenticate",
    "Content-Type",
    "Retry-After",
];

static RESPONSE_CASES: OnceCell<Extensions> = OnceCell::const_new();

/// Extensions to copy onto every response so that hyper writes [`EXACT_NAMES`] as spelled there.
/// Built on first use; if that ever fails the result is empty and hyper's title case applies.
pub async fn response_cases() -> &'static Extensions {
    RESPONSE_CASES.get_or_init(parse_template).await
}

async fn parse_template() -> Extensions {
    let mut template = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for name in EXACT_NAMES {
        template.push_str(name);
        template.push_str(": x\r\n");
    }
    template.push_str("Connection: close\r\n\r\n");

    let (mut client, server) = tokio::io::duplex(4096);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        if let Some(tx) = tx.lock().ok().and_then(|mut slot| slot.take()) {
            // The receiver is only dropped if this function already returned.
            let _ = tx.send(req.extensions().clone());
        }
        std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.preserve_header_case(true);
    let conn = builder.serve_connection(TokioIo::new(server), svc);
    let exchange = async {
        client.write_all(template.as_bytes()).await?;
        let mut sink = Vec::new();
        client.read_to_end(&mut sink).await?;
        Ok::<_, std::io::Error>(())
    };
    let (served, exchanged) = tokio::join!(conn, exchange);
    if served.is_err() || exchanged.is_err() {
        tracing::warn!("could not build the header-case template; using title case");
    }
    rx.await.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the hyper behaviour this module relies on (a crate-private map, not a supported
    /// API): a response carrying [`response_cases`] is written with [`EXACT_NAMES`] spelled as
    /// listed and other names title-cased, with the builder options `serve_io` uses. A hyper
    /// upgrade that changes it fails here, before any client does.
    #[tokio::test]
    async fn hyper_writes_the_exact_names_from_the_template() {
        let cases = response_cases().await;
        assert!(!cases.is_empty(), "the template yields hyper's case map");
        let (mut client, server) = tokio::io::duplex(4096);
        let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let mut response = Response::new(Body::empty());
            let headers = response.headers_mut();
            for name in EXACT_NAMES {
                let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                headers.insert(name, axum::http::HeaderValue::from_static("v"));
            }
            headers.insert("x-other-name", axum::http::HeaderValue::from_static("v"));
            response.extensions_mut().extend(cases.clone());
            std::future::ready(Ok::<_, Infallible>(response))
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.title_case_headers(true);
        let conn = builder.serve_connection(TokioIo::new(server), svc);
        let exchange = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut raw = Vec::new();
            client.read_to_end(&mut raw).await.unwrap();
            String::from_utf8(raw).unwrap()
        };
        let (served, raw) = tokio::join!(conn, exchange);
        served.unwrap();
        for name in EXACT_NAMES {
            assert!(
                raw.contains(&format!("\r\n{name}: v\r\n")),
                "{name} in {raw}"
            );
        }
        assert!(raw.contains("\r\nX-Other-Name: v\r\n"), "{raw}");
    }
}
