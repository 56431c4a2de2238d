//! The MSNP12 login service `RST.srf` ("Passport 3.0", WS-Trust over SOAP), without sockets:
//! the request MSN 7.5's `msidcrl.dll` posts, and the three answers it can get (research notes
//! for issue 16, §4.3–§4.5; PROTOCOL.md §2.3.3 last paragraph).
//!
//! ```text
//! POST /RST.srf   <Envelope> … <wsse:UsernameToken><wsse:Username>alice@example.com</…>
//!                 <wsse:Password>…</…> … <wst:RequestSecurityToken Id="RST0"> … http://Passport.NET/tb
//!                 <wst:RequestSecurityToken Id="RST1"> … messenger.msn.com …
//! 200 text/xml    <S:Envelope> … <wst:RequestSecurityTokenResponse> (one per requested address:
//!                 the legacy Passport.NET/tb token, then <wsse:BinarySecurityToken Id="Compact1">
//!                 t=…&amp;p=…</…> for messenger.msn.com, which the client sends in USR TWN S)
//! 200 text/xml    <S:Fault><faultcode>wsse:FailedAuthentication</faultcode> … (bad credentials)
//! 400 text/xml    <S:Fault><faultcode>S:Client</faultcode> … (not a token request)
//! ```
//!
//! Decisions where the sources disagree (documented for the lead, issue 16):
//! * **Bad credentials are HTTP 200 with the `wsse:FailedAuthentication` fault** (the PP3-era
//!   clients — a Perl `MSN::AuthPP3`, BitlBee — only look for the fault inside a successful
//!   HTTP answer; Escargot answers 403 with a generic `S:Client` fault, which such a client
//!   reports as "server down"). The fault is one constant: the same bytes for an unknown
//!   account and a wrong secret.
//! * The fault sits directly in `S:Envelope` after the header, as Escargot's copy of the
//!   service's template has it (not SOAP 1.1's `Body`).
//! * Every requested address other than `http://Passport.NET/tb` gets the same compact ticket
//!   (`Compact1`, `Compact2`, … in request order); MSN 7.5 asks for `messenger.msn.com` only.

use std::fmt;
use std::fmt::Write as _;

use crate::types::utc_seconds;
use crate::xml::{self, XmlError, escape};

/// Longest request body accepted, in bytes (MSN 7.5's is under 4 KiB).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The address of the legacy Passport token every client asks for first.
pub const PASSPORT_TB: &str = "http://Passport.NET/tb";

/// The address whose compact token is the Messenger ticket.
pub const MESSENGER: &str = "messenger.msn.com";

/// Longest user name or password accepted (bytes of text).
const MAX_CREDENTIAL_BYTES: usize = 256;

/// Most tokens one request may ask for.
const MAX_TOKENS: usize = 16;

/// Why a request is not a token request this service answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RstError {
    /// Not well-formed XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Larger than [`MAX_REQUEST_BYTES`].
    #[error("request body too large")]
    TooLarge,
    /// No `Envelope` root, or no `UsernameToken` with a user name and a password.
    #[error("no user name and password")]
    NoCredentials,
    /// No `RequestSecurityToken` with an address, or more than 16.
    #[error("no token requested")]
    NoTokens,
}

/// One requested token: its `Id` (`RST1`) and the address it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedToken {
    /// The request's `Id` attribute, if any.
    pub id: Option<String>,
    /// The `wsa:Address` it applies to (`messenger.msn.com`).
    pub address: String,
}

/// A parsed `RST.srf` request. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct RstRequest {
    /// `wsse:Username` (the handle, not yet validated).
    pub username: String,
    /// `wsse:Password` (an access token or a password).
    pub password: String,
    /// The tokens asked for, in order.
    pub tokens: Vec<RequestedToken>,
}

impl fmt::Debug for RstRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RstRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl RstRequest {
    /// Parses a request body.
    ///
    /// # Errors
    /// [`RstError`].
    pub fn parse(body: &[u8]) -> Result<Self, RstError> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(RstError::TooLarge);
        }
        let root = xml::parse(body)?;
        if root.name != "Envelope" {
            return Err(RstError::NoCredentials);
        }
        let user = root.find("UsernameToken").ok_or(RstError::NoCredentials)?;
        let text = |name| user.find(name).map(|e| e.text.trim().to_owned());
        let (Some(username), Some(password)) = (text("Username"), text("Password")) else {
            return Err(RstError::NoCredentials);
        };
        if username.is_empty()
            || password.is_empty()
            || username.len() > MAX_CREDENTIAL_BYTES
            || password.len() > MAX_CREDENTIAL_BYTES
        {
            return Err(RstError::NoCredentials);
        }
        let tokens: Vec<RequestedToken> = root
            .find_all("RequestSecurityToken")
            .into_iter()
            .filter_map(|rst| {
                let address = rst.find("Address")?.text.trim().to_owned();
                (!address.is_empty()).then(|| RequestedToken {
                    id: rst.attr("Id").map(str::to_owned),
                    address,
                })
            })
            .collect();
        if tokens.is_empty() || tokens.len() > MAX_TOKENS {
            return Err(RstError::NoTokens);
        }
        Ok(Self {
            username,
            password,
            tokens,
        })
    }
}

