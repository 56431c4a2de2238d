//! A small browser stand-in for the website's handler tests: plain HTTP/1.1 on loopback, a
//! cookie jar, forms posted with the CSRF token the site gave, and bearer calls to `/api/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpStream;

use crate::http::{Response, exchange};

/// The CSRF cookie's name (as the server sets it).
pub const CSRF_COOKIE: &str = "relive_csrf";

/// A visitor with cookies.
#[derive(Debug)]
pub struct WebClient {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
}

/// `application/x-www-form-urlencoded` encoding of one value.
#[must_use]
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl WebClient {
    /// A visitor of the website at `addr` (the plain HTTP listener).
    #[must_use]
    pub const fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    /// The same visitor (cookies and all) at another address: the server restarted elsewhere.
    #[must_use]
    pub fn at(self, addr: SocketAddr) -> Self {
        Self { addr, ..self }
    }

    /// The value of cookie `name`, if set.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Sends `head` + `body` on a fresh connection and keeps the cookies it sets.
    ///
    /// # Errors
    ///
    /// I/O failed or the answer was malformed.
    pub async fn send(&mut self, head: &str, body: &[u8]) -> anyhow::Result<Response> {
        let mut stream = TcpStream::connect(self.addr).await?;
        let mut request = head.as_bytes().to_vec();
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request.extend_from_slice(format!("Cookie: {}\r\n", jar.join("; ")).as_bytes());
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        let response = exchange(&mut stream, &request).await?;
        for (name, value) in &response.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if value.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Ok(response)
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// As [`Self::send`].
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: relive\r\n"), b"")
            .await
    }

    /// `GET path` as text, expecting `200`.
    ///
    /// # Errors
    ///
    /// Another status, or as [`Self::send`].
    pub async fn page(&mut self, path: &str) -> anyhow::Result<String> {
        let r = self.get(path).await?;
        anyhow::ensure!(
            r.status_line.contains(" 200 "),
            "GET {path}: {}",
            r.status_line
        );
        Ok(String::from_utf8(r.body)?)
    }

    /// Posts `fields` to `path` with the CSRF token from the cookie (fetching `/` first when
    /// there is none yet).
    ///
    /// # Errors
    ///
    /// As [`Self::send`].
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Response> {
        if self.cookie(CSRF_COOKIE).is_none() {
            self.get("/").await?;
        }
        let csrf = self
            .cookie(CSRF_COOKIE)
            .context("the site set no CSRF cookie")?
            .to_owned();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields` (no CSRF token added).
    ///
    /// # Errors
    ///
    /// As [`Self::send`].
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        self.send(
            &format!(
                "POST {path} HTTP/1.1\r\nHost: relive\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n"
            ),
            body.join("&").as_bytes(),
        )
        .await
    }

    /// `METHOD path` to the API with `Authorization: Bearer key` and an optional JSON body.
    ///
    /// # Errors
    ///
    /// As [`Self::send`].
    pub async fn api(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        json: Option<&str>,
    ) -> anyhow::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: relive\r\n");
        if let Some(key) = key {
            head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        if json.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        self.send(&head, json.unwrap_or_default().as_bytes()).await
    }
}

/// The `Location` of a redirect.
#[must_use]
pub fn location(r: &Response) -> Option<&str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.as_str())
}

/// The value of the first `<input … class="token" …>` on a page: a token or key shown once.
#[must_use]
pub fn shown_token(page: &str) -> Option<String> {
    let at = page.find("class=\"token\"")?;
    let rest = &page[at..];
    let value = rest.split_once("value=\"")?.1;
    Some(value.split_once('"')?.0.to_owned())
}