/// What a successful answer carries besides the requested addresses.
#[derive(Debug, Clone, Copy)]
pub struct Issued<'a> {
    /// The handle the tokens are for.
    pub handle: &'a str,
    /// The account's Passport member id (PUID).
    pub member_id: u64,
    /// The Messenger ticket (`t=…&p=…`), the same one `login2.srf` issues.
    pub ticket: &'a str,
    /// The current Unix time.
    pub now: u64,
    /// How long the tokens are said to live, in seconds.
    pub lifetime: u64,
    /// A base64 proof key for the legacy token (random; the client does nothing with it here).
    pub proof_key: &'a str,
}

/// The opaque payload of the legacy `Passport.NET/tb` token (MSNP12 clients pass it on to
/// nothing Relive serves).
const LEGACY_CIPHER: &str = "UmVsaXZlIGRvZXMgbm90IHVzZSB0aGlzIHRva2Vu";

const ENVELOPE_OPEN: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\
<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">";

const NS_ATTRS: &str = "xmlns:wst=\"http://schemas.xmlsoap.org/ws/2004/04/trust\" \
xmlns:wsse=\"http://schemas.xmlsoap.org/ws/2003/06/secext\" \
xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\" \
xmlns:saml=\"urn:oasis:names:tc:SAML:1.0:assertion\" \
xmlns:wsp=\"http://schemas.xmlsoap.org/ws/2002/12/policy\" \
xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\"";

/// The success answer: one `RequestSecurityTokenResponse` per requested token.
#[must_use]
pub fn issued(request: &RstRequest, issued: &Issued<'_>) -> String {
    let created = utc_seconds(issued.now);
    let expires = utc_seconds(issued.now.saturating_add(issued.lifetime));
    let handle = escape(issued.handle);
    let puid = format!("{:016X}", issued.member_id);
    let mut out = String::from(ENVELOPE_OPEN);
    let _ = write!(
        out,
        "<S:Header><psf:pp xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\">\
<psf:serverVersion>1</psf:serverVersion><psf:PUID>{puid}</psf:PUID>\
<psf:configVersion>3.0.869.0</psf:configVersion><psf:uiVersion>3.0.869.0</psf:uiVersion>\
<psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>\
<psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\" \
ServerTime=\"{created}\">Relive</psf:serverInfo><psf:cookies/>\
<psf:browserCookies></psf:browserCookies>\
<psf:credProperties><psf:credProperty Name=\"MainBrandID\">MSFT</psf:credProperty>\
<psf:credProperty Name=\"BrandIDList\"></psf:credProperty>\
<psf:credProperty Name=\"IsWinLiveUser\">true</psf:credProperty>\
<psf:credProperty Name=\"CID\">{puid}</psf:credProperty>\
<psf:credProperty Name=\"AuthMembername\">{handle}</psf:credProperty>\
<psf:credProperty Name=\"Country\">US</psf:credProperty>\
<psf:credProperty Name=\"Language\">1033</psf:credProperty></psf:credProperties>\
<psf:extProperties></psf:extProperties><psf:response/></psf:pp></S:Header>\
<S:Body><wst:RequestSecurityTokenResponseCollection {NS_ATTRS}>"
    );
    let ticket = escape(issued.ticket);
    let mut compact = 0;
    for token in &request.tokens {
        let address = escape(&token.address);
        let lifetime = format!(
            "<wst:LifeTime><wsu:Created>{created}</wsu:Created>\
             <wsu:Expires>{expires}</wsu:Expires></wst:LifeTime>"
        );
        let applies = format!(
            "<wsp:AppliesTo xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/03/addressing\">\
             <wsa:EndpointReference><wsa:Address>{address}</wsa:Address>\
             </wsa:EndpointReference></wsp:AppliesTo>"
        );
        out.push_str("<wst:RequestSecurityTokenResponse>");
        if token.address == PASSPORT_TB {
            let _ = write!(
                out,
                "<wst:TokenType>urn:passport:legacy</wst:TokenType>{applies}{lifetime}\
<wst:RequestedSecurityToken><EncryptedData xmlns=\"http://www.w3.org/2001/04/xmlenc#\" \
Id=\"BinaryDAToken0\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
<EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#tripledes-cbc\"></EncryptionMethod>\
<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:KeyName>http://Passport.NET/STS\
</ds:KeyName></ds:KeyInfo><CipherData><CipherValue>{LEGACY_CIPHER}</CipherValue></CipherData>\
</EncryptedData></wst:RequestedSecurityToken>\
<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"urn:passport\"></wsse:KeyIdentifier>\
<wsse:Reference URI=\"#BinaryDAToken0\"></wsse:Reference></wst:RequestedTokenReference>\
<wst:RequestedProofToken><wst:BinarySecret>{}</wst:BinarySecret></wst:RequestedProofToken>",
                escape(issued.proof_key)
            );
        } else {
            compact += 1;
            let _ = write!(
                out,
                "<wst:TokenType>urn:passport:compact</wst:TokenType>{applies}{lifetime}\
<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id=\"Compact{compact}\">{ticket}\
</wsse:BinarySecurityToken></wst:RequestedSecurityToken>\
<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"urn:passport:compact\">\
</wsse:KeyIdentifier><wsse:Reference URI=\"#Compact{compact}\"></wsse:Reference>\
</wst:RequestedTokenReference>"
            );
        }
        out.push_str("</wst:RequestSecurityTokenResponse>");
    }
    out.push_str("</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>");
    out
}

/// The answer to bad credentials (HTTP 200): the same bytes whatever was wrong.
pub const AUTH_FAILED: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\
<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" \
xmlns:wsse=\"http://schemas.xmlsoap.org/ws/2003/06/secext\" \
xmlns:psf=\"http://schemas.microsoft.com/Passport/SoapServices/SOAPFault\">\
<S:Header><psf:pp><psf:serverVersion>1</psf:serverVersion>\
<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>0x80048823</psf:reqstatus>\
<psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\">Relive\
</psf:serverInfo><psf:cookies/><psf:response/></psf:pp></S:Header>\
<S:Fault><faultcode>wsse:FailedAuthentication</faultcode>\
<faultstring>Authentication Failure</faultstring></S:Fault></S:Envelope>";

/// The answer to a request that is not a token request (HTTP 400).
pub const BAD_REQUEST: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\
<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">\
<S:Fault><faultcode>S:Client</faultcode><faultstring>Invalid Request</faultstring></S:Fault>\
</S:Envelope>";

/// The Messenger ticket in an answer: the text of the `BinarySecurityToken` whose
/// `RequestSecurityTokenResponse` applies to [`MESSENGER`], unescaped (what a client sends in
/// `USR TWN S`). For test clients.
#[must_use]
pub fn messenger_ticket(answer: &[u8]) -> Option<String> {
    let root = xml::parse(answer).ok()?;
    root.find_all("RequestSecurityTokenResponse")
        .into_iter()
        .find(|r| r.find("Address").is_some_and(|a| a.text == MESSENGER))?
        .find("BinarySecurityToken")
        .map(|t| t.text.clone())
}

/// The body MSN 7.5 (and the PP3-era clients modelled on it: BitlBee, `MSN::AuthPP3`,
/// msn-pecan) posts to `RST.srf` for `username` and `password`, asking for the legacy token and
/// the Messenger ticket with the `USR TWN S` parameters as policy (research notes §4.3). For
/// test clients.
#[must_use]
pub fn msn75_request(username: &str, password: &str, twn_params: &str) -> String {
    // `?` + the parameters with `,` → `&`, URL-decoded, then XML-escaped (msn-pecan, Perl).
    let policy = format!(
        "?{}",
        String::from_utf8_lossy(&crate::types::url_decode(&twn_params.replace(',', "&")))
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Envelope \
xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\" \
xmlns:wsse=\"http://schemas.xmlsoap.org/ws/2003/06/secext\" \
xmlns:saml=\"urn:oasis:names:tc:SAML:1.0:assertion\" \
xmlns:wsp=\"http://schemas.xmlsoap.org/ws/2002/12/policy\" \
xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\" \
xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/03/addressing\" \
xmlns:wssc=\"http://schemas.xmlsoap.org/ws/2004/04/sc\" \
xmlns:wst=\"http://schemas.xmlsoap.org/ws/2004/04/trust\"><Header>\
<ps:AuthInfo xmlns:ps=\"http://schemas.microsoft.com/Passport/SoapServices/PPCRL\" Id=\"PPAuthInfo\">\
<ps:HostingApp>{{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}}</ps:HostingApp>\
<ps:BinaryVersion>3</ps:BinaryVersion><ps:UIVersion>1</ps:UIVersion><ps:Cookies></ps:Cookies>\
<ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams></ps:AuthInfo>\
<wsse:Security><wsse:UsernameToken Id=\"user\"><wsse:Username>{}</wsse:Username>\
<wsse:Password>{}</wsse:Password></wsse:UsernameToken></wsse:Security></Header><Body>\
<ps:RequestMultipleSecurityTokens xmlns:ps=\"http://schemas.microsoft.com/Passport/SoapServices/PPCRL\" Id=\"RSTS\">\
<wst:RequestSecurityToken Id=\"RST0\">\
<wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>\
<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{PASSPORT_TB}</wsa:Address>\
</wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>\
<wst:RequestSecurityToken Id=\"RST1\">\
<wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>\
<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{MESSENGER}</wsa:Address>\
</wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI=\"{}\"></wsse:PolicyReference>\
</wst:RequestSecurityToken></ps:RequestMultipleSecurityTokens></Body></Envelope>",
        escape(username),
        escape(password),
        escape(&policy)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &str = "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1";

    #[test]
    fn the_msn75_request_parses_and_hides_the_password() {
        let r = RstRequest::parse(msn75_request("alice@example.com", "p&w", PARAMS).as_bytes())
            .unwrap();
        assert_eq!(r.username, "alice@example.com");
        assert_eq!(r.password, "p&w");
        assert_eq!(
            r.tokens,
            vec![
                RequestedToken {
                    id: Some("RST0".into()),
                    address: PASSPORT_TB.into()
                },
                RequestedToken {
                    id: Some("RST1".into()),
                    address: MESSENGER.into()
                },
            ]
        );
        assert!(!format!("{r:?}").contains("p&w"));
    }

    #[test]
    fn requests_without_credentials_or_tokens_are_refused() {
        assert!(matches!(
            RstRequest::parse(b"<not-xml"),
            Err(RstError::Xml(_))
        ));
        assert_eq!(
            RstRequest::parse(b"<Envelope><Body/></Envelope>"),
            Err(RstError::NoCredentials)
        );
        let no_password = msn75_request("alice@example.com", "", PARAMS);
        assert_eq!(
            RstRequest::parse(no_password.as_bytes()),
            Err(RstError::NoCredentials)
        );
        let no_tokens = "<Envelope><Header><Security><UsernameToken><Username>a@b.c</Username>\
            <Password>x</Password></UsernameToken></Security></Header><Body/></Envelope>";
        assert_eq!(
            RstRequest::parse(no_tokens.as_bytes()),
            Err(RstError::NoTokens)
        );
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(RstRequest::parse(&huge), Err(RstError::TooLarge));
    }

    #[test]
    fn the_answer_carries_the_ticket_escaped_for_messenger() {
        let r =
            RstRequest::parse(msn75_request("alice@example.com", "x", PARAMS).as_bytes()).unwrap();
        assert!(
            msn75_request("a@b.c", "x", PARAMS)
                .contains("URI=\"?lc=1033&amp;id=507&amp;tw=40&amp;fs=1&amp;ru=http://messenger.msn.com&amp;ct=1\"")
        );
        let body = issued(
            &r,
            &Issued {
                handle: "alice@example.com",
                member_id: 0x1234,
                ticket: "t=abc&p=def",
                now: 1_131_624_000,
                lifetime: 86_400,
                proof_key: "cHJvb2Y=",
            },
        );
        assert!(body.contains("<wsse:BinarySecurityToken Id=\"Compact1\">t=abc&amp;p=def<"));
        assert!(body.contains("<wsu:Expires>2005-11-11T12:00:00Z</wsu:Expires>"));
        assert!(body.contains("<psf:PUID>0000000000001234</psf:PUID>"));
        assert!(body.contains("urn:passport:legacy"));
        // Well-formed, and a client finds the ticket where MSN 7.5 looks for it.
        assert_eq!(
            messenger_ticket(body.as_bytes()).as_deref(),
            Some("t=abc&p=def")
        );
        assert!(xml::parse(AUTH_FAILED.as_bytes()).is_ok());
        assert!(xml::parse(BAD_REQUEST.as_bytes()).is_ok());
        assert!(AUTH_FAILED.contains("<faultcode>wsse:FailedAuthentication</faultcode>"));
    }
}
